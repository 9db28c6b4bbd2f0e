//! Lock-sharded state for the connection registries (SSE streams, STOMP subscriptions and
//! connections, SockJS sessions): 64 independent `std::sync::Mutex`es picked by key hash, so
//! unrelated keys never contend. Guards are only held for in-memory work — never across an
//! await or a socket write.

use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

/// Number of shards per registry.
pub const SHARDS: usize = 64;

/// Locks `m`, taking over a poisoned lock: registry state stays usable after a panic elsewhere.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// `SHARDS` mutex-protected values of `T`, addressed by key.
pub struct Sharded<T> {
    shards: Box<[Mutex<T>]>,
}

impl<T: Default> Default for Sharded<T> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Mutex::new(T::default())).collect(),
        }
    }
}

impl<T> Sharded<T> {
    /// Locks the shard that owns `key`.
    pub fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, T> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        lock(&self.shards[(h.finish() as usize) % SHARDS])
    }

    /// Every shard, for sweeps and broadcasts (lock them one at a time).
    pub fn all(&self) -> impl Iterator<Item = &Mutex<T>> {
        self.shards.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn same_key_same_shard_and_all_shards_visible() {
        let s: Sharded<HashMap<String, u32>> = Sharded::default();
        s.lock("a").insert("a".into(), 1);
        assert_eq!(s.lock("a").get("a"), Some(&1));
        let total: usize = s.all().map(|m| lock(m).len()).sum();
        assert_eq!(total, 1);
        assert_eq!(s.all().count(), SHARDS);
    }
}
