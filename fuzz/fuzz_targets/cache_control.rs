//! Cache-Control, CDN-Cache-Control and Surrogate-Control parsing, and the
//! cache policy built from them.
//!
//! Input: `status \0 name: value \0 name: value ...` response header lines
//! (the first field's first byte picks the status and the rules).
//! Invariants: never panics; a list split over several field lines parses
//! like the joined line; a policy survives its JSON round trip; `no-store`
//! and uncacheable statuses are never storable; lifetimes respect
//! `max_ttl`; stored headers keep no `Set-Cookie`.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Method;
use libfuzzer_sys::fuzz_target;
use offload_core::cache::control::CacheControl;
use offload_core::cache::policy::{status_is_storable, CachePolicy, CacheRules, Exchange};
use offload_core::cache::time::Timestamp;
use offload_fuzz::Fields;

const STATUSES: [u16; 12] = [200, 203, 204, 206, 301, 304, 404, 410, 500, 503, 302, 418];

fuzz_target!(|data: &[u8]| {
    let f = Fields::new(data);
    let pick = f.bytes(0).first().copied().unwrap_or(0);
    let status = STATUSES[usize::from(pick) % STATUSES.len()];
    let rules = CacheRules {
        heuristic: (pick & 0x10 != 0).then_some(10),
        default_ttl: (pick & 0x20 != 0).then_some(60),
        max_ttl: (pick & 0x40 != 0).then_some(3600),
        store_set_cookie: pick & 0x80 != 0,
        ..CacheRules::default()
    };
    let mut headers = HeaderMap::new();
    let mut cc_lines: Vec<String> = Vec::new();
    for line in f.rest(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        if name == http::header::CACHE_CONTROL {
            cc_lines.push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        headers.append(name, value);
    }

    let cc = CacheControl::from_cache_control(&headers);
    let _ = CacheControl::from_cdn_cache_control(&headers);
    let _ = CacheControl::from_surrogate_control(&headers);
    assert_eq!(cc.is_some(), !cc_lines.is_empty());
    if let Some(cc) = &cc {
        // Several field lines are one comma-separated list (RFC 9110 §5.3)
        // when no quoted string spans a line break.
        if cc_lines.iter().all(|l| !l.contains('"')) {
            assert_eq!(cc, &CacheControl::parse_str(&cc_lines.join(", ")), "lines vs joined");
            assert_eq!(CacheControl::parse_str(&cc_lines.join(",")).directives, cc.directives);
        }
    }

    let request_headers = HeaderMap::new();
    let now = Timestamp::from_unix_secs(1_700_000_000);
    let x = Exchange::new(&Method::GET, &request_headers, status, &headers, now, now);
    let policy = CachePolicy::new(&x, &rules);
    let again = CachePolicy::from_json(&policy.to_json()).expect("policy JSON round trip");
    assert_eq!(policy, again);
    if policy.is_storable() {
        assert!(status_is_storable(status), "stored status {status}");
        let targeted = headers.contains_key("cdn-cache-control") || headers.contains_key("surrogate-control");
        assert!(targeted || !cc.as_ref().is_some_and(|c| c.no_store), "no-store stored");
        if let Some(max) = rules.max_ttl {
            assert!(policy.freshness_lifetime() <= max, "lifetime over max_ttl");
        }
        let stored = policy.storable_headers(&headers);
        assert!(!stored.contains_key(http::header::SET_COOKIE), "stored Set-Cookie");
    }
    for later in [0, 1, 59, 3600, 1 << 40] {
        let _ = policy.before_request(&request_headers, now.plus_secs(later));
        let _ = policy.retain_for(now.plus_secs(later));
    }
});
