//! A subscriber that stops reading is dropped once its bounded queue overflows; the other
//! subscribers of the same channel keep receiving every message, in commit order.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::{TestServer, ADMIN_PASSWORD};
use discodeit::proto::stomp::{Command, Frame};
use std::time::Duration;
use stomp::{End, Kind, StompClient, WAIT};

const FAST: usize = 100;
const MESSAGES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_dropped_while_others_get_everything_in_order() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_OUTBOUND_QUEUE", "64"),
        ("DISCODEIT_SOCKET_SEND_BUFFER", "16384"),
    ])
    .await;
    let mut admin = server.client();
    admin.login(common::ADMIN, ADMIN_PASSWORD).await;
    let channel = admin.create_public_channel("busy").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let destination = format!("/sub/channels.{channel}.messages");
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();

    // The slow one subscribes first and then never reads.
    let mut slow = StompClient::open_raw_small_buffer(&server.base, 4096).await;
    let reply = slow
        .connect_with(&[("Authorization", &format!("Bearer {token}"))])
        .await;
    assert_eq!(reply.command, Command::Connected);
    assert_eq!(
        slow.subscribe_confirmed("sub-0", &destination)
            .await
            .command,
        Command::Receipt
    );

    let mut readers = Vec::new();
    for _ in 0..FAST {
        let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
        assert_eq!(
            c.subscribe_confirmed("sub-0", &destination).await.command,
            Command::Receipt
        );
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(MESSAGES);
            while got.len() < MESSAGES {
                let Some(f) = c.next_frame(Duration::from_secs(60)).await else {
                    break;
                };
                assert_eq!(f.command, Command::Message, "{f:?}");
                let dto: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
                got.push(dto["content"].as_str().unwrap()[..8].to_string());
            }
            got
        }));
    }

    // One sender, every SEND in flight at once; only the last asks for a receipt.
    let mut sender = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let padding = "x".repeat(1000);
    let mut batch = Vec::new();
    for i in 0..MESSAGES {
        let body =
            serde_json::json!({"content": format!("m{i:07}{padding}"), "channelId": channel});
        let mut frame = Frame::new(Command::Send)
            .with_header("destination", "/pub/messages")
            .body(serde_json::to_vec(&body).unwrap());
        if i + 1 == MESSAGES {
            frame = frame.with_header("receipt", "last");
        }
        batch.extend_from_slice(&discodeit::proto::stomp::encode_to_bytes(&frame));
    }
    sender.send_raw(&batch).await;
    let receipt = sender
        .next_frame(Duration::from_secs(120))
        .await
        .expect("receipt");
    assert_eq!(receipt.header("receipt-id"), Some("last"), "{receipt:?}");

    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("m{i:07}")).collect();
    for r in readers {
        assert_eq!(
            r.await.unwrap(),
            expected,
            "a fast subscriber missed or reordered messages"
        );
    }

    // The slow one got an in-order prefix, then its connection was closed.
    let mut got = Vec::new();
    while let Some(f) = slow.next_frame(WAIT).await {
        assert_eq!(f.command, Command::Message);
        let dto: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
        got.push(dto["content"].as_str().unwrap()[..8].to_string());
    }
    assert!(got.len() < MESSAGES, "the slow subscriber was not dropped");
    assert_eq!(got, expected[..got.len()]);
    assert!(matches!(slow.end(WAIT).await, End::Closed(_)));

    // Nothing else was disturbed: the server still serves new subscribers.
    let mut late = StompClient::connected(&server.base, Kind::Raw, &token).await;
    late.subscribe_confirmed("sub-0", &destination).await;
    admin.send_text(&channel, "after the storm").await;
    assert_eq!(
        late.next_message_json().await.1["content"],
        "after the storm"
    );
}
