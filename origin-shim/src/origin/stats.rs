//! Request counters, read and reset over `/_shim/stats` and `/_shim/reset`.
//!
//! What is counted (control requests under `/_shim/*` never are):
//!
//! * `total` / `paths` — requests that reached a route handler (or the 404/405
//!   fallbacks), per path without the query string. Requests refused by origin
//!   auth or failed by an injected fault are *not* in here: they never reached
//!   the application.
//! * `statuses` — every response status sent, refusals and injected faults
//!   included, so `statuses` sums to `total + refused_auth + faults_injected`.
//! * `refused_auth` — requests answered 403 by the origin-auth check.
//! * `faults_injected` — requests answered with the injected `fail_status`
//!   (added latency alone is not counted).
//! * `requests_with_body` / `request_body_bytes` — requests that carried a
//!   body (a non-zero `Content-Length` or `Transfer-Encoding`), refused
//!   ones included, and the sum of their declared lengths: what shows that
//!   an upload went straight to the bucket and never through the web tier.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// The shim's counters.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    total: u64,
    paths: HashMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
    refused_auth: u64,
    faults_injected: u64,
    requests_with_body: u64,
    request_body_bytes: u64,
}

/// A consistent copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub total: u64,
    pub paths: BTreeMap<String, u64>,
    /// Responses per status code (serialized with string keys, e.g. `"503"`).
    pub statuses: BTreeMap<u16, u64>,
    pub refused_auth: u64,
    pub faults_injected: u64,
    pub requests_with_body: u64,
    pub request_body_bytes: u64,
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

    /// Counts one response with `status`.
    pub fn record_status(&self, status: u16) {
        *self.lock().statuses.entry(status).or_insert(0) += 1;
    }

    /// Counts one request that carried a body of `declared` bytes (0 when
    /// chunked).
    pub fn record_body(&self, declared: u64) {
        let mut inner = self.lock();
        inner.requests_with_body += 1;
        inner.request_body_bytes = inner.request_body_bytes.saturating_add(declared);
    }

    /// Counts one request refused by origin auth.
    pub fn record_refused_auth(&self) {
        self.lock().refused_auth += 1;
    }

    /// Counts one request failed by fault injection.
    pub fn record_fault(&self) {
        self.lock().faults_injected += 1;
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
            statuses: inner.statuses.clone(),
            refused_auth: inner.refused_auth,
            faults_injected: inner.faults_injected,
            requests_with_body: inner.requests_with_body,
            request_body_bytes: inner.request_body_bytes,
        }
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        *self.lock() = Inner::default();
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
        s.record_status(200);
        s.record_status(200);
        s.record_status(503);
        s.record_refused_auth();
        s.record_fault();
        let snap = s.snapshot();
        assert_eq!(snap.total, 3);
        assert_eq!(snap.paths.get("/a"), Some(&2));
        assert_eq!(snap.statuses.get(&200), Some(&2));
        assert_eq!(snap.statuses.get(&503), Some(&1));
        assert_eq!((snap.refused_auth, snap.faults_injected), (1, 1));
        let json = serde_json::to_value(&snap).unwrap_or_default();
        assert_eq!(json["statuses"]["503"], 1);
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
        assert_eq!(s.get("/a"), 0);
    }
}
