//! The worker's adapter cache: prepared adapters by name, bounded by their bytes, the least
//! recently used one evicted first, never a pinned one (one that running or queued items still
//! hold: they would keep its memory alive anyway, past the bound). Generic over what it holds,
//! and told by the caller which values are pinned, so the policy is tested without libtorch.

use std::collections::HashMap;

/// Why an adapter cannot be cached now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// Larger than the whole cache: it can never be held.
    #[error("adapter `{name}` takes {} MiB prepared, more than this worker's --max-adapter-mib {}", mib(*.bytes), mib(*.max))]
    TooLarge { name: String, bytes: usize, max: usize },
    /// The adapters in use leave no room for it: it must wait until some are done.
    #[error("adapter `{name}` ({} MiB) must wait: the adapters in use hold {} of --max-adapter-mib {}", mib(*.bytes), mib(*.in_use), mib(*.max))]
    Busy { name: String, bytes: usize, in_use: usize, max: usize },
}

fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

struct Entry<V> {
    value: V,
    bytes: usize,
    last_used: u64,
}

pub struct AdapterCache<V> {
    max_bytes: usize,
    held_bytes: usize,
    entries: HashMap<String, Entry<V>>,
    /// Ticks on every use: orders entries from least to most recently used.
    clock: u64,
}

impl<V: Clone> AdapterCache<V> {
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes, held_bytes: 0, entries: HashMap::new(), clock: 0 }
    }

    /// The adapter, marked as just used.
    pub fn get(&mut self, name: &str) -> Option<V> {
        self.clock += 1;
        let entry = self.entries.get_mut(name)?;
        entry.last_used = self.clock;
        Some(entry.value.clone())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Whether `bytes` more fit once every adapter not `pinned` is evicted.
    pub fn has_room(&self, bytes: usize, pinned: impl Fn(&V) -> bool) -> bool {
        self.pinned_bytes(pinned) + bytes <= self.max_bytes
    }

    /// Adds an adapter, evicting least recently used ones not `pinned` until it fits; returns
    /// the names evicted, oldest first. Nothing is evicted when it cannot fit anyway.
    pub fn insert(
        &mut self,
        name: &str,
        value: V,
        bytes: usize,
        pinned: impl Fn(&V) -> bool,
    ) -> Result<Vec<String>, CacheError> {
        if bytes > self.max_bytes {
            return Err(CacheError::TooLarge { name: name.into(), bytes, max: self.max_bytes });
        }
        if let Some(old) = self.entries.remove(name) {
            self.held_bytes -= old.bytes;
        }
        if !self.has_room(bytes, &pinned) {
            let in_use = self.pinned_bytes(&pinned);
            return Err(CacheError::Busy { name: name.into(), bytes, in_use, max: self.max_bytes });
        }
        let mut evictable: Vec<(u64, String)> =
            self.entries.iter().filter(|(_, e)| !pinned(&e.value)).map(|(n, e)| (e.last_used, n.clone())).collect();
        evictable.sort();
        let mut evicted = Vec::new();
        for (_, victim) in evictable {
            if self.held_bytes + bytes <= self.max_bytes {
                break;
            }
            if let Some(entry) = self.entries.remove(&victim) {
                self.held_bytes -= entry.bytes;
                evicted.push(victim);
            }
        }
        self.clock += 1;
        self.held_bytes += bytes;
        self.entries.insert(name.into(), Entry { value, bytes, last_used: self.clock });
        Ok(evicted)
    }

    /// Bytes of the adapters that cannot be evicted now.
    pub fn pinned_bytes(&self, pinned: impl Fn(&V) -> bool) -> usize {
        self.entries.values().filter(|e| pinned(&e.value)).map(|e| e.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn idle<V>(_: &V) -> bool {
        false
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_bound_holds() {
        let mut cache = AdapterCache::new(3 * MIB);
        for name in ["a", "b", "c"] {
            assert_eq!(cache.insert(name, name.to_string(), MIB, idle), Ok(vec![]));
        }
        assert_eq!(cache.get("a").as_deref(), Some("a"), "a is now the most recent");
        assert_eq!(cache.insert("d", "d".into(), MIB, idle), Ok(vec!["b".to_string()]));
        assert_eq!(cache.insert("e", "e".into(), 2 * MIB, idle), Ok(vec!["c".to_string(), "a".to_string()]));
        assert!(cache.held_bytes() <= 3 * MIB);
        assert!(cache.contains("d") && cache.contains("e") && !cache.contains("a"));
        assert_eq!(cache.get("b"), None);
    }

    #[test]
    fn adapters_in_use_are_never_evicted() {
        let mut cache = AdapterCache::new(2 * MIB);
        cache.insert("a", 1, MIB, idle).expect("fits");
        cache.insert("b", 2, MIB, idle).expect("fits");
        let a_runs = |v: &i32| *v == 1;
        assert_eq!(cache.insert("c", 3, MIB, a_runs), Ok(vec!["b".to_string()]), "b goes although a is older");
        let both_run = |v: &i32| *v == 1 || *v == 3;
        assert!(!cache.has_room(MIB, both_run));
        let err = cache.insert("d", 4, MIB, both_run).expect_err("no room while a and c run");
        assert!(matches!(err, CacheError::Busy { .. }), "{err}");
        assert!(cache.contains("a") && cache.contains("c"), "a refusal evicts nothing");
        assert_eq!(cache.insert("d", 4, MIB, a_runs), Ok(vec!["c".to_string()]), "once c is done it may go");
    }

    #[test]
    fn an_adapter_larger_than_the_bound_is_refused_clearly() {
        let mut cache = AdapterCache::new(2 * MIB);
        cache.insert("a", (), MIB, idle).expect("fits");
        let err = cache.insert("huge", (), 3 * MIB, idle).expect_err("too large");
        assert_eq!(
            err.to_string(),
            "adapter `huge` takes 3.0 MiB prepared, more than this worker's --max-adapter-mib 2.0"
        );
        assert!(cache.contains("a"), "nothing was evicted for it");
    }
}
