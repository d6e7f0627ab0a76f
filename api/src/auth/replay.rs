//! A replay cache: identifiers (`jti`s) remembered until they could no longer be valid.

use std::collections::HashMap;

/// Remembers identifiers until their expiry (Unix seconds); purges expired ones as it grows.
#[derive(Debug, Default)]
pub(crate) struct ReplayCache {
    /// Identifier → the Unix second after which it may be forgotten.
    entries: HashMap<String, u64>,
    /// Size at which the next insert purges expired entries.
    purge_at: usize,
}

impl ReplayCache {
    /// Records `id` until `expires_at`; returns false (and changes nothing) when `id` is already
    /// remembered and not yet expired — a replay.
    pub(crate) fn insert(&mut self, id: String, expires_at: u64, now: u64) -> bool {
        if let Some(&until) = self.entries.get(&id)
            && until >= now
        {
            return false;
        }
        if self.entries.len() >= self.purge_at {
            self.entries.retain(|_, until| *until >= now);
            self.purge_at = (self.entries.len() * 2).max(1024);
        }
        self.entries.insert(id, expires_at);
        true
    }

    /// Whether `id` is remembered and not yet expired.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: &str, now: u64) -> bool {
        self.entries.get(id).is_some_and(|&until| until >= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identifier_is_refused_until_it_expires() {
        let mut cache = ReplayCache::default();
        assert!(cache.insert("a".into(), 100, 10));
        assert!(!cache.insert("a".into(), 100, 50));
        assert!(cache.contains("a", 100));
        assert!(!cache.contains("a", 101));
        assert!(cache.insert("a".into(), 300, 101));
    }

    #[test]
    fn expired_entries_are_purged_as_the_cache_grows() {
        let mut cache = ReplayCache::default();
        for i in 0..5000 {
            assert!(cache.insert(format!("id{i}"), i, i));
        }
        assert!(cache.entries.len() < 5000);
        assert!(cache.contains("id4999", 4999));
    }
}
