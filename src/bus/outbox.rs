//! The transactional outbox (multi-instance mode): events are rows written in the same
//! transaction as the change they announce, so an event exists exactly when its change does;
//! one relay publishes pending rows to Kafka in order and marks them sent. A Kafka outage
//! delays delivery but loses nothing: the rows wait.
//!
//! One relay at a time keeps the global order: the instance holding the `relay_lease` row
//! (a lease of [`LEASE_TTL`] that the leader renews every [`RENEW_EVERY`], also while a
//! publish is in flight). A leader that dies, hangs or is paused stops renewing and a survivor
//! takes the lease once it expires. Each take bumps the lease's epoch, the fencing token: a
//! leader checks its lease is still valid on its own clock right before publishing and marks
//! rows sent only under its epoch, so a resumed stale leader learns it was replaced and steps
//! down. What it may still have handed to Kafka in the instant before its pause is published
//! twice; every consumer drops records whose outbox id it has already delivered. The same dedup
//! lets the relay republish its last seconds after the broker was unreachable, since a
//! restarted single broker may have lost the tail it had acknowledged.
//! Writers `NOTIFY` on commit so the relay wakes at once.
//!
//! Neither the writer nor the relay ever stalls on one event: an error is classified once
//! ([`PipelineError::is_transient`]); transient ones (database or broker down) are retried,
//! an event that can never be written or sent goes to `dead_letters` with a warning, and
//! everything behind it flows on. The SQL lives in [`crate::store::outbox`].

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, GenericClient, NoTls};

use super::error::PipelineError;
use super::kafka::{self, Publisher};
use crate::domain::Event;
use crate::store::outbox::{self as rows, DeadLetterSource, Lease, OutboxRecord, OutboxRow};
use crate::store::{Db, StoreError};

/// Rows published per round, and events appended per writer transaction.
const BATCH: usize = 500;
/// How often a follower tries to become the relay, and the leader re-checks without a NOTIFY.
const POLL: Duration = Duration::from_secs(1);
/// Pause before retrying after a transient failure.
const RETRY: Duration = Duration::from_millis(500);
/// How long the relay lease lasts unless renewed: how long a paused, hung or cut-off leader
/// can hold the outbox up before a survivor takes over.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// How often the leader renews its lease (well inside [`LEASE_TTL`]).
const RENEW_EVERY: Duration = Duration::from_millis(750);
/// A leader publishes only while at least this much of its lease is left on its own clock.
const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// After the broker was unreachable, rows sent this long before are published again: a broker
/// that restarted may have lost the tail it had acknowledged (consumers drop duplicates).
const REPUBLISH_WINDOW: Duration = Duration::from_secs(10);

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

/// Runs the relay for as long as the process lives: campaigns for the lease as `holder` (unique
/// per process), then publishes while it holds it.
pub fn spawn_relay(database_url: String, holder: String, publisher: Arc<Publisher>) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = lead(&database_url, &holder, &publisher).await {
                tracing::warn!("outbox relay: {e}");
            }
            tokio::time::sleep(POLL).await;
        }
    });
}

/// One leadership attempt on a dedicated connection (`LISTEN` belongs to the session).
/// Returns when the connection fails or the lease is lost.
async fn lead(url: &str, holder: &str, publisher: &Publisher) -> Result<(), PipelineError> {
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
        let mut leadership = loop {
            let asked = Instant::now();
            if let Some(lease) = rows::try_lead(&client, holder, LEASE_TTL).await? {
                break Leadership {
                    lease,
                    valid_until: asked + LEASE_TTL,
                    renewed_at: asked,
                };
            }
            tokio::time::sleep(POLL).await;
        };
        rows::listen(&client).await?;
        tracing::info!(
            "outbox relay: this instance publishes the outbox (lease epoch {})",
            leadership.lease.epoch
        );
        relay(&client, publisher, &wake, &mut leadership).await?;
        tracing::warn!(
            "outbox relay: lease epoch {} lost to another instance; stepping down",
            leadership.lease.epoch
        );
        Ok(())
    }
    .await;
    driver.abort();
    result
}

/// The leader's view of its lease. `valid_until` is on this process's monotonic clock and is
/// counted from before the renewal was sent, so it never outlasts the database's expiry: a
/// leader that was paused finds it passed when it resumes, before it publishes anything.
struct Leadership {
    lease: Lease,
    valid_until: Instant,
    renewed_at: Instant,
}

impl Leadership {
    /// Renews the lease; false when it was lost.
    async fn renew(&mut self, client: &tokio_postgres::Client) -> Result<bool, PipelineError> {
        let asked = Instant::now();
        if !rows::renew(client, &self.lease, LEASE_TTL).await? {
            return Ok(false);
        }
        self.valid_until = asked + LEASE_TTL;
        self.renewed_at = asked;
        Ok(true)
    }

    /// Renews when due, or when too little of the lease is left to act on; false when lost.
    async fn keep(&mut self, client: &tokio_postgres::Client) -> Result<bool, PipelineError> {
        let now = Instant::now();
        if now >= self.renewed_at + RENEW_EVERY || now + LEASE_MARGIN >= self.valid_until {
            return self.renew(client).await;
        }
        Ok(true)
    }
}

/// Publishes pending rows while the lease is held; `Ok(())` once it is lost.
async fn relay(
    client: &tokio_postgres::Client,
    publisher: &Publisher,
    wake: &Notify,
    leadership: &mut Leadership,
) -> Result<(), PipelineError> {
    let mut last_cleanup = tokio::time::Instant::now();
    let mut outages = publisher.outages();
    // Republish once more after the first round the broker answers again: acknowledgements
    // from the old broker may have been marked after the first republish.
    let mut republish_again = false;
    loop {
        if !leadership.keep(client).await? {
            return Ok(());
        }
        if publisher.outages() != outages {
            outages = publisher.outages();
            republish_again = true;
            republish_recent(client, &leadership.lease).await?;
        }
        let round = std::time::Instant::now();
        let pending = rows::pending(client, BATCH as i64).await?;
        if pending.is_empty() {
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = tokio::time::Instant::now();
                rows::delete_old_sent(client).await?;
            }
            let _ = tokio::time::timeout(RENEW_EVERY, wake.notified()).await;
            continue;
        }
        // The fencing check: publish only under a lease this process still holds.
        if !leadership.keep(client).await? {
            return Ok(());
        }
        let fetched = round.elapsed();
        let Some(outcome) = publish_renewing(client, publisher, &pending, leadership).await? else {
            return Ok(());
        };
        let published = round.elapsed();
        if !rows::mark_sent_fenced(client, &outcome.sent, &leadership.lease).await? {
            return Ok(());
        }
        // The relay's share of an event's latency (perf/RESULTS.md, the scale-out breakdown).
        tracing::debug!(
            "relay round: {} rows, fetched in {} µs, published (acknowledged) in {} µs, \
             marked sent in {} µs",
            pending.len(),
            fetched.as_micros(),
            (published - fetched).as_micros(),
            (round.elapsed() - published).as_micros()
        );
        for (id, error) in &outcome.dead {
            tracing::warn!("outbox relay: dead-lettering outbox row {id}: {error}");
            rows::move_to_dead_letters(client, *id, &error.to_string()).await?;
        }
        if let Some(e) = outcome.stalled {
            // Kafka is unreachable or busy: keep the rest and retry shortly.
            tracing::warn!("outbox relay: {e}; retrying");
            tokio::time::sleep(Duration::from_millis(250)).await;
        } else if republish_again && !outcome.sent.is_empty() {
            republish_again = false;
            republish_recent(client, &leadership.lease).await?;
        }
    }
}

/// Marks what was sent in the last [`REPUBLISH_WINDOW`] as pending again.
async fn republish_recent(
    client: &tokio_postgres::Client,
    lease: &Lease,
) -> Result<(), PipelineError> {
    let n = rows::unsend_recent(client, REPUBLISH_WINDOW, lease).await?;
    tracing::warn!(
        "outbox relay: the broker was unreachable; republishing the {n} events sent in the last \
         {} s (a restarted broker may have lost what it had acknowledged)",
        REPUBLISH_WINDOW.as_secs()
    );
    Ok(())
}

/// Publishes `rows`, renewing the lease meanwhile (a publish waits up to the producer's
/// delivery timeout while Kafka is down, and leadership must not flap because of it). `None`
/// when the lease was lost during the publish.
async fn publish_renewing(
    client: &tokio_postgres::Client,
    publisher: &Publisher,
    rows: &[OutboxRow],
    leadership: &mut Leadership,
) -> Result<Option<kafka::SendOutcome>, PipelineError> {
    let send = publisher.send(rows);
    tokio::pin!(send);
    let mut tick = tokio::time::interval_at(Instant::now() + RENEW_EVERY, RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            outcome = &mut send => return Ok(Some(outcome)),
            _ = tick.tick() => {
                if !leadership.renew(client).await? {
                    return Ok(None);
                }
            }
        }
    }
}
