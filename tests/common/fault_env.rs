//! The fault suite's own dependencies, each a process the suite can kill and start again:
//! a PostgreSQL cluster (initdb in the suite's directory; never the shared server), a Redis
//! with an fsync-always append-only file, and tansu storing its log in S3 — a local moto server
//! that outlives tansu restarts, so a broker restart keeps the log as a real broker's disk does
//! (tansu's PostgreSQL engine is not compiled into the build the project installs, and its
//! `memory://` engine loses everything on restart).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cluster::{spawn_watchdog, tansu_command, wait_port, Proc};
use crate::common::free_port;

/// A process the suite restarts: how to start it, and the running one.
pub struct Restartable {
    pub name: &'static str,
    pub port: u16,
    log_dir: PathBuf,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    running: Mutex<Option<Proc>>,
    starts: Mutex<usize>,
}

impl Restartable {
    fn new(
        name: &'static str,
        port: u16,
        log_dir: &Path,
        command: impl Fn() -> Command + Send + Sync + 'static,
    ) -> Restartable {
        Restartable {
            name,
            port,
            log_dir: log_dir.to_path_buf(),
            command: Box::new(command),
            running: Mutex::new(None),
            starts: Mutex::new(0),
        }
    }

    /// Starts the process and waits for its port; `track` registers it with the watchdog.
    pub async fn start(&self, track: impl Fn(u32)) {
        let n = {
            let mut s = self.starts.lock().unwrap();
            *s += 1;
            *s
        };
        let log = self.log_dir.join(format!("{}-{n}.log", self.name));
        let proc = Proc::spawn(&mut (self.command)(), &log);
        track(proc.pid);
        *self.running.lock().unwrap() = Some(proc);
        wait_port(self.port, 60).await;
    }

    /// Stops it with `sig` (`KILL`: a crash; `QUIT` for PostgreSQL: immediate shutdown) and
    /// waits until it has exited.
    pub async fn stop(&self, sig: &str) {
        let proc = self.running.lock().unwrap().take();
        if let Some(p) = proc {
            p.signal(sig);
            if p.exit_code(30).await.is_none() && p.alive() {
                p.kill();
            }
        }
        // The port is free again once every child is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "{} still listening", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.running.lock().unwrap().as_ref().map_or(0, |p| p.pid)
    }
}

/// Runs `args` as the `postgres` user when we are root (PostgreSQL refuses root); `setpriv`
/// execs in place, so the pid is the server's own.
fn as_postgres(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL version").1
}

/// The suite's PostgreSQL cluster (fsync on: a crash must not lose a commit).
pub fn postgres(dir: &Path) -> Restartable {
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).unwrap();
    let bin = pg_bin();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "chown the cluster directory to postgres");
    }
    let out = as_postgres(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-instructions",
        ])
        .current_dir("/")
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    Restartable::new("postgres", port, dir, move || {
        let mut c = as_postgres(&bin.join("postgres"));
        c.arg("-D").arg(&data).args([
            "-c",
            &format!("port={port}"),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            &format!("unix_socket_directories={}", data.display()),
            "-c",
            "max_connections=200",
        ]);
        c.current_dir("/");
        c
    })
}

/// The suite's Redis: append-only, fsync at every write, so a SIGKILL loses nothing acknowledged.
pub fn redis(dir: &Path) -> Restartable {
    let data = dir.join("redis");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    Restartable::new("redis", port, dir, move || {
        let mut c = Command::new("redis-server");
        c.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--dir",
        ])
        .arg(&data);
        c
    })
}

/// moto's S3 server (lives for the whole suite) and the bucket tansu stores in.
pub async fn s3(dir: &Path, track: impl Fn(u32)) -> (Proc, u16) {
    let ok = Command::new("python3")
        .args(["-c", "import moto.server, flask_cors"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "moto[server]==5.2.1"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "pip install moto[server]");
    }
    let port = free_port();
    let proc = Proc::spawn(
        Command::new("python3").args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]),
        &dir.join("moto.log"),
    );
    track(proc.pid);
    wait_port(port, 60).await;
    let r = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/tansu"))
        .send()
        .await
        .expect("create the bucket");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    (proc, port)
}

/// tansu with its log in the S3 bucket at `s3_port`.
pub fn tansu(dir: &Path, tansu_bin: PathBuf, s3_port: u16) -> Restartable {
    let port = free_port();
    Restartable::new("tansu", port, dir, move || {
        let mut c = tansu_command(&tansu_bin, &format!("127.0.0.1:{port}"), "s3://tansu/");
        c.env("AWS_ACCESS_KEY_ID", "fault-suite")
            .env("AWS_SECRET_ACCESS_KEY", "fault-suite")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{s3_port}"))
            .env("AWS_ALLOW_HTTP", "true");
        c
    })
}

/// Creates database `name` on the suite's PostgreSQL; returns its URL.
pub async fn create_database(pg_port: u16, name: &str) -> String {
    let admin = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the suite's PostgreSQL");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    format!("postgres://postgres@127.0.0.1:{pg_port}/{name}")
}

/// The suite's own watchdog: every process group listed in its file is killed once the test
/// process is gone, however it ends.
pub struct Watch(PathBuf);

impl Watch {
    pub fn new(dir: &Path) -> Watch {
        let file = dir.join("fault-pids");
        std::fs::write(&file, "").unwrap();
        spawn_watchdog(&file);
        Watch(file)
    }

    pub fn track(&self, pid: u32) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.0)
            .expect("pids file");
        let _ = writeln!(f, "{pid}");
    }
}
