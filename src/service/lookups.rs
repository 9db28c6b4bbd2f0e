//! What the message write path needs to know about channels and authors, cached so that a
//! message costs no lookup of its own: a channel's type, name and (private) members, and an
//! author's DTO.
//!
//! Correctness rules:
//! - Every change to a cached fact commits an [`Event::Changed`] in its transaction.
//!   [`Services::commit`](super::Services) applies it locally right after the commit, and the
//!   bus applies it on every instance as it is delivered, before any later event reaches a
//!   subscriber (in Kafka mode it travels through the outbox, in order with the SSE events
//!   that announce the same change).
//! - A fill that raced with an invalidation is dropped: fills carry the generation they started
//!   at and only land if no invalidation happened since.
//! - Only what exists is cached (a miss is looked up again), and an author whose profile image
//!   is still uploading is not cached (its status is about to change without a user change).
//! - Each map holds at most the configured number of entries.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

use crate::domain::{Change, ChannelType, Event, UploadStatus, UserDto};
use crate::store::{channels, users};

/// What writing a message to a channel needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelFacts {
    pub id: Uuid,
    pub channel_type: ChannelType,
    pub name: Option<String>,
    /// Who may write to a private channel (its read-status holders); empty for public ones.
    pub members: HashSet<Uuid>,
}

impl ChannelFacts {
    /// True when `user` may write here.
    pub fn admits(&self, user: Uuid) -> bool {
        self.channel_type == ChannelType::Public || self.members.contains(&user)
    }
}

/// A map bounded to `capacity` entries with approximately least-recently-used eviction: new
/// entries go to a hot half; when it is full the cold half is dropped and the hot one becomes
/// cold; a hit in the cold half moves the entry back. O(1) per operation, no crate needed.
struct Bounded<K, V> {
    hot: HashMap<K, V>,
    cold: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq + Copy, V: Clone> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            hot: HashMap::new(),
            cold: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    fn get(&mut self, k: &K) -> Option<V> {
        if let Some(v) = self.hot.get(k) {
            return Some(v.clone());
        }
        let v = self.cold.remove(k)?;
        self.insert(*k, v.clone());
        Some(v)
    }

    fn insert(&mut self, k: K, v: V) {
        if self.hot.len() >= self.half && !self.hot.contains_key(&k) {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.cold.remove(&k);
        self.hot.insert(k, v);
    }

    fn remove(&mut self, k: &K) {
        self.hot.remove(k);
        self.cold.remove(k);
    }

    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.hot.retain(|_, v| keep(v));
        self.cold.retain(|_, v| keep(v));
    }

    fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }
}

struct Inner {
    /// Bumped by every invalidation; a fill that started at an older one is dropped.
    generation: u64,
    channels: Bounded<Uuid, Arc<ChannelFacts>>,
    users: Bounded<Uuid, Arc<UserDto>>,
}

/// The write path's caches of channels and authors (see the module documentation for why they
/// stay correct).
pub struct Lookups {
    inner: Mutex<Inner>,
}

/// Channels and authors of one batch, from the caches or the database.
#[derive(Default)]
pub struct Resolved {
    pub channels: HashMap<Uuid, Arc<ChannelFacts>>,
    pub users: HashMap<Uuid, Arc<UserDto>>,
}

impl Lookups {
    /// Caches of at most `capacity` channels and `capacity` users.
    pub fn new(capacity: usize) -> Self {
        Lookups {
            inner: Mutex::new(Inner {
                generation: 0,
                channels: Bounded::new(capacity),
                users: Bounded::new(capacity),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops what `change` makes stale.
    pub fn apply(&self, change: &Change) {
        let mut inner = self.lock();
        inner.generation += 1;
        match *change {
            Change::Channel(id) => inner.channels.remove(&id),
            Change::User(id) => {
                inner.users.remove(&id);
                // A deleted user is no member any more.
                inner.channels.retain(|c| !c.members.contains(&id));
            }
        }
    }

    /// Applies every [`Event::Changed`] among `events`.
    pub fn apply_events<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        for e in events {
            if let Event::Changed(change) = e {
                self.apply(change);
            }
        }
    }

    /// Cached entries: (channels, users).
    pub fn len(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.channels.len(), inner.users.len())
    }

    /// The facts about `channel_ids` and `user_ids` that exist: cached ones from memory, the
    /// rest in at most three queries (channels, private members, users), then cached.
    pub async fn resolve(
        &self,
        db: &impl tokio_postgres::GenericClient,
        channel_ids: impl IntoIterator<Item = Uuid>,
        user_ids: impl IntoIterator<Item = Uuid>,
    ) -> Result<Resolved, tokio_postgres::Error> {
        let mut out = Resolved::default();
        let mut missing_channels = Vec::new();
        let mut missing_users = Vec::new();
        let generation = {
            let mut inner = self.lock();
            for id in channel_ids {
                if out.channels.contains_key(&id) || missing_channels.contains(&id) {
                    continue;
                }
                match inner.channels.get(&id) {
                    Some(c) => {
                        out.channels.insert(id, c);
                    }
                    None => missing_channels.push(id),
                }
            }
            for id in user_ids {
                if out.users.contains_key(&id) || missing_users.contains(&id) {
                    continue;
                }
                match inner.users.get(&id) {
                    Some(u) => {
                        out.users.insert(id, u);
                    }
                    None => missing_users.push(id),
                }
            }
            inner.generation
        };
        if missing_channels.is_empty() && missing_users.is_empty() {
            return Ok(out);
        }
        let mut loaded_channels = Vec::new();
        if !missing_channels.is_empty() {
            let rows = channels::get_many(db, &missing_channels).await?;
            let private: Vec<Uuid> = rows
                .iter()
                .filter(|r| r.channel_type == ChannelType::Private)
                .map(|r| r.id)
                .collect();
            let mut members: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
            if !private.is_empty() {
                for (channel, user) in channels::members_of_many(db, &private).await? {
                    members.entry(channel).or_default().insert(user);
                }
            }
            for r in rows {
                loaded_channels.push(Arc::new(ChannelFacts {
                    id: r.id,
                    members: members.remove(&r.id).unwrap_or_default(),
                    channel_type: r.channel_type,
                    name: r.name,
                }));
            }
        }
        let mut loaded_users = Vec::new();
        if !missing_users.is_empty() {
            for u in users::find_many(db, &missing_users).await? {
                let mut dto = u.dto;
                dto.online = None;
                loaded_users.push(Arc::new(dto));
            }
        }
        let mut inner = self.lock();
        let fresh = inner.generation == generation;
        for c in loaded_channels {
            if fresh {
                inner.channels.insert(c.id, c.clone());
            }
            out.channels.insert(c.id, c);
        }
        for u in loaded_users {
            let settled = u
                .profile
                .as_ref()
                .is_none_or(|p| p.upload_status != UploadStatus::Waiting);
            if fresh && settled {
                inner.users.insert(u.id, u.clone());
            }
            out.users.insert(u.id, u);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_at_most_capacity_and_recent_entries() {
        let mut m: Bounded<u32, u32> = Bounded::new(4);
        for i in 0..100 {
            m.insert(i, i);
            // Touch 0 all along: it stays.
            assert_eq!(m.get(&0), Some(0));
            assert!(m.len() <= 4, "len {} after {i}", m.len());
        }
        assert_eq!(m.get(&99), Some(99));
        assert_eq!(m.get(&50), None);
        m.remove(&0);
        assert_eq!(m.get(&0), None);
    }

    #[test]
    fn changes_drop_entries() {
        let l = Lookups::new(10);
        let (ch, user, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        {
            let mut inner = l.lock();
            inner.channels.insert(
                ch,
                Arc::new(ChannelFacts {
                    id: ch,
                    channel_type: ChannelType::Private,
                    name: None,
                    members: [user, other].into_iter().collect(),
                }),
            );
            inner.users.insert(
                other,
                Arc::new(UserDto {
                    id: other,
                    username: "o".into(),
                    email: "o@x".into(),
                    profile: None,
                    online: None,
                    role: crate::domain::Role::User,
                }),
            );
        }
        assert_eq!(l.len(), (1, 1));
        l.apply(&Change::User(user));
        // The user's private channel goes too: its membership changed.
        assert_eq!(l.len(), (0, 1));
        l.apply_events(&[Event::Changed(Change::User(other))]);
        assert_eq!(l.len(), (0, 0));
    }
}
