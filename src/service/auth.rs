//! Login, token issue and refresh rotation, logout, request authentication, role changes.

use serde::Deserialize;
use std::net::IpAddr;
use uuid::Uuid;

use super::{epoch_now, Services};
use crate::domain::{
    Audience, Change, Event, NotificationDto, NotificationType, Role, SseEvent, UserDto,
};
use crate::error::{ApiError, ApiResult};
use crate::security::jwt::{Claims, JwtError, TokenType};
use crate::security::registry::{token_hash, Session};
use crate::security::{password, Principal};
use crate::store::{notifications, users};

/// A rotated refresh token replayed within this many seconds of its rotation is taken for two
/// tabs refreshing at once (the web client retries with the new cookie), not for theft.
const ROTATION_RACE_SECONDS: i64 = 10;

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
    fn claims(&self, user: &UserDto, sid: Uuid, typ: TokenType, ttl: i64, now: i64) -> Claims {
        let mut dto = user.clone();
        dto.online = None;
        Claims {
            sub: user.username.clone(),
            user_dto: dto,
            iat: now,
            exp: now + ttl,
            jti: Some(Uuid::new_v4()),
            sid,
            typ,
        }
    }

    fn issue(&self, user: &UserDto, sid: Uuid) -> (Session, TokenPair) {
        let now = epoch_now();
        let access_ttl = self.config.access_ttl.as_secs() as i64;
        let refresh_ttl = self.config.refresh_ttl.as_secs() as i64;
        let access = self
            .jwt
            .sign(&self.claims(user, sid, TokenType::Access, access_ttl, now));
        let refresh = self
            .jwt
            .sign(&self.claims(user, sid, TokenType::Refresh, refresh_ttl, now));
        let session = Session {
            session_id: sid,
            user_id: user.id,
            access_token: access.clone(),
            refresh_token: refresh.clone(),
            access_exp: now + access_ttl,
            refresh_exp: now + refresh_ttl,
            previous_refresh: None,
            rotated_at: now,
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

    /// Password login by exact username; replaces any earlier session of the user. Attempts
    /// are rate-limited per client IP and per username.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> ApiResult<TokenPair> {
        self.throttle_attempt(client, username)?;
        // No stored name contains U+0000 (PostgreSQL text cannot hold it): such a user is unknown.
        if username.contains('\0') {
            return Err(ApiError::unknown_login_user());
        }
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
            Ok(c) if c.typ == TokenType::Refresh => Ok(c),
            _ => Err(ApiError::invalid_token("refreshToken", token)),
        }
    }

    /// The live session whose current refresh token is `refresh`: the token must verify
    /// (signature, expiry, type) and its session must not have ended. A genuine refresh token
    /// of a live session that is no longer its current one was rotated away and is being
    /// replayed: someone holds a copy. That ends the whole session (all its connections
    /// close), unless it is the token rotated moments ago (two tabs refreshing at once).
    async fn current_session(&self, refresh: &str) -> ApiResult<Session> {
        let claims = self.verify_refresh(refresh)?;
        if self.registry.is_ended(claims.sid).await? {
            return Err(ApiError::invalid_token("refreshToken", refresh));
        }
        if let Some(s) = self.registry.find_by_refresh(refresh).await? {
            if s.session_id == claims.sid {
                return Ok(s);
            }
            return Err(ApiError::token_not_found(Some(refresh)));
        }
        let Some(s) = self.registry.find_by_session(claims.sid).await? else {
            return Err(ApiError::token_not_found(Some(refresh)));
        };
        let just_rotated = s.previous_refresh.as_deref() == Some(token_hash(refresh).as_str())
            && epoch_now() - s.rotated_at <= ROTATION_RACE_SECONDS;
        if just_rotated {
            return Err(ApiError::token_not_found(Some(refresh)));
        }
        tracing::warn!(
            "a rotated refresh token of user {} was replayed: ending session {}",
            s.user_id,
            s.session_id
        );
        if let Some(old) = self.registry.end_session(s.user_id, s.session_id).await? {
            self.session_ended(old.user_id, Some(old.session_id));
        }
        Err(ApiError::invalid_token("refreshToken", refresh))
    }

    /// `GET /api/auth/me`: the session's access token (a fresh one when it has expired), for a
    /// live session only (an expired, ended or replayed refresh token is TOKEN_NOT_FOUND).
    pub async fn me(&self, refresh: &str) -> ApiResult<String> {
        // The contract's only 401 here is TOKEN_NOT_FOUND, whatever is wrong with the token.
        let session = self.current_session(refresh).await.map_err(|e| {
            if e.status == 401 {
                ApiError::token_not_found(Some(refresh))
            } else {
                e
            }
        })?;
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
        next.previous_refresh = session.previous_refresh.clone();
        next.rotated_at = session.rotated_at;
        if !self.registry.rotate(refresh, next).await? {
            return Err(ApiError::token_not_found(Some(refresh)));
        }
        self.emit_users_refresh(user.dto.id);
        Ok(pair.access)
    }

    /// `POST /api/auth/refresh`: rotates the pair; each refresh token works once.
    pub async fn refresh(&self, refresh: &str) -> ApiResult<TokenPair> {
        let session = self.current_session(refresh).await?;
        let db = self.db.client().await?;
        let user = users::find(&**db, session.user_id)
            .await?
            .ok_or_else(|| ApiError::user_not_found(session.user_id))?;
        let was_online = session.access_exp > epoch_now();
        let (mut next, pair) = self.issue(&user.dto, session.session_id);
        next.previous_refresh = Some(token_hash(refresh));
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
        if claims.typ != TokenType::Access {
            return Err(ApiError::invalid_token("accessToken", token));
        }
        if self.registry.is_ended(claims.sid).await? {
            return Err(ApiError::invalid_token("accessToken", token));
        }
        Ok(Principal {
            user_id: claims.user_dto.id,
            username: claims.sub.clone(),
            role: claims.user_dto.role,
            session_id: Some(claims.sid),
            user: claims.user_dto,
        })
    }

    /// Like [`Self::authenticate`], but an expired token is accepted while its login session
    /// is live and for at most `stomp_expired_token_grace` past its expiry (the Discodeit front
    /// end reconnects STOMP with its first token).
    pub async fn authenticate_stomp(&self, token: &str) -> Result<Principal, String> {
        let now = epoch_now();
        match self.jwt.verify(token, now) {
            Ok(claims) => self
                .principal_of(token, claims)
                .await
                .map_err(|_| "token revoked".to_string()),
            Err(JwtError::Expired(claims)) => {
                let active = self.registry.is_active(claims.sid).await.unwrap_or(false);
                if !active {
                    return Err("token expired".into());
                }
                let grace = self.config.stomp_expired_token_grace.as_secs() as i64;
                if now - claims.exp > grace {
                    return Err(format!(
                        "token expired more than {grace} seconds ago: refresh it and reconnect"
                    ));
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
