//! Messages: creation (REST and STOMP submit to the one batching writer of
//! [`super::message_writer`]), cursor pages, edits, deletion.

use chrono::Utc;
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

use tokio::sync::oneshot;

use super::message_writer::Submission;
use super::validation::Checks;
use super::{PendingMessage, Services, Upload};
use crate::domain::{ChannelType, Event, MessageDto, PageResponse, Role};
use crate::error::{ApiError, ApiResult};
use crate::security::Principal;
use crate::store::{channels, messages};
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

/// Longest attachment file name and content type the `binary_contents` columns hold.
const MAX_FILE_NAME_CHARS: usize = 255;
const MAX_CONTENT_TYPE_CHARS: usize = 100;

impl Services {
    /// `POST /api/messages`: submits the message, waiting at most
    /// `DISCODEIT_MESSAGE_ADMISSION_TIMEOUT_MS` for room in the writer's queue (503 after
    /// that), then for its batch. The message is broadcast after its commit; its attachments
    /// are stored in the background.
    pub async fn create_message(
        self: &Arc<Self>,
        caller: &Principal,
        req: MessageCreateRequest,
        attachments: Vec<Upload>,
        request_id: String,
    ) -> ApiResult<MessageDto> {
        let limit = self.config.message_admission_timeout;
        self.submit(caller, req, attachments, request_id, Some(limit))
            .await?
            .await
    }

    /// Submits a message to the writer and returns as soon as it is queued: the
    /// [`PendingMessage`] resolves to its outcome once its batch committed (or failed). Waits
    /// as long as the queue is full, so a caller that submits one message after another is
    /// slowed to the writer's pace. Messages submitted one after another are written (and
    /// broadcast) in that order. Rules that need no database are checked here, before queueing.
    pub async fn submit_message(
        self: &Arc<Self>,
        caller: &Principal,
        req: MessageCreateRequest,
        attachments: Vec<Upload>,
        request_id: String,
    ) -> ApiResult<PendingMessage> {
        self.submit(caller, req, attachments, request_id, None)
            .await
    }

    /// Messages waiting for the writer (the health endpoint shows it).
    pub fn message_queue_len(&self) -> usize {
        self.writer.queued()
    }

    async fn submit(
        &self,
        caller: &Principal,
        req: MessageCreateRequest,
        attachments: Vec<Upload>,
        request_id: String,
        admission: Option<std::time::Duration>,
    ) -> ApiResult<PendingMessage> {
        let content = req.content.unwrap_or_default();
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
        let author = req.author_id.unwrap_or(caller.user_id);
        if author != caller.user_id {
            return Err(ApiError::denied());
        }
        let Some(channel) = req.channel_id else {
            return Err(ApiError::invalid_request("channelId is required"));
        };
        // What PostgreSQL would refuse must not reach a batch, where it would fail the others.
        if content.contains('\0') {
            return Err(ApiError::invalid_request(
                "content must not contain the NUL character",
            ));
        }
        for u in &attachments {
            if u.file_name.chars().count() > MAX_FILE_NAME_CHARS
                || u.content_type.chars().count() > MAX_CONTENT_TYPE_CHARS
                || u.file_name.contains('\0')
                || u.content_type.contains('\0')
            {
                return Err(ApiError::invalid_request(format!(
                    "attachment file names are limited to {MAX_FILE_NAME_CHARS} characters and \
                     content types to {MAX_CONTENT_TYPE_CHARS}, without NUL characters"
                )));
            }
        }
        let (reply, outcome) = oneshot::channel();
        let submission = Submission {
            author,
            channel,
            content,
            files: attachments
                .into_iter()
                .map(|u| (u.waiting_dto(), u.bytes))
                .collect(),
            request_id,
            reply,
        };
        self.writer.admit(submission, admission).await?;
        Ok(PendingMessage(outcome))
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
