//! REST handlers, one file per resource. Each parses the request, authenticates, calls the
//! service layer and writes the contract's response.

mod auth;
mod binary_contents;
mod channels;
mod messages;
mod misc;
mod read_statuses;
mod users;

pub use misc::{health, realtime_entry};

use uuid::Uuid;

use super::request::Ctx;
use super::response::Resp;
use crate::error::{ApiError, ApiResult};
use crate::net::App;
use crate::security::Principal;

/// Every REST endpoint, with its path ids already parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    CsrfToken,
    Login,
    Me,
    Refresh,
    Logout,
    UpdateRole,
    ListUsers,
    CreateUser,
    UpdateUser(Uuid),
    DeleteUser(Uuid),
    ListChannels,
    CreatePublicChannel,
    CreatePrivateChannel,
    UpdateChannel(Uuid),
    DeleteChannel(Uuid),
    ListMessages,
    CreateMessage,
    UpdateMessage(Uuid),
    DeleteMessage(Uuid),
    ListReadStatuses,
    CreateReadStatus,
    UpdateReadStatus(Uuid),
    ListBinaryContents,
    GetBinaryContent(Uuid),
    Download(Uuid),
    ListNotifications,
    DeleteNotification(Uuid),
    Sse,
}

impl Route {
    /// Logout is the one mutating endpoint without CSRF (as in the reference).
    pub fn csrf_exempt(&self) -> bool {
        matches!(self, Route::Logout)
    }
}

/// Runs the handler for `route`.
pub async fn run(app: &App, ctx: &mut Ctx, route: Route) -> ApiResult<Resp> {
    use Route::*;
    match route {
        CsrfToken => auth::csrf_token(ctx),
        Login => auth::login(app, ctx).await,
        Me => auth::me(app, ctx).await,
        Refresh => auth::refresh(app, ctx).await,
        Logout => auth::logout(app, ctx).await,
        UpdateRole => auth::update_role(app, ctx).await,
        ListUsers => users::list(app, ctx).await,
        CreateUser => users::create(app, ctx).await,
        UpdateUser(id) => users::update(app, ctx, id).await,
        DeleteUser(id) => users::delete(app, ctx, id).await,
        ListChannels => channels::list(app, ctx).await,
        CreatePublicChannel => channels::create_public(app, ctx).await,
        CreatePrivateChannel => channels::create_private(app, ctx).await,
        UpdateChannel(id) => channels::update(app, ctx, id).await,
        DeleteChannel(id) => channels::delete(app, ctx, id).await,
        ListMessages => messages::list(app, ctx).await,
        CreateMessage => messages::create(app, ctx).await,
        UpdateMessage(id) => messages::update(app, ctx, id).await,
        DeleteMessage(id) => messages::delete(app, ctx, id).await,
        ListReadStatuses => read_statuses::list(app, ctx).await,
        CreateReadStatus => read_statuses::create(app, ctx).await,
        UpdateReadStatus(id) => read_statuses::update(app, ctx, id).await,
        ListBinaryContents => binary_contents::list(app, ctx).await,
        GetBinaryContent(id) => binary_contents::get(app, ctx, id).await,
        Download(id) => binary_contents::download(app, id).await,
        ListNotifications => misc::list_notifications(app, ctx).await,
        DeleteNotification(id) => misc::delete_notification(app, ctx, id).await,
        Sse => misc::sse(app, ctx).await,
    }
}

/// The caller: 403 without a Bearer token, 401 with a bad one.
pub async fn principal(app: &App, ctx: &Ctx) -> ApiResult<Principal> {
    let Some(token) = ctx.bearer() else {
        return Err(ApiError::forbidden_anonymous("authentication required"));
    };
    app.services.authenticate(token).await
}
