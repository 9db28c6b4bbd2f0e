//! One instance SIGKILLed under load (its own cluster: the kill is not undone): SSE clients
//! behind nginx reconnect to the others with their last event id, STOMP clients reconnect
//! through nginx and refetch the message page, and none loses anything that was committed;
//! the outbox relay moves to a surviving instance.

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
use std::time::Duration;
use tokio::sync::watch;

const CLIENTS: usize = 6;
const CHANNELS: usize = 30;

#[tokio::test]
async fn killing_an_instance_loses_no_committed_event() {
    let c = Cluster::shared().await;
    // SSE clients through nginx (round robin: two land on each instance).
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut api = Api::new(&c.nginx.base);
        api.register(&format!("failover{i}")).await;
        let mut sse = ResilientSse::new(api);
        // Opens the stream (the connect event is not `channels.refresh`).
        assert!(sse
            .next_named("channels.refresh", Duration::from_millis(300))
            .await
            .is_none());
        clients.push(sse);
    }
    // Readers run during the whole test, and stop once they have seen every committed event.
    let (done_tx, done_rx) = tokio::sync::watch::channel::<Option<Vec<String>>>(None);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut sse| {
            let done = done_rx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                loop {
                    if let Some(all) = done.borrow().as_ref() {
                        if all.iter().all(|id| seen.contains(id)) {
                            break;
                        }
                    }
                    if std::time::Instant::now() > deadline {
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
            })
        })
        .collect();

    // STOMP subscribers, two on each instance, on a public channel the producer also posts to.
    let mut admin = Api::new(&c.nginx.base);
    admin.admin().await;
    let stomp_channel = admin.create_public_channel("failover-chat").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (msgs_tx, msgs_rx) = watch::channel::<Option<Vec<String>>>(None);
    let mut stomp_readers = Vec::new();
    for i in 0..6 {
        let mut api = Api::new(&c.at(i % 3).base);
        api.register(&format!("stompfail{i}")).await;
        stomp_readers.push(tokio::spawn(stomp_reader(
            c.at(i % 3).base.clone(),
            c.nginx.base.clone(),
            api.token.clone().unwrap(),
            stomp_channel.clone(),
            msgs_rx.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The producer: a channel manager creating public channels through nginx (each creation
    // commits its channels.refresh event in the same transaction). Midway, instance A (the
    // first started, so most likely the outbox relay) is killed.
    let mut committed = Vec::new();
    let mut messages = Vec::new();
    let mut attempts = 0;
    let mut killed_at = None;
    while committed.len() < CHANNELS {
        attempts += 1;
        assert!(attempts < CHANNELS * 3, "too many failed creations");
        if committed.len() == CHANNELS / 3 && killed_at.is_none() {
            c.at(0).proc.kill();
            killed_at = Some(std::time::Instant::now());
        }
        let r = admin
            .post_json(
                "/api/channels/public",
                &json!({"name": format!("failover-{attempts}"), "description": "d"}),
            )
            .await;
        // A request cut off by the kill is unknown, not committed: it is not counted.
        if r.status() == 201 {
            let v: Value = r.json().await.unwrap();
            committed.push(v["id"].as_str().unwrap().to_string());
        }
        let r = admin
            .post_message(&stomp_channel, &format!("m{attempts}"), vec![])
            .await;
        if r.status() == 201 {
            let v: Value = r.json().await.unwrap();
            messages.push(v["id"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!c.at(0).proc.alive());
    done_tx.send(Some(committed.clone())).unwrap();
    msgs_tx.send(Some(messages.clone())).unwrap();

    let mut total_reconnects = 0;
    for reader in readers {
        let (seen, reconnects) = reader.await.unwrap();
        total_reconnects += reconnects;
        let seen_set: HashSet<&String> = seen.iter().collect();
        let missing: Vec<&String> = committed
            .iter()
            .filter(|id| !seen_set.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "client missed {} committed events: {missing:?}",
            missing.len()
        );
        assert_eq!(seen_set.len(), seen.len(), "an event was delivered twice");
    }
    // The clients whose streams were on A came back through nginx.
    assert!(
        total_reconnects >= 1,
        "no client was on the killed instance"
    );
    let mut stomp_reconnects = 0;
    for reader in stomp_readers {
        let (seen, reconnects) = reader.await.unwrap();
        stomp_reconnects += reconnects;
        let missing: Vec<&String> = messages.iter().filter(|id| !seen.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "STOMP client lost committed messages: {missing:?}"
        );
    }
    assert!(
        stomp_reconnects >= 2,
        "the STOMP clients on A did not reconnect"
    );
    eprintln!(
        "A killed: {stomp_reconnects} STOMP reconnects, {} messages; {total_reconnects} SSE reconnects, {} creations cut off, all {CHANNELS} committed \
         events on all {CLIENTS} clients {:.1}s after the kill",
        messages.len(),
        attempts - CHANNELS,
        killed_at.map(|k| k.elapsed().as_secs_f64()).unwrap_or_default()
    );
}
