//! Incremental STOMP 1.2 decoder.
//!
//! Works like tokio-rs/mini-redis `Frame::check` + `Frame::parse`: first *check* that the bytes
//! at the front of the buffer hold a complete item (cheap scan, enforcing limits as it goes),
//! then *parse* it exactly once and consume it. The check is resumable: the decoder remembers
//! how far it has scanned, so feeding a frame one byte at a time costs O(frame size) overall,
//! not O(size²).

use bytes::{Buf, BytesMut};

use super::error::DecodeError;
use super::frame::{Command, Frame};

/// Upper bounds on what one peer may make the decoder buffer.
///
/// Exists because a STOMP frame has no length prefix: without limits a client could stream an
/// endless header or body and make the server buffer it all. The decoder checks every limit
/// while the frame is still incomplete and fails as soon as a frame can no longer fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole frame: command line, headers, blank line, body and NUL. Also caps a declared
    /// `content-length`.
    pub max_frame_bytes: usize,
    /// Command line plus header lines plus the blank line that ends them.
    pub max_header_bytes: usize,
    /// Number of header lines (repeated headers count every time).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: 64 * 1024,
            max_header_bytes: 8 * 1024,
            max_headers: 50,
        }
    }
}

/// One unit of client input.
///
/// Exists because STOMP interleaves frames with bare EOLs used as heart-beats; the session
/// needs to see both (a heart-beat still proves the client is alive) but only frames carry
/// meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Frame(Frame),
    /// One `\n` or `\r\n` received between frames.
    HeartBeat,
}

/// Turns a growing receive buffer into [`Item`]s, one per call.
///
/// Exists to keep framing (and its resource limits) out of the connection task: the caller
/// appends whatever the transport delivered to a `BytesMut` and calls [`Decoder::decode`] in a
/// loop until it returns `Ok(None)`. The decoder keeps scan progress between calls, so between
/// calls the caller may only *append* to the buffer (never consume or replace bytes); use a
/// new decoder (or [`Decoder::reset`]) for a new buffer. Any error is fatal for the stream.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    limits: Limits,
    progress: Progress,
}

/// How far the check phase got on the frame at the front of the buffer.
#[derive(Debug, Clone)]
enum Progress {
    /// Looking for the blank line that ends the header section.
    Head {
        /// Start of the first line not yet complete (0: still on the command line).
        line_start: usize,
        /// Bytes before this offset are known to contain no further `\n`.
        searched: usize,
        /// Complete header lines seen so far.
        headers: usize,
    },
    /// Head parsed; waiting for the body and its NUL.
    Body {
        head: Head,
        /// Bytes before this offset are known to contain no NUL (no `content-length` case).
        searched: usize,
    },
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::Head {
            line_start: 0,
            searched: 0,
            headers: 0,
        }
    }
}

/// The parsed command line and headers of the frame being received.
#[derive(Debug, Clone)]
struct Head {
    command: Command,
    headers: Vec<(String, String)>,
    body_start: usize,
    content_length: Option<usize>,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            progress: Progress::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets any partially scanned frame.
    pub fn reset(&mut self) {
        self.progress = Progress::default();
    }

    /// Decodes the item at the front of `buf`.
    ///
    /// Returns `Ok(None)` if more bytes are needed (nothing is consumed), or consumes exactly
    /// one item and returns it. Limits are enforced on incomplete input, so an oversized frame
    /// fails as soon as it is certain to exceed them.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let result = self.decode_inner(buf);
        if !matches!(result, Ok(None)) {
            self.reset();
        }
        result
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        if let Progress::Head {
            line_start: 0,
            searched,
            ..
        } = self.progress
        {
            if searched > buf.len() {
                // The caller broke the append-only contract; start over rather than misread.
                self.reset();
            }
            // At a frame boundary: bare EOLs are heart-beats.
            match (buf.first(), buf.get(1)) {
                (None, _) | (Some(b'\r'), None) => return Ok(None),
                (Some(b'\n'), _) => {
                    buf.advance(1);
                    return Ok(Some(Item::HeartBeat));
                }
                (Some(b'\r'), Some(b'\n')) => {
                    buf.advance(2);
                    return Ok(Some(Item::HeartBeat));
                }
                _ => {}
            }
        }

        if let Progress::Head {
            line_start,
            searched,
            headers,
        } = self.progress
        {
            if line_start > buf.len() || searched > buf.len() {
                self.reset();
                return self.decode_inner(buf);
            }
            match self.check_head(buf, line_start, searched, headers)? {
                Some(body_start) => {
                    let head = parse_head(&buf[..body_start], body_start)?;
                    if let Some(len) = head.content_length {
                        let total = body_start.checked_add(len).and_then(|n| n.checked_add(1));
                        if total.is_none_or(|t| t > self.limits.max_frame_bytes) {
                            return Err(self.frame_too_large());
                        }
                    }
                    self.progress = Progress::Body {
                        searched: body_start,
                        head,
                    };
                }
                None => return Ok(None),
            }
        }

        let Progress::Body { head, searched } = &mut self.progress else {
            return Ok(None);
        };
        let body_start = head.body_start;
        let body_end = match head.content_length {
            Some(len) => {
                let end = body_start + len; // checked against max_frame_bytes already
                match buf.get(end) {
                    None => return Ok(None),
                    Some(0) => end,
                    Some(_) => return Err(DecodeError::MissingNul),
                }
            }
            None => {
                // The NUL must sit at an index below max_frame_bytes.
                let window = buf.len().min(self.limits.max_frame_bytes);
                let from = (*searched).max(body_start);
                match buf.get(from..window).and_then(|s| find(s, 0)) {
                    Some(i) => from + i,
                    None => {
                        *searched = window.max(from);
                        if buf.len() >= self.limits.max_frame_bytes {
                            return Err(self.frame_too_large());
                        }
                        return Ok(None);
                    }
                }
            }
        };

        let Progress::Body { head, .. } = std::mem::take(&mut self.progress) else {
            return Ok(None);
        };
        let raw = buf.split_to(body_end + 1).freeze();
        Ok(Some(Item::Frame(Frame {
            command: head.command,
            headers: head.headers,
            body: raw.slice(body_start..body_end),
        })))
    }

    /// Scans complete lines of the head. Returns the offset just past the blank line that ends
    /// the header section, or `None` (with progress saved) if it has not arrived yet.
    fn check_head(
        &mut self,
        buf: &[u8],
        mut line_start: usize,
        mut searched: usize,
        mut headers: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let limits = self.limits;
        // The `\n` ending the header section must sit at an index below max_header_bytes.
        let window = buf.len().min(limits.max_header_bytes);
        loop {
            let from = searched.max(line_start);
            let Some(i) = buf.get(from..window).and_then(|s| find(s, b'\n')) else {
                searched = window.max(from);
                break;
            };
            let nl = from + i;
            let line = strip_cr(&buf[line_start..nl]);
            let is_command = line_start == 0;
            line_start = nl + 1;
            searched = line_start;
            if is_command {
                if Command::from_bytes(line).is_none() {
                    return Err(DecodeError::unknown_command(line));
                }
            } else if line.is_empty() {
                return Ok(Some(line_start));
            } else {
                headers += 1;
                if headers > limits.max_headers {
                    return Err(DecodeError::TooManyHeaders {
                        limit: limits.max_headers,
                    });
                }
                if matches!(find(line, b':'), None | Some(0)) {
                    return Err(DecodeError::InvalidHeaderLine);
                }
            }
        }

        // Incomplete. Reject what can no longer become a valid frame.
        if line_start == 0 {
            let partial = strip_cr(&buf[..window]);
            let plausible = Command::ALL
                .iter()
                .any(|c| c.as_str().as_bytes().starts_with(partial));
            if !plausible {
                return Err(DecodeError::unknown_command(partial));
            }
        }
        if buf.len() >= limits.max_header_bytes {
            return Err(DecodeError::HeadersTooLarge {
                limit: limits.max_header_bytes,
            });
        }
        if buf.len() >= limits.max_frame_bytes {
            return Err(self.frame_too_large());
        }
        self.progress = Progress::Head {
            line_start,
            searched,
            headers,
        };
        Ok(None)
    }

    fn frame_too_large(&self) -> DecodeError {
        DecodeError::FrameTooLarge {
            limit: self.limits.max_frame_bytes,
        }
    }
}

/// Parses a checked head (`raw` ends with the blank line).
fn parse_head(raw: &[u8], body_start: usize) -> Result<Head, DecodeError> {
    let mut lines = raw.split(|&b| b == b'\n').map(strip_cr);
    let first = lines.next().unwrap_or_default();
    let command = Command::from_bytes(first).ok_or_else(|| DecodeError::unknown_command(first))?;
    let escaped = !command.raw_headers();
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let colon = match find(line, b':') {
            None | Some(0) => return Err(DecodeError::InvalidHeaderLine),
            Some(i) => i,
        };
        let name = header_text(&line[..colon], escaped)?;
        let value = header_text(&line[colon + 1..], escaped)?;
        check_controls(&name, &value)?;
        headers.push((name, value));
    }
    let content_length = match headers.iter().find(|(n, _)| n == "content-length") {
        None => None,
        Some((_, v)) => Some(parse_content_length(v)?),
    };
    Ok(Head {
        command,
        headers,
        body_start,
        content_length,
    })
}

fn parse_content_length(v: &str) -> Result<usize, DecodeError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeError::InvalidContentLength);
    }
    // Digits only, so the only possible failure is overflow: certainly too large, but report
    // it as invalid rather than guess a size.
    v.parse().map_err(|_| DecodeError::InvalidContentLength)
}

fn header_text(raw: &[u8], escaped: bool) -> Result<String, DecodeError> {
    let text = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8)?;
    if escaped {
        unescape(text)
    } else {
        Ok(text.to_owned())
    }
}

/// Refuses control characters (C0, DEL, C1; `\r` and `\n` included, even when they were
/// escaped) in a header name or value. Nothing the server does with a header needs them, and
/// a NUL or line break that reaches a destination, a log line or a database row is at best
/// useless and at worst poison (PostgreSQL refuses NUL in text).
fn check_controls(name: &str, value: &str) -> Result<(), DecodeError> {
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(DecodeError::control_in_name(name, c));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(DecodeError::ControlCharacter {
            header: name.to_string(),
            in_name: false,
            code: u32::from(c),
        });
    }
    Ok(())
}

/// Reverses STOMP 1.2 header escaping; any escape other than `\r` `\n` `\c` `\\` is an error.
pub(crate) fn unescape(text: &str) -> Result<String, DecodeError> {
    if !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('r') => '\r',
            Some('n') => '\n',
            Some('c') => ':',
            Some('\\') => '\\',
            _ => return Err(DecodeError::InvalidHeaderEscape),
        });
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: u8) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
