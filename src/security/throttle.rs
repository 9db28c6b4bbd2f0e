//! Token-bucket rate limits by key (client IP, username), for login and sign-up: password
//! guessing gets slow, and bcrypt's blocking pool cannot be flooded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked per limiter before idle ones are forgotten (bounds memory under a flood of
/// distinct usernames or addresses).
const MAX_KEYS: usize = 100_000;

/// One bucket: `tokens` available as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per key: `burst` requests at once, refilled at `per_minute`.
///
/// Exists so each limit (per IP, per username) is one value with one rule; `burst == 0`
/// disables it.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(burst: u32, per_minute: u32) -> Self {
        RateLimiter {
            burst: f64::from(burst),
            per_second: f64::from(per_minute) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.burst > 0.0
    }

    /// Takes one token for `key` at `now`, or returns how long until one is available.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            self.forget_idle(&mut buckets, now);
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        if self.per_second <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
    }

    /// Drops buckets that have refilled completely (their key behaves as new anyway); if
    /// that frees too little, the older half.
    fn forget_idle(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let full_after = if self.per_second > 0.0 {
            Duration::from_secs_f64(self.burst / self.per_second)
        } else {
            Duration::MAX
        };
        buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        if buckets.len() >= MAX_KEYS {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at > cut);
        }
    }
}

/// The limits on login and sign-up attempts: per client IP and per username.
#[derive(Debug)]
pub struct AuthThrottle {
    pub per_ip: RateLimiter,
    pub per_username: RateLimiter,
}

/// Which limit refused an attempt, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub limit: &'static str,
    pub retry_after: Duration,
}

impl AuthThrottle {
    /// One attempt by `ip` for `username`: a token from each bucket.
    pub fn attempt(&self, ip: &str, username: &str) -> Result<(), Throttled> {
        let now = Instant::now();
        self.per_ip.take(ip, now).map_err(|d| Throttled {
            limit: "attempts per client IP",
            retry_after: d,
        })?;
        // Usernames are at most 50 characters; longer input still gets one bounded key.
        let key: String = username.chars().take(64).collect();
        self.per_username.take(&key, now).map_err(|d| Throttled {
            limit: "attempts per username",
            retry_after: d,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(3, 60);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take("a", t0), Ok(()));
        }
        let wait = l.take("a", t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        // Another key has its own bucket.
        assert_eq!(l.take("b", t0), Ok(()));
        // One token per second comes back.
        assert_eq!(l.take("a", t0 + Duration::from_secs(1)), Ok(()));
        assert!(l.take("a", t0 + Duration::from_secs(1)).is_err());
        // Never more than the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.take("a", later), Ok(()));
        }
        assert!(l.take("a", later).is_err());
    }

    #[test]
    fn zero_burst_disables() {
        let l = RateLimiter::new(0, 0);
        for _ in 0..1000 {
            assert_eq!(l.take("a", Instant::now()), Ok(()));
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let l = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            let _ = l.take(&i.to_string(), t0 + Duration::from_micros(i as u64));
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_KEYS);
    }

    #[test]
    fn both_limits_apply() {
        let t = AuthThrottle {
            per_ip: RateLimiter::new(5, 1),
            per_username: RateLimiter::new(2, 1),
        };
        assert!(t.attempt("1.2.3.4", "alice").is_ok());
        assert!(t.attempt("5.6.7.8", "alice").is_ok());
        assert_eq!(
            t.attempt("9.9.9.9", "alice").unwrap_err().limit,
            "attempts per username"
        );
        // 1.2.3.4 has 4 of its 5 left: four more different usernames, then it is refused.
        for name in ["u1", "u2", "u3", "u4"] {
            assert!(t.attempt("1.2.3.4", name).is_ok());
        }
        assert_eq!(
            t.attempt("1.2.3.4", "u5").unwrap_err().limit,
            "attempts per client IP"
        );
    }
}
