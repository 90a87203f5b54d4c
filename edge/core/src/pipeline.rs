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
//! let edge = Edge::new(cfg, &Default::default()).unwrap();
//! let mut state = EdgeState::new(edge.config());
//! let req = http::Request::get("https://www.example.com/api/%74ime?x=1").body(()).unwrap();
//! // One canonical form of the request decides everything after this.
//! let req = edge.canonicalize(&req).unwrap();
//! let Plan::Forward(mut fwd) = edge.plan(&req, &Viewer::default(), 0) else { panic!() };
//! // The origin is chosen only when the request really goes upstream
//! // (a cache hit never gets here, so it costs no retry budget).
//! edge.begin(&mut fwd, &mut state, 0, 7);
//! let Step::Send { request, .. } = &fwd.step else { panic!() };
//! assert_eq!(request.uri(), "http://10.0.0.1:8080/api/time?x=1");
//! assert_eq!(request.headers()["host"], "10.0.0.1:8080");
//! assert_eq!(request.headers()["x-forwarded-host"], "www.example.com");
//! ```

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};

use crate::cache::{cache_status_name, CacheQuery, CacheStatus, EdgeCache, FwdReason};
use crate::config::{Bucket, Config, EdgeKeys, Target};
use crate::error::{Error, InternalError, RequestError, RequestErrorKind, UpstreamError};
use crate::proxy::canonical::{object_key, CanonicalRequest};
use crate::proxy::headers::{append_list, forward_request_headers, strip_hop_by_hop};
use crate::proxy::Viewer;
use crate::route::auth::sign_origin_request;
use crate::route::{geo, select, Failover, HealthTable, Next, Outcome, RetryBudget, RouteLog, ViewerLocation};
use crate::secret::{SecretError, SecretMap};
use crate::sign::{self, Credentials, OriginPayload};

/// The test header carrying a viewer location for local runs
/// (`x-offload-geo: country=DE;lat=52.5;lon=13.4`), honoured only when
/// `[routing] trust_test_header = true`, and never forwarded.
pub const GEO_TEST_HEADER: &str = "x-offload-geo";

/// What the adapter must do with a request.
#[derive(Debug)]
pub enum Plan {
    /// Send upstream: call [`Edge::begin`] when the request really goes
    /// upstream (not for a cache hit), then [`Forward::step`] says what to
    /// send; report each attempt's outcome with [`Edge::report`], then
    /// [`Edge::finish`].
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
    /// Nothing chosen yet: call [`Edge::begin`] first (planning builds no
    /// upstream request, so a cache hit never pays for one).
    Begin,
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
    /// Headers common to every attempt (no Host, no auth), built by
    /// [`Edge::begin`].
    headers: HeaderMap,
    /// The viewer's request in canonical form (a verified signed-link
    /// token removed): what the cache keys on.
    request: CanonicalRequest,
    /// What origin selection needs, kept until [`Edge::begin`].
    pending: Option<PendingSelection>,
    /// The object a bucket route asks for, signed by [`Edge::begin`].
    bucket: Option<BucketTarget>,
    failover: Option<Failover>,
    sticky_set: Option<String>,
}

/// Origin selection inputs, read from the request at plan time and used
/// when (and only when) the request goes upstream.
#[derive(Debug, Clone)]
struct PendingSelection {
    location: ViewerLocation,
    /// The location came from the trusted test header (the platform's is
    /// not needed).
    from_test_header: bool,
    sticky_cookie: Option<String>,
    /// For `X-Forwarded-For` and `-Proto`.
    viewer_ip: Option<std::net::IpAddr>,
    viewer_tls: bool,
}

/// A bucket object, validated at plan time (so a bad key is refused before
/// the cache is asked) and signed only when the request goes upstream.
#[derive(Debug, Clone)]
struct BucketTarget {
    /// The object URL, its key encoded the one way S3 signs it.
    url: String,
    /// The viewer's headers a bucket may see (conditionals, range).
    headers: HeaderMap,
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
    /// The viewer's request in canonical form, as the cache must key it.
    pub fn viewer_request(&self) -> &CanonicalRequest {
        &self.request
    }

    /// Whether choosing the origin still needs the platform's viewer
    /// location (a pool route not yet begun, no trusted test header).
    pub fn needs_location(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| !p.from_test_header)
    }

    /// The platform's viewer location, read late (see
    /// [`Forward::needs_location`]); a trusted test header still wins.
    pub fn set_viewer_location(&mut self, location: ViewerLocation) {
        if let Some(p) = self.pending.as_mut().filter(|p| !p.from_test_header) {
            p.location = location;
        }
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

/// The edge: a validated config, the keys resolved from the platform's
/// secrets, and the decisions made from them.
#[derive(Debug, Clone)]
pub struct Edge {
    config: Config,
    keys: EdgeKeys,
}

impl Edge {
    /// An edge from a validated config and the platform's secret values
    /// (see [`EdgeKeys::resolve`]): fails, naming the field and the source,
    /// when a secret the config references is missing or unusable.
    pub fn new(config: Config, secrets: &SecretMap) -> Result<Self, SecretError> {
        let keys = EdgeKeys::resolve(&config, secrets)?;
        Ok(Self { config, keys })
    }

    /// Credentials from the platform (the Lambda role) for a bucket,
    /// replacing any resolved from the config's references.
    pub fn set_bucket_credentials(&mut self, alias: &str, credentials: Credentials) {
        self.keys.set_bucket_credentials(alias, credentials);
    }

    /// The keys resolved at start.
    pub fn keys(&self) -> &EdgeKeys {
        &self.keys
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// An empty L1 cache with this edge's name, `[cache]` settings and
    /// purge token.
    pub fn new_cache(&self) -> EdgeCache {
        EdgeCache::new(self.config.name(), self.config.cache(), self.keys.purge_token().cloned())
    }

    /// What the cache needs to know about a planned request: its canonical
    /// form, the route's cache settings, whether the plan bypasses the
    /// cache, and whether a bucket answers it.
    pub fn cache_query<'a>(&'a self, fwd: &'a Forward) -> CacheQuery<'a> {
        CacheQuery {
            request: &fwd.request,
            rules: self.config.routes().get(fwd.route).and_then(|r| r.cache()),
            bypass: fwd.cache_status.fwd() == Some(FwdReason::Bypass),
            bucket: matches!(fwd.upstream, Upstream::Bucket { .. }),
        }
    }

    /// The one canonical form of a viewer request (see
    /// [`crate::proxy::canonical`]); every later step takes it. `Err` is
    /// the 400 to send, naming what was wrong with the target.
    pub fn canonicalize(&self, req: &Request<()>) -> Result<CanonicalRequest, Box<Response<Vec<u8>>>> {
        CanonicalRequest::new(req).map_err(|e| {
            Box::new(self.error_response(&RequestError::new(RequestErrorKind::BadRequest, e.to_string()).into()))
        })
    }

    /// Decide what to do with a viewer request. Never fails: refusals are
    /// returned as [`Plan::Respond`] with an error response. Nothing here
    /// touches origin health or the retry budget: that happens in
    /// [`Edge::begin`], once the cache has decided to go upstream.
    pub fn plan(
        &self,
        req: &CanonicalRequest,
        viewer: &Viewer,
        now_ms: u64,
    ) -> Plan {
        let unlocked = match self.check_signed_link(req, viewer, now_ms / 1000) {
            Ok(r) => r,
            Err(refusal) => return Plan::Respond(*refusal),
        };
        let req = unlocked.unwrap_or_else(|| req.clone());
        match self.try_plan(req, viewer) {
            Ok(fwd) => Plan::Forward(Box::new(fwd)),
            Err(e) => Plan::Respond(self.error_response(&e)),
        }
    }

    /// Canonicalize, plan and [`begin`](Edge::begin) in one call, for
    /// callers with no cache in front of the upstream (Lambda@Edge
    /// origin-request runs only on CloudFront's misses).
    pub fn plan_upstream(
        &self,
        req: &Request<()>,
        viewer: &Viewer,
        state: &mut EdgeState,
        now_ms: u64,
        rand: u32,
    ) -> Plan {
        let req = match self.canonicalize(req) {
            Ok(r) => r,
            Err(resp) => return Plan::Respond(*resp),
        };
        match self.plan(&req, viewer, now_ms) {
            Plan::Forward(mut fwd) => {
                self.begin(&mut fwd, state, now_ms, rand);
                Plan::Forward(fwd)
            }
            respond => respond,
        }
    }

    /// Choose the origin and take the first failover step: call this when
    /// the request really goes upstream (a miss, a bypass, a revalidation),
    /// never for a cache hit, so hits cost no retry budget and never hold a
    /// half-open health probe. Bucket requests are planned already; a
    /// second call does nothing.
    pub fn begin(&self, fwd: &mut Forward, state: &mut EdgeState, now_ms: u64, rand: u32) {
        if let Some(target) = fwd.bucket.take() {
            fwd.step = match self.sign_bucket_request(fwd, target, now_ms) {
                Ok(request) => Step::Send { request, timeout_ms: self.config.routing().retry_policy().try_timeout_ms() },
                Err(e) => Step::GiveUp { response: self.error_response(&e), stale_ok: true },
            };
            return;
        }
        let Some(pending) = fwd.pending.take() else { return };
        match self.forward_headers(fwd, &pending) {
            Ok(h) => fwd.headers = h,
            Err(e) => {
                fwd.step = Step::GiveUp { response: self.error_response(&e), stale_ok: false };
                return;
            }
        }
        let routing = self.config.routing();
        let Some(Target::Pool(pool)) = self.config.routes().get(fwd.route).map(|r| r.target()) else {
            fwd.step = Step::GiveUp { response: self.error_response(&InternalError::NoOrigins.into()), stale_ok: true };
            return;
        };
        let allow_unsafe = self.config.routes().get(fwd.route).is_some_and(|r| r.allow_unsafe_retry());
        let selection =
            select(routing, pool, &pending.location, &state.health, pending.sticky_cookie.as_deref(), rand, now_ms);
        let (run, next) =
            Failover::start(routing, selection, &fwd.method, allow_unsafe, &mut state.health, &mut state.budget, now_ms);
        fwd.failover = Some(run);
        fwd.step = match self.step_for(fwd, next, now_ms) {
            Ok(step) => step,
            Err(e) => Step::GiveUp { response: self.error_response(&e), stale_ok: true },
        };
        if let Some(s) = routing.sticky() {
            // Pin the viewer to the region that was chosen, unless the
            // cookie already says so.
            if let Step::Send { .. } = fwd.step {
                let region = fwd.failover.as_ref().and_then(|f| f.log().selected);
                if let Some(region) = region.filter(|r| pending.sticky_cookie.as_deref() != Some(r)) {
                    fwd.sticky_set = Some(s.set_cookie(&region));
                }
            }
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

    fn try_plan(&self, req: CanonicalRequest, viewer: &Viewer) -> Result<Forward, Error> {
        let path = req.path();
        let (index, route) = self
            .config
            .routes()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.pattern().matches(path))
            .max_by_key(|(_, r)| r.pattern().specificity())
            .ok_or_else(|| RequestError::new(RequestErrorKind::NoRoute, format!("{path:?}")))?;
        let fwd_path = route.forward_path(path);
        let cacheable = route.cache().is_some() && is_cacheable_method(req.method());
        let path_and_query = match (req.query(), route.cache()) {
            // A cached route forwards the query its cache key sees: a
            // parameter the key drops (utm_*, denied names) must not reach
            // the origin, or it could change a response shared by everyone.
            (Some(q), Some(rc)) if cacheable => {
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
        let reason = if cacheable { FwdReason::UriMiss } else { FwdReason::Bypass };
        let cache_status = CacheStatus::forward(self.config.name(), reason);
        match route.target() {
            Target::Pool(_) => {
                let routing = self.config.routing();
                let test_header = req.headers().get(GEO_TEST_HEADER).and_then(|v| v.to_str().ok());
                let from_test_header = test_header.is_some() && routing.trust_test_header();
                let location = geo::locate(viewer.location.clone(), test_header, routing.trust_test_header())
                    .map_err(|e| bad_request(&format!("{GEO_TEST_HEADER}: {e}")))?;
                let sticky_cookie = routing.sticky().and_then(|s| {
                    req.headers()
                        .get_all(header::COOKIE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(|c| s.read(c).map(str::to_owned))
                });
                Ok(Forward {
                    method: req.method().clone(),
                    send_body: !matches!(*req.method(), Method::GET | Method::HEAD),
                    route: index,
                    upstream: Upstream::Origins,
                    cache_status,
                    step: Step::Begin,
                    path_and_query,
                    headers: HeaderMap::new(),
                    request: req,
                    pending: Some(PendingSelection {
                        location,
                        from_test_header,
                        sticky_cookie,
                        viewer_ip: viewer.ip,
                        viewer_tls: viewer.tls,
                    }),
                    bucket: None,
                    failover: None,
                    sticky_set: None,
                })
            }
            Target::Bucket(alias) => {
                let bucket = self
                    .config
                    .bucket(alias)
                    .ok_or(InternalError::UnknownBucket)?;
                let target = self.bucket_target(&req, bucket, &fwd_path_of(&path_and_query))?;
                Ok(Forward {
                    method: req.method().clone(),
                    send_body: false,
                    route: index,
                    upstream: Upstream::Bucket { alias: alias.clone() },
                    cache_status,
                    step: Step::Begin,
                    path_and_query,
                    headers: HeaderMap::new(),
                    request: req,
                    pending: None,
                    bucket: Some(target),
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
                    .ok_or(InternalError::UnknownOrigin)?;
                let url = format!("{}{}", origin.base_url(), fwd.path_and_query);
                let uri: Uri = url.parse().map_err(|_| bad_request("request target is not a valid URI"))?;
                let mut headers = fwd.headers.clone();
                set(&mut headers, header::HOST, origin.host())?;
                if let (Some(auth), Some(key)) = (routing.origin_auth(), self.keys.origin_auth()) {
                    let signed_path = uri.path_and_query().map_or("/", |pq| pq.as_str());
                    let value = sign_origin_request(
                        key,
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
                    response: self.error_response(&UpstreamError::BucketUnreachable.into()),
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

    /// The object a (canonical, prefix-stripped) path names: every escape
    /// decoded once into the object key, then encoded the one way S3 signs
    /// it. Refusals (method, key) are decided here, at plan time.
    fn bucket_target(&self, req: &CanonicalRequest, bucket: &Bucket, path: &str) -> Result<BucketTarget, Error> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err(RequestError::new(
                RequestErrorKind::MethodNotAllowed,
                format!("{} on a bucket route", req.method()),
            )
            .into());
        }
        // The viewer's query never reaches the bucket (it could select
        // sub-resources such as `?acl` or `?versionId`).
        let decoded = object_key(path).map_err(|e| bad_request(&e.to_string()))?;
        let mut key = String::with_capacity(decoded.len() + bucket.prefix().len() + 11);
        key.push_str(bucket.prefix());
        key.push_str(decoded.trim_start_matches('/'));
        if key.is_empty() || key.ends_with('/') {
            match bucket.index() {
                Some(index) => key.push_str(index),
                None => return Err(RequestError::new(RequestErrorKind::NoRoute, format!("{path:?}")).into()),
            }
        }
        if key.len() > 1024 {
            return Err(bad_request("object key is longer than 1024 bytes").into());
        }
        let url = bucket.url_for_encoded_key(&format!("/{}", crate::sign::uri_encode_path(&key)));
        url.parse::<Uri>().map_err(|_| bad_request("object key is not a valid URI path"))?;
        let mut headers = HeaderMap::new();
        for name in BUCKET_REQUEST_HEADERS {
            for v in req.headers().get_all(&name) {
                headers.append(name.clone(), v.clone());
            }
        }
        Ok(BucketTarget { url, headers })
    }

    /// The request for a bucket object, signed (SigV4) when the bucket is
    /// private: done only when the request goes upstream.
    fn sign_bucket_request(&self, fwd: &Forward, target: BucketTarget, now_ms: u64) -> Result<Request<()>, Error> {
        let Upstream::Bucket { alias } = &fwd.upstream else { return Err(InternalError::UnknownBucket.into()) };
        let bucket = self.config.bucket(alias).ok_or(InternalError::UnknownBucket)?;
        let BucketTarget { url, mut headers } = target;
        let host = bucket.host();
        set(&mut headers, header::HOST, &host)?;
        let mut final_url = url.clone();
        if bucket.signed() {
            let creds = self
                .keys
                .bucket_credentials(bucket.alias())
                .ok_or_else(|| InternalError::NoBucketCredentials(bucket.alias().to_owned()))?;
            let day_key = self.keys.bucket_signing_key(bucket.alias(), now_ms / 1000, bucket.region(), "s3");
            let signed = sign::sign_origin_request(
                &sign::OriginRequest {
                    method: fwd.method.as_str(),
                    url: &url,
                    headers: &[("host", host.as_str())],
                    payload: OriginPayload::EmptyBody,
                },
                creds,
                bucket.region(),
                now_ms / 1000,
                day_key.as_deref(),
            )
            .map_err(|e| bad_request(&format!("object key cannot be signed: {e}")))?;
            for (name, value) in &signed.headers {
                set(&mut headers, HeaderName::from_static(name), value)?;
            }
            final_url = signed.url;
        }
        let uri: Uri = final_url.parse().map_err(|_| bad_request("object key is not a valid URI path"))?;
        let mut request = Request::new(());
        *request.method_mut() = fwd.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// The headers common to every attempt to an origin: an allowlist of
    /// the viewer's (the route's, plus every header in its cache key); the
    /// forwarding headers are the edge's alone.
    fn forward_headers(&self, fwd: &Forward, pending: &PendingSelection) -> Result<HeaderMap, Error> {
        let route = self.config.routes().get(fwd.route).ok_or(InternalError::NoOrigins)?;
        let req = &fwd.request;
        let cacheable = route.cache().is_some() && is_cacheable_method(req.method());
        let mut headers = forward_request_headers(req.headers(), route.forward_headers(cacheable));
        if let Some(ip) = pending.viewer_ip {
            set(&mut headers, HeaderName::from_static("x-forwarded-for"), &ip.to_string())?;
        }
        let proto = if pending.viewer_tls { "https" } else { "http" };
        set(&mut headers, HeaderName::from_static("x-forwarded-proto"), proto)?;
        set(&mut headers, HeaderName::from_static("x-forwarded-host"), req.host())?;
        append_list(&mut headers, header::VIA, &format!("1.1 {}", self.config.name()));
        Ok(headers)
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

/// The path part of a forwarded `path?query`.
fn fwd_path_of(path_and_query: &str) -> String {
    path_and_query.split('?').next().unwrap_or("/").to_owned()
}

mod endpoints;

pub use endpoints::{presign_too_large, PRESIGN_MAX_BODY};

#[cfg(test)]
mod tests;

/// The edge cache driven through the pipeline: plan, look up, answer,
/// finish (the cache itself never sees a `Forward` or the config).
#[cfg(test)]
mod cache_tests;
