//! A small AWS Signature Version 4 signer.
//!
//! Written by hand on `sha2`/`hmac` (RustCrypto) and `percent-encoding` so
//! that it stays far smaller in Wasm than the `aws-sigv4` crate, whose
//! behaviour it follows setting for setting (the crate is this module's test
//! oracle).
//!
//! Each stage is exposed, as in `aws-sigv4`:
//!
//! 1. [`canonical_request`] — the canonical request ([`CanonicalRequest`]),
//! 2. [`string_to_sign`],
//! 3. [`SigningKey::derive`] and [`calculate_signature`],
//! 4. [`sign`] — all of the above plus [`SigningInstructions`]: the headers
//!    (or query parameters) the caller adds to the request.
//!
//! Time is an argument ([`AmzDate`], from unix seconds); nothing here reads a
//! clock.
//!
//! ```
//! use offload_core::sign::sigv4::*;
//!
//! let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None);
//! let params = SigningParams {
//!     credentials: &creds,
//!     region: "us-east-1",
//!     service: "service",
//!     time: AmzDate::parse("20150830T123600Z").unwrap(),
//!     settings: SigningSettings::default(),
//!     signing_key: None,
//! };
//! let request = SignableRequest {
//!     method: "GET",
//!     url: "https://example.amazonaws.com/",
//!     headers: &[],
//!     payload: PayloadHash::EmptyBody,
//! };
//! let out = sign(&request, &params).unwrap();
//! assert_eq!(out.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
//! assert_eq!(out.instructions.headers()[0], ("x-amz-date", "20150830T123600Z".to_owned()));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::encode::{
    hex, hex32, hmac_key, hmac_with, parse_query, push_hex32, push_uri_encoded, sha256,
    sha256_hex, uri_encode_path, HmacSha256, NOT_IN_URI_PATH,
};

/// The only algorithm this signer implements.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Payload hash for a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Longest lifetime SigV4 allows a presigned request: 7 days.
pub const MAX_EXPIRES_SECS: u64 = 604_800;

/// Headers that are never signed by default: computed by signing itself, or
/// changed by proxies on the way (the same minimal set `aws-sigv4` uses).
pub const DEFAULT_EXCLUDED_HEADERS: &[&str] = &[
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];

const REDACTED: &str = "** redacted **";

// ---------------------------------------------------------------------------
// Errors

/// Why a request could not be signed. Never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningError {
    kind: SigningErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SigningErrorKind {
    Url { reason: Cow<'static, str> },
    Method { method: String },
    HeaderName { name: String },
    HeaderValue { name: String },
    PayloadHash,
    MissingExpiry,
    Expiry { secs: u64 },
    Time { what: String },
    Region { region: String },
    Service { service: String },
    AccessKeyId,
}

impl SigningError {
    fn new(kind: SigningErrorKind) -> Self {
        Self { kind }
    }
    pub(crate) fn url(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(SigningErrorKind::Url {
            reason: reason.into(),
        })
    }
    /// True when the error is about the request URL.
    pub fn is_url(&self) -> bool {
        matches!(self.kind, SigningErrorKind::Url { .. })
    }
}

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SigningErrorKind::Url { reason } => write!(f, "sigv4: url: {reason}"),
            SigningErrorKind::Method { method } => {
                write!(f, "sigv4: method {method:?} is not an HTTP token")
            }
            SigningErrorKind::HeaderName { name } => {
                write!(f, "sigv4: header name {name:?} is not an HTTP token")
            }
            // The value itself may be secret: name the header only.
            SigningErrorKind::HeaderValue { name } => write!(
                f,
                "sigv4: header {name:?}: value contains a control character (CR, LF, NUL, ...)"
            ),
            SigningErrorKind::PayloadHash => write!(
                f,
                "sigv4: precomputed payload hash must be non-empty visible ASCII without spaces"
            ),
            SigningErrorKind::MissingExpiry => {
                write!(f, "sigv4: query-parameter signing needs expires_in")
            }
            SigningErrorKind::Expiry { secs } => write!(
                f,
                "sigv4: expires_in {secs} s is out of range 1..={MAX_EXPIRES_SECS} (7 days)"
            ),
            SigningErrorKind::Time { what } => write!(f, "sigv4: time {what}"),
            SigningErrorKind::Region { region } => write!(
                f,
                "sigv4: region {region:?} must be non-empty, without '/', spaces or control characters"
            ),
            SigningErrorKind::Service { service } => write!(
                f,
                "sigv4: service {service:?} must be non-empty, without '/', spaces or control characters"
            ),
            SigningErrorKind::AccessKeyId => write!(
                f,
                "sigv4: access key id must be non-empty, without '/', spaces or control characters"
            ),
        }
    }
}

impl std::error::Error for SigningError {}

// ---------------------------------------------------------------------------
// Time

/// A UTC instant with whole seconds, formatted as SigV4 wants it
/// (`YYYYMMDD'T'HHMMSS'Z'`). Built from unix seconds; never from a clock.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmzDate {
    unix: u64,
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// 9999-12-31T23:59:59Z: the last instant with a 4-digit year.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

impl AmzDate {
    /// The instant `secs` seconds after 1970-01-01T00:00:00Z (up to year 9999).
    pub fn from_unix_secs(secs: u64) -> Result<Self, SigningError> {
        if secs > MAX_UNIX_SECS {
            return Err(SigningError::new(SigningErrorKind::Time {
                what: format!("{secs} is after year 9999"),
            }));
        }
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        // rem < 86400, so these all fit in u32.
        let rem = rem as u32;
        Ok(Self {
            unix: secs,
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        })
    }

    /// Parses `YYYYMMDD'T'HHMMSS'Z'` (for example `20130524T000000Z`).
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        let bad = || {
            SigningError::new(SigningErrorKind::Time {
                what: format!("{s:?} is not YYYYMMDDTHHMMSSZ"),
            })
        };
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return Err(bad());
        }
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(range)?;
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let (year, month, day) = (num(0..4), num(4..6), num(6..8));
        let (hour, minute, second) = (num(9..11), num(11..13), num(13..15));
        let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
            (year, month, day, hour, minute, second)
        else {
            return Err(bad());
        };
        if year < 1970
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(bad());
        }
        let days = days_from_civil(year, month, day);
        let secs =
            days * 86_400 + u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second);
        Self::from_unix_secs(secs)
    }

    /// Seconds since the unix epoch.
    pub fn unix_secs(&self) -> u64 {
        self.unix
    }

    /// `YYYYMMDD`, the date part of the credential scope.
    pub fn date_stamp(&self) -> String {
        ascii(&self.date_time_bytes()[..8]).to_owned()
    }

    /// `YYYYMMDD'T'HHMMSS'Z'`, the `X-Amz-Date` value.
    pub fn date_time(&self) -> String {
        ascii(&self.date_time_bytes()).to_owned()
    }

    /// [`Self::date_time`] on the stack (its first 8 bytes are the date stamp).
    pub(crate) fn date_time_bytes(&self) -> [u8; 16] {
        fn digits(out: &mut [u8], mut v: u32) {
            for d in out.iter_mut().rev() {
                // v % 10 < 10.
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        let mut b = *b"00000000T000000Z";
        digits(&mut b[0..4], self.year);
        digits(&mut b[4..6], self.month);
        digits(&mut b[6..8], self.day);
        digits(&mut b[9..11], self.hour);
        digits(&mut b[11..13], self.minute);
        digits(&mut b[13..15], self.second);
        b
    }
}

/// Digits and letters written above: always ASCII.
pub(crate) fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

impl fmt::Display for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.date_time())
    }
}

impl fmt::Debug for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmzDate({})", self.date_time())
    }
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's `civil_from_days`, for days since 1970-01-01 (>= 0).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    // year <= 9999 (checked by the caller), month <= 12, day <= 31.
    (year as u32, month as u32, day as u32)
}

/// Inverse of [`civil_from_days`] for year >= 1970.
fn days_from_civil(year: u32, month: u32, day: u32) -> u64 {
    let y = u64::from(if month <= 2 { year - 1 } else { year });
    let m = u64::from(month);
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + u64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---------------------------------------------------------------------------
// Credentials and keys

/// AWS credentials. `Debug` shows the access key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl Credentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
        }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The STS session token, if these are temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &REDACTED)
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// The derived SigV4 signing key for one (date, region, service) scope.
///
/// Deriving costs four HMACs; a caller that signs many requests keeps the
/// key and passes it in [`SigningParams::signing_key`] — it is used only
/// while its scope matches, and re-derived otherwise.
#[derive(Clone)]
pub struct SigningKey {
    key: [u8; 32],
    /// `key` as HMAC states, so a cached key signs with the message only.
    mac: HmacSha256,
    date: [u8; 8],
    region: String,
    service: String,
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        // `mac` is a function of `key`.
        self.key == other.key
            && self.date == other.date
            && self.region == other.region
            && self.service == other.service
    }
}

impl Eq for SigningKey {}

impl SigningKey {
    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    pub fn derive(credentials: &Credentials, time: &AmzDate, region: &str, service: &str) -> Self {
        Self::derive_from(&Self::secret_state(credentials), time, region, service)
    }

    /// The HMAC key state of `"AWS4" + secret`, the first step of every
    /// day's derivation: one per credentials, so a signer that keeps it
    /// ([`super::Presigner`]) derives a day's key with two fewer SHA-256
    /// blocks (14 instead of 16, plus the 2 of the key's own state).
    pub(crate) fn secret_state(credentials: &Credentials) -> HmacSha256 {
        hmac_key(&[b"AWS4", credentials.secret_access_key().as_bytes()])
    }

    /// [`Self::derive`] from [`Self::secret_state`].
    pub(crate) fn derive_from(secret: &HmacSha256, time: &AmzDate, region: &str, service: &str) -> Self {
        let mut date = [0u8; 8];
        date.copy_from_slice(&time.date_time_bytes()[..8]);
        let k_date = hmac_with(secret, &[&date]);
        let k_region = hmac_with(&hmac_key(&[&k_date]), &[region.as_bytes()]);
        let k_service = hmac_with(&hmac_key(&[&k_region]), &[service.as_bytes()]);
        let key = hmac_with(&hmac_key(&[&k_service]), &[b"aws4_request"]);
        Self {
            key,
            mac: hmac_key(&[&key]),
            date,
            region: region.to_owned(),
            service: service.to_owned(),
        }
    }

    /// Whether this key signs for `time`'s date, `region` and `service`.
    pub fn matches(&self, time: &AmzDate, region: &str, service: &str) -> bool {
        self.date[..] == time.date_time_bytes()[..8]
            && self.region == region
            && self.service == service
    }

    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            ascii(&self.date),
            self.region,
            self.service
        )
    }

    /// The raw key as lower-case hex (for comparing with published examples).
    pub fn to_hex(&self) -> String {
        hex(&self.key)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("scope", &self.scope())
            .field("key", &REDACTED)
            .finish()
    }
}

/// The [`SigningKey`] a long-lived signer derived last, kept so that
/// deriving it (four HMACs: 16 SHA-256 blocks, against ~14 for the rest
/// of a presigned URL) happens once per UTC day, region and service, not
/// per request. One entry: a key for another scope replaces it, so it
/// never grows; days going back and forth only derive again. Kept by the
/// edge per bucket and isolate (`config::EdgeKeys`) and by
/// [`super::Presigner`]. A clone copies the kept key. `Debug` shows the
/// kept key's scope only, never the key.
#[derive(Default)]
pub struct KeptSigningKey(Mutex<Option<Arc<SigningKey>>>);

impl KeptSigningKey {
    /// The kept key when it signs for `time`'s date, `region` and
    /// `service`; else `derive()`'s, kept in its place. `derive` must give
    /// the key of that scope (checked in debug builds).
    pub fn get_or_derive(
        &self,
        time: &AmzDate,
        region: &str,
        service: &str,
        derive: impl FnOnce() -> SigningKey,
    ) -> Arc<SigningKey> {
        // A poisoned lock (a panic elsewhere while holding it) only loses
        // the cache: the key is derived and not kept.
        let mut kept = self.0.lock().ok();
        if let Some(key) = kept.as_deref().and_then(Option::as_ref) {
            if key.matches(time, region, service) {
                return Arc::clone(key);
            }
        }
        let key = Arc::new(derive());
        debug_assert!(key.matches(time, region, service));
        if let Some(slot) = kept.as_deref_mut() {
            *slot = Some(Arc::clone(&key));
        }
        key
    }

    /// The kept key, if any (tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> Option<Arc<SigningKey>> {
        self.0.lock().ok().and_then(|k| k.clone())
    }
}

impl Clone for KeptSigningKey {
    fn clone(&self) -> Self {
        Self(Mutex::new(self.0.lock().ok().and_then(|k| k.clone())))
    }
}

impl fmt::Debug for KeptSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = self.0.lock().ok().and_then(|k| k.as_ref().map(|k| k.scope()));
        f.debug_tuple("KeptSigningKey").field(&scope).finish()
    }
}

// ---------------------------------------------------------------------------
// Settings

/// Where the signature goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureLocation {
    /// `Authorization` and `X-Amz-Date` headers.
    Headers,
    /// `X-Amz-*` query parameters (a presigned URL).
    QueryParams,
}

/// How the path is encoded in the canonical request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PercentEncodingMode {
    /// The (already encoded) path is URI-encoded once more: `%` → `%25`.
    /// What every AWS service except S3 expects.
    Double,
    /// The path is used as it is sent, already encoded. S3 expects this.
    Single,
}

/// Whether `.`/`..` segments and empty segments are removed from the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriPathNormalization {
    /// RFC 3986 dot-segment removal, `//` collapsed. Most services.
    Enabled,
    /// The path is signed as is. S3 (`a//b` and `a/../b` are distinct keys).
    Disabled,
}

/// Whether an `x-amz-content-sha256` header is added (header signing only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadChecksumKind {
    NoHeader,
    /// Required by S3.
    XAmzSha256,
}

/// Whether the session token is part of the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionTokenMode {
    /// Signed (the default, and what S3 wants).
    Include,
    /// Added to the request after signing (a few services want this).
    Exclude,
}

/// The payload hash line of the canonical request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadHash<'a> {
    /// `UNSIGNED-PAYLOAD`.
    UnsignedPayload,
    /// The SHA-256 of the empty body.
    EmptyBody,
    /// A hash (or one of the `STREAMING-…` markers) the caller computed.
    Precomputed(&'a str),
    /// The body itself; hashed here.
    Body(&'a [u8]),
}

impl PayloadHash<'_> {
    fn resolve(&self) -> Result<Cow<'_, str>, SigningError> {
        Ok(match self {
            PayloadHash::UnsignedPayload => Cow::Borrowed(UNSIGNED_PAYLOAD),
            PayloadHash::EmptyBody => Cow::Borrowed(EMPTY_BODY_SHA256),
            PayloadHash::Body(body) => Cow::Owned(sha256_hex(body)),
            PayloadHash::Precomputed(hash) => {
                if hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(SigningError::new(SigningErrorKind::PayloadHash));
                }
                Cow::Borrowed(*hash)
            }
        })
    }
}

/// How to sign. [`Default`] matches `aws-sigv4`'s defaults (double encoding,
/// normalization on, no content-hash header, headers); [`SigningSettings::s3`]
/// is what S3 needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningSettings {
    pub signature_location: SignatureLocation,
    pub percent_encoding_mode: PercentEncodingMode,
    pub uri_path_normalization: UriPathNormalization,
    pub payload_checksum_kind: PayloadChecksumKind,
    pub session_token_mode: SessionTokenMode,
    /// Lifetime of a query-signed request, seconds (1..=604800). Required
    /// for [`SignatureLocation::QueryParams`].
    pub expires_in: Option<u64>,
    /// Lower-case header names never signed.
    pub excluded_headers: &'static [&'static str],
}

impl Default for SigningSettings {
    fn default() -> Self {
        Self {
            signature_location: SignatureLocation::Headers,
            percent_encoding_mode: PercentEncodingMode::Double,
            uri_path_normalization: UriPathNormalization::Enabled,
            payload_checksum_kind: PayloadChecksumKind::NoHeader,
            session_token_mode: SessionTokenMode::Include,
            expires_in: None,
            excluded_headers: DEFAULT_EXCLUDED_HEADERS,
        }
    }
}

impl SigningSettings {
    /// S3 header signing: single encoding, no normalization,
    /// `x-amz-content-sha256` header.
    pub fn s3() -> Self {
        Self {
            percent_encoding_mode: PercentEncodingMode::Single,
            uri_path_normalization: UriPathNormalization::Disabled,
            payload_checksum_kind: PayloadChecksumKind::XAmzSha256,
            ..Self::default()
        }
    }

    /// S3 query signing (presigned URLs) valid for `expires_in` seconds.
    pub fn s3_presigned(expires_in: u64) -> Self {
        Self {
            signature_location: SignatureLocation::QueryParams,
            payload_checksum_kind: PayloadChecksumKind::NoHeader,
            expires_in: Some(expires_in),
            ..Self::s3()
        }
    }
}

/// Everything about *who* signs and *when*.
#[derive(Clone, Copy, Debug)]
pub struct SigningParams<'a> {
    pub credentials: &'a Credentials,
    pub region: &'a str,
    pub service: &'a str,
    pub time: AmzDate,
    pub settings: SigningSettings,
    /// A cached key; used only if its scope matches, else derived anew.
    pub signing_key: Option<&'a SigningKey>,
}

/// The request to sign.
#[derive(Clone, Copy, Debug)]
pub struct SignableRequest<'a> {
    /// HTTP method, as sent (`GET`).
    pub method: &'a str,
    /// Absolute `http`/`https` URL, as sent: the path and query already
    /// percent-encoded (raw spaces and non-ASCII are tolerated).
    pub url: &'a str,
    /// Headers that will be sent, in order. `Host` is derived from the URL
    /// when absent.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: PayloadHash<'a>,
}

// ---------------------------------------------------------------------------
// URL parsing

/// The parts of an absolute URL that signing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub scheme: &'static str,
    pub authority: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub path: &'a str,
    pub query: Option<&'a str>,
}

impl Url<'_> {
    /// The `Host` header value: the authority without a default port.
    pub fn host_header(&self) -> &str {
        match (self.scheme, self.port) {
            ("http", Some(80)) | ("https", Some(443)) => self.host,
            _ => self.authority,
        }
    }
}

pub(crate) fn parse_url(url: &str) -> Result<Url<'_>, SigningError> {
    if url.bytes().any(|b| b.is_ascii_control()) {
        return Err(SigningError::url("contains a control character"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(SigningError::url("must be absolute (scheme://host/path)"));
    };
    let scheme = match scheme {
        "https" | "HTTPS" => "https",
        "http" | "HTTP" => "http",
        other => {
            return Err(SigningError::url(format!(
                "scheme must be http or https, got {other:?}"
            )))
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    if authority.is_empty() {
        return Err(SigningError::url("has no host"));
    }
    if authority.contains('@') {
        return Err(SigningError::url("must not carry user info (user@host)"));
    }
    if !authority.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SigningError::url(format!(
            "host {authority:?} has spaces or non-ASCII characters"
        )));
    }
    let (host, port) = split_host_port(authority)?;
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    Ok(Url {
        scheme,
        authority,
        host,
        port,
        path,
        query,
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), SigningError> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => {
                let (host, after) = authority.split_at(i + 1);
                match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if after.is_empty() => (host, None),
                    None => return Err(SigningError::url(format!("bad IPv6 host {authority:?}"))),
                }
            }
            None => return Err(SigningError::url(format!("bad IPv6 host {authority:?}"))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(SigningError::url("has no host"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if p.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(SigningError::url(format!("bad port {p:?}"))),
        },
    };
    Ok((host, port))
}

// ---------------------------------------------------------------------------
// Canonical request

/// Stage 1: the canonical request. `Display` writes the exact bytes that are
/// hashed; `Debug` leaves out header values and the query (they may hold a
/// session token).
#[derive(Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    method: String,
    path: String,
    query: String,
    /// Signed headers, sorted, values trimmed and joined with `,`.
    headers: Vec<(String, String)>,
    signed_headers: String,
    payload_hash: String,
}

impl CanonicalRequest {
    pub fn method(&self) -> &str {
        &self.method
    }
    /// The canonical (encoded) path.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The canonical query string (sorted, `UriEncode`d).
    pub fn query(&self) -> &str {
        &self.query
    }
    /// The canonical headers, in signing order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }
    /// `host;x-amz-date;...`.
    pub fn signed_headers(&self) -> &str {
        &self.signed_headers
    }
    pub fn payload_hash(&self) -> &str {
        &self.payload_hash
    }
}

impl CanonicalRequest {
    /// The exact bytes that are hashed (what `Display` writes).
    pub(crate) fn text(&self) -> String {
        let mut len = self.method.len()
            + self.path.len()
            + self.query.len()
            + self.signed_headers.len()
            + self.payload_hash.len()
            + 5;
        for (name, value) in &self.headers {
            len += name.len() + value.len() + 2;
        }
        let mut out = String::with_capacity(len);
        for part in [&self.method, &self.path, &self.query] {
            out.push_str(part);
            out.push('\n');
        }
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push(':');
            out.push_str(value);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.signed_headers);
        out.push('\n');
        out.push_str(&self.payload_hash);
        out
    }
}

impl fmt::Display for CanonicalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl fmt::Debug for CanonicalRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanonicalRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("signed_headers", &self.signed_headers)
            .field("payload_hash", &self.payload_hash)
            .finish_non_exhaustive()
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_scope_part(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

/// Removes spaces around a value and folds runs of spaces into one (spaces
/// only, as S3 and `aws-sigv4` do).
pub(crate) fn trim_all(value: &str) -> Cow<'_, str> {
    let value = value.trim_matches(' ');
    if !value.contains("  ") {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut last_space = false;
    for c in value.chars() {
        if c == ' ' {
            if !last_space {
                out.push(c);
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    Cow::Owned(out)
}

/// RFC 3986 §5.2.4 dot-segment removal with empty segments dropped, as
/// `aws-sigv4` normalizes paths.
fn normalize_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let path: Cow<'_, str> = if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    if !(path.contains('.') || path.contains("//")) {
        return path;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    let ends_with_slash = ["/", "/.", "/./", "/..", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if ends_with_slash && !out.ends_with('/') {
        out.push('/');
    }
    Cow::Owned(out)
}

/// What signing adds: computed once, shared by the canonical request and
/// the instructions.
struct Prepared {
    creq: CanonicalRequest,
    date_time: String,
    credential: String,
    expires: Option<u64>,
}

/// The checks every signing starts with (method, scope parts, expiry):
/// the expiry for query signing, `None` for header signing.
pub(crate) fn check_params(method: &str, params: &SigningParams<'_>) -> Result<Option<u64>, SigningError> {
    let settings = &params.settings;
    if !is_token(method) {
        return Err(SigningError::new(SigningErrorKind::Method {
            method: method.to_owned(),
        }));
    }
    if !check_scope_part(params.region) {
        return Err(SigningError::new(SigningErrorKind::Region {
            region: params.region.to_owned(),
        }));
    }
    if !check_scope_part(params.service) {
        return Err(SigningError::new(SigningErrorKind::Service {
            service: params.service.to_owned(),
        }));
    }
    if !check_scope_part(params.credentials.access_key_id()) {
        return Err(SigningError::new(SigningErrorKind::AccessKeyId));
    }
    let query_mode = settings.signature_location == SignatureLocation::QueryParams;
    let expires = if query_mode {
        match settings.expires_in {
            None => return Err(SigningError::new(SigningErrorKind::MissingExpiry)),
            Some(secs) if secs == 0 || secs > MAX_EXPIRES_SECS => {
                return Err(SigningError::new(SigningErrorKind::Expiry { secs }))
            }
            Some(secs) => Some(secs),
        }
    } else {
        None
    };
    Ok(expires)
}

fn prepare(
    req: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<Prepared, SigningError> {
    let settings = &params.settings;
    let expires = check_params(req.method, params)?;
    let query_mode = expires.is_some();

    let url = parse_url(req.url)?;
    let payload_hash = req.payload.resolve()?.into_owned();
    let date_time_bytes = params.time.date_time_bytes();
    let date_time = ascii(&date_time_bytes).to_owned();
    let credential = {
        let id = params.credentials.access_key_id();
        let mut c =
            String::with_capacity(id.len() + params.region.len() + params.service.len() + 24);
        c.push_str(id);
        c.push('/');
        c.push_str(ascii(&date_time_bytes[..8]));
        c.push('/');
        c.push_str(params.region);
        c.push('/');
        c.push_str(params.service);
        c.push_str("/aws4_request");
        c
    };
    let token = params.credentials.session_token();
    let token_signed = settings.session_token_mode == SessionTokenMode::Include;

    // Path.
    let path = match settings.uri_path_normalization {
        UriPathNormalization::Enabled => normalize_path(url.path),
        UriPathNormalization::Disabled if url.path.is_empty() => Cow::Borrowed("/"),
        UriPathNormalization::Disabled => Cow::Borrowed(url.path),
    };
    let path = match settings.percent_encoding_mode {
        PercentEncodingMode::Double => uri_encode_path(&path),
        PercentEncodingMode::Single => {
            percent_encoding::utf8_percent_encode(&path, NOT_IN_URI_PATH).to_string()
        }
    };

    // Headers: lower-cased names, trimmed values, in order of appearance.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(req.headers.len() + 4);
    for (name, value) in req.headers {
        if !is_token(name) {
            return Err(SigningError::new(SigningErrorKind::HeaderName {
                name: (*name).to_owned(),
            }));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SigningError::new(SigningErrorKind::HeaderValue {
                name: (*name).to_owned(),
            }));
        }
        headers.push((name.to_ascii_lowercase(), trim_all(value).into_owned()));
    }
    if !headers.iter().any(|(name, _)| name == "host") {
        headers.push(("host".to_owned(), url.host_header().to_owned()));
    }
    let mut replace = |name: &str, value: &str| {
        headers.retain(|(n, _)| n != name);
        headers.push((name.to_owned(), value.to_owned()));
    };
    if !query_mode {
        replace("x-amz-date", &date_time);
        if let Some(token) = token {
            replace("x-amz-security-token", token);
        }
        if settings.payload_checksum_kind == PayloadChecksumKind::XAmzSha256 {
            replace("x-amz-content-sha256", &payload_hash);
        }
    }
    // Stable sort keeps repeated headers in order; then join their values.
    crate::sort::sort_by(&mut headers, |a, b| a.0.cmp(&b.0));
    let mut canonical_headers: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let excluded = settings.excluded_headers.contains(&name.as_str())
            || (!token_signed && name == "x-amz-security-token")
            || (query_mode && (name == "x-amz-user-agent" || name == "x-amz-checksum-mode"));
        if excluded {
            continue;
        }
        match canonical_headers.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => canonical_headers.push((name, value)),
        }
    }
    let signed_headers = canonical_headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");

    // Query: decoded, signing parameters added, re-encoded, sorted.
    let decoded = url.query.map(parse_query).unwrap_or_default();
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(decoded.len() + 6);
    pairs.extend(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let expires_text;
    if let Some(expires) = expires {
        expires_text = expires.to_string();
        pairs.push(("X-Amz-Date", &date_time));
        pairs.push(("X-Amz-Expires", &expires_text));
        pairs.push(("X-Amz-Algorithm", ALGORITHM));
        pairs.push(("X-Amz-Credential", &credential));
        pairs.push(("X-Amz-SignedHeaders", &signed_headers));
        if let (Some(token), true) = (token, token_signed) {
            pairs.push(("X-Amz-Security-Token", token));
        }
    }
    let query = canonical_query_of(&pairs);

    Ok(Prepared {
        creq: CanonicalRequest {
            method: req.method.to_owned(),
            path,
            query,
            headers: canonical_headers,
            signed_headers,
            payload_hash,
        },
        date_time,
        credential,
        expires,
    })
}

/// `UriEncode`s every name and value, sorts by encoded name then value and
/// joins with `&`.
pub(crate) fn canonical_query(pairs: &[(String, String)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    canonical_query_of(&pairs)
}

/// [`canonical_query`] on borrowed pairs: every name and value is encoded
/// once into one buffer, and the pairs are sorted as ranges of it.
pub(crate) fn canonical_query_of(pairs: &[(&str, &str)]) -> String {
    use std::ops::Range;
    let mut buf = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    let mut ranges: Vec<(Range<usize>, Range<usize>)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let k_start = buf.len();
        push_uri_encoded(&mut buf, k, false);
        let v_start = buf.len();
        push_uri_encoded(&mut buf, v, false);
        ranges.push((k_start..v_start, v_start..buf.len()));
    }
    let b = buf.as_bytes();
    crate::sort::sort_by(&mut ranges, |x, y| {
        b[x.0.clone()]
            .cmp(&b[y.0.clone()])
            .then_with(|| b[x.1.clone()].cmp(&b[y.1.clone()]))
    });
    let mut out = String::with_capacity(buf.len() + 2 * ranges.len());
    for (i, (k, v)) in ranges.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&buf[k]);
        out.push('=');
        out.push_str(&buf[v]);
    }
    out
}

/// Stage 1: the canonical request for `req`.
pub fn canonical_request(
    req: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<CanonicalRequest, SigningError> {
    prepare(req, params).map(|p| p.creq)
}

/// Stage 2: the string to sign for a canonical request.
pub fn string_to_sign(
    canonical_request: &str,
    time: &AmzDate,
    region: &str,
    service: &str,
) -> String {
    let dt = time.date_time_bytes();
    let mut out = String::with_capacity(ALGORITHM.len() + region.len() + service.len() + 110);
    out.push_str(ALGORITHM);
    out.push('\n');
    out.push_str(ascii(&dt));
    out.push('\n');
    out.push_str(ascii(&dt[..8]));
    out.push('/');
    out.push_str(region);
    out.push('/');
    out.push_str(service);
    out.push_str("/aws4_request\n");
    push_hex32(&mut out, &sha256(canonical_request.as_bytes()));
    out
}

/// Stage 3: the hex signature of a string to sign.
pub fn calculate_signature(key: &SigningKey, string_to_sign: &str) -> String {
    ascii(&hex32(&hmac_with(&key.mac, &[string_to_sign.as_bytes()]))).to_owned()
}

// ---------------------------------------------------------------------------
// Output

/// Name/value pairs with static names: headers or query parameters to add.
pub type NameValues = Vec<(&'static str, String)>;

/// What to add to the request: headers (header signing) or query parameters
/// (query signing). `Debug` redacts the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningInstructions {
    headers: Vec<(&'static str, String)>,
    params: Vec<(&'static str, String)>,
}

impl SigningInstructions {
    /// Headers to set (replacing any of the same name), lower-case names.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }
    /// Query parameters to append (unencoded values).
    pub fn params(&self) -> &[(&'static str, String)] {
        &self.params
    }
    /// `(headers, query params)`.
    pub fn into_parts(self) -> (NameValues, NameValues) {
        (self.headers, self.params)
    }
}

fn redact_list<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("x-amz-security-token") {
                (*k, REDACTED)
            } else {
                (*k, v.as_str())
            }
        })
        .collect()
}

impl fmt::Debug for SigningInstructions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningInstructions")
            .field("headers", &redact_list(&self.headers))
            .field("params", &redact_list(&self.params))
            .finish()
    }
}

/// Every stage of one signing.
#[derive(Clone)]
pub struct SigningOutput {
    pub canonical_request: CanonicalRequest,
    pub string_to_sign: String,
    pub signature: String,
    pub instructions: SigningInstructions,
}

impl fmt::Debug for SigningOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningOutput")
            .field("canonical_request", &self.canonical_request)
            .field("signature", &self.signature)
            .field("instructions", &self.instructions)
            .finish_non_exhaustive()
    }
}

/// Stages 1–4: signs `req` and says what to add to it.
///
/// Header signing adds `x-amz-date`, `authorization`, then
/// `x-amz-content-sha256` (if asked for) and `x-amz-security-token` (if the
/// credentials have one). Query signing adds `X-Amz-Algorithm`,
/// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`,
/// `X-Amz-Signature` and `X-Amz-Security-Token` (if any).
pub fn sign(
    req: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<SigningOutput, SigningError> {
    sign_with_text(req, params).map(|(out, _)| out)
}

/// [`sign`], plus the canonical request's text (what it hashed).
pub(crate) fn sign_with_text(
    req: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<(SigningOutput, String), SigningError> {
    let prepared = prepare(req, params)?;
    let creq_text = prepared.creq.text();
    let sts = string_to_sign(&creq_text, &params.time, params.region, params.service);
    let derived;
    let key = match params.signing_key {
        Some(key) if key.matches(&params.time, params.region, params.service) => key,
        _ => {
            derived = SigningKey::derive(
                params.credentials,
                &params.time,
                params.region,
                params.service,
            );
            &derived
        }
    };
    let signature = calculate_signature(key, &sts);
    let token = params.credentials.session_token();
    let mut headers = Vec::new();
    let mut query = Vec::new();
    match prepared.expires {
        None => {
            headers.push(("x-amz-date", prepared.date_time));
            headers.push((
                "authorization",
                format!(
                    "{ALGORITHM} Credential={}, SignedHeaders={}, Signature={signature}",
                    prepared.credential,
                    prepared.creq.signed_headers()
                ),
            ));
            if params.settings.payload_checksum_kind == PayloadChecksumKind::XAmzSha256 {
                headers.push((
                    "x-amz-content-sha256",
                    prepared.creq.payload_hash().to_owned(),
                ));
            }
            if let Some(token) = token {
                headers.push(("x-amz-security-token", token.to_owned()));
            }
        }
        Some(expires) => {
            query.push(("X-Amz-Algorithm", ALGORITHM.to_owned()));
            query.push(("X-Amz-Credential", prepared.credential));
            query.push(("X-Amz-Date", prepared.date_time));
            query.push(("X-Amz-Expires", expires.to_string()));
            query.push((
                "X-Amz-SignedHeaders",
                prepared.creq.signed_headers().to_owned(),
            ));
            query.push(("X-Amz-Signature", signature.clone()));
            if let Some(token) = token {
                query.push(("X-Amz-Security-Token", token.to_owned()));
            }
        }
    }
    Ok((
        SigningOutput {
            canonical_request: prepared.creq,
            string_to_sign: sts,
            signature,
            instructions: SigningInstructions {
                headers,
                params: query,
            },
        },
        creq_text,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn amz_date_formats_and_parses() {
        let t = AmzDate::from_unix_secs(1_369_353_600).unwrap();
        assert_eq!(t.date_time(), "20130524T000000Z");
        assert_eq!(t.date_stamp(), "20130524");
        assert_eq!(AmzDate::parse("20130524T000000Z").unwrap(), t);
        let leap = AmzDate::from_unix_secs(1_709_251_199).unwrap();
        assert_eq!(leap.date_time(), "20240229T235959Z");
        assert_eq!(AmzDate::parse("20240229T235959Z").unwrap(), leap);
        assert_eq!(
            AmzDate::from_unix_secs(0).unwrap().date_time(),
            "19700101T000000Z"
        );
        assert_eq!(
            AmzDate::from_unix_secs(MAX_UNIX_SECS).unwrap().date_time(),
            "99991231T235959Z"
        );
        assert!(AmzDate::from_unix_secs(MAX_UNIX_SECS + 1).is_err());
        for bad in [
            "",
            "20130524T000000",
            "20130230T000000Z",
            "2013052AT000000Z",
            "20130524T240000Z",
            "+0130524T000000Z",
            "20130524X000000Z",
        ] {
            assert!(AmzDate::parse(bad).is_err(), "{bad}");
        }
        // Every day for 200 years round-trips.
        let mut secs = 0u64;
        while secs < 6_311_433_600 {
            let t = AmzDate::from_unix_secs(secs + 45_296).unwrap();
            assert_eq!(
                AmzDate::parse(&t.date_time()).unwrap().unix_secs(),
                secs + 45_296
            );
            secs += 86_400;
        }
    }

    #[test]
    fn credentials_debug_redacts_secret_and_token() {
        let c = Credentials::new("AKID", "SECRETSECRET", Some("TOKENTOKEN".into()));
        let dbg = format!("{c:?}");
        assert!(dbg.contains("AKID"));
        assert!(
            !dbg.contains("SECRETSECRET") && !dbg.contains("TOKENTOKEN"),
            "{dbg}"
        );
        let key = SigningKey::derive(&c, &AmzDate::from_unix_secs(0).unwrap(), "r", "s");
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    #[test]
    fn url_parsing() {
        let u = parse_url("https://h.example:443/a%20b?x=1#frag").unwrap();
        assert_eq!(
            (u.host, u.port, u.path, u.query),
            ("h.example", Some(443), "/a%20b", Some("x=1"))
        );
        assert_eq!(u.host_header(), "h.example");
        let u = parse_url("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (u.host_header(), u.path, u.query),
            ("127.0.0.1:9000", "", None)
        );
        let u = parse_url("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host, u.port), ("[::1]", Some(8080)));
        for bad in [
            "/relative",
            "ftp://h/",
            "https:///x",
            "https://u@h/",
            "https://h:99999/",
            "https://h:/",
            "https://h/\r\nx",
            "https://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_never_contain_secrets_and_name_the_input() {
        let c = Credentials::new("AKID", "SECRETSECRET", Some("TOKENTOKEN".into()));
        let params = SigningParams {
            credentials: &c,
            region: "us east",
            service: "s3",
            time: AmzDate::from_unix_secs(0).unwrap(),
            settings: SigningSettings::s3(),
            signing_key: None,
        };
        let req = SignableRequest {
            method: "GET",
            url: "https://h/",
            headers: &[],
            payload: PayloadHash::EmptyBody,
        };
        let e = sign(&req, &params).unwrap_err().to_string();
        assert!(e.contains("\"us east\""), "{e}");
        let params = SigningParams {
            region: "us-east-1",
            ..params
        };
        let headers = [("x-secret", "SECRETSECRET\nmore")];
        let e = sign(
            &SignableRequest {
                headers: &headers,
                ..req
            },
            &params,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x-secret") && !e.contains("SECRETSECRET"), "{e}");
        let e = sign(
            &SignableRequest {
                method: "GE T",
                ..req
            },
            &params,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("GE T"), "{e}");
        let q = SigningParams {
            settings: SigningSettings::s3_presigned(604_801),
            ..params
        };
        let e = sign(&req, &q).unwrap_err().to_string();
        assert!(e.contains("604801"), "{e}");
        let q = SigningParams {
            settings: SigningSettings {
                expires_in: None,
                ..SigningSettings::s3_presigned(1)
            },
            ..params
        };
        assert!(sign(&req, &q).is_err());
    }

    #[test]
    fn cached_key_is_used_only_for_its_scope() {
        let c = Credentials::new("AKID", "SECRET", None);
        let t = AmzDate::from_unix_secs(1_369_353_600).unwrap();
        let other_day = AmzDate::from_unix_secs(1_369_353_600 + 86_400).unwrap();
        let stale = SigningKey::derive(&c, &other_day, "us-east-1", "s3");
        assert!(!stale.matches(&t, "us-east-1", "s3"));
        let req = SignableRequest {
            method: "GET",
            url: "https://h/k",
            headers: &[],
            payload: PayloadHash::EmptyBody,
        };
        let params = SigningParams {
            credentials: &c,
            region: "us-east-1",
            service: "s3",
            time: t,
            settings: SigningSettings::s3(),
            signing_key: None,
        };
        let fresh = sign(&req, &params).unwrap();
        let with_stale = sign(
            &req,
            &SigningParams {
                signing_key: Some(&stale),
                ..params
            },
        )
        .unwrap();
        assert_eq!(fresh.signature, with_stale.signature);
        let good = SigningKey::derive(&c, &t, "us-east-1", "s3");
        let with_good = sign(
            &req,
            &SigningParams {
                signing_key: Some(&good),
                ..params
            },
        )
        .unwrap();
        assert_eq!(fresh.signature, with_good.signature);
    }

    #[test]
    fn normalization_matches_rfc3986() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("a", "/a"),
            ("/a/./b/../c", "/a/c"),
            ("/../..", "/"),
            ("//a//b//", "/a/b/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/.hidden", "/.hidden"),
        ] {
            assert_eq!(normalize_path(input), want, "{input}");
        }
    }
}
