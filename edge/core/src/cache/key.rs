//! Cache keys.
//!
//! A key has three layers, each a canonical **length-prefixed** string
//! (`<len>:<bytes>` per component, fixed component order, `~` for an absent
//! value), so two different inputs can never produce the same key; no hash
//! is needed for correctness. [`fnv1a64`] gives a fast non-cryptographic
//! 64-bit digest of a key for sharding or short log ids only.
//!
//! - [`UrlKey`]: scheme, normalized host, path and query. Purge by URL and
//!   RFC 9111 §4.4 invalidation work at this level.
//! - [`PrimaryKey`]: method class + URL + the request headers and cookies
//!   the route puts in the key ([`KeyRules::headers`], [`KeyRules::cookies`]).
//! - [`Variance`]: the stored response's `Vary` fields as sent by the
//!   request: sorted, lower-cased, de-duplicated names; repeated lines
//!   joined with `", "`, whitespace runs collapsed.
//!
//! Normalization (RFC 3986 §6.2.2 and CDN practice): host lower-cased, one
//! trailing dot dropped, default port dropped; `%xx` escapes upper-cased and
//! unreserved characters decoded in path and query; empty query = no query;
//! tracking parameters (`utm_*`, `fbclid`, `gclid`, ...) dropped by default.
//!
//! **Parameters dropped from the key must also be dropped from the request
//! sent to the origin**, or a response that depends on them is served to
//! everyone (cache poisoning). Forward [`UrlKey::path_and_query`].
//!
//! ```
//! use offload_core::cache::key::{KeyRules, UrlKey};
//! let rules = KeyRules::default();
//! let a = UrlKey::new(&rules, "https", "WWW.Example.com.:443", "/a%7eb?x=1&utm_source=mail").unwrap();
//! let b = UrlKey::new(&rules, "https", "www.example.com", "/a~b?x=1").unwrap();
//! assert_eq!(a, b);
//! assert_eq!(a.path_and_query(), "/a~b?x=1");
//! ```

use std::fmt;

use http::header::{HeaderMap, HeaderName, COOKIE, HOST, VARY};

use crate::proxy::canonical::{canonical_host, canonical_path, canonical_query, CanonicalError};
use http::{Method, Uri};
use serde::{Deserialize, Serialize};

/// Query parameters dropped from keys (and forwarded URLs) by default:
/// click ids and analytics tags that never change the response. Matched
/// case-insensitively; `utm_*` by prefix.
pub const TRACKING_PARAMS: [&str; 16] = [
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "ttclid",
    "igshid", "li_fat_id", "mc_cid", "mc_eid", "_ga", "_gl",
];

/// Tracking parameters dropped by prefix (case-insensitively), besides
/// [`TRACKING_PARAMS`].
pub const TRACKING_PREFIX: &str = "utm_";

/// How a route builds cache keys. Meant to be embedded in route config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyRules {
    /// Keep only these query parameters (exact names; `prefix*` allowed).
    /// `None` keeps all that are not denied.
    pub query_allow: Option<Vec<String>>,
    /// Drop these query parameters (exact names; `prefix*` allowed).
    pub query_deny: Vec<String>,
    /// Drop [`TRACKING_PARAMS`] and `utm_*`.
    pub drop_tracking: bool,
    /// Sort parameters by name (stable: repeated names keep their order).
    pub sort_query: bool,
    /// Request headers that are part of the primary key.
    pub headers: Vec<String>,
    /// Cookie names whose values are part of the primary key.
    pub cookies: Vec<String>,
    /// Most variants (distinct `Vary` values) kept per primary key.
    pub max_variants: usize,
}

impl Default for KeyRules {
    fn default() -> Self {
        Self {
            query_allow: None,
            query_deny: Vec::new(),
            drop_tracking: true,
            sort_query: false,
            headers: Vec::new(),
            cookies: Vec::new(),
            max_variants: 16,
        }
    }
}

/// Most variants per key a route may configure.
pub const MAX_VARIANTS_LIMIT: usize = 1024;

impl KeyRules {
    /// Check the rules; errors name the field and the value.
    pub fn validate(&self) -> Result<(), KeyError> {
        for h in &self.headers {
            if HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(KeyError::rules("headers", h, "not a valid header name"));
            }
        }
        for c in &self.cookies {
            if c.is_empty() || c.bytes().any(|b| b <= b' ' || b == b'=' || b == b';' || b >= 0x7f) {
                return Err(KeyError::rules("cookies", c, "not a valid cookie name"));
            }
        }
        for (field, list) in [("query_deny", Some(&self.query_deny)), ("query_allow", self.query_allow.as_ref())] {
            for p in list.into_iter().flatten() {
                if p.is_empty() || p == "*" {
                    return Err(KeyError::rules(field, p, "empty parameter pattern"));
                }
            }
        }
        if self.max_variants == 0 || self.max_variants > MAX_VARIANTS_LIMIT {
            return Err(KeyError::rules("max_variants", &self.max_variants.to_string(), "must be 1..=1024"));
        }
        Ok(())
    }
}

impl KeyRules {
    /// The query as the key sees it (tracking and denied parameters
    /// dropped, escapes normalized, sorted if asked). Forward this upstream
    /// so a parameter the key ignores can never change the response.
    ///
    /// ```
    /// use offload_core::cache::key::KeyRules;
    /// assert_eq!(KeyRules::default().forward_query("id=1&utm_source=x&fbclid=y"), "id=1");
    /// ```
    pub fn forward_query(&self, query: &str) -> String {
        normalize_query(self, query)
    }
}

/// A key could not be built from this input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache key: {field}: {value:?}: {why}")]
pub struct KeyError {
    field: &'static str,
    value: String,
    why: &'static str,
}

impl KeyError {
    fn new(field: &'static str, value: &str, why: &'static str) -> Self {
        let mut value = value.to_owned();
        if value.len() > 200 {
            let mut cut = 200;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
        }
        Self { field, value, why }
    }
    fn canonical(field: &'static str, value: &str, _e: CanonicalError) -> Self {
        Self::new(field, value, "has no canonical form (see proxy::canonical)")
    }
    fn rules(field: &'static str, value: &str, why: &'static str) -> Self {
        Self::new(field, value, why)
    }
    /// Which input was bad (`host`, `scheme`, `method`, or a rules field).
    pub fn field(&self) -> &str {
        self.field
    }
    /// The offending value (cut at 200 bytes).
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The URL part of a key: what purge-by-URL and invalidation match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UrlKey {
    canonical: String,
    origin: String,
    path_and_query: String,
}

impl UrlKey {
    /// Build from the scheme the viewer used, the authority (`Host`) and the
    /// request target's path and query.
    pub fn new(rules: &KeyRules, scheme: &str, authority: &str, path_and_query: &str) -> Result<Self, KeyError> {
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(KeyError::new("scheme", &scheme, "must be http or https"));
        }
        // The one canonical form (proxy::canonical) of host, path and query:
        // a key is never built from a spelling the pipeline did not route.
        let host = canonical_host(&scheme, authority).map_err(|e| KeyError::canonical("host", authority, e))?;
        // The fragment goes first: a `?` after `#` starts no query (as in
        // `http::Uri` and the canonical request; found by the cache_key
        // fuzz target: `/a#x?y` was keyed with the query `y`).
        let path_and_query = path_and_query.split('#').next().unwrap_or("");
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = path.split('#').next().unwrap_or("");
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            canonical_path(path).map_err(|e| KeyError::canonical("path", path, e))?
        };
        let query = match query.map(|q| q.split('#').next().unwrap_or("")) {
            Some(q) => canonical_query(q)
                .map_err(|e| KeyError::canonical("query", q, e))?
                .map(|q| normalize_query(rules, &q))
                .unwrap_or_default(),
            None => String::new(),
        };
        let mut canonical = String::with_capacity(scheme.len() + host.len() + path.len() + query.len() + 16);
        push_lp(&mut canonical, &scheme);
        push_lp(&mut canonical, &host);
        push_lp(&mut canonical, &path);
        push_lp(&mut canonical, &query);
        let origin = format!("{scheme}://{host}");
        let path_and_query = if query.is_empty() { path } else { format!("{path}?{query}") };
        Ok(Self { canonical, origin, path_and_query })
    }

    /// Build from a request: the URI's authority, else its `Host` header.
    pub fn for_request(rules: &KeyRules, scheme: &str, uri: &Uri, headers: &HeaderMap) -> Result<Self, KeyError> {
        let authority = match uri.authority() {
            Some(a) => a.as_str().to_owned(),
            None => match headers.get(HOST).map(|v| v.to_str()) {
                Some(Ok(h)) => h.to_owned(),
                Some(Err(_)) => return Err(KeyError::new("host", "<non-ASCII>", "not ASCII")),
                None => return Err(KeyError::new("host", "", "missing")),
            },
        };
        let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Self::new(rules, scheme, &authority, pq)
    }

    /// The canonical, collision-free string.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The normalized `scheme://host[:port]` (RFC 6454 origin).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The normalized path and query to forward to the origin.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
}

/// Which methods share cache entries: `GET` and `HEAD` read the same entry.
pub fn method_class(method: &Method) -> Option<&'static str> {
    match *method {
        Method::GET | Method::HEAD => Some("GET"),
        _ => None,
    }
}

/// The primary key: method class, URL and the route's key headers/cookies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrimaryKey {
    url: UrlKey,
    canonical: String,
}

impl PrimaryKey {
    /// Fails for methods whose responses are not cached (only GET/HEAD are).
    pub fn new(rules: &KeyRules, method: &Method, url: UrlKey, request_headers: &HeaderMap) -> Result<Self, KeyError> {
        let class = method_class(method).ok_or_else(|| KeyError::new("method", method.as_str(), "not cacheable"))?;
        let mut canonical = String::with_capacity(url.canonical.len() + 32);
        push_lp(&mut canonical, class);
        push_lp(&mut canonical, &url.canonical);
        let mut names: Vec<String> = rules.headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        crate::sort::sort_by(&mut names, Ord::cmp);
        names.dedup();
        push_lp(&mut canonical, &names.len().to_string());
        for name in &names {
            push_lp(&mut canonical, name);
            push_opt(&mut canonical, header_value(request_headers, name).as_deref());
        }
        let mut cookies: Vec<&str> = rules.cookies.iter().map(String::as_str).collect();
        crate::sort::sort_by(&mut cookies, Ord::cmp);
        cookies.dedup();
        push_lp(&mut canonical, &cookies.len().to_string());
        for name in cookies {
            push_lp(&mut canonical, name);
            push_opt(&mut canonical, cookie_value(request_headers, name).as_deref());
        }
        Ok(Self { url, canonical })
    }

    pub fn url(&self) -> &UrlKey {
        &self.url
    }

    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// FNV-1a 64 of the canonical string (sharding, logs; not identity).
    pub fn hash64(&self) -> u64 {
        fnv1a64(self.canonical.as_bytes())
    }
}

impl fmt::Display for PrimaryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.hash64())
    }
}

/// The secondary (variance) key from a stored response's `Vary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variance(String);

impl Variance {
    /// `vary` must be normalized names as from [`parse_vary`]; they are
    /// sorted and de-duplicated again here to be safe.
    pub fn new(vary: &[String], request_headers: &HeaderMap) -> Self {
        let mut names: Vec<String> = vary.iter().map(|n| n.to_ascii_lowercase()).collect();
        crate::sort::sort_by(&mut names, Ord::cmp);
        names.dedup();
        let mut s = String::new();
        for name in &names {
            push_lp(&mut s, name);
            push_opt(&mut s, header_value(request_headers, name).as_deref());
        }
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash64(&self) -> u64 {
        fnv1a64(self.0.as_bytes())
    }
}

/// `Vary: *` — the response varies on things outside the request headers;
/// it can never be selected, so it is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaryStar;

/// The `Vary` field names of a response: lower-cased, sorted,
/// de-duplicated; `Err(VaryStar)` if any member is `*`.
pub fn parse_vary(response_headers: &HeaderMap) -> Result<Vec<String>, VaryStar> {
    let mut names = Vec::new();
    for v in response_headers.get_all(VARY) {
        for member in String::from_utf8_lossy(v.as_bytes()).split(',') {
            let m = member.trim();
            if m == "*" {
                return Err(VaryStar);
            }
            if !m.is_empty() {
                names.push(m.to_ascii_lowercase());
            }
        }
    }
    crate::sort::sort_by(&mut names, Ord::cmp);
    names.dedup();
    Ok(names)
}

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn push_lp(out: &mut String, s: &str) {
    out.push_str(&s.len().to_string());
    out.push(':');
    out.push_str(s);
}

fn push_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_lp(out, s),
        None => out.push('~'),
    }
}

/// All lines of a request header joined with `", "`, each with whitespace
/// runs collapsed; bytes outside printable ASCII and `%` escaped as `%XX`
/// so distinct values stay distinct. `None` when absent.
fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut out = String::new();
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let mut pending_space = false;
        let mut started = false;
        for &b in v.as_bytes() {
            if b == b' ' || b == b'\t' {
                pending_space = started;
                continue;
            }
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            started = true;
            push_escaped(&mut out, b);
        }
    }
    Some(out)
}

fn push_escaped(out: &mut String, b: u8) {
    if (0x21..0x7f).contains(&b) && b != b'%' {
        out.push(char::from(b));
    } else {
        out.push_str(&format!("%{b:02X}"));
    }
}

/// The first value of cookie `name` across all `Cookie` lines.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(COOKIE) {
        for pair in v.as_bytes().split(|b| *b == b';') {
            let pair = trim_bytes(pair);
            let (n, val) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (pair.get(..i).unwrap_or(&[]), pair.get(i + 1..).unwrap_or(&[])),
                None => continue,
            };
            if trim_bytes(n) == name.as_bytes() {
                let mut out = String::new();
                for &b in trim_bytes(val) {
                    push_escaped(&mut out, b);
                }
                return Some(out);
            }
        }
    }
    None
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    b.get(start..end).unwrap_or(&[])
}

fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn is_tracking(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with(TRACKING_PREFIX) || TRACKING_PARAMS.contains(&lower.as_str())
}

fn normalize_query(rules: &KeyRules, query: &str) -> String {
    let mut params: Vec<(String, String)> = Vec::new();
    for raw in query.split('&') {
        if raw.is_empty() {
            continue;
        }
        // Already canonical (the caller canonicalized the whole query).
        let norm = raw.to_owned();
        let name = norm.split('=').next().unwrap_or("").to_owned();
        if rules.drop_tracking && is_tracking(&name) {
            continue;
        }
        if rules.query_deny.iter().any(|p| matches_pattern(p, &name)) {
            continue;
        }
        if let Some(allow) = &rules.query_allow {
            if !allow.iter().any(|p| matches_pattern(p, &name)) {
                continue;
            }
        }
        params.push((name, norm));
    }
    if rules.sort_query {
        crate::sort::sort_by(&mut params, |a, b| a.0.cmp(&b.0));
    }
    params.into_iter().map(|(_, p)| p).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
    use super::*;
    use http::HeaderValue;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn url(rules: &KeyRules, scheme: &str, host: &str, pq: &str) -> UrlKey {
        UrlKey::new(rules, scheme, host, pq).unwrap()
    }

    #[test]
    fn host_normalization_table() {
        let r = KeyRules::default();
        for (scheme, host, same_as) in [
            ("https", "WWW.EXAMPLE.COM", "www.example.com"),
            ("https", "www.example.com.", "www.example.com"),
            ("https", "www.example.com:443", "www.example.com"),
            ("https", "www.example.com:0443", "www.example.com"),
            ("HTTP", "www.example.com:80", "www.example.com"),
            ("https", "[::1]:443", "[::1]"),
            ("https", "[2001:DB8::1]", "[2001:db8::1]"),
            ("https", "www.example.com:", "www.example.com"),
        ] {
            assert_eq!(url(&r, scheme, host, "/"), url(&r, &scheme.to_lowercase(), same_as, "/"), "{host}");
        }
        for (scheme, a, b) in [
            ("https", "example.com:8443", "example.com"),
            ("http", "example.com:443", "example.com"),
            ("https", "a.example.com", "b.example.com"),
        ] {
            assert_ne!(url(&r, scheme, a, "/"), url(&r, scheme, b, "/"), "{a} vs {b}");
        }
        assert_ne!(url(&r, "http", "a.com", "/"), url(&r, "https", "a.com", "/"));
    }

    #[test]
    fn bad_hosts_are_errors_naming_the_input() {
        let r = KeyRules::default();
        for host in ["", "evil.com/x", "user@evil.com", "a b", "a.com:99999", "a.com:x", "[::1", "[zz]", "[::1]x", "\u{e9}.com"] {
            let e = UrlKey::new(&r, "https", host, "/").unwrap_err();
            assert_eq!(e.field(), "host", "{host}");
        }
        let e = UrlKey::new(&r, "ftp", "a.com", "/").unwrap_err();
        assert_eq!(e.to_string(), "cache key: scheme: \"ftp\": must be http or https");
    }

    #[test]
    fn path_and_query_normalization_table() {
        let d = KeyRules::default();
        let sorted = KeyRules { sort_query: true, ..KeyRules::default() };
        let allow = KeyRules { query_allow: Some(vec!["id".into(), "page*".into()]), ..KeyRules::default() };
        let deny = KeyRules { query_deny: vec!["session".into(), "x-*".into()], ..KeyRules::default() };
        let keep_tracking = KeyRules { drop_tracking: false, ..KeyRules::default() };
        for (rules, input, want) in [
            (&d, "", "/"),
            (&d, "/a?", "/a"),
            (&d, "/a?&&", "/a"),
            (&d, "/%7euser/%3b%41", "/~user/%3BA"),
            (&d, "/a?q=%7e%2b", "/a?q=~%2B"),
            (&d, "/a?b=1&a=2", "/a?b=1&a=2"),
            (&sorted, "/a?b=1&a=2&b=0", "/a?a=2&b=1&b=0"),
            (&d, "/a?utm_source=x&id=1&UTM_Medium=y&fbclid=z&gclid=w", "/a?id=1"),
            (&keep_tracking, "/a?utm_source=x", "/a?utm_source=x"),
            (&allow, "/a?id=1&x=2&page_size=3&pag=4", "/a?id=1&page_size=3"),
            (&deny, "/a?session=1&x-y=2&x=3", "/a?x=3"),
            (&d, "/a#frag", "/a"),
        ] {
            assert_eq!(url(rules, "https", "h", input).path_and_query(), want, "{input}");
        }
    }

    #[test]
    fn a_question_mark_in_the_fragment_starts_no_query() {
        let r = KeyRules::default();
        assert_eq!(url(&r, "https", "h", "/a#x?y=1"), url(&r, "https", "h", "/a"));
        assert_eq!(url(&r, "https", "h", "/a?b=1#x?y=1").path_and_query(), "/a?b=1");
    }

    #[test]
    fn non_canonical_targets_have_no_key() {
        for (host, pq, field) in
            [("h", "/a%2Fb", "path"), ("h", "/a/../b", "path"), ("h", "//a", "path"), ("h", "/a?x=%00", "query"), ("a b", "/", "host")]
        {
            let e = UrlKey::new(&KeyRules::default(), "https", host, pq).unwrap_err();
            assert_eq!(e.field(), field, "{pq}");
        }
    }

    #[test]
    fn utm_does_not_split_the_cache_but_real_params_do() {
        let r = KeyRules::default();
        assert_eq!(url(&r, "https", "h", "/p?utm_campaign=1"), url(&r, "https", "h", "/p"));
        assert_ne!(url(&r, "https", "h", "/p?id=1"), url(&r, "https", "h", "/p?id=2"));
        assert_ne!(url(&r, "https", "h", "/p?a=1&b=2"), url(&r, "https", "h", "/p?b=2&a=1"));
    }

    #[test]
    fn length_prefix_prevents_component_collisions() {
        let r = KeyRules::default();
        // Without prefixes these would concatenate identically.
        assert_ne!(url(&r, "https", "ab", "/c").as_str(), url(&r, "https", "a", "/bc").as_str());
        let rules = KeyRules { headers: vec!["x-a".into(), "x-b".into()], ..KeyRules::default() };
        let u = url(&r, "https", "h", "/");
        let mut h1 = HeaderMap::new();
        h1.insert("x-a", HeaderValue::from_static("1:x"));
        let mut h2 = HeaderMap::new();
        h2.insert("x-a", HeaderValue::from_static("1"));
        h2.insert("x-b", HeaderValue::from_static("x"));
        let k1 = PrimaryKey::new(&rules, &Method::GET, u.clone(), &h1).unwrap();
        let k2 = PrimaryKey::new(&rules, &Method::GET, u.clone(), &h2).unwrap();
        assert_ne!(k1, k2);
        // Absent differs from empty.
        let mut h3 = HeaderMap::new();
        h3.insert("x-a", HeaderValue::from_static(""));
        let k0 = PrimaryKey::new(&rules, &Method::GET, u.clone(), &HeaderMap::new()).unwrap();
        let k3 = PrimaryKey::new(&rules, &Method::GET, u, &h3).unwrap();
        assert_ne!(k0, k3);
    }

    #[test]
    fn primary_key_method_class_headers_and_cookies() {
        let rules = KeyRules { headers: vec!["X-Device".into()], cookies: vec!["lang".into()], ..KeyRules::default() };
        let u = url(&rules, "https", "h", "/");
        let get = PrimaryKey::new(&rules, &Method::GET, u.clone(), &HeaderMap::new()).unwrap();
        let head = PrimaryKey::new(&rules, &Method::HEAD, u.clone(), &HeaderMap::new()).unwrap();
        assert_eq!(get, head);
        assert_eq!(PrimaryKey::new(&rules, &Method::POST, u.clone(), &HeaderMap::new()).unwrap_err().field(), "method");

        let mut h = HeaderMap::new();
        h.insert("x-device", HeaderValue::from_static("mobile"));
        h.append("cookie", HeaderValue::from_static("a=1; lang=fr"));
        h.append("cookie", HeaderValue::from_static("lang=de"));
        let k = PrimaryKey::new(&rules, &Method::GET, u.clone(), &h).unwrap();
        assert!(k.as_str().ends_with("8:x-device6:mobile1:14:lang2:fr"), "{}", k.as_str());
        // Other cookies do not split the key.
        let mut h2 = h.clone();
        h2.append("cookie", HeaderValue::from_static("session=abc"));
        assert_eq!(PrimaryKey::new(&rules, &Method::GET, u, &h2).unwrap(), k);
        assert_eq!(k.to_string().len(), 16);
    }

    #[test]
    fn variance_is_sorted_deduped_and_whitespace_normalized() {
        let mut h = HeaderMap::new();
        h.insert("accept-encoding", HeaderValue::from_static("  gzip,   br "));
        h.append("accept-language", HeaderValue::from_static("fr"));
        h.append("accept-language", HeaderValue::from_static("en"));
        let vary = vec!["Accept-Language".to_owned(), "accept-encoding".to_owned(), "accept-encoding".to_owned()];
        let v = Variance::new(&vary, &h);
        assert_eq!(v.as_str(), "15:accept-encoding8:gzip, br15:accept-language6:fr, en");
        let mut h2 = HeaderMap::new();
        h2.insert("accept-encoding", HeaderValue::from_static("gzip, br"));
        h2.insert("accept-language", HeaderValue::from_static("fr, en"));
        assert_eq!(Variance::new(&vary, &h2), v);
        assert_ne!(Variance::new(&vary, &HeaderMap::new()), v);
        assert_eq!(Variance::new(&[], &h), Variance::default());
        // Non-ASCII bytes stay distinct.
        let mut a = HeaderMap::new();
        a.insert("x", HeaderValue::from_bytes(b"\xff").unwrap());
        let mut b = HeaderMap::new();
        b.insert("x", HeaderValue::from_bytes(b"\xfe").unwrap());
        assert_ne!(Variance::new(&["x".into()], &a), Variance::new(&["x".into()], &b));
    }

    #[test]
    fn vary_parsing() {
        let mut h = HeaderMap::new();
        h.append("vary", HeaderValue::from_static("Accept-Encoding, ORIGIN"));
        h.append("vary", HeaderValue::from_static("origin"));
        assert_eq!(parse_vary(&h), Ok(vec!["accept-encoding".into(), "origin".into()]));
        h.append("vary", HeaderValue::from_static("*"));
        assert_eq!(parse_vary(&h), Err(VaryStar));
        assert_eq!(parse_vary(&HeaderMap::new()), Ok(vec![]));
    }

    #[test]
    fn key_rules_validate_and_deserialize() {
        assert!(KeyRules::default().validate().is_ok());
        let bad = KeyRules { headers: vec!["bad header".into()], ..KeyRules::default() };
        assert_eq!(bad.validate().unwrap_err().field(), "headers");
        let bad = KeyRules { max_variants: 0, ..KeyRules::default() };
        assert_eq!(bad.validate().unwrap_err().field(), "max_variants");
        let bad = KeyRules { cookies: vec!["a=b".into()], ..KeyRules::default() };
        assert_eq!(bad.validate().unwrap_err().field(), "cookies");
        let r: KeyRules = serde_json::from_str(r#"{"sort_query":true,"headers":["x-a"]}"#).unwrap();
        assert!(r.sort_query && r.drop_tracking && r.max_variants == 16);
        assert!(serde_json::from_str::<KeyRules>(r#"{"sort":true}"#).is_err());
    }

    #[test]
    fn for_request_uses_authority_then_host() {
        let r = KeyRules::default();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("Example.COM"));
        let uri: Uri = "/x?utm_id=1".parse().unwrap();
        let k = UrlKey::for_request(&r, "https", &uri, &h).unwrap();
        assert_eq!(k, url(&r, "https", "example.com", "/x"));
        let abs: Uri = "https://example.com/x".parse().unwrap();
        assert_eq!(UrlKey::for_request(&r, "https", &abs, &HeaderMap::new()).unwrap(), k);
        assert!(UrlKey::for_request(&r, "https", &uri, &HeaderMap::new()).is_err());
    }

    #[test]
    fn fnv_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
