//! File metadata lookups and downloads.

use uuid::Uuid;

use super::Services;
use crate::domain::{BinaryContentDto, UploadStatus};
use crate::error::{ApiError, ApiResult};
use crate::store::binary_contents;

impl Services {
    pub async fn binary_content(&self, id: Uuid) -> ApiResult<BinaryContentDto> {
        let db = self.db.client().await?;
        binary_contents::get(&**db, id)
            .await?
            .ok_or_else(|| ApiError::binary_content_not_found(id))
    }

    /// Known ids in request order; unknown ids are skipped. At most `max_batch_ids` ids.
    pub async fn binary_contents(&self, ids: &[Uuid]) -> ApiResult<Vec<BinaryContentDto>> {
        super::validation::at_most("binaryContentIds", ids.len(), self.config.max_batch_ids)?;
        let db = self.db.client().await?;
        binary_contents::get_many(&**db, ids).await
    }

    /// Metadata and bytes; 404 while the bytes are not (or no longer) stored.
    pub async fn download(&self, id: Uuid) -> ApiResult<(BinaryContentDto, Vec<u8>)> {
        let meta = self.binary_content(id).await?;
        if meta.upload_status != UploadStatus::Success {
            return Err(ApiError::binary_content_not_found(id));
        }
        match self.files.get(id).await {
            Ok(Some(bytes)) => Ok((meta, bytes)),
            Ok(None) => Err(ApiError::binary_content_not_found(id)),
            Err(e) => Err(ApiError::internal(format!("storage read: {e}"))),
        }
    }
}
