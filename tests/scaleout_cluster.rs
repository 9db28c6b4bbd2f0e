//! Scale-out acceptance on the shared three-instance cluster (tests/common/cluster.rs):
//! STOMP fan-out of new, edited and deleted messages and SSE fan-out across instances, SSE
//! replay on another instance, logout revocation everywhere, and nginx (the deployment's own
//! config) in front: X-Upstream-Addr, the strategies, and SockJS HTTP sessions kept on one
//! instance under round robin.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/stomp.rs"]
mod stomp;

use cluster::Cluster;
use common::*;
use discodeit::proto::stomp::Command;
use reqwest::Method;
use serde_json::json;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use stomp::{End, Kind, StompClient, WAIT};

/// The same user's client pointed at another base URL (same cookies and token).
fn via(api: &Api, base: &str) -> Api {
    let mut other = api.clone();
    other.base = base.to_string();
    other
}

fn unique(name: &str) -> String {
    format!("{name}{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

async fn open_sse(api: &Api, last_id: Option<&str>) -> SseReader {
    let mut req = api
        .req(Method::GET, "/api/sse")
        .header("accept", "text/event-stream");
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "GET /api/sse");
    let mut sse = SseReader::new(r);
    let connect = sse
        .next(Duration::from_secs(5))
        .await
        .expect("connect event");
    assert_eq!(connect.event.as_deref(), Some("connect"));
    sse
}

/// Next event named `name` whose data contains `needle`.
async fn expect_event(
    sse: &mut SseReader,
    name: &str,
    needle: &str,
) -> discodeit::proto::sse::SseMessage {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sse
            .next_named(name, left)
            .await
            .unwrap_or_else(|| panic!("no {name} event containing {needle}"));
        if m.data.contains(needle) {
            return m;
        }
    }
}

fn dest(channel: &str) -> String {
    format!("/sub/channels.{channel}.messages")
}

/// A public channel created by the admin (through instance A).
async fn public_channel(c: &Cluster, name: &str) -> String {
    let mut admin = Api::new(&c.at(0).base);
    admin.admin().await;
    admin.create_public_channel(&unique(name)).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn stomp_subscriber_on_a_receives_messages_sent_on_b_and_c() {
    let c = Cluster::shared().await;
    let channel = public_channel(c, "stompfan").await;
    let mut reader = Api::new(&c.at(0).base);
    reader.register(&unique("stompreader")).await;
    let mut writer = Api::new(&c.at(1).base);
    writer.register(&unique("stompwriter")).await;

    let mut on_a =
        StompClient::connected(&c.at(0).base, Kind::Raw, reader.token.as_deref().unwrap()).await;
    assert_eq!(
        on_a.subscribe_confirmed("s", &dest(&channel)).await.command,
        Command::Receipt
    );

    // Over STOMP on B...
    let mut on_b =
        StompClient::connected(&c.at(1).base, Kind::Raw, writer.token.as_deref().unwrap()).await;
    let receipt = on_b
        .send_json(
            "/pub/messages",
            &json!({"content": "via stomp on B", "channelId": channel, "authorId": writer.user_id()}),
            "r1",
        )
        .await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    // ...then over HTTP on C.
    let created = via(&writer, &c.at(2).base)
        .send_text(&channel, "via http on C")
        .await;

    let (_, first) = on_a.next_message_json().await;
    assert_eq!(first["content"], "via stomp on B");
    let (frame, second) = on_a.next_message_json().await;
    assert_eq!(second["id"], created["id"]);
    assert_eq!(second["content"], "via http on C");
    assert_eq!(frame.header("destination"), Some(dest(&channel).as_str()));
}

#[tokio::test]
async fn message_edits_and_deletions_reach_subscribers_on_every_instance() {
    let c = Cluster::shared().await;
    let channel = public_channel(c, "msgevents").await;
    let events = format!("/sub/channels.{channel}.message-events");
    let mut reader = Api::new(&c.at(0).base);
    reader.register(&unique("evreader")).await;
    let mut writer = Api::new(&c.at(1).base);
    writer.register(&unique("evwriter")).await;
    let token = reader.token.clone().unwrap();
    // Subscribers on A and C; the edit goes through B, the deletion through C.
    let mut subscribers = Vec::new();
    for i in [0, 2] {
        let mut s = StompClient::connected(&c.at(i).base, Kind::Raw, &token).await;
        s.subscribe_confirmed("new", &dest(&channel)).await;
        s.subscribe_confirmed("ev", &events).await;
        subscribers.push(s);
    }
    let created = writer.send_text(&channel, "draft").await;
    let id = created["id"].as_str().unwrap();
    let r = writer
        .send_json(
            Method::PATCH,
            &format!("/api/messages/{id}"),
            &json!({"newContent": "edited across instances"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = via(&writer, &c.at(2).base)
        .delete(&format!("/api/messages/{id}"))
        .await;
    assert_eq!(r.status(), 204);

    for s in &mut subscribers {
        // One channel key, one partition: creation, edit and deletion arrive in commit order.
        let (frame, dto) = s.next_message_json().await;
        assert_eq!(frame.header("subscription"), Some("new"));
        assert_eq!(dto["id"], id);
        let (frame, updated) = s.next_message_json().await;
        assert_eq!(frame.header("subscription"), Some("ev"));
        assert_eq!(updated["type"], "updated");
        assert_eq!(updated["message"]["content"], "edited across instances");
        let (frame, deleted) = s.next_message_json().await;
        assert_eq!(frame.header("subscription"), Some("ev"));
        assert_eq!(
            deleted,
            json!({"type": "deleted", "messageId": id, "channelId": channel})
        );
    }
}

#[tokio::test]
async fn sockjs_xhr_streaming_sessions_work_through_round_robin() {
    let c = Cluster::shared().await;
    // Its own round-robin nginx, so other tests' requests do not move the rotation.
    let lb = c.start_nginx("round_robin", &[]).await;
    let channel = public_channel(c, "sockjsrr").await;
    let mut user = Api::new(&lb.base);
    user.register(&unique("sockjs")).await;
    let token = user.token.clone().unwrap();
    // Six sessions: under round robin their requests would scatter over the three instances
    // (a session's xhr_send landing elsewhere is a 404); nginx hashes them on the session id.
    let mut sessions = Vec::new();
    for i in 0..6 {
        let mut s = StompClient::connected(&lb.base, Kind::XhrStreaming, &token).await;
        let r = s
            .subscribe_confirmed(&format!("s{i}"), &dest(&channel))
            .await;
        assert_eq!(r.command, Command::Receipt);
        sessions.push(s);
    }
    let sent = sessions[0]
        .send_json(
            "/pub/messages",
            &json!({"content": "over xhr_streaming", "channelId": channel, "authorId": user.user_id()}),
            "x1",
        )
        .await;
    assert_eq!(sent.command, Command::Receipt, "{sent:?}");
    user.send_text(&channel, "over http").await;
    for s in &mut sessions {
        assert_eq!(
            s.next_message_json().await.1["content"],
            "over xhr_streaming"
        );
        assert_eq!(s.next_message_json().await.1["content"], "over http");
    }
    // The /ws/info requests themselves went round robin.
    let http = reqwest::Client::new();
    let mut upstreams = std::collections::HashSet::new();
    for _ in 0..3 {
        let r = http
            .get(format!("{}/ws/info", lb.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        upstreams.insert(r.headers()["x-upstream-addr"].to_str().unwrap().to_string());
    }
    assert_eq!(
        upstreams.len(),
        3,
        "info requests go round robin: {upstreams:?}"
    );
    lb.proc.kill();
}

#[tokio::test]
async fn sse_clients_receive_events_produced_on_other_instances() {
    let c = Cluster::shared().await;
    let (a, b, cc) = (&c.at(0).base, &c.at(1).base, &c.at(2).base);
    let mut u1 = Api::new(a);
    let n1 = unique("sseone");
    let user1 = u1.register(&n1).await;
    let mut sse = open_sse(&u1, None).await;

    // A second user signs up and logs in on B: users.refresh for everyone.
    let mut u2 = Api::new(b);
    let n2 = unique("ssetwo");
    let user2 = u2.register(&n2).await;
    let id2 = user2["id"].as_str().unwrap();
    expect_event(&mut sse, "users.refresh", id2).await;

    // On B they open a private channel with user 1: channels.refresh for its members.
    let channel = u2
        .create_private_channel(&[user1["id"].as_str().unwrap(), id2])
        .await;
    let ch = channel["id"].as_str().unwrap();
    expect_event(&mut sse, "channels.refresh", ch).await;

    // On C they post: user 1 (whose stream is on A) gets the notification.
    let on_c = via(&u2, cc);
    let text = unique("hello from C ");
    on_c.send_text(ch, &text).await;
    let note = expect_event(&mut sse, "notifications", &text).await;
    assert!(note.id.is_some(), "notifications carry an event id");
}

#[tokio::test]
async fn sse_reconnect_to_another_instance_replays_without_gap() {
    let c = Cluster::shared().await;
    let mut u1 = Api::new(&c.at(0).base);
    let user1 = u1.register(&unique("replayone")).await;
    let mut u2 = Api::new(&c.at(1).base);
    let user2 = u2.register(&unique("replaytwo")).await;
    let channel = u2
        .create_private_channel(&[user1["id"].as_str().unwrap(), user2["id"].as_str().unwrap()])
        .await;
    let ch = channel["id"].as_str().unwrap();

    let mut sse = open_sse(&u1, None).await;
    u2.send_text(ch, "replay-0").await;
    let first = expect_event(&mut sse, "notifications", "replay-0").await;
    let last_id = first.id.clone().expect("event id");
    drop(sse);

    // While user 1 is away, messages keep coming (posted on B).
    for i in 1..=5 {
        u2.send_text(ch, &format!("replay-{i}")).await;
    }
    // User 1 comes back on C with the last id it saw: everything after it, in order.
    let on_c = via(&u1, &c.at(2).base);
    // Give C the moment Kafka needs to have those events (a reconnect in real life takes
    // longer than that anyway); without it they would arrive live, which proves less.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sse = open_sse(&on_c, Some(&last_id)).await;
    u2.send_text(ch, "replay-6").await;
    let mut got = Vec::new();
    let mut ids = Vec::new();
    while got.len() < 6 {
        let m = sse
            .next_named("notifications", Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("stream ended after {got:?}"));
        let v: Value = serde_json::from_str(&m.data).unwrap();
        got.push(v["content"].as_str().unwrap().to_string());
        ids.push(uuid::Uuid::parse_str(m.id.as_deref().unwrap()).unwrap());
    }
    // Every event after the last id, each once, in id order (notifications of back-to-back
    // messages are written by concurrent tasks, so their order among themselves is free).
    got.sort();
    let want: Vec<String> = (1..=6).map(|i| format!("replay-{i}")).collect();
    assert_eq!(got, want);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids out of order: {ids:?}"
    );
    assert!(ids[0] > uuid::Uuid::parse_str(&last_id).unwrap());
}

#[tokio::test]
async fn logout_on_one_instance_revokes_everywhere_within_a_second() {
    let c = Cluster::shared().await;
    let mut on_a = Api::new(&c.at(0).base);
    on_a.register(&unique("revoked")).await;
    let on_b = via(&on_a, &c.at(1).base);
    let on_c = via(&on_a, &c.at(2).base);
    assert_eq!(on_b.get("/api/users").await.status(), 200);
    let mut stream_on_c = open_sse(&on_c, None).await;
    let mut stomp_on_b =
        StompClient::connected(&c.at(1).base, Kind::Raw, on_a.token.as_deref().unwrap()).await;

    let r = on_a
        .req(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "logout {}", r.status());
    let t0 = Instant::now();
    for api in [&on_b, &on_c] {
        loop {
            if api.get("/api/users").await.status() == 401 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "token still accepted on {}",
                api.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let refused_after = t0.elapsed();
    // The live stream on C is closed by the revocation event (not by a timeout).
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while stream_on_c.next(Duration::from_secs(5)).await.is_some() {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "SSE stream on C still open 5 s after logout"
    );
    let sse_closed_after = t0.elapsed();
    // And so is the STOMP session on B (an ERROR frame may precede the close).
    assert!(
        matches!(stomp_on_b.end(WAIT).await, End::Closed(_)),
        "STOMP session on B still open"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    eprintln!(
        "logout on A: token refused on B and C after {:.0} ms, SSE on C closed after {:.0} ms, \
         STOMP on B closed after {:.0} ms",
        refused_after.as_secs_f64() * 1e3,
        sse_closed_after.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64() * 1e3
    );
}

/// `n` sequential requests through `nginx`; how many each instance answered.
async fn spread(c: &Cluster, base: &str, n: usize) -> HashMap<String, usize> {
    let http = reqwest::Client::new();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = http
            .get(format!("{base}/api/auth/csrf-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let upstream = r.headers()["x-upstream-addr"].to_str().unwrap().to_string();
        let inst = c
            .instance_of(&upstream)
            .unwrap_or_else(|| panic!("unknown upstream {upstream}"));
        *counts.entry(inst.name.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn nginx_routes_api_and_web_and_names_the_upstream() {
    let c = Cluster::shared().await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/actuator/health", c.nginx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(c
        .instance_of(r.headers()["x-upstream-addr"].to_str().unwrap())
        .is_some());
    // An API error still names the upstream (`always`).
    let r = http
        .get(format!("{}/api/users", c.nginx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().contains_key("x-upstream-addr"));
    // Everything else is the web client, with SPA fallback.
    let r = http
        .get(format!("{}/channels/some/deep/link", c.nginx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("<!doctype html"));
    // A whole REST flow through nginx.
    let mut api = Api::new(&c.nginx.base);
    api.register(&unique("vianginx")).await;
    assert_eq!(api.get("/api/users").await.status(), 200);
}

#[tokio::test]
async fn nginx_strategies_spread_requests_as_configured() {
    let c = Cluster::shared().await;
    let rr = c.start_nginx("round_robin", &[]).await;
    let counts = spread(c, &rr.base, 30).await;
    assert_eq!(
        counts.len(),
        3,
        "round robin uses every instance: {counts:?}"
    );
    assert!(
        counts.values().all(|&n| n == 10),
        "round robin is even: {counts:?}"
    );

    let ip = c.start_nginx("ip_hash", &[]).await;
    let counts = spread(c, &ip.base, 30).await;
    assert_eq!(
        counts.len(),
        1,
        "ip_hash keeps one client on one instance: {counts:?}"
    );

    let weighted = c
        .start_nginx("weight", &[("BACKEND_WEIGHTS", "3 2 1")])
        .await;
    let counts = spread(c, &weighted.base, 60).await;
    assert_eq!(
        (counts.get("a"), counts.get("b"), counts.get("c")),
        (Some(&30), Some(&20), Some(&10)),
        "weights 3:2:1"
    );

    let lc = c.start_nginx("least_conn", &[]).await;
    let counts = spread(c, &lc.base, 30).await;
    assert_eq!(
        counts.len(),
        3,
        "least_conn with idle instances spreads: {counts:?}"
    );
    for n in [rr, ip, weighted, lc] {
        n.proc.kill();
    }
}

/// Operations through the deployment's nginx: nginx's request id reaches the backend (one id
/// in both logs), nothing under /actuator but the aggregate health goes out, and every
/// replica's admin listener reports ready with the multi-instance gauges (Kafka lag per
/// topic from librdkafka's statistics, the outbox backlog) once a message went through.
#[tokio::test]
async fn nginx_passes_request_ids_hides_actuator_and_every_replica_is_scraped() {
    use discodeit::telemetry::metrics::{exposition, names};
    let c = Cluster::shared().await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/api/auth/csrf-token", c.nginx.base))
        .send()
        .await
        .unwrap();
    let id = r.headers()["discodeit-request-id"].to_str().unwrap();
    // nginx's $request_id: 32 hex characters, generated by nginx, not the backend's UUID.
    assert_eq!(id.len(), 32);
    let nginx_line = eventually(10, || {
        let text = std::fs::read_to_string(c.nginx_dir().join("access.log")).unwrap_or_default();
        let id = id.to_string();
        async move {
            text.lines()
                .find(|l| l.ends_with(&format!("rid={id}")))
                .map(str::to_string)
        }
    })
    .await;
    assert!(nginx_line.contains("/api/auth/csrf-token"), "{nginx_line}");

    for path in [
        "/actuator/prometheus",
        "/actuator/health/readiness",
        "/actuator/health/liveness",
    ] {
        let r = http
            .get(format!("{}{path}", c.nginx.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} through nginx");
    }
    let r = http
        .get(format!("{}/actuator/health", c.nginx.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["components"]["redis"]["status"], "UP");
    assert_eq!(body["components"]["kafka"]["status"], "UP");

    let channel = public_channel(c, "ops").await;
    let mut api = Api::new(&c.nginx.base);
    api.register(&unique("opsuser")).await;
    api.send_text(&channel, "counted").await;
    for i in &c.instances {
        let samples = eventually(20, || {
            let url = format!("{}/actuator/prometheus", i.admin_base);
            let http = http.clone();
            async move {
                let text = http.get(url).send().await.ok()?.text().await.ok()?;
                let s = exposition::parse(&text);
                // librdkafka reports every 5 s: wait for the first report with the topics.
                exposition::value(&s, names::KAFKA_LAG, &[]).map(|_| s)
            }
        })
        .await;
        assert_eq!(exposition::value(&samples, names::READY, &[]), Some(1.0));
        let topics: Vec<&String> = samples
            .iter()
            .filter(|s| s.name == names::KAFKA_LAG)
            .map(|s| &s.labels["topic"])
            .collect();
        assert!(
            topics.iter().any(|t| t.ends_with("messages")),
            "{}: {topics:?}",
            i.name
        );
        assert!(exposition::value(&samples, names::OUTBOX_BACKLOG, &[]).is_some());
        assert!(exposition::value(&samples, names::OUTBOX_LAG, &[]).is_some());
    }
}

/// The API reference through the deployment's nginx: Swagger UI's files from the web root
/// (the nginx image copies swagger-ui/dist there), the document proxied to a backend.
#[tokio::test]
async fn nginx_serves_swagger_ui_and_proxies_the_api_document() {
    let c = Cluster::shared().await;
    let root = c.dir.join("api-reference-root");
    std::fs::create_dir_all(root.join("swagger-ui")).unwrap();
    std::fs::write(root.join("index.html"), "<title>web client</title>").unwrap();
    std::fs::write(
        root.join("swagger-ui/index.html"),
        "<title>swagger ui</title>",
    )
    .unwrap();
    let lb = c
        .start_nginx("round_robin", &[("NGINX_WEB_ROOT", root.to_str().unwrap())])
        .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{}{path}", lb.base)).send();
    for path in ["/swagger-ui", "/swagger-ui.html"] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 302, "{path}");
        assert_eq!(r.headers()["location"], "/swagger-ui/index.html");
    }
    let r = get("/swagger-ui/index.html").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("swagger ui"));
    // No fallback to the web client's index.html for a missing file.
    assert_eq!(get("/swagger-ui/missing.js").await.unwrap().status(), 404);
    let r = get("/v3/api-docs").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-upstream-addr"));
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let r = get("/v3/api-docs.yaml").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("openapi: 3.1.0"));
    lb.proc.kill();
}
