//! Test harness: starts the real `discodeit` binary against a fresh PostgreSQL database and
//! talks to it over real HTTP. PostgreSQL comes from `scripts/test.sh` (`DISCODEIT_PG_ADMIN_URL`).
#![allow(dead_code)]

use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "test-admin-pw-9!";
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// A running server process with its own database and storage directory.
pub struct TestServer {
    pub base: String,
    pub port: u16,
    /// The admin listener: `/actuator/prometheus` and the health probes.
    pub admin_base: String,
    pub db_name: String,
    pub storage: std::path::PathBuf,
    child: Child,
}

fn admin_url() -> String {
    std::env::var("DISCODEIT_PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432/postgres".into())
}

/// A port nothing listens on now, and that this process has not handed out before: the
/// port is only taken when the server binds it later, so two picks in a row may otherwise
/// get the same one (a cluster once started two instances on one admin port).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> (String, String) {
    let admin = admin_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL admin database (run the tests through scripts/test.sh)");
    tokio::spawn(conn);
    let name = format!("dtest_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(admin);
    (format!("{base}/{name}"), name)
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// Starts the binary with extra environment variables.
    pub async fn start_with(env: &[(&str, &str)]) -> TestServer {
        let (url, db_name) = fresh_database().await;
        Self::start_on_db(&url, &db_name, env).await
    }

    pub async fn start_on_db(url: &str, db_name: &str, env: &[(&str, &str)]) -> TestServer {
        Self::start_on_db_with(url, db_name, env, |_| {}).await
    }

    /// Like [`Self::start_on_db`]; `tweak` may adjust the command before it is spawned.
    pub async fn start_on_db_with(
        url: &str,
        db_name: &str,
        env: &[(&str, &str)],
        tweak: impl FnOnce(&mut Command),
    ) -> TestServer {
        Self::spawn(url, db_name, env, Stdio::null(), tweak).await
    }

    /// Starts the binary with its stdout (the log) written to `log`.
    pub async fn start_logged(env: &[(&str, &str)], log: &std::path::Path) -> TestServer {
        let (url, db_name) = fresh_database().await;
        Self::start_logged_on_db(&url, &db_name, env, log).await
    }

    /// [`TestServer::start_logged`] on a given database.
    pub async fn start_logged_on_db(
        url: &str,
        db_name: &str,
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> TestServer {
        let out = std::fs::File::create(log).expect("log file");
        Self::spawn(url, db_name, env, Stdio::from(out), |_| {}).await
    }

    async fn spawn(
        url: &str,
        db_name: &str,
        env: &[(&str, &str)],
        stdout: Stdio,
        tweak: impl FnOnce(&mut Command),
    ) -> TestServer {
        let port = free_port();
        let admin_port = free_port();
        let storage = std::env::temp_dir().join(format!("discodeit-test-{db_name}-{port}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_discodeit"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("DATABASE_POOL_SIZE", "8")
            .env("SECURITY_JWT_SECRET", SECRET)
            .env("DISCODEIT_ADDR", format!("127.0.0.1:{port}"))
            .env("DISCODEIT_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("DISCODEIT_STORAGE_DIR", &storage)
            .env("DISCODEIT_INSTANCE_ID", format!("test-{port}"))
            .env("DISCODEIT_ADMIN_USERNAME", ADMIN)
            .env("DISCODEIT_ADMIN_EMAIL", "admin@discodeit.test")
            .env("DISCODEIT_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // Tests sign up and log in many users from 127.0.0.1; tests/throttle.rs turns
            // the login throttle on.
            .env("DISCODEIT_AUTH_IP_BURST", "0")
            .env("DISCODEIT_AUTH_USERNAME_BURST", "0")
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(stdout)
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        tweak(&mut cmd);
        let child = cmd.spawn().expect("spawn discodeit");
        let server = TestServer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            admin_base: format!("http://127.0.0.1:{admin_port}"),
            db_name: db_name.to_string(),
            storage,
            child,
        };
        server.wait_healthy().await;
        server
    }

    pub async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client
                .get(format!("{}/actuator/health", self.base))
                .send()
                .await
            {
                if r.status() == StatusCode::OK {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn client(&self) -> Api {
        Api::new(&self.base)
    }

    /// Stops the process (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's resident memory (VmRSS) in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.storage);
    }
}

/// A browser-like client: cookie jar, CSRF header from the cookie, Bearer token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Api {
            base: base.to_string(),
            http,
            jar,
            token: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The current value of a cookie in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = reqwest::Url::parse(&self.url("/api/auth/refresh")).ok()?;
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    /// `GET /api/auth/csrf-token` (sets the cookie).
    pub async fn csrf(&self) -> String {
        let r = self
            .http
            .get(self.url("/api/auth/csrf-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// A request with Bearer (when logged in) and the CSRF header (when the cookie exists).
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut b = self.http.request(method, self.url(path));
        if let Some(t) = &self.token {
            b = b.bearer_auth(t);
        }
        if let Some(x) = self.cookie("XSRF-TOKEN") {
            b = b.header("X-XSRF-TOKEN", x);
        }
        b
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.req(method, path).json(body).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().await.unwrap()
    }

    /// `POST /api/users` as the front end sends it (JSON part as a Blob named `blob`).
    pub async fn signup_raw(
        &self,
        username: &str,
        email: &str,
        password: &str,
        profile: Option<(&str, &str, Vec<u8>)>,
    ) -> Response {
        self.csrf().await;
        let mut form = Form::new().part(
            "userCreateRequest",
            json_part(&json!({"username": username, "email": email, "password": password})),
        );
        if let Some((name, ct, bytes)) = profile {
            form = form.part(
                "profile",
                Part::bytes(bytes)
                    .file_name(name.to_string())
                    .mime_str(ct)
                    .unwrap(),
            );
        }
        self.req(Method::POST, "/api/users")
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn signup(&self, username: &str) -> Value {
        let r = self
            .signup_raw(
                username,
                &format!("{username}@example.com"),
                "p@ssw0rd1",
                None,
            )
            .await;
        assert_eq!(r.status(), 201, "signup {username}");
        r.json().await.unwrap()
    }

    pub async fn login_raw(&self, username: &str, password: &str) -> Response {
        self.csrf().await;
        self.req(Method::POST, "/api/auth/login")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in and keeps the access token.
    pub async fn login(&mut self, username: &str, password: &str) -> String {
        let r = self.login_raw(username, password).await;
        assert_eq!(r.status(), 200, "login {username}");
        let token: String = r.json().await.unwrap();
        self.token = Some(token.clone());
        token
    }

    /// Signs up `username` and logs in; returns the UserDto.
    pub async fn register(&mut self, username: &str) -> Value {
        let user = self.signup(username).await;
        self.login(username, "p@ssw0rd1").await;
        user
    }

    pub async fn admin(&mut self) {
        self.login(ADMIN, ADMIN_PASSWORD).await;
    }

    /// The current user's id, read from the token's `userDto` claim.
    pub fn user_id(&self) -> String {
        let t = self.token.as_ref().expect("logged in");
        let payload = t.split('.').nth(1).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        v["userDto"]["id"].as_str().unwrap().to_string()
    }

    pub async fn create_public_channel(&self, name: &str) -> Value {
        let r = self
            .post_json(
                "/api/channels/public",
                &json!({"name": name, "description": "d"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    pub async fn create_private_channel(&self, members: &[&str]) -> Value {
        let r = self
            .post_json("/api/channels/private", &json!({"participantIds": members}))
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// `POST /api/messages` multipart with attachments `(file name, content type, bytes)`.
    pub async fn post_message(
        &self,
        channel: &str,
        content: &str,
        files: Vec<(&str, &str, Vec<u8>)>,
    ) -> Response {
        let mut form = Form::new().part(
            "messageCreateRequest",
            json_part(
                &json!({"content": content, "channelId": channel, "authorId": self.user_id()}),
            ),
        );
        for (name, ct, bytes) in files {
            form = form.part(
                "attachments",
                Part::bytes(bytes)
                    .file_name(name.to_string())
                    .mime_str(ct)
                    .unwrap(),
            );
        }
        self.req(Method::POST, "/api/messages")
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn send_text(&self, channel: &str, content: &str) -> Value {
        let r = self.post_message(channel, content, vec![]).await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }
}

/// A JSON part the way the front end sends it: a Blob with `filename="blob"`.
pub fn json_part(v: &Value) -> Part {
    Part::bytes(serde_json::to_vec(v).unwrap())
        .file_name("blob")
        .mime_str("application/json")
        .unwrap()
}

/// Asserts an ErrorResponse with `status` and `code`; returns the body.
pub async fn expect_error(r: Response, status: u16, code: &str) -> Value {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "status, body {body}");
    assert_eq!(body["code"], code, "code, body {body}");
    assert_eq!(body["status"], status);
    assert!(
        body["timestamp"].is_string() && body["message"].is_string() && body["details"].is_object()
    );
    body
}

/// Polls `f` until it returns Some, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met in {secs}s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads an SSE response body into parsed events.
pub struct SseReader {
    resp: Response,
    parser: discodeit::proto::sse::SseParser,
    pending: std::collections::VecDeque<discodeit::proto::sse::SseMessage>,
}

impl SseReader {
    pub fn new(resp: Response) -> Self {
        SseReader {
            resp,
            parser: discodeit::proto::sse::SseParser::new(),
            pending: Default::default(),
        }
    }

    /// The next event (comments skipped), or None at end of stream / after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<discodeit::proto::sse::SseMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = self.pending.pop_front() {
                return Some(m);
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.pending.extend(self.parser.push(&chunk));
        }
    }

    /// The next event whose name is `name`, skipping others.
    pub async fn next_named(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Option<discodeit::proto::sse::SseMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.next(left).await?;
            if m.event.as_deref() == Some(name) {
                return Some(m);
            }
        }
    }
}

// ---- REST acceptance helpers (tests/rest_*.rs) ----

impl TestServer {
    /// A direct connection to this server's database, for "nothing half-written" checks.
    pub async fn db(&self) -> tokio_postgres::Client {
        let admin = admin_url();
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin);
        let (client, conn) =
            tokio_postgres::connect(&format!("{base}/{}", self.db_name), tokio_postgres::NoTls)
                .await
                .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }

    /// `SELECT count(*) …` on this server's database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db()
            .await
            .query_one(sql, &[])
            .await
            .expect("count query")
            .get(0)
    }

    /// Names of the files in the storage directory (temporary files included).
    pub fn stored_files(&self) -> Vec<String> {
        match std::fs::read_dir(&self.storage) {
            Ok(dir) => dir
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Api {
    /// `PATCH /api/users/{id}` multipart, as the front end sends it.
    pub async fn patch_user(
        &self,
        id: &str,
        body: &Value,
        profile: Option<(&str, &str, Vec<u8>)>,
    ) -> Response {
        let mut form = Form::new().part("userUpdateRequest", json_part(body));
        if let Some((name, ct, bytes)) = profile {
            form = form.part(
                "profile",
                Part::bytes(bytes)
                    .file_name(name.to_string())
                    .mime_str(ct)
                    .unwrap(),
            );
        }
        self.req(Method::PATCH, &format!("/api/users/{id}"))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// Polls `GET /api/binaryContents/{id}` until its upload status is `SUCCESS`.
    pub async fn wait_uploaded(&self, id: &str) -> Value {
        eventually(10, || async move {
            let r = self.get(&format!("/api/binaryContents/{id}")).await;
            if r.status() != 200 {
                return None;
            }
            let v: Value = r.json().await.ok()?;
            assert_ne!(v["uploadStatus"], "FAILED", "upload failed: {v}");
            (v["uploadStatus"] == "SUCCESS").then_some(v)
        })
        .await
    }

    /// The JSON body of a `GET` that must answer 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let r = self.get(path).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// `n` pseudo-random bytes (xorshift; different for each seed).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}
