//! `channels`, with participants (read-status holders of private channels) and
//! `lastMessageAt` assembled in batch queries.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::users;
use crate::domain::{ChannelDto, ChannelType, UserDto};
use crate::error::ApiResult;

/// A channel row without the derived fields.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: Uuid,
    pub channel_type: ChannelType,
    pub name: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn row_of(r: &tokio_postgres::Row) -> ChannelRow {
    ChannelRow {
        id: r.get(0),
        channel_type: ChannelType::parse(r.get::<_, &str>(1)).unwrap_or(ChannelType::Public),
        name: r.get(2),
        description: r.get(3),
        created_at: r.get(4),
    }
}

const SELECT: &str = "SELECT c.id, c.type, c.name, c.description, c.created_at FROM channels c";

pub async fn insert(c: &impl GenericClient, ch: &ChannelRow) -> ApiResult<()> {
    c.execute(
        "INSERT INTO channels (id, created_at, updated_at, name, description, type)
         VALUES ($1, $2, $2, $3, $4, $5)",
        &[
            &ch.id,
            &ch.created_at,
            &ch.name,
            &ch.description,
            &ch.channel_type.as_str(),
        ],
    )
    .await?;
    Ok(())
}

pub async fn get(c: &impl GenericClient, id: Uuid) -> ApiResult<Option<ChannelRow>> {
    let sql = format!("{SELECT} WHERE c.id = $1");
    Ok(c.query_opt(&sql, &[&id]).await?.map(|r| row_of(&r)))
}

/// The channels among `ids` that exist.
pub async fn get_many(
    c: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<ChannelRow>, tokio_postgres::Error> {
    let sql = format!("{SELECT} WHERE c.id = ANY($1)");
    Ok(c.query(&sql, &[&ids]).await?.iter().map(row_of).collect())
}

/// `(channel, user)` for every read status in the channels `ids`: their members.
pub async fn members_of_many(
    c: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>, tokio_postgres::Error> {
    Ok(c.query(
        "SELECT channel_id, user_id FROM read_statuses WHERE channel_id = ANY($1)",
        &[&ids],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

/// Every PUBLIC channel plus every channel where `user` holds a read status.
pub async fn list_visible(c: &impl GenericClient, user: Uuid) -> ApiResult<Vec<ChannelRow>> {
    let sql = format!(
        "{SELECT} WHERE c.type = 'PUBLIC'
            OR EXISTS (SELECT 1 FROM read_statuses r WHERE r.channel_id = c.id AND r.user_id = $1)
         ORDER BY c.created_at"
    );
    Ok(c.query(&sql, &[&user]).await?.iter().map(row_of).collect())
}

pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
) -> ApiResult<()> {
    c.execute(
        "UPDATE channels SET updated_at = now(), name = COALESCE($2, name),
            description = COALESCE($3, description) WHERE id = $1",
        &[&id, &name, &description],
    )
    .await?;
    Ok(())
}

/// Deletes the channel, its messages' attachment rows, messages and read statuses.
pub async fn delete(c: &impl GenericClient, id: Uuid) -> ApiResult<Vec<Uuid>> {
    let rows = c
        .query(
            "DELETE FROM binary_contents WHERE id IN (
                SELECT a.attachment_id FROM message_attachments a
                JOIN messages m ON m.id = a.message_id WHERE m.channel_id = $1)
             RETURNING id",
            &[&id],
        )
        .await?;
    c.execute("DELETE FROM channels WHERE id = $1", &[&id])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// User ids holding a read status in `channel` (the members of a private channel).
pub async fn member_ids(c: &impl GenericClient, channel: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(c.query(
        "SELECT user_id FROM read_statuses WHERE channel_id = $1",
        &[&channel],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// True when `user` holds a read status in `channel`.
pub async fn is_member(c: &impl GenericClient, channel: Uuid, user: Uuid) -> ApiResult<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM read_statuses WHERE channel_id = $1 AND user_id = $2",
        &[&channel, &user],
    )
    .await?
    .is_some())
}

/// Builds DTOs for `rows`: private participants and `lastMessageAt` in two queries.
pub async fn to_dtos(c: &impl GenericClient, rows: Vec<ChannelRow>) -> ApiResult<Vec<ChannelDto>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let private: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.channel_type == ChannelType::Private)
        .map(|r| r.id)
        .collect();
    let mut last: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    if !ids.is_empty() {
        for r in c
            .query(
                "SELECT x.id, (SELECT m.created_at FROM messages m WHERE m.channel_id = x.id
                               ORDER BY m.created_at DESC LIMIT 1)
                 FROM unnest($1::uuid[]) AS x(id)",
                &[&ids],
            )
            .await?
        {
            if let Some(t) = r.get::<_, Option<DateTime<Utc>>>(1) {
                last.insert(r.get(0), t);
            }
        }
    }
    let mut members: HashMap<Uuid, Vec<UserDto>> = HashMap::new();
    if !private.is_empty() {
        let sql = format!(
            "SELECT r.channel_id, {} FROM read_statuses r JOIN users u ON u.id = r.user_id
             LEFT JOIN binary_contents b ON b.id = u.profile_id
             WHERE r.channel_id = ANY($1) ORDER BY r.created_at",
            users::join_cols("u", "b")
        );
        for r in c.query(&sql, &[&private]).await? {
            if let Some(u) = users::from_row(&r, 1) {
                members.entry(r.get(0)).or_default().push(u.dto);
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| ChannelDto {
            id: r.id,
            channel_type: r.channel_type,
            participants: members.remove(&r.id).unwrap_or_default(),
            last_message_at: last.get(&r.id).copied(),
            name: r.name,
            description: r.description,
        })
        .collect())
}
