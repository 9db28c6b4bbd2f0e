//! The built web client: files under `DISCODEIT_WEB_DIR`, `index.html` for client routes.

use http::{header, StatusCode};
use std::path::{Component, Path, PathBuf};

use super::response::{self, set_header, Resp};
use crate::error::ApiError;

/// Serves one directory.
pub struct StaticFiles {
    root: PathBuf,
    /// Unknown paths answer `index.html` (client-side routing) instead of 404.
    spa_fallback: bool,
}

impl StaticFiles {
    /// A single-page app: unknown paths outside `assets/` answer `index.html`.
    pub fn new(root: PathBuf) -> Self {
        StaticFiles {
            root,
            spa_fallback: true,
        }
    }

    /// Plain files: unknown paths answer 404 (directories still answer their `index.html`).
    pub fn exact(root: PathBuf) -> Self {
        StaticFiles {
            root,
            spa_fallback: false,
        }
    }

    /// The file at `path` (relative to the root), or `index.html` (SPA fallback) when no such
    /// file exists.
    pub async fn serve(&self, path: &str) -> Resp {
        let rel = path.trim_start_matches('/');
        let safe = Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return response::error(&ApiError::not_found_route(path), path);
        }
        let mut file = self.root.join(rel);
        if rel.is_empty() || file.is_dir() {
            file = self.root.join("index.html");
        }
        let (file, fallback) = match tokio::fs::metadata(&file).await {
            Ok(m) if m.is_file() => (file, false),
            _ => (self.root.join("index.html"), true),
        };
        if fallback && (!self.spa_fallback || rel.starts_with("assets/")) {
            return response::error(&ApiError::not_found_route(path), path);
        }
        match tokio::fs::read(&file).await {
            Ok(bytes) => {
                let mime = mime_guess::from_path(&file).first_or_octet_stream();
                let mut r = response::with_body(StatusCode::OK, mime.as_ref(), bytes);
                let cache = if rel.starts_with("assets/") && !fallback {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                };
                set_header(&mut r, header::CACHE_CONTROL, cache);
                r
            }
            Err(_) => response::error(&ApiError::not_found_route(path), path),
        }
    }
}
