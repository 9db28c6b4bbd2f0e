//! A small STOMP 1.2 client for the tests, over raw WebSocket (`/ws/websocket`) or any
//! SockJS transport (`/ws/{server}/{session}/...`). It speaks to the real server over real
//! connections; frames are decoded with the crate's own codec.
#![allow(dead_code)]

use bytes::BytesMut;
use discodeit::proto::stomp::{encode_to_bytes, Command, Decoder, Frame, Item, Limits};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Time to wait for a frame that must come.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which transport carries the STOMP frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Raw,
    SockJsWebSocket,
    XhrStreaming,
    XhrPolling,
    EventSource,
}

/// The receiving side of an HTTP SockJS transport.
enum HttpRecv {
    /// A streaming response: frames separated by `\n` (xhr) or `\r\n\r\n` (eventsource).
    Stream {
        resp: reqwest::Response,
        buf: Vec<u8>,
    },
    /// xhr polling: a new request per frame.
    Poll,
}

enum Conn {
    Raw(Ws),
    SockJsWs(Ws),
    Http {
        http: reqwest::Client,
        session_url: String,
        recv: HttpRecv,
        kind: Kind,
    },
}

/// What the client saw instead of a frame.
#[derive(Debug, PartialEq)]
pub enum End {
    /// The connection (or SockJS session) was closed; SockJS close code if any.
    Closed(Option<u16>),
    TimedOut,
}

/// One STOMP connection.
pub struct StompClient {
    conn: Conn,
    decoder: Decoder,
    buf: BytesMut,
    frames: VecDeque<Frame>,
    /// The close reason text (WebSocket close frame or SockJS `c[...]`), once closed.
    pub close_text: Option<String>,
    /// Heart-beat EOLs received.
    pub heartbeats: usize,
    /// The subprotocol the server chose (raw WebSocket).
    pub protocol: Option<String>,
    closed: Option<End>,
}

fn ws_url(base: &str, path: &str) -> String {
    format!("{}{}", base.replacen("http", "ws", 1), path)
}

fn session_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl StompClient {
    /// Opens the transport (nothing STOMP is sent yet).
    pub async fn open(base: &str, kind: Kind) -> StompClient {
        let conn = match kind {
            Kind::Raw => {
                let mut req = ws_url(base, "/ws/websocket").into_client_request().unwrap();
                req.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    "v10.stomp, v11.stomp, v12.stomp".parse().unwrap(),
                );
                let (ws, resp) = tokio_tungstenite::connect_async(req)
                    .await
                    .expect("ws connect");
                let protocol = resp
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_string());
                let mut c = Self::with(Conn::Raw(ws));
                c.protocol = protocol;
                return c;
            }
            Kind::SockJsWebSocket => {
                let url = ws_url(base, &format!("/ws/123/{}/websocket", session_id()));
                let (mut ws, _) = tokio_tungstenite::connect_async(url)
                    .await
                    .expect("ws connect");
                let open = ws.next().await.unwrap().unwrap();
                assert_eq!(open, Message::Text("o".into()), "SockJS open frame");
                Conn::SockJsWs(ws)
            }
            _ => {
                let http = reqwest::Client::new();
                let session_url = format!("{base}/ws/456/{}", session_id());
                let recv = match kind {
                    Kind::XhrPolling => HttpRecv::Poll,
                    Kind::XhrStreaming => HttpRecv::Stream {
                        resp: http
                            .post(format!("{session_url}/xhr_streaming"))
                            .send()
                            .await
                            .unwrap(),
                        buf: Vec::new(),
                    },
                    _ => HttpRecv::Stream {
                        resp: http
                            .get(format!("{session_url}/eventsource"))
                            .send()
                            .await
                            .unwrap(),
                        buf: Vec::new(),
                    },
                };
                let mut c = Self::with(Conn::Http {
                    http,
                    session_url,
                    recv,
                    kind,
                });
                assert_eq!(
                    c.sockjs_frame(WAIT).await.as_deref(),
                    Some("o"),
                    "SockJS open frame"
                );
                return c;
            }
        };
        Self::with(conn)
    }

    /// Raw WebSocket over a socket whose receive buffer is only `recv_buffer` bytes, so a
    /// client that stops reading fills up quickly.
    pub async fn open_raw_small_buffer(base: &str, recv_buffer: usize) -> StompClient {
        let url = ws_url(base, "/ws/websocket");
        let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(recv_buffer).unwrap();
        socket.connect(&addr.into()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(socket.into()).unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("ws handshake");
        Self::with(Conn::Raw(ws))
    }

    fn with(conn: Conn) -> StompClient {
        StompClient {
            conn,
            decoder: Decoder::new(Limits {
                max_frame_bytes: 16 * 1024 * 1024,
                max_header_bytes: 64 * 1024,
                max_headers: 1000,
            }),
            buf: BytesMut::new(),
            frames: VecDeque::new(),
            close_text: None,
            heartbeats: 0,
            protocol: None,
            closed: None,
        }
    }

    /// Opens the transport and sends CONNECT with `Authorization: Bearer <token>`; returns
    /// the first frame received (CONNECTED or ERROR).
    pub async fn connect(base: &str, kind: Kind, token: &str) -> (StompClient, Frame) {
        let mut c = Self::open(base, kind).await;
        let f = c
            .connect_with(&[("Authorization", &format!("Bearer {token}"))])
            .await;
        (c, f)
    }

    /// Like [`Self::connect`] but asserts CONNECTED.
    pub async fn connected(base: &str, kind: Kind, token: &str) -> StompClient {
        let (c, f) = Self::connect(base, kind, token).await;
        assert_eq!(
            f.command,
            Command::Connected,
            "CONNECT refused: {:?}",
            f.header("message")
        );
        c
    }

    /// Sends CONNECT with extra headers; returns the reply.
    pub async fn connect_with(&mut self, headers: &[(&str, &str)]) -> Frame {
        // Given headers first: with repeated headers the first one counts.
        let mut f = Frame::new(Command::Connect);
        for (k, v) in headers {
            f = f.with_header(*k, *v);
        }
        let f = f
            .with_header("accept-version", "1.2,1.1,1.0")
            .with_header("host", "localhost")
            .with_header("heart-beat", "0,0");
        self.send(&f).await;
        match self.next_frame(WAIT).await {
            Some(reply) => reply,
            None => panic!(
                "no reply to CONNECT: connection {:?} ({:?})",
                self.closed, self.close_text
            ),
        }
    }

    /// Sends raw bytes as one transport message.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.conn {
            Conn::Raw(ws) => {
                let msg = match std::str::from_utf8(bytes) {
                    Ok(t) => Message::Text(Utf8Bytes::from(t)),
                    Err(_) => Message::Binary(bytes.to_vec().into()),
                };
                let _ = ws.send(msg).await;
            }
            Conn::SockJsWs(ws) => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                let json = serde_json::to_string(&vec![text]).unwrap();
                let _ = ws.send(Message::Text(json.into())).await;
            }
            Conn::Http {
                http, session_url, ..
            } => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                let r = http
                    .post(format!("{session_url}/xhr_send"))
                    .body(serde_json::to_string(&vec![text]).unwrap())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 204, "xhr_send");
            }
        }
    }

    pub async fn send(&mut self, frame: &Frame) {
        self.send_raw(&encode_to_bytes(frame)).await;
    }

    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        self.send(
            &Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination)
                .with_header("ack", "auto"),
        )
        .await;
    }

    /// SUBSCRIBE with a receipt; returns the reply (RECEIPT or ERROR).
    pub async fn subscribe_confirmed(&mut self, id: &str, destination: &str) -> Frame {
        self.send(
            &Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination)
                .with_header("receipt", format!("r-{id}")),
        )
        .await;
        self.next_frame(WAIT).await.expect("reply to SUBSCRIBE")
    }

    /// SEND `/pub/messages` with a JSON body and a receipt; returns the reply (RECEIPT or
    /// ERROR), skipping MESSAGE frames that arrive meanwhile (they stay queued).
    pub async fn send_json(&mut self, destination: &str, body: &Value, receipt: &str) -> Frame {
        self.send(
            &Frame::new(Command::Send)
                .with_header("destination", destination)
                .with_header("content-type", "application/json")
                .with_header("receipt", receipt)
                .body(serde_json::to_vec(body).unwrap()),
        )
        .await;
        self.next_non_message(WAIT).await.expect("reply to SEND")
    }

    /// The next frame that is not a MESSAGE (MESSAGEs stay queued for `next_frame`).
    pub async fn next_non_message(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .frames
                .iter()
                .position(|f| f.command != Command::Message)
            {
                return self.frames.remove(i);
            }
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            if !self.fill(left).await {
                return None;
            }
        }
    }

    /// The next frame, or None at close / timeout.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(f) = self.frames.pop_front() {
                return Some(f);
            }
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            if !self.fill(left).await {
                return None;
            }
        }
    }

    /// The next MESSAGE's body as JSON (other frames are an error).
    pub async fn next_message_json(&mut self) -> (Frame, Value) {
        let f = self
            .next_frame(WAIT)
            .await
            .unwrap_or_else(|| panic!("no MESSAGE: {:?}", self.closed));
        assert_eq!(f.command, Command::Message, "expected MESSAGE, got {f:?}");
        let v = serde_json::from_slice(&f.body).expect("JSON body");
        (f, v)
    }

    /// How the connection ended, waiting up to `timeout` (frames received meanwhile are
    /// kept).
    pub async fn end(&mut self, timeout: Duration) -> End {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.closed.is_none() {
            let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) else {
                return End::TimedOut;
            };
            if !self.fill(left).await && self.closed.is_none() {
                return End::TimedOut;
            }
        }
        match &self.closed {
            Some(End::Closed(c)) => End::Closed(*c),
            _ => End::TimedOut,
        }
    }

    /// Expects ERROR (whose `message` contains `needle`) and then the end of the connection.
    pub async fn expect_error_and_close(&mut self, needle: &str) -> Frame {
        let f = loop {
            let f = self.next_frame(WAIT).await.unwrap_or_else(|| {
                panic!(
                    "expected ERROR containing {needle:?}, connection ended: {:?}",
                    self.closed
                )
            });
            if f.command != Command::Message {
                break f;
            }
        };
        assert_eq!(f.command, Command::Error, "expected ERROR, got {f:?}");
        let message = f.header("message").unwrap_or_default().to_string();
        assert!(
            message.contains(needle),
            "ERROR message {message:?} should contain {needle:?}"
        );
        assert!(
            matches!(self.end(WAIT).await, End::Closed(_)),
            "connection must close after ERROR"
        );
        f
    }

    /// Reads one transport message into the decoder. False on close or timeout.
    async fn fill(&mut self, timeout: Duration) -> bool {
        if self.closed.is_some() {
            return false;
        }
        let chunk: Option<Vec<u8>> = match &mut self.conn {
            Conn::Raw(ws) => match tokio::time::timeout(timeout, ws.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(Message::Text(t)))) => Some(t.as_bytes().to_vec()),
                Ok(Some(Ok(Message::Binary(b)))) => Some(b.to_vec()),
                Ok(Some(Ok(Message::Close(c)))) => {
                    self.close_text = c.as_ref().map(|c| c.reason.to_string());
                    self.closed = Some(End::Closed(c.map(|c| u16::from(c.code))));
                    None
                }
                Ok(Some(Ok(_))) => Some(Vec::new()),
                Ok(Some(Err(_))) | Ok(None) => {
                    self.closed = Some(End::Closed(None));
                    None
                }
            },
            _ => match self.sockjs_frame(timeout).await {
                None => return false,
                Some(frame) => self.sockjs_payload(&frame),
            },
        };
        match chunk {
            None => false,
            Some(bytes) => {
                self.buf.extend_from_slice(&bytes);
                while let Some(item) = self
                    .decoder
                    .decode(&mut self.buf)
                    .expect("server sent valid STOMP")
                {
                    match item {
                        Item::Frame(f) => self.frames.push_back(f),
                        Item::HeartBeat => self.heartbeats += 1,
                    }
                }
                true
            }
        }
    }

    /// STOMP bytes in a SockJS frame; records a close frame.
    fn sockjs_payload(&mut self, frame: &str) -> Option<Vec<u8>> {
        match frame.as_bytes().first() {
            Some(b'a') => {
                let msgs: Vec<String> = serde_json::from_str(&frame[1..]).expect("a[...] frame");
                Some(msgs.concat().into_bytes())
            }
            Some(b'c') => {
                let v: Value = serde_json::from_str(&frame[1..]).expect("c[...] frame");
                self.close_text = v[1].as_str().map(str::to_string);
                self.closed = Some(End::Closed(v[0].as_u64().map(|c| c as u16)));
                None
            }
            // `h` and anything else carry no STOMP bytes.
            _ => Some(Vec::new()),
        }
    }

    /// The next SockJS frame (`o`, `h`, `a[...]`, `c[...]`) of a SockJS transport.
    pub async fn sockjs_frame(&mut self, timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        match &mut self.conn {
            Conn::Raw(_) => panic!("not a SockJS transport"),
            Conn::SockJsWs(ws) => loop {
                match tokio::time::timeout_at(deadline, ws.next()).await {
                    Err(_) => return None,
                    Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
                    Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                        self.closed = Some(End::Closed(None));
                        return None;
                    }
                    Ok(Some(Ok(_))) => {}
                }
            },
            Conn::Http {
                http,
                session_url,
                recv,
                kind,
            } => match recv {
                HttpRecv::Poll => {
                    let r = tokio::time::timeout_at(
                        deadline,
                        http.post(format!("{session_url}/xhr")).send(),
                    )
                    .await;
                    let Ok(Ok(r)) = r else { return None };
                    let text = r.text().await.ok()?;
                    Some(text.trim_end_matches('\n').to_string())
                }
                HttpRecv::Stream { resp, buf } => {
                    let sep: &[u8] = if *kind == Kind::EventSource {
                        b"\r\n\r\n"
                    } else {
                        b"\n"
                    };
                    loop {
                        if let Some(i) = buf.windows(sep.len()).position(|w| w == sep) {
                            let raw: Vec<u8> = buf.drain(..i + sep.len()).collect();
                            let text = String::from_utf8(raw[..i].to_vec()).unwrap();
                            let text = text.trim_start_matches("\r\n").to_string();
                            if *kind == Kind::EventSource {
                                if let Some(data) = text.strip_prefix("data: ") {
                                    return Some(data.to_string());
                                }
                                continue;
                            }
                            // Skip the 2 KiB `h` prelude.
                            if text.len() == 2048 && text.bytes().all(|b| b == b'h') {
                                continue;
                            }
                            return Some(text);
                        }
                        match tokio::time::timeout_at(deadline, resp.chunk()).await {
                            Err(_) => return None,
                            Ok(Ok(Some(chunk))) => buf.extend_from_slice(&chunk),
                            Ok(_) => {
                                self.closed = Some(End::Closed(None));
                                return None;
                            }
                        }
                    }
                }
            },
        }
    }

    /// Sends DISCONNECT with a receipt; returns the RECEIPT.
    pub async fn disconnect(&mut self) -> Frame {
        self.send(&Frame::new(Command::Disconnect).with_header("receipt", "bye"))
            .await;
        self.next_non_message(WAIT)
            .await
            .expect("RECEIPT for DISCONNECT")
    }
}
