//! Operations over real connections: the admin listener's `/actuator/prometheus` counts a known
//! REST workload exactly; the access log has one line per request with its request id (JSON
//! logs); readiness follows PostgreSQL down and back up (a private PostgreSQL started for the
//! test, never the shared one), and a line logged while serving a request carries its id;
//! `DISCODEIT_METRICS=off` turns the scrape endpoint into a 404.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::*;
use discodeit::telemetry::metrics::{exposition, names};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// (method, route template, status).
type Key = (String, String, String);

/// A REST workload that remembers what it sent.
#[derive(Default)]
struct Workload {
    expected: BTreeMap<Key, u64>,
    /// Request id, key and response body length of every request.
    sent: Vec<(String, Key, usize)>,
}

impl Workload {
    /// Sends one request as `api`, checks its status, and records it under `route`.
    async fn send(
        &mut self,
        api: &Api,
        method: Method,
        path: &str,
        body: Option<Value>,
        route: &str,
        want: u16,
    ) -> Value {
        let mut req = api.req(method.clone(), path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, want, "{method} {path}");
        let id = r
            .headers()
            .get("discodeit-request-id")
            .expect("request id header")
            .to_str()
            .unwrap()
            .to_string();
        let bytes = r.bytes().await.unwrap();
        let key = (method.to_string(), route.to_string(), status.to_string());
        *self.expected.entry(key.clone()).or_default() += 1;
        self.sent.push((id, key, bytes.len()));
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    /// K requests over a dozen routes and statuses, including unknown routes and a refusal.
    async fn run(base: &str) -> Workload {
        let mut w = Workload::default();
        let mut admin = Api::new(base);
        w.send(
            &admin,
            Method::GET,
            "/api/auth/csrf-token",
            None,
            "/api/auth/csrf-token",
            200,
        )
        .await;
        let login = json!({"username": ADMIN, "password": ADMIN_PASSWORD});
        let token = w
            .send(
                &admin,
                Method::POST,
                "/api/auth/login",
                Some(login),
                "/api/auth/login",
                200,
            )
            .await;
        admin.token = Some(token.as_str().expect("token").to_string());
        for _ in 0..2 {
            w.send(
                &admin,
                Method::GET,
                "/api/auth/me",
                None,
                "/api/auth/me",
                200,
            )
            .await;
        }
        for _ in 0..3 {
            w.send(&admin, Method::GET, "/api/users", None, "/api/users", 200)
                .await;
        }
        let anonymous = Api::new(base);
        w.send(
            &anonymous,
            Method::GET,
            "/api/users",
            None,
            "/api/users",
            403,
        )
        .await;
        for _ in 0..2 {
            w.send(&admin, Method::GET, "/api/nope", None, "UNKNOWN", 404)
                .await;
        }
        w.send(&admin, Method::PUT, "/api/users", None, "UNKNOWN", 405)
            .await;
        let channel = json!({"name": "ops-metrics", "description": "d"});
        w.send(
            &admin,
            Method::POST,
            "/api/channels/public",
            Some(channel),
            "/api/channels/public",
            201,
        )
        .await;
        let missing = format!("/api/channels/{}", uuid::Uuid::new_v4());
        w.send(
            &admin,
            Method::DELETE,
            &missing,
            None,
            "/api/channels/{channelId}",
            404,
        )
        .await;
        w
    }

    fn count(&self) -> usize {
        self.sent.len()
    }
}

async fn scrape(server: &TestServer) -> Vec<exposition::Sample> {
    let r = reqwest::get(format!("{}/actuator/prometheus", server.admin_base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    exposition::parse(&r.text().await.unwrap())
}

/// The REST series of a scrape: (method, route, status) → count, for `/api` and unknown routes.
fn rest_counts(samples: &[exposition::Sample]) -> BTreeMap<Key, u64> {
    let count = format!("{}_count", names::HTTP_REQUESTS);
    samples
        .iter()
        .filter(|s| s.name == count)
        .filter(|s| s.labels["route"].starts_with("/api") || s.labels["route"] == "UNKNOWN")
        .map(|s| {
            (
                (
                    s.labels["method"].clone(),
                    s.labels["route"].clone(),
                    s.labels["status"].clone(),
                ),
                s.value as u64,
            )
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_a_known_rest_workload_exactly() {
    let server = TestServer::start().await;
    let w = Workload::run(&server.base).await;
    assert_eq!(w.count(), 13);

    let samples = scrape(&server).await;
    assert_eq!(rest_counts(&samples), w.expected);
    // The histogram's +Inf bucket agrees with the count for every series.
    for ((method, route, status), n) in &w.expected {
        let labels = [
            ("method", method.as_str()),
            ("route", route.as_str()),
            ("status", status.as_str()),
        ];
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        let bucket = format!("{}_bucket", names::HTTP_REQUESTS);
        assert_eq!(exposition::value(&samples, &bucket, &inf), Some(*n as f64));
    }
    // One login: one session started in the registry, nothing failed.
    let start = [("operation", "start")];
    assert_eq!(
        exposition::value(&samples, names::REGISTRY_OPS, &start),
        Some(1.0)
    );
    let errors: f64 = samples
        .iter()
        .filter(|s| s.name == names::REGISTRY_ERRORS)
        .map(|s| s.value)
        .sum();
    assert_eq!(errors, 0.0);
    // Sampled at scrape: the pool holds connections, the outbox is empty (single instance),
    // the process figures are there, and the instance is ready.
    let v = |n: &str| exposition::value(&samples, n, &[]).unwrap_or(f64::NAN);
    assert!(v(names::DB_POOL_OPEN) >= 1.0);
    assert_eq!(v(names::DB_POOL_MAX), 8.0);
    assert_eq!(v(names::DB_POOL_WAITING), 0.0);
    assert_eq!(v(names::OUTBOX_BACKLOG), 0.0);
    assert!(v(names::PROCESS_RSS) > 1e6);
    assert!(v(names::PROCESS_OPEN_FDS) >= 3.0);
    assert!(v(names::PROCESS_MAX_FDS) >= v(names::PROCESS_OPEN_FDS));
    assert_eq!(v(names::READY), 1.0);
    // Every engine series exists from the start (zero), so dashboards have something to plot.
    assert_eq!(
        exposition::value(
            &samples,
            names::CONNECTIONS_OPEN,
            &[("transport", "sockjs_xhr_streaming")]
        ),
        Some(0.0)
    );

    // A second scrape after more requests moves only what was requested.
    let admin = Api::new(&server.base);
    let r = admin.get("/api/auth/csrf-token").await;
    assert_eq!(r.status(), 200);
    let again = rest_counts(&scrape(&server).await);
    let key = (
        "GET".to_string(),
        "/api/auth/csrf-token".to_string(),
        "200".to_string(),
    );
    assert_eq!(again[&key], w.expected[&key] + 1);
}

#[tokio::test]
async fn metrics_and_probes_stay_off_the_public_listener() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let main = |p: &str| format!("{}{p}", server.base);
    let admin = |p: &str| format!("{}{p}", server.admin_base);
    let r = http.get(main("/actuator/prometheus")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    for base in [server.base.as_str(), server.admin_base.as_str()] {
        let get = |p: &str| http.get(format!("{base}{p}")).send();
        let r = get("/actuator/health/liveness").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "UP"}));
        let r = get("/actuator/health/readiness").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "UP"}));
        let r = get("/actuator/health").await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "UP");
        assert_eq!(body["components"]["db"]["status"], "UP");
        assert_eq!(body["components"]["readinessState"]["status"], "UP");
        assert!(body["components"].get("redis").is_none(), "not configured");
    }
    let r = http.get(admin("/api/users")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .post(admin("/actuator/prometheus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

/// `DISCODEIT_METRICS=off`: no recorder, so the admin listener refuses `/actuator/prometheus`
/// with a 404 ErrorResponse, while the probes and the realtime engine (recording into no-op
/// handles) work as before.
#[tokio::test]
async fn metrics_off_answers_404_and_the_engine_still_delivers() {
    use stomp::{Kind, StompClient};
    let server = TestServer::start_with(&[("DISCODEIT_METRICS", "off")]).await;
    let http = reqwest::Client::new();
    let admin = |p: &str| format!("{}{p}", server.admin_base);
    let r = http
        .get(admin("/actuator/prometheus"))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, 404, "NoResourceFoundException").await;
    assert_eq!(body["details"]["metrics"], "off", "{body}");
    assert_eq!(body["details"]["path"], "/actuator/prometheus", "{body}");
    let r = http
        .get(admin("/actuator/health/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut api = server.client();
    api.register("unmetered").await;
    let token = api.token.clone().unwrap();
    let mut sub = StompClient::connected(&server.base, Kind::Raw, &token).await;
    sub.subscribe_confirmed("s", "/sub/unmetered").await;
    let mut sender = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let reply = sender
        .send_json("/sub/unmetered", &json!({"n": 1}), "r1")
        .await;
    assert_eq!(reply.command, discodeit::proto::stomp::Command::Receipt);
    let (_, got) = sub.next_message_json().await;
    assert_eq!(got, json!({"n": 1}));
    // REST still answers (its histogram is a no-op too) and still nothing to scrape.
    assert_eq!(api.get("/api/users").await.status(), 200);
    let r = http
        .get(admin("/actuator/prometheus"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// The log's JSON lines.
fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn access_lines(path: &Path) -> Vec<Value> {
    log_lines(path)
        .into_iter()
        .filter(|l| l["target"] == "access")
        .filter(|l| {
            let r = l["route"].as_str().unwrap_or("");
            r.starts_with("/api") || r == "UNKNOWN"
        })
        .collect()
}

fn temp_log(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "discodeit-{name}-{}.log",
        uuid::Uuid::new_v4().simple()
    ))
}

#[tokio::test]
async fn the_access_log_has_one_json_line_per_request_with_its_id() {
    let log = temp_log("access");
    let server = TestServer::start_logged(
        &[("DISCODEIT_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        &log,
    )
    .await;
    let mut w = Workload::run(&server.base).await;
    // A request id chosen by the caller (nginx passes its $request_id) is kept.
    let api = Api::new(&server.base);
    let r = api
        .req(Method::GET, "/api/auth/csrf-token")
        .header("x-request-id", "nginx-0123abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["discodeit-request-id"], "nginx-0123abcd");
    let len = r.bytes().await.unwrap().len();
    let key = (
        "GET".to_string(),
        "/api/auth/csrf-token".to_string(),
        "200".to_string(),
    );
    w.sent.push(("nginx-0123abcd".into(), key, len));

    // Lines are written once each response is done: wait for all of them.
    let want = w.count();
    let lines = eventually(10, || {
        let lines = access_lines(&log);
        async move { (lines.len() >= want).then_some(lines) }
    })
    .await;
    assert_eq!(lines.len(), w.count(), "one line per request");
    for (id, (method, route, status), len) in &w.sent {
        let mine: Vec<&Value> = lines.iter().filter(|l| l["request_id"] == *id).collect();
        assert_eq!(mine.len(), 1, "request {id}");
        let l = mine[0];
        assert_eq!(l["message"], "access");
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["method"], *method);
        assert_eq!(l["route"], *route);
        assert_eq!(l["status"].to_string(), *status);
        assert_eq!(l["bytes"], *len as u64, "{route}");
        assert_eq!(l["instance"], format!("test-{}", server.port));
        assert!(l["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(l["timestamp"].is_string());
    }
    // Not a terminal: no colour codes anywhere.
    let raw = std::fs::read_to_string(&log).unwrap();
    assert!(!raw.contains('\u{1b}'));
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn text_logs_have_no_colours_when_not_on_a_terminal() {
    let log = temp_log("text");
    let server = TestServer::start_logged(&[("RUST_LOG", "info")], &log).await;
    let r = server.client().get("/api/auth/csrf-token").await;
    let id = r.headers()["discodeit-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    drop(r);
    let line = eventually(10, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let id = id.clone();
        async move { text.lines().find(|l| l.contains(&id)).map(str::to_string) }
    })
    .await;
    assert!(
        line.contains(" INFO ")
            && line.contains("access")
            && line.contains("/api/auth/csrf-token")
            && line.contains("status=200"),
        "{line}"
    );
    assert!(!std::fs::read_to_string(&log).unwrap().contains('\u{1b}'));
    let _ = std::fs::remove_file(&log);
}

/// A PostgreSQL cluster of this test alone (initdb + pg_ctl in a temp dir, on a free port).
struct PrivatePg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// Highest installed server version's bin dir, e.g. /usr/lib/postgresql/15/bin.
fn pg_bindir() -> PathBuf {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL server installed") {
        let path = entry.unwrap().path();
        let Some(v) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if path.join("bin/pg_ctl").exists() && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, path.join("bin")));
        }
    }
    best.expect("a PostgreSQL server version").1
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl PrivatePg {
    /// Runs a PostgreSQL tool, as the postgres user when we are root (initdb refuses root).
    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir("/")
            .stdout(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn init() -> PrivatePg {
        let dir = std::env::temp_dir().join(format!(
            "discodeit-ops-pg-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres", &dir.display().to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown postgres {dir:?}");
        }
        let pg = PrivatePg {
            dir,
            bin: pg_bindir(),
            port: free_port(),
        };
        let data = pg.data();
        assert!(
            pg.run(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ],
            ),
            "initdb"
        );
        pg
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off",
            self.port
        );
        let log = self.dir.join("postgres.log").display().to_string();
        let data = self.data();
        assert!(
            self.run(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"]
            ),
            "pg_ctl start"
        );
    }

    fn stop(&self) {
        let data = self.data();
        assert!(
            self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]),
            "pg_ctl stop"
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn readiness(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}/actuator/health/readiness"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn readiness_follows_postgresql_down_and_back_up() {
    let pg = PrivatePg::init();
    pg.start();
    let log = temp_log("readiness");
    let server = TestServer::start_logged_on_db(
        &pg.url(),
        "postgres",
        &[("DISCODEIT_LOG_FORMAT", "json"), ("RUST_LOG", "info")],
        &log,
    )
    .await;
    let http = reqwest::Client::new();
    let mut admin = server.client();
    admin.admin().await;
    assert_eq!(readiness(&http, &server.admin_base).await.0, 200);

    pg.stop();
    let t0 = Instant::now();
    let body = eventually(20, || {
        let http = http.clone();
        let base = server.admin_base.clone();
        async move {
            let (status, body) = readiness(&http, &base).await;
            (status == 503).then_some(body)
        }
    })
    .await;
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["components"]["db"]["status"], "DOWN");
    eprintln!("readiness DOWN {:?} after PostgreSQL stopped", t0.elapsed());
    // The process still serves: liveness stays UP, on both listeners.
    for base in [&server.base, &server.admin_base] {
        let r = http
            .get(format!("{base}/actuator/health/liveness"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .get(format!("{}/actuator/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);

    // A request that needs the database fails cleanly, and the error logged while serving it
    // carries its request id.
    let r = admin.get("/api/users").await;
    assert_eq!(r.status(), 503);
    let id = r.headers()["discodeit-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let line = eventually(10, || {
        let lines = log_lines(&log);
        let id = id.clone();
        async move {
            lines
                .into_iter()
                .find(|l| l["level"] == "ERROR" && l["span"]["request_id"] == *id)
        }
    })
    .await;
    assert!(
        line["message"].as_str().unwrap().contains("database"),
        "{line}"
    );

    pg.start();
    let t0 = Instant::now();
    eventually(20, || {
        let http = http.clone();
        let base = server.admin_base.clone();
        async move { (readiness(&http, &base).await.0 == 200).then_some(()) }
    })
    .await;
    eprintln!("readiness UP {:?} after PostgreSQL restarted", t0.elapsed());
    assert_eq!(admin.get("/api/users").await.status(), 200);
    let _ = std::fs::remove_file(&log);
}

/// The engine's series after a known realtime workload: 5 healthy STOMP subscribers, one that
/// never reads (dropped as a slow consumer), one sender, 2 SSE streams; every count exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_realtime_workload_exactly() {
    use discodeit::proto::stomp::{encode_to_bytes, Command, Frame};
    use stomp::{End, Kind, StompClient, WAIT};
    const HEALTHY: usize = 5;
    const MESSAGES: usize = 60;
    let server = TestServer::start_with(&[
        ("DISCODEIT_QUEUE_MAX_BYTES", "32768"),
        ("DISCODEIT_SOCKET_SEND_BUFFER", "16384"),
        ("DISCODEIT_SSE_KEEPALIVE_SECONDS", "3600"),
    ])
    .await;
    let mut api = server.client();
    api.register("metered").await;
    let token = api.token.clone().unwrap();
    let value = |samples: &[exposition::Sample], name: &str, labels: &[(&str, &str)]| {
        exposition::value(samples, name, labels).unwrap_or(0.0)
    };

    // Frames each client saw (CONNECTED and RECEIPT included): the server counts the same.
    let mut seen = 0usize;
    let mut slow = StompClient::open_raw_small_buffer(&server.base, 4096).await;
    let reply = slow
        .connect_with(&[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(reply.command, Command::Connected);
    slow.subscribe_confirmed("s", "/sub/metered").await;
    seen += 2;
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..HEALTHY {
        let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
        c.subscribe_confirmed("s", "/sub/metered").await;
        seen += 2;
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            for _ in 0..MESSAGES {
                let f = c
                    .next_frame(Duration::from_secs(60))
                    .await
                    .expect("message");
                assert_eq!(f.command, Command::Message);
                received.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            c
        }));
    }
    let sse: Vec<_> = futures_util::future::join_all(
        (0..2).map(|_| async { api.req(Method::GET, "/api/sse").send().await.unwrap() }),
    )
    .await;
    assert!(sse.iter().all(|r| r.status() == 200));

    // Batches small enough for a reading subscriber's queue; the one that never reads falls
    // further behind with each until it passes the byte limit.
    let mut sender = StompClient::connected(&server.base, Kind::Raw, &token).await;
    seen += 1;
    const BATCH: usize = 10;
    for b in 0..MESSAGES / BATCH {
        let mut batch = Vec::new();
        for i in 0..BATCH {
            let mut f = Frame::new(Command::Send)
                .with_header("destination", "/sub/metered")
                .body(vec![b'm'; 1000]);
            if i + 1 == BATCH {
                f = f.with_header("receipt", format!("r{b}"));
            }
            batch.extend_from_slice(&encode_to_bytes(&f));
        }
        sender.send_raw(&batch).await;
        assert!(sender.next_non_message(WAIT).await.is_some());
        seen += 1;
        let want = HEALTHY * BATCH * (b + 1);
        eventually(20, || async {
            (received.load(std::sync::atomic::Ordering::SeqCst) >= want).then_some(())
        })
        .await;
    }
    let mut healthy = Vec::new();
    for r in readers {
        healthy.push(r.await.unwrap());
        seen += MESSAGES;
    }
    // The slow one gets what was written before its close, then the close with 1013.
    while let Some(f) = slow.next_frame(WAIT).await {
        assert_eq!(f.command, Command::Message);
        seen += 1;
    }
    assert!(matches!(slow.end(WAIT).await, End::Closed(Some(1013))));

    drop(slow);
    drop(healthy);
    drop(sender);
    drop(sse);
    let samples = eventually(20, || async {
        let s = scrape(&server).await;
        let open: f64 = ["websocket", "sse"]
            .iter()
            .map(|t| value(&s, names::CONNECTIONS_OPEN, &[("transport", t)]))
            .sum();
        (open == 0.0).then_some(s)
    })
    .await;
    let ws = [("transport", "websocket")];
    assert_eq!(value(&samples, names::CONNECTIONS_OPENED, &ws), 7.0);
    let closed = |reason: &str| {
        value(
            &samples,
            names::CONNECTIONS_CLOSED,
            &[("transport", "websocket"), ("reason", reason)],
        )
    };
    assert_eq!(closed("slow_bytes"), 1.0);
    assert_eq!(closed("client"), 6.0);
    assert_eq!(value(&samples, names::DELIVERIES, &ws), seen as f64);
    let sse_t = [("transport", "sse")];
    assert_eq!(value(&samples, names::CONNECTIONS_OPENED, &sse_t), 2.0);
    // Per stream: the padding comment and the `connect` event.
    assert_eq!(value(&samples, names::DELIVERIES, &sse_t), 4.0);
    assert_eq!(value(&samples, names::STOMP_SESSIONS, &[]), 0.0);
    assert_eq!(value(&samples, names::STOMP_SUBSCRIPTIONS, &[]), 0.0);
    let latency = format!("{}_count", names::PUBLISH_TO_WRITE);
    assert!(value(&samples, &latency, &ws) >= 1.0);
}
