//! When the fan-out falls behind its backlog limit, the sources of events wait for it instead
//! of the backlog growing: broker SENDs (the session reads nothing more until it caught up)
//! and the message writer (no new batch). Over real connections, with a limit so small that
//! any queued event counts as behind: the waits happen (the server's counter says so), and
//! every subscriber still receives every message, in order.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::{TestServer, ADMIN_PASSWORD};
use discodeit::proto::stomp::{encode_to_bytes, Command, Frame};
use discodeit::telemetry::metrics::{exposition, names};
use std::time::Duration;
use stomp::{Kind, StompClient};

const SUBSCRIBERS: usize = 200;
const BROKER_SENDS: usize = 300;
const MESSAGES: usize = 60;

async fn fanout_waits(server: &TestServer) -> f64 {
    let text = reqwest::get(format!("{}/actuator/prometheus", server.admin_base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    exposition::value(&exposition::parse(&text), names::FANOUT_WAITS, &[]).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_wait_for_a_lagging_fanout_and_every_subscriber_gets_everything_in_order() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_FANOUT_MAX_BYTES", "1"),
        ("DISCODEIT_STOMP_BROKER_RATE", "100000"),
        ("DISCODEIT_MAX_STOMP_SESSIONS_PER_USER", "1000"),
    ])
    .await;
    let mut admin = server.client();
    admin.login(common::ADMIN, ADMIN_PASSWORD).await;
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();
    let channel = admin.create_public_channel("gated").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let messages = format!("/sub/channels.{channel}.messages");

    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut c = StompClient::connected(&server.base, Kind::Raw, &token).await;
        c.subscribe_confirmed("b", "/sub/gate").await;
        c.subscribe_confirmed("m", &messages).await;
        readers.push(tokio::spawn(async move {
            let (mut broker, mut stored) = (Vec::new(), Vec::new());
            while broker.len() < BROKER_SENDS || stored.len() < MESSAGES {
                let Some(f) = c.next_frame(Duration::from_secs(60)).await else {
                    break;
                };
                assert_eq!(f.command, Command::Message, "{f:?}");
                let body = String::from_utf8(f.body.to_vec()).unwrap();
                match f.header("subscription") {
                    Some("b") => broker.push(body),
                    _ => {
                        let dto: serde_json::Value = serde_json::from_str(&body).unwrap();
                        stored.push(dto["content"].as_str().unwrap().to_string());
                    }
                }
            }
            (broker, stored)
        }));
    }
    let before = fanout_waits(&server).await;

    // Two publishers, each writing all its SENDs at once; the last asks for a receipt.
    let mut broker_pub = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let mut bytes = Vec::new();
    for i in 0..BROKER_SENDS {
        let mut f = Frame::new(Command::Send)
            .with_header("destination", "/sub/gate")
            .body(format!("b{i:05}").into_bytes());
        if i + 1 == BROKER_SENDS {
            f = f.with_header("receipt", "last-b");
        }
        bytes.extend_from_slice(&encode_to_bytes(&f));
    }
    let mut message_pub = StompClient::connected(&server.base, Kind::Raw, &token).await;
    let mut stored_bytes = Vec::new();
    for i in 0..MESSAGES {
        let body = serde_json::json!({"content": format!("m{i:05}"), "channelId": channel});
        let mut f = Frame::new(Command::Send)
            .with_header("destination", "/pub/messages")
            .body(serde_json::to_vec(&body).unwrap());
        if i + 1 == MESSAGES {
            f = f.with_header("receipt", "last-m");
        }
        stored_bytes.extend_from_slice(&encode_to_bytes(&f));
    }
    tokio::join!(
        broker_pub.send_raw(&bytes),
        message_pub.send_raw(&stored_bytes)
    );
    for (c, id) in [(&mut broker_pub, "last-b"), (&mut message_pub, "last-m")] {
        let f = c
            .next_frame(Duration::from_secs(120))
            .await
            .expect("receipt");
        assert_eq!(f.command, Command::Receipt, "{f:?}");
        assert_eq!(f.header("receipt-id"), Some(id));
    }

    let broker: Vec<String> = (0..BROKER_SENDS).map(|i| format!("b{i:05}")).collect();
    let stored: Vec<String> = (0..MESSAGES).map(|i| format!("m{i:05}")).collect();
    for r in readers {
        let (got_b, got_m) = r.await.unwrap();
        assert_eq!(
            got_b, broker,
            "a subscriber missed or reordered broker messages"
        );
        assert_eq!(
            got_m, stored,
            "a subscriber missed or reordered stored messages"
        );
    }
    let waits = fanout_waits(&server).await - before;
    assert!(
        waits >= 1.0,
        "with a 1-byte backlog limit the publishers must have waited (waits: {waits})"
    );
}
