#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::cache::edge::{
    decoded_by_platform, normalize_response_headers, Adopted, AfterResponse, CacheDecision, CacheFetch, CachedResponse,
    EdgeCache, META_HEADER, PURGE_MAX_BODY,
};
use crate::cache::{CachePhase, Timestamp};
use crate::proxy::canonical::CanonicalRequest;
use crate::{Config, Edge, EdgeState, Forward, Plan, Step, Viewer};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const TOKEN: &str = "0123456789abcdef-token";
const T0: u64 = 1_700_000_000_000;

fn config() -> Config {
    Config::from_toml(&format!(
        r#"
        [edge]
        name = "E"
        [regions.r1]
        location = {{ lat = 0.0, lon = 0.0 }}
        origins = [{{ url = "http://10.0.0.1:8080" }}]
        [cache]
        purge_token = {{ binding = "PURGE" }}
        lock_timeout_ms = 1000
        [[routes]]
        path = "/api/*"
        cache = {{ stale_if_error = 300 }}
        [[routes]]
        path = "/plain/*"
        "#
    ))
    .unwrap()
}

/// What the viewer got.
#[derive(Debug)]
struct Served {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Served {
    fn cache_status(&self) -> &str {
        self.headers.get("cache-status").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn header(&self, n: &str) -> Option<&str> {
        self.headers.get(n).and_then(|v| v.to_str().ok())
    }
}

impl From<CachedResponse> for Served {
    fn from(c: CachedResponse) -> Self {
        Served { status: c.status, headers: c.headers, body: c.body.to_vec() }
    }
}

struct Harness {
    edge: Edge,
    state: EdgeState,
    cache: EdgeCache,
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn req(method: &str, url: &str, hs: &[(&str, &str)]) -> Request<()> {
    let mut r = Request::builder().method(method).uri(url).body(()).unwrap();
    *r.headers_mut() = headers(hs);
    r
}

fn get(url: &str) -> Request<()> {
    req("GET", url, &[])
}

impl Harness {
    fn new() -> Self {
        let edge = Edge::new(config(), &crate::secret::SecretMap::from_bindings([("PURGE", TOKEN)])).unwrap();
        let cache = edge.new_cache();
        let state = EdgeState::new(edge.config());
        Self { edge, state, cache }
    }

    fn plan(&mut self, r: &Request<()>, now_ms: u64) -> Box<Forward> {
        let r = self.edge.canonicalize(r).unwrap();
        match self.edge.plan(&r, &Viewer::default(), now_ms) {
            Plan::Forward(mut f) => {
                self.edge.begin(&mut f, &mut self.state, now_ms, 1);
                f
            }
            Plan::Respond(r) => panic!("edge answered {}", r.status()),
        }
    }

    fn lookup(&mut self, r: &Request<()>, now_ms: u64) -> (Box<Forward>, CacheDecision) {
        let fwd = self.plan(r, now_ms);
        let d = self.cache.lookup(self.edge.cache_query(&fwd), now_ms);
        (fwd, d)
    }

    /// The origin answers the fetch with `status`, `hs` and `body`.
    fn answer(&mut self, mut fwd: Box<Forward>, fetch: CacheFetch, status: u16, hs: &[(&str, &str)], body: &str, now_ms: u64) -> Served {
        let mut h = headers(hs);
        match self.cache.on_response(fetch, status, &h, now_ms, now_ms) {
            AfterResponse::Serve(c) => c.into(),
            AfterResponse::Refetch(f) => panic!("unexpected refetch {f:?}"),
            AfterResponse::Deliver(d) => {
                d.apply(&mut fwd.cache_status, &mut h);
                self.edge.finish(&fwd, StatusCode::from_u16(status).unwrap(), &mut h);
                Served { status, headers: h, body: body.as_bytes().to_vec() }
            }
            AfterResponse::Store(p) => {
                let r = self.cache.store(p, Arc::from(body.as_bytes().to_vec()), now_ms);
                r.delivery.apply(&mut fwd.cache_status, &mut h);
                self.edge.finish(&fwd, StatusCode::from_u16(status).unwrap(), &mut h);
                let out = r.delivery.status(status);
                Served { status: out, headers: h, body: if out == 304 { Vec::new() } else { body.as_bytes().to_vec() } }
            }
        }
    }

    /// Look up `r` and, if it goes upstream, let the origin answer.
    fn run(&mut self, r: &Request<()>, status: u16, hs: &[(&str, &str)], body: &str, now_ms: u64) -> Served {
        match self.lookup(r, now_ms) {
            (_, CacheDecision::Respond(c)) => c.into(),
            (fwd, CacheDecision::Fetch(f)) => self.answer(fwd, f, status, hs, body, now_ms),
            (_, other) => panic!("unexpected decision {other:?}"),
        }
    }

    fn fetch(&mut self, r: &Request<()>, now_ms: u64) -> (Box<Forward>, CacheFetch) {
        match self.lookup(r, now_ms) {
            (fwd, CacheDecision::Fetch(f)) => (fwd, f),
            (_, other) => panic!("expected a fetch, got {other:?}"),
        }
    }
}

const ITEM: &[(&str, &str)] = &[("cache-control", "public, max-age=60"), ("etag", "\"v1\""), ("content-type", "application/json")];
const URL: &str = "http://edge.test/api/items/1";

#[test]
fn miss_stores_then_hits_with_age_and_ttl() {
    let mut h = Harness::new();
    let first = h.run(&get(URL), 200, ITEM, "one", T0);
    assert_eq!(first.status, 200);
    assert_eq!(first.cache_status(), "E; fwd=uri-miss; fwd-status=200; ttl=60; stored");
    assert_eq!(first.header("age"), Some("0"));
    assert!(first.header("date").is_some(), "Date added when the origin sends none");

    let hit = h.run(&get(URL), 500, &[], "never", T0 + 10_000);
    assert_eq!((hit.status, hit.body.as_slice()), (200, &b"one"[..]));
    assert_eq!(hit.cache_status(), "E; hit; ttl=50");
    assert_eq!(hit.header("age"), Some("10"));
    assert_eq!(hit.header("via"), Some("1.1 E"));
    assert_eq!(hit.header("etag"), Some("\"v1\""));

    // HEAD reads the GET entry, without a body.
    let head = h.run(&req("HEAD", URL, &[]), 500, &[], "never", T0 + 11_000);
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert!(head.cache_status().starts_with("E; hit"));
}

#[test]
fn tracking_params_share_the_entry_and_never_reach_the_origin() {
    let mut h = Harness::new();
    let (fwd, f) = h.fetch(&get("http://edge.test/api/items/2?id=7&utm_source=mail&fbclid=x"), T0);
    let Step::Send { request, .. } = &fwd.step else { panic!() };
    assert_eq!(request.uri(), "http://10.0.0.1:8080/api/items/2?id=7");
    h.answer(fwd, f, 200, ITEM, "two", T0);
    let hit = h.run(&get("http://edge.test/api/items/2?id=7&utm_campaign=z"), 500, &[], "", T0 + 1000);
    assert!(hit.cache_status().starts_with("E; hit"), "{}", hit.cache_status());
    let other = h.lookup(&get("http://edge.test/api/items/2?id=8"), T0 + 1000).1;
    assert!(matches!(other, CacheDecision::Fetch(_)), "a real parameter splits the key");
    // Routes without cache rules forward the query untouched.
    let fwd = h.plan(&get("http://edge.test/plain/x?utm_source=a"), T0);
    let Step::Send { request, .. } = &fwd.step else { panic!() };
    assert_eq!(request.uri(), "http://10.0.0.1:8080/plain/x?utm_source=a");
}

#[test]
fn responses_that_must_not_be_stored() {
    for (hs, detail) in [
        (vec![("cache-control", "private, no-store")], "no-store"),
        (vec![("cache-control", "private, max-age=60")], "private"),
        (vec![("cache-control", "max-age=60"), ("set-cookie", "s=1")], "set-cookie"),
        (vec![], "no-freshness"),
        (vec![("cache-control", "max-age=60"), ("vary", "*")], "vary-star"),
    ] {
        let mut h = Harness::new();
        let first = h.run(&get(URL), 200, &hs, "x", T0);
        assert_eq!(first.cache_status(), format!("E; fwd=uri-miss; fwd-status=200; detail={detail}"), "{hs:?}");
        assert_eq!(h.cache.l1().len(), 0, "{hs:?}");
        assert!(matches!(h.lookup(&get(URL), T0 + 1000).1, CacheDecision::Fetch(_)), "{hs:?}");
    }
}

#[test]
fn set_cookie_goes_to_its_viewer_only() {
    let mut h = Harness::new();
    let hs = [("cache-control", "max-age=60, private=\"set-cookie\""), ("set-cookie", "s=1")];
    let first = h.run(&get(URL), 200, &hs, "x", T0);
    assert!(first.cache_status().ends_with("stored"), "{}", first.cache_status());
    assert_eq!(first.header("set-cookie"), Some("s=1"));
    let hit = h.run(&get(URL), 500, &[], "", T0 + 1000);
    assert!(hit.cache_status().starts_with("E; hit"));
    assert_eq!(hit.header("set-cookie"), None);
}

#[test]
fn internal_and_framing_fields_never_reach_viewers() {
    let mut h = Harness::new();
    let hs = [
        ("cache-control", "max-age=60"),
        ("cdn-cache-control", "max-age=60"),
        ("surrogate-key", "a b"),
        ("cache-tag", "c"),
        ("surrogate-control", "max-age=60"),
        ("content-encoding", "gzip"),
        ("content-length", "3"),
        ("age", "5, 7"),
        ("expires", "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT"),
    ];
    let first = h.run(&get(URL), 200, &hs, "abc", T0);
    let hit = h.run(&get(URL), 500, &[], "", T0 + 1000);
    for r in [&first, &hit] {
        for n in ["surrogate-key", "cache-tag", "surrogate-control", "content-encoding", "content-length", META_HEADER] {
            assert!(r.header(n).is_none(), "{n} leaked: {:?}", r.headers);
        }
        assert_eq!(r.header("cdn-cache-control"), Some("max-age=60"), "CDN-Cache-Control is passed on");
    }
    // Joined `Age: 5, 7` counts as 5 (+1 s in the store).
    assert_eq!(first.header("age"), Some("5"));
    assert_eq!(hit.header("age"), Some("6"));
    assert_eq!(hit.cache_status(), "E; hit; ttl=54");
}

#[test]
fn viewer_conditionals_are_answered_from_the_cache() {
    let mut h = Harness::new();
    h.run(&get(URL), 200, ITEM, "one", T0);
    for (hs, status) in [
        (vec![("if-none-match", "\"v1\"")], 304),
        (vec![("if-none-match", "W/\"v1\", \"x\"")], 304),
        (vec![("if-none-match", "\"v0\"")], 200),
        (vec![("if-match", "\"v0\"")], 412),
    ] {
        let r = h.run(&req("GET", URL, &hs), 500, &[], "", T0 + 1000);
        assert_eq!(r.status, status, "{hs:?}");
        assert!(r.cache_status().starts_with("E; hit"), "{hs:?}");
        if status != 200 {
            assert!(r.body.is_empty());
        }
    }
    // On a miss the viewer's validators are replaced by the cache's (none):
    // the origin sends a full response, the viewer still gets its 304.
    let url = "http://edge.test/api/items/3";
    let (fwd, f) = h.fetch(&req("GET", url, &[("if-none-match", "\"v1\"")]), T0);
    let Step::Send { mut request, .. } = fwd.step.clone() else { panic!() };
    f.prepare(&mut request);
    assert!(request.headers().get("if-none-match").is_none());
    let r = h.answer(fwd, f, 200, ITEM, "three", T0);
    assert_eq!(r.status, 304);
    assert_eq!(r.cache_status(), "E; fwd=uri-miss; fwd-status=200; ttl=60; stored");
}

#[test]
fn stale_entries_revalidate_and_a_304_refreshes_them() {
    let mut h = Harness::new();
    h.run(&get(URL), 200, &[("cache-control", "max-age=1"), ("etag", "\"v1\"")], "body", T0);
    let (fwd, f) = h.fetch(&get(URL), T0 + 5000);
    assert_eq!(f.phase(), CachePhase::Expired);
    let Step::Send { mut request, .. } = fwd.step.clone() else { panic!() };
    f.prepare(&mut request);
    assert_eq!(request.headers()["if-none-match"], "\"v1\"");
    let r = h.answer(fwd, f, 304, &[("cache-control", "max-age=100"), ("etag", "\"v1\""), ("x-new", "1")], "", T0 + 5000);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body"[..]));
    assert_eq!(r.cache_status(), "E; fwd=stale; fwd-status=304; ttl=100; stored");
    assert_eq!(r.header("x-new"), Some("1"));
    let hit = h.run(&get(URL), 500, &[], "", T0 + 6000);
    assert_eq!(hit.cache_status(), "E; hit; ttl=99");
    // A changed resource replaces the entry.
    let (fwd, f) = h.fetch(&get(URL), T0 + 200_000);
    let r = h.answer(fwd, f, 200, &[("cache-control", "max-age=100"), ("etag", "\"v2\"")], "new", T0 + 200_000);
    assert_eq!(r.cache_status(), "E; fwd=stale; fwd-status=200; ttl=100; stored");
    assert_eq!(h.run(&get(URL), 500, &[], "", T0 + 201_000).body, b"new");
}

#[test]
fn stale_while_revalidate_serves_at_once_and_revalidates_once() {
    let mut h = Harness::new();
    let hs = [("cache-control", "max-age=1, stale-while-revalidate=30"), ("etag", "\"v1\"")];
    h.run(&get(URL), 200, &hs, "old", T0);
    let (fwd, d) = h.lookup(&get(URL), T0 + 5000);
    let CacheDecision::RespondAndRevalidate(c, f) = d else { panic!("{d:?}") };
    assert_eq!(c.body.as_ref(), b"old");
    let served = Served::from(c);
    assert_eq!(served.cache_status(), "E; hit; ttl=-4; detail=stale-while-revalidate");
    assert_eq!(served.header("age"), Some("5"));
    // A second viewer meanwhile: stale too, no second revalidation.
    let (_, d2) = h.lookup(&get(URL), T0 + 5100);
    assert!(matches!(d2, CacheDecision::Respond(_)), "{d2:?}");
    // The background revalidation's 304 refreshes the entry.
    h.answer(fwd, f, 304, &[("cache-control", "max-age=60, stale-while-revalidate=30"), ("etag", "\"v1\"")], "", T0 + 5200);
    let hit = h.run(&get(URL), 500, &[], "", T0 + 6000);
    assert!(hit.cache_status().starts_with("E; hit; ttl=59"), "{}", hit.cache_status());
}

#[test]
fn stale_if_error_on_give_up_and_on_5xx() {
    // The route says stale_if_error = 300.
    for failure in ["give-up", "503"] {
        let mut h = Harness::new();
        h.run(&get(URL), 200, &[("cache-control", "max-age=1")], "saved", T0);
        let (fwd, f) = h.fetch(&get(URL), T0 + 10_000);
        let r: Served = match failure {
            "give-up" => h.cache.on_give_up(f, true, T0 + 10_000).expect("stale").into(),
            _ => h.answer(fwd, f, 503, &[("cache-control", "no-store")], "down", T0 + 10_000),
        };
        assert_eq!((r.status, r.body.as_slice()), (200, &b"saved"[..]), "{failure}");
        assert!(r.cache_status().contains("detail=stale-if-error"), "{failure}: {}", r.cache_status());
        assert!(r.cache_status().starts_with("E; hit"), "{failure}: {}", r.cache_status());
    }
    // Past the window (1 + 300 s): the error goes through.
    let mut h = Harness::new();
    h.run(&get(URL), 200, &[("cache-control", "max-age=1")], "saved", T0);
    let (_, f) = h.fetch(&get(URL), T0 + 400_000);
    assert!(h.cache.on_give_up(f, true, T0 + 400_000).is_none());
    // must-revalidate forbids it.
    let mut h = Harness::new();
    h.run(&get(URL), 200, &[("cache-control", "max-age=1, must-revalidate")], "saved", T0);
    let (_, f) = h.fetch(&get(URL), T0 + 10_000);
    assert!(h.cache.on_give_up(f, true, T0 + 10_000).is_none());
}

#[test]
fn concurrent_misses_coalesce_into_one_fetch() {
    let mut h = Harness::new();
    let (fwd, leader) = h.fetch(&get(URL), T0);
    let mut waiting = Vec::new();
    for i in 0..5 {
        match h.lookup(&get(URL), T0 + i).1 {
            CacheDecision::Wait(w) => waiting.push(w),
            other => panic!("expected Wait, got {other:?}"),
        }
    }
    assert!(h.cache.poll(&waiting[0], T0 + 10).is_none());
    h.answer(fwd, leader, 200, ITEM, "one", T0 + 20);
    for w in &waiting {
        let Some(CacheDecision::Respond(c)) = h.cache.poll(w, T0 + 30) else { panic!() };
        let s = Served::from(c);
        assert_eq!(s.cache_status(), "E; hit; ttl=60; collapsed");
        assert_eq!(s.body, b"one");
    }
}

#[test]
fn a_failed_leader_hands_over_and_a_dead_one_times_out() {
    let mut h = Harness::new();
    let (_, leader) = h.fetch(&get(URL), T0);
    let CacheDecision::Wait(w1) = h.lookup(&get(URL), T0 + 1).1 else { panic!() };
    let CacheDecision::Wait(w2) = h.lookup(&get(URL), T0 + 2).1 else { panic!() };
    h.cache.abandon(leader, T0 + 5);
    let Some(CacheDecision::Fetch(next)) = h.cache.poll(&w1, T0 + 6) else { panic!("w1 leads") };
    assert!(h.cache.poll(&w2, T0 + 7).is_none());
    // The new leader never finishes: after lock_timeout_ms (1000) w2 takes over.
    let Some(CacheDecision::Fetch(_)) = h.cache.poll(&w2, T0 + 6 + 1000) else { panic!("w2 takes over") };
    drop(next);
}

#[test]
fn only_if_cached_miss_is_504() {
    let mut h = Harness::new();
    let (_, d) = h.lookup(&req("GET", URL, &[("cache-control", "only-if-cached")]), T0);
    let CacheDecision::Respond(c) = d else { panic!("{d:?}") };
    let s = Served::from(c);
    assert_eq!(s.status, 504);
    assert_eq!(s.cache_status(), "E; fwd=miss; detail=only-if-cached");
}

#[test]
fn vary_selects_variants() {
    let mut h = Harness::new();
    let hs = [("cache-control", "max-age=60"), ("vary", "Accept-Language")];
    h.run(&req("GET", URL, &[("accept-language", "fr")]), 200, &hs, "bonjour", T0);
    let (fwd, f) = h.fetch(&req("GET", URL, &[("accept-language", "de")]), T0 + 1000);
    assert_eq!(f.phase(), CachePhase::VaryMiss);
    let r = h.answer(fwd, f, 200, &hs, "hallo", T0 + 1000);
    assert_eq!(r.cache_status(), "E; fwd=vary-miss; fwd-status=200; ttl=60; stored");
    for (lang, body) in [("fr", "bonjour"), ("de", "hallo")] {
        let r = h.run(&req("GET", URL, &[("accept-language", lang)]), 500, &[], "", T0 + 2000);
        assert_eq!(r.body, body.as_bytes(), "{lang}");
    }
}

#[test]
fn bypass_cases() {
    let mut h = Harness::new();
    for (r, want) in [
        (get("http://edge.test/plain/x"), None),
        (req("POST", URL, &[]), None),
        (req("GET", URL, &[("range", "bytes=0-1")]), Some("E; fwd=bypass; detail=range")),
    ] {
        let (_, d) = h.lookup(&r, T0);
        let CacheDecision::Bypass(s) = d else { panic!("{d:?}") };
        assert_eq!(s.map(|s| s.to_string()).as_deref(), want, "{} {}", r.method(), r.uri());
    }
}

#[test]
fn unsafe_methods_invalidate_their_target() {
    for (method, status, invalidated) in [("POST", 200, true), ("DELETE", 204, true), ("POST", 500, false), ("POST", 405, false)] {
        let mut h = Harness::new();
        h.run(&get(URL), 200, ITEM, "one", T0);
        let post = req(method, URL, &[]);
        let fwd = h.plan(&post, T0 + 1000);
        let targets = h.cache.invalidate_after(h.edge.cache_query(&fwd), status, &HeaderMap::new(), T0 + 1000);
        assert_eq!(targets.len(), usize::from(invalidated), "{method} {status}");
        let (_, d) = h.lookup(&get(URL), T0 + 2000);
        match d {
            CacheDecision::Fetch(f) if invalidated => {
                assert_eq!(f.phase(), CachePhase::Expired);
                assert!(f.is_revalidation());
            }
            CacheDecision::Respond(_) if !invalidated => {}
            other => panic!("{method} {status}: {other:?}"),
        }
    }
}

fn purge(h: &mut Harness, auth: Option<&str>, body: &str, now_ms: u64) -> (u16, serde_json::Value) {
    let mut hs = vec![];
    let bearer = auth.map(|t| format!("Bearer {t}"));
    if let Some(b) = &bearer {
        hs.push(("authorization", b.as_str()));
    }
    let r = CanonicalRequest::new(&req("POST", "http://edge.test/_offload/purge", &hs)).unwrap();
    assert!(h.cache.is_purge(&r));
    let config = h.edge.config().clone();
    let out = h.cache.purge(&config, &r, body.as_bytes(), now_ms);
    let v = serde_json::from_slice(out.response.body()).unwrap();
    (out.response.status().as_u16(), v)
}

#[test]
fn purge_endpoint_auth_and_validation() {
    let mut h = Harness::new();
    for (auth, body, status, field) in [
        (None, r#"{"urls":["/api/items/1"]}"#, 401, None),
        (Some("wrong-token-wrong-token"), r#"{"urls":["/api/items/1"]}"#, 401, None),
        (Some(TOKEN), "not json", 400, Some("body")),
        (Some(TOKEN), "[1]", 400, Some("body")),
        (Some(TOKEN), r#"{"url":["/a"]}"#, 400, Some("url")),
        (Some(TOKEN), r#"{"urls":"/a"}"#, 400, Some("urls")),
        (Some(TOKEN), r#"{"urls":["/a", 7]}"#, 400, Some("urls[1]")),
        (Some(TOKEN), r#"{"tags":[],"soft":"yes"}"#, 400, Some("soft")),
        (Some(TOKEN), r#"{}"#, 400, Some("urls")),
        (Some(TOKEN), r#"{"urls":["ftp://x/a"]}"#, 400, Some("urls[0]")),
        (Some(TOKEN), r#"{"urls":["/api/items/1"]}"#, 200, None),
    ] {
        let (s, v) = purge(&mut h, auth, body, T0);
        assert_eq!(s, status, "{auth:?} {body}: {v}");
        assert_eq!(v["field"].as_str(), field, "{body}: {v}");
    }
    let get_purge = CanonicalRequest::new(&req("GET", "http://edge.test/_offload/purge", &[("authorization", &format!("bearer {TOKEN}"))])).unwrap();
    let config = h.edge.config().clone();
    assert_eq!(h.cache.purge(&config, &get_purge, b"", T0).response.status(), 405);
}

#[test]
fn purge_by_url_and_tag_hard_and_soft() {
    let tagged = [("cache-control", "max-age=60"), ("etag", "\"v1\""), ("surrogate-key", "items item-1")];
    // Hard purge by URL (a path, with a tracking parameter): gone.
    let mut h = Harness::new();
    h.run(&get(URL), 200, &tagged, "one", T0);
    let (s, v) = purge(&mut h, Some(TOKEN), r#"{"urls":["/api/items/1?utm_source=x"]}"#, T0 + 1000);
    assert_eq!((s, v["purged"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(v["urls"][0], "http://edge.test/api/items/1");
    let (_, f) = h.fetch(&get(URL), T0 + 2000);
    assert_eq!(f.phase(), CachePhase::Miss);

    // Soft purge by tag: revalidate before use.
    let mut h = Harness::new();
    h.run(&get(URL), 200, &tagged, "one", T0);
    let (s, v) = purge(&mut h, Some(TOKEN), r#"{"tags":["item-1"],"soft":true}"#, T0 + 1000);
    assert_eq!((s, v["purged"].as_u64(), v["soft"].as_bool()), (200, Some(1), Some(true)), "{v}");
    let (_, f) = h.fetch(&get(URL), T0 + 2000);
    assert!(f.is_revalidation());

    // Hard purge by an absolute URL and by an unknown tag.
    let mut h = Harness::new();
    h.run(&get(URL), 200, &tagged, "one", T0);
    let (_, v) = purge(&mut h, Some(TOKEN), r#"{"urls":["http://EDGE.test:80/api/items/1"],"tags":["none"]}"#, T0 + 1000);
    assert_eq!(v["purged"].as_u64(), Some(1), "{v}");
}

#[test]
fn l2_entries_round_trip_and_respect_purges() {
    let mut h = Harness::new();
    let (mut fwd, f) = h.fetch(&get(URL), T0);
    let key = f.l2_key().unwrap();
    let AfterResponse::Store(p) = h.cache.on_response(f, 200, &headers(ITEM), T0, T0) else { panic!() };
    let result = h.cache.store(p, Arc::from(b"one".to_vec()), T0);
    let mut out = HeaderMap::new();
    result.delivery.apply(&mut fwd.cache_status, &mut out);
    let w = result.l2.expect("an L2 write");
    assert_eq!(w.key, key);
    assert!(key.starts_with("https://l2.offload.invalid/v1/"));
    // Fresh for 60 s, then usable for the route's stale_if_error (300 s).
    assert_eq!(w.max_age, 360);

    // Another isolate: L1 miss, L2 has it.
    let mut other = Harness::new();
    let (_, f) = other.fetch(&get(URL), T0 + 5000);
    let Adopted::Decision(CacheDecision::Respond(c)) = other.cache.adopt_l2(f, &w.meta, w.body.to_vec(), T0 + 5000) else {
        panic!("adopted")
    };
    let s = Served::from(c);
    assert_eq!((s.body.as_slice(), s.cache_status()), (&b"one"[..], "E; hit; ttl=55"));
    assert_eq!(s.header("age"), Some("5"));

    // Purged after it was written: the L2 copy is refused.
    let mut third = Harness::new();
    purge(&mut third, Some(TOKEN), r#"{"urls":["/api/items/1"]}"#, T0 + 1000);
    let (_, f) = third.fetch(&get(URL), T0 + 5000);
    assert!(matches!(third.cache.adopt_l2(f, &w.meta, w.body.to_vec(), T0 + 5000), Adopted::Rejected(_)));
    // Garbage metadata, or another key's entry, is refused.
    let (_, f) = third.fetch(&get("http://edge.test/api/items/9"), T0 + 5000);
    let f = match third.cache.adopt_l2(f, "%%%", Vec::new(), T0 + 5000) {
        Adopted::Rejected(f) => f,
        other => panic!("{other:?}"),
    };
    assert!(matches!(third.cache.adopt_l2(f, &w.meta, w.body.to_vec(), T0 + 5000), Adopted::Rejected(_)));
}

#[test]
fn platform_header_normalization() {
    let now = Timestamp::from_unix_secs(784_111_777);
    for (input, name, want) in [
        (vec![("age", "100, 7")], "age", Some("100")),
        (vec![("age", "12")], "age", Some("12")),
        (vec![("expires", "Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT")], "expires", Some("Sun, 06 Nov 1994 08:49:37 GMT")),
        (vec![("expires", "0")], "expires", Some("0")),
        (vec![], "date", Some("Sun, 06 Nov 1994 08:49:37 GMT")),
        (vec![("date", "Mon, 07 Nov 1994 08:49:37 GMT")], "date", Some("Mon, 07 Nov 1994 08:49:37 GMT")),
    ] {
        let out = normalize_response_headers(&headers(&input), now);
        assert_eq!(out.get(name).and_then(|v| v.to_str().ok()), want, "{input:?}");
    }
}

#[test]
fn any_final_status_with_explicit_freshness_is_stored() {
    for status in [299, 400, 499, 599] {
        let mut h = Harness::new();
        let first = h.run(&get(URL), status, &[("cache-control", "max-age=60")], "x", T0);
        assert!(first.cache_status().ends_with("stored"), "{status}: {}", first.cache_status());
        let hit = h.run(&get(URL), 200, &[], "never", T0 + 1000);
        assert_eq!((hit.status, hit.body.as_slice()), (status, &b"x"[..]));
        assert!(hit.cache_status().starts_with("E; hit"), "{status}: {}", hit.cache_status());
    }
    // must-understand still needs a status the cache understands.
    let mut h = Harness::new();
    let first = h.run(&get(URL), 599, &[("cache-control", "max-age=60, must-understand")], "x", T0);
    assert!(first.cache_status().contains("detail=must-understand"), "{}", first.cache_status());
}

#[test]
fn response_delay_is_measured_in_real_time() {
    // Sent at x.999 s, answered at y.001 s: 2 ms, not a whole second.
    let mut h = Harness::new();
    let (mut fwd, f) = h.fetch(&get(URL), T0 + 999);
    let mut hs = headers(&[("cache-control", "max-age=60"), ("age", "15")]);
    let AfterResponse::Store(p) = h.cache.on_response(f, 200, &hs, T0 + 999, T0 + 1001) else { panic!("not storable") };
    let r = h.cache.store(p, Arc::from(b"x".to_vec()), T0 + 1001);
    r.delivery.apply(&mut fwd.cache_status, &mut hs);
    assert_eq!(hs.get("age").and_then(|v| v.to_str().ok()), Some("15"));
}

#[test]
fn content_codings_the_platform_keeps_are_stored() {
    let mut h = Harness::new();
    let hs = [("cache-control", "max-age=60"), ("content-encoding", "x-unknown"), ("content-length", "3")];
    let first = h.run(&get(URL), 200, &hs, "abc", T0);
    let hit = h.run(&get(URL), 500, &[], "", T0 + 1000);
    for r in [&first, &hit] {
        assert_eq!(r.header("content-encoding"), Some("x-unknown"), "{:?}", r.headers);
        assert_eq!(r.header("content-length"), None);
    }
    assert!(!decoded_by_platform(&headers(&[("content-encoding", "gzip, x-unknown")])));
    assert!(decoded_by_platform(&headers(&[("content-encoding", "BR")])));
}

#[test]
fn byte_ranges_of_fresh_entries_are_cut_from_the_stored_body() {
    let mut h = Harness::new();
    // A miss with Range goes to the origin untouched.
    assert!(matches!(h.lookup(&req("GET", URL, &[("range", "bytes=0-1")]), T0).1, CacheDecision::Bypass(Some(_))));
    h.run(&get(URL), 200, &[("cache-control", "max-age=60"), ("a", "1")], "0123456789", T0);
    for (range, want, cr) in [
        ("bytes=0-1", "01", "bytes 0-1/10"),
        ("bytes=8-", "89", "bytes 8-9/10"),
        ("bytes=-3", "789", "bytes 7-9/10"),
        ("bytes=5-99", "56789", "bytes 5-9/10"),
    ] {
        let r: Served = match h.lookup(&req("GET", URL, &[("range", range)]), T0 + 1000).1 {
            CacheDecision::Respond(c) => c.into(),
            other => panic!("{range}: {other:?}"),
        };
        assert_eq!((r.status, r.body.as_slice()), (206, want.as_bytes()), "{range}");
        assert_eq!(r.header("content-range"), Some(cr));
        assert_eq!(r.header("a"), Some("1"));
        assert!(r.cache_status().starts_with("E; hit"), "{}", r.cache_status());
    }
    for range in ["bytes=10-", "bytes=0-1,3-4", "items=0-1", "bytes=3-1", "bytes=-0", "bytes=x-1"] {
        assert!(matches!(h.lookup(&req("GET", URL, &[("range", range)]), T0 + 1000).1, CacheDecision::Bypass(_)), "{range}");
    }
    let if_range = [("range", "bytes=0-1"), ("if-range", "\"v1\"")];
    assert!(matches!(h.lookup(&req("GET", URL, &if_range), T0 + 1000).1, CacheDecision::Bypass(_)));
    // Stale: the origin answers.
    assert!(matches!(h.lookup(&req("GET", URL, &[("range", "bytes=0-1")]), T0 + 61_000).1, CacheDecision::Bypass(_)));
}

#[test]
fn a_304_for_another_representation_is_refetched_for_an_unconditional_viewer() {
    let mut h = Harness::new();
    h.run(&get(URL), 200, &[("cache-control", "max-age=1"), ("etag", "\"v1\"")], "old", T0);
    let (fwd, f) = h.fetch(&get(URL), T0 + 5000);
    let nm = headers(&[("cache-control", "max-age=100"), ("etag", "\"v2\"")]);
    let AfterResponse::Refetch(f) = h.cache.on_response(f, 304, &nm, T0 + 5000, T0 + 5000) else { panic!("expected a refetch") };
    assert!(!f.is_revalidation());
    let Step::Send { mut request, .. } = fwd.step.clone() else { panic!() };
    f.prepare(&mut request);
    assert!(request.headers().get("if-none-match").is_none());
    let r = h.answer(fwd, f, 200, &[("cache-control", "max-age=100"), ("etag", "\"v2\"")], "new", T0 + 5100);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"new"[..]));
    assert!(r.cache_status().ends_with("stored"), "{}", r.cache_status());
    // A viewer that asked for a 304 gets the origin's.
    let mut h = Harness::new();
    h.run(&get(URL), 200, &[("cache-control", "max-age=1"), ("etag", "\"v1\"")], "old", T0);
    let (_, f) = h.fetch(&req("GET", URL, &[("if-none-match", "\"v2\"")]), T0 + 5000);
    assert!(matches!(h.cache.on_response(f, 304, &nm, T0 + 5000, T0 + 5000), AfterResponse::Deliver(_)));
}

// ----- viewers cannot evict or replace shared entries ---------------------

/// Request headers with which a viewer forces a trip to the origin.
const FORCING: [&[(&str, &str)]; 4] = [
    &[("cache-control", "no-cache")],
    &[("cache-control", "max-age=0")],
    &[("pragma", "no-cache")],
    &[("cache-control", "min-fresh=3600")],
];

#[test]
fn a_forced_revalidation_never_replaces_or_evicts_a_stored_2xx_with_an_error() {
    let errors: [(u16, &[(&str, &str)]); 5] = [
        (503, &[("cache-control", "public, max-age=60")]),
        (500, &[]),
        (404, &[("cache-control", "public, max-age=60")]),
        (404, &[]), // heuristically storable
        (410, &[("cache-control", "no-store")]),
    ];
    for forcing in FORCING {
        for (status, hs) in errors {
            let mut h = Harness::new();
            h.run(&get(URL), 200, ITEM, "good", T0);
            let (fwd, f) = h.fetch(&req("GET", URL, forcing), T0 + 10_000);
            assert_eq!(f.phase(), CachePhase::RequestForced, "{forcing:?}");
            let r = h.answer(fwd, f, status, hs, "bad", T0 + 10_000);
            // The viewer that asked gets the origin's answer...
            assert_eq!((r.status, r.body.as_slice()), (status, &b"bad"[..]), "{forcing:?} {status}");
            assert!(!r.cache_status().split("; ").any(|p| p == "stored"), "{forcing:?} {status}: {}", r.cache_status());
            // ...and everyone else still gets the stored 200.
            let next = h.run(&get(URL), 500, &[], "never", T0 + 11_000);
            assert_eq!((next.status, next.body.as_slice()), (200, &b"good"[..]), "{forcing:?} {status}");
            assert!(next.cache_status().starts_with("E; hit"), "{forcing:?} {status}: {}", next.cache_status());
        }
    }
}

#[test]
fn a_forced_revalidation_never_evicts_with_a_response_that_may_not_be_stored() {
    for hs in [
        &[("cache-control", "private, max-age=60")][..],
        &[("cache-control", "no-store")],
        &[("cache-control", "max-age=60"), ("set-cookie", "s=1")],
    ] {
        let mut h = Harness::new();
        h.run(&get(URL), 200, ITEM, "shared", T0);
        let (fwd, f) = h.fetch(&req("GET", URL, &[("cache-control", "no-cache")]), T0 + 1000);
        let r = h.answer(fwd, f, 200, hs, "personal", T0 + 1000);
        assert_eq!(r.body, b"personal", "{hs:?}");
        let next = h.run(&get(URL), 500, &[], "never", T0 + 2000);
        assert_eq!(next.body, b"shared", "{hs:?}: {}", next.cache_status());
    }
    // A storable success does replace it: the viewer asked for the latest.
    let mut h = Harness::new();
    h.run(&get(URL), 200, ITEM, "old", T0);
    let (fwd, f) = h.fetch(&req("GET", URL, &[("cache-control", "no-cache")]), T0 + 1000);
    let r = h.answer(fwd, f, 200, ITEM, "new", T0 + 1000);
    assert!(r.cache_status().ends_with("stored"), "{}", r.cache_status());
    assert_eq!(h.run(&get(URL), 500, &[], "never", T0 + 2000).body, b"new");
}

#[test]
fn forced_revalidations_of_one_key_coalesce_into_one_origin_request() {
    for forcing in FORCING {
        let mut h = Harness::new();
        h.run(&get(URL), 200, ITEM, "old", T0);
        let (fwd, leader) = h.fetch(&req("GET", URL, forcing), T0 + 1000);
        let mut waiting = Vec::new();
        for i in 0..4 {
            match h.lookup(&req("GET", URL, forcing), T0 + 1001 + i).1 {
                CacheDecision::Wait(w) => waiting.push(w),
                other => panic!("{forcing:?}: a forced revalidation bypassed coalescing: {other:?}"),
            }
        }
        // Viewers that force nothing are answered from the entry meanwhile.
        let (_, plain) = h.lookup(&get(URL), T0 + 1005);
        let CacheDecision::Respond(plain) = plain else { panic!("{plain:?}") };
        assert_eq!(plain.body.as_ref(), b"old");
        assert!(h.cache.poll(&waiting[0], T0 + 1010).is_none());
        h.answer(fwd, leader, 200, ITEM, "new", T0 + 1020);
        for w in &waiting {
            let Some(CacheDecision::Respond(c)) = h.cache.poll(w, T0 + 1030) else { panic!("{forcing:?}: waiter went upstream") };
            let s = Served::from(c);
            assert_eq!(s.body, b"new", "{forcing:?}");
            assert!(s.cache_status().ends_with("collapsed"), "{forcing:?}: {}", s.cache_status());
        }
    }
    // A leader whose revalidation got a 304 answers its waiters as well.
    let mut h = Harness::new();
    h.run(&get(URL), 200, ITEM, "old", T0);
    let no_cache = [("cache-control", "no-cache")];
    let (fwd, leader) = h.fetch(&req("GET", URL, &no_cache), T0 + 1000);
    let CacheDecision::Wait(w) = h.lookup(&req("GET", URL, &no_cache), T0 + 1001).1 else { panic!() };
    h.answer(fwd, leader, 304, ITEM, "", T0 + 1010);
    let Some(CacheDecision::Respond(c)) = h.cache.poll(&w, T0 + 1020) else { panic!("waiter went upstream") };
    assert_eq!(c.body.as_ref(), b"old");
}

#[test]
fn head_never_deletes_or_replaces_the_get_entry() {
    let stale: &[(&str, &str)] = &[("cache-control", "max-age=1"), ("etag", "\"v1\"")];
    let answers: [(u16, &[(&str, &str)]); 5] = [
        (404, &[("cache-control", "max-age=60")]),
        (200, &[("cache-control", "max-age=60"), ("etag", "\"v2\"")]),
        (200, &[("cache-control", "no-store")]),
        (503, &[]),
        (304, &[("etag", "\"v9\"")]), // selects no stored response
    ];
    for forcing in [&[][..], &[("cache-control", "no-cache")][..]] {
        for (status, hs) in answers {
            let mut h = Harness::new();
            h.run(&get(URL), 200, stale, "body", T0);
            // The entry is stale: HEAD goes upstream (as a revalidation).
            let (_, f) = h.fetch(&req("HEAD", URL, forcing), T0 + 5000);
            assert!(f.is_revalidation());
            match h.cache.on_response(f, status, &headers(hs), T0 + 5000, T0 + 5000) {
                AfterResponse::Store(_) => panic!("a HEAD response was stored ({status})"),
                AfterResponse::Refetch(f) => h.cache.abandon(f, T0 + 5000),
                _ => {}
            }
            // The GET entry is still there: a revalidation with its validator.
            let (fwd, f) = h.fetch(&get(URL), T0 + 6000);
            assert!(f.is_revalidation(), "HEAD {status} {forcing:?} deleted the GET entry");
            let r = h.answer(fwd, f, 304, &[("cache-control", "max-age=60"), ("etag", "\"v1\"")], "", T0 + 6000);
            assert_eq!((r.status, r.body.as_slice()), (200, &b"body"[..]), "HEAD {status} {forcing:?}");
        }
    }
    // A HEAD miss stores nothing: the next GET is a miss.
    let mut h = Harness::new();
    let (fwd, f) = h.fetch(&req("HEAD", URL, &[]), T0);
    h.answer(fwd, f, 200, ITEM, "", T0);
    let (_, f) = h.fetch(&get(URL), T0 + 1);
    assert!(!f.is_revalidation());
    assert_eq!(f.phase(), CachePhase::Miss);
}

#[test]
fn purge_is_refused_from_its_head_before_any_body_is_read() {
    let h = Harness::new();
    let head = |method: &str, hs: &[(&str, &str)]| CanonicalRequest::new(&req(method, "http://edge.test/_offload/purge", hs)).unwrap();
    let bearer = format!("Bearer {TOKEN}");
    let status = |r: Option<Response<Vec<u8>>>| r.map(|r| r.status().as_u16());
    assert_eq!(status(h.cache.purge_precheck(&head("POST", &[]))), Some(401));
    assert_eq!(status(h.cache.purge_precheck(&head("POST", &[("authorization", "Bearer wrong")]))), Some(401));
    assert_eq!(status(h.cache.purge_precheck(&head("GET", &[("authorization", &bearer)]))), Some(405));
    let big = (PURGE_MAX_BODY + 1).to_string();
    assert_eq!(status(h.cache.purge_precheck(&head("POST", &[("authorization", &bearer), ("content-length", &big)]))), Some(413));
    assert_eq!(status(h.cache.purge_precheck(&head("POST", &[("authorization", &bearer), ("content-length", "20")]))), None);
    assert_eq!(status(h.cache.purge_precheck(&head("POST", &[("authorization", &bearer)]))), None);
}

#[test]
fn an_oversized_purge_body_is_413() {
    let mut h = Harness::new();
    h.run(&get(URL), 200, ITEM, "kept", T0);
    // What an adapter that stops at the limit + 1 byte hands over.
    let body = format!("{{\"urls\": [\"{URL}\"], \"x\": \"{}\"", "p".repeat(PURGE_MAX_BODY));
    let (status, v) = purge(&mut h, Some(TOKEN), &body[..PURGE_MAX_BODY + 1], T0);
    assert_eq!(status, 413);
    assert_eq!(v["field"], "body");
    assert_eq!(h.run(&get(URL), 500, &[], "", T0 + 1).body, b"kept", "nothing was purged");
}

/// Purge finds a URL's route from its canonical path, as requests do: the
/// route's key rules apply to `/%61pi/x` (found by the purge fuzz target,
/// where purging the listed canonical URLs named other keys).
#[test]
fn purge_urls_use_the_route_of_their_canonical_path() {
    let config = Config::from_toml(
        r#"
        [regions.r1]
        location = { lat = 0.0, lon = 0.0 }
        origins = [{ url = "http://10.0.0.1:8080" }]
        [cache]
        purge_token = { binding = "PURGE" }
        [[routes]]
        path = "/api/*"
        cache = { }
        cache_key = { query_allow = ["id"] }
        "#,
    )
    .unwrap();
    let edge = Edge::new(config, &crate::secret::SecretMap::from_bindings([("PURGE", TOKEN)])).unwrap();
    let mut cache = edge.new_cache();
    let bearer = format!("Bearer {TOKEN}");
    let r = CanonicalRequest::new(&req("POST", "http://edge.test/_offload/purge", &[("authorization", bearer.as_str())])).unwrap();
    let listed = |cache: &mut EdgeCache, url: &str| {
        let out = cache.purge(edge.config(), &r, serde_json::json!({ "urls": [url] }).to_string().as_bytes(), T0);
        let v: serde_json::Value = serde_json::from_slice(out.response.body()).unwrap();
        (v["urls"].clone(), out.l2_delete)
    };
    let (raw, raw_l2) = listed(&mut cache, "/%61pi/x?id=1&q=2");
    assert_eq!(raw, serde_json::json!(["http://edge.test/api/x?id=1"]));
    let (canonical, canonical_l2) = listed(&mut cache, "/api/x?id=1");
    assert_eq!((raw, raw_l2), (canonical, canonical_l2));
}
