//! A PostgreSQL restart in the middle of a run loses no acknowledged message (a 201 or a STOMP
//! RECEIPT) and stores none twice; the writer recovers on its own.
//!
//! The test starts its OWN PostgreSQL cluster (scripts/lib.sh `pg_start` with a temporary
//! `DISCODEIT_DATA` and a free port; fsync on) so that it can restart it; the shared cluster of
//! the other tests is never touched. A watchdog stops the cluster if the test process dies.

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::*;
use discodeit::proto::stomp::{Command, Frame};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command as Cmd, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use stomp::{Kind, StompClient, WAIT};

/// A private PostgreSQL cluster in a temporary directory.
#[derive(Clone)]
struct OwnPostgres {
    data: PathBuf,
    pgdata: String,
    port: u16,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl OwnPostgres {
    fn lib(&self, script: &str) -> std::process::Output {
        Cmd::new("bash")
            .current_dir(repo())
            .env("DISCODEIT_DATA", &self.data)
            .env("DISCODEIT_PG_PORT", self.port.to_string())
            .env_remove("DISCODEIT_PG_FAST")
            .args(["-c", &format!("set -e; source scripts/lib.sh; {script}")])
            .stderr(Stdio::inherit())
            .output()
            .expect("bash scripts/lib.sh")
    }

    fn start() -> OwnPostgres {
        let data = std::env::temp_dir().join(format!(
            "discodeit-pg-restart-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&data).unwrap();
        let mut pg = OwnPostgres {
            data,
            pgdata: String::new(),
            port: free_port(),
        };
        let out = pg.lib("pg_start >&2; echo \"$DISCODEIT_PG_DATA\"");
        assert!(out.status.success(), "pg_start failed");
        pg.pgdata = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // Stop the cluster and remove it once this test process is gone, however it ends.
        let me = std::process::id();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
             cd '{}' && DISCODEIT_DATA='{}' DISCODEIT_PG_PORT={} bash -c \
             'source scripts/lib.sh; pg_stop' ; rm -rf '{}' '{}'",
            repo().display(),
            pg.data.display(),
            pg.port,
            pg.pgdata,
            pg.data.display()
        );
        use std::os::unix::process::CommandExt;
        // Deliberately not waited for: it outlives this process.
        let watchdog = Cmd::new("bash")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        assert!(watchdog.is_ok(), "watchdog: {watchdog:?}");
        pg
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// An immediate (crash-like) restart: open connections die, recovery replays the WAL.
    fn restart(&self) {
        let out = self.lib(&format!(
            "_pg_run \"$(_pg_bindir)/pg_ctl\" -D '{}' -m immediate -w -t 60 restart >&2",
            self.pgdata
        ));
        assert!(out.status.success(), "pg_ctl restart failed");
    }

    async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .expect("connect to the private cluster");
        tokio::spawn(conn);
        c
    }
}

/// Acknowledged contents, and how many acknowledgements came after the restart, per sender.
#[derive(Default)]
struct Tally {
    acked: Mutex<Vec<String>>,
    failures: AtomicUsize,
    after_restart: Mutex<HashMap<usize, usize>>,
}

impl Tally {
    fn ack(&self, sender: usize, content: String, restarted: bool) {
        self.acked.lock().unwrap().push(content);
        if restarted {
            *self
                .after_restart
                .lock()
                .unwrap()
                .entry(sender)
                .or_default() += 1;
        }
    }

    fn total(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn min_after_restart(&self, senders: usize) -> usize {
        let m = self.after_restart.lock().unwrap();
        (0..senders)
            .map(|i| *m.get(&i).unwrap_or(&0))
            .min()
            .unwrap_or(0)
    }
}

/// Waits until the server reports its database up again.
async fn database_up(api: &Api) {
    eventually(60, || async {
        let r = api.get("/actuator/health").await;
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_postgres_restart_loses_no_acknowledged_message() {
    const SENDERS: usize = 6;
    let pg = OwnPostgres::start();
    let admin_db = pg.client("postgres").await;
    let fsync: String = admin_db.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "on", "the private cluster runs with fsync on");
    admin_db
        .batch_execute("CREATE DATABASE restart_test")
        .await
        .unwrap();
    let server = TestServer::start_on_db(
        &pg.url("restart_test"),
        "restart_test",
        &[("DISCODEIT_MESSAGE_ADMISSION_TIMEOUT_MS", "1000")],
    )
    .await;
    let mut admin = server.client();
    admin.admin().await;
    let channel = admin.create_public_channel("restart").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let mut api = server.client();
        api.register(&format!("sender{i}")).await;
        senders.push(api);
    }

    let tally = Arc::new(Tally::default());
    let restarted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, api) in senders.into_iter().enumerate() {
        let (tally, restarted, stop) = (tally.clone(), restarted.clone(), stop.clone());
        let (channel, base) = (channel.clone(), server.base.clone());
        tasks.push(tokio::spawn(async move {
            let me = api.user_id();
            let mut stomp: Option<StompClient> = None;
            let mut k = 0;
            while !stop.load(Ordering::Acquire) {
                k += 1;
                let content = format!("s{i}-{k}");
                let after = restarted.load(Ordering::Acquire);
                let ok = if i % 2 == 0 {
                    // STOMP: an ERROR closes the session; the next message reconnects.
                    if stomp.is_none() {
                        stomp = Some(
                            StompClient::connected(&base, Kind::Raw, api.token.as_ref().unwrap())
                                .await,
                        );
                    }
                    let c = stomp.as_mut().unwrap();
                    let frame = Frame::new(Command::Send)
                        .with_header("destination", "/pub/messages")
                        .with_header("receipt", format!("r-{k}"))
                        .body(
                            serde_json::to_vec(&json!({"content": content,
                                "channelId": channel, "authorId": me}))
                            .unwrap(),
                        );
                    c.send(&frame).await;
                    match c.next_non_message(WAIT).await {
                        Some(f) if f.command == Command::Receipt => true,
                        _ => {
                            stomp = None;
                            false
                        }
                    }
                } else {
                    api.post_message(&channel, &content, vec![]).await.status() == 201
                };
                if ok {
                    tally.ack(i, content, after);
                } else {
                    tally.failures.fetch_add(1, Ordering::Relaxed);
                    database_up(&api).await;
                }
            }
        }));
    }

    // Restart in the middle of the run, then run on until every sender was acknowledged ten
    // more times.
    eventually(60, || async { (tally.total() >= 60).then_some(()) }).await;
    restarted.store(true, Ordering::Release);
    let before = tally.total();
    let own = pg.clone();
    tokio::task::spawn_blocking(move || own.restart())
        .await
        .unwrap();
    eventually(90, || async {
        (tally.min_after_restart(SENDERS) >= 10).then_some(())
    })
    .await;
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }

    let acked = tally.acked.lock().unwrap().clone();
    let db = pg.client("restart_test").await;
    let stored: HashMap<String, i64> = db
        .query(
            "SELECT content, count(*) FROM messages GROUP BY content",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    eprintln!(
        "{} acknowledged ({before} before the restart), {} failures, {} stored",
        acked.len(),
        tally.failures.load(Ordering::Relaxed),
        stored.len()
    );
    for content in &acked {
        assert_eq!(
            stored.get(content),
            Some(&1),
            "acknowledged {content} stored once"
        );
    }
    assert!(stored.values().all(|n| *n == 1), "nothing stored twice");
    drop(server);
}
