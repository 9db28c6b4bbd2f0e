//! Issue 11, finding 4 (file descriptors): started with a low soft `RLIMIT_NOFILE` (as under
//! `ulimit -n 256`), the server raises it to the hard limit and serves more connections than
//! the soft limit it was given.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SOFT: u64 = 256;
const CONNECTIONS: usize = 400;

/// One keep-alive HTTP/1.1 request on an open connection; true on a 200.
async fn health(stream: &mut TcpStream) -> bool {
    let req = b"GET /actuator/health HTTP/1.1\r\nhost: x\r\n\r\n";
    if stream.write_all(req).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => buf[..n].starts_with(b"HTTP/1.1 200"),
        _ => false,
    }
}

#[tokio::test]
async fn a_low_soft_fd_limit_is_raised_and_more_connections_are_served() {
    let (url, name) = fresh_database().await;
    let server = TestServer::start_on_db_with(&url, &name, &[], |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child yet.
        unsafe {
            cmd.pre_exec(|| {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                lim.rlim_cur = SOFT;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
    .await;
    let hard = {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads into the struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        lim.rlim_max
    };
    assert!(
        hard > CONNECTIONS as u64 + 200,
        "this test needs a hard RLIMIT_NOFILE above {} (have {hard})",
        CONNECTIONS + 200
    );
    // The server's own view, from /proc.
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap_or_default();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.split_whitespace().nth(3) == Some(&hard.to_string()),
        "soft limit not raised: {line}"
    );

    // Hold CONNECTIONS connections open at once, each answered.
    let mut open = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut s = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert!(health(&mut s).await, "connection {i} got no 200");
        open.push(s);
    }
    // All still usable.
    for (i, s) in open.iter_mut().enumerate() {
        assert!(health(s).await, "connection {i} stopped answering");
    }
}
