//! `read_statuses`: per-user, per-channel read marker and notification switch.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::domain::ReadStatusDto;
use crate::error::ApiResult;

const SELECT: &str =
    "SELECT id, user_id, channel_id, last_read_at, notification_enabled FROM read_statuses";

fn from_row(r: &tokio_postgres::Row) -> ReadStatusDto {
    ReadStatusDto {
        id: r.get(0),
        user_id: r.get(1),
        channel_id: r.get(2),
        last_read_at: r.get(3),
        notification_enabled: r.get(4),
    }
}

/// Inserts unless (user, channel) exists; returns false on a duplicate.
pub async fn insert(c: &impl GenericClient, rs: &ReadStatusDto) -> ApiResult<bool> {
    Ok(c.execute(
        "INSERT INTO read_statuses (id, created_at, updated_at, user_id, channel_id, last_read_at, notification_enabled)
         VALUES ($1, now(), now(), $2, $3, $4, $5) ON CONFLICT (user_id, channel_id) DO NOTHING",
        &[&rs.id, &rs.user_id, &rs.channel_id, &rs.last_read_at, &rs.notification_enabled],
    )
    .await?
        > 0)
}

pub async fn get(c: &impl GenericClient, id: Uuid) -> ApiResult<Option<ReadStatusDto>> {
    let sql = format!("{SELECT} WHERE id = $1");
    Ok(c.query_opt(&sql, &[&id]).await?.map(|r| from_row(&r)))
}

pub async fn list_for_user(c: &impl GenericClient, user: Uuid) -> ApiResult<Vec<ReadStatusDto>> {
    let sql = format!("{SELECT} WHERE user_id = $1 ORDER BY created_at");
    Ok(c.query(&sql, &[&user])
        .await?
        .iter()
        .map(from_row)
        .collect())
}

pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    last_read_at: Option<DateTime<Utc>>,
    notification_enabled: Option<bool>,
) -> ApiResult<Option<ReadStatusDto>> {
    let sql = "UPDATE read_statuses SET updated_at = now(),
            last_read_at = COALESCE($2, last_read_at),
            notification_enabled = COALESCE($3, notification_enabled)
         WHERE id = $1
         RETURNING id, user_id, channel_id, last_read_at, notification_enabled";
    Ok(
        c.query_opt(sql, &[&id, &last_read_at, &notification_enabled])
            .await?
            .map(|r| from_row(&r)),
    )
}
