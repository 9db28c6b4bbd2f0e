//! WebSocket over hyper: the RFC 6455 handshake (101 response, `Sec-WebSocket-Accept`,
//! subprotocol choice) and the per-connection drivers for raw and SockJS framing.
//!
//! A connection runs two halves concurrently: the reader hands client messages to the
//! service (waiting when the service is busy, which back-pressures the client), the writer
//! drains the bounded outbound queue in batches (several messages fed, one flush). Whichever
//! half ends first ends the connection.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::outbox::{CloseReason, Next, Outbox, OutboxReceiver, Outgoing};
use crate::net::response::{self, Resp};
use crate::proto::sockjs;

/// An upgraded connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// WebSocket versions whose framing is RFC 6455's (hybi-07, hybi-08, RFC 6455).
const VERSIONS: [&str; 3] = ["13", "8", "7"];

/// A single batch write blocked this long means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the client may take to answer our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

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

/// Answers a WebSocket upgrade request: on success a 101 response, and `serve` runs with
/// the socket once hyper hands the connection over. Malformed requests get 400/405.
pub fn upgrade<F, Fut>(
    mut req: Request<Incoming>,
    protocols: &[String],
    max_message_bytes: usize,
    serve: F,
) -> Resp
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
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
    let accept = derive_accept_key(key.as_bytes());
    let protocol = choose_protocol(&req, protocols);

    let on_upgrade = hyper::upgrade::on(&mut req);
    let config = WebSocketConfig::default()
        // Client frames are small; a 2 KiB read buffer (zero-filled on each read by
        // tungstenite) keeps idle connections cheap. Larger frames just take more reads.
        .read_buffer_size(2 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve(socket).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
    });

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

/// The WebSocket close frame for `reason` (reason cut to the 123 bytes a close frame holds).
fn close_message(reason: &CloseReason) -> Message {
    let mut text = reason.reason.as_str();
    if text.len() > 123 {
        let mut end = 123;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text = &text[..end];
    }
    let code = match reason.code {
        1000..=1003 | 1007..=1011 | 1013 | 3000..=4999 => CloseCode::from(reason.code),
        _ => CloseCode::Normal,
    };
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(text),
    }))
}

fn message_of(item: Outgoing) -> Message {
    match item {
        Outgoing::Text(t) => Message::Text(t),
        Outgoing::Binary(b) => Message::Binary(b),
    }
}

/// Runs one write, giving up when the client stopped reading: the queue overflowed while
/// the write was blocked (the connection was closed as a slow consumer), or the write took
/// longer than [`WRITE_TIMEOUT`]. Returns true when the write completed.
async fn guarded<E>(outbox: &Outbox, write: impl Future<Output = Result<(), E>>) -> bool {
    tokio::select! {
        done = tokio::time::timeout(WRITE_TIMEOUT, write) => matches!(done, Ok(Ok(()))),
        _ = outbox.stalled() => false,
    }
}

/// Runs both halves until one ends. After the writer sent its close frame, the reader gets
/// a moment to receive the client's close reply, so the close handshake completes and the
/// client reads everything before the TCP connection goes away.
async fn finish(writer: impl Future<Output = ()>, reader: impl Future<Output = ()>) {
    tokio::pin!(writer, reader);
    tokio::select! {
        _ = &mut writer => {
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
        }
        _ = &mut reader => {}
    }
}

/// Raw framing: every outbound item is one WebSocket message; every inbound text or binary
/// message goes to the service as it is.
pub async fn run_raw(
    socket: Socket,
    inbound: mpsc::Sender<Bytes>,
    outbox: Outbox,
    mut rx: OutboxReceiver,
) {
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        loop {
            match rx.next().await {
                Next::Batch(items) => {
                    let write = async {
                        for item in items {
                            sink.feed(message_of(item)).await?;
                        }
                        sink.flush().await
                    };
                    if !guarded(&outbox, write).await {
                        return;
                    }
                }
                Next::Close(reason) => {
                    guarded(&outbox, sink.send(close_message(&reason))).await;
                    return;
                }
            }
        }
    };
    let reader = async {
        while let Some(Ok(msg)) = stream.next().await {
            let payload = match msg {
                Message::Text(t) => Bytes::from(t),
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if inbound.send(payload).await.is_err() {
                break;
            }
        }
    };
    finish(writer, reader).await;
    outbox.close(CloseReason::normal());
}

/// SockJS framing over WebSocket: `o` first, batches as `a[...]`, `h` after `heartbeat` of
/// silence, `c[...]` before closing. Inbound messages are SockJS JSON (`"m"` or `["m",..]`);
/// broken JSON ends the connection at once.
pub async fn run_sockjs(
    socket: Socket,
    inbound: mpsc::Sender<Bytes>,
    outbox: Outbox,
    mut rx: OutboxReceiver,
    heartbeat: Duration,
) {
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        let open = sink.send(Message::Text(Utf8Bytes::from_static("o")));
        if !guarded(&outbox, open).await {
            return;
        }
        loop {
            let frame = match tokio::time::timeout(heartbeat, rx.next()).await {
                Err(_) => Utf8Bytes::from_static("h"),
                Ok(Next::Batch(items)) => Utf8Bytes::from(super::sockjs::batch_frame(&items)),
                Ok(Next::Close(reason)) => {
                    // Flushed on its own so that clients which drop data arriving together
                    // with a close frame still see the close reason.
                    let c = sockjs::close_frame(reason.code, &reason.reason);
                    let close = async {
                        sink.send(Message::Text(c.into())).await?;
                        sink.send(close_message(&reason)).await
                    };
                    guarded(&outbox, close).await;
                    return;
                }
            };
            if !guarded(&outbox, sink.send(Message::Text(frame))).await {
                return;
            }
        }
    };
    let reader = async {
        while let Some(Ok(msg)) = stream.next().await {
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => break,
                _ => continue,
            };
            let Ok(messages) = sockjs::parse_ws_message(&text) else {
                break;
            };
            for m in messages {
                if inbound.send(Bytes::from(m)).await.is_err() {
                    return;
                }
            }
        }
    };
    finish(writer, reader).await;
    outbox.close(CloseReason::normal());
}
