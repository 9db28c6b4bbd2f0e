//! RFC 6455 client frames (`proto::websocket::Decoder`) in an arbitrary split. Properties: the
//! split never changes the events or the error; the decoder never holds more than its limit.
#![no_main]

use bytes::BytesMut;
use discodeit::proto::websocket::{DecodeError, Decoder, Event};
use discodeit_fuzz::chunks;
use libfuzzer_sys::fuzz_target;

fn decode_all(max: usize, parts: &[&[u8]]) -> (Vec<Event>, Option<DecodeError>) {
    let mut decoder = Decoder::new(max);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => {
                    let _ = e.close_code();
                    return (events, Some(e));
                }
            }
            assert!(decoder.buffered() <= max, "buffered past the limit");
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let [seed, limit, ref input @ ..] = *data else {
        return;
    };
    let max = 16 + usize::from(limit) * 8;
    let whole = decode_all(max, &[input]);
    let split = decode_all(max, &chunks(seed, input));
    assert_eq!(whole, split, "the split changed what was decoded");
});
