//! A subscriber that stops reading is dropped once its queue passes the byte or the age limit,
//! and is told why (close code 1013 and a reason); the other subscribers of the same channel
//! keep receiving every message, in commit order.

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
async fn slow_subscriber_over_the_byte_limit_is_dropped_while_others_get_everything() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_QUEUE_MAX_BYTES", "131072"),
        ("DISCODEIT_SOCKET_SEND_BUFFER", "16384"),
    ])
    .await;
    storm(&server, "slow_bytes", "more than 131072 bytes queued").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_over_the_age_limit_is_dropped_while_others_get_everything() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_QUEUE_MAX_AGE_MS", "3000"),
        ("DISCODEIT_SOCKET_SEND_BUFFER", "16384"),
    ])
    .await;
    // Everything fits the default byte limit; the age limit ends it (on a later push, or
    // the hub's sweep of stuck queues once the sender is done).
    storm(&server, "slow_age", "waited more than 3000 ms").await;
}

/// 100 healthy subscribers and one that never reads; the SENDs go in four bursts, each
/// pipelined (all in flight at once) and each smaller than the queue's byte limit; a burst
/// goes once the healthy subscribers have read the one before (a burst that alone exceeds
/// the limit would rightly drop every subscriber it reaches faster than they can read). The
/// slow one must be closed with 1013 and a reason containing `reason`.
async fn storm(server: &TestServer, metric_reason: &str, reason: &str) {
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

    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..FAST {
        let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
        assert_eq!(
            c.subscribe_confirmed("sub-0", &destination).await.command,
            Command::Receipt
        );
        let read = read.clone();
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(MESSAGES);
            while got.len() < MESSAGES {
                let Some(f) = c.next_frame(Duration::from_secs(60)).await else {
                    break;
                };
                assert_eq!(f.command, Command::Message, "{f:?}");
                let dto: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
                got.push(dto["content"].as_str().unwrap()[..8].to_string());
                read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            got
        }));
    }

    // One sender; the last SEND of each burst asks for a receipt.
    let mut sender = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let padding = "x".repeat(1000);
    let (bursts, per_burst) = (4, MESSAGES / 4);
    for b in 0..bursts {
        let before = FAST * b * per_burst;
        common::eventually(60, || async {
            (read.load(std::sync::atomic::Ordering::Relaxed) >= before).then_some(())
        })
        .await;
        let mut batch = Vec::new();
        for i in b * per_burst..(b + 1) * per_burst {
            let body =
                serde_json::json!({"content": format!("m{i:07}{padding}"), "channelId": channel});
            let mut frame = Frame::new(Command::Send)
                .with_header("destination", "/pub/messages")
                .body(serde_json::to_vec(&body).unwrap());
            if i + 1 == (b + 1) * per_burst {
                frame = frame.with_header("receipt", format!("r{b}"));
            }
            batch.extend_from_slice(&discodeit::proto::stomp::encode_to_bytes(&frame));
        }
        sender.send_raw(&batch).await;
        let receipt = sender
            .next_frame(Duration::from_secs(120))
            .await
            .expect("receipt");
        assert_eq!(
            receipt.header("receipt-id"),
            Some(format!("r{b}").as_str()),
            "{receipt:?}"
        );
    }

    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("m{i:07}")).collect();
    for r in readers {
        assert_eq!(
            r.await.unwrap(),
            expected,
            "a fast subscriber missed or reordered messages"
        );
    }

    // The server closes the slow one (a later push or the sweep finds it); only then does it
    // start reading, and must find an in-order prefix followed by the close.
    common::eventually(30, || async {
        let text = reqwest::get(format!("{}/actuator/prometheus", server.admin_base))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let samples = discodeit::telemetry::metrics::exposition::parse(&text);
        let closed = discodeit::telemetry::metrics::exposition::value(
            &samples,
            discodeit::telemetry::metrics::names::CONNECTIONS_CLOSED,
            &[("transport", "websocket"), ("reason", metric_reason)],
        )?;
        (closed >= 1.0).then_some(())
    })
    .await;
    let mut got = Vec::new();
    while let Some(f) = slow.next_frame(WAIT).await {
        assert_eq!(f.command, Command::Message);
        let dto: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
        got.push(dto["content"].as_str().unwrap()[..8].to_string());
    }
    assert!(got.len() < MESSAGES, "the slow subscriber was not dropped");
    assert_eq!(got, expected[..got.len()]);
    assert!(
        matches!(slow.end(WAIT).await, End::Closed(Some(1013))),
        "the slow subscriber was not told why: {:?}",
        slow.close_text
    );
    let text = slow.close_text.clone().unwrap_or_default();
    assert!(text.contains(reason), "close reason {text:?}");

    // Nothing else was disturbed: the server still serves new subscribers.
    let mut late = StompClient::connected(&server.base, Kind::Raw, &token).await;
    late.subscribe_confirmed("sub-0", &destination).await;
    admin.send_text(&channel, "after the storm").await;
    assert_eq!(
        late.next_message_json().await.1["content"],
        "after the storm"
    );
}
