//! `upload_jobs`: uploads committed but not yet stored (see `sql/004_upload_jobs.sql`).

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::ApiResult;

/// An upload whose bytes still have to reach the storage.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadJob {
    pub id: Uuid,
    /// `PROFILE` or `ATTACHMENT`.
    pub kind: String,
    pub uploader: Option<Uuid>,
    pub request_id: String,
}

/// Which process owns new jobs: the instance and this run of it.
#[derive(Debug, Clone)]
pub struct Owner {
    pub instance_id: String,
    pub incarnation: Uuid,
}

pub async fn insert(c: &impl GenericClient, job: &UploadJob, owner: &Owner) -> ApiResult<()> {
    c.execute(
        "INSERT INTO upload_jobs (binary_content_id, kind, uploader_id, request_id, instance_id, incarnation)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &job.id,
            &job.kind,
            &job.uploader,
            &job.request_id,
            &owner.instance_id,
            &owner.incarnation,
        ],
    )
    .await?;
    Ok(())
}

/// Deletes the job (the upload is being finished in the caller's transaction).
pub async fn delete(c: &impl GenericClient, id: Uuid) -> ApiResult<()> {
    c.execute(
        "DELETE FROM upload_jobs WHERE binary_content_id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Jobs nobody is working on: those of an earlier run of this instance, and any older than
/// `stale_seconds` (their instance died and did not come back).
pub async fn orphaned(
    c: &impl GenericClient,
    owner: &Owner,
    stale_seconds: i64,
) -> ApiResult<Vec<UploadJob>> {
    Ok(c.query(
        "SELECT binary_content_id, kind, uploader_id, request_id FROM upload_jobs
             WHERE (instance_id = $1 AND incarnation <> $2)
                OR created_at < now() - make_interval(secs => $3)
             ORDER BY created_at",
        &[
            &owner.instance_id,
            &owner.incarnation,
            &(stale_seconds as f64),
        ],
    )
    .await?
    .iter()
    .map(|r| UploadJob {
        id: r.get(0),
        kind: r.get(1),
        uploader: r.get(2),
        request_id: r.get(3),
    })
    .collect())
}

/// True when a job exists for `id`.
pub async fn exists(c: &impl GenericClient, id: Uuid) -> ApiResult<bool> {
    Ok(c.query_opt(
        "SELECT 1 FROM upload_jobs WHERE binary_content_id = $1",
        &[&id],
    )
    .await?
    .is_some())
}

/// WAITING rows without a job older than `stale_seconds`: left by a version that kept the
/// bytes only in memory. With the uploader unknown they are finished or failed silently.
pub async fn waiting_without_job(
    c: &impl GenericClient,
    stale_seconds: i64,
) -> ApiResult<Vec<Uuid>> {
    Ok(c.query(
        "SELECT b.id FROM binary_contents b
             WHERE b.upload_status = 'WAITING'
               AND b.created_at < now() - make_interval(secs => $1)
               AND NOT EXISTS (SELECT 1 FROM upload_jobs j WHERE j.binary_content_id = b.id)",
        &[&(stale_seconds as f64)],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}
