//! The state every request handler and realtime transport reaches: built by `app` (the
//! composition root) and handed to [`crate::net::server::serve`]. It lives in `net` so that
//! arrows point one way: `app` → `net` → `service`, never back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::net::sse::SseHub;
use crate::net::static_files::StaticFiles;
use crate::net::ws::WsEndpoint;
use crate::service::Services;

/// Everything a request handler can reach.
pub struct App {
    pub config: Arc<Config>,
    pub services: Arc<Services>,
    pub web: Option<StaticFiles>,
    /// Swagger UI's files (`swagger-ui/dist`), served at `/swagger-ui/`.
    pub swagger_ui: Option<StaticFiles>,
    pub sse: Arc<SseHub>,
    pub ws: Option<WsEndpoint>,
    /// True once the event pipeline is consuming (multi-instance mode waits for Kafka).
    pub ready: Arc<AtomicBool>,
    /// True until the instance starts draining: the readiness probe reports DOWN from then
    /// on, so load balancers and orchestrators stop sending new clients.
    pub accepting: AtomicBool,
}

impl App {
    /// True once the event pipeline is consuming (multi-instance mode waits for Kafka).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// False once [`App::refuse_traffic`] was called.
    pub fn accepting_traffic(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Turns readiness DOWN for good (the first step of a graceful drain).
    pub fn refuse_traffic(&self) {
        self.accepting.store(false, Ordering::Release);
    }
}
