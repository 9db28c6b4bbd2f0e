//! Channels: public/private creation, update, deletion, listing, and visibility rules.

use serde::Deserialize;
use uuid::Uuid;

use super::validation::Checks;
use super::Services;
use crate::domain::{
    Audience, Change, ChannelDto, ChannelType, Event, ReadStatusDto, Role, SseEvent,
};
use crate::error::{ApiError, ApiResult};
use crate::security::Principal;
use crate::store::channels::{self, ChannelRow};
use crate::store::{read_statuses, users};

/// `PublicChannelCreateRequest`.
#[derive(Debug, Default, Deserialize)]
pub struct PublicChannelCreateRequest {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// `PrivateChannelCreateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateChannelCreateRequest {
    pub participant_ids: Option<Vec<Uuid>>,
}

/// `PublicChannelUpdateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicChannelUpdateRequest {
    pub new_name: Option<String>,
    pub new_description: Option<String>,
}

impl Services {
    fn channel_refresh_event(channel_id: Uuid) -> Event {
        Event::Sse(SseEvent::new(
            "channels.refresh",
            &serde_json::json!({ "channelId": channel_id }),
            Audience::All,
        ))
    }

    /// The channel, 404 when absent.
    pub(crate) async fn channel_row(&self, id: Uuid) -> ApiResult<ChannelRow> {
        let db = self.db.client().await?;
        channels::get(&**db, id)
            .await?
            .ok_or_else(|| ApiError::channel_not_found(id))
    }

    /// 403 unless the channel is PUBLIC or the user holds a read status in it.
    pub async fn require_channel_access(&self, user: Uuid, channel: &ChannelRow) -> ApiResult<()> {
        if channel.channel_type == ChannelType::Public {
            return Ok(());
        }
        let db = self.db.client().await?;
        if channels::is_member(&**db, channel.id, user).await? {
            Ok(())
        } else {
            Err(ApiError::denied())
        }
    }

    /// `POST /api/channels/public` (CHANNEL_MANAGER).
    pub async fn create_public_channel(
        &self,
        caller: &Principal,
        req: PublicChannelCreateRequest,
    ) -> ApiResult<ChannelDto> {
        let mut c = Checks::new();
        let name = req.name.unwrap_or_default();
        c.channel_name("name", &name);
        if let Some(d) = &req.description {
            c.channel_description("description", d);
        }
        c.finish()?;
        caller.require(Role::ChannelManager)?;
        let row = ChannelRow {
            id: Uuid::new_v4(),
            channel_type: ChannelType::Public,
            name: Some(name),
            description: req.description,
            created_at: crate::time::now(),
        };
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        channels::insert(&*tx, &row).await?;
        let dto = channels::to_dtos(&*tx, vec![row]).await?.remove(0);
        self.commit(tx, vec![Self::channel_refresh_event(dto.id)])
            .await?;
        Ok(dto)
    }

    /// `POST /api/channels/private`: one read status per existing participant, at most
    /// `max_participants` ids; the event goes to those participants only.
    pub async fn create_private_channel(
        &self,
        _caller: &Principal,
        req: PrivateChannelCreateRequest,
    ) -> ApiResult<ChannelDto> {
        let mut c = Checks::new();
        match &req.participant_ids {
            None => c.fail("participantIds", "참여자 목록은 필수입니다"),
            Some(ids) if ids.is_empty() => {
                c.fail("participantIds", "참여자 목록은 비어있을 수 없습니다")
            }
            Some(ids) if ids.len() < 2 => c.fail(
                "participantIds",
                "비공개 채널에는 최소 2명의 참여자가 필요합니다",
            ),
            _ => {}
        }
        c.finish()?;
        let requested = req.participant_ids.unwrap_or_default();
        super::validation::at_most(
            "participantIds",
            requested.len(),
            self.config.max_participants,
        )?;
        let row = ChannelRow {
            id: Uuid::new_v4(),
            channel_type: ChannelType::Private,
            name: None,
            description: None,
            created_at: crate::time::now(),
        };
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        channels::insert(&*tx, &row).await?;
        // Unknown ids are skipped silently (the contract) and never reach the audience.
        let members = users::existing_ids(&*tx, &requested).await?;
        for uid in &members {
            read_statuses::insert(
                &*tx,
                &ReadStatusDto {
                    id: Uuid::new_v4(),
                    user_id: *uid,
                    channel_id: row.id,
                    last_read_at: row.created_at,
                    notification_enabled: true,
                },
            )
            .await?;
        }
        let dto = channels::to_dtos(&*tx, vec![row]).await?.remove(0);
        let event = Event::Sse(SseEvent::new(
            "channels.refresh",
            &dto,
            Audience::Users(members),
        ));
        self.commit(tx, vec![event]).await?;
        Ok(dto)
    }

    /// `PATCH /api/channels/{id}` (CHANNEL_MANAGER; PUBLIC only).
    pub async fn update_channel(
        &self,
        caller: &Principal,
        id: Uuid,
        req: PublicChannelUpdateRequest,
    ) -> ApiResult<ChannelDto> {
        let mut c = Checks::new();
        if let Some(n) = &req.new_name {
            c.channel_name("newName", n);
        }
        if let Some(d) = &req.new_description {
            c.channel_description("newDescription", d);
        }
        c.finish()?;
        caller.require(Role::ChannelManager)?;
        let row = self.channel_row(id).await?;
        if row.channel_type == ChannelType::Private {
            return Err(ApiError::private_channel_update(id));
        }
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        channels::update(
            &*tx,
            id,
            req.new_name.as_deref(),
            req.new_description.as_deref(),
        )
        .await?;
        let row = channels::get(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::channel_not_found(id))?;
        let dto = channels::to_dtos(&*tx, vec![row]).await?.remove(0);
        let events = vec![
            Event::Changed(Change::Channel(id)),
            Self::channel_refresh_event(id),
        ];
        self.commit(tx, events).await?;
        Ok(dto)
    }

    /// `DELETE /api/channels/{id}` (CHANNEL_MANAGER; either type).
    pub async fn delete_channel(&self, caller: &Principal, id: Uuid) -> ApiResult<()> {
        caller.require(Role::ChannelManager)?;
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        if channels::get(&*tx, id).await?.is_none() {
            return Err(ApiError::channel_not_found(id));
        }
        let files = channels::delete(&*tx, id).await?;
        let events = vec![
            Event::Changed(Change::Channel(id)),
            Self::channel_refresh_event(id),
        ];
        self.commit(tx, events).await?;
        for f in files {
            self.files.delete(f).await;
        }
        Ok(())
    }

    /// `GET /api/channels?userId=` (self or ADMIN).
    pub async fn list_channels(
        &self,
        caller: &Principal,
        user: Uuid,
    ) -> ApiResult<Vec<ChannelDto>> {
        caller.require_self_or_admin(user)?;
        let db = self.db.client().await?;
        let rows = channels::list_visible(&**db, user).await?;
        channels::to_dtos(&**db, rows).await
    }
}
