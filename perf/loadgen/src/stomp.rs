//! STOMP 1.2 over a raw WebSocket (`/ws/websocket`): subscribers that time every MESSAGE (over
//! [`WsClient`], the generator's own cheap frame reader), and publishers that SEND
//! `/pub/messages` with their send time in the content (over tungstenite).

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
pub async fn open(conn: &Conn, token: &str, destination: &str) -> Res<WsClient> {
    let mut ws = WsClient::open(conn, "/ws/websocket").await?;
    let connect = format!(
        "CONNECT\naccept-version:1.2\nhost:{}\nheart-beat:0,0\nAuthorization:Bearer {token}\n\n\0",
        conn.host
    );
    ws.send_text(connect.as_bytes()).await?;
    wait_for(&mut ws, b"CONNECTED").await?;
    let sub = format!("SUBSCRIBE\nid:sub-0\ndestination:{destination}\nreceipt:r-0\n\n\0");
    ws.send_text(sub.as_bytes()).await?;
    wait_for(&mut ws, b"RECEIPT").await?;
    Ok(ws)
}

/// Reads until a STOMP frame with `command`; an ERROR frame or a close is an error.
async fn wait_for(ws: &mut WsClient, command: &[u8]) -> Res<()> {
    let what = String::from_utf8_lossy(command).into_owned();
    loop {
        let mut outcome: Option<Result<(), String>> = None;
        let open = ws
            .next_batch(|f, _| {
                if outcome.is_some() {
                    return;
                }
                match f {
                    Frame::Data(d) => {
                        for frame in d.split(|&b| b == 0) {
                            let frame = frame.trim_ascii_start();
                            if frame.starts_with(command) {
                                outcome = Some(Ok(()));
                                return;
                            }
                            if frame.starts_with(b"ERROR") {
                                let text = String::from_utf8_lossy(frame).replace('\n', " | ");
                                outcome = Some(Err(format!("waiting for {what}: {text}")));
                                return;
                            }
                        }
                    }
                    Frame::Close(code, reason) => {
                        outcome = Some(Err(format!(
                            "closed while waiting for {what}: {code:?} {reason}"
                        )))
                    }
                    Frame::Control => {}
                }
            })
            .await?;
        if let Some(o) = outcome {
            return o.map_err(Into::into);
        }
        if !open {
            return Err(format!("closed while waiting for {what}").into());
        }
    }
}

/// Reads MESSAGE frames until the connection ends, calling `on_message(sent_us, receive_us)`
/// for every benchmark message; returns how it ended. The server is taken to have said why
/// when a close frame with a code came, or a STOMP ERROR frame (its `message` header).
pub async fn run(mut ws: WsClient, mut on_message: impl FnMut(i64, i64)) -> Ended {
    let mut error: Option<String> = None;
    let mut closed: Option<(Option<u16>, String)> = None;
    let ended = |error: Option<String>, what: String| match error {
        Some(e) => Ended::Told(format!("stomp ERROR {e}")),
        None => Ended::Untold(format!("ws {what}")),
    };
    loop {
        let read = ws
            .next_batch(|f, now| match f {
                Frame::Data(d) => {
                    for frame in d.split(|&b| b == 0) {
                        if let Some(sent) = stamp_of(frame) {
                            on_message(sent, now);
                        } else if error.is_none() && frame.trim_ascii_start().starts_with(b"ERROR")
                        {
                            // The close follows; keep reading for its code.
                            error = Some(error_message(frame));
                        }
                    }
                }
                Frame::Close(code, reason) => {
                    if closed.is_none() {
                        closed = Some((code, reason));
                    }
                }
                Frame::Control => {}
            })
            .await;
        match (closed.take(), read) {
            (Some((Some(code), reason)), _) => return Ended::Told(format!("ws {code} {reason}")),
            (Some((None, _)), _) => return ended(error, "close frame without a code".into()),
            (None, Ok(true)) => {}
            (None, Ok(false)) => return ended(error, "EOF".into()),
            (None, Err(e)) => return ended(error, e.to_string()),
        }
    }
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

/// The send time carried by a MESSAGE frame's `"content":"t=<µs>"`.
fn stamp_of(frame: &[u8]) -> Option<i64> {
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"content\":\"t="));
    let at = KEY.find(frame)? + KEY.needle().len();
    let mut v: i64 = 0;
    let mut digits = 0;
    for &b in &frame[at..] {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as i64)?;
        digits += 1;
    }
    (digits > 0).then_some(v)
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
    fn stamp() {
        let f = b"MESSAGE\ndestination:/sub/x\n\n{\"id\":\"1\",\"content\":\"t=1712345678901234 #7\",\"x\":1}";
        assert_eq!(super::stamp_of(f), Some(1712345678901234));
        assert_eq!(super::stamp_of(b"MESSAGE\n\n{\"content\":\"hello\"}"), None);
    }

    #[test]
    fn error_message_header() {
        let f = b"\nERROR\nmessage:Slow consumer\ncontent-length:3\n\nabc";
        assert_eq!(super::error_message(f), "Slow consumer");
        assert_eq!(super::error_message(b"ERROR\n\nbody"), "ERROR");
    }
}
