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
    /// Epoch seconds of the current refresh token's `exp`.
    pub refresh_exp: i64,
}

/// Session storage shared by every request path (REST, STOMP, SSE).
pub trait JwtRegistry: Send + Sync {
    /// Stores `session` as the user's only session; returns the one it replaced (now ended).
    fn start(&self, session: Session) -> BoxFuture<'_, ApiResult<Option<Session>>>;
    /// Ends the user's session, if any, and returns it.
    fn end_user(&self, user_id: Uuid) -> BoxFuture<'_, ApiResult<Option<Session>>>;
    /// The session whose *current* refresh token is `refresh_token`.
    fn find_by_refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Session>>>;
    /// Replaces the token pair of the session if its current refresh token is still
    /// `old_refresh` (each refresh token works once). Returns false when it was not.
    fn rotate<'a>(&'a self, old_refresh: &'a str, next: Session) -> BoxFuture<'a, ApiResult<bool>>;
    /// True when the login session `session_id` ended (logout, re-login, revocation).
    fn is_ended(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>>;
    /// True when `session_id` is the user's current live session.
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
        self.ended.insert(old.session_id, old.refresh_exp);
        Some(old)
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

    /// Forgets ended sessions whose tokens have expired anyway (called periodically).
    pub fn purge(&self, now: i64) {
        self.with(|s| s.ended.retain(|_, until| *until > now));
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

    fn find_by_refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Session>>> {
        let r = self.with(|s| {
            s.user_by_refresh
                .get(refresh_token)
                .and_then(|u| s.by_user.get(u))
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
        let r = self.with(|s| s.user_by_session.contains_key(&session_id));
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
            refresh_exp: exp + 1000,
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
}
