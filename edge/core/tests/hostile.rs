//! The hostile-input suite (tests/shared-cases/hostile.json), natively:
//! each case through `Edge::canonicalize` → `Edge::plan` → the L1 cache
//! (`EdgeCache`) → `Edge::begin`, with the repository's offload.toml, the
//! way an executor runs them. The upstream is simulated in-process (the
//! bucket serves the files of `www/`, the origin answers like origin-shim:
//! `/api/headers` no-store, `/healthz`, 404 otherwise), so the status of a
//! forwarded request is the simulated upstream's; the same table runs
//! against the real upstreams in the Workers end-to-end run.
//!
//! Besides each case's expectation: no response to a request without a
//! valid token carries the private file's bytes, and for `clean` cases the
//! request sent upstream equals the clean request's, byte for byte.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use offload_core::cache::edge::{AfterResponse, CacheDecision};
use offload_core::cache::EdgeCache;
use offload_core::sign::link::issue_link;
use offload_core::sign::{LinkClaims, Scope};
use offload_core::{Config, Edge, EdgeState, Plan, Step, Upstream, Viewer};
use serde_json::Value;

const NOW_MS: u64 = 1_700_000_000_000;
const HOST: &str = "edge.example";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a request got.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    /// Region name, `bucket:<alias>`, or `None` when the edge (or the
    /// platform's request parser) answered.
    upstream: Option<String>,
    forwarded: Option<String>,
    /// The request sent upstream (for `clean` comparisons).
    sent: Option<(String, Vec<(String, Vec<u8>)>)>,
    error: Option<String>,
    cache_status: String,
    body: Vec<u8>,
}

struct Suite {
    edge: Edge,
    state: EdgeState,
    cache: EdgeCache,
    config: Config,
    private_file: Vec<u8>,
}

fn expand(s: &str, edge: &Edge, host: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else { break };
        let inner = &rest[i + 2..i + j];
        rest = &rest[i + j + 2..];
        let (kind, arg) = inner.split_once(':').unwrap_or((inner, ""));
        let key = edge.keys().links().and_then(|l| l.current()).expect("offload.toml has a [links] key");
        let token = |expires: u64| issue_link(key, &LinkClaims::new(Scope::parse(arg).unwrap(), expires)).unwrap();
        match kind {
            "link" => out.push_str(&token(NOW_MS / 1000 + 300)),
            "link-expired" => out.push_str(&token(NOW_MS / 1000 - 60)),
            "link-tampered" => {
                let t = token(NOW_MS / 1000 + 300);
                let (p, mac) = t.split_once('.').unwrap();
                let first = if mac.starts_with('A') { 'B' } else { 'A' };
                out.push_str(&format!("{p}.{first}{}", &mac[1..]));
            }
            "host" => out.push_str(host),
            "HOST" => out.push_str(&host.to_ascii_uppercase()),
            "host-dot" => out.push_str(&format!("{host}.")),
            "run" => out.push_str("native"),
            rep => {
                let (c, n) = rep.split_once('*').unwrap_or_else(|| panic!("unknown placeholder {{{{{rep}}}}}"));
                out.push_str(&c.repeat(n.parse().unwrap()));
            }
        }
    }
    out.push_str(rest);
    out
}

impl Suite {
    fn new() -> Self {
        let text = std::fs::read_to_string(root().join("offload.toml")).unwrap();
        let config = Config::from_toml(&text).unwrap();
        // Local test values for every secret the config names (Workers
        // bindings, as the local stack gives them).
        let secrets = offload_core::secret::SecretMap::from_bindings(config.secret_refs().into_iter().filter_map(|(field, r)| {
            let src = r.source(offload_core::secret::Platform::Workers)?;
            let offload_core::secret::Source::Binding(name) = src else { return None };
            Some((name.to_owned(), format!("hostile-suite-test-value-{field}-0123456789abcdef")))
        }));
        let edge = Edge::new(config.clone(), &secrets).unwrap();
        let state = EdgeState::new(&config);
        let cache = edge.new_cache();
        let private_file = std::fs::read(root().join("www/private/report.txt")).unwrap();
        Self { edge, state, cache, config, private_file }
    }

    /// The region whose origin a request URL goes to.
    fn region_of(&self, authority: &str) -> Option<String> {
        let regions = self.config.routing().regions();
        regions.iter().find(|r| r.origins().iter().any(|o| o.base_url().ends_with(authority))).map(|r| r.name().to_owned())
    }

    /// The simulated upstream: the bucket holds `www/`, the origin answers
    /// like origin-shim's routes this suite uses.
    fn upstream_answer(upstream: &str, path: &str) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
        if let Some(key) = upstream.strip_prefix("bucket:").and(path.strip_prefix("/www/")) {
            let key: String = percent_encoding::percent_decode_str(key).decode_utf8_lossy().into_owned();
            let file = root().join("www").join(&key);
            return match std::fs::read(&file) {
                Ok(b) if !key.split('/').any(|s| s == ".." || s.is_empty()) => (200, vec![("content-type", "text/plain".into())], b),
                _ => (404, vec![("content-type", "application/xml".into())], b"<Error><Code>NoSuchKey</Code></Error>".to_vec()),
            };
        }
        match path.split('?').next().unwrap_or("") {
            "/api/headers" => (200, vec![("cache-control", "no-store".into())], b"{}".to_vec()),
            "/healthz" => (200, vec![("cache-control", "no-store".into())], b"ok".to_vec()),
            _ => (404, vec![("cache-control", "no-store".into())], b"{\"error\":\"not found\"}".to_vec()),
        }
    }

    fn build(&self, req: &Value, host: &str, skip_header: Option<&str>) -> Result<Request<()>, String> {
        let method = req["method"].as_str().unwrap_or("GET");
        let target = expand(req["target"].as_str().unwrap_or("/"), &self.edge, host);
        let mut r = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).map_err(|e| format!("method: {e}"))?)
            .uri(target.as_str())
            .body(())
            .map_err(|e| format!("target {target:.60}: {e}"))?;
        let mut headers = HeaderMap::new();
        let mut has_host = false;
        for pair in req["headers"].as_array().into_iter().flatten() {
            let n = pair[0].as_str().unwrap_or("").to_ascii_lowercase();
            if skip_header == Some(n.as_str()) {
                continue;
            }
            let v = expand(pair[1].as_str().unwrap_or(""), &self.edge, host);
            has_host |= n == "host";
            // A header the `http` crate refuses is one a native server
            // (hyper) refuses before any edge code runs.
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("header {n}: {e}"))?;
            let value = HeaderValue::from_bytes(v.as_bytes()).map_err(|e| format!("header {n}: {e}"))?;
            headers.append(name, value);
        }
        if !has_host && r.uri().authority().is_none() {
            headers.insert(http::header::HOST, HeaderValue::from_str(host).unwrap());
        }
        let country = req["viewer"]["country"].as_str().unwrap_or("US");
        headers.insert("x-offload-geo", HeaderValue::from_str(&format!("country={country}")).unwrap());
        *r.headers_mut() = headers;
        Ok(r)
    }

    fn run(&mut self, req: &Value, skip_header: Option<&str>) -> Answer {
        let r = match self.build(req, HOST, skip_header) {
            Ok(r) => r,
            // Refused by the request parser, before the edge.
            Err(e) => return Answer { status: 400, error: Some(e), ..Answer::default() },
        };
        let respond = |resp: http::Response<Vec<u8>>| {
            let j: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
            Answer {
                status: resp.status().as_u16(),
                error: j["error"].as_str().map(str::to_owned),
                body: resp.body().clone(),
                ..Answer::default()
            }
        };
        let canon = match self.edge.canonicalize(&r) {
            Ok(c) => c,
            Err(resp) => return respond(*resp),
        };
        let viewer = Viewer { ip: Some("203.0.113.178".parse().unwrap()), tls: false, location: Default::default() };
        let mut fwd = match self.edge.plan(&canon, &viewer, NOW_MS) {
            Plan::Respond(resp) => return respond(resp),
            Plan::Forward(f) => f,
        };
        let decision = self.cache.lookup(self.edge.cache_query(&fwd), NOW_MS);
        let fetch = match decision {
            CacheDecision::Respond(c) => {
                let h = c.to_http();
                return Answer {
                    status: h.status().as_u16(),
                    upstream: Some("cache".into()),
                    cache_status: header(h.headers(), "cache-status"),
                    body: h.body().clone(),
                    ..Answer::default()
                };
            }
            CacheDecision::Fetch(f) => Some(f),
            CacheDecision::Bypass(_) => None,
            other => panic!("unexpected cache decision {other:?}"),
        };
        self.edge.begin(&mut fwd, &mut self.state, NOW_MS, 7);
        let Step::Send { request, .. } = &fwd.step else { panic!("no request to send: {:?}", fwd.step) };
        let mut request = request.clone();
        if let Some(f) = &fetch {
            f.prepare(&mut request);
        }
        let upstream = match &fwd.upstream {
            Upstream::Bucket { alias } => format!("bucket:{alias}"),
            Upstream::Origins => {
                let authority = request.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
                self.region_of(&authority).unwrap_or_else(|| format!("unknown upstream {authority}"))
            }
        };
        let forwarded = request.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
        let mut sent_headers: Vec<(String, Vec<u8>)> =
            request.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
        sent_headers.sort();
        let (status, hs, body) = Self::upstream_answer(&upstream, &forwarded);
        let mut headers = HeaderMap::new();
        for (n, v) in hs {
            headers.insert(n, HeaderValue::from_str(&v).unwrap());
        }
        let cache_status = match fetch {
            None => String::new(),
            Some(f) => match self.cache.on_response(f, status, &headers, NOW_MS, NOW_MS) {
                AfterResponse::Store(p) => {
                    let stored = self.cache.store(p, Arc::from(body.clone()), NOW_MS);
                    stored.delivery.apply(&mut fwd.cache_status, &mut headers);
                    fwd.cache_status.to_string()
                }
                AfterResponse::Deliver(d) => {
                    d.apply(&mut fwd.cache_status, &mut headers);
                    fwd.cache_status.to_string()
                }
                other => panic!("unexpected answer to a fresh fetch: {other:?}"),
            },
        };
        self.edge.finish(&fwd, StatusCode::from_u16(status).unwrap(), &mut headers);
        Answer {
            status,
            upstream: Some(upstream),
            forwarded: Some(forwarded.clone()),
            sent: Some((request.uri().to_string(), sent_headers)),
            error: None,
            cache_status: if cache_status.is_empty() { header(&headers, "cache-status") } else { cache_status },
            body,
        }
    }
}

fn header(h: &HeaderMap, n: &str) -> String {
    h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// The case's expectation with the `platforms.native` overrides applied.
fn expectation(case: &Value) -> Value {
    let mut want = case["expect"].clone();
    if let (Some(w), Some(o)) = (want.as_object_mut(), case["platforms"]["native"].as_object()) {
        for (k, v) in o {
            w.insert(k.clone(), v.clone());
        }
    }
    want
}

fn check(suite: &mut Suite, case: &Value) -> Result<(), String> {
    let want = expectation(case);
    let req = &case["request"];
    let got = suite.run(req, None);
    let target = req["target"].as_str().unwrap_or("");
    if !target.contains("{{link:") && got.status < 300 && !suite.private_file.is_empty() {
        let leaked = got.body.windows(suite.private_file.len()).any(|w| w == suite.private_file.as_slice());
        if leaked {
            return Err("THE PRIVATE FILE WAS SERVED WITHOUT A VALID TOKEN".into());
        }
    }
    let mut diffs = Vec::new();
    if Some(u64::from(got.status)) != want["status"].as_u64() {
        diffs.push(format!("status {} want {} ({:?})", got.status, want["status"], got.error));
    }
    let up = got.upstream.as_deref().filter(|u| *u != "cache");
    if got.upstream.as_deref() != Some("cache") && up != want["upstream"].as_str() {
        diffs.push(format!("upstream {up:?} want {}", want["upstream"]));
    }
    if got.upstream.as_deref() != Some("cache") && got.forwarded.as_deref() != want["forwarded"].as_str() {
        diffs.push(format!("forwarded {:?} want {}", got.forwarded, want["forwarded"]));
    }
    if let Some(e) = want["error"].as_str() {
        if !got.error.as_deref().unwrap_or("").contains(e) {
            diffs.push(format!("error {:?} does not contain {e:?}", got.error));
        }
    }
    if let Some(clean) = case.get("clean") {
        let c = suite.run(clean, None);
        if c.sent.is_none() || c.sent != got.sent {
            diffs.push(format!("the upstream request differs from the clean one's:\n      attack {:?}\n      clean  {:?}", got.sent, c.sent));
        }
    }
    if let Some(cache) = case.get("cache") {
        if let Some(detail) = cache["detail"].as_str() {
            if !got.cache_status.contains(&format!("detail={detail}")) {
                diffs.push(format!("cache-status {:?} has no detail={detail}", got.cache_status));
            }
        }
        // The next viewer, without the case's headers.
        let mut next = req.clone();
        if let Some(h) = next.get_mut("headers") {
            *h = Value::Array(vec![]);
        }
        let n = suite.run(&next, None);
        let want_next = cache["next"].as_str().unwrap_or("");
        let ok = match want_next {
            "miss" => n.cache_status.contains("fwd=uri-miss"),
            "hit" => n.cache_status.contains("hit"),
            _ => false,
        };
        if !ok {
            diffs.push(format!("the next viewer got {:?}, want a {want_next}", n.cache_status));
        }
        // A stored answer shared with the next viewer cannot be personal:
        // the credentials never reached the upstream.
        // (A signed bucket request has the edge's own Authorization.)
        let viewer_values: Vec<&str> = req["headers"].as_array().into_iter().flatten().filter_map(|p| p[1].as_str()).collect();
        let credentials = got.sent.as_ref().is_some_and(|(_, h)| {
            h.iter().any(|(n, v)| (n == "cookie" || n == "authorization") && viewer_values.iter().any(|x| x.as_bytes() == v.as_slice()))
        });
        if want_next == "hit" && credentials {
            diffs.push("credentials reached the upstream, and the answer was shared".into());
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

#[test]
fn hostile_suite_natively() {
    let path = root().join("tests/shared-cases/hostile.json");
    let table: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(table["config"], "offload.toml");
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    let mut suite = Suite::new();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        assert!(names.insert(name), "duplicate case {name}");
        if let Err(e) = check(&mut suite, case) {
            failures.push(format!("{name}: {e}"));
        }
    }
    // Straight to stderr, past the test harness's capture: the summary
    // line is read by people and by the closing notes.
    let line = format!("hostile: {} cases, {} held (native)\n", cases.len(), cases.len() - failures.len());
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    assert!(failures.is_empty(), "{} of {} cases failed:\n  {}", failures.len(), cases.len(), failures.join("\n  "));
}
