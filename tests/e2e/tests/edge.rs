//! End-to-end tests: real HTTP through the edge (Workers build in workerd)
//! to the origin-shim regions and the bucket, all on 127.0.0.1. A custom
//! harness so the stack starts once and is always stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, ExitCode};

use offload_e2e::http::{blob_byte, get, request, upload, BlobReader, Resp};
use offload_e2e::Stack;

type Case = (&'static str, fn(&Stack) -> Result<(), String>);

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond { return Err(format!($($msg)+)); }
    };
}

fn origin_count(stack: &Stack, region: &str, path: &str) -> Result<u64, String> {
    let url = &stack.origins.iter().find(|(r, _, _)| r == region).ok_or("no such region")?.2;
    let stats = get(&format!("{url}/_shim/stats"))?.json()?;
    Ok(stats["paths"][path].as_u64().unwrap_or(0))
}

/// Local runs place the viewer with the trusted test header.
const US: (&str, &str) = ("x-offload-geo", "country=US");

fn cache_status(r: &Resp) -> &str {
    r.header("cache-status").unwrap_or("")
}

fn landing_page_comes_from_the_bucket(s: &Stack) -> Result<(), String> {
    let r = get(&format!("{}/", s.edge))?;
    ensure!(r.status == 200, "status {} body {}", r.status, r.text());
    ensure!(r.header("content-type").unwrap_or("").starts_with("text/html"), "content-type {:?}", r.header("content-type"));
    let built = offload_e2e::site::dir(&offload_e2e::root()).join("index.html");
    let page = std::fs::read_to_string(&built).map_err(|e| format!("{}: {e}", built.display()))?;
    ensure!(r.text() == page, "body differs from {}", built.display());
    // The bucket route caches (default_ttl = 60): a miss that is stored,
    // or a hit when an earlier run left it in the platform cache.
    let cs = cache_status(&r);
    ensure!(cs.starts_with("Offload; fwd=uri-miss; fwd-status=200") || cs.starts_with("Offload; hit"), "cache-status {cs:?}");
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
        // `no-cache` makes every request go forward, cache or not.
        let r = request("GET", &format!("{}/api/time", s.edge), &[US, ("cache-control", "no-cache")], None)?;
        ensure!(r.status == 200, "status {}", r.status);
        let j = r.json()?;
        ensure!(j["region"] == "us-east-1", "region {}", j["region"]);
        ensure!(j["count"].as_u64() == Some(before + i), "origin count {} expected {}", j["count"], before + i);
        let cs = cache_status(&r);
        ensure!(cs.starts_with("Offload; fwd=") && cs.contains("fwd-status=200"), "cache-status {cs:?}");
        ensure!(r.header("x-origin-region") == Some("us-east-1"), "x-origin-region {:?}", r.header("x-origin-region"));
    }
    let after = origin_count(s, "us-east-1", "/api/time")?;
    ensure!(after == before + 3, "origin counted {} requests, expected 3", after - before);
    Ok(())
}

fn prefix_route_strips_and_reaches_the_other_region(s: &Stack) -> Result<(), String> {
    let id = item_id("eu");
    let path = format!("/api/items/{id}");
    let before = origin_count(s, "eu-west-1", &path)?;
    let r = get(&format!("{}/eu{path}?x=1", s.edge))?;
    ensure!(r.status == 200, "status {} {}", r.status, r.text());
    let j = r.json()?;
    ensure!(j["region"] == "eu-west-1" && j["id"] == id, "body {j}");
    ensure!(origin_count(s, "eu-west-1", &path)? == before + 1, "eu origin not counted");
    // Conditional request passes through: the origin answers 304.
    let etag = r.header("etag").ok_or("no etag")?.to_owned();
    let r = request("GET", &format!("{}/eu{path}", s.edge), &[("if-none-match", &etag)], None)?;
    ensure!(r.status == 304, "conditional status {}", r.status);
    Ok(())
}

fn post_is_forwarded_with_body_and_bypasses(s: &Stack) -> Result<(), String> {
    let r = request("POST", &format!("{}/api/echo", s.edge), &[US, ("content-type", "text/plain")], Some(b"hello edge"))?;
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
            US,
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
    ensure!(h.get("x-offload-geo").is_none(), "geo test header forwarded");
    ensure!(h["x-offload-auth"].as_str().unwrap_or("").starts_with("v1,ts="), "no origin auth header: {h}");
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
    ensure!(dom.contains("region us-east-1") || dom.contains("region eu-west-1"), "region not shown: {dom}");
    Ok(())
}


/// When a case last made an origin fail or refuse (a `/_shim/stop`, or
/// faults with a `fail_ratio` and a status other than 4xx), or cleared
/// such a fault: the edge's health
/// state (ejections) and its retry budget remember that for a while, so
/// the next case waits for them to settle ([`fresh_state`]).
static HEALTH_DISTURBED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// The edge's retry budget counts the retries of the last `window_ms`
/// (10 s by default, as offload.toml leaves it), plus one slot.
const BUDGET_WINDOW: std::time::Duration = std::time::Duration::from_secs(11);

fn shim_control(s: &Stack, region: &str, method: &str, path: &str, body: Option<&str>) -> Result<Resp, String> {
    let control = &s.origins.iter().find(|(r, _, _)| r == region).ok_or("no such region")?.2;
    let disturbs = path == "/_shim/stop" || (path == "/_shim/faults" && method == "POST" && body.is_some_and(|b| b.contains("fail_ratio") && !b.contains("\"fail_status\":4")));
    let clears = path == "/_shim/start" || (path == "/_shim/faults" && method == "DELETE");
    if let Ok(mut at) = HEALTH_DISTURBED.lock() {
        if disturbs || (clears && at.is_some()) {
            *at = Some(std::time::Instant::now());
        }
    }
    let headers: &[(&str, &str)] = if body.is_some() { &[("content-type", "application/json")] } else { &[] };
    let r = request(method, &format!("{control}{path}"), headers, body.map(str::as_bytes))?;
    ensure!(r.status < 300, "{method} {path} on {region}: {} {}", r.status, r.text());
    if clears {
        if let Ok(mut at) = HEALTH_DISTURBED.lock() {
            if at.is_some() {
                *at = Some(std::time::Instant::now());
            }
        }
    }
    Ok(r)
}

/// Run before every case, so that each starts from the same state whatever
/// ran before it (and any case can run alone): no origin faults, no region
/// stopped, no region ejected at the edge, the retry budget's window clear
/// of earlier retries, the origins' counters at zero. (The platform cache
/// starts empty with each stack; cases use their own keys within a run.)
fn fresh_state(s: &Stack) -> Result<(), String> {
    for (region, _, _) in &s.origins {
        shim_control(s, region, "DELETE", "/_shim/faults", None)?;
    }
    let disturbed = *HEALTH_DISTURBED.lock().map_err(|_| "poisoned")?;
    if let Some(at) = disturbed {
        let settled = at + BUDGET_WINDOW;
        std::thread::sleep(settled.saturating_duration_since(std::time::Instant::now()));
        wait_us_east_serves(s)?;
        *HEALTH_DISTURBED.lock().map_err(|_| "poisoned")? = None;
    }
    for (region, _, _) in &s.origins {
        shim_control(s, region, "POST", "/_shim/reset", None)?;
    }
    Ok(())
}

fn viewers_land_on_their_region(s: &Stack) -> Result<(), String> {
    let cases = [
        ("country=US", "us-east-1"),
        ("country=BR", "us-east-1"),
        ("country=DE", "eu-west-1"),
        ("country=NG", "eu-west-1"),
        // No preference for Asia: the nearest by great-circle distance.
        ("country=IN;lat=19.1;lon=72.9", "eu-west-1"),
        ("country=JP;lat=35.7;lon=139.7", "eu-west-1"),
        ("country=NZ;lat=-36.8;lon=174.8", "us-east-1"),
    ];
    for (geo, want) in cases {
        let r = request("GET", &format!("{}/api/headers", s.edge), &[("x-offload-geo", geo)], None)?;
        ensure!(r.status == 200, "{geo}: status {}", r.status);
        ensure!(r.header("x-origin-region") == Some(want), "{geo}: served by {:?}, want {want}", r.header("x-origin-region"));
        let timing = r.header("server-timing").unwrap_or("");
        ensure!(timing.contains(want), "{geo}: server-timing {timing:?}");
    }
    let r = request("GET", &format!("{}/api/headers", s.edge), &[("x-offload-geo", "lat=999")], None)?;
    ensure!(r.status == 400, "bad geo header: status {}", r.status);
    Ok(())
}

fn origins_refuse_requests_without_edge_auth(s: &Stack) -> Result<(), String> {
    for (region, url, _) in &s.origins {
        let r = get(&format!("{url}/api/time"))?;
        ensure!(r.status == 403, "{region}: direct request got {}", r.status);
        let forged = request("GET", &format!("{url}/api/time"), &[("x-offload-auth", "v1,ts=1,kid=local,sig=AAAA")], None)?;
        ensure!(forged.status == 403, "{region}: forged auth got {}", forged.status);
    }
    Ok(())
}

fn bucket_is_private_and_read_through_signed_requests(s: &Stack) -> Result<(), String> {
    let direct = get(&format!("{}/www/index.html", s.bucket))?;
    ensure!(direct.status == 403, "anonymous read of the bucket got {}", direct.status);
    let via_edge = get(&format!("{}/index.html", s.edge))?;
    ensure!(via_edge.status == 200 && via_edge.text().contains("<title>Offload"), "edge read got {}", via_edge.status);
    Ok(())
}

fn link_key() -> Result<offload_core::sign::LinkKey, String> {
    let keys = offload_e2e::local_keys()?;
    keys.links().and_then(|l| l.current()).cloned().ok_or_else(|| "no [links] in offload.toml".to_owned())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn signed_links_open_private_files(s: &Stack) -> Result<(), String> {
    use offload_core::sign::{link::issue_link_url, LinkClaims, Scope};
    let url = format!("{}/private/report.txt", s.edge);
    let r = get(&url)?;
    ensure!(r.status == 403, "no token: {}", r.status);
    let key = link_key()?;
    let claims = LinkClaims::new(Scope::parse("/private/report.txt").map_err(|e| e.to_string())?, now_secs() + 60);
    let link = issue_link_url(&key, &claims, "/private/report.txt").map_err(|e| e.to_string())?;
    let r = get(&format!("{}{link}", s.edge))?;
    ensure!(r.status == 200 && r.text().contains("signed link"), "valid link: {} {}", r.status, r.text());
    let mut tampered = link.clone();
    let last = tampered.pop().unwrap_or('A');
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    ensure!(get(&format!("{}{tampered}", s.edge))?.status == 403, "tampered link accepted");
    let other = link.replace("/private/report.txt?", "/private/other.txt?");
    ensure!(get(&format!("{}{other}", s.edge))?.status == 403, "link used out of scope");
    // A GET,HEAD link opens neither POST nor DELETE.
    let post = request("POST", &format!("{}{link}", s.edge), &[], Some(b"x"))?;
    ensure!(post.status == 403 && post.text().contains("method POST is not allowed"), "POST with a GET link: {} {}", post.status, post.text());
    let expired = LinkClaims { expires_at: now_secs().saturating_sub(1), ..claims };
    let old = issue_link_url(&key, &expired, "/private/report.txt").map_err(|e| e.to_string())?;
    let r = get(&format!("{}{old}", s.edge))?;
    ensure!(r.status == 403 && r.text().contains("expired"), "expired link: {} {}", r.status, r.text());
    Ok(())
}

fn presigned_uploads_go_straight_to_the_bucket(s: &Stack) -> Result<(), String> {
    use offload_core::sign::link::{issue_grant, issue_link};
    use offload_core::sign::{ContentTypePattern, GrantClaims, KeyScope, LinkClaims, Methods, Scope};
    let key = link_key()?;
    let claims = GrantClaims {
        expires_at: now_secs() + 60,
        client_ip: None,
        methods: Methods::PRESIGNABLE,
        bucket: "uploads".into(),
        keys: KeyScope::Prefix("user-42/".into()),
        max_content_length: Some(64),
        content_types: vec![ContentTypePattern::parse("text/*").map_err(|e| e.to_string())?],
        max_expires: 120,
    };
    let app_token = issue_grant(&key, &claims).map_err(|e| e.to_string())?;
    let auth = format!("Bearer {app_token}");
    let presign = |body: &str| request("POST", &format!("{}/_offload/presign", s.edge), &[("authorization", &auth), ("content-type", "application/json")], Some(body.as_bytes()));
    let origin_before: u64 = s.origins.iter().map(|(r, _, _)| total_count(s, r).unwrap_or(0)).sum();

    let object = "user-42/hello world+ü~.txt";
    let content = b"uploaded via a presigned URL";
    let put = presign(&format!(
        r#"{{"bucket":"uploads","key":"{object}","method":"PUT","expires":120,"content_length":{},"content_type":"text/plain"}}"#,
        content.len()
    ))?;
    ensure!(put.status == 200, "presign PUT: {} {}", put.status, put.text());
    let put_json = put.json()?;
    let put_url = put_json["url"].as_str().ok_or("no url")?.to_owned();
    ensure!(
        put_json["headers"] == serde_json::json!({"content-length": content.len().to_string(), "content-type": "text/plain"}),
        "headers to send: {put_json}"
    );
    // The signed Content-Length and Content-Type are enforced by the bucket.
    let longer = request("PUT", &put_url, &[("content-type", "text/plain")], Some(b"uploaded via a presigned URL, and more"))?;
    ensure!(longer.status == 403, "PUT of another length than signed: {} {}", longer.status, longer.text());
    let other_type = request("PUT", &put_url, &[("content-type", "text/html")], Some(content))?;
    ensure!(other_type.status == 403, "PUT of another type than signed: {} {}", other_type.status, other_type.text());
    let up = request("PUT", &put_url, &[("content-type", "text/plain")], Some(content))?;
    ensure!(up.status == 200, "PUT to the bucket: {} {}", up.status, up.text());

    // Beyond the grant's limits, or with a download link: refused at the edge.
    let r = presign(&format!(r#"{{"bucket":"uploads","key":"{object}","method":"PUT","expires":120,"content_length":65,"content_type":"text/plain"}}"#))?;
    ensure!(r.status == 403 && r.json()?["field"] == "content_length", "PUT larger than the grant: {} {}", r.status, r.text());
    let r = presign(&format!(r#"{{"bucket":"uploads","key":"{object}","method":"PUT","expires":120,"content_length":1,"content_type":"image/png"}}"#))?;
    ensure!(r.status == 403 && r.json()?["field"] == "content_type", "type outside the grant: {} {}", r.status, r.text());
    let link = issue_link(&key, &LinkClaims::new(Scope::parse("/_presign/uploads/user-42/").map_err(|e| e.to_string())?, now_secs() + 60))
        .map_err(|e| e.to_string())?;
    let r = request(
        "POST",
        &format!("{}/_offload/presign", s.edge),
        &[("authorization", &format!("Bearer {link}"))],
        Some(br#"{"bucket":"uploads","key":"user-42/x","method":"PUT","expires":60,"content_length":1,"content_type":"text/plain"}"#),
    )?;
    ensure!(r.status == 403 && r.text().contains("wrong audience"), "a download link minted an upload: {} {}", r.status, r.text());

    let get_resp = presign(&format!(r#"{{"bucket":"uploads","key":"{object}","method":"GET","expires":120}}"#))?;
    let get_url = get_resp.json()?["url"].as_str().ok_or("no url")?.to_owned();
    let down = get(&get_url)?;
    ensure!(down.status == 200 && down.text() == "uploaded via a presigned URL", "GET: {} {}", down.status, down.text());

    // Tampered and wrong-key URLs are refused by the bucket itself.
    let tampered = get_url.replace("X-Amz-Expires=120", "X-Amz-Expires=121");
    ensure!(get(&tampered)?.status == 403, "tampered presigned URL accepted");
    let access_key = offload_e2e::local_keys()?.bucket_credentials("uploads").ok_or("no uploads credentials")?.access_key_id().to_owned();
    ensure!(get_url.contains(&format!("Credential={access_key}")), "presigned URL not signed with the local key");
    let wrong_key = get_url.replace(&format!("Credential={access_key}"), "Credential=SOMEONEELSEKEY");
    ensure!(get(&wrong_key)?.status == 403, "wrong-key presigned URL accepted");
    let short = presign(&format!(r#"{{"bucket":"uploads","key":"{object}","method":"GET","expires":1}}"#))?;
    let short_url = short.json()?["url"].as_str().ok_or("no url")?.to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    ensure!(get(&short_url)?.status == 403, "expired presigned URL accepted");

    // Outside the token's prefix, or without a token: refused at the edge.
    let r = presign(r#"{"bucket":"uploads","key":"user-43/x","method":"PUT","expires":60,"content_length":1,"content_type":"text/plain"}"#)?;
    ensure!(r.status == 403 && r.json()?["field"] == "key", "other user's prefix: {} {}", r.status, r.text());
    let r = request("POST", &format!("{}/_offload/presign", s.edge), &[], Some(b"{}"))?;
    ensure!(r.status == 401, "no token: {}", r.status);
    let r = presign(r#"{"bucket":"uploads","key":"user-42/x","method":"GET","expires":999999}"#)?;
    ensure!(r.status == 400 && r.json()?["field"] == "expires", "too long expiry: {} {}", r.status, r.text());
    let origin_after: u64 = s.origins.iter().map(|(r, _, _)| total_count(s, r).unwrap_or(0)).sum();
    ensure!(origin_after == origin_before, "the web tier saw {} requests", origin_after - origin_before);
    Ok(())
}

fn total_count(s: &Stack, region: &str) -> Result<u64, String> {
    let r = shim_control(s, region, "GET", "/_shim/stats", None)?;
    Ok(r.json()?["total"].as_u64().unwrap_or(0))
}

/// Wait until a US viewer is served by us-east-1 again (after a stop or
/// failures it is ejected; ejection ends with a successful probe).
fn wait_us_east_serves(s: &Stack) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let r = request("GET", &format!("{}/api/headers", s.edge), &[US], None)?;
        if r.header("x-origin-region") == Some("us-east-1") {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "us-east-1 never came back");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn a_stopped_region_fails_over_and_comes_back(s: &Stack) -> Result<(), String> {
    shim_control(s, "us-east-1", "POST", "/_shim/stop", None)?;
    let result = (|| {
        for _ in 0..5 {
            let r = request("GET", &format!("{}/api/headers", s.edge), &[US], None)?;
            ensure!(r.status == 200, "GET during the outage: {}", r.status);
            ensure!(r.header("x-origin-region") == Some("eu-west-1"), "served by {:?}", r.header("x-origin-region"));
        }
        Ok(())
    })();
    shim_control(s, "us-east-1", "POST", "/_shim/start", None)?;
    result?;
    // The ejected region gets a probe after its ejection time, then traffic.
    wait_us_east_serves(s)
}

fn retry_budget_caps_origin_requests(s: &Stack) -> Result<(), String> {
    // us-east-1 answers 503 to everything: US viewers fail over, but the
    // origins together never see more than the budget allows. (The
    // counters start at zero: `fresh_state`.)
    shim_control(s, "us-east-1", "POST", "/_shim/faults", Some(r#"{"fail_ratio":1.0,"fail_status":503}"#))?;
    let n = 60u64;
    let mut ok = 0;
    let result = (|| {
        for _ in 0..n {
            let r = request("GET", &format!("{}/api/headers", s.edge), &[US], None)?;
            if r.status == 200 {
                ok += 1;
            }
        }
        Ok::<(), String>(())
    })();
    shim_control(s, "us-east-1", "DELETE", "/_shim/faults", None)?;
    result?;
    let stats = |region: &str| -> Result<serde_json::Value, String> { shim_control(s, region, "GET", "/_shim/stats", None)?.json() };
    let us = stats("us-east-1")?;
    let eu = stats("eu-west-1")?;
    let us_seen = us["faults_injected"].as_u64().unwrap_or(0) + us["total"].as_u64().unwrap_or(0);
    let origin_requests = us_seen + eu["total"].as_u64().unwrap_or(0);
    let budget = (n as f64 * 1.2).ceil() as u64 + 3;
    println!("    {n} GETs with us-east-1 failing 100%: {ok} served, {origin_requests} origin requests (budget {budget}), us-east-1 saw {us_seen}");
    ensure!(origin_requests <= budget, "{origin_requests} origin requests exceed the budget {budget}");
    ensure!(ok == n, "{} GETs failed", n - ok);
    Ok(())
}

/// A bounded load during which us-east-1 is stopped and restarted: no GET
/// may fail; prints the p99 latency before/during/after and the retries.
fn failover_under_load_loses_no_gets(s: &Stack) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let secs = std::env::var("OFFLOAD_FAILOVER_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20u64);
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // (elapsed ms at start, latency ms, status, attempts, served by us-east-1)
    let samples: Arc<Mutex<Vec<(u64, u64, u16, usize, bool)>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, samples, url) = (Arc::clone(&stop), Arc::clone(&samples), format!("{}/api/headers", s.edge));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let at = start.elapsed().as_millis() as u64;
                    let (status, attempts, us) = match request("GET", &url, &[US], None) {
                        Ok(r) => (
                            r.status,
                            r.header("server-timing").unwrap_or("").matches("attempt;").count(),
                            r.header("x-origin-region") == Some("us-east-1"),
                        ),
                        Err(_) => (0, 0, false),
                    };
                    let lat = t.elapsed().as_millis() as u64;
                    if let Ok(mut v) = samples.lock() {
                        v.push((at, lat, status, attempts, us));
                    }
                }
            })
        })
        .collect();
    let third = Duration::from_secs(secs / 3);
    std::thread::sleep(third);
    let down_at = start.elapsed().as_millis() as u64;
    let stopped = shim_control(s, "us-east-1", "POST", "/_shim/stop", None);
    std::thread::sleep(third);
    let up_at = start.elapsed().as_millis() as u64;
    let started = shim_control(s, "us-east-1", "POST", "/_shim/start", None);
    std::thread::sleep(Duration::from_secs(secs) - 2 * third);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    stopped?;
    started?;
    let samples = samples.lock().map_err(|_| "poisoned")?.clone();
    let p99 = |phase: &dyn Fn(u64) -> bool| {
        let mut l: Vec<u64> = samples.iter().filter(|x| phase(x.0)).map(|x| x.1).collect();
        l.sort_unstable();
        l.get((l.len() * 99 / 100).min(l.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    let before = p99(&|t| t < down_at);
    let during = p99(&|t| t >= down_at && t < up_at);
    let after = p99(&|t| t >= up_at);
    let failed = samples.iter().filter(|x| x.2 != 200).count();
    let retried = samples.iter().filter(|x| x.3 > 1).count();
    println!(
        "    failover load: {} GETs in {secs} s, {failed} failed, {retried} retried ({:.2}% of requests); p99 before {before} ms, during the outage {during} ms (+{} ms), after {after} ms",
        samples.len(),
        100.0 * retried as f64 / samples.len().max(1) as f64,
        during.saturating_sub(before)
    );
    ensure!(!samples.is_empty(), "no requests were made");
    ensure!(failed == 0, "{failed} GETs failed during the failover");
    ensure!(samples.iter().any(|x| x.0 < down_at && x.4), "us-east-1 served nothing before the outage");
    ensure!(!samples.iter().any(|x| x.0 > down_at + 500 && x.0 + 500 < up_at && x.4), "us-east-1 served during its outage");
    ensure!(samples.iter().any(|x| x.0 > up_at + 3000 && x.4), "us-east-1 got no traffic after it came back");
    ensure!(retried >= 1, "the outage caused no failover attempt");
    ensure!((retried as f64) <= samples.len() as f64 * 0.2 + 3.0, "{retried} retries exceed the budget");
    Ok(())
}

// ----- edge cache -----------------------------------------------------

/// A number no other case or run uses (nanoseconds since the epoch).
fn unique() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// A cache key of the case's own: an item id no other case or run uses.
fn item_id(case: &str) -> String {
    format!("{case}-{}", unique())
}

/// Requests for `path` across every region (a region may be ejected
/// after the failover cases, so the pool may answer from either).
fn origin_total(s: &Stack, path: &str) -> Result<u64, String> {
    let mut n = 0;
    for (region, _, _) in &s.origins {
        n += origin_count(s, region, path)?;
    }
    Ok(n)
}

fn item_get(s: &Stack, id: &str, query: &str) -> Result<Resp, String> {
    let r = request("GET", &format!("{}/api/items/{id}{query}", s.edge), &[US], None)?;
    ensure!(r.status == 200, "GET item {id}{query}: {} {}", r.status, r.text());
    Ok(r)
}

fn purge_token() -> Result<String, String> {
    let keys = offload_e2e::local_keys()?;
    let token = keys.purge_token().ok_or("offload.toml has no [cache] purge_token")?;
    Ok(String::from_utf8_lossy(token.expose()).into_owned())
}

fn purge(s: &Stack, token: Option<&str>, body: &str) -> Result<Resp, String> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    request("POST", &format!("{}/_offload/purge", s.edge), &headers, Some(body.as_bytes()))
}

fn second_get_is_a_cache_hit(s: &Stack) -> Result<(), String> {
    let id = item_id("hit");
    let path = format!("/api/items/{id}");
    let first = item_get(s, &id, "")?;
    let cs = cache_status(&first);
    ensure!(cs.starts_with("Offload; fwd=uri-miss; fwd-status=200; ttl=") && cs.ends_with("stored"), "first: cache-status {cs:?}");
    ensure!(first.header("age").is_some(), "first: no Age");
    ensure!(origin_total(s, &path)? == 1, "first GET did not reach the origin once");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = item_get(s, &id, "")?;
    let cs = cache_status(&second);
    ensure!(cs.starts_with("Offload; hit; ttl="), "second: cache-status {cs:?}");
    let age: u64 = second.header("age").ok_or("second: no Age")?.parse().map_err(|_| "second: Age not a number")?;
    ensure!((1..=60).contains(&age), "second: Age {age}");
    ensure!(second.body == first.body, "hit body differs from the stored one");
    ensure!(origin_total(s, &path)? == 1, "the hit reached the origin");
    for r in [&first, &second] {
        ensure!(r.header("surrogate-key").is_none() && r.header("x-offload-meta").is_none(), "internal fields leaked: {:?}", r.headers);
        ensure!(r.header("etag").is_some(), "etag missing");
    }
    // The viewer's own validator is answered by the edge.
    let etag = second.header("etag").unwrap_or_default().to_owned();
    let r = request("GET", &format!("{}{path}", s.edge), &[US, ("if-none-match", &etag)], None)?;
    ensure!(r.status == 304 && cache_status(&r).starts_with("Offload; hit"), "conditional: {} {:?}", r.status, cache_status(&r));
    ensure!(origin_total(s, &path)? == 1, "the conditional hit reached the origin");
    Ok(())
}

fn tracking_params_share_one_cache_entry(s: &Stack) -> Result<(), String> {
    let id = item_id("utm");
    let first = item_get(s, &id, "?utm_source=mail&utm_medium=x")?;
    ensure!(cache_status(&first).contains("stored"), "first: {:?}", cache_status(&first));
    let second = item_get(s, &id, "?fbclid=abc&utm_campaign=y")?;
    ensure!(cache_status(&second).starts_with("Offload; hit"), "second: {:?}", cache_status(&second));
    let plain = item_get(s, &id, "")?;
    ensure!(cache_status(&plain).starts_with("Offload; hit"), "plain: {:?}", cache_status(&plain));
    ensure!(origin_total(s, &format!("/api/items/{id}"))? == 1, "tracking params split the cache");
    Ok(())
}

fn post_invalidates_the_cached_url(s: &Stack) -> Result<(), String> {
    let id = item_id("post");
    let path = format!("/api/items/{id}");
    item_get(s, &id, "")?;
    ensure!(cache_status(&item_get(s, &id, "")?).starts_with("Offload; hit"), "not cached before the POST");
    let r = request("POST", &format!("{}{path}", s.edge), &[US, ("content-type", "text/plain")], Some(b"update"))?;
    ensure!(r.status == 200, "POST: {} {}", r.status, r.text());
    // Invalidated: the next GET revalidates (the origin answers 304).
    let after = item_get(s, &id, "")?;
    let cs = cache_status(&after);
    ensure!(cs.starts_with("Offload; fwd=stale; fwd-status=304"), "after POST: cache-status {cs:?}");
    ensure!(origin_total(s, &path)? == 3, "expected GET + POST + revalidation at the origin");
    ensure!(cache_status(&item_get(s, &id, "")?).starts_with("Offload; hit"), "not fresh again after revalidation");
    Ok(())
}

fn purge_needs_the_token_and_checks_its_body(s: &Stack) -> Result<(), String> {
    let body = r#"{"urls":["/api/items/x"]}"#;
    for token in [None, Some("not-the-purge-token-at-all")] {
        let r = purge(s, token, body)?;
        ensure!(r.status == 401, "token {token:?}: status {}", r.status);
        ensure!(r.json()?["error"].as_str().unwrap_or("").contains("token"), "401 body {}", r.text());
    }
    let token = purge_token()?;
    for (bad, field) in [("{nope", "body"), (r#"{"urls":"/a"}"#, "urls"), (r#"{"tags":["a"],"hard":true}"#, "hard")] {
        let r = purge(s, Some(&token), bad)?;
        ensure!(r.status == 400, "{bad}: status {}", r.status);
        ensure!(r.json()?["field"] == field, "{bad}: body {}", r.text());
    }
    Ok(())
}

fn purge_by_url_and_by_tag(s: &Stack) -> Result<(), String> {
    let token = purge_token()?;
    let id = item_id("purge");
    let path = format!("/api/items/{id}");
    item_get(s, &id, "")?;
    ensure!(cache_status(&item_get(s, &id, "")?).starts_with("Offload; hit"), "not cached");
    // By URL (hard): the next GET is a miss.
    let r = purge(s, Some(&token), &format!(r#"{{"urls":["{path}"]}}"#))?;
    ensure!(r.status == 200, "purge by url: {} {}", r.status, r.text());
    ensure!(r.json()?["purged"].as_u64() >= Some(1), "purge by url: {}", r.text());
    let cs = cache_status(&item_get(s, &id, "")?).to_owned();
    ensure!(cs.starts_with("Offload; fwd=uri-miss") && cs.contains("stored"), "after URL purge: {cs:?}");
    // By tag, soft: the next GET revalidates.
    let r = purge(s, Some(&token), &format!(r#"{{"tags":["item-{id}"],"soft":true}}"#))?;
    ensure!(r.status == 200 && r.json()?["purged"].as_u64() >= Some(1), "soft purge by tag: {} {}", r.status, r.text());
    let cs = cache_status(&item_get(s, &id, "")?).to_owned();
    ensure!(cs.starts_with("Offload; fwd=stale; fwd-status=304"), "after soft tag purge: {cs:?}");
    // By tag, hard: gone.
    let r = purge(s, Some(&token), &format!(r#"{{"tags":["item-{id}"]}}"#))?;
    ensure!(r.status == 200 && r.json()?["purged"].as_u64() >= Some(1), "purge by tag: {} {}", r.status, r.text());
    let cs = cache_status(&item_get(s, &id, "")?).to_owned();
    ensure!(cs.starts_with("Offload; fwd=uri-miss"), "after tag purge: {cs:?}");
    ensure!(origin_total(s, &path)? == 4, "origin count {}", origin_total(s, &path)?);
    Ok(())
}

fn private_responses_are_never_stored(s: &Stack) -> Result<(), String> {
    let before = origin_total(s, "/api/private")?;
    for _ in 0..2 {
        let r = request("GET", &format!("{}/api/private", s.edge), &[US], None)?;
        ensure!(r.status == 200, "status {}", r.status);
        let cs = cache_status(&r);
        ensure!(cs.starts_with("Offload; fwd=uri-miss") && !cs.contains("stored") && cs.contains("detail="), "cache-status {cs:?}");
    }
    ensure!(origin_total(s, "/api/private")? == before + 2, "a private response was served from cache");
    Ok(())
}

fn concurrent_misses_make_one_origin_request(s: &Stack) -> Result<(), String> {
    let id = item_id("collapse");
    let url = format!("{}/api/items/{id}", s.edge);
    let n = 20;
    // A slow origin (400 ms) so that the requests really overlap the
    // leader's fetch, whatever the machine's scheduling.
    for region in ["us-east-1", "eu-west-1"] {
        shim_control(s, region, "POST", "/_shim/faults", Some(r#"{"latency_ms":400}"#))?;
    }
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, url) = (std::sync::Arc::clone(&barrier), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                request("GET", &url, &[US], None)
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in threads {
        results.push(t.join().map_err(|_| "thread panicked".to_owned()).and_then(|r| r));
    }
    for region in ["us-east-1", "eu-west-1"] {
        shim_control(s, region, "DELETE", "/_shim/faults", None)?;
    }
    let mut statuses = Vec::new();
    for r in results {
        let r = r?;
        ensure!(r.status == 200, "status {} {}", r.status, r.text());
        statuses.push(cache_status(&r).to_owned());
    }
    let count = origin_total(s, &format!("/api/items/{id}"))?;
    ensure!(count == 1, "{n} concurrent misses made {count} origin requests: {statuses:?}");
    ensure!(statuses.iter().filter(|c| c.contains("stored")).count() == 1, "one leader stores: {statuses:?}");
    ensure!(statuses.iter().any(|c| c.contains("collapsed")), "no collapsed waiter: {statuses:?}");
    Ok(())
}

// ----- shared decision table (tests/shared-cases/decisions.json) ------

/// A shared-table target with its `{{link:SCOPE}}`, `{{link-expired:SCOPE}}`
/// and `{{link-tampered:SCOPE}}` placeholders replaced by tokens made with
/// offload.toml's current link key.
fn shared_table_target(target: &str) -> Result<String, String> {
    use offload_core::sign::{link::issue_link, LinkClaims, Scope};
    let mut out = target.to_owned();
    while let Some(start) = out.find("{{") {
        let end = out.get(start..).and_then(|t| t.find("}}")).ok_or("unclosed placeholder")? + start;
        let inner = out.get(start + 2..end).unwrap_or("").to_owned();
        let (kind, scope) = inner.split_once(':').ok_or_else(|| format!("placeholder {inner:?}"))?;
        let expires_at = if kind == "link-expired" { now_secs() - 60 } else { now_secs() + 300 };
        let claims = LinkClaims::new(Scope::parse(scope).map_err(|e| e.to_string())?, expires_at);
        let mut token = issue_link(&link_key()?, &claims).map_err(|e| e.to_string())?;
        match kind {
            "link" | "link-expired" => {}
            // Change the MAC's first character (all of its bits count).
            "link-tampered" => {
                let at = token.find('.').ok_or("token without a MAC")? + 1;
                let c = if token.get(at..=at) == Some("A") { "B" } else { "A" };
                token.replace_range(at..=at, c);
            }
            other => return Err(format!("unknown placeholder {other:?}")),
        }
        out.replace_range(start..end + 2, &token);
    }
    Ok(out)
}

/// One table case through the edge: status, who served it, what the
/// upstream received, and how the request to it was authenticated.
fn shared_decision_case(s: &Stack, case: &serde_json::Value) -> Result<(), String> {
    let (req, want) = (&case["request"], &case["expect"]);
    let method = req["method"].as_str().ok_or("no request.method")?;
    let target = shared_table_target(req["target"].as_str().ok_or("no request.target")?)?;
    let v = &req["viewer"];
    let mut geo = format!("country={}", v["country"].as_str().ok_or("no request.viewer.country")?);
    if let (Some(lat), Some(lon)) = (v["lat"].as_f64(), v["lon"].as_f64()) {
        geo.push_str(&format!(";lat={lat};lon={lon}"));
    }
    let mut headers = vec![("x-offload-geo".to_owned(), geo)];
    for (n, val) in req["headers"].as_object().into_iter().flatten() {
        headers.push((n.clone(), val.as_str().unwrap_or("").to_owned()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let r = request(method, &format!("{}{target}", s.edge), &headers, req["body"].as_str().map(str::as_bytes))?;

    let status = want["status"].as_u64().ok_or("no expect.status")?;
    ensure!(u64::from(r.status) == status, "status {} want {status}: {}", r.status, r.text());
    let region = r.header("x-origin-region");
    let upstream = want["upstream"].as_str();
    match upstream {
        // Answered by the edge: its JSON error, no origin involved.
        None => {
            ensure!(region.is_none(), "answered by origin {region:?}, want the edge");
            let body = r.json()?;
            ensure!(body["status"].as_u64() == Some(status), "not the edge's error body: {}", r.text());
            if let Some(e) = want["error"].as_str() {
                ensure!(body["error"].as_str().unwrap_or("").contains(e), "error {} lacks {e:?}", body["error"]);
            }
        }
        Some(u) if u.starts_with("bucket:") => ensure!(region.is_none(), "served by origin {region:?}, want {u}"),
        Some(u) => ensure!(region == Some(u), "served by {region:?}, want {u}"),
    }

    let forwarded = want["forwarded"].as_str();
    if let (Some(fwd), Some(seen)) = (forwarded, r.header("x-origin-uri")) {
        // The origin's echo of the target it received.
        ensure!(seen == fwd, "origin received {seen:?}, want {fwd:?}");
    } else if let Some(file) = want["body_file"].as_str() {
        // A bucket object: the bucket is seeded with the site built from
        // www/, so `/www/<key>` is the built file `<key>`: the body proves
        // the key.
        // (That no query reaches the bucket is visible only in the Lambda
        // runner, which sees the rewritten request.)
        ensure!(forwarded == Some(format!("/{file}").as_str()), "table: forwarded {forwarded:?} is not /{file}");
        let built = offload_e2e::site::dir(&offload_e2e::root()).join(file.strip_prefix("www/").ok_or("table: body_file outside www/")?);
        let bytes = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
        if method == "HEAD" {
            // No body; the object exists (the bucket answers 404 for a
            // key it lacks) and has the file's length where the answer
            // says one (the answer to HEAD through wrangler dev carries none).
            let len = r.header("content-length").and_then(|v| v.parse::<usize>().ok());
            ensure!(r.body.is_empty() && len.is_none_or(|l| l == bytes.len()), "HEAD: content-length {len:?}, {} body bytes; want {} and none", r.body.len(), bytes.len());
        } else {
            ensure!(r.body == bytes, "body is not {file}: {:.200}", r.text());
        }
    } else if let Some(body) = want["body"].as_str() {
        ensure!(r.text() == body, "body {:?} want {body:?}", r.text());
    } else {
        ensure!(forwarded.is_none(), "no way to see that {forwarded:?} was forwarded");
    }

    // Origin auth: the origins refuse requests without a valid header, so
    // a 200 from a region proves it; /api/headers also shows it.
    if want["origin_auth"].as_bool() == Some(true) {
        ensure!(region.is_some() && r.status == 200, "no origin accepted the request");
        if method != "HEAD" && forwarded.is_some_and(|f| f.starts_with("/api/headers")) {
            let auth = r.json()?["x-offload-auth"].as_str().unwrap_or("").to_owned();
            ensure!(auth.starts_with("v1,ts=") && !auth.ends_with("sig=AAAA"), "origin saw x-offload-auth {auth:?}");
        }
    }
    // SigV4: the bucket is private (anonymous reads get 403), so its 200
    // with the object proves a valid signature.
    if want["bucket_sigv4"].as_bool() == Some(true) {
        ensure!(upstream.is_some_and(|u| u.starts_with("bucket:")) && r.status == 200, "no signed bucket read");
    }
    Ok(())
}

fn shared_decision_table_matches_on_workers(s: &Stack) -> Result<(), String> {
    let path = offload_e2e::root().join("tests/shared-cases/decisions.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let cases = table["cases"].as_array().ok_or("no cases")?;
    ensure!(!cases.is_empty(), "the table has no cases");
    // An earlier case may have left us-east-1 ejected.
    wait_us_east_serves(s)?;
    let (mut failures, mut not_applicable) = (Vec::new(), Vec::new());
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        if let Some(reason) = case["not_applicable"]["workers"].as_str() {
            not_applicable.push(format!("{name}: {reason}"));
            continue;
        }
        if let Err(e) = shared_decision_case(s, case) {
            failures.push(format!("{name}: {e}"));
        }
    }
    println!(
        "    shared decisions (workers): {} cases, {} checked, {} not applicable, {} failed",
        cases.len(),
        cases.len() - not_applicable.len(),
        not_applicable.len(),
        failures.len()
    );
    for n in &not_applicable {
        println!("      not applicable: {n}");
    }
    ensure!(failures.is_empty(), "{} of {} cases differ:\n    {}", failures.len(), cases.len(), failures.join("\n    "));
    Ok(())
}

// ----- bounded bodies ---------------------------------------------------------

/// GET a blob through the edge (`query`: more parameters, `&k=v...`) and
/// check every byte.
fn blob_get(s: &Stack, bytes: u64, seed: u64, query: &str) -> Result<Resp, String> {
    let r = request("GET", &format!("{}/api/blob/{bytes}?seed={seed}{query}", s.edge), &[US], None)?;
    ensure!(r.status == 200, "blob {bytes}: status {} {}", r.status, r.text());
    ensure!(r.body.len() as u64 == bytes, "blob {bytes}: {} bytes received", r.body.len());
    let bad = r.body.iter().enumerate().position(|(i, b)| *b != blob_byte(i as u64, seed));
    ensure!(bad.is_none(), "blob {bytes}: byte {bad:?} differs");
    Ok(r)
}

fn large_storable_responses_arrive_whole_and_are_not_stored(s: &Stack) -> Result<(), String> {
    // Larger than max_entry_bytes (4 MiB): streamed complete, not stored.
    // A seed of its own: the small blob's URL is this case's alone.
    let seed = unique();
    let big = 6_000_000;
    let path = format!("/api/blob/{big}");
    let before = origin_total(s, &path)?;
    blob_get(s, big, seed, "")?;
    let again = blob_get(s, big, seed, "")?;
    ensure!(!cache_status(&again).contains("hit"), "second GET was served from the cache: {:?}", cache_status(&again));
    ensure!(origin_total(s, &path)? == before + 2, "the second GET did not reach the origin");
    // A small one is stored and served byte-exact from the cache.
    let small = 100_000;
    blob_get(s, small, seed, "")?;
    let hit = blob_get(s, small, seed, "")?;
    ensure!(cache_status(&hit).starts_with("Offload; hit"), "small blob: {:?}", cache_status(&hit));
    Ok(())
}

/// A compressing origin: `fetch()` hands the Worker the decoded body with
/// the compressed `Content-Length` (/work/shared/WORKERD-NOTES.md), so a
/// small declared length can stand for a body past the read-whole limit
/// (64 KiB). It must arrive whole and decoded, be stored, and be served
/// again byte-exact from the cache; the declared length never bounds it.
fn a_gzip_body_longer_than_its_declared_length_arrives_whole(s: &Stack) -> Result<(), String> {
    let seed = unique();
    let bytes: u64 = 300_000;
    let first = blob_get(s, bytes, seed, "&gzip=1")?;
    ensure!(first.header("content-encoding").is_none(), "decoded body still labelled {:?}", first.header("content-encoding"));
    let hit = blob_get(s, bytes, seed, "&gzip=1")?;
    ensure!(cache_status(&hit).starts_with("Offload; hit"), "second GET: {:?}", cache_status(&hit));
    Ok(())
}

/// The per-try timeout (`try_timeout_ms = 3000`) bounds the wait for the
/// response head, never the body: a body that takes longer than that to
/// arrive streams through whole.
fn a_body_slower_than_the_try_timeout_arrives_whole(s: &Stack) -> Result<(), String> {
    let seed = unique();
    // 6 chunks of 64 KiB, 800 ms apart: the last arrives after 4 s.
    let bytes: u64 = 6 * 65_536;
    let started = std::time::Instant::now();
    blob_get(s, bytes, seed, "&cc=no-store&drip_ms=800")?;
    let took = started.elapsed();
    ensure!(took.as_millis() >= 3_500, "the body came in {took:?}: the origin did not drip");
    Ok(())
}

fn uploads_reach_the_origin_byte_exact(s: &Stack) -> Result<(), String> {
    // Under and over replay_body_max_bytes (64 KiB), declared and chunked.
    for (len, declared) in [(1_000, true), (3_000_000, true), (10_000, false), (700_000, false), (0, true)] {
        let seed = len % 251 + 1;
        let body = BlobReader { offset: 0, len, seed };
        let url = format!("{}/api/sink?seed={seed}", s.edge);
        let r = upload(&url, &[US, ("content-type", "application/octet-stream")], body, declared)?;
        ensure!(r.status == 200, "upload {len} (declared {declared}): {} {}", r.status, r.text());
        let v = r.json()?;
        ensure!(v["body_len"].as_u64() == Some(len), "upload {len} (declared {declared}): origin got {}", v["body_len"]);
        ensure!(v["pattern_ok"] == true, "upload {len} (declared {declared}): bytes differ at the origin");
    }
    Ok(())
}

/// POST a declared body over a raw connection, writing it from another
/// thread while the answer is read: the edge may answer (and stop reading)
/// before the body is through, which a client library reports as a failed
/// write instead of the answer.
fn post_raw(path: &str, headers: &[(&str, &str)], body_len: usize) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", offload_e2e::EDGE_PORT)).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\ncontent-length: {body_len}\r\n",
        offload_e2e::EDGE_PORT
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut w = c.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let chunk = vec![b'x'; 16 * 1024];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            if w.write_all(&chunk[..n]).is_err() {
                break; // the edge stopped reading: fine, its answer is what counts
            }
            left -= n;
        }
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match c.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("read: {e}")),
            Err(_) => break,
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
            if len.is_some_and(|l| buf.len() >= end + 4 + l) {
                break;
            }
        }
    }
    let _ = c.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status line: {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

fn oversized_purge_bodies_are_413(s: &Stack) -> Result<(), String> {
    let _ = s;
    let bearer = format!("Bearer {}", purge_token()?);
    // A declared body over the 256 KiB cap: 413 naming the body.
    let (status, body) = post_raw("/_offload/purge", &[("authorization", &bearer), ("content-type", "application/json")], 300 * 1024)?;
    ensure!(status == 413, "declared 300 KiB: status {status} {body}");
    ensure!(body.contains("\"field\":\"body\""), "declared 300 KiB: {body}");
    // Without the token: 401 (the token is checked from the head).
    let (status, body) = post_raw("/_offload/purge", &[("authorization", "Bearer wrong-token-0123456789")], 300 * 1024)?;
    ensure!(status == 401, "wrong token: status {status} {body}");
    // (That neither body is read is the core's purge_precheck, unit-tested;
    // wrangler dev's proxy in front of workerd may take the body anyway.)
    Ok(())
}

fn forced_revalidation_errors_never_replace_the_entry(s: &Stack) -> Result<(), String> {
    let id = item_id("forced");
    let first = item_get(s, &id, "")?;
    // The origin answers 404 (not a failover status, so it reaches the
    // cache); a viewer forcing a revalidation gets it...
    let region = "us-east-1";
    shim_control(s, region, "POST", "/_shim/faults", Some(r#"{"fail_ratio":1.0,"fail_status":404}"#))?;
    let forced = request("GET", &format!("{}/api/items/{id}", s.edge), &[US, ("cache-control", "no-cache")], None);
    shim_control(s, region, "DELETE", "/_shim/faults", None)?;
    let forced = forced?;
    ensure!(forced.status == 404, "forced revalidation: status {} {}", forced.status, forced.text());
    // ...and the next viewer still gets the stored 200.
    let next = item_get(s, &id, "")?;
    ensure!(cache_status(&next).starts_with("Offload; hit"), "after the forced error: {:?}", cache_status(&next));
    ensure!(next.body == first.body, "the stored body changed");
    Ok(())
}

// ----- the hostile-input suite (tests/shared-cases/hostile.json) -----

/// The table's non-token placeholders for this platform: `{{host}}` is the
/// Host the clean requests carry (`localhost:<edge port>`), `{{run}}` is
/// unique per run (the platform cache persists across runs).
fn hostile_expand(text: &str, host: &str, run: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let j = rest[i..].find("}}").ok_or("unclosed placeholder")? + i;
        let inner = &rest[i + 2..j];
        out.push_str(&rest[..i]);
        match inner {
            "host" => out.push_str(host),
            "HOST" => out.push_str(&host.to_ascii_uppercase()),
            "host-dot" => out.push_str(&host.replacen(':', ".:", 1)),
            "run" => out.push_str(run),
            _ if inner.starts_with("link") => out.push_str(&rest[i..j + 2]),
            _ => {
                let (c, n) = inner.split_once('*').ok_or_else(|| format!("unknown placeholder {inner:?}"))?;
                out.push_str(&c.repeat(n.parse::<usize>().map_err(|e| format!("{inner}: {e}"))?));
            }
        }
        rest = &rest[j + 2..];
    }
    out.push_str(rest);
    shared_table_target(&out)
}

/// A table request, written byte for byte: the target as given, every
/// header pair in order (a Host only if the case has none), the viewer's
/// place in the trusted test header.
fn hostile_send(req: &serde_json::Value, host: &str, run: &str, skip_headers: bool) -> Result<Resp, String> {
    let method = req["method"].as_str().ok_or("no request.method")?;
    let target = hostile_expand(req["target"].as_str().ok_or("no request.target")?, host, run)?;
    let mut head = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    let pairs: Vec<(String, String)> = if skip_headers {
        Vec::new()
    } else {
        req["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| Ok((p[0].as_str().unwrap_or("").to_owned(), hostile_expand(p[1].as_str().unwrap_or(""), host, run)?)))
            .collect::<Result<_, String>>()?
    };
    if !pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
    }
    for (n, v) in &pairs {
        head.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    let country = req["viewer"]["country"].as_str().unwrap_or("US");
    head.extend_from_slice(format!("x-offload-geo: country={country}\r\n").as_bytes());
    let body = if skip_headers { "" } else { req["body"].as_str().unwrap_or("") };
    if !body.is_empty() {
        head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n");
    offload_e2e::http::raw_request(&format!("127.0.0.1:{}", offload_e2e::EDGE_PORT), &head, body.as_bytes())
}

/// Requests the origins have counted so far (both regions).
fn origin_totals(s: &Stack) -> Result<u64, String> {
    let mut total = 0;
    for (_, _, control) in &s.origins {
        total += get(&format!("{control}/_shim/stats"))?.json()?["total"].as_u64().unwrap_or(0);
    }
    Ok(total)
}

fn hostile_case(s: &Stack, case: &serde_json::Value, run: &str, private: &[u8]) -> Result<(), String> {
    let host = format!("localhost:{}", offload_e2e::EDGE_PORT);
    let req = &case["request"];
    let mut want = case["expect"].clone();
    if let (Some(w), Some(o)) = (want.as_object_mut(), case["platforms"]["workers"].as_object()) {
        w.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let upstream = want["upstream"].as_str();
    let before = if upstream.is_none() { Some(origin_totals(s)?) } else { None };
    let r = hostile_send(req, &host, run, false)?;
    let has_token = req["target"].as_str().unwrap_or("").contains("{{link:");
    ensure!(has_token || !r.body.windows(private.len()).any(|w| w == private), "THE PRIVATE FILE WAS SERVED WITHOUT A VALID TOKEN");
    let status = want["status"].as_u64().ok_or("no expect.status")?;
    ensure!(u64::from(r.status) == status, "status {} want {status}: {:.200}", r.status, r.text());
    let region = r.header("x-origin-region");
    let from_edge = r.header("cache-status").is_some();
    if want["answered_by"] == "platform" {
        ensure!(!from_edge, "answered by the edge, want workerd: {:?}", r.headers);
    }
    match upstream {
        None => {
            ensure!(region.is_none(), "answered by origin {region:?}");
            // (A HEAD answer has no body to read.)
            let has_body = req["method"] != "HEAD";
            if want["answered_by"] != "platform" && has_body {
                ensure!(r.json()?["status"].as_u64() == Some(status), "not the edge's error body: {}", r.text());
            }
            if let Some(e) = want["error"].as_str().filter(|_| has_body) {
                let got = r.json()?["error"].as_str().unwrap_or("").to_owned();
                ensure!(got.contains(e), "error {got:?} lacks {e:?}");
            }
            let after = origin_totals(s)?;
            ensure!(before == Some(after), "the origins counted {:?} → {after} requests", before);
        }
        Some(u) if u.starts_with("bucket:") => {
            ensure!(region.is_none(), "served by origin {region:?}, want {u}");
            // The bucket holds the site built from www/.
            let file = want["forwarded"].as_str().and_then(|f| f.strip_prefix("/www/"));
            if let Some(file) = file.filter(|_| r.status == 200) {
                let built = offload_e2e::site::dir(&offload_e2e::root()).join(file);
                let bytes = std::fs::read(&built).map_err(|e| format!("{}: {e}", built.display()))?;
                ensure!(r.body == bytes, "body is not {}: {:.200}", built.display(), r.text());
            }
        }
        Some(u) => {
            ensure!(region == Some(u), "served by {region:?}, want {u}");
            // The origin's echo of the target it received (/api/headers).
            if let (Some(seen), Some(fwd)) = (r.header("x-origin-uri"), want["forwarded"].as_str()) {
                ensure!(seen == fwd, "origin received {seen:?}, want {fwd:?}");
            }
        }
    }
    if let Some(clean) = case.get("clean").filter(|_| upstream.is_some()) {
        // The origin echoes the headers it got: the attack's must be the
        // clean request's (the origin-auth header aside: its timestamp).
        let c = hostile_send(clean, &host, run, false)?;
        let strip = |mut j: serde_json::Value| {
            if let Some(o) = j.as_object_mut() {
                o.remove("x-offload-auth");
            }
            j
        };
        let (a, b) = (strip(r.json()?), strip(c.json()?));
        ensure!(a == b, "the origin saw\n      attack {a}\n      clean  {b}");
    }
    if let Some(cache) = case.get("cache") {
        let cs = r.header("cache-status").unwrap_or("");
        if let Some(detail) = cache["detail"].as_str() {
            ensure!(cs.contains(&format!("detail={detail}")), "cache-status {cs:?} has no detail={detail}");
        }
        let next = hostile_send(req, &host, run, true)?;
        let ncs = next.header("cache-status").unwrap_or("");
        let want_next = cache["next"].as_str().unwrap_or("");
        let ok = match want_next {
            "miss" => ncs.contains("fwd=uri-miss"),
            "hit" => ncs.contains("hit"),
            _ => false,
        };
        ensure!(ok, "the next viewer got {ncs:?}, want a {want_next}");
    }
    Ok(())
}

fn hostile_suite_on_workers(s: &Stack) -> Result<(), String> {
    let path = offload_e2e::root().join("tests/shared-cases/hostile.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let cases = table["cases"].as_array().ok_or("no cases")?;
    ensure!(cases.len() >= 60, "{} cases", cases.len());
    let private = std::fs::read(offload_e2e::root().join("www/private/report.txt")).map_err(|e| e.to_string())?;
    let run = format!("w{}", now_secs());
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = hostile_case(s, case, &run, &private) {
            failures.push(format!("{}: {e}", case["name"].as_str().unwrap_or("?")));
        }
    }
    println!("    hostile: {} cases, {} held (Workers in workerd)", cases.len(), cases.len() - failures.len());
    ensure!(failures.is_empty(), "{} of {} cases failed:\n    {}", failures.len(), cases.len(), failures.join("\n    "));
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
        ("viewers_land_on_their_region", viewers_land_on_their_region),
        ("origins_refuse_requests_without_edge_auth", origins_refuse_requests_without_edge_auth),
        ("bucket_is_private_and_read_through_signed_requests", bucket_is_private_and_read_through_signed_requests),
        ("signed_links_open_private_files", signed_links_open_private_files),
        ("presigned_uploads_go_straight_to_the_bucket", presigned_uploads_go_straight_to_the_bucket),
        ("a_stopped_region_fails_over_and_comes_back", a_stopped_region_fails_over_and_comes_back),
        ("retry_budget_caps_origin_requests", retry_budget_caps_origin_requests),
        ("failover_under_load_loses_no_gets", failover_under_load_loses_no_gets),
        ("second_get_is_a_cache_hit", second_get_is_a_cache_hit),
        ("tracking_params_share_one_cache_entry", tracking_params_share_one_cache_entry),
        ("post_invalidates_the_cached_url", post_invalidates_the_cached_url),
        ("purge_needs_the_token_and_checks_its_body", purge_needs_the_token_and_checks_its_body),
        ("purge_by_url_and_by_tag", purge_by_url_and_by_tag),
        ("private_responses_are_never_stored", private_responses_are_never_stored),
        ("concurrent_misses_make_one_origin_request", concurrent_misses_make_one_origin_request),
        ("shared_decision_table_matches_on_workers", shared_decision_table_matches_on_workers),
        ("large_storable_responses_arrive_whole_and_are_not_stored", large_storable_responses_arrive_whole_and_are_not_stored),
        ("a_body_slower_than_the_try_timeout_arrives_whole", a_body_slower_than_the_try_timeout_arrives_whole),
        ("a_gzip_body_longer_than_its_declared_length_arrives_whole", a_gzip_body_longer_than_its_declared_length_arrives_whole),
        ("uploads_reach_the_origin_byte_exact", uploads_reach_the_origin_byte_exact),
        ("oversized_purge_bodies_are_413", oversized_purge_bodies_are_413),
        ("forced_revalidation_errors_never_replace_the_entry", forced_revalidation_errors_never_replace_the_entry),
        ("hostile_suite_on_workers", hostile_suite_on_workers),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let all = cases;
    let cases: Vec<&Case> = all.iter().filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()))).collect();
    // `--reverse`: the cases in the opposite order (each starts from the
    // same state, so the order must not matter).
    let mut cases = cases;
    if std::env::args().any(|a| a == "--reverse") {
        cases.reverse();
    }
    if cases.is_empty() {
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        eprintln!("error: no case matches {filter:?}; the cases:\n  {}", names.join("\n  "));
        return ExitCode::FAILURE;
    }
    // Ctrl-C stops the stack's process groups before the harness exits.
    if let Err(e) = offload_supervise::install_interrupt_handler() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
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
        match fresh_state(&stack).map_err(|e| format!("resetting the stack before the case: {e}")).and_then(|()| case(&stack)) {
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
