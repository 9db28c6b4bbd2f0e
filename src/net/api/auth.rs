//! `/api/auth/**`: CSRF token, login, me, refresh, logout, role.

use http::{header, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use super::principal;
use crate::domain::CsrfTokenBody;
use crate::error::{ApiError, ApiResult};
use crate::net::multipart::{Form, PartLimits};
use crate::net::request::{parse_json, Ctx};
use crate::net::response::{self, Resp, JSON, JSON_UTF8};
use crate::net::App;
use crate::security::csrf;

const REFRESH_COOKIE: &str = "refresh_token";
/// Cookie names other Discodeit cohorts use; read, never written.
const REFRESH_ALIASES: [&str; 3] = [REFRESH_COOKIE, "REFRESH_TOKEN", "DISCODEIT_REFRESH_TOKEN"];

fn refresh_cookie(ctx: &Ctx) -> Option<String> {
    REFRESH_ALIASES
        .iter()
        .find_map(|n| ctx.cookie(n))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn set_refresh(ctx: &mut Ctx, token: &str) {
    ctx.set_cookies
        .push(format!("{REFRESH_COOKIE}={token}; HttpOnly"));
}

pub fn csrf_token(ctx: &mut Ctx) -> ApiResult<Resp> {
    let token = match ctx.cookie(csrf::COOKIE).filter(|c| !c.is_empty()) {
        Some(t) => t.to_string(),
        None => {
            let t = Uuid::new_v4().to_string();
            ctx.set_cookies
                .push(format!("{}={t}; Path=/", csrf::COOKIE));
            t
        }
    };
    Ok(response::json(
        StatusCode::OK,
        &CsrfTokenBody {
            token,
            header_name: "X-XSRF-TOKEN",
            parameter_name: "_csrf",
        },
    ))
}

#[derive(Deserialize)]
struct LoginRequest {
    username: Option<String>,
    password: Option<String>,
}

/// Reads username/password from JSON, urlencoded or multipart bodies.
async fn read_login(ctx: &mut Ctx) -> ApiResult<(String, String)> {
    let ct = ctx
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let unreadable = |_| ApiError::unreadable_login();
    let (u, p) = if ct.starts_with("multipart/form-data") {
        let no_files = PartLimits {
            name: "file",
            files: 0,
        };
        let form = Form::read(ctx, 64 * 1024, 64 * 1024, no_files)
            .await
            .map_err(unreadable)?;
        let text = |n: &str| {
            form.part(n)
                .map(|p| String::from_utf8_lossy(&p.bytes).into_owned())
        };
        (text("username"), text("password"))
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let body = ctx.body_bytes(64 * 1024).await.map_err(unreadable)?;
        let mut u = None;
        let mut p = None;
        for (k, v) in form_urlencoded::parse(&body) {
            match k.as_ref() {
                "username" => u = Some(v.into_owned()),
                "password" => p = Some(v.into_owned()),
                _ => {}
            }
        }
        (u, p)
    } else {
        let body = ctx.body_bytes(64 * 1024).await.map_err(unreadable)?;
        let req: LoginRequest = parse_json(&body).map_err(|_| ApiError::unreadable_login())?;
        (req.username, req.password)
    };
    match (u, p) {
        (Some(u), Some(p)) => Ok((u, p)),
        (None, _) => Err(ApiError::unknown_login_user()),
        (_, None) => Err(ApiError::bad_credentials()),
    }
}

pub async fn login(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let (username, password) = read_login(ctx).await?;
    let client = ctx.client_ip(&app.config.trusted_proxies);
    let pair = app.services.login(&username, &password, client).await?;
    set_refresh(ctx, &pair.refresh);
    let body = serde_json::to_vec(&pair.access).unwrap_or_default();
    Ok(response::with_body(StatusCode::OK, JSON_UTF8, body))
}

/// Bare token text; `application/json` when the client lists JSON first in `Accept`.
fn bare_token(ctx: &Ctx, token: String) -> Resp {
    let accept = ctx.header("accept").unwrap_or_default();
    let json_first = accept
        .split(',')
        .next()
        .map(|a| a.trim().starts_with("application/json"))
        .unwrap_or(false);
    let ct = if json_first {
        JSON
    } else {
        "text/plain;charset=UTF-8"
    };
    response::with_body(StatusCode::OK, ct, token)
}

pub async fn me(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let token = refresh_cookie(ctx).ok_or_else(|| ApiError::token_not_found(None))?;
    let access = app.services.me(&token).await?;
    Ok(bare_token(ctx, access))
}

pub async fn refresh(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let token = refresh_cookie(ctx).ok_or_else(|| ApiError::token_not_found(None))?;
    let pair = app.services.refresh(&token).await?;
    set_refresh(ctx, &pair.refresh);
    Ok(bare_token(ctx, pair.access))
}

pub async fn logout(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let token = refresh_cookie(ctx);
    app.services.logout(token.as_deref()).await?;
    const PAST: &str = "Expires=Thu, 01 Jan 1970 00:00:10 GMT";
    if token.is_some() {
        ctx.set_cookies
            .push(format!("{REFRESH_COOKIE}=; Max-Age=0; {PAST}; HttpOnly"));
    }
    ctx.set_cookies
        .push(format!("{}=; Path=/; Max-Age=0; {PAST}", csrf::COOKIE));
    let mut r = response::status_only(StatusCode::OK);
    response::set_header(&mut r, header::CONTENT_LENGTH, "0");
    Ok(r)
}

pub async fn update_role(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    let caller = principal(app, ctx).await?;
    let req = ctx.json().await?;
    let dto = app.services.update_role(&caller, req).await?;
    Ok(response::json(StatusCode::OK, &dto))
}
