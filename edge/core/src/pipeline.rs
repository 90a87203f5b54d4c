//! The request pipeline: route → plan the upstream request(s) → finish
//! the response. Pure: the adapter performs the I/O the [`Plan`] describes
//! and reports back how each attempt went.
//!
//! ```
//! use offload_core::{Config, Edge, EdgeState, Plan, Step, Viewer};
//! let cfg = Config::from_toml(r#"
//!     [regions.us-east-1]
//!     location = { lat = 38.9, lon = -77.4 }
//!     origins = [{ url = "http://10.0.0.1:8080" }]
//!     [[routes]]
//!     path = "/*"
//! "#).unwrap();
//! let edge = Edge::new(cfg);
//! let mut state = EdgeState::new(edge.config());
//! let req = http::Request::get("https://www.example.com/api/time?x=1").body(()).unwrap();
//! let Plan::Forward(fwd) = edge.plan(&req, &Viewer::default(), &mut state, 0, 7) else { panic!() };
//! let Step::Send { request, .. } = &fwd.step else { panic!() };
//! assert_eq!(request.uri(), "http://10.0.0.1:8080/api/time?x=1");
//! assert_eq!(request.headers()["host"], "10.0.0.1:8080");
//! assert_eq!(request.headers()["x-forwarded-host"], "www.example.com");
//! ```

use std::collections::BTreeMap;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};

use crate::cache::{CacheStatus, FwdReason};
use crate::config::{Bucket, Config, Target};
use crate::error::{Error, RequestError, RequestErrorKind};
use crate::proxy::headers::{append_list, strip_hop_by_hop, strip_viewer_spoofable};
use crate::proxy::Viewer;
use crate::route::auth::{sign_origin_request, SigningKey};
use crate::route::{geo, select, Failover, HealthTable, Next, Outcome, RetryBudget, RouteLog};
use crate::sign::{self, Credentials, OriginPayload};

/// The test header carrying a viewer location for local runs
/// (`x-offload-geo: country=DE;lat=52.5;lon=13.4`), honoured only when
/// `[routing] trust_test_header = true`, and never forwarded.
pub const GEO_TEST_HEADER: &str = "x-offload-geo";

/// What the adapter must do with a request.
#[derive(Debug)]
pub enum Plan {
    /// Send upstream: [`Forward::step`] says what to send; report each
    /// attempt's outcome with [`Edge::report`], then [`Edge::finish`].
    Forward(Box<Forward>),
    /// Answer the viewer with this response; nothing goes upstream.
    Respond(Response<Vec<u8>>),
}

/// Which kind of upstream a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// Web origins of a pool, walked in the selected order.
    Origins,
    /// An S3 bucket, by config alias.
    Bucket { alias: String },
}

/// The next thing the adapter does for a forwarded request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send this request (absolute URL); give up on it after `timeout_ms`.
    Send { request: Request<()>, timeout_ms: u64 },
    /// The last response is the one to deliver.
    Deliver,
    /// Every attempt failed. Serve stale if the cache has it (`stale_ok`),
    /// else this response (503 with `Retry-After`).
    GiveUp { response: Response<Vec<u8>>, stale_ok: bool },
}

/// An upstream exchange in progress.
#[derive(Debug)]
pub struct Forward {
    /// The viewer's method.
    pub method: Method,
    /// Whether the viewer's body goes with the request.
    pub send_body: bool,
    /// Index of the matched route in [`Config::routes`].
    pub route: usize,
    pub upstream: Upstream,
    /// The `Cache-Status` entry this response will carry.
    pub cache_status: CacheStatus,
    /// What to do next.
    pub step: Step,
    /// The forwarded path and query (after prefix stripping).
    path_and_query: String,
    /// Headers common to every attempt (no Host, no auth).
    headers: HeaderMap,
    failover: Option<Failover>,
    sticky_set: Option<String>,
}

impl Forward {
    /// The route log so far (regions, attempts, give-up), for logs.
    pub fn route_log(&self) -> Option<RouteLog> {
        self.failover.as_ref().map(Failover::log)
    }
    /// The forwarded path and query.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// One JSON log line for this exchange: method, path (no query: it
    /// may carry tokens), upstream status, upstream kind, the chosen
    /// region and every failover attempt. No header values, no secrets.
    pub fn log_line(&self, status: u16) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("");
        let upstream = match &self.upstream {
            Upstream::Origins => "origins".to_owned(),
            Upstream::Bucket { alias } => format!("bucket:{alias}"),
        };
        serde_json::json!({
            "method": self.method.as_str(),
            "path": path,
            "status": status,
            "upstream": upstream,
            "route": self.route_log(),
        })
        .to_string()
    }
}

/// Per-isolate state shared by every request: passive health and the
/// retry budget. The adapter keeps one and passes it in.
#[derive(Debug, Clone)]
pub struct EdgeState {
    pub health: HealthTable,
    pub budget: RetryBudget,
}

impl EdgeState {
    pub fn new(config: &Config) -> Self {
        Self {
            health: HealthTable::new(config.routing().health()),
            budget: RetryBudget::new(config.routing().budget()),
        }
    }
}

/// Request headers forwarded to an S3 bucket; everything else (cookies,
/// authorization, viewer noise) stays at the edge.
const BUCKET_REQUEST_HEADERS: [HeaderName; 7] = [
    header::RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::ACCEPT_ENCODING,
];

/// The edge: a validated config and the decisions made from it.
#[derive(Debug, Clone)]
pub struct Edge {
    config: Config,
    bucket_credentials: BTreeMap<String, Credentials>,
}

impl Edge {
    /// An edge from a validated config. Buckets with credentials in the
    /// config (local stacks) use them; see [`Edge::set_bucket_credentials`].
    pub fn new(config: Config) -> Self {
        let bucket_credentials = config
            .buckets()
            .filter_map(|b| {
                let (id, secret) = b.local_credentials()?;
                let secret = String::from_utf8_lossy(secret.expose()).into_owned();
                Some((b.alias().to_owned(), Credentials::new(id, secret, None)))
            })
            .collect();
        Self { config, bucket_credentials }
    }

    /// Credentials from the platform (Workers secrets, the Lambda role)
    /// for a bucket, replacing any from the config file.
    pub fn set_bucket_credentials(&mut self, alias: &str, credentials: Credentials) {
        self.bucket_credentials.insert(alias.to_owned(), credentials);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decide what to do with a viewer request. Never fails: refusals are
    /// returned as [`Plan::Respond`] with an error response.
    pub fn plan(
        &self,
        req: &Request<()>,
        viewer: &Viewer,
        state: &mut EdgeState,
        now_ms: u64,
        rand: u32,
    ) -> Plan {
        let unlocked = match self.check_signed_link(req, viewer, now_ms / 1000) {
            Ok(r) => r,
            Err(refusal) => return Plan::Respond(*refusal),
        };
        let req = unlocked.as_ref().unwrap_or(req);
        match self.try_plan(req, viewer, state, now_ms, rand) {
            Ok(fwd) => Plan::Forward(Box::new(fwd)),
            Err(e) => Plan::Respond(self.error_response(&e)),
        }
    }

    /// An error as the viewer sees it, with this edge's `Cache-Status`.
    pub fn error_response(&self, e: &Error) -> Response<Vec<u8>> {
        let mut resp = e.to_response();
        let status = CacheStatus::forward(self.config.name(), FwdReason::Bypass).with_detail("edge-error");
        if let Ok(v) = HeaderValue::from_str(&status.to_string()) {
            resp.headers_mut().insert(cache_status_name(), v);
        }
        resp
    }

    fn try_plan(
        &self,
        req: &Request<()>,
        viewer: &Viewer,
        state: &mut EdgeState,
        now_ms: u64,
        rand: u32,
    ) -> Result<Forward, Error> {
        let path = req.uri().path();
        if !path.starts_with('/') {
            return Err(bad_request("request path must start with '/'").into());
        }
        let (index, route) = self
            .config
            .routes()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.pattern().matches(path))
            .max_by_key(|(_, r)| r.pattern().specificity())
            .ok_or_else(|| RequestError::new(RequestErrorKind::NoRoute, format!("{path:?}")))?;
        let viewer_host = viewer_host(req)?;
        let fwd_path = route.forward_path(path);
        let path_and_query = match (req.uri().query(), route.cache()) {
            // A cached route forwards the query its cache key sees: a
            // parameter the key drops (utm_*, denied names) must not reach
            // the origin, or it could change a response shared by everyone.
            (Some(q), Some(rc)) if is_cacheable_method(req.method()) => {
                let q = rc.key.forward_query(q);
                if q.is_empty() {
                    fwd_path.into_owned()
                } else {
                    format!("{fwd_path}?{q}")
                }
            }
            (Some(q), _) => format!("{fwd_path}?{q}"),
            (None, _) => fwd_path.into_owned(),
        };
        let reason = if route.cache().is_some() && is_cacheable_method(req.method()) {
            FwdReason::UriMiss
        } else {
            FwdReason::Bypass
        };
        let cache_status = CacheStatus::forward(self.config.name(), reason);
        match route.target() {
            Target::Pool(pool) => {
                let routing = self.config.routing();
                let test_header = req.headers().get(GEO_TEST_HEADER).and_then(|v| v.to_str().ok());
                let location = geo::locate(viewer.location.clone(), test_header, routing.trust_test_header())
                    .map_err(|e| bad_request(&format!("{GEO_TEST_HEADER}: {e}")))?;
                let sticky_cookie = routing.sticky().and_then(|s| {
                    req.headers()
                        .get_all(header::COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(|c| s.read(c).map(str::to_owned))
                });
                let selection = select(
                    routing,
                    pool,
                    &location,
                    &state.health,
                    sticky_cookie.as_deref(),
                    rand,
                    now_ms,
                );
                let (run, next) = Failover::start(
                    routing,
                    selection,
                    req.method(),
                    route.allow_unsafe_retry(),
                    &mut state.health,
                    &mut state.budget,
                    now_ms,
                );
                let mut headers = req.headers().clone();
                strip_hop_by_hop(&mut headers);
                strip_viewer_spoofable(&mut headers);
                headers.remove(GEO_TEST_HEADER);
                headers.remove(header::HOST);
                if let Some(auth) = routing.origin_auth() {
                    headers.remove(auth.header());
                }
                if let Some(ip) = viewer.ip {
                    set(&mut headers, HeaderName::from_static("x-forwarded-for"), &ip.to_string())?;
                }
                let proto = if viewer.tls { "https" } else { "http" };
                set(&mut headers, HeaderName::from_static("x-forwarded-proto"), proto)?;
                if let Some(h) = viewer_host.as_deref() {
                    set(&mut headers, HeaderName::from_static("x-forwarded-host"), h)?;
                }
                append_list(&mut headers, header::VIA, &format!("1.1 {}", self.config.name()));
                let mut fwd = Forward {
                    method: req.method().clone(),
                    send_body: !matches!(*req.method(), Method::GET | Method::HEAD),
                    route: index,
                    upstream: Upstream::Origins,
                    cache_status,
                    step: Step::Deliver,
                    path_and_query,
                    headers,
                    failover: Some(run),
                    sticky_set: None,
                };
                fwd.step = self.step_for(&fwd, next, now_ms)?;
                if let Some(s) = routing.sticky() {
                    // Pin the viewer to the region that was chosen, unless
                    // the cookie already says so.
                    if let Step::Send { .. } = fwd.step {
                        let region = fwd.failover.as_ref().and_then(|f| f.log().selected);
                        if let Some(region) = region.filter(|r| sticky_cookie.as_deref() != Some(r)) {
                            fwd.sticky_set = Some(s.set_cookie(&region));
                        }
                    }
                }
                Ok(fwd)
            }
            Target::Bucket(alias) => {
                let bucket = self
                    .config
                    .bucket(alias)
                    .ok_or_else(|| bad_request("route names a missing bucket"))?;
                let request = self.bucket_request(req, bucket, &path_and_query, now_ms)?;
                Ok(Forward {
                    method: req.method().clone(),
                    send_body: false,
                    route: index,
                    upstream: Upstream::Bucket { alias: alias.clone() },
                    cache_status,
                    step: Step::Send { request, timeout_ms: self.config.routing().retry_policy().try_timeout_ms() },
                    path_and_query,
                    headers: HeaderMap::new(),
                    failover: None,
                    sticky_set: None,
                })
            }
        }
    }

    /// Turn the failover state machine's `Next` into a [`Step`].
    fn step_for(&self, fwd: &Forward, next: Next, now_ms: u64) -> Result<Step, Error> {
        Ok(match next {
            Next::Deliver => Step::Deliver,
            Next::GiveUp(g) => Step::GiveUp { response: g.response(), stale_ok: g.stale_ok },
            Next::Try { attempt, timeout_ms } => {
                let routing = self.config.routing();
                let origin = routing
                    .origin(&attempt.origin)
                    .ok_or_else(|| bad_request("selected origin is not configured"))?;
                let url = format!("{}{}", origin.base_url(), fwd.path_and_query);
                let uri: Uri = url.parse().map_err(|_| bad_request("request target is not a valid URI"))?;
                let mut headers = fwd.headers.clone();
                set(&mut headers, header::HOST, origin.host())?;
                if let Some(auth) = routing.origin_auth() {
                    let key = SigningKey::new(auth.key_id(), auth.secret().clone());
                    let signed_path = uri.path_and_query().map_or("/", |pq| pq.as_str());
                    let value = sign_origin_request(
                        &key,
                        fwd.method.as_str(),
                        signed_path,
                        &origin.host().to_ascii_lowercase(),
                        now_ms / 1000,
                    );
                    set(&mut headers, auth.header().clone(), &value)?;
                }
                let mut request = Request::new(());
                *request.method_mut() = fwd.method.clone();
                *request.uri_mut() = uri;
                *request.headers_mut() = headers;
                Step::Send { request, timeout_ms }
            }
        })
    }

    /// Report how the request of the last [`Step::Send`] went: a
    /// connection error, a timeout, or the status the upstream answered.
    /// Updates passive health and the retry budget, and sets the next step.
    pub fn report(
        &self,
        fwd: &mut Forward,
        outcome: Outcome,
        body_sent: bool,
        dur_ms: u64,
        state: &mut EdgeState,
        now_ms: u64,
    ) {
        let Some(run) = fwd.failover.as_mut() else {
            // A bucket request: one attempt; deliver whatever it answered.
            fwd.step = match outcome {
                Outcome::Status(_) => Step::Deliver,
                _ => Step::GiveUp {
                    response: self.error_response(&Error::Upstream("bucket unreachable".into())),
                    stale_ok: true,
                },
            };
            return;
        };
        let next = run.report(outcome, body_sent, dur_ms, &mut state.health, &mut state.budget, now_ms);
        fwd.step = match self.step_for(fwd, next, now_ms) {
            Ok(step) => step,
            Err(e) => Step::GiveUp { response: self.error_response(&e), stale_ok: true },
        };
    }

    fn bucket_request(
        &self,
        req: &Request<()>,
        bucket: &Bucket,
        path_and_query: &str,
        now_ms: u64,
    ) -> Result<Request<()>, Error> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err(RequestError::new(
                RequestErrorKind::MethodNotAllowed,
                format!("{} on a bucket route", req.method()),
            )
            .into());
        }
        // The viewer's query never reaches the bucket (it could select
        // sub-resources such as `?acl` or `?versionId`).
        let path = path_and_query.split('?').next().unwrap_or("/");
        let mut key = String::with_capacity(path.len() + bucket.prefix().len() + 11);
        key.push('/');
        key.push_str(bucket.prefix());
        key.push_str(path.trim_start_matches('/'));
        if key.ends_with('/') {
            match bucket.index() {
                Some(index) => key.push_str(index),
                None => return Err(RequestError::new(RequestErrorKind::NoRoute, format!("{path:?}")).into()),
            }
        }
        let url = bucket.url_for_encoded_key(&key);
        let mut headers = HeaderMap::new();
        for name in BUCKET_REQUEST_HEADERS {
            for v in req.headers().get_all(&name) {
                headers.append(name.clone(), v.clone());
            }
        }
        let host = bucket.host();
        set(&mut headers, header::HOST, &host)?;
        let mut final_url = url.clone();
        if bucket.signed() {
            let creds = self.bucket_credentials.get(bucket.alias()).ok_or_else(|| {
                Error::Upstream(format!("bucket {:?}: no credentials configured", bucket.alias()))
            })?;
            let signed = sign::sign_origin_request(
                &sign::OriginRequest {
                    method: req.method().as_str(),
                    url: &url,
                    headers: &[("host", host.as_str())],
                    payload: OriginPayload::EmptyBody,
                },
                creds,
                bucket.region(),
                now_ms / 1000,
                None,
            )
            .map_err(|e| bad_request(&format!("object key cannot be signed: {e}")))?;
            for (name, value) in &signed.headers {
                set(&mut headers, HeaderName::from_static(name), value)?;
            }
            final_url = signed.url;
        }
        let uri: Uri = final_url.parse().map_err(|_| bad_request("object key is not a valid URI path"))?;
        let mut request = Request::new(());
        *request.method_mut() = req.method().clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Turn the upstream response headers into the viewer's: drop hop-by-hop
    /// and upstream-internal fields, add `Via`, `Cache-Status`,
    /// `Server-Timing` (chosen region and each attempt) and the sticky
    /// region cookie.
    pub fn finish(&self, fwd: &Forward, status: http::StatusCode, headers: &mut HeaderMap) {
        strip_hop_by_hop(headers);
        if let Upstream::Bucket { .. } = fwd.upstream {
            let internal: Vec<HeaderName> = headers
                .keys()
                .filter(|n| n.as_str().starts_with("x-amz-"))
                .cloned()
                .collect();
            for n in internal {
                headers.remove(n);
            }
        }
        append_list(headers, header::VIA, &format!("1.1 {}", self.config.name()));
        let entry = fwd.cache_status.clone().with_fwd_status(status.as_u16());
        append_list(headers, cache_status_name(), &entry.to_string());
        if let Some(log) = fwd.route_log() {
            append_list(headers, HeaderName::from_static("server-timing"), &log.server_timing());
        }
        if let Some(cookie) = &fwd.sticky_set {
            if let Ok(v) = HeaderValue::from_str(cookie) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
}

/// The `Cache-Status` header name (RFC 9211).
pub fn cache_status_name() -> HeaderName {
    HeaderName::from_static("cache-status")
}

fn is_cacheable_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD)
}

fn bad_request(detail: &str) -> RequestError {
    RequestError::new(RequestErrorKind::BadRequest, detail)
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) -> Result<(), RequestError> {
    let v = HeaderValue::from_str(value)
        .map_err(|_| bad_request(&format!("invalid value for header {name}")))?;
    headers.insert(name, v);
    Ok(())
}

/// The host the viewer asked for: the absolute URI's authority, else `Host`.
fn viewer_host(req: &Request<()>) -> Result<Option<String>, RequestError> {
    if let Some(a) = req.uri().authority() {
        return Ok(Some(a.as_str().to_owned()));
    }
    match req.headers().get(header::HOST) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| bad_request("Host header is not ASCII"))?;
            s.parse::<http::uri::Authority>()
                .map(|a| Some(a.as_str().to_owned()))
                .map_err(|_| bad_request("Host header is not a valid host"))
        }
    }
}

mod endpoints;

pub use endpoints::PRESIGN_MAX_BODY;

#[cfg(test)]
mod tests;
