//! Retry rules: which failed attempts may be retried on the next origin,
//! and a [`RetryBudget`] so a sick region cannot multiply the load on
//! everything else (a retry storm).
//!
//! Rules of [`RetryPolicy::should_retry`], in order:
//!
//! 1. A response whose status is not in `retry_statuses` is delivered.
//! 2. If the request body was already (partly) sent and cannot be
//!    replayed (`body_sent`), never retry.
//! 3. A connect error means nothing reached the origin: retry, whatever
//!    the method.
//! 4. A timeout or retryable status may have been processed by the
//!    origin: retry only methods in `retry_methods` (idempotent ones,
//!    default GET, HEAD, OPTIONS), or any method if the route sets
//!    `allow_unsafe_retry`.
//!
//! ```
//! use http::Method;
//! use offload_core::route::retry::{Outcome, RetryPolicy, RetryDecision};
//! let p = RetryPolicy::default();
//! assert_eq!(p.should_retry(&Method::GET, Outcome::Status(503), false, false), RetryDecision::Retry);
//! assert_eq!(p.should_retry(&Method::POST, Outcome::Timeout, false, false), RetryDecision::NotRetryable);
//! assert_eq!(p.should_retry(&Method::POST, Outcome::ConnectError, false, false), RetryDecision::Retry);
//! ```

use std::fmt;

use http::Method;
use serde::{Serialize, Serializer};

use super::config::BudgetSettings;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// DNS, TCP or TLS failure: nothing reached the origin.
    ConnectError,
    /// No response head within the per-try timeout.
    Timeout,
    /// The origin answered with this status.
    Status(u16),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectError => f.write_str("connect-error"),
            Self::Timeout => f.write_str("timeout"),
            Self::Status(s) => write!(f, "{s}"),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryDecision {
    /// The outcome is a real answer: deliver it.
    Deliver,
    /// Failed and safe to try the next origin (budget permitting).
    Retry,
    /// Failed, but retrying could repeat a side effect.
    NotRetryable,
    /// Failed, but the body is gone and cannot be sent again.
    BodyConsumed,
}

/// Retry rules from `[routing.failover]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(super) statuses: Vec<u16>,
    pub(super) methods: Vec<Method>,
    pub(super) try_timeout_ms: u64,
    pub(super) max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            statuses: vec![502, 503, 504],
            methods: vec![Method::GET, Method::HEAD, Method::OPTIONS],
            try_timeout_ms: 5_000,
            max_attempts: 3,
        }
    }
}

impl RetryPolicy {
    pub fn statuses(&self) -> &[u16] {
        &self.statuses
    }
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }
    /// Timeout for each attempt's response head.
    pub fn try_timeout_ms(&self) -> u64 {
        self.try_timeout_ms
    }
    /// Attempts per request, the first one included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether the outcome counts as an origin failure (for health and retry).
    pub fn is_failure(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::ConnectError | Outcome::Timeout => true,
            Outcome::Status(s) => self.statuses.contains(&s),
        }
    }

    /// The rules in the module docs. `allow_unsafe` is the route's
    /// `allow_unsafe_retry`.
    pub fn should_retry(
        &self,
        method: &Method,
        outcome: Outcome,
        body_sent: bool,
        allow_unsafe: bool,
    ) -> RetryDecision {
        if !self.is_failure(outcome) {
            return RetryDecision::Deliver;
        }
        if body_sent {
            return RetryDecision::BodyConsumed;
        }
        if outcome == Outcome::ConnectError || allow_unsafe || self.methods.contains(method) {
            RetryDecision::Retry
        } else {
            RetryDecision::NotRetryable
        }
    }
}

const SLOTS: usize = 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    /// Index of the slot-sized time interval this slot counts (now / slot_ms).
    epoch: u64,
    requests: u32,
    retries: u32,
}

/// Retries allowed over a sliding window: `retries ≤ ratio × requests +
/// min_per_window`, counted over the last `window_ms` (in ten slots, so
/// the window slides in steps of a tenth). Shared per isolate like the
/// health table.
///
/// ```
/// use offload_core::route::config::BudgetSettings;
/// use offload_core::route::retry::RetryBudget;
/// let mut b = RetryBudget::new(BudgetSettings { ratio: 0.2, window_ms: 10_000, min_per_window: 0 });
/// for _ in 0..10 { b.record_request(0); }
/// assert!(b.try_acquire_retry(0));
/// assert!(b.try_acquire_retry(0));
/// assert!(!b.try_acquire_retry(0)); // 2 = 0.2 × 10
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryBudget {
    settings: BudgetSettings,
    slots: [Slot; SLOTS],
}

impl RetryBudget {
    pub fn new(settings: BudgetSettings) -> Self {
        Self { settings, slots: [Slot::default(); SLOTS] }
    }

    fn slot_ms(&self) -> u64 {
        (self.settings.window_ms / SLOTS as u64).max(1)
    }

    fn slot_mut(&mut self, now_ms: u64) -> &mut Slot {
        let epoch = now_ms / self.slot_ms();
        let i = (epoch % SLOTS as u64) as usize;
        let slot = &mut self.slots[i % SLOTS];
        if slot.epoch != epoch {
            *slot = Slot { epoch, requests: 0, retries: 0 };
        }
        slot
    }

    /// (requests, retries) within the window ending at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> (u64, u64) {
        let epoch = now_ms / self.slot_ms();
        let oldest = epoch.saturating_sub(SLOTS as u64 - 1);
        self.slots
            .iter()
            .filter(|s| (oldest..=epoch).contains(&s.epoch) && (s.requests > 0 || s.retries > 0))
            .fold((0, 0), |(q, r), s| (q + u64::from(s.requests), r + u64::from(s.retries)))
    }

    /// Count a viewer request (once, however many attempts it makes).
    pub fn record_request(&mut self, now_ms: u64) {
        let s = self.slot_mut(now_ms);
        s.requests = s.requests.saturating_add(1);
    }

    /// Take one retry from the budget, if there is one left.
    pub fn try_acquire_retry(&mut self, now_ms: u64) -> bool {
        let (requests, retries) = self.counts(now_ms);
        let allowed = self.settings.ratio * requests as f64 + f64::from(self.settings.min_per_window);
        if (retries as f64) < allowed.floor() {
            let s = self.slot_mut(now_ms);
            s.retries = s.retries.saturating_add(1);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use RetryDecision::*;

    #[test]
    fn retry_rules_per_method_and_outcome() {
        let p = RetryPolicy::default();
        let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
        // (method, outcome, body_sent, allow_unsafe, expected)
        let cases = [
            ("GET", Outcome::Status(200), false, false, Deliver),
            ("GET", Outcome::Status(404), false, false, Deliver),
            ("GET", Outcome::Status(500), false, false, Deliver),
            ("GET", Outcome::Status(502), false, false, Retry),
            ("GET", Outcome::Status(503), false, false, Retry),
            ("GET", Outcome::Status(504), false, false, Retry),
            ("HEAD", Outcome::Timeout, false, false, Retry),
            ("OPTIONS", Outcome::Status(503), false, false, Retry),
            ("GET", Outcome::ConnectError, false, false, Retry),
            ("POST", Outcome::Status(200), false, false, Deliver),
            ("POST", Outcome::ConnectError, false, false, Retry),
            ("POST", Outcome::Timeout, false, false, NotRetryable),
            ("POST", Outcome::Status(503), false, false, NotRetryable),
            ("PATCH", Outcome::Status(502), false, false, NotRetryable),
            ("PUT", Outcome::Status(502), false, false, NotRetryable),
            ("DELETE", Outcome::Timeout, false, false, NotRetryable),
            ("POST", Outcome::Timeout, false, true, Retry),
            ("POST", Outcome::Status(503), false, true, Retry),
            ("POST", Outcome::Status(503), true, true, BodyConsumed),
            ("PUT", Outcome::Timeout, true, true, BodyConsumed),
            ("POST", Outcome::ConnectError, true, false, BodyConsumed),
            ("POST", Outcome::Status(201), true, false, Deliver),
        ];
        for (method, outcome, body_sent, unsafe_ok, want) in cases {
            assert_eq!(
                p.should_retry(&m(method), outcome, body_sent, unsafe_ok),
                want,
                "{method} {outcome} {body_sent} {unsafe_ok}"
            );
        }
        let custom = RetryPolicy {
            statuses: vec![429],
            methods: vec![Method::GET, Method::PUT],
            ..RetryPolicy::default()
        };
        assert_eq!(custom.should_retry(&Method::PUT, Outcome::Status(429), false, false), Retry);
        assert_eq!(custom.should_retry(&Method::GET, Outcome::Status(503), false, false), Deliver);
    }

    #[test]
    fn budget_allows_ratio_plus_minimum() {
        let mut b = RetryBudget::new(BudgetSettings { ratio: 0.2, window_ms: 10_000, min_per_window: 3 });
        let granted = (0..10).filter(|_| b.try_acquire_retry(0)).count();
        assert_eq!(granted, 3, "min_per_window with no traffic");
        for _ in 0..100 {
            b.record_request(0);
        }
        let granted = (0..100).filter(|_| b.try_acquire_retry(1)).count();
        assert_eq!(granted, 20, "0.2 × 100 + 3 - 3 already used");
        assert_eq!(b.counts(1), (100, 23));
    }

    #[test]
    fn budget_window_slides() {
        let mut b = RetryBudget::new(BudgetSettings { ratio: 0.0, window_ms: 10_000, min_per_window: 2 });
        assert!(b.try_acquire_retry(0));
        assert!(b.try_acquire_retry(500));
        assert!(!b.try_acquire_retry(9_999));
        assert!(b.try_acquire_retry(10_000), "the slot of t=0..1000 left the window");
        assert!(b.try_acquire_retry(10_999));
        assert!(!b.try_acquire_retry(10_999));
        assert!(b.try_acquire_retry(20_000));
        assert!(b.try_acquire_retry(1_000_000), "long idle: everything expired");
        assert!(b.try_acquire_retry(1_000_000));
        assert!(!b.try_acquire_retry(1_000_000));
    }

    #[test]
    fn retries_stay_within_ratio_when_a_region_fails_completely() {
        // Steady traffic for 60 s at 50 req/s; every first attempt fails
        // and wants a retry. Over any window the retries stay within
        // ratio × requests + min_per_window.
        let s = BudgetSettings { ratio: 0.2, window_ms: 10_000, min_per_window: 3 };
        let mut b = RetryBudget::new(s);
        let mut log: Vec<(u64, bool)> = Vec::new();
        for i in 0..3000u64 {
            let now = i * 20;
            b.record_request(now);
            log.push((now, b.try_acquire_retry(now)));
        }
        let total: usize = log.iter().filter(|(_, r)| *r).count();
        assert!(total as f64 <= 0.2 * 3000.0 + 3.0 * 6.0 + 3.0, "total retries {total}");
        assert!(total >= 500, "the budget is used, not starved: {total}");
        for start in (0..60_000).step_by(1_000) {
            let in_window = |t: &u64| (start..start + 10_000).contains(t);
            let reqs = log.iter().filter(|(t, _)| in_window(t)).count() as f64;
            let retries = log.iter().filter(|(t, r)| *r && in_window(t)).count() as f64;
            // One slot of slack: the window slides in tenths.
            assert!(
                retries <= 0.2 * reqs + 3.0 + 0.2 * reqs / 10.0 + 1.0,
                "window at {start}: {retries} of {reqs}"
            );
        }
    }
}
