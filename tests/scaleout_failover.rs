//! One instance SIGKILLed under load (its own cluster: the kill is not undone): SSE clients
//! behind nginx reconnect to the others with their last event id and lose nothing that was
//! committed, and the outbox relay moves to a surviving instance.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::{Cluster, ResilientSse};
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

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

    // The producer: a channel manager creating public channels through nginx (each creation
    // commits its channels.refresh event in the same transaction). Midway, instance A (the
    // first started, so most likely the outbox relay) is killed.
    let mut admin = Api::new(&c.nginx.base);
    admin.admin().await;
    let mut committed = Vec::new();
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!c.at(0).proc.alive());
    done_tx.send(Some(committed.clone())).unwrap();

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
    eprintln!(
        "A killed: {total_reconnects} SSE reconnects, {} creations cut off, all {CHANNELS} committed \
         events on all {CLIENTS} clients {:.1}s after the kill",
        attempts - CHANNELS,
        killed_at.map(|k| k.elapsed().as_secs_f64()).unwrap_or_default()
    );
}
