//! Fault injection, switched at runtime over `/_shim/faults`.
//!
//! ```text
//! GET    /_shim/faults   -> current settings
//! POST   /_shim/faults   {"fail_ratio":0.5,"fail_status":503,"latency_ms":200,"refuse":false}
//! DELETE /_shim/faults   -> back to the defaults (and reopens a refused listener)
//! ```
//!
//! All four fields are optional in a `POST`; the ones given replace the current
//! values and the others are kept. Every answer is the full resulting settings
//! object, in the same shape, so a `GET` result can be posted back.
//!
//! | field         | type / range            | default | effect |
//! |---------------|-------------------------|---------|--------|
//! | `fail_ratio`  | number, 0.0..=1.0       | 0.0     | share of requests answered with `fail_status` |
//! | `fail_status` | integer, 400..=599      | 503     | status of an injected failure |
//! | `latency_ms`  | integer, 0..=60000      | 0       | sleep before handling each request |
//! | `refuse`      | boolean                 | false   | close the main listener (connection refused) |
//!
//! Failures are **deterministic**, not random: an accumulator adds `fail_ratio`
//! for every request and fails the request whenever it reaches 1, so of the
//! first `n` requests after a change exactly `floor(n * fail_ratio)` fail
//! (1.0 fails all, 0.5 fails the 2nd, 4th, ..., 0.25 every 4th). The ratio is
//! kept in parts per million, so there is no floating-point drift, and every
//! `POST`/`DELETE` restarts the sequence.
//!
//! Faults apply to every request except the `/_shim/*` control plane, after
//! origin auth (an unsigned request is refused, not delayed) and before the
//! request counters. Latency comes first, then the failure decision, so a
//! failed request is also a slow one. An injected failure is a JSON
//! `{"error":"injected fault","status":..,"region":..}` with `cache-control:
//! no-store` and `x-shim-fault: injected`.
//!
//! `refuse` needs `--control-listen`: it drops the main listener (a new
//! connection gets ECONNREFUSED, idle keep-alive connections are closed,
//! in-flight requests finish) and re-binds the same address when turned off.
//! Without a separate control port the control plane would disappear with the
//! listener, so `refuse: true` is then a `400`.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// Largest accepted `latency_ms` (one minute).
pub const MAX_LATENCY_MS: u64 = 60_000;
/// Header set on injected failures.
pub const FAULT_HEADER: &str = "x-shim-fault";
/// The settings' field names, in documentation order.
pub const FIELDS: [&str; 4] = ["fail_ratio", "fail_status", "latency_ms", "refuse"];

const PPM: u32 = 1_000_000;

/// Current fault settings (also the JSON shape of `/_shim/faults`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaultSettings {
    pub fail_ratio: f64,
    pub fail_status: u16,
    pub latency_ms: u64,
    pub refuse: bool,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            fail_ratio: 0.0,
            fail_status: 503,
            latency_ms: 0,
            refuse: false,
        }
    }
}

/// A validated `POST /_shim/faults` body: the fields to change.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultPatch {
    pub fail_ratio: Option<f64>,
    pub fail_status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub refuse: Option<bool>,
}

/// Why a faults request was rejected; names the field and the bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultsError {
    kind: FaultsErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FaultsErrorKind {
    NotJson(String),
    NotObject,
    UnknownField(String),
    BadValue {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    RefuseNeedsControlListener,
}

impl FaultsError {
    /// The offending field, when the error is about one.
    #[must_use]
    pub fn field(&self) -> Option<&str> {
        match &self.kind {
            FaultsErrorKind::UnknownField(f) => Some(f),
            FaultsErrorKind::BadValue { field, .. } => Some(field),
            FaultsErrorKind::RefuseNeedsControlListener => Some("refuse"),
            FaultsErrorKind::NotJson(_) | FaultsErrorKind::NotObject => None,
        }
    }

    pub(crate) fn refuse_needs_control_listener() -> Self {
        Self {
            kind: FaultsErrorKind::RefuseNeedsControlListener,
        }
    }
}

impl fmt::Display for FaultsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultsErrorKind::NotJson(e) => write!(f, "faults: request body is not JSON: {e}"),
            FaultsErrorKind::NotObject => f.write_str("faults: request body must be a JSON object"),
            FaultsErrorKind::UnknownField(name) => write!(
                f,
                "faults: unknown field {name:?} (expected fail_ratio, fail_status, latency_ms or refuse)"
            ),
            FaultsErrorKind::BadValue {
                field,
                value,
                expected,
            } => write!(f, "faults: {field:?}: expected {expected}, got {value}"),
            FaultsErrorKind::RefuseNeedsControlListener => f.write_str(
                "faults: \"refuse\": true needs a control listener (start the shim with \
                 --control-listen ADDR); /_shim/* is served on the main port, so closing it \
                 would leave no way to reopen it",
            ),
        }
    }
}

impl std::error::Error for FaultsError {}

/// A short rendering of a rejected JSON value (bounded, so a huge body is not echoed).
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 64 {
        return s;
    }
    let mut end = 61;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn bad(field: &'static str, v: &Value, expected: &'static str) -> FaultsError {
    FaultsError {
        kind: FaultsErrorKind::BadValue {
            field,
            value: show(v),
            expected,
        },
    }
}

impl FaultPatch {
    /// Parses and validates a request body.
    pub fn from_json(body: &[u8]) -> Result<Self, FaultsError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| FaultsError {
            kind: FaultsErrorKind::NotJson(e.to_string()),
        })?;
        let Value::Object(map) = value else {
            return Err(FaultsError {
                kind: FaultsErrorKind::NotObject,
            });
        };
        let mut patch = Self::default();
        for (name, v) in &map {
            match name.as_str() {
                "fail_ratio" => {
                    const EXPECTED: &str = "a number from 0.0 to 1.0";
                    let r = v
                        .as_f64()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| bad("fail_ratio", v, EXPECTED))?;
                    patch.fail_ratio = Some(r);
                }
                "fail_status" => {
                    const EXPECTED: &str = "an integer status from 400 to 599";
                    let s = v
                        .as_u64()
                        .filter(|s| (400..=599).contains(s))
                        .and_then(|s| u16::try_from(s).ok())
                        .ok_or_else(|| bad("fail_status", v, EXPECTED))?;
                    patch.fail_status = Some(s);
                }
                "latency_ms" => {
                    const EXPECTED: &str = "an integer from 0 to 60000";
                    let ms = v
                        .as_u64()
                        .filter(|ms| *ms <= MAX_LATENCY_MS)
                        .ok_or_else(|| bad("latency_ms", v, EXPECTED))?;
                    patch.latency_ms = Some(ms);
                }
                "refuse" => {
                    let b = v
                        .as_bool()
                        .ok_or_else(|| bad("refuse", v, "true or false"))?;
                    patch.refuse = Some(b);
                }
                other => {
                    return Err(FaultsError {
                        kind: FaultsErrorKind::UnknownField(other.chars().take(64).collect()),
                    })
                }
            }
        }
        Ok(patch)
    }

    /// The settings after applying this patch to `current`.
    #[must_use]
    pub fn apply(&self, current: FaultSettings) -> FaultSettings {
        FaultSettings {
            fail_ratio: self.fail_ratio.unwrap_or(current.fail_ratio),
            fail_status: self.fail_status.unwrap_or(current.fail_status),
            latency_ms: self.latency_ms.unwrap_or(current.latency_ms),
            refuse: self.refuse.unwrap_or(current.refuse),
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// Sleep this long before anything else.
    pub latency: Duration,
    /// Answer with this status instead of handling the request.
    pub fail: Option<StatusCode>,
}

/// Live fault settings plus the failure accumulator.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<Inner>,
    /// Serializes changes (a change may have to close or re-bind the listener).
    update: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Inner {
    settings: FaultSettings,
    ratio_ppm: u32,
    acc_ppm: u32,
}

fn ratio_to_ppm(r: f64) -> u32 {
    // `r` is validated to 0.0..=1.0, so this is 0..=PPM; the clamp and the
    // float-to-int `as` (saturating) keep it in range whatever happens.
    let ppm = (r * f64::from(PPM)).round().clamp(0.0, f64::from(PPM));
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ppm = ppm as u32;
    ppm
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[must_use]
    pub fn settings(&self) -> FaultSettings {
        self.lock().settings
    }

    /// Replaces the settings and restarts the failure sequence.
    pub fn set(&self, settings: FaultSettings) {
        let mut inner = self.lock();
        inner.settings = settings;
        inner.ratio_ppm = ratio_to_ppm(settings.fail_ratio);
        inner.acc_ppm = 0;
    }

    /// Held while a change is applied, so concurrent changes do not interleave.
    pub(crate) async fn update_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.update.lock().await
    }

    /// Decides the fate of the next request (advances the failure sequence).
    pub fn plan(&self) -> FaultPlan {
        let mut inner = self.lock();
        let latency = Duration::from_millis(inner.settings.latency_ms);
        let mut fail = None;
        if inner.ratio_ppm > 0 {
            inner.acc_ppm += inner.ratio_ppm;
            if inner.acc_ppm >= PPM {
                inner.acc_ppm -= PPM;
                fail = Some(
                    StatusCode::from_u16(inner.settings.fail_status)
                        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                );
            }
        }
        FaultPlan { latency, fail }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fails(f: &Faults, n: usize) -> Vec<bool> {
        (0..n).map(|_| f.plan().fail.is_some()).collect()
    }

    #[test]
    fn sequence_is_deterministic() {
        let f = Faults::default();
        assert_eq!(fails(&f, 3), [false, false, false]);
        let with = |r: f64| FaultSettings {
            fail_ratio: r,
            ..FaultSettings::default()
        };
        f.set(with(1.0));
        assert_eq!(fails(&f, 3), [true, true, true]);
        f.set(with(0.5));
        assert_eq!(fails(&f, 4), [false, true, false, true]);
        f.set(with(0.25));
        assert_eq!(fails(&f, 8).iter().filter(|x| **x).count(), 2);
        f.set(with(0.1));
        assert_eq!(fails(&f, 1000).iter().filter(|x| **x).count(), 100);
        f.set(FaultSettings {
            fail_ratio: 1.0,
            fail_status: 429,
            latency_ms: 7,
            refuse: false,
        });
        let p = f.plan();
        assert_eq!(p.fail, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(p.latency, Duration::from_millis(7));
    }

    #[test]
    fn patch_parses_and_merges() {
        let p = FaultPatch::from_json(br#"{"fail_ratio":0.5,"latency_ms":10}"#).unwrap();
        let s = p.apply(FaultSettings {
            fail_status: 500,
            refuse: true,
            ..FaultSettings::default()
        });
        assert_eq!(
            s,
            FaultSettings {
                fail_ratio: 0.5,
                fail_status: 500,
                latency_ms: 10,
                refuse: true
            }
        );
        assert_eq!(FaultPatch::from_json(b"{}").unwrap(), FaultPatch::default());
        let all = FaultPatch::from_json(
            br#"{"fail_ratio":1,"fail_status":599,"latency_ms":60000,"refuse":false}"#,
        )
        .unwrap();
        assert_eq!(all.fail_ratio, Some(1.0));
        assert_eq!(all.fail_status, Some(599));
    }

    #[test]
    fn patch_errors_name_the_field() {
        let cases: [(&[u8], Option<&str>, &str); 13] = [
            (br#"{"fail_ratio":1.5}"#, Some("fail_ratio"), "got 1.5"),
            (br#"{"fail_ratio":-0.1}"#, Some("fail_ratio"), "got -0.1"),
            (
                br#"{"fail_ratio":"half"}"#,
                Some("fail_ratio"),
                "got \"half\"",
            ),
            (br#"{"fail_ratio":null}"#, Some("fail_ratio"), "got null"),
            (br#"{"fail_status":200}"#, Some("fail_status"), "got 200"),
            (
                br#"{"fail_status":503.5}"#,
                Some("fail_status"),
                "got 503.5",
            ),
            (
                br#"{"fail_status":70000}"#,
                Some("fail_status"),
                "got 70000",
            ),
            (br#"{"latency_ms":-1}"#, Some("latency_ms"), "got -1"),
            (br#"{"latency_ms":60001}"#, Some("latency_ms"), "got 60001"),
            (br#"{"refuse":"yes"}"#, Some("refuse"), "got \"yes\""),
            (
                br#"{"fail_rate":1}"#,
                Some("fail_rate"),
                "unknown field \"fail_rate\"",
            ),
            (br"[1]", None, "must be a JSON object"),
            (b"{nope", None, "not JSON"),
        ];
        for (body, field, msg) in cases {
            let e = FaultPatch::from_json(body).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            assert!(e.to_string().contains(msg), "{e}");
            if let Some(f) = field {
                assert!(e.to_string().contains(&format!("{f:?}")), "{e}");
            }
        }
        let long = format!(r#"{{"latency_ms":"{}"}}"#, "x".repeat(500));
        let e = FaultPatch::from_json(long.as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }
}
