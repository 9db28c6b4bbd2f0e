//! SockJS client input: `xhr_send` bodies, `jsonp_send` bodies (form-encoded or raw), WebSocket
//! text messages, session paths. Property: any list of strings quoted by the server's own
//! escaper parses back to the same list.
#![no_main]

use discodeit::proto::sockjs::{
    parse_client_messages, parse_jsonp_send, parse_session_path, parse_ws_message, quote,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let _ = parse_client_messages(body);
    let content_type = match selector % 4 {
        0 => Some("application/x-www-form-urlencoded"),
        1 => Some("text/plain; charset=UTF-8"),
        2 => Some("Application/X-WWW-Form-Urlencoded ; charset=x"),
        _ => None,
    };
    let _ = parse_jsonp_send(body, content_type);
    let text = String::from_utf8_lossy(body);
    let _ = parse_ws_message(&text);
    if let Some((server, session, transport)) = parse_session_path(&text) {
        assert!(!server.contains('.') && !session.contains('.') && !transport.is_empty());
    }

    // Round trip through the server's escaper.
    let messages: Vec<&str> = text.split('\u{1}').collect();
    let mut array = String::from("[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        quote(m, &mut array);
    }
    array.push(']');
    let back = parse_client_messages(array.as_bytes())
        .unwrap_or_else(|e| panic!("own quoting refused ({e:?}): {array:?}"));
    assert_eq!(back, messages);
    let back = parse_ws_message(&array).expect("own quoting as a WebSocket message");
    assert_eq!(back, messages);
});
