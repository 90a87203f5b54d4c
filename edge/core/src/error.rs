//! The umbrella error and its one mapping to HTTP responses.

use std::fmt;

use http::{header, Response, StatusCode};

use crate::config::ConfigError;

/// Why the edge refused a request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    kind: RequestErrorKind,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// No route matches the path.
    NoRoute,
    /// The route's target does not accept this method.
    MethodNotAllowed,
    /// The request itself is malformed.
    BadRequest,
}

impl RequestError {
    pub fn new(kind: RequestErrorKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into() }
    }
    pub fn kind(&self) -> RequestErrorKind {
        self.kind
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            RequestErrorKind::NoRoute => "no route",
            RequestErrorKind::MethodNotAllowed => "method not allowed",
            RequestErrorKind::BadRequest => "bad request",
        };
        write!(f, "{what}: {}", self.detail)
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn upstream_and_internal_errors_are_named_502s() {
        let cases: [(Error, &str); 4] = [
            (UpstreamError::UnrelayableStatus(999).into(), "origin answered with status 999, which cannot be relayed"),
            (UpstreamError::BodyFailed.into(), "origin's response body failed before it was complete"),
            (
                InternalError::UnexpectedInput { input: "Woke", state: "sent" }.into(),
                "edge error: executor answered Woke in state sent",
            ),
            (InternalError::MachineLost("plan").into(), "edge error: request machine lost its plan"),
        ];
        for (e, message) in cases {
            assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
            let body: serde_json::Value = serde_json::from_slice(e.to_response().body()).unwrap();
            assert_eq!(body["error"], message);
            assert_eq!(body["status"], 502);
        }
    }
}

/// Every error the core returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A secret the config references is missing or unusable (names the
    /// field and the source, never a value).
    #[error("secrets: {0}")]
    Secret(#[from] crate::secret::SecretError),
    /// The upstream failed, or answered what cannot be relayed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A state the edge should never reach (a bug in the core or an
    /// executor): answered as a 502, never a panic.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// Why no usable upstream response came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The one attempt at a bucket failed (connection error or timeout).
    #[error("bucket unreachable")]
    BucketUnreachable,
    /// A status outside 200..=599, which the platforms cannot relay.
    #[error("origin answered with status {0}, which cannot be relayed")]
    UnrelayableStatus(u16),
    /// A small body, read whole before the viewer's head was sent, failed
    /// or came out longer than its `Content-Length` said.
    #[error("origin's response body failed before it was complete")]
    BodyFailed,
}

/// A state the edge should never be in, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InternalError {
    /// The executor answered before it built the edge (its cold start
    /// failed or never ran).
    #[error("edge error: edge not initialized")]
    NotInitialized,
    /// A `Forward`'s placeholder step: `Edge::begin` was not called.
    #[error("edge error: origin not chosen yet (Edge::begin)")]
    OriginNotChosen,
    /// `Edge::begin` on a route whose target is not a pool of origins.
    #[error("edge error: route has no origins")]
    NoOrigins,
    /// Selection named an origin the routing table does not have.
    #[error("edge error: selected origin is not configured")]
    UnknownOrigin,
    /// A route names a bucket the config does not have.
    #[error("edge error: route names a missing bucket")]
    UnknownBucket,
    /// A signed bucket without credentials (on Lambda@Edge the executor
    /// sets the role's with `Edge::set_bucket_credentials`).
    #[error("edge error: bucket {0:?}: no credentials configured")]
    NoBucketCredentials(String),
    /// The request machine lost a piece of its state (`request`, `plan`).
    #[error("edge error: request machine lost its {0}")]
    MachineLost(&'static str),
    /// An executor answered the request machine with an input its state
    /// does not expect.
    #[error("edge error: executor answered {input} in state {state}")]
    UnexpectedInput { input: &'static str, state: &'static str },
    /// The request machine replanned a refetch and the edge answered
    /// instead of forwarding.
    #[error("edge error: refetch not planned")]
    RefetchNotPlanned,
    /// A second send of a viewer body that streams once.
    #[error("edge error: request body already sent")]
    BodyAlreadySent,
    /// `Deliver` without an upstream response in hand.
    #[error("edge error: no upstream response")]
    NoUpstreamResponse,
}

impl Error {
    /// The HTTP status the viewer gets for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Config(_) | Error::Secret(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Request(r) => match r.kind {
                RequestErrorKind::NoRoute => StatusCode::NOT_FOUND,
                RequestErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
                RequestErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            },
            // The edge is a gateway: its own faults are 502s too (the
            // request machine's documented answer to a wrong input).
            Error::Upstream(_) | Error::Internal(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// A small JSON error response. Config errors are summarized: their
    /// detail is for the operator's log, not the viewer.
    pub fn to_response(&self) -> Response<Vec<u8>> {
        let message = match self {
            Error::Config(_) | Error::Secret(_) => "edge misconfigured".to_owned(),
            other => other.to_string(),
        };
        let body = serde_json::json!({ "error": message, "status": self.status().as_u16() }).to_string();
        let mut resp = Response::new(body.into_bytes());
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        if matches!(self, Error::Request(r) if r.kind == RequestErrorKind::MethodNotAllowed) {
            h.insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        }
        resp
    }
}
