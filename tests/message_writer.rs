//! The message write path (issue 10): one batching writer for STOMP `SEND /pub/messages` and
//! `POST /api/messages`, over real connections and a real PostgreSQL database.
//!
//! Batches are made deterministic where a test needs them: the test holds a `SHARE` lock on
//! `messages` from its own database connection, so the writer's batches in flight (two by
//! default, `DISCODEIT_MESSAGE_BATCHES_IN_FLIGHT`) wait on their insert (seen in
//! `pg_stat_activity`) while further messages queue up (seen in `/actuator/health`); releasing
//! the lock lets the queued messages go as one batch.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::*;
use discodeit::proto::stomp::{Command, Frame};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use stomp::{Kind, StompClient, WAIT};

/// The writer's default number of batches in flight.
const IN_FLIGHT: usize = 2;

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn dest(channel: &str) -> String {
    format!("/sub/channels.{channel}.messages")
}

fn send_frame(channel: &str, author: &str, content: &str, receipt: &str) -> Frame {
    Frame::new(Command::Send)
        .with_header("destination", "/pub/messages")
        .with_header("content-type", "application/json")
        .with_header("receipt", receipt)
        .body(
            serde_json::to_vec(
                &json!({"content": content, "channelId": channel, "authorId": author}),
            )
            .unwrap(),
        )
}

/// Signs up and logs in `n` users named `{prefix}{i}`, a few at a time.
async fn users(server: &TestServer, prefix: &str, n: usize) -> Vec<Api> {
    let mut out = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let mut api = server.client();
            let name = format!("{prefix}{i}");
            tasks.push(tokio::spawn(async move {
                api.register(&name).await;
                api
            }));
        }
        for t in tasks {
            out.push(t.await.unwrap());
        }
    }
    out
}

/// Gives `api`'s user a read status in `channel` with notifications on.
async fn watch(api: &Api, channel: &str) {
    let r = api
        .post_json(
            "/api/readStatuses",
            &json!({"userId": api.user_id(), "channelId": channel,
                    "lastReadAt": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status(), 201, "read status");
    let rs: Value = r.json().await.unwrap();
    let r = api
        .send_json(
            Method::PATCH,
            &format!("/api/readStatuses/{}", id_of(&rs)),
            &json!({"newNotificationEnabled": true}),
        )
        .await;
    assert_eq!(r.status(), 200, "enable notifications");
}

/// Messages waiting for the writer, from the health endpoint.
async fn queued(api: &Api) -> u64 {
    let h = api.get_ok("/actuator/health").await;
    h["components"]["messageWriter"]["queued"]
        .as_u64()
        .expect("messageWriter.queued")
}

/// Holds a SHARE lock on `messages` (inserts wait) until [`Self::release`].
struct WriterGate {
    db: tokio_postgres::Client,
}

impl WriterGate {
    async fn close(server: &TestServer) -> WriterGate {
        let db = server.db().await;
        db.batch_execute("BEGIN; LOCK TABLE messages IN SHARE MODE")
            .await
            .unwrap();
        WriterGate { db }
    }

    /// Waits until `n` backends of this database wait for the lock (the writer's inserts).
    async fn wait_blocked(&self, n: i64) {
        eventually(20, || async {
            let waiting: i64 = self
                .db
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            (waiting >= n).then_some(())
        })
        .await;
    }

    /// Fills the writer's batches in flight with one message each (`{prefix}-1`, `-2`, …), all
    /// waiting for the lock; returns the requests' tasks.
    async fn occupy(
        &self,
        api: &Api,
        channel: &str,
        prefix: &str,
    ) -> Vec<tokio::task::JoinHandle<reqwest::Response>> {
        self.occupy_slots(IN_FLIGHT, api, channel, prefix).await
    }

    /// [`Self::occupy`] for a writer with `slots` batches in flight.
    async fn occupy_slots(
        &self,
        slots: usize,
        api: &Api,
        channel: &str,
        prefix: &str,
    ) -> Vec<tokio::task::JoinHandle<reqwest::Response>> {
        let mut tasks = Vec::new();
        for i in 1..=slots {
            let (api, channel) = (api.clone(), channel.to_string());
            let content = format!("{prefix}-{i}");
            tasks.push(tokio::spawn(async move {
                api.post_message(&channel, &content, vec![]).await
            }));
            self.wait_blocked(i as i64).await;
        }
        tasks
    }

    async fn release(self) {
        self.db.batch_execute("COMMIT").await.unwrap();
    }
}

/// Waits until exactly `n` messages wait in the writer's queue.
async fn wait_queued(api: &Api, n: u64) {
    eventually(20, || async { (queued(api).await == n).then_some(()) }).await;
}

/// The transaction id that inserted each message, by content.
async fn xmin_by_content(server: &TestServer) -> HashMap<String, i64> {
    server
        .db()
        .await
        .query("SELECT content, xmin::text::bigint FROM messages", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// 1,000 messages from 25 STOMP and 25 REST clients into 5 channels: every message stored
/// exactly once, every sender answered for each of its messages, each channel's subscribers
/// receive exactly the stored order, and batches shared transactions.
#[tokio::test]
async fn thousand_messages_from_fifty_clients_are_stored_once_in_order() {
    const CHANNELS: usize = 5;
    const CLIENTS: usize = 50;
    const PER_CLIENT: usize = 20;
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let mut channels = Vec::new();
    for i in 0..CHANNELS {
        channels.push(id_of(
            &admin.create_public_channel(&format!("load-{i}")).await,
        ));
    }
    // An observer with notifications on in every channel: one NEW_MESSAGE per message.
    let mut observer = server.client();
    observer.register("observer").await;
    for c in &channels {
        watch(&observer, c).await;
    }
    // Two subscribers per channel.
    let mut subscribers = Vec::new();
    for c in &channels {
        for _ in 0..2 {
            let mut s =
                StompClient::connected(&server.base, Kind::Raw, observer.token.as_ref().unwrap())
                    .await;
            let r = s.subscribe_confirmed("sub-0", &dest(c)).await;
            assert_eq!(r.command, Command::Receipt);
            subscribers.push((c.clone(), s));
        }
    }
    let senders = users(&server, "sender", CLIENTS).await;

    // Client i sends message j to channel (i + j) % 5; STOMP clients send all their frames at
    // once (each with a receipt), REST clients one request after another.
    let mut tasks = Vec::new();
    for (i, api) in senders.into_iter().enumerate() {
        let channels = channels.clone();
        let base = server.base.clone();
        tasks.push(tokio::spawn(async move {
            let me = api.user_id();
            let plan: Vec<(String, String)> = (0..PER_CLIENT)
                .map(|j| (channels[(i + j) % CHANNELS].clone(), format!("c{i}-m{j}")))
                .collect();
            if i % 2 == 0 {
                let mut c =
                    StompClient::connected(&base, Kind::Raw, api.token.as_ref().unwrap()).await;
                for (j, (ch, content)) in plan.iter().enumerate() {
                    c.send(&send_frame(ch, &me, content, &format!("r-{j}")))
                        .await;
                }
                for j in 0..PER_CLIENT {
                    let f = c.next_non_message(WAIT).await.expect("reply to SEND");
                    assert_eq!(f.command, Command::Receipt, "client {i}: {f:?}");
                    assert_eq!(f.header("receipt-id"), Some(format!("r-{j}").as_str()));
                }
            } else {
                for (ch, content) in &plan {
                    let r = api.post_message(ch, content, vec![]).await;
                    assert_eq!(r.status(), 201, "client {i}");
                    let m: Value = r.json().await.unwrap();
                    assert_eq!(m["content"], content.as_str());
                    assert_eq!(m["author"]["id"], me.as_str());
                }
            }
            plan
        }));
    }
    let mut plans = Vec::new();
    for t in tasks {
        plans.push(t.await.unwrap());
    }

    let db = server.db().await;
    let total: i64 = db
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    let distinct: i64 = db
        .query_one("SELECT count(DISTINCT content) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        (total, distinct),
        (1000, 1000),
        "every message exactly once"
    );
    assert_eq!(
        server.count("SELECT count(*) FROM notifications").await,
        1000,
        "one NEW_MESSAGE for the observer per message"
    );
    // Each sender's messages are stored in the order it sent them.
    let stored_at: HashMap<String, chrono::DateTime<chrono::Utc>> = db
        .query("SELECT content, created_at FROM messages", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for plan in &plans {
        let times: Vec<_> = plan.iter().map(|(_, c)| stored_at[c]).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "sender order kept");
    }
    // Each subscriber receives its channel's messages in the stored order.
    for (channel, sub) in &mut subscribers {
        let ch: uuid::Uuid = channel.parse().unwrap();
        let stored: Vec<String> = db
            .query(
                "SELECT id::text FROM messages WHERE channel_id = $1 ORDER BY created_at, id",
                &[&ch],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(stored.len(), 200);
        let mut received = Vec::new();
        while received.len() < stored.len() {
            let (_, m) = sub.next_message_json().await;
            received.push(id_of(&m));
        }
        assert_eq!(
            received, stored,
            "channel {channel}: broadcast order = stored order"
        );
    }
    // Group commit: messages shared transactions.
    let transactions = xmin_by_content(&server)
        .await
        .values()
        .collect::<HashSet<_>>()
        .len();
    eprintln!("1000 messages in {transactions} transactions");
    assert!(transactions < 1000, "no batch held more than one message");
}

/// Invalid messages inside one busy batch (private channel, unknown channel) get their own
/// 403/404 while every valid message of the same batch is stored, all in one transaction;
/// blank content and a foreign authorId are refused at once, before the queue.
#[tokio::test]
async fn invalid_messages_fail_alone_inside_a_busy_batch() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let senders = users(&server, "busy", 6).await;
    let outsider = &senders[0];
    let (m1, m2) = (senders[1].user_id(), senders[2].user_id());
    let private = id_of(&senders[1].create_private_channel(&[&m1, &m2]).await);
    let ghost = uuid::Uuid::new_v4().to_string();

    // The writer is busy with one message while the others queue up.
    let gate = WriterGate::close(&server).await;
    let first = gate.occupy(&senders[5], &general, "first").await;

    // Refused before the queue, even while the writer is busy.
    expect_error(
        outsider.post_message(&general, "   ", vec![]).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let spoof = reqwest::multipart::Form::new().part(
        "messageCreateRequest",
        json_part(&json!({"content": "spoof", "channelId": general, "authorId": m1})),
    );
    let r = outsider
        .req(Method::POST, "/api/messages")
        .multipart(spoof)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "AuthorizationDeniedException").await;

    // Into the queue: valid messages over REST and STOMP, and two that break a rule.
    let mut rest = Vec::new();
    for (api, channel, content) in [
        (senders[1].clone(), general.clone(), "valid-rest-1"),
        (senders[2].clone(), private.clone(), "valid-private"),
        (outsider.clone(), private.clone(), "not-a-member"),
        (senders[3].clone(), ghost.clone(), "no-such-channel"),
        (senders[3].clone(), general.clone(), "valid-rest-2"),
    ] {
        rest.push(tokio::spawn(async move {
            let r = api.post_message(&channel, content, vec![]).await;
            (content, r)
        }));
    }
    let mut stomp =
        StompClient::connected(&server.base, Kind::Raw, senders[4].token.as_ref().unwrap()).await;
    stomp
        .send(&send_frame(
            &general,
            &senders[4].user_id(),
            "valid-stomp",
            "s-1",
        ))
        .await;
    wait_queued(outsider, 6).await;
    gate.release().await;

    for t in first {
        assert_eq!(t.await.unwrap().status(), 201);
    }
    let mut answers = HashMap::new();
    for t in rest {
        let (content, r) = t.await.unwrap();
        answers.insert(content, r);
    }
    for ok in ["valid-rest-1", "valid-private", "valid-rest-2"] {
        assert_eq!(answers.remove(ok).unwrap().status(), 201, "{ok}");
    }
    expect_error(
        answers.remove("not-a-member").unwrap(),
        403,
        "AuthorizationDeniedException",
    )
    .await;
    let e = expect_error(
        answers.remove("no-such-channel").unwrap(),
        404,
        "CHANNEL_NOT_FOUND",
    )
    .await;
    assert_eq!(e["details"]["channelId"], ghost.as_str());
    let f = stomp.next_non_message(WAIT).await.expect("RECEIPT");
    assert_eq!(f.command, Command::Receipt, "{f:?}");

    let xmin = xmin_by_content(&server).await;
    let mut stored: Vec<&str> = xmin.keys().map(String::as_str).collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "first-1",
            "first-2",
            "valid-private",
            "valid-rest-1",
            "valid-rest-2",
            "valid-stomp"
        ]
    );
    // The four valid queued messages went in one transaction, the refused ones with them (the
    // two messages already in flight went in transactions of their own).
    let batch: HashSet<i64> = [
        "valid-private",
        "valid-rest-1",
        "valid-rest-2",
        "valid-stomp",
    ]
    .iter()
    .map(|c| xmin[*c])
    .collect();
    assert_eq!(batch.len(), 1, "one batch: {xmin:?}");
    let queued = *batch.iter().next().unwrap();
    assert!(xmin["first-1"] != queued && xmin["first-2"] != queued);
}

/// A database error in a batch fails every message of it with a clear 500, and nothing of the
/// batch is left: no message, attachment row, link, notification or file. The writer goes on.
#[tokio::test]
async fn a_database_error_fails_the_whole_batch_and_writes_nothing() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let senders = users(&server, "doomed", 4).await;
    let mut observer = server.client();
    observer.register("observer").await;
    watch(&observer, &general).await;
    // The database refuses the notification of a message saying "poison": the batch fails
    // after its messages, attachment rows and links were inserted.
    server
        .db()
        .await
        .batch_execute(
            "ALTER TABLE notifications ADD CONSTRAINT no_poison CHECK (content <> 'poison')",
        )
        .await
        .unwrap();

    let gate = WriterGate::close(&server).await;
    let first = gate.occupy(&senders[0], &general, "first").await;
    let mut doomed = Vec::new();
    for (i, content) in ["innocent", "poison", "with-file"].into_iter().enumerate() {
        let api = senders[i + 1].clone();
        let general = general.clone();
        doomed.push(tokio::spawn(async move {
            let files = if content == "with-file" {
                vec![("a.txt", "text/plain", b"attached".to_vec())]
            } else {
                vec![]
            };
            api.post_message(&general, content, files).await
        }));
    }
    wait_queued(&observer, 3).await;
    gate.release().await;

    for t in first {
        assert_eq!(t.await.unwrap().status(), 201);
    }
    for t in doomed {
        let e = expect_error(t.await.unwrap(), 500, "INTERNAL_SERVER_ERROR").await;
        assert!(
            e["details"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("message not stored"),
            "{e}"
        );
    }
    let mut contents: Vec<String> = xmin_by_content(&server).await.into_keys().collect();
    contents.sort();
    assert_eq!(contents, ["first-1", "first-2"]);
    for (table, expected) in [
        ("notifications", 2),
        ("binary_contents", 0),
        ("message_attachments", 0),
    ] {
        assert_eq!(
            server.count(&format!("SELECT count(*) FROM {table}")).await,
            expected,
            "{table}"
        );
    }
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );

    // The next batch is written as usual.
    senders[1].send_text(&general, "after").await;
}

/// Back-pressure: with the queue full, a REST POST waits the configured time and gets 503 with
/// an ErrorResponse, while a STOMP SEND waits for room and is then written.
#[tokio::test]
async fn a_full_queue_answers_rest_with_503_and_holds_stomp() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_MESSAGE_QUEUE", "2"),
        ("DISCODEIT_MESSAGE_BATCH_MAX", "1"),
        ("DISCODEIT_MESSAGE_ADMISSION_TIMEOUT_MS", "300"),
    ])
    .await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let senders = users(&server, "full", 4).await;

    let gate = WriterGate::close(&server).await;
    let mut accepted = gate.occupy(&senders[0], &general, "in-batch").await;
    for (i, content) in ["queued-1", "queued-2"].into_iter().enumerate() {
        let api = senders[i + 1].clone();
        let g = general.clone();
        accepted.push(tokio::spawn(async move {
            api.post_message(&g, content, vec![]).await
        }));
    }
    wait_queued(&admin, 2).await;

    // The queue is full: a STOMP SEND waits for room (its session stops reading) ...
    let mut stomp =
        StompClient::connected(&server.base, Kind::Raw, senders[3].token.as_ref().unwrap()).await;
    stomp
        .send(&send_frame(
            &general,
            &senders[3].user_id(),
            "stomp-waits",
            "s-1",
        ))
        .await;
    // ... and a REST POST gets 503 after 300 ms.
    let e = expect_error(
        senders[3]
            .post_message(&general, "rest-refused", vec![])
            .await,
        503,
        "SERVICE_UNAVAILABLE",
    )
    .await;
    assert!(
        e["details"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("queue stayed full"),
        "{e}"
    );
    assert!(
        stomp.next_frame(Duration::ZERO).await.is_none(),
        "the SEND must still be waiting"
    );
    gate.release().await;

    for t in accepted {
        assert_eq!(t.await.unwrap().status(), StatusCode::CREATED);
    }
    let f = stomp.next_non_message(WAIT).await.expect("RECEIPT");
    assert_eq!(f.command, Command::Receipt, "{f:?}");
    let mut stored: Vec<String> = xmin_by_content(&server).await.into_keys().collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "in-batch-1",
            "in-batch-2",
            "queued-1",
            "queued-2",
            "stomp-waits"
        ]
    );
}

/// The write path's caches never serve a stale fact: a renamed channel, a new role or name of
/// the author, a deleted channel are seen by the very next message.
#[tokio::test]
async fn channel_and_author_changes_are_seen_at_once() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let mut alice = server.client();
    let alice_dto = alice.register("alice").await;
    let alice_id = id_of(&alice_dto);
    let mut observer = server.client();
    observer.register("observer").await;
    watch(&observer, &general).await;
    let titles = |api: Api| async move {
        let list: Vec<Value> = api
            .get_ok("/api/notifications")
            .await
            .as_array()
            .unwrap()
            .clone();
        list.iter()
            .map(|n| n["title"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };

    // Warm the caches.
    let m = alice.send_text(&general, "one").await;
    assert_eq!(m["author"]["role"], "USER");
    assert!(titles(observer.clone())
        .await
        .contains(&"alice (# general)".to_string()));

    // Rename the channel: the next notification title carries the new name.
    let r = admin
        .send_json(
            Method::PATCH,
            &format!("/api/channels/{general}"),
            &json!({"newName": "renamed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    alice.send_text(&general, "two").await;
    assert!(titles(observer.clone())
        .await
        .contains(&"alice (# renamed)".to_string()));

    // A role change (it ends alice's session; she logs in again).
    let r = admin
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": alice_id, "newRole": "CHANNEL_MANAGER"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    alice.login("alice", "p@ssw0rd1").await;
    let m = alice.send_text(&general, "three").await;
    assert_eq!(m["author"]["role"], "CHANNEL_MANAGER");

    // A new user name, over STOMP this time.
    let r = alice
        .patch_user(&alice_id, &json!({"newUsername": "alicia"}), None)
        .await;
    assert_eq!(r.status(), 200);
    let mut sub =
        StompClient::connected(&server.base, Kind::Raw, observer.token.as_ref().unwrap()).await;
    sub.subscribe_confirmed("s", &dest(&general)).await;
    let mut c =
        StompClient::connected(&server.base, Kind::Raw, alice.token.as_ref().unwrap()).await;
    c.send(&send_frame(&general, &alice_id, "four", "r-4"))
        .await;
    assert_eq!(
        c.next_non_message(WAIT).await.unwrap().command,
        Command::Receipt
    );
    let (_, m) = sub.next_message_json().await;
    assert_eq!(
        (m["content"].as_str(), m["author"]["username"].as_str()),
        (Some("four"), Some("alicia"))
    );
    assert!(titles(observer.clone())
        .await
        .contains(&"alicia (# renamed)".to_string()));

    // A deleted channel takes no more messages.
    assert_eq!(
        admin
            .delete(&format!("/api/channels/{general}"))
            .await
            .status(),
        204
    );
    expect_error(
        alice.post_message(&general, "five", vec![]).await,
        404,
        "CHANNEL_NOT_FOUND",
    )
    .await;
}

/// One STOMP session's SENDs do not wait for each other's commit (issue 10, pipelined SENDs):
/// with the writer held, 40 SENDs of one session are all queued at once; released, they are
/// answered in order, stored in order, broadcast in order, in a few shared transactions.
#[tokio::test]
async fn one_sessions_sends_are_pipelined_and_keep_their_order() {
    const N: usize = 40;
    // One batch in flight: held by the gate, it alone holds the writer.
    let server = TestServer::start_with(&[("DISCODEIT_MESSAGE_BATCHES_IN_FLIGHT", "1")]).await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let senders = users(&server, "pipe", 2).await;
    let mut sub =
        StompClient::connected(&server.base, Kind::Raw, senders[1].token.as_ref().unwrap()).await;
    sub.subscribe_confirmed("sub-0", &dest(&general)).await;

    let gate = WriterGate::close(&server).await;
    let occupied = gate.occupy_slots(1, &admin, &general, "first").await;
    let me = senders[0].user_id();
    let mut c =
        StompClient::connected(&server.base, Kind::Raw, senders[0].token.as_ref().unwrap()).await;
    for j in 0..N {
        c.send(&send_frame(
            &general,
            &me,
            &format!("p-{j:02}"),
            &format!("r-{j}"),
        ))
        .await;
    }
    // Every SEND is queued behind the held batches: none waited for another's commit.
    wait_queued(&admin, N as u64).await;
    assert!(
        c.next_frame(Duration::ZERO).await.is_none(),
        "nothing answered yet"
    );
    gate.release().await;
    for t in occupied {
        assert_eq!(t.await.unwrap().status(), StatusCode::CREATED);
    }
    for j in 0..N {
        let f = c.next_non_message(WAIT).await.expect("RECEIPT");
        assert_eq!(f.command, Command::Receipt, "{f:?}");
        assert_eq!(f.header("receipt-id"), Some(format!("r-{j}").as_str()));
    }
    let mut received = Vec::new();
    while received.len() < N + 1 {
        let (_, m) = sub.next_message_json().await;
        received.push(m["content"].as_str().unwrap().to_string());
    }
    let sent: Vec<String> = (0..N).map(|j| format!("p-{j:02}")).collect();
    let pipelined: Vec<String> = received
        .into_iter()
        .filter(|c| c.starts_with("p-"))
        .collect();
    assert_eq!(pipelined, sent, "broadcast in the order sent");
    let stored: Vec<String> = server
        .db()
        .await
        .query(
            "SELECT content FROM messages WHERE content LIKE 'p-%' ORDER BY created_at, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, sent, "stored in the order sent");
    let xmins = xmin_by_content(&server).await;
    let transactions: HashSet<_> = sent.iter().map(|c| xmins[c]).collect();
    assert!(
        transactions.len() < N / 4,
        "{N} pipelined SENDs took {} transactions",
        transactions.len()
    );
}

/// A SEND refused behind others in flight: the SENDs before it are answered first, then its
/// ERROR (with its receipt id) closes the session, and no frame after it is read or written.
#[tokio::test]
async fn a_refused_send_is_answered_after_the_sends_before_it() {
    // One batch in flight: held by the gate, it alone holds the writer.
    let server = TestServer::start_with(&[("DISCODEIT_MESSAGE_BATCHES_IN_FLIGHT", "1")]).await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let senders = users(&server, "refuse", 2).await;
    let gate = WriterGate::close(&server).await;
    let occupied = gate.occupy_slots(1, &senders[1], &general, "first").await;
    let me = senders[0].user_id();
    let mut c =
        StompClient::connected(&server.base, Kind::Raw, senders[0].token.as_ref().unwrap()).await;
    for j in 0..5 {
        c.send(&send_frame(
            &general,
            &me,
            &format!("ok-{j}"),
            &format!("r-{j}"),
        ))
        .await;
    }
    // Refused before the queue (PostgreSQL cannot store NUL), then more that must not be read.
    c.send(&send_frame(&general, &me, "bad\u{0}", "r-bad"))
        .await;
    for j in 0..3 {
        c.send(&send_frame(
            &general,
            &me,
            &format!("after-{j}"),
            &format!("a-{j}"),
        ))
        .await;
    }
    wait_queued(&admin, 5).await;
    gate.release().await;
    for t in occupied {
        assert_eq!(t.await.unwrap().status(), StatusCode::CREATED);
    }
    for j in 0..5 {
        let f = c.next_non_message(WAIT).await.expect("RECEIPT");
        assert_eq!(f.command, Command::Receipt, "{f:?}");
        assert_eq!(f.header("receipt-id"), Some(format!("r-{j}").as_str()));
    }
    let e = c.expect_error_and_close("NUL").await;
    assert_eq!(e.header("receipt-id"), Some("r-bad"));
    let mut stored: Vec<String> = xmin_by_content(&server)
        .await
        .into_keys()
        .filter(|c| !c.starts_with("first"))
        .collect();
    stored.sort();
    assert_eq!(stored, ["ok-0", "ok-1", "ok-2", "ok-3", "ok-4"]);
}
