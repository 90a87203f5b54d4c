//! Tests of the signing modules.
//!
//! - `suite`: every case of the AWS SigV4 test suite (vectors in
//!   `edge/core/tests/vectors/sigv4/`, registered in `manifest`), header and
//!   query variants, stage by stage.
//! - `s3_docs`: the worked examples of the S3 SigV4 documentation.
//! - `presign`, `origin`, `link`: behaviour of each module.
//! - `differential` (native only): random requests signed by this signer and
//!   by the `aws-sigv4` crate must agree.

#[cfg(not(target_arch = "wasm32"))]
mod differential;
mod link;
mod manifest;
mod origin;
mod presign;
mod s3_docs;
mod suite;
