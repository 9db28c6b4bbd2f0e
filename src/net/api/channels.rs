//! `/api/channels`.

use http::StatusCode;
use uuid::Uuid;

use super::principal;
use crate::error::ApiResult;
use crate::net::request::Ctx;
use crate::net::response::no_content;
use crate::net::response::{self, Resp};
use crate::net::App;

pub async fn list(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let user = ctx.query_uuid("userId")?;
    let list = app.services.list_channels(&caller, user).await?;
    Ok(response::json(StatusCode::OK, &list))
}

pub async fn create_public(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let req = ctx.json().await?;
    let dto = app.services.create_public_channel(&caller, req).await?;
    Ok(response::json(StatusCode::CREATED, &dto))
}

pub async fn create_private(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let req = ctx.json().await?;
    let dto = app.services.create_private_channel(&caller, req).await?;
    Ok(response::json(StatusCode::CREATED, &dto))
}

pub async fn update(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let req = ctx.json().await?;
    let dto = app.services.update_channel(&caller, id, req).await?;
    Ok(response::json(StatusCode::OK, &dto))
}

pub async fn delete(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    app.services.delete_channel(&caller, id).await?;
    Ok(no_content())
}
