//! Origin middleware stack.
//!
//! Order, outermost first (a request walks down this list, the response back up):
//!
//! 1. [`access_log`] — one JSON line per request on stdout (method, path, status,
//!    duration; never header values or bodies).
//! 2. [`region_header`] — stamps `X-Origin-Region` on every response, including
//!    404/405 and anything a later layer rejects.
//! 3. [`count_statuses`] — counts every response status (skips `/_shim/*`), so
//!    refusals and injected faults show up in `statuses` too.
//! 4. [`origin_auth`] — when configured, verifies the edge's HMAC signature
//!    ([`super::auth`]) and answers 403 before anything below runs; counted as
//!    `refused_auth`. `/_shim/*` is exempt.
//! 5. [`inject_faults`] — adds latency and fails a share of requests
//!    ([`super::faults`]); counted as `faults_injected`. `/_shim/*` is exempt.
//!    Refusing connections happens below HTTP, in [`super::listener`].
//! 6. [`count_requests`] — per-path counters (skips `/_shim/*`), and hands the
//!    path's count to the handler via the [`RequestCount`] extension.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use serde_json::json;

use super::faults::FAULT_HEADER;
use super::handlers::json_error;
use super::{auth, OriginState, REGION_HEADER};

/// Count of requests served for the current request's path, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCount(pub u64);

/// Prefix of the shim's own control routes, which are never counted.
pub const CONTROL_PREFIX: &str = "/_shim";

/// Wraps the routes in the middleware stack described in the module docs.
pub fn apply(app: Router, state: OriginState) -> Router {
    // `Router::layer` wraps what is already there, so the first layer added is the
    // innermost one.
    app.layer(from_fn_with_state(state.clone(), count_requests))
        .layer(from_fn_with_state(state.clone(), inject_faults))
        .layer(from_fn_with_state(state.clone(), origin_auth))
        .layer(from_fn_with_state(state.clone(), count_statuses))
        .layer(from_fn_with_state(state.clone(), region_header))
        .layer(from_fn_with_state(state, access_log))
}

pub(crate) fn is_control_path(path: &str) -> bool {
    path == CONTROL_PREFIX
        || path
            .strip_prefix(CONTROL_PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Counts the request (unless it is a `/_shim/*` control request).
pub async fn count_requests(
    State(state): State<OriginState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if !is_control_path(path) {
        let n = state.stats.record(path);
        req.extensions_mut().insert(RequestCount(n));
    }
    next.run(req).await
}

/// Counts the response status (unless it is a `/_shim/*` control request).
pub async fn count_statuses(
    State(state): State<OriginState>,
    req: Request,
    next: Next,
) -> Response {
    if is_control_path(req.uri().path()) {
        return next.run(req).await;
    }
    let h = req.headers();
    let declared = h.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > 0) || h.contains_key(http::header::TRANSFER_ENCODING) {
        state.stats.record_body(declared.unwrap_or(0));
    }
    let resp = next.run(req).await;
    state.stats.record_status(resp.status().as_u16());
    resp
}

fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Refuses requests without a valid origin-auth header (when auth is configured).
pub async fn origin_auth(State(state): State<OriginState>, req: Request, next: Next) -> Response {
    let Some(config) = state.auth.as_deref() else {
        return next.run(req).await;
    };
    if is_control_path(req.uri().path()) {
        return next.run(req).await;
    }
    match config.verify(
        req.method().as_str(),
        req.uri(),
        req.headers(),
        unix_now_secs(),
    ) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            state.stats.record_refused_auth();
            json_error(
                StatusCode::FORBIDDEN,
                &e.to_string(),
                json!({ "reason": auth::reason(&e), "region": &*state.region }),
            )
        }
    }
}

/// Applies the current fault settings: latency, then maybe an injected failure.
pub async fn inject_faults(State(state): State<OriginState>, req: Request, next: Next) -> Response {
    if is_control_path(req.uri().path()) {
        return next.run(req).await;
    }
    let plan = state.faults.plan();
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let Some(status) = plan.fail else {
        return next.run(req).await;
    };
    state.stats.record_fault();
    let mut resp = json_error(
        status,
        "injected fault",
        json!({ "region": &*state.region }),
    );
    resp.headers_mut()
        .insert(FAULT_HEADER, HeaderValue::from_static("injected"));
    resp
}

/// Adds `X-Origin-Region` to every response.
pub async fn region_header(State(state): State<OriginState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&state.region) {
        resp.headers_mut().insert(REGION_HEADER, v);
    }
    resp
}

/// Writes `{"ts":..,"region":..,"method":..,"path":..,"status":..,"dur_us":..}` to stdout.
pub async fn access_log(State(state): State<OriginState>, req: Request, next: Next) -> Response {
    if !state.access_log {
        return next.run(req).await;
    }
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let line = serde_json::json!({
        "ts": u64::try_from(ts).unwrap_or(u64::MAX),
        "region": &*state.region,
        "method": method,
        "path": path,
        "status": resp.status().as_u16(),
        "dur_us": u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    });
    write_stdout_line(&line.to_string());
    resp
}

/// Writes one line to stdout, ignoring errors (a closed pipe must not take the
/// server down, which `println!` would).
pub(crate) fn write_stdout_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::is_control_path;

    #[test]
    fn control_paths() {
        assert!(is_control_path("/_shim"));
        assert!(is_control_path("/_shim/stats"));
        assert!(!is_control_path("/_shimmy"));
        assert!(!is_control_path("/api/time"));
    }
}
