//! `binary_contents`: file metadata and upload status.

use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::domain::{BinaryContentDto, UploadStatus};
use crate::error::ApiResult;

pub(crate) const COLS: &str = "b.id, b.file_name, b.size, b.content_type, b.upload_status";

/// Maps the five [`COLS`] starting at `at`; `None` when the id column is NULL (outer joins).
pub(crate) fn from_row(row: &Row, at: usize) -> Option<BinaryContentDto> {
    let id: Option<Uuid> = row.get(at);
    Some(BinaryContentDto {
        id: id?,
        file_name: row.get(at + 1),
        size: row.get(at + 2),
        content_type: row.get(at + 3),
        upload_status: UploadStatus::parse(row.get::<_, &str>(at + 4))
            .unwrap_or(UploadStatus::Failed),
    })
}

pub async fn insert(c: &impl GenericClient, b: &BinaryContentDto) -> ApiResult<()> {
    c.execute(
        "INSERT INTO binary_contents (id, created_at, file_name, size, content_type, upload_status)
         VALUES ($1, now(), $2, $3, $4, $5)",
        &[
            &b.id,
            &b.file_name,
            &b.size,
            &b.content_type,
            &b.upload_status.as_str(),
        ],
    )
    .await?;
    Ok(())
}

pub async fn get(c: &impl GenericClient, id: Uuid) -> ApiResult<Option<BinaryContentDto>> {
    let sql = format!("SELECT {COLS} FROM binary_contents b WHERE b.id = $1");
    Ok(c.query_opt(&sql, &[&id])
        .await?
        .and_then(|r| from_row(&r, 0)))
}

pub async fn get_many(c: &impl GenericClient, ids: &[Uuid]) -> ApiResult<Vec<BinaryContentDto>> {
    let sql = format!("SELECT {COLS} FROM binary_contents b WHERE b.id = ANY($1)");
    let rows = c.query(&sql, &[&ids]).await?;
    let mut by_id: std::collections::HashMap<Uuid, BinaryContentDto> = rows
        .iter()
        .filter_map(|r| from_row(r, 0))
        .map(|b| (b.id, b))
        .collect();
    // Keep the caller's order.
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

pub async fn set_status(
    c: &impl GenericClient,
    id: Uuid,
    status: UploadStatus,
) -> ApiResult<Option<BinaryContentDto>> {
    let sql =
        format!("UPDATE binary_contents b SET upload_status = $2 WHERE b.id = $1 RETURNING {COLS}");
    Ok(c.query_opt(&sql, &[&id, &status.as_str()])
        .await?
        .and_then(|r| from_row(&r, 0)))
}

pub async fn delete(c: &impl GenericClient, id: Uuid) -> ApiResult<()> {
    c.execute("DELETE FROM binary_contents WHERE id = $1", &[&id])
        .await?;
    Ok(())
}
