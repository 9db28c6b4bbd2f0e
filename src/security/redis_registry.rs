//! The JWT session registry in Redis, shared by every instance of a multi-instance deployment.
//!
//! Keys (all under a configurable prefix `P`, each expiring with the refresh token it serves):
//! - `P:session:{user}`  the user's one session (JSON record),
//! - `P:refresh:{sha256(refresh token)}` → user, so a refresh token finds its session,
//! - `P:sid:{session}` → user while the session is live (`is_active`),
//! - `P:ended:{session}` while an ended session's tokens could still verify (`is_ended`),
//! - `P:online`  a sorted set of user ids scored by their access token's `exp`,
//! - `P:lapsed:{user}:{exp}`  claims one lapse so only one instance reports it.
//!
//! Every change that touches several keys is one Lua script, so it is atomic: rotation is a
//! compare-and-swap on the current refresh token, and two instances can never both rotate it.
//! A Redis outage surfaces as 503 (`ApiError::service_unavailable`); the connection manager
//! reconnects by itself when Redis is back.

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

use super::registry::{JwtRegistry, Session};
use crate::error::{ApiError, ApiResult};

/// How long one Redis round trip may take before the request gets a 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The stored form of a [`Session`]; `rh` is the refresh token's hash, the key it is found by.
#[derive(Serialize, Deserialize)]
struct Record {
    sid: Uuid,
    uid: Uuid,
    at: String,
    rt: String,
    rh: String,
    aexp: i64,
    rexp: i64,
}

impl Record {
    fn of(s: &Session) -> Self {
        Record {
            sid: s.session_id,
            uid: s.user_id,
            at: s.access_token.clone(),
            rt: s.refresh_token.clone(),
            rh: token_hash(&s.refresh_token),
            aexp: s.access_exp,
            rexp: s.refresh_exp,
        }
    }

    fn session(self) -> Session {
        Session {
            session_id: self.sid,
            user_id: self.uid,
            access_token: self.at,
            refresh_token: self.rt,
            access_exp: self.aexp,
            refresh_exp: self.rexp,
        }
    }
}

/// Hex SHA-256 of a token: short fixed-size keys, and no bearer secret stored as a key name.
fn token_hash(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Ends the user's session (if any): drops its keys, remembers the session id as ended until
/// its refresh token would have expired, takes the user off `online`. Returns the old record.
const END_SESSION_LUA: &str = r#"
local function end_session(p, uid, now)
  local raw = redis.call('GET', p .. 'session:' .. uid)
  if not raw then return false end
  local s = cjson.decode(raw)
  redis.call('DEL', p .. 'session:' .. uid, p .. 'refresh:' .. s.rh, p .. 'sid:' .. s.sid)
  local ttl = math.floor(tonumber(s.rexp) - now)
  if ttl < 1 then ttl = 1 end
  redis.call('SET', p .. 'ended:' .. s.sid, '1', 'EX', ttl)
  redis.call('ZREM', p .. 'online', uid)
  return raw
end
"#;

/// ARGV: prefix, now, user, record, refresh hash, session id, ttl, access exp.
static START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{END_SESSION_LUA}
local p, now, uid = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local old = end_session(p, uid, now)
redis.call('SET', p .. 'session:' .. uid, ARGV[4], 'EX', ARGV[7])
redis.call('SET', p .. 'refresh:' .. ARGV[5], uid, 'EX', ARGV[7])
redis.call('SET', p .. 'sid:' .. ARGV[6], uid, 'EX', ARGV[7])
redis.call('ZADD', p .. 'online', ARGV[8], uid)
return old"
    ))
});

/// ARGV: prefix, now, user.
static END_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{END_SESSION_LUA}
return end_session(ARGV[1], ARGV[3], tonumber(ARGV[2]))"
    ))
});

/// ARGV: prefix, refresh hash. The record only if that hash is still its current one.
static FIND_BY_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local p, rh = ARGV[1], ARGV[2]
local uid = redis.call('GET', p .. 'refresh:' .. rh)
if not uid then return false end
local raw = redis.call('GET', p .. 'session:' .. uid)
if not raw then return false end
if cjson.decode(raw).rh ~= rh then return false end
return raw"#,
    )
});

/// ARGV: prefix, old refresh hash, user, record, new refresh hash, session id, ttl, access exp.
/// Compare-and-swap: 1 when the old refresh token was still current and is now replaced.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local p, oldh, uid = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', p .. 'refresh:' .. oldh) ~= uid then return 0 end
local raw = redis.call('GET', p .. 'session:' .. uid)
if not raw or cjson.decode(raw).rh ~= oldh then return 0 end
redis.call('DEL', p .. 'refresh:' .. oldh)
redis.call('SET', p .. 'session:' .. uid, ARGV[4], 'EX', ARGV[7])
redis.call('SET', p .. 'refresh:' .. ARGV[5], uid, 'EX', ARGV[7])
redis.call('SET', p .. 'sid:' .. ARGV[6], uid, 'EX', ARGV[7])
redis.call('ZADD', p .. 'online', ARGV[8], uid)
return 1"#,
    )
});

/// ARGV: prefix, after, upto. Users whose access expired in (after, upto] and whose lapse no
/// other instance has claimed yet; entries an hour older than `after` are trimmed.
static LAPSED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local p, after, upto = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', p .. 'online', '-inf', '(' .. (after - 3600))
local out = {}
for _, u in ipairs(redis.call('ZRANGEBYSCORE', p .. 'online', '(' .. after, upto)) do
  local score = redis.call('ZSCORE', p .. 'online', u)
  if redis.call('SET', p .. 'lapsed:' .. u .. ':' .. score, '1', 'NX', 'EX', 3600) then
    table.insert(out, u)
  end
end
return out"#,
    )
});

/// The Redis-backed registry; cheap to share (the connection manager multiplexes).
#[derive(Clone)]
pub struct RedisRegistry {
    conn: ConnectionManager,
    prefix: String,
}

fn unavailable(e: redis::RedisError) -> ApiError {
    tracing::warn!("redis: {e}");
    ApiError::service_unavailable("session store unavailable")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn parse_record(raw: Option<String>) -> ApiResult<Option<Session>> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Record>(&raw)
            .map(|r| Some(r.session()))
            .map_err(|e| ApiError::internal(format!("corrupt session record in redis: {e}"))),
    }
}

fn parse_users(ids: Vec<String>) -> impl Iterator<Item = Uuid> {
    ids.into_iter().filter_map(|s| Uuid::parse_str(&s).ok())
}

impl RedisRegistry {
    /// Connects lazily: start-up does not wait for Redis, and every command reconnects when
    /// the previous connection broke. `prefix` namespaces the keys (e.g. `discodeit:`).
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("REDIS_URL is not valid: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("redis: {e}"))?;
        Ok(RedisRegistry {
            conn,
            prefix: prefix.to_string(),
        })
    }

    /// Round trip to Redis (start-up check and health).
    pub async fn ping(&self) -> ApiResult<()> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn exists(&self, key: String) -> ApiResult<bool> {
        let mut c = self.conn.clone();
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut c)
            .await
            .map(|n| n > 0)
            .map_err(unavailable)
    }

    fn ttl(s: &Session, now: i64) -> i64 {
        (s.refresh_exp - now).max(1)
    }

    fn record_json(s: &Session) -> ApiResult<String> {
        serde_json::to_string(&Record::of(s)).map_err(ApiError::internal)
    }
}

impl JwtRegistry for RedisRegistry {
    fn start(&self, session: Session) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        Box::pin(async move {
            let now = now();
            let rec = Self::record_json(&session)?;
            let mut c = self.conn.clone();
            let old: Option<String> = START
                .arg(&self.prefix)
                .arg(now)
                .arg(session.user_id.to_string())
                .arg(rec)
                .arg(token_hash(&session.refresh_token))
                .arg(session.session_id.to_string())
                .arg(Self::ttl(&session, now))
                .arg(session.access_exp)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            parse_record(old)
        })
    }

    fn end_user(&self, user_id: Uuid) -> BoxFuture<'_, ApiResult<Option<Session>>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let old: Option<String> = END_USER
                .arg(&self.prefix)
                .arg(now())
                .arg(user_id.to_string())
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            parse_record(old)
        })
    }

    fn find_by_refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Session>>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let raw: Option<String> = FIND_BY_REFRESH
                .arg(&self.prefix)
                .arg(token_hash(refresh_token))
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            parse_record(raw)
        })
    }

    fn rotate<'a>(&'a self, old_refresh: &'a str, next: Session) -> BoxFuture<'a, ApiResult<bool>> {
        Box::pin(async move {
            let now = now();
            let rec = Self::record_json(&next)?;
            let mut c = self.conn.clone();
            let swapped: i64 = ROTATE
                .arg(&self.prefix)
                .arg(token_hash(old_refresh))
                .arg(next.user_id.to_string())
                .arg(rec)
                .arg(token_hash(&next.refresh_token))
                .arg(next.session_id.to_string())
                .arg(Self::ttl(&next, now))
                .arg(next.access_exp)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(swapped == 1)
        })
    }

    fn is_ended(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>> {
        Box::pin(self.exists(format!("{}ended:{session_id}", self.prefix)))
    }

    fn is_active(&self, session_id: Uuid) -> BoxFuture<'_, ApiResult<bool>> {
        Box::pin(self.exists(format!("{}sid:{session_id}", self.prefix)))
    }

    fn online_users(&self, now: i64) -> BoxFuture<'_, ApiResult<HashSet<Uuid>>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
                .arg(format!("{}online", self.prefix))
                .arg(format!("({now}"))
                .arg("+inf")
                .query_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(parse_users(ids).collect())
        })
    }

    /// Unlike the in-memory registry, each lapse is reported once across all instances
    /// sharing this Redis (the first caller claims it), so `users.refresh` is not multiplied.
    fn lapsed_between(&self, after: i64, upto: i64) -> BoxFuture<'_, ApiResult<Vec<Uuid>>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let ids: Vec<String> = LAPSED
                .arg(&self.prefix)
                .arg(after)
                .arg(upto)
                .invoke_async(&mut c)
                .await
                .map_err(unavailable)?;
            Ok(parse_users(ids).collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, ApiResult<()>> {
        Box::pin(RedisRegistry::ping(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Redis of `scripts/lib.sh redis_start` (REDIS_URL; its default port otherwise).
    fn registry() -> RedisRegistry {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379/".into());
        let prefix = format!("dtest:{}:", Uuid::new_v4().simple());
        RedisRegistry::new(&url, &prefix).expect("redis client")
    }

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
        let r = registry();
        let u = Uuid::new_v4();
        let t = now();
        let s1 = session(u, 1, t + 100);
        assert!(r.start(s1.clone()).await.unwrap().is_none());
        let s2 = session(u, 2, t + 100);
        assert_eq!(r.start(s2.clone()).await.unwrap(), Some(s1.clone()));
        assert!(r.is_ended(s1.session_id).await.unwrap());
        assert!(!r.is_active(s1.session_id).await.unwrap());
        assert!(r.find_by_refresh("r1").await.unwrap().is_none());
        assert_eq!(r.find_by_refresh("r2").await.unwrap(), Some(s2.clone()));
        let mut next = s2.clone();
        next.refresh_token = "r3".into();
        assert!(r.rotate("r2", next.clone()).await.unwrap());
        assert!(!r.rotate("r2", next.clone()).await.unwrap());
        assert!(r.find_by_refresh("r2").await.unwrap().is_none());
        assert_eq!(r.find_by_refresh("r3").await.unwrap(), Some(next.clone()));
        assert!(r.is_active(s2.session_id).await.unwrap());
        assert!(!r.is_ended(s2.session_id).await.unwrap());
        assert_eq!(r.online_users(t + 50).await.unwrap().len(), 1);
        assert_eq!(r.online_users(t + 100).await.unwrap().len(), 0);
        assert_eq!(r.lapsed_between(t + 90, t + 100).await.unwrap(), vec![u]);
        // Reported once: a second instance asking about the same window gets nothing.
        assert!(r.lapsed_between(t + 90, t + 100).await.unwrap().is_empty());
        assert!(r.end_user(u).await.unwrap().is_some());
        assert!(r.end_user(u).await.unwrap().is_none());
        assert!(r.is_ended(s2.session_id).await.unwrap());
        assert!(!r.is_active(s2.session_id).await.unwrap());
        assert!(r.online_users(t).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn same_token_refresh_keeps_the_session_findable() {
        // `/api/auth/me` rotates the access token but keeps the refresh token.
        let r = registry();
        let u = Uuid::new_v4();
        let s = session(u, 1, now() + 100);
        r.start(s.clone()).await.unwrap();
        let mut next = s.clone();
        next.access_token = "a2".into();
        assert!(r.rotate("r1", next.clone()).await.unwrap());
        assert_eq!(r.find_by_refresh("r1").await.unwrap(), Some(next));
    }

    #[tokio::test]
    async fn concurrent_rotations_of_one_token_let_exactly_one_win() {
        let r = registry();
        let u = Uuid::new_v4();
        let s = session(u, 0, now() + 100);
        r.start(s.clone()).await.unwrap();
        let tries = (1..=16).map(|n| {
            let r = r.clone();
            let mut next = s.clone();
            next.refresh_token = format!("next{n}");
            tokio::spawn(async move { r.rotate("r0", next).await.unwrap() })
        });
        let mut wins = 0;
        for t in tries {
            wins += t.await.unwrap() as usize;
        }
        assert_eq!(wins, 1);
    }

    #[tokio::test]
    async fn keys_expire_with_the_refresh_token() {
        let r = registry();
        let u = Uuid::new_v4();
        let mut s = session(u, 1, now());
        s.refresh_exp = now() + 50;
        r.start(s.clone()).await.unwrap();
        let mut c = r.conn.clone();
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{}session:{u}", r.prefix))
            .query_async(&mut c)
            .await
            .unwrap();
        assert!((40..=50).contains(&ttl), "ttl {ttl}");
        r.end_user(u).await.unwrap();
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("{}ended:{}", r.prefix, s.session_id))
            .query_async(&mut c)
            .await
            .unwrap();
        assert!((40..=50).contains(&ttl), "ended ttl {ttl}");
    }

    #[tokio::test]
    async fn unreachable_redis_is_a_503() {
        let r = RedisRegistry::new("redis://127.0.0.1:1/", "x:").unwrap();
        let e = r.is_ended(Uuid::new_v4()).await.unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!(e.code, "SERVICE_UNAVAILABLE");
    }
}
