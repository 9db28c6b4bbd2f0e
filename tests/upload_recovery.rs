//! Issue 11, finding 6: no upload stays WAITING after a crash.
//!
//! A real crash (the process aborts right after an upload's transaction commits, through the
//! `DISCODEIT_FAULT_INJECTION=crash-after-upload-commit` test hook) and a restart: the staged
//! bytes are moved into place and the upload turns SUCCESS; when the bytes never reached the
//! disk (`upload-write-fails`) it turns FAILED with the ASYNC_FAILED notification and the
//! `binaryContents.status` event, seen by the uploader on another instance.

mod common;

use common::*;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn storage_dir() -> PathBuf {
    std::env::temp_dir().join(format!("discodeit-upload-recovery-{}", Uuid::new_v4()))
}

/// `POST /api/messages` with one attachment; the server may die before answering.
async fn post_attachment(api: &Api, channel: &str, bytes: Vec<u8>) -> Option<u16> {
    let form = Form::new()
        .part(
            "messageCreateRequest",
            json_part(&json!({"content": "file", "channelId": channel, "authorId": api.user_id()})),
        )
        .part(
            "attachments",
            Part::bytes(bytes)
                .file_name("report.bin")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    api.req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn wait_dead(server: &mut TestServer) {
    for _ in 0..200 {
        if !server.alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not crash");
}

async fn the_only_upload(server: &TestServer) -> (String, String, i64) {
    let db = server.db().await;
    let row = db
        .query_one(
            "SELECT b.id::text, b.upload_status,
                    (SELECT count(*) FROM upload_jobs j WHERE j.binary_content_id = b.id)
             FROM binary_contents b",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn an_upload_interrupted_by_a_crash_is_finished_at_the_restart() {
    let (url, db_name) = fresh_database().await;
    let storage = storage_dir();
    let storage_s = storage.to_string_lossy().into_owned();
    let base_env = [
        ("DISCODEIT_STORAGE_DIR", storage_s.as_str()),
        ("DISCODEIT_INSTANCE_ID", "uploader"),
    ];
    let mut crashing = base_env.to_vec();
    crashing.push(("DISCODEIT_FAULT_INJECTION", "crash-after-upload-commit"));
    let mut s1 = TestServer::start_on_db(&url, &db_name, &crashing).await;
    let mut admin = s1.client();
    admin.admin().await;
    let channel = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = s1.client();
    alice.register("alice").await;
    let bytes = random_bytes(50_000, 7);

    let status = post_attachment(&alice, &channel, bytes.clone()).await;
    assert_ne!(status, Some(201), "the hook aborts before the response");
    wait_dead(&mut s1).await;
    // What the crash left: a committed WAITING row with its job, the bytes only staged.
    let (id, upload_status, jobs) = the_only_upload(&s1).await;
    assert_eq!((upload_status.as_str(), jobs), ("WAITING", 1));

    let s2 = TestServer::start_on_db(&url, &db_name, &base_env).await;
    let mut alice = s2.client();
    alice.login("alice", "p@ssw0rd1").await;
    let dto = alice.wait_uploaded(&id).await;
    assert_eq!(dto["size"], 50_000);
    let r = alice
        .get(&format!("/api/binaryContents/{id}/download"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    assert_eq!(s2.count("SELECT count(*) FROM upload_jobs").await, 0);
    let page = alice
        .get_ok(&format!("/api/messages?channelId={channel}"))
        .await;
    assert_eq!(page["content"][0]["attachments"][0]["id"], id.as_str());
    drop(s2);
    let _ = std::fs::remove_dir_all(storage);
}

#[tokio::test]
async fn an_upload_whose_bytes_were_lost_fails_with_notification_and_event_at_the_restart() {
    let (url, db_name) = fresh_database().await;
    let storage = storage_dir();
    let storage_s = storage.to_string_lossy().into_owned();
    let kafka =
        std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:59092".into());
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379/".into());
    let id = Uuid::new_v4().simple().to_string();
    let topics = format!("dtest.{id}.");
    let keys = format!("dtest:{id}:");
    let shared = [
        ("KAFKA_BOOTSTRAP_SERVERS", kafka.as_str()),
        ("KAFKA_TOPIC_PREFIX", topics.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", keys.as_str()),
    ];
    let with = |extra: &[(&'static str, &'static str)], storage: &str| -> Vec<(String, String)> {
        shared
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .chain([("DISCODEIT_STORAGE_DIR".to_string(), storage.to_string())])
            .collect()
    };
    let other_storage = storage_dir();
    let b_env = with(
        &[("DISCODEIT_INSTANCE_ID", "b")],
        &other_storage.to_string_lossy(),
    );
    let b = TestServer::start_on_db(&url, &db_name, &refs(&b_env)).await;
    let a_env = with(
        &[
            ("DISCODEIT_INSTANCE_ID", "a"),
            (
                "DISCODEIT_FAULT_INJECTION",
                "upload-write-fails,crash-after-upload-commit",
            ),
        ],
        &storage_s,
    );
    let mut a = TestServer::start_on_db(&url, &db_name, &refs(&a_env)).await;

    let mut admin = b.client();
    admin.admin().await;
    let channel = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = b.client();
    let alice_id = alice.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = alice
        .req(Method::GET, "/api/sse")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut sse = SseReader::new(r);

    // The same session posts through instance A, which cannot write and then crashes.
    let mut on_a = alice.clone();
    on_a.base = a.base.clone();
    let status = post_attachment(&on_a, &channel, random_bytes(1000, 3)).await;
    assert_ne!(status, Some(201));
    wait_dead(&mut a).await;
    let (upload, upload_status, jobs) = the_only_upload(&b).await;
    assert_eq!((upload_status.as_str(), jobs), ("WAITING", 1));

    // A restarts as itself: the job of its earlier run is failed, and everyone hears of it.
    let a_env = with(&[("DISCODEIT_INSTANCE_ID", "a")], &storage_s);
    let _a2 = TestServer::start_on_db(&url, &db_name, &refs(&a_env)).await;
    let status_event = sse
        .next_named("binaryContents.status", Duration::from_secs(30))
        .await
        .expect("binaryContents.status through Kafka");
    let dto: Value = serde_json::from_str(&status_event.data).unwrap();
    assert_eq!(dto["id"], upload.as_str());
    assert_eq!(dto["uploadStatus"], "FAILED");
    let note = sse
        .next_named("notifications", Duration::from_secs(30))
        .await
        .expect("ASYNC_FAILED notification");
    let note: Value = serde_json::from_str(&note.data).unwrap();
    assert_eq!(note["type"], "ASYNC_FAILED");
    assert_eq!(note["receiverId"], alice_id.as_str());
    assert!(note["content"]
        .as_str()
        .unwrap()
        .contains("the server stopped before the file was stored"));
    let stored = alice.get_ok(&format!("/api/binaryContents/{upload}")).await;
    assert_eq!(stored["uploadStatus"], "FAILED");
    assert_eq!(b.count("SELECT count(*) FROM upload_jobs").await, 0);
    assert_eq!(b.count("SELECT count(*) FROM async_task_failures").await, 1);
    let _ = std::fs::remove_dir_all(storage);
    let _ = std::fs::remove_dir_all(other_storage);
}
