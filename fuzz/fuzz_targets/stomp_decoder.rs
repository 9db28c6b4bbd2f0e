//! The STOMP decoder on arbitrary bytes in an arbitrary split, and `Request::parse` on every
//! frame it yields. Properties: the split never changes what is decoded; every decoded frame
//! (other than CONNECT/CONNECTED, sent with raw headers) survives encode → decode.
#![no_main]

use bytes::BytesMut;
use discodeit::proto::stomp::{encode_to_bytes, Decoder, Frame, Item, Limits, Request};
use discodeit_fuzz::chunks;
use libfuzzer_sys::fuzz_target;

/// The items decoded from `parts` fed in order, and whether the stream ended in an error.
fn decode_all(limits: Limits, parts: &[&[u8]]) -> (Vec<Item>, bool) {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => return (items, true),
            }
        }
    }
    (items, false)
}

fn without_content_length(f: &Frame) -> Vec<(String, String)> {
    f.headers
        .iter()
        .filter(|(n, _)| n != "content-length")
        .cloned()
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [seed, frame_kb, header_lines, ref input @ ..] = *data else {
        return;
    };
    let limits = Limits {
        max_frame_bytes: 64 + usize::from(frame_kb) * 64,
        max_header_bytes: 32 + usize::from(frame_kb) * 16,
        max_headers: usize::from(header_lines % 64) + 1,
    };
    let whole = decode_all(limits, &[input]);
    let split = decode_all(limits, &chunks(seed, input));
    assert_eq!(whole, split, "the split changed what was decoded");

    for item in whole.0 {
        let Item::Frame(frame) = item else { continue };
        let _ = Request::parse(frame.clone());
        if frame.command.raw_headers() {
            continue;
        }
        let wire = encode_to_bytes(&frame);
        let big = Limits {
            max_frame_bytes: wire.len() + 1,
            max_header_bytes: wire.len() + 1,
            max_headers: frame.headers.len() + 2,
        };
        let (again, failed) = decode_all(big, &[&wire]);
        assert!(!failed, "re-encoded frame refused: {frame:?}");
        let [Item::Frame(back)] = again.as_slice() else {
            panic!("re-encoded frame decoded as {again:?}");
        };
        assert_eq!(back.command, frame.command);
        assert_eq!(back.body, frame.body);
        assert_eq!(without_content_length(back), without_content_length(&frame));
    }
});
