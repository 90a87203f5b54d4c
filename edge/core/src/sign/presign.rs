//! S3 presigned URLs (SigV4 query auth) for GET, HEAD and PUT.
//!
//! Keys are encoded exactly as S3 expects: every byte except the unreserved
//! `A-Za-z0-9-._~` is percent-encoded, `/` stays a separator, the path is
//! neither normalized nor double-encoded. So `a b+c/~x//%` becomes
//! `a%20b%2Bc/~x//%25` and round-trips.
//!
//! Two query layouts ([`QueryFormat`]):
//!
//! - [`QueryFormat::JsSdkV3`] (default): what `getSignedUrl` of npm
//!   `@aws-sdk/s3-request-presigner` produces, so URLs can be compared byte
//!   for byte. Its presigner sets the header `X-Amz-Content-Sha256:
//!   UNSIGNED-PAYLOAD`, which the SigV4 signer hoists (like every `x-amz-*`
//!   header) into the query, *signed*; the command serializer adds
//!   `x-id=GetObject|PutObject` (none for HEAD); the final URL is written by
//!   `@smithy/querystring-builder`'s `buildQueryString`, which sorts the
//!   parameters by raw name and encodes names and values with `escapeUri`
//!   (= SigV4 `UriEncode`). Result, e.g.:
//!   `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential=…&X-Amz-Date=…&X-Amz-Expires=900&X-Amz-Security-Token=…&X-Amz-Signature=…&X-Amz-SignedHeaders=host&response-content-disposition=…&x-id=GetObject`
//!   (`X-Amz-Signature` sorts before `X-Amz-SignedHeaders`; lower-case names
//!   after upper-case ones).
//! - [`QueryFormat::AwsDocs`]: the layout of the S3 documentation example
//!   (no `X-Amz-Content-Sha256`, no `x-id`): the canonical query followed by
//!   `&X-Amz-Signature=…`.
//!
//! Known differences from the JS SDK, by design: a `content_type` given here
//! is *signed* (the JS presigner never signs `content-type`), and checksums
//! are signed headers (the JS SDK hoists `x-amz-checksum-*` into the query).

use std::fmt;

use base64::Engine as _;

use super::encode::{push_uri_encoded, NOT_IN_URI_PATH};
#[cfg(test)]
use super::encode::parse_query;
#[cfg(test)]
use super::sigv4::{PayloadHash, SignableRequest};
use super::sigv4::{
    self, parse_url, AmzDate, Credentials, KeptSigningKey, SigningError, SigningKey,
    SigningParams, SigningSettings, MAX_EXPIRES_SECS,
};

const REDACTED: &str = "REDACTED";

/// Why a URL could not be presigned. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignError {
    kind: PresignErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PresignErrorKind {
    Expires {
        secs: u64,
    },
    Endpoint {
        endpoint: String,
        reason: String,
    },
    Bucket {
        bucket: String,
        reason: &'static str,
    },
    Key {
        reason: &'static str,
    },
    NotForMethod {
        what: &'static str,
        method: PresignMethod,
    },
    Checksum {
        header: &'static str,
    },
    HeaderValue {
        what: &'static str,
    },
    Signing(SigningError),
}

impl PresignError {
    fn new(kind: PresignErrorKind) -> Self {
        Self { kind }
    }
    /// True when the expiry was outside 1 s ..= 7 days.
    pub fn is_expiry(&self) -> bool {
        matches!(self.kind, PresignErrorKind::Expires { .. })
    }
    /// The request field the error is about: `expires`, `key`, `bucket`,
    /// `endpoint`, a header field (`content_type`, `content_length`,
    /// `checksum`, a `response-*` override) or `request`.
    pub fn field(&self) -> &'static str {
        match &self.kind {
            PresignErrorKind::Expires { .. } => "expires",
            PresignErrorKind::Endpoint { .. } => "endpoint",
            PresignErrorKind::Bucket { .. } => "bucket",
            PresignErrorKind::Key { .. } => "key",
            PresignErrorKind::NotForMethod { what, .. } | PresignErrorKind::HeaderValue { what } => what,
            PresignErrorKind::Checksum { .. } => "checksum",
            PresignErrorKind::Signing(_) => "request",
        }
    }
}

impl fmt::Display for PresignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PresignErrorKind::Expires { secs } => write!(
                f,
                "presign: expires_in {secs} s is out of range: must be 1..={MAX_EXPIRES_SECS} s (7 days)"
            ),
            PresignErrorKind::Endpoint { endpoint, reason } => {
                write!(f, "presign: endpoint {endpoint:?}: {reason}")
            }
            PresignErrorKind::Bucket { bucket, reason } => {
                write!(f, "presign: bucket {bucket:?}: {reason}")
            }
            PresignErrorKind::Key { reason } => write!(f, "presign: key: {reason}"),
            PresignErrorKind::NotForMethod { what, method } => {
                write!(f, "presign: {what} cannot be used with {}", method.as_str())
            }
            PresignErrorKind::Checksum { header } => write!(
                f,
                "presign: {header}: value must be the base64 of the digest (standard alphabet, padded)"
            ),
            PresignErrorKind::HeaderValue { what } => {
                write!(f, "presign: {what}: value contains a control character")
            }
            PresignErrorKind::Signing(e) => write!(f, "presign: {e}"),
        }
    }
}

impl std::error::Error for PresignError {}

impl From<SigningError> for PresignError {
    fn from(e: SigningError) -> Self {
        Self::new(PresignErrorKind::Signing(e))
    }
}

/// The operation a presigned URL allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresignMethod {
    Get,
    Head,
    Put,
}

impl PresignMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PresignMethod::Get => "GET",
            PresignMethod::Head => "HEAD",
            PresignMethod::Put => "PUT",
        }
    }
    /// The S3 operation name.
    pub fn operation(self) -> &'static str {
        match self {
            PresignMethod::Get => "GetObject",
            PresignMethod::Head => "HeadObject",
            PresignMethod::Put => "PutObject",
        }
    }
    /// The `x-id` query parameter the JS SDK v3 serializer adds: the
    /// operation name for GetObject and PutObject; HeadObject has none
    /// (checked byte for byte against `@aws-sdk/s3-request-presigner`
    /// by `tests/sign-compat/`).
    pub fn x_id(self) -> Option<&'static str> {
        match self {
            PresignMethod::Get | PresignMethod::Put => Some(self.operation()),
            PresignMethod::Head => None,
        }
    }
}

/// `https://bucket.host/key` or `https://host/bucket/key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressingStyle {
    VirtualHosted,
    Path,
}

/// Which client's URL layout to reproduce (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum QueryFormat {
    #[default]
    JsSdkV3,
    AwsDocs,
}

/// A bucket at an endpoint (AWS or any S3-compatible store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Bucket {
    scheme: &'static str,
    authority: String,
    /// The `Host` header value: `authority` without a default port.
    host: String,
    base_path: String,
    bucket: String,
    region: String,
    style: AddressingStyle,
}

impl S3Bucket {
    /// `endpoint` is `scheme://host[:port][/base-path]`, e.g.
    /// `https://s3.us-east-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        style: AddressingStyle,
    ) -> Result<Self, PresignError> {
        let bad_endpoint = |reason: String| {
            PresignError::new(PresignErrorKind::Endpoint {
                endpoint: endpoint.to_owned(),
                reason,
            })
        };
        let url = parse_url(endpoint).map_err(|e| bad_endpoint(e.to_string()))?;
        if url.query.is_some() || endpoint.contains('#') {
            return Err(bad_endpoint("must not have a query or fragment".into()));
        }
        let bad_bucket = |reason| {
            PresignError::new(PresignErrorKind::Bucket {
                bucket: bucket.to_owned(),
                reason,
            })
        };
        if bucket.is_empty() || bucket.len() > 255 {
            return Err(bad_bucket("must be 1..=255 characters"));
        }
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        {
            return Err(bad_bucket(
                "may only contain letters, digits, '.', '-' and '_'",
            ));
        }
        if style == AddressingStyle::VirtualHosted {
            let dns_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                })
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
                && !bucket.contains("..");
            if !dns_ok {
                return Err(bad_bucket(
                    "virtual-hosted style needs a DNS-compatible name (3..=63 of a-z 0-9 . -); use path style",
                ));
            }
        }
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
            return Err(PresignError::from(SigningError::url(format!(
                "region {region:?} must be non-empty without '/' or spaces"
            ))));
        }
        let (authority, host) = match style {
            AddressingStyle::VirtualHosted => {
                (format!("{bucket}.{}", url.authority), format!("{bucket}.{}", url.host_header()))
            }
            AddressingStyle::Path => (url.authority.to_owned(), url.host_header().to_owned()),
        };
        Ok(Self {
            scheme: url.scheme,
            authority,
            host,
            base_path: url.path.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            region: region.to_owned(),
            style,
        })
    }

    /// An AWS bucket: `https://{bucket}.s3.{region}.amazonaws.com`.
    pub fn aws(bucket: &str, region: &str) -> Result<Self, PresignError> {
        Self::new(
            &format!("https://s3.{region}.amazonaws.com"),
            bucket,
            region,
            AddressingStyle::VirtualHosted,
        )
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The encoded path of `key` (with the bucket in path style).
    pub fn object_path(&self, key: &str) -> Result<String, PresignError> {
        let mut path = String::new();
        self.push_object_path(&mut path, key)?;
        Ok(path)
    }

    /// Appends [`Self::object_path`] to `out`.
    fn push_object_path(&self, out: &mut String, key: &str) -> Result<(), PresignError> {
        check_key(key)?;
        out.reserve(self.base_path.len() + self.bucket.len() + key.len() + 2);
        out.push_str(&self.base_path);
        if self.style == AddressingStyle::Path {
            out.push('/');
            push_uri_encoded(out, &self.bucket, false);
        }
        out.push('/');
        push_uri_encoded(out, key, true);
        Ok(())
    }

    /// `scheme://authority`.
    fn push_origin(&self, out: &mut String) {
        out.push_str(self.scheme);
        out.push_str("://");
        out.push_str(&self.authority);
    }

    /// The unsigned URL of `key`.
    pub fn object_url(&self, key: &str) -> Result<String, PresignError> {
        Ok(format!(
            "{}://{}{}",
            self.scheme,
            self.authority,
            self.object_path(key)?
        ))
    }
}

fn check_key(key: &str) -> Result<(), PresignError> {
    if key.is_empty() {
        return Err(PresignError::new(PresignErrorKind::Key {
            reason: "must not be empty",
        }));
    }
    if key.len() > 1024 {
        return Err(PresignError::new(PresignErrorKind::Key {
            reason: "longer than S3's 1024 bytes",
        }));
    }
    Ok(())
}

/// `response-*` overrides of the GET/HEAD response headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseOverrides<'a> {
    pub cache_control: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_language: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub expires: Option<&'a str>,
}

impl<'a> ResponseOverrides<'a> {
    fn pairs(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            ("response-cache-control", self.cache_control),
            ("response-content-disposition", self.content_disposition),
            ("response-content-encoding", self.content_encoding),
            ("response-content-language", self.content_language),
            ("response-content-type", self.content_type),
            ("response-expires", self.expires),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
    fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }
}

/// A checksum S3 verifies on upload; the value is the base64 digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum<'a> {
    Crc32(&'a str),
    Crc32c(&'a str),
    Crc64Nvme(&'a str),
    Sha1(&'a str),
    Sha256(&'a str),
}

impl<'a> Checksum<'a> {
    /// The header and its value, checked.
    fn header(&self) -> Result<(&'static str, &'a str), PresignError> {
        let (header, value, len) = match *self {
            Checksum::Crc32(v) => ("x-amz-checksum-crc32", v, 4),
            Checksum::Crc32c(v) => ("x-amz-checksum-crc32c", v, 4),
            Checksum::Crc64Nvme(v) => ("x-amz-checksum-crc64nvme", v, 8),
            Checksum::Sha1(v) => ("x-amz-checksum-sha1", v, 20),
            Checksum::Sha256(v) => ("x-amz-checksum-sha256", v, 32),
        };
        match base64::engine::general_purpose::STANDARD.decode(value) {
            Ok(bytes) if bytes.len() == len => Ok((header, value)),
            _ => Err(PresignError::new(PresignErrorKind::Checksum { header })),
        }
    }
}

/// What to presign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresignRequest<'a> {
    pub method: PresignMethod,
    /// The object key, raw (unencoded).
    pub key: &'a str,
    /// Lifetime in seconds, 1..=604800.
    pub expires_in: u64,
    pub version_id: Option<&'a str>,
    /// PUT: a signed `Content-Type` the uploader must send.
    pub content_type: Option<&'a str>,
    /// PUT: a signed `Content-Length` the uploader must send.
    pub content_length: Option<u64>,
    /// PUT: a signed `x-amz-checksum-*` header S3 verifies.
    pub checksum: Option<Checksum<'a>>,
    /// GET/HEAD: `response-*` overrides.
    pub response: ResponseOverrides<'a>,
    pub format: QueryFormat,
}

impl<'a> PresignRequest<'a> {
    fn plain(method: PresignMethod, key: &'a str, expires_in: u64) -> Self {
        Self {
            method,
            key,
            expires_in,
            version_id: None,
            content_type: None,
            content_length: None,
            checksum: None,
            response: ResponseOverrides::default(),
            format: QueryFormat::default(),
        }
    }
    pub fn get(key: &'a str, expires_in: u64) -> Self {
        Self::plain(PresignMethod::Get, key, expires_in)
    }
    pub fn head(key: &'a str, expires_in: u64) -> Self {
        Self::plain(PresignMethod::Head, key, expires_in)
    }
    pub fn put(key: &'a str, expires_in: u64) -> Self {
        Self::plain(PresignMethod::Put, key, expires_in)
    }
}

/// A presigned URL and the headers its user must send with it.
/// `Debug` redacts the signature and the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedUrl {
    url: String,
    method: PresignMethod,
    expires_at: u64,
    headers: Vec<(&'static str, String)>,
    canonical_request: String,
    string_to_sign: String,
}

impl PresignedUrl {
    pub fn as_str(&self) -> &str {
        &self.url
    }
    pub fn into_string(self) -> String {
        self.url
    }
    pub fn method(&self) -> PresignMethod {
        self.method
    }
    /// Unix seconds after which S3 refuses the URL.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
    /// Signed headers (besides `host`) the request must carry, exactly.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }
    /// The canonical request that was signed (contains the session token).
    pub fn canonical_request(&self) -> &str {
        &self.canonical_request
    }
    pub fn string_to_sign(&self) -> &str {
        &self.string_to_sign
    }
}

impl fmt::Display for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl fmt::Debug for PresignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = match self.url.split_once('?') {
            Some((base, query)) => {
                let parts: Vec<String> = query
                    .split('&')
                    .map(|p| match p.split_once('=') {
                        Some((k, _)) if k == "X-Amz-Signature" || k == "X-Amz-Security-Token" => {
                            format!("{k}={REDACTED}")
                        }
                        _ => p.to_owned(),
                    })
                    .collect();
                format!("{base}?{}", parts.join("&"))
            }
            None => self.url.clone(),
        };
        f.debug_struct("PresignedUrl")
            .field("url", &redacted)
            .field("method", &self.method)
            .field("expires_at", &self.expires_at)
            .field("headers", &self.headers)
            .finish()
    }
}

fn check_value(what: &'static str, v: &str) -> Result<(), PresignError> {
    if v.chars().any(char::is_control) {
        return Err(PresignError::new(PresignErrorKind::HeaderValue { what }));
    }
    Ok(())
}

/// The request's own query parameters (raw values), in the order the
/// request gives them.
fn own_params<'a>(req: &PresignRequest<'a>) -> Result<Vec<(&'a str, &'a str)>, PresignError> {
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(14);
    if req.format == QueryFormat::JsSdkV3 {
        pairs.push(("X-Amz-Content-Sha256", sigv4::UNSIGNED_PAYLOAD));
        if let Some(x_id) = req.method.x_id() {
            pairs.push(("x-id", x_id));
        }
    }
    if let Some(version) = req.version_id {
        pairs.push(("versionId", version));
    }
    for (k, v) in req.response.pairs() {
        check_value(k, v)?;
        pairs.push((k, v));
    }
    Ok(pairs)
}

/// S3 query signing of `req` on `bucket` at `time`.
fn signing_params<'a>(
    bucket: &'a S3Bucket,
    credentials: &'a Credentials,
    req: &PresignRequest<'_>,
    time: AmzDate,
    signing_key: Option<&'a SigningKey>,
) -> SigningParams<'a> {
    SigningParams {
        credentials,
        region: &bucket.region,
        service: "s3",
        time,
        settings: SigningSettings::s3_presigned(req.expires_in),
        signing_key,
    }
}

/// Signed headers (besides `host`) the user must send.
fn user_headers(req: &PresignRequest<'_>) -> Result<Vec<(&'static str, String)>, PresignError> {
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    if let Some(ct) = req.content_type {
        check_value("content_type", ct)?;
        headers.push(("content-type", ct.to_owned()));
    }
    if let Some(len) = req.content_length {
        headers.push(("content-length", len.to_string()));
    }
    if let Some(checksum) = &req.checksum {
        let (name, value) = checksum.header()?;
        headers.push((name, value.to_owned()));
    }
    Ok(headers)
}

/// Presigns `req` on `bucket`, valid from `now` (unix seconds).
///
/// ```
/// use offload_core::sign::{presign, AddressingStyle, Credentials, PresignRequest, QueryFormat, S3Bucket};
///
/// let bucket = S3Bucket::new("https://s3.amazonaws.com", "examplebucket", "us-east-1",
///                            AddressingStyle::VirtualHosted).unwrap();
/// let creds = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None);
/// let req = PresignRequest { format: QueryFormat::AwsDocs, ..PresignRequest::get("test.txt", 86400) };
/// let url = presign(&bucket, &creds, &req, 1_369_353_600, None).unwrap();
/// assert!(url.as_str().ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"));
/// ```
pub fn presign(
    bucket: &S3Bucket,
    credentials: &Credentials,
    req: &PresignRequest<'_>,
    now: u64,
    signing_key: Option<&SigningKey>,
) -> Result<PresignedUrl, PresignError> {
    if req.expires_in == 0 || req.expires_in > MAX_EXPIRES_SECS {
        return Err(PresignError::new(PresignErrorKind::Expires {
            secs: req.expires_in,
        }));
    }
    let is_put = req.method == PresignMethod::Put;
    let not_for = |what| {
        Err(PresignError::new(PresignErrorKind::NotForMethod {
            what,
            method: req.method,
        }))
    };
    if !is_put {
        if req.content_type.is_some() {
            return not_for("content_type");
        }
        if req.content_length.is_some() {
            return not_for("content_length");
        }
        if req.checksum.is_some() {
            return not_for("checksum");
        }
    } else if !req.response.is_empty() {
        return not_for("response overrides");
    }
    let time = AmzDate::from_unix_secs(now)?;
    let params = signing_params(bucket, credentials, req, time, signing_key);
    sigv4::check_params(req.method.as_str(), &params)?;

    // Signed headers the user must send.
    let headers = user_headers(req)?;
    // In canonical (sorted) order: content-length < content-type < host <
    // x-amz-checksum-*.
    let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(n, v)| (*n, v.as_str()));
    let before_host = [header("content-length"), header("content-type")];
    let after_host = headers.iter().find(|(n, _)| n.starts_with("x-amz-checksum-")).map(|(n, v)| (*n, v.as_str()));

    // `scheme://authority/path`: the start of the URL.
    let mut url = String::with_capacity(512);
    bucket.push_origin(&mut url);
    let path_start = url.len();
    bucket.push_object_path(&mut url, req.key)?;
    let base_len = url.len();

    let dt = time.date_time_bytes();
    let date_time = sigv4::ascii(&dt);
    let token = credentials.session_token();
    let mut credential = String::with_capacity(credentials.access_key_id().len() + bucket.region.len() + 28);
    for part in [credentials.access_key_id(), "/", sigv4::ascii(&dt[..8]), "/", &bucket.region, "/s3/aws4_request"] {
        credential.push_str(part);
    }
    let mut signed_headers = String::with_capacity(64);
    for (name, _) in before_host.iter().flatten() {
        signed_headers.push_str(name);
        signed_headers.push(';');
    }
    signed_headers.push_str("host");
    if let Some((name, _)) = after_host {
        signed_headers.push(';');
        signed_headers.push_str(name);
    }
    let expires = req.expires_in.to_string();

    // Every query parameter but the signature. The names are unreserved
    // ASCII, so sorting by raw name is SigV4's order (by encoded name) and
    // `buildQueryString`'s (by raw name) alike; no name repeats.
    let mut pairs = own_params(req)?;
    pairs.push(("X-Amz-Algorithm", sigv4::ALGORITHM));
    pairs.push(("X-Amz-Credential", &credential));
    pairs.push(("X-Amz-Date", date_time));
    pairs.push(("X-Amz-Expires", &expires));
    pairs.push(("X-Amz-SignedHeaders", &signed_headers));
    if let Some(token) = token {
        pairs.push(("X-Amz-Security-Token", token));
    }
    crate::sort::sort_by(&mut pairs, |a, b| a.0.cmp(b.0));

    // The canonical request, written once.
    let mut creq = String::with_capacity(url.len() * 2 + 512);
    creq.push_str(req.method.as_str());
    creq.push('\n');
    // Only the endpoint's base path can hold a byte that needs escaping
    // there: the rest is `push_uri_encoded`'s output (unreserved, `/`,
    // `%XX`), copied as it is (a second pass over the encoded key through
    // `percent_encoding` was 1.5 % of `S3Presigner.presign`'s time in a
    // Node CPU profile of the Lambda@Edge Wasm).
    let base_end = path_start + bucket.base_path.len();
    push_canonical_path(&mut creq, url.get(path_start..base_end).unwrap_or_default());
    creq.push_str(url.get(base_end..base_len).unwrap_or_default());
    creq.push('\n');
    let query_start = creq.len();
    // Where the signature goes in the JS SDK layout: before the first name
    // that sorts after `X-Amz-Signature`.
    let mut signature_at = None;
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            creq.push('&');
        }
        if signature_at.is_none() && *k > "X-Amz-Signature" {
            signature_at = Some(creq.len() - query_start);
        }
        push_uri_encoded(&mut creq, k, false);
        creq.push('=');
        push_uri_encoded(&mut creq, v, false);
    }
    let query_end = creq.len();
    creq.push('\n');
    for (name, value) in before_host.iter().flatten() {
        push_header(&mut creq, name, value);
    }
    push_header(&mut creq, "host", &bucket.host);
    if let Some((name, value)) = after_host {
        push_header(&mut creq, name, value);
    }
    creq.push('\n');
    creq.push_str(&signed_headers);
    creq.push('\n');
    creq.push_str(sigv4::UNSIGNED_PAYLOAD);

    let string_to_sign = sigv4::string_to_sign(&creq, &time, &bucket.region, "s3");
    let derived;
    let key = match signing_key {
        Some(key) if key.matches(&time, &bucket.region, "s3") => key,
        _ => {
            derived = SigningKey::derive(credentials, &time, &bucket.region, "s3");
            &derived
        }
    };
    let signature = sigv4::calculate_signature(key, &string_to_sign);

    let query = creq.get(query_start..query_end).unwrap_or_default();
    url.reserve(query.len() + signature.len() + 20);
    url.push('?');
    match (req.format, signature_at) {
        (QueryFormat::JsSdkV3, Some(at)) => {
            url.push_str(query.get(..at).unwrap_or_default());
            url.push_str("X-Amz-Signature=");
            url.push_str(&signature);
            url.push('&');
            url.push_str(query.get(at..).unwrap_or_default());
        }
        _ => {
            url.push_str(query);
            url.push_str("&X-Amz-Signature=");
            url.push_str(&signature);
        }
    }
    Ok(PresignedUrl {
        url,
        method: req.method,
        expires_at: now.saturating_add(req.expires_in),
        headers,
        canonical_request: creq,
        string_to_sign,
    })
}

/// A presigner for one bucket with one set of credentials, made once and
/// used for many URLs (what a Node user keeps: the Lambda@Edge package's
/// `S3Presigner`). [`Presigner::presign`] gives what [`presign`] gives
/// for the same bucket, credentials, request and time, byte for byte. It
/// keeps what is the same for every URL: the endpoint and bucket, checked
/// once ([`S3Bucket::new`]), the HMAC key state of `"AWS4" + secret`, and
/// the day signing key it derived last ([`KeptSigningKey`], the edge's
/// per-isolate mechanism; one entry, scope: the UTC date, the bucket's
/// region and `s3`). A URL on the day of the one before reuses that key
/// (16 of the ~30 SHA-256 blocks of a URL saved); a URL on another day
/// derives its day's key (14 blocks from the kept secret state) and keeps
/// it instead. [`presign`] uses a given key only while its scope matches
/// the URL's time, so a kept key of another day can never sign.
///
/// `Debug` shows the bucket, the access key id and the kept key's scope
/// only: never the secret, the session token or a key.
pub struct Presigner {
    bucket: S3Bucket,
    credentials: Credentials,
    secret: super::encode::HmacSha256,
    day_key: KeptSigningKey,
}

impl Presigner {
    pub fn new(bucket: S3Bucket, credentials: Credentials) -> Self {
        let secret = SigningKey::secret_state(&credentials);
        Self { bucket, credentials, secret, day_key: KeptSigningKey::default() }
    }

    pub fn bucket(&self) -> &S3Bucket {
        &self.bucket
    }

    /// Presigns `req`, valid from `now` (unix seconds).
    pub fn presign(&self, req: &PresignRequest<'_>, now: u64) -> Result<PresignedUrl, PresignError> {
        // A time out of range: `presign` gives the error.
        let region = self.bucket.region.as_str();
        let day_key = AmzDate::from_unix_secs(now).ok().map(|time| {
            self.day_key.get_or_derive(&time, region, "s3", || SigningKey::derive_from(&self.secret, &time, region, "s3"))
        });
        presign(&self.bucket, &self.credentials, req, now, day_key.as_deref())
    }

    /// The kept day key (tests).
    #[cfg(test)]
    pub(crate) fn kept_day_key(&self) -> Option<std::sync::Arc<SigningKey>> {
        self.day_key.kept()
    }
}

impl fmt::Debug for Presigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presigner")
            .field("bucket", &self.bucket)
            .field("credentials", &self.credentials)
            .field("day_key", &self.day_key)
            .finish_non_exhaustive()
    }
}

/// `name:value\n` of the canonical headers (value trimmed as SigV4 does).
fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    out.push_str(&sigv4::trim_all(value));
    out.push('\n');
}

/// The canonical URI of an S3 path as sent (single encoding, no
/// normalization): the path itself, with the bytes that cannot appear raw
/// in a URI escaped (only an endpoint's base path can hold any).
fn push_canonical_path(out: &mut String, path: &str) {
    // Yields `path` whole when nothing needs escaping.
    out.extend(percent_encoding::utf8_percent_encode(path, NOT_IN_URI_PATH));
}

/// The same URL the long way, through the general SigV4 signer (building
/// the request's URL, signing it, re-reading its query): the reference
/// [`presign`] is tested against.
#[cfg(test)]
pub(crate) fn presign_via_signer(
    bucket: &S3Bucket,
    credentials: &Credentials,
    req: &PresignRequest<'_>,
    now: u64,
    signing_key: Option<&SigningKey>,
) -> Result<PresignedUrl, PresignError> {
    presign(bucket, credentials, req, now, signing_key)?; // same validation
    let time = AmzDate::from_unix_secs(now)?;
    // `scheme://authority/path`: the start of both URLs.
    let mut signing_url = String::with_capacity(256);
    bucket.push_origin(&mut signing_url);
    bucket.push_object_path(&mut signing_url, req.key)?;
    let base_len = signing_url.len();

    // Query parameters of the request itself (raw values).
    let pairs = own_params(req)?;
    if !pairs.is_empty() {
        signing_url.push('?');
        push_joined_encoded(&mut signing_url, pairs.iter().copied());
    }

    // Signed headers the user must send.
    let headers = user_headers(req)?;
    let header_refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (out, canonical_request) = sigv4::sign_with_text(
        &SignableRequest {
            method: req.method.as_str(),
            url: &signing_url,
            headers: &header_refs,
            payload: PayloadHash::UnsignedPayload,
        },
        &signing_params(bucket, credentials, req, time, signing_key),
    )?;

    let mut url = signing_url.clone();
    url.truncate(base_len);
    url.push('?');
    match req.format {
        QueryFormat::AwsDocs => {
            url.push_str(out.canonical_request.query());
            url.push_str("&X-Amz-Signature=");
            url.push_str(&out.signature);
        }
        QueryFormat::JsSdkV3 => {
            // Re-read the request's own parameters the way the signer did, so
            // the URL and the signature can never disagree.
            let own: Vec<(String, String)> = signing_url
                .get(base_len..)
                .and_then(|q| q.strip_prefix('?'))
                .map(parse_query)
                .unwrap_or_default();
            let mut all: Vec<(&str, &str)> =
                Vec::with_capacity(own.len() + out.instructions.params().len());
            all.extend(own.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            all.extend(
                out.instructions
                    .params()
                    .iter()
                    .map(|(k, v)| (*k, v.as_str())),
            );
            // buildQueryString: `Object.keys(query).sort()` — by raw name.
            crate::sort::sort_by(&mut all, |a, b| a.0.cmp(b.0));
            push_joined_encoded(&mut url, all.into_iter());
        }
    }
    Ok(PresignedUrl {
        url,
        method: req.method,
        expires_at: now.saturating_add(req.expires_in),
        headers,
        canonical_request,
        string_to_sign: out.string_to_sign,
    })
}

/// Appends `k=v&k=v…`, names and values `UriEncode`d.
#[cfg(test)]
fn push_joined_encoded<'a>(out: &mut String, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_uri_encoded(out, k, false);
        out.push('=');
        push_uri_encoded(out, v, false);
    }
}
