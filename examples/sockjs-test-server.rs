//! The SockJS conformance test server: the services the official sockjs-protocol suite
//! expects, on the same session and transport machinery `/ws` uses.
//!
//! ```text
//! scripts/sockjs-conformance.sh SUITE_DIR    # builds this, starts it, runs the suite
//! cargo run --example sockjs-test-server -- --port 8081
//! SOCKJS_URL=http://127.0.0.1:8081 python2.7 sockjs-protocol.py
//! ```
//!
//! - `/echo`: echoes every message;
//! - `/close`: closes every session right after it opens (`c[3000,"Go away!"]`);
//! - `/disabled_websocket_echo`: echo without the WebSocket transports;
//! - `/cookie_needed_echo`: echo with `cookie_needed` and the `JSESSIONID` cookie.
//!
//! JSONP is on and streaming responses end after 4096 bytes, as the suite requires.

use bytes::Bytes;
use discodeit::net::conn::{CloseKind, CloseReason, Outbound, Session, SessionFactory};
use discodeit::net::response::{self, Resp};
use discodeit::net::server::{serve_connection, HttpSettings};
use discodeit::net::sockjs::{SockJsOptions, SockJsServer};
use http::StatusCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;

/// Sends every message back.
struct Echo(Arc<Outbound>);

impl Session for Echo {
    fn on_message(&mut self, message: Bytes) {
        self.0.push_encoded(&message);
    }
    fn poll_work(&mut self, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
    fn busy(&self) -> bool {
        false
    }
    fn on_close(&mut self, _: &CloseReason) {}
}

struct EchoFactory;

impl SessionFactory for EchoFactory {
    fn open(&self, out: &Arc<Outbound>) -> Box<dyn Session> {
        Box::new(Echo(out.clone()))
    }
}

/// Closes every session at once.
struct CloseFactory;

impl SessionFactory for CloseFactory {
    fn open(&self, out: &Arc<Outbound>) -> Box<dyn Session> {
        out.close(CloseReason::new(CloseKind::Policy, 3000, "Go away!"));
        Box::new(Echo(out.clone()))
    }
}

/// The mounted endpoints, longest prefix first.
struct Endpoints(Vec<(&'static str, SockJsServer)>);

impl Endpoints {
    fn new() -> Self {
        let base = SockJsOptions {
            jsonp: true,
            streaming_limit: 4096,
            ..SockJsOptions::default()
        };
        let echo = || -> Arc<dyn SessionFactory> { Arc::new(EchoFactory) };
        Endpoints(vec![
            (
                "/disabled_websocket_echo",
                SockJsServer::new(
                    SockJsOptions {
                        websocket: false,
                        ..base.clone()
                    },
                    echo(),
                ),
            ),
            (
                "/cookie_needed_echo",
                SockJsServer::new(
                    SockJsOptions {
                        cookie_needed: true,
                        jsessionid: true,
                        ..base.clone()
                    },
                    echo(),
                ),
            ),
            (
                "/close",
                SockJsServer::new(base.clone(), Arc::new(CloseFactory)),
            ),
            ("/echo", SockJsServer::new(base, echo())),
        ])
    }

    async fn handle(&self, req: http::Request<hyper::body::Incoming>) -> Resp {
        let path = req.uri().path().to_string();
        for (prefix, server) in &self.0 {
            if let Some(rest) = path.strip_prefix(prefix) {
                if rest.is_empty() || rest.starts_with('/') {
                    return server.handle(req, rest).await;
                }
            }
        }
        response::with_body(
            StatusCode::NOT_FOUND,
            "text/plain;charset=UTF-8",
            "Not found",
        )
    }
}

/// `--host` (default 127.0.0.1: the suite runs locally) and `--port` (default 8081; 0 picks a
/// free port, printed on the first line of stdout).
fn addr_from_args() -> Result<(String, u16), String> {
    let mut args = std::env::args().skip(1);
    let mut port = 8081;
    let mut host = "127.0.0.1".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" | "-p" => {
                let v = args.next().ok_or("--port needs a value")?;
                port = v.parse().map_err(|_| format!("invalid port {v:?}"))?;
            }
            "--host" => host = args.next().ok_or("--host needs a value")?,
            "--help" | "-h" => {
                println!("Usage: sockjs-test-server [--host 127.0.0.1] [--port 8081]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((host, port))
}

#[tokio::main]
async fn main() {
    let (host, port) = match addr_from_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind((host.as_str(), port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    // The bound address, so `--port 0` (any free port) can be found by a script.
    match listener.local_addr() {
        Ok(addr) => println!("SockJS test server on http://{addr}"),
        Err(_) => println!("SockJS test server on http://{host}:{port}"),
    }
    let endpoints = Arc::new(Endpoints::new());
    // Never drains: the test server runs until it is killed.
    let (_drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let settings = HttpSettings {
        header_timeout: Duration::from_secs(30),
        send_buffer: None,
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let endpoints = endpoints.clone();
        let drain = drain_rx.clone();
        tokio::spawn(async move {
            let handler = move |req| {
                let endpoints = endpoints.clone();
                async move { endpoints.handle(req).await }
            };
            if let Some(next) = serve_connection(stream, settings, drain, handler).await {
                tokio::spawn(next);
            }
        });
    }
}
