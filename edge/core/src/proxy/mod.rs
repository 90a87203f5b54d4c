//! Proxying rules: what the edge forwards to an origin and what it returns.

pub mod body;
pub mod canonical;
pub mod headers;

use std::net::IpAddr;

/// What the platform knows about the viewer, passed in by the adapter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Viewer {
    /// The client address as the platform saw it (never from a header the
    /// viewer controls).
    pub ip: Option<IpAddr>,
    /// Whether the viewer connected over TLS.
    pub tls: bool,
    /// Where the platform places the viewer (Workers `request.cf`,
    /// CloudFront viewer headers).
    pub location: crate::route::ViewerLocation,
}
