//! The cache's settings, as validated from the config (`[cache]` and each
//! route's `cache` / `cache_key` tables; see `config`). They live here, with
//! the behaviour they configure: the cache never reads the config itself.

use super::key::KeyRules;
use super::store::StoreConfig;
use super::CacheRules;
use crate::secret::SecretRef;

/// A route's cache settings: freshness/storage rules and key rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCache {
    pub rules: CacheRules,
    pub key: KeyRules,
}

/// `[cache]`: the in-isolate store and the purge endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub store: StoreConfig,
    pub lock_timeout_ms: u64,
    pub purge_path: String,
    /// Where the purge token comes from (resolved at start, see
    /// `config::EdgeKeys`).
    pub purge_token: Option<SecretRef>,
}

/// The key rules of the route a canonical path belongs to: the purge
/// endpoint keys each listed URL as requests to it are keyed. The config
/// implements it (most specific route; `None`: the path is not cached).
pub trait RouteKeys {
    fn key_rules_for(&self, canonical_path: &str) -> Option<&KeyRules>;
}
