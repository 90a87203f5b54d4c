//! The Lambda@Edge event record as typed serde structs, and its
//! conversions to and from the core's `http` types.
//!
//! Format: Amazon CloudFront Developer Guide, "Lambda@Edge event
//! structure" (request events: `Records[0].cf.{config, request}`; response
//! events add `response`). A function answers with the request to go on
//! with, or a response ([`Answer`]).
//!
//! Header maps are `{ "<lower-case name>": [{ "key": "Name", "value": "v" }, ...] }`;
//! the `key` keeps the viewer's spelling. Fields Offload does not model
//! (future ones, `origin.custom` extras) are kept in `other` and go back
//! to CloudFront exactly as they came.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::restricted::{merge_headers, Trigger};
use crate::proxy::Viewer;
use crate::route::geo::from_cloudfront;

/// `{"Records": [{"cf": ...}]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    #[serde(rename = "Records")]
    pub records: Vec<Record>,
}

impl Event {
    /// `Records[0].cf`.
    pub fn cf(&self) -> Option<&Cf> {
        self.records.first().map(|r| &r.cf)
    }
}

impl Cf {
    /// The viewer's host: the `host` header, unless the origin request
    /// policy did not forward it (at origin-request it is then the
    /// origin's domain, and the distribution's domain is the best there is).
    pub fn viewer_host(&self) -> Option<&str> {
        let req = self.request.as_ref()?;
        let host = req.headers.value("host");
        let origin_domain = match &req.origin {
            Some(Origin::Custom(c)) => Some(c.domain_name.as_str()),
            Some(Origin::S3(s3)) => Some(s3.domain_name.as_str()),
            None => None,
        };
        match (host, origin_domain) {
            (Some(h), Some(d)) if h.eq_ignore_ascii_case(d) => self.config.distribution_domain_name.as_deref().or(Some(h)),
            (h, _) => h,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    pub cf: Cf,
}

/// One CloudFront record: the distribution, the request, and (response
/// events) the response.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cf {
    #[serde(default)]
    pub config: CfConfig,
    #[serde(default)]
    pub request: Option<Request>,
    #[serde(default)]
    pub response: Option<Response>,
}

/// `cf.config`: the fields Offload reads (others are ignored; the config
/// is not handed back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CfConfig {
    #[serde(default)]
    pub distribution_domain_name: Option<String>,
    #[serde(default)]
    pub event_type: Option<Trigger>,
}

/// One header field line: `{ "key": "Content-Type", "value": "text/plain" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct HeaderEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
}

/// An event header map (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, Vec<HeaderEntry>>);

/// A request as CloudFront hands it to a function (and takes it back).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub method: String,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub querystring: Option<String>,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The request body ("include body" option): at most a copy, possibly
/// truncated (`inputTruncated`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    #[serde(default)]
    pub input_truncated: bool,
    #[serde(default)]
    pub action: BodyAction,
    #[serde(default)]
    pub encoding: BodyEncoding,
    #[serde(default)]
    pub data: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyAction {
    #[default]
    ReadOnly,
    Replace,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    #[default]
    Base64,
    Text,
}

/// Where CloudFront sends the request: `{"custom": {...}}` or `{"s3": {...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub enum Origin {
    #[serde(rename = "custom")]
    Custom(CustomOrigin),
    #[serde(rename = "s3")]
    S3(S3Origin),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomOrigin {
    #[serde(default)]
    pub custom_headers: Headers,
    pub domain_name: String,
    #[serde(default = "keepalive_default")]
    pub keepalive_timeout: u32,
    #[serde(default)]
    pub path: String,
    pub port: u16,
    pub protocol: Protocol,
    #[serde(default = "read_timeout_default")]
    pub read_timeout: u32,
    #[serde(default = "ssl_default")]
    pub ssl_protocols: Vec<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn keepalive_default() -> u32 {
    5
}
fn read_timeout_default() -> u32 {
    30
}
fn ssl_default() -> Vec<String> {
    vec!["TLSv1.2".to_owned()]
}

impl CustomOrigin {
    /// An origin at `host:port` with CloudFront's default timeouts.
    pub fn new(host: &str, port: u16, protocol: Protocol) -> Self {
        Self {
            custom_headers: Headers::default(),
            domain_name: host.to_owned(),
            keepalive_timeout: keepalive_default(),
            path: String::new(),
            port,
            protocol,
            read_timeout: read_timeout_default(),
            ssl_protocols: ssl_default(),
            other: Map::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Origin {
    /// `origin-access-identity` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    #[serde(default)]
    pub custom_headers: Headers,
    pub domain_name: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub region: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A response: the origin's (origin-response) or one the function
/// generates (`body`, `bodyEncoding`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_description: Option<String>,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<BodyEncoding>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// What a request trigger hands back: the request to go on with, or a
/// response CloudFront sends to the viewer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    Forward(Request),
    Respond(Response),
}

/// `content-type` → `Content-Type`, as CloudFront's examples spell keys.
pub fn canonical_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

impl Headers {
    /// The first value of `name` (lower case).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.0.get(name)?.first().map(|e| e.value.as_str())
    }

    /// As a `HeaderMap`; fields that are not valid HTTP are dropped (they
    /// never reach the core, and [`merge_headers`] restores them unchanged
    /// if restricted).
    pub fn to_http(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, list) in &self.0 {
            let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else { continue };
            for entry in list {
                if let Ok(v) = HeaderValue::from_bytes(entry.value.as_bytes()) {
                    map.append(name.clone(), v);
                }
            }
        }
        map
    }

    /// A `HeaderMap` as an event header map. Keys keep the spelling
    /// `original` used for that field; new fields get [`canonical_key`].
    pub fn from_http(map: &HeaderMap, original: Option<&Headers>) -> Self {
        let mut out = BTreeMap::new();
        for name in map.keys() {
            let key = original
                .and_then(|o| o.0.get(name.as_str()))
                .and_then(|l| l.first())
                .and_then(|e| e.key.clone())
                .unwrap_or_else(|| canonical_key(name.as_str()));
            let list = map
                .get_all(name)
                .iter()
                .map(|v| HeaderEntry { key: Some(key.clone()), value: String::from_utf8_lossy(v.as_bytes()).into_owned() })
                .collect();
            out.insert(name.as_str().to_owned(), list);
        }
        Self(out)
    }
}

impl Request {
    /// The viewer as CloudFront saw it (address, TLS, geolocation headers).
    pub fn viewer(&self) -> Viewer {
        let ip = self.client_ip.as_deref().and_then(|s| s.parse::<IpAddr>().ok());
        let tls = !self.headers.value("cloudfront-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("http"));
        Viewer { ip, tls, location: from_cloudfront(&self.headers.to_http()) }
    }

    /// As an `http::Request<()>` with the absolute URI
    /// `https://{host}{uri}[?{querystring}]` (the core takes the viewer
    /// host from the authority); `None` if the target is not valid.
    pub fn to_http(&self, host: Option<&str>, tls: bool) -> Option<http::Request<()>> {
        let method = http::Method::from_bytes(self.method.as_bytes()).ok()?;
        let mut pq = self.uri.clone();
        if let Some(qs) = self.querystring.as_deref().filter(|q| !q.is_empty()) {
            pq.push('?');
            pq.push_str(qs);
        }
        // Bytes the `http` crate refuses but the canonical form encodes
        // anyway (non-ASCII, space, ...) are escaped; everything else is
        // judged by the canonical form, not here.
        let pq = crate::proxy::canonical::escape_for_uri(&pq);
        let parsed: http::Uri = match host.filter(|h| h.parse::<http::uri::Authority>().is_ok()) {
            Some(h) => format!("{}://{h}{pq}", if tls { "https" } else { "http" }).parse().ok()?,
            None => pq.parse().ok()?,
        };
        let mut out = http::Request::new(());
        *out.method_mut() = method;
        *out.uri_mut() = parsed;
        *out.headers_mut() = self.headers.to_http();
        Some(out)
    }

    /// The body, at most `limit` bytes (none: empty). The encoded size is
    /// checked before decoding, so an oversized body is never decoded; a
    /// truncated one is refused.
    pub fn body_bytes(&self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let Some(body) = &self.body else { return Ok(Vec::new()) };
        if body.input_truncated {
            return Err(BodyError::TooLarge);
        }
        let data = &body.data;
        if body.encoding == BodyEncoding::Text {
            return if data.len() > limit { Err(BodyError::TooLarge) } else { Ok(data.as_bytes().to_vec()) };
        }
        // base64: 4 characters per 3 bytes, padded.
        if data.len() > limit.div_ceil(3).saturating_mul(4) {
            return Err(BodyError::TooLarge);
        }
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| BodyError::NotBase64)?;
        if bytes.len() > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(bytes)
    }

    /// A forwarded request never carries a body the function wrote: the
    /// function sees at most a (possibly truncated) copy, so `action`
    /// stays `read-only` and CloudFront sends the viewer's own, complete
    /// body to the origin.
    pub fn keep_body_read_only(&mut self) {
        if let Some(body) = &mut self.body {
            body.action = BodyAction::ReadOnly;
        }
    }
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit, or `inputTruncated`: CloudFront gave the function
    /// only part of it, and a part is never used as the whole.
    TooLarge,
    NotBase64,
}

impl Response {
    /// The status as a number (0 if CloudFront sent something else).
    pub fn status_code(&self) -> u16 {
        self.status.parse().unwrap_or(0)
    }

    /// A response the function generates for `trigger`. Restricted headers
    /// are left out; a response over CloudFront's generated-response quota
    /// for the trigger becomes a short 502.
    pub fn generated(trigger: Trigger, resp: &http::Response<Vec<u8>>) -> Self {
        let headers = merge_headers(trigger, Headers::from_http(resp.headers(), None), None);
        let (body, encoding) = match std::str::from_utf8(resp.body()) {
            Ok(s) => (s.to_owned(), BodyEncoding::Text),
            Err(_) => {
                use base64::Engine as _;
                (base64::engine::general_purpose::STANDARD.encode(resp.body()), BodyEncoding::Base64)
            }
        };
        let header_size = serde_json::to_string(&headers).map_or(usize::MAX, |s| s.len());
        if body.len().saturating_add(header_size) > trigger.generated_response_limit() {
            return Self::generated(
                trigger,
                &error_json(502, "generated response exceeds the CloudFront size quota"),
            );
        }
        Self {
            status: resp.status().as_u16().to_string(),
            status_description: Some(resp.status().canonical_reason().unwrap_or("").to_owned()),
            headers,
            body: Some(body),
            body_encoding: Some(encoding),
            other: Map::new(),
        }
    }
}

/// A JSON error answer: `{"error": message, "status": status}`, not stored.
pub fn error_json(status: u16, message: &str) -> http::Response<Vec<u8>> {
    use http::header::{CACHE_CONTROL, CONTENT_TYPE};
    let body = serde_json::json!({ "error": message, "status": status }).to_string().into_bytes();
    let mut resp = http::Response::new(body);
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn request(v: Value) -> Request {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn canonical_keys() {
        assert_eq!(canonical_key("content-type"), "Content-Type");
        assert_eq!(canonical_key("x-amz-date"), "X-Amz-Date");
        assert_eq!(canonical_key("etag"), "Etag");
    }

    #[test]
    fn fields_not_modelled_go_back_as_they_came() {
        let v = serde_json::json!({
            "clientIp": "203.0.113.9", "method": "GET", "uri": "/a", "headers": {},
            "future": { "x": [1, 2] },
            "origin": { "custom": { "customHeaders": {}, "domainName": "example.org", "keepaliveTimeout": 7,
                "path": "", "port": 443, "protocol": "https", "readTimeout": 4, "sslProtocols": ["TLSv1.2"],
                "ipAddressType": "ipv6" } },
        });
        assert_eq!(serde_json::to_value(request(v.clone())).unwrap(), v);
        let s3 = serde_json::json!({ "method": "GET", "uri": "/a", "headers": {},
            "origin": { "s3": { "authMethod": "origin-access-identity", "customHeaders": {}, "domainName": "b.s3.amazonaws.com", "path": "", "region": "us-east-1" } } });
        assert_eq!(serde_json::to_value(request(s3.clone())).unwrap(), s3);
    }

    #[test]
    fn event_bodies_are_bounded_and_never_used_truncated() {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = |b: Value| request(serde_json::json!({ "method": "POST", "uri": "/", "body": b })).body_bytes(10);
        assert_eq!(request(serde_json::json!({ "method": "POST", "uri": "/" })).body_bytes(10), Ok(Vec::new()));
        assert_eq!(body(serde_json::json!({ "data": b64(b"0123456789"), "encoding": "base64" })), Ok(b"0123456789".to_vec()));
        assert_eq!(body(serde_json::json!({ "data": "abc", "encoding": "text" })), Ok(b"abc".to_vec()));
        for too_large in [
            serde_json::json!({ "data": b64(b"0123456789a"), "encoding": "base64" }),
            serde_json::json!({ "data": "0123456789a", "encoding": "text" }),
            serde_json::json!({ "data": "A".repeat(1 << 20), "encoding": "base64" }),
            serde_json::json!({ "data": b64(b"01"), "encoding": "base64", "inputTruncated": true }),
        ] {
            assert_eq!(body(too_large.clone()), Err(BodyError::TooLarge), "{too_large}");
        }
        assert_eq!(body(serde_json::json!({ "data": "not base64!", "encoding": "base64" })), Err(BodyError::NotBase64));
    }

    #[test]
    fn forwarded_bodies_stay_read_only() {
        let mut req = request(serde_json::json!({ "method": "POST", "uri": "/x",
            "body": { "action": "replace", "data": "cGFy", "encoding": "base64", "inputTruncated": true } }));
        req.keep_body_read_only();
        assert_eq!(serde_json::to_value(&req).unwrap()["body"]["action"], "read-only");
        let mut none = request(serde_json::json!({ "method": "GET", "uri": "/x" }));
        none.keep_body_read_only();
        assert!(serde_json::to_value(&none).unwrap().get("body").is_none());
    }

    #[test]
    fn generated_responses_respect_the_quota() {
        let small = Response::generated(Trigger::ViewerRequest, &error_json(403, "no"));
        assert_eq!(small.status, "403");
        assert_eq!(small.headers.value("cache-control"), Some("no-store"));
        let big = http::Response::new(vec![b'a'; 41 * 1024]);
        assert_eq!(Response::generated(Trigger::ViewerRequest, &big).status, "502");
        assert_eq!(Response::generated(Trigger::OriginRequest, &big).status, "200");
    }
}
