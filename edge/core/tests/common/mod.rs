//! What the shared-table runners (hostile.rs, decisions.rs) share: the
//! repository's offload.toml with local test secrets, the tables'
//! placeholders, and one request through the core's request machine
//! (`offload_core::machine`, the loop every executor runs) with a small
//! synchronous executor: a simulated upstream (the bucket serves the files
//! of `www/`; the origin answers like origin-shim for the routes the
//! tables use: `/api/headers` and `/api/echo` no-store, `/healthz`, 404
//! otherwise), no platform cache.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use offload_core::machine::{BodyFailure, Chunk, Input, Io, Isolate, Machine, ReplyBody, Tick, UpstreamHead};
use offload_core::sign::link::issue_link;
use offload_core::sign::{LinkClaims, Scope};
use offload_core::{Config, Edge, Viewer};
use serde_json::Value;

pub const NOW_MS: u64 = 1_700_000_000_000;
pub const HOST: &str = "edge.example";
/// The viewer's address (the platforms' runners use the same).
pub const CLIENT_IP: &str = "203.0.113.178";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A table (`tests/shared-cases/<name>`), checked to be written for the
/// bundled config and to have unique case names.
pub fn load_table(name: &str) -> Value {
    let path = root().join("tests/shared-cases").join(name);
    let table: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(table["config"], "offload.toml", "{name}: written for the bundled config");
    let mut names = std::collections::BTreeSet::new();
    for case in table["cases"].as_array().unwrap() {
        let n = case["name"].as_str().unwrap();
        assert!(names.insert(n.to_owned()), "{name}: duplicate case {n}");
    }
    table
}

/// The local test value of a secret field (e.g. `routing.origin_auth.secret`).
pub fn test_secret(field: &str) -> String {
    format!("hostile-suite-test-value-{field}-0123456789abcdef")
}

/// A request sent upstream: its URI and sorted headers.
pub type Sent = (String, Vec<(String, Vec<u8>)>);

/// What a request got.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u16,
    /// Region name, `bucket:<alias>`, or `None` when the edge (or the
    /// platform's request parser) answered.
    pub upstream: Option<String>,
    pub forwarded: Option<String>,
    pub method: Option<String>,
    pub sent: Option<Sent>,
    pub error: Option<String>,
    pub cache_status: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// A header of the request sent upstream.
    pub fn sent_header(&self, name: &str) -> Option<String> {
        let (_, headers) = self.sent.as_ref()?;
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

pub struct Suite {
    pub iso: Isolate,
    pub config: Config,
    pub private_file: Vec<u8>,
}

/// The tables' placeholders: `{{link:SCOPE}}`, `{{link-expired:SCOPE}}`,
/// `{{link-tampered:SCOPE}}`, `{{host}}`, `{{HOST}}`, `{{host-dot}}`,
/// `{{run}}`, `{{X*N}}`.
pub fn expand(s: &str, edge: &Edge, host: &str) -> String {
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

/// `request.headers` as `[name, value]` pairs: the hostile table writes
/// pairs (a name may repeat), the decision table an object.
fn header_pairs(headers: &Value) -> Vec<(String, String)> {
    match headers {
        Value::Array(a) => a.iter().map(|p| (p[0].as_str().unwrap_or("").to_owned(), p[1].as_str().unwrap_or("").to_owned())).collect(),
        Value::Object(o) => o.iter().map(|(n, v)| (n.clone(), v.as_str().unwrap_or("").to_owned())).collect(),
        _ => Vec::new(),
    }
}

impl Suite {
    pub fn new() -> Self {
        let text = std::fs::read_to_string(root().join("offload.toml")).unwrap();
        let config = Config::from_toml(&text).unwrap();
        // Local test values for every secret the config names (Workers
        // bindings, as the local stack gives them).
        let secrets = offload_core::secret::SecretMap::from_bindings(config.secret_refs().into_iter().filter_map(|(field, r)| {
            let src = r.source(offload_core::secret::Platform::Workers)?;
            let offload_core::secret::Source::Binding(name) = src else { return None };
            Some((name.to_owned(), test_secret(&field)))
        }));
        let iso = Isolate::new(Edge::new(config.clone(), &secrets).unwrap());
        let private_file = std::fs::read(root().join("www/private/report.txt")).unwrap();
        Self { iso, config, private_file }
    }

    /// The region whose origin a request URL goes to.
    fn region_of(&self, authority: &str) -> Option<String> {
        let regions = self.config.routing().regions();
        regions.iter().find(|r| r.origins().iter().any(|o| o.base_url().ends_with(authority))).map(|r| r.name().to_owned())
    }

    /// The simulated upstream: the bucket holds `www/`, the origin answers
    /// like origin-shim's routes the tables use.
    fn upstream_answer(upstream: &str, path: &str) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
        if let Some(key) = upstream.strip_prefix("bucket:").and(path.strip_prefix("/www/")) {
            let key: String = percent_encoding::percent_decode_str(key).decode_utf8_lossy().into_owned();
            let file = site_source(&key);
            return match std::fs::read(&file) {
                Ok(b) if !key.split('/').any(|s| s == ".." || s.is_empty()) => (200, vec![("content-type", "text/plain".into())], b),
                _ => (404, vec![("content-type", "application/xml".into())], b"<Error><Code>NoSuchKey</Code></Error>".to_vec()),
            };
        }
        match path.split('?').next().unwrap_or("") {
            "/api/headers" | "/api/echo" => (200, vec![("cache-control", "no-store".into())], b"{}".to_vec()),
            "/healthz" => (200, vec![("cache-control", "no-store".into())], b"ok".to_vec()),
            _ => (404, vec![("cache-control", "no-store".into())], b"{\"error\":\"not found\"}".to_vec()),
        }
    }

    fn build(&self, req: &Value, host: &str, skip_header: Option<&str>) -> Result<Request<()>, String> {
        let method = req["method"].as_str().unwrap_or("GET");
        let target = expand(req["target"].as_str().unwrap_or("/"), &self.iso.edge, host);
        let mut r = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).map_err(|e| format!("method: {e}"))?)
            .uri(target.as_str())
            .body(())
            .map_err(|e| format!("target {target:.60}: {e}"))?;
        let mut headers = HeaderMap::new();
        let mut has_host = false;
        for (n, v) in header_pairs(&req["headers"]) {
            let n = n.to_ascii_lowercase();
            if skip_header == Some(n.as_str()) {
                continue;
            }
            let v = expand(&v, &self.iso.edge, host);
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
        // Where the viewer is: the trusted test header (offload.toml trusts it).
        let v = &req["viewer"];
        let mut geo = format!("country={}", v["country"].as_str().unwrap_or("US"));
        if let (Some(lat), Some(lon)) = (v["lat"].as_f64(), v["lon"].as_f64()) {
            geo.push_str(&format!(";lat={lat};lon={lon}"));
        }
        headers.insert(offload_core::route::geo::TEST_HEADER, HeaderValue::from_str(&geo).unwrap());
        *r.headers_mut() = headers;
        Ok(r)
    }

    /// One request, as an executor runs it.
    pub fn run(&mut self, req: &Value, skip_header: Option<&str>) -> Answer {
        let r = match self.build(req, HOST, skip_header) {
            Ok(r) => r,
            // Refused by the request parser, before the edge.
            Err(e) => return Answer { status: 400, error: Some(e), ..Answer::default() },
        };
        let body = req["body"].as_str().unwrap_or("").as_bytes().to_vec();
        let viewer = Viewer { ip: Some(CLIENT_IP.parse().unwrap()), tls: false, location: Default::default() };
        let mut machine = Machine::new(r, viewer);
        let tick = Tick { now_ms: NOW_MS, random: 7 };
        let mut answer = Answer::default();
        let mut upstream_body: Vec<u8> = Vec::new();
        let mut input = Input::Start;
        for _ in 0..100 {
            input = match machine.next(&mut self.iso, input, tick) {
                Io::ReadBody { limit, .. } => {
                    Input::Body(if body.len() > limit { Err(BodyFailure::TooLarge) } else { Ok(body.clone()) })
                }
                Io::CacheGet { .. } => Input::CacheEntry(None),
                // Never asked: the location is known up front here.
                Io::Locate => Input::Location(Default::default()),
                Io::Sleep { .. } => Input::Woke,
                Io::Send { request, .. } => {
                    let authority = request.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
                    let url = request.uri().to_string();
                    let bucket = self.config.buckets().find(|b| url.starts_with(&b.url_for_encoded_key("/")));
                    let upstream = if let Some(b) = bucket {
                        format!("bucket:{}", b.alias())
                    } else {
                        self.region_of(&authority).unwrap_or_else(|| format!("unknown upstream {authority}"))
                    };
                    let forwarded = request.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
                    let mut sent: Vec<(String, Vec<u8>)> =
                        request.headers().iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
                    sent.sort();
                    let (status, hs, b) = Self::upstream_answer(&upstream, &forwarded);
                    answer.upstream = Some(upstream);
                    answer.forwarded = Some(forwarded);
                    answer.method = Some(request.method().as_str().to_owned());
                    answer.sent = Some((request.uri().to_string(), sent));
                    upstream_body = b;
                    let mut headers = HeaderMap::new();
                    for (n, v) in hs {
                        headers.insert(n, HeaderValue::from_str(&v).unwrap());
                    }
                    Input::Upstream(Ok(UpstreamHead { status, headers }))
                }
                Io::Fill(mut fill) => {
                    if fill.accept(&mut self.iso, &upstream_body, NOW_MS) == Chunk::Copied {
                        fill.finish(&mut self.iso, NOW_MS);
                    }
                    Input::Done
                }
                Io::CachePut(_) | Io::CacheDelete(_) | Io::Log { .. } | Io::Background(_) => Input::Done,
                Io::Respond(reply) => {
                    let body = match reply.body {
                        ReplyBody::Empty => Vec::new(),
                        ReplyBody::Bytes(b) => b.to_vec(),
                        ReplyBody::Upstream => std::mem::take(&mut upstream_body),
                        ReplyBody::UpstreamFill(mut fill) => {
                            if fill.accept(&mut self.iso, &upstream_body, NOW_MS) == Chunk::Copied {
                                fill.finish(&mut self.iso, NOW_MS);
                            }
                            std::mem::take(&mut upstream_body)
                        }
                    };
                    answer.cache_status = header(&reply.headers, "cache-status");
                    if answer.upstream.is_none() && answer.cache_status.contains("hit") {
                        answer.upstream = Some("cache".into());
                    }
                    let j: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if answer.sent.is_none() {
                        answer.error = j["error"].as_str().map(str::to_owned);
                    }
                    answer.status = reply.status;
                    answer.body = body;
                    return answer;
                }
                Io::Finished => panic!("the machine ended without answering"),
            };
        }
        panic!("the machine did not end");
    }
}

/// The source of a file the bucket serves: `www/<key>`, or for a page
/// `www/pages/<key>` (the simulated bucket serves sources; the local
/// stack serves the site `www/build.mjs` builds from them).
pub fn site_source(key: &str) -> PathBuf {
    let direct = root().join("www").join(key);
    if direct.is_file() {
        direct
    } else {
        root().join("www/pages").join(key)
    }
}

pub fn header(h: &HeaderMap, n: &str) -> String {
    h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// Straight to stderr, past the test harness's capture: summary lines are
/// read by people and by the closing notes.
pub fn summary(line: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("{line}\n").as_bytes());
}
