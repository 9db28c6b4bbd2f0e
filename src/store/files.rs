//! Local file storage: a file named `<binary content id>` under the storage root.
//! Writes go to a temporary name and are renamed, so a reader never sees half a file.
//!
//! Uploads are *staged* (`.<id>.staged`) before the transaction that creates their row
//! commits, and moved into place after it: the bytes survive a crash in between, and a
//! rolled-back upload never appears under a real id.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// The storage root.
#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
    /// Test hook (`DISCODEIT_FAULT_INJECTION=upload-write-fails`): every write fails.
    fail_writes: bool,
}

const STAGED: &str = ".staged";

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FileStore {
            root,
            fail_writes: false,
        })
    }

    /// Makes every write fail (the upload-failure test hook).
    pub fn failing_writes(mut self) -> Self {
        self.fail_writes = true;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, id: Uuid) -> PathBuf {
        self.root.join(id.to_string())
    }

    fn staged_path(&self, id: Uuid) -> PathBuf {
        self.root.join(format!(".{id}{STAGED}"))
    }

    async fn write_atomically(&self, id: Uuid, bytes: &[u8], to: PathBuf) -> std::io::Result<()> {
        if self.fail_writes {
            return Err(std::io::Error::other(
                "write refused (DISCODEIT_FAULT_INJECTION=upload-write-fails)",
            ));
        }
        let tmp = self.root.join(format!(".{id}.tmp"));
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, to).await
    }

    pub async fn put(&self, id: Uuid, bytes: &[u8]) -> std::io::Result<()> {
        self.write_atomically(id, bytes, self.path(id)).await
    }

    /// Writes the bytes of a not-yet-committed upload under its staging name.
    pub async fn stage(&self, id: Uuid, bytes: &[u8]) -> std::io::Result<()> {
        self.write_atomically(id, bytes, self.staged_path(id)).await
    }

    /// Moves staged bytes into place. `Ok(true)` when the file is now stored (moved now, or
    /// earlier), `Ok(false)` when there is nothing staged and nothing stored.
    pub async fn promote_staged(&self, id: Uuid) -> std::io::Result<bool> {
        match tokio::fs::rename(self.staged_path(id), self.path(id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(tokio::fs::try_exists(self.path(id)).await?)
            }
            Err(e) => Err(e),
        }
    }

    /// Ids of staged files last written more than `age` ago (rolled-back or orphaned
    /// uploads; the caller checks which still have a job).
    pub async fn staged_older_than(&self, age: Duration) -> std::io::Result<Vec<Uuid>> {
        let mut out = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.root).await?;
        let now = SystemTime::now();
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.strip_suffix(STAGED))
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            let modified = entry.metadata().await?.modified()?;
            if now.duration_since(modified).unwrap_or_default() > age {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Removes staged bytes, if any.
    pub async fn discard_staged(&self, id: Uuid) {
        let _ = tokio::fs::remove_file(self.staged_path(id)).await;
    }

    /// [`FileStore::discard_staged`] for `Drop` impls (one unlink, no await).
    pub fn discard_staged_now(&self, id: Uuid) {
        let _ = std::fs::remove_file(self.staged_path(id));
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
        self.discard_staged(id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn staged_bytes_are_promoted_once() {
        let dir = std::env::temp_dir().join(format!("discodeit-files-{}", Uuid::new_v4()));
        let store = FileStore::new(&dir).unwrap();
        let id = Uuid::new_v4();
        assert!(!store.promote_staged(id).await.unwrap());
        store.stage(id, b"abc").await.unwrap();
        assert_eq!(store.get(id).await.unwrap(), None);
        assert_eq!(
            store.staged_older_than(Duration::ZERO).await.unwrap(),
            vec![id]
        );
        assert!(store.promote_staged(id).await.unwrap());
        assert!(store.promote_staged(id).await.unwrap(), "already in place");
        assert_eq!(store.get(id).await.unwrap(), Some(b"abc".to_vec()));
        assert!(store
            .staged_older_than(Duration::ZERO)
            .await
            .unwrap()
            .is_empty());
        let failing = store.clone().failing_writes();
        assert!(failing.stage(id, b"x").await.is_err());
        assert!(failing.put(id, b"x").await.is_err());
        store.delete(id).await;
        assert_eq!(store.get(id).await.unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
