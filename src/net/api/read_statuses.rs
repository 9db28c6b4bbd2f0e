//! `/api/readStatuses`.

use http::StatusCode;
use uuid::Uuid;

use super::principal;
use crate::error::ApiResult;
use crate::net::request::Ctx;
use crate::net::response::{self, Resp};
use crate::net::App;

pub async fn list(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let user = ctx.query_uuid("userId")?;
    Ok(response::json(
        StatusCode::OK,
        &app.services.list_read_statuses(&caller, user).await?,
    ))
}

pub async fn create(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let req = ctx.json().await?;
    let dto = app.services.create_read_status(&caller, req).await?;
    Ok(response::json(StatusCode::CREATED, &dto))
}

pub async fn update(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let req = ctx.json().await?;
    let dto = app.services.update_read_status(&caller, id, req).await?;
    Ok(response::json(StatusCode::OK, &dto))
}
