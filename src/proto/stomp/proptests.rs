//! Property tests: encode → decode is the identity (up to the auto-added `content-length`),
//! however the bytes are split, and arbitrary input never panics the decoder.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

/// Characters that exercise escaping, plus anything else.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just(':'),
        Just('\n'),
        Just('\r'),
        Just('\\'),
        Just('c'),
        Just('n'),
        Just('r'),
        any::<char>(),
    ]
}

/// Header text the decoder accepts: escaping-relevant characters, no control characters.
fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        nasty_char().prop_filter("no controls", |c| !c.is_control()),
        min..max,
    )
    .prop_map(String::from_iter)
}

/// Any control character: C0, DEL and C1.
fn control_char() -> impl Strategy<Value = char> {
    prop_oneof![
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('\0')),
        Just('\u{7f}'),
        (0x80u32..0xa0).prop_map(|c| char::from_u32(c).unwrap_or('\0')),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(Command::ALL.to_vec())
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let headers = prop::collection::vec((text(1, 10), text(0, 12)), 0..8);
    let body = prop::collection::vec(any::<u8>(), 0..300);
    (command(), headers, body).prop_map(|(command, headers, body)| {
        let headers = headers
            .into_iter()
            .filter(|(n, _)| n != "content-length")
            .map(|(n, v)| {
                if command.raw_headers() {
                    // Raw frames cannot carry colons in names.
                    let n: String = n.chars().filter(|c| *c != ':').collect();
                    (if n.is_empty() { "h".to_string() } else { n }, v)
                } else {
                    (n, v)
                }
            })
            .collect();
        Frame {
            command,
            headers,
            body: Bytes::from(body),
        }
    })
}

/// What decoding `encode(frame)` yields: the frame plus any `content-length` the encoder added.
fn expected_after_round_trip(frame: &Frame) -> Frame {
    let mut f = frame.clone();
    if !f.body.is_empty() && f.header("content-length").is_none() {
        f.headers
            .push(("content-length".to_string(), f.body.len().to_string()));
    }
    f
}

/// Feeds `stream` in chunks of the given sizes (cycled), decoding after each chunk.
fn decode_chunked(stream: &[u8], sizes: &[usize]) -> Result<Vec<Item>, DecodeError> {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = decoder.decode(&mut buf)? {
            items.push(item);
        }
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(items)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_is_identity(frame in arb_frame()) {
        let mut buf = BytesMut::new();
        encode(&frame, &mut buf);
        let item = Decoder::default().decode(&mut buf);
        prop_assert_eq!(item, Ok(Some(Item::Frame(expected_after_round_trip(&frame)))));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn round_trip_survives_any_chunking(
        frames in prop::collection::vec((arb_frame(), 0usize..3, any::<bool>()), 1..5),
        sizes in prop::collection::vec(1usize..64, 1..20),
    ) {
        let mut stream = BytesMut::new();
        let mut expected = Vec::new();
        for (frame, beats, crlf) in &frames {
            for _ in 0..*beats {
                stream.extend_from_slice(if *crlf { b"\r\n" } else { heartbeat() });
                expected.push(Item::HeartBeat);
            }
            encode(frame, &mut stream);
            expected.push(Item::Frame(expected_after_round_trip(frame)));
        }
        prop_assert_eq!(decode_chunked(&stream, &sizes), Ok(expected));
    }

    #[test]
    fn explicit_content_length_with_nul_bodies(
        body in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..200),
        sizes in prop::collection::vec(1usize..16, 1..8),
    ) {
        let frame = Frame::new(Command::Send)
            .with_header("content-length", body.len().to_string())
            .with_header("destination", "/q")
            .body(body);
        let stream = encode_to_bytes(&frame);
        prop_assert_eq!(decode_chunked(&stream, &sizes), Ok(vec![Item::Frame(frame)]));
    }

    #[test]
    fn template_equals_encode(
        destination in text(0, 20),
        message_id in text(0, 20),
        content_type in text(0, 20),
        subscription in text(0, 20),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let body = Bytes::from(body);
        let template = MessageTemplate::new(&destination, &message_id, &content_type, body.clone());
        let frame = Frame::new(Command::Message)
            .with_header("subscription", subscription.as_str())
            .with_header("destination", destination.as_str())
            .with_header("message-id", message_id.as_str())
            .with_header("content-type", content_type.as_str())
            .with_header("content-length", body.len().to_string())
            .body(body);
        let rendered = template.render(&subscription);
        prop_assert_eq!(&rendered, &encode_to_bytes(&frame));
        let mut buf = BytesMut::from(&rendered[..]);
        prop_assert_eq!(Decoder::default().decode(&mut buf), Ok(Some(Item::Frame(frame))));
    }

    #[test]
    fn control_characters_in_any_header_are_refused(
        command in command(),
        name in text(1, 10),
        value in text(0, 12),
        control in control_char(),
        at in any::<prop::sample::Index>(),
        in_name in any::<bool>(),
    ) {
        // Raw (CONNECT) frames cannot carry a line break at all: it would end the line.
        prop_assume!(!(command.raw_headers() && (control == '\n' || control == '\r')));
        let name: String = if command.raw_headers() { name.replace(':', "") } else { name };
        prop_assume!(!name.is_empty() && name != "content-length");
        let insert = |s: &str| {
            let mut chars: Vec<char> = s.chars().collect();
            chars.insert(at.index(chars.len() + 1), control);
            String::from_iter(chars)
        };
        let (name, value) = if in_name { (insert(&name), value) } else { (name.clone(), insert(&value)) };
        let frame = Frame::new(command).with_header(name.as_str(), value.as_str());
        let mut buf = BytesMut::new();
        encode(&frame, &mut buf);
        match Decoder::default().decode(&mut buf) {
            Err(DecodeError::ControlCharacter { code, .. }) => prop_assert_eq!(code, u32::from(control)),
            // A raw NUL in a CONNECT header ends the frame early: still refused, differently.
            Err(_) if command.raw_headers() && control == '\0' => {}
            other => prop_assert!(false, "accepted {:?}: {:?}", frame, other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        prefix in prop::sample::select(vec![&b""[..], b"SEND\n", b"CONNECT\n", b"SEND\ncontent-length:3\n\n"]),
        bytes in prop::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), Just(b':'), Just(b'\\'), any::<u8>()],
            0..400,
        ),
        sizes in prop::collection::vec(1usize..32, 1..8),
        max_frame in 1usize..200,
        max_header in 1usize..100,
        max_headers in 0usize..5,
    ) {
        let limits = Limits { max_frame_bytes: max_frame, max_header_bytes: max_header, max_headers };
        let mut decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut stream = prefix.to_vec();
        stream.extend_from_slice(&bytes);
        let mut rest = &stream[..];
        let mut sizes = sizes.iter().cycle();
        'feed: while !rest.is_empty() {
            let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(Item::Frame(f))) => {
                        // Whatever is accepted respects the limits.
                        prop_assert!(f.headers.len() <= max_headers);
                        prop_assert!(f.body.len() < max_frame);
                    }
                    Ok(Some(Item::HeartBeat)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        prop_assert!(!e.to_string().is_empty());
                        break 'feed;
                    }
                }
            }
            // While waiting for more input, never holds a frame that can no longer fit.
            prop_assert!(buf.len() < max_frame.max(2));
        }
    }
}
