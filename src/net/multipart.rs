//! `multipart/form-data` bodies, parsed with `multer` under the configured size limits.
//! Parts are looked up by name; the JSON part may come as a file (`filename="blob"`) or as a
//! plain field with any content type.

use bytes::Bytes;
use hyper::body::Body;
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use super::request::{drain, parse_json, Ctx};
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

/// Parts a form may have besides its repeated file part (JSON parts, plain fields).
const MAX_OTHER_PARTS: usize = 8;

/// How many parts a form may have: `files` parts named `name` (e.g. 10 `attachments`) and
/// [`MAX_OTHER_PARTS`] others. Exists because a part costs memory however small it is, so
/// the byte limits alone do not bound a form.
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    pub name: &'static str,
    pub files: usize,
}

impl Form {
    /// Reads the whole form; 413 when a file or the request is over its limit, 400 (naming
    /// the limit) when it has more parts than `parts` allows. Either way the rest of the body
    /// is drained first, so the client reads the error.
    pub async fn read(
        ctx: &mut Ctx,
        max_file: usize,
        max_request: usize,
        parts_limit: PartLimits,
    ) -> ApiResult<Form> {
        let ct = ctx.header("content-type").unwrap_or_default().to_string();
        let body = ctx.body.take();
        Self::read_body(&ct, body, max_file, max_request, parts_limit).await
    }

    /// [`Form::read`] on any body (the request's, or bytes in a test or the fuzz target).
    pub async fn read_body<B>(
        content_type: &str,
        body: Option<B>,
        max_file: usize,
        max_request: usize,
        parts_limit: PartLimits,
    ) -> ApiResult<Form>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let ct = content_type;
        let boundary = multer::parse_boundary(ct).map_err(|_| {
            ApiError::unsupported_media_type(ct)
                .detail("expected", "multipart/form-data with a boundary")
        })?;
        let Some(body) = body else {
            return Err(ApiError::invalid_request("request body is required"));
        };
        let limits = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(max_request as u64)
                .per_field(max_file as u64),
        );
        let slot = Arc::new(Mutex::new(Some(body)));
        let mut mp = multer::Multipart::with_constraints(BodySlot(slot.clone()), boundary, limits);
        let mut parts = Vec::new();
        let (mut files, mut others) = (0, 0);
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(refuse(e, slot, max_file, max_request).await),
            };
            let name = field.name().unwrap_or_default().to_string();
            let over = if name == parts_limit.name {
                files += 1;
                (files > parts_limit.files).then(|| ApiError::too_many(&name, parts_limit.files))
            } else {
                others += 1;
                (others > MAX_OTHER_PARTS).then(|| {
                    ApiError::too_many(
                        &format!("multipart parts other than '{}'", parts_limit.name),
                        MAX_OTHER_PARTS,
                    )
                })
            };
            if let Some(e) = over {
                drop(field);
                drop(mp);
                drain_slot(slot).await;
                return Err(e);
            }
            let file_name = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(|m| m.to_string());
            let bytes = match field.bytes().await {
                Ok(b) => b,
                Err(e) => return Err(refuse(e, slot, max_file, max_request).await),
            };
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

/// The error for a multer failure; for a size limit the rest of the body is drained first, so
/// the client reads the 413 instead of a reset connection.
async fn refuse<B: Body + Unpin>(
    e: multer::Error,
    slot: Arc<Mutex<Option<B>>>,
    max_file: usize,
    max_request: usize,
) -> ApiError {
    let limit = match e {
        multer::Error::FieldSizeExceeded { .. } => max_file,
        multer::Error::StreamSizeExceeded { .. } => max_request,
        other => return ApiError::invalid_request(format!("malformed multipart body: {other}")),
    };
    drain_slot(slot).await;
    ApiError::payload_too_large(limit)
}

/// Drains what is left of the request body (bounded, see [`drain`]).
async fn drain_slot<B: Body + Unpin>(slot: Arc<Mutex<Option<B>>>) {
    let rest = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(body) = rest {
        drain(body).await;
    }
}

/// The request body as multer's data stream, kept in a shared slot so it can be taken back
/// (and drained) after multer gives up on it.
struct BodySlot<B>(Arc<Mutex<Option<B>>>);

impl<B: Body<Data = Bytes> + Unpin> futures_util::Stream for BodySlot<B> {
    type Item = Result<Bytes, B::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match ready!(Pin::new(&mut *body).poll_frame(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}
