//! Server-Sent Events (`text/event-stream`) encoding, and a small incremental parser.
//!
//! Pure: no I/O, no runtime. `net` writes the bytes from [`encode_event`], [`encode_comment`]
//! and [`encode_retry`] to the response body; [`SseParser`] reads such a stream back following
//! the WHATWG HTML "event stream interpretation" rules, for tests and benchmarks.

use bytes::Bytes;

/// Call `f` for every line of `s`, lines ending at CRLF, LF or CR. An empty `s` is one empty
/// line, and a trailing line end yields a final empty line (`"a\n"` → `"a"`, `""`).
fn for_each_line(s: &str, mut f: impl FnMut(&str)) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\n' => {
                f(&s[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                f(&s[start..i]);
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    f(&s[start..]);
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &str, drop: impl Fn(char) -> bool) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    if value.contains(&drop) {
        let cleaned: String = value.chars().filter(|&c| !drop(c)).collect();
        out.extend_from_slice(cleaned.as_bytes());
    } else {
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'\n');
}

/// Encode one event: `id: <id>\n`, `event: <name>\n`, one `data: <line>\n` per line of `data`
/// (lines split at CRLF, LF or CR; an empty `data` still gives one `data: \n`), then `\n`.
///
/// CR and LF are removed from `id` and `event` (they would end the field early), as is NUL
/// from `id` (a parser ignores an id containing NUL). An `event` that ends up empty is left out,
/// since an empty event type already means the default `message`.
pub fn encode_event(id: Option<&str>, event: Option<&str>, data: &str) -> Bytes {
    let extra = id.map_or(0, |s| s.len() + 5) + event.map_or(0, |s| s.len() + 8);
    let mut out = Vec::with_capacity(extra + data.len() + 8);
    if let Some(id) = id {
        push_field(&mut out, b"id", id, |c| matches!(c, '\r' | '\n' | '\0'));
    }
    if let Some(event) = event {
        if event.chars().any(|c| !matches!(c, '\r' | '\n')) {
            push_field(&mut out, b"event", event, |c| matches!(c, '\r' | '\n'));
        }
    }
    for_each_line(data, |line| {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    });
    out.push(b'\n');
    Bytes::from(out)
}

/// Encode a comment (ignored by clients; used as a keep-alive): `: <text>\n` per line of
/// `text`, then `\n`.
pub fn encode_comment(text: &str) -> Bytes {
    let mut out = Vec::with_capacity(text.len() + 4);
    for_each_line(text, |line| {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    });
    out.push(b'\n');
    Bytes::from(out)
}

/// Encode a reconnection delay for the client: `retry: <ms>\n\n`.
pub fn encode_retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

/// One event dispatched by [`SseParser`].
///
/// It exists so tests and benchmarks can compare what came off an event stream with what was
/// encoded, field by field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseMessage {
    /// The value of the last `id` field inside this event's block, if the block had one.
    /// (The spec's persistent "last event ID" is [`SseParser::last_event_id`].)
    pub id: Option<String>,
    /// The event type; `None` when no (or an empty) `event` field was given, i.e. `message`.
    pub event: Option<String>,
    /// The `data` field values joined with `\n`.
    pub data: String,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental `text/event-stream` parser (WHATWG HTML, "Interpreting an event stream").
///
/// It exists so tests and benchmarks can read an SSE response the way a browser's
/// `EventSource` does, from chunks split at arbitrary byte positions (even inside a CRLF pair
/// or a UTF-8 sequence): a leading BOM is skipped, lines end at CRLF, LF or CR, `:` lines are
/// comments, `field:value` loses one leading space of the value, `data` values are joined with
/// `\n`, an event is dispatched at a blank line if it has data, and an unterminated final
/// event is never dispatched. Invalid UTF-8 becomes U+FFFD.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    buf: Vec<u8>,
    /// The last chunk ended with CR: a LF at the start of the next one belongs to that line end.
    after_cr: bool,
    /// The start of the stream has been checked for a BOM.
    bom_checked: bool,
    data: String,
    event: String,
    id: Option<String>,
    last_event_id: String,
    retry: Option<u64>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk of the stream; returns the events completed by it, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        let mut out = Vec::new();
        let mut chunk = chunk;
        if self.after_cr {
            if let Some((&first, rest)) = chunk.split_first() {
                if first == b'\n' {
                    chunk = rest;
                }
                self.after_cr = false;
            }
        }
        let mut scan_from = self.buf.len();
        self.buf.extend_from_slice(chunk);
        if !self.bom_checked {
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return out;
            }
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
            self.bom_checked = true;
            scan_from = 0;
        }

        let buf = std::mem::take(&mut self.buf);
        let mut line_start = 0;
        let mut i = scan_from;
        while let Some(&b) = buf.get(i) {
            match b {
                b'\n' => {
                    self.process_line(&buf[line_start..i], &mut out);
                    i += 1;
                    line_start = i;
                }
                b'\r' => {
                    self.process_line(&buf[line_start..i], &mut out);
                    match buf.get(i + 1) {
                        Some(b'\n') => i += 2,
                        Some(_) => i += 1,
                        None => {
                            i += 1;
                            self.after_cr = true;
                        }
                    }
                    line_start = i;
                }
                _ => i += 1,
            }
        }
        self.buf = buf;
        self.buf.drain(..line_start);
        out
    }

    /// The spec's last event ID: the most recent valid `id` field seen, kept across events.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time from the most recent valid `retry` field, if any.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseMessage>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"id" if !value.contains('\0') => {
                self.last_event_id = value.clone().into_owned();
                self.id = Some(value.into_owned());
            }
            // Only ASCII digits count; anything else (or an overflow) is ignored.
            b"retry" if !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseMessage>) {
        let id = self.id.take();
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseMessage {
            id,
            event: (!event.is_empty()).then_some(event),
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(b: &Bytes) -> &str {
        std::str::from_utf8(b).expect("utf-8")
    }

    fn msg(id: Option<&str>, event: Option<&str>, data: &str) -> SseMessage {
        SseMessage {
            id: id.map(str::to_owned),
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn parse_all(stream: &[u8]) -> Vec<SseMessage> {
        SseParser::new().push(stream)
    }

    fn parse_bytewise(stream: &[u8]) -> Vec<SseMessage> {
        let mut p = SseParser::new();
        stream
            .iter()
            .flat_map(|b| p.push(std::slice::from_ref(b)))
            .collect()
    }

    #[test]
    fn encode_event_fields() {
        assert_eq!(
            s(&encode_event(Some("1"), Some("message"), "hello")),
            "id: 1\nevent: message\ndata: hello\n\n"
        );
        assert_eq!(s(&encode_event(None, None, "")), "data: \n\n");
        assert_eq!(s(&encode_event(None, None, "x")), "data: x\n\n");
        assert_eq!(s(&encode_event(Some(""), None, "x")), "id: \ndata: x\n\n");
        assert_eq!(
            s(&encode_event(None, Some("e"), "x")),
            "event: e\ndata: x\n\n"
        );
    }

    #[test]
    fn encode_event_lines() {
        assert_eq!(
            s(&encode_event(None, None, "a\r\nb\nc\rd")),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(s(&encode_event(None, None, "a\n")), "data: a\ndata: \n\n");
        assert_eq!(s(&encode_event(None, None, "\r")), "data: \ndata: \n\n");
        assert_eq!(
            s(&encode_event(None, None, "\n\r\n\r")),
            "data: \ndata: \ndata: \ndata: \n\n"
        );
        assert_eq!(
            s(&encode_event(None, None, " lead: 한국어 😀")),
            "data:  lead: 한국어 😀\n\n"
        );
    }

    #[test]
    fn encode_event_sanitises_id_and_event() {
        assert_eq!(
            s(&encode_event(Some("1\r\n2\u{0}3"), Some("a\nb\rc"), "x")),
            "id: 123\nevent: abc\ndata: x\n\n"
        );
        assert_eq!(s(&encode_event(None, Some(""), "x")), "data: x\n\n");
        assert_eq!(s(&encode_event(None, Some("\r\n"), "x")), "data: x\n\n");
        assert_eq!(s(&encode_event(Some("\n"), None, "x")), "id: \ndata: x\n\n");
    }

    #[test]
    fn comments_and_retry() {
        assert_eq!(s(&encode_comment("hi")), ": hi\n\n");
        assert_eq!(s(&encode_comment("")), ": \n\n");
        assert_eq!(s(&encode_comment("a\nb\r\nc")), ": a\n: b\n: c\n\n");
        assert_eq!(s(&encode_retry(3000)), "retry: 3000\n\n");
        assert_eq!(s(&encode_retry(0)), "retry: 0\n\n");
        let mut p = SseParser::new();
        let mut stream = encode_comment("ping\nx").to_vec();
        stream.extend_from_slice(&encode_retry(1500));
        assert_eq!(p.push(&stream), vec![]);
        assert_eq!(p.retry(), Some(1500));
    }

    #[test]
    fn parser_whatwg_examples() {
        assert_eq!(
            parse_all(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            vec![msg(None, None, "YHOO\n+2\n10")]
        );
        let mut p = SseParser::new();
        let got = p.push(
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
        );
        assert_eq!(
            got,
            vec![
                msg(Some("1"), None, "first event"),
                msg(Some(""), None, "second event"),
                msg(None, None, " third event"),
            ]
        );
        assert_eq!(p.last_event_id(), "");
        assert_eq!(
            parse_all(b"data\n\ndata\ndata\n\ndata:"),
            vec![msg(None, None, ""), msg(None, None, "\n")]
        );
        assert_eq!(
            parse_all(b"data:test\n\ndata: test\n\n"),
            vec![msg(None, None, "test"), msg(None, None, "test")]
        );
    }

    #[test]
    fn parser_line_endings() {
        let expected = vec![msg(Some("7"), Some("chat"), "a\nb"), msg(None, None, "c")];
        for stream in [
            &b"id: 7\nevent: chat\ndata: a\ndata: b\n\ndata: c\n\n"[..],
            b"id: 7\r\nevent: chat\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
            b"id: 7\revent: chat\rdata: a\rdata: b\r\rdata: c\r\r",
            b"id: 7\r\nevent: chat\rdata: a\ndata: b\r\n\ndata: c\r\r\n",
        ] {
            assert_eq!(parse_all(stream), expected, "{stream:?}");
            assert_eq!(parse_bytewise(stream), expected, "{stream:?}");
        }
    }

    #[test]
    fn parser_crlf_split_across_chunks() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: a\r"), vec![]);
        assert_eq!(p.push(b""), vec![]);
        assert_eq!(p.push(b"\n\r"), vec![msg(None, None, "a")]);
        assert_eq!(p.push(b"\ndata: b\r"), vec![]);
        assert_eq!(p.push(b"\r"), vec![msg(None, None, "b")]);
    }

    #[test]
    fn parser_bom() {
        assert_eq!(
            parse_all(b"\xEF\xBB\xBFdata: x\n\n"),
            vec![msg(None, None, "x")]
        );
        assert_eq!(
            parse_bytewise(b"\xEF\xBB\xBFdata: x\n\n"),
            vec![msg(None, None, "x")]
        );
        // Only one leading BOM is skipped; a second one makes the field name unknown.
        assert_eq!(
            parse_all(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n"),
            vec![msg(None, None, "y")]
        );
        // A stream that merely starts like a BOM is not eaten.
        assert_eq!(
            parse_bytewise(b"\xEFdata: x\n\ndata: y\n\n"),
            vec![msg(None, None, "y")]
        );
        assert_eq!(parse_all(b"\n"), vec![]);
        let mut p = SseParser::new();
        assert_eq!(p.push(b"\xEF\xBB"), vec![]);
        assert_eq!(p.push(b"\xBF"), vec![]);
        assert_eq!(p.push(b"data: z\n\n"), vec![msg(None, None, "z")]);
    }

    #[test]
    fn parser_fields() {
        let mut p = SseParser::new();
        // No data: nothing is dispatched, but the id is remembered and the type is reset.
        assert_eq!(p.push(b"id: 5\nevent: x\n\n"), vec![]);
        assert_eq!(p.last_event_id(), "5");
        assert_eq!(p.push(b"data: y\n\n"), vec![msg(None, None, "y")]);
        assert_eq!(p.last_event_id(), "5");
        // Ids with NUL are ignored; unknown fields are ignored; the last id/event win.
        assert_eq!(
            p.push(b"id: 1\0\nfoo: bar\nevent: a\nevent: b\nid: 2\nid: 3\ndata: q\n\n"),
            vec![msg(Some("3"), Some("b"), "q")]
        );
        assert_eq!(p.push(b"id: 4\0\ndata: r\n\n"), vec![msg(None, None, "r")]);
        assert_eq!(p.last_event_id(), "3");
        // Only one leading space is stripped; a field without a colon has an empty value.
        assert_eq!(
            p.push(b"data:   x\ndata\n\n"),
            vec![msg(None, None, "  x\n")]
        );
        // An empty event field means the default type.
        assert_eq!(p.push(b"event:\ndata: s\n\n"), vec![msg(None, None, "s")]);
        // Field names are case sensitive.
        assert_eq!(p.push(b"Data: t\n\n"), vec![]);
        // retry: only ASCII digits count.
        assert_eq!(
            p.push(b"retry: 10\n\nretry: 1x\n\nretry: -1\n\nretry:\n\n"),
            vec![]
        );
        assert_eq!(p.retry(), Some(10));
        assert_eq!(p.push(b"retry: 99999999999999999999999\n\n"), vec![]);
        assert_eq!(p.retry(), Some(10));
        // A colon inside the value is kept.
        assert_eq!(p.push(b"data: a:b: c\n\n"), vec![msg(None, None, "a:b: c")]);
        // Invalid UTF-8 becomes U+FFFD; a multi-byte char split across chunks survives.
        assert_eq!(p.push(b"data: \xff\n\n"), vec![msg(None, None, "\u{fffd}")]);
        assert_eq!(p.push(b"data: \xED\x95"), vec![]);
        assert_eq!(p.push(b"\x9C\n\n"), vec![msg(None, None, "한")]);
    }

    #[test]
    fn parser_discards_unterminated_event() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: a\n"), vec![]);
        assert_eq!(p.push(b"data: b"), vec![]);
        assert_eq!(p.push(b"\n\n"), vec![msg(None, None, "a\nb")]);
    }

    /// What the parser must give back for an event encoded from these inputs.
    fn expected(id: &Option<String>, event: &Option<String>, data: &str) -> SseMessage {
        let event = event
            .as_deref()
            .map(|e| e.replace(['\r', '\n'], ""))
            .filter(|e| !e.is_empty());
        SseMessage {
            id: id.as_deref().map(|i| i.replace(['\r', '\n', '\0'], "")),
            event,
            data: data.replace("\r\n", "\n").replace('\r', "\n"),
        }
    }

    fn tricky() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[\r\n\0: a\u{feff}\u{2028}\u{ac00}\u{1F600}]{0,16}",
            "(data|id|event|retry)?:? ?[a-z\r\n]{0,6}",
        ]
    }

    type Event = (Option<String>, Option<String>, String);

    fn event() -> impl Strategy<Value = Event> {
        (
            proptest::option::of(tricky()),
            proptest::option::of(tricky()),
            tricky(),
        )
    }

    proptest! {
        #[test]
        fn round_trip_in_random_chunks(
            events in proptest::collection::vec((event(), proptest::option::of(tricky()), proptest::option::of(any::<u64>())), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let mut stream = Vec::new();
            let mut want = Vec::new();
            let mut last_retry = None;
            for ((id, ev, data), comment, retry) in &events {
                if let Some(c) = comment {
                    stream.extend_from_slice(&encode_comment(c));
                }
                if let Some(ms) = retry {
                    stream.extend_from_slice(&encode_retry(*ms));
                    last_retry = Some(*ms);
                }
                stream.extend_from_slice(&encode_event(id.as_deref(), ev.as_deref(), data));
                want.push(expected(id, ev, data));
            }
            let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            positions.sort_unstable();
            positions.dedup();
            let mut parser = SseParser::new();
            let mut got = Vec::new();
            let mut prev = 0;
            for p in positions.into_iter().chain(std::iter::once(stream.len())) {
                got.extend(parser.push(&stream[prev..p]));
                prev = p;
            }
            prop_assert_eq!(got, want);
            prop_assert_eq!(parser.retry(), last_retry);
        }

        #[test]
        fn parser_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..32), 0..8)) {
            let mut p = SseParser::new();
            for c in &chunks {
                let _ = p.push(c);
            }
        }

        #[test]
        fn chunking_does_not_change_the_result(stream in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), Just(b'd'), Just(b'a'), Just(b't'), Just(0xEF), Just(0xBB), Just(0xBF), any::<u8>()], 0..64)) {
            prop_assert_eq!(parse_all(&stream), parse_bytewise(&stream));
        }
    }
}
