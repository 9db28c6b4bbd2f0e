//! `notifications` and `async_task_failures`.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::domain::{NotificationDto, NotificationType};
use crate::error::ApiResult;

pub async fn insert(c: &impl GenericClient, n: &NotificationDto) -> ApiResult<()> {
    c.execute(
        "INSERT INTO notifications (id, created_at, updated_at, receiver_id, title, content, type, target_id)
         VALUES ($1, $2, $2, $3, $4, $5, $6, $7)",
        &[&n.id, &n.created_at, &n.receiver_id, &n.title, &n.content, &n.notification_type.as_str(), &n.target_id],
    )
    .await?;
    Ok(())
}

/// What a NEW_MESSAGE notification says about one new message.
#[derive(Debug, Clone)]
pub struct NewMessageNotice {
    pub channel_id: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub content: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// NEW_MESSAGE notifications for every new message in `notices`: one per member of its channel
/// with notifications on, except its author, in one statement (inside the messages'
/// transaction, so they exist exactly when the messages do). Returns them grouped by notice,
/// in the notices' order.
pub async fn insert_for_new_messages(
    c: &impl deadpool_postgres::GenericClient,
    notices: &[NewMessageNotice],
) -> Result<Vec<Vec<NotificationDto>>, tokio_postgres::Error> {
    let mut out = vec![Vec::new(); notices.len()];
    if notices.is_empty() {
        return Ok(out);
    }
    let stmt = c
        .prepare_cached(
            "WITH n AS MATERIALIZED (
                 SELECT gen_random_uuid() AS id, m.i, r.user_id, m.at, m.title, m.content,
                        m.channel_id
                 FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[])
                      WITH ORDINALITY AS m(channel_id, author_id, at, title, content, i)
                 JOIN read_statuses r ON r.channel_id = m.channel_id
                      AND r.notification_enabled AND r.user_id <> m.author_id),
             ins AS (
                 INSERT INTO notifications
                     (id, created_at, updated_at, receiver_id, title, content, type, target_id)
                 SELECT id, at, at, user_id, title, content, 'NEW_MESSAGE', channel_id FROM n)
             SELECT i, id, user_id FROM n ORDER BY i",
        )
        .await?;
    let channels: Vec<Uuid> = notices.iter().map(|n| n.channel_id).collect();
    let authors: Vec<Uuid> = notices.iter().map(|n| n.author_id).collect();
    let ats: Vec<chrono::DateTime<chrono::Utc>> = notices.iter().map(|n| n.at).collect();
    let titles: Vec<&str> = notices.iter().map(|n| n.title.as_str()).collect();
    let contents: Vec<&str> = notices.iter().map(|n| n.content.as_str()).collect();
    for r in c
        .query(&stmt, &[&channels, &authors, &ats, &titles, &contents])
        .await?
    {
        // ORDINALITY counts from 1.
        let Some(at) = usize::try_from(r.get::<_, i64>(0) - 1).ok() else {
            continue;
        };
        let (Some(notice), Some(list)) = (notices.get(at), out.get_mut(at)) else {
            continue;
        };
        list.push(NotificationDto {
            id: r.get(1),
            created_at: notice.at,
            receiver_id: r.get(2),
            title: notice.title.clone(),
            content: notice.content.clone(),
            notification_type: NotificationType::NewMessage,
            target_id: Some(notice.channel_id),
        });
    }
    Ok(out)
}

pub async fn list_for(c: &impl GenericClient, receiver: Uuid) -> ApiResult<Vec<NotificationDto>> {
    Ok(c.query(
        "SELECT id, created_at, receiver_id, title, content, type, target_id FROM notifications
         WHERE receiver_id = $1 ORDER BY created_at DESC",
        &[&receiver],
    )
    .await?
    .iter()
    .map(|r| NotificationDto {
        id: r.get(0),
        created_at: r.get(1),
        receiver_id: r.get(2),
        title: r.get(3),
        content: r.get(4),
        notification_type: NotificationType::parse(r.get::<_, &str>(5))
            .unwrap_or(NotificationType::NewMessage),
        target_id: r.get(6),
    })
    .collect())
}

/// Deletes the notification only if `receiver` owns it.
pub async fn delete_owned(c: &impl GenericClient, id: Uuid, receiver: Uuid) -> ApiResult<()> {
    c.execute(
        "DELETE FROM notifications WHERE id = $1 AND receiver_id = $2",
        &[&id, &receiver],
    )
    .await?;
    Ok(())
}

pub async fn insert_task_failure(
    c: &impl GenericClient,
    task: &str,
    request_id: &str,
    reason: &str,
) -> ApiResult<()> {
    c.execute(
        "INSERT INTO async_task_failures (id, created_at, task_name, request_id, failure_reason)
         VALUES ($1, now(), $2, $3, $4)",
        &[&Uuid::new_v4(), &task, &request_id, &reason],
    )
    .await?;
    Ok(())
}
