//! Health, notifications, and the hand-offs to the realtime layer (SSE, `/ws`).

use http::StatusCode;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

use super::principal;
use crate::error::{ApiError, ApiResult};
use crate::net::request::Ctx;
use crate::net::response::{self, Resp};
use crate::net::router::no_content;
use crate::net::App;

/// `GET /actuator/health`: 200 `{"status":"UP"}` with the database status; 503 when down.
pub async fn health(app: &App) -> Resp {
    let db_up = app.services.db.ping().await.is_ok();
    let ready = db_up && app.ready();
    let body = serde_json::json!({
        "status": if ready { "UP" } else { "DOWN" },
        "components": {
            "db": { "status": if db_up { "UP" } else { "DOWN" } },
            "eventBus": { "status": if app.ready() { "UP" } else { "DOWN" } },
            "messageWriter": {
                "status": "UP",
                "queued": app.services.message_queue_len(),
                "capacity": app.config.message_queue,
            },
        },
        "instance": app.config.instance_id,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    response::json(status, &body)
}

pub async fn list_notifications(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let list = app.services.list_notifications(&caller).await?;
    Ok(response::json(StatusCode::OK, &list))
}

pub async fn delete_notification(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    app.services.delete_notification(&caller, id).await?;
    Ok(no_content())
}

/// `GET /api/sse`.
/// Unlike other endpoints, a missing token is 401 here: an EventSource client must learn
/// that retrying without credentials is pointless.
pub async fn sse(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    if ctx.bearer().is_none() {
        return Err(ApiError::token_not_found(None).detail("accessToken", serde_json::Value::Null));
    }
    let caller = principal(app, ctx).await?;
    let last_id = ctx
        .header("last-event-id")
        .or_else(|| ctx.query("lastEventId"))
        .or_else(|| ctx.query("LastEventId"))
        .map(str::to_string);
    Ok(app.sse.open(&caller, last_id.as_deref()))
}

/// `/ws/**`: SockJS transports and raw WebSocket.
pub async fn realtime_entry(
    app: &Arc<App>,
    req: http::Request<Incoming>,
    remote: SocketAddr,
) -> Resp {
    match &app.ws {
        Some(ws) => ws.handle(app.clone(), req, remote).await,
        None => {
            let path = req.uri().path().to_string();
            response::error(&ApiError::not_found_route(&path), &path)
        }
    }
}
