#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
use super::*;
use http::HeaderValue;
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

fn date(offset: i64) -> String {
    let secs = if offset < 0 { T0 - offset.unsigned_abs() } else { T0 + offset.unsigned_abs() };
    t(secs).to_http_date()
}

fn policy_with(req: &[(&str, &str)], status: u16, resp: &[(&str, &str)], rules: &CacheRules) -> CachePolicy {
    let rq = headers(req);
    let rs = headers(resp);
    CachePolicy::new(&Exchange::new(&Method::GET, &rq, status, &rs, t(T0), t(T0)), rules)
}

fn policy(resp: &[(&str, &str)]) -> CachePolicy {
    policy_with(&[], 200, resp, &CacheRules::default())
}

#[test]
fn storability_table() {
    use NoCacheReason::*;
    let d = CacheRules::default();
    let cookies = CacheRules { store_set_cookie: true, ..CacheRules::default() };
    let auth = CacheRules { store_authorized: true, ..CacheRules::default() };
    let dflt = CacheRules { default_ttl: Some(60), ..CacheRules::default() };
    let heur = CacheRules { heuristic: Some(10), ..CacheRules::default() };
    let lm = date(-1000);
    let in60 = date(60);
    let cases: Vec<(&str, &CacheRules, Vec<(&str, &str)>, u16, Vec<(&str, &str)>, Option<NoCacheReason>)> = vec![
        ("max-age", &d, vec![], 200, vec![("cache-control", "max-age=60")], None),
        ("expires", &d, vec![], 200, vec![("expires", &in60)], None),
        ("no explicit freshness", &d, vec![], 200, vec![], Some(NoFreshness)),
        ("default ttl", &dflt, vec![], 200, vec![], None),
        ("default ttl not for 302", &dflt, vec![], 302, vec![], Some(NoFreshness)),
        ("302 with max-age", &d, vec![], 302, vec![("cache-control", "max-age=5")], None),
        ("heuristic needs last-modified", &heur, vec![], 200, vec![], Some(NoFreshness)),
        ("heuristic", &heur, vec![], 200, vec![("last-modified", &lm)], None),
        ("no-store", &d, vec![], 200, vec![("cache-control", "max-age=60, no-store")], Some(NoStore)),
        ("request no-store", &d, vec![("cache-control", "no-store")], 200, vec![("cache-control", "max-age=60")], Some(RequestNoStore)),
        ("private", &d, vec![], 200, vec![("cache-control", "private, max-age=60")], Some(Private)),
        ("private=field", &d, vec![], 200, vec![("cache-control", "private=\"x-user\", max-age=60")], None),
        ("authorization", &d, vec![("authorization", "Bearer x")], 200, vec![("cache-control", "max-age=60")], Some(Authorization)),
        ("authorization + public", &d, vec![("authorization", "Bearer x")], 200, vec![("cache-control", "public, max-age=60")], None),
        ("authorization + s-maxage", &d, vec![("authorization", "Bearer x")], 200, vec![("cache-control", "s-maxage=60")], None),
        (
            "authorization + must-revalidate",
            &d,
            vec![("authorization", "Bearer x")],
            200,
            vec![("cache-control", "max-age=60, must-revalidate")],
            None,
        ),
        ("authorization allowed by rules", &auth, vec![("authorization", "x")], 200, vec![("cache-control", "max-age=60")], None),
        ("set-cookie", &d, vec![], 200, vec![("cache-control", "max-age=60"), ("set-cookie", "s=1")], Some(SetCookie)),
        ("set-cookie allowed", &cookies, vec![], 200, vec![("cache-control", "max-age=60"), ("set-cookie", "s=1")], None),
        (
            "set-cookie scoped by origin",
            &d,
            vec![],
            200,
            vec![("cache-control", "max-age=60, no-cache=\"Set-Cookie\""), ("set-cookie", "s=1")],
            None,
        ),
        ("vary star", &d, vec![], 200, vec![("cache-control", "max-age=60"), ("vary", "accept, *")], Some(VaryStar)),
        ("vary ok", &d, vec![], 200, vec![("cache-control", "max-age=60"), ("vary", "accept")], None),
        ("206 not understood", &d, vec![], 206, vec![("cache-control", "max-age=60")], Some(Status)),
        ("304 not stored", &d, vec![], 304, vec![("cache-control", "max-age=60")], Some(Status)),
        ("100 not stored", &d, vec![], 100, vec![("cache-control", "max-age=60")], Some(Status)),
        // RFC 9111 §3: explicit freshness makes any final status storable.
        ("599 with max-age", &d, vec![], 599, vec![("cache-control", "max-age=60")], None),
        ("400 with max-age", &d, vec![], 400, vec![("cache-control", "max-age=60")], None),
        ("299 with expires", &d, vec![], 299, vec![("expires", "Thu, 01 Jan 2037 00:00:00 GMT")], None),
        ("599 without freshness", &d, vec![], 599, vec![("last-modified", "Thu, 01 Jan 2015 00:00:00 GMT")], Some(NoFreshness)),
        ("600 not final", &d, vec![], 600, vec![("cache-control", "max-age=60")], Some(Status)),
        ("503 with max-age", &d, vec![], 503, vec![("cache-control", "max-age=5")], None),
        (
            "must-understand overrides no-store",
            &d,
            vec![],
            200,
            vec![("cache-control", "max-age=60, no-store, must-understand")],
            None,
        ),
        (
            "must-understand unknown status",
            &d,
            vec![],
            299,
            vec![("cache-control", "max-age=60, no-store, must-understand")],
            Some(MustUnderstand),
        ),
        ("no-cache with validator", &d, vec![], 200, vec![("cache-control", "no-cache"), ("etag", "\"a\"")], None),
        ("no-cache without validator", &d, vec![], 200, vec![("cache-control", "no-cache")], Some(NoFreshness)),
        ("max-age=0 no validator", &d, vec![], 200, vec![("cache-control", "max-age=0")], Some(ZeroTtl)),
        ("max-age=0 with etag", &d, vec![], 200, vec![("cache-control", "max-age=0"), ("etag", "\"a\"")], None),
        (
            "max-age=0 with stale-if-error",
            &d,
            vec![],
            200,
            vec![("cache-control", "max-age=0, stale-if-error=60")],
            None,
        ),
        ("cdn-cache-control overrides private", &d, vec![], 200, vec![("cache-control", "private"), ("cdn-cache-control", "max-age=60")], None),
        ("cdn-cache-control no-store", &d, vec![], 200, vec![("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")], Some(NoStore)),
        ("surrogate-control", &d, vec![], 200, vec![("cache-control", "no-store"), ("surrogate-control", "max-age=60")], None),
        ("empty cdn-cache-control ignored", &d, vec![], 200, vec![("cache-control", "no-store"), ("cdn-cache-control", "")], Some(NoStore)),
    ];
    for (name, rules, req, status, resp, want) in cases {
        let p = policy_with(&req, status, &resp, rules);
        assert_eq!(p.no_cache_reason(), want, "{name}");
        assert_eq!(p.is_storable(), want.is_none(), "{name}");
    }
}

#[test]
fn only_get_is_stored() {
    let rs = headers(&[("cache-control", "max-age=60")]);
    let rq = HeaderMap::new();
    for m in [Method::HEAD, Method::POST, Method::PUT, Method::OPTIONS] {
        let p = CachePolicy::new(&Exchange::new(&m, &rq, 200, &rs, t(T0), t(T0)), &CacheRules::default());
        assert_eq!(p.no_cache_reason(), Some(NoCacheReason::Method), "{m}");
    }
}

#[test]
fn freshness_precedence_table() {
    use FreshnessSource::*;
    let d = CacheRules::default();
    let cap = CacheRules { max_ttl: Some(100), ..CacheRules::default() };
    let heur = CacheRules { heuristic: Some(10), default_ttl: Some(7), ..CacheRules::default() };
    let dflt = CacheRules { default_ttl: Some(7), ..CacheRules::default() };
    let now_date = date(0);
    let (p5, m5, p100, m50, m1000) = (date(5), date(-5), date(100), date(-50), date(-1000));
    let cases: Vec<(&CacheRules, Vec<(&str, &str)>, u64, FreshnessSource)> = vec![
        (
            &d,
            vec![
                ("cdn-cache-control", "max-age=1"),
                ("surrogate-control", "max-age=2"),
                ("cache-control", "s-maxage=3, max-age=4"),
                ("expires", &p5),
            ],
            1,
            CdnCacheControl,
        ),
        (
            &d,
            vec![("surrogate-control", "max-age=2"), ("cache-control", "s-maxage=3, max-age=4"), ("expires", &p5)],
            2,
            SurrogateControl,
        ),
        (&d, vec![("cache-control", "s-maxage=3, max-age=4"), ("expires", &p5)], 3, SMaxAge),
        (&d, vec![("cache-control", "max-age=4"), ("expires", &p5)], 4, MaxAge),
        (&d, vec![("expires", &p5), ("date", &now_date)], 5, Expires),
        (&d, vec![("expires", &p5)], 5, Expires),
        (&d, vec![("expires", &m5), ("date", &now_date)], 0, Expires),
        (&d, vec![("expires", "0"), ("cache-control", "stale-if-error=9")], 0, Expires),
        // Expires relative to Date, not to the receive time.
        (&d, vec![("expires", &p100), ("date", &m50)], 150, Expires),
        // CDN-Cache-Control replaces Expires too (RFC 9213 §2.1).
        (&d, vec![("cdn-cache-control", "must-revalidate"), ("expires", &p5), ("etag", "\"a\"")], 0, FreshnessSource::None),
        (&cap, vec![("cache-control", "max-age=1000")], 100, MaxAge),
        (&d, vec![("cache-control", "max-age=99999999999")], 2_147_483_648, MaxAge),
        (&d, vec![("cache-control", "max-age=x"), ("etag", "\"a\"")], 0, MaxAge),
        (&heur, vec![("last-modified", &m1000), ("date", &now_date)], 100, Heuristic),
        (&heur, vec![], 7, DefaultTtl),
        (&dflt, vec![("last-modified", &m1000)], 7, DefaultTtl),
    ];
    for (rules, resp, lifetime, source) in cases {
        let p = policy_with(&[], 200, &resp, rules);
        assert_eq!((p.freshness_lifetime(), p.freshness_source()), (lifetime, source), "{resp:?}");
    }
}

#[test]
fn age_follows_rfc_9111_4_2_3() {
    // (request_time, response_time, Date offset, Age header, now, expected age)
    let cases: Vec<(u64, u64, Option<i64>, Option<&str>, u64, u64)> = vec![
        (T0, T0, None, None, T0, 0),
        (T0, T0, None, None, T0 + 30, 30),
        (T0, T0, Some(-20), None, T0, 20),
        (T0, T0, Some(0), Some("15"), T0, 15),
        // response_delay = response_time - request_time is added to Age.
        (T0 - 3, T0, Some(0), Some("15"), T0 + 10, 28),
        (T0 - 3, T0, Some(0), None, T0, 3),
        // apparent age wins when larger.
        (T0, T0, Some(-100), Some("15"), T0, 100),
        // Date in the future does not make age negative.
        (T0, T0, Some(50), None, T0, 0),
        // Invalid Age is ignored.
        (T0, T0, Some(0), Some("soon"), T0, 0),
        // now before response_time (clock skew between isolates) clamps.
        (T0, T0, None, None, T0 - 5, 0),
    ];
    for (req_t, resp_t, date_off, age, now, want) in cases {
        let mut rs = headers(&[("cache-control", "max-age=60")]);
        if let Some(o) = date_off {
            rs.insert("date", HeaderValue::from_str(&date(o)).unwrap());
        }
        if let Some(a) = age {
            rs.insert("age", HeaderValue::from_str(a).unwrap());
        }
        let rq = HeaderMap::new();
        let p = CachePolicy::new(&Exchange::new(&Method::GET, &rq, 200, &rs, t(req_t), t(resp_t)), &CacheRules::default());
        assert_eq!(p.age(t(now)), want, "{req_t} {resp_t} {date_off:?} {age:?} {now}");
    }
}

#[test]
fn fresh_ttl_and_staleness() {
    let p = policy(&[("cache-control", "max-age=60"), ("age", "10")]);
    assert!(p.is_fresh(t(T0)));
    assert_eq!(p.time_to_live(t(T0)), 50);
    assert!(p.is_fresh(t(T0 + 49)));
    assert!(!p.is_fresh(t(T0 + 50)));
    assert_eq!(p.time_to_live(t(T0 + 70)), -20);
    assert_eq!(p.staleness(t(T0 + 70)), 20);
    assert!(!policy(&[("cache-control", "no-store, max-age=60")]).is_fresh(t(T0)));
}

#[test]
fn stale_windows_table() {
    let d = CacheRules::default();
    let r = CacheRules { stale_while_revalidate: Some(11), stale_if_error: Some(22), ..CacheRules::default() };
    let cases: Vec<(&CacheRules, &str, u64, u64)> = vec![
        (&d, "max-age=60", 0, 0),
        (&d, "max-age=60, stale-while-revalidate=30, stale-if-error=300", 30, 300),
        (&r, "max-age=60", 11, 22),
        (&r, "max-age=60, stale-while-revalidate=1", 1, 22),
        (&d, "max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=300", 0, 0),
        (&d, "max-age=60, proxy-revalidate, stale-while-revalidate=30", 0, 0),
        (&r, "max-age=60, must-revalidate", 0, 0),
        // s-maxage implies proxy-revalidate; only explicit windows apply.
        (&r, "s-maxage=60", 0, 0),
        (&r, "s-maxage=60, stale-if-error=5", 0, 5),
    ];
    for (rules, cc, swr, sie) in cases {
        let p = policy_with(&[], 200, &[("cache-control", cc)], rules);
        assert_eq!((p.stale_while_revalidate(), p.stale_if_error()), (swr, sie), "{cc}");
    }
    let p = policy(&[("cache-control", "max-age=60, stale-while-revalidate=30, stale-if-error=100")]);
    assert!(!p.can_serve_stale_while_revalidate(t(T0 + 59)), "fresh is not stale");
    assert!(p.can_serve_stale_while_revalidate(t(T0 + 90)));
    assert!(!p.can_serve_stale_while_revalidate(t(T0 + 91)));
    assert!(p.can_serve_stale_on_error(t(T0 + 160)));
    assert!(!p.can_serve_stale_on_error(t(T0 + 161)));
}

#[test]
fn retain_for_covers_fresh_stale_and_revalidation() {
    let r = CacheRules { retain_stale: 1000, ..CacheRules::default() };
    let p = policy_with(&[], 200, &[("cache-control", "max-age=60, stale-if-error=40")], &r);
    assert_eq!(p.retain_for(t(T0)), 100, "no validator: no retain_stale");
    assert_eq!(p.retain_for(t(T0 + 150)), 0);
    let p = policy_with(&[], 200, &[("cache-control", "max-age=60"), ("etag", "\"a\"")], &r);
    assert_eq!(p.retain_for(t(T0 + 10)), 1050);
    assert_eq!(policy(&[("cache-control", "no-store")]).retain_for(t(T0)), 0);
}

#[test]
fn storable_headers_strip_private_fields_cookies_and_hop_by_hop() {
    let resp = [
        ("cache-control", "max-age=60, private=\"x-user\", no-cache=\"set-cookie\""),
        ("x-user", "alice"),
        ("set-cookie", "s=1"),
        ("connection", "x-conn"),
        ("x-conn", "1"),
        ("keep-alive", "timeout=5"),
        ("content-type", "text/plain"),
    ];
    let p = policy(&resp);
    assert!(p.is_storable());
    let h = p.storable_headers(&headers(&resp));
    let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["cache-control", "content-type"]);
    // Even when the route allows storing, cookies are never replayed.
    let r = CacheRules { store_set_cookie: true, ..CacheRules::default() };
    let resp = [("cache-control", "max-age=60"), ("set-cookie", "s=1")];
    let p = policy_with(&[], 200, &resp, &r);
    assert!(p.is_storable());
    assert!(!p.storable_headers(&headers(&resp)).contains_key("set-cookie"));
}

#[test]
fn serde_round_trip() {
    let p = policy(&[("cache-control", "max-age=60, stale-if-error=5"), ("etag", "\"a\""), ("vary", "Accept")]);
    let json = p.to_json();
    assert_eq!(CachePolicy::from_json(&json).unwrap(), p);
    assert!(CachePolicy::from_json("{").is_err());
}

#[test]
fn rules_validate_and_deserialize() {
    assert!(CacheRules::default().validate().is_ok());
    let e = CacheRules { heuristic: Some(150), ..CacheRules::default() }.validate().unwrap_err();
    assert_eq!(e.field(), "heuristic");
    assert_eq!(e.to_string(), "cache rules: heuristic: 150: percent must be 0..=100");
    let e = CacheRules { default_ttl: Some(10), max_ttl: Some(5), ..CacheRules::default() }.validate().unwrap_err();
    assert_eq!(e.field(), "default_ttl");
    let r: CacheRules = serde_json::from_str(r#"{"default_ttl":30,"store_set_cookie":true}"#).unwrap();
    assert_eq!(r.default_ttl, Some(30));
    assert!(serde_json::from_str::<CacheRules>(r#"{"ttl":30}"#).is_err());
}

fn lookup(resp: &[(&str, &str)], req: &[(&str, &str)], now: u64) -> Lookup {
    policy(resp).before_request(&headers(req), t(now))
}

fn kind(l: &Lookup) -> String {
    match l {
        Lookup::Fresh { age, ttl } => format!("fresh age={age} ttl={ttl}"),
        Lookup::Stale { serve_while_revalidating, serve_on_error, .. } => {
            format!("stale swr={serve_while_revalidating} sie={serve_on_error}")
        }
        Lookup::MustRevalidate { reason, serve_on_error, .. } => format!("revalidate {} sie={serve_on_error}", reason.as_str()),
        Lookup::GatewayTimeout => "504".to_owned(),
    }
}

#[test]
fn before_request_table() {
    let m60 = vec![("cache-control", "max-age=60")];
    let swr = vec![("cache-control", "max-age=60, stale-while-revalidate=30, stale-if-error=300")];
    let strict = vec![("cache-control", "max-age=60, must-revalidate")];
    let nc = vec![("cache-control", "no-cache, stale-if-error=60"), ("etag", "\"a\"")];
    let cases: Vec<(&Vec<(&str, &str)>, Vec<(&str, &str)>, u64, &str)> = vec![
        (&m60, vec![], T0 + 10, "fresh age=10 ttl=50"),
        (&m60, vec![], T0 + 60, "stale swr=false sie=false"),
        (&swr, vec![], T0 + 70, "stale swr=true sie=true"),
        (&swr, vec![], T0 + 91, "stale swr=false sie=true"),
        (&swr, vec![], T0 + 361, "stale swr=false sie=false"),
        (&m60, vec![("cache-control", "no-cache")], T0, "revalidate request-no-cache sie=false"),
        (&m60, vec![("pragma", "no-cache")], T0, "revalidate request-no-cache sie=false"),
        // Pragma is ignored when Cache-Control is present.
        (&m60, vec![("pragma", "no-cache"), ("cache-control", "max-stale")], T0, "fresh age=0 ttl=60"),
        (&m60, vec![("cache-control", "max-age=5")], T0 + 10, "revalidate request-max-age sie=false"),
        (&m60, vec![("cache-control", "max-age=10")], T0 + 10, "fresh age=10 ttl=50"),
        (&m60, vec![("cache-control", "max-age=0")], T0 + 1, "revalidate request-max-age sie=false"),
        (&m60, vec![("cache-control", "min-fresh=55")], T0 + 10, "revalidate request-min-fresh sie=false"),
        (&m60, vec![("cache-control", "min-fresh=50")], T0 + 10, "fresh age=10 ttl=50"),
        (&m60, vec![("cache-control", "max-stale")], T0 + 1000, "fresh age=1000 ttl=-940"),
        (&m60, vec![("cache-control", "max-stale=10")], T0 + 70, "fresh age=70 ttl=-10"),
        (&m60, vec![("cache-control", "max-stale=10")], T0 + 71, "stale swr=false sie=false"),
        (&strict, vec![("cache-control", "max-stale")], T0 + 70, "stale swr=false sie=false"),
        (&m60, vec![("cache-control", "only-if-cached")], T0 + 10, "fresh age=10 ttl=50"),
        (&m60, vec![("cache-control", "only-if-cached")], T0 + 70, "504"),
        (&m60, vec![("cache-control", "only-if-cached, no-cache")], T0, "504"),
        (&m60, vec![("cache-control", "only-if-cached, max-stale")], T0 + 70, "fresh age=70 ttl=-10"),
        (&swr, vec![("cache-control", "only-if-cached")], T0 + 70, "fresh age=70 ttl=-10"),
        // no-cache forbids any use without validation, even on error
        // (RFC 9111 §5.2.2.4 over RFC 5861).
        (&nc, vec![], T0, "revalidate no-cache sie=false"),
    ];
    for (resp, req, now, want) in cases {
        assert_eq!(kind(&lookup(resp, &req, now)), want, "{resp:?} {req:?} {now}");
    }
}

#[test]
fn revalidation_headers_come_from_validators() {
    let lm = date(-100);
    let l = lookup(&[("cache-control", "max-age=1"), ("etag", "W/\"x\""), ("last-modified", &lm)], &[], T0 + 5);
    let Lookup::Stale { revalidation, .. } = l else { panic!("{l:?}") };
    assert!(revalidation.is_conditional());
    let mut req = headers(&[("if-none-match", "\"client\""), ("if-match", "\"m\""), ("accept", "*/*")]);
    revalidation.apply(&mut req);
    assert_eq!(req["if-none-match"], "W/\"x\"");
    assert_eq!(req["if-modified-since"], lm.as_str());
    assert!(!req.contains_key("if-match"));
    assert_eq!(req["accept"], "*/*");
    // No validators: unconditional, and client conditionals are removed.
    let l = lookup(&[("cache-control", "max-age=1, stale-if-error=60")], &[], T0 + 5);
    let Lookup::Stale { revalidation, .. } = l else { panic!("{l:?}") };
    assert!(!revalidation.is_conditional());
    let mut req = headers(&[("if-none-match", "\"client\"")]);
    revalidation.apply(&mut req);
    assert!(req.is_empty());
}

#[test]
fn invalidated_entries_revalidate_but_may_serve_on_error() {
    let mut p = policy(&[("cache-control", "max-age=60, stale-while-revalidate=30, stale-if-error=100")]);
    p.invalidate();
    assert!(!p.is_fresh(t(T0)));
    assert!(!p.can_serve_stale_while_revalidate(t(T0 + 70)));
    assert_eq!(kind(&p.before_request(&HeaderMap::new(), t(T0 + 10))), "revalidate invalidated sie=true");
    let mut q = policy(&[("cache-control", "max-age=60")]);
    q.invalidate();
    assert_eq!(kind(&q.before_request(&HeaderMap::new(), t(T0 + 10))), "revalidate invalidated sie=false");
}

#[test]
fn unusable_policy_is_a_miss() {
    let l = lookup(&[("cache-control", "no-store")], &[], T0);
    assert_eq!(kind(&l), "revalidate unusable sie=false");
}

#[test]
fn set_age_header() {
    let mut h = headers(&[("age", "999")]);
    set_age(&mut h, 12);
    assert_eq!(h["age"], "12");
}

#[test]
fn hostile_headers_never_panic() {
    let junk = [
        "", ",", "=", "\"", "\\", "max-age=\"", "max-age==5", "no-cache=\"unterminated", "s-maxage=18446744073709551616",
        "W/", "W/\"", "*, *", "\u{7f}", "max-stale=-1, min-fresh=\"\"", ";;;", "private=,", "a=\"\\\"\"",
    ];
    let names = [
        "cache-control", "cdn-cache-control", "surrogate-control", "expires", "date", "age", "last-modified", "etag", "vary",
        "pragma", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "set-cookie", "authorization",
    ];
    for v in junk {
        let mut h = HeaderMap::new();
        for n in names {
            h.append(HeaderName::from_static(n), HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("x")));
        }
        for status in [0, 99, 200, 304, 999, u16::MAX] {
            let rules = CacheRules { heuristic: Some(u8::MAX), default_ttl: Some(u64::MAX), ..CacheRules::default() };
            let x = Exchange::new(&Method::GET, &h, status, &h, t(u64::MAX), t(0));
            let p = CachePolicy::new(&x, &rules);
            for now in [0, T0, u64::MAX] {
                let _ = p.before_request(&h, t(now));
                let _ = (p.age(t(now)), p.time_to_live(t(now)), p.retain_for(t(now)), p.is_fresh(t(now)));
                let _ = crate::cache::after_revalidation(&p, &h, &x, &rules);
            }
            let _ = p.storable_headers(&h);
            let _ = crate::cache::conditional::evaluate(&Method::GET, &h, 200, &h);
        }
        let _ = crate::cache::store::tags_from_headers(&h);
        let _ = crate::cache::key::Variance::new(&["cache-control".into()], &h);
    }
}

/// A request with unkeyed `Cookie` or `Authorization` gets no implicit
/// freshness: a personal page without cache headers is never shared.
#[test]
fn credentials_get_no_implicit_freshness() {
    let dflt = CacheRules { default_ttl: Some(60), heuristic: Some(10), store_authorized: true, ..CacheRules::default() };
    let keyed = CacheRules { keyed_cookie: true, keyed_authorization: true, ..dflt.clone() };
    let opted = CacheRules { implicit_ttl_with_credentials: true, ..dflt.clone() };
    let lm = date(-1000);
    for (req, resp, rules, want) in [
        (vec![("cookie", "session=alice")], vec![], &dflt, Some(NoCacheReason::Credentials)),
        (vec![("cookie", "session=alice")], vec![("last-modified", lm.as_str())], &dflt, Some(NoCacheReason::Credentials)),
        (vec![("authorization", "Bearer a")], vec![], &dflt, Some(NoCacheReason::Credentials)),
        (vec![("cookie", "session=alice")], vec![("cache-control", "max-age=30")], &dflt, None),
        (vec![("cookie", "session=alice")], vec![], &keyed, None),
        (vec![("authorization", "Bearer a")], vec![], &keyed, None),
        (vec![("cookie", "session=alice")], vec![], &opted, None),
        (vec![], vec![], &dflt, None),
    ] {
        let p = policy_with(&req, 200, &resp, rules);
        assert_eq!(p.no_cache_reason(), want, "{req:?} {resp:?}");
    }
    assert_eq!(NoCacheReason::Credentials.as_str(), "credentials");
}
