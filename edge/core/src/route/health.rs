//! Passive health: every origin response (or failure) the edge sees is a
//! health observation. One [`HealthTable`] is shared by all requests of an
//! isolate (the adapter keeps it in a `RefCell`/global); it is plain data
//! and every method takes `now` (Unix milliseconds).
//!
//! Per origin, a circuit breaker:
//!
//! ```text
//!            N consecutive failures                 backoff elapsed
//!  Closed ───────────────────────────▶ Ejected ─────────────────────▶ (probe ready)
//!    ▲                                    ▲                                │ try_acquire_probe
//!    │ success                            │ failure: re-eject, backoff×2   ▼
//!    └──────────────────────────────── Probing ◀──────────────────────────┘
//! ```
//!
//! - `failures_to_eject` consecutive failures eject the origin for
//!   `eject_ms × 2^(ejections so far)`, capped at `max_eject_ms`.
//! - When the ejection ends, exactly one request may probe it
//!   ([`HealthTable::try_acquire_probe`]). If that probe is never reported
//!   (the adapter lost it), a new probe may start after `eject_ms`.
//! - Any success closes the circuit. The backoff exponent is forgotten once
//!   the origin has stayed closed for `max_eject_ms`.
//! - A failure while ejected (a request sent when everything was down, or
//!   one in flight when the origin was ejected) does not extend the
//!   ejection; a failure after the ejection ended re-ejects, longer.
//!
//! ```
//! use offload_core::route::config::HealthSettings;
//! use offload_core::route::health::{HealthTable, OriginStatus};
//! let mut t = HealthTable::new(HealthSettings::default());
//! for _ in 0..3 { t.record_failure("us-east-1/0", 1_000); }
//! assert_eq!(t.status("us-east-1/0", 1_000), OriginStatus::Ejected { until_ms: 11_000 });
//! assert!(t.try_acquire_probe("us-east-1/0", 11_000));
//! t.record_success("us-east-1/0", 11_050);
//! assert_eq!(t.status("us-east-1/0", 11_050), OriginStatus::Healthy);
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use super::config::HealthSettings;

/// What selection needs to know about an origin at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum OriginStatus {
    /// Serving normally.
    Healthy,
    /// Ejection over: one probe request may go (acquire it first).
    ProbeReady,
    /// A probe is in flight; others wait for its result.
    Probing,
    /// Ejected until this time.
    Ejected { until_ms: u64 },
}

impl OriginStatus {
    /// Whether selection may put it among the preferred attempts.
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Healthy | Self::ProbeReady)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
enum Circuit {
    Closed,
    Open { until_ms: u64 },
    HalfOpen { since_ms: u64 },
}

/// Health of one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OriginHealth {
    circuit: Circuit,
    consecutive_failures: u32,
    /// Ejections since the origin last stayed healthy for `max_eject_ms`.
    ejections: u32,
    closed_since_ms: u64,
}

impl OriginHealth {
    const NEW: Self =
        Self { circuit: Circuit::Closed, consecutive_failures: 0, ejections: 0, closed_since_ms: 0 };

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
    pub fn ejections(&self) -> u32 {
        self.ejections
    }
}

/// Passive health of every origin, keyed by origin id (`<region>/<index>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthTable {
    #[serde(skip)]
    settings: HealthSettings,
    origins: BTreeMap<String, OriginHealth>,
}

impl HealthTable {
    pub fn new(settings: HealthSettings) -> Self {
        Self { settings, origins: BTreeMap::new() }
    }

    pub fn settings(&self) -> HealthSettings {
        self.settings
    }

    /// The raw record for an origin (never-seen origins have none).
    pub fn get(&self, origin: &str) -> Option<&OriginHealth> {
        self.origins.get(origin)
    }

    /// The origin's status at `now_ms`.
    pub fn status(&self, origin: &str, now_ms: u64) -> OriginStatus {
        match self.origins.get(origin).map(|h| h.circuit) {
            None | Some(Circuit::Closed) => OriginStatus::Healthy,
            Some(Circuit::Open { until_ms }) if now_ms < until_ms => OriginStatus::Ejected { until_ms },
            Some(Circuit::Open { .. }) => OriginStatus::ProbeReady,
            Some(Circuit::HalfOpen { since_ms }) if self.probe_lost(since_ms, now_ms) => {
                OriginStatus::ProbeReady
            }
            Some(Circuit::HalfOpen { .. }) => OriginStatus::Probing,
        }
    }

    fn probe_lost(&self, since_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(since_ms) >= self.settings.eject_ms
    }

    fn backoff_ms(&self, ejections: u32) -> u64 {
        let factor = 1u64.checked_shl(ejections.min(63)).unwrap_or(u64::MAX);
        self.settings.eject_ms.saturating_mul(factor).min(self.settings.max_eject_ms)
    }

    /// May a request be sent to this origin now? `true` when healthy;
    /// when the ejection is over, `true` for exactly one caller, which
    /// becomes the half-open probe; `false` while ejected or probing.
    pub fn try_acquire_probe(&mut self, origin: &str, now_ms: u64) -> bool {
        match self.status(origin, now_ms) {
            OriginStatus::Healthy => true,
            OriginStatus::ProbeReady => {
                if let Some(h) = self.origins.get_mut(origin) {
                    h.circuit = Circuit::HalfOpen { since_ms: now_ms };
                }
                true
            }
            OriginStatus::Probing | OriginStatus::Ejected { .. } => false,
        }
    }

    /// An attempt succeeded (the origin answered with a non-failure status).
    pub fn record_success(&mut self, origin: &str, now_ms: u64) {
        let max_eject_ms = self.settings.max_eject_ms;
        let Some(h) = self.origins.get_mut(origin) else {
            return; // never failed: nothing to track
        };
        h.consecutive_failures = 0;
        if h.circuit != Circuit::Closed {
            h.circuit = Circuit::Closed;
            h.closed_since_ms = now_ms;
        } else if now_ms.saturating_sub(h.closed_since_ms) >= max_eject_ms {
            h.ejections = 0;
        }
    }

    /// An attempt failed (connect error, timeout or a failure status).
    pub fn record_failure(&mut self, origin: &str, now_ms: u64) {
        let status = self.status(origin, now_ms);
        let threshold = self.settings.failures_to_eject;
        let max_eject_ms = self.settings.max_eject_ms;
        let mut h = self.origins.get(origin).copied().unwrap_or(OriginHealth::NEW);
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        let eject = match status {
            OriginStatus::Healthy => {
                if now_ms.saturating_sub(h.closed_since_ms) >= max_eject_ms && h.consecutive_failures == 1 {
                    h.ejections = 0;
                }
                h.consecutive_failures >= threshold
            }
            // Already ejected: no new evidence worth a longer ejection.
            OriginStatus::Ejected { .. } => false,
            // A failed probe, or a failure after the ejection ended.
            OriginStatus::Probing | OriginStatus::ProbeReady => true,
        };
        if eject {
            h.circuit = Circuit::Open { until_ms: now_ms.saturating_add(self.backoff_ms(h.ejections)) };
            h.ejections = h.ejections.saturating_add(1);
        }
        self.origins.insert(origin.to_owned(), h);
    }

    /// The earliest time an ejected origin among `origins` comes back, if
    /// any is ejected (for `Retry-After`).
    pub fn next_recovery_ms<'a>(
        &self,
        origins: impl IntoIterator<Item = &'a str>,
        now_ms: u64,
    ) -> Option<u64> {
        origins
            .into_iter()
            .filter_map(|o| match self.status(o, now_ms) {
                OriginStatus::Ejected { until_ms } => Some(until_ms),
                _ => None,
            })
            .min()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const O: &str = "us-east-1/0";

    fn table() -> HealthTable {
        HealthTable::new(HealthSettings { failures_to_eject: 3, eject_ms: 10_000, max_eject_ms: 35_000 })
    }

    #[test]
    fn consecutive_failures_eject() {
        let mut t = table();
        t.record_failure(O, 0);
        t.record_failure(O, 1);
        assert_eq!(t.status(O, 1), OriginStatus::Healthy);
        t.record_success(O, 2); // resets the streak
        t.record_failure(O, 3);
        t.record_failure(O, 4);
        assert_eq!(t.status(O, 4), OriginStatus::Healthy);
        t.record_failure(O, 5);
        assert_eq!(t.status(O, 5), OriginStatus::Ejected { until_ms: 10_005 });
        assert!(!t.try_acquire_probe(O, 10_004));
        assert_eq!(t.status("other/0", 5), OriginStatus::Healthy, "others unaffected");
        assert!(t.try_acquire_probe("other/0", 5));
    }

    #[test]
    fn half_open_single_probe_then_close() {
        let mut t = table();
        for _ in 0..3 {
            t.record_failure(O, 0);
        }
        assert_eq!(t.status(O, 10_000), OriginStatus::ProbeReady);
        assert!(t.try_acquire_probe(O, 10_000), "first caller probes");
        assert_eq!(t.status(O, 10_001), OriginStatus::Probing);
        assert!(!t.try_acquire_probe(O, 10_001), "only one probe");
        t.record_success(O, 10_050);
        assert_eq!(t.status(O, 10_050), OriginStatus::Healthy);
        assert!(t.try_acquire_probe(O, 10_051));
        assert_eq!(t.get(O).unwrap().consecutive_failures(), 0);
    }

    #[test]
    fn failed_probe_reejects_with_doubling_backoff_up_to_max() {
        let mut t = table();
        for _ in 0..3 {
            t.record_failure(O, 0);
        }
        // (probe at, expected ejection length): 10s, then 20s, 35s (cap), 35s.
        let mut now = 0;
        let mut until = 10_000;
        for want in [20_000, 35_000, 35_000] {
            now = until;
            assert!(t.try_acquire_probe(O, now));
            t.record_failure(O, now + 10);
            until = now + 10 + want;
            assert_eq!(
                t.status(O, now + 10),
                OriginStatus::Ejected { until_ms: until },
                "after probe at {now}"
            );
        }
        assert!(now > 0);
    }

    #[test]
    fn failure_while_ejected_does_not_extend() {
        let mut t = table();
        for _ in 0..3 {
            t.record_failure(O, 0);
        }
        t.record_failure(O, 5_000);
        assert_eq!(t.status(O, 5_000), OriginStatus::Ejected { until_ms: 10_000 });
    }

    #[test]
    fn lost_probe_is_released_after_eject_ms() {
        let mut t = table();
        for _ in 0..3 {
            t.record_failure(O, 0);
        }
        assert!(t.try_acquire_probe(O, 10_000));
        assert!(!t.try_acquire_probe(O, 19_999));
        assert!(t.try_acquire_probe(O, 20_000), "probe never reported: a new one may go");
    }

    #[test]
    fn backoff_forgotten_after_staying_healthy() {
        let mut t = table();
        let eject = |t: &mut HealthTable, at: u64| {
            for _ in 0..3 {
                t.record_failure(O, at);
            }
        };
        eject(&mut t, 0);
        assert!(t.try_acquire_probe(O, 10_000));
        t.record_success(O, 10_000);
        eject(&mut t, 11_000); // soon after: longer ejection
        assert_eq!(t.status(O, 11_000), OriginStatus::Ejected { until_ms: 31_000 });
        assert!(t.try_acquire_probe(O, 31_000));
        t.record_success(O, 31_000);
        t.record_success(O, 31_000 + 35_000); // healthy for max_eject_ms
        eject(&mut t, 70_000);
        assert_eq!(t.status(O, 70_000), OriginStatus::Ejected { until_ms: 80_000 }, "back to the base");
    }

    #[test]
    fn success_while_ejected_closes() {
        // A request that went to an ejected origin (everything was down)
        // and succeeded is proof enough.
        let mut t = table();
        for _ in 0..3 {
            t.record_failure(O, 0);
        }
        t.record_success(O, 100);
        assert_eq!(t.status(O, 100), OriginStatus::Healthy);
    }

    #[test]
    fn next_recovery() {
        let mut t = table();
        for _ in 0..3 {
            t.record_failure("a/0", 0);
            t.record_failure("b/0", 2_000);
        }
        assert_eq!(t.next_recovery_ms(["a/0", "b/0", "c/0"], 5_000), Some(10_000));
        assert_eq!(t.next_recovery_ms(["c/0"], 5_000), None);
        assert!(serde_json::to_string(&t).unwrap().contains("\"a/0\""));
    }
}
