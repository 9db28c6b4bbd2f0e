//! Messages: creation (REST and STOMP share [`Services::create_message`]), cursor pages,
//! edits, deletion, and the NEW_MESSAGE notifications that follow a commit.

use chrono::Utc;
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

use super::uploads::UploadKind;
use super::validation::Checks;
use super::{Services, Upload};
use crate::domain::{ChannelType, Event, MessageDto, PageResponse, Role};
use crate::error::{ApiError, ApiResult};
use crate::security::Principal;
use crate::store::{channels, messages, notifications, users};
use crate::time::{format_instant, parse_instant};

/// `MessageCreateRequest` (also the STOMP `/pub/messages` body).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageCreateRequest {
    pub content: Option<String>,
    pub channel_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
}

/// `MessageUpdateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageUpdateRequest {
    pub new_content: Option<String>,
}

/// Query of `GET /api/messages`.
#[derive(Debug, Default)]
pub struct PageQuery {
    pub channel_id: Uuid,
    pub cursor: Option<String>,
    pub size: Option<i64>,
    pub page: Option<i64>,
}

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 1000;
/// Highest `page`: keeps `page * size` (the SQL offset) far from overflowing.
pub const MAX_PAGE: i64 = 1_000_000;

impl Services {
    /// Creates a message (with uploads already received), commits, then broadcasts it and
    /// starts notifications and file writes.
    pub async fn create_message(
        self: &Arc<Self>,
        caller: &Principal,
        req: MessageCreateRequest,
        attachments: Vec<Upload>,
        request_id: String,
    ) -> ApiResult<MessageDto> {
        let content = req.content.clone().unwrap_or_default();
        let mut c = Checks::new();
        c.message_content("content", &content, !attachments.is_empty());
        c.check(
            req.channel_id.is_some(),
            "channelId",
            "채널 ID는 필수입니다",
        );
        for f in &attachments {
            c.file("attachments", &f.file_name, &f.content_type);
        }
        c.finish()?;
        let author_id = req.author_id.unwrap_or(caller.user_id);
        if author_id != caller.user_id {
            return Err(ApiError::denied());
        }
        let Some(channel_id) = req.channel_id else {
            return Err(ApiError::invalid_request("channelId is required"));
        };
        let channel = self.channel_row(channel_id).await?;
        let mut db = self.db.client().await?;
        let author = users::find(&**db, author_id)
            .await?
            .ok_or_else(|| ApiError::user_not_found(author_id))?;
        if channel.channel_type == ChannelType::Private
            && !channels::is_member(&**db, channel_id, author_id).await?
        {
            return Err(ApiError::denied());
        }
        let files: Vec<_> = attachments
            .into_iter()
            .map(|u| (u.waiting_dto(), u.bytes))
            .collect();
        let id = Uuid::new_v4();
        let at = crate::time::now();
        let tx = db.transaction().await?;
        let staged = self
            .insert_uploads(
                &*tx,
                &files,
                UploadKind::Attachment,
                Some(caller.user_id),
                &request_id,
            )
            .await?;
        let ids: Vec<Uuid> = files.iter().map(|f| f.0.id).collect();
        messages::insert(&*tx, id, channel_id, author_id, &content, at, &ids).await?;
        let title = match channel.channel_type {
            ChannelType::Public => format!(
                "{} (# {})",
                author.dto.username,
                channel.name.as_deref().unwrap_or_default()
            ),
            ChannelType::Private => author.dto.username.clone(),
        };
        let notes = notifications::insert_for_new_message(
            &*tx, channel_id, author_id, &title, &content, at,
        )
        .await?;
        let dto = MessageDto {
            id,
            created_at: at,
            updated_at: at,
            content,
            channel_id,
            author: Some(author.dto),
            attachments: files.iter().map(|f| f.0.clone()).collect(),
        };
        let mut events = vec![Event::MessageCreated {
            message: Arc::new(dto.clone()),
        }];
        events.extend(notes.iter().map(Services::notification_event));
        self.commit(tx, events).await?;
        self.store_uploads_later(staged);
        Ok(dto)
    }

    /// `GET /api/messages`: newest first, strictly before the cursor.
    pub async fn message_page(
        &self,
        caller: &Principal,
        q: PageQuery,
    ) -> ApiResult<PageResponse<MessageDto>> {
        let size = q.size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::invalid_request(format!(
                "size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        let page = q.page.unwrap_or(0);
        if !(0..=MAX_PAGE).contains(&page) {
            return Err(ApiError::invalid_request(format!(
                "page must be between 0 and {MAX_PAGE}"
            )));
        }
        let offset = page
            .checked_mul(size)
            .ok_or_else(|| ApiError::invalid_request("page * size is too large"))?;
        let cursor = match q.cursor.as_deref() {
            None | Some("") => Utc::now() + chrono::Duration::seconds(1),
            Some(raw) => parse_instant(raw)
                .ok_or_else(|| ApiError::invalid_request("cursor must be an ISO-8601 instant"))?,
        };
        let db = self.db.client().await?;
        let empty = PageResponse {
            content: vec![],
            next_cursor: None,
            size,
            has_next: false,
            total_elements: None,
        };
        let Some(channel) = channels::get(&**db, q.channel_id).await? else {
            return Ok(empty);
        };
        if channel.channel_type == ChannelType::Private
            && !channels::is_member(&**db, channel.id, caller.user_id).await?
        {
            return Err(ApiError::denied());
        }
        let mut rows = messages::page(&**db, q.channel_id, cursor, size + 1, offset).await?;
        let has_next = rows.len() as i64 > size;
        rows.truncate(size as usize);
        Ok(PageResponse {
            next_cursor: rows.last().map(|m| format_instant(&m.created_at)),
            content: rows,
            size,
            has_next,
            total_elements: None,
        })
    }

    /// `PATCH /api/messages/{id}` (author only; 404 before 403); the edit is broadcast after
    /// the commit.
    pub async fn update_message(
        &self,
        caller: &Principal,
        id: Uuid,
        req: MessageUpdateRequest,
    ) -> ApiResult<MessageDto> {
        let mut c = Checks::new();
        let content = req.new_content.unwrap_or_default();
        c.message_content("newContent", &content, false);
        c.finish()?;
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        let row = messages::get_row(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::message_not_found(id))?;
        if row.author_id != Some(caller.user_id) {
            return Err(ApiError::denied());
        }
        messages::update_content(&*tx, id, &content).await?;
        let dto = messages::get(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::message_not_found(id))?;
        let event = Event::MessageUpdated {
            message: Arc::new(dto.clone()),
        };
        self.commit(tx, vec![event]).await?;
        Ok(dto)
    }

    /// `DELETE /api/messages/{id}` (author or ADMIN; 404 before 403); the deletion is
    /// broadcast after the commit.
    pub async fn delete_message(&self, caller: &Principal, id: Uuid) -> ApiResult<()> {
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        let row = messages::get_row(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::message_not_found(id))?;
        if row.author_id != Some(caller.user_id) && caller.role != Role::Admin {
            return Err(ApiError::denied());
        }
        let files = messages::delete(&*tx, row.id).await?;
        let event = Event::MessageDeleted {
            message_id: row.id,
            channel_id: row.channel_id,
        };
        self.commit(tx, vec![event]).await?;
        for f in files {
            self.files.delete(f).await;
        }
        Ok(())
    }
}
