//! Fault injection over /_shim/faults and connection refusal over the control port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{get, request, send, Resp};
use http::{Method, StatusCode};
use origin_shim::origin::{self, OriginConfig};
use origin_shim::ServerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(control: bool) -> ServerHandle {
    let mut config = OriginConfig::new("eu-west-1");
    config.access_log = false;
    if control {
        config.control_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    origin::start(config, loopback).await.unwrap()
}

async fn post(url: &str, body: &str) -> Resp {
    send(request(
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body.as_bytes(),
    ))
    .await
}

async fn delete(url: &str) -> Resp {
    send(request(Method::DELETE, url, &[], b"")).await
}

#[tokio::test]
async fn fail_ratio_one_then_cleared() {
    let srv = start(false).await;
    let base = srv.url();
    let faults = format!("{base}/_shim/faults");

    let r = get(&faults).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        serde_json::json!({"fail_ratio":0.0,"fail_status":503,"latency_ms":0,"refuse":false})
    );

    let r = post(&faults, r#"{"fail_ratio":1.0}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["fail_ratio"], 1.0);
    assert_eq!(r.json()["fail_status"], 503);
    for path in ["/api/time", "/healthz", "/api/items/x", "/nope"] {
        let r = get(&format!("{base}{path}")).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.header("x-shim-fault"), Some("injected"));
        assert_eq!(r.header("x-origin-region"), Some("eu-west-1"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.json()["error"], "injected fault");
    }
    // The control plane is never faulted.
    let s = get(&format!("{base}/_shim/stats")).await;
    assert_eq!(s.status, StatusCode::OK);
    let s = s.json();
    assert_eq!(s["faults_injected"], 4, "{s}");
    assert_eq!(s["statuses"]["503"], 4, "{s}");
    assert_eq!(
        s["total"], 0,
        "failed requests never reached a handler: {s}"
    );

    // Another status, merged onto the current settings.
    let r = post(&faults, r#"{"fail_status":429}"#).await;
    assert_eq!(r.json()["fail_ratio"], 1.0);
    assert_eq!(
        get(&format!("{base}/api/time")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let r = delete(&faults).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["fail_ratio"], 0.0);
    assert_eq!(r.json()["fail_status"], 503);
    for _ in 0..5 {
        let r = get(&format!("{base}/api/time")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("x-shim-fault").is_none());
    }
    let s = get(&format!("{base}/_shim/stats")).await.json();
    assert_eq!(s["faults_injected"], 5, "{s}");
    assert_eq!(s["statuses"]["200"], 5, "{s}");
    assert_eq!(s["statuses"]["429"], 1, "{s}");
    assert_eq!(s["total"], 5, "{s}");
    assert_eq!(s["region"], "eu-west-1");
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn fail_ratio_half_is_every_other_request() {
    let srv = start(false).await;
    let base = srv.url();
    let r = post(
        &format!("{base}/_shim/faults"),
        r#"{"fail_ratio":0.5,"fail_status":500}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get(&format!("{base}/api/time")).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 500, 200, 500, 200, 500]);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn latency_is_added() {
    let srv = start(false).await;
    let base = srv.url();
    let r = post(&format!("{base}/_shim/faults"), r#"{"latency_ms":250}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["latency_ms"], 250);
    let t = Instant::now();
    let r = get(&format!("{base}/api/time")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_fault_json_is_400_naming_the_field() {
    let srv = start(false).await;
    let faults = format!("{}/_shim/faults", srv.url());
    let cases = [
        (r#"{"fail_ratio":2}"#, Some("fail_ratio")),
        (r#"{"fail_ratio":"0.5"}"#, Some("fail_ratio")),
        (r#"{"fail_status":200}"#, Some("fail_status")),
        (r#"{"latency_ms":-5}"#, Some("latency_ms")),
        (r#"{"refuse":1}"#, Some("refuse")),
        (r#"{"latency":5}"#, Some("latency")),
        ("[]", None),
        ("not json", None),
    ];
    for (body, field) in cases {
        let r = post(&faults, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let j = r.json();
        let err = j["error"].as_str().unwrap();
        assert!(err.starts_with("faults: "), "{j}");
        match field {
            Some(f) => {
                assert_eq!(j["field"], f, "{j}");
                assert!(err.contains(&format!("\"{f}\"")), "{j}");
            }
            None => assert!(j["field"].is_null(), "{j}"),
        }
    }
    // Nothing was applied.
    assert_eq!(get(&faults).await.json()["fail_ratio"], 0.0);
    assert_eq!(
        get(&format!("{}/api/time", srv.url())).await.status,
        StatusCode::OK
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn refuse_without_control_listener_is_400() {
    let srv = start(false).await;
    let base = srv.url();
    assert!(srv.control_addr().is_none());
    for (url, body) in [
        (format!("{base}/_shim/faults"), r#"{"refuse":true}"#),
        (format!("{base}/_shim/stop"), ""),
    ] {
        let r = post(&url, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}");
        let j = r.json();
        assert_eq!(j["field"], "refuse");
        assert!(
            j["error"].as_str().unwrap().contains("--control-listen"),
            "{j}"
        );
    }
    // Still serving, refuse still false; turning it "off" is a no-op.
    assert_eq!(get(&format!("{base}/healthz")).await.status, StatusCode::OK);
    assert_eq!(
        get(&format!("{base}/_shim/faults")).await.json()["refuse"],
        false
    );
    assert_eq!(
        post(&format!("{base}/_shim/start"), "").await.status,
        StatusCode::OK
    );
    srv.shutdown().await.unwrap();
}

/// Sends one keep-alive HTTP/1.1 request on `stream` and reads the response head
/// and its Content-Length body; returns the status line.
async fn keep_alive_get(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the response");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    head.lines().next().unwrap().to_owned()
}

#[tokio::test]
async fn refuse_closes_the_port_and_start_reopens_it() {
    let srv = start(true).await;
    let addr = srv.addr();
    let control = srv.control_url().unwrap();
    assert_ne!(srv.control_addr(), Some(addr));

    // Control endpoints live on the control port only.
    let r = get(&format!("{}/_shim/stats", srv.url())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("--control-listen"));
    assert_eq!(
        get(&format!("{control}/api/time")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&format!("{}/api/time", srv.url())).await.status,
        StatusCode::OK
    );

    // An idle keep-alive connection, opened before the stop.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(keep_alive_get(&mut idle, "/healthz")
        .await
        .contains(" 200 "));

    // Stop: new connections are refused, the idle one is closed.
    let r = post(&format!("{control}/_shim/stop"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["refuse"], true);
    assert!(TcpStream::connect(addr).await.is_err(), "port still open");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest))
        .await
        .expect("idle connection not closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
    assert_eq!(
        get(&format!("{control}/_shim/faults")).await.json()["refuse"],
        true
    );
    // Stopping twice is fine.
    assert_eq!(
        post(&format!("{control}/_shim/stop"), "").await.status,
        StatusCode::OK
    );

    // Start: the same port serves again.
    let r = post(&format!("{control}/_shim/start"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["refuse"], false);
    assert_eq!(
        get(&format!("http://{addr}/healthz")).await.status,
        StatusCode::OK
    );

    // The same through /_shim/faults, and DELETE re-opens too.
    let faults = format!("{control}/_shim/faults");
    assert_eq!(
        post(&faults, r#"{"refuse":true,"latency_ms":5}"#)
            .await
            .status,
        StatusCode::OK
    );
    assert!(TcpStream::connect(addr).await.is_err());
    assert_eq!(
        post(&faults, r#"{"refuse":false}"#).await.json()["latency_ms"],
        5
    );
    assert_eq!(
        get(&format!("http://{addr}/api/time")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post(&faults, r#"{"refuse":true}"#).await.status,
        StatusCode::OK
    );
    assert!(TcpStream::connect(addr).await.is_err());
    let r = delete(&faults).await;
    assert_eq!(r.json()["refuse"], false);
    assert_eq!(r.json()["latency_ms"], 0);
    assert_eq!(
        get(&format!("http://{addr}/healthz")).await.status,
        StatusCode::OK
    );

    // Shutting down while refused works and closes the control port too.
    assert_eq!(
        post(&format!("{control}/_shim/stop"), "").await.status,
        StatusCode::OK
    );
    let control_addr = srv.control_addr().unwrap();
    srv.shutdown().await.unwrap();
    assert!(TcpStream::connect(control_addr).await.is_err());
}
