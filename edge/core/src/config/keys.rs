//! The run-time step: the config's secret references plus the values a
//! platform supplied ([`SecretMap`]) become the keys the edge signs and
//! verifies with. An executor builds this once per isolate (at cold
//! start); a missing or unusable secret is an error naming the field and
//! the source, and the edge does not start without it.
//!
//! ```
//! use offload_core::config::EdgeKeys;
//! use offload_core::secret::{Secret, SecretMap};
//! let cfg = offload_core::Config::from_toml(r#"
//!     [cache]
//!     purge_token = { binding = "OFFLOAD_PURGE_TOKEN" }
//! "#).unwrap();
//! let mut values = SecretMap::default();
//! let e = EdgeKeys::resolve(&cfg, &values).unwrap_err();
//! assert_eq!(e.to_string(), "cache.purge_token: secret binding \"OFFLOAD_PURGE_TOKEN\" is not set");
//! values.insert_binding("OFFLOAD_PURGE_TOKEN", Secret::new(b"0123456789abcdef".to_vec()));
//! assert!(EdgeKeys::resolve(&cfg, &values).unwrap().purge_token().is_some());
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Config;
use crate::route::auth::SigningKey;
use crate::secret::{Platform, Secret, SecretError, SecretMap};
use crate::sign::link::MIN_KEY_LEN;
use crate::sign::{AmzDate, Credentials, KeptSigningKey, LinkKey, LinkKeySet, SigningKey as SigV4Key};

/// Shortest origin-auth secret and purge token, bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// The resolved keys. `Debug` never shows a secret.
#[derive(Debug, Clone, Default)]
pub struct EdgeKeys {
    origin_auth: Option<SigningKey>,
    links: Option<LinkKeySet>,
    purge_token: Option<Secret>,
    buckets: BTreeMap<String, BucketCredentials>,
}

/// A bucket's credentials and the SigV4 key last derived from them (one
/// UTC day, region and service: derived once a day, not per signed
/// request; replaced with the credentials it came from).
#[derive(Debug, Clone)]
struct BucketCredentials {
    credentials: Credentials,
    day_key: KeptSigningKey,
}

impl BucketCredentials {
    fn new(credentials: Credentials) -> Self {
        Self { credentials, day_key: KeptSigningKey::default() }
    }
}

impl EdgeKeys {
    /// Resolve every reference of `config` from `values` (one platform's
    /// secrets). Buckets whose credentials name no source for the platform
    /// are skipped on Lambda@Edge only, where the function's role signs
    /// (see `Edge::set_bucket_credentials`); everywhere else a reference
    /// without a source for the platform is an error.
    pub fn resolve(config: &Config, values: &SecretMap) -> Result<Self, SecretError> {
        let platform = values.platform();
        let mut keys = EdgeKeys::default();
        if let Some(a) = config.routing().origin_auth() {
            let field = "routing.origin_auth.secret";
            let secret = values.resolve(field, a.secret())?;
            if secret.len() < MIN_TOKEN_LEN {
                return Err(SecretError::invalid(field, a.secret(), platform, "is shorter than 16 bytes"));
            }
            keys.origin_auth = Some(SigningKey::new(a.key_id(), secret));
        }
        if let Some(r) = &config.cache().purge_token {
            let field = "cache.purge_token";
            let token = values.resolve(field, r)?;
            if token.len() < MIN_TOKEN_LEN {
                return Err(SecretError::invalid(field, r, platform, "is shorter than 16 bytes"));
            }
            keys.purge_token = Some(token);
        }
        for b in config.buckets() {
            let Some(c) = b.credentials() else { continue };
            if platform == Platform::LambdaEdge
                && c.access_key_id.source(platform).is_none()
                && c.secret_access_key.source(platform).is_none()
            {
                continue;
            }
            let id_field = format!("buckets.{}.access_key_id", b.alias());
            let id = values.resolve(&id_field, &c.access_key_id)?;
            let id = String::from_utf8(id.expose().to_vec())
                .map_err(|_| SecretError::invalid(&id_field, &c.access_key_id, platform, "is not UTF-8"))?;
            let secret_field = format!("buckets.{}.secret_access_key", b.alias());
            let secret = values.resolve(&secret_field, &c.secret_access_key)?;
            let secret = String::from_utf8(secret.expose().to_vec())
                .map_err(|_| SecretError::invalid(&secret_field, &c.secret_access_key, platform, "is not UTF-8"))?;
            keys.buckets.insert(b.alias().to_owned(), BucketCredentials::new(Credentials::new(id, secret, None)));
        }
        if let Some(l) = config.links() {
            let mut set = Vec::with_capacity(l.keys.len());
            for (i, (id, r)) in l.keys.iter().enumerate() {
                let field = format!("links.keys[{i}].secret");
                let secret = values.resolve(&field, r)?;
                if secret.len() < MIN_KEY_LEN {
                    return Err(SecretError::invalid(&field, r, platform, "is shorter than 32 bytes"));
                }
                let key = LinkKey::new(id.clone(), secret.expose().to_vec())
                    .map_err(|_| SecretError::invalid(&field, r, platform, "is not a usable link key"))?;
                set.push(key);
            }
            // Ids were checked unique and `current` present by the config.
            keys.links = LinkKeySet::new(set, &l.current).ok();
        }
        Ok(keys)
    }

    /// The key origin requests are signed with.
    pub fn origin_auth(&self) -> Option<&SigningKey> {
        self.origin_auth.as_ref()
    }
    /// Signed-link keys (they also verify the app's presign tokens).
    pub fn links(&self) -> Option<&LinkKeySet> {
        self.links.as_ref()
    }
    /// The purge endpoint's bearer token.
    pub fn purge_token(&self) -> Option<&Secret> {
        self.purge_token.as_ref()
    }
    /// Credentials per bucket alias.
    pub fn bucket_credentials(&self, alias: &str) -> Option<&Credentials> {
        self.buckets.get(alias).map(|b| &b.credentials)
    }
    /// The SigV4 signing key of a bucket's credentials for `now_secs`'s UTC
    /// day, `region` and `service`: the kept one while its scope matches,
    /// else derived and kept. `None` without credentials or for a time the
    /// signer refuses anyway (it then derives and reports the error itself).
    pub fn bucket_signing_key(&self, alias: &str, now_secs: u64, region: &str, service: &str) -> Option<Arc<SigV4Key>> {
        let bucket = self.buckets.get(alias)?;
        let time = AmzDate::from_unix_secs(now_secs).ok()?;
        Some(bucket.day_key.get_or_derive(&time, region, service, || {
            SigV4Key::derive(&bucket.credentials, &time, region, service)
        }))
    }
    /// Replace a bucket's credentials (the Lambda role's, or refreshed ones);
    /// the key derived from the old ones goes with them.
    pub fn set_bucket_credentials(&mut self, alias: &str, credentials: Credentials) {
        self.buckets.insert(alias.to_owned(), BucketCredentials::new(credentials));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::secret::Platform;

    const DOC: &str = r#"
        [routing.origin_auth]
        key_id = "k1"
        secret = { binding = "AUTH", ssm = "/offload/auth" }
        [buckets.www]
        endpoint = "http://127.0.0.1:1"
        bucket = "www"
        region = "us-east-1"
        signed = true
        access_key_id = { binding = "S3_ID" }
        secret_access_key = { binding = "S3_SECRET" }
        [links]
        current = "a"
        keys = [{ id = "a", secret = { binding = "LINK_A", aws_secret = "offload/edge", json_key = "link_a" } }]
    "#;

    fn values() -> SecretMap {
        let mut m = SecretMap::default();
        m.insert_binding("AUTH", Secret::new(b"origin-auth-secret-0123".to_vec()));
        m.insert_binding("S3_ID", Secret::new(b"AKIDLOCAL".to_vec()));
        m.insert_binding("S3_SECRET", Secret::new(b"s3-secret-value".to_vec()));
        m.insert_binding("LINK_A", Secret::new(b"link-key-a-0123456789abcdef012345".to_vec()));
        m
    }

    #[test]
    fn every_reference_resolves_and_nothing_prints() {
        let cfg = Config::from_toml(DOC).unwrap();
        let fields: Vec<String> = cfg.secret_refs().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "routing.origin_auth.secret",
                "buckets.www.access_key_id",
                "buckets.www.secret_access_key",
                "links.keys[0].secret"
            ]
        );
        let keys = EdgeKeys::resolve(&cfg, &values()).unwrap();
        assert_eq!(keys.origin_auth().unwrap().kid(), "k1");
        assert_eq!(keys.links().unwrap().current().unwrap().id(), "a");
        assert!(keys.bucket_credentials("www").is_some());
        let dbg = format!("{keys:?} {cfg:?}");
        for v in ["origin-auth-secret", "s3-secret-value", "link-key-a"] {
            assert!(!dbg.contains(v), "{v} in {dbg}");
        }
    }

    #[test]
    fn missing_or_short_secrets_are_errors_naming_field_and_source() {
        let cfg = Config::from_toml(DOC).unwrap();
        let mut m = values();
        m.insert_binding("LINK_A", Secret::new(b"too-short-link-key".to_vec()));
        assert_eq!(
            EdgeKeys::resolve(&cfg, &m).unwrap_err().to_string(),
            "links.keys[0].secret: the value of secret binding \"LINK_A\" is shorter than 32 bytes"
        );
        let mut m = values();
        m.insert_binding("AUTH", Secret::new(b"short".to_vec()));
        let e = EdgeKeys::resolve(&cfg, &m).unwrap_err().to_string();
        assert!(e.starts_with("routing.origin_auth.secret: the value of secret binding \"AUTH\""), "{e}");
        assert!(!e.contains("short\""), "{e}");
        // Lambda@Edge: buckets without an AWS source use the role; the
        // rest must come from Secrets Manager / SSM.
        let mut lambda = SecretMap::new(Platform::LambdaEdge);
        let e = EdgeKeys::resolve(&cfg, &lambda).unwrap_err().to_string();
        assert_eq!(e, "routing.origin_auth.secret: SSM parameter \"/offload/auth\" is not set");
        let auth = cfg.routing().origin_auth().unwrap().secret().source(Platform::LambdaEdge).unwrap();
        lambda.insert(&auth, Secret::new(b"origin-auth-secret-0123".to_vec()));
        let link = cfg.links().unwrap().keys[0].1.source(Platform::LambdaEdge).unwrap();
        lambda.insert(&link, Secret::new(b"link-key-a-0123456789abcdef012345".to_vec()));
        let keys = EdgeKeys::resolve(&cfg, &lambda).unwrap();
        assert!(keys.bucket_credentials("www").is_none());
    }

    #[test]
    fn the_day_key_is_kept_per_scope_and_goes_with_its_credentials() {
        let day = 1_700_000_000; // 2023-11-14T22:13:20Z
        let mut keys = EdgeKeys::default();
        assert!(keys.bucket_signing_key("www", day, "us-east-1", "s3").is_none());
        let old = Credentials::new("AKID", "old-secret", None);
        keys.set_bucket_credentials("www", old.clone());
        let t = AmzDate::from_unix_secs(day).unwrap();
        let first = keys.bucket_signing_key("www", day, "us-east-1", "s3").unwrap();
        assert_eq!(*first, SigV4Key::derive(&old, &t, "us-east-1", "s3"));
        // Kept: the same key an hour later; a clone keeps it too.
        assert_eq!(keys.bucket_signing_key("www", day + 3600, "us-east-1", "s3").unwrap(), first);
        assert_eq!(keys.clone().buckets["www"].day_key.kept(), Some(first.clone()));
        // Another day, region or service: derived for that scope.
        let t2 = AmzDate::from_unix_secs(day + 86_400).unwrap();
        let next = keys.bucket_signing_key("www", day + 86_400, "us-east-1", "s3").unwrap();
        assert_eq!(*next, SigV4Key::derive(&old, &t2, "us-east-1", "s3"));
        assert_ne!(next, first);
        let eu = keys.bucket_signing_key("www", day + 86_400, "eu-west-1", "s3").unwrap();
        assert_eq!(*eu, SigV4Key::derive(&old, &t2, "eu-west-1", "s3"));
        // New credentials drop the key derived from the old ones.
        let new = Credentials::new("AKID", "new-secret", None);
        keys.set_bucket_credentials("www", new.clone());
        let renewed = keys.bucket_signing_key("www", day + 86_400, "eu-west-1", "s3").unwrap();
        assert_eq!(*renewed, SigV4Key::derive(&new, &t2, "eu-west-1", "s3"));
        assert_ne!(renewed, eu);
        // A time the signer refuses: no key (the signer reports the error).
        assert!(keys.bucket_signing_key("www", u64::MAX, "eu-west-1", "s3").is_none());
        // Debug never shows the secret or the key.
        let shown = format!("{keys:?}");
        assert!(!shown.contains("new-secret") && !shown.contains(&renewed.to_hex()), "{shown}");
    }
}
