//! Issue 11, finding 5: session life, with the in-memory and the Redis registry.
//!
//! The refresh token's expiry ends the session everywhere (`/api/auth/me` mints nothing for
//! it), STOMP accepts an expired access token only for a bounded grace, a replayed rotated
//! refresh token ends the whole session, and tokens without `sid` or `typ` are refused.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use discodeit::proto::stomp::Command;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use stomp::{End, Kind, StompClient};
use uuid::Uuid;

/// Registry modes: in memory, and Redis under a fresh key prefix.
fn modes() -> Vec<Vec<(&'static str, String)>> {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379/".into());
    vec![
        vec![],
        vec![
            ("REDIS_URL", redis),
            (
                "REDIS_KEY_PREFIX",
                format!("dtest:{}:", Uuid::new_v4().simple()),
            ),
        ],
    ]
}

async fn start(mode: &[(&'static str, String)], extra: &[(&'static str, &str)]) -> TestServer {
    let mut env: Vec<(&str, &str)> = mode.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    TestServer::start_with(&env).await
}

/// `name` with `refresh_token` = `token`, as a browser would send it, with CSRF.
async fn with_refresh(
    server: &TestServer,
    method: &str,
    path: &str,
    token: &str,
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    reqwest::Client::new()
        .request(m, format!("{}{path}", server.base))
        .header("cookie", format!("refresh_token={token}; XSRF-TOKEN=x"))
        .header("X-XSRF-TOKEN", "x")
        .send()
        .await
        .unwrap()
}

async fn refresh_with(server: &TestServer, token: &str) -> (StatusCode, Option<String>, Value) {
    let r = with_refresh(server, "POST", "/api/auth/refresh", token).await;
    let status = r.status();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("refresh_token="))
        .map(|c| c.split(';').next().unwrap_or_default().to_string());
    let body = r
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
        .unwrap_or(Value::Null);
    (status, cookie, body)
}

#[tokio::test]
async fn an_expired_refresh_token_ends_the_session_for_me_and_refresh() {
    for mode in modes() {
        let server = start(
            &mode,
            &[
                ("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", "1"),
                ("SECURITY_JWT_REFRESH_TOKEN_VALIDITY_SECONDS", "2"),
            ],
        )
        .await;
        let mut alice = server.client();
        alice.register("alice").await;
        let refresh = alice.cookie("refresh_token").expect("refresh cookie");
        let r = with_refresh(&server, "GET", "/api/auth/me", &refresh).await;
        assert_eq!(r.status(), 200, "{mode:?}");
        // Once the refresh token has expired, /me mints nothing (before the fix it kept
        // minting fresh access tokens for as long as the process lived).
        let body = eventually(10, || async {
            let r = with_refresh(&server, "GET", "/api/auth/me", &refresh).await;
            (r.status() == 401).then_some(r)
        })
        .await;
        let body = expect_error(body, 401, "TOKEN_NOT_FOUND").await;
        assert_eq!(body["details"]["refreshToken"], refresh);
        let (status, _, body) = refresh_with(&server, &refresh).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], "INVALID_TOKEN");
    }
}

#[tokio::test]
async fn stomp_accepts_an_expired_access_token_only_for_the_grace() {
    for mode in modes() {
        let server = start(
            &mode,
            &[
                ("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", "1"),
                ("DISCODEIT_STOMP_EXPIRED_TOKEN_GRACE_SECONDS", "1"),
            ],
        )
        .await;
        let mut alice = server.client();
        alice.register("alice").await;
        let token = alice.token.clone().unwrap();
        // Refused once the token is more than the grace past its expiry, although the login
        // session is still live (before the fix: accepted for as long as the session lived).
        let message = eventually(15, || async {
            let (_c, f) = StompClient::connect(&server.base, Kind::Raw, &token).await;
            (f.command == Command::Error)
                .then(|| f.header("message").unwrap_or_default().to_string())
        })
        .await;
        assert!(
            message.contains("token expired more than 1 seconds ago"),
            "{message}"
        );
        // The session is live: a refreshed token connects.
        let refresh = alice.cookie("refresh_token").unwrap();
        let (status, _, fresh) = refresh_with(&server, &refresh).await;
        assert_eq!(status, 200);
        StompClient::connected(&server.base, Kind::Raw, fresh.as_str().unwrap()).await;
    }
}

#[tokio::test]
async fn a_replayed_rotated_refresh_token_ends_the_whole_session() {
    for mode in modes() {
        let server = start(&mode, &[]).await;
        let mut alice = server.client();
        alice.register("alice").await;
        let access = alice.token.clone().unwrap();
        let mut live = StompClient::connected(&server.base, Kind::Raw, &access).await;
        let r1 = alice.cookie("refresh_token").unwrap();
        let (s, r2, _) = refresh_with(&server, &r1).await;
        assert_eq!(s, 200);
        let r2 = r2.unwrap();
        let (s, r3, fresh) = refresh_with(&server, &r2).await;
        assert_eq!(s, 200);
        let r3 = r3.unwrap();

        // The token rotated a moment ago: two tabs racing, not theft. Refused, session kept.
        let (s, _, body) = refresh_with(&server, &r2).await;
        assert_eq!(
            (s.as_u16(), &body["code"]),
            (401, &Value::from("TOKEN_NOT_FOUND"))
        );
        assert!(matches!(
            live.end(Duration::from_millis(300)).await,
            End::TimedOut
        ));

        // An older one: someone kept a copy. The whole session ends.
        let (s, _, body) = refresh_with(&server, &r1).await;
        assert_eq!(
            (s.as_u16(), &body["code"]),
            (401, &Value::from("INVALID_TOKEN")),
            "{mode:?}"
        );
        assert!(
            matches!(live.end(Duration::from_secs(5)).await, End::Closed(_)),
            "the session's STOMP connection closes"
        );
        let (s, _, body) = refresh_with(&server, &r3).await;
        assert_eq!(s, 401, "the current refresh token is dead too: {body}");
        let mut api = server.client();
        api.token = Some(fresh.as_str().unwrap().to_string());
        expect_error(api.get("/api/users").await, 401, "INVALID_TOKEN").await;
        // Logging in again works.
        alice.login("alice", "p@ssw0rd1").await;
        alice.get_ok("/api/users").await;
    }
}

/// `claims` signed with the test secret (HS256, the server's fixed header).
fn sign(claims: &Value) -> String {
    let input = format!(
        "eyJhbGciOiJIUzI1NiJ9.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[tokio::test]
async fn tokens_without_sid_or_typ_are_refused() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    // The genuine token, re-signed, still works (the test's signing matches the server's).
    let mut api = server.client();
    api.token = Some(sign(&payload));
    api.get_ok("/api/users").await;
    for (what, edit) in [
        ("no sid", "sid"),
        ("no typ", "typ"),
        ("typ refresh", "refresh"),
    ] {
        let mut claims = payload.clone();
        match edit {
            "refresh" => claims["typ"] = "refresh".into(),
            key => {
                claims.as_object_mut().unwrap().remove(key);
            }
        }
        let forged = sign(&claims);
        api.token = Some(forged.clone());
        let r = api.get("/api/users").await;
        expect_error(r, 401, "INVALID_TOKEN").await;
        let (_c, f) = StompClient::connect(&server.base, Kind::Raw, &forged).await;
        assert_eq!(
            f.command,
            Command::Error,
            "{what}: STOMP CONNECT must be refused"
        );
    }
}
