//! What routing did, for logs and the `Server-Timing` response header.
//!
//! `Server-Timing` (W3C Server Timing) lists the region that served the
//! response, why it was picked, and every attempt with its outcome and
//! duration:
//!
//! ```text
//! region;desc="eu-west-1", route;desc="fallback", attempt;desc="eu-central-1 503";dur=12, attempt;desc="eu-west-1 200";dur=30
//! ```
//!
//! It names internal regions: whether viewers see it is the adapter's
//! (config's) choice; the log record is always available.
//!
//! ```
//! use offload_core::route::log::{AttemptRecord, RouteLog};
//! use offload_core::route::retry::Outcome;
//! use offload_core::route::select::Reason;
//! let log = RouteLog {
//!     reason: Reason::Nearest,
//!     selected: Some("us-east-1".into()),
//!     served_by: Some("eu-west-1".into()),
//!     attempts: vec![
//!         AttemptRecord { region: "us-east-1".into(), origin: "us-east-1/0".into(), outcome: Outcome::Status(503), dur_ms: 12, probe: false },
//!         AttemptRecord { region: "eu-west-1".into(), origin: "eu-west-1/0".into(), outcome: Outcome::Status(200), dur_ms: 30, probe: false },
//!     ],
//!     give_up: None,
//! };
//! assert_eq!(
//!     log.server_timing(),
//!     r#"region;desc="eu-west-1", route;desc="nearest", attempt;desc="us-east-1 503";dur=12, attempt;desc="eu-west-1 200";dur=30"#
//! );
//! ```

use std::fmt::Write as _;

use serde::Serialize;

use super::failover::GiveUp;
use super::retry::Outcome;
use super::select::Reason;

/// One attempt as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    pub region: String,
    pub origin: String,
    /// `200`, `503`, `timeout`, `connect-error`.
    pub outcome: Outcome,
    pub dur_ms: u64,
    /// Whether this attempt was the half-open health probe.
    pub probe: bool,
}

/// The per-request routing log record (serialize it as one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteLog {
    pub reason: Reason,
    /// The first region of the selection.
    pub selected: Option<String>,
    /// The region whose response was delivered (`None` if all failed).
    pub served_by: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    /// Set when every attempt failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub give_up: Option<GiveUp>,
}

/// Append `s` as an RFC 9110 quoted-string.
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // Header values carry no control characters or non-ASCII.
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

impl RouteLog {
    /// The `Server-Timing` header value (always a valid header value).
    pub fn server_timing(&self) -> String {
        let mut out = String::new();
        let region = self.served_by.as_deref().or(self.selected.as_deref()).unwrap_or("none");
        out.push_str("region;desc=");
        push_quoted(&mut out, region);
        out.push_str(", route;desc=");
        push_quoted(&mut out, self.reason.as_str());
        for a in &self.attempts {
            out.push_str(", attempt;desc=");
            push_quoted(&mut out, &format!("{} {}", a.region, a.outcome));
            let _ = write!(out, ";dur={}", a.dur_ms);
        }
        if let Some(g) = &self.give_up {
            out.push_str(", give-up;desc=");
            push_quoted(&mut out, g.reason.as_str());
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::route::failover::GiveUpReason;

    fn rec(region: &str, outcome: Outcome, dur_ms: u64) -> AttemptRecord {
        AttemptRecord { region: region.into(), origin: format!("{region}/0"), outcome, dur_ms, probe: false }
    }

    #[test]
    fn server_timing_values() {
        let gave_up = GiveUp {
            reason: GiveUpReason::BudgetExhausted,
            stale_ok: true,
            retry_after_secs: 5,
            last: Some(Outcome::Timeout),
        };
        let cases = [
            (
                RouteLog {
                    reason: Reason::Country,
                    selected: Some("eu-west-1".into()),
                    served_by: Some("eu-west-1".into()),
                    attempts: vec![rec("eu-west-1", Outcome::Status(200), 7)],
                    give_up: None,
                },
                r#"region;desc="eu-west-1", route;desc="country", attempt;desc="eu-west-1 200";dur=7"#,
            ),
            (
                RouteLog {
                    reason: Reason::Fallback,
                    selected: Some("a".into()),
                    served_by: None,
                    attempts: vec![rec("a", Outcome::ConnectError, 1), rec("b", Outcome::Timeout, 5000)],
                    give_up: Some(gave_up),
                },
                r#"region;desc="a", route;desc="fallback", attempt;desc="a connect-error";dur=1, attempt;desc="b timeout";dur=5000, give-up;desc="budget_exhausted""#,
            ),
            (
                RouteLog {
                    reason: Reason::Weighted,
                    selected: None,
                    served_by: None,
                    attempts: vec![],
                    give_up: None,
                },
                r#"region;desc="none", route;desc="weighted""#,
            ),
            (
                RouteLog {
                    reason: Reason::Sticky,
                    selected: Some("we\"ird\\\u{7f}é".into()),
                    served_by: None,
                    attempts: vec![],
                    give_up: None,
                },
                r#"region;desc="we\"ird\\??", route;desc="sticky""#,
            ),
        ];
        for (log, want) in cases {
            let v = log.server_timing();
            assert_eq!(v, want);
            assert!(http::HeaderValue::from_str(&v).is_ok());
        }
    }

    #[test]
    fn log_record_serializes() {
        let log = RouteLog {
            reason: Reason::Nearest,
            selected: Some("us-east-1".into()),
            served_by: Some("us-east-1".into()),
            attempts: vec![AttemptRecord { probe: true, ..rec("us-east-1", Outcome::Status(200), 3) }],
            give_up: None,
        };
        let json = serde_json::to_value(&log).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "reason": "nearest",
                "selected": "us-east-1",
                "served_by": "us-east-1",
                "attempts": [{ "region": "us-east-1", "origin": "us-east-1/0", "outcome": "200", "dur_ms": 3, "probe": true }]
            })
        );
    }
}
