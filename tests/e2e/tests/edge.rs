//! End-to-end tests: real HTTP through the edge (Workers build in workerd)
//! to the origin-shim regions and the bucket, all on 127.0.0.1. A custom
//! harness so the stack starts once and is always stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, ExitCode};

use offload_e2e::http::{get, request, Resp};
use offload_e2e::Stack;

type Case = (&'static str, fn(&Stack) -> Result<(), String>);

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond { return Err(format!($($msg)+)); }
    };
}

fn origin_count(stack: &Stack, region: &str, path: &str) -> Result<u64, String> {
    let url = &stack.origins.iter().find(|(r, _)| r == region).ok_or("no such region")?.1;
    let stats = get(&format!("{url}/_shim/stats"))?.json()?;
    Ok(stats["paths"][path].as_u64().unwrap_or(0))
}

fn cache_status(r: &Resp) -> &str {
    r.header("cache-status").unwrap_or("")
}

fn landing_page_comes_from_the_bucket(s: &Stack) -> Result<(), String> {
    let r = get(&format!("{}/", s.edge))?;
    ensure!(r.status == 200, "status {} body {}", r.status, r.text());
    ensure!(r.header("content-type").unwrap_or("").starts_with("text/html"), "content-type {:?}", r.header("content-type"));
    let page = std::fs::read_to_string(offload_e2e::root().join("www/index.html")).map_err(|e| e.to_string())?;
    ensure!(r.text() == page, "body differs from www/index.html");
    ensure!(cache_status(&r) == "Offload; fwd=uri-miss; fwd-status=200", "cache-status {:?}", cache_status(&r));
    ensure!(r.headers.iter().all(|(n, _)| !n.to_ascii_lowercase().starts_with("x-amz-")), "x-amz-* leaked: {:?}", r.headers);
    ensure!(r.header("via").unwrap_or("").contains("Offload"), "via {:?}", r.header("via"));
    let css = get(&format!("{}/style.css", s.edge))?;
    ensure!(css.status == 200 && css.header("content-type").unwrap_or("").starts_with("text/css"), "style.css: {} {:?}", css.status, css.header("content-type"));
    Ok(())
}

fn missing_object_is_404(s: &Stack) -> Result<(), String> {
    let r = get(&format!("{}/no-such-page.html", s.edge))?;
    ensure!(r.status == 404, "status {} body {}", r.status, r.text());
    Ok(())
}

fn writes_to_the_bucket_route_get_405(s: &Stack) -> Result<(), String> {
    let r = request("PUT", &format!("{}/index.html", s.edge), &[], Some(b"defaced"))?;
    ensure!(r.status == 405, "status {}", r.status);
    ensure!(r.header("allow") == Some("GET, HEAD"), "allow {:?}", r.header("allow"));
    ensure!(r.json()?["error"].as_str().unwrap_or("").contains("PUT"), "body {}", r.text());
    let page = get(&format!("{}/", s.edge))?;
    ensure!(!page.text().contains("defaced"), "bucket object was overwritten");
    Ok(())
}

fn api_time_reaches_the_origin_every_time(s: &Stack) -> Result<(), String> {
    let before = origin_count(s, "us-east-1", "/api/time")?;
    for i in 1..=3u64 {
        let r = get(&format!("{}/api/time", s.edge))?;
        ensure!(r.status == 200, "status {}", r.status);
        let j = r.json()?;
        ensure!(j["region"] == "us-east-1", "region {}", j["region"]);
        ensure!(j["count"].as_u64() == Some(before + i), "origin count {} expected {}", j["count"], before + i);
        ensure!(cache_status(&r) == "Offload; fwd=uri-miss; fwd-status=200", "cache-status {:?}", cache_status(&r));
        ensure!(r.header("x-origin-region") == Some("us-east-1"), "x-origin-region {:?}", r.header("x-origin-region"));
    }
    let after = origin_count(s, "us-east-1", "/api/time")?;
    ensure!(after == before + 3, "origin counted {} requests, expected 3", after - before);
    Ok(())
}

fn prefix_route_strips_and_reaches_the_other_region(s: &Stack) -> Result<(), String> {
    let before = origin_count(s, "eu-west-1", "/api/items/abc")?;
    let r = get(&format!("{}/eu/api/items/abc?x=1", s.edge))?;
    ensure!(r.status == 200, "status {} {}", r.status, r.text());
    let j = r.json()?;
    ensure!(j["region"] == "eu-west-1" && j["id"] == "abc", "body {j}");
    ensure!(origin_count(s, "eu-west-1", "/api/items/abc")? == before + 1, "eu origin not counted");
    // Conditional request passes through: the origin answers 304.
    let etag = r.header("etag").ok_or("no etag")?.to_owned();
    let r = request("GET", &format!("{}/eu/api/items/abc", s.edge), &[("if-none-match", &etag)], None)?;
    ensure!(r.status == 304, "conditional status {}", r.status);
    Ok(())
}

fn post_is_forwarded_with_body_and_bypasses(s: &Stack) -> Result<(), String> {
    let r = request("POST", &format!("{}/api/echo", s.edge), &[("content-type", "text/plain")], Some(b"hello edge"))?;
    ensure!(r.status == 200, "status {} {}", r.status, r.text());
    let j = r.json()?;
    ensure!(j["method"] == "POST" && j["body"] == "hello edge", "echo {j}");
    ensure!(cache_status(&r) == "Offload; fwd=bypass; fwd-status=200", "cache-status {:?}", cache_status(&r));
    Ok(())
}

fn forwarding_headers_are_set_and_cannot_be_spoofed(s: &Stack) -> Result<(), String> {
    let r = request(
        "GET",
        &format!("{}/api/headers", s.edge),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("cookie", "session=abc"),
        ],
        None,
    )?;
    ensure!(r.status == 200, "status {}", r.status);
    let h = r.json()?;
    ensure!(h["x-forwarded-host"] == format!("127.0.0.1:{}", offload_e2e::EDGE_PORT), "x-forwarded-host {}", h["x-forwarded-host"]);
    ensure!(h["x-forwarded-proto"] == "http", "x-forwarded-proto {}", h["x-forwarded-proto"]);
    ensure!(h["x-forwarded-for"] != "6.6.6.6", "x-forwarded-for spoofed: {}", h["x-forwarded-for"]);
    ensure!(h.get("x-original-url").is_none(), "x-original-url forwarded");
    ensure!(h.get("x-http-method-override").is_none(), "method override forwarded");
    // (Fields named by an incoming `Connection` cannot be checked here:
    // workerd removes `Connection` before the Worker sees the request; the
    // core's unit tests cover that rule.)
    ensure!(h.get("connection").is_none() && h.get("keep-alive").is_none(), "hop-by-hop forwarded: {h}");
    ensure!(h["host"] == "127.0.0.1:18701", "host {}", h["host"]);
    ensure!(h["cookie"] == "session=abc", "cookie {}", h["cookie"]);
    ensure!(h["via"].as_str().unwrap_or("").contains("Offload"), "via {}", h["via"]);
    Ok(())
}

fn headless_chromium_renders_the_page_through_the_edge(s: &Stack) -> Result<(), String> {
    let profile = s.logs.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("{}/", s.edge))
        .output()
        .map_err(|e| format!("chromium: {e}"))?;
    let dom = String::from_utf8_lossy(&out.stdout);
    ensure!(dom.contains("<title>Offload"), "page not rendered: {}", String::from_utf8_lossy(&out.stderr));
    ensure!(dom.contains("data-state=\"ok\""), "app.js did not load /api/time: {dom}");
    ensure!(dom.contains("region us-east-1"), "region not shown: {dom}");
    Ok(())
}

fn main() -> ExitCode {
    let cases: &[Case] = &[
        ("landing_page_comes_from_the_bucket", landing_page_comes_from_the_bucket),
        ("missing_object_is_404", missing_object_is_404),
        ("writes_to_the_bucket_route_get_405", writes_to_the_bucket_route_get_405),
        ("api_time_reaches_the_origin_every_time", api_time_reaches_the_origin_every_time),
        ("prefix_route_strips_and_reaches_the_other_region", prefix_route_strips_and_reaches_the_other_region),
        ("post_is_forwarded_with_body_and_bypasses", post_is_forwarded_with_body_and_bypasses),
        ("forwarding_headers_are_set_and_cannot_be_spoofed", forwarding_headers_are_set_and_cannot_be_spoofed),
        ("headless_chromium_renders_the_page_through_the_edge", headless_chromium_renders_the_page_through_the_edge),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let cases: Vec<&Case> = cases.iter().filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()))).collect();
    println!("starting the local stack (origin-shims, bucket, edge in workerd)...");
    let stack = match Stack::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: could not start the stack: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\nrunning {} tests", cases.len());
    let mut failed = Vec::new();
    for (name, case) in &cases {
        match case(&stack) {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED\n    {e}");
                failed.push(*name);
            }
        }
    }
    drop(stack);
    let passed = cases.len() - failed.len();
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed");
        ExitCode::SUCCESS
    } else {
        println!("\nfailures: {}\ntest result: FAILED. {passed} passed; {} failed", failed.join(", "), failed.len());
        ExitCode::FAILURE
    }
}
