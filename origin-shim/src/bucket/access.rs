//! Access policy for the bucket server.
//!
//! How s3s 0.14.1 treats auth (see `s3s/src/ops/mod.rs::prepare` and
//! `ops/signature.rs`):
//!
//! * A request that *carries* a signature (SigV4 `Authorization` header, or a
//!   presigned URL with `X-Amz-Signature`, or SigV2) is verified first. Any failure
//!   — unknown key (`NotSignedUp`), bad signature (`SignatureDoesNotMatch`),
//!   presigned URL past `X-Amz-Expires` (`AccessDenied`), clock skew
//!   (`RequestTimeTooSkewed`) — is a 403 returned before this policy runs.
//! * A request with no signature at all is *anonymous*: `credentials()` is `None`
//!   and it reaches [`S3Access::check`]. The default `check` denies every anonymous
//!   request; this policy additionally allows `GetObject`/`HeadObject` on buckets
//!   listed as public-read.
//! * `check` only runs when an auth provider is set on the service builder
//!   (`set_auth`); without one s3s skips access checks entirely, so the bucket
//!   server always sets both.

use std::collections::BTreeSet;

use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{s3_error, S3Result};

/// Signed requests: allowed. Anonymous requests: only `GetObject`/`HeadObject` on
/// an object in a public-read bucket.
#[derive(Debug, Clone, Default)]
pub struct PublicReadPolicy {
    public_read: BTreeSet<String>,
}

impl PublicReadPolicy {
    #[must_use]
    pub fn new<I, S>(public_read: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            public_read: public_read.into_iter().map(Into::into).collect(),
        }
    }

    /// Would an anonymous request for `op` on `path` be allowed?
    #[must_use]
    pub fn allows_anonymous(&self, op: &str, path: &S3Path) -> bool {
        match path {
            S3Path::Object { bucket, .. } => {
                matches!(op, "GetObject" | "HeadObject") && self.public_read.contains(&**bucket)
            }
            S3Path::Root | S3Path::Bucket { .. } => false,
        }
    }
}

#[async_trait::async_trait]
impl S3Access for PublicReadPolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        if self.allows_anonymous(cx.s3_op().name(), cx.s3_path()) {
            return Ok(());
        }
        Err(s3_error!(AccessDenied, "Signature is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(bucket: &str) -> S3Path {
        S3Path::Object {
            bucket: bucket.into(),
            key: "index.html".into(),
        }
    }

    #[test]
    fn anonymous_rules() {
        let p = PublicReadPolicy::new(["www"]);
        assert!(p.allows_anonymous("GetObject", &obj("www")));
        assert!(p.allows_anonymous("HeadObject", &obj("www")));
        assert!(!p.allows_anonymous("PutObject", &obj("www")));
        assert!(!p.allows_anonymous("DeleteObject", &obj("www")));
        assert!(!p.allows_anonymous("GetObject", &obj("private")));
        assert!(!p.allows_anonymous(
            "ListObjectsV2",
            &S3Path::Bucket {
                bucket: "www".into()
            }
        ));
        assert!(!p.allows_anonymous("ListBuckets", &S3Path::Root));
    }
}
