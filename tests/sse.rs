//! Server-Sent Events over real HTTP streaming: audiences, the four Discodeit events, replay
//! by last event id (header and query forms), reset, auth errors, slow streams, keep-alive.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);

async fn open(api: &Api, last_id: Option<(&str, &str)>) -> SseReader {
    let mut path = "/api/sse".to_string();
    let mut req = api
        .req(Method::GET, &path)
        .header("accept", "text/event-stream");
    match last_id {
        Some(("header", id)) => req = req.header("Last-Event-ID", id),
        Some((param, id)) => {
            path = format!("/api/sse?{param}={id}");
            req = api
                .req(Method::GET, &path)
                .header("accept", "text/event-stream");
        }
        None => {}
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    let mut s = SseReader::new(r);
    let first = s.next(WAIT).await.expect("connect event");
    assert_eq!(first.event.as_deref(), Some("connect"));
    s
}

/// Two users sharing a private channel; `a` posts, `b` receives notifications.
async fn pair(server: &TestServer) -> (Api, Api, String) {
    let mut a = server.client();
    let mut b = server.client();
    a.register("alice").await;
    b.register("bob").await;
    let ch = a
        .create_private_channel(&[&a.user_id(), &b.user_id()])
        .await;
    (a, b, ch["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn notifications_reach_every_stream_of_the_receiver_only() {
    let server = TestServer::start().await;
    let (a, b, ch) = pair(&server).await;
    let mut b1 = open(&b, None).await;
    let mut b2 = open(&b, None).await;
    let mut a1 = open(&a, None).await;
    let msg = a.send_text(&ch, "hello bob").await;
    for s in [&mut b1, &mut b2] {
        let ev = s
            .next_named("notifications", WAIT)
            .await
            .expect("notification");
        let n: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(n["receiverId"], b.user_id());
        assert_eq!(n["title"], "alice");
        assert_eq!(n["content"], "hello bob");
        assert_eq!(n["type"], "NEW_MESSAGE");
        assert_eq!(n["targetId"], msg["channelId"]);
        assert!(ev.id.is_some());
    }
    assert!(
        a1.next_named("notifications", QUIET).await.is_none(),
        "author got a notification"
    );
}

#[tokio::test]
async fn rest_actions_produce_the_four_events_with_their_audiences() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let (a, b, _) = pair(&server).await;
    let mut carol = server.client();
    carol.register("carol").await;
    let mut sa = open(&a, None).await;
    let mut sc = open(&carol, None).await;

    // channels.refresh: a public channel → everyone, {channelId}.
    let public = admin.create_public_channel("general").await;
    for s in [&mut sa, &mut sc] {
        let ev = s.next_named("channels.refresh", WAIT).await.unwrap();
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(v, json!({"channelId": public["id"]}));
    }
    // A private channel → only its participants, with the full ChannelDto.
    let private = a
        .create_private_channel(&[&a.user_id(), &b.user_id()])
        .await;
    let ev = sa.next_named("channels.refresh", WAIT).await.unwrap();
    let v: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(v["id"], private["id"]);
    assert_eq!(v["type"], "PRIVATE");
    assert_eq!(v["participants"].as_array().unwrap().len(), 2);
    assert!(
        sc.next_named("channels.refresh", QUIET).await.is_none(),
        "outsider saw a private channel"
    );

    // binaryContents.status: an attachment in the public channel turns SUCCESS → everyone.
    let r = a
        .post_message(
            public["id"].as_str().unwrap(),
            "file",
            vec![("a.txt", "text/plain", b"hello".to_vec())],
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    let att = m["attachments"][0]["id"].clone();
    for s in [&mut sa, &mut sc] {
        let ev = s.next_named("binaryContents.status", WAIT).await.unwrap();
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(v["id"], att);
        assert_eq!(v["uploadStatus"], "SUCCESS");
        assert_eq!(v["fileName"], "a.txt");
    }
    // In a private channel: members only.
    let r = a
        .post_message(
            private["id"].as_str().unwrap(),
            "secret",
            vec![("s.txt", "text/plain", b"s".to_vec())],
        )
        .await;
    assert_eq!(r.status(), 201);
    assert!(sa.next_named("binaryContents.status", WAIT).await.is_some());
    assert!(
        sc.next_named("binaryContents.status", QUIET)
            .await
            .is_none(),
        "outsider saw a private file"
    );

    // users.refresh: sign-up, login and logout of someone → everyone.
    let mut dave = server.client();
    let d = dave.signup("dave").await;
    for s in [&mut sa, &mut sc] {
        let ev = s.next_named("users.refresh", WAIT).await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&ev.data).unwrap(),
            json!({"userId": d["id"]})
        );
    }
    dave.login("dave", "p@ssw0rd1").await;
    let ev = sa.next_named("users.refresh", WAIT).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&ev.data).unwrap(),
        json!({"userId": d["id"]})
    );
    let r = dave
        .req(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ev = sc.next_named("users.refresh", WAIT).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&ev.data).unwrap(),
        json!({"userId": d["id"]})
    );

    // notifications: a role change notifies its target (ROLE_CHANGED).
    let mut sb = open(&b, None).await;
    let r = admin
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": b.user_id(), "newRole": "CHANNEL_MANAGER"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let ev = sb.next_named("notifications", WAIT).await.unwrap();
    let n: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(n["type"], "ROLE_CHANGED");
    assert_eq!(n["title"], "권한 변경: USER -> CHANNEL_MANAGER");
}

async fn replay_case(form: &str) {
    let server = TestServer::start().await;
    let (a, b, ch) = pair(&server).await;
    let mut s = open(&b, None).await;
    a.send_text(&ch, "before").await;
    let last = s
        .next_named("notifications", WAIT)
        .await
        .unwrap()
        .id
        .unwrap();
    drop(s);
    let mut expected = Vec::new();
    for i in 0..5 {
        let m = a.send_text(&ch, &format!("missed {i}")).await;
        expected.push(m["content"].as_str().unwrap().to_string());
    }
    // Notifications are created right after the message commit; wait until all 5 exist.
    eventually(5, || async {
        let list: Value = b.get("/api/notifications").await.json().await.unwrap();
        (list.as_array().unwrap().len() == 6).then_some(())
    })
    .await;
    let mut s = open(&b, Some((form, &last))).await;
    let mut got = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let ev = s.next(WAIT).await.expect("replayed event");
        assert_eq!(
            ev.event.as_deref(),
            Some("notifications"),
            "only the missed events: {ev:?}"
        );
        let n: Value = serde_json::from_str(&ev.data).unwrap();
        got.push(n["content"].as_str().unwrap().to_string());
        ids.push(ev.id.unwrap());
    }
    assert_eq!(got, expected, "missed events in order");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ids increase");
    // Then live events, with no duplicate at the seam.
    a.send_text(&ch, "live").await;
    let ev = s.next(WAIT).await.unwrap();
    let n: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(n["content"], "live");
    assert!(s.next_named("notifications", QUIET).await.is_none());
}

#[tokio::test]
async fn replay_after_last_event_id_header() {
    replay_case("header").await;
}

#[tokio::test]
async fn replay_after_last_event_id_query() {
    replay_case("lastEventId").await;
}

#[tokio::test]
async fn replay_after_reference_query_name() {
    replay_case("LastEventId").await;
}

#[tokio::test]
async fn unknown_or_too_old_id_yields_reset() {
    let server = TestServer::start_with(&[("DISCODEIT_SSE_REPLAY_MAX_EVENTS", "3")]).await;
    let (a, b, ch) = pair(&server).await;
    // Garbage id.
    let mut s = open(&b, Some(("lastEventId", "not-an-id"))).await;
    assert_eq!(s.next(WAIT).await.unwrap().event.as_deref(), Some("reset"));
    drop(s);
    // An id older than what is kept (only 3 per user).
    let mut s = open(&b, None).await;
    a.send_text(&ch, "first").await;
    let old = s
        .next_named("notifications", WAIT)
        .await
        .unwrap()
        .id
        .unwrap();
    for i in 0..4 {
        a.send_text(&ch, &format!("m{i}")).await;
        s.next_named("notifications", WAIT).await.unwrap();
    }
    drop(s);
    let mut s = open(&b, Some(("header", &old))).await;
    assert_eq!(s.next(WAIT).await.unwrap().event.as_deref(), Some("reset"));
    // An id from before this server started (a v7 id of the past).
    let ancient = "00000000-0000-7000-8000-000000000000";
    let mut s2 = open(&b, Some(("header", ancient))).await;
    assert_eq!(s2.next(WAIT).await.unwrap().event.as_deref(), Some("reset"));
}

/// A client that moved here from a faster instance has seen events this instance may still be
/// about to receive: a live event older than its `Last-Event-ID` is not sent again.
#[tokio::test]
async fn a_live_event_older_than_the_resume_id_is_not_sent_again() {
    let server = TestServer::start().await;
    let (a, b, ch) = pair(&server).await;
    // A v7 id 1.5 s ahead: what a client holds that saw an event this server has yet to see.
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let hex = format!("{ms:012x}");
    let ahead = format!("{}-{}-7000-8000-000000000000", &hex[..8], &hex[8..]);
    let mut s = open(&b, Some(("header", &ahead))).await;
    a.send_text(&ch, "older than the resume id").await;
    assert!(
        s.next_named("notifications", QUIET).await.is_none(),
        "an event the client already saw elsewhere was sent again"
    );
    // Events after the resume id flow as usual.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        a.send_text(&ch, "newer").await;
        if let Some(ev) = s
            .next_named("notifications", Duration::from_millis(300))
            .await
        {
            break ev;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no live event after the resume id"
        );
    };
    let n: Value = serde_json::from_str(&got.data).unwrap();
    assert_eq!(n["content"], "newer");
    assert!(got.id.unwrap().as_str() > ahead.as_str());
}

#[tokio::test]
async fn no_or_bad_token_is_401_without_a_stream() {
    let server = TestServer::start().await;
    let api = server.client();
    let r = api.http.get(api.url("/api/sse")).send().await.unwrap();
    let body = expect_error(r, 401, "TOKEN_NOT_FOUND").await;
    assert!(body["details"].is_object());
    let r = api
        .http
        .get(api.url("/api/sse"))
        .bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.bad")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "INVALID_TOKEN").await;
}

#[tokio::test]
async fn logout_closes_the_users_streams() {
    let server = TestServer::start().await;
    let mut a = server.client();
    a.register("alice").await;
    let mut s = open(&a, None).await;
    let r = a
        .req(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The stream ends (users.refresh may come first).
    let ended = tokio::time::timeout(WAIT, async { while s.next(WAIT).await.is_some() {} }).await;
    assert!(ended.is_ok(), "stream still open after logout");
}

#[tokio::test]
async fn keepalive_comments_flow() {
    let server = TestServer::start_with(&[("DISCODEIT_SSE_KEEPALIVE_SECONDS", "1")]).await;
    let mut a = server.client();
    a.register("alice").await;
    let r = a.req(Method::GET, "/api/sse").send().await.unwrap();
    let mut r = r;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(": ping") {
        let chunk = tokio::time::timeout_at(deadline, r.chunk())
            .await
            .expect("ping in time")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_stream_that_stops_reading_is_dropped_and_others_keep_up() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_QUEUE_MAX_BYTES", "16384"),
        ("DISCODEIT_SOCKET_SEND_BUFFER", "8192"),
    ])
    .await;
    let (a, b, ch) = pair(&server).await;
    let token = b.token.clone().unwrap();
    // A raw client with a tiny receive window that never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(2048).unwrap();
    let mut stalled = sock
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .unwrap();
    stalled
        .write_all(
            format!("GET /api/sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut healthy = open(&b, None).await;
    let body = "x".repeat(1990);
    let total = 400;
    let reader = tokio::spawn(async move {
        // Notifications are created asynchronously per message, so compare as a set.
        let mut seen = std::collections::HashSet::new();
        while seen.len() < total {
            let ev = healthy
                .next_named("notifications", Duration::from_secs(30))
                .await
                .expect("healthy stream kept up");
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            let tag = v["content"]
                .as_str()
                .unwrap()
                .rsplit('#')
                .next()
                .unwrap()
                .to_string();
            assert!(seen.insert(tag), "duplicate event");
        }
    });
    for i in 0..total {
        a.send_text(&ch, &format!("{body}#{i}")).await;
    }
    reader.await.unwrap();
    // Now drain the stalled socket: the server ended that response early.
    let mut all = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                all.extend_from_slice(&buf[..n]);
                if all.ends_with(b"\r\n0\r\n\r\n") {
                    break;
                }
            }
            _ => panic!("stalled stream was not closed by the server"),
        }
    }
    let text = String::from_utf8_lossy(&all);
    let delivered = text.matches("event: notifications").count();
    assert!(
        delivered < total,
        "the stalled stream got everything ({delivered})"
    );
    assert!(
        text.contains(": closed slow_consumer_bytes"),
        "the stalled stream was not told why"
    );
}

#[tokio::test]
async fn a_lapsed_access_session_announces_the_user_offline() {
    let server =
        TestServer::start_with(&[("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", "3")]).await;
    let mut watcher = server.client();
    watcher.register("watcher").await;
    let mut s = open(&watcher, None).await;
    let mut other = server.client();
    let o = other.register("sleepy").await;
    // Sign-up and login announce the user; then, without a refresh, the access session lapses
    // and `users.refresh` announces it a third time (GET /api/users now shows it offline).
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    let mut announcements = 0;
    while announcements < 3 && std::time::Instant::now() < deadline {
        if let Some(ev) = s.next_named("users.refresh", Duration::from_secs(12)).await {
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            if v["userId"] == o["id"] {
                announcements += 1;
            }
        }
    }
    assert!(
        announcements >= 3,
        "no users.refresh when the session lapsed"
    );
    // Reconnect with a fresh token to read the list (the watcher's token lapsed too).
    watcher.login("watcher", "p@ssw0rd1").await;
    let users: Value = watcher.get("/api/users").await.json().await.unwrap();
    let sleepy = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == o["id"])
        .unwrap();
    assert_eq!(sleepy["online"], false);
}
