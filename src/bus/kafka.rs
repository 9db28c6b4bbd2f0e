//! Kafka side of the multi-instance bus: topic layout, the relay's producer, and the consumer
//! that feeds every instance's local subscribers.
//!
//! Topics, one per event family: `{prefix}messages` (keyed by channel, so one channel's
//! messages stay in order), `{prefix}broker` (by destination), `{prefix}revocations` (by user),
//! and `{prefix}sse` with a single partition: SSE replay compares event ids, so every instance
//! must see SSE events in one order, the order of their ids (the relay stamps them).
//!
//! Every instance consumes with its own group `discodeit-<instance id>`, so each receives
//! every event. Records carry the outbox id: a record published twice (relay retry, leader
//! change) is delivered once.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::outbox::OutboxRow;
use super::EventBus;
use crate::config::Config;
use crate::domain::{Audience, Event};

/// How many recent outbox ids a consumer remembers to drop duplicates.
const DEDUP_WINDOW: usize = 65_536;

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
        Event::MessageCreated { message } => (Family::Messages, message.channel_id.to_string()),
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

/// The relay's producer.
pub struct Publisher {
    producer: FutureProducer,
    prefix: String,
}

impl Publisher {
    pub fn new(config: &Config, servers: &str) -> Result<Self, String> {
        let producer: FutureProducer = base_config(config, servers)
            // Idempotence keeps a partition's order through internal retries.
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "60000")
            .create()
            .map_err(|e| format!("kafka producer: {e}"))?;
        Ok(Publisher {
            producer,
            prefix: config.kafka_topic_prefix.clone(),
        })
    }

    /// Publishes `rows` in order; returns the ids delivered, a prefix of `rows` (the rest is
    /// retried later, so nothing overtakes an undelivered row for long).
    pub async fn send(&self, rows: &[OutboxRow]) -> Vec<i64> {
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(family) = Family::parse(&row.family) else {
                tracing::error!("outbox row {} has unknown family {:?}", row.id, row.family);
                break;
            };
            let payload = match envelope(row) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("outbox row {} is not an event: {e}", row.id);
                    break;
                }
            };
            let topic = topic_name(&self.prefix, family);
            let record = FutureRecord::to(&topic).key(&row.key).payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push((row.id, delivery)),
                Err((e, _)) => {
                    tracing::warn!("kafka enqueue: {e}");
                    break;
                }
            }
        }
        let mut sent = Vec::with_capacity(pending.len());
        for (id, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => sent.push(id),
                Ok(Err((e, _))) => {
                    tracing::warn!("kafka delivery of outbox row {id}: {e}");
                    break;
                }
                Err(_) => break,
            }
        }
        sent
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
    let consumer: StreamConsumer = base_config(&config, &servers)
        .set("group.id", &group)
        // Static membership: after a lost session (e.g. the broker paused) the instance
        // rejoins as itself instead of waiting for its old member to expire.
        .set("group.instance.id", &config.instance_id)
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set(
            "session.timeout.ms",
            config.kafka_session_timeout_ms.to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            config.kafka_heartbeat_interval_ms.to_string(),
        )
        // Bounds the wait of an idle fetch: the broker answers as soon as data arrives or
        // after this long, whichever is first.
        .set("fetch.wait.max.ms", "50")
        .create()
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
async fn consume(consumer: &StreamConsumer, bus: &EventBus) {
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
        bus.deliver_local(Arc::new(env.event));
    }
}

/// Tracks the assignment: ready while every partition is assigned. On a new assignment,
/// partitions without a committed offset get the current end committed, so a later rebalance
/// resumes there instead of jumping to "latest" past events published in between.
async fn watch_assignment(consumer: Arc<StreamConsumer>, expected: usize, ready: Arc<AtomicBool>) {
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

fn commit_missing_offsets(consumer: &StreamConsumer) -> Result<(), String> {
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
