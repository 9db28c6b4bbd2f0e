//! The fault suite: real processes under load, one fault at a time, every committed message
//! checked at every subscriber.
//!
//! Run it with `cargo test --test faults -- --ignored --nocapture` (about two minutes;
//! not part of `scripts/test.sh`, see docs/scale-out.md). It starts its OWN PostgreSQL cluster
//! (initdb in a temp directory), its own Redis (append-only, fsync always), moto's S3 server and
//! tansu storing its log there, three instances and nginx. Then, in order:
//!
//! 1. PostgreSQL crash-restart (immediate shutdown, start);
//! 2. Redis SIGKILL, start;
//! 3. Kafka broker (tansu) stopped (SIGTERM; `FAULTS_KAFKA_SIGNAL=KILL` for a crash), started
//!    again on the same log;
//! 4. the outbox relay's leader paused (SIGSTOP) for a while, then resumed;
//! 5. the instance holding the relay lease SIGKILLed (not restarted).
//!
//! During each, a REST producer (201 = acknowledged) and a STOMP producer (`SEND /pub/messages`
//! with a receipt: RECEIPT = acknowledged) post to a channel through nginx, and four STOMP
//! subscribers (raw WebSocket and SockJS, through nginx) read it; when a connection drops a
//! subscriber reconnects, subscribes again and refetches the channel page, as the web client
//! does. Nothing acknowledged may be missing at any subscriber. Each phase prints what was
//! measured: the longest gap between acknowledged writes, the longest acknowledgement-to-
//! everyone delivery, duplicates (the same message delivered live twice) and reconnects.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/fault_env.rs"]
mod fault_env;
#[path = "common/stomp.rs"]
mod stomp;

use cluster::{Cluster, ClusterSpec, Proc};
use common::*;
use discodeit::proto::stomp::{Command, Frame};
use fault_env::{Restartable, Watch};
use reqwest::multipart::Form;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stomp::{End, Kind, StompClient};

const SUBSCRIBERS: usize = 4;

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    /// Content → when it was first seen (live or refetched).
    first: HashMap<String, Instant>,
    /// Contents delivered live.
    live: HashSet<String>,
    duplicates: usize,
    reconnects: usize,
    subscribed: bool,
}

/// Acknowledged writes: content and when the acknowledgement arrived.
#[derive(Default)]
struct Acked {
    list: Vec<(String, Instant)>,
    attempts: usize,
    failures: usize,
}

struct Suite {
    cluster: &'static Cluster,
    pg: Restartable,
    redis: Restartable,
    tansu: Restartable,
    _s3: Proc,
    watch: Watch,
    admin: Api,
}

/// One phase's measurements.
struct Report {
    name: &'static str,
    /// From the fault's injection until its repair.
    fault: Duration,
    acked: usize,
    failed_attempts: usize,
    write_gap: Duration,
    max_delivery: Duration,
    catch_up: Duration,
    duplicates: usize,
    reconnects: usize,
}

/// Runs `f` in its own task so a panic inside the test client (a refused connection, a reset
/// socket) ends only that attempt.
async fn attempt<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    tokio::spawn(f).await.ok()
}

async fn subscriber(
    nginx: String,
    kind: Kind,
    token: String,
    channel: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let dest = format!("/sub/channels.{channel}.messages");
    let mut rest = Api::new(&nginx);
    rest.token = Some(token.clone());
    let mut first = true;
    while !stop.load(Ordering::Acquire) {
        let (n, t, d) = (nginx.clone(), token.clone(), dest.clone());
        let client = attempt(async move {
            let (mut c, f) = StompClient::connect(&n, kind, &t).await;
            if f.command != Command::Connected {
                return None;
            }
            let r = c.subscribe_confirmed("s", &d).await;
            (r.command == Command::Receipt).then_some(c)
        })
        .await
        .flatten();
        let Some(client) = client else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if !first {
            seen.lock().unwrap().reconnects += 1;
        }
        first = false;
        // What was committed while this subscriber was away comes from the page.
        let path = format!("/api/messages?channelId={channel}&size=1000");
        let page = loop {
            if stop.load(Ordering::Acquire) {
                return;
            }
            if let Ok(r) = rest
                .req(reqwest::Method::GET, &path)
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                if r.status() == 200 {
                    if let Ok(v) = r.json::<Value>().await {
                        break v;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        {
            let mut s = seen.lock().unwrap();
            s.subscribed = true;
            let now = Instant::now();
            for m in page["content"].as_array().into_iter().flatten() {
                if let Some(c) = m["content"].as_str() {
                    s.first.entry(c.to_string()).or_insert(now);
                }
            }
        }
        let ended = attempt(read_live(client, seen.clone(), stop.clone()))
            .await
            .unwrap_or(true);
        if !ended {
            return;
        }
    }
}

/// Reads MESSAGE frames until the connection ends (true) or the phase stops (false).
async fn read_live(mut client: StompClient, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) -> bool {
    loop {
        if stop.load(Ordering::Acquire) {
            return false;
        }
        match client.next_frame(Duration::from_millis(300)).await {
            Some(f) if f.command == Command::Message => {
                let v: Value = serde_json::from_slice(&f.body).unwrap_or(Value::Null);
                let Some(content) = v["content"].as_str() else {
                    continue;
                };
                let mut s = seen.lock().unwrap();
                if !s.live.insert(content.to_string()) {
                    s.duplicates += 1;
                }
                s.first
                    .entry(content.to_string())
                    .or_insert_with(Instant::now);
            }
            Some(_) => {}
            None => {
                if matches!(client.end(Duration::from_millis(1)).await, End::Closed(_)) {
                    return true;
                }
            }
        }
    }
}

/// Posts messages through nginx until stopped; 201s are acknowledged.
async fn rest_producer(
    api: Api,
    channel: String,
    tag: String,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let content = format!("{tag}-rest-{n}");
        let form = Form::new().part(
            "messageCreateRequest",
            json_part(
                &json!({"content": content, "channelId": channel, "authorId": api.user_id()}),
            ),
        );
        let r = api
            .req(reqwest::Method::POST, "/api/messages")
            .timeout(Duration::from_secs(10))
            .multipart(form)
            .send()
            .await;
        let ok = matches!(&r, Ok(r) if r.status() == 201);
        {
            let mut a = acked.lock().unwrap();
            a.attempts += 1;
            if ok {
                a.list.push((content, Instant::now()));
            } else {
                a.failures += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(if ok { 100 } else { 250 })).await;
    }
}

/// SENDs `/pub/messages` with receipts through nginx until stopped; RECEIPTs are acknowledged.
async fn stomp_producer(
    nginx: String,
    token: String,
    channel: String,
    tag: String,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<AtomicBool>,
) {
    let n = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Acquire) {
        let (ng, t, ch, tg, a, s, n) = (
            nginx.clone(),
            token.clone(),
            channel.clone(),
            tag.clone(),
            acked.clone(),
            stop.clone(),
            n.clone(),
        );
        let session = attempt(async move {
            let (mut c, f) = StompClient::connect(&ng, Kind::SockJsWebSocket, &t).await;
            if f.command != Command::Connected {
                return;
            }
            while !s.load(Ordering::Acquire) {
                let i = n.fetch_add(1, Ordering::Relaxed) + 1;
                let content = format!("{tg}-stomp-{i}");
                let body = json!({"content": content, "channelId": ch});
                c.send(
                    &Frame::new(Command::Send)
                        .with_header("destination", "/pub/messages")
                        .with_header("content-type", "application/json")
                        .with_header("receipt", format!("r{i}"))
                        .body(serde_json::to_vec(&body).unwrap()),
                )
                .await;
                let reply = c.next_non_message(Duration::from_secs(10)).await;
                let ok = matches!(&reply, Some(f) if f.command == Command::Receipt);
                {
                    let mut a = a.lock().unwrap();
                    a.attempts += 1;
                    if ok {
                        a.list.push((content, Instant::now()));
                    } else {
                        a.failures += 1;
                    }
                }
                if !ok {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        if session.await.is_none() {
            acked.lock().unwrap().failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to `secs`) until `f` holds.
async fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Suite {
    async fn start() -> Suite {
        let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let dir = std::env::temp_dir().join(format!("discodeit-faults-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let watch = Watch::new(&dir);
        let tansu_bin = cluster::ensure_tools();
        let pg = fault_env::postgres(&dir.join("own"));
        pg.start(|p| watch.track(p)).await;
        let redis = fault_env::redis(&dir);
        redis.start(|p| watch.track(p)).await;
        let (s3, s3_port) = fault_env::s3(&dir, |p| watch.track(p)).await;
        let tansu = fault_env::tansu(&dir, tansu_bin, s3_port);
        tansu.start(|p| watch.track(p)).await;
        let db_name = format!("faults_{id}");
        let db_url = eventually(30, || async {
            let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
            tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        let _: () = db_url;
        let db_url = fault_env::create_database(pg.port, &db_name).await;
        let cluster = Cluster::start_on(ClusterSpec {
            count: 3,
            shared_state: true,
            dir: Some((id, dir.join("cluster"))),
            database: Some((db_url, db_name)),
            redis: Some(format!("redis://127.0.0.1:{}/", redis.port)),
            kafka: Some(format!("127.0.0.1:{}", tansu.port)),
        })
        .await;
        let cluster: &'static Cluster = Box::leak(Box::new(cluster));
        let mut admin = Api::new(&cluster.nginx.base);
        admin.admin().await;
        Suite {
            cluster,
            pg,
            redis,
            tansu,
            _s3: s3,
            watch,
            admin,
        }
    }

    /// The instance holding the relay lease.
    async fn relay_leader(&self) -> usize {
        let url = &self.cluster.db_url;
        let holder: String = eventually(30, || async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .ok()?;
            tokio::spawn(conn);
            client
                .query_opt(
                    "SELECT holder FROM relay_lease WHERE expires_at > now() AND holder <> ''",
                    &[],
                )
                .await
                .ok()?
                .map(|r| r.get(0))
        })
        .await;
        let name = holder
            .split('/')
            .next()
            .unwrap_or_default()
            .rsplit('-')
            .next()
            .unwrap_or_default();
        self.cluster
            .instances
            .iter()
            .position(|i| i.name == name)
            .expect("leader instance")
    }

    /// One phase: load, `inject`, some more load, `restore`, load until writes succeed again;
    /// then every acknowledged message must reach every subscriber.
    async fn phase<I, R>(&self, name: &'static str, inject: I, restore: R) -> Report
    where
        I: std::future::Future<Output = ()>,
        R: std::future::Future<Output = ()>,
    {
        eprintln!("--- fault phase: {name}");
        let nginx = self.cluster.nginx.base.clone();
        let channel = self
            .admin
            .create_public_channel(&format!("fault-{name}"))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        // Producers stop first; subscribers keep reading until everything arrived.
        let stop = Arc::new(AtomicBool::new(false));
        let stop_readers = Arc::new(AtomicBool::new(false));
        let mut seens = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..SUBSCRIBERS {
            let mut api = Api::new(&nginx);
            api.register(&format!("f{}{i}", &name[..3])).await;
            let seen = Arc::new(Mutex::new(Seen::default()));
            let kind = if i % 2 == 0 {
                Kind::Raw
            } else {
                Kind::SockJsWebSocket
            };
            tasks.push(tokio::spawn(subscriber(
                nginx.clone(),
                kind,
                api.token.clone().unwrap(),
                channel.clone(),
                seen.clone(),
                stop_readers.clone(),
            )));
            seens.push(seen);
        }
        until(60, "subscribers subscribed", || {
            seens.iter().all(|s| s.lock().unwrap().subscribed)
        })
        .await;
        let acked = Arc::new(Mutex::new(Acked::default()));
        let mut writer = Api::new(&nginx);
        writer.register(&format!("fw{}", &name[..3])).await;
        let tag = name.replace(' ', "_");
        tasks.push(tokio::spawn(rest_producer(
            writer.clone(),
            channel.clone(),
            tag.clone(),
            acked.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(stomp_producer(
            nginx.clone(),
            writer.token.clone().unwrap(),
            channel.clone(),
            tag,
            acked.clone(),
            stop.clone(),
        )));
        let count = || acked.lock().unwrap().list.len();
        until(60, "warm-up writes", || count() >= 10).await;
        let attempts = || acked.lock().unwrap().attempts;
        let injected = Instant::now();
        inject.await;
        // Load continues through the fault for 20 write attempts.
        let before = attempts();
        until(120, "attempts during the fault", || {
            attempts() >= before + 20
        })
        .await;
        restore.await;
        let restored = Instant::now();
        let n = count();
        until(120, "writes acknowledged again", || count() >= n + 15).await;
        stop.store(true, Ordering::Release);
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        // Every acknowledged message reaches every subscriber (live or by refetch).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let missing: Vec<Vec<String>> = seens
                .iter()
                .map(|s| {
                    let s = s.lock().unwrap();
                    acked
                        .list
                        .iter()
                        .filter(|(c, _)| !s.first.contains_key(c))
                        .map(|(c, _)| c.clone())
                        .collect()
                })
                .collect();
            if missing.iter().all(Vec::is_empty) {
                break;
            }
            if Instant::now() > deadline {
                stop_readers.store(true, Ordering::Release);
                panic!(
                    "{name}: acknowledged messages missing after 60 s, per subscriber: {missing:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_readers.store(true, Ordering::Release);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        let mut write_gap = Duration::ZERO;
        for w in acked.list.windows(2) {
            write_gap = write_gap.max(w[1].1.saturating_duration_since(w[0].1));
        }
        let mut max_delivery = Duration::ZERO;
        let mut catch_up = Duration::ZERO;
        let (mut duplicates, mut reconnects) = (0, 0);
        for s in &seens {
            let s = s.lock().unwrap();
            duplicates += s.duplicates;
            reconnects += s.reconnects;
            for (c, at) in &acked.list {
                let seen = s.first[c];
                max_delivery = max_delivery.max(seen.saturating_duration_since(*at));
                if *at < restored {
                    catch_up = catch_up.max(seen.saturating_duration_since(restored));
                }
            }
        }
        let r = Report {
            name,
            fault: restored.duration_since(injected),
            acked: acked.list.len(),
            failed_attempts: acked.failures,
            write_gap,
            max_delivery,
            catch_up,
            duplicates,
            reconnects,
        };
        eprintln!(
            "{name}: {} acknowledged ({} failed attempts), longest write gap {:.1}s, longest \
             delivery {:.1}s, caught up {:.1}s after restore ({:.1}s fault), {} duplicates, \
             {} reconnects",
            r.acked,
            r.failed_attempts,
            r.write_gap.as_secs_f64(),
            r.max_delivery.as_secs_f64(),
            r.catch_up.as_secs_f64(),
            r.fault.as_secs_f64(),
            r.duplicates,
            r.reconnects
        );
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: the fault suite, run with --ignored (see the file's doc)"]
async fn fault_suite() {
    let s = Suite::start().await;
    let track = |p: u32| s.watch.track(p);
    let mut reports = Vec::new();
    // TERM: a clean broker stop. KILL shows tansu's own limit: it acknowledges a produce
    // before its S3 write, so a SIGKILL can lose a record it acknowledged (docs/scale-out.md).
    let kafka_signal = std::env::var("FAULTS_KAFKA_SIGNAL").unwrap_or_else(|_| "TERM".into());
    reports.push(
        s.phase("postgres restart", s.pg.stop("QUIT"), s.pg.start(track))
            .await,
    );
    reports.push(
        s.phase("redis restart", s.redis.stop("KILL"), s.redis.start(track))
            .await,
    );
    reports.push(
        s.phase(
            "kafka restart",
            s.tansu.stop(&kafka_signal),
            s.tansu.start(track),
        )
        .await,
    );
    let leader = s.relay_leader().await;
    let paused = &s.cluster.at(leader).proc;
    reports.push(
        s.phase(
            "relay leader paused",
            async { paused.signal("STOP") },
            async { paused.signal("CONT") },
        )
        .await,
    );
    // The relay leader again (it moved during the pause): its lease must move too.
    let victim = &s.cluster.at(s.relay_leader().await).proc;
    reports.push(
        s.phase("instance killed", async { victim.kill() }, async {})
            .await,
    );
    eprintln!(
        "\n| fault | lasted | acknowledged | failed attempts | longest write gap | \
         longest delivery | catch-up after repair | duplicates | reconnects |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|");
    for r in &reports {
        eprintln!(
            "| {} | {:.1} s | {} | {} | {:.1} s | {:.1} s | {:.1} s | {} | {} |",
            r.name,
            r.fault.as_secs_f64(),
            r.acked,
            r.failed_attempts,
            r.write_gap.as_secs_f64(),
            r.max_delivery.as_secs_f64(),
            r.catch_up.as_secs_f64(),
            r.duplicates,
            r.reconnects
        );
    }
    s.cluster.shutdown();
}
