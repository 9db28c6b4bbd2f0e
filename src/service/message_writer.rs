//! The message write path: one writer task per instance takes the messages that REST and STOMP
//! submit from a bounded queue and writes them in batches (group commit).
//!
//! A batch is what is queued when the writer comes round (at most
//! `DISCODEIT_MESSAGE_BATCH_MAX`, optionally waiting `DISCODEIT_MESSAGE_BATCH_WINDOW_US` after
//! the first message for more). For each batch, in queue order, the writer
//! 1. looks up channels and authors in [`super::lookups`] (the database only for misses, one
//!    query per kind), refuses the messages that break a rule, one by one, and gives the rest
//!    strictly increasing creation times;
//! 2. writes them with one statement ([`crate::store::message_batch`]: one multi-row `INSERT`
//!    per table) that commits by itself — in multi-instance mode in one transaction with the
//!    events' outbox rows;
//! 3. once the batch is done and every earlier batch finished: broadcasts its messages in
//!    commit order, starts the attachment uploads and answers each sender.
//!
//! Up to `DISCODEIT_MESSAGE_BATCHES_IN_FLIGHT` batches are written at once (step 2 of one
//! overlaps steps 1–2 of the next; the WAL flushes overlap too), but they finish in queue order,
//! so broadcasts and answers keep submission order. A message that breaks a rule fails alone; a
//! database failure fails its whole batch, and each sender learns that its message was not
//! stored (when the connection broke before the answer, the writer first finds out whether the
//! batch committed).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::lookups::{ChannelFacts, Resolved};
use super::uploads::{StagedUploads, UploadKind};
use super::{CommitError, Services};
use crate::bus::EventBus;
use crate::config::Config;
use crate::domain::{BinaryContentDto, Change, ChannelType, Event, MessageDto, UserDto};
use crate::error::{ApiError, ApiResult};
use crate::store::message_batch::{self, NewMessage};
use crate::store::{channels, db::is_foreign_key_violation};

/// How long the writer keeps trying to learn whether a batch whose `COMMIT` was cut off
/// committed (the database is restarting, typically), before telling its senders the outcome
/// is unknown.
const COMMIT_CHECK_PATIENCE: Duration = Duration::from_secs(30);

/// One message admitted to the writer; the caller already checked everything that needs no
/// database (content, author = caller, file metadata).
pub(crate) struct Submission {
    pub author: Uuid,
    pub channel: Uuid,
    pub content: String,
    pub files: Vec<(BinaryContentDto, Bytes)>,
    pub request_id: String,
    pub reply: oneshot::Sender<ApiResult<MessageDto>>,
}

/// The submitting side of the writer: a bounded queue, so a burst waits here (back-pressure
/// on the senders) instead of growing without limit.
pub(crate) struct MessageWriter {
    tx: mpsc::Sender<Submission>,
    capacity: usize,
}

impl MessageWriter {
    /// Spawns the writer task; it ends when the services are dropped. `depth`: batches in
    /// flight at once.
    /// `bus`: whose backlog holds the writer back (see `bus::backlog`).
    pub fn start(services: Weak<Services>, bus: EventBus, config: &Config, depth: usize) -> Self {
        let (tx, rx) = mpsc::channel(config.message_queue);
        tokio::spawn(run(
            services,
            bus,
            rx,
            config.message_batch_max,
            config.message_batch_window,
            depth,
        ));
        MessageWriter {
            tx,
            capacity: config.message_queue,
        }
    }

    /// Enqueues `s` once there is room: waiting as long as it takes (`limit` None) or at most
    /// `limit`, after which the queue counts as full (503).
    pub async fn admit(&self, s: Submission, limit: Option<Duration>) -> ApiResult<()> {
        let permit = match limit {
            None => self.tx.reserve().await,
            Some(limit) => match tokio::time::timeout(limit, self.tx.reserve()).await {
                Ok(p) => p,
                Err(_) => {
                    return Err(ApiError::service_unavailable(&format!(
                        "message not accepted: the write queue stayed full ({} messages) for {} ms; retry later",
                        self.capacity,
                        limit.as_millis()
                    )))
                }
            },
        };
        let permit =
            permit.map_err(|_| ApiError::service_unavailable("the message writer stopped"))?;
        permit.send(s);
        Ok(())
    }

    /// Messages waiting in the queue (not yet taken into a batch).
    pub fn queued(&self) -> usize {
        self.capacity - self.tx.capacity()
    }
}

/// A submitted message's outcome: resolves once its batch committed (the stored message, as
/// broadcast) or failed.
pub struct PendingMessage(pub(crate) oneshot::Receiver<ApiResult<MessageDto>>);

impl Future for PendingMessage {
    type Output = ApiResult<MessageDto>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| Err(ApiError::service_unavailable("the message writer stopped")))
        })
    }
}

/// Creation times strictly increasing in write order, so the stored order (`created_at`) is the
/// order messages were committed and broadcast in.
#[derive(Default)]
struct Clock {
    last: Option<DateTime<Utc>>,
}

impl Clock {
    fn next(&mut self) -> DateTime<Utc> {
        let mut at = crate::time::now();
        if let Some(last) = self.last {
            if at <= last {
                at = last + chrono::Duration::microseconds(1);
            }
        }
        self.last = Some(at);
        at
    }
}

/// The writer task: takes batches in queue order, keeps up to `depth` of them in flight (one
/// writes while the next is prepared and sent) and finishes them strictly in order.
async fn run(
    services: Weak<Services>,
    bus: EventBus,
    mut rx: mpsc::Receiver<Submission>,
    max: usize,
    window: Duration,
    depth: usize,
) {
    let mut clock = Clock::default();
    let mut in_flight: FuturesOrdered<BoxFuture<'static, Finished>> = FuturesOrdered::new();
    let mut buf: Vec<Submission> = Vec::with_capacity(max);
    let mut open = true;
    loop {
        // No new batch while the fan-out is too far behind: the queue fills and the senders
        // wait (STOMP) or get 503 (REST) instead of the broadcast backlog growing.
        let behind = open && bus.is_behind();
        let room = open && in_flight.len() < depth && !behind;
        tokio::select! {
            biased;
            Some(done) = in_flight.next() => {
                let Some(services) = services.upgrade() else { return };
                done.finish(&services);
            }
            _ = bus.wait_ready(None), if behind => {}
            // `recv_many` is cancel-safe: what it took stays in `buf`.
            n = rx.recv_many(&mut buf, max), if room => {
                if n == 0 {
                    open = false;
                    continue;
                }
                if !window.is_zero() {
                    let deadline = tokio::time::Instant::now() + window;
                    while buf.len() < max {
                        let room = max - buf.len();
                        match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, room)).await {
                            Ok(n) if n > 0 => {}
                            _ => break,
                        }
                    }
                }
                let Some(services) = services.upgrade() else { return };
                let batch = std::mem::replace(&mut buf, Vec::with_capacity(max));
                in_flight.push_back(services.start_batch(batch, &mut clock).await);
            }
            else => return,
        }
    }
}

/// A message that passed every rule, ready to insert.
struct Prepared {
    sub: Submission,
    dto: MessageDto,
    /// The NEW_MESSAGE notification title.
    title: String,
    /// Its attachments' jobs and staged bytes, once written in the batch's transaction;
    /// dropping them unused (the batch failed) removes the staged files.
    staged: Option<StagedUploads>,
}

/// The batch's rows for the statement.
fn rows_of(batch: &[Prepared]) -> Vec<NewMessage<'_>> {
    batch
        .iter()
        .map(|p| NewMessage {
            id: p.dto.id,
            channel_id: p.dto.channel_id,
            author_id: p.sub.author,
            content: &p.dto.content,
            at: p.dto.created_at,
            title: &p.title,
            files: p.sub.files.iter().map(|f| &f.0).collect(),
        })
        .collect()
}

/// Why a batch was not written.
enum BatchError {
    /// A channel or author was deleted while the statement ran: worth one more try, which
    /// skips its messages.
    Vanished,
    /// Nothing was stored.
    Failed(ApiError),
    /// The answer to the statement that commits was lost: the batch may or may not be stored.
    Unknown(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for BatchError {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_foreign_key_violation(&e) {
            BatchError::Vanished
        } else {
            BatchError::Failed(not_stored(&e))
        }
    }
}

/// The error every sender of a failed batch gets: 503 when the database is unreachable or
/// went away (retrying is right), 500 when it refused the batch.
fn not_stored(e: &tokio_postgres::Error) -> ApiError {
    use tokio_postgres::error::SqlState;
    let gone = match e.as_db_error() {
        // No answer from the server: I/O error, closed connection, timeout.
        None => true,
        Some(db) => [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(db.code()),
    };
    tracing::warn!("message batch not stored: {e}");
    if gone {
        unavailable()
    } else {
        ApiError::internal(format!("message batch: {e}")).detail(
            "reason",
            "message not stored: the database refused the batch it was written in",
        )
    }
}

/// 503 for a batch that could not reach the database.
fn unavailable() -> ApiError {
    ApiError::service_unavailable("message not stored: the database is unavailable; retry")
}

/// The notification title of a message by `author` in `channel` (the reference's format).
fn title(channel: &ChannelFacts, author: &UserDto) -> String {
    match channel.channel_type {
        ChannelType::Public => format!(
            "{} (# {})",
            author.username,
            channel.name.as_deref().unwrap_or_default()
        ),
        ChannelType::Private => author.username.clone(),
    }
}

/// The rules that need the channel and the author, in the reference's order: channel 404,
/// author 404, private channel 403.
fn check(sub: &Submission, found: &Resolved) -> ApiResult<(Arc<ChannelFacts>, Arc<UserDto>)> {
    let channel = found
        .channels
        .get(&sub.channel)
        .ok_or_else(|| ApiError::channel_not_found(sub.channel))?;
    let author = found
        .users
        .get(&sub.author)
        .ok_or_else(|| ApiError::user_not_found(sub.author))?;
    if !channel.admits(sub.author) {
        return Err(ApiError::denied());
    }
    Ok((channel.clone(), author.clone()))
}

/// A batch whose outcome is known, waiting for its turn (batches finish in queue order, so
/// broadcasts and answers follow the order messages were submitted in).
struct Finished {
    /// Answers for messages refused before the write.
    refused: Vec<(Submission, ApiError)>,
    outcome: Outcome,
}

enum Outcome {
    Nothing,
    /// Committed: per message `None` when written, else why not; the events in commit order.
    Written(Vec<Prepared>, Vec<Option<ApiError>>, Vec<Event>),
    /// Not stored: every message gets this error.
    Failed(Vec<Prepared>, ApiError),
}

impl Finished {
    fn finish(self, services: &Arc<Services>) {
        for (sub, e) in self.refused {
            let _ = sub.reply.send(Err(e));
        }
        match self.outcome {
            Outcome::Nothing => {}
            Outcome::Written(batch, skipped, events) => services.deliver(batch, skipped, events),
            Outcome::Failed(batch, e) => fail_all(batch.into_iter().map(|p| p.sub), &e),
        }
    }
}

impl Services {
    /// The in-order part of a batch: a connection, the lookups, the rules, creation times.
    /// Returns the write itself, to run while the next batch is prepared.
    async fn start_batch(
        self: Arc<Self>,
        subs: Vec<Submission>,
        clock: &mut Clock,
    ) -> BoxFuture<'static, Finished> {
        let started = std::time::Instant::now();
        let refuse_all = |subs: Vec<Submission>, e: ApiError| {
            let finished = Finished {
                refused: subs.into_iter().map(|s| (s, e.clone())).collect(),
                outcome: Outcome::Nothing,
            };
            Box::pin(std::future::ready(finished)) as BoxFuture<'static, Finished>
        };
        let client = match self.db.client().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("message batch not stored: {e}");
                return refuse_all(subs, unavailable());
            }
        };
        let found = match self
            .lookups
            .resolve(
                &**client,
                subs.iter().map(|s| s.channel),
                subs.iter().map(|s| s.author),
            )
            .await
        {
            Ok(f) => f,
            Err(e) => return refuse_all(subs, not_stored(&e)),
        };
        let mut refused = Vec::new();
        let mut batch = Vec::with_capacity(subs.len());
        for sub in subs {
            match check(&sub, &found) {
                Ok((channel, author)) => {
                    let p = prepare(sub, &channel, &author, clock);
                    // An event the outbox would refuse (too large for a Kafka record) fails
                    // its own message here, not the whole batch's transaction later.
                    match self.outbox_refuses(&p) {
                        Some(e) => refused.push((p.sub, e)),
                        None => batch.push(p),
                    }
                }
                Err(e) => refused.push((sub, e)),
            }
        }
        let looked_up = started.elapsed();
        Box::pin(async move {
            let outcome = if batch.is_empty() {
                Outcome::Nothing
            } else {
                self.write(client, batch).await
            };
            tracing::debug!(
                "message batch: lookups {} µs, written in {} µs",
                looked_up.as_micros(),
                (started.elapsed() - looked_up).as_micros()
            );
            Finished { refused, outcome }
        })
    }

    /// Writes a prepared batch (once more if a channel or author vanished in the middle of
    /// the statement: its row is then skipped) and works out every message's outcome.
    async fn write(
        self: Arc<Self>,
        mut client: crate::store::db::Client,
        mut batch: Vec<Prepared>,
    ) -> Outcome {
        let mut result = self.insert_batch(&mut client, &mut batch).await;
        if matches!(result, Err(BatchError::Vanished)) {
            result = self.insert_batch(&mut client, &mut batch).await;
        }
        match result {
            Ok((written, events)) => {
                let skipped = self.why_skipped(&client, &batch, &written).await;
                Outcome::Written(batch, skipped, events)
            }
            Err(BatchError::Vanished) => Outcome::Failed(
                batch,
                ApiError::service_unavailable(
                    "message not stored: a channel or author of its batch was deleted meanwhile; retry",
                ),
            ),
            Err(BatchError::Failed(e)) => Outcome::Failed(batch, e),
            Err(BatchError::Unknown(e)) => {
                drop(client);
                self.resolve_unknown_commit(batch, e).await
            }
        }
    }

    /// Writes the batch: in single-instance mode one statement that commits by itself (one
    /// round trip, one WAL flush); in multi-instance mode that statement and the events' outbox
    /// rows in one transaction. Returns the ids written and their events in commit order.
    async fn insert_batch(
        &self,
        client: &mut crate::store::db::Client,
        batch: &mut [Prepared],
    ) -> Result<(HashSet<Uuid>, Vec<Event>), BatchError> {
        // A retry stages afresh: what an earlier attempt staged goes first (same file names).
        for p in batch.iter_mut() {
            p.staged = None;
        }
        let rows = rows_of(batch);
        let with_files = batch.iter().any(|p| !p.sub.files.is_empty());
        if !self.bus.is_distributed() && !with_files {
            let written = message_batch::insert(&*client, &rows).await.map_err(|e| {
                match e.as_db_error() {
                    // No answer: the statement may have committed.
                    None => BatchError::Unknown(e),
                    Some(_) => BatchError::from(e),
                }
            })?;
            let events = events_of(batch, &written);
            return Ok((written.messages, events));
        }
        drop(rows);
        let tx = client.transaction().await?;
        let written = message_batch::insert(&tx, &rows_of(batch)).await?;
        // Upload jobs and staged bytes in the same transaction (see `uploads.rs`): a crash
        // after the commit leaves work the next start finishes, never a WAITING row forever.
        for p in batch
            .iter_mut()
            .filter(|p| !p.sub.files.is_empty() && written.messages.contains(&p.dto.id))
        {
            let staged = self
                .insert_upload_jobs(
                    &*tx,
                    &p.sub.files,
                    UploadKind::Attachment,
                    Some(p.sub.author),
                    &p.sub.request_id,
                )
                .await
                .map_err(BatchError::Failed)?;
            p.staged = Some(staged);
        }
        let events = events_of(batch, &written);
        match self.try_commit(tx, &events).await {
            Ok(()) => Ok((written.messages, events)),
            Err(CommitError::Failed(e)) => Err(BatchError::Failed(not_stored(&e))),
            // The error says why (its reason names the event and the limit).
            Err(CommitError::Outbox(e)) => Err(BatchError::Failed(e)),
            Err(CommitError::Unknown(e)) => Err(BatchError::Unknown(e)),
        }
    }

    /// Per message of the batch: `None` when written, else why it was not (its channel or its
    /// author was deleted after the lookup; a rare race, so one more query is fine).
    async fn why_skipped(
        &self,
        client: &crate::store::db::Client,
        batch: &[Prepared],
        written: &HashSet<Uuid>,
    ) -> Vec<Option<ApiError>> {
        let missing: Vec<Uuid> = batch
            .iter()
            .filter(|p| !written.contains(&p.dto.id))
            .map(|p| p.dto.channel_id)
            .collect();
        let channels_left: HashSet<Uuid> = if missing.is_empty() {
            HashSet::new()
        } else {
            // What the caches said is stale: look these up afresh next time.
            for p in batch.iter().filter(|p| !written.contains(&p.dto.id)) {
                self.lookups.apply(&Change::Channel(p.dto.channel_id));
                self.lookups.apply(&Change::User(p.sub.author));
            }
            channels::get_many(&***client, &missing)
                .await
                .map(|rows| rows.into_iter().map(|c| c.id).collect())
                .unwrap_or_default()
        };
        batch
            .iter()
            .map(|p| {
                if written.contains(&p.dto.id) {
                    None
                } else if channels_left.contains(&p.dto.channel_id) {
                    Some(ApiError::user_not_found(p.sub.author))
                } else {
                    Some(ApiError::channel_not_found(p.dto.channel_id))
                }
            })
            .collect()
    }

    /// In multi-instance mode: why the outbox would refuse this message's event, if it would.
    fn outbox_refuses(&self, p: &Prepared) -> Option<ApiError> {
        let outbox = self.bus.outbox()?;
        let event = Event::MessageCreated {
            message: Arc::new(p.dto.clone()),
        };
        outbox
            .check(std::slice::from_ref(&event))
            .err()
            .map(Into::into)
    }

    /// After the commit: broadcast in commit order, start the uploads, answer the senders.
    fn deliver(
        self: &Arc<Self>,
        batch: Vec<Prepared>,
        skipped: Vec<Option<ApiError>>,
        events: Vec<Event>,
    ) {
        self.after_commit(events);
        for (p, refused) in batch.into_iter().zip(skipped) {
            if let Some(e) = refused {
                let _ = p.sub.reply.send(Err(e));
                continue;
            }
            if let Some(staged) = p.staged {
                self.store_uploads_later(staged);
            }
            let _ = p.sub.reply.send(Ok(p.dto));
        }
    }

    /// The answer to the committing statement was lost (the connection broke): asks the
    /// database, once it answers again, which of the batch's messages exist. Either all that
    /// could be written are, or none.
    async fn resolve_unknown_commit(
        &self,
        batch: Vec<Prepared>,
        cause: tokio_postgres::Error,
    ) -> Outcome {
        tracing::warn!("message batch commit interrupted ({cause}); checking whether it committed");
        let ids: Vec<Uuid> = batch.iter().map(|p| p.dto.id).collect();
        let deadline = tokio::time::Instant::now() + COMMIT_CHECK_PATIENCE;
        let stored = loop {
            if let Ok(c) = self.db.client().await {
                if let Ok(found) = message_batch::existing(&**c, &ids).await {
                    break Some(found);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        match stored {
            Some(found) if !found.is_empty() => {
                // Committed. The notification pushes of a single-instance batch are lost (their
                // rows exist); the messages are broadcast.
                let events = batch
                    .iter()
                    .filter(|p| found.contains(&p.dto.id))
                    .map(|p| Event::MessageCreated {
                        message: Arc::new(p.dto.clone()),
                    })
                    .collect();
                let skipped = match self.db.client().await {
                    Ok(c) => self.why_skipped(&c, &batch, &found).await,
                    Err(_) => batch
                        .iter()
                        .map(|p| {
                            (!found.contains(&p.dto.id))
                                .then(|| ApiError::channel_not_found(p.dto.channel_id))
                        })
                        .collect(),
                };
                Outcome::Written(batch, skipped, events)
            }
            Some(_) => Outcome::Failed(
                batch,
                ApiError::service_unavailable(
                    "message not stored: the database connection broke while it was written; retry",
                ),
            ),
            None => Outcome::Failed(
                batch,
                ApiError::service_unavailable(
                    "the database connection broke while the message was written and the \
                     database has not come back: it may or may not be stored",
                ),
            ),
        }
    }
}

/// Each written message's `MessageCreated` followed by its notifications' pushes.
fn events_of(batch: &[Prepared], written: &message_batch::Written) -> Vec<Event> {
    let mut events = Vec::with_capacity(batch.len() * 2);
    for (p, notes) in batch.iter().zip(&written.notifications) {
        if !written.messages.contains(&p.dto.id) {
            continue;
        }
        events.push(Event::MessageCreated {
            message: Arc::new(p.dto.clone()),
        });
        events.extend(notes.iter().map(Services::notification_event));
    }
    events
}

/// Turns a checked submission into the message it will be.
fn prepare(
    sub: Submission,
    channel: &ChannelFacts,
    author: &UserDto,
    clock: &mut Clock,
) -> Prepared {
    let at = clock.next();
    let dto = MessageDto {
        id: Uuid::new_v4(),
        created_at: at,
        updated_at: at,
        content: sub.content.clone(),
        channel_id: sub.channel,
        author: Some(author.clone()),
        attachments: sub.files.iter().map(|f| f.0.clone()).collect(),
    };
    Prepared {
        title: title(channel, author),
        dto,
        sub,
        staged: None,
    }
}

fn fail_all(subs: impl Iterator<Item = Submission>, e: &ApiError) {
    for s in subs {
        let _ = s.reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_repeats_or_goes_back() {
        let mut c = Clock::default();
        let mut last = c.next();
        for _ in 0..10_000 {
            let t = c.next();
            assert!(t > last);
            last = t;
        }
    }
}
