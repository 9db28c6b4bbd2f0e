//! WebSocket (RFC 6455): the handshake, and the driver that runs a connection afterwards.
//!
//! The handshake is an ordinary hyper request: [`accept`] checks it, answers 101 and
//! registers a handoff on the connection's [`Takeover`], so once hyper has written the 101
//! the socket is driven by [`driver::run`] with no hyper state left behind.

pub mod driver;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpStream;

use crate::net::conn::Takeover;
use crate::net::response::{self, Resp};
use crate::proto::websocket::accept_key;

/// WebSocket versions whose framing is RFC 6455's (hybi-07, hybi-08, RFC 6455).
const VERSIONS: [&str; 3] = ["13", "8", "7"];

fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn bad_request(text: &str) -> Resp {
    response::with_body(
        StatusCode::BAD_REQUEST,
        "text/plain;charset=UTF-8",
        text.to_string(),
    )
}

/// 405 for a non-GET request to a WebSocket URL (no body, `Allow: GET`).
pub fn method_not_allowed() -> Resp {
    let mut r = response::status_only(StatusCode::METHOD_NOT_ALLOWED);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    r
}

/// The first of our `supported` subprotocols (in our order of preference) the client offered.
fn choose_protocol(req: &Request<Incoming>, supported: &[String]) -> Option<String> {
    let offered: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    supported
        .iter()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
        .cloned()
}

/// Answers a WebSocket upgrade request: on success a 101 response, and `run` gets the
/// socket (and any bytes the client sent after its request) once hyper has written it.
/// Malformed requests get 400/405.
pub fn accept<F>(req: Request<Incoming>, protocols: &[String], run: F) -> Resp
where
    F: FnOnce(TcpStream, Bytes) -> BoxFuture<'static, ()> + Send + 'static,
{
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    if !header_has_token(&req, header::UPGRADE, "websocket") {
        return bad_request("Can \"Upgrade\" only to \"WebSocket\".");
    }
    if !header_has_token(&req, header::CONNECTION, "upgrade") {
        return bad_request("\"Connection\" must be \"Upgrade\".");
    }
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| VERSIONS.contains(&v.trim()));
    if !version_ok {
        let mut r = bad_request("Unsupported WebSocket version: use 13.");
        r.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return r;
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return bad_request("Missing Sec-WebSocket-Key header.");
    };
    let Some(takeover) = req.extensions().get::<Takeover>() else {
        return response::with_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain;charset=UTF-8",
            "WebSocket not available on this connection",
        );
    };
    let accept = accept_key(key.as_bytes());
    let protocol = choose_protocol(&req, protocols);
    takeover.after_response(Box::new(run));

    let mut r = response::status_only(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    r
}
