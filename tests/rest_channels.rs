//! REST acceptance: public and private channel life cycles with the role rules (§2 #6, #11–#15,
//! §4.7, §5.2, §5.7), over real HTTP against a real PostgreSQL database.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const INSTANT_MIN: &str = "-1000000000-01-01T00:00:00Z";
const CHANNEL_KEYS: [&str; 6] = [
    "description",
    "id",
    "lastMessageAt",
    "name",
    "participants",
    "type",
];
const USER_KEYS: [&str; 6] = ["email", "id", "online", "profile", "role", "username"];

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

async fn channels_of(api: &Api, user: &str) -> Value {
    api.get_ok(&format!("/api/channels?userId={user}")).await
}

#[tokio::test]
async fn role_change_then_manager_runs_public_channels() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let mut alice = server.client();
    let alice_dto = alice.register("alice").await;
    let alice_id = alice_dto["id"].as_str().unwrap().to_string();
    let mut bob = server.client();
    bob.register("bob").await;

    // A USER may not create public channels, nor change roles.
    let r = alice
        .post_json("/api/channels/public", &json!({"name": "general"}))
        .await;
    let body = expect_error(r, 403, "AuthorizationDeniedException").await;
    assert_eq!(body["message"], "Access Denied");
    let r = alice
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": alice_id, "newRole": "ADMIN"}),
        )
        .await;
    expect_error(r, 403, "AuthorizationDeniedException").await;

    // Admin: unknown target → 404, then promote alice.
    let ghost = uuid::Uuid::new_v4().to_string();
    let r = admin
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": ghost, "newRole": "CHANNEL_MANAGER"}),
        )
        .await;
    let body = expect_error(r, 404, "USER_NOT_FOUND").await;
    assert_eq!(body["details"]["userId"], ghost);
    let old_token = alice.token.clone().unwrap();
    let r = admin
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": alice_id, "newRole": "CHANNEL_MANAGER"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let promoted: Value = r.json().await.unwrap();
    assert_eq!(keys(&promoted), USER_KEYS);
    assert_eq!(promoted["id"], alice_id.as_str());
    assert_eq!(promoted["role"], "CHANNEL_MANAGER");
    assert!(promoted["online"].is_null());

    // The target's session is revoked: the old token is refused, refresh finds no session.
    let body = expect_error(alice.get("/api/users").await, 401, "INVALID_TOKEN").await;
    assert_eq!(body["details"]["accessToken"], old_token);
    let r = alice
        .req(Method::POST, "/api/auth/refresh")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Logging in again yields the new role; the ROLE_CHANGED notification waits for alice.
    alice.login("alice", "p@ssw0rd1").await;
    let notes = alice.get_ok("/api/notifications").await;
    let notes = notes.as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let n = &notes[0];
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
    assert_eq!(n["type"], "ROLE_CHANGED");
    assert_eq!(n["title"], "권한 변경: USER -> CHANNEL_MANAGER");
    assert_eq!(
        n["content"],
        "관리자에 의해 권한이 'CHANNEL_MANAGER'(으)로 변경되었습니다."
    );
    assert_eq!(n["receiverId"], alice_id.as_str());
    assert_eq!(n["targetId"], alice_id.as_str());

    // Setting the same role again still revokes the session but creates no notification.
    let r = admin
        .send_json(
            Method::PUT,
            "/api/auth/role",
            &json!({"userId": alice_id, "newRole": "CHANNEL_MANAGER"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    expect_error(alice.get("/api/users").await, 401, "INVALID_TOKEN").await;
    alice.login("alice", "p@ssw0rd1").await;
    assert_eq!(
        alice
            .get_ok("/api/notifications")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Validation runs before the role check: a USER with a bad body gets 400, not 403.
    let r = bob
        .post_json("/api/channels/public", &json!({"name": "x"}))
        .await;
    expect_error(r, 400, "VALIDATION_ERROR").await;

    // The manager creates a public channel: exact shape.
    let r = alice
        .post_json("/api/channels/public", &json!({"name": "x"}))
        .await;
    let body = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert_eq!(
        body["details"]["name"],
        "채널명은 2자 이상 50자 이하여야 합니다"
    );
    let r = alice
        .post_json("/api/channels/public", &json!({"description": "no name"}))
        .await;
    expect_error(r, 400, "VALIDATION_ERROR").await;
    let general = alice.create_public_channel("general").await;
    assert_eq!(keys(&general), CHANNEL_KEYS);
    assert_eq!(general["type"], "PUBLIC");
    assert_eq!(general["name"], "general");
    assert_eq!(general["description"], "d");
    assert_eq!(general["participants"], json!([]));
    assert_eq!(general["lastMessageAt"], INSTANT_MIN);
    let gid = general["id"].as_str().unwrap().to_string();
    let r = alice
        .post_json("/api/channels/public", &json!({"name": "quiet"}))
        .await;
    assert_eq!(r.status(), 201);
    let quiet: Value = r.json().await.unwrap();
    assert!(quiet["description"].is_null(), "{quiet}");

    // Everybody sees public channels.
    let bob_id = bob.user_id();
    assert_eq!(
        ids(&channels_of(&bob, &bob_id).await),
        BTreeSet::from([gid.clone(), quiet["id"].as_str().unwrap().to_string()])
    );

    // Update: USER → 403, manager → 200; null fields stay, "" clears the description.
    let path = format!("/api/channels/{gid}");
    let r = bob
        .send_json(Method::PATCH, &path, &json!({"newName": "hijacked"}))
        .await;
    expect_error(r, 403, "AuthorizationDeniedException").await;
    let r = alice
        .send_json(Method::PATCH, &path, &json!({"newName": "lobby"}))
        .await;
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(
        (updated["name"].as_str(), updated["description"].as_str()),
        (Some("lobby"), Some("d"))
    );
    let r = alice
        .send_json(Method::PATCH, &path, &json!({"newDescription": ""}))
        .await;
    let updated: Value = r.json().await.unwrap();
    assert_eq!(
        (updated["name"].as_str(), updated["description"].as_str()),
        (Some("lobby"), Some(""))
    );
    let r = alice
        .send_json(Method::PATCH, &path, &json!({"newName": "y"}))
        .await;
    let body = expect_error(r, 400, "VALIDATION_ERROR").await;
    assert_eq!(
        body["details"]["newName"],
        "채널명은 2자 이상 50자 이하여야 합니다"
    );
    let listed = channels_of(&bob, &bob_id).await;
    let lobby = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == gid.as_str())
        .unwrap();
    assert_eq!(lobby["name"], "lobby");

    // Unknown channel: 404 with the id (USER still gets 403 first).
    let ghost_path = format!("/api/channels/{ghost}");
    let body = expect_error(
        alice
            .send_json(Method::PATCH, &ghost_path, &json!({"newName": "zz"}))
            .await,
        404,
        "CHANNEL_NOT_FOUND",
    )
    .await;
    assert_eq!(body["details"]["channelId"], ghost);
    assert_eq!(body["message"], "채널을 찾을 수 없습니다.");
    expect_error(
        bob.send_json(Method::PATCH, &ghost_path, &json!({"newName": "zz"}))
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_error(alice.delete(&ghost_path).await, 404, "CHANNEL_NOT_FOUND").await;

    // lastMessageAt follows the newest message and falls back to Instant.MIN without one.
    let only = bob.send_text(&gid, "only").await;
    let listed = channels_of(&bob, &bob_id).await;
    let lobby = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == gid.as_str())
        .unwrap();
    assert_eq!(lobby["lastMessageAt"], only["createdAt"]);
    assert_eq!(
        bob.delete(&format!("/api/messages/{}", only["id"].as_str().unwrap()))
            .await
            .status(),
        204
    );
    let listed = channels_of(&bob, &bob_id).await;
    let lobby = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == gid.as_str())
        .unwrap();
    assert_eq!(lobby["lastMessageAt"], INSTANT_MIN);

    // Delete: USER → 403, manager → 204; cascades to messages and their files; again → 404.
    let first = bob.send_text(&gid, "one").await;
    let r = bob
        .post_message(
            &gid,
            "two",
            vec![("two.txt", "text/plain", b"second".to_vec())],
        )
        .await;
    let second: Value = r.json().await.unwrap();
    let file_id = second["attachments"][0]["id"].as_str().unwrap().to_string();
    bob.wait_uploaded(&file_id).await;
    assert!(server.stored_files().contains(&file_id));
    expect_error(bob.delete(&path).await, 403, "AuthorizationDeniedException").await;
    assert_eq!(alice.delete(&path).await.status(), 204);
    assert!(!ids(&channels_of(&bob, &bob_id).await).contains(&gid));
    let page = bob.get_ok(&format!("/api/messages?channelId={gid}")).await;
    assert_eq!(page["content"], json!([]));
    let left = server
        .count(&format!(
            "SELECT count(*) FROM messages WHERE channel_id = '{gid}'"
        ))
        .await;
    assert_eq!(left, 0);
    let r = bob
        .send_json(
            Method::PATCH,
            &format!("/api/messages/{}", first["id"].as_str().unwrap()),
            &json!({"newContent": "edit"}),
        )
        .await;
    expect_error(r, 404, "MESSAGE_NOT_FOUND").await;
    expect_error(
        bob.get(&format!("/api/binaryContents/{file_id}")).await,
        404,
        "BINARY_CONTENT_NOT_FOUND",
    )
    .await;
    assert!(!server.stored_files().contains(&file_id));
    expect_error(alice.delete(&path).await, 404, "CHANNEL_NOT_FOUND").await;
}

#[tokio::test]
async fn private_channels_membership_and_visibility() {
    let server = TestServer::start().await;
    let mut admin = server.client();
    admin.admin().await;
    let mut alice = server.client();
    let mut bob = server.client();
    let mut carol = server.client();
    let a = alice.register("alice").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = bob.register("bob").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = carol.register("carol").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let public = admin.create_public_channel("general").await;
    let pid = public["id"].as_str().unwrap().to_string();

    // Fewer than two participants (or none) → 400 with the exact message; nothing written.
    let channels_before = server.count("SELECT count(*) FROM channels").await;
    for (body, msg) in [
        (
            json!({"participantIds": [b]}),
            "비공개 채널에는 최소 2명의 참여자가 필요합니다",
        ),
        (
            json!({"participantIds": []}),
            "참여자 목록은 비어있을 수 없습니다",
        ),
        (json!({}), "참여자 목록은 필수입니다"),
    ] {
        let r = alice.post_json("/api/channels/private", &body).await;
        let e = expect_error(r, 400, "VALIDATION_ERROR").await;
        assert_eq!(e["message"], "요청 데이터 유효성 검사에 실패했습니다");
        assert_eq!(e["details"], json!({"participantIds": msg}), "{body}");
    }
    assert_eq!(
        server.count("SELECT count(*) FROM channels").await,
        channels_before
    );

    // Unknown ids are skipped and duplicates collapse; the creator is in because listed.
    let ghost = uuid::Uuid::new_v4().to_string();
    let ab = alice.create_private_channel(&[&a, &b, &ghost, &b]).await;
    assert_eq!(keys(&ab), CHANNEL_KEYS);
    assert_eq!(ab["type"], "PRIVATE");
    assert!(ab["name"].is_null() && ab["description"].is_null());
    assert_eq!(ab["lastMessageAt"], INSTANT_MIN);
    let parts = ab["participants"].as_array().unwrap();
    assert_eq!(
        ids(&ab["participants"]),
        BTreeSet::from([a.clone(), b.clone()])
    );
    for p in parts {
        assert_eq!(keys(p), USER_KEYS);
        assert!(p["online"].is_null());
        assert_eq!(p["role"], "USER");
    }
    let ab_id = ab["id"].as_str().unwrap().to_string();

    // Read statuses were created for both members, notifications on.
    for (api, uid) in [(&alice, &a), (&bob, &b)] {
        let list = api.get_ok(&format!("/api/readStatuses?userId={uid}")).await;
        let rs: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["channelId"] == ab_id.as_str())
            .collect();
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0]["userId"], uid.as_str());
        assert_eq!(rs[0]["notificationEnabled"], true);
    }
    let statuses = server
        .count(&format!(
            "SELECT count(*) FROM read_statuses WHERE channel_id = '{ab_id}'"
        ))
        .await;
    assert_eq!(statuses, 2);

    // The creator is not added when not listed.
    let bc = alice.create_private_channel(&[&b, &c]).await;
    let bc_id = bc["id"].as_str().unwrap().to_string();
    assert_eq!(
        ids(&bc["participants"]),
        BTreeSet::from([b.clone(), c.clone()])
    );

    // Lists: public + own private channels, each once.
    assert_eq!(
        ids(&channels_of(&alice, &a).await),
        BTreeSet::from([pid.clone(), ab_id.clone()])
    );
    let bob_list = channels_of(&bob, &b).await;
    assert_eq!(bob_list.as_array().unwrap().len(), 3);
    assert_eq!(
        ids(&bob_list),
        BTreeSet::from([pid.clone(), ab_id.clone(), bc_id.clone()])
    );
    let listed_ab = bob_list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == ab_id.as_str())
        .unwrap();
    assert_eq!(
        ids(&listed_ab["participants"]),
        BTreeSet::from([a.clone(), b.clone()])
    );
    assert_eq!(
        ids(&channels_of(&carol, &c).await),
        BTreeSet::from([pid.clone(), bc_id.clone()])
    );

    // Asking for somebody else's list: 403 for users, allowed for ADMIN.
    expect_error(
        carol.get(&format!("/api/channels?userId={a}")).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    assert_eq!(
        ids(&channels_of(&admin, &a).await),
        BTreeSet::from([pid.clone(), ab_id.clone()])
    );

    // A non-member can neither read nor post.
    expect_error(
        carol.get(&format!("/api/messages?channelId={ab_id}")).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_error(
        carol.post_message(&ab_id, "let me in", vec![]).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    expect_error(
        alice.post_message(&bc_id, "not mine", vec![]).await,
        403,
        "AuthorizationDeniedException",
    )
    .await;

    // PATCH private: USER → 403 first; manager/admin → 400 PRIVATE_CHANNEL_UPDATE.
    let path = format!("/api/channels/{ab_id}");
    expect_error(
        alice
            .send_json(Method::PATCH, &path, &json!({"newName": "secret"}))
            .await,
        403,
        "AuthorizationDeniedException",
    )
    .await;
    let e = expect_error(
        admin
            .send_json(Method::PATCH, &path, &json!({"newName": "secret"}))
            .await,
        400,
        "PRIVATE_CHANNEL_UPDATE",
    )
    .await;
    assert_eq!(e["message"], "비공개 채널은 수정할 수 없습니다.");
    assert_eq!(e["details"], json!({"channelId": ab_id}));
    assert_eq!(e["exceptionType"], "PrivateChannelUpdateException");

    // Deleting a private channel: members' lists shrink, its read statuses and messages go.
    alice.send_text(&ab_id, "bye").await;
    expect_error(bob.delete(&path).await, 403, "AuthorizationDeniedException").await;
    assert_eq!(admin.delete(&path).await.status(), 204);
    assert_eq!(
        ids(&channels_of(&bob, &b).await),
        BTreeSet::from([pid.clone(), bc_id.clone()])
    );
    let rs = bob.get_ok(&format!("/api/readStatuses?userId={b}")).await;
    assert!(rs
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["channelId"] != ab_id.as_str()));
    assert_eq!(
        server
            .count(&format!(
                "SELECT count(*) FROM messages WHERE channel_id = '{ab_id}'"
            ))
            .await,
        0
    );
}
