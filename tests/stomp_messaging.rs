//! STOMP over raw WebSocket at `/ws/websocket`: CONNECT with a token, SUBSCRIBE to a
//! channel, messages created by STOMP `SEND /pub/messages` and by `POST /api/messages`
//! (with an attachment) reach every subscriber as the `MessageDto`, edits and deletions reach
//! `/sub/channels.{id}.message-events` (and never `.messages`), and the plain broker.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::{TestServer, ADMIN_PASSWORD};
use discodeit::proto::stomp::{Command, Frame};
use reqwest::Method;
use serde_json::{json, Value};
use stomp::{End, Kind, StompClient, WAIT};

/// A server, the admin, two users and a public channel the admin created.
struct Fixture {
    server: TestServer,
    alice: common::Api,
    bob: common::Api,
    channel: String,
}

async fn fixture() -> Fixture {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.login(common::ADMIN, ADMIN_PASSWORD).await;
    let channel = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = server.client();
    alice.register("alice").await;
    let mut bob = server.client();
    bob.register("bob").await;
    Fixture {
        server,
        alice,
        bob,
        channel,
    }
}

fn dest(channel: &str) -> String {
    format!("/sub/channels.{channel}.messages")
}

#[tokio::test]
async fn connect_negotiates_version_heartbeat_and_subprotocol() {
    let f = fixture().await;
    let token = f.alice.token.clone().unwrap();
    let mut c = StompClient::open(&f.server.base, Kind::Raw).await;
    assert_eq!(c.protocol.as_deref(), Some("v12.stomp"));
    let connected = c
        .connect_with(&[
            ("Authorization", &format!("Bearer {token}")),
            ("heart-beat", "4000,4000"),
        ])
        .await;
    assert_eq!(connected.command, Command::Connected);
    assert_eq!(connected.header("version"), Some("1.2"));
    assert_eq!(connected.header("user-name"), Some("alice"));
    assert!(connected
        .header("server")
        .unwrap()
        .starts_with("discodeit/"));
    // The server offers 10 s both ways; STOMP takes the larger interval on each side.
    assert_eq!(connected.header("heart-beat"), Some("10000,10000"));
    // A client heart-beat between frames is accepted; DISCONNECT gets its RECEIPT.
    c.send_raw(b"\n").await;
    let receipt = c.disconnect().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(receipt.header("receipt-id"), Some("bye"));
    assert!(matches!(c.end(WAIT).await, End::Closed(_)));
}

#[tokio::test]
async fn connected_names_a_user_with_a_line_break_on_one_printable_line() {
    let server = TestServer::start().await;
    let mut eve = server.client();
    // The API takes any non-blank username; CONNECTED headers are sent unescaped.
    let name = "eve\nDEL\u{7f}";
    let r = eve
        .signup_raw(name, "eve@example.com", "p@ssw0rd1", None)
        .await;
    assert_eq!(r.status(), 201);
    eve.login(name, "p@ssw0rd1").await;
    let token = eve.token.clone().unwrap();
    let (mut c, connected) = StompClient::connect(&server.base, Kind::Raw, &token).await;
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    assert_eq!(connected.header("user-name"), Some("eve\\nDEL\\u{7f}"));
    assert_eq!(c.disconnect().await.command, Command::Receipt);
}

#[tokio::test]
async fn send_pub_messages_reaches_every_subscriber() {
    let f = fixture().await;
    let alice_id = f.alice.user_id();
    let mut a =
        StompClient::connected(&f.server.base, Kind::Raw, f.alice.token.as_deref().unwrap()).await;
    let mut b =
        StompClient::connected(&f.server.base, Kind::Raw, f.bob.token.as_deref().unwrap()).await;
    assert_eq!(
        a.subscribe_confirmed("sub-0", &dest(&f.channel))
            .await
            .command,
        Command::Receipt
    );
    assert_eq!(
        b.subscribe_confirmed("sub-0", &dest(&f.channel))
            .await
            .command,
        Command::Receipt
    );

    let receipt = a
        .send_json(
            "/pub/messages",
            &json!({"content": "hello over stomp", "channelId": f.channel, "authorId": alice_id}),
            "send-1",
        )
        .await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    assert_eq!(receipt.header("receipt-id"), Some("send-1"));

    for client in [&mut a, &mut b] {
        let (frame, dto) = client.next_message_json().await;
        assert_eq!(frame.header("destination"), Some(dest(&f.channel).as_str()));
        assert_eq!(frame.header("subscription"), Some("sub-0"));
        assert_eq!(frame.header("content-type"), Some("application/json"));
        assert_eq!(frame.header("message-id"), dto["id"].as_str());
        assert_eq!(
            frame
                .header("content-length")
                .map(|l| l.parse::<usize>().unwrap()),
            Some(frame.body.len())
        );
        assert_eq!(dto["content"], "hello over stomp");
        assert_eq!(dto["channelId"], f.channel.as_str());
        assert_eq!(dto["author"]["id"], alice_id.as_str());
        assert_eq!(dto["author"]["username"], "alice");
        assert_eq!(dto["attachments"], json!([]));
        assert!(dto["createdAt"].as_str().unwrap().ends_with('Z'));
    }

    // The message is stored like one posted over HTTP.
    let page: Value = f
        .bob
        .get(&format!("/api/messages?channelId={}", f.channel))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["content"][0]["content"], "hello over stomp");
}

#[tokio::test]
async fn http_message_with_attachment_reaches_subscribers_in_order() {
    let f = fixture().await;
    let mut a =
        StompClient::connected(&f.server.base, Kind::Raw, f.alice.token.as_deref().unwrap()).await;
    // Any subscription id works; each subscriber sees its own.
    assert_eq!(
        a.subscribe_confirmed("my-sub", &dest(&f.channel))
            .await
            .command,
        Command::Receipt
    );

    let r = f
        .bob
        .post_message(
            &f.channel,
            "see attached",
            vec![("notes.txt", "text/plain", b"file body".to_vec())],
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    for i in 0..5 {
        f.bob.send_text(&f.channel, &format!("n{i}")).await;
    }

    let (frame, dto) = a.next_message_json().await;
    assert_eq!(frame.header("subscription"), Some("my-sub"));
    assert_eq!(dto["id"], created["id"]);
    assert_eq!(dto["content"], "see attached");
    assert_eq!(dto["author"]["username"], "bob");
    assert_eq!(dto["attachments"][0]["fileName"], "notes.txt");
    assert_eq!(dto["attachments"][0]["contentType"], "text/plain");
    assert_eq!(dto["attachments"][0]["size"], 9);
    // Commit order is delivery order.
    for i in 0..5 {
        assert_eq!(a.next_message_json().await.1["content"], format!("n{i}"));
    }
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_other_channels_stay_separate() {
    let f = fixture().await;
    let mut admin = f.server.client();
    admin.login(common::ADMIN, ADMIN_PASSWORD).await;
    let other = admin.create_public_channel("random").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut a =
        StompClient::connected(&f.server.base, Kind::Raw, f.alice.token.as_deref().unwrap()).await;
    a.subscribe_confirmed("s1", &dest(&f.channel)).await;
    a.subscribe_confirmed("s2", &dest(&other)).await;

    f.bob.send_text(&other, "to random").await;
    let (frame, dto) = a.next_message_json().await;
    assert_eq!(frame.header("subscription"), Some("s2"));
    assert_eq!(dto["content"], "to random");

    a.send(
        &Frame::new(Command::Unsubscribe)
            .with_header("id", "s2")
            .with_header("receipt", "u"),
    )
    .await;
    assert_eq!(a.next_frame(WAIT).await.unwrap().command, Command::Receipt);
    f.bob.send_text(&other, "not for alice").await;
    f.bob.send_text(&f.channel, "to general").await;
    let (frame, dto) = a.next_message_json().await;
    assert_eq!(frame.header("subscription"), Some("s1"));
    assert_eq!(dto["content"], "to general");
}

#[tokio::test]
async fn plain_broker_destinations_relay_sends() {
    let f = fixture().await;
    let mut a =
        StompClient::connected(&f.server.base, Kind::Raw, f.alice.token.as_deref().unwrap()).await;
    let mut b =
        StompClient::connected(&f.server.base, Kind::Raw, f.bob.token.as_deref().unwrap()).await;
    assert_eq!(
        b.subscribe_confirmed("t", "/sub/typing").await.command,
        Command::Receipt
    );
    a.send(
        &Frame::new(Command::Send)
            .with_header("destination", "/sub/typing")
            .with_header("receipt", "r")
            .body(&b"alice is typing"[..]),
    )
    .await;
    assert_eq!(a.next_frame(WAIT).await.unwrap().command, Command::Receipt);
    let m = b.next_frame(WAIT).await.unwrap();
    assert_eq!(m.command, Command::Message);
    assert_eq!(m.header("destination"), Some("/sub/typing"));
    assert_eq!(m.header("subscription"), Some("t"));
    assert_eq!(&m.body[..], b"alice is typing");
}

#[tokio::test]
async fn one_user_many_connections_each_get_the_message() {
    let f = fixture().await;
    let token = f.alice.token.clone().unwrap();
    let mut tabs = Vec::new();
    for _ in 0..3 {
        let mut c = StompClient::connected(&f.server.base, Kind::Raw, &token).await;
        c.subscribe_confirmed("sub-0", &dest(&f.channel)).await;
        tabs.push(c);
    }
    f.bob.send_text(&f.channel, "to every tab").await;
    for c in &mut tabs {
        assert_eq!(c.next_message_json().await.1["content"], "to every tab");
    }
}

fn events_dest(channel: &str) -> String {
    format!("/sub/channels.{channel}.message-events")
}

#[tokio::test]
async fn edits_and_deletions_go_to_message_events_only() {
    let f = fixture().await;
    let mut a =
        StompClient::connected(&f.server.base, Kind::Raw, f.alice.token.as_deref().unwrap()).await;
    a.subscribe_confirmed("new", &dest(&f.channel)).await;
    a.subscribe_confirmed("ev", &events_dest(&f.channel)).await;

    let created = f.bob.send_text(&f.channel, "first draft").await;
    let id = created["id"].as_str().unwrap();
    let (frame, dto) = a.next_message_json().await;
    assert_eq!(frame.header("subscription"), Some("new"));
    assert_eq!(dto["id"], id);

    let r = f
        .bob
        .send_json(
            Method::PATCH,
            &format!("/api/messages/{id}"),
            &json!({"newContent": "final text"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    let (frame, event) = a.next_message_json().await;
    assert_eq!(frame.header("subscription"), Some("ev"));
    assert_eq!(
        frame.header("destination"),
        Some(events_dest(&f.channel).as_str())
    );
    assert_eq!(frame.header("content-type"), Some("application/json"));
    assert_eq!(event, json!({"type": "updated", "message": edited}));
    assert_eq!(event["message"]["content"], "final text");

    // Not the author: refused, nothing broadcast.
    let r = f
        .alice
        .send_json(
            Method::PATCH,
            &format!("/api/messages/{id}"),
            &json!({"newContent": "hijacked"}),
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        f.alice
            .delete(&format!("/api/messages/{id}"))
            .await
            .status(),
        403
    );

    assert_eq!(
        f.bob.delete(&format!("/api/messages/{id}")).await.status(),
        204
    );
    let (frame, event) = a.next_message_json().await;
    assert_eq!(frame.header("subscription"), Some("ev"));
    assert_eq!(
        event,
        json!({"type": "deleted", "messageId": id, "channelId": f.channel})
    );

    // The next frame is the next new message: nothing else went to either destination.
    f.bob.send_text(&f.channel, "barrier").await;
    let (frame, dto) = a.next_message_json().await;
    assert_eq!(frame.header("subscription"), Some("new"));
    assert_eq!(dto["content"], "barrier");
}

#[tokio::test]
async fn message_events_of_a_private_channel_are_for_its_members_only() {
    let f = fixture().await;
    let carol = f.server.client().signup("carol").await;
    let members = [f.bob.user_id(), carol["id"].as_str().unwrap().to_string()];
    let private = f
        .bob
        .create_private_channel(&[&members[0], &members[1]])
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Alice is no member: refused with an ERROR naming the destination, then closed.
    let mut a =
        StompClient::connected(&f.server.base, Kind::Raw, f.alice.token.as_deref().unwrap()).await;
    a.subscribe("ev", &events_dest(&private)).await;
    let error = a.expect_error_and_close(&events_dest(&private)).await;
    assert_eq!(error.command, Command::Error);

    let mut b =
        StompClient::connected(&f.server.base, Kind::Raw, f.bob.token.as_deref().unwrap()).await;
    assert_eq!(
        b.subscribe_confirmed("ev", &events_dest(&private))
            .await
            .command,
        Command::Receipt
    );
    let m = f.bob.send_text(&private, "members only").await;
    let id = m["id"].as_str().unwrap();
    assert_eq!(
        f.bob.delete(&format!("/api/messages/{id}")).await.status(),
        204
    );
    let (_, event) = b.next_message_json().await;
    assert_eq!(event["type"], "deleted");
    assert_eq!(event["messageId"], id);
}
