//! Offload's decisions expressed in what CloudFront understands: a
//! rewritten request, `Cache-Control` directives, a route marker.
//!
//! - **viewer-request** ([`normalize_viewer_request`]): the URI becomes the
//!   canonical path and the query the one the route's cache key sees, so
//!   CloudFront's cache key sees what Offload's would (a verified
//!   signed-link `token` is kept last: CloudFront's cache policy leaves it
//!   out of the key and origin-request checks it again before stripping
//!   it).
//! - **origin-request** ([`to_origin`]): the request the core built goes to
//!   its origin (`origin.custom` / `origin.s3`, `host`, auth), marked with
//!   its route ([`ROUTE_HEADER`]).
//! - **origin-response** ([`origin_response`]): the route's cache rules
//!   become `Cache-Control` directives CloudFront honours
//!   ([`express_cache_policy`]); bucket-internal `x-amz-*` fields are
//!   dropped; the origin's answer goes into passive health.
//!
//! No output touches a header CloudFront restricts for the trigger
//! ([`merge_headers`]).

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CACHE_CONTROL};
use http::Method;

use super::event::{CustomOrigin, Headers, Origin, Protocol, Request, Response};
use super::restricted::{merge_headers, Trigger};
use crate::cache::control::{directive_items, directive_name};
use crate::cache::{CachePolicy, CacheRules, Exchange, NoCacheReason, Timestamp};
use crate::config::{Bucket, Config, PathPattern, Target};
use crate::pipeline::{EdgeState, Forward};
use crate::proxy::canonical::CanonicalRequest;
use crate::route::Outcome;
use crate::secret::Platform;
use crate::sign::link::{token_from_query, TOKEN_PARAM};

/// The request header origin-request sets so origin-response knows which
/// route a (possibly prefix-stripped) request came from. Checked there
/// against the URI ([`route_of`]), so a viewer cannot pick another
/// route's cache rules.
pub const ROUTE_HEADER: &str = "x-offload-route";

/// viewer-request: the event's request as it goes on to CloudFront's
/// cache. `req` is its canonical form, `fwd` the core's plan for it.
pub fn normalize_viewer_request(event: &Request, req: &CanonicalRequest, fwd: &Forward, config: &Config) -> Request {
    let mut query = fwd.path_and_query().split_once('?').map_or("", |(_, q)| q).to_owned();
    if config.routes().get(fwd.route).is_some_and(|r| r.signed_links()) {
        // Keep the verified token for origin-request's own check: the one
        // the gate read, from the canonical query (a viewer may spell its
        // name `%74oken`).
        if let Some(token) = token_from_query(req.query().unwrap_or("")) {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(TOKEN_PARAM);
            query.push('=');
            query.push_str(token);
        }
    }
    let mut out = event.clone();
    if out.uri != req.path() {
        req.path().clone_into(&mut out.uri);
    }
    if out.querystring.as_deref().unwrap_or("") != query {
        out.querystring = Some(query);
    }
    out.keep_body_read_only();
    out
}

/// origin-request: the event's request sent where `sent` (the core's
/// request for route `route`) goes. A bucket behind an S3 origin on plain
/// AWS HTTPS stays an S3 origin (signed by the edge: CloudFront must not
/// sign it again); anything else becomes a custom origin.
pub fn to_origin(event: &Request, sent: &http::Request<()>, route: usize, bucket: Option<&Bucket>) -> Request {
    let uri = sent.uri();
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().unwrap_or("").to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let protocol = if https { Protocol::Https } else { Protocol::Http };
    let mut out = event.clone();
    out.keep_body_read_only();
    out.uri = uri.path().to_owned();
    out.querystring = Some(uri.query().unwrap_or("").to_owned());
    out.origin = Some(match (bucket, event.origin.clone()) {
        (Some(b), Some(Origin::S3(mut s3))) if https && port == 443 => {
            s3.domain_name = host;
            b.region().clone_into(&mut s3.region);
            s3.path.clear();
            if sent.headers().contains_key(AUTHORIZATION) {
                s3.auth_method = Some("none".to_owned());
            }
            Origin::S3(s3)
        }
        (_, Some(Origin::Custom(mut custom))) => {
            custom.domain_name = host;
            custom.port = port;
            custom.protocol = protocol;
            custom.path.clear();
            Origin::Custom(custom)
        }
        _ => Origin::Custom(CustomOrigin::new(&host, port, protocol)),
    });
    let mut headers = sent.headers().clone();
    // CloudFront sets X-Forwarded-For itself from the address it saw.
    headers.remove("x-forwarded-for");
    headers.insert(ROUTE_HEADER, HeaderValue::from(route));
    let original = &event.headers;
    out.headers = merge_headers(Trigger::OriginRequest, Headers::from_http(&headers, Some(original)), Some(original));
    out
}

/// The signed buckets that sign with the Lambda role's credentials: all
/// but those whose config credentials name an AWS source of their own.
pub fn buckets_on_role(config: &Config) -> impl Iterator<Item = &str> {
    config
        .buckets()
        .filter(|b| b.signed())
        .filter(|b| b.credentials().is_none_or(|c| c.secret_access_key.source(Platform::LambdaEdge).is_none()))
        .map(Bucket::alias)
}

/// The route a request at origin-response came from: the [`ROUTE_HEADER`]
/// origin-request set, if it is consistent with the URI (the route's
/// pattern matches the URI, or the URI with the route's stripped prefix
/// put back, and forwarding that gives the URI), else the route the URI
/// matches.
pub fn route_of(config: &Config, req: &Request) -> Option<usize> {
    let routes = config.routes();
    let uri = req.uri.as_str();
    let index_of = |path: &str| {
        let route = config.route_for(path)?;
        routes.iter().position(|r| std::ptr::eq(r, route))
    };
    let marked = req.headers.value(ROUTE_HEADER).and_then(|v| v.trim().parse::<usize>().ok());
    if let Some((i, route)) = marked.and_then(|i| Some((i, routes.get(i)?))) {
        let mut candidates = vec![uri.to_owned()];
        if let PathPattern::Prefix(p) = route.pattern() {
            candidates.push(format!("{p}{uri}"));
            candidates.push(format!("{p}{}", uri.strip_prefix('/').unwrap_or(uri)));
        }
        if candidates.iter().any(|c| index_of(c) == Some(i) && route.forward_path(c) == uri) {
            return Some(i);
        }
    }
    index_of(uri)
}

/// origin-response: the response with the route's cache rules as
/// `Cache-Control`, bucket-internal fields dropped, and the origin's
/// health recorded. Without the request (or a route for it) the response
/// passes unchanged.
pub fn origin_response(
    config: &Config,
    state: &mut EdgeState,
    req: Option<&Request>,
    resp: &Response,
    now_ms: u64,
) -> Response {
    let Some(req) = req else { return resp.clone() };
    let Some(route) = route_of(config, req).and_then(|i| config.routes().get(i)) else { return resp.clone() };
    let status = resp.status_code();
    let mut headers = resp.headers.to_http();
    match route.target() {
        Target::Bucket(_) => {
            let internal: Vec<_> = headers.keys().filter(|n| n.as_str().starts_with("x-amz-")).cloned().collect();
            for n in internal {
                headers.remove(n);
            }
        }
        Target::Pool(_) => record_health(config, state, req, status, now_ms),
    }
    if let Some(rc) = route.cache() {
        let method = Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::GET);
        express_cache_policy(&rc.rules, &method, &req.headers.to_http(), status, &mut headers, now_ms / 1000);
    }
    let mut out = resp.clone();
    let original = &resp.headers;
    out.headers = merge_headers(Trigger::OriginResponse, Headers::from_http(&headers, Some(original)), Some(original));
    out
}

/// Passive health from the origin's answer: the origin is the one
/// origin-request chose (its host and port in `origin.custom`).
fn record_health(config: &Config, state: &mut EdgeState, req: &Request, status: u16, now_ms: u64) {
    let Some(Origin::Custom(custom)) = &req.origin else { return };
    let routing = config.routing();
    let origin = routing.regions().iter().flat_map(|r| r.origins()).find(|o| {
        let Ok(uri) = o.base_url().parse::<http::Uri>() else { return false };
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        uri.host().is_some_and(|h| h.eq_ignore_ascii_case(&custom.domain_name)) && custom.port == port
    });
    let Some(id) = origin.map(|o| o.id()) else { return };
    if routing.retry_policy().is_failure(Outcome::Status(status)) {
        state.health.record_failure(id, now_ms);
    } else {
        state.health.record_success(id, now_ms);
    }
}

/// The core's cache decision for this response, written as `Cache-Control`
/// directives CloudFront honours (with a cache policy whose minimum TTL is
/// 0): storable → `s-maxage` = the freshness lifetime the core computed
/// (origin headers, route defaults, `max_ttl` cap), plus the stale windows;
/// not storable by a shared cache (cookies, authorization, no freshness,
/// status, `Vary: *`) → `private`. Responses already marked `no-store` or
/// `private`, and non-GET exchanges, are left as they are.
pub fn express_cache_policy(
    rules: &CacheRules,
    method: &Method,
    request_headers: &HeaderMap,
    status: u16,
    headers: &mut HeaderMap,
    now_secs: u64,
) {
    let now = Timestamp::from_unix_secs(now_secs);
    let policy = CachePolicy::new(&Exchange::new(method, request_headers, status, headers, now, now), rules);
    let existing = directive_items(headers, &CACHE_CONTROL);
    let mut out: Vec<String>;
    if policy.is_storable() {
        let shared = ["s-maxage", "stale-while-revalidate", "stale-if-error"];
        out = existing.into_iter().filter(|d| !shared.contains(&directive_name(d).as_str())).collect();
        out.push(format!("s-maxage={}", policy.freshness_lifetime()));
        if policy.stale_while_revalidate() > 0 {
            out.push(format!("stale-while-revalidate={}", policy.stale_while_revalidate()));
        }
        if policy.stale_if_error() > 0 {
            out.push(format!("stale-if-error={}", policy.stale_if_error()));
        }
    } else {
        match policy.no_cache_reason() {
            None
            | Some(NoCacheReason::Method | NoCacheReason::NoStore | NoCacheReason::Private | NoCacheReason::RequestNoStore) => {
                return
            }
            Some(_) => {
                out = existing.into_iter().filter(|d| !matches!(directive_name(d).as_str(), "public" | "s-maxage")).collect();
                out.insert(0, "private".into());
            }
        }
    }
    headers.remove(CACHE_CONTROL);
    if let Ok(v) = HeaderValue::from_str(&out.join(", ")) {
        headers.insert(CACHE_CONTROL, v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn cc(rules: &CacheRules, status: u16, resp: &[(&str, &str)]) -> Option<String> {
        let mut h = HeaderMap::new();
        for (k, v) in resp {
            h.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        express_cache_policy(rules, &Method::GET, &HeaderMap::new(), status, &mut h, 1_700_000_000);
        h.get(CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn cache_rules_become_directives() {
        let rules = CacheRules { default_ttl: Some(60), stale_if_error: Some(300), ..CacheRules::default() };
        assert_eq!(cc(&rules, 200, &[]).as_deref(), Some("s-maxage=60, stale-if-error=300"));
        assert_eq!(
            cc(&rules, 200, &[("cache-control", "max-age=10, stale-if-error=5")]).as_deref(),
            Some("max-age=10, s-maxage=10, stale-if-error=5")
        );
        assert_eq!(cc(&rules, 200, &[("cache-control", "no-store")]).as_deref(), Some("no-store"));
        assert_eq!(
            cc(&rules, 200, &[("cache-control", "public, max-age=60"), ("set-cookie", "a=1")]).as_deref(),
            Some("private, max-age=60")
        );
        let capped = CacheRules { max_ttl: Some(30), ..CacheRules::default() };
        assert_eq!(
            cc(&capped, 200, &[("cache-control", "max-age=600, no-cache=\"a, b\"")]).as_deref(),
            Some("max-age=600, no-cache=\"a, b\", s-maxage=30")
        );
    }

    #[test]
    fn the_route_marker_is_believed_only_where_it_fits_the_uri() {
        let config = Config::from_toml(
            r#"
            [regions.us-east-1]
            location = { lat = 38.9, lon = -77.4 }
            origins = [{ url = "http://127.0.0.1:18701" }]
            [[routes]]
            path = "/eu/*"
            strip_prefix = true
            [[routes]]
            path = "/api/*"
            [[routes]]
            path = "/*"
            "#,
        )
        .unwrap();
        let req = |uri: &str, marker: Option<&str>| {
            let mut headers = serde_json::json!({});
            if let Some(m) = marker {
                headers[ROUTE_HEADER] = serde_json::json!([{ "key": "X-Offload-Route", "value": m }]);
            }
            serde_json::from_value::<Request>(serde_json::json!({ "method": "GET", "uri": uri, "headers": headers })).unwrap()
        };
        // `/eu/api/x` forwarded as `/api/x`: the marker says route 0.
        assert_eq!(route_of(&config, &req("/api/x", Some("0"))), Some(0));
        assert_eq!(route_of(&config, &req("/api/x", None)), Some(1));
        // A forged marker naming a route the URI cannot come from.
        assert_eq!(route_of(&config, &req("/api/x", Some("2"))), Some(1));
        assert_eq!(route_of(&config, &req("/api/x", Some("99"))), Some(1));
        assert_eq!(route_of(&config, &req("/other", Some("x"))), Some(2));
    }
}
