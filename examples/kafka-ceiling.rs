//! The ceiling of the scale-out event path: a bare rdkafka producer → broker → consumer,
//! with the server's own producer and consumer settings, against the same broker. What the
//! outbox relay and the consumers cannot beat (issue 10's breakdown; perf/RESULTS.md).
//!
//!     cargo run --release --example kafka-ceiling -- \
//!         [--servers 127.0.0.1:59092] [--rate 3000] [--seconds 8] [--bytes 600] \
//!         [--partitions 1] [--linger-ms 2] [--fetch-wait-ms 10] [--batch 256]
//!
//! The defaults and the producer/consumer settings come from the server's own code
//! (`bus::kafka::{producer_settings, consumer_settings}`, `config::DEFAULT_KAFKA_*`).
//!
//! The producer sends `rate` records/s on a fixed schedule (in groups of `batch` awaited
//! together, as the relay does with a round of outbox rows, or one at a time with
//! `--batch 1`); each record carries its send time. A consumer in a fresh group reads the
//! topic from the end; latency = receive time − scheduled send time (so a producer that falls
//! behind its schedule shows up as latency). Prints one line: offered, produced/s, consumed/s,
//! p50/p90/p99/max ms, lost.

use discodeit::bus::kafka;
use discodeit::config::{DEFAULT_KAFKA_FETCH_WAIT_MS, DEFAULT_KAFKA_MESSAGE_MAX_BYTES};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    servers: String,
    rate: u64,
    seconds: u64,
    bytes: usize,
    partitions: i32,
    linger_ms: u64,
    fetch_wait_ms: u64,
    batch: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        servers: std::env::var("KAFKA_BOOTSTRAP_SERVERS")
            .unwrap_or_else(|_| "127.0.0.1:59092".into()),
        rate: 3000,
        seconds: 8,
        bytes: 600,
        partitions: 1,
        linger_ms: kafka::RELAY_LINGER_MS,
        fetch_wait_ms: DEFAULT_KAFKA_FETCH_WAIT_MS,
        batch: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--servers" => a.servers = value.clone(),
            "--rate" => a.rate = num()?.max(1),
            "--seconds" => a.seconds = num()?.max(1),
            "--bytes" => a.bytes = num()?.max(32) as usize,
            "--partitions" => a.partitions = num()?.clamp(1, 64) as i32,
            "--linger-ms" => a.linger_ms = num()?,
            "--fetch-wait-ms" => a.fetch_wait_ms = num()?,
            "--batch" => a.batch = num()?.max(1) as usize,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let a = parse_args()?;
    let topic = format!("ceiling-{}", now_us());
    let base = |c: &mut ClientConfig| {
        c.set("bootstrap.servers", &a.servers);
    };
    let mut admin_cfg = ClientConfig::new();
    base(&mut admin_cfg);
    let admin: AdminClient<DefaultClientContext> = admin_cfg.create().map_err(|e| e.to_string())?;
    admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                a.partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| e.to_string())?;

    // The server's consumer settings (src/bus/kafka.rs), a fresh group from the end.
    let mut consumer_cfg = ClientConfig::new();
    base(&mut consumer_cfg);
    let consumer: StreamConsumer =
        kafka::consumer_settings(&mut consumer_cfg, &topic, a.fetch_wait_ms)
            .create()
            .map_err(|e| e.to_string())?;
    consumer.subscribe(&[&topic]).map_err(|e| e.to_string())?;
    // Wait for the assignment, so nothing sent is skipped by `latest`.
    let t0 = Instant::now();
    while consumer
        .assignment()
        .map(|t| t.count() < a.partitions as usize)
        .unwrap_or(true)
    {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err("no partition assignment in 30 s".into());
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }

    // The server's producer settings.
    let mut producer_cfg = ClientConfig::new();
    base(&mut producer_cfg);
    let producer: FutureProducer = kafka::producer_settings(
        &mut producer_cfg,
        a.linger_ms,
        DEFAULT_KAFKA_MESSAGE_MAX_BYTES as usize,
    )
    .create()
    .map_err(|e| e.to_string())?;
    // Warm-up: one record end to end, so the consumer's offset is resolved and its fetch loop
    // runs before the measured records start.
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    'warm: loop {
        if Instant::now() > warm_deadline {
            return Err("the warm-up record never arrived".into());
        }
        let record = FutureRecord::to(&topic).key("warm").payload("warm-up");
        if let Ok(d) = producer.send_result(record) {
            let _ = d.await;
        }
        let until = Instant::now() + Duration::from_secs(2);
        while let Ok(Ok(m)) = tokio::time::timeout_at(until.into(), consumer.recv()).await {
            if m.payload() == Some(b"warm-up".as_slice()) {
                break 'warm;
            }
        }
    }

    let total = a.rate * a.seconds;
    let expected = total as usize;
    let reader = tokio::spawn(async move {
        let mut lat_us = Vec::with_capacity(expected);
        let deadline = Instant::now() + Duration::from_secs(a.seconds + 30);
        while lat_us.len() < expected && Instant::now() < deadline {
            let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await
            else {
                continue;
            };
            let at = now_us();
            if let Some(sent) = m
                .payload()
                .and_then(|p| p.get(..16))
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|s| s.parse::<u64>().ok())
            {
                lat_us.push(at.saturating_sub(sent));
            }
        }
        lat_us
    });

    let padding = "x".repeat(a.bytes.saturating_sub(16));
    let start_us = now_us() + 200_000;
    let interval_us = 1_000_000.0 / a.rate as f64;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut produced = 0u64;
    while sent < total {
        // Wait for the next scheduled record, then send every record due (up to `batch`).
        let due_us = start_us + (sent as f64 * interval_us) as u64;
        let now = now_us();
        if due_us > now {
            tokio::time::sleep(Duration::from_micros(due_us - now)).await;
        }
        let mut group = Vec::new();
        while sent < total && group.len() < a.batch {
            let due = start_us + (sent as f64 * interval_us) as u64;
            if due > now_us() && !group.is_empty() {
                break;
            }
            let payload = format!("{due:016}{padding}");
            let key = format!("k{}", sent % 64);
            let record = FutureRecord::to(&topic).key(&key).payload(&payload);
            match producer.send_result(record) {
                Ok(d) => group.push(d),
                Err((e, _)) => return Err(format!("produce: {e}")),
            }
            sent += 1;
        }
        for d in group {
            if let Ok(Ok(_)) = d.await {
                produced += 1;
            }
        }
    }
    let produce_secs = started.elapsed().as_secs_f64();
    let mut lat = reader.await.map_err(|e| e.to_string())?;
    let consumed = lat.len();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    println!(
        "RESULT offered/s={} batch={} linger_ms={} fetch_wait_ms={} partitions={} bytes={} \
         produced/s={:.0} consumed={} lost={} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        a.rate,
        a.batch,
        a.linger_ms,
        a.fetch_wait_ms,
        a.partitions,
        a.bytes,
        produced as f64 / produce_secs,
        consumed,
        total as usize - consumed,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
