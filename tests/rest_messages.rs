//! REST acceptance: messages (attachments, validation, access rules, cursor pages, edit and
//! delete rights), read statuses and NEW_MESSAGE notifications (§2 #16–#22, #26–#27, §3.4–§3.7,
//! §5.3–§5.5, §5.8), over real HTTP against a real PostgreSQL database.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const MESSAGE_KEYS: [&str; 7] = [
    "attachments",
    "author",
    "channelId",
    "content",
    "createdAt",
    "id",
    "updatedAt",
];
const FILE_KEYS: [&str; 5] = ["contentType", "fileName", "id", "size", "uploadStatus"];

/// `yyyy-MM-ddTHH:mm:ss[.fff|.ffffff|.fffffffff]Z`, as Java's `Instant.toString()` prints it.
fn java_instant(s: &str) -> bool {
    let Some(rest) = s.strip_suffix('Z') else {
        return false;
    };
    let (secs, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let b = secs.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 19
        && digits(0..4)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && digits(5..7)
        && digits(8..10)
        && digits(11..13)
        && digits(14..16)
        && digits(17..19)
        && [0, 3, 6, 9].contains(&frac.len())
        && frac.bytes().all(|c| c.is_ascii_digit())
        && (frac.is_empty() || !frac.ends_with("000"))
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// A server with an admin, two users and a public channel `general` made by the admin.
async fn setup() -> (TestServer, Api, Api, Api, String) {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let mut alice = server.client();
    alice.register("alice").await;
    let mut bob = server.client();
    bob.register("bob").await;
    let general = admin.create_public_channel("general").await;
    (server, admin, alice, bob, id_of(&general))
}

async fn message_count(server: &TestServer) -> i64 {
    server.count("SELECT count(*) FROM messages").await
}

#[tokio::test]
async fn messages_with_zero_one_and_three_attachments() {
    let (server, _admin, alice, bob, general) = setup().await;

    // No attachment: exact shape, updatedAt = createdAt, author with online null.
    let m0 = alice.send_text(&general, "hello").await;
    assert_eq!(keys(&m0), MESSAGE_KEYS);
    assert_eq!(m0["content"], "hello");
    assert_eq!(m0["channelId"], general.as_str());
    assert_eq!(m0["attachments"], json!([]));
    assert_eq!(m0["createdAt"], m0["updatedAt"]);
    assert!(java_instant(m0["createdAt"].as_str().unwrap()), "{m0}");
    assert_eq!(m0["author"]["id"], alice.user_id().as_str());
    assert_eq!(m0["author"]["username"], "alice");
    assert!(m0["author"]["online"].is_null());

    // One attachment, WAITING in the response, SUCCESS later.
    let png = random_bytes(3000, 1);
    let r = alice
        .post_message(
            &general,
            "a picture",
            vec![("a.png", "image/png", png.clone())],
        )
        .await;
    assert_eq!(r.status(), 201);
    let m1: Value = r.json().await.unwrap();
    let att = m1["attachments"].as_array().unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!(keys(&att[0]), FILE_KEYS);
    assert_eq!(att[0]["fileName"], "a.png");
    assert_eq!(att[0]["contentType"], "image/png");
    assert_eq!(att[0]["size"], 3000);
    assert_eq!(att[0]["uploadStatus"], "WAITING");
    let done = alice.wait_uploaded(att[0]["id"].as_str().unwrap()).await;
    assert_eq!(done["fileName"], "a.png");

    // Three attachments, blank content accepted because files are attached; upload order kept.
    let files = vec![
        ("first.txt", "text/plain", b"first file".to_vec()),
        (
            "second.bin",
            "application/octet-stream",
            random_bytes(5000, 2),
        ),
        ("third.jpg", "image/jpeg", random_bytes(700, 3)),
    ];
    let r = bob.post_message(&general, "", files.clone()).await;
    assert_eq!(r.status(), 201);
    let m3: Value = r.json().await.unwrap();
    assert_eq!(m3["content"], "");
    let att = m3["attachments"].as_array().unwrap().clone();
    let names: Vec<&str> = att
        .iter()
        .map(|a| a["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first.txt", "second.bin", "third.jpg"]);
    for (a, (name, ct, bytes)) in att.iter().zip(&files) {
        assert_eq!(a["uploadStatus"], "WAITING");
        assert_eq!(a["contentType"], *ct);
        assert_eq!(a["size"], bytes.len());
        bob.wait_uploaded(a["id"].as_str().unwrap()).await;
        let r = reqwest::get(bob.url(&format!(
            "/api/binaryContents/{}/download",
            a["id"].as_str().unwrap()
        )))
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }

    // The page lists them newest first, attachments in upload order and now SUCCESS.
    let page = bob
        .get_ok(&format!("/api/messages?channelId={general}"))
        .await;
    let content = page["content"].as_array().unwrap();
    let listed: Vec<String> = content.iter().map(id_of).collect();
    assert_eq!(listed, [id_of(&m3), id_of(&m1), id_of(&m0)]);
    let listed_names: Vec<&str> = content[0]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(listed_names, names);
    assert!(content[0]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["uploadStatus"] == "SUCCESS"));

    // lastMessageAt follows the newest message.
    let channels = bob
        .get_ok(&format!("/api/channels?userId={}", bob.user_id()))
        .await;
    let ch = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == general.as_str())
        .unwrap();
    assert_eq!(ch["lastMessageAt"], m3["createdAt"]);
    assert_eq!(message_count(&server).await, 3);
}

#[tokio::test]
async fn message_validation_and_access_rules() {
    let (server, _admin, alice, bob, general) = setup().await;
    let alice_id = alice.user_id();

    // Blank content without attachments, or too long: 400 with the exact messages.
    for blank in ["", "   "] {
        let e = expect_error(
            alice.post_message(&general, blank, vec![]).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(e["details"], json!({"content": "메시지 내용은 필수입니다"}));
    }
    let long = "가".repeat(2001);
    let e = expect_error(
        alice
            .post_message(
                &general,
                &long,
                vec![("x.txt", "text/plain", b"x".to_vec())],
            )
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(
        e["details"],
        json!({"content": "메시지 내용은 2000자 이하여야 합니다"})
    );
    // Exactly 2000 characters (6000 bytes) is fine.
    let ok = alice.send_text(&general, &"가".repeat(2000)).await;
    assert_eq!(ok["content"].as_str().unwrap().chars().count(), 2000);

    // Someone else's authorId: 403.
    let form = reqwest::multipart::Form::new().part(
        "messageCreateRequest",
        json_part(&json!({"content": "spoof", "channelId": general, "authorId": bob.user_id()})),
    );
    let r = alice
        .req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_error(r, 403, "AuthorizationDeniedException").await;
    // Tolerant: an absent authorId means the caller.
    let form = reqwest::multipart::Form::new().part(
        "messageCreateRequest",
        json_part(&json!({"content": "implicit", "channelId": general})),
    );
    let r = alice
        .req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let implicit: Value = r.json().await.unwrap();
    assert_eq!(implicit["author"]["id"], alice_id.as_str());

    // Tolerant: the JSON part as a plain text field (no filename, no content type).
    let form = reqwest::multipart::Form::new().text(
        "messageCreateRequest",
        json!({"content": "as text", "channelId": general, "authorId": alice_id}).to_string(),
    );
    let r = alice
        .req(Method::POST, "/api/messages")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let as_text: Value = r.json().await.unwrap();
    assert_eq!(as_text["content"], "as text");

    // Unknown channel: 404.
    let ghost = uuid::Uuid::new_v4().to_string();
    let e = expect_error(
        alice.post_message(&ghost, "hi", vec![]).await,
        404,
        "CHANNEL_NOT_FOUND",
    )
    .await;
    assert_eq!(e["details"]["channelId"], ghost);
    // Listing an unknown channel: an empty page.
    let page = alice
        .get_ok(&format!("/api/messages?channelId={ghost}"))
        .await;
    assert_eq!(
        page,
        json!({"content": [], "nextCursor": null, "size": 50, "hasNext": false, "totalElements": null})
    );

    // Private channel: members post and read, others get 403 for both.
    let mut carol = server.client();
    carol.register("carol").await;
    let private = alice
        .create_private_channel(&[&alice_id, &bob.user_id()])
        .await;
    let pid = id_of(&private);
    bob.send_text(&pid, "psst").await;
    assert_eq!(
        alice
            .get_ok(&format!("/api/messages?channelId={pid}"))
            .await["content"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    expect_error(
        carol
            .post_message(&pid, "me too", vec![("c.txt", "text/plain", b"c".to_vec())])
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_error(
        carol.get(&format!("/api/messages?channelId={pid}")).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;

    // None of the refused requests left a row or a file behind.
    assert_eq!(message_count(&server).await, 4);
    assert_eq!(
        server.count("SELECT count(*) FROM binary_contents").await,
        0
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM message_attachments")
            .await,
        0
    );
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
}

/// Walks the pages the way the front end does; returns (ids, pages).
async fn walk(api: &Api, channel: &str, size: usize) -> (Vec<String>, Vec<Value>) {
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        let mut q = vec![
            ("channelId", channel.to_string()),
            ("size", size.to_string()),
            ("sort", "createdAt,desc".to_string()),
        ];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let r = api
            .req(Method::GET, "/api/messages")
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        assert_eq!(
            keys(&page),
            ["content", "hasNext", "nextCursor", "size", "totalElements"]
        );
        assert_eq!(page["size"], size, "size is the requested size");
        assert!(page["totalElements"].is_null());
        let content = page["content"].as_array().unwrap();
        assert!(!content.is_empty(), "the FE stops before an empty page");
        assert!(content.len() <= size);
        // nextCursor = createdAt of the last (oldest) element, whether or not there is more.
        assert_eq!(page["nextCursor"], content.last().unwrap()["createdAt"]);
        seen.extend(content.iter().map(id_of));
        let has_next = page["hasNext"].as_bool().unwrap();
        let full = content.len() == size;
        cursor = page["nextCursor"].as_str().map(str::to_string);
        pages.push(page);
        if !has_next {
            break;
        }
        assert!(full, "only the last page may be short");
    }
    // Past the end: an empty page with a null cursor.
    let q = [
        ("channelId", channel.to_string()),
        ("size", size.to_string()),
        ("cursor", cursor.unwrap()),
    ];
    let r = api
        .req(Method::GET, "/api/messages")
        .query(&q)
        .send()
        .await
        .unwrap();
    let end: Value = r.json().await.unwrap();
    assert_eq!(
        end,
        json!({"content": [], "nextCursor": null, "size": size, "hasNext": false, "totalElements": null})
    );
    (seen, pages)
}

#[tokio::test]
async fn cursor_pagination_over_250_messages() {
    let (_server, _admin, alice, bob, general) = setup().await;
    let mut created = Vec::new();
    for i in 0..250 {
        let m = alice.send_text(&general, &format!("m{i}")).await;
        created.push(id_of(&m));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // FE style: size 20, 13 pages (12 full and 10), each message exactly once, newest first.
    let (seen, pages) = walk(&bob, &general, 20).await;
    assert_eq!(pages.len(), 13);
    assert_eq!(
        pages.last().unwrap()["content"].as_array().unwrap().len(),
        10
    );
    assert_eq!(seen, newest_first);

    // A size that divides 250: the 10th page is full and says hasNext false.
    let (seen, pages) = walk(&bob, &general, 25).await;
    assert_eq!(pages.len(), 10);
    assert_eq!(seen, newest_first);

    // Defaults: size 50 without parameters.
    let page = bob
        .get_ok(&format!("/api/messages?channelId={general}"))
        .await;
    assert_eq!(page["size"], 50);
    assert_eq!(page["content"].as_array().unwrap().len(), 50);
    assert_eq!(page["hasNext"], true);
    assert_eq!(page["content"][0]["content"], "m249");
}

#[tokio::test]
async fn message_edit_and_delete_rights() {
    let (_server, admin, alice, bob, general) = setup().await;
    let m = alice.send_text(&general, "original").await;
    let path = format!("/api/messages/{}", id_of(&m));

    // Edit: author only (not even ADMIN); unknown → 404 for everyone; blank → 400.
    let r = alice
        .send_json(Method::PATCH, &path, &json!({"newContent": "edited"}))
        .await;
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(keys(&edited), MESSAGE_KEYS);
    assert_eq!(edited["content"], "edited");
    assert_eq!(edited["createdAt"], m["createdAt"]);
    assert_ne!(edited["updatedAt"], m["updatedAt"]);
    expect_error(
        bob.send_json(Method::PATCH, &path, &json!({"newContent": "mine now"}))
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_error(
        admin
            .send_json(Method::PATCH, &path, &json!({"newContent": "admin"}))
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    let e = expect_error(
        alice
            .send_json(Method::PATCH, &path, &json!({"newContent": " "}))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(
        e["details"],
        json!({"newContent": "메시지 내용은 필수입니다"})
    );
    let ghost = format!("/api/messages/{}", uuid::Uuid::new_v4());
    let e = expect_error(
        bob.send_json(Method::PATCH, &ghost, &json!({"newContent": "x"}))
            .await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
    assert_eq!(e["message"], "메시지를 찾을 수 없습니다.");
    expect_error(bob.delete(&ghost).await, 404, "MESSAGE_NOT_FOUND").await;
    let page = bob
        .get_ok(&format!("/api/messages?channelId={general}"))
        .await;
    assert_eq!(page["content"][0]["content"], "edited");

    // Delete: other user → 403, author → 204 (attachments go too), ADMIN may delete anyone's.
    let r = alice
        .post_message(
            &general,
            "with file",
            vec![("f.txt", "text/plain", b"file".to_vec())],
        )
        .await;
    let with_file: Value = r.json().await.unwrap();
    let file_id = with_file["attachments"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    alice.wait_uploaded(&file_id).await;
    let file_path = format!("/api/messages/{}", id_of(&with_file));
    expect_error(
        bob.delete(&file_path).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    assert_eq!(alice.delete(&file_path).await.status(), 204);
    expect_error(
        alice.get(&format!("/api/binaryContents/{file_id}")).await,
        404,
        "BINARY_CONTENT_NOT_FOUND",
    )
    .await;
    expect_error(alice.delete(&file_path).await, 404, "MESSAGE_NOT_FOUND").await;
    let by_bob = bob.send_text(&general, "bob's").await;
    assert_eq!(
        admin
            .delete(&format!("/api/messages/{}", id_of(&by_bob)))
            .await
            .status(),
        204
    );
    let page = bob
        .get_ok(&format!("/api/messages?channelId={general}"))
        .await;
    let left: Vec<String> = page["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(left, [id_of(&m)]);
}

#[tokio::test]
async fn read_status_rules() {
    let (_server, admin, alice, bob, general) = setup().await;
    let a = alice.user_id();
    let b = bob.user_id();

    // Create for oneself in a PUBLIC channel: 201, notifications off by default.
    let body = json!({"userId": a, "channelId": general, "lastReadAt": "2025-06-08T14:20:48.123Z"});
    let r = alice.post_json("/api/readStatuses", &body).await;
    assert_eq!(r.status(), 201);
    let rs: Value = r.json().await.unwrap();
    assert_eq!(
        keys(&rs),
        [
            "channelId",
            "id",
            "lastReadAt",
            "notificationEnabled",
            "userId"
        ]
    );
    assert_eq!(rs["userId"], a.as_str());
    assert_eq!(rs["channelId"], general.as_str());
    assert_eq!(rs["lastReadAt"], "2025-06-08T14:20:48.123Z");
    assert_eq!(rs["notificationEnabled"], false);
    let rs_path = format!("/api/readStatuses/{}", id_of(&rs));

    // Duplicate → 409; future → 400; for another user → 403; unknown channel → 404.
    let e = expect_error(
        alice.post_json("/api/readStatuses", &body).await,
        409,
        "DUPLICATE_READ_STATUS",
    )
    .await;
    assert_eq!(e["details"], json!({"userId": a, "channelId": general}));
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = bob
        .post_json(
            "/api/readStatuses",
            &json!({"userId": b, "channelId": general, "lastReadAt": future}),
        )
        .await;
    let e = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert_eq!(
        e["details"],
        json!({"lastReadAt": "마지막 읽은 시간은 현재 또는 과거 시간이어야 합니다"})
    );
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = bob
        .post_json(
            "/api/readStatuses",
            &json!({"userId": a, "channelId": general, "lastReadAt": now}),
        )
        .await;
    expect_error(r, 403, "AuthorizationDeniedException").await;
    let ghost = uuid::Uuid::new_v4().to_string();
    let r = bob
        .post_json(
            "/api/readStatuses",
            &json!({"userId": b, "channelId": ghost, "lastReadAt": now}),
        )
        .await;
    expect_error(r, 404, "CHANNEL_NOT_FOUND").await;
    assert_eq!(
        bob.get_ok(&format!("/api/readStatuses?userId={b}")).await,
        json!([])
    );

    // Mark read, then toggle the bell: each PATCH changes only its field.
    let r = alice
        .send_json(
            Method::PATCH,
            &rs_path,
            &json!({"newLastReadAt": now, "newNotificationEnabled": null}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let marked: Value = r.json().await.unwrap();
    assert_eq!(marked["lastReadAt"], now.as_str());
    assert_eq!(marked["notificationEnabled"], false);
    let r = alice
        .send_json(
            Method::PATCH,
            &rs_path,
            &json!({"newLastReadAt": null, "newNotificationEnabled": true}),
        )
        .await;
    let belled: Value = r.json().await.unwrap();
    assert_eq!(
        (
            belled["lastReadAt"].as_str(),
            belled["notificationEnabled"].as_bool()
        ),
        (Some(now.as_str()), Some(true))
    );
    let r = alice
        .send_json(Method::PATCH, &rs_path, &json!({"newLastReadAt": future}))
        .await;
    expect_error(r, 400, "VALIDATION_ERROR").await;

    // Someone else's: 403 and NOT applied. Unknown id: 404.
    let r = bob
        .send_json(
            Method::PATCH,
            &rs_path,
            &json!({"newLastReadAt": "2020-01-01T00:00:00Z", "newNotificationEnabled": false}),
        )
        .await;
    expect_error(r, 403, "AuthorizationDeniedException").await;
    let r = admin
        .send_json(
            Method::PATCH,
            &rs_path,
            &json!({"newNotificationEnabled": false}),
        )
        .await;
    expect_error(r, 403, "AuthorizationDeniedException").await;
    let r = alice
        .send_json(
            Method::PATCH,
            &format!("/api/readStatuses/{ghost}"),
            &json!({"newNotificationEnabled": false}),
        )
        .await;
    let e = expect_error(r, 404, "READ_STATUS_NOT_FOUND").await;
    assert_eq!(e["details"]["readStatusId"], ghost);

    // Listing: self → own rows (unchanged by the refused PATCHes), other → 403, ADMIN → allowed.
    let mine = alice.get_ok(&format!("/api/readStatuses?userId={a}")).await;
    assert_eq!(mine, json!([belled]));
    expect_error(
        bob.get(&format!("/api/readStatuses?userId={a}")).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    assert_eq!(
        admin.get_ok(&format!("/api/readStatuses?userId={a}")).await,
        mine
    );

    // PRIVATE channel: the automatic row has notifications on; a second create is a duplicate.
    let private = alice.create_private_channel(&[&a, &b]).await;
    let pid = id_of(&private);
    let list = bob.get_ok(&format!("/api/readStatuses?userId={b}")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["channelId"], pid.as_str());
    assert_eq!(list[0]["notificationEnabled"], true);
    let r = bob
        .post_json(
            "/api/readStatuses",
            &json!({"userId": b, "channelId": pid, "lastReadAt": now}),
        )
        .await;
    expect_error(r, 409, "DUPLICATE_READ_STATUS").await;
}

/// The caller's notifications, newest first.
async fn notifications(api: &Api) -> Vec<Value> {
    api.get_ok("/api/notifications")
        .await
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn new_message_notifications() {
    let (_server, _admin, alice, bob, general) = setup().await;
    let carol = server_client_register(&alice, "carol").await;
    let (a, b, c) = (alice.user_id(), bob.user_id(), carol.user_id());

    // Private channel: members are notified by default; carol turns her bell off.
    let private = alice.create_private_channel(&[&a, &b, &c]).await;
    let pid = id_of(&private);
    let carol_rs = carol.get_ok(&format!("/api/readStatuses?userId={c}")).await;
    let carol_rs = id_of(&carol_rs[0]);
    let r = carol
        .send_json(
            Method::PATCH,
            &format!("/api/readStatuses/{carol_rs}"),
            &json!({"newNotificationEnabled": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let m1 = alice.send_text(&pid, "secret plan").await;
    let bob_notes = eventually(10, || async {
        Some(notifications(&bob).await).filter(|n| !n.is_empty())
    })
    .await;
    assert_eq!(bob_notes.len(), 1);
    let n = &bob_notes[0];
    assert_eq!(
        keys(n),
        [
            "content",
            "createdAt",
            "id",
            "receiverId",
            "targetId",
            "title",
            "type"
        ]
    );
    assert_eq!(n["title"], "alice");
    assert_eq!(n["content"], "secret plan");
    assert_eq!(n["type"], "NEW_MESSAGE");
    assert_eq!(n["targetId"], pid.as_str());
    assert_eq!(n["receiverId"], b.as_str());
    assert_eq!(m1["channelId"], pid.as_str());
    // Not for the author, not for a member whose bell is off.
    assert!(notifications(&alice).await.is_empty());
    assert!(notifications(&carol).await.is_empty());

    // Public channel: only members who turned the bell on (bob), never the author.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = bob
        .post_json(
            "/api/readStatuses",
            &json!({"userId": b, "channelId": general, "lastReadAt": now}),
        )
        .await;
    let bob_rs: Value = r.json().await.unwrap();
    alice.send_text(&general, "nobody hears this").await;
    let r = bob
        .send_json(
            Method::PATCH,
            &format!("/api/readStatuses/{}", id_of(&bob_rs)),
            &json!({"newNotificationEnabled": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = alice
        .post_json(
            "/api/readStatuses",
            &json!({"userId": a, "channelId": general, "lastReadAt": now}),
        )
        .await;
    let alice_rs: Value = r.json().await.unwrap();
    let r = alice
        .send_json(
            Method::PATCH,
            &format!("/api/readStatuses/{}", id_of(&alice_rs)),
            &json!({"newNotificationEnabled": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    alice.send_text(&general, "hello all").await;
    let bob_notes = eventually(10, || async {
        Some(notifications(&bob).await).filter(|n| n.len() >= 2)
    })
    .await;
    assert_eq!(
        bob_notes.len(),
        2,
        "the message before the bell was on made none: {bob_notes:?}"
    );
    // Newest first.
    assert_eq!(bob_notes[0]["title"], "alice (# general)");
    assert_eq!(bob_notes[0]["content"], "hello all");
    assert_eq!(bob_notes[0]["targetId"], general.as_str());
    assert_eq!(bob_notes[1]["content"], "secret plan");
    let at =
        |n: &Value| chrono::DateTime::parse_from_rfc3339(n["createdAt"].as_str().unwrap()).unwrap();
    assert!(at(&bob_notes[0]) > at(&bob_notes[1]));
    assert!(notifications(&alice).await.is_empty());
    assert!(notifications(&carol).await.is_empty());

    // Deleting: someone else's is a silent no-op (204, still there); one's own is gone.
    let newest = format!("/api/notifications/{}", id_of(&bob_notes[0]));
    assert_eq!(carol.delete(&newest).await.status(), 204);
    assert_eq!(notifications(&bob).await.len(), 2);
    assert_eq!(bob.delete(&newest).await.status(), 204);
    let left = notifications(&bob).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["content"], "secret plan");
}

/// Registers `name` on the same server as `api`.
async fn server_client_register(api: &Api, name: &str) -> Api {
    let mut c = Api::new(&api.base);
    c.register(name).await;
    c
}
