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
