//! Read statuses: create (own only), update (owner only), list (self or ADMIN).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::validation::Checks;
use super::Services;
use crate::domain::{ChannelType, ReadStatusDto};
use crate::error::{ApiError, ApiResult};
use crate::security::Principal;
use crate::store::{channels, read_statuses, users};
use crate::time::parse_instant;

/// `ReadStatusCreateRequest` (tolerant: absent `userId` means the caller).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadStatusCreateRequest {
    pub user_id: Option<Uuid>,
    pub channel_id: Option<Uuid>,
    pub last_read_at: Option<String>,
}

/// `ReadStatusUpdateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadStatusUpdateRequest {
    pub new_last_read_at: Option<String>,
    pub new_notification_enabled: Option<bool>,
}

/// Allowed client clock skew for "not in the future".
const SKEW_SECONDS: i64 = 5;

fn check_time(c: &mut Checks, field: &str, raw: &str) -> Option<DateTime<Utc>> {
    match parse_instant(raw) {
        None => {
            c.fail(field, "시간 형식이 올바르지 않습니다");
            None
        }
        Some(t) => {
            let ok = t <= Utc::now() + chrono::Duration::seconds(SKEW_SECONDS);
            c.check(
                ok,
                field,
                "마지막 읽은 시간은 현재 또는 과거 시간이어야 합니다",
            );
            Some(t)
        }
    }
}

impl Services {
    pub async fn create_read_status(
        &self,
        caller: &Principal,
        req: ReadStatusCreateRequest,
    ) -> ApiResult<ReadStatusDto> {
        let mut c = Checks::new();
        c.check(
            req.channel_id.is_some(),
            "channelId",
            "채널 ID는 필수입니다",
        );
        let at = match &req.last_read_at {
            None => {
                c.fail("lastReadAt", "마지막 읽은 시간은 필수입니다");
                None
            }
            Some(raw) => check_time(&mut c, "lastReadAt", raw),
        };
        c.finish()?;
        let user_id = req.user_id.unwrap_or(caller.user_id);
        if user_id != caller.user_id {
            return Err(ApiError::denied());
        }
        let (Some(channel_id), Some(at)) = (req.channel_id, at) else {
            return Err(ApiError::invalid_request(
                "channelId and lastReadAt are required",
            ));
        };
        let db = self.db.client().await?;
        if users::find(&**db, user_id).await?.is_none() {
            return Err(ApiError::user_not_found(user_id));
        }
        let channel = channels::get(&**db, channel_id)
            .await?
            .ok_or_else(|| ApiError::channel_not_found(channel_id))?;
        if channel.channel_type == ChannelType::Private
            && !channels::is_member(&**db, channel_id, user_id).await?
        {
            return Err(ApiError::denied());
        }
        let dto = ReadStatusDto {
            id: Uuid::new_v4(),
            user_id,
            channel_id,
            last_read_at: at,
            notification_enabled: channel.channel_type == ChannelType::Private,
        };
        if !read_statuses::insert(&**db, &dto).await? {
            return Err(ApiError::duplicate_read_status(user_id, channel_id));
        }
        Ok(dto)
    }

    pub async fn update_read_status(
        &self,
        caller: &Principal,
        id: Uuid,
        req: ReadStatusUpdateRequest,
    ) -> ApiResult<ReadStatusDto> {
        let mut c = Checks::new();
        let at = match &req.new_last_read_at {
            Some(raw) => check_time(&mut c, "newLastReadAt", raw),
            None => None,
        };
        c.finish()?;
        let db = self.db.client().await?;
        let current = read_statuses::get(&**db, id)
            .await?
            .ok_or_else(|| ApiError::read_status_not_found(id))?;
        if current.user_id != caller.user_id {
            return Err(ApiError::denied());
        }
        read_statuses::update(&**db, id, at, req.new_notification_enabled)
            .await?
            .ok_or_else(|| ApiError::read_status_not_found(id))
    }

    pub async fn list_read_statuses(
        &self,
        caller: &Principal,
        user: Uuid,
    ) -> ApiResult<Vec<ReadStatusDto>> {
        caller.require_self_or_admin(user)?;
        let db = self.db.client().await?;
        read_statuses::list_for_user(&**db, user).await
    }
}
