//! The message write path's one statement: a whole batch of new messages — their rows,
//! attachment rows and links, and NEW_MESSAGE notifications — with one multi-row `INSERT` per
//! table, chained as data-modifying CTEs so the batch costs one round trip. Outside a
//! transaction it commits by itself (one WAL flush for the batch); inside one it joins it.

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use uuid::Uuid;

use crate::domain::{BinaryContentDto, NotificationDto, NotificationType};

/// One new message of a batch.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub author_id: Uuid,
    pub content: &'a str,
    pub at: DateTime<Utc>,
    /// The title of its NEW_MESSAGE notifications.
    pub title: &'a str,
    /// Its attachments' metadata rows, in order.
    pub files: Vec<&'a BinaryContentDto>,
}

/// What the statement wrote.
#[derive(Debug, Default)]
pub struct Written {
    /// The messages inserted: all of them but those whose channel or author no longer exists.
    pub messages: HashSet<Uuid>,
    /// The notifications of each message, in the batch's order.
    pub notifications: Vec<Vec<NotificationDto>>,
}

const SQL: &str = "
WITH input AS MATERIALIZED (
    SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::uuid[], $5::uuid[],
                         $6::text[])
         WITH ORDINALITY AS x(id, at, content, channel_id, author_id, title, i)
), files AS MATERIALIZED (
    SELECT * FROM unnest($7::uuid[], $8::uuid[], $9::text[], $10::int8[], $11::text[],
                         $12::text[], $13::int4[])
         AS f(message_id, id, file_name, size, content_type, upload_status, order_index)
), m AS (
    INSERT INTO messages (id, created_at, updated_at, content, channel_id, author_id)
    SELECT x.id, x.at, x.at, x.content, x.channel_id, x.author_id FROM input x
    WHERE EXISTS (SELECT 1 FROM channels c WHERE c.id = x.channel_id)
      AND EXISTS (SELECT 1 FROM users u WHERE u.id = x.author_id)
    RETURNING id
), b AS (
    INSERT INTO binary_contents (id, created_at, file_name, size, content_type, upload_status)
    SELECT f.id, now(), f.file_name, f.size, f.content_type, f.upload_status FROM files f
    WHERE f.message_id IN (SELECT id FROM m)
), a AS (
    INSERT INTO message_attachments (message_id, attachment_id, order_index)
    SELECT f.message_id, f.id, f.order_index FROM files f
    WHERE f.message_id IN (SELECT id FROM m)
), n AS MATERIALIZED (
    SELECT gen_random_uuid() AS id, x.i, r.user_id, x.at, x.title, x.content, x.channel_id
    FROM input x
    JOIN read_statuses r ON r.channel_id = x.channel_id
         AND r.notification_enabled AND r.user_id <> x.author_id
    WHERE x.id IN (SELECT id FROM m)
), ni AS (
    INSERT INTO notifications
        (id, created_at, updated_at, receiver_id, title, content, type, target_id)
    SELECT id, at, at, user_id, title, content, 'NEW_MESSAGE', channel_id FROM n
)
SELECT x.i, NULL::uuid, NULL::uuid FROM input x WHERE x.id IN (SELECT id FROM m)
UNION ALL
SELECT n.i, n.id, n.user_id FROM n";

/// Inserts `batch` in one statement (see the module documentation).
pub async fn insert(
    c: &impl deadpool_postgres::GenericClient,
    batch: &[NewMessage<'_>],
) -> Result<Written, tokio_postgres::Error> {
    let stmt = c.prepare_cached(SQL).await?;
    let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
    let ats: Vec<DateTime<Utc>> = batch.iter().map(|m| m.at).collect();
    let contents: Vec<&str> = batch.iter().map(|m| m.content).collect();
    let channels: Vec<Uuid> = batch.iter().map(|m| m.channel_id).collect();
    let authors: Vec<Uuid> = batch.iter().map(|m| m.author_id).collect();
    let titles: Vec<&str> = batch.iter().map(|m| m.title).collect();
    let files: Vec<(Uuid, i32, &BinaryContentDto)> = batch
        .iter()
        .flat_map(|m| {
            m.files
                .iter()
                .enumerate()
                .map(move |(i, f)| (m.id, i as i32, *f))
        })
        .collect();
    let file_messages: Vec<Uuid> = files.iter().map(|f| f.0).collect();
    let file_ids: Vec<Uuid> = files.iter().map(|f| f.2.id).collect();
    let names: Vec<&str> = files.iter().map(|f| f.2.file_name.as_str()).collect();
    let sizes: Vec<i64> = files.iter().map(|f| f.2.size).collect();
    let types: Vec<&str> = files.iter().map(|f| f.2.content_type.as_str()).collect();
    let statuses: Vec<&str> = files.iter().map(|f| f.2.upload_status.as_str()).collect();
    let order: Vec<i32> = files.iter().map(|f| f.1).collect();
    let rows = c
        .query(
            &stmt,
            &[
                &ids,
                &ats,
                &contents,
                &channels,
                &authors,
                &titles,
                &file_messages,
                &file_ids,
                &names,
                &sizes,
                &types,
                &statuses,
                &order,
            ],
        )
        .await?;
    let mut out = Written {
        messages: HashSet::with_capacity(batch.len()),
        notifications: vec![Vec::new(); batch.len()],
    };
    for r in rows {
        // ORDINALITY counts from 1.
        let Some(m) = usize::try_from(r.get::<_, i64>(0) - 1)
            .ok()
            .and_then(|i| batch.get(i).map(|m| (i, m)))
        else {
            continue;
        };
        let (i, m) = m;
        match r.get::<_, Option<Uuid>>(1) {
            None => {
                out.messages.insert(m.id);
            }
            Some(id) => out.notifications[i].push(NotificationDto {
                id,
                created_at: m.at,
                receiver_id: r.get(2),
                title: m.title.to_string(),
                content: m.content.to_string(),
                notification_type: NotificationType::NewMessage,
                target_id: Some(m.channel_id),
            }),
        }
    }
    Ok(out)
}

/// Which of `ids` are stored messages (how the writer learns whether a batch whose commit
/// answer was lost committed).
pub async fn existing(
    c: &impl tokio_postgres::GenericClient,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, tokio_postgres::Error> {
    Ok(
        c.query("SELECT id FROM messages WHERE id = ANY($1)", &[&ids])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}
