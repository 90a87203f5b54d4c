//! Edge-answered endpoints that need no origin: the presign endpoint and
//! the signed-link gate in front of `signed_links` routes.
//!
//! The presign endpoint (`POST /_offload/presign`) mints S3 presigned URLs
//! for the application, authorized by a *presign grant* the application
//! issued with a `[links]` key (audience `presign`, see
//! [`crate::sign::link`]): a bucket, a key or key prefix, the methods, and
//! for uploads a maximum size and the allowed content types. So only the
//! app decides who may upload what where, and the web tier never sees the
//! bytes or the request. A download link (audience `link`) is never a
//! grant, whatever its scope.

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::Edge;
use crate::proxy::canonical::CanonicalRequest;
use crate::proxy::Viewer;
use crate::sign::link::{key_is_plain, token_from_query, verify_grant, verify_link, TOKEN_PARAM};
use crate::sign::{
    presign, AddressingStyle, GrantRequest, PresignMethod, PresignRequest, ResponseOverrides, S3Bucket,
};

/// Largest presign request body the endpoint reads.
pub const PRESIGN_MAX_BODY: usize = 16 * 1024;

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

fn bearer(req: &CanonicalRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The 413 for a presign body past [`PRESIGN_MAX_BODY`].
pub fn presign_too_large() -> Response<Vec<u8>> {
    error(StatusCode::PAYLOAD_TOO_LARGE, "body", &format!("presign request body: more than {PRESIGN_MAX_BODY} bytes"))
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

    /// What the presign endpoint answers from the request head alone,
    /// before a byte of body is read (404 unconfigured, 405, 401 without a
    /// bearer token, 413 for a declared `Content-Length` over
    /// [`PRESIGN_MAX_BODY`]). `None`: read at most `PRESIGN_MAX_BODY + 1`
    /// bytes and call [`Edge::presign_endpoint`] (the token's scope names
    /// the key in the body, so it is verified there).
    pub fn presign_precheck(&self, req: &CanonicalRequest) -> Option<Response<Vec<u8>>> {
        if self.config().presign().is_none() || self.keys().links().is_none() {
            return Some(error(StatusCode::NOT_FOUND, "", "presign endpoint is not configured"));
        }
        if req.method() != Method::POST {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method", "use POST");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Some(r);
        }
        if bearer(req).is_none() {
            return Some(error(StatusCode::UNAUTHORIZED, "authorization", "missing `Authorization: Bearer <app token>`"));
        }
        if crate::proxy::body::declared_length(req.headers()).is_some_and(|n| n > PRESIGN_MAX_BODY as u64) {
            return Some(presign_too_large());
        }
        None
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
        if let Some(refused) = self.presign_precheck(req) {
            return refused;
        }
        let (Some(settings), Some(keys)) = (self.config().presign(), self.keys().links()) else {
            return error(StatusCode::NOT_FOUND, "", "presign endpoint is not configured");
        };
        if body.len() > PRESIGN_MAX_BODY {
            return presign_too_large();
        }
        let Some(token) = bearer(req) else {
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
        if !key_is_plain(&parsed.key) {
            return error(
                StatusCode::BAD_REQUEST,
                "key",
                "must be 1..=1024 bytes without control characters or '.'/'..' segments",
            );
        }
        if parsed.expires == 0 || parsed.expires > settings.max_expires {
            return error(
                StatusCode::BAD_REQUEST,
                "expires",
                &format!("must be 1..={} seconds", settings.max_expires),
            );
        }
        if method == PresignMethod::Put {
            // Both are signed into the URL, so the bucket refuses an upload
            // of another size or type than the grant allowed.
            if parsed.content_length.is_none() {
                return error(StatusCode::BAD_REQUEST, "content_length", "a PUT needs content_length (bytes)");
            }
            if parsed.content_type.is_none() {
                return error(StatusCode::BAD_REQUEST, "content_type", "a PUT needs content_type");
            }
        }
        let grant = GrantRequest {
            bucket: &parsed.bucket,
            key: &parsed.key,
            method,
            content_length: parsed.content_length,
            content_type: parsed.content_type.as_deref(),
            expires: parsed.expires,
        };
        if let Err(e) = verify_grant(keys, &grant, viewer.ip, token, now_secs) {
            return error(StatusCode::FORBIDDEN, e.field(), &format!("presign grant refused: {e}"));
        }
        let Some(bucket) = self.config().bucket(&parsed.bucket) else {
            return error(StatusCode::BAD_REQUEST, "bucket", "unknown bucket");
        };
        let Some(credentials) = self.keys().bucket_credentials(bucket.alias()) else {
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
        let day_key = self.keys().bucket_signing_key(bucket.alias(), now_secs, bucket.region(), "s3");
        match presign(&s3, credentials, &request, now_secs, day_key.as_deref()) {
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
            Err(e) => error(StatusCode::BAD_REQUEST, e.field(), &e.to_string()),
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
        let Some(keys) = self.keys().links() else {
            return Err(Box::new(error(StatusCode::FORBIDDEN, "token", "signed links are not configured")));
        };
        let query = req.query().unwrap_or("");
        let Some(token) = token_from_query(query) else {
            return Err(Box::new(error(StatusCode::FORBIDDEN, "token", "this path needs a signed link")));
        };
        if let Err(e) = verify_link(keys, path, req.method().as_str(), viewer.ip, token, now_secs) {
            return Err(Box::new(error(StatusCode::FORBIDDEN, "token", &format!("signed link refused: {e}"))));
        }
        Ok(Some(req.without_query_param(TOKEN_PARAM)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use http::Request;
    use crate::sign::link::{issue_grant, issue_link};
    use crate::sign::{Audience, ContentTypePattern, GrantClaims, KeyScope, LinkClaims, LinkKey, Methods, Scope};
    use crate::secret::SecretMap;
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
keys = [{{ id = "k1", secret = {{ binding = "LINK" }} }}]

[presign]
buckets = ["up"]
max_expires = 600

[buckets.up]
endpoint = "http://127.0.0.1:18703"
bucket = "uploads"
region = "us-east-1"
signed = true
access_key_id = {{ binding = "S3_ID" }}
secret_access_key = {{ binding = "S3_SECRET" }}

[[routes]]
path = "/private/*"
signed_links = true

[[routes]]
path = "/*"
"#
            ))
            .unwrap(),
            &SecretMap::from_bindings([
                ("LINK", SECRET),
                ("S3_ID", "AKIDEXAMPLE"),
                ("S3_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            ]),
        )
        .unwrap()
    }

    fn key() -> LinkKey {
        LinkKey::new("k1", SECRET.as_bytes().to_vec()).unwrap()
    }

    /// A `GET,HEAD` download link.
    fn token(scope: &str, expires_at: u64) -> String {
        issue_link(&key(), &LinkClaims::new(Scope::parse(scope).unwrap(), expires_at)).unwrap()
    }

    /// A grant for bucket `up`, keys under `user-42/`: GET/HEAD/PUT, at
    /// most 1000 bytes of `image/*` or `text/plain`, URLs of at most 300 s.
    fn grant_claims() -> GrantClaims {
        GrantClaims {
            expires_at: NOW + 60,
            client_ip: None,
            methods: Methods::PRESIGNABLE,
            bucket: "up".into(),
            keys: KeyScope::Prefix("user-42/".into()),
            max_content_length: Some(1000),
            content_types: vec![
                ContentTypePattern::parse("image/*").unwrap(),
                ContentTypePattern::parse("text/plain").unwrap(),
            ],
            max_expires: 300,
        }
    }

    fn grant(claims: &GrantClaims) -> String {
        issue_grant(&key(), claims).unwrap()
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

    const PUT_OK: &str = r#"{"bucket":"up","key":"user-42/photo 1.jpg","method":"PUT","expires":300,"content_length":1000,"content_type":"image/jpeg"}"#;

    #[test]
    fn presign_put_within_the_grant_signs_length_and_type() {
        let e = edge();
        assert_eq!(e.presign_path(), Some("/_offload/presign"));
        let (status, json) = call(&e, Some(&grant(&grant_claims())), PUT_OK);
        assert_eq!(status, 200, "{json}");
        let url = json["url"].as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:18703/uploads/user-42/photo%201.jpg?"), "{url}");
        assert!(url.contains("X-Amz-Expires=300") && url.contains("X-Amz-Signature="), "{url}");
        // Length and type are signed headers: the bucket enforces them.
        assert!(url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"), "{url}");
        assert_eq!(json["headers"], serde_json::json!({"content-length": "1000", "content-type": "image/jpeg"}));
        assert_eq!(json["method"], "PUT");
        assert_eq!(json["expires_at"], NOW + 300);
        assert!(!json.to_string().contains("wJalrXUtnFEMI"), "secret leaked");
    }

    #[test]
    fn presign_refusals_name_the_field() {
        let e = edge();
        let t = grant(&grant_claims());
        let get_only = grant(&GrantClaims {
            methods: Methods::GET.union(Methods::HEAD),
            max_content_length: None,
            content_types: vec![],
            ..grant_claims()
        });
        let exact = grant(&GrantClaims { keys: KeyScope::Exact("user-42/a".into()), ..grant_claims() });
        let short = grant(&GrantClaims { max_expires: 30, ..grant_claims() });
        let bound = grant(&GrantClaims { client_ip: Some("192.0.2.1".parse().unwrap()), ..grant_claims() });
        let expired = grant(&GrantClaims { expires_at: NOW, ..grant_claims() });
        let link = token("/_presign/up/user-42/", NOW + 60);
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        let get = r#"{"bucket":"up","key":"user-42/a","method":"GET","expires":60}"#;
        let put = |len: u64, ct: &str| {
            format!(r#"{{"bucket":"up","key":"user-42/a","method":"PUT","expires":60,"content_length":{len},"content_type":"{ct}"}}"#)
        };
        let cases: Vec<(Option<&str>, String, u16, &str, &str)> = vec![
            (None, get.into(), 401, "authorization", "missing"),
            (Some(&t), get.replace("user-42/a", "user-43/a"), 403, "key", "outside the grant's key scope"),
            (Some(&t), get.replace("user-42/a", "user-42/../user-43/a"), 400, "key", "segments"),
            (Some(&t), get.replace("user-42/a", "user-42/./a"), 400, "key", "segments"),
            (Some(&t), get.replace("GET", "DELETE"), 400, "method", "GET, HEAD or PUT"),
            (Some(&t), get.replace(":60", ":601"), 400, "expires", "1..=600"),
            (Some(&t), get.replace(":60", ":301"), 403, "expires", "longer than the grant's 300 s"),
            (Some(&short), get.replace(":60", ":31"), 403, "expires", "30 s"),
            (Some(&t), get.replace("\"up\"", "\"nope\""), 400, "bucket", "not a bucket"),
            (Some(&t), r#"{"bucket":"up","key":"user-42/a","method":"GET"}"#.into(), 400, "body", "expires"),
            (Some(&t), get.replace("60}", "60,\"acl\":\"public\"}"), 400, "body", "acl"),
            (Some(&t), "not json".into(), 400, "body", "invalid"),
            (Some("garbage"), get.into(), 403, "authorization", "malformed"),
            (Some(&tampered), get.into(), 403, "authorization", "bad signature"),
            (Some(&expired), get.into(), 403, "authorization", "expired"),
            (Some(&bound), get.into(), 403, "authorization", "client address"),
            // A download link is never a grant, even scoped like one.
            (Some(&link), get.into(), 403, "authorization", "wrong audience: this is a link token, presign expected"),
            (Some(&link), put(10, "image/png"), 403, "authorization", "wrong audience"),
            // GET-only grants cannot upload.
            (Some(&get_only), put(10, "image/png"), 403, "method", "method PUT is not allowed (allowed: GET,HEAD)"),
            (Some(&t), put(1001, "image/png"), 403, "content_length", "1001 is larger than the grant's 1000"),
            (Some(&t), put(10, "text/html"), 403, "content_type", "\"text/html\" is not allowed (allowed: image/*,text/plain)"),
            (Some(&t), put(10, "imagex/png"), 403, "content_type", "not allowed"),
            (Some(&exact), put(10, "image/png").replace("user-42/a", "user-42/ab"), 403, "key", "outside"),
            (Some(&t), get.replace("GET", "PUT"), 400, "content_length", "needs content_length"),
            (Some(&t), get.replace("GET", "PUT").replace("60}", "60,\"content_length\":1}"), 400, "content_type", "needs content_type"),
            (Some(&t), get.replace("60}", "60,\"content_type\":\"image/png\"}"), 400, "content_type", "cannot be used with GET"),
        ];
        for (auth, body, status, field, message) in &cases {
            let (got, json) = call(&e, *auth, body);
            assert_eq!((got, json["field"].as_str().unwrap()), (*status, *field), "{body}: {json}");
            assert!(json["error"].as_str().unwrap().contains(message), "{body}: {json}");
            assert!(!json.to_string().contains(SECRET), "secret leaked: {json}");
        }
        // Within every limit: accepted, for each method the grant allows.
        for body in [put(1000, "image/png"), put(0, "Text/Plain; charset=utf-8"), get.into(), get.replace("GET", "HEAD")] {
            let (got, json) = call(&e, Some(&t), &body);
            assert_eq!(got, 200, "{body}: {json}");
        }
        assert_eq!(call(&e, Some(&exact), &put(10, "image/png")).0, 200);
        assert_eq!(call(&e, Some(&get_only), get).0, 200);
    }

    #[test]
    fn signed_link_routes_need_a_valid_token_which_is_not_forwarded() {
        let e = edge();
        let mut state = EdgeState::new(e.config());
        let plan_m = |method: &str, uri: &str, state: &mut EdgeState| {
            let req = Request::builder().method(method).uri(uri).body(()).unwrap();
            e.plan_upstream(&req, &Viewer::default(), state, NOW * 1000, 0)
        };
        let plan = |uri: &str, state: &mut EdgeState| plan_m("GET", uri, state);
        let refused = |p: Plan| match p {
            Plan::Respond(r) => {
                assert_eq!(r.status(), 403);
                let json: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
                json["error"].as_str().unwrap().to_owned()
            }
            _ => panic!("not refused"),
        };
        assert!(refused(plan("http://x.test/private/report.pdf", &mut state)).contains("needs a signed link"));
        let good = token("/private/report.pdf", NOW + 60);
        let Plan::Forward(f) = plan(&format!("http://x.test/private/report.pdf?a=1&token={good}"), &mut state) else {
            panic!("valid token refused")
        };
        let Step::Send { request, .. } = &f.step else { panic!() };
        assert_eq!(request.uri(), "http://127.0.0.1:9/private/report.pdf?a=1");
        let Plan::Forward(_) = plan_m("HEAD", &format!("http://x.test/private/report.pdf?token={good}"), &mut state) else {
            panic!("HEAD refused")
        };
        // A GET,HEAD link does not open other methods.
        for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let msg = refused(plan_m(m, &format!("http://x.test/private/report.pdf?token={good}"), &mut state));
            assert!(msg.contains(&format!("method {m} is not allowed (allowed: GET,HEAD)")), "{m}: {msg}");
        }
        // A link that allows POST does.
        let post = issue_link(
            &key(),
            &LinkClaims { methods: Methods::POST, ..LinkClaims::new(Scope::parse("/private/form").unwrap(), NOW + 60) },
        )
        .unwrap();
        let Plan::Forward(_) = plan_m("POST", &format!("http://x.test/private/form?token={post}"), &mut state) else {
            panic!("POST link refused")
        };
        assert!(refused(plan(&format!("http://x.test/private/form?token={post}"), &mut state)).contains("method GET"));
        let other = token("/private/other.pdf", NOW + 60);
        assert!(refused(plan(&format!("http://x.test/private/report.pdf?token={other}"), &mut state)).contains("outside"));
        let mut tampered = good.clone();
        tampered.pop();
        tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
        assert!(refused(plan(&format!("http://x.test/private/report.pdf?token={tampered}"), &mut state)).contains("bad signature"));
        // A presign grant is never a link, whatever it covers.
        let g = grant(&GrantClaims { keys: KeyScope::Prefix(String::new()), ..grant_claims() });
        let msg = refused(plan(&format!("http://x.test/private/report.pdf?token={g}"), &mut state));
        assert!(msg.contains("wrong audience: this is a presign token, link expected"), "{msg}");
        // Version 1 tokens are refused with a reason.
        let v1 = crate::sign::link::seal_raw(&key(), Audience::Link, "v1|k1|9999999999||/private/").unwrap();
        let msg = refused(plan(&format!("http://x.test/private/report.pdf?token={v1}"), &mut state));
        assert!(msg.contains("token version v1 is no longer accepted; reissue"), "{msg}");
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
