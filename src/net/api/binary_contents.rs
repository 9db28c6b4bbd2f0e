//! `/api/binaryContents`: metadata (authenticated) and downloads (public, for `<img src>`).

use http::{header, StatusCode};
use uuid::Uuid;

use super::principal;
use crate::error::ApiResult;
use crate::net::request::{parse_uuid, Ctx};
use crate::net::response::{self, set_header, Resp};
use crate::net::App;

pub async fn get(app: &App, ctx: &mut Ctx, id: Uuid) -> ApiResult<Resp> {
    principal(app, ctx).await?;
    Ok(response::json(
        StatusCode::OK,
        &app.services.binary_content(id).await?,
    ))
}

pub async fn list(app: &App, ctx: &mut Ctx) -> ApiResult<Resp> {
    principal(app, ctx).await?;
    let ids = ctx
        .query_all("binaryContentIds")
        .into_iter()
        .map(|raw| parse_uuid(raw, "binaryContentIds"))
        .collect::<ApiResult<Vec<Uuid>>>()?;
    Ok(response::json(
        StatusCode::OK,
        &app.services.binary_contents(&ids).await?,
    ))
}

/// `attachment; filename="…"` with an RFC 5987 `filename*` for non-ASCII names.
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut v = format!("attachment; filename=\"{ascii}\"");
    if !name.is_ascii() {
        let enc = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        v.push_str(&format!("; filename*=UTF-8''{enc}"));
    }
    v
}

pub async fn download(app: &App, id: Uuid) -> ApiResult<Resp> {
    let (meta, bytes) = app.services.download(id).await?;
    let len = bytes.len();
    let mut r = response::with_body(StatusCode::OK, &meta.content_type, bytes);
    set_header(&mut r, header::CONTENT_LENGTH, &len.to_string());
    set_header(
        &mut r,
        header::CONTENT_DISPOSITION,
        &disposition(&meta.file_name),
    );
    // The stored content type is whatever the uploader claimed: browsers must not sniff a
    // "text/plain" file into HTML or script.
    set_header(&mut r, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    Ok(r)
}
