//! Hixie-76 WebSocket (draft-hixie-thewebsocketprotocol-76, also called hybi-00): the pure
//! parts, for a driver that owns the socket.
//!
//! It is the pre-RFC 6455 draft that Safari 5 and Chrome 6 spoke. No current browser does, but
//! sockjs-node still answers it and the sockjs-protocol suite checks it (`Websocket.test_haproxy`),
//! so the SockJS endpoints should too. The handshake differs from RFC 6455 in one way that
//! matters to a driver: the client sends 8 more bytes (key3) *after* the request headers, with
//! no `Content-Length`, and HAProxy holds them back until it has seen the response head. So:
//!
//! 1. [`Handshake::from_request`] recognises the request from its method, target and headers
//!    and checks both keys (`Ok(None)`: not Hixie-76, use the RFC 6455 path);
//! 2. the driver writes [`Handshake::response_head`] at once, without waiting for key3;
//! 3. it reads exactly [`KEY3_LEN`] bytes and writes [`Handshake::challenge_response`] (16
//!    bytes) in one write;
//! 4. from then on [`Decoder`] turns client bytes into [`Frame`]s and [`encode_text`] /
//!    [`CLOSE_FRAME`] frame what the server sends.

use bytes::{Buf, Bytes, BytesMut};
use md5::{Digest, Md5};
use std::fmt;

/// Bytes of key3, the nonce the client sends after its request headers.
pub const KEY3_LEN: usize = 8;
/// Bytes of the challenge response the server writes after reading key3.
pub const CHALLENGE_LEN: usize = 16;
/// First byte of a text frame; the UTF-8 text follows.
pub const TEXT_START: u8 = 0x00;
/// Last byte of a text frame (UTF-8 never contains it, so text needs no escaping).
pub const TEXT_END: u8 = 0xFF;
/// The closing frame, either side's last bytes.
pub const CLOSE_FRAME: [u8; 2] = [0xFF, 0x00];

/// Longest `Sec-WebSocket-Key1`/`Key2` value accepted (a valid key has at most 10 digits,
/// 12 spaces and 12 other characters).
const MAX_KEY_LEN: usize = 256;
/// Longest `Host`, `Origin`, request target or subprotocol echoed into the response head.
const MAX_ECHOED_LEN: usize = 4096;

/// Why a request that is a Hixie-76 handshake was refused. The driver answers `400` with
/// [`HandshakeError::message`] and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// A key is missing, too long, has no space, no digit, a number over 2^32 - 1, or a
    /// number that is not a multiple of its spaces.
    InvalidKey,
    /// No `Host` header: the response's `Sec-WebSocket-Location` is built from it.
    MissingHost,
    /// `Host`, `Origin` or the target is too long or has bytes that cannot be echoed
    /// into a response header.
    InvalidHeader,
}

impl HandshakeError {
    /// The text of the `400` answer.
    pub fn message(self) -> &'static str {
        match self {
            HandshakeError::InvalidKey => "Invalid Sec-WebSocket-Key1 or Sec-WebSocket-Key2.",
            HandshakeError::MissingHost => "Missing Host header.",
            HandshakeError::InvalidHeader => "Invalid Host, Origin or request target.",
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for HandshakeError {}

/// A checked Hixie-76 handshake request: what the response head and the challenge response
/// are made of.
///
/// It exists so the driver never parses keys or builds the head itself, and so every value it
/// echoes has been checked to be safe inside a response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    key1: u32,
    key2: u32,
    origin: Option<String>,
    location: String,
    protocol: Option<String>,
}

/// Bytes that may be echoed into a header value: visible ASCII and space.
fn echoable(v: &[u8]) -> bool {
    v.len() <= MAX_ECHOED_LEN && v.iter().all(|b| (b' '..=b'~').contains(b))
}

fn has_token(value: &[u8], token: &str) -> bool {
    std::str::from_utf8(value)
        .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// The number a key stands for: its digits read as one decimal number, divided by its
/// number of spaces, which must divide it exactly.
fn key_number(key: &[u8]) -> Result<u32, HandshakeError> {
    if key.len() > MAX_KEY_LEN {
        return Err(HandshakeError::InvalidKey);
    }
    let mut number: u64 = 0;
    let mut digits = 0;
    let mut spaces: u64 = 0;
    for &b in key {
        match b {
            b'0'..=b'9' => {
                number = number * 10 + u64::from(b - b'0');
                digits += 1;
                if number > u64::from(u32::MAX) {
                    return Err(HandshakeError::InvalidKey);
                }
            }
            b' ' => spaces += 1,
            _ => {}
        }
    }
    if digits == 0 || spaces == 0 || !number.is_multiple_of(spaces) {
        return Err(HandshakeError::InvalidKey);
    }
    u32::try_from(number / spaces).map_err(|_| HandshakeError::InvalidKey)
}

impl Handshake {
    /// Recognises and checks a Hixie-76 handshake.
    ///
    /// `target` is the request target as received (path and query), `secure` whether the
    /// connection is TLS (`wss:`), `headers` every header as (name, value). A request is a
    /// Hixie-76 handshake when it is a `GET` with `Upgrade: WebSocket`, a `Connection` with the
    /// `Upgrade` token, both `Sec-WebSocket-Key1` and `Sec-WebSocket-Key2`, and no RFC 6455
    /// `Sec-WebSocket-Key`. Anything else is `Ok(None)`, so the RFC 6455 path gives its usual
    /// answers (405 for other methods, 400 for a missing upgrade, ...).
    pub fn from_request<'h>(
        method: &str,
        target: &str,
        secure: bool,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<Option<Handshake>, HandshakeError> {
        let mut key1 = None;
        let mut key2 = None;
        let mut host = None;
        let mut origin = None;
        let mut protocol = None;
        let mut upgrade = false;
        let mut connection = false;
        let mut rfc6455 = false;
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("sec-websocket-key1") {
                key1 = Some(value);
            } else if name.eq_ignore_ascii_case("sec-websocket-key2") {
                key2 = Some(value);
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                rfc6455 = true;
            } else if name.eq_ignore_ascii_case("host") {
                host = Some(value);
            } else if name.eq_ignore_ascii_case("origin") {
                origin = Some(value);
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                protocol = Some(value);
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade |= has_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection |= has_token(value, "upgrade");
            }
        }
        let (Some(key1), Some(key2)) = (key1, key2) else {
            return Ok(None);
        };
        if method != "GET" || !upgrade || !connection || rfc6455 {
            return Ok(None);
        }
        let key1 = key_number(key1)?;
        let key2 = key_number(key2)?;
        let host = host.ok_or(HandshakeError::MissingHost)?;
        if host.is_empty() {
            return Err(HandshakeError::MissingHost);
        }
        let target = target.as_bytes();
        if !target.starts_with(b"/")
            || !echoable(host)
            || !echoable(target)
            || origin.is_some_and(|o| !echoable(o))
        {
            return Err(HandshakeError::InvalidHeader);
        }
        // Checked above: ASCII only, so the conversions cannot fail.
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let scheme = if secure { "wss" } else { "ws" };
        Ok(Some(Handshake {
            key1,
            key2,
            origin: origin.map(text),
            location: format!("{scheme}://{}{}", text(host), text(target)),
            // An unechoable protocol is ignored rather than refused: it is an offer.
            protocol: protocol.filter(|p| !p.is_empty() && echoable(p)).map(text),
        }))
    }

    /// The `Sec-WebSocket-Protocol` the client asked for, if any (Hixie-76 offers one).
    pub fn requested_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// `ws://host/target` (or `wss:`), sent back as `Sec-WebSocket-Location`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The response headers after the status line, in order, for a driver that lets its HTTP
    /// library write the head: `Upgrade`, `Connection`, `Sec-WebSocket-Origin` (when the client
    /// sent an `Origin`), `Sec-WebSocket-Location` and, when `protocol` is given and echoable,
    /// `Sec-WebSocket-Protocol`. No `Content-Length`: the 16 challenge bytes that follow are not
    /// a body.
    pub fn response_headers(&self, protocol: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Upgrade", "WebSocket".to_string()),
            ("Connection", "Upgrade".to_string()),
        ];
        if let Some(o) = &self.origin {
            h.push(("Sec-WebSocket-Origin", o.clone()));
        }
        h.push(("Sec-WebSocket-Location", self.location.clone()));
        if let Some(p) = protocol.filter(|p| !p.is_empty() && echoable(p.as_bytes())) {
            h.push(("Sec-WebSocket-Protocol", p.to_string()));
        }
        h
    }

    /// The whole response head, status line to the empty line, for a driver that writes it
    /// itself: `HTTP/1.1 101 WebSocket Protocol Handshake` (the reason phrase the draft's
    /// browsers expected) and [`Handshake::response_headers`].
    pub fn response_head(&self, protocol: Option<&str>) -> Vec<u8> {
        let mut out = b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n".to_vec();
        for (name, value) in self.response_headers(protocol) {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The 16 bytes that answer key3: MD5 of both key numbers (big-endian) and key3.
    pub fn challenge_response(&self, key3: &[u8; KEY3_LEN]) -> [u8; CHALLENGE_LEN] {
        let mut md5 = Md5::new();
        md5.update(self.key1.to_be_bytes());
        md5.update(self.key2.to_be_bytes());
        md5.update(key3);
        md5.finalize().into()
    }
}

/// One frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (`0x00`, UTF-8, `0xFF`).
    Text(String),
    /// The closing frame (`0xFF 0x00`): answer with [`CLOSE_FRAME`] and close the socket.
    Close,
}

/// Why the client's bytes were refused. The driver closes the connection (Hixie-76 has no
/// close reason to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A frame, text or binary, over the decoder's limit.
    TooLarge,
    /// A text frame that is not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::TooLarge => "frame too large",
            DecodeError::InvalidUtf8 => "text frame is not UTF-8",
        })
    }
}

impl std::error::Error for DecodeError {}

/// Where the decoder is inside the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a frame-type byte.
    FrameStart,
    /// Inside a `0x00..=0x7F` frame, up to `0xFF`; `keep` for type `0x00` (text), other
    /// types are read and dropped, as the draft says. `scanned`: bytes of it seen so far,
    /// none of them `0xFF`.
    Delimited { keep: bool, scanned: usize },
    /// Reading the base-128 length of a `0x80..=0xFF` frame.
    Length { frame_type: u8, len: usize },
    /// Dropping the `left` bytes of a length-prefixed (binary) frame.
    Skip { left: usize },
    /// After the closing frame: nothing more is read.
    Closed,
}

/// Incremental decoder of client frames, with a size limit.
///
/// Exists so the driver can feed whatever bytes a read returned, in any split, and get whole
/// frames. A text frame is buffered until its end (refused once it passes the limit);
/// length-prefixed frames, which the draft defines but gives no meaning, are skipped without
/// being buffered (and refused over the limit too, so a client cannot keep a connection busy
/// with an endless one).
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame: usize,
    state: State,
}

impl Decoder {
    /// A decoder refusing frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Decoder {
            max_frame,
            state: State::FrameStart,
        }
    }

    /// The next whole frame, consuming its bytes from `buf`; `Ok(None)` when `buf` holds no
    /// whole frame yet (what it holds is kept or consumed as the frame needs; call again with
    /// more bytes appended). After [`Frame::Close`] it returns `Ok(None)` and reads nothing.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match self.state {
                State::Closed => return Ok(None),
                State::FrameStart => {
                    let Some(&frame_type) = buf.first() else {
                        return Ok(None);
                    };
                    buf.advance(1);
                    self.state = if frame_type & 0x80 == 0 {
                        State::Delimited {
                            keep: frame_type == TEXT_START,
                            scanned: 0,
                        }
                    } else {
                        State::Length { frame_type, len: 0 }
                    };
                }
                State::Delimited { keep, scanned } => {
                    // Kept frames stay at the start of `buf` until their end arrives; dropped
                    // ones are discarded as they come, `scanned` counting both.
                    let from = if keep { scanned } else { 0 };
                    let found = buf[from..].iter().position(|&b| b == TEXT_END);
                    let Some(end) = found.map(|p| from + p) else {
                        let total = if keep { buf.len() } else { scanned + buf.len() };
                        if total > self.max_frame {
                            return Err(DecodeError::TooLarge);
                        }
                        if !keep {
                            buf.clear();
                        }
                        self.state = State::Delimited {
                            keep,
                            scanned: total,
                        };
                        return Ok(None);
                    };
                    let total = if keep { end } else { scanned + end };
                    if total > self.max_frame {
                        return Err(DecodeError::TooLarge);
                    }
                    let payload = buf.split_to(end);
                    buf.advance(1);
                    self.state = State::FrameStart;
                    if keep {
                        return String::from_utf8(payload.to_vec())
                            .map(|t| Some(Frame::Text(t)))
                            .map_err(|_| DecodeError::InvalidUtf8);
                    }
                }
                State::Length { frame_type, len } => {
                    let Some(&b) = buf.first() else {
                        return Ok(None);
                    };
                    buf.advance(1);
                    let len = len
                        .checked_mul(128)
                        .and_then(|l| l.checked_add(usize::from(b & 0x7F)))
                        .filter(|&l| l <= self.max_frame)
                        .ok_or(DecodeError::TooLarge)?;
                    if b & 0x80 != 0 {
                        self.state = State::Length { frame_type, len };
                    } else if frame_type == 0xFF && len == 0 {
                        self.state = State::Closed;
                        return Ok(Some(Frame::Close));
                    } else {
                        self.state = State::Skip { left: len };
                    }
                }
                State::Skip { left } => {
                    let n = left.min(buf.len());
                    buf.advance(n);
                    if n < left {
                        self.state = State::Skip { left: left - n };
                        return Ok(None);
                    }
                    self.state = State::FrameStart;
                }
            }
        }
    }
}

/// A text frame: `0x00`, the UTF-8 text, `0xFF`. (A driver that writes with `writev` can
/// send [`TEXT_START`], a shared body and [`TEXT_END`] as three slices instead.)
pub fn encode_text(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 2);
    out.extend_from_slice(&[TEXT_START]);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&[TEXT_END]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The request of the sockjs-protocol suite's `Websocket.test_haproxy`.
    fn suite_headers() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("Connection", b"Upgrade".as_slice()),
            ("Upgrade", b"WebSocket"),
            ("Origin", b"http://127.0.0.1:8081"),
            ("Sec-WebSocket-Key1", b"4 @1  46546xW%0l 1 5"),
            ("Sec-WebSocket-Key2", b"12998 5 Y3 1  .P00"),
            ("Host", b"127.0.0.1:8081"),
        ]
    }

    const SUITE_TARGET: &str = "/echo/000/8c1d/websocket";

    fn suite_handshake() -> Handshake {
        Handshake::from_request("GET", SUITE_TARGET, false, suite_headers())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn suite_handshake_head_and_challenge() {
        let h = suite_handshake();
        assert_eq!(h.location(), "ws://127.0.0.1:8081/echo/000/8c1d/websocket");
        assert_eq!(
            String::from_utf8(h.response_head(None)).unwrap(),
            "HTTP/1.1 101 WebSocket Protocol Handshake\r\n\
             Upgrade: WebSocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Origin: http://127.0.0.1:8081\r\n\
             Sec-WebSocket-Location: ws://127.0.0.1:8081/echo/000/8c1d/websocket\r\n\
             \r\n"
        );
        // What the suite reads after sending key3 "aaaaaaaa".
        assert_eq!(
            &h.challenge_response(b"aaaaaaaa"),
            b"\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{"
        );
    }

    #[test]
    fn draft_example_challenge() {
        // The worked example of draft-hixie-thewebsocketprotocol-76, section 1.3.
        let h = Handshake::from_request(
            "GET",
            "/demo",
            false,
            [
                ("Host", b"example.com".as_slice()),
                ("Connection", b"Upgrade"),
                ("Sec-WebSocket-Key2", b"12998 5 Y3 1  .P00"),
                ("Sec-WebSocket-Protocol", b"sample"),
                ("Upgrade", b"WebSocket"),
                ("Sec-WebSocket-Key1", b"4 @1  46546xW%0l 1 5"),
                ("Origin", b"http://example.com"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(&h.challenge_response(b"^n:ds[4U"), b"8jKS'y:G*Co,Wxa-");
        assert_eq!(h.requested_protocol(), Some("sample"));
        let head = String::from_utf8(h.response_head(h.requested_protocol())).unwrap();
        assert!(head.ends_with(
            "Sec-WebSocket-Location: ws://example.com/demo\r\nSec-WebSocket-Protocol: sample\r\n\r\n"
        ));
    }

    #[test]
    fn key_numbers() {
        assert_eq!(key_number(b"4 @1  46546xW%0l 1 5"), Ok(829_309_203));
        assert_eq!(key_number(b"12998 5 Y3 1  .P00"), Ok(259_970_620));
        assert_eq!(key_number(b"1 0"), Ok(10));
        assert_eq!(key_number(b"4294967295 "), Ok(u32::MAX));
        for bad in [
            b"".as_slice(),
            b"123",                // no space
            b"   ",                // no digit
            b"1 1 ",               // 11 is not a multiple of 2
            b"4294967296 ",        // over 2^32 - 1
            b"99999999999999999 ", // would overflow a u32 long before the end
        ] {
            assert_eq!(key_number(bad), Err(HandshakeError::InvalidKey), "{bad:?}");
        }
        let long = format!("1 {}", "x".repeat(MAX_KEY_LEN));
        assert_eq!(key_number(long.as_bytes()), Err(HandshakeError::InvalidKey));
    }

    #[test]
    fn other_requests_are_not_hixie76() {
        let without = |name: &str| -> Vec<(&'static str, &'static [u8])> {
            suite_headers()
                .into_iter()
                .filter(|(n, _)| *n != name)
                .collect()
        };
        let none = |method: &str, headers: Vec<(&str, &[u8])>| {
            assert_eq!(
                Handshake::from_request(method, SUITE_TARGET, false, headers),
                Ok(None)
            );
        };
        none("POST", suite_headers());
        none("GET", without("Sec-WebSocket-Key1"));
        none("GET", without("Sec-WebSocket-Key2"));
        none("GET", without("Upgrade"));
        let mut close = without("Connection");
        close.push(("Connection", b"close"));
        none("GET", close);
        let mut rfc = suite_headers();
        rfc.push(("Sec-WebSocket-Key", b"x3JJHMbDL1EzLkh9GBhXDw=="));
        none("GET", rfc);
        // Header names are case-insensitive, tokens too; Connection may list several.
        let mut lower: Vec<(&str, &[u8])> = without("Connection");
        lower.push(("connection", b"keep-alive, upgrade"));
        assert!(Handshake::from_request("GET", SUITE_TARGET, false, lower)
            .unwrap()
            .is_some());
    }

    #[test]
    fn refusals() {
        let with = |name: &'static str, value: &'static [u8]| {
            let mut h: Vec<(&str, &[u8])> = suite_headers()
                .into_iter()
                .filter(|(n, _)| *n != name)
                .collect();
            h.push((name, value));
            Handshake::from_request("GET", SUITE_TARGET, false, h)
        };
        assert_eq!(
            with("Sec-WebSocket-Key1", b"1 1 "),
            Err(HandshakeError::InvalidKey)
        );
        assert_eq!(with("Host", b""), Err(HandshakeError::MissingHost));
        let no_host: Vec<(&str, &[u8])> = suite_headers()
            .into_iter()
            .filter(|(n, _)| *n != "Host")
            .collect();
        assert_eq!(
            Handshake::from_request("GET", SUITE_TARGET, false, no_host),
            Err(HandshakeError::MissingHost)
        );
        // Nothing that could end a header line (or is not ASCII) is echoed.
        assert_eq!(
            with("Origin", b"http://a\r\nSet-Cookie: x=1"),
            Err(HandshakeError::InvalidHeader)
        );
        assert_eq!(
            with("Host", "h\u{e9}st".as_bytes()),
            Err(HandshakeError::InvalidHeader)
        );
        let long: &'static [u8] = Box::leak(vec![b'a'; MAX_ECHOED_LEN + 1].into_boxed_slice());
        assert_eq!(with("Host", long), Err(HandshakeError::InvalidHeader));
        assert_eq!(
            Handshake::from_request("GET", "*", false, suite_headers()),
            Err(HandshakeError::InvalidHeader)
        );
        assert_eq!(
            HandshakeError::InvalidKey.to_string(),
            "Invalid Sec-WebSocket-Key1 or Sec-WebSocket-Key2."
        );
    }

    #[test]
    fn optional_parts_of_the_head() {
        let no_origin: Vec<(&str, &[u8])> = suite_headers()
            .into_iter()
            .filter(|(n, _)| *n != "Origin")
            .collect();
        let h = Handshake::from_request("GET", "/x?a=1", true, no_origin)
            .unwrap()
            .unwrap();
        assert_eq!(h.location(), "wss://127.0.0.1:8081/x?a=1");
        let headers = h.response_headers(Some("v12.stomp"));
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "Upgrade",
                "Connection",
                "Sec-WebSocket-Location",
                "Sec-WebSocket-Protocol"
            ]
        );
        // A protocol that cannot be echoed is left out, not written.
        assert_eq!(h.response_headers(Some("a\r\nb")).len(), 3);
        assert_eq!(h.requested_protocol(), None);
    }

    fn decode_all(d: &mut Decoder, buf: &mut BytesMut) -> Result<Vec<Frame>, DecodeError> {
        let mut out = Vec::new();
        while let Some(f) = d.decode(buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn decodes_text_and_close() {
        let mut d = Decoder::new(1024);
        let mut buf =
            BytesMut::from(&b"\x00[\"a\"]\xff\x00\xff\x00h\xc3\xa9\xff\xff\x00ignored"[..]);
        assert_eq!(
            decode_all(&mut d, &mut buf).unwrap(),
            [
                Frame::Text("[\"a\"]".into()),
                Frame::Text(String::new()),
                Frame::Text("h\u{e9}".into()),
                Frame::Close,
            ]
        );
        // Nothing is read after the closing frame.
        assert_eq!(&buf[..], b"ignored");
        assert_eq!(d.decode(&mut buf), Ok(None));
    }

    #[test]
    fn drops_frames_the_draft_gives_no_meaning() {
        let mut d = Decoder::new(1024);
        // Type 0x01 (delimited, dropped), type 0x80 with length 130 (0x81 0x02), type 0xFF
        // with a non-zero length (not a close), then a text frame.
        let mut bytes = b"\x01junk\xff\x80\x81\x02".to_vec();
        bytes.extend(std::iter::repeat_n(0xAB, 130));
        bytes.extend_from_slice(b"\xff\x01Z\x00ok\xff");
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            decode_all(&mut d, &mut buf).unwrap(),
            [Frame::Text("ok".into())]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn limits_and_bad_text() {
        let mut d = Decoder::new(4);
        let mut buf = BytesMut::from(&b"\x00abcd\xff\x00abcde"[..]);
        assert_eq!(d.decode(&mut buf), Ok(Some(Frame::Text("abcd".into()))));
        assert_eq!(d.decode(&mut buf), Err(DecodeError::TooLarge));

        let mut d = Decoder::new(4);
        let mut buf = BytesMut::from(&b"\x00abcde\xff"[..]);
        assert_eq!(d.decode(&mut buf), Err(DecodeError::TooLarge));

        // A length over the limit is refused before any of its bytes arrive, and a length
        // that would overflow is refused too.
        let mut d = Decoder::new(4);
        assert_eq!(
            d.decode(&mut BytesMut::from(&b"\x80\x05"[..])),
            Err(DecodeError::TooLarge)
        );
        let mut d = Decoder::new(usize::MAX);
        let mut endless = BytesMut::from(&[0x80u8][..]);
        endless.extend(std::iter::repeat_n(0xFF, 20));
        assert_eq!(d.decode(&mut endless), Err(DecodeError::TooLarge));

        // A dropped delimited frame is not buffered, but still bounded.
        let mut d = Decoder::new(4);
        let mut buf = BytesMut::from(&b"\x01abc"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
        buf.extend_from_slice(b"d");
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"e");
        assert_eq!(d.decode(&mut buf), Err(DecodeError::TooLarge));
        // A kept frame split over reads is bounded as a whole too.
        let mut d = Decoder::new(4);
        let mut buf = BytesMut::from(&b"\x00ab"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"cd");
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\xff");
        assert_eq!(d.decode(&mut buf), Ok(Some(Frame::Text("abcd".into()))));

        let mut d = Decoder::new(16);
        let mut buf = BytesMut::from(&b"\x00\xc3\x28\xff"[..]);
        assert_eq!(d.decode(&mut buf), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn encodes_text() {
        assert_eq!(&encode_text("o")[..], b"\x00o\xff");
        assert_eq!(&encode_text("")[..], b"\x00\xff");
        assert_eq!(&CLOSE_FRAME, b"\xff\x00");
    }

    proptest! {
        /// Whatever the server encodes, a decoder reads back, however the bytes are split.
        #[test]
        fn round_trip_in_any_split(
            texts in proptest::collection::vec(".{0,40}", 0..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut wire = Vec::new();
            for t in &texts {
                wire.extend_from_slice(&encode_text(t));
            }
            wire.extend_from_slice(&CLOSE_FRAME);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut d = Decoder::new(1024);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut from = 0;
            for to in cuts {
                buf.extend_from_slice(&wire[from..to]);
                from = to;
                got.extend(decode_all(&mut d, &mut buf).unwrap());
            }
            let mut want: Vec<Frame> = texts.into_iter().map(Frame::Text).collect();
            want.push(Frame::Close);
            prop_assert_eq!(got, want);
        }
    }
}
