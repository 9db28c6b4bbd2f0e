//! Hixie-76 client frames (`proto::hixie76::Decoder`) in an arbitrary split, and the handshake
//! check on arbitrary headers. Property: the split never changes the frames or the error.
#![no_main]

use bytes::BytesMut;
use discodeit::proto::hixie76::{DecodeError, Decoder, Frame, Handshake};
use discodeit_fuzz::chunks;
use libfuzzer_sys::fuzz_target;

fn decode_all(max: usize, parts: &[&[u8]]) -> (Vec<Frame>, Option<DecodeError>) {
    let mut decoder = Decoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let [seed, limit, ref input @ ..] = *data else {
        return;
    };
    let max = 8 + usize::from(limit) * 4;
    let whole = decode_all(max, &[input]);
    let split = decode_all(max, &chunks(seed, input));
    assert_eq!(whole, split, "the split changed what was decoded");

    // The handshake: the input as `name: value` lines.
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("/");
    let headers: Vec<(&str, &[u8])> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim().as_bytes()))
        .collect();
    if let Ok(Some(h)) = Handshake::from_request("GET", target, seed % 2 == 0, headers) {
        let _ = h.response_head(h.requested_protocol());
        let _ = h.challenge_response(&[seed; 8]);
        let _ = h.location();
    }
});
