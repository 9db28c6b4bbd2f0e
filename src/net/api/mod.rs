//! REST handlers, one file per resource. Each parses the request, authenticates, calls the
//! service layer and writes the contract's response.

mod auth;
mod binary_contents;
mod channels;
mod messages;
mod misc;
mod read_statuses;
mod users;

pub use misc::realtime_entry;

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

    /// Every route once (path ids nil): for the API document's coverage test and for
    /// per-route metrics.
    pub fn all() -> Vec<Route> {
        use Route::*;
        let n = Uuid::nil();
        vec![
            CsrfToken,
            Login,
            Me,
            Refresh,
            Logout,
            UpdateRole,
            ListUsers,
            CreateUser,
            UpdateUser(n),
            DeleteUser(n),
            ListChannels,
            CreatePublicChannel,
            CreatePrivateChannel,
            UpdateChannel(n),
            DeleteChannel(n),
            ListMessages,
            CreateMessage,
            UpdateMessage(n),
            DeleteMessage(n),
            ListReadStatuses,
            CreateReadStatus,
            UpdateReadStatus(n),
            ListBinaryContents,
            GetBinaryContent(n),
            Download(n),
            ListNotifications,
            DeleteNotification(n),
            Sse,
        ]
    }

    /// The method and path template (OpenAPI style) this route answers.
    pub fn template(&self) -> (http::Method, &'static str) {
        use http::Method as M;
        use Route::*;
        match self {
            CsrfToken => (M::GET, "/api/auth/csrf-token"),
            Login => (M::POST, "/api/auth/login"),
            Me => (M::GET, "/api/auth/me"),
            Refresh => (M::POST, "/api/auth/refresh"),
            Logout => (M::POST, "/api/auth/logout"),
            UpdateRole => (M::PUT, "/api/auth/role"),
            ListUsers => (M::GET, "/api/users"),
            CreateUser => (M::POST, "/api/users"),
            UpdateUser(_) => (M::PATCH, "/api/users/{userId}"),
            DeleteUser(_) => (M::DELETE, "/api/users/{userId}"),
            ListChannels => (M::GET, "/api/channels"),
            CreatePublicChannel => (M::POST, "/api/channels/public"),
            CreatePrivateChannel => (M::POST, "/api/channels/private"),
            UpdateChannel(_) => (M::PATCH, "/api/channels/{channelId}"),
            DeleteChannel(_) => (M::DELETE, "/api/channels/{channelId}"),
            ListMessages => (M::GET, "/api/messages"),
            CreateMessage => (M::POST, "/api/messages"),
            UpdateMessage(_) => (M::PATCH, "/api/messages/{messageId}"),
            DeleteMessage(_) => (M::DELETE, "/api/messages/{messageId}"),
            ListReadStatuses => (M::GET, "/api/readStatuses"),
            CreateReadStatus => (M::POST, "/api/readStatuses"),
            UpdateReadStatus(_) => (M::PATCH, "/api/readStatuses/{readStatusId}"),
            ListBinaryContents => (M::GET, "/api/binaryContents"),
            GetBinaryContent(_) => (M::GET, "/api/binaryContents/{binaryContentId}"),
            Download(_) => (M::GET, "/api/binaryContents/{binaryContentId}/download"),
            ListNotifications => (M::GET, "/api/notifications"),
            DeleteNotification(_) => (M::DELETE, "/api/notifications/{notificationId}"),
            Sse => (M::GET, "/api/sse"),
        }
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
