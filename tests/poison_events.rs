//! Issue 11, finding 1: no single event can wedge the event pipeline (Kafka mode, real tansu).
//!
//! Over real connections: a STOMP SEND whose destination carries a NUL is refused with an
//! ERROR frame, one whose body carries a NUL (legal STOMP) is delivered intact, and the
//! pipeline behind them keeps flowing (a logout still closes the user's live STOMP session at
//! once). Directly: the outbox writer and the relay,
//! handed events PostgreSQL or the producer can never take, move them to `dead_letters` and
//! write/send everything behind them in order.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::*;
use discodeit::bus::kafka::{start_consumer, Publisher};
use discodeit::bus::outbox::{spawn_relay, OutboxWriter};
use discodeit::bus::EventBus;
use discodeit::config::Config;
use discodeit::domain::Event;
use discodeit::proto::stomp::{Command, Frame};
use discodeit::store::Db;
use reqwest::Method;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stomp::{End, Kind, StompClient, WAIT};
use uuid::Uuid;

fn kafka_servers() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:59092".into())
}

fn topic_prefix() -> String {
    format!("dtest.{}.", Uuid::new_v4().simple())
}

/// A server in multi-instance mode (outbox, relay and consumer on the shared broker).
async fn kafka_server() -> TestServer {
    let servers = kafka_servers();
    let prefix = topic_prefix();
    TestServer::start_with(&[
        ("KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
        ("KAFKA_TOPIC_PREFIX", prefix.as_str()),
    ])
    .await
}

#[tokio::test]
async fn poison_sends_are_refused_nul_bodies_delivered_and_a_logout_still_closes_the_session() {
    let server = kafka_server().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let mut listener =
        StompClient::connected(&server.base, Kind::Raw, alice.token.as_deref().unwrap()).await;
    let r = listener.subscribe_confirmed("room", "/sub/room").await;
    assert_eq!(r.command, Command::Receipt);
    let mut bob = server.client();
    bob.register("bobby").await;
    let bob_token = bob.token.clone().unwrap();

    // A NUL in the destination header: refused by the decoder, nothing published.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &bob_token).await;
    c.send_raw(b"SEND\ndestination:/sub/room\0x\nreceipt:r1\n\nhello\0")
        .await;
    let e = c
        .expect_error_and_close("header 'destination' contains the control character U+0000")
        .await;
    assert_eq!(e.header("content-type"), Some("text/plain"));

    // A NUL in the body is legal STOMP (with content-length) and no poison: the outbox keeps
    // the event as JSON, where it is the escape \u0000. It arrives intact through Kafka.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &bob_token).await;
    c.send(
        &Frame::new(Command::Send)
            .with_header("destination", "/sub/room")
            .with_header("receipt", "r2")
            .with_header("content-length", "3")
            .body(&b"a\0b"[..]),
    )
    .await;
    assert_eq!(c.next_frame(WAIT).await.unwrap().command, Command::Receipt);
    let m = listener.next_frame(WAIT).await.expect("MESSAGE");
    assert_eq!(m.command, Command::Message);
    assert_eq!(&m.body[..], b"a\0b");

    // A body that is not UTF-8 text is refused at the service boundary.
    c.send(
        &Frame::new(Command::Send)
            .with_header("destination", "/sub/room")
            .with_header("receipt", "r3")
            .body(&b"\xff\xfe"[..]),
    )
    .await;
    c.expect_error_and_close("the body must be UTF-8 text")
        .await;

    // The pipeline still flows: a good SEND reaches the subscriber through the outbox and Kafka.
    let mut c = StompClient::connected(&server.base, Kind::Raw, &bob_token).await;
    c.send(
        &Frame::new(Command::Send)
            .with_header("destination", "/sub/room")
            .with_header("receipt", "r4")
            .body(&b"still flowing"[..]),
    )
    .await;
    assert_eq!(c.next_frame(WAIT).await.unwrap().command, Command::Receipt);
    let m = listener.next_frame(WAIT).await.expect("MESSAGE");
    assert_eq!(m.command, Command::Message);
    assert_eq!(&m.body[..], b"still flowing");

    // And a logout (an event without a transaction of its own, through the outbox writer)
    // closes alice's live session at once.
    let r = alice
        .req(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    assert!(
        matches!(listener.end(Duration::from_secs(5)).await, End::Closed(_)),
        "the logged-out session must close"
    );
    eprintln!("session closed {:?} after the logout", t.elapsed());
    // Nothing poisonous got as far as the pipeline, and nothing had to be set aside.
    assert_eq!(server.count("SELECT count(*) FROM dead_letters").await, 0);
}

/// A migrated fresh database and a pool on it.
async fn fresh_db() -> (Db, String, TestDb) {
    let (url, _name) = fresh_database().await;
    let db = Db::connect(&url, 4).expect("pool");
    db.migrate().await.expect("migrations");
    (db, url.clone(), TestDb { url })
}

/// A plain connection for assertions.
struct TestDb {
    url: String,
}

impl TestDb {
    async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        c
    }
}

fn revoked(user: Uuid) -> Event {
    Event::UserRevoked {
        user_id: user,
        session_id: None,
    }
}

#[tokio::test]
async fn the_outbox_writer_dead_letters_what_postgres_refuses_and_writes_the_rest_in_order() {
    let (db, _, t) = fresh_db().await;
    let writer = OutboxWriter::start(db, 1_000_000);
    let (u1, u2, u3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Queued back to back, so the first three share one batch: the batch fails as a whole
    // (PostgreSQL refuses the NUL in the key column) and is split.
    writer.append(revoked(u1));
    writer.append(Event::BrokerMessage {
        destination: "/sub/a\0b".into(),
        body: "poison".into(),
    });
    writer.append(revoked(u2));
    // Over the record limit: refused before PostgreSQL, dead-lettered just the same.
    writer.append(Event::BrokerMessage {
        destination: "/sub/big".into(),
        body: "x".repeat(1_100_000),
    });
    writer.append(revoked(u3));

    let c = t.client().await;
    let keys: Vec<String> = eventually(20, || async {
        let rows = c
            .query("SELECT key FROM outbox ORDER BY id", &[])
            .await
            .unwrap();
        (rows.len() == 3).then(|| rows.iter().map(|r| r.get(0)).collect())
    })
    .await;
    assert_eq!(keys, vec![u1.to_string(), u2.to_string(), u3.to_string()]);
    let dead = eventually(20, || async {
        let rows = c
            .query(
                "SELECT source, kind, key, payload, error FROM dead_letters ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        (rows.len() == 2).then_some(rows)
    })
    .await;
    let (source, kind, key, payload, error): (String, String, Vec<u8>, Vec<u8>, String) = (
        dead[0].get(0),
        dead[0].get(1),
        dead[0].get(2),
        dead[0].get(3),
        dead[0].get(4),
    );
    assert_eq!(
        (source.as_str(), kind.as_str()),
        ("outbox-writer", "broker")
    );
    assert_eq!(key, b"/sub/a\0b", "the poison is kept byte for byte");
    assert!(String::from_utf8_lossy(&payload).contains("poison"));
    assert!(error.contains("22021"), "SQLSTATE in the error: {error}");
    let error: String = dead[1].get(4);
    assert!(error.contains("event too large"), "{error}");
    let kept: Vec<u8> = dead[1].get(3);
    assert!(kept.len() > 1_100_000);
}

#[tokio::test]
async fn the_relay_dead_letters_rows_it_can_never_send_and_publishes_the_rest_in_order() {
    let (_db, url, t) = fresh_db().await;
    let c = t.client().await;
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let json = |e: &Event| serde_json::to_string(e).unwrap();
    let big = Event::BrokerMessage {
        destination: "/sub/big".into(),
        body: "x".repeat(1_100_000),
    };
    // As an older version (or a bug) could have left them: the writer's checks bypassed.
    let rows: Vec<(&str, String, String)> = vec![
        ("revocations", u1.to_string(), json(&revoked(u1))),
        ("nope", "k".into(), json(&revoked(u1))),
        ("revocations", "k".into(), "not an event".into()),
        ("broker", "/sub/big".into(), json(&big)),
        ("revocations", u2.to_string(), json(&revoked(u2))),
    ];
    for (family, key, payload) in &rows {
        c.execute(
            "INSERT INTO outbox (family, key, payload) VALUES ($1, $2, $3)",
            &[family, key, payload],
        )
        .await
        .unwrap();
    }

    let servers = kafka_servers();
    let prefix = topic_prefix();
    let env: HashMap<&str, String> = [
        ("DATABASE_URL", url.clone()),
        ("SECURITY_JWT_SECRET", SECRET.to_string()),
        ("KAFKA_BOOTSTRAP_SERVERS", servers.clone()),
        ("KAFKA_TOPIC_PREFIX", prefix),
        ("DISCODEIT_INSTANCE_ID", format!("relay-{}", Uuid::new_v4())),
    ]
    .into_iter()
    .collect();
    let config = Arc::new(Config::from_lookup(|k| env.get(k).cloned()).unwrap());
    // A consumer first, so the published events can be seen arriving.
    let bus = EventBus::default();
    let mut events = bus.subscribe();
    let ready = Arc::new(AtomicBool::new(false));
    start_consumer(config.clone(), servers.clone(), bus, ready.clone()).unwrap();
    eventually(60, || async { ready.load(Ordering::Acquire).then_some(()) }).await;
    let publisher = Arc::new(Publisher::new(&config, &servers).unwrap());
    spawn_relay(url, format!("{}/test", config.instance_id), publisher);

    // Different keys, so possibly different partitions: both arrive, in either order.
    let mut got = Vec::new();
    while got.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("event through Kafka")
            .unwrap();
        match &*e {
            Event::UserRevoked { user_id, .. } => got.push(*user_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    got.sort();
    let mut want = vec![u1, u2];
    want.sort();
    assert_eq!(got, want);
    let sent = eventually(20, || async {
        let rows = c
            .query(
                "SELECT id FROM outbox WHERE sent_at IS NOT NULL ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        (rows.len() == 2).then(|| rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>())
    })
    .await;
    assert_eq!(sent, vec![1, 5]);
    let dead: Vec<(String, i64, String, String)> = eventually(20, || async {
        let rows = c
            .query(
                "SELECT source, outbox_id, kind, error FROM dead_letters ORDER BY outbox_id",
                &[],
            )
            .await
            .unwrap();
        (rows.len() == 3).then(|| {
            rows.iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()
        })
    })
    .await;
    assert!(dead.iter().all(|d| d.0 == "relay"));
    assert_eq!(dead.iter().map(|d| d.1).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(dead[0].3.contains("unknown family"), "{}", dead[0].3);
    assert!(dead[1].3.contains("not an event"), "{}", dead[1].3);
    assert!(
        dead[2].3.contains("too large") || dead[2].3.contains("Message size too large"),
        "{}",
        dead[2].3
    );
    assert_eq!(
        c.query_one("SELECT count(*) FROM outbox", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        2,
        "dead letters leave the outbox"
    );
}
