//! Users: sign-up, listing with `online`, profile update, deletion, admin bootstrap.

use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

use super::uploads::UploadKind;
use super::validation::Checks;
use super::{epoch_now, Services, Upload};
use crate::domain::{Change, Event, Role, UserDto};
use crate::error::{ApiError, ApiResult};
use crate::security::{password, Principal};
use crate::store::db::is_unique_violation;
use crate::store::{binary_contents, users};

/// `UserCreateRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCreateRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

/// `UserUpdateRequest`; absent or null fields stay unchanged.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdateRequest {
    pub new_username: Option<String>,
    pub new_email: Option<String>,
    pub new_password: Option<String>,
}

/// Maps a unique violation on insert/update to the matching 409.
fn duplicate_from(
    e: tokio_postgres::Error,
    username: Option<&str>,
    email: Option<&str>,
) -> ApiError {
    if is_unique_violation(&e) {
        let constraint = e
            .as_db_error()
            .and_then(|d| d.constraint())
            .unwrap_or_default()
            .to_string();
        if constraint.contains("email") {
            return ApiError::duplicate_user("email", email.unwrap_or_default());
        }
        return ApiError::duplicate_user("username", username.unwrap_or_default());
    }
    ApiError::from(e)
}

impl Services {
    /// `POST /api/users`; attempts are rate-limited per client IP and per username.
    pub async fn create_user(
        self: &Arc<Self>,
        req: UserCreateRequest,
        profile: Option<Upload>,
        request_id: String,
        client: IpAddr,
    ) -> ApiResult<UserDto> {
        let mut c = Checks::new();
        let username = req.username.unwrap_or_default();
        self.throttle_attempt(client, &username)?;
        let email = req.email.unwrap_or_default();
        let pw = req.password.unwrap_or_default();
        c.username("username", &username);
        c.email("email", &email);
        c.password("password", &pw);
        if let Some(p) = &profile {
            c.file("profile", &p.file_name, &p.content_type);
        }
        c.finish()?;
        {
            let db = self.db.client().await?;
            if users::exists_email(&**db, &email, None).await? {
                return Err(ApiError::duplicate_user("email", &email));
            }
            if users::exists_username(&**db, &username, None).await? {
                return Err(ApiError::duplicate_user("username", &username));
            }
        }
        let hash = password::hash(pw).await?;
        let id = Uuid::new_v4();
        let profile = profile.map(|p| (p.waiting_dto(), p.bytes));
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        let files: Vec<_> = profile.iter().cloned().collect();
        let staged = self
            .insert_uploads(&*tx, &files, UploadKind::Profile, None, &request_id)
            .await?;
        users::insert(
            &*tx,
            id,
            &username,
            &email,
            &hash,
            profile.as_ref().map(|p| p.0.id),
            Role::User,
        )
        .await
        .map_err(|e| duplicate_from(e, Some(&username), Some(&email)))?;
        self.commit(tx, vec![Self::users_refresh_event(id)]).await?;
        let dto = UserDto {
            id,
            username,
            email,
            profile: profile.as_ref().map(|p| p.0.clone()),
            online: None,
            role: Role::User,
        };
        self.store_uploads_later(staged);
        Ok(dto)
    }

    /// `GET /api/users` with `online` from the session registry.
    pub async fn list_users(&self) -> ApiResult<Vec<UserDto>> {
        let online = self.registry.online_users(epoch_now()).await?;
        let db = self.db.client().await?;
        let mut list = users::list(&**db).await?;
        for u in &mut list {
            u.online = Some(online.contains(&u.id));
        }
        Ok(list)
    }

    /// `PATCH /api/users/{id}` (self or ADMIN).
    pub async fn update_user(
        self: &Arc<Self>,
        caller: &Principal,
        id: Uuid,
        req: UserUpdateRequest,
        profile: Option<Upload>,
        request_id: String,
    ) -> ApiResult<UserDto> {
        let mut c = Checks::new();
        if let Some(v) = &req.new_username {
            c.username("newUsername", v);
        }
        if let Some(v) = &req.new_email {
            c.email("newEmail", v);
        }
        if let Some(v) = &req.new_password {
            c.password("newPassword", v);
        }
        if let Some(p) = &profile {
            c.file("profile", &p.file_name, &p.content_type);
        }
        c.finish()?;
        caller.require_self_or_admin(id)?;
        let current = {
            let db = self.db.client().await?;
            let current = users::find(&**db, id)
                .await?
                .ok_or_else(|| ApiError::user_not_found(id))?;
            if let Some(e) = &req.new_email {
                if users::exists_email(&**db, e, Some(id)).await? {
                    return Err(ApiError::duplicate_user("email", e));
                }
            }
            if let Some(n) = &req.new_username {
                if users::exists_username(&**db, n, Some(id)).await? {
                    return Err(ApiError::duplicate_user("username", n));
                }
            }
            current
        };
        let hash = match req.new_password {
            Some(p) => Some(password::hash(p).await?),
            None => None,
        };
        let profile = profile.map(|p| (p.waiting_dto(), p.bytes));
        let old_profile = current.dto.profile.as_ref().map(|p| p.id);
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        let files: Vec<_> = profile.iter().cloned().collect();
        let uploader = Some(caller.user_id);
        let staged = self
            .insert_uploads(&*tx, &files, UploadKind::Profile, uploader, &request_id)
            .await?;
        users::update(
            &*tx,
            id,
            req.new_username.as_deref(),
            req.new_email.as_deref(),
            hash.as_deref(),
            profile.as_ref().map(|p| p.0.id),
        )
        .await
        .map_err(|e| duplicate_from(e, req.new_username.as_deref(), req.new_email.as_deref()))?;
        if let (Some(_), Some(old)) = (&profile, old_profile) {
            binary_contents::delete(&*tx, old).await?;
        }
        let updated = users::find(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::user_not_found(id))?;
        let events = vec![
            Event::Changed(Change::User(id)),
            Self::users_refresh_event(id),
        ];
        self.commit(tx, events).await?;
        if let (Some(_), Some(old)) = (&profile, old_profile) {
            self.files.delete(old).await;
        }
        self.store_uploads_later(staged);
        Ok(updated.dto)
    }

    /// `DELETE /api/users/{id}` (self or ADMIN): read statuses go, messages stay authorless.
    pub async fn delete_user(&self, caller: &Principal, id: Uuid) -> ApiResult<()> {
        caller.require_self_or_admin(id)?;
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        let user = users::find(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::user_not_found(id))?;
        users::delete(&*tx, id).await?;
        if let Some(p) = &user.dto.profile {
            binary_contents::delete(&*tx, p.id).await?;
        }
        self.commit(tx, vec![Event::Changed(Change::User(id))])
            .await?;
        if let Some(p) = &user.dto.profile {
            self.files.delete(p.id).await;
        }
        self.revoke_user(id).await
    }

    /// Creates the configured ADMIN unless its username or e-mail exists already.
    pub async fn bootstrap_admin(&self) -> ApiResult<()> {
        let Some(admin) = self.config.admin.clone() else {
            return Ok(());
        };
        let db = self.db.client().await?;
        if users::exists_any(&**db, &admin.username, &admin.email).await? {
            return Ok(());
        }
        let hash = password::hash(admin.password.clone()).await?;
        match users::insert(
            &**db,
            Uuid::new_v4(),
            &admin.username,
            &admin.email,
            &hash,
            None,
            Role::Admin,
        )
        .await
        {
            Ok(()) => {
                tracing::info!("created admin user {}", admin.username);
                Ok(())
            }
            // Another instance created it at the same moment.
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
