//! The access log: one line per HTTP request, written when its response has been sent (or
//! abandoned), with the bytes actually written and the whole duration, like nginx's.
//!
//! The line's target is `access`, so `RUST_LOG=info,access=off` silences it.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use super::response::{Body, Resp};

/// What the line says besides the bytes and the duration.
pub struct Entry {
    pub method: http::Method,
    pub route: &'static str,
    pub status: u16,
    pub request_id: String,
    pub instance: String,
    pub started: Instant,
}

/// The id of a request: the caller's `X-Request-Id` (nginx sends its `$request_id`) when it
/// is short and plain, so one id follows the request through both logs; else a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Wraps the response body so the line is written once the body is done.
pub fn attach(resp: Resp, entry: Entry) -> Resp {
    resp.map(|inner| {
        http_body_util::BodyExt::boxed(Logged {
            inner,
            entry,
            bytes: 0,
        })
    })
}

/// A response body that counts what it yields and logs on drop.
struct Logged {
    inner: Body,
    entry: Entry,
    bytes: u64,
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let e = &self.entry;
        tracing::info!(
            target: "access",
            method = %e.method,
            route = e.route,
            status = e.status,
            bytes = self.bytes,
            duration_ms = e.started.elapsed().as_secs_f64() * 1000.0,
            request_id = %e.request_id,
            instance = %e.instance,
            "access"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_plain() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h).len(), 32);
        h.insert("x-request-id", HeaderValue::from_static("abc-123_x.y"));
        assert_eq!(request_id(&h), "abc-123_x.y");
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(request_id(&h), "has space");
        h.insert(
            "x-request-id",
            HeaderValue::from_str(&"a".repeat(65)).unwrap(),
        );
        assert_eq!(request_id(&h).len(), 32);
    }
}
