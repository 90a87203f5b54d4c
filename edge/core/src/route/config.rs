//! Routing config: regions with their origins, and the `[routing]` rules
//! (pool, failover, passive health, retry budget, stickiness, origin auth).
//!
//! Raw serde structs (`deny_unknown_fields`) convert into validated types;
//! every error names the field and the value, e.g.
//! `config: regions.us-east-1.origins[0].url: bad URL "ftp://x": scheme must be http or https`.
//!
//! The TOML shape (all `[routing]` keys optional, defaults shown):
//!
//! ```toml
//! [regions.us-east-1]
//! location = { lat = 38.9, lon = -77.4 }   # required
//! countries = ["US", "CA"]                 # ISO 3166 alpha-2, upper-case
//! continents = ["NA", "SA"]                # AF AN AS EU NA OC SA
//! weight = 100                             # 0..=1000; share among equally preferred regions
//! [[regions.us-east-1.origins]]            # one or more
//! url = "https://use1-lb.example.com"      # http(s)://host[:port][/base]
//! host_header = "www.example.com"          # optional
//!
//! [routing]
//! pool = "all"                  # or ["us-east-1", "eu-west-1"]
//! trust_test_header = false     # honour `x-offload-geo` (local runs only!)
//! equal_distance_km = 50.0      # regions this close count as equally near
//!
//! [routing.failover]
//! retry_statuses = [502, 503, 504]
//! retry_methods = ["GET", "HEAD", "OPTIONS"]   # idempotent methods only
//! try_timeout_ms = 5000         # per attempt
//! max_attempts = 3              # first try included
//! allow_unsafe_retry = false    # default for routes; a route may override
//!
//! [routing.health]
//! failures_to_eject = 3         # consecutive failures
//! eject_ms = 10000              # first ejection; doubles on each re-ejection
//! max_eject_ms = 300000
//!
//! [routing.retry_budget]
//! ratio = 0.2                   # retries <= ratio * requests + min_per_window
//! window_ms = 10000
//! min_per_window = 3
//!
//! [routing.sticky]              # optional
//! cookie = "offload-region"
//! max_age_secs = 3600
//!
//! [routing.origin_auth]         # optional
//! key_id = "k1"
//! secret = { binding = "OFFLOAD_ORIGIN_AUTH_SECRET" }   # where it comes from (crate::secret); >= 16 bytes
//! header = "x-offload-auth"
//! validity_secs = 30
//! ```
//!
//! ```
//! use offload_core::route::config::Routing;
//! let routing = Routing::from_toml(r#"
//!     [regions.eu-west-1]
//!     location = { lat = 53.35, lon = -6.26 }
//!     continents = ["EU"]
//!     origins = [{ url = "http://127.0.0.1:18702" }]
//! "#).unwrap();
//! assert_eq!(routing.regions().len(), 1);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use http::uri::{Scheme, Uri};
use http::{HeaderName, Method};
use serde::Deserialize;

use crate::secret::{RawSecret, SecretError, SecretRef};
use super::geo::{Continent, Country, LatLon};
use super::retry::RetryPolicy;

// ---------------------------------------------------------------- raw ----

/// Regions as written: `[regions.<name>]` tables.
pub type RawRegions = BTreeMap<String, RawRegion>;

/// A document holding just `[regions.*]` and `[routing]`, for standalone
/// use and tests. The main config embeds [`RawRegions`] and [`RawRouting`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoutingDoc {
    #[serde(default)]
    pub regions: RawRegions,
    #[serde(default)]
    pub routing: RawRouting,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    /// One or more origins (regional load balancers).
    pub origins: Vec<RawRegionOrigin>,
    /// Where the region is, for nearest-region selection.
    pub location: RawLocation,
    /// Viewers from these countries prefer this region.
    #[serde(default)]
    pub countries: Vec<String>,
    /// Viewers from these continents prefer this region (after countries).
    #[serde(default)]
    pub continents: Vec<String>,
    /// Share among equally preferred regions, 0..=1000 (default 100).
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegionOrigin {
    pub url: String,
    pub host_header: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub lat: f64,
    pub lon: f64,
}

/// A pool as written: `"all"` or a list of region names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPool {
    All,
    Regions(Vec<String>),
}

impl<'de> Deserialize<'de> for RawPool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawPool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of region names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPool, E> {
                match v {
                    "all" => Ok(RawPool::All),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawPool, A::Error> {
                let mut names = Vec::new();
                while let Some(n) = seq.next_element::<String>()? {
                    names.push(n);
                }
                Ok(RawPool::Regions(names))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    pub pool: Option<RawPool>,
    #[serde(default)]
    pub trust_test_header: bool,
    pub equal_distance_km: Option<f64>,
    #[serde(default)]
    pub failover: RawFailover,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub retry_budget: RawRetryBudget,
    pub sticky: Option<RawSticky>,
    pub origin_auth: Option<RawOriginAuth>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    pub retry_statuses: Option<Vec<u16>>,
    pub retry_methods: Option<Vec<String>>,
    pub try_timeout_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub allow_unsafe_retry: bool,
    /// Largest viewer request body kept in memory so a retry can replay
    /// it (default [`DEFAULT_REPLAY_BODY_MAX_BYTES`]; 0: never kept).
    pub replay_body_max_bytes: Option<usize>,
}

/// Default of `[routing.failover] replay_body_max_bytes`: form posts and
/// API calls fit, uploads stream.
pub const DEFAULT_REPLAY_BODY_MAX_BYTES: usize = 64 * 1024;
/// Upper bound of `replay_body_max_bytes` (each request in flight may hold
/// this much in a 128 MB isolate).
pub const MAX_REPLAY_BODY_MAX_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub failures_to_eject: Option<u32>,
    pub eject_ms: Option<u64>,
    pub max_eject_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetryBudget {
    pub ratio: Option<f64>,
    pub window_ms: Option<u64>,
    pub min_per_window: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSticky {
    pub cookie: String,
    pub max_age_secs: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOriginAuth {
    pub key_id: String,
    /// Where the secret comes from (see [`crate::secret`]).
    pub secret: RawSecret,
    pub header: Option<String>,
    pub validity_secs: Option<u64>,
}

// -------------------------------------------------------------- error ----

/// A routing config error: which field, which value, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfigError {
    field: String,
    value: String,
    kind: RouteConfigErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RouteConfigErrorKind {
    #[cfg_attr(not(feature = "toml"), allow(dead_code))] // from_toml only
    Syntax,
    BadName,
    BadUrl(&'static str),
    BadValue(&'static str),
    OutOfRange(&'static str),
    Duplicate,
    UnknownRegion,
    Empty,
    Secret(Box<SecretError>),
}

impl RouteConfigError {
    fn new(field: impl Into<String>, value: impl fmt::Display, kind: RouteConfigErrorKind) -> Self {
        Self { field: field.into(), value: value.to_string(), kind }
    }
    /// The dotted path of the offending field, e.g. `regions.eu-west-1.weight`.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// The offending value as written.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for RouteConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RouteConfigErrorKind as K;
        let (field, value) = (&self.field, &self.value);
        match &self.kind {
            K::Syntax => write!(f, "config: {value}"),
            K::BadName => write!(f, "config: {field}: bad name {value:?}: use 1-63 of [A-Za-z0-9._-]"),
            K::BadUrl(why) => write!(f, "config: {field}: bad URL {value:?}: {why}"),
            K::BadValue(why) => write!(f, "config: {field}: bad value {value:?}: {why}"),
            K::OutOfRange(range) => write!(f, "config: {field}: {value} is out of range {range}"),
            K::Duplicate => write!(f, "config: {field}: {value:?} listed twice"),
            K::UnknownRegion => write!(f, "config: {field}: unknown region {value:?}"),
            K::Empty => write!(f, "config: {field}: must not be empty"),
            K::Secret(e) => write!(f, "config: {e}"),
        }
    }
}

impl std::error::Error for RouteConfigError {}

// ---------------------------------------------------------- validated ----

/// One origin of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOrigin {
    id: String,
    region: String,
    scheme: Scheme,
    authority: String,
    base_path: String,
    host_header: Option<String>,
}

impl RegionOrigin {
    /// Stable id `<region>/<index>`: the key in the health table and logs.
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn region(&self) -> &str {
        &self.region
    }
    /// `scheme://authority[/base]`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }
    /// The Host header the origin expects.
    pub fn host(&self) -> &str {
        self.host_header.as_deref().unwrap_or(&self.authority)
    }
}

/// A validated region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    name: String,
    origins: Vec<RegionOrigin>,
    location: LatLon,
    countries: Vec<Country>,
    continents: Vec<Continent>,
    weight: u16,
}

impl Region {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn origins(&self) -> &[RegionOrigin] {
        &self.origins
    }
    pub fn location(&self) -> LatLon {
        self.location
    }
    pub fn countries(&self) -> &[Country] {
        &self.countries
    }
    pub fn continents(&self) -> &[Continent] {
        &self.continents
    }
    pub fn weight(&self) -> u16 {
        self.weight
    }
}

/// The regions a route may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pool {
    /// Every configured region.
    All,
    /// These regions (validated, unique, non-empty).
    Regions(Vec<String>),
}

impl Pool {
    pub fn contains(&self, region: &str) -> bool {
        match self {
            Pool::All => true,
            Pool::Regions(r) => r.iter().any(|n| n == region),
        }
    }
}

/// Passive health settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    pub failures_to_eject: u32,
    pub eject_ms: u64,
    pub max_eject_ms: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self { failures_to_eject: 3, eject_ms: 10_000, max_eject_ms: 300_000 }
    }
}

/// Retry budget settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Finite, in [0, 1].
    pub ratio: f64,
    pub window_ms: u64,
    pub min_per_window: u32,
}

// `ratio` is validated finite, so equality is total.
impl Eq for BudgetSettings {}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self { ratio: 0.2, window_ms: 10_000, min_per_window: 3 }
    }
}

/// Region stickiness by cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sticky {
    cookie: String,
    max_age_secs: u64,
}

impl Sticky {
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
    pub fn max_age_secs(&self) -> u64 {
        self.max_age_secs
    }
    /// The value of this cookie in a `Cookie` request header, if present.
    pub fn read<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        cookie_header
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| name.trim() == self.cookie)
            .map(|(_, value)| value.trim().trim_matches('"'))
    }
    /// A `Set-Cookie` value pinning the viewer to `region`.
    pub fn set_cookie(&self, region: &str) -> String {
        format!(
            "{}={region}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            self.cookie, self.max_age_secs
        )
    }
}

/// Origin auth signing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAuth {
    key_id: String,
    secret: SecretRef,
    header: HeaderName,
    validity_secs: u64,
}

impl OriginAuth {
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// Where the signing secret comes from (resolved at run time).
    pub fn secret(&self) -> &SecretRef {
        &self.secret
    }
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
    /// How far the verifier's clock may be from the signing time.
    pub fn validity_secs(&self) -> u64 {
        self.validity_secs
    }
}

/// Validated routing config: regions plus the `[routing]` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    regions: Vec<Region>,
    pool: Pool,
    trust_test_header: bool,
    /// Stored as metres so the type stays `Eq`.
    equal_distance_m: u64,
    retry: RetryPolicy,
    allow_unsafe_retry: bool,
    replay_body_max_bytes: usize,
    health: HealthSettings,
    budget: BudgetSettings,
    sticky: Option<Sticky>,
    origin_auth: Option<OriginAuth>,
}

impl Routing {
    /// Parse and validate a TOML document of `[regions.*]` and `[routing]`.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, RouteConfigError> {
        let raw: RawRoutingDoc = toml::from_str(text)
            .map_err(|e| RouteConfigError::new("", e.to_string().trim_end(), RouteConfigErrorKind::Syntax))?;
        Self::from_raw(raw.regions, raw.routing)
    }

    /// Validate the raw tables (the main config calls this).
    pub fn from_raw(regions: RawRegions, routing: RawRouting) -> Result<Self, RouteConfigError> {
        let regions =
            regions.into_iter().map(|(name, r)| validate_region(name, r)).collect::<Result<Vec<_>, _>>()?;
        let mut out = Routing {
            regions,
            pool: Pool::All,
            trust_test_header: routing.trust_test_header,
            equal_distance_m: 50_000,
            retry: RetryPolicy::default(),
            allow_unsafe_retry: routing.failover.allow_unsafe_retry,
            replay_body_max_bytes: DEFAULT_REPLAY_BODY_MAX_BYTES,
            health: HealthSettings::default(),
            budget: BudgetSettings::default(),
            sticky: None,
            origin_auth: None,
        };
        if let Some(p) = &routing.pool {
            out.pool = out.pool("routing.pool", p)?;
        }
        if let Some(km) = routing.equal_distance_km {
            if !(km.is_finite() && (0.0..=20_100.0).contains(&km)) {
                return Err(range("routing.equal_distance_km", km, "0..=20100"));
            }
            out.equal_distance_m = (km * 1000.0).round() as u64;
        }
        out.retry = validate_failover(&routing.failover)?;
        if let Some(n) = routing.failover.replay_body_max_bytes {
            if n > MAX_REPLAY_BODY_MAX_BYTES {
                return Err(range("routing.failover.replay_body_max_bytes", n, "0..=16777216"));
            }
            out.replay_body_max_bytes = n;
        }
        out.health = validate_health(&routing.health)?;
        out.budget = validate_budget(&routing.retry_budget)?;
        out.sticky = routing.sticky.map(validate_sticky).transpose()?;
        out.origin_auth = routing.origin_auth.map(validate_auth).transpose()?;
        Ok(out)
    }

    /// Validate a pool written elsewhere (e.g. a route's `pool = [...]`);
    /// `field` names it in errors.
    pub fn pool(&self, field: &str, raw: &RawPool) -> Result<Pool, RouteConfigError> {
        match raw {
            RawPool::All => Ok(Pool::All),
            RawPool::Regions(names) => {
                if names.is_empty() {
                    return Err(RouteConfigError::new(field, "[]", RouteConfigErrorKind::Empty));
                }
                for (i, n) in names.iter().enumerate() {
                    let f = format!("{field}[{i}]");
                    if self.region(n).is_none() {
                        return Err(RouteConfigError::new(f, n, RouteConfigErrorKind::UnknownRegion));
                    }
                    if names[..i].contains(n) {
                        return Err(RouteConfigError::new(f, n, RouteConfigErrorKind::Duplicate));
                    }
                }
                Ok(Pool::Regions(names.clone()))
            }
        }
    }

    /// Regions sorted by name.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }
    /// The origin with this id (`<region>/<index>`).
    pub fn origin(&self, id: &str) -> Option<&RegionOrigin> {
        self.regions.iter().flat_map(|r| r.origins.iter()).find(|o| o.id == id)
    }
    /// The default pool (`[routing] pool`).
    pub fn default_pool(&self) -> &Pool {
        &self.pool
    }
    pub fn trust_test_header(&self) -> bool {
        self.trust_test_header
    }
    /// Regions whose distances differ by at most this much are equally near.
    pub fn equal_distance_km(&self) -> f64 {
        self.equal_distance_m as f64 / 1000.0
    }
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
    /// The `allow_unsafe_retry` default for routes that do not set it.
    pub fn allow_unsafe_retry(&self) -> bool {
        self.allow_unsafe_retry
    }
    /// The largest viewer request body an adapter keeps so that a retry
    /// can replay it: `replay_body_max_bytes`, or 0 when the failover
    /// never makes a second attempt. Larger bodies (declared or observed)
    /// stream to the origin once and are never replayed.
    pub fn body_replay_limit(&self) -> usize {
        if self.retry.max_attempts() > 1 {
            self.replay_body_max_bytes
        } else {
            0
        }
    }
    pub fn health(&self) -> HealthSettings {
        self.health
    }
    pub fn budget(&self) -> BudgetSettings {
        self.budget
    }
    pub fn sticky(&self) -> Option<&Sticky> {
        self.sticky.as_ref()
    }
    pub fn origin_auth(&self) -> Option<&OriginAuth> {
        self.origin_auth.as_ref()
    }
}

fn range(field: impl Into<String>, value: impl fmt::Display, r: &'static str) -> RouteConfigError {
    RouteConfigError::new(field, value, RouteConfigErrorKind::OutOfRange(r))
}

fn valid_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn validate_region(name: String, r: RawRegion) -> Result<Region, RouteConfigError> {
    use RouteConfigErrorKind as K;
    if !valid_name(&name) {
        return Err(RouteConfigError::new("regions", &name, K::BadName));
    }
    let at = |f: &str| format!("regions.{name}.{f}");
    if r.origins.is_empty() {
        return Err(RouteConfigError::new(at("origins"), "[]", K::Empty));
    }
    if r.origins.len() > 64 {
        return Err(range(at("origins"), r.origins.len(), "1..=64 origins"));
    }
    let mut origins = Vec::with_capacity(r.origins.len());
    for (i, o) in r.origins.into_iter().enumerate() {
        let (scheme, authority, base_path) = parse_base_url(&at(&format!("origins[{i}].url")), &o.url)?;
        if let Some(h) = &o.host_header {
            let ok =
                !h.is_empty() && h.parse::<http::uri::Authority>().is_ok() && !h.contains(['@', '/', ' ']);
            if !ok {
                return Err(RouteConfigError::new(
                    at(&format!("origins[{i}].host_header")),
                    h,
                    K::BadValue("not a valid host"),
                ));
            }
        }
        origins.push(RegionOrigin {
            id: format!("{name}/{i}"),
            region: name.clone(),
            scheme,
            authority,
            base_path,
            host_header: o.host_header,
        });
    }
    let RawLocation { lat, lon } = r.location;
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(range(at("location.lat"), lat, "-90..=90"));
    }
    let location = LatLon::new(lat, lon).ok_or_else(|| range(at("location.lon"), lon, "-180..=180"))?;
    let mut countries = Vec::with_capacity(r.countries.len());
    for (i, c) in r.countries.iter().enumerate() {
        let f = at(&format!("countries[{i}]"));
        let code = Country::parse(c).ok_or_else(|| {
            RouteConfigError::new(&f, c, K::BadValue("expected an upper-case ISO 3166 alpha-2 code"))
        })?;
        if countries.contains(&code) {
            return Err(RouteConfigError::new(f, c, K::Duplicate));
        }
        countries.push(code);
    }
    let mut continents = Vec::with_capacity(r.continents.len());
    for (i, c) in r.continents.iter().enumerate() {
        let f = at(&format!("continents[{i}]"));
        let code = Continent::parse(c).ok_or_else(|| {
            RouteConfigError::new(&f, c, K::BadValue("expected one of AF AN AS EU NA OC SA"))
        })?;
        if continents.contains(&code) {
            return Err(RouteConfigError::new(f, c, K::Duplicate));
        }
        continents.push(code);
    }
    let weight = r.weight.unwrap_or(100);
    let weight = u16::try_from(weight)
        .ok()
        .filter(|w| *w <= 1000)
        .ok_or_else(|| range(at("weight"), weight, "0..=1000"))?;
    Ok(Region { name, origins, location, countries, continents, weight })
}

/// Parse an origin URL into (scheme, lower-case authority, base path).
fn parse_base_url(field: &str, value: &str) -> Result<(Scheme, String, String), RouteConfigError> {
    let bad = |why| RouteConfigError::new(field, value, RouteConfigErrorKind::BadUrl(why));
    let uri: Uri = value.parse().map_err(|_| bad("not a valid absolute URL"))?;
    let scheme = uri.scheme().cloned().ok_or_else(|| bad("missing scheme (http:// or https://)"))?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(bad("scheme must be http or https"));
    }
    let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
    if authority.host().is_empty() {
        return Err(bad("missing host"));
    }
    if authority.as_str().contains('@') {
        return Err(bad("credentials in URLs are not allowed"));
    }
    if authority.as_str().ends_with(':') || authority.port_u16() == Some(0) {
        return Err(bad("bad port"));
    }
    if uri.query().is_some() {
        return Err(bad("must not have a query"));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok((scheme, authority.as_str().to_ascii_lowercase(), base_path))
}

fn validate_failover(f: &RawFailover) -> Result<RetryPolicy, RouteConfigError> {
    use RouteConfigErrorKind as K;
    let mut p = RetryPolicy::default();
    if let Some(statuses) = &f.retry_statuses {
        let mut out = Vec::with_capacity(statuses.len());
        for (i, s) in statuses.iter().enumerate() {
            let field = format!("routing.failover.retry_statuses[{i}]");
            if !(400..=599).contains(s) {
                return Err(range(field, s, "400..=599"));
            }
            if out.contains(s) {
                return Err(RouteConfigError::new(field, s, K::Duplicate));
            }
            out.push(*s);
        }
        p.statuses = out;
    }
    if let Some(methods) = &f.retry_methods {
        let mut out: Vec<Method> = Vec::with_capacity(methods.len());
        for (i, m) in methods.iter().enumerate() {
            let field = format!("routing.failover.retry_methods[{i}]");
            let method = Method::from_bytes(m.as_bytes())
                .ok()
                .filter(|m| m.as_str().bytes().all(|b| b.is_ascii_uppercase()))
                .ok_or_else(|| {
                    RouteConfigError::new(&field, m, K::BadValue("expected an upper-case method name"))
                })?;
            if !method.is_idempotent() {
                return Err(RouteConfigError::new(
                    field,
                    m,
                    K::BadValue("not idempotent; set allow_unsafe_retry on the route instead"),
                ));
            }
            if out.contains(&method) {
                return Err(RouteConfigError::new(field, m, K::Duplicate));
            }
            out.push(method);
        }
        p.methods = out;
    }
    if let Some(ms) = f.try_timeout_ms {
        if !(1..=300_000).contains(&ms) {
            return Err(range("routing.failover.try_timeout_ms", ms, "1..=300000"));
        }
        p.try_timeout_ms = ms;
    }
    if let Some(n) = f.max_attempts {
        if !(1..=10).contains(&n) {
            return Err(range("routing.failover.max_attempts", n, "1..=10"));
        }
        p.max_attempts = n;
    }
    Ok(p)
}

fn validate_health(h: &RawHealth) -> Result<HealthSettings, RouteConfigError> {
    let mut s = HealthSettings::default();
    if let Some(n) = h.failures_to_eject {
        if !(1..=1000).contains(&n) {
            return Err(range("routing.health.failures_to_eject", n, "1..=1000"));
        }
        s.failures_to_eject = n;
    }
    if let Some(ms) = h.eject_ms {
        if !(1..=3_600_000).contains(&ms) {
            return Err(range("routing.health.eject_ms", ms, "1..=3600000"));
        }
        s.eject_ms = ms;
        s.max_eject_ms = s.max_eject_ms.max(ms);
    }
    if let Some(ms) = h.max_eject_ms {
        if !(s.eject_ms..=86_400_000).contains(&ms) {
            return Err(range("routing.health.max_eject_ms", ms, "eject_ms..=86400000"));
        }
        s.max_eject_ms = ms;
    }
    Ok(s)
}

fn validate_budget(b: &RawRetryBudget) -> Result<BudgetSettings, RouteConfigError> {
    let mut s = BudgetSettings::default();
    if let Some(r) = b.ratio {
        if !(r.is_finite() && (0.0..=1.0).contains(&r)) {
            return Err(range("routing.retry_budget.ratio", r, "0.0..=1.0"));
        }
        s.ratio = r;
    }
    if let Some(ms) = b.window_ms {
        if !(1000..=600_000).contains(&ms) {
            return Err(range("routing.retry_budget.window_ms", ms, "1000..=600000"));
        }
        s.window_ms = ms;
    }
    if let Some(n) = b.min_per_window {
        if n > 10_000 {
            return Err(range("routing.retry_budget.min_per_window", n, "0..=10000"));
        }
        s.min_per_window = n;
    }
    Ok(s)
}

/// RFC 6265 cookie-name: an RFC 9110 token.
fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn validate_sticky(s: RawSticky) -> Result<Sticky, RouteConfigError> {
    if !valid_token(&s.cookie) || s.cookie.len() > 64 {
        return Err(RouteConfigError::new(
            "routing.sticky.cookie",
            &s.cookie,
            RouteConfigErrorKind::BadValue("a cookie name is 1-64 token characters"),
        ));
    }
    let max_age_secs = s.max_age_secs.unwrap_or(3600);
    if !(1..=31_536_000).contains(&max_age_secs) {
        return Err(range("routing.sticky.max_age_secs", max_age_secs, "1..=31536000"));
    }
    Ok(Sticky { cookie: s.cookie, max_age_secs })
}

fn validate_auth(a: RawOriginAuth) -> Result<OriginAuth, RouteConfigError> {
    use RouteConfigErrorKind as K;
    if !super::auth::valid_key_id(&a.key_id) {
        return Err(RouteConfigError::new(
            "routing.origin_auth.key_id",
            &a.key_id,
            K::BadValue("use 1-64 of [A-Za-z0-9._-]"),
        ));
    }
    let secret = a
        .secret
        .validate("routing.origin_auth.secret")
        .map_err(|e| RouteConfigError::new("routing.origin_auth.secret", "", K::Secret(Box::new(e))))?;
    let header_str = a.header.unwrap_or_else(|| super::auth::DEFAULT_HEADER.to_owned());
    let header = HeaderName::from_bytes(header_str.as_bytes())
        .ok()
        .filter(|h| h.as_str() == header_str)
        .ok_or_else(|| {
            RouteConfigError::new(
                "routing.origin_auth.header",
                &header_str,
                K::BadValue("expected a lower-case header name"),
            )
        })?;
    let validity_secs = a.validity_secs.unwrap_or(30);
    if !(1..=3600).contains(&validity_secs) {
        return Err(range("routing.origin_auth.validity_secs", validity_secs, "1..=3600"));
    }
    Ok(OriginAuth { key_id: a.key_id, secret, header, validity_secs })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    pub(crate) const GOOD: &str = r#"
[regions.us-east-1]
location = { lat = 38.9, lon = -77.4 }
countries = ["US", "CA"]
continents = ["NA", "SA"]
[[regions.us-east-1.origins]]
url = "http://127.0.0.1:18701"
[[regions.us-east-1.origins]]
url = "https://USE1-b.example.com:8443/app/"
host_header = "www.example.com"

[regions.eu-west-1]
location = { lat = 53.35, lon = -6.26 }
continents = ["EU", "AF"]
weight = 300
origins = [{ url = "http://127.0.0.1:18702" }]

[routing]
pool = ["us-east-1", "eu-west-1"]
trust_test_header = true

[routing.failover]
retry_statuses = [502, 503, 504, 429]
max_attempts = 2

[routing.sticky]
cookie = "offload-region"

[routing.origin_auth]
key_id = "k1"
secret = { binding = "ORIGIN_AUTH" }
"#;

    fn err(text: &str) -> String {
        Routing::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn replay_body_limit_defaults_validates_and_needs_a_second_attempt() {
        assert_eq!(Routing::from_toml(GOOD).unwrap().body_replay_limit(), DEFAULT_REPLAY_BODY_MAX_BYTES);
        let with = |line: &str| GOOD.replace("max_attempts = 2", line);
        let r = Routing::from_toml(&with("max_attempts = 2\nreplay_body_max_bytes = 0")).unwrap();
        assert_eq!(r.body_replay_limit(), 0);
        let r = Routing::from_toml(&with("max_attempts = 2\nreplay_body_max_bytes = 1048576")).unwrap();
        assert_eq!(r.body_replay_limit(), 1 << 20);
        // One attempt only: nothing is ever replayed, so nothing is kept.
        let r = Routing::from_toml(&with("max_attempts = 1\nreplay_body_max_bytes = 1048576")).unwrap();
        assert_eq!(r.body_replay_limit(), 0);
        let e = err(&with("max_attempts = 2\nreplay_body_max_bytes = 16777217"));
        assert!(e.contains("routing.failover.replay_body_max_bytes") && e.contains("16777217"), "{e}");
        let e = err(&with("max_attempts = 2\nreplay_body_max_bytes = -1"));
        assert!(e.contains("replay_body_max_bytes"), "{e}");
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let r = Routing::from_toml(GOOD).unwrap();
        assert_eq!(r.regions().iter().map(Region::name).collect::<Vec<_>>(), ["eu-west-1", "us-east-1"]);
        let us = r.region("us-east-1").unwrap();
        assert_eq!(us.weight(), 100);
        assert_eq!(us.origins()[1].id(), "us-east-1/1");
        assert_eq!(us.origins()[1].base_url(), "https://use1-b.example.com:8443/app");
        assert_eq!(us.origins()[1].host(), "www.example.com");
        assert_eq!(us.origins()[0].host(), "127.0.0.1:18701");
        assert_eq!(r.origin("eu-west-1/0").unwrap().region(), "eu-west-1");
        assert_eq!(r.region("eu-west-1").unwrap().weight(), 300);
        assert_eq!(r.default_pool(), &Pool::Regions(vec!["us-east-1".into(), "eu-west-1".into()]));
        assert!(r.trust_test_header());
        assert_eq!(r.retry_policy().statuses(), [502, 503, 504, 429]);
        assert_eq!(r.retry_policy().max_attempts(), 2);
        assert_eq!(r.retry_policy().methods(), [Method::GET, Method::HEAD, Method::OPTIONS]);
        assert_eq!(
            r.health(),
            HealthSettings { failures_to_eject: 3, eject_ms: 10_000, max_eject_ms: 300_000 }
        );
        assert_eq!(r.budget(), BudgetSettings { ratio: 0.2, window_ms: 10_000, min_per_window: 3 });
        assert_eq!(r.sticky().unwrap().max_age_secs(), 3600);
        let auth = r.origin_auth().unwrap();
        assert_eq!(auth.header().as_str(), "x-offload-auth");
        assert_eq!(auth.validity_secs(), 30);
        assert_eq!(auth.secret().binding_name(), Some("ORIGIN_AUTH"));
        assert_eq!(r.equal_distance_km(), 50.0);

        let empty = Routing::from_toml("").unwrap();
        assert_eq!(empty.default_pool(), &Pool::All);
        assert!(!empty.trust_test_header());
        assert_eq!(empty.retry_policy().statuses(), [502, 503, 504]);
    }

    #[test]
    fn errors_name_field_and_value() {
        let region = |body: &str| {
            format!("[regions.r1]\nlocation = {{ lat = 1.0, lon = 2.0 }}\norigins = [{{ url = \"http://a:1\" }}]\n{body}")
        };
        let cases: Vec<(String, &str)> = vec![
            (
                "[regions.us-east-1]\nlocation = { lat = 1.0, lon = 2.0 }\norigins = [{ url = \"ftp://x\" }]".into(),
                "config: regions.us-east-1.origins[0].url: bad URL \"ftp://x\": scheme must be http or https",
            ),
            (
                "[regions.r]\nlocation = { lat = 1.0, lon = 2.0 }\norigins = [{ url = \"/relative\" }]".into(),
                "regions.r.origins[0].url: bad URL \"/relative\"",
            ),
            (
                "[regions.r]\nlocation = { lat = 1.0, lon = 2.0 }\norigins = [{ url = \"http://u:p@h\" }]".into(),
                "credentials",
            ),
            (
                "[regions.r]\nlocation = { lat = 1.0, lon = 2.0 }\norigins = [{ url = \"http://h:\" }]".into(),
                "bad port",
            ),
            (
                "[regions.r]\nlocation = { lat = 1.0, lon = 2.0 }\norigins = []".into(),
                "config: regions.r.origins: must not be empty",
            ),
            (
                "[regions.\"bad name\"]\nlocation = { lat = 1.0, lon = 2.0 }\norigins = [{ url = \"http://a\" }]".into(),
                "config: regions: bad name \"bad name\"",
            ),
            (
                "[regions.r]\nlocation = { lat = 91.0, lon = 2.0 }\norigins = [{ url = \"http://a\" }]".into(),
                "config: regions.r.location.lat: 91 is out of range -90..=90",
            ),
            (
                "[regions.r]\nlocation = { lat = 1.0, lon = -181.0 }\norigins = [{ url = \"http://a\" }]".into(),
                "config: regions.r.location.lon: -181 is out of range",
            ),
            (region("countries = [\"de\"]"), "config: regions.r1.countries[0]: bad value \"de\""),
            (region("countries = [\"DE\", \"DE\"]"), "regions.r1.countries[1]: \"DE\" listed twice"),
            (region("continents = [\"EA\"]"), "config: regions.r1.continents[0]: bad value \"EA\""),
            (region("weight = 1001"), "config: regions.r1.weight: 1001 is out of range 0..=1000"),
            (region("origins2 = 1"), "unknown field `origins2`"),
            (
                "[regions.r]\nlocation = { lat = 1.0, lon = 2.0 }\norigins = [{ url = \"http://a\", host_header = \"a b\" }]".into(),
                "regions.r.origins[0].host_header: bad value \"a b\"",
            ),
            (
                region("[routing]\npool = \"some\""),
                "invalid value: string \"some\", expected \"all\" or a list of region names",
            ),
            (region("[routing]\npool = []"), "config: routing.pool: must not be empty"),
            (region("[routing]\npool = [\"r2\"]"), "config: routing.pool[0]: unknown region \"r2\""),
            (region("[routing]\npool = [\"r1\", \"r1\"]"), "config: routing.pool[1]: \"r1\" listed twice"),
            (region("[routing]\nequal_distance_km = -1.0"), "routing.equal_distance_km: -1 is out of range"),
            (region("[routing]\ncolour = 1"), "unknown field `colour`"),
            (
                region("[routing.failover]\nretry_statuses = [200]"),
                "config: routing.failover.retry_statuses[0]: 200 is out of range 400..=599",
            ),
            (
                region("[routing.failover]\nretry_methods = [\"GET\", \"POST\"]"),
                "config: routing.failover.retry_methods[1]: bad value \"POST\": not idempotent",
            ),
            (region("[routing.failover]\nretry_methods = [\"get\"]"), "retry_methods[0]: bad value \"get\""),
            (region("[routing.failover]\ntry_timeout_ms = 0"), "routing.failover.try_timeout_ms: 0 is out of range"),
            (region("[routing.failover]\nmax_attempts = 11"), "routing.failover.max_attempts: 11 is out of range"),
            (region("[routing.health]\nfailures_to_eject = 0"), "routing.health.failures_to_eject: 0"),
            (
                region("[routing.health]\neject_ms = 20000\nmax_eject_ms = 10000"),
                "routing.health.max_eject_ms: 10000 is out of range",
            ),
            (region("[routing.retry_budget]\nratio = 1.5"), "routing.retry_budget.ratio: 1.5 is out of range"),
            (region("[routing.retry_budget]\nratio = nan"), "routing.retry_budget.ratio: NaN is out of range"),
            (region("[routing.retry_budget]\nwindow_ms = 10"), "routing.retry_budget.window_ms: 10"),
            (region("[routing.sticky]\ncookie = \"a b\""), "config: routing.sticky.cookie: bad value \"a b\""),
            (
                region("[routing.origin_auth]\nkey_id = \"k 1\"\nsecret = { binding = \"A\" }"),
                "routing.origin_auth.key_id: bad value \"k 1\"",
            ),
            (
                region("[routing.origin_auth]\nkey_id = \"k1\"\nsecret = \"hunter2\""),
                "config: routing.origin_auth.secret: a secret value is not allowed in the config",
            ),
            (
                region("[routing.origin_auth]\nkey_id = \"k1\"\nsecret = { binding = \"A\" }\nheader = \"X-Auth\""),
                "routing.origin_auth.header: bad value \"X-Auth\"",
            ),
            (
                region("[routing.origin_auth]\nkey_id = \"k1\"\nsecret = { binding = \"A\" }\nvalidity_secs = 0"),
                "routing.origin_auth.validity_secs: 0 is out of range",
            ),
        ];
        for (text, want) in cases {
            let e = err(&text);
            assert!(e.contains(want), "\n{text}\n got: {e}\nwant: {want}");
        }
        assert!(
            !err(&region("[routing.origin_auth]\nkey_id = \"k1\"\nsecret = \"hunter2\"")).contains("hunter2")
        );
    }

    #[test]
    fn route_pools_validate_against_regions() {
        let r = Routing::from_toml(GOOD).unwrap();
        assert_eq!(r.pool("routes[0].pool", &RawPool::All).unwrap(), Pool::All);
        let e = r.pool("routes[3].pool", &RawPool::Regions(vec!["mars-1".into()])).unwrap_err();
        assert_eq!(e.field(), "routes[3].pool[0]");
        assert_eq!(e.value(), "mars-1");
        assert_eq!(e.to_string(), "config: routes[3].pool[0]: unknown region \"mars-1\"");
    }

    #[test]
    fn sticky_cookie_read_and_set() {
        let r = Routing::from_toml(GOOD).unwrap();
        let s = r.sticky().unwrap();
        assert_eq!(s.read("a=1; offload-region=eu-west-1; b=2"), Some("eu-west-1"));
        assert_eq!(s.read("offload-region=\"us-east-1\""), Some("us-east-1"));
        assert_eq!(s.read("xoffload-region=eu-west-1"), None);
        assert_eq!(s.read(""), None);
        assert_eq!(
            s.set_cookie("eu-west-1"),
            "offload-region=eu-west-1; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax"
        );
    }
}
