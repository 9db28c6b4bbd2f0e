//! The admin listener (`DISCODEIT_ADMIN_ADDR`, loopback by default): `GET /actuator/prometheus`
//! and the health probes, apart from the public port so nginx never exposes them and a
//! scrape never queues behind client traffic. It keeps answering while the instance drains,
//! so orchestrators see readiness go DOWN.

use http::{Method, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

use super::health;
use super::response::{self, Resp};
use crate::error::ApiError;
use crate::net::App;
use crate::telemetry::{metrics, process};

/// The Prometheus text exposition format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves the admin endpoints on `listener` for the life of the runtime.
pub fn spawn(app: Arc<App>, listener: TcpListener) {
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("admin accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let app = app.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        Ok::<_, Infallible>(handle(&app, req.method(), req.uri().path()).await)
                    }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!("admin connection from {remote}: {e}");
                }
            });
        }
    });
}

async fn handle(app: &App, method: &Method, path: &str) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        return response::error(&ApiError::method_not_allowed(method.as_str()), path);
    }
    if path == "/actuator/prometheus" {
        if !metrics::enabled() {
            // DISCODEIT_METRICS=off: nothing records, so there is nothing to scrape.
            let refusal = ApiError::not_found_route(path).detail("metrics", "off");
            return response::error(&refusal, path);
        }
        return prometheus(app).await;
    }
    match health::template(path) {
        Some(t) => health::respond(app, t).await,
        None => response::error(&ApiError::not_found_route(path), path),
    }
}

/// Samples what is read rather than counted, then renders everything.
async fn prometheus(app: &App) -> Resp {
    let pool = app.services.db.pool_status();
    metrics::record_db_pool(metrics::PoolSample {
        max: pool.max_size,
        open: pool.size,
        in_use: pool.size.saturating_sub(pool.available),
        waiting: pool.waiting,
    });
    metrics::record_process(process::sample());
    match tokio::time::timeout(
        health::CHECK_TIMEOUT,
        crate::bus::outbox::backlog(&app.services.db),
    )
    .await
    {
        Ok(Ok(b)) => {
            metrics::record_outbox(b.rows, b.oldest_age);
            if let Some(rows) = b.dead_letters {
                metrics::record_dead_letters(rows);
            }
        }
        // The database is down or slow: the last values stay, readiness says why.
        Ok(Err(e)) => tracing::debug!("outbox sample: {}", e.message),
        Err(_) => tracing::debug!("outbox sample timed out"),
    }
    metrics::record_ready(health::check(app).await.ready());
    response::with_body(StatusCode::OK, PROMETHEUS_TEXT, metrics::render())
}
