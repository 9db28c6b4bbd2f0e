//! WebSocket: the handshake, and the driver that runs a connection afterwards.
//!
//! The handshake is an ordinary hyper request: [`accept`] checks it, answers 101 and
//! registers a handoff on the connection's [`Takeover`], so once hyper has written the 101
//! the socket is driven by [`driver::run`] with no hyper state left behind. RFC 6455 is the
//! protocol; Hixie-76 (the pre-RFC draft sockjs-node still answers, and the SockJS suite
//! checks through HAProxy) is recognised too: its 101 goes out at once, then the handoff
//! reads the 8-byte key3 and starts the stream with the 16-byte challenge answer.

pub mod driver;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::net::conn::Takeover;
use crate::net::response::{self, Resp};
use crate::proto::hixie76::{self, Handshake, KEY3_LEN};
use crate::proto::websocket::accept_key;

/// How long a Hixie-76 client may take to send key3 after our 101.
const KEY3_TIMEOUT: Duration = Duration::from_secs(10);

/// Which WebSocket protocol a connection speaks, and what must be written first.
#[derive(Debug, Clone)]
pub enum Wire {
    Rfc6455,
    /// Hixie-76: the challenge answer opens the stream.
    Hixie76 {
        challenge: Bytes,
    },
}

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
/// socket (and any bytes the client sent after its handshake) once hyper has written it.
/// Malformed requests get 400/405.
pub fn accept<F>(req: Request<Incoming>, protocols: &[String], run: F) -> Resp
where
    F: FnOnce(TcpStream, Bytes, Wire) -> BoxFuture<'static, ()> + Send + 'static,
{
    match hixie76_request(&req) {
        Err(e) => return bad_request(e.message()),
        Ok(Some(hs)) => return accept_hixie76(req, hs, protocols, run),
        Ok(None) => {}
    }
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
    takeover.after_response(Box::new(move |stream, early| {
        run(stream, early, Wire::Rfc6455)
    }));

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

/// `Ok(Some)` when `req` is a Hixie-76 handshake.
fn hixie76_request(req: &Request<Incoming>) -> Result<Option<Handshake>, hixie76::HandshakeError> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let headers = req
        .headers()
        .iter()
        .map(|(n, v): (&HeaderName, &HeaderValue)| (n.as_str(), v.as_bytes()));
    Handshake::from_request(req.method().as_str(), target, false, headers)
}

/// Hixie-76: 101 at once (HAProxy holds key3 back until it sees it), then read key3.
fn accept_hixie76<F>(req: Request<Incoming>, hs: Handshake, protocols: &[String], run: F) -> Resp
where
    F: FnOnce(TcpStream, Bytes, Wire) -> BoxFuture<'static, ()> + Send + 'static,
{
    let Some(takeover) = req.extensions().get::<Takeover>() else {
        return bad_request("WebSocket not available on this connection");
    };
    let protocol = hs
        .requested_protocol()
        .filter(|p| protocols.iter().any(|s| s.eq_ignore_ascii_case(p)))
        .map(str::to_string);
    let mut r = response::status_only(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in hs.response_headers(protocol.as_deref()) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            r.headers_mut().insert(n, v);
        }
    }
    takeover.after_response(Box::new(move |mut stream, early| {
        Box::pin(async move {
            let mut key3 = [0u8; KEY3_LEN];
            let have = early.len().min(KEY3_LEN);
            key3[..have].copy_from_slice(&early[..have]);
            if have < KEY3_LEN {
                let read = tokio::time::timeout(KEY3_TIMEOUT, stream.read_exact(&mut key3[have..]));
                if !matches!(read.await, Ok(Ok(_))) {
                    return;
                }
            }
            let challenge = Bytes::copy_from_slice(&hs.challenge_response(&key3));
            run(stream, early.slice(have..), Wire::Hixie76 { challenge }).await;
        })
    }));
    r
}
