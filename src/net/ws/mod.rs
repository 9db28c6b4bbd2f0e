//! `/ws`: STOMP 1.2 over SockJS and over raw WebSocket (`/ws/websocket`).
//!
//! - [`outbox`]: the bounded per-connection queue and its close signal;
//! - [`hub`]: subscriptions and connections, fan-out of bus events (encoded once);
//! - [`stomp_session`]: the transport-independent STOMP state machine;
//! - [`sockjs`]: the SockJS endpoint (sessions, HTTP transports), generic over a service;
//! - [`websocket`]: the WebSocket handshake and drivers.

pub mod hub;
pub mod outbox;
pub mod sockjs;
pub mod stomp_session;
pub mod websocket;

use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::bus::EventBus;
use crate::config::Config;
use crate::net::response::Resp;
use crate::net::App;
use crate::proto::stomp::Limits;
use crate::service::Services;
use hub::Hub;
use sockjs::{SockJsOptions, SockJsServer};
use stomp_session::{StompContext, StompService};

/// The URL prefix of the endpoint.
pub const PREFIX: &str = "/ws";

/// The realtime endpoint: the hub and the SockJS server running the STOMP service.
pub struct WsEndpoint {
    hub: Arc<Hub>,
    sockjs: SockJsServer,
}

impl WsEndpoint {
    /// Builds the endpoint and subscribes its hub to `bus`. Needs a Tokio runtime.
    pub fn new(config: &Config, services: Arc<Services>, bus: &EventBus) -> Self {
        let hub = Hub::new();
        hub.attach(bus);
        let limits = Limits {
            max_frame_bytes: config.stomp_max_frame_bytes,
            ..Limits::default()
        };
        let ctx = Arc::new(StompContext {
            services,
            hub: hub.clone(),
            limits,
        });
        let options = SockJsOptions {
            // Spring's defaults: reported as needed, no JSONP.
            cookie_needed: true,
            jsonp: false,
            queue: config.outbound_queue,
            // A SockJS message is a JSON string: escaping can grow a frame up to six times.
            max_message_bytes: (config.stomp_max_frame_bytes * 6).max(64 * 1024),
            subprotocols: ["v12.stomp", "v11.stomp", "v10.stomp"]
                .map(String::from)
                .to_vec(),
            ..SockJsOptions::default()
        };
        let sockjs = SockJsServer::new(options, Arc::new(StompService::new(ctx)));
        WsEndpoint { hub, sockjs }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves a request whose path is `/ws` or below.
    pub async fn handle(
        &self,
        _app: Arc<App>,
        req: http::Request<Incoming>,
        _remote: SocketAddr,
    ) -> Resp {
        let path = req.uri().path().to_string();
        let sub_path = path.strip_prefix(PREFIX).unwrap_or("");
        self.sockjs.handle(req, sub_path).await
    }
}
