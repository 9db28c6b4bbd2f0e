//! SockJS 0.3.3 wire framing, as the current sockjs-protocol test suite, sockjs-node and Spring
//! expect it.
//!
//! Pure: no I/O, no runtime. `net` owns sessions, timers and sockets and calls in here for every
//! byte that goes on or comes off the wire, so the exact frame formats live (and are tested) in
//! one place.
//!
//! Frames the server sends (`o`, `h`, `a[...]`, `c[code,"reason"]`) are built by [`close_frame`],
//! [`messages_frame`] and [`message_frame`]; strings inside them are quoted by [`quote`], which
//! escapes every character that browsers or proxies are known to mangle. The transport helpers
//! (`xhr_*`, `eventsource_*`, `htmlfile_*`, `jsonp_frame`) wrap a frame for one transport.
//! Client input is decoded by [`parse_client_messages`], [`parse_ws_message`] and
//! [`parse_jsonp_send`].

use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;

/// The open frame, sent once when a session starts.
pub const OPEN: &[u8] = b"o";
/// The heartbeat frame, sent periodically to keep proxies from timing the connection out.
pub const HEARTBEAT: &[u8] = b"h";

/// Error body when a `jsonp`/`htmlfile` request has no `c` (callback) query parameter.
pub const CALLBACK_REQUIRED: &str = "\"callback\" parameter required";
/// Error body when the `c` (callback) query parameter fails [`valid_callback`].
pub const CALLBACK_INVALID: &str = "invalid \"callback\" parameter";

/// Why a client's `xhr_send` / `jsonp_send` / WebSocket payload was refused.
///
/// It exists so `net` can answer with the exact texts the SockJS test suite looks for
/// (`Display` gives them) without knowing anything about JSON: HTTP transports answer
/// `500` with the text, the WebSocket transport closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockJsError {
    /// The request carried no payload at all ("Payload expected.").
    PayloadExpected,
    /// The payload was not a JSON array of strings ("Broken JSON encoding.").
    BrokenJson,
}

impl SockJsError {
    /// The message text, exactly as sockjs-node sends it.
    pub fn message(self) -> &'static str {
        match self {
            SockJsError::PayloadExpected => "Payload expected.",
            SockJsError::BrokenJson => "Broken JSON encoding.",
        }
    }
}

impl fmt::Display for SockJsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for SockJsError {}

// ---------------------------------------------------------------------------------------------
// Quoting
// ---------------------------------------------------------------------------------------------

/// UTF-16 code unit ranges (inclusive, sorted, disjoint) that are sent as `\uXXXX`: the
/// sockjs-node `escapable` set. Browsers normalise or drop these characters (combining marks,
/// compatibility ideographs, invisible formatting, line/paragraph separators, specials) when
/// they travel over XHR or WebSocket, so they must never appear raw on the wire.
/// `0x00-0x1f` is handled by the standard JSON escapes before this table is consulted, and the
/// surrogate range is reached through the UTF-16 encoding of non-BMP characters.
const ESCAPABLE: &[(u32, u32)] = &[
    (0x0000, 0x001f),
    (0x0300, 0x0333),
    (0x033d, 0x0346),
    (0x034a, 0x034c),
    (0x0350, 0x0352),
    (0x0357, 0x0358),
    (0x035c, 0x0362),
    (0x0374, 0x0374),
    (0x037e, 0x037e),
    (0x0387, 0x0387),
    (0x0591, 0x05af),
    (0x05c4, 0x05c4),
    (0x0610, 0x0617),
    (0x0653, 0x0654),
    (0x0657, 0x065b),
    (0x065d, 0x065e),
    (0x06df, 0x06e2),
    (0x06eb, 0x06ec),
    (0x0730, 0x0730),
    (0x0732, 0x0733),
    (0x0735, 0x0736),
    (0x073a, 0x073a),
    (0x073d, 0x073d),
    (0x073f, 0x0741),
    (0x0743, 0x0743),
    (0x0745, 0x0745),
    (0x0747, 0x0747),
    (0x07eb, 0x07f1),
    (0x0951, 0x0951),
    (0x0958, 0x095f),
    (0x09dc, 0x09dd),
    (0x09df, 0x09df),
    (0x0a33, 0x0a33),
    (0x0a36, 0x0a36),
    (0x0a59, 0x0a5b),
    (0x0a5e, 0x0a5e),
    (0x0b5c, 0x0b5d),
    (0x0e38, 0x0e39),
    (0x0f43, 0x0f43),
    (0x0f4d, 0x0f4d),
    (0x0f52, 0x0f52),
    (0x0f57, 0x0f57),
    (0x0f5c, 0x0f5c),
    (0x0f69, 0x0f69),
    (0x0f72, 0x0f76),
    (0x0f78, 0x0f78),
    (0x0f80, 0x0f83),
    (0x0f93, 0x0f93),
    (0x0f9d, 0x0f9d),
    (0x0fa2, 0x0fa2),
    (0x0fa7, 0x0fa7),
    (0x0fac, 0x0fac),
    (0x0fb9, 0x0fb9),
    (0x1939, 0x193a),
    (0x1a17, 0x1a17),
    (0x1b6b, 0x1b6b),
    (0x1cda, 0x1cdb),
    (0x1dc0, 0x1dcf),
    (0x1dfc, 0x1dfc),
    (0x1dfe, 0x1dfe),
    (0x1f71, 0x1f71),
    (0x1f73, 0x1f73),
    (0x1f75, 0x1f75),
    (0x1f77, 0x1f77),
    (0x1f79, 0x1f79),
    (0x1f7b, 0x1f7b),
    (0x1f7d, 0x1f7d),
    (0x1fbb, 0x1fbb),
    (0x1fbe, 0x1fbe),
    (0x1fc9, 0x1fc9),
    (0x1fcb, 0x1fcb),
    (0x1fd3, 0x1fd3),
    (0x1fdb, 0x1fdb),
    (0x1fe3, 0x1fe3),
    (0x1feb, 0x1feb),
    (0x1fee, 0x1fef),
    (0x1ff9, 0x1ff9),
    (0x1ffb, 0x1ffb),
    (0x1ffd, 0x1ffd),
    (0x2000, 0x2001),
    (0x200c, 0x200f),
    (0x2028, 0x202f),
    (0x2060, 0x206f),
    (0x20d0, 0x20d1),
    (0x20d4, 0x20d7),
    (0x20e7, 0x20e9),
    (0x2126, 0x2126),
    (0x212a, 0x212b),
    (0x2329, 0x232a),
    (0x2adc, 0x2adc),
    (0x302b, 0x302c),
    (0xaab2, 0xaab3),
    (0xd800, 0xdfff),
    (0xf900, 0xfa0d),
    (0xfa10, 0xfa10),
    (0xfa12, 0xfa12),
    (0xfa15, 0xfa1e),
    (0xfa20, 0xfa20),
    (0xfa22, 0xfa22),
    (0xfa25, 0xfa26),
    (0xfa2a, 0xfa2d),
    (0xfa30, 0xfa6d),
    (0xfa70, 0xfad9),
    (0xfb1d, 0xfb1d),
    (0xfb1f, 0xfb1f),
    (0xfb2a, 0xfb36),
    (0xfb38, 0xfb3c),
    (0xfb3e, 0xfb3e),
    (0xfb40, 0xfb41),
    (0xfb43, 0xfb44),
    (0xfb46, 0xfb4e),
    (0xfff0, 0xffff),
];

fn is_escapable(cp: u32) -> bool {
    ESCAPABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_u_escape(out: &mut String, unit: u32) {
    out.push_str("\\u");
    for shift in [12u32, 8, 4, 0] {
        out.push(char::from(HEX[((unit >> shift) & 0xf) as usize]));
    }
}

/// Append `s` to `out` as a JSON string literal with SockJS escaping.
///
/// Standard JSON escapes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as
/// `\u00XX`), plus every character of the sockjs-node `escapable` set as `\uXXXX` (lowercase
/// hex), plus every character outside the BMP as its escaped UTF-16 surrogate pair
/// (`😀` → `\ud83d\ude00`). Everything else (ASCII, Hangul, CJK, ...) is written raw.
pub fn quote(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run_start = 0;
    for (i, c) in s.char_indices() {
        let cp = c as u32;
        // Fast path: printable characters below the first escapable range.
        if (0x20..0x300).contains(&cp) && c != '"' && c != '\\' {
            continue;
        }
        let simple = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            _ => None,
        };
        let needs_escape = simple.is_some() || cp > 0xffff || is_escapable(cp);
        if !needs_escape {
            continue;
        }
        out.push_str(&s[run_start..i]);
        run_start = i + c.len_utf8();
        if let Some(esc) = simple {
            out.push_str(esc);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                push_u_escape(out, u32::from(*unit));
            }
        }
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote(s, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// The close frame: `c[3000,"Go away!"]`.
pub fn close_frame(code: u16, reason: &str) -> String {
    let mut out = String::with_capacity(reason.len() + 12);
    out.push_str("c[");
    out.push_str(&code.to_string());
    out.push(',');
    quote(reason, &mut out);
    out.push(']');
    out
}

/// The message frame for a batch: `a["m1","m2"]` (`a[]` for an empty batch).
pub fn messages_frame<S: AsRef<str>>(msgs: &[S]) -> String {
    let len: usize = msgs.iter().map(|m| m.as_ref().len() + 3).sum();
    let mut out = String::with_capacity(len + 3);
    out.push_str("a[");
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        quote(m.as_ref(), &mut out);
    }
    out.push(']');
    out
}

/// The message frame for a single message: `a["msg"]`.
pub fn message_frame(msg: &str) -> String {
    messages_frame(&[msg])
}

// ---------------------------------------------------------------------------------------------
// Client input
// ---------------------------------------------------------------------------------------------

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at.checked_add(4)?)?;
    let mut v = 0u32;
    for &d in digits {
        v = (v << 4) | char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// Rewrite `\uXXXX` escapes of unpaired UTF-16 surrogates to `\ufffd`.
///
/// Browsers happily `JSON.stringify` strings holding half a surrogate pair (a message cut in the
/// middle of an emoji, say); a Rust `String` cannot hold one and serde_json rejects it, which
/// would drop the whole batch. Returns `None` when there was nothing to rewrite.
fn replace_lone_surrogates(json: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match json.get(i + 1) {
            Some(b'u') => match hex4(json, i + 2) {
                Some(0xd800..=0xdbff) => {
                    let lo = if json.get(i + 6) == Some(&b'\\') && json.get(i + 7) == Some(&b'u') {
                        hex4(json, i + 8)
                    } else {
                        None
                    };
                    match (lo, json.get(i..i + 12)) {
                        (Some(0xdc00..=0xdfff), Some(pair)) => {
                            out.extend_from_slice(pair);
                            i += 12;
                        }
                        _ => {
                            out.extend_from_slice(b"\\ufffd");
                            changed = true;
                            i += 6;
                        }
                    }
                }
                Some(0xdc00..=0xdfff) => {
                    out.extend_from_slice(b"\\ufffd");
                    changed = true;
                    i += 6;
                }
                _ => {
                    out.extend_from_slice(b"\\u");
                    i += 2;
                }
            },
            Some(&next) => {
                out.push(b);
                out.push(next);
                i += 2;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

fn decode_json<T>(
    json: &[u8],
    decode: impl Fn(&[u8]) -> serde_json::Result<T>,
) -> Result<T, SockJsError> {
    match decode(json) {
        Ok(v) => Ok(v),
        Err(_) => match replace_lone_surrogates(json) {
            Some(fixed) => decode(&fixed).map_err(|_| SockJsError::BrokenJson),
            None => Err(SockJsError::BrokenJson),
        },
    }
}

/// Decode an `xhr_send` (or `jsonp_send`, after form decoding) body: a JSON array of strings.
///
/// An empty body is [`SockJsError::PayloadExpected`]; anything that is not a JSON array of
/// strings (broken JSON, invalid UTF-8, a bare string, non-string elements) is
/// [`SockJsError::BrokenJson`]. `[]` is valid and yields no messages. Escaped lone surrogates
/// become U+FFFD.
pub fn parse_client_messages(body: &[u8]) -> Result<Vec<String>, SockJsError> {
    if body.is_empty() {
        return Err(SockJsError::PayloadExpected);
    }
    decode_json(body, |j| serde_json::from_slice::<Vec<String>>(j))
}

/// Decode one WebSocket text message: a JSON array of strings or a single JSON string.
///
/// Empty (or whitespace-only) messages are ignored (`Ok(vec![])`), as the protocol requires.
pub fn parse_ws_message(text: &str) -> Result<Vec<String>, SockJsError> {
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        decode_json(text.as_bytes(), |j| {
            serde_json::from_slice::<Vec<String>>(j)
        })
    } else {
        decode_json(text.as_bytes(), |j| serde_json::from_slice::<String>(j)).map(|s| vec![s])
    }
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = input.get(i + 1).and_then(|&h| char::from(h).to_digit(16));
                let lo = input.get(i + 2).and_then(|&l| char::from(l).to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        // Two hex digits are at most 0xff.
                        out.push(((hi << 4) | lo) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn form_field(body: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &[][..]),
        };
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

/// Decode a `jsonp_send` body.
///
/// With `Content-Type: application/x-www-form-urlencoded` (parameters and case ignored) the
/// payload is the url-decoded form field `d`; a missing or empty `d` is
/// [`SockJsError::PayloadExpected`]. Any other (or no) content type means the raw body is the
/// payload. The payload is then decoded as by [`parse_client_messages`].
pub fn parse_jsonp_send(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Vec<String>, SockJsError> {
    let is_form = content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if is_form {
        let d = form_field(body, b"d").ok_or(SockJsError::PayloadExpected)?;
        parse_client_messages(&d)
    } else {
        parse_client_messages(body)
    }
}

// ---------------------------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------------------------

static XHR_STREAMING_PRELUDE: [u8; 2049] = {
    let mut a = [b'h'; 2049];
    a[2048] = b'\n';
    a
};

/// The `xhr_streaming` prelude: 2048 `h` bytes and a newline, so that browsers start
/// delivering the streamed response (some buffer the first 2 KiB).
pub fn xhr_streaming_prelude() -> Bytes {
    Bytes::from_static(&XHR_STREAMING_PRELUDE)
}

/// A frame on `xhr` / `xhr_streaming`: the frame and `\n`.
pub fn xhr_frame(frame: &str) -> Bytes {
    let mut out = Vec::with_capacity(frame.len() + 1);
    out.extend_from_slice(frame.as_bytes());
    out.push(b'\n');
    Bytes::from(out)
}

/// The `eventsource` prelude: `\r\n` (works around an Opera bug).
pub fn eventsource_prelude() -> Bytes {
    Bytes::from_static(b"\r\n")
}

/// A frame on `eventsource`: `data: <frame>\r\n\r\n`.
///
/// Frames built by this module never contain raw CR or LF, so one `data:` line always suffices.
pub fn eventsource_frame(frame: &str) -> Bytes {
    let mut out = Vec::with_capacity(frame.len() + 10);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(frame.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Bytes::from(out)
}

/// Whether a JSONP / htmlfile callback name is acceptable: non-empty, only `[A-Za-z0-9_.]`.
///
/// Anything else could inject script into the response, so `net` must answer `500` with
/// [`CALLBACK_INVALID`] (or [`CALLBACK_REQUIRED`] when it is missing).
pub fn valid_callback(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// The callback as given when valid; otherwise with every disallowed character dropped, so a
/// caller that forgot [`valid_callback`] still cannot inject script.
fn safe_callback(c: &str) -> Cow<'_, str> {
    if valid_callback(c) {
        Cow::Borrowed(c)
    } else {
        Cow::Owned(
            c.chars()
                .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_' || *ch == '.')
                .collect(),
        )
    }
}

const HTMLFILE_HEAD: &str = "<!doctype html>\n<html><head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    var c = parent.";
const HTMLFILE_TAIL: &str = ";\n    c.start();\n    function p(d) {c.message(d);};\n    window.onload = function() {c.stop();};\n  </script>";

/// The `htmlfile` prelude: the sockjs-node page calling `parent.<callback>`, padded with spaces
/// to at least 1024 bytes (IE renders nothing before that), then `\r\n`.
///
/// `callback` should have passed [`valid_callback`]; disallowed characters are dropped anyway.
pub fn htmlfile_prelude(callback: &str) -> Bytes {
    let callback = safe_callback(callback);
    let mut out = String::with_capacity(1100 + callback.len());
    out.push_str(HTMLFILE_HEAD);
    out.push_str(&callback);
    out.push_str(HTMLFILE_TAIL);
    while out.len() < 1024 {
        out.push(' ');
    }
    out.push_str("\r\n");
    Bytes::from(out)
}

/// A frame on `htmlfile`: `<script>\np(<quoted frame>);\n</script>\r\n`.
///
/// `<` inside the quoted frame is written as `\u003c` so that message text such as
/// `</script>` cannot end the script element (the JavaScript string is unchanged).
pub fn htmlfile_frame(frame: &str) -> Bytes {
    let mut q = quoted(frame);
    if q.contains('<') {
        q = q.replace('<', "\\u003c");
    }
    let mut out = String::with_capacity(q.len() + 24);
    out.push_str("<script>\np(");
    out.push_str(&q);
    out.push_str(");\n</script>\r\n");
    Bytes::from(out)
}

/// A frame on `jsonp`: `/**/<callback>(<quoted frame>);\r\n`, as sockjs-node sends it.
///
/// The leading empty comment keeps the response from starting with bytes the client chose
/// (the callback), which defeats content-sniffing attacks such as Rosetta Flash; to the
/// browser evaluating the script it is nothing.
///
/// `callback` should have passed [`valid_callback`]; disallowed characters are dropped anyway.
pub fn jsonp_frame(callback: &str, frame: &str) -> Bytes {
    let callback = safe_callback(callback);
    let mut out = String::with_capacity(callback.len() + frame.len() + 16);
    out.push_str("/**/");
    out.push_str(&callback);
    out.push('(');
    quote(frame, &mut out);
    out.push_str(");\r\n");
    Bytes::from(out)
}

// ---------------------------------------------------------------------------------------------
// Static pages
// ---------------------------------------------------------------------------------------------

fn push_html_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// The `/iframe*.html` page, loading the SockJS client from `client_url` (HTML-attribute
/// escaped) and then bootstrapping the cross-domain iframe: the markup sockjs-node serves and
/// the current sockjs-protocol suite matches. sockjs-client 1.x defines
/// `SockJS.bootstrap_iframe` as soon as its script has run.
pub fn iframe_html(client_url: &str) -> String {
    let mut out = String::with_capacity(500 + client_url.len());
    out.push_str(
        "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  <script src=\"",
    );
    push_html_attr(&mut out, client_url);
    out.push_str(
        "\"></script>\n  <script>\n    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>",
    );
    out
}

/// A strong ETag for a static body: the quoted FNV-1a 64-bit hash in hex (`"0123456789abcdef"`).
pub fn etag(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// The `/info` body: `{"entropy":N,"origins":["*:*"],"cookie_needed":B,"websocket":B}`.
pub fn info_json(websocket: bool, cookie_needed: bool, entropy: u32) -> String {
    format!(
        "{{\"entropy\":{entropy},\"origins\":[\"*:*\"],\"cookie_needed\":{cookie_needed},\"websocket\":{websocket}}}"
    )
}

/// Split `/{server}/{session}/{transport}` (the path below the service prefix; the leading `/`
/// is optional) into its three parts.
///
/// `server` and `session` must be non-empty and contain no `.`; `transport` must be non-empty.
/// Any other shape (fewer or more segments) is `None`, which `net` answers with `404`.
pub fn parse_session_path(path_after_prefix: &str) -> Option<(&str, &str, &str)> {
    let p = path_after_prefix
        .strip_prefix('/')
        .unwrap_or(path_after_prefix);
    let mut parts = p.split('/');
    let server = parts.next()?;
    let session = parts.next()?;
    let transport = parts.next()?;
    if parts.next().is_some()
        || server.is_empty()
        || session.is_empty()
        || transport.is_empty()
        || server.contains('.')
        || session.contains('.')
    {
        return None;
    }
    Some((server, session, transport))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn q(s: &str) -> String {
        quoted(s)
    }

    fn b(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).expect("utf-8 frame")
    }

    // The ranges exactly as listed in the sockjs-node `escapable` regex (the brief's list),
    // parsed independently of the `ESCAPABLE` table.
    const ESCAPABLE_SPEC: &str = r"\x00-\x1f\ud800-\udfff\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff
        \u0300-\u0333, \u033d-\u0346, \u034a-\u034c, \u0350-\u0352, \u0357-\u0358, \u035c-\u0362,
        \u0374, \u037e, \u0387, \u0591-\u05af, \u05c4, \u0610-\u0617, \u0653-\u0654, \u0657-\u065b,
        \u065d-\u065e, \u06df-\u06e2, \u06eb-\u06ec, \u0730, \u0732-\u0733, \u0735-\u0736, \u073a,
        \u073d, \u073f-\u0741, \u0743, \u0745, \u0747, \u07eb-\u07f1, \u0951, \u0958-\u095f,
        \u09dc-\u09dd, \u09df, \u0a33, \u0a36, \u0a59-\u0a5b, \u0a5e, \u0b5c-\u0b5d, \u0e38-\u0e39,
        \u0f43, \u0f4d, \u0f52, \u0f57, \u0f5c, \u0f69, \u0f72-\u0f76, \u0f78, \u0f80-\u0f83,
        \u0f93, \u0f9d, \u0fa2, \u0fa7, \u0fac, \u0fb9, \u1939-\u193a, \u1a17, \u1b6b,
        \u1cda-\u1cdb, \u1dc0-\u1dcf, \u1dfc, \u1dfe, \u1f71, \u1f73, \u1f75, \u1f77, \u1f79,
        \u1f7b, \u1f7d, \u1fbb, \u1fbe, \u1fc9, \u1fcb, \u1fd3, \u1fdb, \u1fe3, \u1feb,
        \u1fee-\u1fef, \u1ff9, \u1ffb, \u1ffd, \u2000-\u2001, \u20d0-\u20d1, \u20d4-\u20d7,
        \u20e7-\u20e9, \u2126, \u212a-\u212b, \u2329-\u232a, \u2adc, \u302b-\u302c,
        \u2adc, \uaab2-\uaab3, \uf900-\ufa0d, \ufa10, \ufa12, \ufa15-\ufa1e, \ufa20, \ufa22,
        \ufa25-\ufa26, \ufa2a-\ufa2d, \ufa30-\ufa6d, \ufa70-\ufad9, \ufb1d, \ufb1f,
        \ufb2a-\ufb36, \ufb38-\ufb3c, \ufb3e, \ufb40-\ufb41, \ufb43-\ufb44, \ufb46-\ufb4e,
        \ufff0-\uffff";

    /// Parse a regex-class-like list of `\uXXXX` / `\xXX` items and `a-b` ranges.
    fn parse_class(spec: &str) -> HashSet<u32> {
        let mut points = Vec::new();
        let mut ranges_to = Vec::new();
        let bytes = spec.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    let (len, radix_len) = match bytes[i + 1] {
                        b'u' => (6, 4),
                        b'x' => (4, 2),
                        other => panic!("bad escape {}", other as char),
                    };
                    let hex = &spec[i + 2..i + 2 + radix_len];
                    let v = u32::from_str_radix(hex, 16).unwrap();
                    if ranges_to.pop() == Some(true) {
                        let lo: u32 = points.pop().unwrap();
                        points.extend(lo..=v);
                    } else {
                        points.push(v);
                    }
                    i += len;
                }
                b'-' => {
                    ranges_to.push(true);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        points.into_iter().collect()
    }

    #[test]
    fn escapable_table_is_sorted_and_disjoint() {
        for w in ESCAPABLE.windows(2) {
            assert!(w[0].0 <= w[0].1);
            assert!(w[0].1 < w[1].0, "{:x?} overlaps {:x?}", w[0], w[1]);
        }
    }

    #[test]
    fn escapable_table_matches_the_listed_ranges() {
        let spec = parse_class(ESCAPABLE_SPEC);
        for cp in 0..=0xffffu32 {
            assert_eq!(is_escapable(cp), spec.contains(&cp), "U+{cp:04X}");
        }
    }

    #[test]
    fn quote_every_bmp_char_exactly() {
        let spec = parse_class(ESCAPABLE_SPEC);
        for cp in 0..=0xffffu32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let got = q(&c.to_string());
            let expected = match c {
                '"' => "\"\\\"\"".to_string(),
                '\\' => "\"\\\\\"".to_string(),
                '\n' => "\"\\n\"".to_string(),
                '\r' => "\"\\r\"".to_string(),
                '\t' => "\"\\t\"".to_string(),
                '\u{8}' => "\"\\b\"".to_string(),
                '\u{c}' => "\"\\f\"".to_string(),
                _ if spec.contains(&cp) => format!("\"\\u{cp:04x}\""),
                _ => format!("\"{c}\""),
            };
            assert_eq!(got, expected, "U+{cp:04X}");
        }
    }

    #[test]
    fn quote_examples() {
        assert_eq!(q(""), "\"\"");
        assert_eq!(q("hello world /?<>&'"), "\"hello world /?<>&'\"");
        assert_eq!(q("안녕하세요 你好 ünïcödé"), "\"안녕하세요 你好 ünïcödé\"");
        assert_eq!(q("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(q("\n\r\t\u{8}\u{c}"), "\"\\n\\r\\t\\b\\f\"");
        assert_eq!(q("\u{0}\u{1}\u{1f}"), "\"\\u0000\\u0001\\u001f\"");
        assert_eq!(q("\u{7f}"), "\"\u{7f}\"");
        assert_eq!(q("x\u{2028}y\u{2029}z"), "\"x\\u2028y\\u2029z\"");
        assert_eq!(
            q("\u{200c}\u{200f}\u{2060}\u{206f}"),
            "\"\\u200c\\u200f\\u2060\\u206f\""
        );
        assert_eq!(q("\u{fff0}\u{fffe}\u{ffff}"), "\"\\ufff0\\ufffe\\uffff\"");
        assert_eq!(q("e\u{301}"), "\"e\\u0301\"");
        assert_eq!(q("\u{334}"), "\"\u{334}\"");
        assert_eq!(q("\u{f900}\u{fa0e}"), "\"\\uf900\u{fa0e}\"");
        assert_eq!(q("\u{1F600}"), "\"\\ud83d\\ude00\"");
        assert_eq!(q("hi 😀!"), "\"hi \\ud83d\\ude00!\"");
        assert_eq!(q("\u{10000}\u{10FFFF}"), "\"\\ud800\\udc00\\udbff\\udfff\"");
    }

    #[test]
    fn quote_appends() {
        let mut out = String::from("x");
        quote("a", &mut out);
        quote("b", &mut out);
        assert_eq!(out, "x\"a\"\"b\"");
    }

    #[test]
    fn frames() {
        assert_eq!(OPEN, b"o");
        assert_eq!(HEARTBEAT, b"h");
        assert_eq!(close_frame(3000, "Go away!"), "c[3000,\"Go away!\"]");
        assert_eq!(
            close_frame(2010, "Another connection still open"),
            "c[2010,\"Another connection still open\"]"
        );
        assert_eq!(close_frame(1002, "a\"\u{2028}"), "c[1002,\"a\\\"\\u2028\"]");
        assert_eq!(messages_frame(&["m1", "m2"]), "a[\"m1\",\"m2\"]");
        assert_eq!(messages_frame(&[String::from("x")]), "a[\"x\"]");
        assert_eq!(messages_frame::<&str>(&[]), "a[]");
        assert_eq!(message_frame("a"), "a[\"a\"]");
        assert_eq!(message_frame("  \u{0}\n\r "), "a[\"  \\u0000\\n\\r \"]");
    }

    // sockjs-protocol `JSONEncoding.test_xhr_server_encodes`.
    #[test]
    fn suite_xhr_server_encodes() {
        let server = parse_class(r"\x00-\x1f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufff0-\uffff");
        let mut raw = String::new();
        let mut esc = String::from("\"");
        for cp in 255..65536u32 {
            if server.contains(&cp) {
                raw.push(char::from_u32(cp).unwrap());
                esc.push_str(&format!("\\u{cp:04x}"));
            }
        }
        esc.push('"');
        let payload = format!("[\"{raw}\"]");
        let msgs = parse_client_messages(payload.as_bytes()).unwrap();
        let body = String::from_utf8(xhr_frame(&messages_frame(&msgs)).to_vec()).unwrap();
        let body = body.trim();
        let recv = &body[2..body.len() - 1];
        assert_eq!(recv, esc);
    }

    // sockjs-protocol `JSONEncoding.test_xhr_server_decodes`.
    #[test]
    fn suite_xhr_server_decodes() {
        let client = parse_class(
            r"\x22\x5c\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0604\u070f\u17b4\u17b5\u2000-\u20ff\ufeff\ufff0-\uffff\x00-\x1f\ufffe\uffff\u0300-\u0333\u033d-\u0346\u034a-\u034c\u0350-\u0352\u0357-\u0358\u035c-\u0362\u0374\u037e\u0387\u0591-\u05af\u05c4\u0610-\u0617\u0653-\u0654\u0657-\u065b\u065d-\u065e\u06df-\u06e2\u06eb-\u06ec\u0730\u0732-\u0733\u0735-\u0736\u073a\u073d\u073f-\u0741\u0743\u0745\u0747\u07eb-\u07f1\u0951\u0958-\u095f\u09dc-\u09dd\u09df\u0a33\u0a36\u0a59-\u0a5b\u0a5e\u0b5c-\u0b5d\u0e38-\u0e39\u0f43\u0f4d\u0f52\u0f57\u0f5c\u0f69\u0f72-\u0f76\u0f78\u0f80-\u0f83\u0f93\u0f9d\u0fa2\u0fa7\u0fac\u0fb9\u1939-\u193a\u1a17\u1b6b\u1cda-\u1cdb\u1dc0-\u1dcf\u1dfc\u1dfe\u1f71\u1f73\u1f75\u1f77\u1f79\u1f7b\u1f7d\u1fbb\u1fbe\u1fc9\u1fcb\u1fd3\u1fdb\u1fe3\u1feb\u1fee-\u1fef\u1ff9\u1ffb\u1ffd\u2000-\u2001\u20d0-\u20d1\u20d4-\u20d7\u20e7-\u20e9\u2126\u212a-\u212b\u2329-\u232a\u2adc\u302b-\u302c\uaab2-\uaab3\uf900-\ufa0d\ufa10\ufa12\ufa15-\ufa1e\ufa20\ufa22\ufa25-\ufa26\ufa2a-\ufa2d\ufa30-\ufa6d\ufa70-\ufad9\ufb1d\ufb1f\ufb2a-\ufb36\ufb38-\ufb3c\ufb3e\ufb40-\ufb41\ufb43-\ufb44\ufb46-\ufb4e",
        );
        let mut cps: Vec<u32> = client.into_iter().collect();
        cps.sort_unstable();
        let mut esc = String::from("\"");
        for cp in cps {
            esc.push_str(&format!("\\u{cp:04x}"));
        }
        esc.push('"');
        let payload = format!("[{esc}]");
        let msgs = parse_client_messages(payload.as_bytes()).unwrap();
        let body = String::from_utf8(xhr_frame(&messages_frame(&msgs)).to_vec()).unwrap();
        let body = body.trim();
        let recv = &body[2..body.len() - 1];
        let a: String = serde_json::from_str(recv).unwrap();
        let b: String = serde_json::from_str(&esc).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn parse_client_messages_cases() {
        assert_eq!(
            parse_client_messages(b""),
            Err(SockJsError::PayloadExpected)
        );
        assert_eq!(
            SockJsError::PayloadExpected.to_string(),
            "Payload expected."
        );
        assert_eq!(parse_client_messages(b"[\"x"), Err(SockJsError::BrokenJson));
        assert_eq!(SockJsError::BrokenJson.to_string(), "Broken JSON encoding.");
        assert_eq!(parse_client_messages(b"[]"), Ok(vec![]));
        assert_eq!(
            parse_client_messages(b" [ \"a\" , \"b\" ] \n"),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse_client_messages(b"[\"%61bc\"]"),
            Ok(vec!["%61bc".into()])
        );
        for bad in [
            &b" "[..],
            b"\"a\"",
            b"[\"a\",1]",
            b"[null]",
            b"{\"a\":\"b\"}",
            b"[\"a\"] x",
            b"[\"\xff\"]",
            b"[\"\\u12\"]",
            b"\\",
            b"[\"\\",
            b"[\"\\u",
        ] {
            assert_eq!(
                parse_client_messages(bad),
                Err(SockJsError::BrokenJson),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parse_client_messages_unicode() {
        assert_eq!(
            parse_client_messages("[\"안녕 😀\",\"\\u2028\\ud83d\\ude00\\u0000\"]".as_bytes()),
            Ok(vec!["안녕 😀".into(), "\u{2028}😀\u{0}".into()])
        );
        // Lone surrogates (half an emoji) become U+FFFD instead of failing the whole batch.
        assert_eq!(
            parse_client_messages(b"[\"a\\ud83dx\",\"\\ude00\\ud83d\",\"ok\"]"),
            Ok(vec![
                "a\u{fffd}x".into(),
                "\u{fffd}\u{fffd}".into(),
                "ok".into()
            ])
        );
        assert_eq!(
            parse_client_messages(b"[\"\\ud83d\"]"),
            Ok(vec!["\u{fffd}".into()])
        );
        // An escaped backslash followed by `ud800` is plain text, not an escape.
        assert_eq!(
            parse_client_messages(b"[\"\\\\ud800\"]"),
            Ok(vec!["\\ud800".into()])
        );
        // Still broken after the surrogate repair.
        assert_eq!(
            parse_client_messages(b"[\"\\ud800\""),
            Err(SockJsError::BrokenJson)
        );
    }

    #[test]
    fn parse_ws_message_cases() {
        assert_eq!(parse_ws_message(""), Ok(vec![]));
        assert_eq!(parse_ws_message(" \r\n"), Ok(vec![]));
        assert_eq!(parse_ws_message("\"a\""), Ok(vec!["a".into()]));
        assert_eq!(parse_ws_message(" \"a\\n\" "), Ok(vec!["a\n".into()]));
        assert_eq!(
            parse_ws_message("[\"a\",\"b\"]"),
            Ok(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_ws_message("[]"), Ok(vec![]));
        assert_eq!(parse_ws_message("[\"a"), Err(SockJsError::BrokenJson));
        assert_eq!(parse_ws_message("\"a"), Err(SockJsError::BrokenJson));
        assert_eq!(parse_ws_message("1"), Err(SockJsError::BrokenJson));
        assert_eq!(parse_ws_message("{}"), Err(SockJsError::BrokenJson));
        assert_eq!(parse_ws_message("[1]"), Err(SockJsError::BrokenJson));
        assert_eq!(parse_ws_message("\"\\udc00\""), Ok(vec!["\u{fffd}".into()]));
    }

    #[test]
    fn parse_jsonp_send_cases() {
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(
            parse_jsonp_send(b"d=%5B%22x%22%5D", form),
            Ok(vec!["x".into()])
        );
        assert_eq!(
            parse_jsonp_send(b"d=%5B%22x", form),
            Err(SockJsError::BrokenJson)
        );
        for data in [&b""[..], b"d=", b"p=p", b"d", b"dd=1", b"&&"] {
            assert_eq!(
                parse_jsonp_send(data, form),
                Err(SockJsError::PayloadExpected),
                "{data:?}"
            );
        }
        assert_eq!(
            parse_jsonp_send(b"p=1&d=%5B%22a+b%22%5D&d=x", form),
            Ok(vec!["a b".into()])
        );
        assert_eq!(
            parse_jsonp_send(b"d=[\"%E4%BD%A0\"]", form),
            Ok(vec!["你".into()])
        );
        assert_eq!(
            parse_jsonp_send(b"d=[\"%zz%4\"]", form),
            Ok(vec!["%zz%4".into()])
        );
        assert_eq!(parse_jsonp_send(b"%64=[\"k\"]", form), Ok(vec!["k".into()]));
        assert_eq!(
            parse_jsonp_send(b"d=%5B%22%FF%22%5D", form),
            Err(SockJsError::BrokenJson)
        );
        assert_eq!(
            parse_jsonp_send(
                b"d=%5B%5D",
                Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8")
            ),
            Ok(vec![])
        );
        assert_eq!(
            parse_jsonp_send(b"[\"%61bc\"]", Some("text/plain")),
            Ok(vec!["%61bc".into()])
        );
        assert_eq!(parse_jsonp_send(b"[\"x\"]", None), Ok(vec!["x".into()]));
        assert_eq!(
            parse_jsonp_send(b"", Some("text/plain")),
            Err(SockJsError::PayloadExpected)
        );
        assert_eq!(
            parse_jsonp_send(b"d=[\"x\"]", Some("text/plain")),
            Err(SockJsError::BrokenJson)
        );
    }

    #[test]
    fn session_paths() {
        assert_eq!(
            parse_session_path("/000/abc/xhr"),
            Some(("000", "abc", "xhr"))
        );
        assert_eq!(
            parse_session_path("000/abc/xhr_send"),
            Some(("000", "abc", "xhr_send"))
        );
        for ok in [
            "/a/a/xhr",
            "/_/_/xhr",
            "/1/1/xhr",
            "/abcdefgh_i-j%20/abcdefg_i-j%20/xhr",
        ] {
            assert!(parse_session_path(ok).is_some(), "{ok}");
        }
        for bad in [
            "//xhr",
            "/a./a/xhr",
            "/a/a./xhr",
            "/./././xhr",
            "///xhr",
            "////xhr",
            "/a/a",
            "/a/a/",
            "/a/a/xhr/",
            "/a/a/xhr/x",
            "",
            "/",
            "//a/a/xhr",
        ] {
            assert_eq!(parse_session_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn callbacks() {
        for ok in ["callback", "x", "a.b_C9", "jQuery123_456", "_"] {
            assert!(valid_callback(ok), "{ok}");
        }
        for bad in [
            "",
            " ",
            "%20",
            "*",
            "abc(",
            "abc%28",
            "a-b",
            "a b",
            "é",
            "a;alert(1)",
        ] {
            assert!(!valid_callback(bad), "{bad}");
        }
        assert_eq!(CALLBACK_REQUIRED, "\"callback\" parameter required");
        assert_eq!(CALLBACK_INVALID, "invalid \"callback\" parameter");
    }

    #[test]
    fn transport_framing() {
        let p = xhr_streaming_prelude();
        assert_eq!(p.len(), 2049);
        assert_eq!(&p[..], format!("{}\n", "h".repeat(2048)).as_bytes());
        assert_eq!(&xhr_frame("o")[..], b"o\n");
        assert_eq!(&xhr_frame(&message_frame("x"))[..], b"a[\"x\"]\n");
        assert_eq!(&eventsource_prelude()[..], b"\r\n");
        assert_eq!(&eventsource_frame("o")[..], b"data: o\r\n\r\n");
        assert_eq!(
            &eventsource_frame(&message_frame("x"))[..],
            b"data: a[\"x\"]\r\n\r\n"
        );
        assert_eq!(
            &eventsource_frame(&message_frame("  \u{0}\n\r "))[..],
            b"data: a[\"  \\u0000\\n\\r \"]\r\n\r\n"
        );
        assert_eq!(
            &htmlfile_frame("o")[..],
            b"<script>\np(\"o\");\n</script>\r\n"
        );
        assert_eq!(
            &htmlfile_frame(&message_frame("x"))[..],
            b"<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n"
        );
        assert_eq!(
            &htmlfile_frame(&message_frame("</script><b>"))[..],
            b"<script>\np(\"a[\\\"\\u003c/script>\\u003cb>\\\"]\");\n</script>\r\n"
        );
        assert_eq!(
            &jsonp_frame("callback", "o")[..],
            b"/**/callback(\"o\");\r\n"
        );
        assert_eq!(
            &jsonp_frame("x", &message_frame("x"))[..],
            b"/**/x(\"a[\\\"x\\\"]\");\r\n"
        );
        assert_eq!(
            &jsonp_frame("x", &close_frame(3000, "Go away!"))[..],
            b"/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n"
        );
        assert_eq!(
            &jsonp_frame("x", &message_frame("abc"))[..],
            b"/**/x(\"a[\\\"abc\\\"]\");\r\n"
        );
        // Invalid callbacks are defanged even if the caller skipped `valid_callback`.
        assert_eq!(&jsonp_frame("a(1);b", "o")[..], b"/**/a1b(\"o\");\r\n");
    }

    #[test]
    fn htmlfile_prelude_matches_suite() {
        let head = "<!doctype html>\n<html><head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    var c = parent.callback;\n    c.start();\n    function p(d) {c.message(d);};\n    window.onload = function() {c.stop();};\n  </script>";
        let d = htmlfile_prelude("callback");
        let s = b(&d);
        assert!(s.len() > 1024);
        assert!(s.ends_with("\r\n"));
        assert_eq!(s.trim(), head);
        assert_eq!(&s[..head.len()], head);
        assert!(s[head.len()..s.len() - 2].bytes().all(|c| c == b' '));
        // A long callback is not cut, just not padded.
        let long = "c".repeat(2000);
        let d = htmlfile_prelude(&long);
        assert!(b(&d).contains(&format!("parent.{long};")));
        assert!(b(&d).ends_with("</script>\r\n"));
        assert!(b(&htmlfile_prelude("x</script>")).contains("parent.xscript;"));
    }

    #[test]
    fn iframe_page() {
        let expected = "<!DOCTYPE html>\n<html>\n<head>\n  <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  <script src=\"https://cdn.example/sockjs.min.js\"></script>\n  <script>\n    document.domain = document.domain;\n    SockJS.bootstrap_iframe();\n  </script>\n</head>\n<body>\n  <h2>Don't panic!</h2>\n  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n</body>\n</html>";
        assert_eq!(iframe_html("https://cdn.example/sockjs.min.js"), expected);
        assert!(iframe_html("/s.js?a=1&b=\"2\"")
            .contains("<script src=\"/s.js?a=1&amp;b=&quot;2&quot;\"></script>"));
    }

    #[test]
    fn etags() {
        let page = iframe_html("/sockjs.js");
        let e = etag(page.as_bytes());
        assert_eq!(e, etag(page.as_bytes()));
        assert_eq!(e.len(), 18);
        assert!(e.starts_with('"') && e.ends_with('"'));
        assert!(e[1..17]
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(e, etag(iframe_html("/other.js").as_bytes()));
        // FNV-1a 64 reference values.
        assert_eq!(etag(b""), "\"cbf29ce484222325\"");
        assert_eq!(etag(b"a"), "\"af63dc4c8601ec8c\"");
    }

    #[test]
    fn info() {
        assert_eq!(
            info_json(true, true, 42),
            "{\"entropy\":42,\"origins\":[\"*:*\"],\"cookie_needed\":true,\"websocket\":true}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&info_json(false, false, u32::MAX)).unwrap();
        assert_eq!(v["entropy"], serde_json::json!(u32::MAX));
        assert_eq!(v["websocket"], serde_json::json!(false));
        assert_eq!(v["cookie_needed"], serde_json::json!(false));
        assert_eq!(v["origins"], serde_json::json!(["*:*"]));
    }

    fn tricky_string() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\\x00-\\x1f\"\\\\a /\u{7f}\u{2028}\u{2029}\u{0300}-\u{0336}\u{200b}-\u{2010}\u{fff0}-\u{ffff}\u{ac00}-\u{ac05}\u{1F600}\u{10FFFF}]{0,24}",
        ]
    }

    proptest! {
        #[test]
        fn quote_round_trips(s in tricky_string()) {
            let out = q(&s);
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, s);
        }

        #[test]
        fn quote_output_has_nothing_mangleable(s in tricky_string()) {
            let out = q(&s);
            let inner = &out[1..out.len() - 1];
            for c in inner.chars() {
                prop_assert!((c as u32) <= 0xffff, "non-BMP char left raw");
                prop_assert!(!is_escapable(c as u32), "U+{:04X} left raw", c as u32);
            }
        }

        #[test]
        fn frames_round_trip(msgs in proptest::collection::vec(tricky_string(), 0..5)) {
            let frame = messages_frame(&msgs);
            prop_assert!(frame.starts_with('a'));
            prop_assert_eq!(parse_client_messages(&frame.as_bytes()[1..]), Ok(msgs.clone()));
            prop_assert_eq!(parse_ws_message(&frame[1..]), Ok(msgs));
        }

        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64), ct in any::<bool>()) {
            let _ = parse_client_messages(&body);
            let _ = parse_jsonp_send(&body, ct.then_some("application/x-www-form-urlencoded"));
            let _ = parse_ws_message(&String::from_utf8_lossy(&body));
            let _ = replace_lone_surrogates(&body);
        }

        #[test]
        fn session_path_never_panics(p in "[/a.]{0,8}") {
            if let Some((s, id, t)) = parse_session_path(&p) {
                prop_assert!(!s.is_empty() && !id.is_empty() && !t.is_empty());
                prop_assert!(!s.contains('.') && !id.contains('.'));
            }
        }
    }
}
