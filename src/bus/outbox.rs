//! The transactional outbox (multi-instance mode): events are rows written in the same
//! transaction as the change they announce, so an event exists exactly when its change does;
//! one relay publishes pending rows to Kafka in order and marks them sent. A Kafka outage
//! delays delivery but loses nothing: the rows wait.
//!
//! One relay at a time (the instance holding a PostgreSQL advisory lock) keeps the global
//! order; when it dies its database session ends, the lock is released and another instance
//! takes over within a second. Writers `NOTIFY` on commit so the relay wakes at once.
//!
//! Neither the writer nor the relay ever stalls on one event: an error is classified once
//! ([`PipelineError::is_transient`]); transient ones (database or broker down) are retried,
//! an event that can never be written or sent goes to `dead_letters` with a warning, and
//! everything behind it flows on. The SQL lives in [`crate::store::outbox`].

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, GenericClient, NoTls};

use super::error::PipelineError;
use super::kafka::{self, Publisher};
use crate::domain::Event;
use crate::store::outbox::{self as rows, DeadLetterSource, OutboxRecord};
use crate::store::{Db, StoreError};

/// Rows published per round, and events appended per writer transaction.
const BATCH: usize = 500;
/// How often a follower tries to become the relay, and the leader re-checks without a NOTIFY.
const POLL: Duration = Duration::from_secs(1);
/// Pause before retrying after a transient failure.
const RETRY: Duration = Duration::from_millis(500);

/// Encodes `event` as an outbox record: its family, key and JSON. Refuses (permanently) an
/// event whose Kafka record would exceed `max_record_bytes`, so it never reaches the outbox.
pub fn encode(event: &Event, max_record_bytes: usize) -> Result<OutboxRecord, PipelineError> {
    let (family, key) = kafka::route(event);
    let payload =
        serde_json::to_string(event).map_err(|e| PipelineError::Malformed(e.to_string()))?;
    let bytes = kafka::record_bytes(&key, &payload);
    if bytes > max_record_bytes {
        return Err(PipelineError::TooLarge {
            bytes,
            limit: max_record_bytes,
        });
    }
    Ok(OutboxRecord {
        family: family.name(),
        key,
        payload,
    })
}

/// What the writer task receives.
enum Item {
    Record(OutboxRecord),
    /// An event [`encode`] refused: straight to `dead_letters`.
    Refused {
        family: &'static str,
        key: String,
        payload: Vec<u8>,
        error: PipelineError,
    },
}

pub use crate::store::outbox::{backlog, Backlog};

/// Appends events to the outbox: in the caller's transaction ([`OutboxWriter::insert_in`]),
/// or, for events without a transaction of their own ([`super::EventBus::publish`]), from a
/// background task in publish order, batched, retrying while the database is unavailable.
#[derive(Clone)]
pub struct OutboxWriter {
    tx: mpsc::UnboundedSender<Item>,
    max_record_bytes: usize,
}

impl OutboxWriter {
    /// Starts the writer task. `max_record_bytes` is the producer's `message.max.bytes`.
    pub fn start(db: Db, max_record_bytes: usize) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    match item {
                        Item::Record(r) => batch.push(r),
                        Item::Refused {
                            family,
                            key,
                            payload,
                            error,
                        } => {
                            // Keep the order: what was queued before goes first.
                            write_batch(&db, &batch).await;
                            batch.clear();
                            let error = error.to_string();
                            dead_letter(&db, family, key.as_bytes(), &payload, &error).await;
                        }
                    }
                    if batch.len() < BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                write_batch(&db, &batch).await;
                batch.clear();
            }
        });
        OutboxWriter {
            tx,
            max_record_bytes,
        }
    }

    /// The largest Kafka record (event plus envelope and key) the producer accepts.
    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    /// Queues `event` for the writer task, or refuses one that could never be sent.
    pub fn try_append(&self, event: Event) -> Result<(), PipelineError> {
        let record = encode(&event, self.max_record_bytes)?;
        let _ = self.tx.send(Item::Record(record));
        Ok(())
    }

    /// Queues `event` for the writer task; one that can never be sent is dead-lettered.
    pub fn append(&self, event: Event) {
        let item = match encode(&event, self.max_record_bytes) {
            Ok(r) => Item::Record(r),
            Err(error) => {
                let (family, key) = kafka::route(&event);
                Item::Refused {
                    family: family.name(),
                    key,
                    payload: serde_json::to_vec(&event).unwrap_or_default(),
                    error,
                }
            }
        };
        // The writer task lives as long as the runtime; a send error means shutdown.
        let _ = self.tx.send(item);
    }

    /// Appends `events` in the caller's transaction (delivered on its commit). An event that
    /// could never be published fails the whole call, so the change is not committed either.
    /// Whether `events` could be appended (each encodes to a record within the size limit),
    /// without writing anything.
    pub fn check(&self, events: &[Event]) -> Result<(), PipelineError> {
        for e in events {
            encode(e, self.max_record_bytes)?;
        }
        Ok(())
    }

    pub async fn insert_in(
        &self,
        c: &impl GenericClient,
        events: &[Event],
    ) -> Result<(), PipelineError> {
        let records = events
            .iter()
            .map(|e| encode(e, self.max_record_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        rows::insert(c, &records).await?;
        Ok(())
    }
}

/// Appends `batch` in one transaction. On a transient error the same batch is retried; on a
/// permanent one the batch is split and retried row by row, so only the rows that fail
/// themselves are dead-lettered and the good ones still go, in order.
async fn write_batch(db: &Db, batch: &[OutboxRecord]) {
    if batch.is_empty() {
        return;
    }
    match append_retrying(db, batch).await {
        Ok(()) => {}
        Err(e) if batch.len() == 1 => dead_letter_record(db, &batch[0], &e).await,
        Err(e) => {
            tracing::warn!(
                "outbox write of {} events failed permanently ({e}); retrying one by one",
                batch.len()
            );
            for record in batch {
                if let Err(e) = append_retrying(db, std::slice::from_ref(record)).await {
                    dead_letter_record(db, record, &e).await;
                }
            }
        }
    }
}

/// Appends, retrying transient failures for as long as they last; returns a permanent one.
async fn append_retrying(db: &Db, records: &[OutboxRecord]) -> Result<(), StoreError> {
    loop {
        match rows::append(db, records).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!("outbox write failed, retrying: {e}");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn dead_letter_record(db: &Db, r: &OutboxRecord, e: &StoreError) {
    let error = e.to_string();
    dead_letter(db, r.family, r.key.as_bytes(), r.payload.as_bytes(), &error).await;
}

/// Writes a dead letter for the writer, retrying while the database is unavailable. A dead
/// letter that cannot be written at all is logged and dropped: nothing may stall the writer.
async fn dead_letter(db: &Db, family: &str, key: &[u8], payload: &[u8], error: &str) {
    tracing::warn!(
        "outbox writer: dead-lettering a {family} event ({} bytes): {error}",
        payload.len()
    );
    loop {
        let result = async {
            let c = db.conn().await?;
            rows::dead_letter(
                &**c,
                DeadLetterSource::OutboxWriter,
                family,
                key,
                payload,
                error,
            )
            .await
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) if e.is_transient() => tokio::time::sleep(RETRY).await,
            Err(e) => {
                tracing::error!("outbox writer: could not store a dead letter, dropped: {e}");
                return;
            }
        }
    }
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
async fn lead(url: &str, publisher: &Publisher) -> Result<(), PipelineError> {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(StoreError::from)?;
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
        while !rows::try_lead(&client).await? {
            tokio::time::sleep(POLL).await;
        }
        rows::listen(&client).await?;
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
) -> Result<(), PipelineError> {
    let mut last_cleanup = tokio::time::Instant::now();
    loop {
        let pending = rows::pending(client, BATCH as i64).await?;
        if pending.is_empty() {
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = tokio::time::Instant::now();
                rows::delete_old_sent(client).await?;
            }
            let _ = tokio::time::timeout(POLL, wake.notified()).await;
            continue;
        }
        let outcome = publisher.send(&pending).await;
        rows::mark_sent(client, &outcome.sent).await?;
        for (id, error) in &outcome.dead {
            tracing::warn!("outbox relay: dead-lettering outbox row {id}: {error}");
            rows::move_to_dead_letters(client, *id, &error.to_string()).await?;
        }
        if let Some(e) = outcome.stalled {
            // Kafka is unreachable or busy: keep the rest and retry shortly.
            tracing::warn!("outbox relay: {e}; retrying");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
