//! What the edge decides for one request and its upstream response, under
//! a config: computed by the same core code the edge runs (canonical
//! request → route plan → cache lookup → `on_response` → store → the
//! `Cache-Status` written by `Edge::finish`), on an empty cache, at the
//! time given.
//!
//! No secret is needed or used: the config holds references only, and the
//! explainer resolves each one to a fixed placeholder (decisions about
//! caching never depend on a key's value). A signed-link route therefore
//! refuses every token here, as it would a forged one.

use std::fmt;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request};
use offload_core::cache::edge::{normalize_response_headers, AfterResponse};
use offload_core::cache::{CacheDecision, CachePolicy, Exchange, FreshnessSource, Timestamp};
use offload_core::secret::{Secret, SecretMap};
use offload_core::{Config, Edge, Plan, Upstream, Viewer};
use serde::{Deserialize, Serialize};

/// The value every secret reference resolves to in the explainer: long
/// enough for every key rule, and no secret of anyone's.
const PLACEHOLDER: &[u8] = b"offload-explainer-placeholder-value-not-a-secret";

/// An explainer input: the viewer's request and the upstream's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// `GET` when absent.
    #[serde(default = "get")]
    pub method: String,
    /// An absolute URL (`https://www.example.com/api/x?y=1`) or a path
    /// (`/api/x`, read as `https://www.example.com/api/x`).
    pub url: String,
    #[serde(default)]
    pub request_headers: Vec<(String, String)>,
    /// The upstream's status (what the origin or bucket would answer).
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub response_headers: Vec<(String, String)>,
    /// Unix milliseconds: when the response arrives.
    pub now_ms: u64,
}

fn get() -> String {
    "GET".to_owned()
}
fn ok() -> u16 {
    200
}

/// What happened to the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Stored in the edge cache; the next request is answered from it.
    Stored,
    /// Cacheable route, but this response is not stored (`reason` says why).
    NotStored,
    /// The cache is not consulted (route without `cache`, method, range…).
    Bypass,
    /// The edge answers itself (refusal, endpoint, bad request): nothing
    /// goes upstream.
    EdgeAnswer,
}

/// The edge's decision, with the reasons and numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub outcome: Outcome,
    /// Whether the response is stored.
    pub storable: bool,
    /// Why not stored or why bypassed (a `Cache-Status` detail token such
    /// as `no-store`, `private`, `set-cookie`, `no-freshness`, `range`).
    pub reason: Option<String>,
    /// The matched route's pattern (`/api/*`).
    pub route: Option<String>,
    /// `origins` or `bucket:<alias>`.
    pub upstream: Option<String>,
    /// The path and query sent upstream.
    pub forwarded: Option<String>,
    /// The primary cache key (method class, canonical URL, keyed headers
    /// and cookies).
    pub cache_key: Option<String>,
    /// Seconds of freshness left when the response arrives.
    pub ttl: Option<i64>,
    /// The freshness lifetime and where it came from.
    pub freshness_lifetime: Option<u64>,
    pub freshness_source: Option<FreshnessSource>,
    /// Seconds after expiry during which a stale copy is served while it
    /// revalidates (`stale-while-revalidate`) or when the origin fails
    /// (`stale-if-error`).
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// The status the viewer gets.
    pub status: u16,
    /// The `Cache-Status` field the edge sends with this response.
    pub cache_status: Option<String>,
    /// The `Cache-Status` of the same request sent again at the same
    /// moment (a hit when stored).
    pub next_cache_status: Option<String>,
    /// The edge's own error message, when it answers itself.
    pub error: Option<String>,
}

impl Explanation {
    fn edge_answer(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let error = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
        Self {
            outcome: Outcome::EdgeAnswer,
            storable: false,
            reason: None,
            route: None,
            upstream: None,
            forwarded: None,
            cache_key: None,
            ttl: None,
            freshness_lifetime: None,
            freshness_source: None,
            stale_while_revalidate: None,
            stale_if_error: None,
            status,
            cache_status: cache_status_of(headers),
            next_cache_status: None,
            error,
        }
    }
}

/// A bad explainer input, naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainError(String);

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExplainError {}

fn bad(msg: impl Into<String>) -> ExplainError {
    ExplainError(msg.into())
}

/// The explainer for one config. Each [`Explainer::explain`] starts from
/// an empty cache.
#[derive(Debug, Clone)]
pub struct Explainer {
    edge: Edge,
}

impl Explainer {
    /// An explainer for a validated config.
    pub fn new(config: Config) -> Result<Self, ExplainError> {
        let mut secrets = SecretMap::default();
        for (field, r) in config.secret_refs() {
            let source = r
                .source(secrets.platform())
                .ok_or_else(|| bad(format!("config: {field}: no Workers binding named (the explainer resolves secrets by binding)")))?;
            secrets.insert(&source, Secret::new(PLACEHOLDER.to_vec()));
        }
        let edge = Edge::new(config, &secrets).map_err(|e| bad(format!("config: {e}")))?;
        Ok(Self { edge })
    }

    /// An explainer for a config in TOML (`offload.toml`).
    pub fn from_toml(text: &str) -> Result<Self, ExplainError> {
        Config::from_toml(text).map_err(|e| bad(format!("config: {e}"))).and_then(Self::new)
    }

    pub fn config(&self) -> &Config {
        self.edge.config()
    }

    /// The decision for `case`, on an empty cache.
    pub fn explain(&self, case: &Case) -> Result<Explanation, ExplainError> {
        let edge = &self.edge;
        let config = edge.config();
        let now_ms = case.now_ms;
        let now = Timestamp::from_unix_secs(now_ms / 1000);
        let method = Method::from_bytes(case.method.as_bytes()).map_err(|_| bad(format!("method {:?} is not a token", case.method)))?;
        let url = if case.url.starts_with('/') { format!("https://www.example.com{}", case.url) } else { case.url.clone() };
        let mut req = Request::builder().method(method.clone()).uri(url.as_str());
        for (n, v) in &case.request_headers {
            req = req.header(header_name(n, "request")?, header_value(n, v, "request")?);
        }
        let req = req.body(()).map_err(|e| bad(format!("url {:?}: {e}", case.url)))?;
        if !(100..=599).contains(&case.status) {
            return Err(bad(format!("status {} is not 100..=599", case.status)));
        }
        let mut response_headers = HeaderMap::new();
        for (n, v) in &case.response_headers {
            response_headers.append(header_name(n, "response")?, header_value(n, v, "response")?);
        }

        let canon = match edge.canonicalize(&req) {
            Ok(c) => c,
            Err(resp) => return Ok(Explanation::edge_answer(resp.status().as_u16(), resp.headers(), resp.body())),
        };
        let mut cache = edge.new_cache();
        if cache.is_purge(&canon) || edge.is_presign(&canon) {
            let mut e = Explanation::edge_answer(200, &HeaderMap::new(), b"");
            e.reason = Some(if edge.is_presign(&canon) { "presign-endpoint" } else { "purge-endpoint" }.to_owned());
            return Ok(e);
        }
        let viewer = Viewer::default();
        let mut fwd = match edge.plan(&canon, &viewer, now_ms) {
            Plan::Respond(resp) => return Ok(Explanation::edge_answer(resp.status().as_u16(), resp.headers(), resp.body())),
            Plan::Forward(fwd) => fwd,
        };
        let route = config.routes().get(fwd.route);
        let mut out = Explanation::edge_answer(case.status, &HeaderMap::new(), b"");
        out.route = route.map(|r| r.pattern().as_written());
        out.upstream = Some(match &fwd.upstream {
            Upstream::Origins => "origins".to_owned(),
            Upstream::Bucket { alias } => format!("bucket:{alias}"),
        });
        out.forwarded = Some(fwd.path_and_query().to_owned());
        if let Some(rc) = route.and_then(|r| r.cache()) {
            if matches!(method, Method::GET | Method::HEAD) {
                let normalized = normalize_response_headers(&response_headers, now);
                let x = Exchange::new(&method, canon.request().headers(), case.status, &normalized, now, now);
                let policy = CachePolicy::new(&x, &rc.rules);
                out.ttl = Some(policy.time_to_live(now));
                out.freshness_lifetime = Some(policy.freshness_lifetime());
                out.freshness_source = Some(policy.freshness_source());
                out.stale_while_revalidate = Some(policy.stale_while_revalidate());
                out.stale_if_error = Some(policy.stale_if_error());
            }
        }
        let mut headers = response_headers.clone();
        match cache.lookup(edge.cache_query(&fwd), now_ms) {
            CacheDecision::Bypass(status) => {
                out.outcome = Outcome::Bypass;
                if let Some(cs) = status {
                    fwd.cache_status = cs;
                }
                out.reason = Some(bypass_reason(route.and_then(|r| r.cache()).is_some(), &method, &fwd.cache_status.to_string()));
                out.ttl = None;
                edge.finish(&fwd, status_code(case.status)?, &mut headers);
            }
            CacheDecision::Fetch(fetch) => {
                out.cache_key = Some(fetch.request().key().as_str().to_owned());
                match cache.on_response(fetch, case.status, &response_headers, now_ms, now_ms) {
                    AfterResponse::Deliver(delivery) => {
                        out.outcome = Outcome::NotStored;
                        out.status = delivery.status(case.status);
                        delivery.apply(&mut fwd.cache_status, &mut headers);
                        out.reason = detail_of(&fwd.cache_status.to_string());
                        edge.finish(&fwd, status_code(case.status)?, &mut headers);
                    }
                    AfterResponse::Store(pending) => {
                        let stored = cache.store(pending, Arc::from(Vec::new()), now_ms);
                        stored.delivery.apply(&mut fwd.cache_status, &mut headers);
                        out.status = stored.delivery.status(case.status);
                        let cs = fwd.cache_status.to_string();
                        out.storable = cs.contains("; stored");
                        out.outcome = if out.storable { Outcome::Stored } else { Outcome::NotStored };
                        out.reason = if out.storable { None } else { detail_of(&cs) };
                        edge.finish(&fwd, status_code(case.status)?, &mut headers);
                        out.next_cache_status = match cache.lookup(edge.cache_query(&fwd), now_ms) {
                            CacheDecision::Respond(r) | CacheDecision::RespondAndRevalidate(r, _) => cache_status_of(&r.headers),
                            _ => None,
                        };
                    }
                    AfterResponse::Serve(r) => {
                        out.outcome = Outcome::NotStored;
                        out.status = r.status;
                        headers = r.headers;
                    }
                    AfterResponse::Refetch(_) => {
                        out.outcome = Outcome::NotStored;
                        out.reason = Some("refetch".to_owned());
                    }
                }
            }
            CacheDecision::Respond(r) | CacheDecision::RespondAndRevalidate(r, _) => {
                // Only `only-if-cached` on an empty cache gets here (a 504).
                out.outcome = Outcome::EdgeAnswer;
                out.status = r.status;
                headers = r.headers;
            }
            CacheDecision::Wait(_) => {
                out.outcome = Outcome::Bypass;
                out.reason = Some("wait".to_owned());
            }
        }
        if !out.storable {
            out.ttl = out.ttl.filter(|_| out.outcome != Outcome::Bypass);
        }
        out.cache_status = cache_status_of(&headers);
        Ok(out)
    }
}

fn status_code(status: u16) -> Result<http::StatusCode, ExplainError> {
    http::StatusCode::from_u16(status).map_err(|_| bad(format!("status {status} is not 100..=599")))
}

fn header_name(name: &str, side: &str) -> Result<HeaderName, ExplainError> {
    HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad(format!("{side} header name {name:?} is not a token")))
}

fn header_value(name: &str, value: &str, side: &str) -> Result<HeaderValue, ExplainError> {
    HeaderValue::from_str(value.trim()).map_err(|_| bad(format!("{side} header {name:?}: value {value:?} has control characters")))
}

fn cache_status_of(headers: &HeaderMap) -> Option<String> {
    let v: Vec<&str> = headers.get_all("cache-status").iter().filter_map(|v| v.to_str().ok()).collect();
    (!v.is_empty()).then(|| v.join(", "))
}

/// The `detail=` token of a `Cache-Status` entry.
fn detail_of(cache_status: &str) -> Option<String> {
    cache_status
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("detail="))
        .map(|d| d.trim_matches('"').to_owned())
}

fn bypass_reason(route_caches: bool, method: &Method, cache_status: &str) -> String {
    if let Some(d) = detail_of(cache_status) {
        return d;
    }
    if !route_caches {
        "route-not-cached".to_owned()
    } else if !matches!(*method, Method::GET | Method::HEAD) {
        "method".to_owned()
    } else {
        "bypass".to_owned()
    }
}

/// Header fields as (lower-case name, value), in order.
pub type HeaderFields = Vec<(String, String)>;

/// Header lines as pasted from browser dev tools or `curl -i`: `Name:
/// value` per line; blank lines and a request or status line
/// (`GET / HTTP/1.1`, `HTTP/1.1 200 OK`) are skipped. Returns the fields
/// and the status of a status line, if there was one.
pub fn parse_header_block(text: &str) -> Result<(HeaderFields, Option<u16>), ExplainError> {
    let mut fields = Vec::new();
    let mut status = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("HTTP/") {
            let code = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
            status = Some(code.ok_or_else(|| bad(format!("line {}: status line {line:?} has no status code", i + 1)))?);
            continue;
        }
        if [" HTTP/1.0", " HTTP/1.1", " HTTP/2", " HTTP/3"].iter().any(|v| line.ends_with(v)) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("line {}: {line:?} is not `Name: value`", i + 1)));
        };
        // HTTP/2 pseudo-headers as dev tools show them (`:status: 200`).
        if name.is_empty() {
            if let Some(("status", code)) = value.split_once(':').map(|(a, b)| (a.trim(), b.trim())) {
                status = code.parse().ok();
            }
            continue;
        }
        header_name(name, "header")?;
        fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((fields, status))
}

#[cfg(test)]
mod tests;
