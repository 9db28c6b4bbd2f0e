//! Kafka side of the multi-instance bus: topic layout, the relay's producer, and the consumer
//! that feeds every instance's local subscribers.
//!
//! Topics, one per event family: `{prefix}messages` (created, edited and deleted messages,
//! keyed by channel, so one channel's messages and their edits stay in order), `{prefix}broker` (by destination), `{prefix}revocations` (by user),
//! and `{prefix}sse` with a single partition: SSE replay compares event ids, so every instance
//! must see SSE events in one order, the order of their ids (the relay stamps them).
//!
//! Every instance consumes with its own group `discodeit-<instance id>`, so each receives
//! every event. Records carry the outbox id: a record published twice (relay retry, leader
//! change) is delivered once.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::error::PipelineError;
use super::EventBus;
use crate::config::Config;
use crate::domain::{Audience, Event};
use crate::store::outbox::OutboxRow;

/// How many recent outbox ids a consumer remembers to drop duplicates.
const DEDUP_WINDOW: usize = 65_536;

/// The consumer's context: turns librdkafka's periodic statistics into the per-topic lag gauge
/// (records between the high watermark and this instance's position).
pub struct LagStats;

impl ClientContext for LagStats {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            let lag: i64 = t
                .partitions
                .values()
                // Partition -1 is librdkafka's internal "unassigned" queue; -1 lags are unknown.
                .filter(|p| p.partition >= 0)
                .map(|p| {
                    if p.consumer_lag_stored >= 0 {
                        p.consumer_lag_stored
                    } else {
                        p.consumer_lag.max(0)
                    }
                })
                .sum();
            crate::telemetry::metrics::record_kafka_lag(topic, lag.max(0) as u64);
        }
    }
}

impl ConsumerContext for LagStats {}

/// This instance's consumer.
type EventConsumer = StreamConsumer<LagStats>;

/// How often librdkafka reports statistics (and so the lag gauge moves).
const STATS_INTERVAL_MS: &str = "5000";

/// An event family: one topic each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Messages,
    Sse,
    Revocations,
    Broker,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::Messages,
        Family::Sse,
        Family::Revocations,
        Family::Broker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Messages => "messages",
            Family::Sse => "sse",
            Family::Revocations => "revocations",
            Family::Broker => "broker",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == s)
    }

    fn partitions(self, configured: i32) -> i32 {
        match self {
            Family::Sse => 1,
            _ => configured,
        }
    }
}

/// The family and key of an event: what decides its topic and partition.
pub fn route(e: &Event) -> (Family, String) {
    match e {
        // Edits and deletions share the channel's key with creations: one partition keeps a
        // message's events in the order they were committed.
        Event::MessageCreated { message } | Event::MessageUpdated { message } => {
            (Family::Messages, message.channel_id.to_string())
        }
        Event::MessageDeleted { channel_id, .. } => (Family::Messages, channel_id.to_string()),
        Event::BrokerMessage { destination, .. } => (Family::Broker, destination.clone()),
        Event::UserRevoked { user_id, .. } => (Family::Revocations, user_id.to_string()),
        // In one order with the SSE events that announce the same change.
        Event::Changed(_) => (Family::Sse, "all".to_string()),
        Event::Sse(s) => match &s.audience {
            Audience::Users(users) if users.len() == 1 => (Family::Sse, users[0].to_string()),
            _ => (Family::Sse, "all".to_string()),
        },
    }
}

/// Bytes a record needs beyond its key and event JSON: the envelope (`{"seq":…,"event":…}`)
/// and librdkafka's per-record framing, with room to spare.
pub const RECORD_OVERHEAD: usize = 512;

/// The size librdkafka's `message.max.bytes` check sees for a record with this key and event
/// JSON (an upper bound).
pub fn record_bytes(key: &str, event_json: &str) -> usize {
    key.len() + event_json.len() + RECORD_OVERHEAD
}

/// What travels in a record: the event and its outbox id.
#[derive(Serialize, Deserialize)]
struct Envelope {
    seq: i64,
    event: Event,
}

/// The record value for one outbox row. SSE events get a fresh UUIDv7 here, at the single
/// point that fixes their order, so id order is delivery order on every instance.
fn envelope(row: &OutboxRow) -> Result<String, serde_json::Error> {
    let mut event: Event = serde_json::from_str(&row.payload)?;
    if let Event::Sse(s) = &mut event {
        s.id = Uuid::now_v7();
    }
    serde_json::to_string(&Envelope { seq: row.id, event })
}

fn topic_name(prefix: &str, f: Family) -> String {
    format!("{prefix}{}", f.name())
}

fn base_config(config: &Config, servers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", servers)
        .set("client.id", format!("discodeit-{}", config.instance_id));
    c
}

/// The relay's `linger.ms`: how long the producer waits to fill a batch.
pub const RELAY_LINGER_MS: u64 = 2;

/// The relay producer's delivery settings, shared with `examples/kafka-ceiling.rs` so the
/// ceiling it measures is this configuration's.
pub fn producer_settings(
    c: &mut ClientConfig,
    linger_ms: u64,
    max_bytes: usize,
) -> &mut ClientConfig {
    let max = max_bytes.to_string();
    // Idempotence keeps a partition's order through internal retries.
    c.set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set("message.timeout.ms", "60000")
        // The record size limit, explicitly: the outbox refuses events over it before
        // they are written, and a record the producer still refuses is dead-lettered.
        .set("message.max.bytes", &max)
        .set("batch.size", &max)
}

/// The consumer's delivery settings (group, offsets, commits, fetch wait), shared with
/// `examples/kafka-ceiling.rs`.
pub fn consumer_settings<'a>(
    c: &'a mut ClientConfig,
    group: &str,
    fetch_wait_ms: u64,
) -> &'a mut ClientConfig {
    c.set("group.id", group)
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Bounds the wait of a fetch. Kafka answers as soon as data arrives, so there this
        // only paces idle polls; a broker that holds the fetch for the whole wait (tansu)
        // adds up to this much to every event's latency (perf/RESULTS.md, the ceiling).
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
}

/// The producer's context: counts the times librdkafka lost every broker connection.
///
/// Exists because a broker that restarts may have lost the tail of what it had acknowledged
/// (a single node whose acknowledgement precedes its write: tansu does this), and the relay has
/// already marked those rows sent. After each such outage the relay republishes its recent
/// window; consumers drop the ids they already delivered.
pub struct BrokerWatch {
    outages: Arc<AtomicU64>,
}

impl ClientContext for BrokerWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.outages.fetch_add(1, Ordering::Relaxed);
        }
        tracing::error!("librdkafka: {error}: {reason}");
    }
}

pub struct Publisher {
    producer: FutureProducer<BrokerWatch>,
    /// Shared with the producer's [`BrokerWatch`].
    outages: Arc<AtomicU64>,
    prefix: String,
}

/// What one [`Publisher::send`] round achieved.
#[derive(Debug, Default)]
pub struct SendOutcome {
    /// Outbox ids Kafka acknowledged.
    pub sent: Vec<i64>,
    /// Rows that can never be sent (permanent errors), with why: to be dead-lettered.
    pub dead: Vec<(i64, PipelineError)>,
    /// Set when the round stopped early on a transient error; the unsent rest is retried.
    pub stalled: Option<PipelineError>,
}

impl Publisher {
    pub fn new(config: &Config, servers: &str) -> Result<Self, PipelineError> {
        let outages = Arc::new(AtomicU64::new(0));
        let producer: FutureProducer<BrokerWatch> = producer_settings(
            &mut base_config(config, servers),
            RELAY_LINGER_MS,
            config.kafka_message_max_bytes,
        )
        .create_with_context(BrokerWatch {
            outages: outages.clone(),
        })?;
        Ok(Publisher {
            producer,
            outages,
            prefix: config.kafka_topic_prefix.clone(),
        })
    }

    /// Publishes `rows` in order. A row that can never be sent (unknown family, not an event,
    /// too large, refused by the broker for itself) is reported in `dead` and does not hold
    /// up the rows behind it; a transient failure ends the round (`stalled`) so the unsent
    /// rest is retried in order later.
    /// How many times the producer has lost every broker connection so far.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    pub async fn send(&self, rows: &[OutboxRow]) -> SendOutcome {
        let mut out = SendOutcome::default();
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(family) = Family::parse(&row.family) else {
                let why = format!("unknown family {:?}", row.family);
                out.dead.push((row.id, PipelineError::Malformed(why)));
                continue;
            };
            let payload = match envelope(row) {
                Ok(p) => p,
                Err(e) => {
                    let why = format!("the payload is not an event: {e}");
                    out.dead.push((row.id, PipelineError::Malformed(why)));
                    continue;
                }
            };
            let topic = topic_name(&self.prefix, family);
            let record = FutureRecord::to(&topic).key(&row.key).payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push((row.id, delivery)),
                Err((e, _)) => {
                    let e = PipelineError::from(e);
                    if e.is_transient() {
                        out.stalled = Some(e);
                        break;
                    }
                    out.dead.push((row.id, e));
                }
            }
        }
        for (id, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => out.sent.push(id),
                Ok(Err((e, _))) => {
                    let e = PipelineError::from(e);
                    if e.is_transient() {
                        out.stalled = Some(e);
                        break;
                    }
                    out.dead.push((id, e));
                }
                Err(_) => {
                    // The producer is shutting down; the rest is retried by whoever leads.
                    out.stalled = Some(PipelineError::Kafka(KafkaError::Canceled));
                    break;
                }
            }
        }
        out
    }
}

/// Creates the topics (an existing one is fine), retrying until Kafka answers.
async fn create_topics(config: &Config, servers: &str) {
    let admin: AdminClient<DefaultClientContext> = match base_config(config, servers).create() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("kafka admin client: {e}");
            return;
        }
    };
    let names: Vec<(String, i32)> = Family::ALL
        .iter()
        .map(|f| {
            (
                topic_name(&config.kafka_topic_prefix, *f),
                f.partitions(config.kafka_partitions),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    loop {
        let topics: Vec<NewTopic> = names
            .iter()
            .map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(1)))
            .collect();
        match admin.create_topics(&topics, &opts).await {
            Ok(results) => {
                let failed: Vec<String> = results
                    .into_iter()
                    .filter_map(|r| match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                        Err((t, code)) => Some(format!("{t}: {code}")),
                    })
                    .collect();
                if failed.is_empty() {
                    return;
                }
                tracing::warn!("kafka topic creation: {}", failed.join(", "));
            }
            Err(e) => tracing::warn!("kafka not reachable yet: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Starts the consumer: topics first, then subscribe; `ready` turns true once this instance
/// has all partitions assigned (before that, `auto.offset.reset=latest` could skip events).
pub fn start_consumer(
    config: Arc<Config>,
    servers: String,
    bus: EventBus,
    ready: Arc<AtomicBool>,
) -> Result<(), String> {
    let group = format!("discodeit-{}", config.instance_id);
    let consumer: EventConsumer = consumer_settings(
        &mut base_config(&config, &servers),
        &group,
        config.kafka_fetch_wait_ms,
    )
    // Static membership: after a lost session (e.g. the broker paused) the instance
    // rejoins as itself instead of waiting for its old member to expire.
    .set("group.instance.id", &config.instance_id)
    .set(
        "session.timeout.ms",
        config.kafka_session_timeout_ms.to_string(),
    )
    .set(
        "heartbeat.interval.ms",
        config.kafka_heartbeat_interval_ms.to_string(),
    )
    .set("statistics.interval.ms", STATS_INTERVAL_MS)
    .create_with_context(LagStats)
    .map_err(|e| format!("kafka consumer: {e}"))?;
    let consumer = Arc::new(consumer);
    tokio::spawn(async move {
        create_topics(&config, &servers).await;
        let topics: Vec<String> = Family::ALL
            .iter()
            .map(|f| topic_name(&config.kafka_topic_prefix, *f))
            .collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        if let Err(e) = consumer.subscribe(&refs) {
            tracing::error!("kafka subscribe: {e}");
            return;
        }
        let expected: usize = Family::ALL
            .iter()
            .map(|f| f.partitions(config.kafka_partitions) as usize)
            .sum();
        tokio::spawn(watch_assignment(consumer.clone(), expected, ready));
        tracing::info!("kafka consumer group {group} subscribed");
        consume(&consumer, &bus).await;
    });
    Ok(())
}

/// Delivers consumed events locally, dropping duplicates by outbox id.
async fn consume(consumer: &EventConsumer, bus: &EventBus) {
    let mut seen: HashSet<i64> = HashSet::with_capacity(DEDUP_WINDOW);
    let mut order: VecDeque<i64> = VecDeque::with_capacity(DEDUP_WINDOW);
    loop {
        let msg = match consumer.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("kafka consume: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(payload) = msg.payload() else {
            continue;
        };
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("kafka record on {} is not an event: {e}", msg.topic());
                continue;
            }
        };
        if !seen.insert(env.seq) {
            continue;
        }
        order.push_back(env.seq);
        if order.len() > DEDUP_WINDOW {
            if let Some(old) = order.pop_front() {
                seen.remove(&old);
            }
        }
        // While the local fan-out is behind, the record waits here (and Kafka holds the
        // rest) instead of in memory.
        // (A bounded wait: the consumer must poll now and then to keep its group membership.)
        if let Err(why) = bus.wait_ready(Some(Duration::from_secs(30))).await {
            tracing::warn!("kafka consumer delivers although {why}");
        }
        bus.deliver_local(Arc::new(env.event));
    }
}

/// Tracks the assignment: ready while every partition is assigned. On a new assignment,
/// partitions without a committed offset get the current end committed, so a later rebalance
/// resumes there instead of jumping to "latest" past events published in between.
async fn watch_assignment(consumer: Arc<EventConsumer>, expected: usize, ready: Arc<AtomicBool>) {
    let mut initialized = false;
    loop {
        let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        if assigned >= expected && !initialized {
            let c = consumer.clone();
            match tokio::task::spawn_blocking(move || commit_missing_offsets(&c)).await {
                Ok(Ok(())) => {
                    initialized = true;
                    ready.store(true, Ordering::Release);
                    tracing::info!("kafka consumer assigned {assigned} partitions: ready");
                }
                Ok(Err(e)) => tracing::warn!("kafka offset initialization: {e}"),
                Err(e) => tracing::warn!("kafka offset initialization: {e}"),
            }
        } else if assigned == 0 && initialized {
            initialized = false;
            ready.store(false, Ordering::Release);
            tracing::warn!("kafka consumer lost its partitions: not ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn commit_missing_offsets(consumer: &EventConsumer) -> Result<(), String> {
    let timeout = Duration::from_secs(5);
    let committed = consumer.committed(timeout).map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for el in committed.elements() {
        if let Offset::Offset(_) = el.offset() {
            continue;
        }
        let (_, high) = consumer
            .fetch_watermarks(el.topic(), el.partition(), timeout)
            .map_err(|e| e.to_string())?;
        tpl.add_partition_offset(el.topic(), el.partition(), Offset::Offset(high))
            .map_err(|e| e.to_string())?;
    }
    if tpl.count() > 0 {
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SseEvent;

    #[test]
    fn events_route_by_family_and_key() {
        let user = Uuid::new_v4();
        let (f, k) = route(&Event::UserRevoked {
            user_id: user,
            session_id: None,
        });
        assert_eq!((f, k), (Family::Revocations, user.to_string()));
        let sse = Event::Sse(SseEvent::new("x", &1, Audience::Users(vec![user])));
        assert_eq!(route(&sse), (Family::Sse, user.to_string()));
        let all = Event::Sse(SseEvent::new("x", &1, Audience::All));
        assert_eq!(route(&all).1, "all");
        for f in Family::ALL {
            assert_eq!(Family::parse(f.name()), Some(f));
        }
        assert_eq!(Family::parse("nope"), None);
    }

    #[test]
    fn the_envelope_restamps_sse_ids_in_order() {
        let e = Event::Sse(SseEvent::new("x", &1, Audience::All));
        let row = |id| OutboxRow {
            id,
            family: "sse".into(),
            key: "all".into(),
            payload: serde_json::to_string(&e).unwrap(),
        };
        let a: Envelope = serde_json::from_str(&envelope(&row(1)).unwrap()).unwrap();
        let b: Envelope = serde_json::from_str(&envelope(&row(2)).unwrap()).unwrap();
        let (Event::Sse(a_ev), Event::Sse(b_ev)) = (&a.event, &b.event) else {
            panic!("not sse");
        };
        assert_eq!((a.seq, b.seq), (1, 2));
        assert!(a_ev.id < b_ev.id);
        assert_eq!(a_ev.data, "1");
    }
}
