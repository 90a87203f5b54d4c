//! The failover loop as a small state machine, so the adapter only does
//! I/O: it sends what [`Next::Try`] says and reports how it went.
//!
//! ```text
//! let (mut run, mut next) = Failover::start(&routing, selection, &method, allow_unsafe, &mut health, &mut budget, now);
//! loop {
//!     match next {
//!         Next::Try { attempt, timeout_ms } => {
//!             let outcome = /* send to routing.origin(&attempt.origin), measure */;
//!             next = run.report(outcome, body_sent, dur_ms, &mut health, &mut budget, now);
//!         }
//!         Next::Deliver => /* use the last response */,
//!         Next::GiveUp(g) => /* stale if g.stale_ok and cached, else g.response() */,
//!     }
//! }
//! ```
//!
//! It records each outcome in the health table, takes retries from the
//! budget, acquires half-open probes only for attempts it actually makes,
//! and keeps a record of the attempts for logs and `Server-Timing`.

use http::{Method, Response, StatusCode};
use serde::Serialize;

use super::config::Routing;
use super::health::HealthTable;
use super::log::{AttemptRecord, RouteLog};
use super::retry::{Outcome, RetryBudget, RetryDecision, RetryPolicy};
use super::select::{Attempt, AttemptHealth, Reason, Selection};

/// What the adapter does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send the request to this origin with this per-try timeout.
    Try { attempt: Attempt, timeout_ms: u64 },
    /// The last reported response is the answer: deliver it.
    Deliver,
    /// Every allowed attempt failed.
    GiveUp(GiveUp),
}

/// Why the edge stopped trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GiveUpReason {
    /// The pool has no origins.
    NoOrigins,
    /// Every origin in the selection was tried.
    OriginsExhausted,
    /// `max_attempts` reached.
    AttemptsExhausted,
    /// The retry budget is spent (a region is failing a lot).
    BudgetExhausted,
    /// The method may not be retried after this outcome.
    NotRetryable,
    /// The request body was sent and cannot be replayed.
    BodyConsumed,
}

impl GiveUpReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoOrigins => "no_origins",
            Self::OriginsExhausted => "origins_exhausted",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::BudgetExhausted => "budget_exhausted",
            Self::NotRetryable => "not_retryable",
            Self::BodyConsumed => "body_consumed",
        }
    }
}

/// The decision when everything failed: **serve a stale cached response
/// if there is one (and `stale_ok`), else 503 with `Retry-After`.**
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GiveUp {
    pub reason: GiveUpReason,
    /// Whether a stale response may stand in (GET/HEAD only).
    pub stale_ok: bool,
    /// Seconds until an ejected origin is due back (at least 1).
    pub retry_after_secs: u64,
    /// The last attempt's outcome, if any attempt was made.
    pub last: Option<Outcome>,
}

impl GiveUp {
    /// The 503 the viewer gets when no stale response is served.
    pub fn response(&self) -> Response<Vec<u8>> {
        let body = serde_json::json!({ "error": "origin unavailable", "status": 503 }).to_string();
        let mut resp = Response::new(body.into_bytes());
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let h = resp.headers_mut();
        h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        h.insert(http::header::RETRY_AFTER, http::HeaderValue::from(self.retry_after_secs));
        resp
    }
}

/// One request's walk through its selected attempts.
#[derive(Debug, Clone)]
pub struct Failover {
    policy: RetryPolicy,
    method: Method,
    allow_unsafe: bool,
    reason: Reason,
    attempts: Vec<Attempt>,
    /// Index of the attempt in flight (or next to consider).
    pos: usize,
    in_flight: bool,
    records: Vec<AttemptRecord>,
    give_up: Option<GiveUp>,
    eject_ms: u64,
}

impl Failover {
    /// Start: count the request in the budget and pick the first attempt.
    /// `allow_unsafe` is the route's `allow_unsafe_retry` (default
    /// [`Routing::allow_unsafe_retry`]).
    pub fn start(
        routing: &Routing,
        selection: Selection,
        method: &Method,
        allow_unsafe: bool,
        health: &mut HealthTable,
        budget: &mut RetryBudget,
        now_ms: u64,
    ) -> (Self, Next) {
        budget.record_request(now_ms);
        let mut run = Self {
            policy: routing.retry_policy().clone(),
            method: method.clone(),
            allow_unsafe,
            reason: selection.reason,
            attempts: selection.attempts,
            pos: 0,
            in_flight: false,
            records: Vec::new(),
            give_up: None,
            eject_ms: routing.health().eject_ms,
        };
        let next = match run.advance(health, now_ms) {
            Some(next) => next,
            None => run.stop(GiveUpReason::NoOrigins, None, health, now_ms),
        };
        (run, next)
    }

    /// Find the next attempt from `pos`, acquiring the half-open probe if
    /// it needs one. A probe lost to another request moves to the end.
    fn advance(&mut self, health: &mut HealthTable, now_ms: u64) -> Option<Next> {
        let mut deferrals = 0;
        while self.pos < self.attempts.len() {
            let a = &self.attempts[self.pos];
            if a.health == AttemptHealth::Probe && !health.try_acquire_probe(&a.origin, now_ms) {
                let mut a = self.attempts.remove(self.pos);
                a.health = AttemptHealth::Unhealthy;
                self.attempts.push(a);
                deferrals += 1;
                if deferrals > self.attempts.len() {
                    return None;
                }
                continue;
            }
            self.in_flight = true;
            return Some(Next::Try { attempt: a.clone(), timeout_ms: self.policy.try_timeout_ms() });
        }
        None
    }

    fn stop(
        &mut self,
        reason: GiveUpReason,
        last: Option<Outcome>,
        health: &HealthTable,
        now_ms: u64,
    ) -> Next {
        let recovery = health.next_recovery_ms(self.attempts.iter().map(|a| a.origin.as_str()), now_ms);
        let wait_ms = recovery.map_or(self.eject_ms, |t| t.saturating_sub(now_ms));
        let g = GiveUp {
            reason,
            stale_ok: matches!(self.method, Method::GET | Method::HEAD),
            retry_after_secs: wait_ms.div_ceil(1000).clamp(1, 3600),
            last,
        };
        self.give_up = Some(g);
        Next::GiveUp(g)
    }

    /// Report how the attempt from the last [`Next::Try`] went.
    /// `body_sent`: the request body was (partly) streamed and cannot be
    /// replayed. Calling without an attempt in flight gives up.
    pub fn report(
        &mut self,
        outcome: Outcome,
        body_sent: bool,
        dur_ms: u64,
        health: &mut HealthTable,
        budget: &mut RetryBudget,
        now_ms: u64,
    ) -> Next {
        let Some(a) = self.attempts.get(self.pos).filter(|_| self.in_flight) else {
            return self.stop(GiveUpReason::OriginsExhausted, Some(outcome), health, now_ms);
        };
        self.in_flight = false;
        if self.policy.is_failure(outcome) {
            health.record_failure(&a.origin, now_ms);
        } else {
            health.record_success(&a.origin, now_ms);
        }
        self.records.push(AttemptRecord {
            region: a.region.clone(),
            origin: a.origin.clone(),
            outcome,
            dur_ms,
            probe: a.health == AttemptHealth::Probe,
        });
        let why = match self.policy.should_retry(&self.method, outcome, body_sent, self.allow_unsafe) {
            RetryDecision::Deliver => return Next::Deliver,
            RetryDecision::NotRetryable => GiveUpReason::NotRetryable,
            RetryDecision::BodyConsumed => GiveUpReason::BodyConsumed,
            RetryDecision::Retry => {
                self.pos += 1;
                if self.records.len() >= self.policy.max_attempts() as usize {
                    GiveUpReason::AttemptsExhausted
                } else if self.pos >= self.attempts.len() {
                    GiveUpReason::OriginsExhausted
                } else if !budget.try_acquire_retry(now_ms) {
                    GiveUpReason::BudgetExhausted
                } else if let Some(next) = self.advance(health, now_ms) {
                    return next;
                } else {
                    GiveUpReason::OriginsExhausted
                }
            }
        };
        self.stop(why, Some(outcome), health, now_ms)
    }

    /// The attempts made so far.
    pub fn records(&self) -> &[AttemptRecord] {
        &self.records
    }

    /// The per-request log record.
    pub fn log(&self) -> RouteLog {
        RouteLog {
            reason: self.reason,
            selected: self.attempts.first().map(|a| a.region.clone()),
            served_by: match self.give_up {
                None => self.records.last().map(|r| r.region.clone()),
                Some(_) => None,
            },
            attempts: self.records.clone(),
            give_up: self.give_up,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::route::geo::parse_test_header;
    use crate::route::select::select;

    const CFG: &str = r#"
[regions.eu-west-1]
location = { lat = 53.35, lon = -6.26 }
continents = ["EU"]
origins = [{ url = "http://10.0.2.1" }]
[regions.us-east-1]
location = { lat = 38.9, lon = -77.4 }
continents = ["NA"]
origins = [{ url = "http://10.0.1.1" }]
[regions.ap-northeast-1]
location = { lat = 35.68, lon = 139.69 }
origins = [{ url = "http://10.0.4.1" }]
[routing.failover]
max_attempts = 3
"#;

    struct World {
        routing: Routing,
        health: HealthTable,
        budget: RetryBudget,
    }

    impl World {
        fn new(cfg: &str) -> Self {
            let routing = Routing::from_toml(cfg).unwrap();
            Self {
                health: HealthTable::new(routing.health()),
                budget: RetryBudget::new(routing.budget()),
                routing,
            }
        }

        /// Run one request; `origin` answers each attempt.
        fn run(&mut self, method: Method, now: u64, origin: impl Fn(&str) -> Outcome) -> (Next, Failover) {
            let viewer = parse_test_header("country=FR;lat=48.86;lon=2.35").unwrap();
            let sel = select(&self.routing, self.routing.default_pool(), &viewer, &self.health, None, 0, now);
            let (mut run, mut next) =
                Failover::start(&self.routing, sel, &method, false, &mut self.health, &mut self.budget, now);
            for _ in 0..10 {
                match next {
                    Next::Try { ref attempt, .. } => {
                        let o = origin(&attempt.region);
                        next = run.report(o, false, 5, &mut self.health, &mut self.budget, now);
                    }
                    _ => return (next, run),
                }
            }
            panic!("did not finish");
        }
    }

    #[test]
    fn fails_over_to_next_region() {
        let mut w = World::new(CFG);
        let (next, run) =
            w.run(
                Method::GET,
                0,
                |r| if r == "eu-west-1" { Outcome::Status(503) } else { Outcome::Status(200) },
            );
        assert_eq!(next, Next::Deliver);
        let log = run.log();
        assert_eq!(log.selected.as_deref(), Some("eu-west-1"));
        assert_eq!(log.served_by.as_deref(), Some("us-east-1"));
        assert_eq!(log.attempts.len(), 2);
        assert_eq!(w.health.get("eu-west-1/0").unwrap().consecutive_failures(), 1);
    }

    #[test]
    fn gives_up_with_stale_or_503() {
        let mut w = World::new(CFG);
        let (next, run) = w.run(Method::GET, 0, |_| Outcome::ConnectError);
        let Next::GiveUp(g) = next else { panic!("{next:?}") };
        assert_eq!(g.reason, GiveUpReason::AttemptsExhausted);
        assert!(g.stale_ok);
        assert_eq!(g.last, Some(Outcome::ConnectError));
        assert_eq!(run.records().len(), 3);
        let resp = g.response();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "10");
        assert!(run.log().served_by.is_none());

        // POST timing out: not retried, no stale.
        let (next, run) = w.run(Method::POST, 0, |_| Outcome::Timeout);
        let Next::GiveUp(g) = next else { panic!("{next:?}") };
        assert_eq!((g.reason, g.stale_ok), (GiveUpReason::NotRetryable, false));
        assert_eq!(run.records().len(), 1);
    }

    #[test]
    fn retry_after_tracks_ejection() {
        let mut w = World::new(CFG);
        // Three failing requests eject everything at t=0 (eject 10 s).
        for _ in 0..3 {
            w.run(Method::GET, 0, |_| Outcome::Status(502));
        }
        let (next, _) = w.run(Method::GET, 4_500, |_| Outcome::Status(502));
        let Next::GiveUp(g) = next else { panic!("{next:?}") };
        assert_eq!(g.retry_after_secs, 6, "ceil((10000 - 4500) / 1000)");
    }

    #[test]
    fn probe_acquired_once_and_lost_probe_moves_last() {
        let mut w = World::new(CFG);
        for _ in 0..3 {
            w.health.record_failure("eu-west-1/0", 0);
        }
        let viewer = parse_test_header("country=FR;lat=48.86;lon=2.35").unwrap();
        let sel = select(&w.routing, w.routing.default_pool(), &viewer, &w.health, None, 0, 10_000);
        assert_eq!(sel.attempts[0].health, AttemptHealth::Probe);
        let (_, first) = Failover::start(
            &w.routing,
            sel.clone(),
            &Method::GET,
            false,
            &mut w.health,
            &mut w.budget,
            10_000,
        );
        assert!(
            matches!(first, Next::Try { ref attempt, .. } if attempt.origin == "eu-west-1/0"),
            "wins the probe"
        );
        // A concurrent request with the same snapshot loses the probe.
        let (run2, second) =
            Failover::start(&w.routing, sel, &Method::GET, false, &mut w.health, &mut w.budget, 10_001);
        assert!(
            matches!(second, Next::Try { ref attempt, .. } if attempt.origin == "us-east-1/0"),
            "{second:?}"
        );
        assert_eq!(run2.attempts.last().unwrap().origin, "eu-west-1/0");
    }

    #[test]
    fn budget_caps_retries_when_a_region_fails_completely() {
        // Ejection disabled in effect (huge threshold) so every request
        // hits the failing region first; the budget alone limits retries.
        let cfg = format!("{CFG}[routing.health]\nfailures_to_eject = 1000\n");
        let mut w = World::new(&cfg);
        let mut retries = 0;
        let n = 1000;
        for i in 0..n {
            let (next, run) = w.run(Method::GET, i * 10, |r| {
                if r == "eu-west-1" {
                    Outcome::Status(503)
                } else {
                    Outcome::Status(200)
                }
            });
            retries += run.records().len() - 1;
            assert!(matches!(
                next,
                Next::Deliver | Next::GiveUp(GiveUp { reason: GiveUpReason::BudgetExhausted, .. })
            ));
        }
        // 10 s of traffic = one window: ≤ 0.2 × 1000 + 3.
        assert!(retries <= 203, "retries {retries}");
        assert!(retries >= 190, "budget used: {retries}");
    }

    #[test]
    fn empty_selection_gives_up() {
        let mut w = World::new("");
        let sel = Selection { attempts: vec![], reason: Reason::Fallback };
        let (mut run, next) =
            Failover::start(&w.routing, sel, &Method::GET, false, &mut w.health, &mut w.budget, 0);
        assert!(matches!(next, Next::GiveUp(GiveUp { reason: GiveUpReason::NoOrigins, .. })));
        // Reporting without an attempt in flight does not panic.
        let next = run.report(Outcome::Status(200), false, 1, &mut w.health, &mut w.budget, 0);
        assert!(matches!(next, Next::GiveUp(_)));
    }
}
