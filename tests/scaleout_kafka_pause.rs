//! The Kafka broker paused (SIGSTOP) for 10 s while messages are created on two instances:
//! the outbox keeps every event, and after SIGCONT all are delivered — STOMP messages and SSE
//! notifications — in order per channel. Own cluster: the pause stops every instance's events.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/stomp.rs"]
mod stomp;

use cluster::Cluster;
use common::*;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use stomp::{Kind, StompClient};

const PER_CHANNEL: usize = 10;

#[tokio::test]
async fn a_paused_broker_delays_but_loses_nothing() {
    let c = Cluster::shared().await;
    let mut reader = Api::new(&c.at(0).base);
    let reader_user = reader.register("pausereader").await;
    let mut writer = Api::new(&c.at(1).base);
    let writer_user = writer.register("pausewriter").await;
    let members = [
        reader_user["id"].as_str().unwrap(),
        writer_user["id"].as_str().unwrap(),
    ];
    let ch1 = writer.create_private_channel(&members).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let third = Api::new(&c.at(2).base).signup("pausethird").await;
    let ch2 = writer
        .create_private_channel(&[members[0], members[1], third["id"].as_str().unwrap()])
        .await;
    let ch2 = ch2["id"].as_str().unwrap().to_string();

    let r = reader
        .req(Method::GET, "/api/sse")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut sse = SseReader::new(r);
    let mut stomp =
        StompClient::connected(&c.at(0).base, Kind::Raw, reader.token.as_deref().unwrap()).await;
    for (i, ch) in [&ch1, &ch2].into_iter().enumerate() {
        let dest = format!("/sub/channels.{ch}.messages");
        let r = stomp.subscribe_confirmed(&format!("s{i}"), &dest).await;
        assert_eq!(r.command, discodeit::proto::stomp::Command::Receipt);
    }
    // Before the pause the path works end to end.
    writer.send_text(&ch1, "before-pause").await;
    assert_eq!(stomp.next_message_json().await.1["content"], "before-pause");
    let m = sse
        .next_named("notifications", Duration::from_secs(10))
        .await
        .expect("live event");
    assert!(m.data.contains("before-pause"));

    c.tansu.signal("STOP");
    let paused_at = Instant::now();
    let on_c = {
        let mut w = writer.clone();
        w.base = c.at(2).base.clone();
        w
    };
    // Ten seconds of traffic, alternating instances B and C and the two channels.
    for i in 0..PER_CHANNEL {
        let api = if i % 2 == 0 { &writer } else { &on_c };
        api.send_text(&ch1, &format!("ch1-{i}")).await;
        api.send_text(&ch2, &format!("ch2-{i}")).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
    }
    // Nothing got through while the broker was stopped: the events wait in the outbox.
    let leaked = sse
        .next_named("notifications", Duration::from_millis(200))
        .await;
    assert!(
        leaked.is_none(),
        "an event arrived while Kafka was paused: {leaked:?}"
    );
    assert!(paused_at.elapsed() >= Duration::from_secs(9));
    c.tansu.signal("CONT");
    let resumed = Instant::now();

    let mut per_channel: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..2 * PER_CHANNEL {
        let m = sse
            .next_named("notifications", Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("lost events; got {per_channel:?}"));
        let v: Value = serde_json::from_str(&m.data).unwrap();
        let target = v["targetId"].as_str().unwrap().to_string();
        per_channel
            .entry(target)
            .or_default()
            .push(v["content"].as_str().unwrap().to_string());
    }
    eprintln!(
        "all {} delayed events delivered {:.1}s after SIGCONT",
        2 * PER_CHANNEL,
        resumed.elapsed().as_secs_f64()
    );
    let want = |p: &str| {
        (0..PER_CHANNEL)
            .map(|i| format!("{p}-{i}"))
            .collect::<Vec<_>>()
    };
    // The STOMP subscriber got every message, each channel's in creation order.
    let mut stomp_per_channel: HashMap<String, Vec<String>> = HashMap::new();
    for _ in 0..2 * PER_CHANNEL {
        let (_, dto) = stomp.next_message_json().await;
        stomp_per_channel
            .entry(dto["channelId"].as_str().unwrap().to_string())
            .or_default()
            .push(dto["content"].as_str().unwrap().to_string());
    }
    assert_eq!(stomp_per_channel[&ch1], want("ch1"));
    assert_eq!(stomp_per_channel[&ch2], want("ch2"));
    // Notifications are written by a task after each message: across the two channels they
    // interleave freely; within one channel they follow the messages.
    assert_eq!(per_channel[&ch1], want("ch1"));
    assert_eq!(per_channel[&ch2], want("ch2"));
}
