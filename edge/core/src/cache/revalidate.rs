//! Using the origin's answer to a revalidation (RFC 9111 §4.3.3, §4.3.4,
//! §3.2) and to a failed fetch (RFC 5861 `stale-if-error`).
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method};
//! use offload_core::cache::{after_revalidation, CachePolicy, CacheRules, Exchange, Revalidated, Timestamp};
//! let t0 = Timestamp::from_unix_secs(1_000);
//! let mut stored = HeaderMap::new();
//! stored.insert("cache-control", HeaderValue::from_static("max-age=10"));
//! stored.insert("etag", HeaderValue::from_static("\"v1\""));
//! let req = HeaderMap::new();
//! let rules = CacheRules::default();
//! let policy = CachePolicy::new(&Exchange::new(&Method::GET, &req, 200, &stored, t0, t0), &rules);
//!
//! let t1 = t0.plus_secs(60);
//! let mut not_modified = HeaderMap::new();
//! not_modified.insert("etag", HeaderValue::from_static("\"v1\""));
//! not_modified.insert("cache-control", HeaderValue::from_static("max-age=30"));
//! let out = after_revalidation(&policy, &stored, &Exchange::new(&Method::GET, &req, 304, &not_modified, t1, t1), &rules);
//! let Revalidated::NotModified { headers, policy } = out else { panic!() };
//! assert_eq!(headers["cache-control"], "max-age=30");
//! assert!(policy.is_fresh(t1.plus_secs(29)));
//! ```

use http::header::{self, HeaderMap, HeaderName};

use super::conditional::{parse_etag, EntityTag};
use super::policy::{CachePolicy, CacheRules, Exchange};
use super::time::Timestamp;

/// What to do with the origin's answer to a revalidation request.
// Built once per revalidation; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidated {
    /// 304 for the stored response: serve the stored body with `headers`;
    /// replace the stored headers and policy with these (if
    /// `policy.is_storable()`, else remove the entry).
    NotModified { headers: HeaderMap, policy: CachePolicy },
    /// The 304 names a different representation than the stored one:
    /// fetch again without conditional fields.
    Mismatch,
    /// A full response: use it. Store it (replacing the entry) if its own
    /// policy is storable; otherwise, if `remove_stored`, delete the entry.
    Replace { remove_stored: bool },
    /// An origin error within `stale-if-error`: serve the stored response
    /// with `Age: age` and keep the entry.
    ServeStale { age: u64 },
}

/// Fields a 304 never changes in the stored response (RFC 9111 §3.2: the
/// stored representation's framing, encoding and content digest, which
/// describe the stored bytes; and cookies, which a shared copy never keeps).
const NOT_UPDATED: [HeaderName; 7] = [
    header::CONTENT_LENGTH,
    HeaderName::from_static("content-md5"),
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::SET_COOKIE,
    header::AGE,
];

/// Decide from the origin's response to a revalidation of `policy`
/// (`stored_headers` are the stored response's). `new` is the
/// revalidation exchange, with the viewer's request headers.
pub fn after_revalidation(policy: &CachePolicy, stored_headers: &HeaderMap, new: &Exchange<'_>, rules: &CacheRules) -> Revalidated {
    match new.status {
        304 => {
            if !selects_stored(stored_headers, new.response_headers) {
                return Revalidated::Mismatch;
            }
            let merged = update_headers(stored_headers, new.response_headers);
            let x = Exchange { status: policy.status(), response_headers: &merged, ..*new };
            let new_policy = CachePolicy::new(&x, rules);
            let headers = new_policy.storable_headers(&merged);
            Revalidated::NotModified { headers, policy: new_policy }
        }
        500..=599 => serve_stale_or(policy, new.response_time, Revalidated::Replace { remove_stored: false }),
        _ => Revalidated::Replace { remove_stored: true },
    }
}

/// The origin could not be reached (or answered 5xx) while the cache held
/// `policy`: serve stale if `stale-if-error` allows, else pass the error.
pub fn on_origin_error(policy: &CachePolicy, now: Timestamp) -> Option<u64> {
    policy.can_serve_stale_on_error(now).then(|| policy.age(now))
}

fn serve_stale_or(policy: &CachePolicy, now: Timestamp, otherwise: Revalidated) -> Revalidated {
    match on_origin_error(policy, now) {
        Some(age) => Revalidated::ServeStale { age },
        None => otherwise,
    }
}

/// RFC 9111 §4.3.4: does the 304 select the stored response?
fn selects_stored(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    let etag = |h: &HeaderMap| -> Option<EntityTag> { h.get(header::ETAG).and_then(|v| v.to_str().ok()).and_then(parse_etag) };
    match (etag(not_modified), etag(stored)) {
        (Some(new), Some(old)) => return new.weak_eq(&old),
        (Some(_), None) => return false,
        (None, _) => {}
    }
    let lm = |h: &HeaderMap| h.get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok()).and_then(Timestamp::parse_http_date);
    match (lm(not_modified), lm(stored)) {
        (Some(new), Some(old)) => new == old,
        (Some(_), None) => false,
        // No validator in the 304: it selects the one stored response.
        (None, _) => true,
    }
}

/// The stored headers with every field present in the 304 replaced by the
/// 304's lines, except [`NOT_UPDATED`].
pub fn update_headers(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut out = stored.clone();
    for name in not_modified.keys() {
        if NOT_UPDATED.contains(name) {
            continue;
        }
        out.remove(name);
        for v in not_modified.get_all(name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
    use super::*;
    use http::{HeaderValue, Method};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn t(s: u64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    fn policy_for(stored: &HeaderMap) -> CachePolicy {
        let req = HeaderMap::new();
        CachePolicy::new(&Exchange::new(&Method::GET, &req, 200, stored, t(1000), t(1000)), &CacheRules::default())
    }

    fn revalidate(stored: &HeaderMap, status: u16, resp: &HeaderMap, at: u64) -> Revalidated {
        let req = HeaderMap::new();
        let x = Exchange::new(&Method::GET, &req, status, resp, t(at), t(at));
        after_revalidation(&policy_for(stored), stored, &x, &CacheRules::default())
    }

    #[test]
    fn not_modified_updates_headers_but_not_framing() {
        let stored = headers(&[
            ("cache-control", "max-age=10"),
            ("etag", "\"a\""),
            ("content-length", "5"),
            ("content-encoding", "gzip"),
            ("content-md5", "rL0Y20zC+Fzt72VPzMSk2A=="),
            ("x-kept", "1"),
            ("x-multi", "old"),
        ]);
        let nm = headers(&[
            ("cache-control", "max-age=100"),
            ("etag", "W/\"a\""),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("content-md5", "N7UdGUp1E+RbVvZSTy1R8g=="),
            ("x-multi", "n1"),
            ("x-multi", "n2"),
            ("set-cookie", "s=1"),
            ("connection", "close"),
        ]);
        let Revalidated::NotModified { headers, policy } = revalidate(&stored, 304, &nm, 1050) else { panic!() };
        assert_eq!(headers["cache-control"], "max-age=100");
        assert_eq!(headers["content-length"], "5");
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["content-md5"], "rL0Y20zC+Fzt72VPzMSk2A==");
        assert_eq!(headers["x-kept"], "1");
        assert_eq!(headers.get_all("x-multi").iter().collect::<Vec<_>>(), ["n1", "n2"]);
        assert!(!headers.contains_key("set-cookie"));
        assert!(!headers.contains_key("connection"));
        assert_eq!(policy.status(), 200);
        assert_eq!(policy.freshness_lifetime(), 100);
        assert_eq!(policy.age(t(1050)), 0);
        assert!(policy.is_fresh(t(1149)));
    }

    #[test]
    fn validator_selection_table() {
        for (stored, nm, selects) in [
            (vec![("etag", "\"a\"")], vec![("etag", "\"a\"")], true),
            (vec![("etag", "W/\"a\"")], vec![("etag", "\"a\"")], true),
            (vec![("etag", "\"a\"")], vec![("etag", "\"b\"")], false),
            (vec![], vec![("etag", "\"b\"")], false),
            (vec![("etag", "\"a\"")], vec![], true),
            (
                vec![("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")],
                vec![("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")],
                true,
            ),
            (
                vec![("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT")],
                vec![("last-modified", "Mon, 07 Nov 1994 08:49:37 GMT")],
                false,
            ),
        ] {
            let mut s = headers(&stored);
            s.insert("cache-control", HeaderValue::from_static("max-age=10"));
            let out = revalidate(&s, 304, &headers(&nm), 1020);
            assert_eq!(matches!(out, Revalidated::NotModified { .. }), selects, "{stored:?} {nm:?}");
            if !selects {
                assert_eq!(out, Revalidated::Mismatch);
            }
        }
    }

    #[test]
    fn full_responses_replace_and_errors_may_serve_stale() {
        let plain = headers(&[("cache-control", "max-age=10"), ("etag", "\"a\"")]);
        let sie = headers(&[("cache-control", "max-age=10, stale-if-error=60"), ("etag", "\"a\"")]);
        let new = headers(&[("cache-control", "max-age=10")]);
        assert_eq!(revalidate(&plain, 200, &new, 1020), Revalidated::Replace { remove_stored: true });
        assert_eq!(revalidate(&plain, 404, &new, 1020), Revalidated::Replace { remove_stored: true });
        assert_eq!(revalidate(&plain, 503, &new, 1020), Revalidated::Replace { remove_stored: false });
        assert_eq!(revalidate(&sie, 503, &new, 1020), Revalidated::ServeStale { age: 20 });
        assert_eq!(revalidate(&sie, 500, &new, 1070), Revalidated::ServeStale { age: 70 });
        assert_eq!(revalidate(&sie, 502, &new, 1071), Revalidated::Replace { remove_stored: false });
        assert_eq!(on_origin_error(&policy_for(&sie), t(1030)), Some(30));
        assert_eq!(on_origin_error(&policy_for(&plain), t(1030)), None);
    }

    #[test]
    fn revalidated_no_store_is_not_storable() {
        let stored = headers(&[("cache-control", "max-age=10"), ("etag", "\"a\"")]);
        let nm = headers(&[("cache-control", "no-store"), ("etag", "\"a\"")]);
        let Revalidated::NotModified { policy, .. } = revalidate(&stored, 304, &nm, 1020) else { panic!() };
        assert!(!policy.is_storable());
    }
}
