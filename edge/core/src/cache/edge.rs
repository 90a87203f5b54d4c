//! The edge cache as one facade the adapters call: it owns the bounded
//! [`Store`] (the per-isolate L1) and the [`Coalescer`], and turns the
//! pieces of this module into decisions. Pure: `now_ms` is passed in, and
//! every answer is data the adapter performs.
//!
//! The flow for a request the pipeline planned (`pipeline::Forward`, seen
//! here as the [`CacheQuery`] the pipeline builds from it):
//!
//! 1. [`EdgeCache::is_purge`] / [`EdgeCache::purge`]: the authenticated
//!    purge endpoint is answered before `Edge::plan`.
//! 2. [`EdgeCache::lookup`] → [`CacheDecision`]:
//!    - `Bypass`: not cacheable; forward as planned.
//!    - `Respond`: a hit (or a 304/412 from the stored response, a 206
//!      for one byte range of a fresh stored 200, or the 504 of an
//!      unsatisfiable `only-if-cached`).
//!    - `RespondAndRevalidate`: `stale-while-revalidate`: answer now, run
//!      the [`CacheFetch`] in the background.
//!    - `Fetch`: go upstream. [`CacheFetch::prepare`] sets the conditional
//!      headers on each attempt. Before that, [`CacheFetch::l2_key`] may be
//!      looked up in a platform cache and given to [`EdgeCache::adopt_l2`].
//!    - `Wait`: another request fetches this key; [`EdgeCache::poll`]
//!      after a short sleep until it returns a decision.
//! 3. After the upstream answers, [`EdgeCache::on_response`] →
//!    [`AfterResponse`]: serve from cache (a 304 refreshed the entry, or
//!    `stale-if-error`), store (buffer the body, then
//!    [`EdgeCache::store`]), deliver as is ([`Delivery::apply`]), or
//!    refetch (a 304 for another representation that an unconditional
//!    viewer must not get: plan again and send the returned fetch).
//!    When every attempt failed, [`EdgeCache::on_give_up`] may serve stale.
//! 4. Unsafe methods invalidate what they target
//!    ([`EdgeCache::invalidate_after`], RFC 9111 §4.4).
//!
//! A fetch holding a coalescing permit must end in `on_response` +
//! (`store` | nothing), `on_give_up` or [`EdgeCache::abandon`]; a lost
//! permit only delays waiters until the lock timeout.
//!
//! The platform changes some HTTP on the way (see `docs/ARCHITECTURE.md`):
//! bodies arrive decompressed (stored copies drop `Content-Encoding` and
//! `Content-Length`), repeated fields arrive comma-joined (`Age`, `Date`
//! and `Expires` keep their first member), and `Date` is added when the
//! origin sent none.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::coalesce::{Begin, CoalesceConfig, Coalescer, Outcome, Permit, Poll, Ticket};
use super::conditional::{evaluate, not_modified_headers, Conditional};
use super::key::{fnv1a64, PrimaryKey, UrlKey};
use super::policy::{set_age, CachePolicy, Exchange, Lookup, Revalidation};
use super::revalidate::{after_revalidation, Revalidated};
use super::settings::{CacheSettings, RouteCache, RouteKeys};
use super::store::{invalidation_targets, tags_from_headers, Entry, Found, NewEntry, PurgeMode, Store};
use super::{cache_status_name, CachePhase, CacheStatus, FwdReason, Timestamp};
use crate::proxy::canonical::CanonicalRequest;
use crate::proxy::headers::append_list;
use crate::secret::Secret;

/// Private response field carrying Offload's metadata on platform-cache
/// (L2) entries. Never sent to viewers.
pub const META_HEADER: &str = "x-offload-meta";

/// Fields that steer caches and purges: consumed here, never sent to
/// viewers (`Surrogate-Control`, `Surrogate-Key`, `Cache-Tag`).
/// `CDN-Cache-Control` is passed on: RFC 9213 targets it at every CDN on
/// the path, so a CDN in front of this one may use it too.
pub const INTERNAL_RESPONSE_FIELDS: [&str; 4] = ["surrogate-key", "cache-tag", "surrogate-control", META_HEADER];

/// Most URL + tag entries in one purge request.
pub const MAX_PURGE_ITEMS: usize = 1000;
/// Largest purge request body (1000 items of about 250 bytes); the adapter
/// stops reading at one byte more and the endpoint answers 413.
pub const PURGE_MAX_BODY: usize = 256 * 1024;
/// Purge/invalidation markers remembered for L2 entries.
const MAX_MARKERS: usize = 4096;
/// Sweep expired entries and stale locks every this many lookups.
const SWEEP_EVERY: u64 = 1024;

/// How long a key whose response could not be stored stays marked
/// ("hit-for-miss", as Varnish calls it): its misses neither wait for
/// another request of the same key nor ask the platform cache.
const UNCACHEABLE_MS: u64 = 30_000;
/// Marked keys kept at most (a mark is a few dozen bytes; past this, new
/// marks are not made until old ones expire).
const MAX_UNCACHEABLE: usize = 4096;
/// The synthetic origin of L2 keys (`.invalid` never resolves).
const L2_ORIGIN: &str = "https://l2.offload.invalid";

/// How a lookup takes part in coalescing.
#[derive(Debug)]
enum Coalesce {
    Begin,
    Have(Permit),
    Never,
}

/// What the cache needs to know about a request the pipeline planned
/// (`Edge::cache_query` builds it from a `Forward`).
#[derive(Debug, Clone, Copy)]
pub struct CacheQuery<'a> {
    /// The viewer's request in canonical form: what the cache keys on.
    pub request: &'a CanonicalRequest,
    /// The route's cache settings; `None`: the route is not cached.
    pub rules: Option<&'a RouteCache>,
    /// The plan bypasses the cache already (`fwd=bypass`).
    pub bypass: bool,
    /// The upstream is an S3 bucket (its `x-amz-*` fields are not stored).
    pub bucket: bool,
}

/// A cacheable request: its key, the viewer's headers and the route's rules.
#[derive(Debug, Clone)]
pub struct CacheRequest {
    key: PrimaryKey,
    method: Method,
    headers: HeaderMap,
    rules: RouteCache,
    bucket: bool,
}

impl CacheRequest {
    pub fn key(&self) -> &PrimaryKey {
        &self.key
    }
    pub fn method(&self) -> &Method {
        &self.method
    }
}

/// A response the edge answers from its cache, ready for the viewer.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// Empty for `HEAD`, 304, 412 and 504.
    pub body: Arc<[u8]>,
    pub phase: CachePhase,
}

impl CachedResponse {
    /// As an `http` response (copies the body).
    pub fn to_http(&self) -> Response<Vec<u8>> {
        let mut r = Response::new(self.body.to_vec());
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// A request to send upstream on behalf of the cache.
#[derive(Debug)]
pub struct CacheFetch {
    request: CacheRequest,
    permit: Option<Permit>,
    stored: Option<Arc<Entry>>,
    revalidation: Revalidation,
    serve_on_error: bool,
    phase: CachePhase,
    collapsed: bool,
    /// The key's last response could not be stored: the platform cache
    /// is not asked.
    skip_l2: bool,
}

impl CacheFetch {
    /// Set the cache's conditional headers on an upstream request (and
    /// remove the viewer's: the cache wants a response it can store, and
    /// answers the viewer's conditionals itself).
    pub fn prepare(&self, request: &mut Request<()>) {
        self.revalidation.apply(request.headers_mut());
    }
    /// Whether a stored response is being revalidated.
    pub fn is_revalidation(&self) -> bool {
        self.stored.is_some()
    }
    /// The `Cache-Status` this fetch carries until the origin answers.
    pub fn phase(&self) -> CachePhase {
        self.phase
    }
    pub fn request(&self) -> &CacheRequest {
        &self.request
    }
    /// The platform-cache (L2) key URL to try before going upstream, for a
    /// miss (`None` when revalidating an L1 entry).
    pub fn l2_key(&self) -> Option<String> {
        (self.stored.is_none() && !self.skip_l2).then(|| l2_key(&self.request.key))
    }
}

/// How a fetch starts: its `Cache-Status` phase, whether it may take the
/// coalescing permit, whether it skips the L2 (a key marked uncacheable),
/// and whether its request waited behind another.
#[derive(Debug, Clone, Copy)]
struct Fetched {
    phase: CachePhase,
    may_begin: bool,
    skip_l2: bool,
    collapsed: bool,
}

/// Another request is fetching this key: poll after a short sleep.
#[derive(Debug)]
pub struct Waiting {
    request: CacheRequest,
    ticket: Ticket,
}

/// What the cache decided for a request.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum CacheDecision {
    /// Not cacheable: forward as planned. `Some`: the `Cache-Status` to
    /// use instead of the plan's (it says why).
    Bypass(Option<CacheStatus>),
    /// Answer from the cache; nothing goes upstream.
    Respond(CachedResponse),
    /// Answer now (stale) and run the fetch in the background.
    RespondAndRevalidate(CachedResponse, CacheFetch),
    /// Go upstream.
    Fetch(CacheFetch),
    /// Wait for another request's fetch.
    Wait(Waiting),
}

/// The result of [`EdgeCache::adopt_l2`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Adopted {
    /// The L2 entry is in L1 now; this is the new decision.
    Decision(CacheDecision),
    /// Not usable (another key, purged, undecodable): go upstream.
    Rejected(CacheFetch),
}

/// What to do with an upstream response.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum AfterResponse {
    /// Answer from the cache instead (the origin said 304, or failed and
    /// `stale-if-error` allows the stored response). Drop the upstream body.
    Serve(CachedResponse),
    /// Storable: read the body (at most `max_bytes`; longer bodies are
    /// delivered with [`EdgeCache::not_stored`]) and call [`EdgeCache::store`].
    Store(PendingStore),
    /// Deliver the upstream response, streaming its body.
    Deliver(Delivery),
    /// The origin's 304 selects no stored response and the viewer did not
    /// ask for a 304: drop the upstream response and send this fetch
    /// (now unconditional) upstream again.
    Refetch(CacheFetch),
}

/// A storable response waiting for its body.
#[derive(Debug)]
pub struct PendingStore {
    fetch: CacheFetch,
    policy: CachePolicy,
    status: u16,
    headers: HeaderMap,
    max_bytes: usize,
}

impl PendingStore {
    /// Largest body that will be stored.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The body's length as the upstream declared it, when that is the
    /// length of the body the executor reads: `None` without a valid
    /// `Content-Length`, or when the platform decoded the body (it keeps
    /// the encoded length; see [`decoded_by_platform`]).
    pub fn declared_length(&self) -> Option<u64> {
        if decoded_by_platform(&self.headers) {
            return None;
        }
        crate::proxy::body::declared_length(&self.headers)
    }
}

/// How to turn the upstream response into the viewer's.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub cache_status: CacheStatus,
    age: Option<u64>,
    buffered: bool,
    not_modified: bool,
    /// `Date` to add when the origin sent none.
    date: Option<HeaderValue>,
}

impl Delivery {
    fn pass(cache_status: CacheStatus) -> Self {
        Self { cache_status, age: None, buffered: false, not_modified: false, date: None }
    }
    /// Set the response's `Cache-Status` entry (the `Forward`'s, for
    /// `Edge::finish`) and fix the upstream headers: internal fields
    /// removed, `Age` set for stored responses, framing fields of a
    /// buffered (decoded) body removed, and reduced to the 304 fields when
    /// the viewer's condition matched.
    pub fn apply(&self, cache_status: &mut CacheStatus, headers: &mut HeaderMap) {
        *cache_status = self.cache_status.clone();
        strip_internal(headers);
        if let Some(d) = self.date.as_ref().filter(|_| !headers.contains_key(header::DATE)) {
            headers.insert(header::DATE, d.clone());
        }
        if let Some(age) = self.age {
            set_age(headers, age);
        }
        if self.buffered {
            if decoded_by_platform(headers) {
                headers.remove(header::CONTENT_ENCODING);
            }
            headers.remove(header::CONTENT_LENGTH);
        }
        if self.not_modified {
            let mut nm = not_modified_headers(headers);
            for name in [header::AGE, header::SET_COOKIE] {
                for v in headers.get_all(&name) {
                    nm.append(name.clone(), v.clone());
                }
            }
            *headers = nm;
        }
    }
    /// The status for the viewer: 304 when its condition matched the new
    /// response, else the upstream's.
    pub fn status(&self, upstream: u16) -> u16 {
        if self.not_modified {
            304
        } else {
            upstream
        }
    }
    /// Whether the viewer gets no body (304).
    pub fn is_not_modified(&self) -> bool {
        self.not_modified
    }
    /// The adapter buffered the (platform-decoded) body: drop its framing
    /// fields.
    pub fn buffered(mut self) -> Self {
        self.buffered = true;
        self
    }
}

/// The result of storing a response.
#[derive(Debug)]
pub struct StoreResult {
    pub delivery: Delivery,
    /// Write this to the platform cache (L2), if there is one.
    pub l2: Option<L2Write>,
}

/// A platform-cache (L2) entry to write: a response with `body`, the
/// private header [`META_HEADER`]` = meta` and
/// `Cache-Control: public, s-maxage=<max_age>` so the platform keeps it as
/// long as Offload may use it (Offload decides freshness itself).
#[derive(Debug, Clone)]
pub struct L2Write {
    pub key: String,
    pub meta: String,
    pub body: Arc<[u8]>,
    pub max_age: u64,
}

/// What an L2 entry carries besides its body.
#[derive(Debug, Serialize, Deserialize)]
struct L2Meta {
    v: u8,
    key: String,
    url: String,
    status: u16,
    headers: Vec<(String, String)>,
    /// The request's values of the `Vary` fields (they select the variant).
    vary: Vec<(String, String)>,
    policy: CachePolicy,
    tags: Vec<String>,
    stored_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MarkTarget {
    Url(String),
    Tag(String),
}

#[derive(Debug, Clone)]
struct Marker {
    target: MarkTarget,
    mode: PurgeMode,
    at_ms: u64,
}

/// The answer of the purge endpoint.
#[derive(Debug)]
pub struct PurgeResult {
    pub response: Response<Vec<u8>>,
    /// L2 keys of the purged URLs (their plain `GET` variants) to delete
    /// from the platform cache.
    pub l2_delete: Vec<String>,
}

/// The edge cache. See the module docs.
pub struct EdgeCache {
    name: String,
    store: Store,
    coalescer: Coalescer,
    max_entry_bytes: usize,
    purge_path: String,
    purge_token: Option<Secret>,
    markers: VecDeque<Marker>,
    lookups: u64,
    /// Keys whose last response could not be stored, until when
    /// ([`UNCACHEABLE_MS`]). A miss on one goes straight upstream: no
    /// coalescing (an uncacheable URL must not serialize its viewers
    /// behind one request) and no platform-cache lookup (it holds
    /// nothing for the key). Its response is judged as usual; a storable
    /// one is stored and clears the mark.
    uncacheable: HashMap<String, u64>,
}

impl fmt::Debug for EdgeCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeCache")
            .field("name", &self.name)
            .field("entries", &self.store.len())
            .field("bytes", &self.store.bytes())
            .field("in_flight", &self.coalescer.in_flight())
            .field("purge_path", &self.purge_path)
            .field("purge_token", &self.purge_token)
            .finish()
    }
}

fn ts(now_ms: u64) -> Timestamp {
    Timestamp::from_unix_secs(now_ms / 1000)
}

impl EdgeCache {
    /// An empty cache named `name` (in `Cache-Status` and `Via`) with the
    /// `[cache]` settings and the purge token resolved from their
    /// reference (`None`: the purge endpoint is off). `Edge::new_cache`
    /// passes the edge's.
    pub fn new(name: &str, settings: &CacheSettings, purge_token: Option<Secret>) -> Self {
        let coalesce = CoalesceConfig { lock_timeout_ms: settings.lock_timeout_ms, ..CoalesceConfig::default() };
        Self {
            name: name.to_owned(),
            store: Store::new(settings.store),
            coalescer: Coalescer::new(coalesce),
            max_entry_bytes: settings.store.max_entry_bytes,
            purge_path: settings.purge_path.clone(),
            purge_token,
            markers: VecDeque::new(),
            lookups: 0,
            uncacheable: HashMap::new(),
        }
    }

    /// Largest body the cache keeps (`[cache] max_entry_bytes`).
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// The L1 store (for stats and tests).
    pub fn l1(&self) -> &Store {
        &self.store
    }

    /// Whether the request is for the purge endpoint (enabled only when a
    /// purge token is configured).
    pub fn is_purge(&self, req: &CanonicalRequest) -> bool {
        self.purge_token.is_some() && req.path() == self.purge_path
    }

    // ----- lookup -------------------------------------------------------

    /// Decide how to answer a planned request from the cache. The key is
    /// built from the request's canonical form ([`CacheQuery::request`]).
    pub fn lookup(&mut self, query: CacheQuery<'_>, now_ms: u64) -> CacheDecision {
        let req = query.request.request();
        self.lookups = self.lookups.wrapping_add(1);
        if self.lookups.is_multiple_of(SWEEP_EVERY) {
            self.store.sweep(ts(now_ms));
            self.coalescer.sweep(now_ms);
            self.uncacheable.retain(|_, until| *until > now_ms);
        }
        let Some(rules) = query.rules else {
            return CacheDecision::Bypass(None);
        };
        if !matches!(*req.method(), Method::GET | Method::HEAD) || query.bypass {
            return CacheDecision::Bypass(None);
        }
        let scheme = req.uri().scheme_str().unwrap_or("https");
        let key = UrlKey::for_request(&rules.key, scheme, req.uri(), req.headers())
            .and_then(|url| PrimaryKey::new(&rules.key, req.method(), url, req.headers()));
        if req.headers().contains_key(header::RANGE) {
            // A range of a fresh stored 200 is answered from it (RFC 9110
            // §14.2); anything else goes to the origin untouched.
            let hit = key.ok().and_then(|key| self.range_hit(key, req, rules, now_ms));
            return match hit {
                Some(resp) => CacheDecision::Respond(resp),
                None => CacheDecision::Bypass(Some(self.bypass("range"))),
            };
        }
        let Ok(key) = key else {
            return CacheDecision::Bypass(Some(self.bypass("key")));
        };
        let request = CacheRequest {
            key,
            method: req.method().clone(),
            headers: req.headers().clone(),
            rules: rules.clone(),
            bucket: query.bucket,
        };
        self.decide(request, Coalesce::Begin, false, now_ms)
    }

    /// A single satisfiable byte range of a fresh stored `200`, without
    /// `If-Range` (which would need the validator comparison of RFC 9110
    /// §13.1.5): a `206` cut from the stored body. `None`: bypass.
    fn range_hit(&mut self, key: PrimaryKey, req: &Request<()>, rules: &RouteCache, now_ms: u64) -> Option<CachedResponse> {
        if req.headers().contains_key(header::IF_RANGE) {
            return None;
        }
        let now = ts(now_ms);
        let Found::Hit(entry) = self.store.lookup(&key, req.headers(), now) else { return None };
        let entry = entry.clone();
        let (start, end) = byte_range(req.headers(), entry.body().len())?;
        let Lookup::Fresh { age, ttl } = entry.policy().before_request(req.headers(), now) else { return None };
        if entry.status() != 200 || ttl <= 0 {
            return None;
        }
        let request = CacheRequest {
            key,
            method: req.method().clone(),
            headers: req.headers().clone(),
            rules: rules.clone(),
            bucket: false,
        };
        let status = CachePhase::Hit.cache_status(&self.name).with_ttl(ttl);
        let mut resp = self.entry_response(&request, &entry, status, age, CachePhase::Hit);
        if resp.status == 200 {
            let total = entry.body().len();
            resp.status = 206;
            resp.body = match entry.body().get(start..=end) {
                Some(part) if req.method() != Method::HEAD => Arc::from(part),
                _ => Arc::from(Vec::new()),
            };
            let cr = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")).ok()?;
            resp.headers.insert(header::CONTENT_RANGE, cr);
        }
        Some(resp)
    }

    /// Poll a waiting request: `None` while the leader is still fetching.
    pub fn poll(&mut self, waiting: &Waiting, now_ms: u64) -> Option<CacheDecision> {
        let request = waiting.request.clone();
        match self.coalescer.poll(waiting.ticket, now_ms) {
            Poll::Pending => None,
            Poll::Ready(Outcome::Stored) => Some(self.decide(request, Coalesce::Never, true, now_ms)),
            Poll::Ready(Outcome::NotStored) | Poll::Unknown => Some(self.decide(request, Coalesce::Never, false, now_ms)),
            Poll::Lead(permit) => Some(self.decide(request, Coalesce::Have(permit), false, now_ms)),
        }
    }

    /// A waiting request gives up (its viewer went away).
    pub fn forget(&mut self, waiting: Waiting, now_ms: u64) {
        let _ = self.coalescer.forget(waiting.ticket, now_ms);
    }

    fn bypass(&self, detail: &str) -> CacheStatus {
        CacheStatus::forward(&self.name, FwdReason::Bypass).with_detail(detail)
    }

    fn release(&mut self, permit: Option<Permit>, outcome: Outcome, now_ms: u64) {
        if let Some(p) = permit {
            let _ = self.coalescer.complete(p, outcome, now_ms);
        }
    }

    fn decide(&mut self, request: CacheRequest, coalesce: Coalesce, collapsed: bool, now_ms: u64) -> CacheDecision {
        let now = ts(now_ms);
        let (entry, phase) = match self.store.lookup(&request.key, &request.headers, now) {
            Found::Miss => (None, CachePhase::Miss),
            Found::VaryMiss => (None, CachePhase::VaryMiss),
            Found::Hit(e) => (Some(e.clone()), CachePhase::Hit),
        };
        let may_begin = matches!(coalesce, Coalesce::Begin);
        let held = match coalesce {
            Coalesce::Have(p) => Some(p),
            _ => None,
        };
        let Some(entry) = entry else {
            if only_if_cached(&request.headers) {
                self.release(held, Outcome::NotStored, now_ms);
                return CacheDecision::Respond(self.gateway_timeout());
            }
            let marked = held.is_none() && self.is_uncacheable(&request.key, now_ms);
            let fetched = Fetched { phase, may_begin: may_begin && !marked, skip_l2: marked, collapsed };
            return self.fetch(request, None, Revalidation::default(), false, fetched, held, now_ms);
        };
        match entry.policy().before_request(&request.headers, now) {
            Lookup::Fresh { age, ttl } => {
                self.release(held, Outcome::Stored, now_ms);
                let phase = if ttl > 0 { CachePhase::Hit } else { CachePhase::Stale };
                let status = phase.cache_status(&self.name).with_ttl(ttl).with_collapsed(collapsed);
                CacheDecision::Respond(self.entry_response(&request, &entry, status, age, phase))
            }
            Lookup::GatewayTimeout => {
                self.release(held, Outcome::NotStored, now_ms);
                CacheDecision::Respond(self.gateway_timeout())
            }
            Lookup::Stale { age, ttl, serve_while_revalidating: true, serve_on_error, revalidation } => {
                let status = CachePhase::StaleUpdating.cache_status(&self.name).with_ttl(ttl).with_collapsed(collapsed);
                let resp = self.entry_response(&request, &entry, status, age, CachePhase::StaleUpdating);
                let permit = match held {
                    Some(p) => Some(p),
                    None if may_begin && request.method == Method::GET => {
                        match self.coalescer.begin(request.key.as_str(), now_ms) {
                            Begin::Lead(p) => Some(p),
                            Begin::Wait(t) => {
                                // Someone is revalidating already.
                                let _ = self.coalescer.forget(t, now_ms);
                                None
                            }
                            Begin::Bypass => None,
                        }
                    }
                    None => None,
                };
                match permit {
                    Some(permit) => {
                        let fetch = CacheFetch {
                            request,
                            permit: Some(permit),
                            stored: Some(entry),
                            revalidation,
                            serve_on_error,
                            phase: CachePhase::Expired,
                            collapsed: false,
                            skip_l2: false,
                        };
                        CacheDecision::RespondAndRevalidate(resp, fetch)
                    }
                    None => CacheDecision::Respond(resp),
                }
            }
            lookup @ (Lookup::Stale { .. } | Lookup::MustRevalidate { .. }) => {
                let (revalidation, serve_on_error, forced) = match lookup.clone() {
                    Lookup::Stale { revalidation, serve_on_error, .. } => (revalidation, serve_on_error, false),
                    Lookup::MustRevalidate { revalidation, serve_on_error, reason, .. } => {
                        (revalidation, serve_on_error, reason.is_request())
                    }
                    _ => (Revalidation::default(), false, false),
                };
                if forced && collapsed {
                    // A viewer forcing a trip (`no-cache`, `max-age=0`)
                    // waited for the leader of this key, which has just
                    // fetched or revalidated it: that trip happened after
                    // this request arrived, so it answers the viewer too
                    // (forced revalidations coalesce like misses).
                    self.release(held, Outcome::Stored, now_ms);
                    let (age, ttl) = (entry.policy().age(now), entry.policy().time_to_live(now));
                    let status = CachePhase::Hit.cache_status(&self.name).with_ttl(ttl).with_collapsed(true);
                    return CacheDecision::Respond(self.entry_response(&request, &entry, status, age, CachePhase::Hit));
                }
                let phase = lookup.phase();
                let fetched = Fetched { phase, may_begin, skip_l2: false, collapsed };
                self.fetch(request, Some(entry), revalidation, serve_on_error, fetched, held, now_ms)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch(
        &mut self,
        request: CacheRequest,
        stored: Option<Arc<Entry>>,
        revalidation: Revalidation,
        serve_on_error: bool,
        how: Fetched,
        held: Option<Permit>,
        now_ms: u64,
    ) -> CacheDecision {
        let Fetched { phase, may_begin, skip_l2, collapsed } = how;
        let permit = match held {
            Some(p) => Some(p),
            None if may_begin && request.method == Method::GET => match self.coalescer.begin(request.key.as_str(), now_ms) {
                Begin::Lead(p) => Some(p),
                Begin::Wait(ticket) => return CacheDecision::Wait(Waiting { request, ticket }),
                Begin::Bypass => None,
            },
            None => None,
        };
        CacheDecision::Fetch(CacheFetch {
            request,
            permit,
            stored,
            revalidation,
            serve_on_error,
            phase,
            collapsed,
            skip_l2,
        })
    }

    fn is_uncacheable(&self, key: &PrimaryKey, now_ms: u64) -> bool {
        self.uncacheable.get(key.as_str()).is_some_and(|until| *until > now_ms)
    }

    /// Mark `key`: its response (to a plain miss, not a revalidation or a
    /// HEAD) could not be stored.
    fn mark_uncacheable(&mut self, fetch: &CacheFetch, now_ms: u64) {
        if fetch.stored.is_some() || fetch.request.method != Method::GET {
            return;
        }
        if self.uncacheable.len() >= MAX_UNCACHEABLE {
            self.uncacheable.retain(|_, until| *until > now_ms);
            if self.uncacheable.len() >= MAX_UNCACHEABLE {
                return;
            }
        }
        self.uncacheable.insert(fetch.request.key.as_str().to_owned(), now_ms.saturating_add(UNCACHEABLE_MS));
    }

    fn gateway_timeout(&self) -> CachedResponse {
        let body = serde_json::json!({ "error": "not in cache (only-if-cached)", "status": 504 }).to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.finish_cached(&mut headers, &CachePhase::OnlyIfCachedMiss.cache_status(&self.name));
        CachedResponse { status: 504, headers, body: Arc::from(body.into_bytes()), phase: CachePhase::OnlyIfCachedMiss }
    }

    fn finish_cached(&self, headers: &mut HeaderMap, status: &CacheStatus) {
        append_list(headers, header::VIA, &format!("1.1 {}", self.name));
        append_list(headers, cache_status_name(), &status.to_string());
    }

    /// A viewer response from a stored one: `Age`, `Via`, `Cache-Status`,
    /// and the viewer's own conditionals evaluated (304 / 412).
    #[allow(clippy::too_many_arguments)]
    fn respond_stored(
        &self,
        request: &CacheRequest,
        status: u16,
        stored_headers: &HeaderMap,
        body: &Arc<[u8]>,
        cache_status: CacheStatus,
        age: u64,
        phase: CachePhase,
    ) -> CachedResponse {
        let mut headers = stored_headers.clone();
        strip_internal(&mut headers);
        set_age(&mut headers, age);
        let empty: Arc<[u8]> = Arc::from(Vec::new());
        let (status, mut headers, body) = match evaluate(&request.method, &request.headers, status, stored_headers) {
            Conditional::NotModified => {
                let mut h = not_modified_headers(&headers);
                set_age(&mut h, age);
                (304, h, empty)
            }
            Conditional::PreconditionFailed => {
                let mut h = HeaderMap::new();
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                (412, h, empty)
            }
            Conditional::Full if request.method == Method::HEAD => (status, headers, empty),
            Conditional::Full => (status, headers, body.clone()),
        };
        self.finish_cached(&mut headers, &cache_status);
        CachedResponse { status, headers, body, phase }
    }

    fn entry_response(&self, request: &CacheRequest, entry: &Entry, status: CacheStatus, age: u64, phase: CachePhase) -> CachedResponse {
        self.respond_stored(request, entry.status(), entry.headers(), entry.body(), status, age, phase)
    }

    // ----- after the upstream answers ------------------------------------

    /// The upstream answered `status` with `headers` (request sent at
    /// `request_time_ms`). Statuses outside 200..=599 must not get here:
    /// the adapter passes them through untouched (and calls `abandon`).
    pub fn on_response(
        &mut self,
        fetch: CacheFetch,
        status: u16,
        headers: &HeaderMap,
        request_time_ms: u64,
        now_ms: u64,
    ) -> AfterResponse {
        let now = ts(now_ms);
        let headers = normalize_response_headers(headers, now);
        let (method, request_headers) = (fetch.request.method.clone(), fetch.request.headers.clone());
        // The response delay in whole seconds of the real (ms) delay, not
        // the difference of two truncated timestamps (a request sent at
        // x.999 s and answered at y.001 s took 0 s, not 1).
        let delay_s = now_ms.saturating_sub(request_time_ms) / 1000;
        let request_time = Timestamp::from_unix_secs(now.unix_secs().saturating_sub(delay_s));
        let x = Exchange::new(&method, &request_headers, status, &headers, request_time, now);
        let rules = fetch.request.rules.rules.clone();
        let mut fetch = fetch;
        // A HEAD never deletes or replaces the GET entry it shares a key
        // with (its answer has no body to store), and a viewer that forced
        // the trip (`no-cache`, `max-age=0`) cannot evict or replace a
        // shared entry with an error or a response that may not be stored.
        let head = method == Method::HEAD;
        let forced = fetch.phase == CachePhase::RequestForced;
        if let Some(stored) = fetch.stored.clone() {
            match after_revalidation(stored.policy(), stored.headers(), &x, &rules) {
                Revalidated::NotModified { headers: merged, policy } if status == 304 => {
                    let storable = policy.is_storable();
                    let (age, ttl) = (policy.age(now), policy.time_to_live(now));
                    self.store.update(&fetch.request.key, &fetch.request.headers, merged.clone(), policy);
                    self.release(fetch.permit.take(), if storable { Outcome::Stored } else { Outcome::NotStored }, now_ms);
                    let cs = CachePhase::Revalidated
                        .cache_status(&self.name)
                        .with_ttl(ttl)
                        .with_stored(storable)
                        .with_collapsed(fetch.collapsed);
                    let resp = self.respond_stored(&fetch.request, stored.status(), &merged, stored.body(), cs, age, CachePhase::Revalidated);
                    return AfterResponse::Serve(resp);
                }
                Revalidated::NotModified { .. } => {}
                Revalidated::Mismatch if !has_conditionals(&fetch.request.headers) => {
                    // The 304 selects no stored response (RFC 9111 §4.3.4),
                    // and a 304 must not reach a viewer that did not ask
                    // for one: drop ours and ask again without validators.
                    if !head {
                        self.store.remove(&fetch.request.key, &fetch.request.headers);
                    }
                    fetch.stored = None;
                    fetch.revalidation = Revalidation::default();
                    fetch.serve_on_error = false;
                    return AfterResponse::Refetch(fetch);
                }
                Revalidated::Mismatch => {
                    // The 304 selects no stored response: drop ours and
                    // pass the origin's answer on (the viewer's own
                    // condition asked for a 304).
                    if !head {
                        self.store.remove(&fetch.request.key, &fetch.request.headers);
                    }
                    self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
                    let cs = fetch.phase.cache_status(&self.name).with_detail("validator-mismatch");
                    return AfterResponse::Deliver(Delivery::pass(cs));
                }
                Revalidated::ServeStale { age } if fetch.serve_on_error => {
                    self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
                    let ttl = stored.policy().time_to_live(now);
                    let cs = CachePhase::Stale
                        .cache_status(&self.name)
                        .with_fwd_status(status)
                        .with_ttl(ttl);
                    let cs = stale_if_error(cs);
                    return AfterResponse::Serve(self.entry_response(&fetch.request, &stored, cs, age, CachePhase::Stale));
                }
                Revalidated::ServeStale { .. } => {}
                Revalidated::Replace { remove_stored } => {
                    if remove_stored && !head && !forced {
                        self.store.remove(&fetch.request.key, &fetch.request.headers);
                    }
                }
            }
            if forced && status >= 400 {
                // The stored response stays as it is; the viewer that
                // asked gets the origin's error, which is not stored.
                self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
                let cs = fetch.phase.cache_status(&self.name).with_fwd_status(status).with_detail("error-not-stored");
                return AfterResponse::Deliver(Delivery::pass(cs));
            }
        }
        let cs = fetch.phase.cache_status(&self.name).with_collapsed(fetch.collapsed);
        let policy = CachePolicy::new(&x, &rules);
        if let Some(reason) = policy.no_cache_reason() {
            self.mark_uncacheable(&fetch, now_ms);
            self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
            return AfterResponse::Deliver(Delivery::pass(cs.with_detail(reason.as_str())));
        }
        let too_large = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > self.max_entry_bytes as u64);
        if too_large {
            self.mark_uncacheable(&fetch, now_ms);
            self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
            return AfterResponse::Deliver(Delivery::pass(cs.with_detail("too-large")));
        }
        AfterResponse::Store(PendingStore { fetch, policy, status, headers, max_bytes: self.max_entry_bytes })
    }

    /// A storable response could not be buffered (too large, or the body
    /// failed): release waiters; deliver with this.
    pub fn not_stored(&mut self, pending: PendingStore, detail: &str, now_ms: u64) -> Delivery {
        let PendingStore { mut fetch, .. } = pending;
        self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
        Delivery::pass(fetch.phase.cache_status(&self.name).with_collapsed(fetch.collapsed).with_detail(detail))
    }

    /// The viewer's [`Delivery`] for a storable response whose body is
    /// streamed to the viewer while a copy (at most
    /// [`PendingStore::max_bytes`]) is collected for the cache: the headers
    /// go out before the body is known, so `Cache-Status` says `stored`
    /// (the cache is storing it). When the body then turns out larger or
    /// fails, call [`EdgeCache::not_stored`] (the copy is dropped; the
    /// adapter logs it); when it completes, [`EdgeCache::store`].
    pub fn streaming_delivery(&self, pending: &PendingStore, now_ms: u64) -> Delivery {
        let now = ts(now_ms);
        let PendingStore { fetch, policy, status, headers, .. } = pending;
        let stored_headers = stored_headers(headers, fetch.request.bucket);
        let cache_status = fetch
            .phase
            .cache_status(&self.name)
            .with_collapsed(fetch.collapsed)
            .with_ttl(policy.time_to_live(now))
            .with_stored(true);
        let not_modified = has_conditionals(&fetch.request.headers)
            && evaluate(&fetch.request.method, &fetch.request.headers, *status, &stored_headers) == Conditional::NotModified;
        Delivery { cache_status, age: Some(policy.age(now)), buffered: true, not_modified, date: headers.get(header::DATE).cloned() }
    }

    /// Store a buffered response. The viewer gets `body` with the returned
    /// [`Delivery`] (whose `Cache-Status` says whether it was stored).
    pub fn store(&mut self, pending: PendingStore, body: Arc<[u8]>, now_ms: u64) -> StoreResult {
        let now = ts(now_ms);
        let PendingStore { mut fetch, policy, status, headers, .. } = pending;
        let tags = tags_from_headers(&headers);
        let stored_headers = stored_headers(&headers, fetch.request.bucket);
        let new = NewEntry {
            policy: policy.clone(),
            status,
            headers: stored_headers.clone(),
            body: body.clone(),
            tags: tags.clone(),
            max_variants: Some(fetch.request.rules.key.max_variants),
        };
        let inserted = self.store.insert(&fetch.request.key, &fetch.request.headers, new, now);
        let base = fetch.phase.cache_status(&self.name).with_collapsed(fetch.collapsed);
        let (cache_status, l2) = match inserted {
            Ok(_) => {
                self.uncacheable.remove(fetch.request.key.as_str());
                self.release(fetch.permit.take(), Outcome::Stored, now_ms);
                let l2 = self.l2_write(&fetch.request, &policy, status, &stored_headers, &tags, body, now_ms);
                (base.with_ttl(policy.time_to_live(now)).with_stored(true), l2)
            }
            Err(e) => {
                self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
                let detail = match e {
                    super::store::InsertError::NotStorable(r) => r.as_str(),
                    super::store::InsertError::TooLarge { .. } => "too-large",
                };
                (base.with_detail(detail), None)
            }
        };
        let not_modified = has_conditionals(&fetch.request.headers)
            && evaluate(&fetch.request.method, &fetch.request.headers, status, &stored_headers) == Conditional::NotModified;
        let date = headers.get(header::DATE).cloned();
        let delivery = Delivery { cache_status, age: Some(policy.age(now)), buffered: true, not_modified, date };
        StoreResult { delivery, l2 }
    }

    /// Every attempt failed. With `stale_ok` and a stored response that
    /// `stale-if-error` allows, serve it; otherwise `None` (answer the
    /// pipeline's error response).
    pub fn on_give_up(&mut self, fetch: CacheFetch, stale_ok: bool, now_ms: u64) -> Option<CachedResponse> {
        let now = ts(now_ms);
        let mut fetch = fetch;
        let stale = fetch
            .stored
            .clone()
            .filter(|s| stale_ok && fetch.serve_on_error && s.policy().can_serve_stale_on_error(now));
        match stale {
            Some(entry) => {
                self.release(fetch.permit.take(), Outcome::NotStored, now_ms);
                let p = entry.policy();
                let cs = stale_if_error(CachePhase::Stale.cache_status(&self.name).with_ttl(p.time_to_live(now)));
                Some(self.entry_response(&fetch.request, &entry, cs, p.age(now), CachePhase::Stale))
            }
            None => {
                self.abandon(fetch, now_ms);
                None
            }
        }
    }

    /// The fetch ended without a usable response (or its response passes
    /// through untouched): hand the lock to the next waiter.
    pub fn abandon(&mut self, fetch: CacheFetch, now_ms: u64) {
        if let Some(p) = fetch.permit {
            let _ = self.coalescer.abandon(p, now_ms);
        }
    }

    // ----- invalidation and purge ---------------------------------------

    /// RFC 9111 §4.4: after a non-error response to an unsafe method on a
    /// cached route, invalidate (soft-purge) the target URL and same-origin
    /// `Location`/`Content-Location`. Returns the URLs invalidated.
    pub fn invalidate_after(
        &mut self,
        query: CacheQuery<'_>,
        status: u16,
        response_headers: &HeaderMap,
        now_ms: u64,
    ) -> Vec<UrlKey> {
        let req = query.request.request();
        let Some(rules) = query.rules else {
            return Vec::new();
        };
        let scheme = req.uri().scheme_str().unwrap_or("https");
        let authority = match req.uri().authority() {
            Some(a) => a.as_str().to_owned(),
            None => match req.headers().get(header::HOST).and_then(|v| v.to_str().ok()) {
                Some(h) => h.to_owned(),
                None => return Vec::new(),
            },
        };
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let targets = invalidation_targets(&rules.key, req.method(), status, scheme, &authority, pq, response_headers);
        for t in &targets {
            self.store.purge_url(t, PurgeMode::Soft);
            self.mark(MarkTarget::Url(t.as_str().to_owned()), PurgeMode::Soft, now_ms);
        }
        targets
    }

    fn mark(&mut self, target: MarkTarget, mode: PurgeMode, at_ms: u64) {
        if self.markers.len() >= MAX_MARKERS {
            self.markers.pop_front();
        }
        self.markers.push_back(Marker { target, mode, at_ms });
    }

    /// Answer the purge endpoint: `POST` with `Authorization: Bearer
    /// <purge_token>` and a JSON body `{"urls": [...], "tags": [...],
    /// "soft": false}`. URLs are absolute or paths (resolved against the
    /// request's host); each is keyed with its route's key rules (found by
    /// `routes` from the URL's canonical path).
    pub fn purge(&mut self, routes: &impl RouteKeys, req: &CanonicalRequest, body: &[u8], now_ms: u64) -> PurgeResult {
        let none = |response| PurgeResult { response, l2_delete: Vec::new() };
        if let Some(refused) = self.purge_precheck(req) {
            return none(refused);
        }
        let req = req.request();
        if body.len() > PURGE_MAX_BODY {
            return none(self.purge_too_large());
        }
        let parsed = match parse_purge(routes, req, body) {
            Ok(p) => p,
            Err((field, why)) => {
                return none(self.json(400, serde_json::json!({ "error": format!("purge: {field}: {why}"), "field": field, "status": 400 })));
            }
        };
        let mode = if parsed.soft { PurgeMode::Soft } else { PurgeMode::Hard };
        let mut purged = 0;
        let mut l2_delete = Vec::new();
        for (url, l2) in &parsed.urls {
            purged += self.store.purge_url(url, mode);
            self.mark(MarkTarget::Url(url.as_str().to_owned()), mode, now_ms);
            if let Some(k) = l2 {
                l2_delete.push(k.clone());
            }
        }
        for tag in &parsed.tags {
            purged += self.store.purge_tag(tag, mode);
            self.mark(MarkTarget::Tag(tag.clone()), mode, now_ms);
        }
        let urls: Vec<String> = parsed.urls.iter().map(|(u, _)| format!("{}{}", u.origin(), u.path_and_query())).collect();
        let body = serde_json::json!({
            "purged": purged,
            "soft": parsed.soft,
            "urls": urls,
            "tags": parsed.tags,
        });
        PurgeResult { response: self.json(200, body), l2_delete: if parsed.soft { Vec::new() } else { l2_delete } }
    }

    /// What the purge endpoint answers from the request head alone,
    /// before a byte of body is read: 401 without the right bearer token,
    /// 405 for another method than `POST`, 413 for a declared
    /// `Content-Length` over [`PURGE_MAX_BODY`]. `None`: read the body
    /// (at most `PURGE_MAX_BODY + 1` bytes) and call [`EdgeCache::purge`].
    pub fn purge_precheck(&self, req: &CanonicalRequest) -> Option<Response<Vec<u8>>> {
        let req = req.request();
        if !self.authorized(req) {
            let mut r = self.json(401, serde_json::json!({ "error": "purge: missing or wrong bearer token", "status": 401 }));
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"offload-purge\""));
            return Some(r);
        }
        if req.method() != Method::POST {
            let mut r = self.json(405, serde_json::json!({ "error": format!("purge: method {} not allowed", req.method()), "status": 405 }));
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Some(r);
        }
        if crate::proxy::body::declared_length(req.headers()).is_some_and(|n| n > PURGE_MAX_BODY as u64) {
            return Some(self.purge_too_large());
        }
        None
    }

    /// The 413 for a purge body past [`PURGE_MAX_BODY`].
    pub fn purge_too_large(&self) -> Response<Vec<u8>> {
        let msg = format!("purge: body: more than {PURGE_MAX_BODY} bytes");
        self.json(413, serde_json::json!({ "error": msg, "field": "body", "status": 413 }))
    }

    fn authorized(&self, req: &Request<()>) -> bool {
        let Some(token) = &self.purge_token else { return false };
        let Some(v) = req.headers().get(header::AUTHORIZATION) else { return false };
        let v = v.as_bytes();
        let Some(scheme) = v.get(..7) else { return false };
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        let given = v.get(7..).unwrap_or(&[]).trim_ascii();
        bool::from(given.ct_eq(token.expose()))
    }

    fn json(&self, status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
        let mut r = Response::new(body.to_string().into_bytes());
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let cs = CacheStatus::forward(&self.name, FwdReason::Bypass).with_detail("purge");
        if let Ok(v) = HeaderValue::from_str(&cs.to_string()) {
            h.insert(cache_status_name(), v);
        }
        r
    }

    // ----- L2 (platform cache) ------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn l2_write(
        &self,
        request: &CacheRequest,
        policy: &CachePolicy,
        status: u16,
        headers: &HeaderMap,
        tags: &[String],
        body: Arc<[u8]>,
        now_ms: u64,
    ) -> Option<L2Write> {
        let max_age = policy.retain_for(ts(now_ms));
        if max_age == 0 {
            return None;
        }
        let vary = policy
            .vary()
            .iter()
            .flat_map(|n| {
                request.headers.get_all(n.as_str()).iter().map(move |v| (n.clone(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            })
            .collect();
        let meta = L2Meta {
            v: 1,
            key: request.key.as_str().to_owned(),
            url: request.key.url().as_str().to_owned(),
            status,
            headers: headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            vary,
            policy: policy.clone(),
            tags: tags.to_vec(),
            stored_ms: now_ms,
        };
        let json = serde_json::to_vec(&meta).ok()?;
        Some(L2Write { key: l2_key(&request.key), meta: URL_SAFE_NO_PAD.encode(json), body, max_age })
    }

    /// An L2 entry was found for a miss: check it belongs to this key and
    /// was not purged since, put it into L1 and decide again.
    /// [`Adopted::Rejected`] gives the fetch back (go upstream).
    pub fn adopt_l2(&mut self, fetch: CacheFetch, meta: &str, body: Vec<u8>, now_ms: u64) -> Adopted {
        let Some(mut meta) = URL_SAFE_NO_PAD
            .decode(meta.trim())
            .ok()
            .and_then(|b| serde_json::from_slice::<L2Meta>(&b).ok())
            .filter(|m| m.v == 1 && m.key == fetch.request.key.as_str())
        else {
            return Adopted::Rejected(fetch);
        };
        for m in self.markers.iter().filter(|m| m.at_ms >= meta.stored_ms) {
            let hit = match &m.target {
                MarkTarget::Url(u) => *u == meta.url,
                MarkTarget::Tag(t) => meta.tags.contains(t),
            };
            match (hit, m.mode) {
                (true, PurgeMode::Hard) => return Adopted::Rejected(fetch),
                (true, PurgeMode::Soft) => meta.policy.invalidate(),
                (false, _) => {}
            }
        }
        let mut headers = HeaderMap::new();
        for (n, v) in &meta.headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                headers.append(n, v);
            }
        }
        let mut vary_headers = HeaderMap::new();
        for (n, v) in &meta.vary {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                vary_headers.append(n, v);
            }
        }
        let new = NewEntry {
            policy: meta.policy,
            status: meta.status,
            headers,
            body: Arc::from(body),
            tags: meta.tags,
            max_variants: Some(fetch.request.rules.key.max_variants),
        };
        if self.store.insert(&fetch.request.key, &vary_headers, new, ts(now_ms)).is_err() {
            return Adopted::Rejected(fetch);
        }
        let CacheFetch { request, permit, collapsed, .. } = fetch;
        let coalesce = match permit {
            Some(p) => Coalesce::Have(p),
            None => Coalesce::Never,
        };
        Adopted::Decision(self.decide(request, coalesce, collapsed, now_ms))
    }
}

/// `Cache-Status` detail for a response served under `stale-if-error`.
fn stale_if_error(cs: CacheStatus) -> CacheStatus {
    cs.with_detail("stale-if-error")
}

/// The L2 key URL of a primary key: a hash names it, the full key in the
/// entry's metadata confirms it (no collisions are served).
pub fn l2_key(key: &PrimaryKey) -> String {
    format!("{L2_ORIGIN}/v1/{:016x}", fnv1a64(key.as_str().as_bytes()))
}

/// Remove the fields only caches and purges use.
pub fn strip_internal(headers: &mut HeaderMap) {
    for n in INTERNAL_RESPONSE_FIELDS {
        headers.remove(n);
    }
}

fn only_if_cached(h: &HeaderMap) -> bool {
    super::control::CacheControl::from_cache_control(h).is_some_and(|c| c.only_if_cached)
}

fn has_conditionals(h: &HeaderMap) -> bool {
    h.contains_key(header::IF_NONE_MATCH) || h.contains_key(header::IF_MODIFIED_SINCE)
}

/// Undo what the platform does to upstream headers before the cache reads
/// them: repeated `Age`, `Date` and `Expires` lines arrive comma-joined
/// (keep the first value), and `Date` is added when the origin sent none
/// (RFC 9110 §6.6.1).
pub fn normalize_response_headers(headers: &HeaderMap, now: Timestamp) -> HeaderMap {
    let mut h = headers.clone();
    if let Some(first) = h.get(header::AGE).and_then(|v| v.to_str().ok()).and_then(|v| {
        v.contains(',').then(|| v.split(',').next().unwrap_or("").trim().to_owned())
    }) {
        match HeaderValue::from_str(&first) {
            Ok(v) => {
                h.insert(header::AGE, v);
            }
            Err(_) => {
                h.remove(header::AGE);
            }
        }
    }
    for name in [header::DATE, header::EXPIRES] {
        let Some(v) = h.get(&name).and_then(|v| v.to_str().ok()).map(str::to_owned) else { continue };
        if Timestamp::parse_http_date(&v).is_none() {
            // "Sun, 06 Nov 1994 08:49:37 GMT, Mon, ..." → the first date.
            if let Some(first) = v.get(..29).filter(|f| Timestamp::parse_http_date(f).is_some()) {
                if let Ok(val) = HeaderValue::from_str(first) {
                    h.insert(name.clone(), val);
                }
            }
        }
    }
    if !h.contains_key(header::DATE) {
        if let Ok(v) = HeaderValue::from_str(&now.to_http_date()) {
            h.insert(header::DATE, v);
        }
    }
    h
}

/// The one byte range of a `Range: bytes=...` request that fits a body of
/// `len` bytes, as inclusive offsets (RFC 9110 §14.1.2). `None` for other
/// units, several ranges, a malformed field or an unsatisfiable range.
fn byte_range(headers: &HeaderMap, len: usize) -> Option<(usize, usize)> {
    let mut values = headers.get_all(header::RANGE).iter();
    let (v, None) = (values.next()?, values.next()) else { return None };
    let spec = v.to_str().ok()?.trim();
    let (unit, set) = spec.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') || len == 0 {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let num = |s: &str| -> Option<usize> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => {
            let n = num(last)?;
            (n > 0).then(|| (len.saturating_sub(n), len - 1))
        }
        (false, _) => {
            let start = num(first)?;
            let end = if last.trim().is_empty() { len - 1 } else { num(last)?.min(len - 1) };
            (start <= end && start < len).then_some((start, end))
        }
        (true, true) => None,
    }
}

/// Whether the platform's `fetch()` decoded the body: it decodes a single
/// `gzip` or `br` coding (keeping the field). Any other `Content-Encoding`
/// arrives as sent and must stay with the body.
pub(crate) fn decoded_by_platform(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|v| String::from_utf8_lossy(v.as_bytes()).split(',').map(|c| c.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter(|c| !c.is_empty() && c != "identity");
    match (codings.next(), codings.next()) {
        (Some(c), None) => matches!(c.as_str(), "gzip" | "x-gzip" | "br"),
        _ => false,
    }
}

/// The headers kept with a stored body: the platform decoded a gzip/br body,
/// so those framing fields no longer apply; bucket-internal fields go too.
fn stored_headers(headers: &HeaderMap, bucket: bool) -> HeaderMap {
    let mut h = headers.clone();
    if decoded_by_platform(&h) {
        h.remove(header::CONTENT_ENCODING);
    }
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::TRANSFER_ENCODING);
    h.remove(META_HEADER);
    if bucket {
        let amz: Vec<HeaderName> = h.keys().filter(|n| n.as_str().starts_with("x-amz-")).cloned().collect();
        for n in amz {
            h.remove(n);
        }
    }
    h
}

struct PurgeRequest {
    urls: Vec<(UrlKey, Option<String>)>,
    tags: Vec<String>,
    soft: bool,
}

fn parse_purge(routes: &impl RouteKeys, req: &Request<()>, body: &[u8]) -> Result<PurgeRequest, (String, String)> {
    let err = |f: &str, why: &str| (f.to_owned(), why.to_owned());
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| err("body", &format!("not JSON ({e})")))?;
    let obj = v.as_object().ok_or_else(|| err("body", "expected a JSON object"))?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "urls" | "tags" | "soft") {
            return Err((k.clone(), "unknown field (expected urls, tags, soft)".to_owned()));
        }
    }
    let list = |name: &str| -> Result<Vec<String>, (String, String)> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .ok_or_else(|| (format!("{name}[{i}]"), "expected a non-empty string".to_owned()))
                })
                .collect(),
            Some(_) => Err(err(name, "expected an array of strings")),
        }
    };
    let urls = list("urls")?;
    let tags = list("tags")?;
    let soft = match obj.get("soft") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(err("soft", "expected true or false")),
    };
    if urls.is_empty() && tags.is_empty() {
        return Err(err("urls", "nothing to purge: give urls and/or tags"));
    }
    if urls.len() + tags.len() > MAX_PURGE_ITEMS {
        return Err(err("urls", &format!("at most {MAX_PURGE_ITEMS} urls and tags per request")));
    }
    let scheme = req.uri().scheme_str().unwrap_or("https").to_owned();
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned));
    let mut keys = Vec::with_capacity(urls.len());
    for (i, u) in urls.iter().enumerate() {
        let field = format!("urls[{i}]");
        let (scheme, authority, pq) = if u.starts_with('/') {
            let host = host.clone().ok_or_else(|| (field.clone(), "a path needs the request's Host".to_owned()))?;
            (scheme.clone(), host, u.clone())
        } else {
            let uri: http::Uri = u.parse().map_err(|_| (field.clone(), "not a URL or a path".to_owned()))?;
            let (Some(s), Some(a)) = (uri.scheme_str(), uri.authority()) else {
                return Err((field, "expected an absolute http(s) URL or a path".to_owned()));
            };
            (s.to_owned(), a.as_str().to_owned(), uri.path_and_query().map_or("/", |p| p.as_str()).to_owned())
        };
        // The route is found from the canonical path, as for requests
        // (`/%61pi/x` is `/api/x`: the route's key rules must apply).
        let raw_path = pq.split('?').next().unwrap_or("/");
        let path = crate::proxy::canonical::canonical_path(raw_path).map_err(|e| (field.clone(), e.to_string()))?;
        let key_rules = routes.key_rules_for(&path).cloned().unwrap_or_default();
        let url = UrlKey::new(&key_rules, &scheme, &authority, &pq).map_err(|e| (field.clone(), e.to_string()))?;
        let l2 = PrimaryKey::new(&key_rules, &Method::GET, url.clone(), &HeaderMap::new()).ok().map(|k| l2_key(&k));
        keys.push((url, l2));
    }
    Ok(PurgeRequest { urls: keys, tags, soft })
}

