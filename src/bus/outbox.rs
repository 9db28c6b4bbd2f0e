//! The transactional outbox (multi-instance mode): events are rows written in the same
//! transaction as the change they announce, so an event exists exactly when its change does;
//! one relay publishes pending rows to Kafka in order and marks them sent. A Kafka outage
//! delays delivery but loses nothing: the rows wait.
//!
//! One relay at a time (the instance holding a PostgreSQL advisory lock) keeps the global
//! order; when it dies its database session ends, the lock is released and another instance
//! takes over within a second. Writers `NOTIFY` on commit so the relay wakes at once.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, GenericClient, NoTls};

use super::kafka::{self, Publisher};
use crate::domain::Event;
use crate::error::{ApiError, ApiResult};
use crate::store::Db;

/// The `LISTEN`/`NOTIFY` channel that wakes the relay.
const CHANNEL: &str = "discodeit_outbox";
/// `pg_advisory_lock` key of the relay leadership.
const LEADER_LOCK: i64 = 7_262_022;
/// Rows published per round.
const BATCH: i64 = 500;
/// How often a follower tries to become the relay, and the leader re-checks without a NOTIFY.
const POLL: Duration = Duration::from_secs(1);
/// Sent rows are kept this long (for inspection), then deleted.
const KEEP_SENT: &str = "10 minutes";

/// One pending row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub family: String,
    pub key: String,
    pub payload: String,
}

/// Appends `events` in the caller's transaction and notifies the relay (delivered on commit).
pub async fn insert(c: &impl GenericClient, events: &[Event]) -> ApiResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut families = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for e in events {
        let (family, key) = kafka::route(e);
        families.push(family.name().to_string());
        keys.push(key);
        payloads.push(serde_json::to_string(e).map_err(ApiError::internal)?);
    }
    c.execute(
        "WITH rows AS (
             INSERT INTO outbox (family, key, payload)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
             RETURNING 1)
         SELECT pg_notify('discodeit_outbox', '') FROM (SELECT 1 FROM rows LIMIT 1) AS any_row",
        &[&families, &keys, &payloads],
    )
    .await?;
    Ok(())
}

/// How far the relay is behind, and how many events were given up on (for the metrics scrape).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Rows not yet published.
    pub rows: u64,
    /// Age of the oldest unpublished row (zero when there is none).
    pub oldest_age: Duration,
    /// Rows in `dead_letters`; `None` where that table does not exist.
    pub dead_letters: Option<u64>,
}

/// Reads the [`Backlog`] (the pending rows are found through the `outbox_pending` index).
pub async fn backlog(db: &Db) -> ApiResult<Backlog> {
    let c = db.client().await?;
    let row = c
        .query_one(
            "SELECT count(*),
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8,
                    to_regclass('dead_letters') IS NOT NULL
             FROM outbox WHERE sent_at IS NULL",
            &[],
        )
        .await?;
    let dead_letters = if row.get::<_, bool>(2) {
        let n: i64 = c
            .query_one("SELECT count(*) FROM dead_letters", &[])
            .await?
            .get(0);
        Some(n.max(0) as u64)
    } else {
        None
    };
    Ok(Backlog {
        rows: row.get::<_, i64>(0).max(0) as u64,
        oldest_age: Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0)),
        dead_letters,
    })
}

/// Writes events that have no transaction of their own ([`super::EventBus::publish`]) to the
/// outbox, in publish order, batched, retrying while the database is unavailable.
#[derive(Clone)]
pub struct OutboxWriter {
    tx: mpsc::UnboundedSender<Event>,
}

impl OutboxWriter {
    pub fn start(db: Db) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH as usize {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                while let Err(e) = write(&db, &batch).await {
                    tracing::warn!("outbox write failed, retrying: {}", e.message);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
        OutboxWriter { tx }
    }

    pub fn append(&self, event: Event) {
        // The writer task lives as long as the runtime; a send error means shutdown.
        let _ = self.tx.send(event);
    }
}

async fn write(db: &Db, events: &[Event]) -> ApiResult<()> {
    let mut client = db.client().await?;
    let tx = client.transaction().await?;
    insert(&*tx, events).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs the relay for as long as the process lives: campaigns for leadership, then publishes.
pub fn spawn_relay(database_url: String, publisher: Arc<Publisher>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = lead(&database_url, &publisher).await {
                tracing::warn!("outbox relay: {e}");
            }
            tokio::time::sleep(POLL).await;
        }
    });
}

/// One leadership attempt on a dedicated connection (the advisory lock and `LISTEN` belong to
/// the session). Returns when the connection fails.
async fn lead(url: &str, publisher: &Publisher) -> Result<(), String> {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let wake = Arc::new(Notify::new());
    let waker = wake.clone();
    let driver = tokio::spawn(async move {
        while let Some(msg) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            match msg {
                Ok(AsyncMessage::Notification(_)) => waker.notify_one(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("outbox relay connection: {e}");
                    break;
                }
            }
        }
    });
    let result = async {
        loop {
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
                .await
                .map_err(|e| e.to_string())?;
            if row.get::<_, bool>(0) {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("outbox relay: this instance publishes the outbox");
        relay(&client, publisher, &wake).await
    }
    .await;
    driver.abort();
    result
}

async fn relay(
    client: &tokio_postgres::Client,
    publisher: &Publisher,
    wake: &Notify,
) -> Result<(), String> {
    let mut last_cleanup = tokio::time::Instant::now();
    loop {
        let rows: Vec<OutboxRow> = client
            .query(
                "SELECT id, family, key, payload FROM outbox
                 WHERE sent_at IS NULL ORDER BY id LIMIT $1",
                &[&BATCH],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| OutboxRow {
                id: r.get(0),
                family: r.get(1),
                key: r.get(2),
                payload: r.get(3),
            })
            .collect();
        if rows.is_empty() {
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = tokio::time::Instant::now();
                client
                    .execute(
                        &format!(
                            "DELETE FROM outbox WHERE sent_at < now() - interval '{KEEP_SENT}'"
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let _ = tokio::time::timeout(POLL, wake.notified()).await;
            continue;
        }
        let sent = publisher.send(&rows).await;
        if !sent.is_empty() {
            client
                .execute(
                    "UPDATE outbox SET sent_at = now() WHERE id = ANY($1)",
                    &[&sent],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        if sent.len() < rows.len() {
            // Kafka is unreachable or refused a row: keep the rest and retry shortly.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
