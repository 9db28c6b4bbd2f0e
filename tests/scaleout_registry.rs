//! The Redis JWT registry across instances: two servers on one database and one Redis see the
//! same sessions; a Redis outage is a 503 on auth paths and heals by itself.
//! Redis comes from `scripts/test.sh` (REDIS_URL); the outage test runs a private redis-server.

mod common;

use common::*;
use reqwest::Method;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379/".into())
}

/// Two instances sharing one database and one Redis namespace.
async fn pair(redis: &str) -> (TestServer, TestServer) {
    let prefix = format!("dtest:{}:", uuid::Uuid::new_v4().simple());
    let env = [("REDIS_URL", redis), ("REDIS_KEY_PREFIX", prefix.as_str())];
    let (url, db) = fresh_database().await;
    let a = TestServer::start_on_db(&url, &db, &env).await;
    let b = TestServer::start_on_db(&url, &db, &env).await;
    (a, b)
}

/// The same request on another instance: same token and cookies, other base URL.
fn on(api: &Api, server: &TestServer) -> Api {
    let mut other = api.clone();
    other.base = server.base.clone();
    other
}

#[tokio::test]
async fn sessions_are_shared_between_instances() {
    let (a, b) = pair(&redis_url()).await;
    let mut on_a = a.client();
    on_a.register("carol").await;
    let on_b = on(&on_a, &b);

    // Login on A: the token works on B, and B sees the user online.
    let me = on_b.get_ok("/api/users").await;
    let carol = me
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap();
    assert_eq!(carol["online"], true);

    // Refresh on B rotates for both: the old refresh token is refused on A.
    let old_refresh = on_a.cookie("refresh_token").unwrap();
    let r = on_b
        .req(Method::POST, "/api/auth/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let replay = reqwest::Client::new()
        .post(on_a.url("/api/auth/refresh"))
        .header(
            "cookie",
            format!("refresh_token={old_refresh}; XSRF-TOKEN=x"),
        )
        .header("X-XSRF-TOKEN", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);

    // Logout on B: the access token is refused on A within a second.
    let raw = r.text().await.unwrap();
    let token: String = serde_json::from_str(&raw).unwrap_or(raw);
    let mut on_b = on_b;
    on_b.token = Some(token.clone());
    on_a.token = Some(token);
    assert_eq!(on_a.get("/api/users").await.status(), 200);
    let r = on_b
        .req(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "logout {}", r.status());
    let t0 = Instant::now();
    let r = on_a.get("/api/users").await;
    assert_eq!(
        r.status(),
        401,
        "token still accepted on A after logout on B"
    );
    assert!(t0.elapsed() < Duration::from_secs(1));
    // And the user shows offline everywhere.
    let mut admin = a.client();
    admin.admin().await;
    let users = on(&admin, &b).get_ok("/api/users").await;
    let carol = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap();
    assert_eq!(carol["online"], false);
}

fn spawn_redis(port: u16) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt redis-server)")
}

async fn wait_redis(port: u16) {
    eventually(10, || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn redis_outage_is_503_and_recovers_by_itself() {
    let port = free_port();
    let mut redis = spawn_redis(port);
    wait_redis(port).await;
    let url = format!("redis://127.0.0.1:{port}/");
    let (a, _b) = pair(&url).await;
    let mut api = a.client();
    api.register("dave").await;
    assert_eq!(api.get("/api/users").await.status(), 200);

    let _ = redis.kill();
    let _ = redis.wait();
    let r = api.get("/api/users").await;
    let body = expect_error(r, 503, "SERVICE_UNAVAILABLE").await;
    assert!(body["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("session store"));
    let r = api.login_raw("dave", "p@ssw0rd1").await;
    assert_eq!(r.status(), 503);

    // Redis returns (empty: its data is gone, so sessions start over), and auth works again
    // without restarting the server.
    let mut redis = spawn_redis(port);
    wait_redis(port).await;
    let api2 = api.clone();
    eventually(10, || {
        let api = api2.clone();
        async move { (api.login_raw("dave", "p@ssw0rd1").await.status() == 200).then_some(()) }
    })
    .await;
    let mut fresh = a.client();
    fresh.login("dave", "p@ssw0rd1").await;
    assert_eq!(fresh.get("/api/users").await.status(), 200);
    let _ = redis.kill();
    let _ = redis.wait();
}
