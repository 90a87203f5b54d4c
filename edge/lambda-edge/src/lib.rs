//! Lambda@Edge adapter: CloudFront event records in, CloudFront results
//! out, every decision made by `offload_core`. Built for
//! `wasm32-unknown-unknown` and bound with `wasm-bindgen --target nodejs`;
//! `js/index.mjs` wraps it into the `handler` functions Lambda calls.
//!
//! The JS boundary is JSON strings (one parse each way):
//! - `configure(credentialsJson)`: the Lambda role's credentials for
//!   signed buckets (`{accessKeyId, secretAccessKey, sessionToken}`);
//! - `viewer_request(eventJson, nowMs, rand)`,
//!   `origin_request(eventJson, nowMs, rand)`,
//!   `origin_response(eventJson, nowMs)`: the event in, the request or
//!   response to hand back to CloudFront out;
//! - `presign(json)`: the S3 presigner (compatibility tests, benchmarks).
//!
//! The config is bundled at build time (`build.rs` validates it; a bad
//! config fails the build). Lambda@Edge has no environment variables.

use std::cell::RefCell;

use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;

pub mod event;
pub mod handlers;
pub mod presign;
pub mod restricted;

pub use handlers::Lambda;

/// The config bundled at build time (validated by build.rs).
pub const CONFIG_TOML: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.toml"));

thread_local! {
    static LAMBDA: RefCell<Option<Result<Lambda, String>>> = const { RefCell::new(None) };
}

fn with_lambda(f: impl FnOnce(&mut Lambda) -> Value) -> String {
    LAMBDA.with(|cell| {
        let mut slot = cell.borrow_mut();
        let lambda = slot.get_or_insert_with(|| Lambda::new(CONFIG_TOML).map_err(|e| e.to_string()));
        match lambda {
            Ok(l) => f(l).to_string(),
            Err(e) => serde_json::json!({ "status": "500", "statusDescription": "Internal Server Error",
                "headers": { "content-type": [{ "key": "Content-Type", "value": "application/json" }] },
                "body": serde_json::json!({ "error": format!("edge config: {e}"), "status": 500 }).to_string(),
                "bodyEncoding": "text" })
            .to_string(),
        }
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
/// Returns `true` if they were complete and applied. Never logs them.
#[wasm_bindgen]
pub fn configure(credentials_json: &str) -> bool {
    let Some(creds) = serde_json::from_str::<Value>(credentials_json)
        .ok()
        .and_then(|v| handlers::credentials_from_json(&v))
    else {
        return false;
    };
    let mut applied = false;
    with_lambda(|l| {
        l.set_credentials(&creds);
        applied = true;
        Value::Null
    });
    applied
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
    with_lambda(|l| {
        let c = l.edge().config();
        serde_json::json!({
            "name": c.name(),
            "presignPath": l.edge().presign_path(),
            "routes": c.routes().iter().map(|r| r.pattern().as_written()).collect::<Vec<_>>(),
        })
    })
}
