//! Per-path request counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// Counts requests served, per request path (query string excluded).
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    total: u64,
    paths: HashMap<String, u64>,
}

/// A consistent copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub total: u64,
    pub paths: BTreeMap<String, u64>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Counters stay meaningful even if a holder panicked.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one request for `path`; returns that path's new count (1 for the first).
    pub fn record(&self, path: &str) -> u64 {
        let mut inner = self.lock();
        inner.total += 1;
        let n = inner.paths.entry(path.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// Current count for one path.
    #[must_use]
    pub fn get(&self, path: &str) -> u64 {
        self.lock().paths.get(path).copied().unwrap_or(0)
    }

    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.lock();
        StatsSnapshot {
            total: inner.total,
            paths: inner.paths.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.total = 0;
        inner.paths.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_snapshot_reset() {
        let s = Stats::default();
        assert_eq!(s.record("/a"), 1);
        assert_eq!(s.record("/a"), 2);
        assert_eq!(s.record("/b"), 1);
        let snap = s.snapshot();
        assert_eq!(snap.total, 3);
        assert_eq!(snap.paths.get("/a"), Some(&2));
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
        assert_eq!(s.get("/a"), 0);
    }
}
