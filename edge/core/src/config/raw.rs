//! Raw config as written in `offload.toml`: plain serde structs, no
//! validation. [`super::Config`] is built from these with `TryFrom`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cache::key::KeyRules;
use crate::cache::CacheRules;
use crate::route::config::{RawPool, RawRegions, RawRouting};
use crate::secret::RawSecret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub edge: RawEdge,
    /// `[regions.<name>]`: regional origins (see `route::config`).
    #[serde(default)]
    pub regions: RawRegions,
    /// `[routing]`: pool, failover, health, retry budget, stickiness, auth.
    #[serde(default)]
    pub routing: RawRouting,
    /// `[cache]`: the in-isolate store and the purge endpoint.
    #[serde(default)]
    pub cache: RawCacheSettings,
    #[serde(default)]
    pub buckets: BTreeMap<String, RawBucket>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// `[links]`: keys for signed links (and the app's presign tokens).
    pub links: Option<RawLinks>,
    /// `[presign]`: the endpoint that mints S3 presigned URLs.
    pub presign: Option<RawPresign>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinks {
    /// Every key that verifies; rotate by adding a key, switching
    /// `current`, and removing the old key once its links have expired.
    pub keys: Vec<RawLinkKey>,
    /// The id of the key new links are issued with.
    pub current: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinkKey {
    pub id: String,
    /// Where the key comes from (see [`crate::secret`]); the value is at
    /// least 32 bytes.
    pub secret: RawSecret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPresign {
    /// Endpoint path (default `/_offload/presign`).
    pub path: Option<String>,
    /// Longest lifetime a presigned URL may get, seconds (default 3600,
    /// at most 604800).
    pub max_expires: Option<u64>,
    /// Bucket aliases URLs may be minted for.
    pub buckets: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEdge {
    /// Cache name used in `Cache-Status` (RFC 9211) and `Via`.
    pub name: Option<String>,
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
    pub style: Option<super::BucketStyle>,
    /// Object served for a path ending in `/`.
    #[serde(default)]
    pub index: Option<String>,
    /// Key prefix prepended to every object key.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Sign edge → bucket requests (SigV4 header auth, like CloudFront's
    /// origin access control). The credentials are secret references
    /// (see [`crate::secret`]); Lambda@Edge signs with its role when they
    /// name no AWS source.
    #[serde(default)]
    pub signed: bool,
    pub access_key_id: Option<RawSecret>,
    pub secret_access_key: Option<RawSecret>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheSettings {
    /// Bytes the in-isolate (L1) store may hold (default 32 MiB).
    pub max_bytes: Option<usize>,
    /// Largest single response stored (default 4 MiB).
    pub max_entry_bytes: Option<usize>,
    /// How long a coalesced request waits for the leader (default 5000 ms).
    pub lock_timeout_ms: Option<u64>,
    /// Path of the purge endpoint (default `/_offload/purge`).
    pub purge_path: Option<String>,
    /// Where the purge endpoint's bearer token comes from (see
    /// [`crate::secret`]). No token: the endpoint is disabled.
    pub purge_token: Option<RawSecret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Path pattern: an exact path (`/healthz`) or a prefix ending in `/*`
    /// (`/api/*`, `/*`).
    pub path: String,
    /// Regions this route may use: `"all"` or a list of `[regions]`
    /// names (default: `[routing] pool`).
    pub pool: Option<RawPool>,
    /// Name of a bucket in `[buckets]`.
    pub bucket: Option<String>,
    /// Strip the matched prefix (without the `*`) before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Retry non-idempotent methods on another region (only if the body
    /// was not sent yet). Default: `[routing.failover] allow_unsafe_retry`.
    pub allow_unsafe_retry: Option<bool>,
    /// Cache this route's responses at the edge with these rules.
    /// Absent: the edge does not cache (`Cache-Status: ...; fwd=bypass`).
    pub cache: Option<CacheRules>,
    /// How cache keys are built for this route.
    pub cache_key: Option<KeyRules>,
    /// Require a valid signed-link `token` query parameter (see `[links]`).
    #[serde(default)]
    pub signed_links: bool,
    /// Viewer request headers web origins get (lower-case names; the
    /// route's cache-key headers are always added). Default: see
    /// `proxy::headers::DEFAULT_FORWARD` (and `DEFAULT_FORWARD_CACHED` for
    /// GET/HEAD on cached routes). Forwarding headers are the edge's alone.
    pub forward_headers: Option<Vec<String>>,
}
