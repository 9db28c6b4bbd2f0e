//! `/api/messages`.

use http::StatusCode;
use uuid::Uuid;

use super::principal;
use crate::error::{ApiError, ApiResult};
use crate::net::multipart::{Form, PartLimits};
use crate::net::request::Ctx;
use crate::net::response::no_content;
use crate::net::response::{self, Resp};
use crate::net::App;
use crate::service::messages::{MessageCreateRequest, PageQuery};

fn int_param(ctx: &Ctx, name: &str) -> ApiResult<Option<i64>> {
    match ctx.query(name) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid_request(format!("'{name}' must be an integer"))),
    }
}

pub async fn list(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let q = PageQuery {
        channel_id: ctx.query_uuid("channelId")?,
        cursor: ctx.query("cursor").map(str::to_string),
        size: int_param(ctx, "size")?,
        page: int_param(ctx, "page")?,
    };
    let page = app.services.message_page(&caller, q).await?;
    Ok(response::json(StatusCode::OK, &page))
}

pub async fn create(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let cfg = &app.config;
    let parts = PartLimits {
        name: "attachments",
        files: cfg.max_attachments,
    };
    let form = Form::read(ctx, cfg.max_file_bytes, cfg.max_request_bytes, parts).await?;
    let req: MessageCreateRequest = form.json("messageCreateRequest")?;
    let files = form.files("attachments");
    let dto = app
        .services
        .create_message(&caller, req, files, ctx.request_id.clone())
        .await?;
    Ok(response::json(StatusCode::CREATED, &dto))
}

pub async fn update(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let req = ctx.json().await?;
    let dto = app.services.update_message(&caller, id, req).await?;
    Ok(response::json(StatusCode::OK, &dto))
}

pub async fn delete(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    app.services.delete_message(&caller, id).await?;
    Ok(no_content())
}
