//! Sign-up → login → me → refresh (rotation) → logout, with cookies and CSRF, over HTTP.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn signup_login_me_refresh_logout() {
    let server = TestServer::start().await;
    let mut api = server.client();

    // CSRF: the token endpoint sets the cookie and repeats the same token.
    let t1 = api.csrf().await;
    let t2 = api.csrf().await;
    assert_eq!(t1, t2);
    assert_eq!(api.cookie("XSRF-TOKEN").as_deref(), Some(t1.as_str()));

    let user = api.signup("alice").await;
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "USER");
    assert!(user["online"].is_null() && user["profile"].is_null());

    // Login: JSON string body, refresh cookie, security content type.
    let r = api.login_raw("alice", "p@ssw0rd1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let set_cookie: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(set_cookie
        .iter()
        .any(|c| c.starts_with("refresh_token=") && c.contains("HttpOnly")));
    let raw = r.text().await.unwrap();
    assert!(raw.starts_with('"') && raw.ends_with('"'));
    let access: String = serde_json::from_str(&raw).unwrap();
    api.token = Some(access.clone());
    assert_eq!(api.user_id(), user["id"].as_str().unwrap());

    // The token authenticates and the user shows online.
    let users: Value = api.get("/api/users").await.json().await.unwrap();
    let me = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap();
    assert_eq!(me["online"], true);

    // /me returns the bare session token.
    let r = api
        .req(Method::GET, "/api/auth/me")
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), access);

    // Refresh rotates: new token, and the old refresh cookie stops working.
    let old_refresh = api.cookie("refresh_token").unwrap();
    let r = api
        .req(Method::POST, "/api/auth/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_access = r.text().await.unwrap();
    assert_ne!(new_access, access);
    let new_refresh = api.cookie("refresh_token").unwrap();
    assert_ne!(new_refresh, old_refresh);
    let replay = reqwest::Client::new()
        .post(api.url("/api/auth/refresh"))
        .header(
            "cookie",
            format!("refresh_token={old_refresh}; XSRF-TOKEN=x"),
        )
        .header("X-XSRF-TOKEN", "x")
        .send()
        .await
        .unwrap();
    expect_error(replay, 401, "TOKEN_NOT_FOUND").await;
    api.token = Some(new_access.clone());
    assert_eq!(api.get("/api/users").await.status(), 200);

    // Logout: 200, cookies expired, tokens refused afterwards.
    let r = api
        .req(Method::POST, "/api/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(cookies
        .iter()
        .any(|c| c.starts_with("refresh_token=;") && c.contains("Max-Age=0")));
    assert!(cookies
        .iter()
        .any(|c| c.starts_with("XSRF-TOKEN=;") && c.contains("Max-Age=0")));
    let body = expect_error(api.get("/api/users").await, 401, "INVALID_TOKEN").await;
    assert_eq!(body["details"]["accessToken"], new_access);
    api.token = Some(access);
    expect_error(api.get("/api/users").await, 401, "INVALID_TOKEN").await;
    let r = reqwest::Client::new()
        .get(api.url("/api/auth/me"))
        .header("cookie", format!("refresh_token={new_refresh}"))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "TOKEN_NOT_FOUND").await;
}

#[tokio::test]
async fn csrf_is_enforced_before_authentication() {
    let server = TestServer::start().await;
    let api = server.client();
    // No CSRF cookie/header: 403 even with bad credentials, and the cookie is issued.
    let r = api
        .http
        .post(api.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(api.cookie("XSRF-TOKEN").is_some());
    // Wrong header value: 403.
    let r = api
        .http
        .post(api.url("/api/auth/login"))
        .header("X-XSRF-TOKEN", "wrong")
        .json(&json!({"username": "admin", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Logout needs no CSRF.
    let r = api
        .http
        .post(api.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn login_failures_and_one_session_per_user() {
    let server = TestServer::start().await;
    let mut a = server.client();
    a.signup("bob").await;
    expect_error(
        a.login_raw("bob", "wrong-pass1!").await,
        401,
        "BadCredentialsException",
    )
    .await;
    expect_error(
        a.login_raw("nobody", "p@ssw0rd1").await,
        401,
        "InternalAuthenticationServiceException",
    )
    .await;
    let r = a
        .req(Method::POST, "/api/auth/login")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "AuthenticationServiceException").await;
    // Form-encoded login is accepted too.
    a.csrf().await;
    let r = a
        .req(Method::POST, "/api/auth/login")
        .form(&[("username", "bob"), ("password", "p@ssw0rd1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first: String = r.json().await.unwrap();

    // A second login (another device) revokes the first session.
    let mut b = server.client();
    b.login("bob", "p@ssw0rd1").await;
    a.token = Some(first);
    expect_error(a.get("/api/users").await, 401, "INVALID_TOKEN").await;
    assert_eq!(b.get("/api/users").await.status(), 200);
}
