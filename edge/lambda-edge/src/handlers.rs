//! The three Lambda@Edge triggers over CloudFront event records. Every
//! decision is the core's ([`Edge::plan`], [`Edge::presign_endpoint`],
//! [`CachePolicy`]); this module converts, and expresses the result in what
//! CloudFront understands (a rewritten request, a generated response,
//! `Cache-Control` directives).
//!
//! Where each piece runs:
//! - **viewer-request** (before CloudFront's cache, every request): the
//!   presign endpoint and the signed-link gate answer here; the query is
//!   normalized by the route's cache-key rules so CloudFront's cache key
//!   sees what Offload's would (the signed-link `token` is kept: CloudFront
//!   excludes it from the key by the cache policy and origin-request checks
//!   it again before stripping it).
//! - **origin-request** (cache misses): the core picks the regional origin
//!   (geo from `CloudFront-Viewer-*` headers, passive health, failover
//!   state kept per container); the request is rewritten to that origin
//!   (`origin.custom.domainName`/`port`/`protocol`, `host`), with the
//!   origin-auth header; bucket routes get a SigV4-signed bucket request.
//! - **origin-response**: the route's cache rules become `Cache-Control`
//!   directives CloudFront honours (`s-maxage`, `stale-while-revalidate`,
//!   `stale-if-error`, `private` when the core would not store);
//!   bucket-internal `x-amz-*` fields are dropped; the origin's health is
//!   recorded.
//!
//! No output touches a header CloudFront restricts for the trigger
//! ([`merge_headers`]).

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderValue, CACHE_CONTROL};
use http::Method;
use offload_core::cache::{CachePolicy, Exchange, NoCacheReason, Timestamp};
use offload_core::config::PathPattern;
use offload_core::route::geo::from_cloudfront;
use offload_core::route::Outcome;
use offload_core::sign::link::token_from_query;
use offload_core::sign::Credentials;
use offload_core::proxy::canonical::CanonicalRequest;
use offload_core::secret::{Platform, SecretError, SecretMap};
use offload_core::{Config, Edge, EdgeState, Plan, Step, Upstream, Viewer};
use serde_json::{json, Value};

use crate::event::{
    cf_record, generated_response, headers_from_cf, headers_to_cf, merge_headers, request_from_cf, str_field,
};
use crate::restricted::Trigger;

/// The request header origin-request sets so origin-response knows which
/// route a (possibly prefix-stripped) request came from. Checked there
/// against the URI, so a viewer cannot pick another route's cache rules.
pub const ROUTE_HEADER: &str = "x-offload-route";

/// The adapter's per-container state: the edge and its passive health and
/// retry budget (a Lambda container serves one request at a time and lives
/// for many).
#[derive(Debug)]
pub struct Lambda {
    edge: Edge,
    state: EdgeState,
    role: Option<Credentials>,
}

fn error_json(status: u16, message: &str) -> http::Response<Vec<u8>> {
    let mut resp = http::Response::new(json!({ "error": message, "status": status }).to_string().into_bytes());
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn header_value<'a>(req: &'a Value, name: &str) -> Option<&'a str> {
    str_field(req.get("headers")?.get(name)?.get(0)?, "value")
}

/// `Cache-Control` field values split into directives (commas inside
/// quoted strings do not split).
fn directives(headers: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for v in headers.get_all(CACHE_CONTROL) {
        let s = String::from_utf8_lossy(v.as_bytes());
        let (mut cur, mut quoted, mut escaped) = (String::new(), false, false);
        for c in s.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ',' if !quoted => {
                    out.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        out.push(cur);
    }
    out.into_iter().map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()).collect()
}

fn directive_name(d: &str) -> String {
    d.split('=').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Why an event body was not read.
#[derive(Debug, PartialEq, Eq)]
enum EventBodyError {
    /// Over the limit, or `inputTruncated`: CloudFront gave the function
    /// only part of it, and a part is never used as the whole.
    TooLarge,
    NotBase64,
}

/// The body of a request event (`body.data`, base64 or text), at most
/// `limit` bytes. The encoded size is checked before decoding, so an
/// oversized body is never decoded; a truncated one is refused.
fn event_body(body: Option<&Value>, limit: usize) -> Result<Vec<u8>, EventBodyError> {
    let Some(body) = body else { return Ok(Vec::new()) };
    if body.get("inputTruncated").and_then(Value::as_bool).unwrap_or(false) {
        return Err(EventBodyError::TooLarge);
    }
    let data = str_field(body, "data").unwrap_or("");
    if str_field(body, "encoding") == Some("text") {
        return if data.len() > limit { Err(EventBodyError::TooLarge) } else { Ok(data.as_bytes().to_vec()) };
    }
    // base64: 4 characters per 3 bytes, padded.
    if data.len() > limit.div_ceil(3).saturating_mul(4) {
        return Err(EventBodyError::TooLarge);
    }
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| EventBodyError::NotBase64)?;
    if bytes.len() > limit {
        return Err(EventBodyError::TooLarge);
    }
    Ok(bytes)
}

/// A forwarded request never carries a body the function wrote: the
/// function sees at most a (possibly truncated, `inputTruncated`) copy,
/// so `action` stays `read-only` and CloudFront sends the viewer's own,
/// complete body to the origin.
fn keep_body_read_only(out: &mut Value) {
    if let Some(body) = out.get_mut("body").and_then(Value::as_object_mut) {
        body.insert("action".into(), Value::String("read-only".into()));
    }
}

impl Lambda {
    /// The edge from a validated config and the secrets read from AWS
    /// ([`crate::secrets`]); fails naming the first missing secret.
    pub fn new(config: Config, secrets: &SecretMap) -> Result<Self, SecretError> {
        let edge = Edge::new(config, secrets)?;
        let state = EdgeState::new(edge.config());
        Ok(Self { edge, state, role: None })
    }

    /// New secret values (a refresh after the cache TTL): the edge is
    /// rebuilt with them; health and retry state, and the role's
    /// credentials, are kept.
    pub fn set_secrets(&mut self, secrets: &SecretMap) -> Result<(), SecretError> {
        self.edge = Edge::new(self.edge.config().clone(), secrets)?;
        if let Some(role) = self.role.clone() {
            self.set_credentials(&role);
        }
        Ok(())
    }

    pub fn edge(&self) -> &Edge {
        &self.edge
    }

    /// The Lambda role's credentials (from the runtime's environment) for
    /// every signed bucket, replacing any from the config file.
    pub fn set_credentials(&mut self, credentials: &Credentials) {
        self.role = Some(credentials.clone());
        // Buckets whose credentials name an AWS source keep those.
        let on_role = |b: &offload_core::config::Bucket| {
            b.credentials().is_none_or(|c| c.secret_access_key.source(Platform::LambdaEdge).is_none())
        };
        let aliases: Vec<String> = self
            .edge
            .config()
            .buckets()
            .filter(|b| b.signed() && on_role(b))
            .map(|b| b.alias().to_owned())
            .collect();
        for alias in aliases {
            self.edge.set_bucket_credentials(&alias, credentials.clone());
        }
    }

    /// The viewer as CloudFront saw it.
    fn viewer(req: &Value, headers: &HeaderMap) -> Viewer {
        let ip = str_field(req, "clientIp").and_then(|s| s.parse::<IpAddr>().ok());
        let tls = !header_value(req, "cloudfront-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("http"));
        Viewer { ip, tls, location: from_cloudfront(headers) }
    }

    /// The presign endpoint, if this request is for it (either request
    /// trigger; the body needs the behavior's "include body" option).
    fn presign(&self, req_v: &Value, req: &CanonicalRequest, viewer: &Viewer, now_ms: u64) -> Option<http::Response<Vec<u8>>> {
        if !self.edge.is_presign(req) {
            return None;
        }
        // Refused from the head first (method, missing token, declared
        // size): the body is not even decoded.
        if let Some(refused) = self.edge.presign_precheck(req) {
            return Some(refused);
        }
        let bytes = match event_body(req_v.get("body"), offload_core::pipeline::PRESIGN_MAX_BODY) {
            Ok(b) => b,
            Err(EventBodyError::TooLarge) => return Some(offload_core::pipeline::presign_too_large()),
            Err(EventBodyError::NotBase64) => return Some(error_json(400, "request body is not valid base64")),
        };
        Some(self.edge.presign_endpoint(req, &bytes, viewer, now_ms / 1000))
    }

    /// viewer-request: edge-answered requests, the signed-link gate, and
    /// cache-key normalization of the query.
    pub fn viewer_request(&mut self, event: &Value, now_ms: u64) -> Value {
        let trigger = Trigger::ViewerRequest;
        let Some(req_v) = cf_record(event).and_then(|cf| cf.get("request")) else {
            return generated_response(trigger, &error_json(500, "not a CloudFront request event"));
        };
        let headers = headers_from_cf(req_v.get("headers"));
        let viewer = Self::viewer(req_v, &headers);
        let Some(req) = request_from_cf(req_v, header_value(req_v, "host"), viewer.tls) else {
            return generated_response(trigger, &error_json(400, "request target is not valid"));
        };
        // One canonical form decides everything, here and in CloudFront's
        // cache key: the event's URI is rewritten to it below.
        let req = match self.edge.canonicalize(&req) {
            Ok(r) => r,
            Err(refusal) => return generated_response(trigger, &refusal),
        };
        if let Some(resp) = self.presign(req_v, &req, &viewer, now_ms) {
            return generated_response(trigger, &resp);
        }
        match self.edge.plan(&req, &viewer, now_ms) {
            Plan::Respond(resp) => generated_response(trigger, &resp),
            Plan::Forward(fwd) => {
                let route = self.edge.config().routes().get(fwd.route);
                let mut query = fwd.path_and_query().split_once('?').map_or("", |(_, q)| q).to_owned();
                if route.is_some_and(|r| r.signed_links()) {
                    // Keep the verified token for origin-request's own check:
                    // the one the gate read, from the canonical query (a
                    // viewer may spell its name `%74oken`).
                    if let Some(token) = token_from_query(req.query().unwrap_or("")) {
                        if !query.is_empty() {
                            query.push('&');
                        }
                        query.push_str(offload_core::sign::link::TOKEN_PARAM);
                        query.push('=');
                        query.push_str(token);
                    }
                }
                let mut out = req_v.clone();
                if let Some(obj) = out.as_object_mut() {
                    if obj.get("uri").and_then(Value::as_str) != Some(req.path()) {
                        obj.insert("uri".into(), Value::String(req.path().to_owned()));
                    }
                    if obj.get("querystring").and_then(Value::as_str).unwrap_or("") != query {
                        obj.insert("querystring".into(), Value::String(query));
                    }
                }
                keep_body_read_only(&mut out);
                out
            }
        }
    }

    /// The viewer's host: the `host` header, unless the origin request
    /// policy did not forward it (then it is the origin's domain and the
    /// distribution's domain is the best there is).
    fn viewer_host<'a>(cf: &'a Value, req_v: &'a Value) -> Option<&'a str> {
        let host = header_value(req_v, "host");
        let origin = req_v.get("origin");
        let origin_domain = origin
            .and_then(|o| o.get("custom").or_else(|| o.get("s3")))
            .and_then(|o| str_field(o, "domainName"));
        match (host, origin_domain) {
            (Some(h), Some(d)) if h.eq_ignore_ascii_case(d) => {
                cf.get("config").and_then(|c| str_field(c, "distributionDomainName")).or(Some(h))
            }
            (h, _) => h,
        }
    }

    /// origin-request: route to the chosen regional origin or sign the
    /// bucket request.
    pub fn origin_request(&mut self, event: &Value, now_ms: u64, rand: u32) -> Value {
        let trigger = Trigger::OriginRequest;
        let Some((cf, req_v)) = cf_record(event).and_then(|cf| Some((cf, cf.get("request")?))) else {
            return generated_response(trigger, &error_json(500, "not a CloudFront request event"));
        };
        let headers = headers_from_cf(req_v.get("headers"));
        let viewer = Self::viewer(req_v, &headers);
        let Some(req) = request_from_cf(req_v, Self::viewer_host(cf, req_v), viewer.tls) else {
            return generated_response(trigger, &error_json(400, "request target is not valid"));
        };
        let req = match self.edge.canonicalize(&req) {
            Ok(r) => r,
            Err(refusal) => return generated_response(trigger, &refusal),
        };
        if let Some(resp) = self.presign(req_v, &req, &viewer, now_ms) {
            return generated_response(trigger, &resp);
        }
        // origin-request runs on CloudFront's misses only: the origin is
        // chosen here, and a CloudFront hit never costs retry budget.
        let mut fwd = match self.edge.plan(&req, &viewer, now_ms) {
            Plan::Respond(resp) => return generated_response(trigger, &resp),
            Plan::Forward(fwd) => fwd,
        };
        self.edge.begin(&mut fwd, &mut self.state, now_ms, rand);
        let request = match &fwd.step {
            Step::Send { request, .. } => request,
            Step::GiveUp { response, .. } => return generated_response(trigger, response),
            Step::Deliver => return req_v.clone(),
        };
        let bucket = match &fwd.upstream {
            Upstream::Bucket { alias } => self.edge.config().bucket(alias),
            Upstream::Origins => None,
        };
        self.rewrite(req_v, request, fwd.route, bucket)
    }

    /// The event's request, sent where `request` (the core's) goes.
    fn rewrite(
        &self,
        req_v: &Value,
        request: &http::Request<()>,
        route: usize,
        bucket: Option<&offload_core::config::Bucket>,
    ) -> Value {
        let trigger = Trigger::OriginRequest;
        let uri = request.uri();
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or("");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let protocol = if https { "https" } else { "http" };
        let mut out = req_v.clone();
        keep_body_read_only(&mut out);
        let Some(obj) = out.as_object_mut() else { return out };
        obj.insert("uri".into(), Value::String(uri.path().to_owned()));
        obj.insert("querystring".into(), Value::String(uri.query().unwrap_or("").to_owned()));

        let old_origin = req_v.get("origin");
        let old_custom = old_origin.and_then(|o| o.get("custom"));
        let old_s3 = old_origin.and_then(|o| o.get("s3"));
        let signed = request.headers().contains_key(http::header::AUTHORIZATION);
        let origin = match (bucket, old_s3) {
            // An S3 origin stays an S3 origin when the bucket is plain AWS
            // HTTPS; signed by the edge, CloudFront must not sign it again.
            (Some(b), Some(s3)) if https && port == 443 => {
                let mut s3 = s3.as_object().cloned().unwrap_or_default();
                s3.insert("domainName".into(), Value::String(host.to_owned()));
                s3.insert("region".into(), Value::String(b.region().to_owned()));
                s3.insert("path".into(), Value::String(String::new()));
                if signed {
                    s3.insert("authMethod".into(), Value::String("none".into()));
                }
                s3.entry("customHeaders").or_insert_with(|| json!({}));
                json!({ "s3": s3 })
            }
            _ => {
                let mut custom = old_custom.and_then(Value::as_object).cloned().unwrap_or_else(|| {
                    let defaults = json!({
                        "customHeaders": {},
                        "keepaliveTimeout": 5,
                        "readTimeout": 30,
                        "sslProtocols": ["TLSv1.2"],
                    });
                    defaults.as_object().cloned().unwrap_or_default()
                });
                custom.insert("domainName".into(), Value::String(host.to_owned()));
                custom.insert("port".into(), json!(port));
                custom.insert("protocol".into(), Value::String(protocol.into()));
                custom.insert("path".into(), Value::String(String::new()));
                json!({ "custom": custom })
            }
        };
        obj.insert("origin".into(), origin);

        let mut headers = request.headers().clone();
        // CloudFront sets X-Forwarded-For itself from the address it saw.
        headers.remove("x-forwarded-for");
        if let Ok(v) = HeaderValue::from_str(&route.to_string()) {
            headers.insert(ROUTE_HEADER, v);
        }
        let original = req_v.get("headers");
        obj.insert("headers".into(), merge_headers(trigger, headers_to_cf(&headers, original), original));
        out
    }

    /// The route a request at origin-response came from: the route header
    /// set by origin-request if it is consistent with the URI, else the
    /// route the URI matches.
    fn route_of(&self, req_v: &Value) -> Option<usize> {
        let routes = self.edge.config().routes();
        let uri = str_field(req_v, "uri")?;
        let index_of = |path: &str| {
            let route = self.edge.config().route_for(path)?;
            routes.iter().position(|r| std::ptr::eq(r, route))
        };
        if let Some(i) = header_value(req_v, ROUTE_HEADER).and_then(|v| v.trim().parse::<usize>().ok()) {
            if let Some(route) = routes.get(i) {
                let mut candidates = vec![uri.to_owned()];
                if let PathPattern::Prefix(p) = route.pattern() {
                    candidates.push(format!("{p}{uri}"));
                    candidates.push(format!("{p}{}", uri.strip_prefix('/').unwrap_or(uri)));
                }
                if candidates.iter().any(|c| index_of(c) == Some(i) && route.forward_path(c) == uri) {
                    return Some(i);
                }
            }
        }
        index_of(uri)
    }

    /// origin-response: cache rules as `Cache-Control`, bucket-internal
    /// fields dropped, the origin's health recorded.
    pub fn origin_response(&mut self, event: &Value, now_ms: u64) -> Value {
        let trigger = Trigger::OriginResponse;
        let Some(resp_v) = cf_record(event).and_then(|cf| cf.get("response")) else {
            return generated_response(trigger, &error_json(502, "not a CloudFront response event"));
        };
        // Without the request there is no route to apply: pass it through.
        let Some(req_v) = cf_record(event).and_then(|cf| cf.get("request")) else { return resp_v.clone() };
        let status = str_field(resp_v, "status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        let Some(route_index) = self.route_of(req_v) else { return resp_v.clone() };
        let config = self.edge.config().clone();
        let Some(route) = config.routes().get(route_index) else { return resp_v.clone() };
        let original = resp_v.get("headers");
        let mut headers = headers_from_cf(original);
        match route.target() {
            offload_core::config::Target::Bucket(_) => {
                let internal: Vec<_> =
                    headers.keys().filter(|n| n.as_str().starts_with("x-amz-")).cloned().collect();
                for n in internal {
                    headers.remove(n);
                }
            }
            offload_core::config::Target::Pool(_) => self.record_health(req_v, status, now_ms),
        }
        if let Some(rc) = route.cache() {
            let method = str_field(req_v, "method")
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
                .unwrap_or(Method::GET);
            let req_headers = headers_from_cf(req_v.get("headers"));
            express_cache_policy(&rc.rules, &method, &req_headers, status, &mut headers, now_ms / 1000);
        }
        let mut out = resp_v.clone();
        if let Some(obj) = out.as_object_mut() {
            obj.insert("headers".into(), merge_headers(trigger, headers_to_cf(&headers, original), original));
        }
        out
    }

    /// Passive health from the origin's answer (the origin-request
    /// rewrite put the chosen origin's host in `origin.custom`).
    fn record_health(&mut self, req_v: &Value, status: u16, now_ms: u64) {
        let Some(custom) = req_v.get("origin").and_then(|o| o.get("custom")) else { return };
        let domain = str_field(custom, "domainName").unwrap_or("");
        let port = custom.get("port").and_then(Value::as_u64);
        let routing = self.edge.config().routing();
        let origin = routing.regions().iter().flat_map(|r| r.origins()).find(|o| {
            let Ok(uri) = o.base_url().parse::<http::Uri>() else { return false };
            let https = uri.scheme_str() == Some("https");
            let p = u64::from(uri.port_u16().unwrap_or(if https { 443 } else { 80 }));
            uri.host().is_some_and(|h| h.eq_ignore_ascii_case(domain)) && port.is_none_or(|x| x == p)
        });
        let Some(id) = origin.map(|o| o.id().to_owned()) else { return };
        if routing.retry_policy().is_failure(Outcome::Status(status)) {
            self.state.health.record_failure(&id, now_ms);
        } else {
            self.state.health.record_success(&id, now_ms);
        }
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
    rules: &offload_core::cache::CacheRules,
    method: &Method,
    request_headers: &HeaderMap,
    status: u16,
    headers: &mut HeaderMap,
    now_secs: u64,
) {
    let now = Timestamp::from_unix_secs(now_secs);
    let policy = CachePolicy::new(&Exchange::new(method, request_headers, status, headers, now, now), rules);
    let existing = directives(headers);
    let shared = ["s-maxage", "stale-while-revalidate", "stale-if-error"];
    let mut out: Vec<String>;
    if policy.is_storable() {
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
                out = existing
                    .into_iter()
                    .filter(|d| !matches!(directive_name(d).as_str(), "public" | "s-maxage"))
                    .collect();
                out.insert(0, "private".into());
            }
        }
    }
    headers.remove(CACHE_CONTROL);
    if let Ok(v) = HeaderValue::from_str(&out.join(", ")) {
        headers.insert(CACHE_CONTROL, v);
    }
}

/// Parse an event or fail with a generated 500 (for the JS boundary).
pub fn parse_event(json: &str) -> Result<Value, Value> {
    serde_json::from_str(json).map_err(|_| {
        generated_response(Trigger::ViewerRequest, &error_json(500, "event is not valid JSON"))
    })
}

/// Credentials as the wrapper hands them over (from the Lambda runtime's
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`).
pub fn credentials_from_json(v: &Value) -> Option<Credentials> {
    let id = str_field(v, "accessKeyId").filter(|s| !s.is_empty())?;
    let secret = str_field(v, "secretAccessKey").filter(|s| !s.is_empty())?;
    let token = str_field(v, "sessionToken").filter(|s| !s.is_empty()).map(str::to_owned);
    Some(Credentials::new(id, secret, token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use offload_core::cache::CacheRules;

    fn cc(rules: &CacheRules, status: u16, resp: &[(&str, &str)]) -> Option<String> {
        let mut h = HeaderMap::new();
        for (k, v) in resp {
            h.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        express_cache_policy(rules, &Method::GET, &HeaderMap::new(), status, &mut h, 1_700_000_000);
        h.get(CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn event_bodies_are_bounded_and_never_used_truncated() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = |v: Value| event_body(Some(&v), 10);
        assert_eq!(event_body(None, 10), Ok(Vec::new()));
        assert_eq!(body(serde_json::json!({ "data": b64(b"0123456789"), "encoding": "base64" })), Ok(b"0123456789".to_vec()));
        assert_eq!(body(serde_json::json!({ "data": "abc", "encoding": "text" })), Ok(b"abc".to_vec()));
        for too_large in [
            serde_json::json!({ "data": b64(b"0123456789a"), "encoding": "base64" }),
            serde_json::json!({ "data": "0123456789a", "encoding": "text" }),
            serde_json::json!({ "data": "A".repeat(1 << 20), "encoding": "base64" }),
            serde_json::json!({ "data": b64(b"01"), "encoding": "base64", "inputTruncated": true }),
        ] {
            assert_eq!(body(too_large.clone()), Err(EventBodyError::TooLarge), "{too_large}");
        }
        assert_eq!(body(serde_json::json!({ "data": "not base64!", "encoding": "base64" })), Err(EventBodyError::NotBase64));
    }

    #[test]
    fn forwarded_bodies_stay_read_only() {
        let mut req = serde_json::json!({ "uri": "/x", "body": { "action": "replace", "data": "cGFy", "inputTruncated": true } });
        keep_body_read_only(&mut req);
        assert_eq!(req["body"]["action"], "read-only");
        let mut none = serde_json::json!({ "uri": "/x" });
        keep_body_read_only(&mut none);
        assert!(none.get("body").is_none());
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
}

#[cfg(test)]
mod link_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use offload_core::sign::link::issue_link;
    use offload_core::sign::{LinkClaims, Scope};

    const CONFIG: &str = r#"
        [regions.us-east-1]
        location = { lat = 38.9, lon = -77.4 }
        origins = [{ url = "http://127.0.0.1:18701" }]
        [buckets.www]
        endpoint = "http://127.0.0.1:18703"
        bucket = "www"
        region = "us-east-1"
        [links]
        current = "k1"
        keys = [{ id = "k1", secret = { ssm = "/offload/k1" } }]
        [[routes]]
        path = "/private/*"
        bucket = "www"
        signed_links = true
    "#;
    const NOW_MS: u64 = 1_700_000_000_000;

    fn viewer_event(querystring: &str) -> Value {
        json!({ "Records": [{ "cf": { "config": { "eventType": "viewer-request" }, "request": {
            "clientIp": "203.0.113.9", "method": "GET", "uri": "/private/a.txt", "querystring": querystring,
            "headers": { "host": [{ "key": "Host", "value": "d1.cloudfront.net" }] } } } }] })
    }

    /// The gate reads the canonical query, where `%74oken` is `token`; the
    /// token viewer-request keeps for origin-request must be that one, or
    /// the two triggers disagree (found by the hostile suite).
    #[test]
    fn the_token_kept_for_origin_request_is_the_one_the_gate_read() {
        let mut secrets = SecretMap::new(Platform::LambdaEdge);
        secrets.insert(
            &offload_core::secret::Source::Parameter("/offload/k1"),
            offload_core::secret::Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()),
        );
        let mut lambda = Lambda::new(Config::from_toml(CONFIG).unwrap(), &secrets).unwrap();
        lambda.set_credentials(&Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None));
        let key = lambda.edge().keys().links().unwrap().current().unwrap().clone();
        let token = issue_link(&key, &LinkClaims::new(Scope::parse("/private/a.txt").unwrap(), NOW_MS / 1000 + 60)).unwrap();
        for qs in [format!("%74oken={token}"), format!("x=1&%74oken={token}"), format!("token={token}&token=bad")] {
            let out = lambda.viewer_request(&viewer_event(&qs), NOW_MS);
            assert!(out.get("status").is_none(), "{qs}: refused {out}");
            assert_eq!(out["querystring"].as_str().unwrap().rsplit('&').next().unwrap(), format!("token={token}"), "{qs}");
            let mut origin = out.clone();
            origin["headers"]["host"] = json!([{ "key": "Host", "value": "d1.cloudfront.net" }]);
            let event = json!({ "Records": [{ "cf": { "config": { "eventType": "origin-request", "distributionDomainName": "d1.cloudfront.net" }, "request": origin } }] });
            let sent = lambda.origin_request(&event, NOW_MS, 1);
            assert!(sent.get("status").is_none(), "{qs}: origin-request refused {sent}");
            assert_eq!(sent["uri"], "/www/private/a.txt", "{qs}");
        }
    }
}
