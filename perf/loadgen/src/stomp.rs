//! STOMP 1.2 over a raw WebSocket (`/ws/websocket`) or SockJS's websocket transport
//! (`/ws/{server}/{session}/websocket`: `o`, `h`, `a["frame",...]`, `c[code,"reason"]`):
//! subscribers that time every MESSAGE (over [`WsClient`], the generator's own cheap frame
//! reader), and publishers that SEND `/pub/messages` with their send time in the content (raw
//! WebSocket, over tungstenite).

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::net::{Conn, Ended};
use crate::wsclient::{Frame, WsClient};
use crate::Res;

type Ws = WebSocketStream<TcpStream>;

/// Marker that starts every benchmark message's content; the send time in µs follows.
const STAMP: &str = "t=";

/// How subscribers carry STOMP.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// STOMP frames as WebSocket text messages on `/ws/websocket`.
    Raw,
    /// SockJS frames on `/ws/{server}/{session}/websocket`; STOMP frames are JSON strings in
    /// `a[...]` arrays.
    SockJs,
}

impl Transport {
    pub fn parse(s: &str) -> Result<Transport, String> {
        match s {
            "raw" => Ok(Transport::Raw),
            "sockjs" => Ok(Transport::SockJs),
            other => Err(format!("--transport must be raw or sockjs, not {other:?}")),
        }
    }
}

/// SockJS session ids, unique per worker process.
static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Opens the WebSocket and sends CONNECT; returns after CONNECTED.
async fn connect(conn: &Conn, token: &str) -> Res<Ws> {
    let tcp = crate::net::connect_from(conn.source, conn.server).await?;
    // Small buffers: the default 128 KiB read buffer is touched in full by every read.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let url = format!("ws://{}/ws/websocket", conn.host);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    let frame = format!(
        "CONNECT\naccept-version:1.2\nhost:{}\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0",
        conn.host
    );
    ws.send(Message::text(frame)).await?;
    expect(&mut ws, "CONNECTED").await?;
    Ok(ws)
}

/// Reads frames until one with `command`; an ERROR frame or a close is an error.
async fn expect(ws: &mut Ws, command: &str) -> Res<()> {
    while let Some(msg) = ws.next().await {
        let text = match msg? {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            Message::Close(c) => {
                return Err(format!("closed while waiting for {command}: {c:?}").into())
            }
            _ => continue,
        };
        for frame in text.split('\0') {
            let frame = frame.trim_start_matches(['\r', '\n']);
            if frame.starts_with(command) {
                return Ok(());
            }
            if frame.starts_with("ERROR") {
                return Err(
                    format!("waiting for {command}: {}", frame.replace('\n', " | ")).into(),
                );
            }
        }
    }
    Err(format!("closed while waiting for {command}").into())
}

/// What the benchmark sends to and subscribes to.
#[derive(Clone, Debug)]
pub enum Route {
    /// `SEND /pub/messages` for the channel (a database insert per message, as the front end
    /// does it); subscribers read `/sub/channels.{id}.messages`.
    Channel(String),
    /// `SEND` straight to a plain broker destination (`/sub/...`, no database): the hub's
    /// fan-out alone.
    Broker(String),
}

impl Route {
    /// The destination subscribers subscribe to.
    pub fn subscription(&self) -> String {
        match self {
            Route::Channel(id) => format!("/sub/channels.{id}.messages"),
            Route::Broker(d) => d.clone(),
        }
    }
}

/// Connects and subscribes to `destination`; returns after the subscription's RECEIPT, when
/// the server is sure to route the destination's messages to it.
pub async fn open(
    conn: &Conn,
    token: &str,
    destination: &str,
    transport: Transport,
) -> Res<Subscriber> {
    let path = match transport {
        Transport::Raw => "/ws/websocket".to_string(),
        Transport::SockJs => format!(
            "/ws/{:03}/lg{}x{}/websocket",
            SESSIONS.load(std::sync::atomic::Ordering::Relaxed) % 1000,
            std::process::id(),
            SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
    };
    let mut s = Subscriber {
        ws: WsClient::open(conn, &path).await?,
        transport,
    };
    if transport == Transport::SockJs {
        s.wait_for(b"o").await?;
    }
    let connect = format!(
        "CONNECT\naccept-version:1.2\nhost:{}\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0",
        conn.host
    );
    s.send(&connect).await?;
    s.wait_for(b"CONNECTED").await?;
    s.send(&format!(
        "SUBSCRIBE\nid:sub-0\ndestination:{destination}\nreceipt:r-0\n\n\0"
    ))
    .await?;
    s.wait_for(b"RECEIPT").await?;
    Ok(s)
}

/// One subscribing connection.
pub struct Subscriber {
    ws: WsClient,
    transport: Transport,
}

/// What one WebSocket message carried, as far as the benchmark cares.
enum Seen {
    /// STOMP frames (raw: the payload itself; SockJS: the decoded strings of an `a` frame).
    Frames(Vec<Vec<u8>>),
    /// A SockJS `c[code,"reason"]` frame.
    SockJsClose(u16, String),
    /// `o`, `h` or something else.
    Other,
}

impl Subscriber {
    async fn send(&mut self, stomp: &str) -> Res<()> {
        match self.transport {
            Transport::Raw => self.ws.send_text(stomp.as_bytes()).await,
            Transport::SockJs => {
                let json = serde_json::to_string(&[stomp])?;
                self.ws.send_text(json.as_bytes()).await
            }
        }
    }

    /// Reads until a STOMP frame with `command` (or, with `b"o"`, SockJS's open frame); an
    /// ERROR frame or a close is an error.
    async fn wait_for(&mut self, command: &[u8]) -> Res<()> {
        let what = String::from_utf8_lossy(command).into_owned();
        loop {
            let mut outcome: Option<Result<(), String>> = None;
            let mut data: Vec<Vec<u8>> = Vec::new();
            let open = self
                .ws
                .next_batch(|f, _| match f {
                    Frame::Data(d) => data.push(d.to_vec()),
                    Frame::Close(code, reason) => {
                        outcome.get_or_insert(Err(format!(
                            "closed while waiting for {what}: {code:?} {reason}"
                        )));
                    }
                    Frame::Control => {}
                })
                .await?;
            for d in &data {
                if outcome.is_some() {
                    break;
                }
                if command == b"o" && d.as_slice() == b"o" {
                    outcome = Some(Ok(()));
                    break;
                }
                match decode(self.transport, d) {
                    Seen::Frames(frames) => {
                        for frame in frames {
                            let frame = frame.trim_ascii_start();
                            if frame.starts_with(command) {
                                outcome = Some(Ok(()));
                                break;
                            }
                            if frame.starts_with(b"ERROR") {
                                let text = String::from_utf8_lossy(frame).replace('\n', " | ");
                                outcome = Some(Err(format!("waiting for {what}: {text}")));
                                break;
                            }
                        }
                    }
                    Seen::SockJsClose(code, reason) => {
                        outcome = Some(Err(format!(
                            "closed while waiting for {what}: {code} {reason}"
                        )))
                    }
                    Seen::Other => {}
                }
            }
            if let Some(o) = outcome {
                return o.map_err(Into::into);
            }
            if !open {
                return Err(format!("closed while waiting for {what}").into());
            }
        }
    }

    /// Reads MESSAGE frames until the connection ends, calling `on_message(sent_us,
    /// receive_us)` for every benchmark message; returns how it ended. The server is taken to
    /// have said why when a close frame with a code came (WebSocket or SockJS `c[...]`), or a
    /// STOMP ERROR frame (its `message` header).
    pub async fn run(self, mut on_message: impl FnMut(i64, i64)) -> Ended {
        let Subscriber { mut ws, transport } = self;
        let stamps = Stamps::new(transport);
        let error_finder = memchr::memmem::Finder::new(match transport {
            Transport::Raw => &b"ERROR"[..],
            Transport::SockJs => &b"\"ERROR\\n"[..],
        });
        let mut error: Option<String> = None;
        let mut closed: Option<Ended> = None;
        let ended = |error: Option<String>, what: String| match error {
            Some(e) => Ended::Told(format!("stomp ERROR {e}")),
            None => Ended::Untold(format!("ws {what}")),
        };
        loop {
            let read = ws
                .next_batch(|f, now| match f {
                    Frame::Data(d) => {
                        stamps.each(d, |sent| on_message(sent, now));
                        if error.is_none() && error_finder.find(d).is_some() {
                            error = first_error(transport, d);
                        }
                        if transport == Transport::SockJs && d.first() == Some(&b'c') {
                            if let Seen::SockJsClose(code, reason) = decode(transport, d) {
                                closed
                                    .get_or_insert(Ended::Told(format!("sockjs {code} {reason}")));
                            }
                        }
                    }
                    Frame::Close(code, reason) => {
                        closed.get_or_insert(match code {
                            Some(code) => Ended::Told(format!("ws {code} {reason}")),
                            None => ended(error.clone(), "close frame without a code".into()),
                        });
                    }
                    Frame::Control => {}
                })
                .await;
            match (closed.take(), read) {
                (Some(c), _) => return c,
                (None, Ok(true)) => {}
                (None, Ok(false)) => return ended(error, "EOF".into()),
                (None, Err(e)) => return ended(error, e.to_string()),
            }
        }
    }
}

/// Finds the benchmark's send stamps in one WebSocket message: every MESSAGE carries the key
/// `"content":"t=` once (JSON-escaped again inside SockJS's `a[...]`), so one substring search
/// over the whole message finds them all, without splitting it into frames.
struct Stamps {
    finder: memchr::memmem::Finder<'static>,
}

impl Stamps {
    fn new(transport: Transport) -> Stamps {
        Stamps {
            finder: memchr::memmem::Finder::new(match transport {
                Transport::Raw => &b"\"content\":\"t="[..],
                Transport::SockJs => &b"\\\"content\\\":\\\"t="[..],
            }),
        }
    }

    fn each(&self, d: &[u8], mut f: impl FnMut(i64)) {
        let skip = self.finder.needle().len();
        for at in self.finder.find_iter(d) {
            if let Some(sent) = digits(&d[at + skip..]) {
                f(sent);
            }
        }
    }
}

/// Decodes a WebSocket message (set-up and error paths only: this allocates).
fn decode(transport: Transport, d: &[u8]) -> Seen {
    match transport {
        Transport::Raw => Seen::Frames(d.split(|&b| b == 0).map(<[u8]>::to_vec).collect()),
        Transport::SockJs => match d.first() {
            Some(b'a') => serde_json::from_slice::<Vec<String>>(&d[1..])
                .map(|v| {
                    Seen::Frames(
                        v.iter()
                            .flat_map(|f| f.split('\0'))
                            .map(|f| f.as_bytes().to_vec())
                            .collect(),
                    )
                })
                .unwrap_or(Seen::Other),
            Some(b'c') => serde_json::from_slice::<(u16, String)>(&d[1..])
                .map(|(code, reason)| Seen::SockJsClose(code, reason))
                .unwrap_or(Seen::Other),
            _ => Seen::Other,
        },
    }
}

/// The `message` of the first ERROR frame in a WebSocket message, if there is one.
fn first_error(transport: Transport, d: &[u8]) -> Option<String> {
    match decode(transport, d) {
        Seen::Frames(frames) => frames
            .iter()
            .find(|f| f.trim_ascii_start().starts_with(b"ERROR"))
            .map(|f| error_message(f)),
        _ => None,
    }
}

/// The decimal number at the start of `b`.
fn digits(b: &[u8]) -> Option<i64> {
    let mut v: i64 = 0;
    let mut n = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
        n += 1;
    }
    (n > 0).then_some(v)
}

/// An ERROR frame's `message` header (or its first line).
fn error_message(frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(frame.trim_ascii_start());
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("message:"))
        .unwrap_or_else(|| text.lines().next().unwrap_or(""))
        .to_string()
}

/// One publishing connection, owned by its user.
pub struct Publisher {
    sink: SplitSink<Ws, Message>,
    route: Route,
    author_id: String,
}

impl Publisher {
    /// Connects as the publisher's user; a reader task reports any ERROR frame into `errors`.
    pub async fn open(
        conn: &Conn,
        token: &str,
        author_id: &str,
        route: &Route,
        errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Res<Publisher> {
        let ws = connect(conn, token).await?;
        let (sink, stream) = ws.split();
        tokio::spawn(watch_errors(stream, errors));
        Ok(Publisher {
            sink,
            route: route.clone(),
            author_id: author_id.to_string(),
        })
    }

    /// SENDs one message stamped with the current time.
    pub async fn send(&mut self, seq: u64) -> Res<()> {
        let content = format!("{STAMP}{} #{seq}", crate::stats::now_us());
        let (destination, body) = match &self.route {
            Route::Channel(id) => (
                "/pub/messages",
                serde_json::json!({
                    "content": content,
                    "channelId": id,
                    "authorId": self.author_id,
                }),
            ),
            Route::Broker(d) => (d.as_str(), serde_json::json!({ "content": content })),
        };
        let body = body.to_string();
        let frame = format!(
            "SEND\ndestination:{destination}\ncontent-type:application/json\ncontent-length:{}\n\n{body}\0",
            body.len()
        );
        self.sink.send(Message::text(frame)).await?;
        Ok(())
    }
}

async fn watch_errors(
    mut stream: SplitStream<Ws>,
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Close(c)) => format!("publisher closed: {c:?}"),
            Ok(_) => continue,
            Err(e) => format!("publisher: {e}"),
        };
        if text.starts_with("ERROR") || text.starts_with("publisher") {
            if let Ok(mut e) = errors.lock() {
                if e.len() < 10 {
                    e.push(text.replace('\n', " | "));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_raw_and_sockjs() {
        use super::{Stamps, Transport};
        let all = |t: Transport, d: &[u8]| {
            let mut v = Vec::new();
            Stamps::new(t).each(d, |s| v.push(s));
            v
        };
        let f = b"MESSAGE\ndestination:/sub/x\n\n{\"id\":\"1\",\"content\":\"t=1712345678901234 #7\",\"x\":1}\0MESSAGE\n\n{\"content\":\"t=5 #8\"}\0";
        assert_eq!(all(Transport::Raw, f), vec![1712345678901234, 5]);
        assert!(all(Transport::Raw, b"MESSAGE\n\n{\"content\":\"hello\"}").is_empty());
        let stomp = "MESSAGE\nsubscription:sub-0\n\n{\"content\":\"t=42 #1\"}\0";
        let sockjs = format!("a{}", serde_json::to_string(&[stomp, stomp]).unwrap());
        assert_eq!(all(Transport::SockJs, sockjs.as_bytes()), vec![42, 42]);
        let err = format!(
            "a{}",
            serde_json::to_string(&["ERROR\nmessage:Slow consumer\n\n\0"]).unwrap()
        );
        assert_eq!(
            super::first_error(Transport::SockJs, err.as_bytes()).as_deref(),
            Some("Slow consumer")
        );
        match super::decode(Transport::SockJs, b"c[1013,\"Slow consumer\"]") {
            super::Seen::SockJsClose(code, reason) => {
                assert_eq!((code, reason.as_str()), (1013, "Slow consumer"))
            }
            _ => panic!("not a close"),
        }
    }

    #[test]
    fn error_message_header() {
        let f = b"\nERROR\nmessage:Slow consumer\ncontent-length:3\n\nabc";
        assert_eq!(super::error_message(f), "Slow consumer");
        assert_eq!(super::error_message(b"ERROR\n\nbody"), "ERROR");
    }
}
