//! Shared test helpers: a tiny HTTP client, temp dirs, SigV4 signing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(req: Request<Full<Bytes>>) -> Resp {
    let resp = tokio::time::timeout(Duration::from_secs(10), client().request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::copy_from_slice(body))).unwrap()
}

pub async fn get(url: &str) -> Resp {
    send(request(Method::GET, url, &[], b"")).await
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("origin-shim-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub mod sigv4 {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SignatureLocation, SigningSettings, UriPathNormalizationMode,
    };
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    pub const REGION: &str = "us-east-1";

    pub enum Mode {
        /// `Authorization` header, with `x-amz-content-sha256` of the body.
        Header,
        /// Presigned URL (query auth), valid for `expires` from `time`.
        Presign { expires: Duration },
    }

    /// Signs `req` in place the way an S3 client would (no path normalisation,
    /// single percent-encoding).
    pub fn sign_request(
        req: &mut Request<Full<Bytes>>,
        body: &[u8],
        ak: &str,
        sk: &str,
        time: SystemTime,
        mode: Mode,
    ) {
        let identity: Identity = Credentials::new(ak, sk, None, None, "origin-shim-tests").into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let signable_body = match mode {
            Mode::Header => {
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
                SignableBody::Bytes(body)
            }
            Mode::Presign { expires } => {
                settings.signature_location = SignatureLocation::QueryParams;
                settings.expires_in = Some(expires);
                SignableBody::UnsignedPayload
            }
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let uri = req.uri().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            uri,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signable_body,
        )
        .unwrap();
        let (instructions, _sig) = sign(signable, &params).unwrap().into_parts();
        instructions.apply_to_request_http1x(req);
    }
}
