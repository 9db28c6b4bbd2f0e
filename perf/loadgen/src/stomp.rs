//! STOMP 1.2 over a raw WebSocket (`/ws/websocket`): subscribers that time every MESSAGE, and
//! publishers that SEND `/pub/messages` with their send time in the content.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::net::{Conn, Ended};
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
pub async fn open(conn: &Conn, token: &str, destination: &str) -> Res<Ws> {
    let mut ws = connect(conn, token).await?;
    let sub = format!("SUBSCRIBE\nid:sub-0\ndestination:{destination}\nreceipt:r-0\n\n\0");
    ws.send(Message::text(sub)).await?;
    expect(&mut ws, "RECEIPT").await?;
    Ok(ws)
}

/// Reads MESSAGE frames until the connection ends, calling `on_message(sent_us, receive_us)`
/// for every benchmark message; returns how it ended. The server is taken to have said why
/// when a close frame with a code came, or a STOMP ERROR frame (its `message` header).
pub async fn run(mut ws: Ws, mut on_message: impl FnMut(i64, i64)) -> Ended {
    let mut error: Option<String> = None;
    let ended = |error: Option<String>, what: String| match error {
        Some(e) => Ended::Told(format!("stomp ERROR {e}")),
        None => Ended::Untold(format!("ws {what}")),
    };
    while let Some(msg) = ws.next().await {
        let now = crate::stats::now_us();
        let data = match msg {
            Ok(Message::Text(t)) => t.into(),
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(Some(c))) => {
                return Ended::Told(format!("ws {} {}", u16::from(c.code), c.reason));
            }
            Ok(Message::Close(None)) => return ended(error, "close frame without a code".into()),
            Ok(_) => continue,
            Err(e) => return ended(error, e.to_string()),
        };
        for frame in data.split(|&b| b == 0) {
            if let Some(sent) = stamp_of(frame) {
                on_message(sent, now);
            } else if error.is_none() && frame.trim_ascii_start().starts_with(b"ERROR") {
                // The close follows; keep reading for its code.
                error = Some(error_message(frame));
            }
        }
    }
    ended(error, "EOF".into())
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
    const KEY: &[u8] = b"\"content\":\"t=";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = &frame[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
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
