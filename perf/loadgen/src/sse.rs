//! One SSE stream on a raw TCP connection: a minimal HTTP/1.1 request, an incremental chunked
//! decoder and an incremental event-stream reader that only looks at `id` and `event`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::{Conn, Ended};
use crate::Res;

/// The event whose latency is measured: one per public channel the admin creates.
pub const MEASURED_EVENT: &[u8] = b"channels.refresh";

/// Incremental `Transfer-Encoding: chunked` decoder; it exists so a stream can be read in
/// whatever pieces the socket returns without buffering whole chunks.
#[derive(Default)]
pub struct Chunked {
    /// Bytes of the current chunk still to come.
    remaining: usize,
    /// CRLF bytes after a chunk's data still to skip.
    crlf: usize,
    /// The chunk-size line read so far.
    size_line: Vec<u8>,
    /// The terminating zero-size chunk was seen.
    pub done: bool,
}

impl Chunked {
    /// Feeds raw bytes; calls `out` with every piece of decoded payload.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), String> {
        while !input.is_empty() && !self.done {
            if self.remaining > 0 {
                let n = self.remaining.min(input.len());
                out(&input[..n]);
                self.remaining -= n;
                input = &input[n..];
                if self.remaining == 0 {
                    self.crlf = 2;
                }
            } else if self.crlf > 0 {
                let n = self.crlf.min(input.len());
                self.crlf -= n;
                input = &input[n..];
            } else {
                match input.iter().position(|&b| b == b'\n') {
                    None => {
                        self.size_line.extend_from_slice(input);
                        input = &[];
                    }
                    Some(i) => {
                        self.size_line.extend_from_slice(&input[..i]);
                        input = &input[i + 1..];
                        let line = std::str::from_utf8(&self.size_line)
                            .map_err(|_| "chunk size is not text")?;
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16)
                            .map_err(|_| format!("bad chunk size {hex:?}"))?;
                        self.size_line.clear();
                        if size == 0 {
                            self.done = true;
                        } else {
                            self.remaining = size;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// What one finished event carried (only the fields the benchmark needs).
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    /// Milliseconds since the epoch from the event id's UUIDv7 timestamp, if it had one.
    pub id_ms: Option<i64>,
    /// The event was [`MEASURED_EVENT`].
    pub measured: bool,
    /// The event was the `connect` event that opens every stream.
    pub connect: bool,
}

/// Incremental `text/event-stream` reader: lines end at LF (an optional CR before it is
/// dropped), a blank line ends an event; `data` is skipped, since only ids and names matter.
#[derive(Default)]
pub struct EventReader {
    line: Vec<u8>,
    id_ms: Option<i64>,
    name: Vec<u8>,
    has_fields: bool,
    /// The text after `: closed ` of the server's closing comment, once seen.
    pub closed: Option<String>,
}

impl EventReader {
    /// Feeds decoded payload; calls `out` for every completed event.
    pub fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(Seen)) {
        while let Some(i) = input.iter().position(|&b| b == b'\n') {
            if self.line.is_empty() {
                self.line_done(&input[..i], out);
            } else {
                self.line.extend_from_slice(&input[..i]);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, out);
                self.line = line;
                self.line.clear();
            }
            input = &input[i + 1..];
        }
        self.line.extend_from_slice(input);
    }

    fn line_done(&mut self, line: &[u8], out: &mut impl FnMut(Seen)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_fields {
                out(Seen {
                    id_ms: self.id_ms.take(),
                    measured: self.name == MEASURED_EVENT,
                    connect: self.name == b"connect",
                });
            }
            self.name.clear();
            self.has_fields = false;
            return;
        }
        if line[0] == b':' {
            // Keep-alives are comments too; only the closing one says why the stream ends.
            if let Some(why) = line.strip_prefix(b": closed ") {
                self.closed = Some(String::from_utf8_lossy(why).into_owned());
            }
            return;
        }
        self.has_fields = true;
        if let Some(v) = line.strip_prefix(b"id:") {
            self.id_ms = uuid_v7_ms(trim1(v));
        } else if let Some(v) = line.strip_prefix(b"event:") {
            self.name.clear();
            self.name.extend_from_slice(trim1(v));
        }
    }
}

fn trim1(v: &[u8]) -> &[u8] {
    v.strip_prefix(b" ").unwrap_or(v)
}

/// The 48-bit millisecond timestamp of a textual UUIDv7 (`tttttttt-tttt-7xxx-...`).
pub fn uuid_v7_ms(id: &[u8]) -> Option<i64> {
    if id.len() != 36 || id[8] != b'-' || id[14] != b'7' {
        return None;
    }
    let hex = |s: &[u8]| {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| i64::from_str_radix(s, 16).ok())
    };
    Some((hex(&id[0..8])? << 16) | hex(&id[9..13])?)
}

/// Opens `GET /api/sse` as `token` and reads until the `connect` event: the stream is then
/// registered on the server. Returns the connection for [`SseConn::run`].
pub async fn open(conn: &Conn, token: &str) -> Res<SseConn> {
    let mut tcp = crate::net::connect_from(conn.source, conn.server).await?;
    let req = format!(
        "GET /api/sse HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        conn.host
    );
    tcp.write_all(req.as_bytes()).await?;
    // Big reads: when the server has coalesced many events, one read takes them all.
    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    let body_start = loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 16 * 1024 {
            return Err("response head too long".into());
        }
    };
    let text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    if !text.starts_with("http/1.1 200") {
        let status = text.lines().next().unwrap_or("").to_string();
        return Err(format!("GET /api/sse: {status}").into());
    }
    let mut s = SseConn {
        tcp,
        buf,
        chunked: if text.contains("transfer-encoding: chunked") {
            Some(Chunked::default())
        } else {
            None
        },
        events: EventReader::default(),
    };
    let rest = head[body_start..].to_vec();
    let mut connected = false;
    s.consume(&rest, &mut |seen| connected |= seen.connect)?;
    while !connected {
        let n = s.tcp.read(&mut s.buf).await?;
        if n == 0 {
            return Err("stream closed before the connect event".into());
        }
        let data = s.buf[..n].to_vec();
        s.consume(&data, &mut |seen| connected |= seen.connect)?;
    }
    Ok(s)
}

/// An open SSE stream past its `connect` event.
pub struct SseConn {
    tcp: TcpStream,
    buf: Vec<u8>,
    chunked: Option<Chunked>,
    events: EventReader,
}

impl SseConn {
    fn consume(&mut self, data: &[u8], out: &mut impl FnMut(Seen)) -> Res<()> {
        let events = &mut self.events;
        match &mut self.chunked {
            Some(c) => c.feed(data, |payload| events.feed(payload, out))?,
            None => events.feed(data, out),
        }
        Ok(())
    }

    /// Reads until the server closes the stream, calling `on_event(id_ms, receive_us)` for
    /// every measured event; returns how it ended (told why if the closing comment came).
    pub async fn run(self, mut on_event: impl FnMut(i64, i64)) -> Ended {
        let SseConn {
            mut tcp,
            mut buf,
            mut chunked,
            mut events,
        } = self;
        let why = |events: &mut EventReader, what: String| match events.closed.take() {
            Some(c) => Ended::Told(format!("sse {c}")),
            None => Ended::Untold(format!("sse {what}")),
        };
        loop {
            let n = match tcp.read(&mut buf).await {
                Ok(0) => return why(&mut events, "EOF".into()),
                Ok(n) => n,
                Err(e) => return why(&mut events, e.kind().to_string()),
            };
            // One clock read per socket read: every event in it arrived at the same moment.
            let now = crate::stats::now_us();
            let mut seen = |seen: Seen| {
                if let (true, Some(ms)) = (seen.measured, seen.id_ms) {
                    on_event(ms, now);
                }
            };
            match &mut chunked {
                Some(c) => {
                    if let Err(e) = c.feed(&buf[..n], |p| events.feed(p, &mut seen)) {
                        return why(&mut events, e);
                    }
                    if c.done {
                        return why(&mut events, "ended without a reason".into());
                    }
                }
                None => events.feed(&buf[..n], &mut seen),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_events_in_any_split() {
        let body =
            "id: 0190a7c4-1b2c-7def-8000-000000000000\nevent: channels.refresh\ndata: {}\n\n\
                    : ping\n\nevent: connect\ndata: {}\n\n: closed slow_bytes Slow consumer\n\n";
        let mut wire = format!("{:x}\r\n{}\r\n", 10, &body[..10]);
        wire += &format!("{:x}\r\n{}\r\n0\r\n\r\n", body.len() - 10, &body[10..]);
        for split in 1..wire.len() {
            let mut c = Chunked::default();
            let mut r = EventReader::default();
            let mut seen = Vec::new();
            for part in [&wire.as_bytes()[..split], &wire.as_bytes()[split..]] {
                c.feed(part, |p| r.feed(p, &mut |s| seen.push(s))).unwrap();
            }
            assert!(c.done);
            assert_eq!(seen.len(), 2, "split at {split}");
            assert_eq!(seen[0].id_ms, Some(0x0190a7c41b2c));
            assert!(seen[0].measured && !seen[0].connect);
            assert!(seen[1].connect && seen[1].id_ms.is_none());
            assert_eq!(r.closed.as_deref(), Some("slow_bytes Slow consumer"));
        }
    }
}
