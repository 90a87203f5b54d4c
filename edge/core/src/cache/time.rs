//! Time as data: whole seconds since the Unix epoch, passed in by the
//! adapter. Nothing here reads the clock.
//!
//! ```
//! use offload_core::cache::Timestamp;
//! let t = Timestamp::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
//! assert_eq!(t.unix_secs(), 784111777);
//! assert_eq!(t.to_http_date(), "Sun, 06 Nov 1994 08:49:37 GMT");
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch. HTTP dates have one-second resolution, so
/// whole seconds are all cache freshness needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const fn from_unix_secs(secs: u64) -> Self {
        Self(secs)
    }
    pub const fn unix_secs(self) -> u64 {
        self.0
    }
    /// Convert a `SystemTime` the adapter obtained (times before 1970 clamp
    /// to 0). This does not read the clock.
    pub fn from_system_time(t: SystemTime) -> Self {
        Self(t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
    }
    /// Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime form).
    pub fn parse_http_date(s: &str) -> Option<Self> {
        httpdate::parse_http_date(s.trim()).ok().map(Self::from_system_time)
    }
    /// Format as an IMF-fixdate.
    pub fn to_http_date(self) -> String {
        let t = UNIX_EPOCH.checked_add(Duration::from_secs(self.0)).unwrap_or(UNIX_EPOCH);
        httpdate::fmt_http_date(t)
    }
    /// `self - earlier` in seconds, 0 if `earlier` is later.
    pub const fn secs_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
    pub const fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }
}

/// Parse RFC 9111 §1.2.2 delta-seconds: ASCII digits only, saturating at
/// 2^31 as the RFC asks. `None` when the value is not a non-negative integer.
pub fn parse_delta_seconds(s: &str) -> Option<u64> {
    const CAP: u64 = 2_147_483_648;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        if n >= CAP {
            return Some(CAP);
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn delta_seconds() {
        for (input, want) in [
            ("0", Some(0)),
            ("60", Some(60)),
            ("0060", Some(60)),
            ("2147483648", Some(2_147_483_648)),
            ("99999999999999999999999999", Some(2_147_483_648)),
            ("", None),
            ("-1", None),
            ("1.5", None),
            (" 5", None),
            ("5s", None),
        ] {
            assert_eq!(parse_delta_seconds(input), want, "{input:?}");
        }
    }

    #[test]
    fn http_dates_round_trip() {
        for s in ["Sun, 06 Nov 1994 08:49:37 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"] {
            assert_eq!(Timestamp::parse_http_date(s).unwrap().to_http_date(), s);
        }
        assert_eq!(
            Timestamp::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").map(Timestamp::unix_secs),
            Some(784_111_777)
        );
        assert_eq!(Timestamp::parse_http_date("0"), None);
        assert_eq!(Timestamp::parse_http_date("yesterday"), None);
    }

    #[test]
    fn arithmetic_saturates() {
        let a = Timestamp::from_unix_secs(10);
        let b = Timestamp::from_unix_secs(15);
        assert_eq!(b.secs_since(a), 5);
        assert_eq!(a.secs_since(b), 0);
        assert_eq!(Timestamp::from_unix_secs(u64::MAX).plus_secs(5).unix_secs(), u64::MAX);
    }
}
