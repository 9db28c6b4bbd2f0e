//! Request routing: `/api/**` to the REST handlers (after the CSRF check), the health probes,
//! `/ws/**` to the realtime transports, `/v3/api-docs` and `/swagger-ui` to the API reference,
//! everything else to the static web client.

use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::api::{self, Route};
use super::api_docs;
use super::request::{parse_uuid, Ctx};
use super::response::{self, set_header, Resp};
use super::{access_log, health};
use crate::error::{ApiError, ApiResult};
use crate::net::App;
use crate::security::csrf;
use crate::telemetry::metrics;

/// The route label of requests that matched no route (404, 405, malformed ids).
pub const UNKNOWN_ROUTE: &str = "UNKNOWN";
/// The route label of the static web client.
pub const STATIC_ROUTE: &str = "/**";
/// The route label of the realtime transports (their own metrics count them in detail).
pub const REALTIME_ROUTE: &str = "/ws/**";

/// Entry point for every HTTP request: runs it inside a span carrying its request id (so
/// every log line written while serving it has the id), counts it by route template and
/// status, and attaches the access log line.
pub async fn handle(app: Arc<App>, req: http::Request<Incoming>, remote: SocketAddr) -> Resp {
    let started = Instant::now();
    let method = req.method().clone();
    let request_id = access_log::request_id(req.headers());
    let span = tracing::info_span!("request", request_id = %request_id);
    let (route, mut resp) = dispatch(&app, req, remote, &request_id)
        .instrument(span)
        .await;
    set_header(
        &mut resp,
        header::HeaderName::from_static("discodeit-request-id"),
        &request_id,
    );
    let status = resp.status().as_u16();
    metrics::http_request(&method, route, status, started.elapsed());
    access_log::attach(
        resp,
        access_log::Entry {
            method,
            route,
            status,
            request_id,
            instance: app.config.instance_id.clone(),
            started,
        },
    )
}

/// Routes the request; returns its route template with the response.
async fn dispatch(
    app: &Arc<App>,
    req: http::Request<Incoming>,
    remote: SocketAddr,
    request_id: &str,
) -> (&'static str, Resp) {
    let path = req.uri().path().to_string();
    if path == "/ws" || path.starts_with("/ws/") {
        return (
            REALTIME_ROUTE,
            crate::net::api::realtime_entry(app, req).await,
        );
    }
    if let Some(template) = health::template(&path) {
        return (template, health::respond(app, template).await);
    }
    let mut ctx = Ctx::new(req, remote, request_id.to_string());
    if let Some(answer) = api_docs::route(app, &ctx.method, &path).await {
        return answer;
    }
    if path == "/api" || path.starts_with("/api/") {
        let (route, mut resp) = match resolve(&ctx.method, &path) {
            Ok(route) => {
                let template = route.template().1;
                let resp = match check_csrf(app, &mut ctx, &route) {
                    Ok(()) => match api::run(app, &mut ctx, route).await {
                        Ok(r) => r,
                        Err(e) => response::error(&e, &path),
                    },
                    Err(e) => response::error(&e, &path),
                };
                (template, resp)
            }
            Err(e) => {
                let mut r = response::error(&e, &path);
                if e.status == StatusCode::METHOD_NOT_ALLOWED.as_u16() {
                    set_header(&mut r, header::ALLOW, &allowed_methods(&path));
                }
                (UNKNOWN_ROUTE, r)
            }
        };
        for c in &ctx.set_cookies {
            set_header(&mut resp, header::SET_COOKIE, c);
        }
        return (route, resp);
    }
    match &app.web {
        Some(web) if ctx.method == Method::GET || ctx.method == Method::HEAD => {
            (STATIC_ROUTE, web.serve(&path).await)
        }
        _ => (
            UNKNOWN_ROUTE,
            response::error(&ApiError::not_found_route(&path), &path),
        ),
    }
}

/// The CSRF double-submit check; runs before authentication like Spring's filter chain.
fn check_csrf(app: &App, ctx: &mut Ctx, route: &Route) -> ApiResult<()> {
    if !app.config.csrf_enabled || !csrf::method_needs_token(&ctx.method) || route.csrf_exempt() {
        return Ok(());
    }
    let cookie = ctx.cookie(csrf::COOKIE).map(str::to_string);
    if csrf::tokens_match(cookie.as_deref(), ctx.header(csrf::HEADER)) {
        return Ok(());
    }
    if cookie.is_none() {
        ctx.set_cookies
            .push(format!("{}={}; Path=/", csrf::COOKIE, Uuid::new_v4()));
    }
    Err(ApiError::forbidden_anonymous(
        "CSRF token missing or invalid",
    ))
}

fn id(seg: &str, name: &str) -> ApiResult<Uuid> {
    parse_uuid(seg, name)
}

/// Maps method and path to a route: 404 for unknown paths, 405 for known paths with another
/// method, 400 for malformed ids.
pub fn resolve(method: &Method, path: &str) -> ApiResult<Route> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let m = method.clone();
    let allow = |allowed: &[(Method, Route)]| -> ApiResult<Route> {
        allowed
            .iter()
            .find(|(am, _)| *am == m || (m == Method::HEAD && *am == Method::GET))
            .map(|(_, r)| r.clone())
            .ok_or_else(|| ApiError::method_not_allowed(m.as_str()))
    };
    use Route::*;
    match segs.as_slice() {
        ["api", "auth", "csrf-token"] => allow(&[(Method::GET, CsrfToken)]),
        ["api", "auth", "login"] => allow(&[(Method::POST, Login)]),
        ["api", "auth", "me"] => allow(&[(Method::GET, Me)]),
        ["api", "auth", "refresh"] => allow(&[(Method::POST, Refresh)]),
        ["api", "auth", "logout"] => allow(&[(Method::POST, Logout)]),
        ["api", "auth", "role"] => allow(&[(Method::PUT, UpdateRole)]),
        ["api", "users"] => allow(&[(Method::GET, ListUsers), (Method::POST, CreateUser)]),
        ["api", "users", u] => {
            let route = allow(&[
                (Method::PATCH, UpdateUser(Uuid::nil())),
                (Method::DELETE, DeleteUser(Uuid::nil())),
            ])?;
            let uid = id(u, "userId")?;
            Ok(match route {
                UpdateUser(_) => UpdateUser(uid),
                _ => DeleteUser(uid),
            })
        }
        ["api", "channels"] => allow(&[(Method::GET, ListChannels)]),
        ["api", "channels", "public"] => allow(&[(Method::POST, CreatePublicChannel)]),
        ["api", "channels", "private"] => allow(&[(Method::POST, CreatePrivateChannel)]),
        ["api", "channels", c] => {
            let route = allow(&[
                (Method::PATCH, UpdateChannel(Uuid::nil())),
                (Method::DELETE, DeleteChannel(Uuid::nil())),
            ])?;
            let cid = id(c, "channelId")?;
            Ok(match route {
                UpdateChannel(_) => UpdateChannel(cid),
                _ => DeleteChannel(cid),
            })
        }
        ["api", "messages"] => allow(&[(Method::GET, ListMessages), (Method::POST, CreateMessage)]),
        ["api", "messages", mid] => {
            let route = allow(&[
                (Method::PATCH, UpdateMessage(Uuid::nil())),
                (Method::DELETE, DeleteMessage(Uuid::nil())),
            ])?;
            let mid = id(mid, "messageId")?;
            Ok(match route {
                UpdateMessage(_) => UpdateMessage(mid),
                _ => DeleteMessage(mid),
            })
        }
        ["api", "readStatuses"] => allow(&[
            (Method::GET, ListReadStatuses),
            (Method::POST, CreateReadStatus),
        ]),
        ["api", "readStatuses", r] => {
            allow(&[(Method::PATCH, UpdateReadStatus(Uuid::nil()))])?;
            Ok(UpdateReadStatus(id(r, "readStatusId")?))
        }
        ["api", "binaryContents"] => allow(&[(Method::GET, ListBinaryContents)]),
        ["api", "binaryContents", b] => {
            allow(&[(Method::GET, GetBinaryContent(Uuid::nil()))])?;
            Ok(GetBinaryContent(id(b, "binaryContentId")?))
        }
        ["api", "binaryContents", b, "download"] => {
            allow(&[(Method::GET, Download(Uuid::nil()))])?;
            Ok(Download(id(b, "binaryContentId")?))
        }
        ["api", "notifications"] => allow(&[(Method::GET, ListNotifications)]),
        ["api", "notifications", n] => {
            allow(&[(Method::DELETE, DeleteNotification(Uuid::nil()))])?;
            Ok(DeleteNotification(id(n, "notificationId")?))
        }
        ["api", "sse"] => allow(&[(Method::GET, Sse)]),
        _ => Err(ApiError::not_found_route(path)),
    }
}

/// The `Allow` header of a 405: every method [`resolve`] routes for `path` (a malformed id
/// still means the method exists).
fn allowed_methods(path: &str) -> String {
    let candidates = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    candidates
        .iter()
        .filter(|m| match resolve(m, path) {
            Ok(_) => true,
            Err(e) => e.status == StatusCode::BAD_REQUEST.as_u16(),
        })
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_routes_and_errors() {
        let u = Uuid::new_v4();
        assert_eq!(
            resolve(&Method::PATCH, &format!("/api/users/{u}")).unwrap(),
            Route::UpdateUser(u)
        );
        assert_eq!(resolve(&Method::GET, "/api/nope").unwrap_err().status, 404);
        assert_eq!(resolve(&Method::PUT, "/api/users").unwrap_err().status, 405);
        assert_eq!(
            resolve(&Method::PATCH, "/api/users/xyz")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            resolve(&Method::GET, "/api/channels").unwrap(),
            Route::ListChannels
        );
    }

    #[test]
    fn allow_lists_the_routed_methods() {
        assert_eq!(allowed_methods("/api/users"), "GET, HEAD, POST");
        assert_eq!(allowed_methods("/api/users/not-a-uuid"), "PATCH, DELETE");
        assert_eq!(allowed_methods("/api/auth/role"), "PUT");
    }

    #[test]
    fn every_route_resolves_from_its_template() {
        let all = Route::all();
        for route in &all {
            let (method, template) = route.template();
            let path = template
                .split('/')
                .map(|s| {
                    if s.starts_with('{') {
                        Uuid::nil().to_string()
                    } else {
                        s.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            assert_eq!(&resolve(&method, &path).unwrap(), route, "{template}");
        }
        let distinct: std::collections::HashSet<_> = all.iter().map(|r| r.template()).collect();
        assert_eq!(distinct.len(), all.len());
    }
}
