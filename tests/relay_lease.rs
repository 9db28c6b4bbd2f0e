//! The relay lease's SQL on a real database: one holder at a time, takeover only after expiry,
//! a newer epoch fences every older holder (renewal, marking rows sent, republishing), and the
//! holder itself can take its lease back after its connection broke.

mod common;

use common::*;
use discodeit::store::outbox::{self as rows, OutboxRecord};
use discodeit::store::Db;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(3);

async fn db() -> Db {
    let (url, _name) = fresh_database().await;
    let db = Db::connect(&url, 4).expect("pool");
    db.migrate().await.expect("migrations");
    db
}

#[tokio::test]
async fn the_lease_admits_one_holder_and_fences_the_old_one() {
    let db = db().await;
    let c = db.conn().await.unwrap();
    let a = rows::try_lead(&**c, "a/1", TTL)
        .await
        .unwrap()
        .expect("free lease");
    assert_eq!(a.epoch, 1);
    assert!(rows::try_lead(&**c, "b/1", TTL).await.unwrap().is_none());
    assert!(rows::renew(&**c, &a, TTL).await.unwrap());
    // A holder whose connection broke takes its own lease back at once (a new epoch).
    let a2 = rows::try_lead(&**c, "a/1", TTL)
        .await
        .unwrap()
        .expect("own lease");
    assert_eq!(a2.epoch, 2);
    assert!(
        !rows::renew(&**c, &a, TTL).await.unwrap(),
        "old epoch renewed"
    );

    rows::append(
        &db,
        &[OutboxRecord {
            family: "broker",
            key: "k".into(),
            payload: "{}".into(),
        }],
    )
    .await
    .unwrap();
    let pending = rows::pending(&**c, 10).await.unwrap();
    let ids: Vec<i64> = pending.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 1);
    assert!(!rows::mark_sent_fenced(&**c, &ids, &a).await.unwrap());
    assert_eq!(
        rows::pending(&**c, 10).await.unwrap().len(),
        1,
        "stale mark"
    );
    assert!(rows::mark_sent_fenced(&**c, &ids, &a2).await.unwrap());
    assert!(rows::pending(&**c, 10).await.unwrap().is_empty());
    // Republishing the recent window is fenced the same way.
    let window = Duration::from_secs(10);
    assert_eq!(rows::unsend_recent(&**c, window, &a).await.unwrap(), 0);
    assert_eq!(rows::unsend_recent(&**c, window, &a2).await.unwrap(), 1);
    assert_eq!(rows::pending(&**c, 10).await.unwrap().len(), 1);

    // Once it expires, another instance takes it with a newer epoch and the old holder's
    // renewal fails.
    c.execute(
        "UPDATE relay_lease SET expires_at = now() - interval '1 second'",
        &[],
    )
    .await
    .unwrap();
    assert!(
        !rows::renew(&**c, &a2, TTL).await.unwrap(),
        "expired lease renewed"
    );
    let b = rows::try_lead(&**c, "b/1", TTL)
        .await
        .unwrap()
        .expect("expired lease");
    assert_eq!(b.epoch, 3);
    assert!(!rows::mark_sent_fenced(&**c, &ids, &a2).await.unwrap());
    assert!(rows::mark_sent_fenced(&**c, &ids, &b).await.unwrap());
}
