//! The write path's caches across instances (Kafka bus through the outbox, tansu broker, Redis
//! registry; two instances on one database): a change made on instance A is seen by instance
//! B's writer no later than B announces anything committed after it. The test commits a fence
//! on A after each change (a new channel), waits until B announces the fence (an SSE event on a
//! stream connected to B), then writes through B.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::Cluster;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// The same user's client pointed at another instance (same cookies and token).
fn via(api: &Api, base: &str) -> Api {
    let mut other = api.clone();
    other.base = base.to_string();
    other
}

async fn open_sse(api: &Api) -> SseReader {
    let r = api
        .req(Method::GET, "/api/sse")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET /api/sse");
    let mut sse = SseReader::new(r);
    let connect = sse.next(Duration::from_secs(10)).await.expect("connect");
    assert_eq!(connect.event.as_deref(), Some("connect"));
    sse
}

/// Commits a new channel on A (through `admin`) and waits until B announces it: every change
/// A committed before is then applied on B.
async fn fence(admin: &Api, on_b: &mut SseReader) {
    let name = format!("fence-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let id = id_of(&admin.create_public_channel(&name).await);
    announced(on_b, "channels.refresh", &id).await;
}

/// Waits for the next `name` event whose data contains `needle`.
async fn announced(sse: &mut SseReader, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sse
            .next_named(name, left)
            .await
            .unwrap_or_else(|| panic!("no {name} event containing {needle}"));
        if m.data.contains(needle) {
            return;
        }
    }
}

async fn titles(api: &Api) -> Vec<String> {
    api.get_ok("/api/notifications")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn changes_made_on_one_instance_reach_the_other_instances_writer() {
    let cluster = Cluster::start_with(2, true).await;
    let (a, b) = (&cluster.at(0).base, &cluster.at(1).base);
    let mut admin = Api::new(a);
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let mut alice = Api::new(a);
    let alice_id = id_of(&alice.register("alice").await);
    let mut observer = Api::new(a);
    observer.register("observer").await;
    let rs: Value = observer
        .post_json(
            "/api/readStatuses",
            &json!({"channelId": general, "lastReadAt": "2020-01-01T00:00:00Z"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = observer
        .send_json(
            Method::PATCH,
            &format!("/api/readStatuses/{}", id_of(&rs)),
            &json!({"newNotificationEnabled": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut on_b = open_sse(&via(&observer, b)).await;

    // B's writer caches the channel and alice.
    let m = via(&alice, b).send_text(&general, "one").await;
    assert_eq!(m["author"]["role"], "USER");
    assert!(titles(&observer)
        .await
        .contains(&"alice (# general)".into()));

    // Rename on A; once B announced it, B writes with the new name.
    let r = admin
        .send_json(
            Method::PATCH,
            &format!("/api/channels/{general}"),
            &json!({"newName": "renamed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    fence(&admin, &mut on_b).await;
    via(&alice, b).send_text(&general, "two").await;
    assert!(titles(&observer)
        .await
        .contains(&"alice (# renamed)".into()));

    // A role change on A (it ends alice's session everywhere).
    let r = admin
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": alice_id, "newRole": "CHANNEL_MANAGER"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    fence(&admin, &mut on_b).await;
    alice.login("alice", "p@ssw0rd1").await;
    let m = via(&alice, b).send_text(&general, "three").await;
    assert_eq!(m["author"]["role"], "CHANNEL_MANAGER");

    // A new user name set on A.
    let r = alice
        .patch_user(&alice_id, &json!({"newUsername": "alicia"}), None)
        .await;
    assert_eq!(r.status(), 200);
    fence(&admin, &mut on_b).await;
    let m = via(&alice, b).send_text(&general, "four").await;
    assert_eq!(m["author"]["username"], "alicia");
    assert!(titles(&observer)
        .await
        .contains(&"alicia (# renamed)".into()));

    // The channel deleted on A: B refuses the next message to it.
    assert_eq!(
        admin
            .delete(&format!("/api/channels/{general}"))
            .await
            .status(),
        204
    );
    fence(&admin, &mut on_b).await;
    expect_error(
        via(&alice, b).post_message(&general, "five", vec![]).await,
        404,
        "CHANNEL_NOT_FOUND",
    )
    .await;
    cluster.shutdown();
}
