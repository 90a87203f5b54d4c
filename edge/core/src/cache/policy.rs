//! Whether and for how long a response may be stored and served by a
//! shared edge cache (RFC 9111, RFC 9213, RFC 5861).
//!
//! [`CachePolicy`] is plain serializable data computed once from the
//! exchange that produced a response; every later question (`is_fresh`,
//! `age`, what to do for a new request) takes `now` as an argument.
//!
//! Freshness source, first that applies (RFC 9213 §2.1: a valid targeted
//! field replaces `Cache-Control` *and* `Expires` entirely):
//! 1. `CDN-Cache-Control` (`s-maxage`, then `max-age`),
//! 2. `Surrogate-Control` (`max-age`),
//! 3. `Cache-Control: s-maxage`, then `max-age`,
//! 4. `Expires` minus `Date` (an invalid `Expires` means already stale),
//! 5. heuristic: `(Date - Last-Modified) * heuristic%` when the route
//!    enables it and the status is heuristically cacheable,
//! 6. the route's `default_ttl` (same status condition),
//!
//! all capped by `max_ttl`. With none of these the response is not stored,
//! except an unqualified `no-cache` response with a validator (stored with
//! lifetime 0 so it can be revalidated cheaply).
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method};
//! use offload_core::cache::{CachePolicy, CacheRules, Exchange, Timestamp};
//! let mut resp = HeaderMap::new();
//! resp.insert("cache-control", HeaderValue::from_static("max-age=60"));
//! let t = Timestamp::from_unix_secs(1_000);
//! let policy = CachePolicy::new(
//!     &Exchange::new(&Method::GET, &HeaderMap::new(), 200, &resp, t, t),
//!     &CacheRules::default(),
//! );
//! assert!(policy.is_storable());
//! assert!(policy.is_fresh(t.plus_secs(59)));
//! assert!(!policy.is_fresh(t.plus_secs(60)));
//! ```

use std::fmt;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;
use serde::{Deserialize, Serialize};

use super::control::{CacheControl, FieldScope, MaxStale};
use super::key::parse_vary;
use super::time::{parse_delta_seconds, Timestamp};

/// A route's caching settings. Meant to be embedded in route config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheRules {
    /// Heuristic freshness, in percent of `Date - Last-Modified`
    /// (RFC 9111 §4.2.2; 10 is typical). `None` disables it.
    pub heuristic: Option<u8>,
    /// Lifetime for heuristically cacheable responses that carry no
    /// freshness information at all. `None`: such responses are not stored.
    pub default_ttl: Option<u64>,
    /// Upper bound on every freshness lifetime.
    pub max_ttl: Option<u64>,
    /// Store responses that set cookies. The stored copy never keeps
    /// `Set-Cookie`: only the viewer whose request fetched it gets it.
    pub store_set_cookie: bool,
    /// Store responses to requests with `Authorization` even without
    /// `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3.5).
    pub store_authorized: bool,
    /// `stale-while-revalidate` window when the origin sends none.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` window when the origin sends none.
    pub stale_if_error: Option<u64>,
    /// Keep a stale entry that has a validator this long past its stale
    /// windows, so it can still be revalidated with a cheap 304.
    pub retain_stale: u64,
    /// Give implicit freshness (`default_ttl`, `heuristic`) to responses
    /// for requests that carry `Cookie` or `Authorization` although the
    /// cache key does not include them. Off by default: such a response
    /// is often personal, and without explicit freshness from the origin
    /// it would be served to the next viewer.
    pub implicit_ttl_with_credentials: bool,
    /// Set by config validation: a `Cookie` cannot personalize this
    /// route's shared responses (the cache key includes it, or it never
    /// reaches the upstream: buckets, `forward_headers` without it).
    #[serde(skip)]
    pub keyed_cookie: bool,
    /// The same for `Authorization`.
    #[serde(skip)]
    pub keyed_authorization: bool,
}

/// Bad [`CacheRules`]: names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache rules: {field}: {value}: {why}")]
pub struct CacheRulesError {
    field: &'static str,
    value: String,
    why: &'static str,
}

impl CacheRulesError {
    pub fn field(&self) -> &str {
        self.field
    }
    /// The offending value as written.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl CacheRules {
    pub fn validate(&self) -> Result<(), CacheRulesError> {
        if let Some(p) = self.heuristic {
            if p > 100 {
                return Err(CacheRulesError { field: "heuristic", value: p.to_string(), why: "percent must be 0..=100" });
            }
        }
        if let (Some(d), Some(m)) = (self.default_ttl, self.max_ttl) {
            if d > m {
                return Err(CacheRulesError { field: "default_ttl", value: d.to_string(), why: "exceeds max_ttl" });
            }
        }
        Ok(())
    }
}

/// Why a response is not stored. `as_str` is a token, fit for logs and the
/// `detail` of `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoCacheReason {
    /// Only `GET` responses are stored (`HEAD` is served from them).
    Method,
    /// The status code is not final, or is 206/304 (RFC 9111 §3).
    Status,
    /// `must-understand` on a status this cache does not understand.
    MustUnderstand,
    /// The request said `no-store`.
    RequestNoStore,
    /// The response said `no-store`.
    NoStore,
    /// `private` (a shared cache must not store it).
    Private,
    /// The request carried `Authorization` and the response did not allow
    /// shared caching (RFC 9111 §3.5).
    Authorization,
    /// The response sets a cookie and the route does not allow storing it.
    SetCookie,
    /// `Vary: *`.
    VaryStar,
    /// No explicit freshness, no heuristic, no default.
    NoFreshness,
    /// No explicit freshness, and the request carried `Cookie` or
    /// `Authorization` outside the cache key: no implicit freshness.
    Credentials,
    /// Lifetime 0, no validator and no stale window: it could never be used.
    ZeroTtl,
}

impl NoCacheReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method",
            Self::Status => "status",
            Self::MustUnderstand => "must-understand",
            Self::RequestNoStore => "request-no-store",
            Self::NoStore => "no-store",
            Self::Private => "private",
            Self::Authorization => "authorization",
            Self::SetCookie => "set-cookie",
            Self::VaryStar => "vary-star",
            Self::NoFreshness => "no-freshness",
            Self::Credentials => "credentials",
            Self::ZeroTtl => "zero-ttl",
        }
    }
}

impl fmt::Display for NoCacheReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreshnessSource {
    CdnCacheControl,
    SurrogateControl,
    SMaxAge,
    MaxAge,
    Expires,
    Heuristic,
    DefaultTtl,
    /// Stored only for revalidation (`no-cache` with a validator).
    None,
}

/// One request/response exchange, as seen by the cache.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub method: &'a Method,
    pub request_headers: &'a HeaderMap,
    pub status: u16,
    pub response_headers: &'a HeaderMap,
    /// When the request was sent upstream.
    pub request_time: Timestamp,
    /// When the response headers arrived.
    pub response_time: Timestamp,
}

impl<'a> Exchange<'a> {
    pub fn new(
        method: &'a Method,
        request_headers: &'a HeaderMap,
        status: u16,
        response_headers: &'a HeaderMap,
        request_time: Timestamp,
        response_time: Timestamp,
    ) -> Self {
        Self { method, request_headers, status, response_headers, request_time, response_time }
    }
}

/// Status codes this cache understands well enough to store with explicit
/// freshness. 206 is left out: Offload does not combine partial content.
pub fn status_is_understood(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410 | 414 | 451 | 500 | 501 | 502 | 503 | 504
    )
}

/// Final statuses a cache may store when the response allows it (RFC 9111
/// §3): 200..=599 except 206 (Offload does not combine partial content)
/// and 304 (only ever an update of a stored response).
pub fn status_is_storable(status: u16) -> bool {
    (200..=599).contains(&status) && !matches!(status, 206 | 304)
}

/// RFC 9110 §15.1 heuristically cacheable status codes (minus 206).
pub fn status_is_heuristically_cacheable(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501)
}

/// The cache policy of one stored (or candidate) response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicy {
    status: u16,
    no_cache_reason: Option<NoCacheReason>,
    request_time: Timestamp,
    response_time: Timestamp,
    corrected_initial_age: u64,
    freshness_lifetime: u64,
    freshness_source: FreshnessSource,
    /// Unqualified `no-cache`: every use needs a successful revalidation.
    no_cache: bool,
    /// `must-revalidate`/`proxy-revalidate`: never served stale.
    must_revalidate: bool,
    stale_while_revalidate: u64,
    stale_if_error: u64,
    immutable: bool,
    retain_stale: u64,
    vary: Vec<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Lower-cased fields never to keep in the stored copy.
    strip_headers: Vec<String>,
    /// Soft-purged or invalidated: must revalidate before normal use.
    #[serde(default)]
    invalidated: bool,
}

impl CachePolicy {
    /// Compute the policy of a response. Never fails: a response that must
    /// not be stored gets a [`NoCacheReason`].
    pub fn new(x: &Exchange<'_>, rules: &CacheRules) -> Self {
        let resp = x.response_headers;
        let date = first_value(resp, &header::DATE).and_then(|d| Timestamp::parse_http_date(&d));
        let date_or_received = date.unwrap_or(x.response_time);
        let age_value = first_value(resp, &header::AGE).and_then(|a| parse_delta_seconds(a.trim())).unwrap_or(0);
        let apparent_age = x.response_time.secs_since(date_or_received);
        let response_delay = x.response_time.secs_since(x.request_time);
        let corrected_initial_age = apparent_age.max(age_value.saturating_add(response_delay));

        let cc = CacheControl::from_cache_control(resp).unwrap_or_default();
        let (eff, targeted) = match (CacheControl::from_cdn_cache_control(resp), CacheControl::from_surrogate_control(resp)) {
            (Some(c), _) if c.directives > 0 => (c, Some(FreshnessSource::CdnCacheControl)),
            (_, Some(s)) if s.directives > 0 => (s, Some(FreshnessSource::SurrogateControl)),
            _ => (cc, None),
        };

        let etag = first_value(resp, &header::ETAG).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let last_modified = first_value(resp, &header::LAST_MODIFIED)
            .map(|v| v.trim().to_owned())
            .filter(|v| Timestamp::parse_http_date(v).is_some());
        let has_validator = etag.is_some() || last_modified.is_some();

        let mut strip_headers: Vec<String> = Vec::new();
        for scope in [&eff.private, &eff.no_cache].into_iter().flatten() {
            if let FieldScope::Fields(f) = scope {
                strip_headers.extend(f.iter().cloned());
            }
        }
        if resp.contains_key(header::SET_COOKIE) {
            strip_headers.push("set-cookie".to_owned());
        }
        crate::sort::sort_by(&mut strip_headers, Ord::cmp);
        strip_headers.dedup();

        let vary = parse_vary(resp);
        let must_revalidate = eff.must_revalidate || eff.proxy_revalidate;
        let no_cache = eff.no_cache_all();

        // Freshness lifetime.
        let explicit: Option<(u64, FreshnessSource)> = match targeted {
            Some(src) => eff.s_maxage.or(eff.max_age).map(|s| (s, src)),
            None => eff
                .s_maxage
                .map(|s| (s, FreshnessSource::SMaxAge))
                .or(eff.max_age.map(|s| (s, FreshnessSource::MaxAge)))
                .or_else(|| {
                    first_value(resp, &header::EXPIRES).map(|e| {
                        let lifetime = Timestamp::parse_http_date(&e).map_or(0, |t| t.secs_since(date_or_received));
                        (lifetime, FreshnessSource::Expires)
                    })
                }),
        };
        // Implicit freshness only for requests without unkeyed credentials.
        let unkeyed_credentials = !rules.implicit_ttl_with_credentials
            && ((x.request_headers.contains_key(header::COOKIE) && !rules.keyed_cookie)
                || (x.request_headers.contains_key(header::AUTHORIZATION) && !rules.keyed_authorization));
        let heuristic_ok = status_is_heuristically_cacheable(x.status) && !unkeyed_credentials;
        let lifetime = explicit
            .or_else(|| {
                let pct = rules.heuristic.filter(|_| heuristic_ok)?;
                let lm = last_modified.as_deref().and_then(Timestamp::parse_http_date)?;
                let span = date_or_received.secs_since(lm);
                Some((span.saturating_mul(u64::from(pct.min(100))) / 100, FreshnessSource::Heuristic))
            })
            .or_else(|| rules.default_ttl.filter(|_| heuristic_ok).map(|d| (d, FreshnessSource::DefaultTtl)))
            .or_else(|| (no_cache && has_validator).then_some((0, FreshnessSource::None)));
        let (freshness_lifetime, freshness_source) = match lifetime {
            Some((l, s)) => (rules.max_ttl.map_or(l, |m| l.min(m)), s),
            None => (0, FreshnessSource::None),
        };

        // Stale windows (RFC 5861). must-revalidate, proxy-revalidate and
        // no-cache forbid serving stale; s-maxage implies proxy-revalidate
        // (RFC 9111 §5.2.2.10), which only the origin's own explicit
        // stale-* directives override.
        let strict = must_revalidate || no_cache;
        let window = |explicit: Option<u64>, default: Option<u64>| -> u64 {
            if strict {
                0
            } else if let Some(e) = explicit {
                e
            } else if eff.s_maxage.is_some() {
                0
            } else {
                default.unwrap_or(0)
            }
        };
        let stale_while_revalidate = window(eff.stale_while_revalidate, rules.stale_while_revalidate);
        let stale_if_error = window(eff.stale_if_error, rules.stale_if_error);

        // RFC 9111 §3: any final status may be stored with explicit
        // freshness; only `must-understand`, 206 and 304 need a status this
        // cache understands (and heuristics need a heuristically cacheable
        // one, above).
        let understood = status_is_understood(x.status);
        let req_cc = CacheControl::from_cache_control(x.request_headers).unwrap_or_default();
        let reason = if *x.method != Method::GET {
            Some(NoCacheReason::Method)
        } else if eff.must_understand && !understood {
            Some(NoCacheReason::MustUnderstand)
        } else if !status_is_storable(x.status) {
            Some(NoCacheReason::Status)
        } else if req_cc.no_store {
            Some(NoCacheReason::RequestNoStore)
        } else if eff.no_store && !eff.must_understand {
            Some(NoCacheReason::NoStore)
        } else if eff.private_all() {
            Some(NoCacheReason::Private)
        } else if x.request_headers.contains_key(header::AUTHORIZATION)
            && !rules.store_authorized
            && !(eff.public || eff.s_maxage.is_some() || eff.must_revalidate)
        {
            Some(NoCacheReason::Authorization)
        } else if resp.contains_key(header::SET_COOKIE) && !rules.store_set_cookie && !origin_scoped_cookie(&eff) {
            Some(NoCacheReason::SetCookie)
        } else if vary.is_err() {
            Some(NoCacheReason::VaryStar)
        } else if lifetime.is_none() && unkeyed_credentials {
            Some(NoCacheReason::Credentials)
        } else if lifetime.is_none() {
            Some(NoCacheReason::NoFreshness)
        } else if freshness_lifetime == 0 && !has_validator && stale_while_revalidate == 0 && stale_if_error == 0 {
            Some(NoCacheReason::ZeroTtl)
        } else {
            None
        };

        Self {
            status: x.status,
            no_cache_reason: reason,
            request_time: x.request_time,
            response_time: x.response_time,
            corrected_initial_age,
            freshness_lifetime,
            freshness_source,
            no_cache,
            must_revalidate,
            stale_while_revalidate,
            stale_if_error,
            immutable: eff.immutable,
            retain_stale: if has_validator { rules.retain_stale } else { 0 },
            vary: vary.unwrap_or_default(),
            etag,
            last_modified,
            strip_headers,
            invalidated: false,
        }
    }

    pub fn is_storable(&self) -> bool {
        self.no_cache_reason.is_none()
    }
    /// Why it is not storable, if it is not.
    pub fn no_cache_reason(&self) -> Option<NoCacheReason> {
        self.no_cache_reason
    }
    pub fn status(&self) -> u16 {
        self.status
    }
    /// Seconds the response stays fresh after its generation.
    pub fn freshness_lifetime(&self) -> u64 {
        self.freshness_lifetime
    }
    pub fn freshness_source(&self) -> FreshnessSource {
        self.freshness_source
    }
    /// RFC 9111 §4.2.3 current age at `now`.
    pub fn age(&self, now: Timestamp) -> u64 {
        self.corrected_initial_age.saturating_add(now.secs_since(self.response_time))
    }
    /// Fresh and not invalidated. A `no-cache` response may be fresh yet
    /// still need revalidation: use [`CachePolicy::before_request`].
    pub fn is_fresh(&self, now: Timestamp) -> bool {
        self.is_storable() && !self.invalidated && self.freshness_lifetime > self.age(now)
    }
    /// Remaining freshness in seconds; negative once stale (RFC 9211 `ttl`).
    pub fn time_to_live(&self, now: Timestamp) -> i64 {
        let l = i64::try_from(self.freshness_lifetime).unwrap_or(i64::MAX);
        let a = i64::try_from(self.age(now)).unwrap_or(i64::MAX);
        l.saturating_sub(a)
    }
    /// Seconds past expiry at `now` (0 while fresh).
    pub fn staleness(&self, now: Timestamp) -> u64 {
        self.age(now).saturating_sub(self.freshness_lifetime)
    }
    pub fn stale_while_revalidate(&self) -> u64 {
        self.stale_while_revalidate
    }
    pub fn stale_if_error(&self) -> u64 {
        self.stale_if_error
    }
    pub fn is_immutable(&self) -> bool {
        self.immutable
    }
    pub fn is_invalidated(&self) -> bool {
        self.invalidated
    }
    /// Mark stale (soft purge, RFC 9111 §4.4 invalidation): the next use
    /// revalidates; `stale-if-error` still applies.
    pub fn invalidate(&mut self) {
        self.invalidated = true;
    }
    /// The response's `Vary` field names (lower-cased, sorted).
    pub fn vary(&self) -> &[String] {
        &self.vary
    }
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
    pub fn last_modified(&self) -> Option<&str> {
        self.last_modified.as_deref()
    }
    /// Heap bytes the policy holds (its strings and their `String`
    /// headers), for the store's memory accounting.
    pub fn heap_bytes(&self) -> usize {
        let string = |s: &String| s.len() + std::mem::size_of::<String>();
        self.vary.iter().map(string).sum::<usize>()
            + self.strip_headers.iter().map(string).sum::<usize>()
            + self.etag.as_ref().map_or(0, string)
            + self.last_modified.as_ref().map_or(0, string)
    }
    /// May a stale response be served now while it is revalidated in the
    /// background?
    pub fn can_serve_stale_while_revalidate(&self, now: Timestamp) -> bool {
        self.is_storable()
            && !self.invalidated
            && self.stale_while_revalidate > 0
            && self.age(now) >= self.freshness_lifetime
            && self.staleness(now) <= self.stale_while_revalidate
    }
    /// May the stored response be served if the origin fails (5xx or
    /// unreachable) now?
    pub fn can_serve_stale_on_error(&self, now: Timestamp) -> bool {
        self.is_storable()
            && self.stale_if_error > 0
            && self.age(now) <= self.freshness_lifetime.saturating_add(self.stale_if_error)
    }
    /// How long a store should keep the entry from `now`: remaining
    /// freshness, plus the longer stale window, plus `retain_stale` when
    /// the response has a validator. 0 = drop it.
    pub fn retain_for(&self, now: Timestamp) -> u64 {
        if !self.is_storable() {
            return 0;
        }
        let end = self
            .freshness_lifetime
            .saturating_add(self.stale_while_revalidate.max(self.stale_if_error))
            .saturating_add(self.retain_stale);
        end.saturating_sub(self.age(now))
    }
    /// The response headers to keep in the store: without hop-by-hop
    /// fields, without the fields `private=`/`no-cache=` name, and never
    /// with `Set-Cookie`.
    pub fn storable_headers(&self, response_headers: &HeaderMap) -> HeaderMap {
        let mut h = response_headers.clone();
        crate::proxy::headers::strip_hop_by_hop(&mut h);
        for name in &self.strip_headers {
            h.remove(name.as_str());
        }
        h.remove(header::SET_COOKIE);
        h
    }
    /// Headers for a conditional request that revalidates this response.
    pub fn revalidation(&self) -> Revalidation {
        Revalidation { if_none_match: self.etag.clone(), if_modified_since: self.last_modified.clone() }
    }
    /// Serialize for a store that keeps bytes (e.g. a header next to a
    /// Cache API entry).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// `private="set-cookie"` / `no-cache="set-cookie"`: the origin itself says
/// the cookie is per-user and the rest is shareable.
fn origin_scoped_cookie(eff: &CacheControl) -> bool {
    [&eff.private, &eff.no_cache]
        .into_iter()
        .flatten()
        .any(|s| matches!(s, FieldScope::Fields(f) if f.iter().any(|n| n == "set-cookie")))
}

fn first_value(h: &HeaderMap, name: &HeaderName) -> Option<String> {
    h.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Validators to send upstream to revalidate a stored response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revalidation {
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
}

/// Conditional request fields the viewer may have sent; replaced by the
/// cache's own when revalidating.
const CONDITIONAL_FIELDS: [HeaderName; 5] = [
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

impl Revalidation {
    /// Whether there is any validator (else the request is unconditional).
    pub fn is_conditional(&self) -> bool {
        self.if_none_match.is_some() || self.if_modified_since.is_some()
    }
    /// Remove the viewer's conditional fields and add the cache's.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in CONDITIONAL_FIELDS {
            headers.remove(n);
        }
        for (name, v) in [(header::IF_NONE_MATCH, &self.if_none_match), (header::IF_MODIFIED_SINCE, &self.if_modified_since)] {
            if let Some(v) = v.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
    }
}

/// Why a stored response cannot be served without asking the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevalidateReason {
    /// The entry is not usable (not storable); treat as a miss.
    Unusable,
    /// Response `no-cache`.
    ResponseNoCache,
    /// Request `no-cache` (or `Pragma: no-cache`).
    RequestNoCache,
    /// Request `max-age` is below the current age.
    RequestMaxAge,
    /// Request `min-fresh` is not met.
    RequestMinFresh,
    /// Soft-purged or invalidated.
    Invalidated,
}

impl RevalidateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unusable => "unusable",
            Self::ResponseNoCache => "no-cache",
            Self::RequestNoCache => "request-no-cache",
            Self::RequestMaxAge => "request-max-age",
            Self::RequestMinFresh => "request-min-fresh",
            Self::Invalidated => "invalidated",
        }
    }
    /// Whether the request (not the stored response) forced the trip.
    pub fn is_request(self) -> bool {
        matches!(self, Self::RequestNoCache | Self::RequestMaxAge | Self::RequestMinFresh)
    }
}

/// What to do with a stored response for a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Serve it. Emit `Age: age`. `ttl < 0` means stale but allowed by the
    /// request's `max-stale`.
    Fresh { age: u64, ttl: i64 },
    /// It is stale. Send `revalidation` upstream. If
    /// `serve_while_revalidating`, answer now from cache and revalidate in
    /// the background. If the origin fails and `serve_on_error`, serve it.
    Stale { age: u64, ttl: i64, serve_while_revalidating: bool, serve_on_error: bool, revalidation: Revalidation },
    /// It cannot be used without a successful revalidation (or a full
    /// fetch when `revalidation` has no validators).
    MustRevalidate { age: u64, ttl: i64, reason: RevalidateReason, serve_on_error: bool, revalidation: Revalidation },
    /// The request said `only-if-cached` and the entry cannot satisfy it:
    /// answer 504 (RFC 9111 §5.2.1.7).
    GatewayTimeout,
}

impl CachePolicy {
    /// Decide how to answer a request (its headers) from this stored
    /// response at `now`. The caller has already matched the key and
    /// variance. To ignore client cache directives (a route setting), pass
    /// headers without `Cache-Control`/`Pragma`.
    pub fn before_request(&self, request_headers: &HeaderMap, now: Timestamp) -> Lookup {
        let req = request_directives(request_headers);
        let age = self.age(now);
        let ttl = self.time_to_live(now);
        let must = |reason: RevalidateReason, serve_on_error: bool| {
            if req.only_if_cached {
                Lookup::GatewayTimeout
            } else {
                Lookup::MustRevalidate { age, ttl, reason, serve_on_error, revalidation: self.revalidation() }
            }
        };
        if !self.is_storable() {
            return must(RevalidateReason::Unusable, false);
        }
        let on_error = self.can_serve_stale_on_error(now);
        if self.no_cache {
            return must(RevalidateReason::ResponseNoCache, on_error);
        }
        if req.no_cache_all() {
            return must(RevalidateReason::RequestNoCache, false);
        }
        if req.max_age.is_some_and(|m| age > m) {
            return must(RevalidateReason::RequestMaxAge, false);
        }
        if self.invalidated {
            return must(RevalidateReason::Invalidated, on_error);
        }
        let remaining = self.freshness_lifetime.saturating_sub(age);
        if self.freshness_lifetime > age {
            if req.min_fresh.is_some_and(|m| remaining < m) {
                return must(RevalidateReason::RequestMinFresh, false);
            }
            return Lookup::Fresh { age, ttl };
        }
        // Stale.
        let staleness = self.staleness(now);
        let allowed_by_request = !self.must_revalidate
            && req.min_fresh.is_none()
            && match req.max_stale {
                Some(MaxStale::Any) => true,
                Some(MaxStale::Secs(s)) => staleness <= s,
                None => false,
            };
        if allowed_by_request {
            return Lookup::Fresh { age, ttl };
        }
        let serve_while_revalidating = req.min_fresh.is_none() && self.can_serve_stale_while_revalidate(now);
        if req.only_if_cached {
            return if serve_while_revalidating { Lookup::Fresh { age, ttl } } else { Lookup::GatewayTimeout };
        }
        Lookup::Stale { age, ttl, serve_while_revalidating, serve_on_error: on_error, revalidation: self.revalidation() }
    }
}

/// Request `Cache-Control`, or `Pragma: no-cache` when there is none
/// (RFC 9111 §5.4).
fn request_directives(h: &HeaderMap) -> CacheControl {
    if let Some(cc) = CacheControl::from_cache_control(h) {
        return cc;
    }
    let pragma_no_cache = h.get_all(header::PRAGMA).iter().any(|v| {
        String::from_utf8_lossy(v.as_bytes()).split(',').any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
    });
    CacheControl { no_cache: pragma_no_cache.then_some(FieldScope::All), ..CacheControl::default() }
}

/// Set `Age` on a response served from cache.
pub fn set_age(headers: &mut HeaderMap, age: u64) {
    headers.insert(header::AGE, HeaderValue::from(age));
}

#[cfg(test)]
mod tests;
