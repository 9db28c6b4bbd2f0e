//! Worker processes: each holds a slice of the connections (one process may open at most
//! ~20,000 files here), times what arrives, and talks to the coordinator in JSON lines.
//!
//! Coordinator → worker (stdin): one [`WorkerConfig`] line, then commands: `phase` (report and
//! reset the counters) and `stop`. Worker → coordinator (stdout): [`Report`] lines.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use crate::net::{Conn, Ended};
use crate::stats;
use crate::Res;

/// What a worker opens.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Sse,
    Stomp,
}

/// A worker's share of the connections.
#[derive(Serialize, Deserialize, Clone)]
pub struct WorkerConfig {
    pub kind: Kind,
    pub base: String,
    /// One access token per user; connection `i` uses `tokens[i / per_user]`.
    pub tokens: Vec<String>,
    pub per_user: usize,
    /// Global index of this worker's first connection, and how many it opens.
    pub first: usize,
    pub count: usize,
    /// Number of source addresses (127.0.0.2 onwards); connection `i` uses `i % sources`.
    pub sources: usize,
    /// Connections being set up at once.
    pub connect_parallel: usize,
    /// The destination STOMP subscribers subscribe to, and how they connect.
    pub destination: Option<String>,
    pub transport: crate::stomp::Transport,
}

/// A line a worker sends back.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Report {
    /// Every connection is open or has failed.
    Ready {
        opened: u64,
        failed: u64,
        errors: Vec<String>,
    },
    /// Measured events received so far (all phases), and connections lost.
    Progress { received: u64, closed: u64 },
    /// The counters of the phase that just ended.
    Phase(PhaseReport),
}

/// One phase's results from one worker.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct PhaseReport {
    pub received: u64,
    /// Latency histogram as (µs, count) pairs.
    pub hist: Vec<(u64, u64)>,
    pub last_us: i64,
    /// Connections the server ended since the last collection, how many of them it told why,
    /// and the reasons with their counts (at most [`MAX_REASONS`] distinct ones; the rest
    /// under `other`).
    pub closed: u64,
    pub told: u64,
    pub reasons: Vec<(String, u64)>,
    pub errors: Vec<String>,
    /// The worker process's own CPU seconds so far.
    pub cpu_s: f64,
}

/// One connection's counters; locked only by its own task and by the phase collection.
struct Slot {
    hist: Histogram<u32>,
    received: u64,
    last_us: i64,
}

/// State shared by a worker's tasks.
#[derive(Default)]
struct Shared {
    received: AtomicU64,
    /// Connections ended, all phases (progress lines).
    closed: AtomicU64,
    /// Ended since the last collection, and why.
    phase_closed: AtomicU64,
    phase_told: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
    opened: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    slots: Mutex<Vec<Arc<Mutex<Slot>>>>,
}

/// How long one subscriber's set-up (handshake, CONNECT, SUBSCRIBE) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Distinct close reasons kept per collection; a server that puts varying text in its reasons
/// cannot grow the map without bound.
const MAX_REASONS: usize = 16;

impl Shared {
    fn ended(&self, how: &Ended) {
        self.phase_closed.fetch_add(1, Ordering::Relaxed);
        if how.told() {
            self.phase_told.fetch_add(1, Ordering::Relaxed);
        }
        let mut reasons = lock(&self.reasons);
        let key = if reasons.len() < MAX_REASONS || reasons.contains_key(how.reason()) {
            how.reason()
        } else {
            "other"
        };
        *reasons.entry(key.to_string()).or_default() += 1;
        drop(reasons);
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, e: String) {
        if let Ok(mut v) = self.errors.lock() {
            if v.len() < 5 {
                v.push(e);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn emit(r: &Report) {
    if let Ok(line) = serde_json::to_string(r) {
        println!("{line}");
    }
}

/// The worker process: reads its config from stdin, opens its connections, then serves
/// `phase` and `stop` commands.
pub async fn main() -> Res<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin.next_line().await?.ok_or("no config on stdin")?;
    let cfg: WorkerConfig = serde_json::from_str(&line)?;
    let (server, host) = crate::net::server_addr(&cfg.base)?;
    let sources = crate::net::sources(cfg.sources);
    let shared = Arc::new(Shared::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(cfg.connect_parallel.max(1)));
    let tokens = Arc::new(cfg.tokens.clone());
    for i in cfg.first..cfg.first + cfg.count {
        let conn = Conn {
            server,
            host: host.clone(),
            source: sources[i % sources.len()],
        };
        let token = tokens
            .get(i / cfg.per_user.max(1))
            .ok_or("fewer tokens than users")?
            .clone();
        let (shared, gate, kind, channel, transport) = (
            shared.clone(),
            gate.clone(),
            cfg.kind,
            cfg.destination.clone(),
            cfg.transport,
        );
        tokio::spawn(async move {
            let slot = Arc::new(Mutex::new(Slot {
                hist: stats::new_histogram(),
                received: 0,
                last_us: 0,
            }));
            let on_event = |sent_us: i64, now_us: i64| {
                let mut s = lock(&slot);
                stats::record(&mut s.hist, now_us - sent_us);
                s.received += 1;
                s.last_us = s.last_us.max(now_us);
                shared.received.fetch_add(1, Ordering::Relaxed);
            };
            let failed = |e: crate::Res<()>| {
                if let Err(e) = e {
                    shared.error(format!("open from {}: {e}", conn.source));
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
            };
            let ready = || {
                lock(&shared.slots).push(slot.clone());
                shared.opened.fetch_add(1, Ordering::Relaxed);
            };
            let ended = match kind {
                Kind::Sse => {
                    let opened = {
                        let _permit = gate.acquire().await;
                        crate::sse::open(&conn, &token).await
                    };
                    match opened {
                        Ok(c) => {
                            ready();
                            c.run(|ms, now| on_event(ms * 1000, now)).await
                        }
                        Err(e) => return failed(Err(e)),
                    }
                }
                Kind::Stomp => {
                    let opened = {
                        let _permit = gate.acquire().await;
                        let dest = channel.as_deref().unwrap_or("");
                        let open = crate::stomp::open(&conn, &token, dest, transport);
                        // A connection whose CONNECT the server never answers would hold the
                        // whole run until the server's own 60 s limit: give up sooner.
                        match tokio::time::timeout(OPEN_TIMEOUT, open).await {
                            Ok(r) => r,
                            Err(_) => Err(format!(
                                "no CONNECTED/RECEIPT within {} s",
                                OPEN_TIMEOUT.as_secs()
                            )
                            .into()),
                        }
                    };
                    match opened {
                        Ok(subscriber) => {
                            ready();
                            subscriber.run(on_event).await
                        }
                        Err(e) => return failed(Err(e)),
                    }
                }
            };
            shared.ended(&ended);
        });
    }
    let total = cfg.count as u64;
    while shared.opened.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    emit(&Report::Ready {
        opened: shared.opened.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        errors: std::mem::take(&mut *lock(&shared.errors)),
    });
    let progress = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            emit(&Report::Progress {
                received: progress.received.load(Ordering::Relaxed),
                closed: progress.closed.load(Ordering::Relaxed),
            });
        }
    });
    while let Some(cmd) = stdin.next_line().await? {
        match cmd.trim() {
            "phase" => emit(&Report::Phase(collect(&shared))),
            "stop" => break,
            other => eprintln!("worker: unknown command {other:?}"),
        }
    }
    std::process::exit(0);
}

/// Sums and resets every connection's counters.
fn collect(shared: &Shared) -> PhaseReport {
    let mut total = stats::new_total();
    let mut out = PhaseReport::default();
    for slot in lock(&shared.slots).iter() {
        let mut s = lock(slot);
        for v in s.hist.iter_recorded() {
            let _ = total.record_n(v.value_iterated_to(), v.count_at_value() as u64);
        }
        s.hist.reset();
        out.received += s.received;
        out.last_us = out.last_us.max(s.last_us);
        s.received = 0;
        s.last_us = 0;
    }
    out.hist = stats::to_pairs(&total);
    out.closed = shared.phase_closed.swap(0, Ordering::Relaxed);
    out.told = shared.phase_told.swap(0, Ordering::Relaxed);
    out.reasons = std::mem::take(&mut *lock(&shared.reasons))
        .into_iter()
        .collect();
    out.errors = std::mem::take(&mut *lock(&shared.errors));
    out.cpu_s = stats::cpu_seconds(std::process::id()).unwrap_or(0.0);
    out
}

/// The coordinator's handle on one worker process.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    /// Measured events received so far, from the latest progress line.
    pub received: Arc<AtomicU64>,
    reports: mpsc::UnboundedReceiver<Report>,
}

impl Worker {
    /// Starts `loadgen worker` and hands it its config.
    pub async fn spawn(cfg: &WorkerConfig) -> Res<Worker> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("worker stdin")?;
        let stdout = child.stdout.take().ok_or("worker stdout")?;
        let mut line = serde_json::to_string(cfg)?;
        line.push('\n');
        stdin.write_all(line.as_bytes()).await?;
        let received = Arc::new(AtomicU64::new(0));
        let (tx, reports) = mpsc::unbounded_channel();
        let r = received.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                match serde_json::from_str::<Report>(&l) {
                    Ok(Report::Progress { received, .. }) => r.store(received, Ordering::Relaxed),
                    Ok(other) => {
                        let _ = tx.send(other);
                    }
                    Err(_) => eprintln!("worker: {l}"),
                }
            }
        });
        Ok(Worker {
            child,
            stdin,
            received,
            reports,
        })
    }

    /// The next non-progress report.
    pub async fn next_report(&mut self) -> Res<Report> {
        self.reports
            .recv()
            .await
            .ok_or_else(|| "worker exited".into())
    }

    /// Sends a command line.
    pub async fn command(&mut self, cmd: &str) -> Res<()> {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Asks for this phase's counters.
    pub async fn phase(&mut self) -> Res<PhaseReport> {
        self.command("phase").await?;
        match self.next_report().await? {
            Report::Phase(p) => Ok(p),
            other => Err(format!("unexpected worker report {other:?}").into()),
        }
    }

    /// Stops the worker and waits for it.
    pub async fn stop(mut self) -> Res<()> {
        let _ = self.command("stop").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        Ok(())
    }
}
