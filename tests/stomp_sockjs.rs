//! STOMP over every SockJS transport of `/ws` (websocket, xhr-streaming, xhr-polling,
//! eventsource), as sockjs-client uses them, plus `/ws`'s own SockJS settings.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::{TestServer, ADMIN_PASSWORD};
use discodeit::proto::stomp::{Command, Frame};
use serde_json::{json, Value};
use stomp::{End, Kind, StompClient, WAIT};

const TRANSPORTS: [Kind; 4] = [
    Kind::SockJsWebSocket,
    Kind::XhrStreaming,
    Kind::XhrPolling,
    Kind::EventSource,
];

#[tokio::test]
async fn every_transport_carries_stomp_both_ways() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.login(common::ADMIN, ADMIN_PASSWORD).await;
    let channel = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let destination = format!("/sub/channels.{channel}.messages");
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();

    // A raw WebSocket subscriber sees what every SockJS client sends.
    let mut watcher = StompClient::connected(&server.base, Kind::Raw, &token).await;
    watcher.subscribe_confirmed("w", &destination).await;

    for kind in TRANSPORTS {
        let mut c = StompClient::open(&server.base, kind).await;
        let connected = c
            .connect_with(&[
                ("Authorization", &format!("Bearer {token}")),
                ("heart-beat", "4000,4000"),
            ])
            .await;
        assert_eq!(
            connected.command,
            Command::Connected,
            "{kind:?}: {connected:?}"
        );
        assert_eq!(connected.header("user-name"), Some("alice"));
        assert_eq!(
            c.subscribe_confirmed("sub-0", &destination).await.command,
            Command::Receipt,
            "{kind:?}"
        );

        let content = format!("via {kind:?}");
        let receipt = c
            .send_json(
                "/pub/messages",
                &json!({"content": content, "channelId": channel}),
                "r",
            )
            .await;
        assert_eq!(receipt.command, Command::Receipt, "{kind:?}: {receipt:?}");
        let (frame, dto) = c.next_message_json().await;
        assert_eq!(frame.header("subscription"), Some("sub-0"));
        assert_eq!(dto["content"], content.as_str());
        assert_eq!(
            watcher.next_message_json().await.1["content"],
            content.as_str()
        );

        // Messages created over HTTP arrive too.
        admin
            .send_text(&channel, &format!("http to {kind:?}"))
            .await;
        assert_eq!(
            c.next_message_json().await.1["content"],
            format!("http to {kind:?}")
        );
        assert_eq!(
            watcher.next_message_json().await.1["content"],
            format!("http to {kind:?}")
        );

        assert_eq!(c.disconnect().await.command, Command::Receipt, "{kind:?}");
        assert!(
            matches!(c.end(WAIT).await, End::Closed(_)),
            "{kind:?} closes after DISCONNECT"
        );
    }
}

#[tokio::test]
async fn several_frames_in_one_sockjs_message_and_batched_replies() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();
    let mut c = StompClient::connected(&server.base, Kind::XhrPolling, &token).await;
    // Three frames in one xhr_send message: the session splits them.
    let mut bytes = Vec::new();
    for i in 0..3 {
        bytes.extend_from_slice(&discodeit::proto::stomp::encode_to_bytes(
            &Frame::new(Command::Subscribe)
                .with_header("id", format!("s{i}"))
                .with_header("destination", format!("/sub/t{i}"))
                .with_header("receipt", format!("r{i}")),
        ));
    }
    c.send_raw(&bytes).await;
    for i in 0..3 {
        let r = c.next_frame(WAIT).await.unwrap();
        assert_eq!(r.header("receipt-id"), Some(format!("r{i}").as_str()));
    }
}

#[tokio::test]
async fn refusals_close_the_sockjs_session() {
    let server = TestServer::start().await;
    for kind in TRANSPORTS {
        let mut c = StompClient::open(&server.base, kind).await;
        let reply = c.connect_with(&[("Authorization", "Bearer nope")]).await;
        assert_eq!(reply.command, Command::Error, "{kind:?}");
        assert!(reply.header("message").unwrap().starts_with("Unauthorized"));
        assert!(matches!(c.end(WAIT).await, End::Closed(_)), "{kind:?}");
    }
}

#[tokio::test]
async fn ws_endpoint_speaks_sockjs_like_spring() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let info = http
        .get(format!("{}/ws/info", server.base))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    let h = info.headers().clone();
    assert_eq!(h["content-type"], "application/json;charset=UTF-8");
    assert_eq!(
        h["cache-control"],
        "no-store, no-cache, no-transform, must-revalidate, max-age=0"
    );
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(h["access-control-allow-credentials"], "true");
    let body: Value = info.json().await.unwrap();
    assert_eq!(body["websocket"], true);
    assert_eq!(body["cookie_needed"], true);
    assert_eq!(body["origins"], json!(["*:*"]));
    assert!(body["entropy"].is_u64());

    // No CSRF on /ws: xhr_send without any token works.
    let session = format!("{}/ws/000/{}", server.base, uuid::Uuid::new_v4().simple());
    let open = http.post(format!("{session}/xhr")).send().await.unwrap();
    assert_eq!(open.text().await.unwrap(), "o\n");
    let sent = http
        .post(format!("{session}/xhr_send"))
        .body(r#"["\n"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 204);

    // JSONP is off at /ws, as in Spring.
    let jsonp = http
        .get(format!("{session}/jsonp?c=cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(jsonp.status(), 404);
    // Unknown sessions and paths.
    let unknown = http
        .post(format!("{}/ws/000/nope/xhr_send", server.base))
        .body(r#"["x"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let iframe = http
        .get(format!("{}/ws/iframe.html", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(iframe.status(), 200);
    let etag = iframe.headers()["etag"].to_str().unwrap().to_string();
    let cached = http
        .get(format!("{}/ws/iframe-1.6.1.html", server.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
}
