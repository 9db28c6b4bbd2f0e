//! Issue 11, finding 2: no client-supplied collection makes an unbounded event.
//!
//! Every list-valued input has a configurable cap answered with a 400 that names it, and
//! nothing is half-written; audiences are built from users that exist; an event too large
//! for a Kafka record is refused before it reaches the outbox.

mod common;

use common::*;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn expect_cap(r: reqwest::Response, field: &str, limit: u64) {
    let body = expect_error(r, 400, "INVALID_REQUEST").await;
    assert_eq!(body["details"]["field"], field, "{body}");
    assert_eq!(body["details"]["limit"], limit, "{body}");
    let reason = body["details"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("at most {limit}")), "{body}");
}

/// `POST /api/messages` with `n` attachments named `name`.
async fn post_with_files(api: &Api, channel: &str, n: usize, name: &str) -> reqwest::Response {
    let mut form = Form::new().part(
        "messageCreateRequest",
        json_part(&json!({"content": "files", "channelId": channel, "authorId": api.user_id()})),
    );
    for i in 0..n {
        form = form.part(
            "attachments",
            Part::bytes(vec![b'x'; 8])
                .file_name(format!("{name}{i}"))
                .mime_str("text/plain")
                .unwrap(),
        );
    }
    api.req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn collections_over_their_caps_are_refused_with_the_limit_and_nothing_is_written() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_MAX_PARTICIPANTS", "3"),
        ("DISCODEIT_MAX_ATTACHMENTS", "2"),
        ("DISCODEIT_MAX_BATCH_IDS", "3"),
    ])
    .await;
    let mut admin = server.client();
    admin.admin().await;
    let mut alice = server.client();
    let a = alice.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = server.client().signup("bobby").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ghost = || Uuid::new_v4().to_string();

    // participantIds
    let r = alice
        .post_json(
            "/api/channels/private",
            &json!({"participantIds": [a, b, ghost(), ghost()]}),
        )
        .await;
    expect_cap(r, "participantIds", 3).await;
    assert_eq!(server.count("SELECT count(*) FROM channels").await, 0);
    let ch = alice.create_private_channel(&[&a, &b, &ghost()]).await;
    let ch = ch["id"].as_str().unwrap().to_string();

    // attachments, just over the cap and far over it (the form is not even read to the end)
    for n in [3, 500] {
        expect_cap(post_with_files(&alice, &ch, n, "f").await, "attachments", 2).await;
    }
    assert_eq!(server.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(
        server.count("SELECT count(*) FROM binary_contents").await,
        0
    );
    let r = post_with_files(&alice, &ch, 2, "f").await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    let ids: Vec<&str> = m["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();

    // ids in a batch query, repeated or comma-separated
    let four = [ids[0], ids[1], &ghost(), &ghost()].join(",");
    let r = alice
        .get(&format!("/api/binaryContents?binaryContentIds={four}"))
        .await;
    expect_cap(r, "binaryContentIds", 3).await;
    let three = [ids[0], ids[1], &ghost()].join(",");
    let list = alice
        .get_ok(&format!("/api/binaryContents?binaryContentIds={three}"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // The server keeps serving.
    admin.get_ok("/api/users").await;
}

fn kafka_env() -> (String, String) {
    (
        std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:59092".into()),
        format!("dtest.{}.", Uuid::new_v4().simple()),
    )
}

#[tokio::test]
async fn unknown_participants_never_reach_the_audience() {
    let (servers, prefix) = kafka_env();
    let server = TestServer::start_with(&[
        ("KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
        ("KAFKA_TOPIC_PREFIX", prefix.as_str()),
    ])
    .await;
    let mut alice = server.client();
    let a = alice.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = server.client().signup("bobby").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = vec![a.clone(), b.clone(), a.clone()];
    ids.extend((0..90).map(|_| Uuid::new_v4().to_string()));
    let r = alice
        .post_json("/api/channels/private", &json!({ "participantIds": ids }))
        .await;
    assert_eq!(r.status(), 201);
    let ch: Value = r.json().await.unwrap();
    assert_eq!(ch["participants"].as_array().unwrap().len(), 2);
    // The channels.refresh event as the outbox holds it for every instance.
    let db = server.db().await;
    let payload: String = db
        .query_one(
            "SELECT payload FROM outbox WHERE payload LIKE '%channels.refresh%' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let event: Value = serde_json::from_str(&payload).unwrap();
    let mut audience: Vec<String> = event["audience"]["users"]
        .as_array()
        .unwrap_or_else(|| panic!("audience: {event}"))
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    audience.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(audience, want);
}

#[tokio::test]
async fn an_event_too_large_for_a_kafka_record_is_refused_before_the_outbox() {
    let (servers, prefix) = kafka_env();
    let server = TestServer::start_with(&[
        ("KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
        ("KAFKA_TOPIC_PREFIX", prefix.as_str()),
        ("KAFKA_MESSAGE_MAX_BYTES", "65536"),
        ("DISCODEIT_MAX_ATTACHMENTS", "400"),
    ])
    .await;
    let mut alice = server.client();
    alice.register("alice").await;
    let ch = {
        let mut admin = server.client();
        admin.admin().await;
        admin.create_public_channel("general").await["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // 300 attachments with 200-character names: a MessageDto of about 100 KB.
    let r = post_with_files(&alice, &ch, 300, &"n".repeat(197)).await;
    let body = expect_error(r, 400, "INVALID_REQUEST").await;
    assert_eq!(body["details"]["maxEventBytes"], 65536, "{body}");
    assert!(body["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("realtime event"));
    // Nothing half-written: no message, no files, no outbox row.
    assert_eq!(server.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(
        server.count("SELECT count(*) FROM binary_contents").await,
        0
    );
    // (Counted by the message's own file names: sign-up and login append their events to the
    // outbox asynchronously, so a count of all rows could move on its own.)
    assert_eq!(
        server
            .count("SELECT count(*) FROM outbox WHERE payload LIKE '%nnnnnnnnnnnnnnnnnnnn%'")
            .await,
        0
    );
    assert_eq!(
        server.stored_files(),
        Vec::<String>::new(),
        "no staged bytes left"
    );
    // A normal message still goes.
    alice.send_text(&ch, "small").await;
}
