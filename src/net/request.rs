//! The per-request context: method, path, query, headers, cookies, request id, body.

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// What a handler gets.
pub struct Ctx {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub request_id: String,
    pub body: Option<Incoming>,
    pub remote: std::net::SocketAddr,
    /// Cookies to set on the response (added by the router after the handler).
    pub set_cookies: Vec<String>,
    /// The connection's handle for realtime handlers that take the socket over.
    pub takeover: Option<crate::net::conn::Takeover>,
}

impl Ctx {
    pub fn new(
        req: http::Request<Incoming>,
        remote: std::net::SocketAddr,
        request_id: String,
    ) -> Self {
        let (mut parts, body) = req.into_parts();
        let takeover = parts.extensions.remove::<crate::net::conn::Takeover>();
        let query = parts.uri.query().map(parse_query).unwrap_or_default();
        Ctx {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query,
            headers: parts.headers,
            request_id,
            body: Some(body),
            remote,
            set_cookies: Vec::new(),
            takeover,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// First value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a query parameter, also splitting comma-separated values.
    pub fn query_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A required UUID query parameter: 400 when missing or malformed.
    pub fn query_uuid(&self, name: &str) -> ApiResult<Uuid> {
        let raw = self.query(name).ok_or_else(|| {
            ApiError::invalid_request(format!("query parameter '{name}' is required"))
        })?;
        parse_uuid(raw, name)
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"'))
    }

    /// The client's address: the peer, or what a trusted proxy says (see [`super::client_ip`]).
    pub fn client_ip(&self, trusted: &[crate::config::Cidr]) -> std::net::IpAddr {
        super::client_ip::client_ip(self.remote.ip(), &self.headers, trusted)
    }

    /// The Bearer token, if the header is present with that scheme.
    pub fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
            .filter(|t| !t.is_empty())
    }

    /// The whole body, at most `limit` bytes (413 beyond).
    pub async fn body_bytes(&mut self, limit: usize) -> ApiResult<Bytes> {
        let Some(mut body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        match Limited::new(&mut body, limit).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                drain(body).await;
                Err(ApiError::payload_too_large(limit))
            }
            Err(e) => Err(ApiError::invalid_request(format!(
                "could not read the body: {e}"
            ))),
        }
    }

    /// A JSON body of type `T` (400 on malformed JSON).
    pub async fn json<T: DeserializeOwned>(&mut self) -> ApiResult<T> {
        let bytes = self.body_bytes(1024 * 1024).await?;
        parse_json(&bytes)
    }
}

/// At most this much of a refused body is read and discarded (see [`drain`]).
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
/// And for at most this long.
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads and discards the rest of a body refused as too large. Answering while the client is
/// still sending makes the connection close with unread data, and the client then sees a reset
/// instead of the 413; reading the rest (bounded) lets it finish and read the error.
pub async fn drain<B: hyper::body::Body + Unpin>(mut body: B) {
    use bytes::Buf;
    let discard = async {
        let mut left = DRAIN_MAX_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.remaining());
            if n >= left {
                break;
            }
            left -= n;
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, discard).await;
}

/// Parses a JSON object into a request DTO; errors become 400 `INVALID_REQUEST` with serde's
/// reason. Only an object is accepted: serde would otherwise also fill a struct from an array
/// of its field values (`[null, null]`), a form no client means.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("request body is required"));
    }
    let malformed =
        |e: serde_json::Error| ApiError::invalid_request(format!("malformed JSON: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(malformed)?;
    if !value.is_object() {
        return Err(ApiError::invalid_request("the JSON body must be an object"));
    }
    serde_json::from_value(value).map_err(malformed)
}

/// The `name=value` pairs of a query string, percent- and `+`-decoded, in order (invalid
/// UTF-8 becomes U+FFFD).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Parses a path or query UUID: 400 when malformed.
pub fn parse_uuid(raw: &str, name: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::invalid_request(format!("'{name}' must be a UUID")).detail(name, raw.to_string())
    })
}
