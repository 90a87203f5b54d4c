//! Answering a viewer's conditional request from a stored response
//! (RFC 9110 §13.1, evaluated in the §13.2.2 order).
//!
//! ```
//! use http::{HeaderMap, HeaderValue, Method};
//! use offload_core::cache::conditional::{evaluate, Conditional};
//! let mut stored = HeaderMap::new();
//! stored.insert("etag", HeaderValue::from_static("\"v1\""));
//! let mut req = HeaderMap::new();
//! req.insert("if-none-match", HeaderValue::from_static("W/\"v0\", W/\"v1\""));
//! assert_eq!(evaluate(&Method::GET, &req, 200, &stored), Conditional::NotModified);
//! ```

use http::header::{self, HeaderMap, HeaderName};
use http::Method;

use super::time::Timestamp;

/// The answer to a conditional request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Send the stored response (200 or whatever it is).
    Full,
    /// Send 304 with [`not_modified_headers`].
    NotModified,
    /// Send 412 (an `If-Match`/`If-Unmodified-Since` precondition failed).
    PreconditionFailed,
}

/// An entity tag (RFC 9110 §8.8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    pub weak: bool,
    /// The opaque tag without quotes.
    pub tag: String,
}

impl EntityTag {
    /// Weak comparison: opaque tags equal, weakness ignored.
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.tag == other.tag
    }
    /// Strong comparison: both strong and equal.
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.tag == other.tag
    }
}

/// Parse one entity tag (`"x"` or `W/"x"`).
pub fn parse_etag(s: &str) -> Option<EntityTag> {
    let (tags, rest) = parse_tag(s.trim())?;
    rest.trim().is_empty().then_some(tags)
}

fn parse_tag(s: &str) -> Option<(EntityTag, &str)> {
    let (weak, rest) = match s.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, s),
    };
    let inner = rest.strip_prefix('"')?;
    let end = inner.find('"')?;
    let tag = inner.get(..end)?;
    if !tag.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
        return None;
    }
    Some((EntityTag { weak, tag: tag.to_owned() }, inner.get(end + 1..)?))
}

/// An `If-Match`/`If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagList {
    Any,
    Tags(Vec<EntityTag>),
}

/// Parse all lines of an entity-tag list field. `None` if malformed (the
/// caller then ignores the condition, which is the safe reading: the full
/// response is sent).
pub fn parse_etag_list(headers: &HeaderMap, name: &HeaderName) -> Option<EtagList> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut tags = Vec::new();
    for v in values {
        let mut s = v.to_str().ok()?.trim();
        if s == "*" {
            return Some(EtagList::Any);
        }
        loop {
            s = s.trim_start_matches([' ', '\t', ',']);
            if s.is_empty() {
                break;
            }
            let (tag, rest) = parse_tag(s)?;
            tags.push(tag);
            s = rest.trim_start();
            if !(s.is_empty() || s.starts_with(',')) {
                return None;
            }
        }
    }
    Some(EtagList::Tags(tags))
}

/// Evaluate the viewer's preconditions against a stored response with
/// `stored_status` and `stored_headers`. Only `GET`/`HEAD` get 304;
/// preconditions apply only when the stored response is a 200.
pub fn evaluate(method: &Method, request_headers: &HeaderMap, stored_status: u16, stored_headers: &HeaderMap) -> Conditional {
    if stored_status != 200 || !matches!(*method, Method::GET | Method::HEAD) {
        return Conditional::Full;
    }
    let stored_etag = stored_headers.get(header::ETAG).and_then(|v| v.to_str().ok()).and_then(parse_etag);
    let last_modified = stored_headers
        .get(header::LAST_MODIFIED)
        .or_else(|| stored_headers.get(header::DATE))
        .and_then(|v| v.to_str().ok())
        .and_then(Timestamp::parse_http_date);
    let date_field = |name: &HeaderName| {
        request_headers.get(name).and_then(|v| v.to_str().ok()).and_then(Timestamp::parse_http_date)
    };

    // Step 1: If-Match (strong comparison); step 2: If-Unmodified-Since.
    match parse_etag_list(request_headers, &header::IF_MATCH) {
        Some(EtagList::Any) => {}
        Some(EtagList::Tags(tags)) => {
            if !stored_etag.as_ref().is_some_and(|s| tags.iter().any(|t| t.strong_eq(s))) {
                return Conditional::PreconditionFailed;
            }
        }
        None => {
            if let (Some(ius), Some(lm)) = (date_field(&header::IF_UNMODIFIED_SINCE), last_modified) {
                if lm > ius {
                    return Conditional::PreconditionFailed;
                }
            }
        }
    }
    // Step 3: If-None-Match (weak comparison); step 4 only without it.
    if request_headers.contains_key(header::IF_NONE_MATCH) {
        return match parse_etag_list(request_headers, &header::IF_NONE_MATCH) {
            Some(EtagList::Any) => Conditional::NotModified,
            Some(EtagList::Tags(tags)) => {
                if stored_etag.as_ref().is_some_and(|s| tags.iter().any(|t| t.weak_eq(s))) {
                    Conditional::NotModified
                } else {
                    Conditional::Full
                }
            }
            None => Conditional::Full,
        };
    }
    if let (Some(ims), Some(lm)) = (date_field(&header::IF_MODIFIED_SINCE), last_modified) {
        if lm <= ims {
            return Conditional::NotModified;
        }
    }
    Conditional::Full
}

/// Fields a 304 carries from the stored response (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
];

/// The headers of a 304 answered from a stored response.
pub fn not_modified_headers(stored_headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in NOT_MODIFIED_FIELDS {
        for v in stored_headers.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
    use super::*;
    use http::HeaderValue;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sat, 05 Nov 1994 08:49:37 GMT";
    const AFTER: &str = "Mon, 07 Nov 1994 08:49:37 GMT";

    #[test]
    fn evaluation_table() {
        use Conditional::*;
        let stored = headers(&[("etag", "\"v1\""), ("last-modified", LM)]);
        let weak_stored = headers(&[("etag", "W/\"v1\""), ("last-modified", LM)]);
        let cases: Vec<(&HeaderMap, Vec<(&str, &str)>, Conditional)> = vec![
            (&stored, vec![], Full),
            (&stored, vec![("if-none-match", "\"v1\"")], NotModified),
            (&stored, vec![("if-none-match", "W/\"v1\"")], NotModified),
            (&weak_stored, vec![("if-none-match", "\"v1\"")], NotModified),
            (&stored, vec![("if-none-match", "\"v0\", \"v1\"")], NotModified),
            (&stored, vec![("if-none-match", "\"v0\""), ("if-none-match", "\"v1\"")], NotModified),
            (&stored, vec![("if-none-match", "\"a,b\", \"v1\"")], NotModified),
            (&stored, vec![("if-none-match", "\"v0\"")], Full),
            (&stored, vec![("if-none-match", "*")], NotModified),
            (&stored, vec![("if-none-match", "v1")], Full),
            // INM present: IMS is ignored even when it would match.
            (&stored, vec![("if-none-match", "\"v0\""), ("if-modified-since", AFTER)], Full),
            (&stored, vec![("if-modified-since", LM)], NotModified),
            (&stored, vec![("if-modified-since", AFTER)], NotModified),
            (&stored, vec![("if-modified-since", BEFORE)], Full),
            (&stored, vec![("if-modified-since", "garbage")], Full),
            (&stored, vec![("if-match", "\"v1\"")], Full),
            (&stored, vec![("if-match", "\"v2\"")], PreconditionFailed),
            (&weak_stored, vec![("if-match", "W/\"v1\"")], PreconditionFailed),
            (&stored, vec![("if-match", "*"), ("if-none-match", "\"v1\"")], NotModified),
            (&stored, vec![("if-unmodified-since", BEFORE)], PreconditionFailed),
            (&stored, vec![("if-unmodified-since", LM)], Full),
        ];
        for (stored, req, want) in cases {
            assert_eq!(evaluate(&Method::GET, &headers(&req), 200, stored), want, "{req:?}");
        }
    }

    #[test]
    fn only_get_head_and_200_get_304() {
        let stored = headers(&[("etag", "\"v1\"")]);
        let req = headers(&[("if-none-match", "\"v1\"")]);
        assert_eq!(evaluate(&Method::HEAD, &req, 200, &stored), Conditional::NotModified);
        assert_eq!(evaluate(&Method::POST, &req, 200, &stored), Conditional::Full);
        assert_eq!(evaluate(&Method::GET, &req, 404, &stored), Conditional::Full);
    }

    #[test]
    fn ims_falls_back_to_date() {
        let stored = headers(&[("date", LM)]);
        assert_eq!(evaluate(&Method::GET, &headers(&[("if-modified-since", LM)]), 200, &stored), Conditional::NotModified);
        assert_eq!(evaluate(&Method::GET, &headers(&[("if-modified-since", LM)]), 200, &HeaderMap::new()), Conditional::Full);
    }

    #[test]
    fn etag_parsing() {
        assert_eq!(parse_etag("\"x\""), Some(EntityTag { weak: false, tag: "x".into() }));
        assert_eq!(parse_etag(" W/\"\" "), Some(EntityTag { weak: true, tag: String::new() }));
        for bad in ["x", "\"x", "w/\"x\"", "\"x\"y", "\"a b\""] {
            assert_eq!(parse_etag(bad), None, "{bad}");
        }
    }

    #[test]
    fn not_modified_keeps_only_listed_fields() {
        let stored = headers(&[("etag", "\"v1\""), ("content-type", "text/html"), ("cache-control", "max-age=5"), ("vary", "accept")]);
        let h = not_modified_headers(&stored);
        assert_eq!(h.len(), 3);
        assert!(!h.contains_key("content-type"));
    }
}
