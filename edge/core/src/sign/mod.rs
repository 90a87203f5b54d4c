//! Signing: AWS Signature Version 4 and the edge's own signed links.
//!
//! Everything here is a pure function of its inputs: credentials, the request
//! to sign and `now` (unix seconds) go in; the canonical request, the string
//! to sign, the signature and *instructions* (headers or query parameters to
//! add) come out. Nothing reads the clock, nothing does I/O, and no input can
//! make it panic.
//!
//! - [`sigv4`]: a small hand-written SigV4 signer (on `sha2`/`hmac` and
//!   `percent-encoding`) with the settings of the `aws-sigv4` crate, checked
//!   against the AWS signing test suite and, natively, against `aws-sigv4`
//!   itself.
//! - [`presign`]: S3 presigned URLs (GET, HEAD, PUT), byte for byte in the
//!   layout of the AWS SDK for JavaScript v3 presigner or of the S3 docs.
//! - [`origin`]: header auth for edge → private bucket requests (what
//!   CloudFront origin access control does).
//! - [`link`]: HMAC-SHA256 tokens verified at the edge, with key rotation:
//!   download links (audience `link`) and presign grants (audience
//!   `presign`, with upload limits).
//!
//! Secrets (secret access keys, session tokens, link keys) never appear in
//! `Debug` output or in error messages.

mod encode;
pub(crate) use encode::{hmac_sha256, uri_encode_path};
pub mod link;
pub mod origin;
pub mod presign;
pub mod presign_json;
pub mod sigv4;

pub use link::{
    Audience, ContentTypePattern, GrantClaims, GrantRequest, KeyScope, LinkClaims, LinkError,
    LinkKey, LinkKeySet, Methods, Scope,
};
pub use origin::{sign_origin_request, OriginPayload, OriginRequest, OriginSigned};
pub use presign::{
    presign, AddressingStyle, Checksum, PresignError, PresignMethod, PresignRequest, PresignedUrl, Presigner,
    QueryFormat, ResponseOverrides, S3Bucket,
};
pub use sigv4::{
    AmzDate, Credentials, PayloadChecksumKind, PayloadHash, PercentEncodingMode, SessionTokenMode,
    KeptSigningKey, SignableRequest, SignatureLocation, SigningError, SigningInstructions, SigningKey,
    SigningOutput, SigningParams, SigningSettings, UriPathNormalization,
};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
