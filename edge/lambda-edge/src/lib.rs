//! Lambda@Edge adapter: CloudFront event records in, CloudFront results
//! out, every decision made by `offload_core`. Built for
//! `wasm32-unknown-unknown` and bound with `wasm-bindgen --target nodejs`;
//! `js/index.mjs` wraps it into the `handler` functions Lambda calls.
//!
//! The JS boundary is JSON strings (one parse each way):
//! - `secret_requests(json, nowMs)`: the signed Secrets Manager / SSM
//!   requests for the config's secrets (`{accessKeyId, secretAccessKey,
//!   sessionToken, region, endpoint?}` in; `{requests: [{url, headers,
//!   body}]}` or `{error}` out); the wrapper sends them with `fetch` and
//!   hands the answers to `apply_secrets(json)` (`[{status, body}]` in the
//!   same order; `""` or the error out). The edge answers 500 until they
//!   are applied (see [`secrets`]);
//! - `configure(credentialsJson)`: the Lambda role's credentials for
//!   signed buckets (`{accessKeyId, secretAccessKey, sessionToken}`);
//! - `viewer_request(eventJson, nowMs, rand)`,
//!   `origin_request(eventJson, nowMs, rand)`,
//!   `origin_response(eventJson, nowMs)`: the event in, the request or
//!   response to hand back to CloudFront out;
//! - `presign(json)`: the S3 presigner (compatibility tests, benchmarks).
//!
//! The config is bundled at build time (`build.rs` validates it; a bad
//! config fails the build); it holds secret references only. Lambda@Edge
//! has no environment variables: secrets come from AWS at cold start.

use std::cell::RefCell;

use offload_core::Config;
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;

pub mod event;
pub mod handlers;
pub mod presign;
pub mod restricted;
pub mod secrets;

pub use handlers::Lambda;

/// The config bundled at build time (validated by build.rs).
pub const CONFIG_TOML: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.toml"));

thread_local! {
    static LAMBDA: RefCell<Option<Lambda>> = const { RefCell::new(None) };
    static ROLE: RefCell<Option<offload_core::sign::Credentials>> = const { RefCell::new(None) };
}

fn config() -> Result<Config, String> {
    Config::from_toml(CONFIG_TOML).map_err(|e| format!("edge config: {e}"))
}

fn error_response(message: &str) -> String {
    serde_json::json!({ "status": "500", "statusDescription": "Internal Server Error",
        "headers": { "content-type": [{ "key": "Content-Type", "value": "application/json" }] },
        "body": serde_json::json!({ "error": message, "status": 500 }).to_string(),
        "bodyEncoding": "text" })
    .to_string()
}

fn with_lambda(f: impl FnOnce(&mut Lambda) -> Value) -> String {
    LAMBDA.with(|cell| match cell.borrow_mut().as_mut() {
        Some(l) => f(l).to_string(),
        // Secrets not loaded (or the load failed): never run without keys.
        None => error_response("edge misconfigured"),
    })
}
fn now(now_ms: f64) -> u64 {
    if now_ms.is_finite() && now_ms > 0.0 {
        now_ms as u64
    } else {
        0
    }
}

/// Hand the Lambda role's credentials to the edge (for signed buckets).
/// Returns `true` if they were complete. Never logs them.
#[wasm_bindgen]
pub fn configure(credentials_json: &str) -> bool {
    let Some(creds) = serde_json::from_str::<Value>(credentials_json)
        .ok()
        .and_then(|v| handlers::credentials_from_json(&v))
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
pub fn secret_requests(json: &str, now_ms: f64) -> String {
    let out = (|| {
        let v: Value = serde_json::from_str(json).map_err(|_| "secrets: input is not JSON".to_owned())?;
        let creds = handlers::credentials_from_json(&v)
            .ok_or("secrets: no role credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")?;
        let region = v.get("region").and_then(Value::as_str).unwrap_or("");
        let endpoint = v.get("endpoint").and_then(Value::as_str).filter(|e| !e.is_empty());
        let reqs = secrets::requests(&config()?, &creds, region, endpoint, now(now_ms) / 1000)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(serde_json::json!({ "requests": reqs.iter().map(|r| serde_json::json!({
            "url": r.url,
            "headers": r.headers.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect::<serde_json::Map<String, Value>>(),
            "body": r.body,
        })).collect::<Vec<_>>() }))
    })();
    match out {
        Ok(v) => v.to_string(),
        Err(e) => serde_json::json!({ "error": e }).to_string(),
    }
}

/// Apply the answers to [`secret_requests`] (`[{status, body}]`, same
/// order): builds (or rebuilds) the edge. Returns `""`, or the error
/// (naming the secret, never a value); on error a running edge keeps its
/// previous keys and a cold one stays closed (500).
#[wasm_bindgen]
pub fn apply_secrets(json: &str) -> String {
    let out = (|| {
        let v: Vec<Value> = serde_json::from_str(json).map_err(|_| "secrets: answers are not a JSON array".to_owned())?;
        let answers: Vec<(u16, String)> = v
            .iter()
            .map(|a| {
                let status = a.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(0);
                (status, a.get("body").and_then(Value::as_str).unwrap_or("").to_owned())
            })
            .collect();
        let config = config()?;
        let map = secrets::apply(&config, &answers).map_err(|e| e.to_string())?;
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

/// viewer-request trigger: the request to continue with, or a response.
#[wasm_bindgen]
/// (`rand` is unused: viewer-request never chooses an origin; kept so the
/// JS wrapper calls every request trigger the same way.)
pub fn viewer_request(event_json: &str, now_ms: f64, _rand: u32) -> String {
    match handlers::parse_event(event_json) {
        Ok(event) => with_lambda(|l| l.viewer_request(&event, now(now_ms))),
        Err(resp) => resp.to_string(),
    }
}

/// origin-request trigger: the request rewritten to its origin, or a response.
#[wasm_bindgen]
pub fn origin_request(event_json: &str, now_ms: f64, rand: u32) -> String {
    match handlers::parse_event(event_json) {
        Ok(event) => with_lambda(|l| l.origin_request(&event, now(now_ms), rand)),
        Err(resp) => resp.to_string(),
    }
}

/// origin-response trigger: the response with Offload's cache directives.
#[wasm_bindgen]
pub fn origin_response(event_json: &str, now_ms: f64) -> String {
    match handlers::parse_event(event_json) {
        Ok(event) => with_lambda(|l| l.origin_response(&event, now(now_ms))),
        Err(resp) => resp.to_string(),
    }
}

/// S3 presigned URL from a JSON request (see [`presign::presign_json`]).
#[wasm_bindgen]
pub fn presign(json: &str) -> String {
    presign::presign_json(json)
}

/// The bundled config's presign endpoint path and route patterns, for the
/// wrapper's logs and the tests.
#[wasm_bindgen]
pub fn describe() -> String {
    match config() {
        Ok(c) => serde_json::json!({
            "name": c.name(),
            "presignPath": c.presign().map(|p| p.path.clone()),
            "routes": c.routes().iter().map(|r| r.pattern().as_written()).collect::<Vec<_>>(),
            "secretReads": secrets::targets(&c).iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
        .to_string(),
        Err(e) => serde_json::json!({ "error": e }).to_string(),
    }
}
