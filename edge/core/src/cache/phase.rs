//! What the cache did for one request, as in Pingora's cache phases, and
//! its RFC 9211 `Cache-Status` entry.
//!
//! ```
//! use offload_core::cache::{CachePhase, NoCacheReason};
//! let s = CachePhase::Revalidated.cache_status("Offload").with_stored(true);
//! assert_eq!(s.to_string(), "Offload; fwd=stale; fwd-status=304; stored");
//! let s = CachePhase::Miss.cache_status("Offload").with_fwd_status(200)
//!     .with_detail(NoCacheReason::SetCookie.as_str());
//! assert_eq!(s.to_string(), "Offload; fwd=uri-miss; fwd-status=200; detail=set-cookie");
//! ```

use std::fmt;

use super::policy::{Lookup, RevalidateReason};
use super::status::{CacheStatus, FwdReason};

/// The cache's part in answering one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePhase {
    /// The request is not one the cache handles (method, route).
    Bypass,
    /// No entry for the URL.
    Miss,
    /// Entries for the URL, none for this request's `Vary` values.
    VaryMiss,
    /// Served a fresh stored response.
    Hit,
    /// Served a stale stored response (allowed by `max-stale`, or
    /// `stale-if-error` after an origin failure).
    Stale,
    /// Served stale while a background revalidation runs
    /// (`stale-while-revalidate`).
    StaleUpdating,
    /// Revalidated upstream; the origin said 304; served the stored body.
    Revalidated,
    /// The stored response was stale (or invalidated); the origin sent a
    /// full response.
    Expired,
    /// The request's own directives (`no-cache`, `max-age`, `min-fresh`)
    /// sent it upstream.
    RequestForced,
    /// `only-if-cached` could not be satisfied: 504 from the edge.
    OnlyIfCachedMiss,
}

impl CachePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Miss => "miss",
            Self::VaryMiss => "vary-miss",
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::StaleUpdating => "stale-updating",
            Self::Revalidated => "revalidated",
            Self::Expired => "expired",
            Self::RequestForced => "request-forced",
            Self::OnlyIfCachedMiss => "only-if-cached-miss",
        }
    }

    /// Whether the viewer got a stored response.
    pub fn is_hit(self) -> bool {
        matches!(self, Self::Hit | Self::Stale | Self::StaleUpdating)
    }

    /// The `Cache-Status` entry. Add `ttl` (negative when stale),
    /// `fwd-status`, `stored`, `collapsed` with the builder methods.
    pub fn cache_status(self, cache: &str) -> CacheStatus {
        match self {
            Self::Bypass => CacheStatus::forward(cache, FwdReason::Bypass),
            Self::Miss => CacheStatus::forward(cache, FwdReason::UriMiss),
            Self::VaryMiss => CacheStatus::forward(cache, FwdReason::VaryMiss),
            Self::Hit => CacheStatus::hit(cache),
            Self::Stale => CacheStatus::hit(cache).with_detail("stale"),
            Self::StaleUpdating => CacheStatus::hit(cache).with_detail("stale-while-revalidate"),
            Self::Revalidated => CacheStatus::forward(cache, FwdReason::Stale).with_fwd_status(304),
            Self::Expired => CacheStatus::forward(cache, FwdReason::Stale),
            Self::RequestForced => CacheStatus::forward(cache, FwdReason::Request),
            Self::OnlyIfCachedMiss => CacheStatus::forward(cache, FwdReason::Miss).with_detail("only-if-cached"),
        }
    }
}

impl fmt::Display for CachePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Lookup {
    /// The phase this lookup starts: final for `Fresh`, `GatewayTimeout`
    /// and a stale serve-while-revalidating; otherwise the phase before the
    /// origin answers (a 304 then makes it [`CachePhase::Revalidated`]).
    pub fn phase(&self) -> CachePhase {
        match self {
            Lookup::Fresh { ttl, .. } if *ttl > 0 => CachePhase::Hit,
            Lookup::Fresh { .. } => CachePhase::Stale,
            Lookup::Stale { serve_while_revalidating: true, .. } => CachePhase::StaleUpdating,
            Lookup::Stale { .. } => CachePhase::Expired,
            Lookup::MustRevalidate { reason: RevalidateReason::Unusable, .. } => CachePhase::Miss,
            Lookup::MustRevalidate { reason, .. } if reason.is_request() => CachePhase::RequestForced,
            Lookup::MustRevalidate { .. } => CachePhase::Expired,
            Lookup::GatewayTimeout => CachePhase::OnlyIfCachedMiss,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
    use super::*;
    use crate::cache::policy::Revalidation;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_phase_maps_to_cache_status() {
        for (phase, want) in [
            (CachePhase::Bypass, "E; fwd=bypass"),
            (CachePhase::Miss, "E; fwd=uri-miss"),
            (CachePhase::VaryMiss, "E; fwd=vary-miss"),
            (CachePhase::Hit, "E; hit"),
            (CachePhase::Stale, "E; hit; detail=stale"),
            (CachePhase::StaleUpdating, "E; hit; detail=stale-while-revalidate"),
            (CachePhase::Revalidated, "E; fwd=stale; fwd-status=304"),
            (CachePhase::Expired, "E; fwd=stale"),
            (CachePhase::RequestForced, "E; fwd=request"),
            (CachePhase::OnlyIfCachedMiss, "E; fwd=miss; detail=only-if-cached"),
        ] {
            assert_eq!(phase.cache_status("E").to_string(), want, "{phase}");
            assert_eq!(phase.cache_status("E").is_hit(), phase.is_hit(), "{phase}");
        }
        assert_eq!(CachePhase::Hit.cache_status("E").with_ttl(-5).to_string(), "E; hit; ttl=-5");
    }

    #[test]
    fn lookup_phases() {
        let r = Revalidation::default();
        for (l, want) in [
            (Lookup::Fresh { age: 1, ttl: 5 }, CachePhase::Hit),
            (Lookup::Fresh { age: 9, ttl: -5 }, CachePhase::Stale),
            (
                Lookup::Stale { age: 9, ttl: -1, serve_while_revalidating: true, serve_on_error: false, revalidation: r.clone() },
                CachePhase::StaleUpdating,
            ),
            (
                Lookup::Stale { age: 9, ttl: -1, serve_while_revalidating: false, serve_on_error: true, revalidation: r.clone() },
                CachePhase::Expired,
            ),
            (
                Lookup::MustRevalidate {
                    age: 0,
                    ttl: 5,
                    reason: RevalidateReason::RequestNoCache,
                    serve_on_error: false,
                    revalidation: r.clone(),
                },
                CachePhase::RequestForced,
            ),
            (
                Lookup::MustRevalidate {
                    age: 0,
                    ttl: 5,
                    reason: RevalidateReason::ResponseNoCache,
                    serve_on_error: false,
                    revalidation: r.clone(),
                },
                CachePhase::Expired,
            ),
            (
                Lookup::MustRevalidate { age: 0, ttl: 0, reason: RevalidateReason::Unusable, serve_on_error: false, revalidation: r },
                CachePhase::Miss,
            ),
            (Lookup::GatewayTimeout, CachePhase::OnlyIfCachedMiss),
        ] {
            assert_eq!(l.phase(), want, "{l:?}");
        }
    }
}
