//! Raw config as written in `offload.toml`: plain serde structs, no
//! validation. [`super::Config`] is built from these with `TryFrom`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub edge: RawEdge,
    #[serde(default)]
    pub origins: BTreeMap<String, RawOrigin>,
    #[serde(default)]
    pub buckets: BTreeMap<String, RawBucket>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEdge {
    /// Cache name used in `Cache-Status` (RFC 9211) and `Via`.
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    /// `http://host:port` or `https://host[:port]`, optionally with a base path.
    pub url: String,
    /// Host header to send instead of the URL's authority.
    pub host_header: Option<String>,
    /// Region name (e.g. `us-east-1`), for logs and routing.
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBucket {
    /// S3 endpoint, e.g. `https://s3.us-east-1.amazonaws.com` or a local
    /// S3-compatible server.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// AWS region used for signing.
    pub region: String,
    /// `path` (endpoint/bucket/key) or `virtual` (bucket.endpoint/key).
    #[serde(default)]
    pub style: Option<String>,
    /// Object served for a path ending in `/`.
    #[serde(default)]
    pub index: Option<String>,
    /// Key prefix prepended to every object key.
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Path pattern: an exact path (`/healthz`) or a prefix ending in `/*`
    /// (`/api/*`, `/*`).
    pub path: String,
    /// Name of an origin in `[origins]`.
    pub origin: Option<String>,
    /// Name of a bucket in `[buckets]`.
    pub bucket: Option<String>,
    /// Strip the matched prefix (without the `*`) before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
}
