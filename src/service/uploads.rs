//! The upload life cycle: metadata rows are inserted `WAITING` inside the request's
//! transaction; after commit the bytes are written in the background (3 attempts, 1 s and
//! 2 s apart), then the row turns `SUCCESS` or `FAILED` (with a failure record and an
//! `ASYNC_FAILED` notification). Attachment status changes are pushed as SSE events.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::Services;
use crate::domain::{
    Audience, BinaryContentDto, ChannelType, Event, NotificationDto, NotificationType, SseEvent,
    UploadStatus,
};
use crate::error::ApiResult;
use crate::store::{binary_contents, channels, messages, notifications};

/// One uploaded file part, fully received and within the size limits.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Bytes,
}

impl Upload {
    /// The metadata row for this file, `WAITING`.
    pub fn waiting_dto(&self) -> BinaryContentDto {
        BinaryContentDto {
            id: Uuid::new_v4(),
            file_name: self.file_name.clone(),
            size: self.bytes.len() as i64,
            content_type: self.content_type.clone(),
            upload_status: UploadStatus::Waiting,
        }
    }
}

/// What to do after the bytes are stored.
#[derive(Clone, Copy, PartialEq)]
pub enum UploadKind {
    Profile,
    Attachment,
}

pub const TASK_NAME: &str = "LocalBinaryContentStorage#putAsync";

impl Services {
    /// Starts background writes for committed metadata rows.
    pub(crate) fn store_uploads_later(
        self: &Arc<Self>,
        files: Vec<(BinaryContentDto, Bytes)>,
        kind: UploadKind,
        uploader: Option<Uuid>,
        request_id: String,
    ) {
        for (dto, bytes) in files {
            let this = self.clone();
            let request_id = request_id.clone();
            tokio::spawn(async move {
                if let Err(e) = this
                    .store_one(dto, bytes, kind, uploader, &request_id)
                    .await
                {
                    tracing::error!("upload bookkeeping failed: {e}");
                }
            });
        }
    }

    async fn store_one(
        &self,
        dto: BinaryContentDto,
        bytes: Bytes,
        kind: UploadKind,
        uploader: Option<Uuid>,
        request_id: &str,
    ) -> ApiResult<()> {
        let mut last_error = String::new();
        let mut stored = false;
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
            match self.files.put(dto.id, &bytes).await {
                Ok(()) => {
                    stored = true;
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        let status = if stored {
            UploadStatus::Success
        } else {
            UploadStatus::Failed
        };
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        let Some(updated) = binary_contents::set_status(&*tx, dto.id, status).await? else {
            // The row was deleted meanwhile (message or user gone): drop the bytes too.
            drop(tx);
            self.files.delete(dto.id).await;
            return Ok(());
        };
        let mut failure_note = None;
        if !stored {
            let reason = format!(
                "파일 업로드 실패 (binaryContentId: {}): {}",
                dto.id, last_error
            );
            notifications::insert_task_failure(&*tx, TASK_NAME, request_id, &reason).await?;
            if let Some(receiver) = uploader {
                let n = NotificationDto {
                    id: Uuid::new_v4(),
                    created_at: crate::time::now(),
                    receiver_id: receiver,
                    title: format!("비동기 작업 실패: {TASK_NAME}"),
                    content: format!("요청 ID: {request_id}\n실패 사유: {reason}"),
                    notification_type: NotificationType::AsyncFailed,
                    target_id: None,
                };
                notifications::insert(&*tx, &n).await?;
                failure_note = Some(n);
            }
        }
        let audience = if kind == UploadKind::Attachment {
            Some(self.attachment_audience(&*tx, dto.id, uploader).await?)
        } else {
            None
        };
        let mut events = Vec::new();
        if let Some(audience) = audience {
            events.push(Event::Sse(SseEvent::new(
                "binaryContents.status",
                &updated,
                audience,
            )));
        }
        events.extend(failure_note.iter().map(Services::notification_event));
        self.commit(tx, events).await
    }

    /// The uploader plus whoever can see the channel the attachment belongs to.
    async fn attachment_audience(
        &self,
        c: &impl tokio_postgres::GenericClient,
        attachment: Uuid,
        uploader: Option<Uuid>,
    ) -> ApiResult<Audience> {
        let Some(channel) = messages::channel_of_attachment(c, attachment).await? else {
            return Ok(Audience::Users(uploader.into_iter().collect()));
        };
        match channels::get(c, channel).await? {
            Some(ch) if ch.channel_type == ChannelType::Public => Ok(Audience::All),
            _ => {
                let mut members = channels::member_ids(c, channel).await?;
                if let Some(u) = uploader {
                    if !members.contains(&u) {
                        members.push(u);
                    }
                }
                Ok(Audience::Users(members))
            }
        }
    }
}
