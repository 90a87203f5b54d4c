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
    /// The origin could not be reached (reported by the adapter).
    #[error("origin unreachable: {0}")]
    Upstream(String),
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
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
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
