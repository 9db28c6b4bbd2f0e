//! The JWT session registry: one login session per user, refresh rotation, revocation, and the
//! `online` flag derived from it.
//!
//! A trait so the single-instance in-memory registry and the shared Redis one are
//! interchangeable; futures are boxed so the trait stays object-safe.

use futures_util::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use uuid::Uuid;

use crate::error::ApiResult;

/// One login session: the current access/refresh pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub access_token: String,
    pub refresh_token: String,
    /// Epoch seconds of the current access token's `exp` (drives `online`).
    pub access_exp: i64,
    /// Epoch seconds of the current refresh token's `exp`. Past it the session is over: no
    /// registry returns it any more.
    pub refresh_exp: i64,
    /// [`token_hash`] of the refresh token this one replaced, and when (epoch seconds): a
    /// replay of that token moments later is two tabs racing, not theft.
    pub previous_refresh: Option<String>,
    pub rotated_at: i64,
}

/// Hex SHA-256 of a token: fixed-size keys, and no bearer secret kept where a hash will do.
pub fn token_hash(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Session storage shared by every request path (REST, STOMP, SSE).
pub trait JwtRegistry: Send + Sync {
    /// Stores `session` as the user's only session; returns the one it replaced (now ended).
    fn start(&self, session: Session) -> BoxFuture<'_, ApiResult<Option<Session>>>;
    /// Ends the user's session, if any, and returns it.
    fn end_user(&self, user_id: Uuid) -> BoxFuture<'_, ApiResult<Option<Session>>>;
    /// Ends the user's session only if it is still `session_id`; returns it when it ended.
    fn end_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> BoxFuture<'_, ApiResult<Option<Session>>>;
    /// The live session `session_id` (refresh token unexpired), whatever its current tokens.
    fn find_by_session(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<Option<Session>>>;
    /// The live session whose *current* refresh token is `refresh_token`.
    fn find_by_refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Session>>>;
    /// Replaces the token pair of the session if its current refresh token is still
    /// `old_refresh` (each refresh token works once). Returns false when it was not.
    fn rotate<'a>(&'a self, old_refresh: &'a str, next: Session) -> BoxFuture<'a, ApiResult<bool>>;
    /// True when the login session `session_id` ended (logout, re-login, revocation).
    fn is_ended(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>>;
    /// True when `session_id` is the user's current live session (refresh token unexpired).
    fn is_active(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>>;
    /// Users whose session's access token is unexpired at `now`.
    fn online_users(&self, now: i64) -> BoxFuture<'_, ApiResult<HashSet<Uuid>>>;
    /// Users whose access token expired in `(after, upto]` (they just went offline).
    fn lapsed_between(&self, after: i64, upto: i64) -> BoxFuture<'_, ApiResult<Vec<Uuid>>>;
    /// Whether the storage answers (the readiness probe); in memory it always does.
    fn ping(&self) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[derive(Default)]
struct State {
    by_user: HashMap<Uuid, Session>,
    user_by_refresh: HashMap<String, Uuid>,
    user_by_session: HashMap<Uuid, Uuid>,
    /// Ended session ids and until when they must stay refused (the refresh expiry).
    ended: HashMap<Uuid, i64>,
}

impl State {
    fn remove_user(&mut self, user_id: Uuid) -> Option<Session> {
        let old = self.by_user.remove(&user_id)?;
        self.user_by_refresh.remove(&old.refresh_token);
        self.user_by_session.remove(&old.session_id);
        self.ended
            .insert(old.session_id, old.refresh_exp.max(old.access_exp));
        Some(old)
    }

    /// The session of `user`, if its refresh token has not expired at `now`.
    fn live(&self, user: &Uuid, now: i64) -> Option<&Session> {
        self.by_user.get(user).filter(|s| s.refresh_exp > now)
    }
}

/// Single-instance registry in process memory.
#[derive(Default)]
pub struct MemoryRegistry {
    state: Mutex<State>,
}

impl MemoryRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Ends sessions whose refresh token expired and forgets ended sessions whose tokens
    /// have expired anyway (called periodically), so memory does not grow with old logins.
    pub fn purge(&self, now: i64) {
        self.with(|s| {
            let expired: Vec<Uuid> = s
                .by_user
                .values()
                .filter(|x| x.refresh_exp <= now)
                .map(|x| x.user_id)
                .collect();
            for u in expired {
                s.remove_user(u);
            }
            s.ended.retain(|_, until| *until > now);
        });
    }
}

impl JwtRegistry for MemoryRegistry {
    fn start(&self, session: Session) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        let r = self.with(|s| {
            let old = s.remove_user(session.user_id);
            s.user_by_refresh
                .insert(session.refresh_token.clone(), session.user_id);
            s.user_by_session
                .insert(session.session_id, session.user_id);
            s.by_user.insert(session.user_id, session);
            old
        });
        Box::pin(async move { Ok(r) })
    }

    fn end_user(&self, user_id: Uuid) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        let r = self.with(|s| s.remove_user(user_id));
        Box::pin(async move { Ok(r) })
    }

    fn end_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        let r = self.with(|s| {
            let current = s.by_user.get(&user_id).map(|x| x.session_id);
            (current == Some(session_id))
                .then(|| s.remove_user(user_id))
                .flatten()
        });
        Box::pin(async move { Ok(r) })
    }

    fn find_by_session(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        let now = now();
        let r = self.with(|s| {
            s.user_by_session
                .get(&session_id)
                .and_then(|u| s.live(u, now))
                .cloned()
        });
        Box::pin(async move { Ok(r) })
    }

    fn find_by_refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Session>>> {
        let now = now();
        let r = self.with(|s| {
            s.user_by_refresh
                .get(refresh_token)
                .and_then(|u| s.live(u, now))
                .cloned()
        });
        Box::pin(async move { Ok(r) })
    }

    fn rotate<'a>(&'a self, old_refresh: &'a str, next: Session) -> BoxFuture<'a, ApiResult<bool>> {
        let r = self.with(|s| {
            let Some(user) = s.user_by_refresh.get(old_refresh).copied() else {
                return false;
            };
            if user != next.user_id {
                return false;
            }
            s.user_by_refresh.remove(old_refresh);
            s.user_by_refresh.insert(next.refresh_token.clone(), user);
            s.by_user.insert(user, next);
            true
        });
        Box::pin(async move { Ok(r) })
    }

    fn is_ended(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>> {
        let r = self.with(|s| s.ended.contains_key(&session_id));
        Box::pin(async move { Ok(r) })
    }

    fn is_active(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>> {
        let now = now();
        let r = self.with(|s| {
            s.user_by_session
                .get(&session_id)
                .and_then(|u| s.live(u, now))
                .is_some()
        });
        Box::pin(async move { Ok(r) })
    }

    fn online_users(&self, now: i64) -> BoxFuture<'_, ApiResult<HashSet<Uuid>>> {
        let r = self.with(|s| {
            s.by_user
                .values()
                .filter(|x| x.access_exp > now)
                .map(|x| x.user_id)
                .collect()
        });
        Box::pin(async move { Ok(r) })
    }

    fn lapsed_between(&self, after: i64, upto: i64) -> BoxFuture<'_, ApiResult<Vec<Uuid>>> {
        let r = self.with(|s| {
            s.by_user
                .values()
                .filter(|x| x.access_exp > after && x.access_exp <= upto)
                .map(|x| x.user_id)
                .collect()
        });
        Box::pin(async move { Ok(r) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user: Uuid, n: u32, exp: i64) -> Session {
        Session {
            session_id: Uuid::new_v4(),
            user_id: user,
            access_token: format!("a{n}"),
            refresh_token: format!("r{n}"),
            access_exp: exp,
            refresh_exp: now() + 1000,
            previous_refresh: None,
            rotated_at: 0,
        }
    }

    #[tokio::test]
    async fn one_session_per_user_and_rotation_once() {
        let r = MemoryRegistry::new();
        let u = Uuid::new_v4();
        let s1 = session(u, 1, 100);
        assert!(r.start(s1.clone()).await.unwrap().is_none());
        let s2 = session(u, 2, 100);
        assert_eq!(r.start(s2.clone()).await.unwrap(), Some(s1.clone()));
        assert!(r.is_ended(s1.session_id).await.unwrap());
        assert!(r.find_by_refresh("r1").await.unwrap().is_none());
        let mut next = s2.clone();
        next.refresh_token = "r3".into();
        assert!(r.rotate("r2", next.clone()).await.unwrap());
        assert!(!r.rotate("r2", next).await.unwrap());
        assert!(r.is_active(s2.session_id).await.unwrap());
        assert_eq!(r.online_users(50).await.unwrap().len(), 1);
        assert_eq!(r.online_users(100).await.unwrap().len(), 0);
        assert_eq!(r.lapsed_between(90, 100).await.unwrap(), vec![u]);
        assert!(r.end_user(u).await.unwrap().is_some());
        assert!(r.is_ended(s2.session_id).await.unwrap());
        assert!(!r.is_active(s2.session_id).await.unwrap());
    }

    #[tokio::test]
    async fn an_expired_refresh_token_ends_the_session_everywhere() {
        let r = MemoryRegistry::new();
        let u = Uuid::new_v4();
        let mut s = session(u, 1, 100);
        s.refresh_exp = now() - 1;
        r.start(s.clone()).await.unwrap();
        assert!(r.find_by_refresh("r1").await.unwrap().is_none());
        assert!(r.find_by_session(s.session_id).await.unwrap().is_none());
        assert!(!r.is_active(s.session_id).await.unwrap());
        r.purge(now());
        // Gone for good: its tokens have all expired, so nothing needs remembering.
        assert!(r.with(|st| st.by_user.is_empty()
            && st.user_by_refresh.is_empty()
            && st.user_by_session.is_empty()
            && st.ended.is_empty()));
    }

    #[tokio::test]
    async fn end_session_ends_only_the_named_session() {
        let r = MemoryRegistry::new();
        let u = Uuid::new_v4();
        let s1 = session(u, 1, 100);
        r.start(s1.clone()).await.unwrap();
        let s2 = session(u, 2, 100);
        r.start(s2.clone()).await.unwrap();
        assert!(r.end_session(u, s1.session_id).await.unwrap().is_none());
        assert!(r.is_active(s2.session_id).await.unwrap());
        assert_eq!(
            r.find_by_session(s2.session_id).await.unwrap(),
            Some(s2.clone())
        );
        assert_eq!(r.end_session(u, s2.session_id).await.unwrap(), Some(s2));
    }
}
