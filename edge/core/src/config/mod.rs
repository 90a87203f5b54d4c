//! The edge's declarative config: routes → origins and buckets.
//!
//! One TOML (or JSON) document drives every platform. It is parsed into the
//! raw serde structs of [`raw`] and converted with `TryFrom` into the
//! validated [`Config`]; every error names the field and the value.
//!
//! ```
//! let cfg = offload_core::Config::from_toml(r#"
//!     [regions.us-east-1]
//!     location = { lat = 38.9, lon = -77.4 }
//!     origins = [{ url = "http://127.0.0.1:8701" }]
//!     [[routes]]
//!     path = "/api/*"
//!     pool = ["us-east-1"]
//! "#).unwrap();
//! assert_eq!(cfg.routes().len(), 1);
//! ```

pub mod keys;
pub mod raw;

use std::collections::BTreeMap;
use std::fmt;

use http::uri::{Scheme, Uri};
use http::HeaderName;

pub use keys::EdgeKeys;
pub use raw::RawConfig;

use crate::cache::key::KeyRules;
use crate::cache::store::StoreConfig;
use crate::cache::{CacheSettings, RouteCache, RouteKeys};
use crate::route::{Pool, RouteConfigError, Routing};
use crate::secret::{RawSecret, SecretError, SecretRef};

/// A config error: which field, which value, what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: String,
    value: String,
    kind: ConfigErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfigErrorKind {
    Syntax,
    Routing(RouteConfigError),
    UnknownBucket,
    BadUrl(&'static str),
    BadPattern(&'static str),
    DuplicateRoute(usize),
    TargetCount,
    BadName,
    BadValue(&'static str),
    /// A route's `cache` table (the field is `routes[i].cache.<name>`).
    CacheRules(crate::cache::CacheRulesError),
    /// A route's `cache_key` table.
    CacheKey(crate::cache::key::KeyError),
    /// A bad secret reference (names the field, never a value).
    Secret(Box<SecretError>),
}

impl ConfigError {
    fn new(field: impl Into<String>, value: impl Into<String>, kind: ConfigErrorKind) -> Self {
        Self { field: field.into(), value: value.into(), kind }
    }
    /// A document that does not read as a config (the reader's message),
    /// for executors that read the JSON form with their platform's parser.
    pub fn syntax(message: impl fmt::Display) -> Self {
        Self::new("", message.to_string(), ConfigErrorKind::Syntax)
    }
    /// The dotted path of the offending field, e.g. `routes[1].origin`.
    pub fn field(&self) -> &str {
        &self.field
    }
    /// The offending value as written.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, value) = (&self.field, &self.value);
        match &self.kind {
            // serde's message; TOML's shows the line, column and source
            // line (a field path tracker would cost the Workers Wasm 43 KB
            // gzipped).
            ConfigErrorKind::Syntax => write!(f, "config: {value}"),
            ConfigErrorKind::Routing(e) => write!(f, "{e}"),
            ConfigErrorKind::UnknownBucket => {
                write!(f, "config: {field}: unknown bucket {value:?}")
            }
            ConfigErrorKind::BadUrl(why) => write!(f, "config: {field}: bad URL {value:?}: {why}"),
            ConfigErrorKind::BadPattern(why) => {
                write!(f, "config: {field}: bad path pattern {value:?}: {why}")
            }
            ConfigErrorKind::DuplicateRoute(first) => write!(
                f,
                "config: {field}: duplicate route {value:?} (already defined by routes[{first}])"
            ),
            ConfigErrorKind::TargetCount => write!(
                f,
                "config: {field}: route {value:?} takes either `pool` (web origins) or `bucket`, not both"
            ),
            ConfigErrorKind::BadName => write!(
                f,
                "config: {field}: bad name {value:?}: use 1-63 of [A-Za-z0-9._-]"
            ),
            ConfigErrorKind::BadValue(why) => write!(f, "config: {field}: bad value {value:?}: {why}"),
            ConfigErrorKind::CacheRules(e) => write!(f, "config: {field}: {e}"),
            ConfigErrorKind::CacheKey(e) => write!(f, "config: {field}: {e}"),
            ConfigErrorKind::Secret(e) => write!(f, "config: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Addressing style of an S3 bucket (`style = "path"` or `"virtual"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketStyle {
    /// `endpoint/bucket/key`
    #[default]
    Path,
    /// `bucket.endpoint/key`
    Virtual,
}

/// A validated S3 (or S3-compatible) bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    alias: String,
    scheme: Scheme,
    authority: String,
    bucket: String,
    region: String,
    style: BucketStyle,
    index: Option<String>,
    prefix: String,
    signed: bool,
    credentials: Option<BucketCredentialRefs>,
}

/// Where a signed bucket's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketCredentialRefs {
    pub access_key_id: SecretRef,
    pub secret_access_key: SecretRef,
}

impl Bucket {
    /// Whether edge → bucket requests are signed (SigV4 header auth).
    pub fn signed(&self) -> bool {
        self.signed
    }
    /// Where the credentials come from (resolved at run time, see
    /// [`EdgeKeys`]); `None`: the platform's own (the Lambda role).
    pub fn credentials(&self) -> Option<&BucketCredentialRefs> {
        self.credentials.as_ref()
    }
    pub fn alias(&self) -> &str {
        &self.alias
    }
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
    pub fn region(&self) -> &str {
        &self.region
    }
    pub fn style(&self) -> BucketStyle {
        self.style
    }
    pub fn index(&self) -> Option<&str> {
        self.index.as_deref()
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// `scheme://authority` of the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
    /// Host header for requests to this bucket.
    pub fn host(&self) -> String {
        match self.style {
            BucketStyle::Path => self.authority.clone(),
            BucketStyle::Virtual => format!("{}.{}", self.bucket, self.authority),
        }
    }
    /// URL of an already-encoded object path (starting with `/`).
    pub fn url_for_encoded_key(&self, encoded_key: &str) -> String {
        match self.style {
            BucketStyle::Path => {
                format!("{}://{}/{}{}", self.scheme, self.authority, self.bucket, encoded_key)
            }
            BucketStyle::Virtual => format!("{}://{}{}", self.scheme, self.host(), encoded_key),
        }
    }
}

/// A path pattern: exact or prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Matches exactly this path.
    Exact(String),
    /// Matches every path starting with this prefix (written `prefix*`).
    Prefix(String),
}

impl PathPattern {
    fn parse(s: &str) -> Result<Self, &'static str> {
        if !s.starts_with('/') {
            return Err("must start with '/'");
        }
        if s.chars().any(|c| c.is_ascii_control() || c == ' ' || c == '?' || c == '#') {
            return Err("must not contain spaces, control characters, '?' or '#'");
        }
        // Patterns match canonical paths, so a pattern must be canonical
        // itself or it could never match (`/a%2fb`, `/%70rivate`, `/a//b`).
        let literal = s.strip_suffix('*').unwrap_or(s);
        match crate::proxy::canonical::canonical_path(literal) {
            Ok(c) if c == literal => {}
            _ => return Err("not in canonical form (percent-decode unreserved characters, upper-case hex, no dot or empty segments)"),
        }
        match s.find('*') {
            None => Ok(Self::Exact(s.to_owned())),
            Some(i) if i == s.len() - 1 => Ok(Self::Prefix(s[..i].to_owned())),
            Some(_) => Err("'*' is allowed only at the end"),
        }
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => path == p,
            Self::Prefix(p) => path.starts_with(p.as_str()),
        }
    }

    /// Specificity for "most specific wins": exact beats any prefix,
    /// a longer prefix beats a shorter one.
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            Self::Exact(p) => (1, p.len()),
            Self::Prefix(p) => (0, p.len()),
        }
    }

    /// The pattern as written.
    pub fn as_written(&self) -> String {
        match self {
            Self::Exact(p) => p.clone(),
            Self::Prefix(p) => format!("{p}*"),
        }
    }
}

/// Where a route sends its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Web origins: the regions of this pool.
    Pool(Pool),
    /// An S3 bucket, by alias.
    Bucket(String),
}

/// `[presign]`: the endpoint that mints S3 presigned URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignSettings {
    pub path: String,
    pub max_expires: u64,
    pub buckets: Vec<String>,
}

/// `[links]`: the signed-link keys, by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRefs {
    /// (key id, where its secret comes from), in config order.
    pub keys: Vec<(String, SecretRef)>,
    /// The id new links are issued with.
    pub current: String,
}

/// A validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pattern: PathPattern,
    target: Target,
    strip_prefix: bool,
    allow_unsafe_retry: bool,
    cache: Option<RouteCache>,
    signed_links: bool,
    /// Headers forwarded on requests the cache does not share.
    forward: Vec<HeaderName>,
    /// Headers forwarded on GET/HEAD of a cached route.
    forward_cached: Vec<HeaderName>,
}

impl Route {
    /// The viewer request headers a web origin gets: `cacheable` for
    /// GET/HEAD on a cached route. Cache-key headers are always included.
    pub fn forward_headers(&self, cacheable: bool) -> &[HeaderName] {
        if cacheable {
            &self.forward_cached
        } else {
            &self.forward
        }
    }
    /// Whether requests need a valid signed-link token.
    pub fn signed_links(&self) -> bool {
        self.signed_links
    }
    /// Whether non-idempotent requests may be retried on another region.
    pub fn allow_unsafe_retry(&self) -> bool {
        self.allow_unsafe_retry
    }
    /// The route's cache settings; `None`: not cached.
    pub fn cache(&self) -> Option<&RouteCache> {
        self.cache.as_ref()
    }
    pub fn pattern(&self) -> &PathPattern {
        &self.pattern
    }
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// The path forwarded for `path`, with the prefix stripped if asked.
    pub fn forward_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match (&self.pattern, self.strip_prefix) {
            (PathPattern::Prefix(p), true) => {
                let rest = path.get(p.len()..).unwrap_or("");
                if rest.starts_with('/') {
                    rest.into()
                } else {
                    format!("/{rest}").into()
                }
            }
            _ => path.into(),
        }
    }
}

/// The validated config every platform runs from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    name: String,
    routing: Routing,
    cache: CacheSettings,
    buckets: BTreeMap<String, Bucket>,
    routes: Vec<Route>,
    links: Option<LinkRefs>,
    presign: Option<PresignSettings>,
}

impl Config {
    /// Signed-link keys by reference (their values are in [`EdgeKeys`]).
    pub fn links(&self) -> Option<&LinkRefs> {
        self.links.as_ref()
    }

    /// Every secret reference with the field that holds it, in a fixed
    /// order: what an executor must fetch before building the edge.
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        let mut out = Vec::new();
        if let Some(a) = self.routing.origin_auth() {
            out.push(("routing.origin_auth.secret".to_owned(), a.secret()));
        }
        if let Some(t) = &self.cache.purge_token {
            out.push(("cache.purge_token".to_owned(), t));
        }
        for b in self.buckets.values() {
            if let Some(c) = &b.credentials {
                out.push((format!("buckets.{}.access_key_id", b.alias), &c.access_key_id));
                out.push((format!("buckets.{}.secret_access_key", b.alias), &c.secret_access_key));
            }
        }
        if let Some(l) = &self.links {
            for (i, (_, r)) in l.keys.iter().enumerate() {
                out.push((format!("links.keys[{i}].secret"), r));
            }
        }
        out
    }
    /// The presign endpoint, if enabled.
    pub fn presign(&self) -> Option<&PresignSettings> {
        self.presign.as_ref()
    }
    /// Parse and validate a TOML document (feature `toml`, on by default;
    /// the edge builds leave it out and read the JSON form that
    /// [`Config::toml_to_json`] makes at build time: the TOML parser was
    /// 15 % of the Workers Wasm's code).
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::new("", e.to_string().trim_end(), ConfigErrorKind::Syntax))?;
        Self::try_from(raw)
    }

    /// Validate a TOML document and give the same document as JSON (the
    /// build-time form bundled into the edge builds).
    #[cfg(feature = "toml")]
    pub fn toml_to_json(text: &str) -> Result<String, ConfigError> {
        let config = Self::from_toml(text)?;
        let doc: toml::Value = toml::from_str(text)
            .map_err(|e| ConfigError::new("", e.to_string().trim_end(), ConfigErrorKind::Syntax))?;
        let json = serde_json::to_string(&doc)
            .map_err(|e| ConfigError::new("", e.to_string(), ConfigErrorKind::Syntax))?;
        // The JSON form must read back as exactly the same config.
        if Self::from_json(&json)? != config {
            return Err(ConfigError::new("", "the config reads differently as JSON", ConfigErrorKind::Syntax));
        }
        Ok(json)
    }

    /// Parse and validate a JSON document.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        // `from_slice`, as the cache's JSON reads: one instantiation of
        // serde_json's parser in the Wasm, not one per input type.
        let raw: RawConfig = serde_json::from_slice(text.as_bytes())
            .map_err(|e| ConfigError::new("", e.to_string(), ConfigErrorKind::Syntax))?;
        Self::try_from(raw)
    }

    /// Cache name for `Cache-Status` and `Via`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Regions, failover, health, retry budget, stickiness, origin auth.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }
    /// The in-isolate store and purge settings.
    pub fn cache(&self) -> &CacheSettings {
        &self.cache
    }
    pub fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.values()
    }
    pub fn bucket(&self, alias: &str) -> Option<&Bucket> {
        self.buckets.get(alias)
    }
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The most specific route matching `path` (exact beats prefix, longer
    /// prefix beats shorter; patterns are unique so there are no ties).
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.pattern.matches(path))
            .max_by_key(|r| r.pattern.specificity())
    }
}

impl RouteKeys for Config {
    fn key_rules_for(&self, canonical_path: &str) -> Option<&KeyRules> {
        self.route_for(canonical_path).and_then(Route::cache).map(|c| &c.key)
    }
}

impl TryFrom<raw::RawCacheSettings> for CacheSettings {
    type Error = ConfigError;

    fn try_from(raw: raw::RawCacheSettings) -> Result<Self, ConfigError> {
        validate_cache_settings(raw)
    }
}

fn validate_cache_settings(raw: raw::RawCacheSettings) -> Result<CacheSettings, ConfigError> {
    let defaults = StoreConfig::default();
    let store = StoreConfig {
        max_bytes: raw.max_bytes.unwrap_or(defaults.max_bytes),
        max_entry_bytes: raw.max_entry_bytes.unwrap_or(defaults.max_entry_bytes),
        max_variants: defaults.max_variants,
    };
    if store.max_entry_bytes > store.max_bytes {
        return Err(ConfigError::new(
            "cache.max_entry_bytes",
            store.max_entry_bytes.to_string(),
            ConfigErrorKind::BadValue("larger than cache.max_bytes"),
        ));
    }
    let lock_timeout_ms = raw.lock_timeout_ms.unwrap_or(5_000);
    if !(1..=60_000).contains(&lock_timeout_ms) {
        return Err(ConfigError::new(
            "cache.lock_timeout_ms",
            lock_timeout_ms.to_string(),
            ConfigErrorKind::BadValue("must be 1..=60000"),
        ));
    }
    let purge_path = raw.purge_path.unwrap_or_else(|| "/_offload/purge".to_owned());
    if !purge_path.starts_with('/') || purge_path.contains(['*', '?', '#', ' ']) {
        return Err(ConfigError::new(
            "cache.purge_path",
            purge_path,
            ConfigErrorKind::BadValue("an exact path starting with '/'"),
        ));
    }
    let purge_token = raw.purge_token.map(|t| secret_ref("cache.purge_token", t)).transpose()?;
    Ok(CacheSettings { store, lock_timeout_ms, purge_path, purge_token })
}

/// A route's forwarded-header allowlists: (other requests, GET/HEAD of a
/// cached route). The route's list (or the default), plus the cache key's
/// headers; names the edge owns are refused.
fn forward_lists(
    i: usize,
    listed: Option<&[String]>,
    cache: Option<&RouteCache>,
) -> Result<(Vec<HeaderName>, Vec<HeaderName>), ConfigError> {
    use crate::proxy::headers::{is_edge_owned, DEFAULT_FORWARD, DEFAULT_FORWARD_CACHED};
    let parse = |j: usize, n: &str| -> Result<HeaderName, ConfigError> {
        let field = format!("routes[{i}].forward_headers[{j}]");
        let name = HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| ConfigError::new(&field, n, ConfigErrorKind::BadValue("not a header name")))?;
        if is_edge_owned(n) {
            return Err(ConfigError::new(
                field,
                n,
                ConfigErrorKind::BadValue("set by the edge alone (forwarding, client-address, hop-by-hop or platform headers)"),
            ));
        }
        Ok(name)
    };
    let statics = |list: &[&'static str]| list.iter().map(|n| HeaderName::from_static(n)).collect::<Vec<_>>();
    let (mut forward, mut cached) = match listed {
        Some(list) => {
            let names = list.iter().enumerate().map(|(j, n)| parse(j, n)).collect::<Result<Vec<_>, _>>()?;
            (names.clone(), names)
        }
        None => (statics(&DEFAULT_FORWARD), statics(&DEFAULT_FORWARD_CACHED)),
    };
    if let Some(rc) = cache {
        for h in &rc.key.headers {
            let name = HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| ConfigError::new(format!("routes[{i}].cache_key.headers"), h.clone(), ConfigErrorKind::BadValue("not a header name")))?;
            if is_edge_owned(h) {
                return Err(ConfigError::new(
                    format!("routes[{i}].cache_key.headers"),
                    h.clone(),
                    ConfigErrorKind::BadValue("set by the edge alone; it cannot be part of a cache key"),
                ));
            }
            forward.push(name.clone());
            cached.push(name);
        }
        if !rc.key.cookies.is_empty() {
            forward.push(http::header::COOKIE);
            cached.push(http::header::COOKIE);
        }
    }
    for list in [&mut forward, &mut cached] {
        crate::sort::sort_by(list, |a, b| a.as_str().cmp(b.as_str()));
        list.dedup();
    }
    Ok((forward, cached))
}

fn secret_ref(field: &str, raw: RawSecret) -> Result<SecretRef, ConfigError> {
    raw.validate(field).map_err(|e| ConfigError::new(field, "", ConfigErrorKind::Secret(Box::new(e))))
}

fn validate_links(raw: raw::RawLinks) -> Result<LinkRefs, ConfigError> {
    let mut keys: Vec<(String, SecretRef)> = Vec::with_capacity(raw.keys.len());
    for (i, k) in raw.keys.into_iter().enumerate() {
        // The same rule as `sign::LinkKey::new` (checked again there).
        let id_ok = (1..=32).contains(&k.id.len())
            && k.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !id_ok {
            return Err(ConfigError::new(
                format!("links.keys[{i}].id"),
                k.id,
                ConfigErrorKind::BadValue("use 1-32 of [A-Za-z0-9_-]"),
            ));
        }
        if keys.iter().any(|(id, _)| *id == k.id) {
            return Err(ConfigError::new(format!("links.keys[{i}].id"), k.id, ConfigErrorKind::BadValue("duplicate key id")));
        }
        let secret = secret_ref(&format!("links.keys[{i}].secret"), k.secret)?;
        keys.push((k.id, secret));
    }
    if !keys.iter().any(|(id, _)| *id == raw.current) {
        return Err(ConfigError::new(
            "links.current",
            raw.current,
            ConfigErrorKind::BadValue("names no key in links.keys"),
        ));
    }
    Ok(LinkRefs { keys, current: raw.current })
}

fn validate_presign(raw: raw::RawPresign, buckets: &BTreeMap<String, Bucket>) -> Result<PresignSettings, ConfigError> {
    let path = raw.path.unwrap_or_else(|| "/_offload/presign".to_owned());
    if !path.starts_with('/') || path.contains(['*', '?', '#', ' ']) {
        return Err(ConfigError::new("presign.path", path, ConfigErrorKind::BadValue("an exact path starting with '/'")));
    }
    let max_expires = raw.max_expires.unwrap_or(3600);
    if !(1..=604_800).contains(&max_expires) {
        return Err(ConfigError::new(
            "presign.max_expires",
            max_expires.to_string(),
            ConfigErrorKind::BadValue("must be 1..=604800 (7 days, the SigV4 limit)"),
        ));
    }
    if raw.buckets.is_empty() {
        return Err(ConfigError::new("presign.buckets", "[]", ConfigErrorKind::BadValue("name at least one bucket")));
    }
    for (i, b) in raw.buckets.iter().enumerate() {
        if !buckets.contains_key(b) {
            return Err(ConfigError::new(format!("presign.buckets[{i}]"), b.clone(), ConfigErrorKind::UnknownBucket));
        }
    }
    Ok(PresignSettings { path, max_expires, buckets: raw.buckets })
}

fn valid_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parse an origin or endpoint URL into (scheme, authority, base path).
fn parse_base_url(field: &str, value: &str) -> Result<(Scheme, String, String), ConfigError> {
    let bad = |why| ConfigError::new(field, value, ConfigErrorKind::BadUrl(why));
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
    if uri.query().is_some() {
        return Err(bad("must not have a query"));
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    Ok((scheme, authority.as_str().to_ascii_lowercase(), base_path))
}

/// `[buckets.<alias>]`: one bucket, with its alias.
impl TryFrom<(String, raw::RawBucket)> for Bucket {
    type Error = ConfigError;

    fn try_from((key, b): (String, raw::RawBucket)) -> Result<Self, ConfigError> {
        if !valid_name(&key) {
            return Err(ConfigError::new("buckets", key, ConfigErrorKind::BadName));
        }
        let field = format!("buckets.{key}.endpoint");
        let (scheme, authority, base_path) = parse_base_url(&field, &b.endpoint)?;
        if !base_path.is_empty() {
            return Err(ConfigError::new(
                field,
                b.endpoint,
                ConfigErrorKind::BadUrl("an S3 endpoint must not have a path"),
            ));
        }
        // S3 bucket naming rules (the subset that matters for URLs).
        let bucket_ok = (3..=63).contains(&b.bucket.len())
            && b.bucket
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
        if !bucket_ok {
            return Err(ConfigError::new(
                format!("buckets.{key}.bucket"),
                b.bucket,
                ConfigErrorKind::BadValue("S3 bucket names are 3-63 of [a-z0-9.-]"),
            ));
        }
        if b.region.is_empty() || !valid_name(&b.region) {
            return Err(ConfigError::new(
                format!("buckets.{key}.region"),
                b.region,
                ConfigErrorKind::BadValue("not a region name"),
            ));
        }
        let style = b.style.unwrap_or_default();
        if let Some(index) = &b.index {
            if index.is_empty() || index.starts_with('/') {
                return Err(ConfigError::new(
                    format!("buckets.{key}.index"),
                    index.clone(),
                    ConfigErrorKind::BadValue("must be a non-empty relative key"),
                ));
            }
        }
        let prefix = b.prefix.unwrap_or_default();
        if prefix.starts_with('/') {
            return Err(ConfigError::new(
                format!("buckets.{key}.prefix"),
                prefix,
                ConfigErrorKind::BadValue("must not start with '/'"),
            ));
        }
        if !b.signed && b.access_key_id.is_some() {
            return Err(ConfigError::new(
                format!("buckets.{key}.access_key_id"),
                "(set)",
                ConfigErrorKind::BadValue("credentials are only used when `signed = true`"),
            ));
        }
        if b.access_key_id.is_some() != b.secret_access_key.is_some() {
            return Err(ConfigError::new(
                format!("buckets.{key}.secret_access_key"),
                if b.secret_access_key.is_some() { "(set)" } else { "(missing)" },
                ConfigErrorKind::BadValue("give both access_key_id and secret_access_key, or neither"),
            ));
        }
        let credentials = match (b.access_key_id, b.secret_access_key) {
            (Some(id), Some(secret)) => Some(BucketCredentialRefs {
                access_key_id: secret_ref(&format!("buckets.{key}.access_key_id"), id)?,
                secret_access_key: secret_ref(&format!("buckets.{key}.secret_access_key"), secret)?,
            }),
            _ => None,
        };
        Ok(Bucket {
            alias: key,
            scheme,
            authority,
            bucket: b.bucket,
            region: b.region,
            style,
            index: b.index,
            prefix,
            signed: b.signed,
            credentials,
        })
    }
}

/// `[links]`: the signed-link keys, by reference.
impl TryFrom<raw::RawLinks> for LinkRefs {
    type Error = ConfigError;

    fn try_from(raw: raw::RawLinks) -> Result<Self, ConfigError> {
        validate_links(raw)
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let name = raw.edge.name.unwrap_or_else(|| "Offload".to_owned());
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ConfigError::new(
                "edge.name",
                name,
                ConfigErrorKind::BadValue("must be a token of [A-Za-z0-9._-]"),
            ));
        }

        let routing = Routing::from_raw(raw.regions, raw.routing)
            .map_err(|e| ConfigError::new("", "", ConfigErrorKind::Routing(e)))?;
        let cache = CacheSettings::try_from(raw.cache)?;

        let mut buckets = BTreeMap::new();
        for (key, b) in raw.buckets {
            buckets.insert(key.clone(), Bucket::try_from((key, b))?);
        }

        let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.into_iter().enumerate() {
            let pattern = PathPattern::parse(&r.path).map_err(|why| {
                ConfigError::new(format!("routes[{i}].path"), r.path.clone(), ConfigErrorKind::BadPattern(why))
            })?;
            if let Some(first) = routes.iter().position(|p| p.pattern == pattern) {
                return Err(ConfigError::new(
                    format!("routes[{i}].path"),
                    r.path,
                    ConfigErrorKind::DuplicateRoute(first),
                ));
            }
            let target = match (r.pool, r.bucket) {
                (pool, None) => {
                    let pool = match pool {
                        Some(p) => routing
                            .pool(&format!("routes[{i}].pool"), &p)
                            .map_err(|e| ConfigError::new("", "", ConfigErrorKind::Routing(e)))?,
                        None => routing.default_pool().clone(),
                    };
                    if routing.regions().is_empty() {
                        return Err(ConfigError::new(
                            format!("routes[{i}]"),
                            r.path,
                            ConfigErrorKind::BadValue("routes to web origins need at least one [regions.<name>]"),
                        ));
                    }
                    Target::Pool(pool)
                }
                (None, Some(b)) => {
                    if !buckets.contains_key(&b) {
                        return Err(ConfigError::new(
                            format!("routes[{i}].bucket"),
                            b,
                            ConfigErrorKind::UnknownBucket,
                        ));
                    }
                    Target::Bucket(b)
                }
                _ => {
                    return Err(ConfigError::new(
                        format!("routes[{i}]"),
                        r.path,
                        ConfigErrorKind::TargetCount,
                    ))
                }
            };
            if r.strip_prefix && !matches!(pattern, PathPattern::Prefix(_)) {
                return Err(ConfigError::new(
                    format!("routes[{i}].strip_prefix"),
                    "true",
                    ConfigErrorKind::BadValue("only a prefix pattern (ending in '*') can be stripped"),
                ));
            }
            let mut cache = match (r.cache, r.cache_key) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        format!("routes[{i}].cache_key"),
                        r.path,
                        ConfigErrorKind::BadValue("cache_key needs a `cache` table on the same route"),
                    ))
                }
                (Some(mut rules), key) => {
                    let key_ref = key.as_ref();
                    let keyed = |h: &str| key_ref.is_some_and(|k| k.headers.iter().any(|n| n.eq_ignore_ascii_case(h)));
                    rules.keyed_cookie = keyed("cookie");
                    rules.keyed_authorization = keyed("authorization");
                    rules.validate().map_err(|e| {
                        ConfigError::new(format!("routes[{i}].cache.{}", e.field()), e.value(), ConfigErrorKind::CacheRules(e.clone()))
                    })?;
                    let key = key.unwrap_or_default();
                    key.validate()
                        .map_err(|e| ConfigError::new(format!("routes[{i}].cache_key"), e.value(), ConfigErrorKind::CacheKey(e.clone())))?;
                    Some(RouteCache { rules, key })
                }
            };
            if cache.is_some() && matches!(target, Target::Bucket(_)) {
                // Buckets are cached too: no restriction. (Kept explicit.)
            }
            let (forward, forward_cached) = forward_lists(i, r.forward_headers.as_deref(), cache.as_ref())?;
            if let Some(rc) = cache.as_mut() {
                // A credential the upstream never sees cannot personalize
                // its answer: buckets get no cookies or Authorization, and
                // a route may leave them out of `forward_headers`.
                let reaches = |h: &http::HeaderName| {
                    matches!(target, Target::Pool(_)) && forward_cached.iter().any(|n| n == h)
                };
                rc.rules.keyed_cookie |= !reaches(&http::header::COOKIE);
                rc.rules.keyed_authorization |= !reaches(&http::header::AUTHORIZATION);
            }
            routes.push(Route {
                pattern,
                target,
                strip_prefix: r.strip_prefix,
                allow_unsafe_retry: r.allow_unsafe_retry.unwrap_or(routing.allow_unsafe_retry()),
                cache,
                signed_links: r.signed_links,
                forward,
                forward_cached,
            });
        }

        let links = raw.links.map(LinkRefs::try_from).transpose()?;
        if let Some(i) = routes.iter().position(|r| r.signed_links) {
            if links.is_none() {
                return Err(ConfigError::new(
                    format!("routes[{i}].signed_links"),
                    "true",
                    ConfigErrorKind::BadValue("needs a [links] table with keys"),
                ));
            }
        }
        let presign = match raw.presign {
            None => None,
            Some(p) => {
                if links.is_none() {
                    return Err(ConfigError::new(
                        "presign",
                        "(set)",
                        ConfigErrorKind::BadValue("needs a [links] table: the app's tokens are signed with those keys"),
                    ));
                }
                Some(validate_presign(p, &buckets)?)
            }
        };
        Ok(Config { name, routing, cache, buckets, routes, links, presign })
    }
}

#[cfg(test)]
mod tests;
