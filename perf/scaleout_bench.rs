//! Scale-out benchmark: SSE fan-out through nginx with 1 instance (single-instance design),
//! 1 instance with Redis + Kafka, and 3 instances with Redis + Kafka, on this one machine.
//!
//! Run (release build of the server; PostgreSQL and Redis from scripts/lib.sh):
//!
//! ```sh
//! cargo test --release --test scaleout_bench -- --ignored --nocapture
//! ```
//!
//! Load: `BENCH_USERS` users × `BENCH_STREAMS_PER_USER` SSE streams, opened through nginx
//! (round robin, so spread over the instances); a channel manager creates `BENCH_EVENTS`
//! public channels through nginx from `BENCH_PRODUCERS` concurrent clients, and each creation
//! commits one `channels.refresh` event for everyone. Latency: from the start of the creating
//! request to the event's arrival on a stream (every stream, every event); throughput:
//! deliveries per second from the first request to the last arrival.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::common::{Api, SseReader};

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One configuration's numbers.
struct Outcome {
    label: &'static str,
    streams: usize,
    events: usize,
    delivered: usize,
    missing: usize,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
    deliveries_per_s: f64,
    events_per_s: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn fanout(c: &Cluster, label: &'static str) -> Outcome {
    let users = env_num("BENCH_USERS", 20);
    let per_user = env_num("BENCH_STREAMS_PER_USER", 10);
    let events = env_num("BENCH_EVENTS", 300);
    let producers = env_num("BENCH_PRODUCERS", 4).max(1);
    let base = &c.nginx.base;

    // Subscribers.
    let mut readers = Vec::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let mut apis = Vec::new();
    for u in 0..users {
        let mut api = Api::new(base);
        api.register(&format!("bench{run}{u}")).await;
        apis.push(api);
    }
    let (start_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    for api in &apis {
        for _ in 0..per_user {
            let r = api
                .req(reqwest::Method::GET, "/api/sse")
                .header("accept", "text/event-stream")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let mut sse = SseReader::new(r);
            let mut stop = start_tx.subscribe();
            readers.push(tokio::spawn(async move {
                let mut got: Vec<(String, Instant)> = Vec::with_capacity(events);
                loop {
                    tokio::select! {
                        m = sse.next_named("channels.refresh", Duration::from_secs(30)) => {
                            let Some(m) = m else { break };
                            let at = Instant::now();
                            let v: serde_json::Value = serde_json::from_str(&m.data).unwrap();
                            if let Some(id) = v["channelId"].as_str() {
                                got.push((id.to_string(), at));
                            }
                            if got.len() >= events {
                                break;
                            }
                        }
                        _ = stop.recv() => break,
                    }
                }
                got
            }));
        }
    }
    let streams = readers.len();

    // Producers.
    let mut admin = Api::new(base);
    admin.admin().await;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let admin = admin.clone();
            let sent = sent.clone();
            let run = run.clone();
            tokio::spawn(async move {
                let mut n = p;
                while n < events {
                    let at = Instant::now();
                    let r = admin
                        .post_json(
                            "/api/channels/public",
                            &serde_json::json!({"name": format!("b{run}-{n}"), "description": "bench"}),
                        )
                        .await;
                    assert_eq!(r.status(), 201);
                    let v: serde_json::Value = r.json().await.unwrap();
                    let id = v["id"].as_str().unwrap().to_string();
                    sent.lock().unwrap().insert(id, at);
                    n += producers;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let produced_in = t0.elapsed();

    // Arrivals.
    let watchdog = {
        let start_tx = start_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let _ = start_tx.send(());
        })
    };
    let mut latencies = Vec::with_capacity(streams * events);
    let mut last = t0;
    let sent = sent.lock().unwrap().clone();
    for r in readers {
        for (id, at) in r.await.unwrap() {
            if let Some(s) = sent.get(&id) {
                latencies.push(at.saturating_duration_since(*s));
                last = last.max(at);
            }
        }
    }
    watchdog.abort();
    latencies.sort();
    let delivered = latencies.len();
    let total = last.duration_since(t0).as_secs_f64().max(1e-9);
    Outcome {
        label,
        streams,
        events,
        delivered,
        missing: streams * events - delivered,
        p50: percentile(&latencies, 0.50),
        p95: percentile(&latencies, 0.95),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        deliveries_per_s: delivered as f64 / total,
        events_per_s: events as f64 / produced_in.as_secs_f64(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Runs the three configurations one after the other and prints a Markdown table.
pub async fn run() {
    let configs: [(&'static str, usize, bool); 3] = [
        ("1 instance, in-process bus, in-memory registry", 1, false),
        ("1 instance, Kafka outbox + Redis registry", 1, true),
        ("3 instances, Kafka outbox + Redis registry", 3, true),
    ];
    let mut outcomes = Vec::new();
    for (label, count, shared) in configs {
        let c = Cluster::start_with(count, shared).await;
        // Let the consumers settle after their first assignment.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let o = fanout(&c, label).await;
        c.shutdown();
        eprintln!("{label}: done");
        outcomes.push(o);
    }
    println!();
    println!("| setup (behind nginx) | streams | events | delivered | events/s created | deliveries/s | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {}{} | {:.0} | {:.0} | {} | {} | {} | {} |",
            o.label,
            o.streams,
            o.events,
            o.delivered,
            if o.missing > 0 {
                format!(" ({} missing)", o.missing)
            } else {
                String::new()
            },
            o.events_per_s,
            o.deliveries_per_s,
            ms(o.p50),
            ms(o.p95),
            ms(o.p99),
            ms(o.max)
        );
    }
    for o in &outcomes {
        assert_eq!(o.missing, 0, "{}: events were lost", o.label);
    }
}
