//! SSE: the encoder against the WHATWG parser, the parser on arbitrary bytes in an arbitrary
//! split, and the server's `Last-Event-ID` reading. Properties: what the server encodes reads
//! back as exactly that event (line ends normalised, forbidden characters dropped); the split
//! never changes what the parser dispatches.
#![no_main]

use discodeit::net::sse::{replay_from, ReplayFrom};
use discodeit::proto::sse::{encode_comment, encode_event, SseMessage, SseParser};
use discodeit_fuzz::chunks;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fn parse(parts: &[&[u8]]) -> (Vec<SseMessage>, String, Option<u64>) {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for part in parts {
        out.extend(p.push(part));
    }
    (out, p.last_event_id().to_string(), p.retry())
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    // The parser on arbitrary bytes.
    assert_eq!(parse(&[input]), parse(&chunks(seed, input)));

    // The encoder: id, event and data taken from the input, separated by 0x01.
    let text = String::from_utf8_lossy(input);
    let mut fields = text.splitn(3, '\u{1}');
    let (id, event, data) = (fields.next(), fields.next(), fields.next().unwrap_or(""));
    let wire = encode_event(id, event, data);
    let comment = encode_comment(&text);
    let mut stream = comment.to_vec();
    stream.extend_from_slice(&wire);
    let (events, last_id, _) = parse(&chunks(seed, &stream));
    let [got] = events.as_slice() else {
        panic!("one event expected from {stream:?}, got {events:?}");
    };
    let want_data = data.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(got.data, want_data);
    let want_event = event
        .map(|e| e.replace(['\r', '\n'], ""))
        .filter(|e| !e.is_empty());
    assert_eq!(got.event, want_event);
    let want_id = id.map(|i| i.replace(['\r', '\n', '\0'], ""));
    assert_eq!(got.id, want_id);
    assert_eq!(last_id, want_id.unwrap_or_default());

    // Last-Event-ID as a reconnecting client sends it.
    let horizon = Uuid::from_u128(u128::from(seed) << 120);
    match replay_from(Some(&text), horizon) {
        ReplayFrom::After(id) => assert!(id >= horizon),
        ReplayFrom::Nothing => assert!(text.trim().is_empty()),
        ReplayFrom::Reset => {}
    }
});
