//! Unit tests for the decoder, encoder and message template.

use bytes::{Bytes, BytesMut};

use super::*;

fn decode_all(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<Vec<Item>, DecodeError> {
    let mut items = Vec::new();
    while let Some(item) = decoder.decode(buf)? {
        items.push(item);
    }
    Ok(items)
}

fn decode_str(input: &[u8]) -> Result<Vec<Item>, DecodeError> {
    let mut buf = BytesMut::from(input);
    let items = decode_all(&mut Decoder::default(), &mut buf)?;
    Ok(items)
}

fn decode_one(input: &[u8]) -> Result<Frame, DecodeError> {
    let items = decode_str(input)?;
    match items.as_slice() {
        [Item::Frame(f)] => Ok(f.clone()),
        other => panic!("expected one frame, got {other:?}"),
    }
}

/// Feeds `input` one byte at a time; returns the items and the first error.
fn feed_bytewise(limits: Limits, input: &[u8]) -> (Vec<Item>, Option<DecodeError>, usize) {
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for (fed, &b) in input.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e), fed + 1),
            }
        }
    }
    (items, None, input.len())
}

fn frame(item: &Item) -> &Frame {
    match item {
        Item::Frame(f) => f,
        Item::HeartBeat => panic!("expected a frame, got a heart-beat"),
    }
}

fn limits(max_frame_bytes: usize, max_header_bytes: usize, max_headers: usize) -> Limits {
    Limits {
        max_frame_bytes,
        max_header_bytes,
        max_headers,
    }
}

// ---------------------------------------------------------------- decoding basics

#[test]
fn default_limits() {
    assert_eq!(Limits::default(), limits(65536, 8192, 50));
    assert_eq!(Decoder::default().limits(), &Limits::default());
}

#[test]
fn decodes_a_simple_frame_and_consumes_it() {
    let mut buf = BytesMut::from(&b"SEND\ndestination:/topic/a\n\nhello\0"[..]);
    let mut decoder = Decoder::default();
    let item = decoder.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        item,
        Item::Frame(
            Frame::new(Command::Send)
                .with_header("destination", "/topic/a")
                .body(&b"hello"[..])
        )
    );
    assert!(buf.is_empty());
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

#[test]
fn partial_input_byte_by_byte() {
    let input = b"SEND\ndestination:/a\ncontent-length:3\n\na\0b\0";
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    for (i, &b) in input.iter().enumerate() {
        buf.extend_from_slice(&[b]);
        let result = decoder.decode(&mut buf).unwrap();
        if i + 1 < input.len() {
            assert_eq!(result, None, "after {} bytes", i + 1);
            assert_eq!(buf.len(), i + 1, "nothing consumed while incomplete");
        } else {
            let f = Frame::new(Command::Send)
                .with_header("destination", "/a")
                .with_header("content-length", "3")
                .body(&b"a\0b"[..]);
            assert_eq!(result, Some(Item::Frame(f)));
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn partial_input_without_content_length_byte_by_byte() {
    let input = b"MESSAGE\r\nsubscription:1\r\n\r\nbody\0";
    let (items, err, _) = feed_bytewise(Limits::default(), input);
    assert_eq!(err, None);
    assert_eq!(items.len(), 1);
    assert_eq!(frame(&items[0]).body, Bytes::from_static(b"body"));
    assert_eq!(frame(&items[0]).header("subscription"), Some("1"));
}

#[test]
fn several_frames_and_heartbeats_in_one_buffer() {
    let input = b"\nSEND\ndestination:/a\n\none\0\n\r\nSUBSCRIBE\nid:0\n\n\0\nDISCONNECT\n\n\0";
    let items = decode_str(input).unwrap();
    assert_eq!(items.len(), 7);
    assert_eq!(items[0], Item::HeartBeat);
    assert_eq!(frame(&items[1]).command, Command::Send);
    assert_eq!(&frame(&items[1]).body[..], b"one");
    assert_eq!(items[2], Item::HeartBeat);
    assert_eq!(items[3], Item::HeartBeat);
    assert_eq!(frame(&items[4]).command, Command::Subscribe);
    assert_eq!(frame(&items[4]).header("id"), Some("0"));
    assert_eq!(items[5], Item::HeartBeat);
    assert_eq!(frame(&items[6]).command, Command::Disconnect);
}

#[test]
fn heartbeats_one_per_eol() {
    assert_eq!(decode_str(b"\n").unwrap(), vec![Item::HeartBeat]);
    assert_eq!(decode_str(b"\r\n").unwrap(), vec![Item::HeartBeat]);
    assert_eq!(decode_str(b"\n\n\r\n\n").unwrap(), vec![Item::HeartBeat; 4]);

    // A lone CR waits for its LF.
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"\r"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 1);
    buf.extend_from_slice(b"\n");
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Item::HeartBeat)));
    assert!(buf.is_empty());

    // A CR followed by anything else is not a heart-beat nor a command.
    assert!(matches!(
        decode_str(b"\rX"),
        Err(DecodeError::UnknownCommand(_))
    ));
}

#[test]
fn crlf_line_endings() {
    let f = decode_one(b"SEND\r\ndestination:/a\r\nreceipt:77\r\n\r\nhi\0").unwrap();
    assert_eq!(f.command, Command::Send);
    assert_eq!(
        f.headers,
        vec![
            ("destination".to_string(), "/a".to_string()),
            ("receipt".to_string(), "77".to_string())
        ]
    );
    assert_eq!(&f.body[..], b"hi");
    // Mixed line ends are fine too.
    let f = decode_one(b"SEND\na:1\r\nb:2\n\r\n\0").unwrap();
    assert_eq!(f.header("a"), Some("1"));
    assert_eq!(f.header("b"), Some("2"));
}

#[test]
fn content_length_body_may_contain_nul() {
    let f = decode_one(b"SEND\ncontent-length:5\n\n\0a\0b\0\0").unwrap();
    assert_eq!(&f.body[..], b"\0a\0b\0");
    let f = decode_one(b"SEND\ncontent-length:0\n\n\0").unwrap();
    assert!(f.body.is_empty());
}

#[test]
fn body_without_content_length_runs_to_first_nul() {
    let mut buf = BytesMut::from(&b"SEND\n\nab\0cd\0"[..]);
    let mut decoder = Decoder::default();
    let f = frame(&decoder.decode(&mut buf).unwrap().unwrap()).clone();
    assert_eq!(&f.body[..], b"ab");
    // The rest ("cd\0") is not a valid frame.
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(DecodeError::UnknownCommand(_))
    ));
}

#[test]
fn frame_without_headers_or_body() {
    let f = decode_one(b"DISCONNECT\n\n\0").unwrap();
    assert_eq!(f, Frame::new(Command::Disconnect));
}

// ---------------------------------------------------------------- headers

#[test]
fn header_values_and_names_are_unescaped() {
    let f = decode_one(b"SEND\na\\cb:x\\cy\\\\z\nplain:v:w\n\n\0").unwrap();
    assert_eq!(f.header("a:b"), Some("x:y\\z"));
    // A raw colon after the first one belongs to the value.
    assert_eq!(f.header("plain"), Some("v:w"));
}

#[test]
fn control_characters_in_headers_are_errors() {
    let value = |name: &str, code: u32| DecodeError::ControlCharacter {
        header: name.into(),
        in_name: false,
        code,
    };
    // Raw NUL, raw CR inside a line, escaped line breaks, TAB, DEL and a C1 control.
    assert_eq!(
        decode_str(b"SEND\ndestination:/sub/a\0b\n\n\0"),
        Err(value("destination", 0))
    );
    assert_eq!(
        decode_str(b"SEND\ndestination:/sub/a\rb\n\n\0"),
        Err(value("destination", 0x0d))
    );
    assert_eq!(decode_str(b"SEND\nx:a\\nb\n\n\0"), Err(value("x", 0x0a)));
    assert_eq!(decode_str(b"SEND\nx:a\\r\n\n\0"), Err(value("x", 0x0d)));
    assert_eq!(decode_str(b"SEND\nx:a\tb\n\n\0"), Err(value("x", 0x09)));
    assert_eq!(decode_str(b"SEND\nx:\x7f\n\n\0"), Err(value("x", 0x7f)));
    assert_eq!(
        decode_str("SEND\nx:\u{85}\n\n\0".as_bytes()),
        Err(value("x", 0x85))
    );
    // In a name, and in the raw headers of CONNECT too.
    let e = decode_str(b"SEND\na\\nb:1\n\n\0").unwrap_err();
    assert_eq!(e, DecodeError::control_in_name("a\nb", '\n'));
    assert_eq!(
        decode_str(b"CONNECT\nlogin:a\0\n\n\0"),
        Err(value("login", 0))
    );
    // The message names the header and the character, ready for an ERROR frame.
    let e = decode_str(b"SEND\ndestination:/sub/\0\n\n\0").unwrap_err();
    assert!(e
        .to_string()
        .starts_with("header 'destination' contains the control character U+0000"));
    // The body may still carry anything.
    let f = decode_one(b"SEND\ncontent-length:3\n\n\0\n\t\0").unwrap();
    assert_eq!(&f.body[..], b"\0\n\t");
}

#[test]
fn invalid_escapes_are_errors() {
    for input in [
        &b"SEND\na:\\t\n\n\0"[..],
        b"SEND\na:x\\\n\n\0",
        b"SEND\na\\x:1\n\n\0",
        b"MESSAGE\na:\\C\n\n\0",
    ] {
        assert_eq!(decode_str(input), Err(DecodeError::InvalidHeaderEscape));
    }
}

#[test]
fn connect_and_connected_headers_are_raw() {
    let f = decode_one(b"CONNECT\nlogin:a\\cb\npasscode:x:y\\n\n\n\0").unwrap();
    assert_eq!(f.header("login"), Some("a\\cb"));
    assert_eq!(f.header("passcode"), Some("x:y\\n"));
    // Even invalid escapes are fine there.
    let f = decode_one(b"CONNECTED\nserver:x\\t\n\n\0").unwrap();
    assert_eq!(f.header("server"), Some("x\\t"));
    // STOMP (the 1.2 alias of CONNECT) is escaped.
    let f = decode_one(b"STOMP\nlogin:a\\cb\n\n\0").unwrap();
    assert_eq!(f.header("login"), Some("a:b"));
}

#[test]
fn repeated_header_first_occurrence_wins() {
    let f = decode_one(b"SEND\nfoo:1\nfoo:2\n\n\0").unwrap();
    assert_eq!(f.header("foo"), Some("1"));
    assert_eq!(f.headers.len(), 2, "all occurrences are kept");
    // Also for content-length.
    let f = decode_one(b"SEND\ncontent-length:2\ncontent-length:5\n\nab\0").unwrap();
    assert_eq!(&f.body[..], b"ab");
}

#[test]
fn header_line_without_colon_is_an_error() {
    assert_eq!(
        decode_str(b"SEND\nnocolon\n\n\0"),
        Err(DecodeError::InvalidHeaderLine)
    );
    assert_eq!(
        decode_str(b"SEND\n:emptyname\n\n\0"),
        Err(DecodeError::InvalidHeaderLine)
    );
    // Detected as soon as the line is complete.
    let (_, err, fed) = feed_bytewise(Limits::default(), b"SEND\nnocolon\nmore...");
    assert_eq!(err, Some(DecodeError::InvalidHeaderLine));
    assert_eq!(fed, b"SEND\nnocolon\n".len());
}

#[test]
fn empty_header_value_is_allowed() {
    let f = decode_one(b"SEND\nreceipt:\n\n\0").unwrap();
    assert_eq!(f.header("receipt"), Some(""));
}

#[test]
fn non_utf8_headers_are_errors() {
    assert_eq!(
        decode_str(b"SEND\na:\xff\xfe\n\n\0"),
        Err(DecodeError::InvalidUtf8)
    );
    assert_eq!(
        decode_str(b"CONNECT\n\xc3:x\n\n\0"),
        Err(DecodeError::InvalidUtf8)
    );
    // UTF-8 is fine, and the body is not checked.
    let f = decode_one(
        "SEND\nnäme:välue\n\n\u{7f}\u{1}"
            .as_bytes()
            .iter()
            .copied()
            .chain([0xff, 0])
            .collect::<Vec<_>>()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(f.header("näme"), Some("välue"));
}

#[test]
fn invalid_content_length() {
    for value in [
        "abc",
        "-1",
        "",
        " 5",
        "5 ",
        "+5",
        "0x10",
        "99999999999999999999999999",
    ] {
        let input = format!("SEND\ncontent-length:{value}\n\nxxxxx\0");
        assert_eq!(
            decode_str(input.as_bytes()),
            Err(DecodeError::InvalidContentLength),
            "{value:?}"
        );
    }
}

#[test]
fn missing_nul_after_content_length_body() {
    assert_eq!(
        decode_str(b"SEND\ncontent-length:2\n\nabc\0"),
        Err(DecodeError::MissingNul)
    );
    // Incomplete is not an error yet.
    assert_eq!(decode_str(b"SEND\ncontent-length:2\n\nab").unwrap(), vec![]);
}

// ---------------------------------------------------------------- commands and garbage

#[test]
fn unknown_command() {
    let err = decode_str(b"FOO\n\n\0").unwrap_err();
    assert_eq!(err, DecodeError::UnknownCommand("FOO".into()));
    assert_eq!(err.to_string(), "unknown command: FOO");
    // Commands are case-sensitive.
    assert!(matches!(
        decode_str(b"send\n\n\0"),
        Err(DecodeError::UnknownCommand(_))
    ));
    // A valid prefix followed by more is unknown.
    assert_eq!(
        decode_str(b"SENDX\n\n\0"),
        Err(DecodeError::UnknownCommand("SENDX".into()))
    );
}

#[test]
fn unknown_command_detected_before_line_end() {
    let (_, err, fed) = feed_bytewise(Limits::default(), b"SENT\n\n\0");
    assert_eq!(err, Some(DecodeError::UnknownCommand("SENT".into())));
    assert_eq!(fed, 4);
    // Every command can be typed one byte at a time without a false alarm.
    for c in [Command::Unsubscribe, Command::Connected, Command::Nack] {
        let input = format!("{}\r\n\r\n\0", c.as_str());
        let (items, err, _) = feed_bytewise(Limits::default(), input.as_bytes());
        assert_eq!(err, None);
        assert_eq!(frame(&items[0]).command, c);
    }
}

#[test]
fn unknown_command_display_is_truncated() {
    let mut input = vec![b'X'; 10_000];
    input.push(b'\n');
    let err = decode_str(&input).unwrap_err();
    assert!(err.to_string().len() < 64, "{err}");
}

#[test]
fn garbage_bytes_are_rejected_immediately() {
    for garbage in [
        &b"\x00\x01\x02\x03"[..],
        b"\xff\xfe\xfd",
        b"GET / HTTP/1.1\r\n",
        b"{\"json\":true}",
        b" SEND\n",
    ] {
        let (items, err, fed) = feed_bytewise(Limits::default(), garbage);
        assert!(items.is_empty());
        assert!(
            matches!(err, Some(DecodeError::UnknownCommand(_))),
            "{garbage:?}"
        );
        assert!(fed <= 4, "{garbage:?} took {fed} bytes");
    }
}

// ---------------------------------------------------------------- limits

fn frame_with_headers(n: usize) -> Vec<u8> {
    let mut s = String::from("SEND\n");
    for i in 0..n {
        s.push_str(&format!("h{i}:v\n"));
    }
    s.push_str("\n\0");
    s.into_bytes()
}

#[test]
fn too_many_headers() {
    let f = decode_one(&frame_with_headers(50)).unwrap();
    assert_eq!(f.headers.len(), 50);
    assert_eq!(
        decode_str(&frame_with_headers(51)),
        Err(DecodeError::TooManyHeaders { limit: 50 })
    );
    assert_eq!(
        DecodeError::TooManyHeaders { limit: 50 }.to_string(),
        "too many headers: limit is 50"
    );
}

#[test]
fn too_many_headers_detected_incrementally() {
    let l = limits(1 << 20, 1 << 20, 3);
    let input = b"SEND\na:1\nb:2\nc:3\nd:4\ne:5\n";
    let (_, err, fed) = feed_bytewise(l, input);
    assert_eq!(err, Some(DecodeError::TooManyHeaders { limit: 3 }));
    assert_eq!(fed, b"SEND\na:1\nb:2\nc:3\nd:4\n".len());
}

#[test]
fn header_section_limit_is_inclusive() {
    // Head = "SEND\n" + "a:" + value + "\n" + "\n".
    let head_len = |v: usize| 5 + 2 + v + 1 + 1;
    let l = limits(1 << 20, 64, 50);
    let ok = format!("SEND\na:{}\n\n\0", "x".repeat(64 - head_len(0)));
    assert_eq!(head_len(64 - head_len(0)), 64);
    let mut buf = BytesMut::from(ok.as_bytes());
    assert!(Decoder::new(l).decode(&mut buf).unwrap().is_some());

    let too_big = format!("SEND\na:{}\n\n\0", "x".repeat(65 - head_len(0)));
    let mut buf = BytesMut::from(too_big.as_bytes());
    assert_eq!(
        Decoder::new(l).decode(&mut buf),
        Err(DecodeError::HeadersTooLarge { limit: 64 })
    );
    // Same with CRLF line ends (they count).
    let crlf = format!("SEND\r\na:{}\r\n\r\n\0", "x".repeat(64 - head_len(0)));
    let mut buf = BytesMut::from(crlf.as_bytes());
    assert_eq!(
        Decoder::new(l).decode(&mut buf),
        Err(DecodeError::HeadersTooLarge { limit: 64 })
    );
}

#[test]
fn endless_header_is_stopped_at_the_limit() {
    let l = Limits::default();
    let mut decoder = Decoder::new(l);
    let mut buf = BytesMut::from(&b"SEND\nx-evil:"[..]);
    let chunk = [b'a'; 1000];
    let mut fed = buf.len();
    let err = loop {
        match decoder.decode(&mut buf) {
            Ok(None) => {}
            Ok(Some(item)) => panic!("unexpected {item:?}"),
            Err(e) => break e,
        }
        assert!(fed < 1_000_000, "never stopped");
        buf.extend_from_slice(&chunk);
        fed += chunk.len();
    };
    assert_eq!(err, DecodeError::HeadersTooLarge { limit: 8192 });
    assert!(
        fed >= 8192 && fed < 8192 + chunk.len(),
        "stopped after {fed} bytes"
    );

    // Endless stream of short header lines, byte by byte: stopped by a limit either way.
    let mut evil = b"SEND\n".to_vec();
    for _ in 0..2000 {
        evil.extend_from_slice(b"k:v\n");
    }
    let (_, err, _) = feed_bytewise(l, &evil);
    assert_eq!(err, Some(DecodeError::TooManyHeaders { limit: 50 }));
    let (_, err, fed) = feed_bytewise(limits(1 << 20, 100, 1000), &evil);
    assert_eq!(err, Some(DecodeError::HeadersTooLarge { limit: 100 }));
    assert_eq!(fed, 100);
}

#[test]
fn frame_limit_is_inclusive_without_content_length() {
    let l = limits(32, 32, 50);
    // "SEND\n\n" (6) + body + NUL.
    let ok = format!("SEND\n\n{}\0", "b".repeat(32 - 7));
    assert_eq!(ok.len(), 32);
    let mut buf = BytesMut::from(ok.as_bytes());
    assert!(Decoder::new(l).decode(&mut buf).unwrap().is_some());

    let too_big = format!("SEND\n\n{}\0", "b".repeat(32 - 6));
    let mut buf = BytesMut::from(too_big.as_bytes());
    assert_eq!(
        Decoder::new(l).decode(&mut buf),
        Err(DecodeError::FrameTooLarge { limit: 32 })
    );
}

#[test]
fn frame_limit_is_inclusive_with_content_length() {
    let l = limits(40, 40, 50);
    let head = "SEND\ncontent-length:NN\n\n";
    let body_len = 40 - head.len() - 1;
    let ok = format!(
        "SEND\ncontent-length:{body_len}\n\n{}\0",
        "b".repeat(body_len)
    );
    assert_eq!(ok.len(), 40);
    let mut buf = BytesMut::from(ok.as_bytes());
    assert!(Decoder::new(l).decode(&mut buf).unwrap().is_some());

    let big = format!(
        "SEND\ncontent-length:{}\n\n{}\0",
        body_len + 1,
        "b".repeat(body_len + 1)
    );
    let mut buf = BytesMut::from(big.as_bytes());
    assert_eq!(
        Decoder::new(l).decode(&mut buf),
        Err(DecodeError::FrameTooLarge { limit: 40 })
    );
}

#[test]
fn declared_content_length_over_limit_fails_before_the_body_arrives() {
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:1000000\n\n"[..]);
    assert_eq!(
        Decoder::default().decode(&mut buf),
        Err(DecodeError::FrameTooLarge { limit: 65536 })
    );
    let mut buf = BytesMut::from(format!("SEND\ncontent-length:{}\n\n", usize::MAX).as_bytes());
    assert_eq!(
        Decoder::default().decode(&mut buf),
        Err(DecodeError::FrameTooLarge { limit: 65536 })
    );
    assert_eq!(
        DecodeError::FrameTooLarge { limit: 65536 }.to_string(),
        "frame too large: limit is 65536 bytes"
    );
}

#[test]
fn endless_body_is_stopped_at_the_limit() {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\ndestination:/a\n\n"[..]);
    let chunk = [b'z'; 4096];
    let mut fed = buf.len();
    let err = loop {
        match decoder.decode(&mut buf) {
            Ok(None) => {}
            Ok(Some(item)) => panic!("unexpected {item:?}"),
            Err(e) => break e,
        }
        assert!(fed < 10_000_000, "never stopped");
        buf.extend_from_slice(&chunk);
        fed += chunk.len();
    };
    assert_eq!(err, DecodeError::FrameTooLarge { limit: 65536 });
    assert!(
        fed >= 65536 && fed < 65536 + chunk.len(),
        "stopped after {fed} bytes"
    );
}

#[test]
fn endless_body_byte_by_byte_is_linear() {
    // 64 KiB fed one byte at a time: must finish quickly (resumable scan, not O(n^2)) and
    // fail exactly when the frame can no longer fit.
    let mut input = b"SEND\n\n".to_vec();
    input.resize(200_000, b'q');
    let (_, err, fed) = feed_bytewise(Limits::default(), &input);
    assert_eq!(err, Some(DecodeError::FrameTooLarge { limit: 65536 }));
    assert_eq!(fed, 65536);
}

#[test]
fn frame_limit_also_bounds_the_header_section() {
    let l = limits(20, 1000, 50);
    let (_, err, fed) = feed_bytewise(l, b"SEND\naaaaaaaaaaaaaaaaaaaaaaaaaaaaa:b\n\n\0");
    assert_eq!(err, Some(DecodeError::FrameTooLarge { limit: 20 }));
    assert_eq!(fed, 20);
}

#[test]
fn decoder_survives_a_buffer_that_shrank() {
    // Contract violation (buffer replaced mid-frame) must not panic.
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&b"SEND\na:b\nc:d\n"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let mut other = BytesMut::from(&b"\n"[..]);
    assert_eq!(decoder.decode(&mut other), Ok(Some(Item::HeartBeat)));
    let mut buf = BytesMut::from(&b"SEND\n\nabcdef"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let mut other = BytesMut::from(&b"SEND"[..]);
    let _ = decoder.decode(&mut other);
    decoder.reset();
    let mut buf = BytesMut::from(&b"ACK\nid:1\n\n\0"[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_some());
}

// ---------------------------------------------------------------- encoding

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(frame, &mut out);
    out.to_vec()
}

#[test]
fn encodes_exact_bytes() {
    let f = Frame::new(Command::Receipt).with_header("receipt-id", "77");
    assert_eq!(encoded(&f), b"RECEIPT\nreceipt-id:77\n\n\0");
    assert_eq!(
        encode_to_bytes(&f),
        Bytes::from_static(b"RECEIPT\nreceipt-id:77\n\n\0")
    );
}

#[test]
fn encode_appends_to_existing_output() {
    let mut out = BytesMut::from(&b"prefix"[..]);
    encode(&Frame::new(Command::Disconnect), &mut out);
    assert_eq!(&out[..], b"prefixDISCONNECT\n\n\0");
}

#[test]
fn encode_adds_content_length_for_non_empty_bodies() {
    let f = Frame::new(Command::Message)
        .with_header("destination", "/a")
        .body(&b"a\0b"[..]);
    assert_eq!(
        encoded(&f),
        b"MESSAGE\ndestination:/a\ncontent-length:3\n\na\0b\0"
    );
    let empty = Frame::new(Command::Message).with_header("destination", "/a");
    assert_eq!(encoded(&empty), b"MESSAGE\ndestination:/a\n\n\0");
}

#[test]
fn encode_keeps_an_explicit_content_length() {
    let f = Frame::new(Command::Error)
        .with_header("content-length", "2")
        .with_header("message", "x")
        .body(&b"ab"[..]);
    assert_eq!(encoded(&f), b"ERROR\ncontent-length:2\nmessage:x\n\nab\0");
    let f = Frame::new(Command::Error).with_header("content-length", "0");
    assert_eq!(encoded(&f), b"ERROR\ncontent-length:0\n\n\0");
}

#[test]
fn encode_escapes_names_and_values() {
    let f = Frame::new(Command::Error).with_header("a:b\\", "line1\nline2\r:\\");
    assert_eq!(
        encoded(&f),
        b"ERROR\na\\cb\\\\:line1\\nline2\\r\\c\\\\\n\n\0"
    );
}

#[test]
fn encode_does_not_escape_connect_and_connected() {
    let f = Frame::new(Command::Connected)
        .with_header("version", "1.2")
        .with_header("server", "a\\b:c");
    assert_eq!(encoded(&f), b"CONNECTED\nversion:1.2\nserver:a\\b:c\n\n\0");
    let f = Frame::new(Command::Connect).with_header("passcode", "p:\\w");
    assert_eq!(encoded(&f), b"CONNECT\npasscode:p:\\w\n\n\0");
}

#[test]
fn heartbeat_is_a_single_lf() {
    assert_eq!(heartbeat(), b"\n");
    assert_eq!(decode_str(heartbeat()).unwrap(), vec![Item::HeartBeat]);
}

#[test]
fn escaping_round_trip() {
    let nasty = "a:b\\cde\\n\\\\::";
    for command in [
        Command::Send,
        Command::Message,
        Command::Error,
        Command::Stomp,
    ] {
        let f = Frame::new(command)
            .with_header(nasty, nasty)
            .with_header("x", "")
            .body(&b"\0\n\r\0"[..]);
        let bytes = encoded(&f);
        let decoded = decode_one(&bytes).unwrap();
        let expected = f.clone().with_header("content-length", "4");
        assert_eq!(decoded, expected);
    }
}

#[test]
fn printable_header_text_round_trips_through_the_strict_decoder() {
    assert!(matches!(
        printable("plain: text"),
        std::borrow::Cow::Borrowed(_)
    ));
    let text = "a\nb\u{7f}c\u{85}d\u{0}é";
    assert_eq!(printable(text), "a\\nb\\u{7f}c\\u{85}d\\u{0}é");
    for command in [Command::Error, Command::Connected] {
        let f = Frame::new(command).with_header("message", printable(text));
        let back = decode_one(&encoded(&f)).unwrap();
        assert_eq!(back.header("message"), Some(&*printable(text)));
    }
}

#[test]
fn error_frame_message_is_safe_to_encode() {
    let err = decode_str(b"BAD\nCOMMAND\n").unwrap_err();
    let f = Frame::new(Command::Error).with_header("message", err.to_string());
    let back = decode_one(&encoded(&f)).unwrap();
    assert_eq!(back.header("message"), Some("unknown command: BAD"));
}

// ---------------------------------------------------------------- message template

fn equivalent_message(
    subscription: &str,
    destination: &str,
    message_id: &str,
    content_type: &str,
    body: &Bytes,
) -> Frame {
    Frame::new(Command::Message)
        .with_header("subscription", subscription)
        .with_header("destination", destination)
        .with_header("message-id", message_id)
        .with_header("content-type", content_type)
        .with_header("content-length", body.len().to_string())
        .body(body.clone())
}

#[test]
fn template_matches_encode() {
    let body = Bytes::from_static(b"{\"content\":\"hi\\u0000\"}\0x");
    let t = MessageTemplate::new(
        "/sub/channels.42:messages",
        "msg-1",
        "application/json",
        body.clone(),
    );
    for sub in ["sub-0", "a:b\\c\nd\r", ""] {
        let rendered = t.render(sub);
        let expected = equivalent_message(
            sub,
            "/sub/channels.42:messages",
            "msg-1",
            "application/json",
            &body,
        );
        assert_eq!(rendered, encode_to_bytes(&expected));
        if sub.contains(char::is_control) {
            // Escaped on the way out, refused on the way in (see control_characters_…).
            assert!(matches!(
                decode_one(&rendered),
                Err(DecodeError::ControlCharacter { .. })
            ));
        } else {
            assert_eq!(decode_one(&rendered).unwrap(), expected);
        }
    }
}

#[test]
fn template_with_empty_body_still_has_content_length() {
    let t = MessageTemplate::new("/d", "m", "text/plain", Bytes::new());
    assert_eq!(
        t.render("7"),
        Bytes::from_static(
            b"MESSAGE\nsubscription:7\ndestination:/d\nmessage-id:m\ncontent-type:text/plain\ncontent-length:0\n\n\0"
        )
    );
}

#[test]
fn template_renders_independently_per_subscriber() {
    let t = MessageTemplate::new("/d", "m", "text/plain", Bytes::from_static(b"x"));
    let a = t.render("a");
    let b = t.render("b");
    assert_ne!(a, b);
    assert_eq!(decode_one(&a).unwrap().header("subscription"), Some("a"));
    assert_eq!(decode_one(&b).unwrap().header("subscription"), Some("b"));
}
