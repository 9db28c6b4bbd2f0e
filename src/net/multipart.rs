//! `multipart/form-data` bodies, parsed with `multer` under the configured size limits.
//! Parts are looked up by name; the JSON part may come as a file (`filename="blob"`) or as a
//! plain field with any content type.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::request::{parse_json, Ctx};
use crate::error::{ApiError, ApiResult};
use crate::service::Upload;

/// One received part.
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

/// All parts of a form.
pub struct Form {
    pub parts: Vec<Part>,
}

impl Form {
    /// Reads the whole form; 413 when a file or the request is over its limit.
    pub async fn read(ctx: &mut Ctx, max_file: usize, max_request: usize) -> ApiResult<Form> {
        let ct = ctx.header("content-type").unwrap_or_default().to_string();
        let boundary = multer::parse_boundary(&ct).map_err(|_| {
            ApiError::unsupported_media_type(&ct)
                .detail("expected", "multipart/form-data with a boundary")
        })?;
        let Some(body) = ctx.body.take() else {
            return Err(ApiError::invalid_request("request body is required"));
        };
        let limits = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(max_request as u64)
                .per_field(max_file as u64),
        );
        let mut mp = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
        let mut parts = Vec::new();
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(map_err(e, max_file, max_request)),
            };
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(|m| m.to_string());
            let bytes = field
                .bytes()
                .await
                .map_err(|e| map_err(e, max_file, max_request))?;
            parts.push(Part {
                name,
                file_name,
                content_type,
                bytes,
            });
        }
        Ok(Form { parts })
    }

    pub fn part(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// The JSON part `name` (required).
    pub fn json<T: DeserializeOwned>(&self, name: &str) -> ApiResult<T> {
        let part = self.part(name).ok_or_else(|| {
            ApiError::invalid_request(format!("multipart part '{name}' is required"))
        })?;
        parse_json(&part.bytes)
    }

    /// The JSON part `name`, or `T::default()` when absent.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self, name: &str) -> ApiResult<T> {
        match self.part(name) {
            Some(p) => parse_json(&p.bytes),
            None => Ok(T::default()),
        }
    }

    /// Files under `name`, in order; empty parts count as absent.
    pub fn files(&self, name: &str) -> Vec<Upload> {
        self.parts
            .iter()
            .filter(|p| p.name == name && !p.bytes.is_empty())
            .map(|p| Upload {
                file_name: p.file_name.clone().unwrap_or_else(|| name.to_string()),
                content_type: p
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".into()),
                bytes: p.bytes.clone(),
            })
            .collect()
    }
}

fn map_err(e: multer::Error, max_file: usize, max_request: usize) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } => ApiError::payload_too_large(max_file),
        multer::Error::StreamSizeExceeded { .. } => ApiError::payload_too_large(max_request),
        other => ApiError::invalid_request(format!("malformed multipart body: {other}")),
    }
}
