//! The upload life cycle. In the request's transaction: the metadata row `WAITING`, an
//! `upload_jobs` row (who uploaded, which process owns it) and, before the commit, the bytes
//! *staged* on disk. After the commit the staged bytes are moved into place (3 attempts, 1 s
//! and 2 s apart, writing from memory if staging had failed), then the row turns `SUCCESS` or
//! `FAILED` (with a failure record and an `ASYNC_FAILED` notification) and the job goes.
//! Attachment status changes are pushed as SSE events.
//!
//! A crash between the commit and the end leaves the job behind: at the next start (and every
//! minute, for instances that never came back) [`Services::recover_uploads`] finishes it from
//! the staged bytes, or fails it the same way as a failed write, so no upload stays `WAITING`.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::Services;
use crate::domain::{
    Audience, BinaryContentDto, ChannelType, Event, NotificationDto, NotificationType, SseEvent,
    UploadStatus,
};
use crate::error::ApiResult;
use crate::store::upload_jobs::{self, UploadJob};
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

/// Uploads staged in a transaction that has not committed yet.
///
/// Exists so an upload whose transaction rolls back (any `?` between staging and commit)
/// leaves no bytes behind: dropped unused, it removes its staged files; after the commit it is
/// handed to [`Services::store_uploads_later`], which moves them into place.
#[must_use = "hand it to store_uploads_later after the commit"]
pub(crate) struct StagedUploads {
    files: Vec<(BinaryContentDto, Bytes)>,
    kind: UploadKind,
    uploader: Option<Uuid>,
    request_id: String,
    store: crate::store::files::FileStore,
}

impl Drop for StagedUploads {
    fn drop(&mut self) {
        for (dto, _) in &self.files {
            self.store.discard_staged_now(dto.id);
        }
    }
}

/// What to do after the bytes are stored.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum UploadKind {
    Profile,
    Attachment,
}

impl UploadKind {
    fn as_str(self) -> &'static str {
        match self {
            UploadKind::Profile => "PROFILE",
            UploadKind::Attachment => "ATTACHMENT",
        }
    }

    fn parse(s: &str) -> UploadKind {
        match s {
            "ATTACHMENT" => UploadKind::Attachment,
            _ => UploadKind::Profile,
        }
    }
}

pub const TASK_NAME: &str = "LocalBinaryContentStorage#putAsync";

/// A job (or staged file) this old has no live owner: its instance died and did not return.
const STALE: Duration = Duration::from_secs(600);

/// The `crash-after-upload-commit` test hook: SIGKILL to itself, like the OOM killer or a
/// power cut (no destructors, no flushing, no core file).
fn crash_now() -> ! {
    tracing::error!("fault injection: killing the process right after an upload's commit");
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid; nothing is borrowed.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// The failure reason of an upload a crash interrupted before its bytes were stored.
const INTERRUPTED: &str = "the server stopped before the file was stored";

impl Services {
    /// In the request's transaction, before its commit: the `WAITING` rows, their jobs, and
    /// the bytes staged on disk (a staging failure is logged; the write is retried after the
    /// commit). Hand the result to [`Self::store_uploads_later`] once the commit succeeded.
    pub(crate) async fn insert_uploads(
        &self,
        c: &impl GenericClient,
        files: &[(BinaryContentDto, Bytes)],
        kind: UploadKind,
        uploader: Option<Uuid>,
        request_id: &str,
    ) -> ApiResult<StagedUploads> {
        for (dto, _) in files {
            binary_contents::insert(c, dto).await?;
        }
        self.insert_upload_jobs(c, files, kind, uploader, request_id)
            .await
    }

    /// [`Self::insert_uploads`] for `WAITING` rows the caller inserted itself (the message
    /// writer inserts a whole batch's rows in one statement): the jobs and the staged bytes.
    pub(crate) async fn insert_upload_jobs(
        &self,
        c: &impl GenericClient,
        files: &[(BinaryContentDto, Bytes)],
        kind: UploadKind,
        uploader: Option<Uuid>,
        request_id: &str,
    ) -> ApiResult<StagedUploads> {
        let staged = StagedUploads {
            files: files.to_vec(),
            kind,
            uploader,
            request_id: request_id.to_string(),
            store: self.files.clone(),
        };
        for (dto, bytes) in files {
            let job = UploadJob {
                id: dto.id,
                kind: kind.as_str().to_string(),
                uploader,
                request_id: request_id.to_string(),
            };
            upload_jobs::insert(c, &job, &self.upload_owner).await?;
            if let Err(e) = self.files.stage(dto.id, bytes).await {
                tracing::warn!("staging upload {}: {e}; retried after the commit", dto.id);
            }
        }
        Ok(staged)
    }

    /// After the commit of [`Self::insert_uploads`]: stores the bytes in the background.
    pub(crate) fn store_uploads_later(self: &Arc<Self>, mut staged: StagedUploads) {
        if staged.files.is_empty() {
            return;
        }
        if self.config.faults.crash_after_upload_commit {
            crash_now();
        }
        let files = std::mem::take(&mut staged.files);
        for (dto, bytes) in files {
            let this = self.clone();
            let (kind, uploader) = (staged.kind, staged.uploader);
            let request_id = staged.request_id.clone();
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
        let mut outcome = Err(String::new());
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
            let stored = match self.files.promote_staged(dto.id).await {
                Ok(true) => Ok(()),
                Ok(false) => self.files.put(dto.id, &bytes).await,
                Err(e) => Err(e),
            };
            match stored {
                Ok(()) => {
                    outcome = Ok(());
                    break;
                }
                Err(e) => outcome = Err(e.to_string()),
            }
        }
        self.finish_upload(dto.id, outcome, kind, uploader, request_id)
            .await
    }

    /// Ends an upload once: `SUCCESS`, or `FAILED` with a failure record and an
    /// `ASYNC_FAILED` notification to the uploader; attachments push `binaryContents.status`.
    /// Does nothing when the row is no longer `WAITING` (another instance finished it) and
    /// drops the bytes when the row is gone (message or user deleted meanwhile).
    async fn finish_upload(
        &self,
        id: Uuid,
        outcome: Result<(), String>,
        kind: UploadKind,
        uploader: Option<Uuid>,
        request_id: &str,
    ) -> ApiResult<()> {
        let status = match outcome {
            Ok(()) => UploadStatus::Success,
            Err(_) => UploadStatus::Failed,
        };
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        upload_jobs::delete(&*tx, id).await?;
        let Some(updated) = binary_contents::finish_waiting(&*tx, id, status).await? else {
            let gone = binary_contents::get(&*tx, id).await?.is_none();
            tx.commit().await?;
            if gone {
                self.files.delete(id).await;
            }
            return Ok(());
        };
        let mut failure_note = None;
        if let Err(error) = outcome {
            let reason = format!("파일 업로드 실패 (binaryContentId: {id}): {error}");
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
            Some(self.attachment_audience(&*tx, id, uploader).await?)
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

    /// Finishes or fails uploads nobody is working on: jobs of an earlier run of this
    /// instance (a crash), jobs older than [`STALE`] (an instance that never came back), and
    /// `WAITING` rows without a job left by versions that kept the bytes only in memory. Staged
    /// bytes are used when they are there; otherwise the upload fails like a failed write.
    /// Also removes staged files of uploads that were rolled back. Returns how many uploads
    /// it ended.
    pub async fn recover_uploads(&self) -> ApiResult<usize> {
        let stale = STALE.as_secs() as i64;
        let (jobs, legacy) = {
            let db = self.db.client().await?;
            (
                upload_jobs::orphaned(&**db, &self.upload_owner, stale).await?,
                upload_jobs::waiting_without_job(&**db, stale).await?,
            )
        };
        let mut ended = 0;
        for job in jobs {
            let outcome = self.interrupted_outcome(job.id).await;
            let kind = UploadKind::parse(&job.kind);
            self.finish_upload(job.id, outcome, kind, job.uploader, &job.request_id)
                .await?;
            ended += 1;
        }
        for id in legacy {
            let outcome = self.interrupted_outcome(id).await;
            let kind = {
                let db = self.db.client().await?;
                match messages::channel_of_attachment(&**db, id).await? {
                    Some(_) => UploadKind::Attachment,
                    None => UploadKind::Profile,
                }
            };
            self.finish_upload(id, outcome, kind, None, "").await?;
            ended += 1;
        }
        if ended > 0 {
            tracing::info!("upload recovery: ended {ended} interrupted uploads");
        }
        for id in self
            .files
            .staged_older_than(STALE)
            .await
            .unwrap_or_default()
        {
            let db = self.db.client().await?;
            if !upload_jobs::exists(&**db, id).await? {
                self.files.discard_staged(id).await;
            }
        }
        Ok(ended)
    }

    /// Whether an interrupted upload's bytes made it: staged (moved into place now) or stored.
    async fn interrupted_outcome(&self, id: Uuid) -> Result<(), String> {
        match self.files.promote_staged(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(INTERRUPTED.to_string()),
            Err(e) => Err(format!("{INTERRUPTED}: {e}")),
        }
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
