//! The coordinator: sets up users, starts the workers that hold the connections, publishes at
//! each rate, waits for delivery to drain, and prints one result per rate.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::rest::{Login, Rest};
use crate::stats::{self, ms};
use crate::worker::{Kind, PhaseReport, Report, Worker, WorkerConfig};
use crate::Res;

/// At most this many connections per worker process (each process may open 20,000 files).
const MAX_PER_WORKER: usize = 9000;

/// One rate's numbers; printed as a `RESULT {json}` line that `loadgen table` turns into a table.
/// Fields missing from older RESULT lines read as their defaults.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Outcome {
    pub kind: String,
    pub conns: u64,
    pub failed: u64,
    pub users: usize,
    pub publishers: usize,
    pub workers: usize,
    pub rate: f64,
    pub achieved_rate: f64,
    pub published: u64,
    pub publish_errors: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: i64,
    /// Connections the server ended during this rate (and its drain), how many of them it
    /// told why, and the reasons as given with their counts.
    pub closed: u64,
    pub told: u64,
    pub close_reasons: Vec<(String, u64)>,
    pub delivered_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    pub rss_end_kib: u64,
    pub rss_per_conn_kib: f64,
    pub server_cpu_s: f64,
    pub cpu_s_per_million: f64,
    pub loadgen_cpu_s: f64,
    pub loadavg: String,
}

/// What publishes during a phase.
enum Source {
    /// An admin creating public channels: each is one `channels.refresh` to every stream.
    Channels {
        rest: Rest,
        token: String,
        run: String,
    },
    /// STOMP publishers, each its own user, sending to the benchmark channel.
    Stomp(Vec<crate::stomp::Publisher>, Arc<Mutex<Vec<String>>>),
}

/// Published count and errors of one phase.
struct Published {
    ok: u64,
    errors: u64,
    secs: f64,
}

impl Source {
    async fn publish(&mut self, rate: f64, secs: f64) -> Published {
        let n = (rate * secs).round().max(1.0) as u64;
        let start = tokio::time::Instant::now() + Duration::from_millis(20);
        let at = move |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
        let began = Instant::now();
        let (ok, errors) = match self {
            Source::Channels { rest, token, run } => {
                let gate = Arc::new(tokio::sync::Semaphore::new(128));
                let mut tasks = Vec::with_capacity(n as usize);
                for i in 0..n {
                    tokio::time::sleep_until(at(i)).await;
                    let permit = gate.clone().acquire_owned().await;
                    let (rest, token, name) = (rest.clone(), token.clone(), format!("{run}-{i}"));
                    tasks.push(tokio::spawn(async move {
                        let _permit = permit;
                        rest.create_public_channel(&token, &name).await
                    }));
                }
                let mut ok = 0;
                let mut errors = 0;
                for t in tasks {
                    match t.await {
                        Ok(Ok(_)) => ok += 1,
                        Ok(Err(e)) => {
                            if errors < 3 {
                                eprintln!("publish: {e}");
                            }
                            errors += 1;
                        }
                        Err(_) => errors += 1,
                    }
                }
                (ok, errors)
            }
            Source::Stomp(pubs, _) => {
                let m = pubs.len() as u64;
                let mut tasks = Vec::new();
                for (p, mut publisher) in std::mem::take(pubs).into_iter().enumerate() {
                    tasks.push(tokio::spawn(async move {
                        let (mut ok, mut errors) = (0u64, 0u64);
                        let mut i = p as u64;
                        while i < n {
                            tokio::time::sleep_until(at(i)).await;
                            match publisher.send(i).await {
                                Ok(()) => ok += 1,
                                Err(e) => {
                                    if errors == 0 {
                                        eprintln!("publisher {p}: {e}");
                                    }
                                    errors += 1;
                                }
                            }
                            i += m;
                        }
                        (publisher, ok, errors)
                    }));
                }
                let (mut ok, mut errors) = (0, 0);
                for t in tasks {
                    if let Ok((publisher, o, e)) = t.await {
                        pubs.push(publisher);
                        ok += o;
                        errors += e;
                    }
                }
                (ok, errors)
            }
        };
        Published {
            ok,
            errors,
            secs: began.elapsed().as_secs_f64(),
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `loadgen sse ...` and `loadgen stomp ...`.
pub async fn run(kind: Kind, args: &Args) -> Res<()> {
    let base = args.text("url", "http://127.0.0.1:8080");
    let pid: u32 = args.num("server-pid", 0)?;
    if pid == 0 {
        return Err("--server-pid is required (for RSS and CPU)".into());
    }
    let conns: usize = args.num("conns", 1000)?;
    let per_user: usize = args.num("per-user", 100)?.max(1);
    let rates: Vec<f64> = args.list("rate", "10")?;
    let secs: f64 = args.num("duration", 10.0)?;
    let workers_n: usize = args.num("workers", conns.div_ceil(MAX_PER_WORKER))?.max(1);
    let sources: usize = args.num("sources", 8)?;
    let connect_parallel: usize = args.num("connect-parallel", 64)?;
    let drain_idle = Duration::from_secs_f64(args.num("drain-idle", 3.0)?);
    let settle = Duration::from_secs_f64(args.num("settle", 3.0)?);
    // Optional: stop the rate ladder after the first rate that misses this p99 (or loses a
    // message), since higher rates only grow the backlog.
    let max_p99_ms: f64 = args.num("max-p99-ms", f64::INFINITY)?;
    let admin_user = args.text("admin-user", "admin");
    let admin_pass = args.text("admin-password", "bench-admin-pw-9!");
    let prefix = args.text(
        "user-prefix",
        if kind == Kind::Sse { "bsse" } else { "bstomp" },
    );
    let transport = crate::stomp::Transport::parse(&args.text("transport", "raw"))?;
    let label = match (kind, args.text("mode", "messages").as_str(), transport) {
        (Kind::Sse, _, _) => "sse",
        (Kind::Stomp, "broker", crate::stomp::Transport::Raw) => "stomp-broker",
        (Kind::Stomp, "broker", crate::stomp::Transport::SockJs) => "sockjs-broker",
        (_, _, crate::stomp::Transport::Raw) => "stomp",
        (_, _, crate::stomp::Transport::SockJs) => "sockjs",
    };

    let rest = Rest::connect(&base).await?;
    let admin = rest.login(&admin_user, &admin_pass).await?;
    let run_id = format!("b{}", stats::now_us() / 1000 % 100_000_000);
    let route = match (kind, args.text("mode", "messages").as_str()) {
        (Kind::Sse, _) => None,
        (Kind::Stomp, "messages") => Some(crate::stomp::Route::Channel(
            rest.create_public_channel(&admin.token, &run_id).await?,
        )),
        (Kind::Stomp, "broker") => Some(crate::stomp::Route::Broker(format!("/sub/{run_id}"))),
        (_, m) => return Err(format!("--mode must be messages or broker, not {m:?}").into()),
    };
    let n_users = conns.div_ceil(per_user);
    let t = Instant::now();
    let users: Vec<Login> = crate::rest::users(&rest, &prefix, n_users, 4).await?;
    let publishers_n: usize = args.num("publishers", 40)?;
    let pub_users = if kind == Kind::Stomp {
        crate::rest::users(&rest, &format!("{prefix}pub"), publishers_n, 4).await?
    } else {
        Vec::new()
    };
    eprintln!(
        "[{label}] {} users logged in in {:.1}s",
        users.len() + pub_users.len(),
        t.elapsed().as_secs_f64()
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = stats::rss_kib(pid).unwrap_or(0);
    let tokens: Vec<String> = users.iter().map(|u| u.token.clone()).collect();
    let mut workers = Vec::new();
    let t = Instant::now();
    for w in 0..workers_n {
        let first = conns * w / workers_n;
        let last = conns * (w + 1) / workers_n;
        let cfg = WorkerConfig {
            kind,
            base: base.clone(),
            tokens: tokens.clone(),
            per_user,
            first,
            count: last - first,
            sources,
            connect_parallel: connect_parallel.div_ceil(workers_n),
            destination: route.as_ref().map(|r| r.subscription()),
            transport,
        };
        workers.push(Worker::spawn(&cfg).await?);
    }
    let (mut opened, mut failed) = (0u64, 0u64);
    for w in &mut workers {
        match w.next_report().await? {
            Report::Ready {
                opened: o,
                failed: f,
                errors,
            } => {
                opened += o;
                failed += f;
                for e in errors {
                    eprintln!("[{label}] {e}");
                }
            }
            other => return Err(format!("unexpected worker report {other:?}").into()),
        }
    }
    eprintln!(
        "[{label}] {opened} connections open ({failed} failed) in {:.1}s from {sources} source addresses, {workers_n} worker processes",
        t.elapsed().as_secs_f64()
    );
    if opened == 0 {
        return Err("no connection opened".into());
    }
    tokio::time::sleep(settle).await;
    let rss_idle = stats::rss_kib(pid).unwrap_or(0);
    eprintln!(
        "[{label}] server RSS {rss_before} KiB before, {rss_idle} KiB with {opened} idle connections: {:.2} KiB each",
        (rss_idle as f64 - rss_before as f64) / opened as f64
    );

    let pub_errors = Arc::new(Mutex::new(Vec::new()));
    let mut source = match kind {
        Kind::Sse => Source::Channels {
            rest: rest.clone(),
            token: admin.token.clone(),
            run: run_id.clone(),
        },
        Kind::Stomp => {
            let (server, host) = crate::net::server_addr(&base)?;
            let srcs = crate::net::sources(sources);
            let mut pubs = Vec::new();
            for (i, u) in pub_users.iter().enumerate() {
                let conn = crate::net::Conn {
                    server,
                    host: host.clone(),
                    source: srcs[i % srcs.len()],
                };
                pubs.push(
                    crate::stomp::Publisher::open(
                        &conn,
                        &u.token,
                        &u.user_id,
                        route.as_ref().ok_or("no route")?,
                        pub_errors.clone(),
                    )
                    .await?,
                );
            }
            Source::Stomp(pubs, pub_errors.clone())
        }
    };

    // An unmeasured warm-up at the first rate: the server's first messages (fresh connections,
    // first WAL segments of a fresh database) are not what a rate is about.
    let warmup: f64 = args.num("warmup", 0.0)?;
    let mut phases: Vec<(f64, f64, bool)> = Vec::new();
    if warmup > 0.0 {
        phases.push((rates.first().copied().unwrap_or(10.0), warmup, false));
    }
    phases.extend(rates.iter().map(|&r| (r, secs, true)));
    // Every close over the whole run, between phases included.
    let mut run_drops = Drops::default();
    for (rate, secs, measured) in phases {
        // Reset every worker's counters, so this phase counts only its own deliveries.
        let mut worker_cpu0 = 0.0;
        for w in &mut workers {
            let p = w.phase().await?;
            worker_cpu0 += p.cpu_s;
            run_drops.add(&p);
        }
        let base_received: u64 = workers.iter().map(|w| w.received.load(Relaxed)).sum();
        let load = loadavg();
        let cpu0 = stats::cpu_seconds(pid).unwrap_or(0.0);
        let t0_us = stats::now_us();
        let published = source.publish(rate, secs).await;
        let expected = published.ok * opened;
        // Drain: until everything arrived, or nothing arrived for `drain_idle`.
        let mut last_total = u64::MAX;
        let mut last_change = Instant::now();
        let mut cpu1 = stats::cpu_seconds(pid).unwrap_or(cpu0);
        let give_up = Instant::now() + Duration::from_secs(120);
        loop {
            let total: u64 = workers
                .iter()
                .map(|w| w.received.load(Relaxed))
                .sum::<u64>()
                - base_received;
            if total != last_total {
                last_total = total;
                last_change = Instant::now();
                cpu1 = stats::cpu_seconds(pid).unwrap_or(cpu1);
            }
            if total >= expected || last_change.elapsed() >= drain_idle || Instant::now() >= give_up
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Workers report progress every 100 ms; let the last reads settle before collecting.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut total = stats::new_total();
        let mut received = 0;
        let mut last_us = t0_us;
        let mut drops = Drops::default();
        let mut worker_cpu1 = 0.0;
        for w in &mut workers {
            let p = w.phase().await?;
            stats::add_pairs(&mut total, &p.hist);
            received += p.received;
            last_us = last_us.max(p.last_us);
            drops.add(&p);
            run_drops.add(&p);
            worker_cpu1 += p.cpu_s;
            for e in p.errors {
                eprintln!("[{label}] {e}");
            }
        }
        if let Source::Stomp(_, errors) = &source {
            for e in std::mem::take(&mut *errors.lock().unwrap_or_else(|p| p.into_inner())) {
                eprintln!("[{label}] {e}");
            }
        }
        if !measured {
            eprintln!("[{label}] warm-up: {received} deliveries at {rate}/s for {secs}s");
            // Counted by scripts that compare what was published with what was stored.
            println!("WARMUP {{\"published\":{}}}", published.ok);
            continue;
        }
        let server_cpu = cpu1 - cpu0;
        let window = ((last_us - t0_us) as f64 / 1e6).max(1e-3);
        let out = Outcome {
            kind: label.into(),
            conns: opened,
            failed,
            users: users.len(),
            publishers: pub_users.len(),
            workers: workers_n,
            rate,
            achieved_rate: published.ok as f64 / published.secs.max(1e-3),
            published: published.ok,
            publish_errors: published.errors,
            expected,
            received,
            lost: expected as i64 - received as i64,
            closed: drops.closed,
            told: drops.told,
            close_reasons: drops.reasons.clone().into_iter().collect(),
            delivered_per_s: (received as f64 / window).round(),
            p50_ms: ms(total.value_at_quantile(0.5)),
            p99_ms: ms(total.value_at_quantile(0.99)),
            p999_ms: ms(total.value_at_quantile(0.999)),
            max_ms: ms(total.max()),
            rss_before_kib: rss_before,
            rss_idle_kib: rss_idle,
            rss_end_kib: stats::rss_kib(pid).unwrap_or(0),
            rss_per_conn_kib: ((rss_idle as f64 - rss_before as f64) / opened as f64 * 100.0)
                .round()
                / 100.0,
            server_cpu_s: (server_cpu * 100.0).round() / 100.0,
            cpu_s_per_million: if received > 0 {
                (server_cpu / (received as f64 / 1e6) * 1000.0).round() / 1000.0
            } else {
                0.0
            },
            loadgen_cpu_s: ((worker_cpu1 - worker_cpu0) * 100.0).round() / 100.0,
            loadavg: load,
        };
        eprintln!(
            "[{label}] conns={} rate={}/s published={} ({:.1}/s, {} errors) received={}/{} lost={} \
             delivered={:.0}/s p50={}ms p99={}ms p999={}ms max={}ms {} rss/conn={}KiB \
             server_cpu={}s ({} s per million) loadgen_cpu={}s load=[{}]",
            out.conns,
            out.rate,
            out.published,
            out.achieved_rate,
            out.publish_errors,
            out.received,
            out.expected,
            out.lost,
            out.delivered_per_s,
            out.p50_ms,
            out.p99_ms,
            out.p999_ms,
            out.max_ms,
            drops.summary(),
            out.rss_per_conn_kib,
            out.server_cpu_s,
            out.cpu_s_per_million,
            out.loadgen_cpu_s,
            out.loadavg
        );
        println!("RESULT {}", serde_json::to_string(&out)?);
        if !meets(&out, max_p99_ms) {
            eprintln!(
                "[{label}] p99 {} ms > {max_p99_ms} ms, {} lost or {} publish errors at {}/s: higher rates skipped",
                out.p99_ms, out.lost, out.publish_errors, out.rate
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for w in &mut workers {
        run_drops.add(&w.phase().await?);
    }
    eprintln!("[{label}] whole run: {}", run_drops.summary());
    for w in workers {
        w.stop().await?;
    }
    Ok(())
}

/// Connections the server ended, summed over workers: how many, how many were told why, and
/// the reasons with their counts.
#[derive(Default)]
struct Drops {
    closed: u64,
    told: u64,
    reasons: std::collections::BTreeMap<String, u64>,
}

impl Drops {
    fn add(&mut self, p: &PhaseReport) {
        self.closed += p.closed;
        self.told += p.told;
        for (r, n) in &p.reasons {
            *self.reasons.entry(r.clone()).or_default() += n;
        }
    }

    /// `dropped N (told why: M) [reason ×count; ...]`.
    fn summary(&self) -> String {
        let mut s = format!("dropped {} (told why: {})", self.closed, self.told);
        if !self.reasons.is_empty() {
            let list: Vec<String> = self
                .reasons
                .iter()
                .map(|(r, n)| format!("{r} ×{n}"))
                .collect();
            s += &format!(" [{}]", list.join("; "));
        }
        s
    }
}

use std::sync::atomic::Ordering::Relaxed;

/// True when a run delivered everything it published, without publish errors, at p99 ≤ `max`.
fn meets(o: &Outcome, max_p99_ms: f64) -> bool {
    o.lost == 0 && o.publish_errors == 0 && o.p99_ms <= max_p99_ms
}

/// `loadgen best MAX_P99_MS FILE...`: per (kind, publishers, subscribers), the highest rate
/// that met the p99 limit with nothing lost, as a Markdown table.
pub fn best(args: &[String]) -> Res<()> {
    let (limit, files) = args
        .split_first()
        .ok_or("usage: loadgen best MAX_P99_MS FILE...")?;
    let limit: f64 = limit.parse()?;
    let mut rows: Vec<(String, usize, u64, Option<Outcome>, f64)> = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(f)?.lines() {
            let Some(json) = line.strip_prefix("RESULT ") else {
                continue;
            };
            let o: Outcome = serde_json::from_str(json)?;
            let key = (o.kind.clone(), o.publishers, o.conns);
            let at = match rows.iter().position(|r| (r.0.clone(), r.1, r.2) == key) {
                Some(i) => i,
                None => {
                    rows.push((key.0, key.1, key.2, None, 0.0));
                    rows.len() - 1
                }
            };
            let row = &mut rows[at];
            if !meets(&o, limit) {
                row.4 = row.4.max(o.rate);
                continue;
            }
            if row.3.as_ref().is_none_or(|b| o.rate > b.rate) {
                row.3 = Some(o);
            }
        }
    }
    println!(
        "| kind | publishing sessions | subscribers | best rate/s (p99 ≤ {limit} ms, nothing lost) | achieved/s | p50 ms | p99 ms | next rate tried (missed) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, publishers, conns, best, missed) in rows {
        let missed = if missed > 0.0 {
            format!("{missed}")
        } else {
            "-".into()
        };
        match best {
            Some(o) => println!(
                "| {kind} | {publishers} | {conns} | {} | {:.0} | {} | {} | {missed} |",
                o.rate, o.achieved_rate, o.p50_ms, o.p99_ms
            ),
            None => println!("| {kind} | {publishers} | {conns} | none | - | - | - | {missed} |"),
        }
    }
    Ok(())
}

/// `loadgen table FILE...`: the RESULT lines of earlier runs as a Markdown table.
pub fn table(files: &[String]) -> Res<()> {
    println!(
        "| kind | publishers | conns | rate/s | published | delivered/s | p50 ms | p99 ms | p99.9 ms | max ms | lost | dropped (told why) | RSS/conn KiB | server CPU s | CPU-s/M | loadgen CPU s | load avg |"
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for f in files {
        let text = std::fs::read_to_string(f)?;
        for line in text.lines() {
            let Some(json) = line.strip_prefix("RESULT ") else {
                continue;
            };
            let o: Outcome = serde_json::from_str(json)?;
            println!(
                "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} ({}) | {:.2} | {:.2} | {:.3} | {:.2} | {} |",
                o.kind,
                o.publishers,
                o.conns,
                o.rate,
                o.published,
                o.delivered_per_s,
                o.p50_ms,
                o.p99_ms,
                o.p999_ms,
                o.max_ms,
                o.lost,
                o.closed,
                o.told,
                o.rss_per_conn_kib,
                o.server_cpu_s,
                o.cpu_s_per_million,
                o.loadgen_cpu_s,
                o.loadavg
            );
        }
    }
    Ok(())
}
