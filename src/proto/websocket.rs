//! RFC 6455 WebSocket framing, server side: the handshake's accept key, an incremental decoder
//! of client frames with limits, and the header of server frames.
//!
//! Pure like the rest of `proto`: the connection driver feeds received bytes into a
//! [`Decoder`] and gets [`Event`]s back; it writes server frames as a [`encode_header`] output
//! followed by the payload slices it already holds (the payload is never copied here, so one
//! encoded broadcast can be written to many sockets).

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// The GUID of RFC 6455 §1.3, appended to the client's key for the accept hash.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    fn from_u8(b: u8) -> Option<OpCode> {
        Some(match b {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Longest server frame header: 2 bytes + a 64-bit length.
pub const MAX_HEADER: usize = 10;

/// Writes the header of an unmasked server frame with `payload_len` bytes into `out`;
/// returns how many bytes it used (2, 4 or 10).
pub fn encode_header(fin: bool, opcode: OpCode, payload_len: usize, out: &mut [u8]) -> usize {
    out[0] = (if fin { 0x80 } else { 0 }) | opcode as u8;
    if payload_len < 126 {
        out[1] = payload_len as u8;
        2
    } else if payload_len <= u16::MAX as usize {
        out[1] = 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    }
}

/// A complete server frame in one buffer (control frames, rare messages).
pub fn encode_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut head = [0u8; MAX_HEADER];
    let n = encode_header(true, opcode, payload.len(), &mut head);
    let mut out = BytesMut::with_capacity(n + payload.len());
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
    out.freeze()
}

/// A close frame with `code` and `reason` (cut at a character boundary to the 123 bytes a
/// control frame can hold).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(OpCode::Close, &payload)
}

/// Codes a peer may send in a close frame (RFC 6455 §7.4).
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 1012..=1014 | 3000..=4999)
}

/// One thing the client said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message (valid UTF-8).
    Text(Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// Answer with a pong carrying the same payload.
    Ping(Bytes),
    Pong(Bytes),
    /// The client is closing; `None` when it gave no status code.
    Close(Option<(u16, String)>),
}

/// Why the client's input is unacceptable; the connection must be closed with
/// [`DecodeError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame breaks RFC 6455 (1002).
    Protocol(&'static str),
    /// A text message is not UTF-8 (1007).
    InvalidUtf8,
    /// A frame or message exceeds the limit (1009).
    TooBig { limit: usize },
}

impl DecodeError {
    pub fn close_code(&self) -> u16 {
        match self {
            DecodeError::Protocol(_) => 1002,
            DecodeError::InvalidUtf8 => 1007,
            DecodeError::TooBig { .. } => 1009,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Protocol(why) => write!(f, "protocol error: {why}"),
            DecodeError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            DecodeError::TooBig { limit } => write!(f, "message larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: BytesMut,
}

/// Turns received bytes into [`Event`]s.
///
/// Exists so the connection driver never buffers more than one bounded message: it appends
/// what the socket delivered to a `BytesMut` and calls [`Decoder::decode`] until `Ok(None)`.
/// Each call first checks that a whole frame is present (and within the limit, judged from
/// the header alone, so a huge declared length fails at once), then consumes exactly that
/// frame. Fragments are reassembled up to the same limit; control frames may arrive between
/// fragments. Client frames must be masked, reserved bits must be zero (no extensions are
/// negotiated). Any error is final for the connection.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    partial: Option<Partial>,
}

impl Decoder {
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            partial: None,
        }
    }

    /// Bytes held for an unfinished fragmented message (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.data.len())
    }

    /// Decodes the next event from the front of `buf`, consuming its bytes, or returns
    /// `Ok(None)` (consuming nothing) when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        loop {
            let Some(frame) = self.next_frame(buf)? else {
                return Ok(None);
            };
            if let Some(event) = self.on_frame(frame)? {
                return Ok(Some(event));
            }
        }
    }

    /// Check, then consume one frame.
    fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<RawFrame>, DecodeError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        if b0 & 0x70 != 0 {
            return Err(DecodeError::Protocol("reserved bits set"));
        }
        let fin = b0 & 0x80 != 0;
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(DecodeError::Protocol("unknown opcode"))?;
        if b1 & 0x80 == 0 {
            return Err(DecodeError::Protocol("client frames must be masked"));
        }
        let (len, header) = match b1 & 0x7F {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(DecodeError::Protocol("length with the top bit set"));
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode.is_control() {
            if !fin {
                return Err(DecodeError::Protocol("fragmented control frame"));
            }
            if len > 125 {
                return Err(DecodeError::Protocol("control frame longer than 125 bytes"));
            }
        } else {
            let held = self.buffered() as u64;
            if held.saturating_add(len) > self.max_message as u64 {
                return Err(DecodeError::TooBig {
                    limit: self.max_message,
                });
            }
        }
        let len = len as usize;
        let total = header + 4 + len;
        if buf.len() < total {
            // Reserve what the frame needs so the caller's reads fill it directly.
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mask = [
            buf[header],
            buf[header + 1],
            buf[header + 2],
            buf[header + 3],
        ];
        buf.advance(header + 4);
        let mut payload = buf.split_to(len);
        unmask(&mut payload, mask);
        Ok(Some(RawFrame {
            fin,
            opcode,
            payload,
        }))
    }

    fn on_frame(&mut self, f: RawFrame) -> Result<Option<Event>, DecodeError> {
        match f.opcode {
            OpCode::Ping => Ok(Some(Event::Ping(f.payload.freeze()))),
            OpCode::Pong => Ok(Some(Event::Pong(f.payload.freeze()))),
            OpCode::Close => parse_close(&f.payload).map(|c| Some(Event::Close(c))),
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    return Err(DecodeError::Protocol(
                        "new message before the last one ended",
                    ));
                }
                let text = f.opcode == OpCode::Text;
                if f.fin {
                    return finish(text, f.payload).map(Some);
                }
                self.partial = Some(Partial {
                    text,
                    data: f.payload,
                });
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(p) = self.partial.as_mut() else {
                    return Err(DecodeError::Protocol("continuation without a message"));
                };
                p.data.extend_from_slice(&f.payload);
                if !f.fin {
                    return Ok(None);
                }
                let Some(p) = self.partial.take() else {
                    return Ok(None);
                };
                finish(p.text, p.data).map(Some)
            }
        }
    }
}

struct RawFrame {
    fin: bool,
    opcode: OpCode,
    payload: BytesMut,
}

fn finish(text: bool, data: BytesMut) -> Result<Event, DecodeError> {
    if text {
        if std::str::from_utf8(&data).is_err() {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(Event::Text(data.freeze()))
    } else {
        Ok(Event::Binary(data.freeze()))
    }
}

fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, DecodeError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(DecodeError::Protocol("close frame with a one-byte payload")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !valid_close_code(code) {
                return Err(DecodeError::Protocol("invalid close code"));
            }
            let reason =
                std::str::from_utf8(&payload[2..]).map_err(|_| DecodeError::InvalidUtf8)?;
            Ok(Some((code, reason.to_string())))
        }
    }
}

/// XORs `data` with the 4-byte `mask`, eight bytes at a time where it can.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(e) = d.decode(&mut buf)? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn header_lengths() {
        let mut h = [0u8; MAX_HEADER];
        assert_eq!(encode_header(true, OpCode::Text, 5, &mut h), 2);
        assert_eq!(&h[..2], &[0x81, 5]);
        assert_eq!(encode_header(true, OpCode::Binary, 300, &mut h), 4);
        assert_eq!(&h[..4], &[0x82, 126, 1, 44]);
        assert_eq!(encode_header(false, OpCode::Text, 70_000, &mut h), 10);
        assert_eq!(h[0], 0x01);
        assert_eq!(h[1], 127);
        assert_eq!(u64::from_be_bytes(h[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn decodes_text_binary_and_control_frames_byte_by_byte() {
        let mut wire = client_frame(true, 1, b"hello");
        wire.extend(client_frame(true, 9, b"p"));
        wire.extend(client_frame(true, 2, &[0, 255, 7]));
        wire.extend(client_frame(true, 8, &[0x03, 0xE8, b'b', b'y', b'e']));
        let mut d = Decoder::new(1024);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(e) = d.decode(&mut buf).unwrap() {
                out.push(e);
            }
        }
        assert_eq!(
            out,
            vec![
                Event::Text(Bytes::from_static(b"hello")),
                Event::Ping(Bytes::from_static(b"p")),
                Event::Binary(Bytes::from_static(&[0, 255, 7])),
                Event::Close(Some((1000, "bye".into()))),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn reassembles_fragments_with_control_frames_between() {
        let mut wire = client_frame(false, 1, b"he");
        wire.extend(client_frame(true, 10, b""));
        wire.extend(client_frame(false, 0, b"ll"));
        wire.extend(client_frame(true, 0, b"o"));
        let mut d = Decoder::new(1024);
        assert_eq!(
            decode_all(&mut d, &wire).unwrap(),
            vec![
                Event::Pong(Bytes::new()),
                Event::Text(Bytes::from_static(b"hello"))
            ]
        );
    }

    #[test]
    fn long_lengths() {
        let big = vec![b'x'; 70_000];
        let mut d = Decoder::new(100_000);
        assert_eq!(
            decode_all(&mut d, &client_frame(true, 2, &big)).unwrap(),
            vec![Event::Binary(Bytes::from(big))]
        );
        let mid = vec![b'y'; 300];
        assert_eq!(
            decode_all(&mut d, &client_frame(true, 1, &mid)).unwrap(),
            vec![Event::Text(Bytes::from(mid))]
        );
    }

    #[test]
    fn refusals() {
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (vec![0x81, 0x01, b'a'], 1002),               // unmasked
            (vec![0xC1, 0x80, 0, 0, 0, 0], 1002),         // RSV1
            (vec![0x83, 0x80, 0, 0, 0, 0], 1002),         // opcode 3
            (client_frame(false, 9, b""), 1002),          // fragmented ping
            (client_frame(true, 9, &[0; 126]), 1002),     // long ping
            (client_frame(true, 0, b"x"), 1002),          // lone continuation
            (client_frame(true, 1, &[0xff, 0xfe]), 1007), // bad UTF-8
            (client_frame(true, 8, &[0x03]), 1002),       // 1-byte close
            (client_frame(true, 8, &[0x03, 0xED]), 1002), // close code 1005
            (client_frame(true, 2, &[0; 2000]), 1009),    // too big
            (
                [client_frame(false, 1, b"a"), client_frame(true, 1, b"b")].concat(),
                1002,
            ),
        ];
        for (wire, code) in cases {
            let mut d = Decoder::new(1000);
            let err = decode_all(&mut d, &wire).unwrap_err();
            assert_eq!(err.close_code(), code, "{wire:?}: {err}");
        }
    }

    #[test]
    fn huge_declared_length_fails_from_the_header_alone() {
        let mut wire = vec![0x82, 0x80 | 127];
        wire.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let mut d = Decoder::new(1 << 20);
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap_err(),
            DecodeError::TooBig { limit: 1 << 20 }
        );
    }

    #[test]
    fn fragments_count_against_the_limit() {
        let wire = [
            client_frame(false, 2, &[0; 600]),
            client_frame(true, 0, &[0; 600]),
        ]
        .concat();
        let mut d = Decoder::new(1000);
        assert_eq!(decode_all(&mut d, &wire).unwrap_err().close_code(), 1009);
    }

    #[test]
    fn close_frame_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100);
        let f = close_frame(1013, &reason);
        assert_eq!(f[0], 0x88);
        let len = f[1] as usize;
        assert!(len <= 125);
        assert!(std::str::from_utf8(&f[4..]).is_ok());
        assert_eq!(&f[2..4], &1013u16.to_be_bytes());
    }

    #[test]
    fn unmask_matches_bytewise_xor() {
        let mask = [1, 2, 3, 4];
        let original: Vec<u8> = (0..37).collect();
        let mut data = original.clone();
        unmask(&mut data, mask);
        let expected: Vec<u8> = original
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(data, expected);
    }
}
