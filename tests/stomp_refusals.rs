//! Every STOMP refusal is an ERROR frame with a precise `message`, then the connection
//! closes, nothing is half-written, and the server keeps serving everyone else.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::{TestServer, ADMIN_PASSWORD};
use discodeit::proto::stomp::{Command, Frame};
use serde_json::{json, Value};
use std::time::Duration;
use stomp::{End, Kind, StompClient, WAIT};

fn dest(channel: &str) -> String {
    format!("/sub/channels.{channel}.messages")
}

/// The server still answers HTTP and accepts a valid STOMP session.
async fn assert_healthy(server: &TestServer, token: &str) {
    let r = reqwest::get(format!("{}/actuator/health", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut c = StompClient::connected(&server.base, Kind::Raw, token).await;
    assert_eq!(
        c.subscribe_confirmed("ok", "/sub/health").await.command,
        Command::Receipt
    );
}

async fn message_count(api: &common::Api, channel: &str) -> usize {
    let page: Value = api
        .get(&format!("/api/messages?channelId={channel}"))
        .await
        .json()
        .await
        .unwrap();
    page["content"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn connect_without_valid_credentials_is_refused() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();

    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "Unauthorized: missing Authorization header"),
        (
            vec![("Authorization", "Basic YTpi".into())],
            "Authorization header must be 'Bearer <access token>'",
        ),
        (
            vec![("Authorization", "Bearer not-a-jwt".into())],
            "Unauthorized",
        ),
        (
            vec![("Authorization", format!("Bearer {token}x"))],
            "Unauthorized",
        ),
        (
            vec![
                ("Authorization", format!("Bearer {token}")),
                ("accept-version", "0.9".into()),
            ],
            "unsupported STOMP version",
        ),
        (
            vec![
                ("Authorization", format!("Bearer {token}")),
                ("heart-beat", "soon".into()),
            ],
            "invalid heart-beat header",
        ),
    ];
    for (headers, needle) in cases {
        let mut c = StompClient::open(&server.base, Kind::Raw).await;
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = c.connect_with(&headers).await;
        assert_eq!(reply.command, Command::Error, "{needle}: {reply:?}");
        assert!(
            reply.header("message").unwrap().contains(needle),
            "{:?} should contain {needle:?}",
            reply.header("message")
        );
        assert_eq!(reply.header("content-type"), Some("text/plain"));
        assert!(
            matches!(c.end(WAIT).await, End::Closed(_)),
            "closed after {needle}"
        );
    }

    // Frames before CONNECT.
    let mut c = StompClient::open(&server.base, Kind::Raw).await;
    c.subscribe("s", "/sub/x").await;
    c.expect_error_and_close("Unauthorized: CONNECT expected before SUBSCRIBE")
        .await;

    assert_healthy(&server, &token).await;
}

#[tokio::test]
async fn subscribe_needs_access_to_the_channel() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    let alice_user = alice.register("alice").await;
    let mut bob = server.client();
    let bob_user = bob.register("bob").await;
    let mut carol = server.client();
    carol.register("carol").await;
    let members = [
        alice_user["id"].as_str().unwrap(),
        bob_user["id"].as_str().unwrap(),
    ];
    let private = alice.create_private_channel(&members).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let carol_token = carol.token.clone().unwrap();

    // A participant may subscribe.
    let mut b =
        StompClient::connected(&server.base, Kind::Raw, bob.token.as_deref().unwrap()).await;
    assert_eq!(
        b.subscribe_confirmed("sub-0", &dest(&private))
            .await
            .command,
        Command::Receipt
    );

    let missing = uuid::Uuid::new_v4().to_string();
    let cases = [
        (
            dest(&private),
            format!("Access denied to {}", dest(&private)),
        ),
        (
            dest(&missing),
            format!("Access denied to {}: channel not found", dest(&missing)),
        ),
        (
            "/sub/channels.nope.messages".to_string(),
            "not a channel id".to_string(),
        ),
        (
            "/topic/elsewhere".to_string(),
            "Unknown destination /topic/elsewhere".to_string(),
        ),
    ];
    for (destination, needle) in cases {
        let mut c = StompClient::connected(&server.base, Kind::Raw, &carol_token).await;
        let reply = c.subscribe_confirmed("sub-0", &destination).await;
        assert_eq!(reply.command, Command::Error, "{destination}");
        assert!(
            reply.header("message").unwrap().contains(&needle),
            "{:?} vs {needle}",
            reply.header("message")
        );
        // The refused frame's receipt is echoed so the client can match the error.
        assert_eq!(reply.header("receipt-id"), Some("r-sub-0"));
        assert!(matches!(c.end(WAIT).await, End::Closed(_)));
    }

    // The participant's subscription is untouched and still delivers.
    bob.send_text(&private, "members only").await;
    assert_eq!(b.next_message_json().await.1["content"], "members only");
    assert_healthy(&server, &carol_token).await;
}

#[tokio::test]
async fn refused_sends_write_nothing() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.login(common::ADMIN, ADMIN_PASSWORD).await;
    let public = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let admin_id = admin.user_id();
    let mut alice = server.client();
    let alice_user = alice.register("alice").await;
    let alice_id = alice_user["id"].as_str().unwrap().to_string();
    let mut bob = server.client();
    let bob_id = bob.register("bob").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let private = admin.create_private_channel(&[&admin_id, &bob_id]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = alice.token.clone().unwrap();

    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "/pub/messages",
            json!({"content": "forged", "channelId": public, "authorId": admin_id})
                .to_string()
                .into_bytes(),
            "SEND /pub/messages refused: 403".into(),
        ),
        (
            "/pub/messages",
            json!({"content": "sneaky", "channelId": private, "authorId": alice_id})
                .to_string()
                .into_bytes(),
            "SEND /pub/messages refused: 403".into(),
        ),
        (
            "/pub/messages",
            json!({"content": "   ", "channelId": public})
                .to_string()
                .into_bytes(),
            "SEND /pub/messages refused: 400 VALIDATION_ERROR".into(),
        ),
        (
            "/pub/messages",
            b"{not json".to_vec(),
            "SEND /pub/messages refused: malformed MessageCreateRequest JSON".into(),
        ),
        (
            // A derive would read an array as the struct's fields in order.
            "/pub/messages",
            format!(r#"["an array", "{public}"]"#).into_bytes(),
            "SEND /pub/messages refused: malformed MessageCreateRequest JSON".into(),
        ),
        (
            "/pub/messages",
            json!({"content": "where?", "channelId": uuid::Uuid::new_v4()})
                .to_string()
                .into_bytes(),
            "SEND /pub/messages refused: 404".into(),
        ),
        (
            // DEL and NEL are not escaped by JSON or STOMP: the ERROR's header must still be
            // one printable line (the client decodes it strictly), the body keeps the text.
            "/pub/messages",
            json!({"content": "x", "channelId": "\u{7f}\u{85}"})
                .to_string()
                .into_bytes(),
            "found `\\u{7f}`".into(),
        ),
        (
            "/pub/unknown",
            b"{}".to_vec(),
            "Unknown destination /pub/unknown".into(),
        ),
        (
            "/sub/channels.x.messages",
            b"{}".to_vec(),
            "channel destinations are written by the server only".into(),
        ),
        (
            "/queue/x",
            b"{}".to_vec(),
            "Unknown destination /queue/x".into(),
        ),
    ];
    for (destination, body, needle) in cases {
        let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
        c.send(
            &Frame::new(Command::Send)
                .with_header("destination", destination)
                .with_header("content-type", "application/json")
                .with_header("receipt", "s")
                .body(body),
        )
        .await;
        let error = c.expect_error_and_close(&needle).await;
        assert_eq!(error.header("receipt-id"), Some("s"));
    }
    assert_eq!(message_count(&admin, &public).await, 0);
    assert_eq!(message_count(&admin, &private).await, 0);

    // Omitting authorId means the caller.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let ok = c
        .send_json(
            "/pub/messages",
            &json!({"content": "mine", "channelId": public}),
            "ok",
        )
        .await;
    assert_eq!(ok.command, Command::Receipt, "{ok:?}");
    assert_eq!(message_count(&admin, &public).await, 1);
}

#[tokio::test]
async fn protocol_violations_and_limits_close_the_connection() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();

    // Oversize frame (default limit 64 KiB), in one message.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let mut big = b"SEND\ndestination:/sub/x\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 70 * 1024));
    big.push(0);
    c.send_raw(&big).await;
    c.expect_error_and_close("frame too large: limit is 65536 bytes")
        .await;

    // Oversize frame announced by content-length, body never sent.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    c.send_raw(b"SEND\ndestination:/sub/x\ncontent-length:999999\n\n")
        .await;
    c.expect_error_and_close("frame too large").await;

    // Garbage bytes, binary too.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    c.send_raw(b"\xff\xfe\x00garbage\x00").await;
    c.expect_error_and_close("unknown command").await;
    let mut c = StompClient::open(&server.base, Kind::Raw).await;
    c.send_raw(b"HELLO\n\n\0").await;
    c.expect_error_and_close("unknown command: HELLO").await;

    // Too many headers.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let mut frame = Frame::new(Command::Send).with_header("destination", "/sub/x");
    for i in 0..60 {
        frame = frame.with_header(format!("h{i}"), "v");
    }
    c.send(&frame).await;
    c.expect_error_and_close("too many headers: limit is 50")
        .await;

    // Too many subscriptions (1000 per connection), sent in one transport message.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let mut many = Vec::new();
    for i in 0..1001 {
        many.extend_from_slice(
            format!("SUBSCRIBE\nid:{i}\ndestination:/sub/s{i}\n\n\0").as_bytes(),
        );
    }
    c.send_raw(&many).await;
    c.expect_error_and_close("too many subscriptions: limit is 1000")
        .await;

    // A duplicate subscription id, and a second CONNECT.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    c.subscribe("dup", "/sub/a").await;
    c.subscribe("dup", "/sub/b").await;
    c.expect_error_and_close("subscription id 'dup' is already in use")
        .await;
    let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let again = c
        .connect_with(&[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(again.command, Command::Error);
    assert_eq!(again.header("message"), Some("already connected"));

    assert_healthy(&server, &token).await;
}

#[tokio::test]
async fn logout_closes_the_live_session_and_the_token_is_refused_after() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.login(common::ADMIN, ADMIN_PASSWORD).await;
    let channel = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();
    let mut bob = server.client();
    bob.register("bob").await;

    let mut a = StompClient::connected(&server.base, Kind::Raw, &token).await;
    a.subscribe_confirmed("sub-0", &dest(&channel)).await;
    let mut b =
        StompClient::connected(&server.base, Kind::Raw, bob.token.as_deref().unwrap()).await;
    b.subscribe_confirmed("sub-0", &dest(&channel)).await;

    let r = alice
        .req(reqwest::Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    a.expect_error_and_close("Session ended").await;

    let (mut again, reply) = StompClient::connect(&server.base, Kind::Raw, &token).await;
    assert_eq!(reply.command, Command::Error);
    assert_eq!(reply.header("message"), Some("Unauthorized: token revoked"));
    assert!(matches!(again.end(WAIT).await, End::Closed(_)));

    // Bob's session is unaffected.
    admin.send_text(&channel, "still here").await;
    assert_eq!(b.next_message_json().await.1["content"], "still here");
}

#[tokio::test]
async fn expired_token_is_accepted_only_while_its_login_session_is_active() {
    // The grace for expired tokens (one access-token lifetime by default) is raised so the
    // steps below cannot outlast it; tests/session_life.rs tests the bound itself.
    let server = TestServer::start_with(&[
        ("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", "1"),
        ("DISCODEIT_STOMP_EXPIRED_TOKEN_GRACE_SECONDS", "60"),
    ])
    .await;
    let mut alice = server.client();
    alice.register("alice").await;
    let first = alice.token.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // HTTP refuses the expired token ...
    let r = alice.get("/api/users").await;
    assert_eq!(r.status(), 401);
    // ... STOMP accepts it: the login session is still the user's current one.
    let mut live = StompClient::connected(&server.base, Kind::Raw, &first).await;
    assert_eq!(
        live.subscribe_confirmed("s", "/sub/x").await.command,
        Command::Receipt
    );

    // A new login replaces the session: the live connection is closed, the old token is dead.
    alice.login("alice", "p@ssw0rd1").await;
    live.expect_error_and_close("Session ended").await;
    let (_c, reply) = StompClient::connect(&server.base, Kind::Raw, &first).await;
    assert_eq!(reply.command, Command::Error);
    assert_eq!(reply.header("message"), Some("Unauthorized: token expired"));

    // The new token works.
    let fresh = alice.token.clone().unwrap();
    let mut c = StompClient::connected(&server.base, Kind::Raw, &fresh).await;
    assert_eq!(
        c.subscribe_confirmed("s", "/sub/x").await.command,
        Command::Receipt
    );
}
