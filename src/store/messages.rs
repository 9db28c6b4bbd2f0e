//! `messages` and `message_attachments`.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{binary_contents, users};
use crate::domain::{BinaryContentDto, MessageDto};
use crate::error::ApiResult;

/// A message row: the fields the service needs for rules (author, channel).
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub author_id: Option<Uuid>,
}

pub async fn get_row(c: &impl GenericClient, id: Uuid) -> ApiResult<Option<MessageRow>> {
    Ok(c.query_opt(
        "SELECT id, channel_id, author_id FROM messages WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|r| MessageRow {
        id: r.get(0),
        channel_id: r.get(1),
        author_id: r.get(2),
    }))
}

fn select() -> String {
    format!(
        "SELECT m.id, m.created_at, m.updated_at, m.content, m.channel_id, {}
         FROM messages m LEFT JOIN users u ON u.id = m.author_id
         LEFT JOIN binary_contents b ON b.id = u.profile_id",
        users::join_cols("u", "b")
    )
}

async fn hydrate(
    c: &impl GenericClient,
    rows: Vec<tokio_postgres::Row>,
) -> ApiResult<Vec<MessageDto>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let mut atts: HashMap<Uuid, Vec<BinaryContentDto>> = HashMap::new();
    if !ids.is_empty() {
        let sql = format!(
            "SELECT a.message_id, {} FROM message_attachments a
             JOIN binary_contents b ON b.id = a.attachment_id
             WHERE a.message_id = ANY($1) ORDER BY a.order_index",
            binary_contents::COLS
        );
        for r in c.query(&sql, &[&ids]).await? {
            if let Some(b) = binary_contents::from_row(&r, 1) {
                atts.entry(r.get(0)).or_default().push(b);
            }
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            let created: DateTime<Utc> = r.get(1);
            MessageDto {
                id,
                created_at: created,
                updated_at: r.get::<_, Option<DateTime<Utc>>>(2).unwrap_or(created),
                content: r.get::<_, Option<String>>(3).unwrap_or_default(),
                channel_id: r.get(4),
                author: users::from_row(r, 5).map(|u| u.dto),
                attachments: atts.remove(&id).unwrap_or_default(),
            }
        })
        .collect())
}

pub async fn get(c: &impl GenericClient, id: Uuid) -> ApiResult<Option<MessageDto>> {
    let sql = format!("{} WHERE m.id = $1", select());
    let rows = c.query(&sql, &[&id]).await?;
    Ok(hydrate(c, rows).await?.into_iter().next())
}

/// Up to `limit` messages of `channel` created strictly before `cursor`, newest first,
/// skipping `offset`.
pub async fn page(
    c: &impl GenericClient,
    channel: Uuid,
    cursor: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> ApiResult<Vec<MessageDto>> {
    let sql = format!(
        "{} WHERE m.channel_id = $1 AND m.created_at < $2
         ORDER BY m.created_at DESC, m.id DESC LIMIT $3 OFFSET $4",
        select()
    );
    let rows = c.query(&sql, &[&channel, &cursor, &limit, &offset]).await?;
    hydrate(c, rows).await
}

pub async fn update_content(c: &impl GenericClient, id: Uuid, content: &str) -> ApiResult<()> {
    c.execute(
        "UPDATE messages SET content = $2, updated_at = now() WHERE id = $1",
        &[&id, &content],
    )
    .await?;
    Ok(())
}

/// Deletes the message and its attachment rows; returns the attachment ids.
pub async fn delete(c: &impl GenericClient, id: Uuid) -> ApiResult<Vec<Uuid>> {
    let rows = c
        .query(
            "DELETE FROM binary_contents WHERE id IN (
                SELECT attachment_id FROM message_attachments WHERE message_id = $1)
             RETURNING id",
            &[&id],
        )
        .await?;
    c.execute("DELETE FROM messages WHERE id = $1", &[&id])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The channel an attachment belongs to, if it is a message attachment.
pub async fn channel_of_attachment(
    c: &impl GenericClient,
    attachment: Uuid,
) -> ApiResult<Option<Uuid>> {
    Ok(c.query_opt(
        "SELECT m.channel_id FROM message_attachments a JOIN messages m ON m.id = a.message_id
         WHERE a.attachment_id = $1",
        &[&attachment],
    )
    .await?
    .map(|r| r.get(0)))
}
