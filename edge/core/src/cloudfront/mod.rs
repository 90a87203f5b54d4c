//! CloudFront: its Lambda@Edge event format and Offload's policy as
//! CloudFront expresses it. Platform-free (no Wasm bindings, no I/O): the
//! Lambda@Edge executor (`edge/lambda-edge`) parses events into
//! [`event`]'s types, drives the [`crate::Edge`] with them, and hands back
//! what [`policy`] makes of the result. The CloudFront Function generator
//! (moving to `edge/cloudfront-function`) is to take its CloudFront rules
//! from here too.
//!
//! - [`event`]: the event record as serde structs (`Records[0].cf.{config,
//!   request, response}`), to and from `http` types;
//! - [`restricted`]: the headers CloudFront forbids a function to touch,
//!   per trigger, and the one merge that enforces them;
//! - [`policy`]: viewer-request normalization, the origin rewrite, the
//!   route marker and its check, cache directives, passive health.

pub mod event;
pub mod policy;
pub mod restricted;
pub mod secrets;

pub use event::{Answer, Event, Request, Response};
pub use restricted::Trigger;
