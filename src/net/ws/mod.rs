//! `/ws`: SockJS transports and raw WebSocket carrying STOMP (in progress).
//!
//! - [`outbox`]: the bounded per-connection queue and its close signal;
//! - [`hub`]: subscriptions and connections, fan-out of bus events (encoded once).

pub mod hub;
pub mod outbox;

use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::app::App;
use crate::bus::EventBus;
use crate::config::Config;
use crate::error::ApiError;
use crate::net::response::{self, Resp};
use crate::service::Services;

/// The realtime endpoint.
pub struct WsEndpoint {}

impl WsEndpoint {
    pub fn new(_config: &Config, _services: Arc<Services>, _bus: &EventBus) -> Self {
        WsEndpoint {}
    }

    pub async fn handle(
        &self,
        _app: Arc<App>,
        req: http::Request<Incoming>,
        _remote: SocketAddr,
    ) -> Resp {
        let path = req.uri().path().to_string();
        response::error(&ApiError::not_found_route(&path), &path)
    }
}
