//! Header rules for edge → origin requests and origin → viewer responses.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop fields (RFC 9110 §7.6.1) plus the legacy ones proxies drop.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers a viewer must not be able to set on an origin request:
/// forwarding headers the edge sets itself, and headers that make some
/// frameworks change the URL or method without changing the cache key
/// (classic cache-poisoning vectors).
const VIEWER_SPOOFABLE: [&str; 14] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "forwarded",
    "x-real-ip",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Remove hop-by-hop fields, including every field named by `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Remove the viewer-supplied headers the edge owns or refuses to forward.
pub fn strip_viewer_spoofable(headers: &mut HeaderMap) {
    for name in VIEWER_SPOOFABLE {
        headers.remove(name);
    }
}

/// Append `value` to a comma-separated list header (e.g. `Via`).
pub fn append_list(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.is_empty() => format!("{existing}, {value}"),
        _ => value.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn connection_named_fields_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, X-Secret , keep-alive"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn spoofable_headers_are_removed() {
        let mut h = HeaderMap::new();
        for n in VIEWER_SPOOFABLE {
            h.insert(n, HeaderValue::from_static("evil"));
        }
        h.insert("cookie", HeaderValue::from_static("a=1"));
        strip_viewer_spoofable(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn append_list_joins() {
        let mut h = HeaderMap::new();
        append_list(&mut h, header::VIA, "1.1 a");
        append_list(&mut h, header::VIA, "1.1 b");
        assert_eq!(h.get(header::VIA).unwrap(), "1.1 a, 1.1 b");
    }
}
