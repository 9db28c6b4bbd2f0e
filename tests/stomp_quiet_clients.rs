//! A connection that is quiet for a moment is still read. The WebSocket driver must register
//! for the socket's next bytes whenever a read finds nothing: it used to stop at a read that
//! found the readiness stale (right after the takeover from hyper), and a CONNECT that arrived
//! then was never read; the client got the 60 s CONNECT deadline's ERROR instead (0.4 % of
//! 10,000 connections opened in a burst, perf/RESULTS.md).

mod common;
#[path = "common/stomp.rs"]
mod stomp;

use common::TestServer;
use discodeit::proto::stomp::{Command, Frame};
use std::time::Duration;
use stomp::{Kind, StompClient, WAIT};

/// How long the clients pause: long enough for the server to have read everything pending.
const PAUSE: Duration = Duration::from_millis(150);

async fn token(server: &TestServer, name: &str) -> String {
    let mut api = server.client();
    api.register(name).await;
    api.token.clone().unwrap()
}

#[tokio::test]
async fn a_connect_sent_a_moment_after_the_upgrade_is_answered() {
    let server = TestServer::start().await;
    let token = token(&server, "late").await;
    for kind in [Kind::Raw, Kind::SockJsWebSocket] {
        let mut c = StompClient::open(&server.base, kind).await;
        tokio::time::sleep(PAUSE).await;
        let reply = c
            .connect_with(&[("Authorization", &format!("Bearer {token}"))])
            .await;
        assert_eq!(reply.command, Command::Connected, "{reply:?}");
    }
}

#[tokio::test]
async fn a_publishers_spaced_sends_all_arrive() {
    let server = TestServer::start().await;
    let token = token(&server, "spaced").await;
    let mut sub = StompClient::connected(&server.base, Kind::Raw, &token).await;
    sub.subscribe_confirmed("s-0", "/sub/quiet").await;
    for kind in [Kind::Raw, Kind::SockJsWebSocket] {
        // A publisher that never subscribes and asks for no receipt: nothing it is sent wakes
        // its connection, only its own frames do.
        let mut publisher = StompClient::connected(&server.base, kind, &token).await;
        for i in 0..5 {
            tokio::time::sleep(PAUSE).await;
            publisher
                .send(
                    &Frame::new(Command::Send)
                        .with_header("destination", "/sub/quiet")
                        .body(format!("m{i}").into_bytes()),
                )
                .await;
            let f = sub
                .next_frame(WAIT)
                .await
                .unwrap_or_else(|| panic!("SEND {i} over {kind:?} never arrived"));
            assert_eq!(f.command, Command::Message);
            assert_eq!(f.body, format!("m{i}").into_bytes());
        }
    }
}

/// A burst of connections, each sending CONNECT as soon as its upgrade is answered: every
/// one is answered (before the fix, 0.4 % of 10,000 in the benchmark waited 60 s for the
/// CONNECT deadline instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_is_answered_every_time() {
    // This process holds N sockets: raise the soft descriptor limit to the hard one, as the
    // server does at start-up, and stay inside it. The race hit ~0.5 % of connections, so
    // 1,500 catch it about every other run: a flaky failure here is that bug, not noise.
    let limit = discodeit::fd_limit::raise().expect("descriptor limit");
    let n = 1500.min((limit.soft.saturating_sub(256) / 2) as usize);
    assert!(n >= 500, "too few descriptors for the burst: {limit:?}");
    let server = TestServer::start_with(&[("DISCODEIT_MAX_STOMP_SESSIONS_PER_USER", "2000")]).await;
    let token = token(&server, "burst").await;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (base, token) = (server.base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = StompClient::open(&base, Kind::Raw).await;
            c.connect_with(&[("Authorization", &format!("Bearer {token}"))])
                .await
                .command
                == Command::Connected
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += usize::from(t.await.unwrap());
    }
    assert_eq!(
        answered, n,
        "every CONNECT of the burst answered with CONNECTED"
    );
}
