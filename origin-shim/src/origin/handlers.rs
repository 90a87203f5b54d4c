//! Origin route handlers.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, DATE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::faults::{FaultPatch, FaultSettings, FaultsError};
use super::layers::RequestCount;
use super::OriginState;

pub const CC_TIME: &str = "public, max-age=5";
pub const CC_ITEM: &str = "public, max-age=60, stale-while-revalidate=30";
pub const CC_PRIVATE: &str = "private, no-store";
pub const CC_NO_STORE: &str = "no-store";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn count_of(count: Option<Extension<RequestCount>>) -> u64 {
    count.map_or(0, |Extension(RequestCount(n))| n)
}

/// A JSON error body `{"error": msg, ...}` that no cache should keep.
pub fn json_error(status: StatusCode, msg: &str, extra: serde_json::Value) -> Response {
    let mut body = json!({ "error": msg, "status": status.as_u16() });
    if let (Some(obj), serde_json::Value::Object(more)) = (body.as_object_mut(), extra) {
        obj.extend(more);
    }
    (status, [(CACHE_CONTROL, CC_NO_STORE)], Json(body)).into_response()
}

/// `GET /api/time`
pub async fn time(
    State(state): State<OriginState>,
    count: Option<Extension<RequestCount>>,
) -> Response {
    let body = json!({ "region": &*state.region, "now": now_ms(), "count": count_of(count) });
    (
        [
            (CACHE_CONTROL, CC_TIME.to_owned()),
            (DATE, httpdate::fmt_http_date(SystemTime::now())),
        ],
        Json(body),
    )
        .into_response()
}

/// Item ids: 1..=64 chars of `[A-Za-z0-9_-]`.
#[must_use]
pub fn valid_item_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Strong ETag for an item: a quoted hex prefix of SHA-256("item:" + id).
#[must_use]
pub fn item_etag(id: &str) -> String {
    let digest = Sha256::digest(format!("item:{id}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// RFC 9110 `If-None-Match` evaluation (weak comparison, `*` matches anything).
fn if_none_match_hits(headers: &HeaderMap, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tok| tok.trim() == "*" || bare(tok) == want)
}

/// `GET /api/items/{id}`
pub async fn item(
    State(state): State<OriginState>,
    count: Option<Extension<RequestCount>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) if valid_item_id(&id) => id,
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid item id: expected 1-64 characters of [A-Za-z0-9_-]",
                json!({ "region": &*state.region }),
            )
        }
    };
    let etag = item_etag(&id);
    // Purge tags for the edge: every item, and this one.
    let tags = (
        axum::http::HeaderName::from_static("surrogate-key"),
        format!("items item-{id}"),
    );
    // `?ttl=N` (1..=86400) sets `max-age=N` (benchmarks use TTL 10 s).
    let ttl = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("ttl="))
        .map(|v| v.parse::<u32>().ok().filter(|t| (1..=86_400).contains(t)));
    let cache_control = match ttl {
        None => CC_ITEM.to_owned(),
        Some(Some(t)) => format!("public, max-age={t}"),
        Some(None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid ttl: expected 1..=86400 seconds",
                json!({ "region": &*state.region }),
            )
        }
    };
    let cache_headers = [(CACHE_CONTROL, cache_control), (ETAG, etag.clone()), tags];
    if if_none_match_hits(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, cache_headers).into_response();
    }
    let body = json!({ "region": &*state.region, "id": id, "count": count_of(count) });
    (cache_headers, Json(body)).into_response()
}

/// `GET /api/private`
pub async fn private(
    State(state): State<OriginState>,
    count: Option<Extension<RequestCount>>,
) -> Response {
    let body = json!({ "region": &*state.region, "private": true, "count": count_of(count) });
    ([(CACHE_CONTROL, CC_PRIVATE)], Json(body)).into_response()
}

/// `POST /api/echo` (also PUT/PATCH/DELETE): echoes method and body.
///
/// The body comes back as `body` (UTF-8, lossy) plus its exact byte length;
/// the request's path and query in `X-Origin-Uri`.
pub async fn echo(
    State(state): State<OriginState>,
    count: Option<Extension<RequestCount>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let out = json!({
        "region": &*state.region,
        "method": method.as_str(),
        "body": String::from_utf8_lossy(&body),
        "body_len": body.len(),
        "content_type": content_type,
        "count": count_of(count),
    });
    (
        [(CACHE_CONTROL, CC_NO_STORE.to_owned()), uri_header(&uri)],
        Json(out),
    )
        .into_response()
}

/// Response header of `/api/headers` and `/api/echo` echoing the request
/// target (path and query) as the origin received it.
pub const URI_HEADER: &str = "x-origin-uri";

fn uri_header(uri: &Uri) -> (axum::http::HeaderName, String) {
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    (axum::http::HeaderName::from_static(URI_HEADER), target)
}

/// `GET /api/headers`: every request header, lower-case names, repeats joined by ", ";
/// the request's path and query come back in `X-Origin-Uri`.
pub async fn headers(headers: HeaderMap, uri: Uri) -> Response {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        out.insert(name.as_str().to_ascii_lowercase(), joined);
    }
    (
        [(CACHE_CONTROL, CC_NO_STORE.to_owned()), uri_header(&uri)],
        Json(out),
    )
        .into_response()
}

/// `GET /healthz`
pub async fn healthz() -> Response {
    (
        [
            (CACHE_CONTROL, CC_NO_STORE),
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "ok",
    )
        .into_response()
}

/// `GET /_shim/stats`: `{"region","total","paths","statuses","refused_auth","faults_injected",
/// "requests_with_body","request_body_bytes"}`
/// (see [`super::stats`] for what each counts).
pub async fn stats(State(state): State<OriginState>) -> Response {
    let snap = state.stats.snapshot();
    let body = json!({
        "region": &*state.region,
        "total": snap.total,
        "paths": snap.paths,
        "statuses": snap.statuses,
        "refused_auth": snap.refused_auth,
        "faults_injected": snap.faults_injected,
        "requests_with_body": snap.requests_with_body,
        "request_body_bytes": snap.request_body_bytes,
    });
    ([(CACHE_CONTROL, CC_NO_STORE)], Json(body)).into_response()
}

/// `POST /_shim/reset`
pub async fn reset(State(state): State<OriginState>) -> Response {
    state.stats.reset();
    let body = json!({ "region": &*state.region, "reset": true });
    ([(CACHE_CONTROL, CC_NO_STORE)], Json(body)).into_response()
}

fn faults_response(settings: FaultSettings) -> Response {
    ([(CACHE_CONTROL, CC_NO_STORE)], Json(settings)).into_response()
}

/// Applies `patch` to the live fault settings, closing or re-opening the main
/// listener when `refuse` changes. Nothing changes when any step fails.
async fn change_faults(state: &OriginState, patch: FaultPatch) -> Response {
    let _guard = state.faults.update_guard().await;
    let current = state.faults.settings();
    let next = patch.apply(current);
    // Opening/closing is idempotent, so the listener is told whenever `refuse`
    // is given, not only when it changes: that also repairs the state should an
    // earlier change have been cut short (client gone mid-request).
    if let Some(refuse) = patch.refuse {
        let result = match &state.listener {
            Some(listener) => listener.set_accepting(!refuse).await,
            // Without a control listener the main one is never closed.
            None if refuse => return faults_error(&FaultsError::refuse_needs_control_listener()),
            None => Ok(()),
        };
        if let Err(e) = result {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                json!({ "field": "refuse", "faults": current }),
            );
        }
    }
    state.faults.set(next);
    faults_response(next)
}

fn faults_error(e: &FaultsError) -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        &e.to_string(),
        json!({ "field": e.field() }),
    )
}

/// `GET /_shim/faults`: the current [`FaultSettings`].
pub async fn faults_get(State(state): State<OriginState>) -> Response {
    faults_response(state.faults.settings())
}

/// `POST /_shim/faults`: changes the fields given (see [`super::faults`]).
pub async fn faults_post(State(state): State<OriginState>, body: Bytes) -> Response {
    match FaultPatch::from_json(&body) {
        Ok(patch) => change_faults(&state, patch).await,
        Err(e) => faults_error(&e),
    }
}

/// `DELETE /_shim/faults`: back to the defaults (re-opens a refused listener).
pub async fn faults_delete(State(state): State<OriginState>) -> Response {
    let d = FaultSettings::default();
    let patch = FaultPatch {
        fail_ratio: Some(d.fail_ratio),
        fail_status: Some(d.fail_status),
        latency_ms: Some(d.latency_ms),
        refuse: Some(d.refuse),
    };
    change_faults(&state, patch).await
}

/// `POST /_shim/stop`: `refuse: true` (needs the control listener).
pub async fn stop(State(state): State<OriginState>) -> Response {
    let patch = FaultPatch {
        refuse: Some(true),
        ..FaultPatch::default()
    };
    change_faults(&state, patch).await
}

/// `POST /_shim/start`: `refuse: false`.
pub async fn start(State(state): State<OriginState>) -> Response {
    let patch = FaultPatch {
        refuse: Some(false),
        ..FaultPatch::default()
    };
    change_faults(&state, patch).await
}

/// `/_shim/*` on the main port when the control plane has its own listener.
pub async fn control_elsewhere(State(state): State<OriginState>, uri: Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not found: the /_shim/* control endpoints are served on the control listener (--control-listen)",
        json!({ "region": &*state.region, "path": uri.path() }),
    )
}

/// Unknown path.
pub async fn not_found(State(state): State<OriginState>, uri: Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not found",
        json!({ "region": &*state.region, "path": uri.path() }),
    )
}

/// Known path, wrong method.
pub async fn method_not_allowed(
    State(state): State<OriginState>,
    method: Method,
    uri: Uri,
) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        json!({ "region": &*state.region, "path": uri.path(), "method": method.as_str() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn item_ids() {
        assert!(valid_item_id("a"));
        assert!(valid_item_id("Abc_09-x"));
        assert!(valid_item_id(&"x".repeat(64)));
        assert!(!valid_item_id(""));
        assert!(!valid_item_id(&"x".repeat(65)));
        assert!(!valid_item_id("a.b"));
        assert!(!valid_item_id("a b"));
    }

    #[test]
    fn etag_is_strong_and_stable() {
        let e = item_etag("abc");
        assert!(e.starts_with('"') && e.ends_with('"'));
        assert_eq!(e, item_etag("abc"));
        assert_ne!(e, item_etag("abd"));
    }

    #[test]
    fn if_none_match_forms() {
        let etag = item_etag("abc");
        let mut h = HeaderMap::new();
        assert!(!if_none_match_hits(&h, &etag));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"nope\""));
        assert!(!if_none_match_hits(&h, &etag));
        let list = format!("\"nope\", W/{etag}");
        h.insert(
            IF_NONE_MATCH,
            HeaderValue::from_str(&list).unwrap_or(HeaderValue::from_static("")),
        );
        assert!(if_none_match_hits(&h, &etag));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match_hits(&h, &etag));
    }
}
