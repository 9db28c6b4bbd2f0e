//! The client side of RFC 6455 for subscribers, by hand: the generator shares the server's
//! cores, so a subscriber reads whatever the socket holds into one buffer and walks the
//! server's (unmasked) frames in place — no allocation per frame, one clock read per socket
//! read. Publishers keep tungstenite; they send far less than subscribers receive.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::Conn;
use crate::Res;

/// A frame the server sent, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text or binary message (reassembled if it came in fragments).
    Data(&'a [u8]),
    /// A close frame: its code (if any) and reason.
    Close(Option<u16>, String),
    /// Ping, pong: answered or ignored by [`WsClient::next_batch`].
    Control,
}

/// A subscriber's WebSocket after the handshake.
pub struct WsClient {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A fragmented message being reassembled (the server does not fragment; kept correct).
    partial: Vec<u8>,
}

/// The read buffer's initial size; it grows only for a frame larger than it.
const READ_BUFFER: usize = 16 * 1024;

impl WsClient {
    /// `GET path` with the upgrade headers; returns once the 101 arrived.
    pub async fn open(conn: &Conn, path: &str) -> Res<WsClient> {
        let mut tcp = crate::net::connect_from(conn.source, conn.server).await?;
        // A fixed key: the generator does not check Sec-WebSocket-Accept, nobody caches here.
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            conn.host
        );
        tcp.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; READ_BUFFER];
        let mut end = 0;
        let head_end = loop {
            if end == buf.len() {
                return Err("handshake response head too long".into());
            }
            let n = tcp.read(&mut buf[end..]).await?;
            if n == 0 {
                return Err("closed during the WebSocket handshake".into());
            }
            end += n;
            if let Some(i) = buf[..end].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let status = String::from_utf8_lossy(&buf[..head_end]);
        let first = status.lines().next().unwrap_or("").to_string();
        if !first.starts_with("HTTP/1.1 101") {
            return Err(format!("WebSocket handshake: {first}").into());
        }
        Ok(WsClient {
            tcp,
            buf,
            start: head_end,
            end,
            partial: Vec::new(),
        })
    }

    /// Sends `payload` as one masked text frame (mask key 0: XOR is the identity, and a
    /// server cannot tell a zero key from a random one).
    pub async fn send_text(&mut self, payload: &[u8]) -> Res<()> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x81);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        self.tcp.write_all(&frame).await?;
        Ok(())
    }

    /// Reads once (unless a complete frame is already buffered) and calls `on_frame` for every
    /// complete frame, with the time of the read in µs. Answers pings. Returns false at EOF.
    pub async fn next_batch(&mut self, mut on_frame: impl FnMut(Frame<'_>, i64)) -> Res<bool> {
        if !self.frame_ready()? {
            self.make_room();
            let n = self.tcp.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(false);
            }
            self.end += n;
        }
        let now = crate::stats::now_us();
        let mut pongs: Vec<Vec<u8>> = Vec::new();
        while let Some((head, len)) = header(&self.buf[self.start..self.end])? {
            if self.end - self.start < head + len {
                break;
            }
            let b0 = self.buf[self.start];
            let payload = self.start + head..self.start + head + len;
            self.start += head + len;
            let fin = b0 & 0x80 != 0;
            match b0 & 0x0f {
                0x1 | 0x2 if fin && self.partial.is_empty() => {
                    on_frame(Frame::Data(&self.buf[payload]), now)
                }
                0x0..=0x2 => {
                    self.partial.extend_from_slice(&self.buf[payload]);
                    if fin {
                        let whole = std::mem::take(&mut self.partial);
                        on_frame(Frame::Data(&whole), now);
                    }
                }
                0x8 => {
                    let p = &self.buf[payload];
                    let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                    let reason = String::from_utf8_lossy(p.get(2..).unwrap_or(&[])).into_owned();
                    on_frame(Frame::Close(code, reason), now);
                }
                0x9 => {
                    pongs.push(self.buf[payload].to_vec());
                    on_frame(Frame::Control, now);
                }
                _ => on_frame(Frame::Control, now),
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        for p in pongs {
            let n = p.len().min(125);
            let mut frame = vec![0x8a, 0x80 | n as u8, 0, 0, 0, 0];
            frame.extend_from_slice(&p[..n]);
            self.tcp.write_all(&frame).await?;
        }
        Ok(true)
    }

    /// True when the buffer already holds a whole frame.
    fn frame_ready(&self) -> Res<bool> {
        Ok(match header(&self.buf[self.start..self.end])? {
            Some((head, len)) => self.end - self.start >= head + len,
            None => false,
        })
    }

    /// Moves a pending partial frame to the front when space runs short, and grows the buffer
    /// when that frame is bigger than it.
    fn make_room(&mut self) {
        let pending = self.end - self.start;
        let need = match header(&self.buf[self.start..self.end]) {
            Ok(Some((head, len))) => head + len,
            _ => pending + 512,
        };
        if self.start > 0 && (self.buf.len() - self.end < 512 || self.start + need > self.buf.len())
        {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if need > self.buf.len() {
            self.buf.resize(need.next_power_of_two(), 0);
        }
        if self.end == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
    }
}

/// The header length and payload length of the frame starting `b`, or None if the header is
/// not complete yet. A masked server frame is a protocol error.
fn header(b: &[u8]) -> Res<Option<(usize, usize)>> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 != 0 {
        return Err("the server masked a frame".into());
    }
    Ok(match b[1] & 0x7f {
        126 if b.len() >= 4 => Some((4, u16::from_be_bytes([b[2], b[3]]) as usize)),
        127 if b.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[2..10]);
            let len = usize::try_from(u64::from_be_bytes(n)).map_err(|_| "frame too long")?;
            Some((10, len))
        }
        126 | 127 => None,
        n => Some((2, n as usize)),
    })
}

#[cfg(test)]
mod tests {
    use super::{header, Frame, WsClient};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that sends the frames the reader must handle, a few bytes per write, then
    /// reads what the client answered.
    #[tokio::test]
    async fn reads_frames_split_anywhere_and_answers_pings() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            let mut out = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
            out.extend_from_slice(&[0x81, 5]);
            out.extend_from_slice(b"hello");
            out.extend_from_slice(&[0x82, 126, 1, 44]);
            out.extend_from_slice(&[b'x'; 300]);
            out.extend_from_slice(&[0x89, 2, b'p', b'i']);
            out.extend_from_slice(&[0x01, 3, b'a', b'b', b'c']);
            out.extend_from_slice(&[0x80, 2, b'd', b'e']);
            out.extend_from_slice(&[0x88, 6, 0x03, 0xf5, b's', b'l', b'o', b'w']);
            for chunk in out.chunks(7) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            let mut pong = [0u8; 8];
            s.read_exact(&mut pong).await.unwrap();
            (String::from_utf8_lossy(&head).into_owned(), pong)
        });
        let conn = crate::net::Conn {
            server,
            host: server.to_string(),
            source: std::net::Ipv4Addr::LOCALHOST,
        };
        let mut ws = WsClient::open(&conn, "/ws/websocket").await.unwrap();
        let mut seen: Vec<String> = Vec::new();
        while !seen.iter().any(|s| s.starts_with("close")) {
            let open = ws
                .next_batch(|f, _| {
                    seen.push(match f {
                        Frame::Data(d) if d.len() > 20 => format!("data {}", d.len()),
                        Frame::Data(d) => format!("data {}", String::from_utf8_lossy(d)),
                        Frame::Close(code, reason) => format!("close {code:?} {reason}"),
                        Frame::Control => "control".into(),
                    })
                })
                .await
                .unwrap();
            assert!(open, "EOF before the close; saw {seen:?}");
        }
        assert_eq!(
            seen,
            [
                "data hello",
                "data 300",
                "control",
                "data abcde",
                "close Some(1013) slow"
            ]
        );
        let (head, pong) = peer.await.unwrap();
        assert!(head.starts_with("GET /ws/websocket HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Upgrade: websocket"), "{head}");
        assert_eq!(pong, [0x8a, 0x82, 0, 0, 0, 0, b'p', b'i']);
    }

    #[test]
    fn header_lengths() {
        assert_eq!(header(&[0x81]).unwrap(), None);
        assert_eq!(header(&[0x81, 5]).unwrap(), Some((2, 5)));
        assert_eq!(header(&[0x81, 126, 1]).unwrap(), None);
        assert_eq!(header(&[0x81, 126, 1, 0]).unwrap(), Some((4, 256)));
        let mut long = vec![0x82, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(header(&long).unwrap(), Some((10, 70_000)));
        assert!(header(&[0x81, 0x85]).is_err());
    }
}
