//! Origin auth: the shim only serves requests the edge signed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{get, request, send, Resp};
use http::{Method, StatusCode};
use offload_core::route::auth::{sign_origin_request, Secret, SigningKey};
use origin_shim::origin::{self, OriginAuth, OriginConfig};
use origin_shim::ServerHandle;

const SECRET: &str = "s3cr3t-0123456789-abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn key(kid: &str) -> SigningKey {
    SigningKey::new(kid, Secret::new(SECRET.as_bytes().to_vec()))
}

async fn start_with(auth: OriginAuth) -> ServerHandle {
    let mut config = OriginConfig::new("us-west-2");
    config.access_log = false;
    config.auth = Some(auth);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    origin::start(config, loopback).await.unwrap()
}

async fn start() -> ServerHandle {
    start_with(OriginAuth::new("k1", Secret::new(SECRET.as_bytes().to_vec())).unwrap()).await
}

/// Sends `method path` with `Host: <addr>` and, if given, `header: value`.
async fn send_auth(
    srv: &ServerHandle,
    method: Method,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &[u8],
) -> Resp {
    let host = srv.addr().to_string();
    let mut headers = vec![("host", host.as_str())];
    headers.extend(auth);
    send(request(
        method,
        &format!("{}{path}", srv.url()),
        &headers,
        body,
    ))
    .await
}

/// A header value signed for `method path` at `ts`, for this server's Host.
fn sign(srv: &ServerHandle, key: &SigningKey, method: &str, path: &str, ts: u64) -> String {
    sign_origin_request(key, method, path, &srv.addr().to_string(), ts)
}

fn assert_refused(r: &Resp, reason: &str, msg: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.header("x-origin-region"), Some("us-west-2"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j = r.json();
    let err = j["error"].as_str().unwrap();
    assert!(err.starts_with("origin auth: ") && err.contains(msg), "{j}");
    assert_eq!(j["reason"], reason, "{j}");
    assert!(!r.text().contains(SECRET));
}

#[tokio::test]
async fn requests_need_a_valid_signature() {
    let srv = start().await;
    let k1 = key("k1");

    // No header: refused, /healthz included.
    let r = send_auth(&srv, Method::GET, "/api/time", None, b"").await;
    assert_refused(&r, "missing", "missing");
    let r = send_auth(&srv, Method::GET, "/healthz", None, b"").await;
    assert_refused(&r, "missing", "missing");

    // Signed: served.
    let v = sign(&srv, &k1, "GET", "/api/time?x=1", now());
    let r = send_auth(
        &srv,
        Method::GET,
        "/api/time?x=1",
        Some(("x-offload-auth", &v)),
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["count"], 1);
    let v = sign(&srv, &k1, "GET", "/healthz", now());
    let r = send_auth(
        &srv,
        Method::GET,
        "/healthz",
        Some(("x-offload-auth", &v)),
        b"",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok"));
    let v = sign(&srv, &k1, "POST", "/api/echo", now());
    let r = send_auth(
        &srv,
        Method::POST,
        "/api/echo",
        Some(("x-offload-auth", &v)),
        b"hi",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["body"], "hi");

    // Signed for another path, query, method or host: bad signature.
    let v = sign(&srv, &k1, "GET", "/api/time", now());
    for path in ["/api/private", "/api/time?x=2", "/api/time/"] {
        let r = send_auth(&srv, Method::GET, path, Some(("x-offload-auth", &v)), b"").await;
        assert_refused(&r, "bad_signature", "bad signature");
    }
    let r = send_auth(
        &srv,
        Method::POST,
        "/api/echo",
        Some((
            "x-offload-auth",
            &sign(&srv, &k1, "GET", "/api/echo", now()),
        )),
        b"",
    )
    .await;
    assert_refused(&r, "bad_signature", "bad signature");
    let other_host = sign_origin_request(&k1, "GET", "/api/time", "other.example", now());
    let r = send_auth(
        &srv,
        Method::GET,
        "/api/time",
        Some(("x-offload-auth", &other_host)),
        b"",
    )
    .await;
    assert_refused(&r, "bad_signature", "bad signature");
    // Wrong secret under the right key id.
    let forged = SigningKey::new("k1", Secret::new(b"not-the-secret-at-all".to_vec()));
    let r = send_auth(
        &srv,
        Method::GET,
        "/api/time",
        Some((
            "x-offload-auth",
            &sign(&srv, &forged, "GET", "/api/time", now()),
        )),
        b"",
    )
    .await;
    assert_refused(&r, "bad_signature", "bad signature");

    // Authentic but too old / too far in the future (default skew 30 s).
    for ts in [now() - 120, now() + 120] {
        let v = sign(&srv, &k1, "GET", "/api/time", ts);
        let r = send_auth(
            &srv,
            Method::GET,
            "/api/time",
            Some(("x-offload-auth", &v)),
            b"",
        )
        .await;
        assert_refused(&r, "expired", "too far from now");
    }

    // Unknown key id.
    let v = sign(&srv, &key("k9"), "GET", "/api/time", now());
    let r = send_auth(
        &srv,
        Method::GET,
        "/api/time",
        Some(("x-offload-auth", &v)),
        b"",
    )
    .await;
    assert_refused(&r, "unknown_key", "unknown key id \"k9\"");

    // Malformed.
    for bad in ["v1,garbage", "v2,ts=1,kid=k1,sig=x", "Bearer abc"] {
        let r = send_auth(
            &srv,
            Method::GET,
            "/api/time",
            Some(("x-offload-auth", bad)),
            b"",
        )
        .await;
        assert_refused(&r, "malformed", "malformed");
    }

    // Refusals are counted apart from served requests; /_shim needs no auth.
    let s = get(&format!("{}/_shim/stats", srv.url())).await;
    assert_eq!(s.status, StatusCode::OK);
    let s = s.json();
    assert_eq!(s["refused_auth"], 14, "{s}");
    assert_eq!(s["total"], 3, "{s}");
    assert_eq!(s["statuses"]["403"], 14, "{s}");
    assert_eq!(s["statuses"]["200"], 3, "{s}");
    assert!(s["paths"].get("/api/private").is_none(), "{s}");
    assert!(!s.to_string().contains(SECRET));
    let r = send(request(
        Method::POST,
        &format!("{}/_shim/reset", srv.url()),
        &[],
        b"",
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        get(&format!("{}/_shim/stats", srv.url())).await.json()["refused_auth"],
        0
    );

    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn custom_header_and_skew() {
    let auth = OriginAuth::new("edge-2024.a", Secret::new(SECRET.as_bytes().to_vec()))
        .unwrap()
        .with_header("x-edge-sig")
        .unwrap()
        .with_max_skew_secs(300)
        .unwrap();
    let srv = start_with(auth).await;
    let k = key("edge-2024.a");
    let v = sign(&srv, &k, "GET", "/api/items/a1", now() - 120);
    // The default header name is not looked at.
    let r = send_auth(
        &srv,
        Method::GET,
        "/api/items/a1",
        Some(("x-offload-auth", &v)),
        b"",
    )
    .await;
    assert_refused(&r, "missing", "missing");
    // 120 s old is within a 300 s skew.
    let r = send_auth(
        &srv,
        Method::GET,
        "/api/items/a1",
        Some(("x-edge-sig", &v)),
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = sign(&srv, &k, "GET", "/api/items/a1", now() - 400);
    let r = send_auth(
        &srv,
        Method::GET,
        "/api/items/a1",
        Some(("x-edge-sig", &v)),
        b"",
    )
    .await;
    assert_refused(&r, "expired", "too far from now");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn config_debug_never_shows_the_secret() {
    let mut config = OriginConfig::new("us-west-2");
    config.auth = Some(OriginAuth::new("k1", Secret::new(SECRET.as_bytes().to_vec())).unwrap());
    let dbg = format!("{config:?}");
    assert!(!dbg.contains(SECRET), "{dbg}");
    assert!(dbg.contains("redacted"), "{dbg}");
}
