//! `/ws`: STOMP 1.2 over SockJS and over raw WebSocket (`/ws/websocket`).
//!
//! The endpoint wires the parts: the SockJS endpoint ([`crate::net::sockjs`], which also
//! serves the raw WebSocket) runs a STOMP session ([`crate::net::stomp`]) per connection, and
//! the STOMP hub fans bus events out to them.

use hyper::body::Incoming;
use std::sync::Arc;

use crate::bus::EventBus;
use crate::config::Config;
use crate::net::conn::QueueLimits;
use crate::net::response::Resp;
use crate::net::sockjs::{SockJsOptions, SockJsServer};
use crate::net::stomp::hub::Hub;
use crate::net::stomp::session::{StompContext, StompFactory, StompLimits};
use crate::proto::stomp::Limits;
use crate::service::Services;

/// The URL prefix of the endpoint.
pub const PREFIX: &str = "/ws";

/// The realtime endpoint: the hub and the SockJS server running STOMP.
pub struct WsEndpoint {
    hub: Arc<Hub>,
    sockjs: SockJsServer,
}

impl WsEndpoint {
    /// Builds the endpoint and subscribes its hub to `bus`. Needs a Tokio runtime.
    pub fn new(config: &Config, services: Arc<Services>, bus: &EventBus) -> Self {
        let hub = Hub::new(
            config.stomp_max_subscribers_per_destination,
            config.max_stomp_sessions_per_user,
        );
        hub.attach(bus);
        let limits = StompLimits {
            frame: Limits {
                max_frame_bytes: config.stomp_max_frame_bytes,
                ..Limits::default()
            },
            max_subscriptions: config.stomp_max_subscriptions,
            max_subscriptions_per_destination: config.stomp_max_subscriptions_per_destination,
            broker_max_body: config.stomp_broker_max_body_bytes,
            broker_rate: config.stomp_broker_rate,
            max_in_flight_sends: config.stomp_max_in_flight_sends,
        };
        let ctx = Arc::new(StompContext {
            backend: services,
            hub: hub.clone(),
            limits,
        });
        let options = SockJsOptions {
            // Spring's defaults: reported as needed, no JSONP.
            cookie_needed: true,
            jsonp: false,
            limits: QueueLimits::from_config(config),
            // A SockJS message is a JSON string: escaping can grow a frame up to six times.
            max_message_bytes: (config.stomp_max_frame_bytes * 6).max(64 * 1024),
            subprotocols: ["v12.stomp", "v11.stomp", "v10.stomp"]
                .map(String::from)
                .to_vec(),
            ..SockJsOptions::default()
        };
        let sockjs = SockJsServer::new(options, Arc::new(StompFactory(ctx)));
        WsEndpoint { hub, sockjs }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Closes every STOMP connection and SockJS session (server shutdown).
    pub fn close_all(&self, reason: crate::net::conn::CloseReason) {
        self.hub.close_all(reason.clone());
        self.sockjs.close_all(reason);
    }

    /// Serves a request whose path is `/ws` or below.
    pub async fn handle(&self, req: http::Request<Incoming>) -> Resp {
        let path = req.uri().path().to_string();
        let sub_path = path.strip_prefix(PREFIX).unwrap_or("");
        self.sockjs.handle(req, sub_path).await
    }
}
