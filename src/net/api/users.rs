//! `/api/users`.

use http::StatusCode;
use uuid::Uuid;

use super::principal;
use crate::error::ApiResult;
use crate::net::multipart::{Form, PartLimits};
use crate::net::request::Ctx;
use crate::net::response::no_content;
use crate::net::response::{self, Resp};
use crate::net::App;
use crate::service::users::{UserCreateRequest, UserUpdateRequest};

/// A user form carries one `profile` file.
const PROFILE: PartLimits = PartLimits {
    name: "profile",
    files: 1,
};

pub async fn create(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let cfg = &app.config;
    let form = Form::read(ctx, cfg.max_file_bytes, cfg.max_request_bytes, PROFILE).await?;
    let req: UserCreateRequest = form.json("userCreateRequest")?;
    let profile = form.files("profile").into_iter().next();
    let dto = app
        .services
        .create_user(
            req,
            profile,
            ctx.request_id.clone(),
            ctx.client_ip(&app.config.trusted_proxies),
        )
        .await?;
    Ok(response::json(StatusCode::CREATED, &dto))
}

pub async fn list(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    principal(app, ctx).await?;
    Ok(response::json(
        StatusCode::OK,
        &app.services.list_users().await?,
    ))
}

pub async fn update(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let cfg = &app.config;
    let form = Form::read(ctx, cfg.max_file_bytes, cfg.max_request_bytes, PROFILE).await?;
    let req: UserUpdateRequest = form.json_or_default("userUpdateRequest")?;
    let profile = form.files("profile").into_iter().next();
    let dto = app
        .services
        .update_user(&caller, id, req, profile, ctx.request_id.clone())
        .await?;
    Ok(response::json(StatusCode::OK, &dto))
}

pub async fn delete(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    app.services.delete_user(&caller, id).await?;
    Ok(no_content())
}
