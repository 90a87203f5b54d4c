//! Cache keys: `UrlKey::new` and `PrimaryKey::new` on any scheme, host,
//! target and headers.
//!
//! Input: `flags \0 scheme \0 host \0 path?query \0 header: value ...`.
//! Invariants: never panics; keys are canonical (building a key again from
//! its own origin and path_and_query gives the same key: normalizing is
//! idempotent); the forwarded query is what the key sees; the canonical
//! string is length-prefixed and decodes back to its parts (so two keys
//! are equal exactly when their parts are); GET and HEAD share a key,
//! other methods have none. The canonical request
//! (`proxy::canonical::CanonicalRequest::new`) is a fixed point (the
//! canonical form of its own request is itself), its parts are fixed
//! points of `canonical_path`/`canonical_query`, and the key built from it
//! is the key built from the raw target.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use libfuzzer_sys::fuzz_target;
use offload_core::cache::key::{KeyRules, PrimaryKey, UrlKey};
use offload_core::proxy::canonical::{canonical_path, canonical_query, CanonicalRequest};
use offload_fuzz::Fields;

/// Splits a length-prefixed string (`<len>:<bytes>` ...) into its parts.
fn decode_lp(mut s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    while !s.is_empty() {
        if let Some(rest) = s.strip_prefix('~') {
            out.push("~absent");
            s = rest;
            continue;
        }
        let colon = s.find(':').expect("length prefix");
        let len: usize = s[..colon].parse().expect("decimal length");
        out.push(&s[colon + 1..colon + 1 + len]);
        s = &s[colon + 1 + len..];
    }
    out
}

fn canonical_request(rules: &KeyRules, scheme: &str, host: &str, target: &str, headers: &HeaderMap) {
    let Ok(mut req) = http::Request::get(target).body(()) else { return };
    *req.headers_mut() = headers.clone();
    let Ok(host_value) = HeaderValue::from_str(host) else { return };
    req.headers_mut().insert(http::header::HOST, host_value);
    let Ok(c) = CanonicalRequest::new(&req) else { return };
    assert!(c.path().starts_with('/'));
    assert_eq!(canonical_path(c.path()).as_deref(), Ok(c.path()), "canonical_path is not idempotent");
    if let Some(q) = c.query() {
        assert_eq!(canonical_query(q), Ok(Some(q.to_owned())), "canonical_query is not idempotent");
    }
    let again = CanonicalRequest::new(c.request()).expect("a canonical request is canonical");
    assert_eq!((again.scheme(), again.host(), again.path(), again.query()), (c.scheme(), c.host(), c.path(), c.query()));
    // The key of the canonical request is the key of the raw target.
    let from_canonical = UrlKey::for_request(rules, c.scheme(), c.request().uri(), c.headers()).expect("canonical request has a key");
    if scheme.is_empty() || scheme.eq_ignore_ascii_case("https") {
        let raw = UrlKey::new(rules, "https", host, target).expect("a routable target has a key");
        assert_eq!(raw, from_canonical, "raw and canonical keys differ");
    }
}

fuzz_target!(|data: &[u8]| {
    let f = Fields::new(data);
    let flags = f.bytes(0).first().copied().unwrap_or(0);
    let rules = KeyRules {
        sort_query: flags & 1 != 0,
        drop_tracking: flags & 2 == 0,
        query_deny: if flags & 4 != 0 { vec!["session".into(), "x-*".into()] } else { Vec::new() },
        query_allow: (flags & 8 != 0).then(|| vec!["id".into(), "page*".into(), "a".into()]),
        headers: vec!["accept-language".into(), "x-device".into()],
        cookies: vec!["lang".into()],
        ..KeyRules::default()
    };
    let scheme = f.text(1);
    let host = f.text(2);
    let target = f.text(3);
    let mut headers = HeaderMap::new();
    for line in f.rest(4) {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(&line[colon + 1..])) {
            headers.append(n, v);
        }
    }

    canonical_request(&rules, &scheme, &host, &target, &headers);
    let Ok(key) = UrlKey::new(&rules, &scheme, &host, &target) else { return };
    let pq = key.path_and_query();
    // (UrlKey takes a request target's path; a relative one stays relative.)
    assert!(pq.starts_with('/') || !target.starts_with('/'), "path_and_query {pq:?}");
    assert!(!pq.contains('#'));
    let parts = decode_lp(key.as_str());
    assert_eq!(parts.len(), 4);
    let (origin_scheme, origin_host) = key.origin().split_once("://").expect("origin has a scheme");
    assert_eq!(parts[0], origin_scheme);
    assert_eq!(parts[1], origin_host);
    let rebuilt = if parts[3].is_empty() { parts[2].to_owned() } else { format!("{}?{}", parts[2], parts[3]) };
    assert_eq!(rebuilt, pq);

    // Idempotence: the key of the normalized form is the same key.
    let again = UrlKey::new(&rules, origin_scheme, origin_host, pq).expect("a canonical key re-parses");
    assert_eq!(again, key, "normalizing twice changed the key");
    // The query forwarded upstream (the route's rules applied to the
    // canonical query) is the one the key sees.
    if let Some((_, q)) = target.split('#').next().unwrap_or("").split_once('?') {
        let canonical = canonical_query(q).expect("keyed, so canonical");
        let fwd = rules.forward_query(canonical.as_deref().unwrap_or(""));
        assert_eq!(fwd, parts[3], "forwarded query differs from the keyed one");
    }

    let get = PrimaryKey::new(&rules, &Method::GET, key.clone(), &headers).expect("GET has a key");
    let head = PrimaryKey::new(&rules, &Method::HEAD, key.clone(), &headers).expect("HEAD has a key");
    assert_eq!(get, head);
    assert!(PrimaryKey::new(&rules, &Method::POST, key.clone(), &headers).is_err());
    let pk = decode_lp(get.as_str());
    assert_eq!(pk[0], "GET");
    assert_eq!(pk[1], key.as_str());
    // Headers outside the key never change it.
    let mut noisy = headers.clone();
    noisy.append("x-unkeyed", HeaderValue::from_static("1"));
    assert_eq!(PrimaryKey::new(&rules, &Method::GET, key, &noisy).expect("GET"), get);
});
