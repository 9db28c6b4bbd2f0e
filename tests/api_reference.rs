//! The API reference over real HTTP: the OpenAPI document at `/v3/api-docs` (JSON) and
//! `/v3/api-docs.yaml`, Swagger UI's files at `/swagger-ui/`, the `Allow` header of a 405, and
//! the refusals contract fuzzing asked for (text PostgreSQL cannot store, over-long file
//! metadata, an unbounded page index): 4xx, never 500, and nothing written.

mod common;

use common::*;
use discodeit::net::api_docs;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn the_document_and_swagger_ui_are_served_as_springdoc_does() {
    let dir = std::env::temp_dir().join(format!("discodeit-swagger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>swagger</title>",
    )
    .unwrap();
    std::fs::write(
        dir.join("swagger-ui-bundle.js"),
        "window.SwaggerUIBundle = 1;",
    )
    .unwrap();
    let server =
        TestServer::start_with(&[("DISCODEIT_SWAGGER_UI_DIR", dir.to_str().unwrap())]).await;
    let api = server.client();

    let r = api.get("/v3/api-docs").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    // Key order is the YAML's (Swagger UI lists operations in document order).
    assert!(
        text.starts_with(r#"{"openapi":"3.1.0","info":"#),
        "{}",
        &text[..80]
    );
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc, api_docs::document().unwrap());
    assert!(doc["paths"]["/api/messages"]["post"]["requestBody"].is_object());

    let r = api.get("/v3/api-docs.yaml").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.oai.openapi");
    assert_eq!(r.text().await.unwrap(), api_docs::OPENAPI_YAML);

    for path in ["/swagger-ui", "/swagger-ui.html"] {
        let r = api.get(path).await;
        assert_eq!(r.status(), 302, "{path}");
        assert_eq!(r.headers()["location"], "/swagger-ui/index.html");
    }
    for path in ["/swagger-ui/", "/swagger-ui/index.html"] {
        let r = api.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.text().await.unwrap().contains("<title>swagger</title>"));
    }
    let r = api.get("/swagger-ui/swagger-ui-bundle.js").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    // No single-page-app fallback under /swagger-ui/.
    expect_error(
        api.get("/swagger-ui/nope.js").await,
        404,
        "NoResourceFoundException",
    )
    .await;

    let r = api.req(Method::POST, "/v3/api-docs").send().await.unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    expect_error(r, 405, "HttpRequestMethodNotSupportedException").await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn swagger_ui_is_404_when_not_installed_and_405_lists_allowed_methods() {
    let server = TestServer::start().await;
    let api = server.client();
    let body = expect_error(
        api.get("/swagger-ui/index.html").await,
        404,
        "NoResourceFoundException",
    )
    .await;
    assert!(body["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("DISCODEIT_SWAGGER_UI_DIR"));
    // The document is compiled in: served without any files.
    assert_eq!(api.get("/v3/api-docs").await.status(), 200);

    for (method, path, allow) in [
        (Method::PUT, "/api/users", "GET, HEAD, POST"),
        (Method::DELETE, "/api/auth/login", "POST"),
        (Method::GET, "/api/readStatuses/not-a-uuid", "PATCH"),
        (Method::TRACE, "/api/channels/public", "POST"),
    ] {
        let r = api.req(method.clone(), path).send().await.unwrap();
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        expect_error(r, 405, "HttpRequestMethodNotSupportedException").await;
    }
}

/// Rows of every table a refused request could have written to.
async fn row_counts(server: &TestServer) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "users",
        "channels",
        "messages",
        "binary_contents",
        "read_statuses",
    ] {
        out.push(server.count(&format!("SELECT count(*) FROM {t}")).await);
    }
    out
}

#[tokio::test]
async fn what_postgresql_cannot_store_is_a_400_not_a_500() {
    let server = TestServer::start().await;
    let mut api = server.client();
    api.register("nuller").await;
    let channel = api
        .create_private_channel(&[&api.user_id(), &api.user_id()])
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = row_counts(&server).await;

    // Login: no stored name holds U+0000, so it is an unknown user.
    let anon = server.client();
    expect_error(
        anon.login_raw("nul\u{0}ler", "p@ssw0rd1").await,
        401,
        "InternalAuthenticationServiceException",
    )
    .await;

    // Sign-up: each text field.
    let r = anon
        .signup_raw("nul\u{0}x", "a\u{0}@b.c", "p@ss\u{0}w0rd1", None)
        .await;
    let body = expect_error(r, 400, "VALIDATION_ERROR").await;
    for field in ["username", "email", "password"] {
        assert!(
            body["details"][field].as_str().unwrap().contains("NUL"),
            "{body}"
        );
    }

    // Channel name and description, message content and its edit.
    // (The caller is a USER: validation comes before the role check.)
    let r = api
        .post_json(
            "/api/channels/public",
            &json!({"name": "ge\u{0}neral", "description": "\u{0}"}),
        )
        .await;
    let body = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert!(body["details"]["name"].is_string() && body["details"]["description"].is_string());
    let r = api.post_message(&channel, "hi\u{0}", vec![]).await;
    let body = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert!(body["details"]["content"].as_str().unwrap().contains("NUL"));

    // File metadata longer than its columns.
    let long_name = format!("{}.png", "n".repeat(252));
    let r = api
        .post_message(
            &channel,
            "file",
            vec![(&long_name, "image/png", vec![1, 2])],
        )
        .await;
    let body = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert!(body["details"]["attachments"]
        .as_str()
        .unwrap()
        .contains("255"));
    let long_type = format!("image/{}", "x".repeat(95));
    let r = api
        .post_message(&channel, "file", vec![("a.png", &long_type, vec![1, 2])])
        .await;
    let body = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert!(body["details"]["attachments"]
        .as_str()
        .unwrap()
        .contains("100"));
    let profile = Form::new()
        .part(
            "userUpdateRequest",
            json_part(&json!({"newUsername": "nuller2"})),
        )
        .part(
            "profile",
            Part::bytes(vec![1u8])
                .file_name(long_name.clone())
                .mime_str("image/png")
                .unwrap(),
        );
    let r = api
        .req(Method::PATCH, &format!("/api/users/{}", api.user_id()))
        .multipart(profile)
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "VALIDATION_ERROR").await;

    // The page index is bounded, so its SQL offset cannot overflow.
    let r = api
        .get(&format!(
            "/api/messages?channelId={channel}&page=1000001&size=1000"
        ))
        .await;
    expect_error(r, 400, "INVALID_REQUEST").await;
    let r = api
        .get(&format!(
            "/api/messages?channelId={channel}&page=9223372036854775807&size=2"
        ))
        .await;
    expect_error(r, 400, "INVALID_REQUEST").await;
    let r = api
        .get(&format!(
            "/api/messages?channelId={channel}&page=1000000&size=1000"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["content"], json!([]));

    assert_eq!(row_counts(&server).await, before, "a refused request wrote");
}

#[tokio::test]
async fn a_json_body_must_be_an_object() {
    let server = TestServer::start().await;
    let mut api = server.client();
    api.register("arrays").await;
    let me = api.user_id();
    let channel = api.create_private_channel(&[&me, &me]).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let statuses: Value = api
        .get(&format!("/api/readStatuses?userId={me}"))
        .await
        .json()
        .await
        .unwrap();
    let status_id = statuses[0]["id"].as_str().unwrap().to_string();

    // serde would fill a struct from an array of its field values; the server refuses it.
    let r = api
        .send_json(
            Method::PATCH,
            &format!("/api/readStatuses/{status_id}"),
            &json!([null, null]),
        )
        .await;
    let body = expect_error(r, 400, "INVALID_REQUEST").await;
    assert!(body["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("object"));
    let r = api
        .post_json("/api/channels/private", &json!([[me, me]]))
        .await;
    expect_error(r, 400, "INVALID_REQUEST").await;
    let form = Form::new().part(
        "messageCreateRequest",
        json_part(&json!(["hello", channel, me])),
    );
    let r = api
        .req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "INVALID_REQUEST").await;
    // Login answers every unreadable body with 401.
    let anon = server.client();
    anon.csrf().await;
    let r = anon
        .req(Method::POST, "/api/auth/login")
        .json(&json!(["arrays", "p@ssw0rd1"]))
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "AuthenticationServiceException").await;

    // Empty query values mean "absent", as Spring binds them (documented in openapi.yaml).
    let r = api
        .get(&format!(
            "/api/messages?channelId={channel}&cursor=&size=&page="
        ))
        .await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["size"], 50);
    let r = api.get("/api/binaryContents?binaryContentIds=").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
}
