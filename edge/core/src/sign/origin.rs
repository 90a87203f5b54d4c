//! Header auth for edge → private bucket requests, as CloudFront origin
//! access control does it: the edge signs its own origin request with SigV4
//! (service `s3`) and adds `Authorization`, `X-Amz-Date`,
//! `X-Amz-Content-Sha256` and, for temporary credentials,
//! `X-Amz-Security-Token`.
//!
//! The URL's path and query are first brought to their canonical encoding
//! (each path byte `UriEncode`d except `/`; query decoded and re-encoded,
//! sorted) and the request must be sent to the returned
//! [`OriginSigned::url`], so what is sent is exactly what was signed: a
//! viewer's `/a b.txt`, `/a%20b.txt` and `/a%20b%2Etxt` all reach the key
//! `a b.txt` with a valid signature.

use super::encode::{parse_query, uri_encode_path_bytes};
use super::sigv4::{
    self, canonical_query, parse_url, AmzDate, Credentials, PayloadHash, SignableRequest,
    SigningError, SigningKey, SigningParams, SigningSettings,
};

/// What to put in `x-amz-content-sha256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginPayload {
    /// `UNSIGNED-PAYLOAD` (any method; the body is not covered).
    Unsigned,
    /// The hash of an empty body (GET, HEAD, DELETE without a body).
    EmptyBody,
}

/// The origin request to sign.
#[derive(Clone, Copy, Debug)]
pub struct OriginRequest<'a> {
    pub method: &'a str,
    /// Absolute URL of the object at the bucket endpoint.
    pub url: &'a str,
    /// Headers that will be sent and must be signed (`range`,
    /// `if-none-match`, ...). Give only headers nothing on the way changes;
    /// `host` comes from the URL.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: OriginPayload,
}

/// Where to send the request and which headers to add.
#[derive(Clone, PartialEq, Eq)]
pub struct OriginSigned {
    /// The URL to request, in canonical encoding.
    pub url: String,
    /// Headers to set: `x-amz-date`, `authorization`, `x-amz-content-sha256`,
    /// then `x-amz-security-token` if the credentials have one (redacted in
    /// `Debug`).
    pub headers: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for OriginSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                if *k == "x-amz-security-token" {
                    (*k, "** redacted **")
                } else {
                    (*k, v.as_str())
                }
            })
            .collect();
        f.debug_struct("OriginSigned")
            .field("url", &self.url)
            .field("headers", &headers)
            .finish()
    }
}

/// Signs an edge → bucket request at `now` (unix seconds).
pub fn sign_origin_request(
    req: &OriginRequest<'_>,
    credentials: &Credentials,
    region: &str,
    now: u64,
    signing_key: Option<&SigningKey>,
) -> Result<OriginSigned, SigningError> {
    let url = parse_url(req.url)?;
    let raw_path = if url.path.is_empty() { "/" } else { url.path };
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw_path).collect();
    let path = uri_encode_path_bytes(&bytes);
    let query = url
        .query
        .map(|q| canonical_query(&parse_query(q)))
        .unwrap_or_default();
    let mut canonical_url = format!("{}://{}{}", url.scheme, url.authority, path);
    if !query.is_empty() {
        canonical_url.push('?');
        canonical_url.push_str(&query);
    }
    let out = sigv4::sign(
        &SignableRequest {
            method: req.method,
            url: &canonical_url,
            headers: req.headers,
            payload: match req.payload {
                OriginPayload::Unsigned => PayloadHash::UnsignedPayload,
                OriginPayload::EmptyBody => PayloadHash::EmptyBody,
            },
        },
        &SigningParams {
            credentials,
            region,
            service: "s3",
            time: AmzDate::from_unix_secs(now)?,
            settings: SigningSettings::s3(),
            signing_key,
        },
    )?;
    let (headers, _) = out.instructions.into_parts();
    Ok(OriginSigned {
        url: canonical_url,
        headers,
    })
}
