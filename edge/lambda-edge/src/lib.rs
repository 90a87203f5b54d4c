//! Lambda@Edge executor: CloudFront event records in, CloudFront results
//! out. Every decision is `offload_core`'s (the [`offload_core::Edge`],
//! the CloudFront policy in [`offload_core::cloudfront`], the secrets
//! reads in [`offload_core::cloudfront::secrets`]); this crate parses, converts,
//! keeps the per-container state, and leaves the I/O to its JS wrapper.
//! Built for `wasm32-unknown-unknown` and bound with `wasm-bindgen
//! --target nodejs`; `js/index.mjs` wraps it into the `handler` functions
//! Lambda calls.
//!
//! The JS boundary is JSON strings (one parse each way):
//! - `secret_requests(json, nowMs)`: the signed Secrets Manager / SSM
//!   requests for the config's secrets (`{accessKeyId, secretAccessKey,
//!   sessionToken, region, endpoint?}` in; `{requests: [{url, headers,
//!   body}]}` or `{error}` out); the wrapper sends them with `fetch` and
//!   hands the answers to `apply_secrets(json)` (`[{status, body}]` in the
//!   same order; `""` or the error out). The edge answers 500 until they
//!   are applied;
//! - `configure(credentialsJson)`: the Lambda role's credentials for
//!   signed buckets (`{accessKeyId, secretAccessKey, sessionToken}`);
//! - `viewer_request(eventJson, nowMs, rand)`,
//!   `origin_request(eventJson, nowMs, rand)`,
//!   `origin_response(eventJson, nowMs)`: the event in, the request or
//!   response to hand back to CloudFront out;
//! - `presign(json)`: the S3 presigner, one JSON request in, one JSON
//!   answer out (compatibility tests);
//! - `new Presigner(endpoint, bucket, region, pathStyle, accessKeyId,
//!   secretAccessKey, sessionToken?)` and `presigner.url(method, key,
//!   expires, now, format, …)`: the same URLs from a presigner kept per
//!   bucket, positional arguments in, the URL out, no JSON (what the
//!   wrapper's `S3Presigner` calls; see [`Presigner`]).
//!
//! The config is bundled at build time as JSON (the shared `edge/workers/build.rs` validates
//! offload.toml; a bad config fails the build); it holds secret references
//! only. Lambda@Edge has no environment variables: secrets come from AWS
//! at cold start.

use std::cell::RefCell;

use offload_core::cloudfront::event::error_json;
use offload_core::cloudfront::{Event, Response, Trigger};
use offload_core::cloudfront::secrets as aws;
use offload_core::sign::{
    AddressingStyle, Credentials, PresignMethod, PresignRequest, QueryFormat, ResponseOverrides, S3Bucket,
};
use offload_core::Config;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::{wasm_bindgen, JsError};

use offload_lambda_edge_handlers::Lambda;

/// The config bundled at build time: offload.toml validated and turned
/// into JSON by the shared build script (edge/workers/build.rs).
pub const CONFIG_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.json"));

thread_local! {
    static LAMBDA: RefCell<Option<Lambda>> = const { RefCell::new(None) };
    static ROLE: RefCell<Option<Credentials>> = const { RefCell::new(None) };
}

fn config() -> Result<Config, String> {
    Config::from_json(CONFIG_JSON).map_err(|e| format!("edge config: {e}"))
}

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| r#"{"error":"output is not serializable"}"#.to_owned())
}

fn error(message: &str) -> String {
    json(&serde_json::json!({ "error": message }))
}

/// The role's credentials as the wrapper hands them over (from the Lambda
/// runtime's `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
/// `AWS_SESSION_TOKEN`). No `Debug`: it holds the secret key.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleCredentials {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
}

impl RoleCredentials {
    fn credentials(self) -> Option<Credentials> {
        let id = self.access_key_id.filter(|s| !s.is_empty())?;
        let secret = self.secret_access_key.filter(|s| !s.is_empty())?;
        Some(Credentials::new(id, secret, self.session_token.filter(|s| !s.is_empty())))
    }
}

/// `secret_requests`' input: the role and where to read.
#[derive(Deserialize)]
struct SecretsInput {
    #[serde(flatten)]
    role: RoleCredentials,
    region: Option<String>,
    endpoint: Option<String>,
}

/// The wrapper's `Date.now()`; 0 for anything that is not a finite time
/// (`as` maps NaN and negatives to 0).
fn now(now_ms: f64) -> u64 {
    if now_ms.is_finite() { now_ms as u64 } else { 0 }
}

/// Hand the Lambda role's credentials to the edge (for signed buckets).
/// Returns `true` if they were complete. Never logs them.
#[wasm_bindgen]
pub fn configure(credentials_json: &str) -> bool {
    let Some(creds) = serde_json::from_str::<RoleCredentials>(credentials_json).ok().and_then(RoleCredentials::credentials)
    else {
        return false;
    };
    LAMBDA.with(|cell| {
        if let Some(l) = cell.borrow_mut().as_mut() {
            l.set_credentials(&creds);
        }
    });
    ROLE.with(|r| *r.borrow_mut() = Some(creds));
    true
}

/// The signed requests reading the config's secrets from AWS (see the
/// crate docs for the JSON).
#[wasm_bindgen]
pub fn secret_requests(input: &str, now_ms: f64) -> String {
    let out = (|| {
        let i: SecretsInput = serde_json::from_str(input).map_err(|_| "secrets: input is not JSON".to_owned())?;
        let creds = i
            .role
            .credentials()
            .ok_or("secrets: no role credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")?;
        let endpoint = i.endpoint.as_deref().filter(|e| !e.is_empty());
        let config = config()?;
        let region = i.region.as_deref().unwrap_or("");
        aws::requests(&config.secret_refs(), &creds, region, endpoint, now(now_ms) / 1000).map_err(|e| e.to_string())
    })();
    match out {
        Ok(requests) => json(&serde_json::json!({ "requests": requests })),
        Err(e) => error(&e),
    }
}

/// Apply the answers to [`secret_requests`] (`[{status, body}]`, same
/// order): builds (or rebuilds) the edge. Returns `""`, or the error
/// (naming the secret, never a value); on error a running edge keeps its
/// previous keys and a cold one stays closed (500).
#[wasm_bindgen]
pub fn apply_secrets(answers: &str) -> String {
    let out = (|| {
        let answers: Vec<aws::Answer> =
            serde_json::from_str(answers).map_err(|_| "secrets: answers are not a JSON array of {status, body}".to_owned())?;
        let config = config()?;
        let map = aws::apply(&config.secret_refs(), &answers).map_err(|e| e.to_string())?;
        LAMBDA.with(|cell| {
            let mut slot = cell.borrow_mut();
            match slot.as_mut() {
                Some(l) => l.set_secrets(&map).map_err(|e| format!("secrets: {e}")),
                None => {
                    let mut l = Lambda::new(config, &map).map_err(|e| format!("secrets: {e}"))?;
                    if let Some(role) = ROLE.with(|r| r.borrow().clone()) {
                        l.set_credentials(&role);
                    }
                    *slot = Some(l);
                    Ok(())
                }
            }
        })
    })();
    out.err().unwrap_or_default()
}

/// Run a trigger on the event: a generated error when the event is not a
/// CloudFront event, or when the secrets are not loaded (never run
/// without keys).
fn run<T: Serialize>(trigger: Trigger, event_json: &str, f: impl FnOnce(&mut Lambda, &Event) -> T) -> String {
    let fail = |status, message| json(&Response::generated(trigger, &error_json(status, message)));
    // The parse error is not shown: it may quote the event's values.
    let Ok(event) = serde_json::from_str::<Event>(event_json) else {
        return fail(500, "not a CloudFront event");
    };
    LAMBDA.with(|cell| match cell.borrow_mut().as_mut() {
        Some(l) => json(&f(l, &event)),
        None => fail(500, "edge misconfigured"),
    })
}

/// viewer-request trigger: the request to continue with, or a response.
/// (`rand` is unused: viewer-request never chooses an origin; kept so the
/// JS wrapper calls every request trigger the same way.)
#[wasm_bindgen]
pub fn viewer_request(event_json: &str, now_ms: f64, _rand: u32) -> String {
    run(Trigger::ViewerRequest, event_json, |l, e| l.viewer_request(e, now(now_ms)))
}

/// origin-request trigger: the request rewritten to its origin, or a response.
#[wasm_bindgen]
pub fn origin_request(event_json: &str, now_ms: f64, rand: u32) -> String {
    run(Trigger::OriginRequest, event_json, |l, e| l.origin_request(e, now(now_ms), rand))
}

/// origin-response trigger: the response with Offload's cache directives.
#[wasm_bindgen]
pub fn origin_response(event_json: &str, now_ms: f64) -> String {
    run(Trigger::OriginResponse, event_json, |l, e| l.origin_response(e, now(now_ms)))
}

/// S3 presigned URL from a JSON request (see
/// [`offload_core::sign::presign_json`]).
#[wasm_bindgen]
pub fn presign(json: &str) -> String {
    offload_core::sign::presign_json::presign_json(json)
}

/// An S3 presigner for one bucket and one set of credentials, kept by the
/// caller and used for many URLs (`S3Presigner` in `js/index.mjs` is the
/// API users call; it names the arguments). Gives the URL
/// [`presign`] gives for the same request, byte for byte
/// (tests/lambda-edge/presigner.test.mjs), without a JSON round trip:
/// the JSON entry costs more than the signing itself (serde_json in and
/// out, `JSON.stringify`/`JSON.parse` in JS; `cargo xtask bench sign
/// --only node` has both rows). See [`offload_core::sign::Presigner`] for
/// what it keeps between calls. Errors are thrown as `Error`s that never
/// contain the secret.
#[wasm_bindgen]
pub struct Presigner(offload_core::sign::Presigner);

/// A JS number that must be a whole, non-negative number (seconds, bytes).
fn whole(what: &str, v: f64) -> Result<u64, JsError> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 {
        // Saturates above u64::MAX; the range checks refuse it.
        Ok(v as u64)
    } else {
        Err(JsError::new(&format!("presign: {what} must be a whole number >= 0")))
    }
}

#[wasm_bindgen]
impl Presigner {
    /// `endpoint` is `scheme://host[:port][/base-path]`; `path_style`:
    /// `https://host/bucket/key` instead of `https://bucket.host/key`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        path_style: bool,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    ) -> Result<Presigner, JsError> {
        let style = if path_style { AddressingStyle::Path } else { AddressingStyle::VirtualHosted };
        let bucket = S3Bucket::new(endpoint, bucket, region, style).map_err(|e| JsError::new(&e.to_string()))?;
        let creds = Credentials::new(access_key_id, secret_access_key, session_token);
        Ok(Self(offload_core::sign::Presigner::new(bucket, creds)))
    }

    /// The presigned URL. `method`: 0 GET, 1 HEAD, 2 PUT; `expires`
    /// (1..=604800) and `now` in seconds; `format`: 0 the JS SDK v3
    /// layout, 1 the S3 docs layout; the rest as in the JSON request
    /// (`content_type`, `content_length`: PUT only, signed headers the
    /// uploader must send; the six `response-*` overrides: GET/HEAD only).
    #[allow(clippy::too_many_arguments)]
    pub fn url(
        &self,
        method: u32,
        key: &str,
        expires: f64,
        now: f64,
        format: u32,
        version_id: Option<String>,
        content_type: Option<String>,
        content_length: Option<f64>,
        cache_control: Option<String>,
        content_disposition: Option<String>,
        content_encoding: Option<String>,
        content_language: Option<String>,
        response_content_type: Option<String>,
        response_expires: Option<String>,
    ) -> Result<String, JsError> {
        let method = match method {
            0 => PresignMethod::Get,
            1 => PresignMethod::Head,
            2 => PresignMethod::Put,
            _ => return Err(JsError::new("presign: method must be GET, HEAD or PUT")),
        };
        let format = match format {
            0 => QueryFormat::JsSdkV3,
            1 => QueryFormat::AwsDocs,
            _ => return Err(JsError::new("presign: format must be js or docs")),
        };
        let req = PresignRequest {
            method,
            key,
            expires_in: whole("expires", expires)?,
            version_id: version_id.as_deref(),
            content_type: content_type.as_deref(),
            content_length: content_length.map(|n| whole("contentLength", n)).transpose()?,
            checksum: None,
            response: ResponseOverrides {
                cache_control: cache_control.as_deref(),
                content_disposition: content_disposition.as_deref(),
                content_encoding: content_encoding.as_deref(),
                content_language: content_language.as_deref(),
                content_type: response_content_type.as_deref(),
                expires: response_expires.as_deref(),
            },
            format,
        };
        match self.0.presign(&req, whole("now", now)?) {
            Ok(url) => Ok(url.into_string()),
            Err(e) => Err(JsError::new(&e.to_string())),
        }
    }
}

/// The bundled config's presign endpoint path and route patterns, for the
/// wrapper's logs and the tests.
#[wasm_bindgen]
pub fn describe() -> String {
    match config() {
        Ok(c) => json(&serde_json::json!({
            "name": c.name(),
            "presignPath": c.presign().map(|p| p.path.clone()),
            "routes": c.routes().iter().map(|r| r.pattern().as_written()).collect::<Vec<_>>(),
            "secretReads": aws::targets(&c.secret_refs()).iter().map(ToString::to_string).collect::<Vec<_>>(),
        })),
        Err(e) => error(&e),
    }
}
