#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
use super::*;
use crate::cache::policy::{CacheRules, Exchange};
use http::{HeaderName, HeaderValue};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const T0: u64 = 1_000_000;

fn t(s: u64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn key(path: &str) -> PrimaryKey {
    let rules = KeyRules::default();
    let url = UrlKey::new(&rules, "https", "example.com", path).unwrap();
    PrimaryKey::new(&rules, &Method::GET, url, &HeaderMap::new()).unwrap()
}

fn entry(resp: &[(&str, &str)], body: &str) -> NewEntry {
    let h = headers(resp);
    let req = HeaderMap::new();
    let policy = CachePolicy::new(&Exchange::new(&Method::GET, &req, 200, &h, t(T0), t(T0)), &CacheRules::default());
    NewEntry { tags: tags_from_headers(&h), policy, status: 200, headers: h, body: Arc::from(body.as_bytes()), max_variants: None }
}

fn body_of(found: Found<'_>) -> Option<String> {
    match found {
        Found::Hit(e) => Some(String::from_utf8(e.body().to_vec()).unwrap()),
        _ => None,
    }
}

const CC: (&str, &str) = ("cache-control", "max-age=60");

#[test]
fn insert_lookup_replace() {
    let mut s = Store::new(StoreConfig::default());
    let k = key("/a");
    let none = HeaderMap::new();
    assert!(matches!(s.lookup(&k, &none, t(T0)), Found::Miss));
    let g1 = s.insert(&k, &none, entry(&[CC], "one"), t(T0)).unwrap();
    assert_eq!(body_of(s.lookup(&k, &none, t(T0))).as_deref(), Some("one"));
    let g2 = s.insert(&k, &none, entry(&[CC], "two"), t(T0)).unwrap();
    assert!(g2 > g1);
    assert_eq!(s.len(), 1);
    let Found::Hit(e) = s.lookup(&k, &none, t(T0)) else { panic!() };
    assert_eq!(e.generation(), g2);
    assert_eq!(&e.body()[..], b"two");
    assert!(matches!(s.lookup(&key("/b"), &none, t(T0)), Found::Miss));
}

#[test]
fn refuses_unstorable_and_oversized() {
    let mut s = Store::new(StoreConfig { max_bytes: 10_000, max_entry_bytes: 1_000, max_variants: 4 });
    let none = HeaderMap::new();
    let e = s.insert(&key("/a"), &none, entry(&[("cache-control", "no-store")], "x"), t(T0)).unwrap_err();
    assert_eq!(e, InsertError::NotStorable(NoCacheReason::NoStore));
    let e = s.insert(&key("/a"), &none, entry(&[("set-cookie", "s=1"), CC], "x"), t(T0)).unwrap_err();
    assert_eq!(e, InsertError::NotStorable(NoCacheReason::SetCookie));
    let e = s.insert(&key("/a"), &none, entry(&[CC], &"x".repeat(2_000)), t(T0)).unwrap_err();
    assert!(matches!(e, InsertError::TooLarge { max: 1_000, .. }));
    // Already past retention when it arrives.
    let e = s.insert(&key("/a"), &none, entry(&[CC], "x"), t(T0 + 61)).unwrap_err();
    assert_eq!(e, InsertError::NotStorable(NoCacheReason::ZeroTtl));
    assert!(s.is_empty());
    assert_eq!(s.bytes(), 0);
}

#[test]
fn stored_headers_never_keep_cookies_or_private_fields() {
    let mut s = Store::new(StoreConfig::default());
    let none = HeaderMap::new();
    let mut e = entry(&[("cache-control", "max-age=60, private=\"x-user\""), ("x-user", "alice"), ("connection", "close")], "b");
    e.headers.append("set-cookie", HeaderValue::from_static("s=1"));
    s.insert(&key("/a"), &none, e, t(T0)).unwrap();
    let Found::Hit(e) = s.lookup(&key("/a"), &none, t(T0)) else { panic!() };
    assert_eq!(e.headers().len(), 1, "{:?}", e.headers());
}

#[test]
fn variants_by_vary_and_cap() {
    let mut s = Store::new(StoreConfig { max_variants: 2, ..StoreConfig::default() });
    let k = key("/v");
    let vary = [CC, ("vary", "Accept-Language")];
    let fr = headers(&[("accept-language", "fr")]);
    let de = headers(&[("accept-language", "de")]);
    let en = headers(&[("accept-language", "en")]);
    s.insert(&k, &fr, entry(&vary, "fr"), t(T0)).unwrap();
    assert!(matches!(s.lookup(&k, &de, t(T0)), Found::VaryMiss));
    s.insert(&k, &de, entry(&vary, "de"), t(T0)).unwrap();
    assert_eq!(body_of(s.lookup(&k, &fr, t(T0))).as_deref(), Some("fr"));
    assert_eq!(body_of(s.lookup(&k, &de, t(T0))).as_deref(), Some("de"));
    // A third variant pushes out the oldest.
    s.insert(&k, &en, entry(&vary, "en"), t(T0)).unwrap();
    assert_eq!(s.len(), 2);
    assert!(matches!(s.lookup(&k, &fr, t(T0)), Found::VaryMiss));
    assert_eq!(body_of(s.lookup(&k, &en, t(T0))).as_deref(), Some("en"));
    // The route's cap applies per insert.
    let mut one = entry(&vary, "fr");
    one.max_variants = Some(1);
    s.insert(&k, &fr, one, t(T0)).unwrap();
    assert_eq!(s.len(), 1);
    assert!(matches!(s.lookup(&k, &en, t(T0)), Found::VaryMiss));
    s.insert(&k, &en, entry(&vary, "en"), t(T0)).unwrap();
    assert!(s.remove(&k, &en));
    assert!(!s.remove(&k, &en));
    assert_eq!(s.len(), 1);
}

#[test]
fn vary_star_is_never_stored() {
    let mut s = Store::new(StoreConfig::default());
    let e = s.insert(&key("/a"), &HeaderMap::new(), entry(&[CC, ("vary", "*")], "x"), t(T0)).unwrap_err();
    assert_eq!(e, InsertError::NotStorable(NoCacheReason::VaryStar));
}

#[test]
fn clock_eviction_keeps_visited_entries() {
    let none = HeaderMap::new();
    let one = {
        let mut probe = Store::new(StoreConfig::default());
        probe.insert(&key("/0"), &none, entry(&[CC], "x"), t(T0)).unwrap();
        probe.bytes()
    };
    let mut s = Store::new(StoreConfig { max_bytes: one * 3 + one / 2, ..StoreConfig::default() });
    for p in ["/0", "/1", "/2"] {
        s.insert(&key(p), &none, entry(&[CC], "x"), t(T0)).unwrap();
    }
    assert_eq!(s.len(), 3);
    // /0 is popular; /1 and /2 are not.
    assert!(matches!(s.lookup(&key("/0"), &none, t(T0)), Found::Hit(_)));
    s.insert(&key("/3"), &none, entry(&[CC], "x"), t(T0)).unwrap();
    assert_eq!(s.len(), 3);
    assert!(matches!(s.lookup(&key("/0"), &none, t(T0)), Found::Hit(_)));
    assert!(matches!(s.lookup(&key("/1"), &none, t(T0)), Found::Miss), "the unvisited oldest goes first");
    assert!(matches!(s.lookup(&key("/3"), &none, t(T0)), Found::Hit(_)));
    assert!(s.bytes() <= one * 3 + one / 2);
    // Many inserts keep the byte bound and the queue compact.
    for i in 0..500 {
        s.insert(&key(&format!("/n{i}")), &none, entry(&[CC], "x"), t(T0)).unwrap();
    }
    assert!(s.len() <= 3);
    assert!(s.queue.len() <= 2 * s.slots.len() + 64);
}

#[test]
fn expired_entries_are_dropped() {
    let mut s = Store::new(StoreConfig::default());
    let none = HeaderMap::new();
    s.insert(&key("/a"), &none, entry(&[CC], "x"), t(T0)).unwrap();
    s.insert(&key("/b"), &none, entry(&[("cache-control", "max-age=600")], "x"), t(T0)).unwrap();
    assert!(matches!(s.lookup(&key("/a"), &none, t(T0 + 59)), Found::Hit(_)));
    assert!(matches!(s.lookup(&key("/a"), &none, t(T0 + 60)), Found::Miss));
    assert_eq!(s.len(), 1);
    assert_eq!(s.sweep(t(T0 + 600)), 1);
    assert!(s.is_empty());
    assert_eq!(s.bytes(), 0);
}

#[test]
fn purge_by_url_and_tag_hard_and_soft() {
    let mut s = Store::new(StoreConfig::default());
    let none = HeaderMap::new();
    let rules = KeyRules::default();
    let tagged = [("cache-control", "max-age=60, stale-if-error=600"), ("surrogate-key", "product-1  all"), ("cache-tag", "News, all")];
    s.insert(&key("/p1"), &none, entry(&tagged, "p1"), t(T0)).unwrap();
    s.insert(&key("/p2"), &none, entry(&[CC, ("cache-tag", "all")], "p2"), t(T0)).unwrap();
    s.insert(&key("/p3?x=1"), &none, entry(&[CC], "p3"), t(T0)).unwrap();
    assert_eq!(s.lookup(&key("/p1"), &none, t(T0)).tags_for_test(), ["News", "all", "product-1"]);

    // Soft: entry stays, must revalidate, may serve on error.
    assert_eq!(s.purge_tag("product-1", PurgeMode::Soft), 1);
    let Found::Hit(e) = s.lookup(&key("/p1"), &none, t(T0)) else { panic!() };
    assert!(e.policy().is_invalidated());
    assert!(!e.policy().is_fresh(t(T0)));
    assert!(e.policy().can_serve_stale_on_error(t(T0)));

    // Hard by tag.
    assert_eq!(s.purge_tag("all", PurgeMode::Hard), 2);
    assert_eq!(s.len(), 1);
    assert_eq!(s.purge_tag("all", PurgeMode::Hard), 0);
    assert!(s.by_tag.is_empty());

    // Hard by URL (normalized: host case, utm_ dropped).
    let url = UrlKey::new(&rules, "https", "EXAMPLE.com", "/p3?x=1&utm_source=a").unwrap();
    assert_eq!(s.purge_url(&url, PurgeMode::Hard), 1);
    assert!(s.is_empty());
    assert!(s.by_url.is_empty() && s.by_key.is_empty());
    assert_eq!(s.bytes(), 0);
}

#[test]
fn purge_url_covers_all_primary_keys_and_variants() {
    let rules = KeyRules { headers: vec!["x-device".into()], ..KeyRules::default() };
    let url = UrlKey::new(&rules, "https", "example.com", "/a").unwrap();
    let mut s = Store::new(StoreConfig::default());
    for dev in ["mobile", "desktop"] {
        let req = headers(&[("x-device", dev), ("accept-language", "fr")]);
        let k = PrimaryKey::new(&rules, &Method::GET, url.clone(), &req).unwrap();
        s.insert(&k, &req, entry(&[CC, ("vary", "accept-language")], dev), t(T0)).unwrap();
    }
    assert_eq!(s.len(), 2);
    assert_eq!(s.purge_url(&url, PurgeMode::Hard), 2);
    assert!(s.is_empty());
}

#[test]
fn update_after_304() {
    let mut s = Store::new(StoreConfig::default());
    let none = HeaderMap::new();
    let k = key("/a");
    let mut e = entry(&[CC, ("etag", "\"a\"")], "body");
    e.policy.invalidate();
    s.insert(&k, &none, e, t(T0)).unwrap();
    let new_headers = headers(&[("cache-control", "max-age=300"), ("etag", "\"a\"")]);
    let new_policy = CachePolicy::new(
        &Exchange::new(&Method::GET, &none, 200, &new_headers, t(T0 + 100), t(T0 + 100)),
        &CacheRules::default(),
    );
    assert!(s.update(&k, &none, new_headers, new_policy));
    let Found::Hit(e) = s.lookup(&k, &none, t(T0 + 200)) else { panic!() };
    assert!(e.policy().is_fresh(t(T0 + 200)));
    assert_eq!(e.headers()["cache-control"], "max-age=300");
    assert_eq!(&**e.body(), b"body");
    let p = e.policy().clone();
    assert!(!s.update(&key("/zzz"), &none, HeaderMap::new(), p));
}

#[test]
fn tags_parsing() {
    let h = headers(&[("surrogate-key", " a  b\tc "), ("cache-tag", "c, d,,e "), ("surrogate-key", &"x".repeat(MAX_TAG_LEN + 1))]);
    assert_eq!(tags_from_headers(&h), ["a", "b", "c", "d", "e"]);
    let many: Vec<String> = (0..100).map(|i| format!("t{i:03}")).collect();
    let h = headers(&[("surrogate-key", &many.join(" "))]);
    assert_eq!(tags_from_headers(&h).len(), MAX_TAGS);
    // S3 keeps custom fields only as x-amz-meta-*.
    let h = headers(&[("x-amz-meta-surrogate-key", "site html"), ("surrogate-key", "a")]);
    assert_eq!(tags_from_headers(&h), ["a", "html", "site"]);
}

#[test]
fn unsafe_method_invalidation_table() {
    let rules = KeyRules::default();
    let u = |host: &str, pq: &str| UrlKey::new(&rules, "https", host, pq).unwrap();
    let cases: Vec<(Method, u16, Vec<(&str, &str)>, Vec<UrlKey>)> = vec![
        (Method::GET, 200, vec![], vec![]),
        (Method::HEAD, 200, vec![], vec![]),
        (Method::OPTIONS, 200, vec![], vec![]),
        (Method::POST, 500, vec![], vec![]),
        (Method::POST, 404, vec![], vec![]),
        (Method::POST, 200, vec![], vec![u("example.com", "/items/1?x=1")]),
        (Method::from_bytes(b"PURGEISH").unwrap(), 204, vec![], vec![u("example.com", "/items/1?x=1")]),
        (
            Method::POST,
            201,
            vec![("location", "/items/2"), ("content-location", "3")],
            vec![u("example.com", "/items/1?x=1"), u("example.com", "/items/2"), u("example.com", "/items/3")],
        ),
        (
            Method::PUT,
            303,
            vec![("location", "https://EXAMPLE.com:443/x"), ("content-location", "https://other.com/y")],
            vec![u("example.com", "/items/1?x=1"), u("example.com", "/x")],
        ),
        (Method::DELETE, 200, vec![("location", "http://example.com/x")], vec![u("example.com", "/items/1?x=1")]),
        (
            Method::PATCH,
            200,
            vec![("location", "//example.com/z?utm_source=q"), ("content-location", "mailto:a@b")],
            vec![u("example.com", "/items/1?x=1"), u("example.com", "/z")],
        ),
    ];
    for (m, status, resp, want) in cases {
        let got = invalidation_targets(&rules, &m, status, "https", "example.com", "/items/1?x=1", &headers(&resp));
        assert_eq!(got, want, "{m} {status} {resp:?}");
    }
}

#[test]
fn post_invalidates_cached_get() {
    let rules = KeyRules::default();
    let mut s = Store::new(StoreConfig::default());
    let none = HeaderMap::new();
    s.insert(&key("/items/1"), &none, entry(&[CC, ("etag", "\"a\"")], "old"), t(T0)).unwrap();
    for url in invalidation_targets(&rules, &Method::POST, 200, "https", "example.com", "/items/1", &none) {
        s.purge_url(&url, PurgeMode::Soft);
    }
    let Found::Hit(e) = s.lookup(&key("/items/1"), &none, t(T0 + 1)) else { panic!() };
    assert!(!e.policy().is_fresh(t(T0 + 1)));
}

impl Found<'_> {
    fn tags_for_test(&self) -> Vec<String> {
        match self {
            Found::Hit(e) => e.tags().to_vec(),
            _ => Vec::new(),
        }
    }
}

// ----- accounting -----------------------------------------------------------

#[test]
fn the_per_entry_overhead_covers_the_slot_and_its_index_nodes() {
    // The slot itself plus one id in the key list, the queue and the
    // slot map's node share (id + pointer-sized links), with room to spare.
    let fixed = std::mem::size_of::<Slot>() + 3 * std::mem::size_of::<u64>() + 4 * std::mem::size_of::<usize>();
    assert!(fixed <= ENTRY_OVERHEAD, "Slot is {} bytes; ENTRY_OVERHEAD {ENTRY_OVERHEAD} is too small", std::mem::size_of::<Slot>());
}

#[test]
fn every_byte_an_entry_holds_is_counted() {
    let mut s = Store::new(StoreConfig::default());
    let long_path = format!("/a/{}", "p".repeat(3000));
    let k = key(&long_path);
    let req = headers(&[("accept-language", &"fr-".repeat(500))]);
    let resp = [CC, ("vary", "Accept-Language"), ("etag", "\"v1\""), ("surrogate-key", "t1 t2 t3"), ("x-long", &"v".repeat(2000))];
    let e = entry(&resp, &"b".repeat(10_000));
    let policy_heap = e.policy.heap_bytes();
    s.insert(&k, &req, e, t(T0)).unwrap();
    let Found::Hit(stored) = s.lookup(&k, &req, t(T0)) else { panic!() };
    let field_bytes: usize = stored.headers().iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
    let fields = stored.headers().len();
    let variance = Variance::new(stored.policy().vary(), &req);
    assert!(variance.as_str().len() >= 1500, "the variance holds the request's value");
    let tags: usize = stored.tags().iter().map(String::len).sum();
    let want = ENTRY_OVERHEAD
        + 10_000
        + field_bytes
        + fields * FIELD_OVERHEAD
        + 3 * k.as_str().len()
        + 2 * k.url().as_str().len()
        + variance.as_str().len()
        + 2 * tags
        + stored.tags().len() * TAG_OVERHEAD
        + policy_heap;
    assert_eq!(s.bytes(), want);
    // Keys and variance dominate the body here: they are real memory.
    assert!(s.bytes() > 10_000 + 3 * 3000 + 2 * 3000 + 1500);
    // Removing gives every byte back.
    assert!(s.remove(&k, &req));
    assert_eq!(s.bytes(), 0);
}

#[test]
fn a_304_update_recounts_the_entry() {
    let mut s = Store::new(StoreConfig::default());
    let none = HeaderMap::new();
    let k = key("/u");
    s.insert(&k, &none, entry(&[CC, ("etag", "\"v1\"")], "body"), t(T0)).unwrap();
    let before = s.bytes();
    let bigger = headers(&[CC, ("etag", "\"v1\""), ("x-new", &"n".repeat(1000))]);
    let policy = CachePolicy::new(&Exchange::new(&Method::GET, &none, 200, &bigger, t(T0), t(T0)), &CacheRules::default());
    assert!(s.update(&k, &none, bigger, policy));
    assert_eq!(s.bytes(), before + "x-new".len() + 1000 + FIELD_OVERHEAD);
    assert!(s.remove(&k, &none));
    assert_eq!(s.bytes(), 0);
}

#[test]
fn long_keys_and_variants_cannot_exceed_the_store_bound() {
    // One-byte bodies under 4 KiB keys and 1 KiB variances: a store that
    // counted bodies only would hold all 2000 of them.
    let max = 1 << 20;
    let mut s = Store::new(StoreConfig { max_bytes: max, max_entry_bytes: max, max_variants: 16 });
    for i in 0..2000 {
        let k = key(&format!("/{i}/{}", "k".repeat(4096)));
        let req = headers(&[("accept-language", &format!("{i}{}", "x".repeat(1024)))]);
        s.insert(&k, &req, entry(&[CC, ("vary", "accept-language")], "b"), t(T0)).unwrap();
        assert!(s.bytes() <= max, "{} bytes after insert {i}", s.bytes());
    }
    assert!(s.len() < max / (3 * 4096 + 2 * 4096 + 1024), "{} entries held", s.len());
    let recount: usize = s.slots.values().map(Slot::cost).sum();
    assert_eq!(recount, s.bytes());
}

#[test]
fn defaults_fit_a_128_mb_isolate_with_fills_in_flight() {
    let d = StoreConfig::default();
    assert_eq!((d.max_bytes, d.max_entry_bytes), (32 << 20, 4 << 20));
    // The store plus eight concurrent cache copies stay under half the isolate.
    assert!(d.max_bytes + 8 * d.max_entry_bytes <= 64 << 20);
}
