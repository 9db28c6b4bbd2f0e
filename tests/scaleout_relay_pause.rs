//! The outbox relay's leader paused (SIGSTOP), not dead: its database connection stays open,
//! so leadership by a session lock would stall every instance's events until it resumed. With
//! the lease, a survivor takes over once the lease expires and events flow while the leader is
//! still stopped; when it resumes it finds a newer epoch, steps down and delivers nothing
//! twice. Own cluster: the pause stalls that cluster's pipeline for a few seconds.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/stomp.rs"]
mod stomp;

use cluster::Cluster;
use common::*;
use std::time::{Duration, Instant};
use stomp::{Kind, StompClient};

/// The relay lease: holder (`<instance id>/<process nonce>`) and epoch, if one is live.
async fn lease(db_url: &str) -> Option<(String, i64)> {
    let (client, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    let row = client
        .query_opt(
            "SELECT holder, epoch FROM relay_lease WHERE expires_at > now() AND holder <> ''",
            &[],
        )
        .await
        .ok()??;
    Some((row.get(0), row.get(1)))
}

/// True where the schema has no `relay_lease` table (the code before the lease).
async fn relay_lease_missing(db_url: &str) -> bool {
    let Ok((client, conn)) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await else {
        return false;
    };
    tokio::spawn(conn);
    client
        .query_one("SELECT to_regclass('relay_lease') IS NULL", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(false)
}

/// Which instance a holder names (instance ids are `<cluster>-<name>`).
fn holder_index(c: &Cluster, holder: &str) -> usize {
    let id = holder.split('/').next().unwrap_or_default();
    let name = id.rsplit('-').next().unwrap_or_default();
    c.instances
        .iter()
        .position(|i| i.name == name)
        .unwrap_or_else(|| panic!("no instance named by holder {holder}"))
}

#[tokio::test]
async fn a_paused_relay_leader_is_replaced_and_fenced() {
    let c = Cluster::shared().await;
    // Before the lease existed (a session advisory lock), instance A, started first, led.
    let (holder, epoch) = eventually(30, || async {
        match lease(&c.db_url).await {
            Some(l) => Some(l),
            None => relay_lease_missing(&c.db_url)
                .await
                .then(|| (format!("{}/advisory-lock", c.at(0).name), 0)),
        }
    })
    .await;
    let leader = holder_index(c, &holder);
    let others: Vec<usize> = (0..c.instances.len()).filter(|i| *i != leader).collect();
    let (reader_at, writer_at) = (others[0], others[1]);

    let mut writer = Api::new(&c.at(writer_at).base);
    writer.admin().await;
    let channel = writer.create_public_channel("relay-pause").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut reader = Api::new(&c.at(reader_at).base);
    reader.register("relaypause").await;
    let mut stomp = StompClient::connected(
        &c.at(reader_at).base,
        Kind::Raw,
        reader.token.as_deref().unwrap(),
    )
    .await;
    let dest = format!("/sub/channels.{channel}.messages");
    stomp.subscribe_confirmed("s", &dest).await;
    writer.send_text(&channel, "before").await;
    assert_eq!(stomp.next_message_json().await.1["content"], "before");

    c.at(leader).proc.signal("STOP");
    let paused = Instant::now();
    for i in 0..5 {
        writer.send_text(&channel, &format!("during-{i}")).await;
    }
    for i in 0..5 {
        let (_, m) = stomp.next_message_json().await;
        assert_eq!(m["content"], format!("during-{i}"));
    }
    let delivered_after = paused.elapsed();
    let (new_holder, new_epoch) = lease(&c.db_url).await.expect("a live lease");
    assert_ne!(
        new_holder, holder,
        "the paused leader still holds the lease"
    );
    assert!(new_epoch > epoch, "the takeover did not bump the epoch");
    assert_ne!(holder_index(c, &new_holder), leader);

    c.at(leader).proc.signal("CONT");
    // The stale leader finds a newer epoch and steps down (its log says so).
    let log = c.dir.join(format!("{}.log", c.at(leader).name));
    eventually(15, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains(&format!("lease epoch {epoch} lost"))
            .then_some(())
    })
    .await;
    for i in 0..5 {
        writer.send_text(&channel, &format!("after-{i}")).await;
    }
    for i in 0..5 {
        let (_, m) = stomp.next_message_json().await;
        assert_eq!(m["content"], format!("after-{i}"), "a duplicate or a gap");
    }
    assert!(
        stomp.next_frame(Duration::from_millis(500)).await.is_none(),
        "something was delivered twice"
    );
    assert_eq!(lease(&c.db_url).await.map(|l| l.1), Some(new_epoch));
    eprintln!(
        "relay leader {} paused: 5 messages delivered {:.1}s after the pause; \
         epoch {epoch} -> {new_epoch}",
        c.at(leader).name,
        delivered_after.as_secs_f64(),
    );
}
