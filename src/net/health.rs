//! Health probes in Spring Boot Actuator's shapes, on the main and the admin listener:
//!
//! - `/actuator/health/liveness`: `{"status":"UP"}` whenever the process can answer at all;
//!   a failing liveness probe means "restart me".
//! - `/actuator/health/readiness`: UP while this instance should get traffic: PostgreSQL
//!   answers, Redis answers (when configured), the Kafka consumer holds its partitions (when
//!   configured) and the instance is not draining; else 503 `{"status":"DOWN","components":…}`.
//! - `/actuator/health`: the aggregate, with every component and the instance name.
//!
//! Each dependency check is bounded by [`CHECK_TIMEOUT`], so a probe never hangs on a
//! black-holed database.

use http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

use crate::net::response::{self, Resp};
use crate::net::App;

/// Longest a single dependency check may take before it counts as DOWN.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of one round of checks.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    pub db: bool,
    /// `None` when Redis is not configured (in-memory registry).
    pub redis: Option<bool>,
    /// `None` when Kafka is not configured (in-process bus).
    pub kafka: Option<bool>,
    /// False once the instance started draining.
    pub accepting: bool,
}

impl Checks {
    pub fn ready(&self) -> bool {
        self.db && self.redis != Some(false) && self.kafka != Some(false) && self.accepting
    }

    fn components(&self) -> Value {
        let up = |b: bool| json!({ "status": if b { "UP" } else { "DOWN" } });
        let mut c = json!({
            "db": up(self.db),
            "livenessState": up(true),
            "readinessState": up(self.ready()),
        });
        if let Some(r) = self.redis {
            c["redis"] = up(r);
        }
        if let Some(k) = self.kafka {
            c["kafka"] = up(k);
        }
        c
    }
}

/// Runs the dependency checks concurrently.
pub async fn check(app: &App) -> Checks {
    let db = async {
        matches!(
            tokio::time::timeout(CHECK_TIMEOUT, app.services.db.ping()).await,
            Ok(Ok(()))
        )
    };
    let redis = async {
        match app.config.redis_url {
            None => None,
            Some(_) => Some(matches!(
                tokio::time::timeout(CHECK_TIMEOUT, app.services.registry.ping()).await,
                Ok(Ok(()))
            )),
        }
    };
    let (db, redis) = tokio::join!(db, redis);
    Checks {
        db,
        redis,
        kafka: app.config.kafka_bootstrap.as_ref().map(|_| app.ready()),
        accepting: app.accepting_traffic(),
    }
}

fn status(up: bool) -> StatusCode {
    if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /actuator/health/liveness`.
pub fn liveness() -> Resp {
    response::json(StatusCode::OK, &json!({ "status": "UP" }))
}

/// `GET /actuator/health/readiness`.
pub async fn readiness(app: &App) -> Resp {
    let c = check(app).await;
    let body = if c.ready() {
        json!({ "status": "UP" })
    } else {
        json!({ "status": "DOWN", "components": c.components() })
    };
    response::json(status(c.ready()), &body)
}

/// `GET /actuator/health`: readiness with every component and the instance name.
pub async fn aggregate(app: &App) -> Resp {
    let c = check(app).await;
    let mut components = c.components();
    // The message writer's queue: how close REST is to 503s and STOMP SENDs to waiting.
    components["messageWriter"] = json!({
        "status": "UP",
        "queued": app.services.message_queue_len(),
        "capacity": app.config.message_queue,
    });
    let body = json!({
        "status": if c.ready() { "UP" } else { "DOWN" },
        "components": components,
        "instance": app.config.instance_id,
    });
    response::json(status(c.ready()), &body)
}

/// The route template of a health path (with or without a trailing slash), if it is one.
pub fn template(path: &str) -> Option<&'static str> {
    match path.trim_end_matches('/') {
        "/actuator/health" => Some("/actuator/health"),
        "/actuator/health/liveness" => Some("/actuator/health/liveness"),
        "/actuator/health/readiness" => Some("/actuator/health/readiness"),
        _ => None,
    }
}

/// Answers the health endpoint named by `template` (one [`template`] returned).
pub async fn respond(app: &App, template: &str) -> Resp {
    match template {
        "/actuator/health/liveness" => liveness(),
        "/actuator/health/readiness" => readiness(app).await,
        _ => aggregate(app).await,
    }
}
