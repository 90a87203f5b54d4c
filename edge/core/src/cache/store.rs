//! A bounded in-memory response store, shared by every adapter (the
//! Workers L1 in front of the Cache API, the native test host).
//!
//! **Layout.** Entries are grouped by [`PrimaryKey`]; each primary key holds
//! up to `max_variants` variants told apart by their [`Variance`] (the
//! request's values for the stored response's `Vary` fields). Indexes by
//! URL ([`UrlKey`]) and by tag serve purges. Every map is a `BTreeMap`:
//! deterministic, and no hash flooding on `wasm32` where `HashMap` has no
//! random seed.
//!
//! **Eviction: CLOCK (FIFO with second chance).** Entries sit in insertion
//! order; a hit only sets a `visited` bit (no list surgery on the read
//! path, unlike LRU). To make room the hand takes the oldest entry: if
//! visited, it clears the bit and moves it to the back; otherwise it is
//! evicted. Entries read once ("one-hit wonders") go first, popular ones
//! survive scans. It is the classic approximation of LRU and the base of
//! SIEVE/S3-FIFO; chosen for simplicity and O(1) amortized work in safe
//! Rust.
//!
//! **Accounting.** An entry costs what it holds in memory: its body, each
//! header field (name, value and the `HeaderMap` slot), every copy of its
//! key strings (the slot and the indexes hold the primary key three times
//! and the URL twice), its variance, its tags (entry and tag index), the
//! strings of its policy, and a fixed [`ENTRY_OVERHEAD`] for the slot and
//! index nodes. [`Store::bytes`] is the sum, and never exceeds
//! [`StoreConfig::max_bytes`] after an insert or update.
//! Entries past [`CachePolicy::retain_for`] are dropped on lookup and by
//! [`Store::sweep`].
//!
//! **Purge.** By URL and by tag (`Surrogate-Key`, space-separated, and
//! `Cache-Tag`, comma-separated, from the origin response). Hard deletes;
//! soft marks the entry invalid ([`CachePolicy::invalidate`]): it must be
//! revalidated before use but may still be served under `stale-if-error`.
//! Unsafe-method responses invalidate their target and same-origin
//! `Location`/`Content-Location` ([`invalidation_targets`], RFC 9111 §4.4).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use http::header::{self, HeaderMap};
use http::Method;

use super::key::{KeyRules, PrimaryKey, UrlKey, Variance};
use super::policy::{CachePolicy, NoCacheReason};
use super::time::Timestamp;

/// Store limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Total bytes the store may hold.
    pub max_bytes: usize,
    /// Largest single entry; bigger responses are not stored.
    pub max_entry_bytes: usize,
    /// Variants kept per primary key (see [`KeyRules::max_variants`]).
    pub max_variants: usize,
}

/// The defaults fit a Workers isolate (128 MB for the JS heap, the Wasm
/// linear memory, which never shrinks, and everything in flight): the L1
/// holds at most 32 MiB, and each storable response being fetched holds a
/// cache copy of at most 4 MiB (bodies stream to the viewer; the copy is
/// dropped past the limit), so even 8 concurrent cache fills stay under
/// 64 MiB together with the store, leaving the rest for the Wasm code,
/// the JS heap and the stream buffers. 4 MiB covers HTML, JSON, scripts
/// and most images; larger objects stream through uncached (the platform
/// cache, L2, is the place for them).
impl Default for StoreConfig {
    fn default() -> Self {
        Self { max_bytes: 32 << 20, max_entry_bytes: 4 << 20, max_variants: 16 }
    }
}

/// Fixed bookkeeping cost counted per entry: the [`Slot`] itself (with its
/// `Entry` and `CachePolicy`) plus the `BTreeMap`/`VecDeque` nodes that
/// index it (slot id, key list, URL set, queue). A test checks that it
/// covers `size_of::<Slot>()` with room for the index nodes.
const ENTRY_OVERHEAD: usize = 512;
/// Per header field: the `HeaderMap` bucket (name repr, `Bytes` value,
/// hash, links) and its index slot.
const FIELD_OVERHEAD: usize = 80;
/// Per tag: the `String` in the entry and the tag index's key and id set.
const TAG_OVERHEAD: usize = 64;
/// Most tags kept per response, and their longest length.
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_LEN: usize = 256;

/// A response to store.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub policy: CachePolicy,
    pub status: u16,
    /// The origin's headers; [`CachePolicy::storable_headers`] is applied.
    pub headers: HeaderMap,
    pub body: Arc<[u8]>,
    /// Purge tags, usually [`tags_from_headers`] of the origin response.
    pub tags: Vec<String>,
    /// The route's variant cap ([`KeyRules::max_variants`]); the store's
    /// own [`StoreConfig::max_variants`] applies as well.
    pub max_variants: Option<usize>,
}

/// A stored response.
#[derive(Debug, Clone)]
pub struct Entry {
    policy: CachePolicy,
    status: u16,
    headers: HeaderMap,
    body: Arc<[u8]>,
    tags: Vec<String>,
    generation: u64,
}

impl Entry {
    pub fn policy(&self) -> &CachePolicy {
        &self.policy
    }
    pub fn status(&self) -> u16 {
        self.status
    }
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    pub fn body(&self) -> &Arc<[u8]> {
        &self.body
    }
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// Store-wide insertion counter value when this entry was written:
    /// larger is newer.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Found<'a> {
    /// Nothing stored for the primary key.
    Miss,
    /// Variants stored for the key, none matching this request.
    VaryMiss,
    Hit(&'a Arc<Entry>),
}

/// Hard deletes; soft marks stale (revalidate before use, `stale-if-error`
/// still allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeMode {
    Hard,
    Soft,
}

/// Why an insert was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("store: response not storable: {0}")]
    NotStorable(NoCacheReason),
    #[error("store: entry of {size} bytes exceeds the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
}

#[derive(Debug)]
struct Slot {
    primary: String,
    url: String,
    variance: Variance,
    /// Shared, so a hit takes it with a reference count, not a copy of
    /// its headers, policy and tags.
    entry: Arc<Entry>,
    size: usize,
    visited: bool,
}

/// The store. See the module docs.
#[derive(Debug, Default)]
pub struct Store {
    config: StoreConfig,
    slots: BTreeMap<u64, Slot>,
    by_key: BTreeMap<String, Vec<u64>>,
    by_url: BTreeMap<String, BTreeSet<String>>,
    by_tag: BTreeMap<String, BTreeSet<u64>>,
    queue: VecDeque<u64>,
    bytes: usize,
    next_id: u64,
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        Self { config, ..Self::default() }
    }

    /// Number of stored variants.
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    /// Bytes accounted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn clear(&mut self) {
        let config = self.config;
        *self = Self::new(config);
    }

    /// Find the variant of `key` matching `request_headers`. Entries past
    /// their retention at `now` are dropped. A hit marks the entry visited.
    /// Then ask [`CachePolicy::before_request`] what to do with it.
    pub fn lookup(&mut self, key: &PrimaryKey, request_headers: &HeaderMap, now: Timestamp) -> Found<'_> {
        let Some(ids) = self.by_key.get(key.as_str()) else {
            return Found::Miss;
        };
        let mut expired = Vec::new();
        let mut hit = None;
        for id in ids {
            let Some(slot) = self.slots.get(id) else { continue };
            if slot.entry.policy.retain_for(now) == 0 {
                expired.push(*id);
            } else if hit.is_none() && Variance::new(slot.entry.policy.vary(), request_headers) == slot.variance {
                hit = Some(*id);
            }
        }
        for id in expired {
            self.remove_id(id);
        }
        match hit.and_then(|id| self.slots.get_mut(&id)) {
            Some(slot) => {
                slot.visited = true;
                Found::Hit(&slot.entry)
            }
            None if self.by_key.contains_key(key.as_str()) => Found::VaryMiss,
            None => Found::Miss,
        }
    }

    /// Store a response for `key`, fetched with `request_headers` (they
    /// select the variant). Replaces the same variant; evicts as needed.
    /// Returns the entry's generation.
    pub fn insert(&mut self, key: &PrimaryKey, request_headers: &HeaderMap, new: NewEntry, now: Timestamp) -> Result<u64, InsertError> {
        if let Some(reason) = new.policy.no_cache_reason() {
            return Err(InsertError::NotStorable(reason));
        }
        if new.policy.retain_for(now) == 0 {
            return Err(InsertError::NotStorable(NoCacheReason::ZeroTtl));
        }
        let headers = new.policy.storable_headers(&new.headers);
        let variance = Variance::new(new.policy.vary(), request_headers);
        let mut tags: Vec<String> = new.tags.into_iter().filter(|t| !t.is_empty() && t.len() <= MAX_TAG_LEN).collect();
        crate::sort::sort_by(&mut tags, Ord::cmp);
        tags.dedup();
        tags.truncate(MAX_TAGS);
        let size = entry_size(key.as_str(), key.url().as_str(), &variance, &headers, &new.policy, &tags, new.body.len());
        let max = self.config.max_entry_bytes.min(self.config.max_bytes);
        if size > max {
            return Err(InsertError::TooLarge { size, max });
        }

        // Same variant: replace. Too many variants: drop the oldest.
        let existing: Vec<u64> = self.by_key.get(key.as_str()).cloned().unwrap_or_default();
        for id in &existing {
            if self.slots.get(id).is_some_and(|s| s.variance == variance) {
                self.remove_id(*id);
            }
        }
        let cap = new.max_variants.map_or(self.config.max_variants, |m| m.min(self.config.max_variants)).max(1);
        while self.by_key.get(key.as_str()).is_some_and(|v| v.len() >= cap) {
            match self.by_key.get(key.as_str()).and_then(|v| v.first().copied()) {
                Some(oldest) => self.remove_id(oldest),
                None => break,
            }
        }

        self.next_id += 1;
        let id = self.next_id;
        let entry = Entry { policy: new.policy, status: new.status, headers, body: new.body, tags, generation: id };
        for t in &entry.tags {
            self.by_tag.entry(t.clone()).or_default().insert(id);
        }
        self.by_key.entry(key.as_str().to_owned()).or_default().push(id);
        self.by_url.entry(key.url().as_str().to_owned()).or_default().insert(key.as_str().to_owned());
        let slot = Slot {
            primary: key.as_str().to_owned(),
            url: key.url().as_str().to_owned(),
            variance,
            entry: Arc::new(entry),
            size,
            visited: false,
        };
        self.slots.insert(id, slot);
        self.queue.push_back(id);
        self.bytes += size;
        self.evict();
        Ok(id)
    }

    /// After a 304: give the matching variant its updated headers and
    /// policy (from [`crate::cache::Revalidated::NotModified`]). A policy
    /// that is no longer storable removes the variant. Returns whether a
    /// variant was found.
    pub fn update(&mut self, key: &PrimaryKey, request_headers: &HeaderMap, headers: HeaderMap, policy: CachePolicy) -> bool {
        let Some(id) = self.find(key, request_headers) else { return false };
        if !policy.is_storable() {
            self.remove_id(id);
            return true;
        }
        let Some(slot) = self.slots.get_mut(&id) else { return false };
        let entry = Arc::make_mut(&mut slot.entry);
        entry.headers = policy.storable_headers(&headers);
        entry.policy = policy;
        let old = slot.size;
        slot.size = slot.cost();
        self.bytes = self.bytes.saturating_sub(old).saturating_add(slot.size);
        self.evict();
        true
    }

    /// Remove the variant of `key` matching `request_headers`.
    pub fn remove(&mut self, key: &PrimaryKey, request_headers: &HeaderMap) -> bool {
        match self.find(key, request_headers) {
            Some(id) => {
                self.remove_id(id);
                true
            }
            None => false,
        }
    }

    /// Purge every variant of every primary key under `url`.
    pub fn purge_url(&mut self, url: &UrlKey, mode: PurgeMode) -> usize {
        let ids: Vec<u64> = self
            .by_url
            .get(url.as_str())
            .into_iter()
            .flatten()
            .filter_map(|p| self.by_key.get(p))
            .flatten()
            .copied()
            .collect();
        self.purge_ids(ids, mode)
    }

    /// Purge every entry carrying `tag`.
    pub fn purge_tag(&mut self, tag: &str, mode: PurgeMode) -> usize {
        let ids: Vec<u64> = self.by_tag.get(tag).into_iter().flatten().copied().collect();
        self.purge_ids(ids, mode)
    }

    /// Drop entries past their retention at `now`. Returns how many.
    pub fn sweep(&mut self, now: Timestamp) -> usize {
        let dead: Vec<u64> =
            self.slots.iter().filter(|(_, s)| s.entry.policy.retain_for(now) == 0).map(|(id, _)| *id).collect();
        let n = dead.len();
        for id in dead {
            self.remove_id(id);
        }
        n
    }

    fn purge_ids(&mut self, ids: Vec<u64>, mode: PurgeMode) -> usize {
        let n = ids.len();
        for id in ids {
            match mode {
                PurgeMode::Hard => self.remove_id(id),
                PurgeMode::Soft => {
                    if let Some(s) = self.slots.get_mut(&id) {
                        Arc::make_mut(&mut s.entry).policy.invalidate();
                    }
                }
            }
        }
        n
    }

    fn find(&self, key: &PrimaryKey, request_headers: &HeaderMap) -> Option<u64> {
        self.by_key.get(key.as_str())?.iter().copied().find(|id| {
            self.slots
                .get(id)
                .is_some_and(|s| Variance::new(s.entry.policy.vary(), request_headers) == s.variance)
        })
    }

    fn remove_id(&mut self, id: u64) {
        let Some(slot) = self.slots.remove(&id) else { return };
        self.bytes = self.bytes.saturating_sub(slot.size);
        let key_empty = match self.by_key.get_mut(&slot.primary) {
            Some(ids) => {
                ids.retain(|i| *i != id);
                ids.is_empty()
            }
            None => false,
        };
        if key_empty {
            self.by_key.remove(&slot.primary);
            let url_empty = match self.by_url.get_mut(&slot.url) {
                Some(keys) => {
                    keys.remove(&slot.primary);
                    keys.is_empty()
                }
                None => false,
            };
            if url_empty {
                self.by_url.remove(&slot.url);
            }
        }
        for t in &slot.entry.tags {
            let empty = match self.by_tag.get_mut(t) {
                Some(ids) => {
                    ids.remove(&id);
                    ids.is_empty()
                }
                None => false,
            };
            if empty {
                self.by_tag.remove(t);
            }
        }
        // The queue forgets removed ids lazily; compact when mostly dead.
        if self.queue.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.queue.retain(|i| slots.contains_key(i));
        }
    }

    /// CLOCK eviction until within `max_bytes`.
    fn evict(&mut self) {
        // Each live entry is passed at most twice (once to clear its bit).
        let mut budget = self.queue.len().saturating_mul(2).saturating_add(1);
        while self.bytes > self.config.max_bytes && budget > 0 {
            budget -= 1;
            let Some(id) = self.queue.pop_front() else { break };
            match self.slots.get_mut(&id) {
                None => {}
                Some(slot) if slot.visited => {
                    slot.visited = false;
                    self.queue.push_back(id);
                }
                Some(_) => self.remove_id(id),
            }
        }
    }
}

impl Slot {
    /// What this slot costs (see the module docs, "Accounting").
    fn cost(&self) -> usize {
        let e = &self.entry;
        entry_size(&self.primary, &self.url, &self.variance, &e.headers, &e.policy, &e.tags, e.body.len())
    }
}

/// The bytes an entry holds in memory (see the module docs, "Accounting").
fn entry_size(
    primary: &str,
    url: &str,
    variance: &Variance,
    headers: &HeaderMap,
    policy: &CachePolicy,
    tags: &[String],
    body_len: usize,
) -> usize {
    ENTRY_OVERHEAD
        .saturating_add(body_len)
        .saturating_add(header_bytes(headers))
        .saturating_add(primary.len().saturating_mul(3))
        .saturating_add(url.len().saturating_mul(2))
        .saturating_add(variance.as_str().len())
        .saturating_add(tags.iter().map(|t| t.len().saturating_mul(2) + TAG_OVERHEAD).sum::<usize>())
        .saturating_add(policy.heap_bytes())
}

fn header_bytes(h: &HeaderMap) -> usize {
    h.iter().map(|(n, v)| n.as_str().len() + v.len() + FIELD_OVERHEAD).sum()
}

/// Purge tags from an origin response: `Surrogate-Key` (space-separated;
/// from an S3 bucket also `x-amz-meta-surrogate-key`, the object metadata
/// S3 keeps, as `cargo xtask publish` writes it) and `Cache-Tag`
/// (comma-separated). Sorted, de-duplicated, at most
/// [`MAX_TAGS`], each at most [`MAX_TAG_LEN`] bytes (longer ones dropped).
/// The pipeline should strip both fields from the viewer's response.
pub fn tags_from_headers(h: &HeaderMap) -> Vec<String> {
    let mut tags = Vec::new();
    for v in h.get_all("surrogate-key").iter().chain(h.get_all("x-amz-meta-surrogate-key")) {
        tags.extend(String::from_utf8_lossy(v.as_bytes()).split_ascii_whitespace().map(str::to_owned));
    }
    for v in h.get_all("cache-tag") {
        tags.extend(String::from_utf8_lossy(v.as_bytes()).split(',').map(|t| t.trim().to_owned()));
    }
    tags.retain(|t| !t.is_empty() && t.len() <= MAX_TAG_LEN);
    crate::sort::sort_by(&mut tags, Ord::cmp);
    tags.dedup();
    tags.truncate(MAX_TAGS);
    tags
}

/// Safe methods (RFC 9110 §9.2.1) never invalidate.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// RFC 9111 §4.4: the URLs to invalidate after a response with `status` to
/// a `method` request for `scheme://authority/path_and_query`: the target
/// itself and same-origin `Location` / `Content-Location`, when the method
/// is unsafe (or unknown) and the status is not an error (2xx, 3xx). The
/// adapter soft-purges each with [`Store::purge_url`].
pub fn invalidation_targets(
    rules: &KeyRules,
    method: &Method,
    status: u16,
    scheme: &str,
    authority: &str,
    path_and_query: &str,
    response_headers: &HeaderMap,
) -> Vec<UrlKey> {
    if is_safe(method) || !(200..400).contains(&status) {
        return Vec::new();
    }
    let Ok(target) = UrlKey::new(rules, scheme, authority, path_and_query) else {
        return Vec::new();
    };
    let mut out = vec![target.clone()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = response_headers.get(&name).and_then(|v| v.to_str().ok()) else { continue };
        if let Some(k) = resolve(rules, scheme, authority, path_and_query, v.trim()) {
            if k.origin() == target.origin() && !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

/// Resolve a URI reference against the request target (RFC 3986 §5.2,
/// without dot-segment removal).
fn resolve(rules: &KeyRules, scheme: &str, authority: &str, base_pq: &str, reference: &str) -> Option<UrlKey> {
    let lower = reference.get(..8).unwrap_or(reference).to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", reference.get(8..)?)
    } else if lower.starts_with("http://") {
        ("http", reference.get(7..)?)
    } else if let Some(r) = reference.strip_prefix("//") {
        (scheme, r)
    } else if reference.starts_with('/') {
        return UrlKey::new(rules, scheme, authority, reference).ok();
    } else if has_scheme(reference) {
        return None; // another scheme (mailto:, ftp:, ...)
    } else {
        let base_path = base_pq.split('?').next().unwrap_or("/");
        let dir = base_path.rfind('/').and_then(|i| base_path.get(..=i)).unwrap_or("/");
        return UrlKey::new(rules, scheme, authority, &format!("{dir}{reference}")).ok();
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, pq) = (rest.get(..split)?, rest.get(split..)?);
    let pq = if pq.starts_with('/') { pq.to_owned() } else { format!("/{pq}") };
    UrlKey::new(rules, scheme, auth, &pq).ok()
}

/// `scheme ":"` at the start (RFC 3986 §3.1).
fn has_scheme(reference: &str) -> bool {
    match reference.split_once(':') {
        Some((s, _)) => {
            s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
