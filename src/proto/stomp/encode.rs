//! STOMP 1.2 encoder and the pre-encoded MESSAGE template used for fan-out.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::Frame;

/// The heart-beat the server sends: a single EOL.
pub fn heartbeat() -> &'static [u8] {
    b"\n"
}

/// Appends the wire form of `frame` to `out`.
///
/// Header names and values are escaped (`\r` `\n` `:` `\`) except in CONNECT and CONNECTED
/// frames, which STOMP 1.2 sends raw; for those the caller must not put CR, LF (or `:` in
/// names) into headers. If the frame has no `content-length` header and a non-empty body, one
/// is appended after the other headers; an existing `content-length` is written as is.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    let escaped = !frame.command.raw_headers();
    let headers_len: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    out.reserve(frame.command.as_str().len() + headers_len + frame.body.len() + 40);

    out.put_slice(frame.command.as_str().as_bytes());
    out.put_u8(b'\n');
    for (name, value) in &frame.headers {
        put_text(out, name, escaped);
        out.put_u8(b':');
        put_text(out, value, escaped);
        out.put_u8(b'\n');
    }
    if !frame.body.is_empty() && frame.header("content-length").is_none() {
        out.put_slice(b"content-length:");
        put_decimal(out, frame.body.len());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.put_slice(&frame.body);
    out.put_u8(0);
}

/// [`encode`] into a fresh buffer.
pub fn encode_to_bytes(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    encode(frame, &mut out);
    out.freeze()
}

/// One broadcast MESSAGE, encoded once and stamped per subscriber.
///
/// Exists for the fan-out hot path: a message delivered to N subscriptions differs only in the
/// `subscription` header, so escaping the headers, formatting `content-length` and laying out
/// the body are done once in [`MessageTemplate::new`], and [`MessageTemplate::render`] is
/// three memcpys into one allocation. The output is byte-identical to [`encode`] of the frame
/// `MESSAGE` with headers `subscription`, `destination`, `message-id`, `content-type`,
/// `content-length` (always present, also for an empty body) in that order.
#[derive(Debug, Clone)]
pub struct MessageTemplate {
    /// `destination:…\nmessage-id:…\ncontent-type:…\ncontent-length:…\n\n<body>\0`
    tail: Bytes,
}

/// Everything before the escaped subscription id.
const MESSAGE_HEAD: &[u8] = b"MESSAGE\nsubscription:";

impl MessageTemplate {
    pub fn new(destination: &str, message_id: &str, content_type: &str, body: Bytes) -> Self {
        let mut tail = BytesMut::with_capacity(
            2 * (destination.len() + message_id.len() + content_type.len()) + body.len() + 80,
        );
        tail.put_u8(b'\n');
        for (name, value) in [
            ("destination", destination),
            ("message-id", message_id),
            ("content-type", content_type),
        ] {
            tail.put_slice(name.as_bytes());
            tail.put_u8(b':');
            put_text(&mut tail, value, true);
            tail.put_u8(b'\n');
        }
        tail.put_slice(b"content-length:");
        put_decimal(&mut tail, body.len());
        tail.put_slice(b"\n\n");
        tail.put_slice(&body);
        tail.put_u8(0);
        MessageTemplate {
            tail: tail.freeze(),
        }
    }

    /// Everything after the subscription id: `\ndestination:…` through the body and NUL.
    /// A MESSAGE is `MESSAGE\nsubscription:` + escaped id + this, so a fan-out can write the
    /// three parts as slices and share this one buffer among every subscriber.
    pub fn tail(&self) -> Bytes {
        self.tail.clone()
    }

    /// The complete MESSAGE frame for one subscription.
    pub fn render(&self, subscription_id: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(
            MESSAGE_HEAD.len() + 2 * subscription_id.len() + self.tail.len(),
        );
        out.put_slice(MESSAGE_HEAD);
        put_text(&mut out, subscription_id, true);
        out.put_slice(&self.tail);
        out.freeze()
    }
}

/// `text` with every control character (C0, DEL, C1) written as its Rust escape (`\u{7f}`),
/// for header values the server builds from text it does not control (error messages that
/// quote input, usernames).
///
/// Exists because STOMP 1.2 escapes only CR, LF, `:` and `\`, and not at all in CONNECTED:
/// a DEL or NEL passes through to the client, and strict parsers (this server's own decoder
/// among them) refuse the frame. Text without control characters is returned as it is.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` escaped as a STOMP 1.2 header value (`\r` `\n` `:` `\`).
pub fn escape_header(text: &str) -> String {
    let mut out = BytesMut::with_capacity(text.len() + 4);
    put_text(&mut out, text, true);
    // Escaping only replaces ASCII bytes with ASCII sequences: still UTF-8.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Writes a header name or value, escaping it per STOMP 1.2 if `escaped`.
fn put_text(out: &mut BytesMut, text: &str, escaped: bool) {
    let bytes = text.as_bytes();
    if !escaped {
        out.put_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'\r' => b"\\r",
            b'\n' => b"\\n",
            b':' => b"\\c",
            b'\\' => b"\\\\",
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        out.put_slice(replacement);
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
}

fn put_decimal(out: &mut BytesMut, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}
