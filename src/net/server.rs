//! The accept loop and the HTTP/1.1 connection driver.
//!
//! Every connection is served by hyper until a realtime handler takes it over (see
//! [`Takeover`]): then the hyper task ends and the handoff runs in a fresh task whose memory is
//! only the realtime driver's. The accept loop bounds the number of open connections below
//! the file-descriptor limit — past it a new connection gets a 503 and is closed — and hyper
//! gets a header-read timeout, so a client that sends half a request head (or idles on a
//! keep-alive connection) is dropped instead of holding a descriptor forever.

use futures_util::future::BoxFuture;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::conn::{CloseReason, Takeover};
use super::{router, App, Resp};

/// Per-connection HTTP settings.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Time to receive a request head; also how long a keep-alive connection may idle.
    pub header_timeout: Duration,
    /// SO_SNDBUF for each connection (unset: the kernel's).
    pub send_buffer: Option<usize>,
}

/// How many connections to accept at once: the configured number, but never more than the
/// file-descriptor limit leaves room for (see [`crate::fd_limit`]).
pub fn connection_capacity(configured: Option<usize>, pool_size: usize) -> usize {
    let by_fds = crate::fd_limit::raise()
        .map(|l| l.connection_capacity(pool_size).max(16) as usize)
        .unwrap_or(usize::MAX);
    configured.unwrap_or(by_fds).min(by_fds)
}

/// Logs accept failures at most once per period, with the number suppressed.
struct Throttled {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    fn warn(&mut self, what: &str) {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.period => self.suppressed += 1,
            _ => {
                if self.suppressed > 0 {
                    tracing::warn!(
                        "{what} (and {} more since the last warning)",
                        self.suppressed
                    );
                } else {
                    tracing::warn!("{what}");
                }
                self.last = Some(now);
                self.suppressed = 0;
            }
        }
    }
}

/// Accepts connections until `shutdown` resolves, then drains: readiness goes DOWN, the
/// listener closes (nginx moves new requests to other instances), realtime connections are
/// closed with "going away" reasons their clients reconnect on (replaying what they missed
/// from `Last-Event-ID` or a page refetch), in-flight REST requests finish while idle
/// keep-alive connections close, and the function returns once every connection is gone or
/// the drain limit has passed.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let config = &app.config;
    let capacity = connection_capacity(config.max_connections, config.database_pool_size);
    tracing::info!("accepting up to {capacity} connections at once");
    let settings = HttpSettings {
        header_timeout: config.http_header_timeout,
        send_buffer: config.socket_send_buffer,
    };
    let permits = Arc::new(Semaphore::new(capacity));
    let (drain_tx, drain_rx) = watch::channel(false);
    let mut accept_errors = Throttled {
        period: Duration::from_secs(10),
        last: None,
        suppressed: 0,
    };
    let mut full = Throttled {
        period: Duration::from_secs(10),
        last: None,
        suppressed: 0,
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    accept_errors.warn(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            full.warn(&format!(
                "connection limit {capacity} reached: refusing new connections with 503"
            ));
            tokio::spawn(refuse_overloaded(stream));
            continue;
        };
        let app = app.clone();
        let drain = drain_rx.clone();
        tokio::spawn(async move {
            let handler = move |req| router::handle(app.clone(), req, remote);
            if let Some(next) = serve_connection(stream, settings, drain, handler).await {
                tokio::spawn(async move {
                    next.await;
                    drop(permit);
                });
            }
        });
    }
    drain(&app, listener, drain_tx, permits, capacity).await;
}

/// Stops accepting, closes realtime connections and waits (bounded) for every connection.
async fn drain(
    app: &App,
    listener: TcpListener,
    drain_tx: watch::Sender<bool>,
    permits: Arc<Semaphore>,
    capacity: usize,
) {
    let started = Instant::now();
    app.refuse_traffic();
    drop(listener);
    let limit = app.config.shutdown_timeout;
    tracing::info!(
        "draining: not accepting connections; closing realtime connections, finishing requests (up to {} s)",
        limit.as_secs()
    );
    let _ = drain_tx.send(true);
    app.sse.close_all(CloseReason::shutdown());
    if let Some(ws) = &app.ws {
        ws.close_all(CloseReason::shutdown());
    }
    let all = u32::try_from(capacity).unwrap_or(u32::MAX);
    match tokio::time::timeout(limit, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("drained in {} ms", started.elapsed().as_millis()),
        Err(_) => tracing::warn!(
            "drain limit of {} s reached with {} connections open; exiting",
            limit.as_secs(),
            capacity.saturating_sub(permits.available_permits())
        ),
    }
}

/// Serves one connection with hyper and `handle`; returns the realtime driver to run when a
/// handler took the connection over (spawn it: this task's memory then goes away). When
/// `drain` turns true, hyper finishes the request in flight and closes the connection.
pub async fn serve_connection<F, Fut>(
    stream: TcpStream,
    settings: HttpSettings,
    mut drain: watch::Receiver<bool>,
    handle: F,
) -> Option<BoxFuture<'static, ()>>
where
    F: Fn(http::Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    if let Some(size) = settings.send_buffer {
        // A fixed, small send buffer bounds kernel memory per idle connection and makes a
        // stalled client fill its bounded queue (and get dropped) quickly.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
    }
    let (io, takeover) = Takeover::new(stream);
    let handle = Arc::new(handle);
    let for_requests = takeover.clone();
    let svc = service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(for_requests.clone());
        let fut = handle(req);
        Box::pin(async move { Ok::<_, Infallible>(fut.await) })
            as Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>
    });
    let mut conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    let result = {
        let mut shutting_down = *drain.borrow();
        if shutting_down {
            Pin::new(&mut conn).graceful_shutdown();
        }
        loop {
            tokio::select! {
                r = poll_fn(|cx| conn.poll_without_shutdown(cx)) => break r,
                changed = drain.changed(), if !shutting_down => {
                    shutting_down = true;
                    if changed.is_ok() && *drain.borrow() {
                        Pin::new(&mut conn).graceful_shutdown();
                    }
                }
            }
        }
    };
    let parts = conn.into_parts();
    let mut stream = parts.io.into_inner().into_inner();
    match (result, takeover.take()) {
        (Ok(()), Some(handoff)) => Some(handoff(stream, parts.read_buf)),
        (result, _) => {
            if let Err(e) = result {
                tracing::debug!("connection: {e}");
            }
            let _ = stream.shutdown().await;
            None
        }
    }
}

/// Past the connection limit: a 503 ErrorResponse, then close.
async fn refuse_overloaded(mut stream: TcpStream) {
    let body = serde_json::json!({
        "timestamp": crate::time::format_instant(&crate::time::now()),
        "code": "SERVICE_UNAVAILABLE",
        "message": "서비스를 일시적으로 사용할 수 없습니다.",
        "details": { "reason": "connection limit reached, retry later" },
        "exceptionType": "ServiceUnavailableException",
        "status": 503
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
