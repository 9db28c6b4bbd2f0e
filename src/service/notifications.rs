//! Notifications: listing, deleting (own only), and pushing each created one to its receiver.

use uuid::Uuid;

use super::Services;
use crate::domain::{Audience, Event, NotificationDto, SseEvent};
use crate::error::ApiResult;
use crate::security::Principal;
use crate::store::notifications;

impl Services {
    /// The SSE push of a notification to its receiver.
    pub(crate) fn notification_event(n: &NotificationDto) -> Event {
        Event::Sse(SseEvent::new(
            "notifications",
            n,
            Audience::Users(vec![n.receiver_id]),
        ))
    }

    pub async fn list_notifications(&self, caller: &Principal) -> ApiResult<Vec<NotificationDto>> {
        let db = self.db.client().await?;
        notifications::list_for(&**db, caller.user_id).await
    }

    /// Deletes it only when the caller is the receiver; otherwise a silent no-op.
    pub async fn delete_notification(&self, caller: &Principal, id: Uuid) -> ApiResult<()> {
        let db = self.db.client().await?;
        notifications::delete_owned(&**db, id, caller.user_id).await
    }
}
