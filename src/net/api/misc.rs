//! Notifications, and the hand-offs to the realtime layer (SSE, `/ws`).

use http::StatusCode;
use hyper::body::Incoming;
use std::sync::Arc;
use uuid::Uuid;

use super::principal;
use crate::error::{ApiError, ApiResult};
use crate::net::request::Ctx;
use crate::net::response::no_content;
use crate::net::response::{self, Resp};
use crate::net::App;

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
    app.sse.open(
        &caller,
        last_id.as_deref(),
        ctx.takeover.as_ref(),
        &ctx.request_id,
    )
}

/// `/ws/**`: SockJS transports and raw WebSocket.
pub async fn realtime_entry(app: &Arc<App>, req: http::Request<Incoming>) -> Resp {
    match &app.ws {
        Some(ws) => ws.handle(req).await,
        None => {
            let path = req.uri().path().to_string();
            response::error(&ApiError::not_found_route(&path), &path)
        }
    }
}
