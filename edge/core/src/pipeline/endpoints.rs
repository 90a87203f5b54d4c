//! Edge-answered endpoints that need no origin: the presign endpoint and
//! the signed-link gate in front of `signed_links` routes.
//!
//! The presign endpoint (`POST /_offload/presign`) mints S3 presigned URLs
//! for the application, authorized by a token the application issued with
//! a `[links]` key: a signed-link token whose scope is
//! `/_presign/<bucket alias>/<key or key prefix>` (see
//! [`presign_scope`]). So only the app decides who may upload where, and
//! the web tier never sees the bytes or the request.

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::Edge;
use crate::proxy::canonical::CanonicalRequest;
use crate::proxy::Viewer;
use crate::sign::link::{token_from_query, verify, TOKEN_PARAM};
use crate::sign::{
    presign, AddressingStyle, PresignMethod, PresignRequest, ResponseOverrides, S3Bucket,
};

/// Largest presign request body the endpoint reads.
pub const PRESIGN_MAX_BODY: usize = 16 * 1024;

/// The scope path an application token must cover to presign `key` in
/// bucket `alias`: `/_presign/<alias>/<key>`. Issue a token with scope
/// `/_presign/uploads/user-42/` to allow every key under `user-42/`.
pub fn presign_scope(alias: &str, key: &str) -> String {
    format!("/_presign/{alias}/{key}")
}

/// The JSON body of a presign request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresignBody {
    bucket: String,
    key: String,
    method: String,
    expires: u64,
    content_type: Option<String>,
    content_length: Option<u64>,
    response_content_disposition: Option<String>,
    response_content_type: Option<String>,
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut resp = Response::new(value.to_string().into_bytes());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn error(status: StatusCode, field: &str, message: &str) -> Response<Vec<u8>> {
    json(status, &serde_json::json!({ "error": message, "field": field, "status": status.as_u16() }))
}

impl Edge {
    /// The presign endpoint's path, if `[presign]` is configured. The
    /// adapter reads at most [`PRESIGN_MAX_BODY`] bytes of body for it and
    /// calls [`Edge::presign_endpoint`].
    pub fn presign_path(&self) -> Option<&str> {
        self.config().presign().map(|p| p.path.as_str())
    }

    /// Whether this (canonical) request is for the presign endpoint.
    pub fn is_presign(&self, req: &CanonicalRequest) -> bool {
        self.presign_path() == Some(req.path())
    }

    /// Answer a presign request. Bad input gets a 4xx JSON error naming
    /// the field; nothing here panics or echoes a secret.
    pub fn presign_endpoint(
        &self,
        req: &CanonicalRequest,
        body: &[u8],
        viewer: &Viewer,
        now_secs: u64,
    ) -> Response<Vec<u8>> {
        let (Some(settings), Some(keys)) = (self.config().presign(), self.config().links()) else {
            return error(StatusCode::NOT_FOUND, "", "presign endpoint is not configured");
        };
        if req.method() != Method::POST {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method", "use POST");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        if body.len() > PRESIGN_MAX_BODY {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body", "presign request body is too large");
        }
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            return error(StatusCode::UNAUTHORIZED, "authorization", "missing `Authorization: Bearer <app token>`");
        };
        let parsed: PresignBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, "body", &format!("invalid presign request: {e}")),
        };
        let method = match parsed.method.to_ascii_uppercase().as_str() {
            "GET" => PresignMethod::Get,
            "HEAD" => PresignMethod::Head,
            "PUT" => PresignMethod::Put,
            _ => return error(StatusCode::BAD_REQUEST, "method", "must be GET, HEAD or PUT"),
        };
        if !settings.buckets.iter().any(|b| b == &parsed.bucket) {
            return error(StatusCode::BAD_REQUEST, "bucket", "not a bucket this endpoint presigns for");
        }
        if parsed.key.is_empty() || parsed.key.len() > 1024 {
            return error(StatusCode::BAD_REQUEST, "key", "must be 1..=1024 bytes");
        }
        if parsed.expires == 0 || parsed.expires > settings.max_expires {
            return error(
                StatusCode::BAD_REQUEST,
                "expires",
                &format!("must be 1..={} seconds", settings.max_expires),
            );
        }
        // The key goes into the scope check percent-encoded, so that `..`,
        // `%2f` or a `?` in a key cannot escape the token's prefix.
        let encoded_key: String =
            percent_encoding::utf8_percent_encode(&parsed.key, KEY_SCOPE_ENCODE).collect();
        let scope_path = presign_scope(&parsed.bucket, &encoded_key);
        if let Err(e) = verify(keys, &scope_path, viewer.ip, token, now_secs) {
            return error(StatusCode::FORBIDDEN, "authorization", &format!("app token refused: {e}"));
        }
        let Some(bucket) = self.config().bucket(&parsed.bucket) else {
            return error(StatusCode::BAD_REQUEST, "bucket", "unknown bucket");
        };
        let Some(credentials) = self.bucket_credentials.get(bucket.alias()) else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "bucket", "no credentials configured for this bucket");
        };
        let style = match bucket.style() {
            crate::config::BucketStyle::Path => AddressingStyle::Path,
            crate::config::BucketStyle::Virtual => AddressingStyle::VirtualHosted,
        };
        let s3 = match S3Bucket::new(&bucket.endpoint(), bucket.bucket(), bucket.region(), style) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "bucket", &e.to_string()),
        };
        let request = PresignRequest {
            method,
            key: &parsed.key,
            expires_in: parsed.expires,
            content_type: parsed.content_type.as_deref(),
            content_length: parsed.content_length,
            response: ResponseOverrides {
                content_disposition: parsed.response_content_disposition.as_deref(),
                content_type: parsed.response_content_type.as_deref(),
                ..ResponseOverrides::default()
            },
            ..PresignRequest::get(&parsed.key, parsed.expires)
        };
        match presign(&s3, credentials, &request, now_secs, None) {
            Ok(url) => {
                let headers: serde_json::Map<String, serde_json::Value> = url
                    .headers()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
                    .collect();
                json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "url": url.as_str(),
                        "method": method.as_str(),
                        "expires_at": url.expires_at(),
                        "headers": headers,
                    }),
                )
            }
            Err(e) => error(StatusCode::BAD_REQUEST, if e.is_expiry() { "expires" } else { "key" }, &e.to_string()),
        }
    }

    /// For a `signed_links` route: check the request's token and return
    /// the request without it (so it reaches neither the origin nor the
    /// cache key); `Err` is the 403 to send.
    pub(super) fn check_signed_link(
        &self,
        req: &CanonicalRequest,
        viewer: &Viewer,
        now_secs: u64,
    ) -> Result<Option<CanonicalRequest>, Box<Response<Vec<u8>>>> {
        let path = req.path();
        if !self.config().route_for(path).is_some_and(|r| r.signed_links()) {
            return Ok(None);
        }
        let Some(keys) = self.config().links() else {
            return Err(Box::new(error(StatusCode::FORBIDDEN, "token", "signed links are not configured")));
        };
        let query = req.query().unwrap_or("");
        let Some(token) = token_from_query(query) else {
            return Err(Box::new(error(StatusCode::FORBIDDEN, "token", "this path needs a signed link")));
        };
        if let Err(e) = verify(keys, path, viewer.ip, token, now_secs) {
            return Err(Box::new(error(StatusCode::FORBIDDEN, "token", &format!("signed link refused: {e}"))));
        }
        Ok(Some(req.without_query_param(TOKEN_PARAM)))
    }
}

/// Percent-encode everything but unreserved characters and `/`, so that
/// a key's scope check is exact and `..`/`?`/`%` cannot be smuggled in.
const KEY_SCOPE_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use http::Request;
    use crate::sign::link::issue;
    use crate::sign::{Claims, LinkKey, Scope};
    use crate::{Config, EdgeState, Plan, Step};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-link";
    const NOW: u64 = 1_700_000_000;

    fn edge() -> Edge {
        Edge::new(
            Config::from_toml(&format!(
                r#"
[regions.a]
location = {{ lat = 1.0, lon = 1.0 }}
origins = [{{ url = "http://127.0.0.1:9" }}]

[links]
current = "k1"
keys = [{{ id = "k1", secret = "{SECRET}" }}]

[presign]
buckets = ["up"]
max_expires = 600

[buckets.up]
endpoint = "http://127.0.0.1:18703"
bucket = "uploads"
region = "us-east-1"
signed = true
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

[[routes]]
path = "/private/*"
signed_links = true

[[routes]]
path = "/*"
"#
            ))
            .unwrap(),
        )
    }

    fn key() -> LinkKey {
        LinkKey::new("k1", SECRET.as_bytes().to_vec()).unwrap()
    }

    fn token(scope: &str, expires_at: u64) -> String {
        issue(&key(), &Claims { expires_at, scope: Scope::parse(scope).unwrap(), client_ip: None }).unwrap()
    }

    fn call(edge: &Edge, auth: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let mut b = Request::post("http://edge.test/_offload/presign");
        if let Some(t) = auth {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = CanonicalRequest::new(&b.body(()).unwrap()).unwrap();
        let resp = edge.presign_endpoint(&req, body.as_bytes(), &Viewer::default(), NOW);
        (resp.status().as_u16(), serde_json::from_slice(resp.body()).unwrap())
    }

    #[test]
    fn presign_put_within_the_app_token_scope() {
        let e = edge();
        assert_eq!(e.presign_path(), Some("/_offload/presign"));
        let t = token("/_presign/up/user-42/", NOW + 60);
        let (status, json) =
            call(&e, Some(&t), r#"{"bucket":"up","key":"user-42/photo 1.jpg","method":"PUT","expires":300}"#);
        assert_eq!(status, 200, "{json}");
        let url = json["url"].as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:18703/uploads/user-42/photo%201.jpg?"), "{url}");
        assert!(url.contains("X-Amz-Expires=300") && url.contains("X-Amz-Signature="), "{url}");
        assert_eq!(json["method"], "PUT");
        assert_eq!(json["expires_at"], NOW + 300);
        assert!(!json.to_string().contains("wJalrXUtnFEMI"), "secret leaked");
    }

    #[test]
    fn presign_refusals_name_the_field() {
        let e = edge();
        let t = token("/_presign/up/user-42/", NOW + 60);
        let cases: &[(Option<&str>, &str, u16, &str)] = &[
            (None, r#"{"bucket":"up","key":"user-42/a","method":"GET","expires":60}"#, 401, "authorization"),
            (Some(&t), r#"{"bucket":"up","key":"user-43/a","method":"GET","expires":60}"#, 403, "authorization"),
            (Some(&t), r#"{"bucket":"up","key":"user-42/../user-43/a","method":"GET","expires":60}"#, 403, "authorization"),
            (Some(&t), r#"{"bucket":"up","key":"user-42/a","method":"DELETE","expires":60}"#, 400, "method"),
            (Some(&t), r#"{"bucket":"up","key":"user-42/a","method":"GET","expires":601}"#, 400, "expires"),
            (Some(&t), r#"{"bucket":"nope","key":"user-42/a","method":"GET","expires":60}"#, 400, "bucket"),
            (Some(&t), r#"{"bucket":"up","key":"user-42/a","method":"GET"}"#, 400, "body"),
            (Some(&t), r#"{"bucket":"up","key":"user-42/a","method":"GET","expires":60,"acl":"public"}"#, 400, "body"),
            (Some(&t), "not json", 400, "body"),
            (Some("garbage"), r#"{"bucket":"up","key":"user-42/a","method":"GET","expires":60}"#, 403, "authorization"),
        ];
        for (auth, body, status, field) in cases {
            let (got, json) = call(&e, *auth, body);
            assert_eq!((got, json["field"].as_str().unwrap()), (*status, *field), "{body}: {json}");
        }
        let expired = token("/_presign/up/user-42/", NOW);
        let (got, json) = call(&e, Some(&expired), r#"{"bucket":"up","key":"user-42/a","method":"GET","expires":60}"#);
        assert_eq!(got, 403);
        assert!(json["error"].as_str().unwrap().contains("expired"), "{json}");
    }

    #[test]
    fn signed_link_routes_need_a_valid_token_which_is_not_forwarded() {
        let e = edge();
        let mut state = EdgeState::new(e.config());
        let plan = |uri: &str, state: &mut EdgeState| {
            e.plan_upstream(&Request::get(uri).body(()).unwrap(), &Viewer::default(), state, NOW * 1000, 0)
        };
        let Plan::Respond(r) = plan("http://x.test/private/report.pdf", &mut state) else { panic!() };
        assert_eq!(r.status(), 403);
        let good = token("/private/report.pdf", NOW + 60);
        let Plan::Forward(f) = plan(&format!("http://x.test/private/report.pdf?a=1&token={good}"), &mut state) else {
            panic!("valid token refused")
        };
        let Step::Send { request, .. } = &f.step else { panic!() };
        assert_eq!(request.uri(), "http://127.0.0.1:9/private/report.pdf?a=1");
        let other = token("/private/other.pdf", NOW + 60);
        let Plan::Respond(r) = plan(&format!("http://x.test/private/report.pdf?token={other}"), &mut state) else {
            panic!()
        };
        assert_eq!(r.status(), 403);
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        let Plan::Respond(r) = plan(&format!("http://x.test/private/report.pdf?token={tampered}"), &mut state) else {
            panic!()
        };
        assert_eq!(r.status(), 403);
        // Other routes ignore tokens entirely.
        let Plan::Forward(_) = plan("http://x.test/public/a", &mut state) else { panic!() };
    }

    #[test]
    fn presign_and_links_config_errors() {
        let bad = Config::from_toml("[presign]\nbuckets = [\"x\"]\n").unwrap_err().to_string();
        assert!(bad.contains("presign") && bad.contains("[links]"), "{bad}");
        let bad = Config::from_toml(&format!(
            "[links]\ncurrent = \"k1\"\nkeys = [{{ id = \"k1\", secret = \"short\" }}]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(bad.contains("links.keys[0]") && !bad.contains("short\""), "{bad}");
    }
}
