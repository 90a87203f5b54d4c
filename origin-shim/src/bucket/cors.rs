//! CORS for browser uploads: a page on the edge's origin PUTs a file to a
//! presigned URL of the bucket, which is another origin. Real S3 answers
//! with the bucket's CORS configuration; the local bucket allows the
//! origins given with `--cors-origin` (GET, HEAD, PUT; any request header;
//! `ETag` exposed) and answers their preflight `OPTIONS` itself. Requests
//! from other origins get no CORS fields (the browser blocks them).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use s3s::{Body, HttpError};

/// The allowed page origins (`http://127.0.0.1:18787`), exact match.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    #[must_use]
    pub fn new(origins: Vec<String>) -> Self {
        Self { origins }
    }

    fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let o = origin.to_str().ok()?;
        self.origins.iter().any(|a| a == o).then(|| origin.clone())
    }

    /// The preflight answer, when `req` is an allowed preflight.
    pub fn preflight<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        if req.method() != Method::OPTIONS || !req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = self.allowed(req.headers())?;
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, PUT"));
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(resp)
    }

    /// Add the CORS fields to the answer of an allowed origin's request.
    pub fn decorate(&self, request_headers: &HeaderMap, resp: &mut Response<Body>) {
        if let Some(origin) = self.allowed(request_headers) {
            let h = resp.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("ETag"));
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
}

/// The S3 service with CORS in front.
pub async fn serve(
    cors: std::sync::Arc<Cors>,
    service: s3s::service::S3Service,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, HttpError> {
    if let Some(resp) = cors.preflight(&req) {
        return Ok(resp);
    }
    let headers = req.headers().clone();
    let mut resp = hyper::service::Service::call(&service, req).await?;
    cors.decorate(&headers, &mut resp);
    Ok(resp)
}
