//! A graceful drain under load: two instances behind the project's nginx config, SSE and STOMP
//! subscribers on both, a producer posting through nginx; one instance gets SIGTERM. Its
//! clients are closed with a reason, reconnect through nginx to the other and recover what
//! they missed; every committed message reaches every subscriber, no REST request gets a 5xx,
//! and the drained instance exits 0 within its drain limit.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/recovering.rs"]
mod recovering;
#[path = "common/stomp.rs"]
mod stomp;

use cluster::{Cluster, ResilientSse};
use common::*;
use recovering::stomp_reader;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const ROUNDS: usize = 30;

#[tokio::test]
async fn sigterm_drains_without_losing_a_message_or_failing_a_request() {
    let c = Cluster::start_with(2, true).await;
    let mut admin = Api::new(&c.nginx.base);
    admin.admin().await;
    let channel = admin.create_public_channel("drain-chat").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // SSE clients through nginx (round robin: spread over both instances).
    let (done_tx, done_rx) = watch::channel::<Option<Vec<String>>>(None);
    let mut sse_readers = Vec::new();
    for i in 0..4 {
        let mut api = Api::new(&c.nginx.base);
        api.register(&format!("drainsse{i}")).await;
        let mut sse = ResilientSse::new(api);
        assert!(sse
            .next_named("channels.refresh", Duration::from_millis(300))
            .await
            .is_none());
        let done = done_rx.clone();
        sse_readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                if let Some(all) = done.borrow().as_ref() {
                    if all.iter().all(|id| seen.contains(id)) {
                        break;
                    }
                }
                if Instant::now() > deadline {
                    break;
                }
                if let Some(m) = sse
                    .next_named("channels.refresh", Duration::from_millis(500))
                    .await
                {
                    let v: Value = serde_json::from_str(&m.data).unwrap();
                    seen.push(v["channelId"].as_str().unwrap().to_string());
                }
            }
            (seen, sse.reconnects)
        }));
    }
    // STOMP subscribers, two on each instance.
    let (msgs_tx, msgs_rx) = watch::channel::<Option<Vec<String>>>(None);
    let mut stomp_readers = Vec::new();
    for i in 0..4 {
        let mut api = Api::new(&c.at(i % 2).base);
        api.register(&format!("drainstomp{i}")).await;
        stomp_readers.push(tokio::spawn(stomp_reader(
            c.at(i % 2).base.clone(),
            c.nginx.base.clone(),
            api.token.clone().unwrap(),
            channel.clone(),
            msgs_rx.clone(),
        )));
    }

    // The producer: every request through nginx must succeed, also while A drains.
    let mut committed = Vec::new();
    let mut messages = Vec::new();
    let mut drained_at = None;
    for round in 0..ROUNDS {
        if round == ROUNDS / 3 {
            c.at(0).proc.signal("TERM");
            drained_at = Some(Instant::now());
        }
        let r = admin
            .post_json(
                "/api/channels/public",
                &json!({"name": format!("drain-{round}"), "description": "d"}),
            )
            .await;
        assert_eq!(r.status(), 201, "channel creation during the drain");
        let v: Value = r.json().await.unwrap();
        committed.push(v["id"].as_str().unwrap().to_string());
        let r = admin
            .post_message(&channel, &format!("m{round}"), vec![])
            .await;
        assert_eq!(r.status(), 201, "message during the drain");
        let v: Value = r.json().await.unwrap();
        messages.push(v["id"].as_str().unwrap().to_string());
        let r = admin
            .get(&format!("/api/messages?channelId={channel}&size=5"))
            .await;
        assert_eq!(r.status(), 200, "read during the drain");
    }
    let code = c.at(0).proc.exit_code(30).await;
    let drain_ms = drained_at.map(|t| t.elapsed().as_millis()).unwrap_or(0);
    assert_eq!(code, Some(0), "the drained instance did not exit 0");
    eprintln!("instance a drained and exited within {drain_ms} ms of SIGTERM");
    done_tx.send(Some(committed.clone())).unwrap();
    msgs_tx.send(Some(messages.clone())).unwrap();

    let mut sse_reconnects = 0;
    for r in sse_readers {
        let (seen, reconnects) = r.await.unwrap();
        sse_reconnects += reconnects;
        let set: HashSet<&String> = seen.iter().collect();
        let missing: Vec<&String> = committed.iter().filter(|id| !set.contains(id)).collect();
        assert!(missing.is_empty(), "an SSE client missed {missing:?}");
        assert_eq!(set.len(), seen.len(), "an event was delivered twice");
    }
    let mut stomp_reconnects = 0;
    for r in stomp_readers {
        let (seen, reconnects) = r.await.unwrap();
        stomp_reconnects += reconnects;
        let missing: Vec<&String> = messages.iter().filter(|id| !seen.contains(*id)).collect();
        assert!(missing.is_empty(), "a STOMP client missed {missing:?}");
    }
    assert!(
        sse_reconnects >= 1,
        "no SSE client was on the drained instance"
    );
    assert!(
        stomp_reconnects >= 2,
        "the drained instance's STOMP clients did not reconnect"
    );
    c.shutdown();
}
