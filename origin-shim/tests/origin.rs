#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use common::{get, request, send};
use http::{Method, StatusCode};
use origin_shim::origin::{self, OriginConfig};
use origin_shim::ServerHandle;

async fn start(region: &str) -> ServerHandle {
    let mut config = OriginConfig::new(region);
    config.access_log = false;
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let handle = origin::start(config, loopback).await.unwrap();
    assert!(handle.addr().ip().is_loopback());
    assert_ne!(handle.addr().port(), 0);
    handle
}

#[tokio::test]
async fn time_counts_and_headers() {
    let srv = start("us-east-1").await;
    let url = format!("{}/api/time", srv.url());

    let r1 = get(&url).await;
    assert_eq!(r1.status, StatusCode::OK);
    assert_eq!(r1.header("cache-control"), Some("public, max-age=5"));
    assert_eq!(r1.header("content-type"), Some("application/json"));
    assert_eq!(r1.header("x-origin-region"), Some("us-east-1"));
    assert!(r1.header("date").is_some_and(httpdate_like));
    let j1 = r1.json();
    assert_eq!(j1["region"], "us-east-1");
    assert_eq!(j1["count"], 1);
    let now = j1["now"].as_u64().unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now <= wall && wall - now < 60_000, "now={now} wall={wall}");

    let j2 = get(&url).await.json();
    assert_eq!(j2["count"], 2);
    assert!(j2["now"].as_u64().unwrap() >= now);

    srv.shutdown().await.unwrap();
}

fn httpdate_like(s: &str) -> bool {
    s.ends_with(" GMT") && s.len() == 29
}

#[tokio::test]
async fn stats_per_path_and_reset() {
    let srv = start("eu-west-1").await;
    let base = srv.url();
    for _ in 0..3 {
        assert_eq!(
            get(&format!("{base}/api/time")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        get(&format!("{base}/api/items/abc")).await.status,
        StatusCode::OK
    );
    assert_eq!(get(&format!("{base}/healthz")).await.text(), "ok");
    assert_eq!(
        get(&format!("{base}/nope")).await.status,
        StatusCode::NOT_FOUND
    );

    let s = get(&format!("{base}/_shim/stats")).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.header("x-origin-region"), Some("eu-west-1"));
    let s = s.json();
    assert_eq!(s["region"], "eu-west-1");
    assert_eq!(s["paths"]["/api/time"], 3);
    assert_eq!(s["paths"]["/api/items/abc"], 1);
    assert_eq!(s["paths"]["/healthz"], 1);
    assert_eq!(s["paths"]["/nope"], 1);
    assert_eq!(s["total"], 6, "stats itself must not be counted: {s}");
    assert!(s["paths"].get("/_shim/stats").is_none());
    assert_eq!((s["requests_with_body"].as_u64(), s["request_body_bytes"].as_u64()), (Some(0), Some(0)), "{s}");
    let r = send(request(Method::POST, &format!("{base}/api/echo"), &[], b"twelve bytes")).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = get(&format!("{base}/_shim/stats")).await.json();
    assert_eq!((s["requests_with_body"].as_u64(), s["request_body_bytes"].as_u64()), (Some(1), Some(12)), "{s}");

    let r = send(request(
        Method::POST,
        &format!("{base}/_shim/reset"),
        &[],
        b"",
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let s = get(&format!("{base}/_shim/stats")).await.json();
    assert_eq!(s["total"], 0);
    assert_eq!(s["requests_with_body"], 0);
    assert_eq!(s["paths"], serde_json::json!({}));
    // Counting restarts at 1 after a reset.
    assert_eq!(get(&format!("{base}/api/time")).await.json()["count"], 1);

    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn items_etag_and_304() {
    let srv = start("us-east-1").await;
    let url = format!("{}/api/items/widget-42", srv.url());

    let r = get(&url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=60, stale-while-revalidate=30")
    );
    let etag = r.header("etag").unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag: {etag}"
    );
    let j = r.json();
    assert_eq!(j["id"], "widget-42");
    assert_eq!(j["region"], "us-east-1");
    assert_eq!(j["count"], 1);

    // Same id -> same ETag; other id -> other ETag.
    assert_eq!(get(&url).await.header("etag"), Some(etag.as_str()));
    let other = get(&format!("{}/api/items/other", srv.url())).await;
    assert_ne!(other.header("etag"), Some(etag.as_str()));

    let r = send(request(Method::GET, &url, &[("if-none-match", &etag)], b"")).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("x-origin-region"), Some("us-east-1"));

    let weak_list = format!("\"zzz\", W/{etag}");
    let r = send(request(
        Method::GET,
        &url,
        &[("if-none-match", &weak_list)],
        b"",
    ))
    .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    let r = send(request(
        Method::GET,
        &url,
        &[("if-none-match", "\"stale\"")],
        b"",
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);

    // 304s are still requests served by the origin.
    let s = get(&format!("{}/_shim/stats", srv.url())).await.json();
    assert_eq!(s["paths"]["/api/items/widget-42"], 5);

    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_item_ids_are_400_json() {
    let srv = start("us-east-1").await;
    let long = "x".repeat(65);
    for bad in ["a.b", "has%20space", "%E2%9C%93", long.as_str()] {
        let r = get(&format!("{}/api/items/{bad}", srv.url())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "id {bad}");
        assert_eq!(r.header("x-origin-region"), Some("us-east-1"));
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("invalid item id"));
    }
    let ok = "y".repeat(64);
    assert_eq!(
        get(&format!("{}/api/items/{ok}", srv.url())).await.status,
        StatusCode::OK
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn private_echo_headers_and_errors() {
    let srv = start("ap-south-1").await;
    let base = srv.url();

    let r = get(&format!("{base}/api/private")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));

    let r = send(request(
        Method::POST,
        &format!("{base}/api/echo?utm_source=x"),
        &[("content-type", "text/plain")],
        b"hello edge",
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j = r.json();
    assert_eq!(j["method"], "POST");
    assert_eq!(j["body"], "hello edge");
    assert_eq!(j["body_len"], 10);
    assert_eq!(j["content_type"], "text/plain");
    assert_eq!(r.header("x-origin-uri"), Some("/api/echo?utm_source=x"));

    let r = send(request(
        Method::GET,
        &format!("{base}/api/headers?b=2&utm_source=x&a=%2f"),
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("x-multi", "a"),
            ("x-multi", "b"),
        ],
        b"",
    ))
    .await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j = r.json();
    assert_eq!(j["x-forwarded-for"], "203.0.113.7");
    assert_eq!(j["x-multi"], "a, b");
    assert!(j["host"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(
        r.header("x-origin-uri"),
        Some("/api/headers?b=2&utm_source=x&a=%2f")
    );

    let r = get(&format!("{base}/healthz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("x-origin-region"), Some("ap-south-1"));

    let r = get(&format!("{base}/does/not/exist")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-origin-region"), Some("ap-south-1"));
    assert_eq!(r.json()["error"], "not found");

    let r = send(request(
        Method::DELETE,
        &format!("{base}/api/time"),
        &[],
        b"",
    ))
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("x-origin-region"), Some("ap-south-1"));

    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let srv = start("us-east-1").await;
    let addr = srv.addr();
    assert_eq!(
        get(&format!("http://{addr}/healthz")).await.status,
        StatusCode::OK
    );
    srv.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn rejects_bad_region() {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let err = origin::start(OriginConfig::new("US EAST"), loopback)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("region"), "{err}");
}

#[tokio::test]
async fn items_ttl_query_sets_max_age() {
    let srv = start("us-east-1").await;
    let r = get(&format!("{}/api/items/k1?ttl=10", srv.url())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("public, max-age=10"));
    for bad in ["0", "86401", "x", ""] {
        let r = get(&format!("{}/api/items/k1?ttl={bad}", srv.url())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "ttl={bad}");
    }
    srv.shutdown().await.unwrap();
}
