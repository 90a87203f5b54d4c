//! Helpers shared by the fuzz targets: splitting one input into fields and
//! the config the edge-level targets run against.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use offload_core::secret::SecretMap;
use offload_core::{Config, Edge};

/// The fields of an input: byte runs separated by NUL (`\0`). Missing
/// fields read as empty, so any input is usable.
pub struct Fields<'a> {
    parts: Vec<&'a [u8]>,
}

impl<'a> Fields<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { parts: data.split(|b| *b == 0).collect() }
    }
    pub fn bytes(&self, i: usize) -> &'a [u8] {
        self.parts.get(i).copied().unwrap_or(&[])
    }
    /// Field `i` as text (invalid UTF-8 replaced: the targets test str APIs).
    pub fn text(&self, i: usize) -> String {
        String::from_utf8_lossy(self.bytes(i)).into_owned()
    }
    /// A number from the first bytes of field `i`.
    pub fn num(&self, i: usize) -> u64 {
        let mut n = 0u64;
        for b in self.bytes(i).iter().take(8) {
            n = (n << 8) | u64::from(*b);
        }
        n
    }
    /// Fields `from..` (header lines, list items).
    pub fn rest(&self, from: usize) -> &[&'a [u8]] {
        self.parts.get(from..).unwrap_or(&[])
    }
}

/// The link key of [`CONFIG`] (also used to mint valid tokens).
pub const LINK_KEY_ID: &str = "fuzz-1";
pub const LINK_SECRET: &str = "fuzz-link-key-0123456789abcdef-0123456789";
pub const PURGE_TOKEN: &str = "fuzz-purge-token";
/// Secrets that must never appear in any response.
pub const SECRETS: [&str; 4] = [LINK_SECRET, PURGE_TOKEN, "fuzz-origin-auth-secret", "fuzz-s3-secret-key"];

/// An edge config with every feature the targets reach: routes with and
/// without cache and signed links, a signed bucket, presign, purge.
pub const CONFIG: &str = r#"
[edge]
name = "Fuzz"

[regions.r1]
location = { lat = 38.9, lon = -77.4 }
continents = ["NA"]
origins = [{ url = "http://127.0.0.1:18701" }]

[routing.origin_auth]
key_id = "fuzz"
secret = { binding = "FUZZ_ORIGIN_AUTH" }

[cache]
purge_token = { binding = "FUZZ_PURGE_TOKEN" }

[buckets.uploads]
endpoint = "http://127.0.0.1:18703"
bucket = "uploads"
region = "us-east-1"
signed = true
access_key_id = { binding = "FUZZ_S3_ID" }
secret_access_key = { binding = "FUZZ_S3_SECRET" }

[links]
current = "fuzz-1"
keys = [{ id = "fuzz-1", secret = { binding = "FUZZ_LINK_KEY" } }]

[presign]
buckets = ["uploads"]
max_expires = 3600

[[routes]]
path = "/api/*"
cache = { default_ttl = 60 }
cache_key = { sort_query = true, headers = ["accept-language"], cookies = ["lang"] }

[[routes]]
path = "/eu/*"
strip_prefix = true
cache = { }

[[routes]]
path = "/private/*"
bucket = "uploads"
signed_links = true

[[routes]]
path = "/*"
cache = { default_ttl = 60 }
"#;

pub fn config() -> Config {
    Config::from_toml(CONFIG).expect("the fuzz harness config is valid")
}

/// The values of [`CONFIG`]'s secret references (its bindings).
pub fn secrets() -> SecretMap {
    SecretMap::from_bindings([
        ("FUZZ_ORIGIN_AUTH", "fuzz-origin-auth-secret"),
        ("FUZZ_PURGE_TOKEN", PURGE_TOKEN),
        ("FUZZ_S3_ID", "FUZZKEY"),
        ("FUZZ_S3_SECRET", "fuzz-s3-secret-key"),
        ("FUZZ_LINK_KEY", LINK_SECRET),
    ])
}

pub fn edge() -> Edge {
    Edge::new(config(), &secrets()).expect("the fuzz harness secrets resolve")
}

/// Panics if `body` contains any harness secret.
pub fn assert_no_secret(what: &str, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks a secret");
    }
}
