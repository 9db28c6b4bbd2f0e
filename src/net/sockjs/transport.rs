//! The HTTP transports of SockJS: receiving (`xhr`, `xhr_streaming`, `eventsource`,
//! `htmlfile`, `jsonp`), sending (`xhr_send`, `jsonp_send`), `/info` and CORS preflights.
//!
//! Every receiving transport works the same way and differs only in how one SockJS frame is
//! wrapped ([`Receiver::wrap`]): polling answers with one frame, streaming keeps the response
//! open and writes each frame as its own chunk until the configured byte limit.

use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use std::sync::Arc;
use std::time::Duration;

use super::session::{Attach, Attached, Delivery};
use super::{batch_frame, Inner};
use crate::net::conn::CloseReason;
use crate::net::response::{self, Resp};
use crate::proto::sockjs;

/// What sockjs-node sends on every response that must not be cached; `no-transform` also
/// keeps proxies from recompressing (and so buffering) the streaming transports.
const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";
const ONE_YEAR_SECS: i64 = 31_536_000;

/// One receiving transport and, for the script-based ones, the client's callback.
#[derive(Debug, Clone)]
enum Receiver {
    Xhr,
    XhrStreaming,
    EventSource,
    HtmlFile(String),
    Jsonp(String),
}

impl Receiver {
    /// The transport named `kind`; the callback transports need a valid `c` parameter
    /// (otherwise the SockJS error text, answered with 500).
    fn from_request(kind: &str, req: &Request<Incoming>) -> Result<Receiver, &'static str> {
        let callback = || -> Result<String, &'static str> {
            let c = req.uri().query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "c")
                    .map(|(_, v)| v.into_owned())
            });
            match c {
                None => Err(sockjs::CALLBACK_REQUIRED),
                Some(c) if c.is_empty() => Err(sockjs::CALLBACK_REQUIRED),
                Some(c) if !sockjs::valid_callback(&c) => Err(sockjs::CALLBACK_INVALID),
                Some(c) => Ok(c),
            }
        };
        Ok(match kind {
            "xhr" => Receiver::Xhr,
            "xhr_streaming" => Receiver::XhrStreaming,
            "eventsource" => Receiver::EventSource,
            "htmlfile" => Receiver::HtmlFile(callback()?),
            _ => Receiver::Jsonp(callback()?),
        })
    }

    fn streaming(&self) -> bool {
        !matches!(self, Receiver::Xhr | Receiver::Jsonp(_))
    }

    fn content_type(&self) -> &'static str {
        match self {
            Receiver::Xhr | Receiver::XhrStreaming | Receiver::Jsonp(_) => {
                "application/javascript;charset=UTF-8"
            }
            // An event stream is UTF-8 by definition; sockjs-node sends no charset.
            Receiver::EventSource => "text/event-stream",
            Receiver::HtmlFile(_) => "text/html;charset=UTF-8",
        }
    }

    /// Bytes sent before the first frame (not counted against the streaming limit).
    fn prelude(&self) -> Option<Bytes> {
        match self {
            Receiver::XhrStreaming => Some(sockjs::xhr_streaming_prelude()),
            Receiver::EventSource => Some(sockjs::eventsource_prelude()),
            Receiver::HtmlFile(c) => Some(sockjs::htmlfile_prelude(c)),
            Receiver::Xhr | Receiver::Jsonp(_) => None,
        }
    }

    fn wrap(&self, frame: &str) -> Bytes {
        match self {
            Receiver::Xhr | Receiver::XhrStreaming => sockjs::xhr_frame(frame),
            Receiver::EventSource => sockjs::eventsource_frame(frame),
            Receiver::HtmlFile(_) => sockjs::htmlfile_frame(frame),
            Receiver::Jsonp(c) => sockjs::jsonp_frame(c, frame),
        }
    }

    /// The metrics label of this transport.
    fn transport(&self) -> crate::telemetry::metrics::Transport {
        use crate::telemetry::metrics::Transport;
        match self {
            Receiver::Xhr => Transport::SockJsXhrPolling,
            Receiver::XhrStreaming => Transport::SockJsXhrStreaming,
            Receiver::EventSource => Transport::SockJsEventSource,
            Receiver::HtmlFile(_) => Transport::SockJsHtmlFile,
            Receiver::Jsonp(_) => Transport::SockJsJsonp,
        }
    }

    fn cors(&self) -> bool {
        matches!(self, Receiver::Xhr | Receiver::XhrStreaming)
    }
}

fn close_frame(reason: &CloseReason) -> String {
    sockjs::close_frame(reason.code, &reason.text)
}

fn frame_of(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Messages(items) => batch_frame(items),
        Delivery::Close(reason) => close_frame(reason),
        Delivery::Heartbeat => "h".to_string(),
    }
}

fn server_error(text: &str) -> Resp {
    response::with_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain;charset=UTF-8",
        text.to_string(),
    )
}

fn set(r: &mut Resp, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// CORS for the XHR transports, as sockjs-node answers: a request with an `Origin` gets it
/// echoed with credentials allowed (sockjs-client sends cookies for sticky sessions), also the
/// `null` origin of `file://` pages, which browsers compare literally; a request without one
/// gets `*` and no credentials (the pair `*` + credentials is one browsers refuse). The
/// requested headers are echoed. `Vary: Origin` keeps caches (preflights are cacheable for a
/// year) from serving one origin's answer to another.
fn cors(headers: &HeaderMap, r: &mut Resp) {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| !o.is_empty());
    match origin {
        Some(origin) => {
            set(r, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            set(r, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        None => set(r, header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    }
    r.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(h) = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
    {
        set(r, header::ACCESS_CONTROL_ALLOW_HEADERS, h);
    }
}

fn no_cache(r: &mut Resp) {
    set(r, header::CACHE_CONTROL, NO_CACHE);
}

/// `Cache-Control` and `Expires` one year ahead (iframe page, preflights).
pub(super) fn cache_for_a_year(r: &mut Resp) {
    set(
        r,
        header::CACHE_CONTROL,
        &format!("public, max-age={ONE_YEAR_SECS}"),
    );
    let expires = chrono::Utc::now() + chrono::Duration::seconds(ONE_YEAR_SECS);
    set(
        r,
        header::EXPIRES,
        &expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
    );
}

/// `JSESSIONID` for sticky load balancers: echoed when the client has one, else `dummy`.
fn jsessionid(inner: &Inner, headers: &HeaderMap, r: &mut Resp) {
    if !inner.options.jsessionid {
        return;
    }
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "JSESSIONID")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| "dummy".into());
    set(
        r,
        header::SET_COOKIE,
        &format!("JSESSIONID={value}; Path=/"),
    );
}

/// `GET /info`.
pub(super) fn info(inner: &Inner, req: &Request<Incoming>) -> Resp {
    let entropy = (uuid::Uuid::new_v4().as_u128() >> 96) as u32;
    let body = sockjs::info_json(
        inner.options.websocket,
        inner.options.cookie_needed,
        entropy,
    );
    let mut r = response::with_body(StatusCode::OK, "application/json;charset=UTF-8", body);
    no_cache(&mut r);
    cors(req.headers(), &mut r);
    r
}

/// `OPTIONS` on `/info` and the XHR transports.
pub(super) fn preflight(req: &Request<Incoming>, methods: &str) -> Resp {
    let mut r = response::status_only(StatusCode::NO_CONTENT);
    cache_for_a_year(&mut r);
    set(
        &mut r,
        header::ACCESS_CONTROL_MAX_AGE,
        &ONE_YEAR_SECS.to_string(),
    );
    set(&mut r, header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    cors(req.headers(), &mut r);
    r
}

/// A receiving request: attach to (or open) the session and deliver frames.
pub(super) async fn receive(
    inner: &Arc<Inner>,
    req: Request<Incoming>,
    session_id: &str,
    kind: &str,
) -> Resp {
    let receiver = match Receiver::from_request(kind, &req) {
        Ok(r) => r,
        Err(text) => return server_error(text),
    };
    let session = inner
        .sessions
        .get_or_create(session_id, receiver.transport(), &inner.factory);
    let attach = session.attach();
    let heartbeat = inner.options.heartbeat;
    let mut r = if receiver.streaming() {
        streaming(
            receiver.clone(),
            attach,
            inner.options.streaming_limit,
            heartbeat,
        )
    } else {
        let body = receiver.wrap(&poll(attach, heartbeat).await);
        response::with_body(StatusCode::OK, receiver.content_type(), body)
    };
    set(&mut r, header::CONTENT_TYPE, receiver.content_type());
    no_cache(&mut r);
    if receiver.cors() {
        cors(req.headers(), &mut r);
    }
    jsessionid(inner, req.headers(), &mut r);
    r
}

/// Polling: exactly one frame per response.
async fn poll(attach: Attach, heartbeat: Duration) -> String {
    match attach {
        Attach::Refuse(reason) => close_frame(&reason),
        Attach::Receiver { guard, open: true } => {
            guard.finish();
            "o".to_string()
        }
        Attach::Receiver {
            mut guard,
            open: false,
        } => {
            let delivery = guard.next(heartbeat).await;
            guard.finish();
            frame_of(&delivery)
        }
    }
}

/// Where a streaming response is.
enum Step {
    Prelude,
    Open,
    Deliver,
    Done,
}

/// The state of one streaming response; each call of [`Streaming::next_chunk`] yields one
/// wrapped frame, which hyper sends as one chunk.
struct Streaming {
    receiver: Receiver,
    step: Step,
    guard: Option<Attached>,
    refuse: Option<CloseReason>,
    open: bool,
    sent: usize,
    limit: usize,
    heartbeat: Duration,
}

impl Streaming {
    fn counted(&mut self, frame: &str) -> Bytes {
        let bytes = self.receiver.wrap(frame);
        self.sent += bytes.len();
        bytes
    }

    /// Ends the response normally: the session keeps its receiver for the next request.
    fn finish(&mut self) {
        self.step = Step::Done;
        if let Some(g) = self.guard.take() {
            g.finish();
        }
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.step {
                Step::Prelude => {
                    self.step = Step::Open;
                    if let Some(p) = self.receiver.prelude() {
                        return Some(p);
                    }
                }
                Step::Open => {
                    self.step = Step::Deliver;
                    if let Some(reason) = self.refuse.take() {
                        self.finish();
                        return Some(self.receiver.wrap(&close_frame(&reason)));
                    }
                    if self.open {
                        return Some(self.counted("o"));
                    }
                }
                Step::Deliver => {
                    if self.sent >= self.limit {
                        self.finish();
                        return None;
                    }
                    let guard = self.guard.as_mut()?;
                    let delivery = guard.next(self.heartbeat).await;
                    if matches!(delivery, Delivery::Close(_)) {
                        self.finish();
                    }
                    return Some(self.counted(&frame_of(&delivery)));
                }
                Step::Done => {
                    self.finish();
                    return None;
                }
            }
        }
    }
}

fn streaming(receiver: Receiver, attach: Attach, limit: usize, heartbeat: Duration) -> Resp {
    let (guard, refuse, open) = match attach {
        Attach::Refuse(reason) => (None, Some(reason), false),
        Attach::Receiver { guard, open } => (Some(guard), None, open),
    };
    let state = Streaming {
        receiver,
        step: Step::Prelude,
        guard,
        refuse,
        open,
        sent: 0,
        limit,
        heartbeat,
    };
    let body = StreamBody::new(stream::unfold(state, |mut st| async move {
        st.next_chunk()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(Frame::data(chunk)), st))
    }));
    let mut r = http::Response::new(body.boxed());
    *r.status_mut() = StatusCode::OK;
    r
}

/// `xhr_send` / `jsonp_send`: hand the client's messages to the session's service.
pub(super) async fn send(
    inner: &Arc<Inner>,
    req: Request<Incoming>,
    session_id: &str,
    jsonp: bool,
) -> Resp {
    let (parts, body) = req.into_parts();
    let mut r = send_inner(inner, &parts.headers, body, session_id, jsonp).await;
    no_cache(&mut r);
    if !jsonp {
        cors(&parts.headers, &mut r);
    }
    jsessionid(inner, &parts.headers, &mut r);
    r
}

async fn send_inner(
    inner: &Arc<Inner>,
    headers: &HeaderMap,
    body: Incoming,
    session_id: &str,
    jsonp: bool,
) -> Resp {
    let Some(session) = inner.sessions.get(session_id) else {
        return super::not_found();
    };
    let limit = inner.options.max_message_bytes;
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return response::with_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain;charset=UTF-8",
                format!("Payload too large: limit is {limit} bytes."),
            )
        }
    };
    let parsed = if jsonp {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        sockjs::parse_jsonp_send(&body, ct)
    } else {
        sockjs::parse_client_messages(&body)
    };
    let messages = match parsed {
        Ok(m) => m,
        Err(e) => return server_error(e.message()),
    };
    for m in messages {
        if session.inbound.send(Bytes::from(m)).await.is_err() {
            break;
        }
    }
    if jsonp {
        response::with_body(StatusCode::OK, "text/plain;charset=UTF-8", "ok")
    } else {
        let mut r = response::status_only(StatusCode::NO_CONTENT);
        set(&mut r, header::CONTENT_TYPE, "text/plain;charset=UTF-8");
        r
    }
}
