//! Login, token issue and refresh rotation, logout, request authentication, role changes.

use serde::Deserialize;
use uuid::Uuid;

use super::{epoch_now, Services};
use crate::domain::{
    Audience, Change, Event, NotificationDto, NotificationType, Role, SseEvent, UserDto,
};
use crate::error::{ApiError, ApiResult};
use crate::security::jwt::{Claims, JwtError};
use crate::security::registry::Session;
use crate::security::{password, Principal};
use crate::store::{notifications, users};

/// An issued access/refresh pair.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
}

/// `RoleUpdateRequest`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleUpdateRequest {
    pub user_id: Option<Uuid>,
    pub new_role: Option<String>,
}

impl Services {
    fn claims(&self, user: &UserDto, sid: Uuid, typ: &str, ttl: i64, now: i64) -> Claims {
        let mut dto = user.clone();
        dto.online = None;
        Claims {
            sub: user.username.clone(),
            user_dto: dto,
            iat: now,
            exp: now + ttl,
            jti: Some(Uuid::new_v4()),
            sid: Some(sid),
            typ: Some(typ.to_string()),
        }
    }

    fn issue(&self, user: &UserDto, sid: Uuid) -> (Session, TokenPair) {
        let now = epoch_now();
        let access_ttl = self.config.access_ttl.as_secs() as i64;
        let refresh_ttl = self.config.refresh_ttl.as_secs() as i64;
        let access = self
            .jwt
            .sign(&self.claims(user, sid, "access", access_ttl, now));
        let refresh = self
            .jwt
            .sign(&self.claims(user, sid, "refresh", refresh_ttl, now));
        let session = Session {
            session_id: sid,
            user_id: user.id,
            access_token: access.clone(),
            refresh_token: refresh.clone(),
            access_exp: now + access_ttl,
            refresh_exp: now + refresh_ttl,
        };
        (session, TokenPair { access, refresh })
    }

    /// Announces that `old`'s session ended: live connections of it close, users refetch.
    fn session_ended(&self, user_id: Uuid, session_id: Option<Uuid>) {
        self.bus.publish(Event::UserRevoked {
            user_id,
            session_id,
        });
        self.emit_users_refresh(user_id);
    }

    pub(crate) fn emit_users_refresh(&self, user_id: Uuid) {
        self.bus.publish(Self::users_refresh_event(user_id));
    }

    /// `users.refresh {userId}` to everyone.
    pub(crate) fn users_refresh_event(user_id: Uuid) -> Event {
        Event::Sse(SseEvent::new(
            "users.refresh",
            &serde_json::json!({ "userId": user_id }),
            Audience::All,
        ))
    }

    /// Password login by exact username; replaces any earlier session of the user.
    pub async fn login(&self, username: &str, password: &str) -> ApiResult<TokenPair> {
        let db = self.db.client().await?;
        let user = users::find_by_username(&**db, username)
            .await?
            .ok_or_else(ApiError::unknown_login_user)?;
        drop(db);
        if !password::verify(password.to_string(), user.password_hash.clone()).await? {
            return Err(ApiError::bad_credentials());
        }
        let (session, pair) = self.issue(&user.dto, Uuid::new_v4());
        if let Some(old) = self.registry.start(session).await? {
            self.bus.publish(Event::UserRevoked {
                user_id: old.user_id,
                session_id: Some(old.session_id),
            });
        }
        self.emit_users_refresh(user.dto.id);
        Ok(pair)
    }

    fn verify_refresh(&self, token: &str) -> ApiResult<Claims> {
        match self.jwt.verify(token, epoch_now()) {
            Ok(c) if c.typ.as_deref() != Some("access") => Ok(c),
            _ => Err(ApiError::invalid_token("refreshToken", token)),
        }
    }

    /// `GET /api/auth/me`: the session's access token (a fresh one when it has expired).
    pub async fn me(&self, refresh: &str) -> ApiResult<String> {
        let session = self
            .registry
            .find_by_refresh(refresh)
            .await?
            .ok_or_else(|| ApiError::token_not_found(Some(refresh)))?;
        if session.access_exp > epoch_now() {
            return Ok(session.access_token);
        }
        let db = self.db.client().await?;
        let user = users::find(&**db, session.user_id)
            .await?
            .ok_or_else(|| ApiError::user_not_found(session.user_id))?;
        let (mut next, pair) = self.issue(&user.dto, session.session_id);
        next.refresh_token = session.refresh_token.clone();
        next.refresh_exp = session.refresh_exp;
        if !self.registry.rotate(refresh, next).await? {
            return Err(ApiError::token_not_found(Some(refresh)));
        }
        self.emit_users_refresh(user.dto.id);
        Ok(pair.access)
    }

    /// `POST /api/auth/refresh`: rotates the pair; each refresh token works once.
    pub async fn refresh(&self, refresh: &str) -> ApiResult<TokenPair> {
        let claims = self.verify_refresh(refresh)?;
        if let Some(sid) = claims.sid {
            if self.registry.is_ended(sid).await? {
                return Err(ApiError::invalid_token("refreshToken", refresh));
            }
        }
        let session = self
            .registry
            .find_by_refresh(refresh)
            .await?
            .ok_or_else(|| ApiError::token_not_found(Some(refresh)))?;
        let db = self.db.client().await?;
        let user = users::find(&**db, session.user_id)
            .await?
            .ok_or_else(|| ApiError::user_not_found(session.user_id))?;
        let was_online = session.access_exp > epoch_now();
        let (next, pair) = self.issue(&user.dto, session.session_id);
        if !self.registry.rotate(refresh, next).await? {
            return Err(ApiError::token_not_found(Some(refresh)));
        }
        if !was_online {
            self.emit_users_refresh(user.dto.id);
        }
        Ok(pair)
    }

    /// `POST /api/auth/logout`: ends the session named by the refresh cookie, if live.
    pub async fn logout(&self, refresh: Option<&str>) -> ApiResult<()> {
        let Some(refresh) = refresh else {
            return Ok(());
        };
        if let Some(session) = self.registry.find_by_refresh(refresh).await? {
            if let Some(old) = self.registry.end_user(session.user_id).await? {
                self.session_ended(old.user_id, Some(old.session_id));
            }
        }
        Ok(())
    }

    /// Ends every session of `user_id` (role change, deletion).
    pub(crate) async fn revoke_user(&self, user_id: Uuid) -> ApiResult<()> {
        let old = self.registry.end_user(user_id).await?;
        self.session_ended(user_id, old.map(|s| s.session_id));
        Ok(())
    }

    /// Verifies a Bearer access token: signature, expiry, type, session not ended.
    pub async fn authenticate(&self, token: &str) -> ApiResult<Principal> {
        let claims = match self.jwt.verify(token, epoch_now()) {
            Ok(c) => c,
            Err(_) => return Err(ApiError::invalid_token("accessToken", token)),
        };
        self.principal_of(token, claims).await
    }

    async fn principal_of(&self, token: &str, claims: Claims) -> ApiResult<Principal> {
        if claims.typ.as_deref() == Some("refresh") {
            return Err(ApiError::invalid_token("accessToken", token));
        }
        if let Some(sid) = claims.sid {
            if self.registry.is_ended(sid).await? {
                return Err(ApiError::invalid_token("accessToken", token));
            }
        }
        Ok(Principal {
            user_id: claims.user_dto.id,
            username: claims.sub.clone(),
            role: claims.user_dto.role,
            session_id: claims.sid,
            user: claims.user_dto,
        })
    }

    /// Like [`Self::authenticate`], but an expired token is accepted while its login session
    /// is still active (the Discodeit front end reconnects STOMP with its first token).
    pub async fn authenticate_stomp(&self, token: &str) -> Result<Principal, String> {
        match self.jwt.verify(token, epoch_now()) {
            Ok(claims) => self
                .principal_of(token, claims)
                .await
                .map_err(|_| "token revoked".to_string()),
            Err(JwtError::Expired(claims)) => {
                let active = match claims.sid {
                    Some(sid) => self.registry.is_active(sid).await.unwrap_or(false),
                    None => false,
                };
                if !active {
                    return Err("token expired".into());
                }
                self.principal_of(token, *claims)
                    .await
                    .map_err(|_| "token revoked".to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// `PUT /api/auth/role` (ADMIN).
    pub async fn update_role(
        &self,
        caller: &Principal,
        req: RoleUpdateRequest,
    ) -> ApiResult<UserDto> {
        let mut checks = super::validation::Checks::new();
        checks.check(req.user_id.is_some(), "userId", "사용자 ID는 필수입니다");
        let role = req.new_role.as_deref().and_then(Role::parse);
        checks.check(
            role.is_some(),
            "newRole",
            "권한은 ADMIN, CHANNEL_MANAGER, USER 중 하나여야 합니다",
        );
        checks.finish()?;
        caller.require(Role::Admin)?;
        let (Some(user_id), Some(role)) = (req.user_id, role) else {
            return Err(ApiError::invalid_request("userId and newRole are required"));
        };
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        let user = users::find(&*tx, user_id)
            .await?
            .ok_or_else(|| ApiError::user_not_found(user_id))?;
        let old_role = user.dto.role;
        users::set_role(&*tx, user_id, role).await?;
        let notification = (old_role != role).then(|| NotificationDto {
            id: Uuid::new_v4(),
            created_at: crate::time::now(),
            receiver_id: user_id,
            title: format!("권한 변경: {} -> {}", old_role.as_str(), role.as_str()),
            content: format!(
                "관리자에 의해 권한이 '{}'(으)로 변경되었습니다.",
                role.as_str()
            ),
            notification_type: NotificationType::RoleChanged,
            target_id: Some(user_id),
        });
        if let Some(n) = &notification {
            notifications::insert(&*tx, n).await?;
        }
        let mut events = vec![Event::Changed(Change::User(user_id))];
        events.extend(notification.iter().map(Services::notification_event));
        self.commit(tx, events).await?;
        self.revoke_user(user_id).await?;
        let mut dto = user.dto;
        dto.role = role;
        Ok(dto)
    }
}
