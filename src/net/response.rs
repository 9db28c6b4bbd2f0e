//! Response construction: JSON, ErrorResponse bodies, the request-id header.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use serde::Serialize;

use crate::error::ApiError;
use crate::time::{format_instant, now};

/// Every response body: full or streaming.
pub type Body = BoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

pub const JSON: &str = "application/json";
pub const JSON_UTF8: &str = "application/json;charset=UTF-8";

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A response with `status`, content type and body.
pub fn with_body(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    match serde_json::to_vec(value) {
        Ok(b) => with_body(status, JSON, b),
        Err(e) => error(&ApiError::internal(e), ""),
    }
}

pub fn status_only(status: StatusCode) -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

/// The `ErrorResponse` body for `e` (plus Spring's `error`/`path` for framework-level 403s).
pub fn error(e: &ApiError, path: &str) -> Resp {
    let mut body = serde_json::json!({
        "timestamp": format_instant(&now()),
        "code": e.code,
        "message": e.message,
        "details": e.details,
        "exceptionType": e.exception_type,
        "status": e.status,
    });
    if e.framework {
        body["error"] = "Forbidden".into();
        body["path"] = path.into();
    }
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = with_body(
        status,
        JSON_UTF8,
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    if let Some(secs) = e.retry_after {
        set_header(&mut r, header::RETRY_AFTER, &secs.to_string());
    }
    r
}

/// Adds a header, ignoring values that are not valid header text.
pub fn set_header(r: &mut Resp, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(name, v);
    }
}

/// 204 No Content.
pub fn no_content() -> Resp {
    status_only(StatusCode::NO_CONTENT)
}
