//! The request pipeline: route → plan the origin request → finish the
//! response. Pure: the adapter performs the I/O the [`Plan`] describes.
//!
//! ```
//! use offload_core::{Config, Edge, Plan, Viewer};
//! let cfg = Config::from_toml(
//!     "[origins.a]\nurl = \"http://10.0.0.1:8080\"\n[[routes]]\npath = \"/*\"\norigin = \"a\"\n",
//! ).unwrap();
//! let edge = Edge::new(cfg);
//! let req = http::Request::get("https://www.example.com/api/time?x=1").body(()).unwrap();
//! let Plan::Forward(fwd) = edge.plan(&req, &Viewer::default()) else { panic!() };
//! assert_eq!(fwd.request.uri(), "http://10.0.0.1:8080/api/time?x=1");
//! assert_eq!(fwd.request.headers()["host"], "10.0.0.1:8080");
//! assert_eq!(fwd.request.headers()["x-forwarded-host"], "www.example.com");
//! ```

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};

use crate::cache::{CacheStatus, FwdReason};
use crate::config::{Bucket, Config, Origin, Target};
use crate::error::{Error, RequestError, RequestErrorKind};
use crate::proxy::headers::{append_list, strip_hop_by_hop, strip_viewer_spoofable};
use crate::proxy::Viewer;

/// What the adapter must do with a request.
#[derive(Debug)]
pub enum Plan {
    /// Send `request` upstream, then pass the response to [`Edge::finish`].
    Forward(Forward),
    /// Answer the viewer with this response; nothing goes upstream.
    Respond(Response<Vec<u8>>),
}

/// Which kind of upstream a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A web origin (a regional load balancer), by config name.
    Origin { name: String, region: Option<String> },
    /// An S3 bucket, by config alias.
    Bucket { alias: String },
}

/// An origin request to perform.
#[derive(Debug)]
pub struct Forward {
    /// Method, absolute URL and headers of the upstream request.
    pub request: Request<()>,
    /// Whether the viewer's body goes with it.
    pub send_body: bool,
    pub upstream: Upstream,
    /// The `Cache-Status` entry this response will carry.
    pub cache_status: CacheStatus,
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
}

impl Edge {
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Decide what to do with a viewer request. Never fails: refusals are
    /// returned as [`Plan::Respond`] with an error response.
    pub fn plan(&self, req: &Request<()>, viewer: &Viewer) -> Plan {
        match self.try_plan(req, viewer) {
            Ok(fwd) => Plan::Forward(fwd),
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

    fn try_plan(&self, req: &Request<()>, viewer: &Viewer) -> Result<Forward, Error> {
        let path = req.uri().path();
        if !path.starts_with('/') {
            return Err(bad_request("request path must start with '/'").into());
        }
        let route = self
            .config
            .route_for(path)
            .ok_or_else(|| RequestError::new(RequestErrorKind::NoRoute, format!("{path:?}")))?;
        let viewer_host = viewer_host(req)?;
        let fwd_path = route.forward_path(path);
        match route.target() {
            Target::Origin(name) => {
                let origin = self
                    .config
                    .origin(name)
                    .ok_or_else(|| bad_request("route names a missing origin"))?;
                self.plan_origin(req, viewer, origin, &fwd_path, viewer_host.as_deref())
            }
            Target::Bucket(alias) => {
                let bucket = self
                    .config
                    .bucket(alias)
                    .ok_or_else(|| bad_request("route names a missing bucket"))?;
                self.plan_bucket(req, bucket, &fwd_path)
            }
        }
    }

    fn plan_origin(
        &self,
        req: &Request<()>,
        viewer: &Viewer,
        origin: &Origin,
        path: &str,
        viewer_host: Option<&str>,
    ) -> Result<Forward, Error> {
        let url = match req.uri().query() {
            Some(q) => format!("{}{path}?{q}", origin.base_url()),
            None => format!("{}{path}", origin.base_url()),
        };
        let uri: Uri = url.parse().map_err(|_| bad_request("request target is not a valid URI"))?;

        let mut headers = req.headers().clone();
        strip_hop_by_hop(&mut headers);
        strip_viewer_spoofable(&mut headers);
        set(&mut headers, header::HOST, origin.host())?;
        if let Some(ip) = viewer.ip {
            set(&mut headers, HeaderName::from_static("x-forwarded-for"), &ip.to_string())?;
        }
        let proto = if viewer.tls { "https" } else { "http" };
        set(&mut headers, HeaderName::from_static("x-forwarded-proto"), proto)?;
        if let Some(h) = viewer_host {
            set(&mut headers, HeaderName::from_static("x-forwarded-host"), h)?;
        }
        append_list(&mut headers, header::VIA, &format!("1.1 {}", self.config.name()));

        let mut request = Request::new(());
        *request.method_mut() = req.method().clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let reason = if is_cacheable_method(req.method()) { FwdReason::UriMiss } else { FwdReason::Bypass };
        Ok(Forward {
            send_body: !matches!(*req.method(), Method::GET | Method::HEAD),
            request,
            upstream: Upstream::Origin {
                name: origin.name().to_owned(),
                region: origin.region().map(str::to_owned),
            },
            cache_status: CacheStatus::forward(self.config.name(), reason),
        })
    }

    fn plan_bucket(&self, req: &Request<()>, bucket: &Bucket, path: &str) -> Result<Forward, Error> {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err(RequestError::new(
                RequestErrorKind::MethodNotAllowed,
                format!("{} on a bucket route", req.method()),
            )
            .into());
        }
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
        let uri: Uri = bucket
            .url_for_encoded_key(&key)
            .parse()
            .map_err(|_| bad_request("object key is not a valid URI path"))?;
        let mut headers = HeaderMap::new();
        for name in BUCKET_REQUEST_HEADERS {
            for v in req.headers().get_all(&name) {
                headers.append(name.clone(), v.clone());
            }
        }
        set(&mut headers, header::HOST, &bucket.host())?;
        let mut request = Request::new(());
        *request.method_mut() = req.method().clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(Forward {
            request,
            send_body: false,
            upstream: Upstream::Bucket { alias: bucket.alias().to_owned() },
            cache_status: CacheStatus::forward(self.config.name(), FwdReason::UriMiss),
        })
    }

    /// Turn the upstream response headers into the viewer's: drop hop-by-hop
    /// and upstream-internal fields, add `Via` and `Cache-Status`.
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

#[cfg(test)]
mod tests;
