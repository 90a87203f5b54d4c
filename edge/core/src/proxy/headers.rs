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

/// Viewer request headers web origins get by default on requests the
/// cache does not share (other methods, uncached routes): what typical
/// applications read. Configure per route with `forward_headers`.
pub const DEFAULT_FORWARD: [&str; 23] = [
    "accept",
    "accept-encoding",
    "accept-language",
    "access-control-request-headers",
    "access-control-request-method",
    "authorization",
    "cache-control",
    "content-encoding",
    "content-language",
    "content-length",
    "content-type",
    "cookie",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "origin",
    "pragma",
    "range",
    "referer",
    "user-agent",
    "x-requested-with",
];

/// Viewer request headers web origins get by default on GET/HEAD requests
/// of cached routes: only those the cache itself accounts for (credentials
/// make a response unshareable unless keyed; conditionals and ranges are
/// the cache's own business; content coding is negotiated per variant).
/// Anything else could change a shared response without changing its key;
/// a route that needs more lists it in `forward_headers` and keys or
/// varies on it.
pub const DEFAULT_FORWARD_CACHED: [&str; 11] = [
    "accept-encoding",
    "authorization",
    "cache-control",
    "cookie",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "pragma",
    "range",
];

/// Whether a header is set by the edge alone (or never forwarded), so no
/// config may list it in `forward_headers`: hop-by-hop fields, `Host`,
/// forwarding and client-address headers, URL and method overrides and
/// the edge's own `x-offload-*` fields. (The platform's viewer headers,
/// such as `CloudFront-Viewer-Country` or `CF-IPCountry`, may be listed:
/// the platform sets them, viewers cannot.)
pub fn is_edge_owned(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    HOP_BY_HOP.contains(&n.as_str())
        || VIEWER_SPOOFABLE.contains(&n.as_str())
        || n == "host"
        || n == "via"
        || n == "true-client-ip"
        || n == "x-client-ip"
        || n == "x-cluster-client-ip"
        || n == "fastly-client-ip"
        || n.starts_with("x-forwarded-")
        || n.starts_with("x-offload-")
        || n == "cf-connecting-ip"
        || n == "cf-connecting-ipv6"
        || n == "cf-worker"
        || n == "cloudfront-forwarded-proto"
}

/// The viewer's headers an origin gets: exactly those named in `allow`
/// (lower-case names), all their lines. Everything else stays at the edge.
pub fn forward_request_headers(viewer: &HeaderMap, allow: &[HeaderName]) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(allow.len());
    for name in allow {
        for v in viewer.get_all(name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
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
    fn only_allowed_headers_are_forwarded() {
        let mut h = HeaderMap::new();
        for n in VIEWER_SPOOFABLE {
            h.insert(n, HeaderValue::from_static("evil"));
            assert!(is_edge_owned(n), "{n}");
        }
        h.insert("x-forwarded-scheme", HeaderValue::from_static("http"));
        h.insert("x-original-host", HeaderValue::from_static("evil.example"));
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let allow: Vec<HeaderName> = DEFAULT_FORWARD.iter().map(|n| HeaderName::from_static(n)).collect();
        let out = forward_request_headers(&h, &allow);
        assert_eq!(out.len(), 3);
        assert_eq!(out.get_all("cookie").iter().count(), 2);
        assert!(out.contains_key("accept"));
        for n in DEFAULT_FORWARD.iter().chain(DEFAULT_FORWARD_CACHED.iter()) {
            assert!(!is_edge_owned(n), "{n}");
        }
        assert!(is_edge_owned("X-Forwarded-Scheme") && is_edge_owned("CF-Connecting-IP") && is_edge_owned("host"));
        assert!(!is_edge_owned("cloudfront-viewer-country") && !is_edge_owned("cf-ipcountry"));
    }

    #[test]
    fn append_list_joins() {
        let mut h = HeaderMap::new();
        append_list(&mut h, header::VIA, "1.1 a");
        append_list(&mut h, header::VIA, "1.1 b");
        assert_eq!(h.get(header::VIA).unwrap(), "1.1 a, 1.1 b");
    }
}
