//! `Cache-Control`, `CDN-Cache-Control` (RFC 9213) and `Surrogate-Control`
//! parsing into plain data.
//!
//! Parsing never fails: HTTP caches must cope with whatever arrives. The
//! rules for bad input follow RFC 9111 §4.2.1 and §5.2:
//! - directive names are case-insensitive; values may be tokens or quoted
//!   strings (`max-age="60"` is accepted, as §5.2 asks recipients to);
//! - all field lines are joined in order; for a repeated directive the
//!   **first** occurrence wins, except that the field-less form of
//!   `no-cache`/`private` beats the qualified form (most restrictive) and
//!   qualified field lists are merged;
//! - an invalid freshness value (`max-age=soon`) is treated as `0` (stale),
//!   likewise `s-maxage`, `stale-while-revalidate`, `stale-if-error`;
//!   an invalid `max-stale=x` or `min-fresh=x` is ignored (so no staleness is
//!   accepted); each case sets [`CacheControl::malformed`] for logs;
//! - delta-seconds saturate at 2^31 (RFC 9111 §1.2.2).
//!
//! ```
//! use offload_core::cache::control::{CacheControl, FieldScope};
//! let cc = CacheControl::parse_str(r#"Max-Age=60, private="set-cookie, x-user", max-age=5"#);
//! assert_eq!(cc.max_age, Some(60));
//! assert_eq!(cc.private, Some(FieldScope::Fields(vec!["set-cookie".into(), "x-user".into()])));
//! ```

use http::header::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

use super::time::parse_delta_seconds;

/// Scope of `no-cache` / `private`: the whole response, or only some fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldScope {
    All,
    /// Lower-cased field names, in order of appearance, de-duplicated.
    Fields(Vec<String>),
}

/// `max-stale` with or without a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaxStale {
    Any,
    Secs(u64),
}

/// The parsed directives of one cache-control-style field (all its lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: Option<FieldScope>,
    pub private: Option<FieldScope>,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub immutable: bool,
    pub only_if_cached: bool,
    pub max_stale: Option<MaxStale>,
    pub min_fresh: Option<u64>,
    pub no_transform: bool,
    pub must_understand: bool,
    /// Number of directives seen, known or not (0 = empty field).
    pub directives: usize,
    /// Some directive had an invalid value and was treated conservatively.
    pub malformed: bool,
}

/// Which header a parse reads; `Surrogate-Control` allows a `;target`
/// suffix on each directive (Edge Architecture spec), which is dropped:
/// Offload treats every surrogate target as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    CacheControl,
    Surrogate,
}

impl CacheControl {
    /// Parse one field value (or several lines already joined with `,`).
    pub fn parse_str(value: &str) -> Self {
        let mut cc = Self::default();
        cc.add_str(value, Dialect::CacheControl);
        cc
    }

    /// Parse every line of `name` in `headers`; `None` when the field is
    /// absent. Lines that are not valid UTF-8 are read lossily.
    pub fn from_headers(headers: &HeaderMap, name: &HeaderName) -> Option<Self> {
        Self::from_headers_in(headers, name, Dialect::CacheControl)
    }

    /// `Cache-Control` of a request or response.
    pub fn from_cache_control(headers: &HeaderMap) -> Option<Self> {
        Self::from_headers(headers, &http::header::CACHE_CONTROL)
    }

    /// `CDN-Cache-Control` (RFC 9213): same syntax as `Cache-Control`.
    ///
    /// RFC 9213 §2.1: the field is a Structured Field Dictionary (RFC
    /// 8941). One that does not parse as such, or whose delta-seconds
    /// directives are not non-negative Integers, is ignored entirely (as if
    /// absent), so `Cache-Control` applies.
    pub fn from_cdn_cache_control(headers: &HeaderMap) -> Option<Self> {
        let name = HeaderName::from_static("cdn-cache-control");
        headers.get(&name)?;
        let joined = headers
            .get_all(&name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        let valid = sfv::Parser::new(&joined).parse_dictionary_with_visitor(DeltaSecondsCheck::default()).ok()?;
        if !valid {
            return None;
        }
        Self::from_headers(headers, &name)
    }

    /// `Surrogate-Control` (W3C Edge Architecture): `max-age`, `no-store`,
    /// `content=...`; a `;target` suffix on a directive is ignored.
    pub fn from_surrogate_control(headers: &HeaderMap) -> Option<Self> {
        Self::from_headers_in(headers, &HeaderName::from_static("surrogate-control"), Dialect::Surrogate)
    }

    fn from_headers_in(headers: &HeaderMap, name: &HeaderName, dialect: Dialect) -> Option<Self> {
        let mut values = headers.get_all(name).iter().peekable();
        values.peek()?;
        let mut cc = Self::default();
        for v in values {
            cc.add_str(&String::from_utf8_lossy(v.as_bytes()), dialect);
        }
        Some(cc)
    }

    /// The no-cache directive without field names: never serve without
    /// revalidation.
    pub fn no_cache_all(&self) -> bool {
        matches!(self.no_cache, Some(FieldScope::All))
    }

    /// `private` without field names.
    pub fn private_all(&self) -> bool {
        matches!(self.private, Some(FieldScope::All))
    }

    fn add_str(&mut self, value: &str, dialect: Dialect) {
        for item in split_list(value) {
            let (name, val) = split_directive(item);
            let (name, val) = match dialect {
                Dialect::CacheControl => (name, val),
                Dialect::Surrogate => strip_target(name, val),
            };
            if name.is_empty() {
                continue;
            }
            self.directives += 1;
            self.apply(&name.to_ascii_lowercase(), val);
        }
    }

    fn apply(&mut self, name: &str, val: Option<Value>) {
        let text = val.as_ref().map(|v| v.text.as_str());
        match name {
            "max-age" => self.max_age = first_secs(self.max_age, text, &mut self.malformed),
            "s-maxage" => self.s_maxage = first_secs(self.s_maxage, text, &mut self.malformed),
            "stale-while-revalidate" => {
                self.stale_while_revalidate = first_secs(self.stale_while_revalidate, text, &mut self.malformed);
            }
            "stale-if-error" => {
                self.stale_if_error = first_secs(self.stale_if_error, text, &mut self.malformed);
            }
            "min-fresh" if self.min_fresh.is_none() => {
                self.min_fresh = text.and_then(parse_delta_seconds);
                self.malformed |= self.min_fresh.is_none();
            }
            "max-stale" if self.max_stale.is_none() => {
                self.max_stale = match text {
                    None => Some(MaxStale::Any),
                    Some(t) => {
                        let s = parse_delta_seconds(t).map(MaxStale::Secs);
                        self.malformed |= s.is_none();
                        s
                    }
                };
            }
            "no-store" => self.no_store = true,
            "no-cache" => merge_scope(&mut self.no_cache, text),
            "private" => merge_scope(&mut self.private, text),
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "immutable" => self.immutable = true,
            "only-if-cached" => self.only_if_cached = true,
            "no-transform" => self.no_transform = true,
            "must-understand" => self.must_understand = true,
            _ => {}
        }
    }
}

/// First occurrence wins; a missing or invalid value counts as 0 (stale).
fn first_secs(current: Option<u64>, text: Option<&str>, malformed: &mut bool) -> Option<u64> {
    if current.is_some() {
        return current;
    }
    match text.and_then(parse_delta_seconds) {
        Some(n) => Some(n),
        None => {
            *malformed = true;
            Some(0)
        }
    }
}

fn merge_scope(scope: &mut Option<FieldScope>, text: Option<&str>) {
    let fields: Vec<String> = match text {
        None => {
            *scope = Some(FieldScope::All);
            return;
        }
        Some(t) => t
            .split(',')
            .map(|f| f.trim().to_ascii_lowercase())
            .filter(|f| !f.is_empty())
            .collect(),
    };
    if fields.is_empty() {
        // `no-cache=""` names no field: treat as unqualified (conservative).
        *scope = Some(FieldScope::All);
        return;
    }
    match scope {
        Some(FieldScope::All) => {}
        Some(FieldScope::Fields(existing)) => {
            for f in fields {
                if !existing.contains(&f) {
                    existing.push(f);
                }
            }
        }
        None => {
            let mut dedup: Vec<String> = Vec::with_capacity(fields.len());
            for f in fields {
                if !dedup.contains(&f) {
                    dedup.push(f);
                }
            }
            *scope = Some(FieldScope::Fields(dedup));
        }
    }
}

/// A directive value with its quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Value {
    text: String,
    quoted: bool,
}

/// The directives of every `name` field line, each as written (trimmed),
/// in order: the one splitter for code that rewrites a cache-control-style
/// field and keeps the directives it does not touch.
pub fn directive_items(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| split_list(&String::from_utf8_lossy(v.as_bytes())).into_iter().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// The lower-cased name of one directive as written (`Max-Age=5` → `max-age`).
pub fn directive_name(item: &str) -> String {
    split_directive(item).0.to_ascii_lowercase()
}

/// Split a comma-separated list, ignoring commas inside quoted strings.
fn split_list(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            if let Some(item) = s.get(start..i) {
                out.push(item.trim());
            }
            start = i + 1;
        }
    }
    if let Some(item) = s.get(start..) {
        out.push(item.trim());
    }
    out.retain(|i| !i.is_empty());
    out
}

fn split_directive(item: &str) -> (&str, Option<Value>) {
    match item.split_once('=') {
        None => (item.trim(), None),
        Some((name, raw)) => (name.trim(), Some(unquote(raw.trim()))),
    }
}

fn unquote(raw: &str) -> Value {
    let Some(inner) = raw.strip_prefix('"') else {
        return Value { text: raw.to_owned(), quoted: false };
    };
    let mut text = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            text.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            break;
        } else {
            text.push(c);
        }
    }
    Value { text, quoted: true }
}

fn strip_target(name: &str, val: Option<Value>) -> (&str, Option<Value>) {
    match val {
        None => (name.split(';').next().unwrap_or(name).trim(), None),
        Some(v) if !v.quoted => {
            let text = v.text.split(';').next().unwrap_or("").trim().to_owned();
            (name, Some(Value { text, quoted: false }))
        }
        Some(v) => (name, Some(v)),
    }
}

/// RFC 9213 §2.1 on a `CDN-Cache-Control` Structured Field Dictionary:
/// its delta-seconds directives must be non-negative Integers. Read with
/// sfv's visitor (no map is built); a repeated key counts by its last
/// value (RFC 9651 §4.2.2, as the parsed dictionary kept it).
#[derive(Default)]
struct DeltaSecondsCheck {
    /// `max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error`:
    /// `true` where the last value seen is not a valid delta-seconds.
    invalid: [bool; 4],
}

/// One dictionary entry: the flag of a checked key, or nothing.
struct DeltaSecondsEntry<'a>(Option<&'a mut bool>);

impl<'de> sfv::visitor::DictionaryVisitor<'de> for DeltaSecondsCheck {
    type Out = bool;
    type Error = std::convert::Infallible;

    fn entry(&mut self, key: &'de sfv::KeyRef) -> Result<impl sfv::visitor::EntryVisitor<'de>, Self::Error> {
        let slot = match key.as_str() {
            "max-age" => 0,
            "s-maxage" => 1,
            "stale-while-revalidate" => 2,
            "stale-if-error" => 3,
            _ => return Ok(DeltaSecondsEntry(None)),
        };
        Ok(DeltaSecondsEntry(self.invalid.get_mut(slot)))
    }

    fn finish(self) -> Result<bool, Self::Error> {
        Ok(!self.invalid.contains(&true))
    }
}

impl<'de> sfv::visitor::EntryVisitor<'de> for DeltaSecondsEntry<'_> {
    type Error = std::convert::Infallible;

    fn item(self) -> Result<impl sfv::visitor::ItemVisitor<'de>, Self::Error> {
        Ok(move |bare: sfv::BareItemFromInput<'de>| {
            if let Some(flag) = self.0 {
                *flag = bare.as_integer().is_none_or(|i| i64::from(i) < 0);
            }
            Ok::<_, std::convert::Infallible>(sfv::visitor::Ignored)
        })
    }

    fn inner_list(self) -> Result<impl sfv::visitor::InnerListVisitor<'de>, Self::Error> {
        if let Some(flag) = self.0 {
            *flag = true;
        }
        Ok(sfv::visitor::Ignored)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
    use super::*;
    use http::HeaderValue;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn fields(list: &[&str]) -> Option<FieldScope> {
        Some(FieldScope::Fields(list.iter().map(|s| (*s).to_owned()).collect()))
    }

    #[test]
    fn directives_table() {
        let cases: Vec<(&str, CacheControl)> = vec![
            ("max-age=60", CacheControl { max_age: Some(60), ..Default::default() }),
            ("MAX-AGE=60", CacheControl { max_age: Some(60), ..Default::default() }),
            ("max-age=\"60\"", CacheControl { max_age: Some(60), ..Default::default() }),
            ("s-maxage=5, max-age=1", CacheControl { s_maxage: Some(5), max_age: Some(1), ..Default::default() }),
            ("max-age=1, max-age=99", CacheControl { max_age: Some(1), ..Default::default() }),
            ("max-age=soon", CacheControl { max_age: Some(0), malformed: true, ..Default::default() }),
            ("max-age", CacheControl { max_age: Some(0), malformed: true, ..Default::default() }),
            ("max-age=-5", CacheControl { max_age: Some(0), malformed: true, ..Default::default() }),
            ("no-store", CacheControl { no_store: true, ..Default::default() }),
            ("no-cache", CacheControl { no_cache: Some(FieldScope::All), ..Default::default() }),
            ("no-cache=\"Set-Cookie\"", CacheControl { no_cache: fields(&["set-cookie"]), ..Default::default() }),
            ("no-cache=set-cookie, no-cache", CacheControl { no_cache: Some(FieldScope::All), ..Default::default() }),
            ("no-cache, no-cache=a", CacheControl { no_cache: Some(FieldScope::All), ..Default::default() }),
            ("no-cache=\"\"", CacheControl { no_cache: Some(FieldScope::All), ..Default::default() }),
            ("private", CacheControl { private: Some(FieldScope::All), ..Default::default() }),
            (
                "private=\"a, B\", private=c, private=a",
                CacheControl { private: fields(&["a", "b", "c"]), ..Default::default() },
            ),
            ("public", CacheControl { public: true, ..Default::default() }),
            ("must-revalidate", CacheControl { must_revalidate: true, ..Default::default() }),
            ("proxy-revalidate", CacheControl { proxy_revalidate: true, ..Default::default() }),
            (
                "stale-while-revalidate=30, stale-if-error=600",
                CacheControl { stale_while_revalidate: Some(30), stale_if_error: Some(600), ..Default::default() },
            ),
            (
                "stale-while-revalidate=x",
                CacheControl { stale_while_revalidate: Some(0), malformed: true, ..Default::default() },
            ),
            ("immutable", CacheControl { immutable: true, ..Default::default() }),
            ("only-if-cached", CacheControl { only_if_cached: true, ..Default::default() }),
            ("max-stale", CacheControl { max_stale: Some(MaxStale::Any), ..Default::default() }),
            ("max-stale=10", CacheControl { max_stale: Some(MaxStale::Secs(10)), ..Default::default() }),
            ("max-stale=x", CacheControl { max_stale: None, malformed: true, ..Default::default() }),
            ("min-fresh=10", CacheControl { min_fresh: Some(10), ..Default::default() }),
            ("min-fresh=x", CacheControl { min_fresh: None, malformed: true, ..Default::default() }),
            ("no-transform", CacheControl { no_transform: true, ..Default::default() }),
            (
                "must-understand, no-store",
                CacheControl { must_understand: true, no_store: true, ..Default::default() },
            ),
            ("community=\"UCI\", x=\"a,b\"", CacheControl::default()),
            ("", CacheControl::default()),
            (" , ,", CacheControl::default()),
        ];
        for (input, mut want) in cases {
            want.directives = split_list(input).len();
            assert_eq!(CacheControl::parse_str(input), want, "{input:?}");
        }
    }

    #[test]
    fn quoted_commas_and_escapes() {
        let cc = CacheControl::parse_str(r#"private="a,b", ext="x\"y,z", max-age=3"#);
        assert_eq!(cc.private, fields(&["a", "b"]));
        assert_eq!(cc.max_age, Some(3));
        assert_eq!(cc.directives, 3);
        // An unterminated quote swallows the rest: nothing after it is read.
        let cc = CacheControl::parse_str(r#"ext="oops, max-age=3"#);
        assert_eq!(cc.max_age, None);
    }

    #[test]
    fn repeated_field_lines_join_in_order() {
        let mut h = HeaderMap::new();
        h.append("cache-control", HeaderValue::from_static("max-age=10"));
        h.append("cache-control", HeaderValue::from_static("max-age=20, no-cache"));
        let cc = CacheControl::from_cache_control(&h).unwrap();
        assert_eq!(cc.max_age, Some(10));
        assert!(cc.no_cache_all());
        assert!(CacheControl::from_cdn_cache_control(&h).is_none());
        // Not a Structured Field Dictionary, or a delta-seconds directive of
        // the wrong type: the whole field is ignored.
        // A repeated key counts by its last value (RFC 9651 §4.2.2); a bare
        // key is the Boolean true.
        for bad in [
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "max-age=1.5",
            "s-maxage=-1",
            "max-age=(1 2)",
            "max-age",
            "max-age=60, max-age=1.5",
            "stale-while-revalidate=?1",
        ] {
            let mut h = HeaderMap::new();
            h.insert("cdn-cache-control", http::HeaderValue::from_str(bad).unwrap());
            assert!(CacheControl::from_cdn_cache_control(&h).is_none(), "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert("cdn-cache-control", http::HeaderValue::from_static("max-age=60, stale-if-error=30, private"));
        let cc = CacheControl::from_cdn_cache_control(&h).unwrap();
        assert_eq!(cc.max_age, Some(60));
        for good in ["max-age=1.5, max-age=60", "max-age=60;x=\"y\", no-store, other=(1 2)"] {
            let mut h = HeaderMap::new();
            h.insert("cdn-cache-control", http::HeaderValue::from_str(good).unwrap());
            assert!(CacheControl::from_cdn_cache_control(&h).is_some(), "{good}");
        }
    }

    #[test]
    fn surrogate_control_targets_are_ignored() {
        let mut h = HeaderMap::new();
        h.append("surrogate-control", HeaderValue::from_static("max-age=300;edge1, no-store;edge2, content=\"ESI/1.0\""));
        let sc = CacheControl::from_surrogate_control(&h).unwrap();
        assert_eq!(sc.max_age, Some(300));
        assert!(sc.no_store);
        assert!(!sc.malformed);
    }

    #[test]
    fn non_utf8_is_read_lossily() {
        let mut h = HeaderMap::new();
        h.append("cache-control", HeaderValue::from_bytes(b"max-age=5, x=\xff").unwrap());
        assert_eq!(CacheControl::from_cache_control(&h).unwrap().max_age, Some(5));
    }
}
