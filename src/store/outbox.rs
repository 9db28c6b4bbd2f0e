//! `outbox` and `dead_letters`: the SQL of the multi-instance event pipeline (the writer and
//! relay that run it live in `crate::bus::outbox`).

use std::time::Duration;
use tokio_postgres::GenericClient;

use super::{Db, StoreError};

/// The `LISTEN`/`NOTIFY` channel that wakes the relay.
pub const NOTIFY_CHANNEL: &str = "discodeit_outbox";
/// Sent rows are kept this long (for inspection), then deleted.
const KEEP_SENT: &str = "10 minutes";

/// One event ready to be appended: its topic family, Kafka key and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    pub family: &'static str,
    pub key: String,
    pub payload: String,
}

/// One pending row, as the relay reads it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub family: String,
    pub key: String,
    pub payload: String,
}

/// Who gave up on a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterSource {
    /// The outbox writer could not append the event.
    OutboxWriter,
    /// The relay could not publish the row.
    Relay,
}

impl DeadLetterSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterSource::OutboxWriter => "outbox-writer",
            DeadLetterSource::Relay => "relay",
        }
    }
}

/// Appends `records` in the caller's transaction and notifies the relay (on commit).
pub async fn insert(c: &impl GenericClient, records: &[OutboxRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let families: Vec<&str> = records.iter().map(|r| r.family).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let payloads: Vec<&str> = records.iter().map(|r| r.payload.as_str()).collect();
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

/// Appends `records` in a transaction of their own.
pub async fn append(db: &Db, records: &[OutboxRecord]) -> Result<(), StoreError> {
    let mut client = db.conn().await?;
    let tx = client.transaction().await?;
    insert(&*tx, records).await?;
    tx.commit().await?;
    Ok(())
}

/// Up to `limit` unsent rows, oldest first.
pub async fn pending(c: &impl GenericClient, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(c.query(
        "SELECT id, family, key, payload FROM outbox
             WHERE sent_at IS NULL ORDER BY id LIMIT $1",
        &[&limit],
    )
    .await?
    .iter()
    .map(|r| OutboxRow {
        id: r.get(0),
        family: r.get(1),
        key: r.get(2),
        payload: r.get(3),
    })
    .collect())
}

/// Forgets rows sent longer ago than [`KEEP_SENT`].
pub async fn delete_old_sent(c: &impl GenericClient) -> Result<(), StoreError> {
    c.execute(
        &format!("DELETE FROM outbox WHERE sent_at < now() - interval '{KEEP_SENT}'"),
        &[],
    )
    .await?;
    Ok(())
}

/// The relay leadership held by `holder` under fencing token `epoch` (see `sql/005_relay_lease.sql`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub epoch: i64,
}

/// Takes the relay lease for `ttl` if it has expired (or `holder` already holds it: a leader
/// whose connection broke takes it back at once); the new epoch fences every earlier holder.
/// `None` while another holder's lease runs.
pub async fn try_lead(
    c: &impl GenericClient,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, StoreError> {
    let row = c
        .query_opt(
            "UPDATE relay_lease
                SET holder = $1, epoch = epoch + 1,
                    expires_at = now() + make_interval(secs => $2)
              WHERE id = 1 AND (expires_at < now() OR holder = $1)
             RETURNING epoch",
            &[&holder, &ttl.as_secs_f64()],
        )
        .await?;
    Ok(row.map(|r| Lease {
        holder: holder.to_string(),
        epoch: r.get(0),
    }))
}

/// Extends `lease` by `ttl` from now; false when it was lost (expired and taken, or expired:
/// an expired lease is not revived, since another instance may be taking it right now).
pub async fn renew(
    c: &impl GenericClient,
    lease: &Lease,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE relay_lease SET expires_at = now() + make_interval(secs => $3)
              WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at >= now()",
            &[&lease.holder, &lease.epoch, &ttl.as_secs_f64()],
        )
        .await?;
    Ok(n == 1)
}

/// Marks the rows sent in the last `window` as pending again (fenced like
/// [`mark_sent_fenced`]), so they are published again; returns how many.
pub async fn unsend_recent(
    c: &impl GenericClient,
    window: Duration,
    lease: &Lease,
) -> Result<u64, StoreError> {
    Ok(c.execute(
        "UPDATE outbox SET sent_at = NULL
          WHERE sent_at > now() - make_interval(secs => $1)
            AND EXISTS (SELECT 1 FROM relay_lease WHERE id = 1 AND holder = $2 AND epoch = $3)",
        &[&window.as_secs_f64(), &lease.holder, &lease.epoch],
    )
    .await?)
}

/// Marks rows sent, fenced: only while `lease` is the current one. Returns false (nothing
/// marked) when a newer leader exists, so a resumed stale leader learns it was replaced.
pub async fn mark_sent_fenced(
    c: &impl GenericClient,
    ids: &[i64],
    lease: &Lease,
) -> Result<bool, StoreError> {
    if ids.is_empty() {
        return Ok(true);
    }
    let row = c
        .query_one(
            "WITH fence AS (
                 SELECT 1 FROM relay_lease WHERE id = 1 AND holder = $2 AND epoch = $3),
             marked AS (
                 UPDATE outbox SET sent_at = now()
                  WHERE id = ANY($1) AND EXISTS (SELECT 1 FROM fence)
                 RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM fence)",
            &[&ids, &lease.holder, &lease.epoch],
        )
        .await?;
    Ok(row.get(0))
}

/// `LISTEN`s on [`NOTIFY_CHANNEL`] (on a dedicated connection).
pub async fn listen(c: &tokio_postgres::Client) -> Result<(), StoreError> {
    c.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")).await?;
    Ok(())
}

/// Records an event the writer could not append. `error` is stored with NULs made visible,
/// so the dead letter itself can always be written.
pub async fn dead_letter(
    c: &impl GenericClient,
    source: DeadLetterSource,
    kind: &str,
    key: &[u8],
    payload: &[u8],
    error: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO dead_letters (source, kind, key, payload, error) VALUES ($1, $2, $3, $4, $5)",
        &[
            &source.as_str(),
            &printable(kind, 20),
            &key,
            &payload,
            &printable(error, 4000),
        ],
    )
    .await?;
    Ok(())
}

/// Moves outbox row `id` to `dead_letters` (source `relay`) in one statement.
pub async fn move_to_dead_letters(
    c: &impl GenericClient,
    id: i64,
    error: &str,
) -> Result<(), StoreError> {
    c.execute(
        "WITH moved AS (DELETE FROM outbox WHERE id = $1 RETURNING id, family, key, payload)
         INSERT INTO dead_letters (source, kind, outbox_id, key, payload, error)
         SELECT 'relay', family, id, convert_to(key, 'UTF8'), convert_to(payload, 'UTF8'), $2
         FROM moved",
        &[&id, &printable(error, 4000)],
    )
    .await?;
    Ok(())
}

/// `s` without NULs (shown as `\0`) and at most `max` characters: text PostgreSQL accepts.
fn printable(s: &str, max: usize) -> String {
    s.replace('\0', "\\0").chars().take(max).collect()
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
pub async fn backlog(db: &Db) -> crate::error::ApiResult<Backlog> {
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
