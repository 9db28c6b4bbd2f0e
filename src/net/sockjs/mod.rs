//! A SockJS 0.3.3 server endpoint, generic over the application behind it.
//!
//! One [`SockJsServer`] serves everything below its URL prefix: the greeting, `/info`, the
//! iframe page, raw `/websocket`, and `/{server}/{session}/{transport}` for the WebSocket,
//! streaming and polling transports. The application is a [`SessionFactory`]: each new
//! session gets an application [`Session`](crate::net::conn::Session) and an
//! [`Outbound`] queue, and never sees which transport carries it. `/ws` runs STOMP; the
//! conformance test server runs echo services.

mod session;
mod transport;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;

use crate::net::conn::{Item, Outbound, QueueLimits, SessionFactory};
use crate::net::response::{self, Resp};
use crate::net::websocket;
use crate::proto::sockjs;
use session::Registry;

/// Per-endpoint settings (sockjs-node and Spring have the same knobs).
#[derive(Debug, Clone)]
pub struct SockJsOptions {
    /// Offer and serve the WebSocket transports (`/websocket`, `/{s}/{s}/websocket`).
    pub websocket: bool,
    /// What `/info` reports as `cookie_needed`.
    pub cookie_needed: bool,
    /// Set (or echo) a `JSESSIONID` cookie on the HTTP transports, for sticky load balancers.
    pub jsessionid: bool,
    /// Serve the JSONP transports (`jsonp`, `jsonp_send`).
    pub jsonp: bool,
    /// Bytes after which a streaming response ends so the browser can free its memory.
    pub streaming_limit: usize,
    /// Silence after which `h` is sent.
    pub heartbeat: Duration,
    /// How long a session survives without a receiving request.
    pub disconnect_delay: Duration,
    /// Each session's outbound queue limits (bytes, age).
    pub limits: QueueLimits,
    /// Inbound messages queued per HTTP session before `xhr_send` waits.
    pub inbound_queue: usize,
    /// Largest accepted client message (xhr_send body, WebSocket message).
    pub max_message_bytes: usize,
    /// The SockJS client script the iframe page loads.
    pub client_url: String,
    /// WebSocket subprotocols, most preferred first, chosen when the client offers them.
    pub subprotocols: Vec<String>,
}

impl Default for SockJsOptions {
    fn default() -> Self {
        SockJsOptions {
            websocket: true,
            cookie_needed: false,
            jsessionid: false,
            jsonp: false,
            streaming_limit: 128 * 1024,
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            limits: QueueLimits::default(),
            inbound_queue: 64,
            max_message_bytes: 1024 * 1024,
            client_url: "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js".into(),
            subprotocols: Vec::new(),
        }
    }
}

/// State shared by the requests of one endpoint.
struct Inner {
    options: SockJsOptions,
    factory: Arc<dyn SessionFactory>,
    sessions: Arc<Registry>,
    iframe: Bytes,
    etag: String,
}

/// One SockJS endpoint. Cheap to clone.
#[derive(Clone)]
pub struct SockJsServer {
    inner: Arc<Inner>,
}

/// `a[...]` from JSON-escaped messages (escaped once, when they were queued).
pub(crate) fn batch_frame(items: &[Item]) -> String {
    let len: usize = items.iter().map(|i| i.len() + 3).sum();
    let mut out = Vec::with_capacity(len + 3);
    out.extend_from_slice(b"a[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        for p in item.parts() {
            out.extend_from_slice(p);
        }
        out.push(b'"');
    }
    out.push(b']');
    // Escaped contents are ASCII or whole UTF-8 characters.
    String::from_utf8_lossy(&out).into_owned()
}

impl SockJsServer {
    /// Must be called inside a Tokio runtime (it starts the session sweeper).
    pub fn new(options: SockJsOptions, factory: Arc<dyn SessionFactory>) -> Self {
        let sessions = Registry::new(options.limits, options.inbound_queue);
        sessions.spawn_sweeper(options.disconnect_delay);
        let iframe = sockjs::iframe_html(&options.client_url);
        let etag = sockjs::etag(iframe.as_bytes());
        SockJsServer {
            inner: Arc::new(Inner {
                options,
                factory,
                sessions,
                iframe: Bytes::from(iframe),
                etag,
            }),
        }
    }

    pub fn options(&self) -> &SockJsOptions {
        &self.inner.options
    }

    /// Closes every HTTP-transport session (server shutdown).
    pub fn close_all(&self, reason: crate::net::conn::CloseReason) {
        self.inner.sessions.close_all(reason);
    }

    /// Number of live HTTP-transport sessions.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Serves `req`, whose path below the endpoint's prefix is `sub_path` (`""`, `/info`, ...).
    pub async fn handle(&self, req: Request<Incoming>, sub_path: &str) -> Resp {
        let inner = &self.inner;
        let method = req.method().clone();
        match sub_path {
            "" | "/" => match method {
                Method::GET | Method::HEAD => response::with_body(
                    StatusCode::OK,
                    "text/plain;charset=UTF-8",
                    "Welcome to SockJS!\n",
                ),
                _ => not_found(),
            },
            "/info" => match method {
                Method::GET | Method::HEAD => transport::info(inner, &req),
                Method::OPTIONS => transport::preflight(&req, "OPTIONS, GET"),
                _ => not_found(),
            },
            "/websocket" if inner.options.websocket => self.websocket(req, false),
            p if is_iframe_path(p) && (method == Method::GET || method == Method::HEAD) => {
                self.iframe(&req)
            }
            p => match sockjs::parse_session_path(p) {
                Some((_server, session, kind)) => {
                    let session = session.to_string();
                    let kind = kind.to_string();
                    self.session_request(req, &session, &kind).await
                }
                None => not_found(),
            },
        }
    }

    async fn session_request(&self, req: Request<Incoming>, session: &str, kind: &str) -> Resp {
        let inner = &self.inner;
        let method = req.method().clone();
        let jsonp = inner.options.jsonp;
        match (kind, method) {
            ("websocket", _) if inner.options.websocket => self.websocket(req, true),
            ("xhr" | "xhr_send" | "xhr_streaming", Method::OPTIONS) => {
                transport::preflight(&req, "OPTIONS, POST")
            }
            ("xhr", Method::POST) => transport::receive(inner, req, session, "xhr").await,
            ("xhr_streaming", Method::POST) => {
                transport::receive(inner, req, session, "xhr_streaming").await
            }
            ("eventsource", Method::GET) => {
                transport::receive(inner, req, session, "eventsource").await
            }
            ("htmlfile", Method::GET) => transport::receive(inner, req, session, "htmlfile").await,
            ("jsonp", Method::GET) if jsonp => {
                transport::receive(inner, req, session, "jsonp").await
            }
            ("xhr_send", Method::POST) => transport::send(inner, req, session, false).await,
            ("jsonp_send", Method::POST) if jsonp => {
                transport::send(inner, req, session, true).await
            }
            _ => not_found(),
        }
    }

    /// `/websocket` (raw) and `/{server}/{session}/websocket` (SockJS framing). Each
    /// WebSocket is its own session: session ids may be reused.
    fn websocket(&self, req: Request<Incoming>, sockjs_framing: bool) -> Resp {
        let inner = self.inner.clone();
        let options = &self.inner.options;
        let encoding = if sockjs_framing {
            crate::net::conn::Encoding::SockJs
        } else {
            crate::net::conn::Encoding::Raw
        };
        let driver_options = websocket::driver::Options {
            max_message: options.max_message_bytes,
            sockjs_heartbeat: sockjs_framing.then_some(options.heartbeat),
        };
        websocket::accept(req, &options.subprotocols, move |stream, early, wire| {
            Box::pin(async move {
                let out = Outbound::new(encoding, inner.options.limits);
                let app = inner.factory.open(&out);
                websocket::driver::run(stream, early, wire, out, app, driver_options).await;
            })
        })
    }

    /// `/iframe.html` and `/iframe-<version>.html`: strongly cacheable, 304 on a match.
    fn iframe(&self, req: &Request<Incoming>) -> Resp {
        let inner = &self.inner;
        let matches = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == inner.etag || t.trim() == "*")
            });
        let mut r = if matches {
            response::status_only(StatusCode::NOT_MODIFIED)
        } else {
            response::with_body(
                StatusCode::OK,
                "text/html;charset=UTF-8",
                inner.iframe.clone(),
            )
        };
        transport::cache_for_a_year(&mut r);
        if let Ok(v) = HeaderValue::from_str(&inner.etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    }
}

/// `/iframe.html` or `/iframe-<[A-Za-z0-9._-]*>.html`.
fn is_iframe_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/iframe") else {
        return false;
    };
    let Some(middle) = rest.strip_suffix(".html") else {
        return false;
    };
    middle.is_empty()
        || middle.strip_prefix('-').is_some_and(|v| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

fn not_found() -> Resp {
    response::with_body(
        StatusCode::NOT_FOUND,
        "text/plain;charset=UTF-8",
        "Not found",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iframe_paths() {
        for ok in [
            "/iframe.html",
            "/iframe-a.html",
            "/iframe-.html",
            "/iframe-0.1.2.html",
            "/iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe_path(ok), "{ok}");
        }
        for bad in [
            "/iframe.htm",
            "/iframe",
            "/IFRAME.HTML",
            "/iframe.HTML",
            "/iframe.xml",
            "/iframe-/.html",
            "/iframex.html",
        ] {
            assert!(!is_iframe_path(bad), "{bad}");
        }
    }

    #[test]
    fn batch_frame_joins_escaped_messages() {
        let items = [
            Item::now(crate::net::conn::json_escaped(b"a")),
            Item::now(crate::net::conn::json_escaped(b"b\"\n")),
        ];
        assert_eq!(batch_frame(&items), r#"a["a","b\"\n"]"#);
    }
}
