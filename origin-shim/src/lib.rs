//! `origin-shim`: local stand-ins for the pieces that sit behind the Offload edge.
//!
//! * [`origin`] — a regional web origin (what normally sits behind an ELB), with
//!   request counters that tests can read and reset over HTTP, optional
//!   verification of the edge's origin-auth signature ([`origin::auth`]) and
//!   runtime fault injection: failures, latency and refused connections
//!   ([`origin::faults`]).
//! * [`bucket`] — an S3-compatible bucket (backed by `s3s` + `s3s-fs`) that verifies
//!   AWS SigV4 (header-signed and presigned requests), with an optional anonymous
//!   public-read bucket.
//!
//! Both servers can be started in-process (tests) through [`origin::start`] and
//! [`bucket::start`], which return a [`ServerHandle`]. The `origin-shim` binary is a
//! thin wrapper around [`cli::main`].

pub mod bucket;
pub mod cli;
mod error;
pub mod origin;
mod server;

pub use crate::error::Error;
pub use crate::server::ServerHandle;
