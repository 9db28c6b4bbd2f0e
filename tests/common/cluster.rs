//! Multi-instance harness: a private tansu (Kafka protocol) broker, three `discodeit`
//! instances on one fresh database sharing Redis, and Debian's nginx running the deployment's
//! own config (`nginx/templates`, rendered by `nginx/render.sh` for 127.0.0.1).
//!
//! One cluster per test binary ([`Cluster::shared`]); tests share it and use their own users
//! and channels. Every process gets its own process group, and a watchdog shell kills those
//! groups when the test process exits, however it exits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::{free_port, fresh_database, Api, SseReader, ADMIN, ADMIN_PASSWORD, SECRET};

/// One spawned process (its own process group).
pub struct Proc {
    pub pid: u32,
    child: Mutex<Child>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command, log: &Path) -> Proc {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc {
            pid: child.id(),
            child: Mutex::new(child),
        }
    }

    /// A stand-in for a process the cluster does not own (pid 0, never signalled).
    pub fn placeholder() -> Proc {
        Proc {
            pid: 0,
            child: Mutex::new(Command::new("true").spawn().unwrap()),
        }
    }

    /// Sends a signal by name (`KILL`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, sig: &str) {
        assert_ne!(self.pid, 0, "signal to a placeholder process");
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} {}", self.pid);
    }

    /// SIGKILL and reap.
    pub fn kill(&self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `secs` for the process to exit; its exit code (None: still running, or
    /// killed by a signal).
    pub async fn exit_code(&self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(mut c) = self.child.lock() {
                if let Ok(Some(status)) = c.try_wait() {
                    return status.code();
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn alive(&self) -> bool {
        self.child
            .lock()
            .map(|mut c| matches!(c.try_wait(), Ok(None)))
            .unwrap_or(false)
    }
}

/// One discodeit instance.
pub struct Instance {
    pub name: String,
    pub base: String,
    pub port: u16,
    /// The admin listener: `/actuator/prometheus` and the health probes.
    pub admin_base: String,
    pub proc: Proc,
}

/// Variables the harness sets that compose.yaml's backend does not, and why.
pub const HARNESS_ONLY_VARS: &[&str] = &[
    // The environment is cleared first.
    "PATH",
    // Five instances share one local PostgreSQL (compose gives each the default pool).
    "DATABASE_POOL_SIZE",
    // Compose's instances are named by their container hostname.
    "DISCODEIT_INSTANCE_ID",
    // One broker and one Redis serve every test run: each cluster gets its own namespace.
    "KAFKA_TOPIC_PREFIX",
    "REDIS_KEY_PREFIX",
];

/// nginx/nginx.conf (the image's main config) with its paths moved into `dir`: the same
/// limits, log format and includes, runnable by a non-container nginx.
pub fn nginx_main_conf(dir: &Path) -> String {
    let conf = std::fs::read_to_string(repo().join("nginx/nginx.conf")).expect("nginx/nginx.conf");
    let d = dir.display();
    let conf: String = conf
        .lines()
        // The image's "nginx" user does not exist here.
        .filter(|l| !l.trim_start().starts_with("user "))
        .map(|l| format!("{l}\n"))
        .collect();
    let conf = conf
        .replace("/var/run/nginx.pid", &format!("{d}/nginx.pid"))
        .replace("/var/log/nginx/", &format!("{d}/"))
        .replace("/etc/nginx/conf.d/", &format!("{d}/conf.d/"))
        .replacen(
            "http {\n",
            &format!(
                "http {{\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
                 fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
                 scgi_temp_path {d}/scgi;\n"
            ),
            1,
        );
    // The image's entrypoint runs nginx in the foreground the same way.
    format!("daemon off;\n{conf}")
}

/// Where one instance of the harness runs: the local stand-ins of compose's services.
pub struct BackendSite<'a> {
    pub cluster_id: &'a str,
    pub name: &'a str,
    pub db_url: &'a str,
    pub port: u16,
    pub admin_port: u16,
    pub storage: &'a Path,
    /// `Some((kafka, redis))` for the multi-instance design; `None` runs each instance alone.
    pub shared: Option<(&'a str, &'a str)>,
}

/// The environment of one instance: compose.yaml's backend environment, with local addresses
/// (tests/deploy_runtime.rs checks that the names match compose's).
pub fn backend_env(site: &BackendSite) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("DATABASE_URL", site.db_url.to_string()),
        ("DATABASE_POOL_SIZE", "8".to_string()),
        ("SECURITY_JWT_SECRET", SECRET.to_string()),
        ("DISCODEIT_ADDR", format!("127.0.0.1:{}", site.port)),
        (
            "DISCODEIT_ADMIN_ADDR",
            format!("127.0.0.1:{}", site.admin_port),
        ),
        ("DISCODEIT_STORAGE_DIR", site.storage.display().to_string()),
        (
            "DISCODEIT_INSTANCE_ID",
            format!("{}-{}", site.cluster_id, site.name),
        ),
        ("DISCODEIT_ADMIN_USERNAME", ADMIN.to_string()),
        ("DISCODEIT_ADMIN_EMAIL", "admin@discodeit.test".to_string()),
        ("DISCODEIT_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
        ("DISCODEIT_LOG_FORMAT", "json".to_string()),
        (
            "RUST_LOG",
            std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        ),
    ];
    if let Some((kafka, redis)) = site.shared {
        env.extend([
            ("KAFKA_BOOTSTRAP_SERVERS", kafka.to_string()),
            ("KAFKA_TOPIC_PREFIX", format!("dtest.{}.", site.cluster_id)),
            ("REDIS_URL", redis.to_string()),
            ("REDIS_KEY_PREFIX", format!("dtest:{}:", site.cluster_id)),
        ]);
    }
    env
}

impl Instance {
    pub fn client(&self) -> Api {
        Api::new(&self.base)
    }
}

/// A running nginx in front of the instances.
pub struct Nginx {
    pub base: String,
    pub port: u16,
    pub proc: Proc,
}

impl Cluster {
    /// The directory of the cluster's main nginx (its config and logs).
    pub fn nginx_dir(&self) -> PathBuf {
        self.dir.join(format!("nginx-{}", self.nginx.port))
    }
}

/// What a cluster runs on; the default is a fresh database on the shared PostgreSQL, the shared
/// Redis and a private in-memory tansu.
#[derive(Default)]
pub struct ClusterSpec {
    pub count: usize,
    pub shared_state: bool,
    /// (id, directory) of the cluster; default a new id under the temp directory.
    pub dir: Option<(String, PathBuf)>,
    /// (url, name) of a database to use instead of a fresh one on the shared server.
    pub database: Option<(String, String)>,
    pub redis: Option<String>,
    /// A broker to use instead of starting an in-memory tansu.
    pub kafka: Option<String>,
}

/// The command that starts tansu on `addr` with `storage`.
pub fn tansu_command(bin: &Path, addr: &str, storage: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "broker",
        "--listener-url",
        &format!("tcp://{addr}"),
        "--advertised-listener-url",
        &format!("tcp://{addr}"),
        "--storage-engine",
        storage,
    ]);
    cmd
}

/// The whole cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub instances: Vec<Instance>,
    pub nginx: Nginx,
    pub tansu: Proc,
    pub kafka: String,
    pub db_url: String,
    pub db_name: String,
    pids: Mutex<Vec<u32>>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Installs what the harness needs (idempotent, via scripts/lib.sh) and returns the tansu path.
pub fn ensure_tools() -> PathBuf {
    let out = Command::new("bash")
        .current_dir(repo())
        .args([
            "-c",
            "source scripts/lib.sh && ensure_tansu >&2 && \
             { command -v nginx >/dev/null && command -v envsubst >/dev/null || \
               ensure_debs nginx-light gettext-base >&2; } && echo \"$DISCODEIT_DATA/bin/tansu\"",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("bash scripts/lib.sh");
    assert!(out.status.success(), "installing tansu / nginx failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub async fn wait_port(port: u16, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} did not open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_healthy(base: &str, secs: u64) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(r) = client.get(format!("{base}/actuator/health")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{base} did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

static SHARED: tokio::sync::OnceCell<Cluster> = tokio::sync::OnceCell::const_new();

impl Cluster {
    /// The cluster of this test binary, started on first use.
    pub async fn shared() -> &'static Cluster {
        SHARED.get_or_init(Cluster::start).await
    }

    /// Starts tansu, three instances and a round-robin nginx.
    pub async fn start() -> Cluster {
        Self::start_with(3, true).await
    }

    /// Starts `count` instances (named a, b, c, ...); with `shared_state` false they run the
    /// single-instance design (in-memory registry, in-process bus; tansu runs unused).
    pub async fn start_with(count: usize, shared_state: bool) -> Cluster {
        Self::start_on(ClusterSpec {
            count,
            shared_state,
            ..ClusterSpec::default()
        })
        .await
    }

    /// Starts a cluster as `spec` says (its own broker, database or Redis, for fault tests).
    pub async fn start_on(spec: ClusterSpec) -> Cluster {
        let ClusterSpec {
            count,
            shared_state,
            dir,
            database,
            redis,
            kafka,
        } = spec;
        let t0 = Instant::now();
        let tansu_bin = ensure_tools();
        let (id, dir) = match dir {
            Some(d) => (d.0, d.1),
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
                let dir = std::env::temp_dir().join(format!("discodeit-cluster-{id}"));
                (id, dir)
            }
        };
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("cluster {id}: logs in {}", dir.display());

        let watchdog_file = dir.join("pids");
        spawn_watchdog(&watchdog_file);
        let (kafka, tansu) = match kafka {
            Some(k) => (k, Proc::placeholder()),
            None => {
                let kafka_port = free_port();
                let kafka = format!("127.0.0.1:{kafka_port}");
                let tansu = Proc::spawn(
                    &mut tansu_command(&tansu_bin, &kafka, "memory://tansu/"),
                    &dir.join("tansu.log"),
                );
                std::fs::write(&watchdog_file, format!("{}\n", tansu.pid)).unwrap();
                wait_port(kafka_port, 30).await;
                (kafka, tansu)
            }
        };
        let mut cluster_pids = vec![tansu.pid];

        let (db_url, db_name) = match database {
            Some(d) => d,
            None => fresh_database().await,
        };
        let redis = redis.unwrap_or_else(|| {
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379/".into())
        });
        let mut instances = Vec::new();
        for name in ["a", "b", "c", "d", "e"].into_iter().take(count) {
            let port = free_port();
            let admin_port = free_port();
            let storage = dir.join(format!("storage-{name}"));
            let site = BackendSite {
                cluster_id: &id,
                name,
                db_url: &db_url,
                port,
                admin_port,
                storage: &storage,
                shared: shared_state.then_some((kafka.as_str(), redis.as_str())),
            };
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_discodeit"));
            cmd.env_clear()
                .envs(backend_env(&site))
                // Tests log in many users from 127.0.0.1; the throttle has its own test.
                .env("DISCODEIT_AUTH_IP_BURST", "0")
                .env("DISCODEIT_AUTH_USERNAME_BURST", "0");
            let proc = Proc::spawn(&mut cmd, &dir.join(format!("{name}.log")));
            cluster_pids.push(proc.pid);
            instances.push(Instance {
                name: name.to_string(),
                base: format!("http://127.0.0.1:{port}"),
                port,
                admin_base: format!("http://127.0.0.1:{admin_port}"),
                proc,
            });
            // The admin bootstrap of the first instance must not race the others': it is
            // done once the instance listens.
            if name == "a" {
                wait_port(port, 60).await;
            }
        }
        std::fs::write(
            &watchdog_file,
            cluster_pids
                .iter()
                .map(|p| format!("{p}\n"))
                .collect::<String>(),
        )
        .unwrap();
        for i in &instances {
            wait_healthy(&i.base, 60).await;
        }
        let mut cluster = Cluster {
            dir,
            nginx: Nginx {
                base: String::new(),
                port: 0,
                proc: Proc::placeholder(),
            },
            instances,
            tansu,
            kafka,
            db_url,
            db_name,
            pids: Mutex::new(cluster_pids),
        };
        cluster.nginx = cluster.start_nginx("round_robin", &[]).await;
        eprintln!(
            "cluster {id}: ready in {:.1}s (nginx {}, instances {})",
            t0.elapsed().as_secs_f64(),
            cluster.nginx.base,
            cluster
                .instances
                .iter()
                .map(|i| i.base.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        cluster
    }

    /// Another nginx in front of the same instances, with `strategy` (`round_robin`,
    /// `least_conn`, `ip_hash`, `weight`) and extra environment for the render script.
    pub async fn start_nginx(&self, strategy: &str, env: &[(&str, &str)]) -> Nginx {
        let port = free_port();
        let dir = self.dir.join(format!("nginx-{port}"));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let servers: Vec<String> = self
            .instances
            .iter()
            .map(|i| format!("127.0.0.1:{}", i.port))
            .collect();
        let web = repo().join("web/dist");
        let web_root = if web.join("index.html").exists() {
            web
        } else {
            let w = dir.join("web");
            std::fs::create_dir_all(&w).unwrap();
            std::fs::write(
                w.join("index.html"),
                "<!doctype html><title>discodeit</title>",
            )
            .unwrap();
            w
        };
        let mut render = Command::new("sh");
        render
            .arg(repo().join("nginx/render.sh"))
            .arg(dir.join("conf.d/default.conf"))
            .env("LB_STRATEGY", strategy)
            .env("BACKEND_SERVERS", servers.join(" "))
            .env("NGINX_PORT", format!("127.0.0.1:{port}"))
            .env("NGINX_WEB_ROOT", &web_root);
        for (k, v) in env {
            render.env(k, v);
        }
        let ok = render.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "nginx/render.sh failed");
        let d = dir.display();
        std::fs::write(dir.join("nginx.conf"), nginx_main_conf(&dir)).unwrap();
        let proc = Proc::spawn(
            Command::new("nginx").args([
                "-p",
                &d.to_string(),
                "-c",
                &format!("{d}/nginx.conf"),
                "-e",
                &format!("{d}/error.log"),
            ]),
            &dir.join("nginx.out"),
        );
        self.track(proc.pid);
        wait_port(port, 10).await;
        Nginx {
            base: format!("http://127.0.0.1:{port}"),
            port,
            proc,
        }
    }

    /// Adds `pid`'s process group to those the watchdog kills when the test process ends.
    pub fn track(&self, pid: u32) {
        if let Ok(mut pids) = self.pids.lock() {
            pids.push(pid);
            let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
            let _ = std::fs::write(self.dir.join("pids"), text);
        }
    }

    /// Kills every process of the cluster (for benchmarks that start several in a row).
    pub fn shutdown(&self) {
        self.nginx.proc.kill();
        for i in &self.instances {
            i.proc.kill();
        }
        self.tansu.kill();
    }

    /// Instance by index: 0 = A, 1 = B, 2 = C.
    pub fn at(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    /// Which instance a `X-Upstream-Addr` value names.
    pub fn instance_of(&self, upstream: &str) -> Option<&Instance> {
        let last = upstream.rsplit(',').next()?.trim();
        self.instances
            .iter()
            .find(|i| last == format!("127.0.0.1:{}", i.port))
    }
}

/// Kills every process group listed in `pids` once this test process is gone.
pub fn spawn_watchdog(pids: &Path) {
    use std::os::unix::process::CommandExt;
    let me = std::process::id();
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
         for p in $(cat '{}' 2>/dev/null); do kill -9 -- -$p 2>/dev/null; done",
        pids.display()
    );
    let _ = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
}

/// An SSE client that reconnects (with `Last-Event-ID`) whenever its stream ends, like the
/// browser's EventSource; `base` can be nginx, so a reconnect may land on another instance.
pub struct ResilientSse {
    pub api: Api,
    pub last_id: Option<String>,
    pub reconnects: usize,
    reader: Option<SseReader>,
}

impl ResilientSse {
    pub fn new(api: Api) -> Self {
        ResilientSse {
            api,
            last_id: None,
            reconnects: 0,
            reader: None,
        }
    }

    async fn connect(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut req = self
                .api
                .req(reqwest::Method::GET, "/api/sse")
                .header("accept", "text/event-stream");
            if let Some(id) = &self.last_id {
                req = req.header("last-event-id", id);
            }
            if let Ok(r) = req.send().await {
                if r.status() == 200 {
                    self.reader = Some(SseReader::new(r));
                    return;
                }
            }
            assert!(Instant::now() < deadline, "SSE reconnect failed for 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The next event named `name`; `None` after `timeout` without one.
    pub async fn next_named(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Option<discodeit::proto::sse::SseMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.reader.is_none() {
                self.connect().await;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let reader = self.reader.as_mut()?;
            match tokio::time::timeout(left, reader.next(left)).await {
                Ok(Some(m)) => {
                    if m.id.is_some() {
                        self.last_id = m.id.clone();
                    }
                    if m.event.as_deref() == Some(name) {
                        return Some(m);
                    }
                }
                Ok(None) if Instant::now() < deadline => {
                    // The stream ended (its instance died): reconnect where nginx sends us.
                    self.reader = None;
                    self.reconnects += 1;
                }
                _ => return None,
            }
        }
    }
}
