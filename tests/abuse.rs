//! Issue 11, finding 7: brute force and careless defaults.
//!
//! Login and sign-up are throttled per client IP and per username (429, ErrorResponse,
//! `Retry-After`), forwarded addresses count only from a trusted proxy, downloads are
//! `nosniff`, and message paging refuses a `page * size` that overflows. (Published default
//! secrets and passwords: tests/cli.rs.)

mod common;

use common::*;
use reqwest::{Method, Response};
use serde_json::json;

const LIMITED: [(&str, &str); 4] = [
    ("DISCODEIT_AUTH_IP_BURST", "5"),
    ("DISCODEIT_AUTH_IP_PER_MINUTE", "1"),
    ("DISCODEIT_AUTH_USERNAME_BURST", "3"),
    ("DISCODEIT_AUTH_USERNAME_PER_MINUTE", "1"),
];

async fn login_from(api: &Api, username: &str, real_ip: Option<&str>) -> Response {
    api.csrf().await;
    let mut req = api
        .req(Method::POST, "/api/auth/login")
        .json(&json!({"username": username, "password": "wrong-password-1!"}));
    if let Some(ip) = real_ip {
        req = req.header("x-real-ip", ip).header("x-forwarded-for", ip);
    }
    req.send().await.unwrap()
}

async fn expect_throttled(r: Response, limit: &str) {
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    let body = expect_error(r, 429, "TOO_MANY_REQUESTS").await;
    assert_eq!(body["details"]["limit"], limit, "{body}");
    assert_eq!(body["details"]["retryAfterSeconds"], retry_after);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn login_and_signup_are_throttled_per_username_and_per_ip() {
    let server = TestServer::start_with(&LIMITED).await;
    let api = server.client();
    // Attempts per IP: 5. Per username: 3.
    api.signup("alice").await; // ip 4 left, alice 2 left
    for _ in 0..2 {
        expect_error(
            login_from(&api, "alice", None).await,
            401,
            "BadCredentialsException",
        )
        .await;
    } // ip 2 left, alice 0 left
    expect_throttled(
        login_from(&api, "alice", None).await,
        "attempts per username",
    )
    .await; // ip 1 left
            // Even the right password waits: the limit is on attempts.
    let r = api.login_raw("alice", "p@ssw0rd1").await; // ip 0 left
    expect_throttled(r, "attempts per username").await;
    // Another username from the same address: the address is out of attempts now.
    expect_throttled(
        login_from(&api, "bobby", None).await,
        "attempts per client IP",
    )
    .await;
    let r = api
        .signup_raw("carol", "carol@example.com", "p@ssw0rd1", None)
        .await;
    expect_throttled(r, "attempts per client IP").await;
    // Without a trusted proxy, naming another address changes nothing.
    expect_throttled(
        login_from(&api, "bobby", Some("203.0.113.9")).await,
        "attempts per client IP",
    )
    .await;
    assert_eq!(
        server
            .count("SELECT count(*) FROM users WHERE username = 'carol'")
            .await,
        0
    );
    // The server keeps serving.
    let health = reqwest::get(format!("{}/actuator/health", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    api.csrf().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let mut env = LIMITED.to_vec();
    env.push(("DISCODEIT_TRUSTED_PROXIES", "127.0.0.1/32, ::1"));
    let server = TestServer::start_with(&env).await;
    let api = server.client();
    for i in 0..5 {
        expect_error(
            login_from(&api, &format!("user{i}"), Some("198.51.100.1")).await,
            401,
            "InternalAuthenticationServiceException",
        )
        .await;
    }
    expect_throttled(
        login_from(&api, "user9", Some("198.51.100.1")).await,
        "attempts per client IP",
    )
    .await;
    // Another client behind the same proxy is not affected.
    expect_error(
        login_from(&api, "user9", Some("198.51.100.2")).await,
        401,
        "InternalAuthenticationServiceException",
    )
    .await;
    // And a real login from there works.
    let alice = server.client();
    alice.signup("alice").await; // from the proxy itself (127.0.0.1): its own budget
    let r = alice
        .req(Method::POST, "/api/auth/login")
        .header("x-real-ip", "198.51.100.3")
        .json(&json!({"username": "alice", "password": "p@ssw0rd1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn downloads_are_nosniff_and_paging_refuses_overflow() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let channel = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = server.client();
    alice.register("alice").await;
    let html = b"<html><script>alert(1)</script></html>".to_vec();
    let r = alice
        .post_message(
            &channel,
            "look",
            vec![("a.txt", "text/plain", html.clone())],
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: serde_json::Value = r.json().await.unwrap();
    let id = m["attachments"][0]["id"].as_str().unwrap().to_string();
    alice.wait_uploaded(&id).await;
    let r = reqwest::get(format!("{}/api/binaryContents/{id}/download", server.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["content-type"], "text/plain");

    let path = |q: &str| format!("/api/messages?channelId={channel}&{q}");
    for q in [
        format!("page={}&size=50", i64::MAX),
        format!("page={}&size=2", i64::MAX / 2 + 1),
        "page=-1".to_string(),
        "size=0".to_string(),
        "size=1001".to_string(),
        "page=abc".to_string(),
        "size=1e3".to_string(),
        format!("page={}0", i64::MAX),
    ] {
        let r = alice.get(&path(&q)).await;
        expect_error(r, 400, "INVALID_REQUEST").await;
    }
    // Pages are bounded (1,000,000): past it a clear 400, at it just an empty page.
    let r = alice.get(&path(&format!("page={}&size=1", i64::MAX))).await;
    expect_error(r, 400, "INVALID_REQUEST").await;
    let page = alice.get_ok(&path("page=1000000&size=1")).await;
    assert_eq!(page["content"], json!([]));
    assert_eq!(
        alice.get_ok(&path("size=1")).await["content"][0]["content"],
        "look"
    );
}
