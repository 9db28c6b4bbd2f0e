//! REST acceptance: bad input gets a clear 4xx `ErrorResponse` and leaves nothing half-written
//! in the database or the storage directory (§1.2, §1.4, §1.5, §1.8–§1.10, §4.5), over real
//! HTTP against a real PostgreSQL database.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, Response};
use serde_json::{json, Value};

/// Asserts the common ErrorResponse envelope, the request id header, and returns the body.
async fn expect_4xx(r: Response, status: u16, code: &str) -> Value {
    let rid = r
        .headers()
        .get("discodeit-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let rid = rid.expect("Discodeit-Request-ID header");
    assert!(
        rid.len() == 32
            && rid
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{rid}"
    );
    let body = expect_error(r, status, code).await;
    assert!(body["exceptionType"].is_string(), "{body}");
    body
}

/// Rows in the tables a request could have written to.
async fn row_counts(server: &TestServer) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "users",
        "channels",
        "messages",
        "message_attachments",
        "binary_contents",
        "read_statuses",
    ] {
        out.push(server.count(&format!("SELECT count(*) FROM {t}")).await);
    }
    out
}

fn raw_json(api: &Api, method: Method, path: &str, body: &'static str) -> reqwest::RequestBuilder {
    api.req(method, path)
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn malformed_json_and_multipart_are_400_and_write_nothing() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = server.client();
    alice.register("alice").await;
    let before = row_counts(&server).await;

    // Malformed or mistyped JSON bodies.
    for (method, path, body) in [
        (Method::POST, "/api/channels/private", "{not json"),
        (
            Method::POST,
            "/api/channels/private",
            r#"{"participantIds": "everyone"}"#,
        ),
        (
            Method::POST,
            "/api/channels/private",
            r#"{"participantIds": ["abc", "def"]}"#,
        ),
        (Method::POST, "/api/channels/public", "[1, 2"),
        (Method::POST, "/api/readStatuses", r#"{"channelId": 42}"#),
        (Method::POST, "/api/channels/private", ""),
    ] {
        let r = raw_json(&alice, method.clone(), path, body)
            .send()
            .await
            .unwrap();
        let e = expect_4xx(r, 400, "INVALID_REQUEST").await;
        assert_eq!(e["message"], "잘못된 요청입니다.", "{method} {path} {body}");
    }
    let r = raw_json(&admin, Method::PUT, "/api/auth/role", "{\"userId\":")
        .send()
        .await
        .unwrap();
    expect_4xx(r, 400, "INVALID_REQUEST").await;
    let r = admin
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": alice.user_id(), "newRole": "EMPEROR"}),
        )
        .await;
    assert_eq!(r.status(), 400);

    // Multipart: malformed JSON part (with a file attached), missing JSON part.
    let file = || {
        Part::bytes(b"attached".to_vec())
            .file_name("a.txt")
            .mime_str("text/plain")
            .unwrap()
    };
    let bad_part = Part::bytes(b"{oops".to_vec())
        .file_name("blob")
        .mime_str("application/json")
        .unwrap();
    let form = Form::new()
        .part("messageCreateRequest", bad_part)
        .part("attachments", file());
    let r = alice
        .req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_4xx(r, 400, "INVALID_REQUEST").await;
    let form = Form::new().part("attachments", file());
    let r = alice
        .req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let e = expect_4xx(r, 400, "INVALID_REQUEST").await;
    assert!(
        e["details"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("messageCreateRequest"),
        "{e}"
    );
    alice.csrf().await;
    let form = Form::new().part(
        "profile",
        Part::bytes(b"img".to_vec())
            .file_name("me.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let r = alice
        .req(Method::POST, "/api/users")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_4xx(r, 400, "INVALID_REQUEST").await;
    // A broken multipart body.
    let r = alice
        .req(Method::POST, "/api/messages")
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body("--XyZ\r\nContent-Disposition: form-data; name=\"messageCreateRequest\"\r\n\r\n{\"content\":\"cut off")
        .send()
        .await
        .unwrap();
    expect_4xx(r, 400, "INVALID_REQUEST").await;
    // Not multipart at all.
    let r = alice
        .post_json(
            "/api/messages",
            &json!({"content": "x", "channelId": general, "authorId": alice.user_id()}),
        )
        .await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert!(
        (400..500).contains(&status) && body["status"] == status,
        "{status} {body}"
    );

    // Validation failures with files attached write no file either.
    let r = server
        .client()
        .signup_raw(
            "carol",
            "carol@example.com",
            "short",
            Some(("me.png", "image/png", b"img".to_vec())),
        )
        .await;
    let e = expect_4xx(r, 400, "VALIDATION_ERROR").await;
    assert!(e["details"]["password"].is_string());
    let r = server
        .client()
        .signup_raw("c", "not-an-email", "p@ssw0rd1", None)
        .await;
    let e = expect_4xx(r, 400, "VALIDATION_ERROR").await;
    assert_eq!(
        e["details"],
        json!({"username": "사용자 이름은 3자 이상 50자 이하여야 합니다", "email": "유효한 이메일 형식이어야 합니다"})
    );

    assert_eq!(row_counts(&server).await, before);
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
}

#[tokio::test]
async fn oversize_uploads_are_413_and_write_nothing() {
    let server = TestServer::start_with(&[
        ("DISCODEIT_MAX_FILE_BYTES", "1024"),
        ("DISCODEIT_MAX_REQUEST_BYTES", "6000"),
    ])
    .await;
    let mut admin = server.client();
    admin.admin().await;
    let general = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = server.client();
    let alice_dto = alice.register("alice").await;
    let aid = alice_dto["id"].as_str().unwrap().to_string();
    let before = row_counts(&server).await;

    // Sign-up with a too-large profile: no user, no file.
    let r = server
        .client()
        .signup_raw(
            "bigbob",
            "bigbob@example.com",
            "p@ssw0rd1",
            Some(("big.png", "image/png", random_bytes(2048, 1))),
        )
        .await;
    let e = expect_4xx(r, 413, "MaxUploadSizeExceededException").await;
    assert_eq!(e["status"], 413);
    expect_error(
        server.client().login_raw("bigbob", "p@ssw0rd1").await,
        401,
        "InternalAuthenticationServiceException",
    )
    .await;

    // A message whose second attachment is too large: no message, no attachment row, no file.
    let files = vec![
        ("ok.txt", "text/plain", random_bytes(100, 2)),
        ("big.bin", "application/octet-stream", random_bytes(1025, 3)),
    ];
    expect_4xx(
        alice.post_message(&general, "two files", files).await,
        413,
        "MaxUploadSizeExceededException",
    )
    .await;
    // Every file within its limit, but the request over its own.
    let files: Vec<_> = (0..7)
        .map(|i| {
            (
                "part.bin",
                "application/octet-stream",
                random_bytes(1000, 10 + i),
            )
        })
        .collect();
    expect_4xx(
        alice.post_message(&general, "seven files", files).await,
        413,
        "MaxUploadSizeExceededException",
    )
    .await;
    // Far over the limit (the client is still sending when the server has decided): the
    // client still gets to read the 413, for multipart and for JSON bodies alike.
    let huge = vec![(
        "huge.bin",
        "application/octet-stream",
        vec![7u8; 32 * 1024 * 1024],
    )];
    expect_4xx(
        alice.post_message(&general, "huge", huge).await,
        413,
        "MaxUploadSizeExceededException",
    )
    .await;
    let long = "x".repeat(32 * 1024 * 1024);
    let r = admin
        .post_json(
            "/api/channels/public",
            &json!({"name": "big", "description": long}),
        )
        .await;
    expect_4xx(r, 413, "MaxUploadSizeExceededException").await;
    // A too-large new profile: the user keeps the old (none).
    let r = alice
        .patch_user(
            &aid,
            &json!({"newUsername": "alicia"}),
            Some(("big.png", "image/png", random_bytes(4096, 4))),
        )
        .await;
    expect_4xx(r, 413, "MaxUploadSizeExceededException").await;

    assert_eq!(row_counts(&server).await, before);
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
    let page = alice
        .get_ok(&format!("/api/messages?channelId={general}"))
        .await;
    assert_eq!(page["content"], json!([]));
    let me = alice.get_ok("/api/users").await;
    let me = me
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == aid.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (me["username"].as_str(), me["profile"].is_null()),
        (Some("alice"), true)
    );

    // Exactly at the limit is accepted.
    let exact = random_bytes(1024, 5);
    let r = alice
        .post_message(
            &general,
            "exact",
            vec![("exact.bin", "application/octet-stream", exact.clone())],
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    let id = m["attachments"][0]["id"].as_str().unwrap().to_string();
    alice.wait_uploaded(&id).await;
    let got = reqwest::get(alice.url(&format!("/api/binaryContents/{id}/download")))
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), exact.as_slice());
}

#[tokio::test]
async fn malformed_ids_and_parameters_are_400() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let me = alice.user_id();
    let ghost = uuid::Uuid::new_v4();

    for (method, path) in [
        (Method::PATCH, "/api/channels/not-a-uuid".to_string()),
        (Method::DELETE, "/api/channels/123".to_string()),
        (Method::PATCH, "/api/messages/xyz".to_string()),
        (Method::DELETE, "/api/users/xyz".to_string()),
        (Method::PATCH, "/api/readStatuses/xyz".to_string()),
        (Method::DELETE, "/api/notifications/xyz".to_string()),
        (Method::GET, "/api/binaryContents/xyz".to_string()),
        (Method::GET, "/api/binaryContents/xyz/download".to_string()),
        (Method::GET, "/api/channels?userId=xyz".to_string()),
        (Method::GET, "/api/channels".to_string()),
        (Method::GET, "/api/readStatuses?userId=12-34".to_string()),
        (Method::GET, "/api/messages?channelId=nope".to_string()),
        (Method::GET, "/api/messages".to_string()),
        (
            Method::GET,
            format!("/api/binaryContents?binaryContentIds={ghost},xyz"),
        ),
        (
            Method::GET,
            format!("/api/messages?channelId={ghost}&cursor=yesterday"),
        ),
        (
            Method::GET,
            format!("/api/messages?channelId={ghost}&size=abc"),
        ),
        (
            Method::GET,
            format!("/api/messages?channelId={ghost}&size=0"),
        ),
    ] {
        let r = alice
            .req(method.clone(), &path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(body["code"], "INVALID_REQUEST", "{method} {path}: {body}");
    }
    // The valid form of the same query works.
    let list = alice.get_ok(&format!("/api/channels?userId={me}")).await;
    assert_eq!(list, json!([]));
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn payload(token: &str) -> Value {
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

async fn users_with(api: &Api, token: &str) -> Response {
    api.http
        .get(api.url("/api/users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_401_and_missing_token_is_403() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(users_with(&alice, &token).await.status(), 200);

    // Payload changed (role → ADMIN), signature kept.
    let mut claims = payload(&token);
    claims["userDto"]["role"] = "ADMIN".into();
    let tampered = format!("{}.{}.{}", parts[0], b64json(&claims), parts[2]);
    let e = expect_4xx(users_with(&alice, &tampered).await, 401, "INVALID_TOKEN").await;
    assert_eq!(e["details"]["accessToken"], tampered);
    assert_eq!(e["message"], "유효하지 않은 토큰입니다.");
    // alg:none with no signature.
    let none = format!("{}.{}.", b64json(&json!({"alg": "none"})), b64json(&claims));
    expect_4xx(users_with(&alice, &none).await, 401, "INVALID_TOKEN").await;
    let none_typ = format!(
        "{}.{}.",
        b64json(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    expect_4xx(users_with(&alice, &none_typ).await, 401, "INVALID_TOKEN").await;
    // Signed with another secret.
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        b"another-secret-another-secret-0123456789",
    );
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
    expect_4xx(
        users_with(&alice, &format!("{signed}.{sig}")).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    // Garbage, and the refresh token used as an access token.
    expect_4xx(users_with(&alice, "abc.def").await, 401, "INVALID_TOKEN").await;
    let refresh = alice.cookie("refresh_token").expect("refresh cookie");
    expect_4xx(users_with(&alice, &refresh).await, 401, "INVALID_TOKEN").await;
    // Wrong password at login.
    let e = expect_4xx(
        alice.login_raw("alice", "wr0ng-p@ss").await,
        401,
        "BadCredentialsException",
    )
    .await;
    assert_eq!(e["details"], json!({}));

    // No token, or another scheme: 403 (`/api/sse` is the SSE suite's business).
    let anon = server.client();
    for path in [
        "/api/users",
        "/api/notifications",
        "/api/channels?userId=00000000-0000-0000-0000-000000000000",
    ] {
        let r = anon.get(path).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["status"], 403, "{path}: {body}");
    }
    let r = anon
        .http
        .get(anon.url("/api/users"))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    anon.csrf().await;
    let r = anon
        .post_json("/api/channels/public", &json!({"name": "general"}))
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(server.count("SELECT count(*) FROM channels").await, 0);
}

#[tokio::test]
async fn expired_token_is_401_until_refreshed() {
    let server =
        TestServer::start_with(&[("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", "2")]).await;
    let mut alice = server.client();
    alice.register("alice").await;
    let token = alice.token.clone().unwrap();
    let claims = payload(&token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        2
    );
    let api = alice.clone();
    let body = eventually(10, || async {
        let r = api.get("/api/users").await;
        if r.status() == 200 {
            return None;
        }
        Some(expect_4xx(r, 401, "INVALID_TOKEN").await)
    })
    .await;
    assert_eq!(body["details"]["accessToken"], token);
    // The session itself is alive: refresh issues a working token.
    let r = alice
        .req(Method::POST, "/api/auth/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    alice.token = Some(r.text().await.unwrap());
    assert_eq!(alice.get("/api/users").await.status(), 200);
}

#[tokio::test]
async fn foreign_resources_unknown_routes_and_wrong_methods() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = admin.create_public_channel("general").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut alice = server.client();
    alice.register("alice").await;
    let mut bob = server.client();
    bob.register("bob").await;

    // Someone else's message, user, read status list: 403, nothing changed.
    let m = alice.send_text(&general, "mine").await;
    let mpath = format!("/api/messages/{}", m["id"].as_str().unwrap());
    expect_4xx(
        bob.delete(&mpath).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_4xx(
        bob.send_json(Method::PATCH, &mpath, &json!({"newContent": "theirs"}))
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_4xx(
        bob.delete(&format!("/api/users/{}", alice.user_id())).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_4xx(
        bob.get(&format!("/api/readStatuses?userId={}", alice.user_id()))
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    let page = alice
        .get_ok(&format!("/api/messages?channelId={general}"))
        .await;
    assert_eq!(page["content"][0]["content"], "mine");

    // Unknown routes: 404; known routes with another method: 405.
    for path in [
        "/api/nope",
        "/api/users/extra/segments",
        "/api",
        "/api/channels/public/x",
    ] {
        let r = alice.get(path).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["status"], 404);
    }
    for (method, path) in [
        (Method::PUT, "/api/users".to_string()),
        (Method::DELETE, "/api/channels".to_string()),
        (Method::GET, "/api/auth/login".to_string()),
        (Method::GET, "/api/channels/public".to_string()),
        (
            Method::POST,
            format!("/api/binaryContents/{}", uuid::Uuid::new_v4()),
        ),
    ] {
        let r = alice.req(method.clone(), &path).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(body["status"], 405);
        assert!(body["code"].is_string() && body["timestamp"].is_string());
    }
}
