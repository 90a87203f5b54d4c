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
//! - `presign(json)`: the S3 presigner (compatibility tests, benchmarks).
//!
//! The config is bundled at build time as JSON (the shared `edge/workers/build.rs` validates
//! offload.toml; a bad config fails the build); it holds secret references
//! only. Lambda@Edge has no environment variables: secrets come from AWS
//! at cold start.

use std::cell::RefCell;

use offload_core::cloudfront::event::error_json;
use offload_core::cloudfront::{Event, Response, Trigger};
use offload_core::cloudfront::secrets as aws;
use offload_core::sign::Credentials;
use offload_core::Config;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::wasm_bindgen;

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
