//! Real-browser tests: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini) against the local stack (origin-shims, the
//! bucket with the site built from www/, the edge in workerd):
//!
//! - the pages load from the private bucket through the edge, with their
//!   fingerprinted assets and the Wasm core;
//! - the explainer in the page gives the same whole decision as the native
//!   core for every case of `tests/shared-cases/explain.json`;
//! - a 5 MB file uploaded from the upload page lands in the bucket byte for
//!   byte, and no request body reaches the web origins;
//! - `cargo xtask publish` of a generated site (200+ files, nested folders,
//!   spaces, non-ASCII names): every file through the edge byte for byte
//!   with the expected headers, a second publish uploads nothing, a change
//!   is uploaded, a deletion deleted and the changed page purged at the edge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use offload_e2e::http::{get, request};
use offload_e2e::Stack;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

/// chromedriver's port (a fixed loopback port, like the stack's).
const DRIVER_PORT: u16 = 18790;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond { return Err(format!($($msg)+)); }
    };
}

fn root() -> PathBuf {
    offload_e2e::root()
}

fn site() -> PathBuf {
    offload_e2e::site::dir(&root())
}

/// chromedriver in its own process group, stopped on drop.
struct Driver(Child);

impl Driver {
    fn start(logs: &Path) -> Result<Self, String> {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let log = std::fs::File::create(logs.join("chromedriver.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg(format!("--port={DRIVER_PORT}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{bin}: {e}"))?;
        let d = Driver(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if get(&format!("http://127.0.0.1:{DRIVER_PORT}/status")).is_ok_and(|r| r.status == 200) {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("{bin} did not answer on 127.0.0.1:{DRIVER_PORT}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-s", "TERM", "--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.wait();
    }
}

async fn browser(logs: &Path) -> Result<Client, String> {
    let profile = logs.join("chromium-webdriver-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
        .await
        .map_err(|e| format!("WebDriver session: {e}"))
}

async fn js(c: &Client, script: &str, args: Vec<Value>) -> Result<Value, String> {
    c.execute(script, args).await.map_err(|e| format!("script {script:.60}: {e}"))
}

/// Poll `script` (returning a boolean) until true.
async fn wait_for(c: &Client, script: &str, what: &str, secs: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if js(c, script, vec![]).await? == Value::Bool(true) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("timed out after {secs} s waiting for {what}"))
}

// ----- pages ---------------------------------------------------------------

async fn pages_load_from_the_bucket_through_the_edge(s: &Stack, c: &Client) -> Result<(), String> {
    for (page, title, wasm) in [("/", "Offload: take load off", false), ("/explain.html", "Explain a response", true), ("/upload.html", "Upload straight to S3", true)] {
        c.goto(&format!("{}{page}", s.edge)).await.map_err(|e| format!("{page}: {e}"))?;
        // `goto` can return before headless Chromium has committed the new
        // document (seen on CI: the edge log shows the page served 200 with
        // its title, the driver read ""), so wait for the document to be the
        // page asked for, and say which document it was if it never is.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = js(c, "return [location.pathname, document.readyState, document.title]", vec![]).await?;
            let (path, state, t) = (now[0].as_str().unwrap_or(""), now[1].as_str().unwrap_or(""), now[2].as_str().unwrap_or(""));
            if path == page && state == "complete" && t.starts_with(title) {
                break;
            }
            ensure!(Instant::now() < deadline, "{page}: after 15 s the browser shows {path} ({state}) titled {t:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if wasm {
            wait_for(c, "return document.body.dataset.wasm === 'ready'", &format!("{page}: the Wasm core"), 30).await?;
        } else {
            wait_for(c, "return document.getElementById('live').dataset.state === 'ok'", "/: app.js and /api/time", 30).await?;
        }
        // Every resource the page loaded came through the edge with 200,
        // and is the built file byte for byte.
        let loaded = js(c, "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])", vec![]).await?;
        let mut assets = 0;
        for entry in loaded.as_array().ok_or("no resource list")? {
            let (url, status) = (entry[0].as_str().unwrap_or(""), entry[1].as_u64().unwrap_or(0));
            ensure!(url.starts_with(&s.edge), "{page} loaded {url} from elsewhere");
            ensure!(status == 200, "{page}: {url} answered {status}");
            let path = &url[s.edge.len()..];
            if path.starts_with("/api/") {
                continue;
            }
            let r = get(url)?;
            let file = site().join(path.trim_start_matches('/'));
            let want = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            ensure!(r.body == want, "{url} differs from {}", file.display());
            ensure!(r.header("cache-status").unwrap_or("").starts_with("Offload"), "{url}: cache-status {:?}", r.header("cache-status"));
            assets += 1;
        }
        let want_assets = if wasm { 4 } else { 2 };
        ensure!(assets >= want_assets, "{page}: {assets} assets loaded, expected at least {want_assets}");
    }
    Ok(())
}

// ----- the explainer ---------------------------------------------------------

async fn explainer_in_the_page_matches_the_native_core(s: &Stack, c: &Client) -> Result<(), String> {
    let config = std::fs::read_to_string(root().join("offload.toml")).map_err(|e| e.to_string())?;
    let native = offload_browser::Explainer::from_toml(&config).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(root().join("tests/shared-cases/explain.json")).map_err(|e| e.to_string())?;
    let table: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let now = table["now_ms"].as_u64().ok_or("no now_ms")?;
    c.goto(&format!("{}/explain.html", s.edge)).await.map_err(|e| e.to_string())?;
    wait_for(c, "return document.body.dataset.wasm === 'ready'", "the Wasm core", 30).await?;
    let mut differ = Vec::new();
    let cases = table["cases"].as_array().ok_or("no cases")?;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let mut input = case["case"].clone();
        if input.get("now_ms").is_none() {
            input["now_ms"] = now.into();
        }
        let parsed: offload_browser::Case = serde_json::from_value(input.clone()).map_err(|e| format!("{name}: {e}"))?;
        let want = serde_json::to_value(native.explain(&parsed).map_err(|e| format!("{name}: {e}"))?).map_err(|e| e.to_string())?;
        let got = js(c, "return window.offloadExplain(arguments[0], arguments[1])", vec![input.to_string().into(), config.clone().into()]).await?;
        let got: Value = serde_json::from_str(got.as_str().ok_or_else(|| format!("{name}: not a string: {got}"))?).map_err(|e| e.to_string())?;
        if got != want {
            differ.push(format!("{name}:\n      page   {got}\n      native {want}"));
        }
    }
    println!("    explainer: {} cases, {} differ between the page (Wasm) and the native core", cases.len(), differ.len());
    ensure!(cases.len() >= 30, "only {} cases", cases.len());
    ensure!(differ.is_empty(), "{}", differ.join("\n    "));

    // And through the form, as a person uses it.
    js(
        c,
        "document.getElementById('url').value = '/api/items/7'; \
         document.getElementById('response-headers').value = 'HTTP/1.1 200 OK\\ncache-control: private, max-age=60'; \
         document.getElementById('explain').click(); return true",
        vec![],
    )
    .await?;
    wait_for(c, "return document.getElementById('result').dataset.outcome === 'not-stored'", "the form's decision", 10).await?;
    let why = c.find(Locator::Css("dd[data-field=reason]")).await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
    ensure!(why == "private", "form: reason {why:?}");
    Ok(())
}

// ----- upload ------------------------------------------------------------------

fn origin_body_counts(s: &Stack) -> Result<(u64, u64), String> {
    let mut n = (0, 0);
    for (_, _, control) in &s.origins {
        let stats = get(&format!("{control}/_shim/stats"))?.json()?;
        n.0 += stats["requests_with_body"].as_u64().ok_or("no requests_with_body in the stats")?;
        n.1 += stats["total"].as_u64().unwrap_or(0);
    }
    Ok(n)
}

async fn a_5_mb_upload_goes_straight_to_the_bucket(s: &Stack, c: &Client) -> Result<(), String> {
    use offload_core::sign::link::issue_grant;
    use offload_core::sign::{ContentTypePattern, GrantClaims, KeyScope, Methods};
    const SIZE: usize = 5 * 1024 * 1024;
    let bytes: Vec<u8> = (0..SIZE).map(|i| ((i * 7 + i / 4096) % 251) as u8).collect();
    let dir = s.logs.join("upload");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let file = dir.join("five megabytes.bin");
    std::fs::write(&file, &bytes).map_err(|e| e.to_string())?;
    let keys = offload_e2e::local_keys()?;
    let key = keys.links().and_then(|l| l.current()).ok_or("no link key")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let claims = GrantClaims {
        expires_at: now + 300,
        client_ip: None,
        methods: Methods::PRESIGNABLE,
        bucket: "uploads".into(),
        keys: KeyScope::Prefix("browser/".into()),
        max_content_length: Some(SIZE as u64),
        content_types: vec![ContentTypePattern::parse("application/octet-stream").map_err(|e| e.to_string())?],
        max_expires: 600,
    };
    let grant = issue_grant(key, &claims).map_err(|e| e.to_string())?;
    let before = origin_body_counts(s)?;

    c.goto(&format!("{}/upload.html", s.edge)).await.map_err(|e| e.to_string())?;
    wait_for(c, "return document.body.dataset.wasm === 'ready'", "the Wasm core", 30).await?;
    js(c, "document.getElementById('grant').value = arguments[0]; document.getElementById('key').value = 'browser/'; return true", vec![grant.into()]).await?;
    let input = c.find(Locator::Id("file")).await.map_err(|e| e.to_string())?;
    input.send_keys(&file.display().to_string()).await.map_err(|e| format!("file input: {e}"))?;
    c.find(Locator::Id("upload")).await.map_err(|e| e.to_string())?.click().await.map_err(|e| e.to_string())?;
    wait_for(c, "const s = document.getElementById('upload-status').dataset.state; return s === 'done' || s === 'error'", "the upload", 120).await?;
    let status = js(c, "const s = document.getElementById('upload-status'); return [s.dataset.state, s.textContent, s.dataset.sent, document.getElementById('progress').value]", vec![]).await?;
    ensure!(status[0] == "done", "upload: {status}");
    ensure!(status[2].as_str() == Some(&SIZE.to_string()), "progress events reported {} bytes sent, want {SIZE}", status[2]);
    ensure!(status[3].as_f64() == Some(100.0), "progress bar at {}", status[3]);

    let landed = root().join(".offload/bucket/uploads/browser/five megabytes.bin");
    let got = std::fs::read(&landed).map_err(|e| format!("{}: {e}", landed.display()))?;
    ensure!(got.len() == SIZE && got == bytes, "the bucket holds {} bytes that differ from the file", got.len());
    let after = origin_body_counts(s)?;
    ensure!(after.0 == before.0, "the web origins saw {} request(s) with a body", after.0 - before.0);
    ensure!(after.1 == before.1, "the web origins saw {} request(s) during the upload", after.1 - before.1);
    println!("    upload: {SIZE} bytes from the page to the bucket, byte for byte; web origins: 0 requests, 0 bodies");
    Ok(())
}

// ----- publish -------------------------------------------------------------------

const PATH_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// A generated site: nested folders, spaces, non-ASCII names,
/// fingerprinted and plain assets. (relative path, bytes).
fn generated_site() -> Vec<(String, Vec<u8>)> {
    let dirs = ["", "docs", "docs/guide", "docs/guide/deep/er", "blog/2024", "with space", "ünïcødé", "日本語/ページ", "assets"];
    let mut files = Vec::new();
    for (d, dir) in dirs.iter().enumerate() {
        let p = |name: String| if dir.is_empty() { name } else { format!("{dir}/{name}") };
        files.push((p("index.html".into()), format!("<!doctype html><title>{dir}</title><h1>index of /{dir}</h1>").into_bytes()));
        for i in 0..8 {
            files.push((p(format!("page {i}.html")), format!("<!doctype html><p>page {i} in /{dir} ✓</p>").into_bytes()));
        }
        for i in 0..5 {
            // A content hash as generators write it (a letter and a digit at least).
            let hash = format!("c{:06x}9", 0x1a2b3c_u32.wrapping_mul(d as u32 * 7 + i + 1) & 0xff_ffff);
            files.push((p(format!("app{i}.{hash}.js")), format!("console.log({d}, {i});").into_bytes()));
            files.push((p(format!("data-{i}.json")), format!("{{\"dir\": \"{dir}\", \"i\": {i}}}").into_bytes()));
            files.push((p(format!("café {i}.txt")), format!("café {i} in {dir}\n").repeat(i as usize + 1).into_bytes()));
        }
        for i in 0..4 {
            files.push((p(format!("style-{i}.css")), format!("p{{margin:{i}px}} /* {dir} */").into_bytes()));
            files.push((p(format!("pic {i}.svg")), format!("<svg xmlns=\"http://www.w3.org/2000/svg\"><text>{i}</text></svg>").into_bytes()));
        }
        files.push((p("blob.bin".into()), (0..3000u32).map(|b| (b * 31 + d as u32) as u8).collect()));
    }
    files
}

fn publish(dir: &Path) -> Result<String, String> {
    publish_with(dir, &["--bucket", "www", "--prefix", "gen/"])
}

fn publish_with(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["run", "-q", "-p", "xtask", "--", "publish"])
        .arg(dir)
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("cargo xtask publish: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "publish failed ({}):\n{stdout}\n{stderr}", out.status);
    let line = stdout.lines().find(|l| l.starts_with("publish: ")).ok_or_else(|| format!("no summary line in {stdout}"))?;
    Ok(line.to_owned())
}

fn figure(summary: &str, what: &str) -> Result<u64, String> {
    // "publish: 218 files in DIR: 218 uploaded (N bytes), 0 unchanged, 0 deleted, 0 purged, 0 failed; 3.1 s"
    let at = summary.find(&format!(" {what}")).ok_or_else(|| format!("no {what:?} in {summary:?}"))?;
    let before = summary[..at].rsplit([' ', ':', ',']).next().unwrap_or("");
    before.parse().map_err(|_| format!("no number before {what:?} in {summary:?}"))
}

fn edge_url(s: &Stack, rel: &str) -> String {
    format!("{}/gen/{}", s.edge, utf8_percent_encode(rel, PATH_ENCODE))
}

fn expected_type(rel: &str) -> &'static str {
    match rel.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn published_site_is_served_byte_for_byte(s: &Stack, _c: &Client) -> Result<(), String> {
    let dir = s.logs.join("generated-site");
    let _ = std::fs::remove_dir_all(&dir);
    let files = generated_site();
    for (rel, bytes) in &files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    ensure!(files.len() >= 200, "only {} files", files.len());

    let first = publish(&dir)?;
    println!("    publish (first run):     {first}");
    ensure!(figure(&first, "uploaded")? == files.len() as u64, "first run: {first}");
    let mut immutable = 0;
    for (rel, bytes) in &files {
        let url = edge_url(s, rel);
        let r = get(&url)?;
        ensure!(r.status == 200, "{rel}: {} {}", r.status, r.text());
        ensure!(&r.body == bytes, "{rel}: the body differs");
        ensure!(r.header("content-type") == Some(expected_type(rel)), "{rel}: content-type {:?}", r.header("content-type"));
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let fingerprinted = name.starts_with("app") && name.ends_with(".js");
        let cc = r.header("cache-control").unwrap_or("");
        if fingerprinted {
            immutable += 1;
            ensure!(cc == "public, max-age=31536000, immutable", "{rel}: cache-control {cc:?}");
        } else {
            ensure!(cc == "public, max-age=60, stale-while-revalidate=86400", "{rel}: cache-control {cc:?}");
        }
        ensure!(r.headers.iter().all(|(n, _)| !n.to_ascii_lowercase().starts_with("x-amz-")), "{rel}: x-amz-* leaked");
    }
    // A folder's URL serves its index.html.
    let r = get(&format!("{}/gen/docs/guide/", s.edge))?;
    ensure!(r.status == 200 && r.text().contains("index of /docs/guide"), "folder URL: {} {}", r.status, r.text());

    let second = publish(&dir)?;
    println!("    publish (unchanged run): {second}");
    ensure!(figure(&second, "uploaded")? == 0 && figure(&second, "unchanged")? == files.len() as u64, "second run: {second}");

    // A changed page (cached at the edge now) and a deleted file.
    let page = "日本語/ページ/page 3.html";
    let cached = get(&edge_url(s, page))?;
    ensure!(cached.header("cache-status").unwrap_or("").starts_with("Offload; hit"), "{page} not cached: {:?}", cached.header("cache-status"));
    std::fs::write(dir.join(page), "<!doctype html><p>changed</p>").map_err(|e| e.to_string())?;
    std::fs::remove_file(dir.join("with space/pic 2.svg")).map_err(|e| e.to_string())?;
    let third = publish(&dir)?;
    println!("    publish (one change, one deletion): {third}");
    ensure!(figure(&third, "uploaded")? == 1 && figure(&third, "deleted")? == 1, "third run: {third}");
    ensure!(figure(&third, "purged")? >= 1, "third run purged nothing: {third}");
    let r = get(&edge_url(s, page))?;
    ensure!(r.text() == "<!doctype html><p>changed</p>", "{page} after publish: {} (cache-status {:?})", r.text(), r.header("cache-status"));
    let gone = request("GET", &edge_url(s, "with space/pic 2.svg"), &[("cache-control", "no-cache")], None)?;
    ensure!(gone.status == 404, "deleted file: {}", gone.status);
    println!("    publish: {} files served byte for byte ({immutable} immutable)", files.len());
    Ok(())
}

/// `--fingerprint`: the page refers to a hashed copy of its stylesheet,
/// served immutable, and the page itself is the rewritten one.
fn publish_fingerprints_what_the_html_refers_to(s: &Stack) -> Result<(), String> {
    let dir = s.logs.join("fingerprint-site");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("css")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("css/main style.css"), "body{color:#123}").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("index.html"), r#"<link rel="stylesheet" href="css/main%20style.css"><p>fp</p>"#).map_err(|e| e.to_string())?;
    let summary = publish_with(&dir, &["--bucket", "www", "--prefix", "fp/", "--fingerprint"])?;
    ensure!(figure(&summary, "uploaded")? == 3, "fingerprint publish: {summary}");
    let page = get(&format!("{}/fp/", s.edge))?;
    let text = page.text();
    let href = text.split("href=\"").nth(1).and_then(|t| t.split('"').next()).ok_or_else(|| format!("no href in {text}"))?;
    ensure!(href.starts_with("css/main%20style.") && href.ends_with(".css") && href != "css/main%20style.css", "href {href:?}");
    let css = get(&format!("{}/fp/{href}", s.edge))?;
    ensure!(css.status == 200 && css.text() == "body{color:#123}", "{href}: {} {}", css.status, css.text());
    ensure!(css.header("cache-control") == Some("public, max-age=31536000, immutable"), "{href}: cache-control {:?}", css.header("cache-control"));
    println!("    publish --fingerprint: the page refers to {href} (immutable)");
    Ok(())
}

fn publish_refuses_bad_input(_s: &Stack) -> Result<(), String> {
    let run = |args: &[&str]| {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["run", "-q", "-p", "xtask", "--", "publish"])
            .args(args)
            .current_dir(root())
            .output()
            .map(|o| (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned()))
            .map_err(|e| e.to_string())
    };
    let (ok, err) = run(&["/no/such/folder"])?;
    ensure!(!ok && err.contains("/no/such/folder"), "missing folder: {err}");
    let (ok, err) = run(&[".", "--bucket", "nope"])?;
    ensure!(!ok && err.contains("unknown bucket \"nope\""), "unknown bucket: {err}");
    Ok(())
}

type AsyncCase = for<'a> fn(&'a Stack, &'a Client) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>;

fn main() -> ExitCode {
    let cases: Vec<(&str, AsyncCase)> = vec![
        ("pages_load_from_the_bucket_through_the_edge", |s, c| Box::pin(pages_load_from_the_bucket_through_the_edge(s, c))),
        ("explainer_in_the_page_matches_the_native_core", |s, c| Box::pin(explainer_in_the_page_matches_the_native_core(s, c))),
        ("a_5_mb_upload_goes_straight_to_the_bucket", |s, c| Box::pin(a_5_mb_upload_goes_straight_to_the_bucket(s, c))),
        ("published_site_is_served_byte_for_byte", |s, c| Box::pin(published_site_is_served_byte_for_byte(s, c))),
        ("publish_fingerprints_what_the_html_refers_to", |s, _| Box::pin(async move { publish_fingerprints_what_the_html_refers_to(s) })),
        ("publish_refuses_bad_input", |s, _| Box::pin(async move { publish_refuses_bad_input(s) })),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let cases: Vec<_> = cases.into_iter().filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str()))).collect();
    println!("starting the local stack (origin-shims, bucket with the built site, edge in workerd)...");
    let stack = match Stack::start() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: could not start the stack: {e}");
            return ExitCode::FAILURE;
        }
    };
    let driver = match Driver::start(&stack.logs) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: chromedriver: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let failed = rt.block_on(async {
        let client = match browser(&stack.logs).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return vec!["webdriver session"];
            }
        };
        println!("\nrunning {} tests in headless Chromium", cases.len());
        let mut failed = Vec::new();
        for (name, case) in &cases {
            match case(&stack, &client).await {
                Ok(()) => println!("test {name} ... ok"),
                Err(e) => {
                    println!("test {name} ... FAILED\n    {e}");
                    failed.push(*name);
                }
            }
        }
        let _ = client.close().await;
        failed
    });
    drop(driver);
    drop(stack);
    if failed.is_empty() {
        println!("\ntest result: ok. {} passed; 0 failed", cases.len());
        ExitCode::SUCCESS
    } else {
        println!("\nfailures: {}\ntest result: FAILED. {} failed", failed.join(", "), failed.len());
        ExitCode::FAILURE
    }
}
