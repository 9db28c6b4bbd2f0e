//! REST acceptance: file metadata and downloads, sign-up with a profile image, profile and
//! account updates, user deletion (§2 #7–#10, #23–#25, §3.1–§3.2, §5.1, §5.6–§5.7), over real
//! HTTP against a real PostgreSQL database.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn id_set(list: &Value) -> BTreeSet<String> {
    list.as_array().expect("array").iter().map(id_of).collect()
}

#[tokio::test]
async fn download_is_byte_exact_public_and_404_until_stored() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let mut alice = server.client();
    alice.register("alice").await;

    let data = random_bytes(200 * 1024, 42);
    let small = b"small text".to_vec();
    let r = alice
        .post_message(
            &general,
            "files",
            vec![
                ("data.bin", "application/x-discodeit-test", data.clone()),
                ("note.txt", "text/plain", small.clone()),
            ],
        )
        .await;
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    let data_id = m["attachments"][0]["id"].as_str().unwrap().to_string();
    let note_id = m["attachments"][1]["id"].as_str().unwrap().to_string();
    let meta = alice.wait_uploaded(&data_id).await;
    assert_eq!(
        meta,
        json!({"id": data_id, "fileName": "data.bin", "size": 204800, "contentType": "application/x-discodeit-test", "uploadStatus": "SUCCESS"})
    );
    alice.wait_uploaded(&note_id).await;

    // Public download (no token, no cookies): bytes, type, length, disposition.
    let anon = reqwest::Client::new();
    let r = anon
        .get(alice.url(&format!("/api/binaryContents/{data_id}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-discodeit-test");
    assert_eq!(r.headers()["content-length"], "204800");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"data.bin\""
    );
    let body = r.bytes().await.unwrap();
    assert!(body.as_ref() == data.as_slice(), "downloaded bytes differ");
    // Stored under its id in the storage directory.
    assert_eq!(std::fs::read(server.storage.join(&data_id)).unwrap(), data);

    // Unknown id → 404 with the id.
    let ghost = uuid::Uuid::new_v4().to_string();
    let r = anon
        .get(alice.url(&format!("/api/binaryContents/{ghost}/download")))
        .send()
        .await
        .unwrap();
    let e = expect_error(r, 404, "BINARY_CONTENT_NOT_FOUND").await;
    assert_eq!(e["details"]["binaryContentId"], ghost);
    assert_eq!(e["message"], "바이너리 컨텐츠를 찾을 수 없습니다.");
    expect_error(
        alice.get(&format!("/api/binaryContents/{ghost}")).await,
        404,
        "BINARY_CONTENT_NOT_FOUND",
    )
    .await;

    // A row still WAITING (bytes not written yet): metadata 200, download 404.
    let waiting = uuid::Uuid::new_v4();
    server
        .db()
        .await
        .execute(
            "INSERT INTO binary_contents (id, created_at, file_name, size, content_type, upload_status)
             VALUES ($1, now(), 'pending.png', 10, 'image/png', 'WAITING')",
            &[&waiting],
        )
        .await
        .unwrap();
    let meta = alice
        .get_ok(&format!("/api/binaryContents/{waiting}"))
        .await;
    assert_eq!(meta["uploadStatus"], "WAITING");
    let r = anon
        .get(alice.url(&format!("/api/binaryContents/{waiting}/download")))
        .send()
        .await
        .unwrap();
    expect_error(r, 404, "BINARY_CONTENT_NOT_FOUND").await;

    // Metadata needs a token.
    let r = anon
        .get(alice.url(&format!("/api/binaryContents/{data_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Batch: repeated and comma-separated forms, unknown ids skipped.
    let list = alice
        .get_ok(&format!("/api/binaryContents?binaryContentIds={data_id}&binaryContentIds={ghost}&binaryContentIds={note_id}"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(
        id_set(&list),
        BTreeSet::from([data_id.clone(), note_id.clone()])
    );
    let full: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["id"] == data_id.as_str())
        .collect();
    assert_eq!(*full[0], meta_of(&alice, &data_id).await);
    let list = alice
        .get_ok(&format!(
            "/api/binaryContents?binaryContentIds={note_id},{ghost},{data_id}"
        ))
        .await;
    assert_eq!(
        id_set(&list),
        BTreeSet::from([data_id.clone(), note_id.clone()])
    );
    let list = alice
        .get_ok(&format!("/api/binaryContents?binaryContentIds={ghost}"))
        .await;
    assert_eq!(list, json!([]));
}

async fn meta_of(api: &Api, id: &str) -> Value {
    api.get_ok(&format!("/api/binaryContents/{id}")).await
}

#[tokio::test]
async fn signup_with_profile_then_profile_and_account_updates() {
    let server = TestServer::start().await;
    let mut alice = server.client();
    let png = random_bytes(4096, 7);
    let r = alice
        .signup_raw(
            "alice",
            "alice@example.com",
            "p@ssw0rd1",
            Some(("me.png", "image/png", png.clone())),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_eq!(
        keys(&created),
        ["email", "id", "online", "profile", "role", "username"]
    );
    assert!(created["online"].is_null());
    assert_eq!(created["role"], "USER");
    let profile = &created["profile"];
    assert_eq!(profile["fileName"], "me.png");
    assert_eq!(profile["size"], 4096);
    assert_eq!(profile["contentType"], "image/png");
    assert_eq!(profile["uploadStatus"], "WAITING");
    let old_profile = id_of(profile);
    let aid = id_of(&created);
    alice.login("alice", "p@ssw0rd1").await;
    alice.wait_uploaded(&old_profile).await;
    let r = reqwest::get(alice.url(&format!("/api/binaryContents/{old_profile}/download")))
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), png.as_slice());
    let users = alice.get_ok("/api/users").await;
    let me = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == aid.as_str())
        .unwrap()
        .clone();
    assert_eq!(me["profile"]["uploadStatus"], "SUCCESS");
    assert_eq!(me["online"], true);

    // A new profile image: new id, the old one is gone (metadata, download, file).
    let jpg = random_bytes(2048, 8);
    let r = alice
        .patch_user(
            &aid,
            &json!({}),
            Some(("new.jpg", "image/jpeg", jpg.clone())),
        )
        .await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    let new_profile = id_of(&updated["profile"]);
    assert_ne!(new_profile, old_profile);
    assert_eq!(updated["profile"]["fileName"], "new.jpg");
    assert_eq!(updated["username"], "alice");
    alice.wait_uploaded(&new_profile).await;
    expect_error(
        alice
            .get(&format!("/api/binaryContents/{old_profile}"))
            .await,
        404,
        "BINARY_CONTENT_NOT_FOUND",
    )
    .await;
    let r = reqwest::get(alice.url(&format!("/api/binaryContents/{old_profile}/download")))
        .await
        .unwrap();
    expect_error(r, 404, "BINARY_CONTENT_NOT_FOUND").await;
    assert!(!server.storage.join(&old_profile).exists());
    let r = reqwest::get(alice.url(&format!("/api/binaryContents/{new_profile}/download")))
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.bytes().await.unwrap().as_ref(), jpg.as_slice());

    // Username, e-mail and password change; the profile stays.
    let r = alice
        .patch_user(&aid, &json!({"newUsername": "alicia", "newEmail": "alicia@example.com", "newPassword": "n3w-p@ss!"}), None)
        .await;
    assert_eq!(r.status(), 200);
    let renamed: Value = r.json().await.unwrap();
    assert_eq!(
        (renamed["username"].as_str(), renamed["email"].as_str()),
        (Some("alicia"), Some("alicia@example.com"))
    );
    assert_eq!(id_of(&renamed["profile"]), new_profile);
    let probe = server.client();
    expect_error(
        probe.login_raw("alice", "p@ssw0rd1").await,
        401,
        "InternalAuthenticationServiceException",
    )
    .await;
    expect_error(
        probe.login_raw("alicia", "p@ssw0rd1").await,
        401,
        "BadCredentialsException",
    )
    .await;
    alice.login("alicia", "n3w-p@ss!").await;

    // Validation of the update part.
    let e = expect_error(
        alice
            .patch_user(&aid, &json!({"newEmail": "not-an-email"}), None)
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(
        e["details"],
        json!({"newEmail": "유효한 이메일 형식이어야 합니다"})
    );

    // Duplicates: 409 DUPLICATE_USER, e-mail checked first; nothing changed.
    let mut bob = server.client();
    let bob_dto = bob.register("bob").await;
    let bid = id_of(&bob_dto);
    let e = expect_error(
        alice
            .patch_user(
                &aid,
                &json!({"newUsername": "bob", "newEmail": "bob@example.com"}),
                None,
            )
            .await,
        409,
        "DUPLICATE_USER",
    )
    .await;
    assert_eq!(e["details"], json!({"email": "bob@example.com"}));
    assert_eq!(e["message"], "이미 존재하는 사용자입니다.");
    let e = expect_error(
        alice
            .patch_user(&aid, &json!({"newUsername": "bob"}), None)
            .await,
        409,
        "DUPLICATE_USER",
    )
    .await;
    assert_eq!(e["details"], json!({"username": "bob"}));
    let e = expect_error(
        server
            .client()
            .signup_raw("bob", "bob@example.com", "p@ssw0rd1", None)
            .await,
        409,
        "DUPLICATE_USER",
    )
    .await;
    assert_eq!(e["details"], json!({"email": "bob@example.com"}));
    let e = expect_error(
        server
            .client()
            .signup_raw("bob", "other@example.com", "p@ssw0rd1", None)
            .await,
        409,
        "DUPLICATE_USER",
    )
    .await;
    assert_eq!(e["details"], json!({"username": "bob"}));
    let users = alice.get_ok("/api/users").await;
    let names: BTreeSet<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["admin", "alicia", "bob"]));

    // Other users may not update or delete; ADMIN may.
    expect_error(
        bob.patch_user(&aid, &json!({"newUsername": "pwned"}), None)
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_error(
        bob.delete(&format!("/api/users/{aid}")).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    let mut admin = server.client();
    admin.admin().await;
    let r = admin
        .patch_user(&bid, &json!({"newUsername": "robert"}), None)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["username"], "robert");
    let ghost = uuid::Uuid::new_v4();
    expect_error(
        admin
            .patch_user(&ghost.to_string(), &json!({"newUsername": "ghost"}), None)
            .await,
        404,
        "USER_NOT_FOUND",
    )
    .await;
    expect_error(
        admin.delete(&format!("/api/users/{ghost}")).await,
        404,
        "USER_NOT_FOUND",
    )
    .await;
    assert_eq!(
        admin.delete(&format!("/api/users/{bid}")).await.status(),
        204
    );
    expect_error(bob.get("/api/users").await, 401, "INVALID_TOKEN").await;
}

#[tokio::test]
async fn deleted_user_leaves_authorless_messages() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);
    let mut alice = server.client();
    let png = random_bytes(1000, 9);
    let r = alice
        .signup_raw(
            "alice",
            "alice@example.com",
            "p@ssw0rd1",
            Some(("me.png", "image/png", png)),
        )
        .await;
    let created: Value = r.json().await.unwrap();
    let aid = id_of(&created);
    let profile = id_of(&created["profile"]);
    alice.login("alice", "p@ssw0rd1").await;
    alice.wait_uploaded(&profile).await;
    let mut bob = server.client();
    bob.register("bob").await;
    let private = alice.create_private_channel(&[&aid, &bob.user_id()]).await;
    let m = alice.send_text(&general, "I was here").await;

    // Self-deletion: 204, the session ends, the user, profile and read statuses go.
    assert_eq!(
        alice.delete(&format!("/api/users/{aid}")).await.status(),
        204
    );
    expect_error(alice.get("/api/users").await, 401, "INVALID_TOKEN").await;
    let users = bob.get_ok("/api/users").await;
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["id"] != aid.as_str()));
    expect_error(
        bob.get(&format!("/api/binaryContents/{profile}")).await,
        404,
        "BINARY_CONTENT_NOT_FOUND",
    )
    .await;
    let ch = bob
        .get_ok(&format!("/api/channels?userId={}", bob.user_id()))
        .await;
    let private = ch
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == private["id"])
        .unwrap();
    assert_eq!(private["participants"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .count(&format!(
                "SELECT count(*) FROM read_statuses WHERE user_id = '{aid}'"
            ))
            .await,
        0
    );

    // Her message stays, with author null.
    let page = bob
        .get_ok(&format!("/api/messages?channelId={general}"))
        .await;
    let listed = &page["content"][0];
    assert_eq!(id_of(listed), id_of(&m));
    assert_eq!(listed["content"], "I was here");
    assert!(listed["author"].is_null(), "{listed}");
    expect_error(
        server.client().login_raw("alice", "p@ssw0rd1").await,
        401,
        "InternalAuthenticationServiceException",
    )
    .await;

    // The name is free again.
    let r = server
        .client()
        .signup_raw("alice", "alice@example.com", "p@ssw0rd1", None)
        .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn empty_profile_part_counts_as_absent_and_utf8_file_names_survive() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let general = id_of(&admin.create_public_channel("general").await);

    // A zero-byte profile part: no profile.
    let r = server
        .client()
        .signup_raw(
            "alice",
            "alice@example.com",
            "p@ssw0rd1",
            Some(("empty.png", "image/png", vec![])),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert!(r.json::<Value>().await.unwrap()["profile"].is_null());
    assert_eq!(
        server.count("SELECT count(*) FROM binary_contents").await,
        0
    );

    // A browser writes the UTF-8 file name raw into the part header.
    let mut alice = server.client();
    alice.login("alice", "p@ssw0rd1").await;
    let name = "사진 1.png";
    let json =
        json!({"content": "", "channelId": general, "authorId": alice.user_id()}).to_string();
    let boundary = "----discodeitBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"messageCreateRequest\"; filename=\"blob\"\r\n\
             Content-Type: application/json\r\n\r\n{json}\r\n--{boundary}\r\n\
             Content-Disposition: form-data; name=\"attachments\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(b"\x89PNG fake");
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = alice
        .req(reqwest::Method::POST, "/api/messages")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["attachments"][0]["fileName"], name);
    let id = m["attachments"][0]["id"].as_str().unwrap().to_string();
    alice.wait_uploaded(&id).await;
    let r = reqwest::get(alice.url(&format!("/api/binaryContents/{id}/download")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cd = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cd.starts_with("attachment; filename=\""), "{cd}");
    let encoded = cd
        .split("filename*=UTF-8''")
        .nth(1)
        .unwrap_or_else(|| panic!("no filename* in {cd}"));
    assert_eq!(
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .unwrap(),
        name
    );
}

#[tokio::test]
async fn concurrent_duplicate_signups_yield_one_user_and_409s() {
    let server = TestServer::start().await;
    // Same username, different e-mails, each with a profile image: one wins, the rest get 409
    // and leave neither a user, a file row nor a file behind.
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let api = server.client();
            tokio::spawn(async move {
                let img = random_bytes(500, i);
                let r = api
                    .signup_raw(
                        "racer",
                        &format!("racer{i}@example.com"),
                        "p@ssw0rd1",
                        Some(("r.png", "image/png", img)),
                    )
                    .await;
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => won.push(body),
            409 => {
                assert_eq!(body["code"], "DUPLICATE_USER");
                assert_eq!(body["details"], json!({"username": "racer"}));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!(
        server
            .count("SELECT count(*) FROM users WHERE username = 'racer'")
            .await,
        1
    );
    assert_eq!(
        server.count("SELECT count(*) FROM binary_contents").await,
        1
    );
    let profile = id_of(&won[0]["profile"]);
    let mut racer = server.client();
    racer.login("racer", "p@ssw0rd1").await;
    racer.wait_uploaded(&profile).await;
    assert_eq!(server.stored_files(), vec![profile]);

    // Same e-mail, different usernames: the e-mail is reported.
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let api = server.client();
            tokio::spawn(async move {
                let r = api
                    .signup_raw(&format!("mailer{i}"), "same@example.com", "p@ssw0rd1", None)
                    .await;
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == 201 {
            created += 1;
        } else {
            assert_eq!(
                (status, &body["details"]),
                (409, &json!({"email": "same@example.com"})),
                "{body}"
            );
        }
    }
    assert_eq!(created, 1);
}
