//! Local file storage: a file named `<binary content id>` under the storage root.
//! Writes go to a temporary name and are renamed, so a reader never sees half a file.

use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The storage root.
#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FileStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.root.join(id.to_string())
    }

    pub async fn put(&self, id: Uuid, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = self.root.join(format!(".{id}.tmp"));
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, self.path(id)).await
    }

    /// The stored bytes, or `None` when absent.
    pub async fn get(&self, id: Uuid) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(id)).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, id: Uuid) {
        let _ = tokio::fs::remove_file(self.path(id)).await;
    }
}
