//! The edge's declarative config: routes → origins and buckets.
//!
//! One TOML (or JSON) document drives every platform. It is parsed into the
//! raw serde structs of [`raw`] and converted with `TryFrom` into the
//! validated [`Config`]; every error names the field and the value.
//!
//! ```
//! let cfg = offload_core::Config::from_toml(r#"
//!     [origins.us-east-1]
//!     url = "http://127.0.0.1:8701"
//!     [[routes]]
//!     path = "/api/*"
//!     origin = "us-east-1"
//! "#).unwrap();
//! assert_eq!(cfg.routes().len(), 1);
//! ```

pub mod raw;

use std::collections::BTreeMap;
use std::fmt;

use http::uri::{Scheme, Uri};

pub use raw::RawConfig;

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
    UnknownOrigin,
    UnknownBucket,
    BadUrl(&'static str),
    BadPattern(&'static str),
    DuplicateRoute(usize),
    TargetCount,
    BadName,
    BadValue(&'static str),
}

impl ConfigError {
    fn new(field: impl Into<String>, value: impl Into<String>, kind: ConfigErrorKind) -> Self {
        Self { field: field.into(), value: value.into(), kind }
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
            ConfigErrorKind::Syntax => write!(f, "config: {value}"),
            ConfigErrorKind::UnknownOrigin => {
                write!(f, "config: {field}: unknown origin {value:?}")
            }
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
                "config: {field}: route {value:?} needs exactly one of `origin` or `bucket`"
            ),
            ConfigErrorKind::BadName => write!(
                f,
                "config: {field}: bad name {value:?}: use 1-63 of [A-Za-z0-9._-]"
            ),
            ConfigErrorKind::BadValue(why) => write!(f, "config: {field}: bad value {value:?}: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A validated origin (a regional load balancer or web server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    name: String,
    scheme: Scheme,
    authority: String,
    base_path: String,
    host_header: Option<String>,
    region: Option<String>,
}

impl Origin {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `scheme://authority` with no trailing slash.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.base_path)
    }
    /// The Host header the origin expects.
    pub fn host(&self) -> &str {
        self.host_header.as_deref().unwrap_or(&self.authority)
    }
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
}

/// Addressing style of an S3 bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketStyle {
    /// `endpoint/bucket/key`
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
}

impl Bucket {
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
    Origin(String),
    Bucket(String),
}

/// A validated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pattern: PathPattern,
    target: Target,
    strip_prefix: bool,
}

impl Route {
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
    origins: BTreeMap<String, Origin>,
    buckets: BTreeMap<String, Bucket>,
    routes: Vec<Route>,
}

impl Config {
    /// Parse and validate a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::new("", e.to_string().trim_end(), ConfigErrorKind::Syntax))?;
        Self::try_from(raw)
    }

    /// Parse and validate a JSON document.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_json::from_str(text)
            .map_err(|e| ConfigError::new("", e.to_string(), ConfigErrorKind::Syntax))?;
        Self::try_from(raw)
    }

    /// Cache name for `Cache-Status` and `Via`.
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.origins.get(name)
    }
    pub fn origins(&self) -> impl Iterator<Item = &Origin> {
        self.origins.values()
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

        let mut origins = BTreeMap::new();
        for (key, o) in raw.origins {
            if !valid_name(&key) {
                return Err(ConfigError::new("origins", key, ConfigErrorKind::BadName));
            }
            let field = format!("origins.{key}.url");
            let (scheme, authority, base_path) = parse_base_url(&field, &o.url)?;
            if let Some(h) = &o.host_header {
                if h.is_empty() || http::HeaderValue::from_str(h).is_err() || h.contains(['/', ' ']) {
                    return Err(ConfigError::new(
                        format!("origins.{key}.host_header"),
                        h.clone(),
                        ConfigErrorKind::BadValue("not a valid host"),
                    ));
                }
            }
            origins.insert(
                key.clone(),
                Origin {
                    name: key,
                    scheme,
                    authority,
                    base_path,
                    host_header: o.host_header,
                    region: o.region,
                },
            );
        }

        let mut buckets = BTreeMap::new();
        for (key, b) in raw.buckets {
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
            let style = match b.style.as_deref() {
                None | Some("path") => BucketStyle::Path,
                Some("virtual") => BucketStyle::Virtual,
                Some(other) => {
                    return Err(ConfigError::new(
                        format!("buckets.{key}.style"),
                        other,
                        ConfigErrorKind::BadValue("expected \"path\" or \"virtual\""),
                    ))
                }
            };
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
            buckets.insert(
                key.clone(),
                Bucket {
                    alias: key,
                    scheme,
                    authority,
                    bucket: b.bucket,
                    region: b.region,
                    style,
                    index: b.index,
                    prefix,
                },
            );
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
            let target = match (r.origin, r.bucket) {
                (Some(o), None) => {
                    if !origins.contains_key(&o) {
                        return Err(ConfigError::new(
                            format!("routes[{i}].origin"),
                            o,
                            ConfigErrorKind::UnknownOrigin,
                        ));
                    }
                    Target::Origin(o)
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
            routes.push(Route { pattern, target, strip_prefix: r.strip_prefix });
        }

        Ok(Config { name, origins, buckets, routes })
    }
}

#[cfg(test)]
mod tests;
