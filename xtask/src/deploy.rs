//! Deploy targets beyond Workers: `cargo xtask package lambda-edge`,
//! `cargo xtask package cloudfront-function`, the checks that go with them
//! (Node tests, the S3 signing compatibility run, cfn-lint, a Workers
//! dry-run deploy), and the signing benchmarks (`bench sign`).
//!
//! Outputs go under `.offload/` (git-ignored):
//! - `.offload/lambda-edge/pkg/`: `index.mjs` (the handlers), the
//!   wasm-bindgen `nodejs` bindings and the `wasm-opt -Oz` Wasm;
//! - `.offload/lambda-edge/offload-lambda-edge.zip`: the deployment package;
//! - `.offload/cloudfront-function/offload.js`: the CloudFront Function.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use offload_core::cache::key::TRACKING_PARAMS;
use offload_core::config::{PathPattern, Target};
use offload_core::route::geo::Country;
use offload_core::secret::{Platform, Source};
use offload_core::Config;
use offload_e2e::devvars::{self, DevVars};

use crate::run;

/// Lambda@Edge quotas (CloudFront "Quotas on Lambda@Edge"): compressed
/// function package size per trigger kind, and generated response sizes.
pub const LAMBDA_VIEWER_ZIP_MAX: u64 = 1024 * 1024;
pub const LAMBDA_ORIGIN_ZIP_MAX: u64 = 50 * 1024 * 1024;
pub const GENERATED_VIEWER_MAX: usize = 40 * 1024;
pub const GENERATED_ORIGIN_MAX: usize = 1024 * 1024;
/// CloudFront Functions: maximum function size (code + config), bytes.
pub const CF_FUNCTION_MAX: usize = 10 * 1024;

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn config_path(root: &Path) -> PathBuf {
    std::env::var_os("OFFLOAD_CONFIG").map(PathBuf::from).unwrap_or_else(|| root.join("offload.toml"))
}

/// The validated config (secret references only).
pub fn load_config(root: &Path) -> Result<Config, String> {
    let path = config_path(root);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether deploy artifacts are built for a local run (tests, the local
/// stack): only then may the config trust the test geo header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `cargo xtask package ...`: refuses `trust_test_header = true`
    /// (unless `OFFLOAD_LOCAL_STACK=1`).
    Deploy,
    /// The test steps: the local config as it is.
    Local,
}

fn check_build(root: &Path, build: Build, what: &str) -> Result<Config, String> {
    let config = load_config(root)?;
    if build == Build::Deploy {
        offload_e2e::check_deployable(&config, what)?;
    }
    Ok(config)
}

/// `cargo xtask package [lambda-edge|cloudfront-function|all|check]`.
pub fn package(root: &Path, target: crate::PackageTarget) -> Result<(), String> {
    use crate::PackageTarget;
    match target {
        PackageTarget::LambdaEdge => package_lambda_edge(root, Build::Deploy).map(|_| ()),
        PackageTarget::CloudfrontFunction => package_cloudfront_function(root, Build::Deploy).map(|_| ()),
        PackageTarget::All => {
            package_lambda_edge(root, Build::Deploy)?;
            package_cloudfront_function(root, Build::Deploy).map(|_| ())
        }
        // Every deploy check (what `cargo xtask test` runs from `steps`).
        PackageTarget::Check => {
            let mut failed = Vec::new();
            for (name, mut step) in steps(root) {
                eprintln!("\n==> {name}");
                if let Err(e) = step() {
                    eprintln!("==> {name}: FAILED: {e}");
                    failed.push(name);
                }
            }
            if failed.is_empty() { Ok(()) } else { Err(format!("deploy checks failed: {failed:?}")) }
        }
    }
}

/// Build the Lambda@Edge Wasm (release, wasm32), bind it for Node, shrink
/// it with wasm-opt -Oz (npm binaryen), add the handler wrapper, zip it,
/// check the size quotas and print the sizes. Returns the zip's path.
pub fn package_lambda_edge(root: &Path, build: Build) -> Result<PathBuf, String> {
    check_build(root, build, "package lambda-edge")?;
    let out = root.join(".offload/lambda-edge");
    let pkg = out.join("pkg");
    run(cargo()
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "-p", "offload-lambda-edge"])
        .current_dir(root))?;
    let wasm = target_dir(root).join("wasm32-unknown-unknown/release/offload_lambda_edge.wasm");
    let _ = std::fs::remove_dir_all(&pkg);
    std::fs::create_dir_all(&pkg).map_err(|e| format!("{}: {e}", pkg.display()))?;
    run(Command::new("wasm-bindgen")
        .args(["--target", "nodejs", "--out-name", "offload_lambda_edge", "--no-typescript", "--out-dir"])
        .arg(&pkg)
        .arg(&wasm))?;
    let bg = pkg.join("offload_lambda_edge_bg.wasm");
    let bound = std::fs::metadata(&bg).map_err(|e| format!("{}: {e}", bg.display()))?.len();
    run(Command::new(root.join("node_modules/.bin/wasm-opt"))
        .arg("-Oz")
        .args([
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
        ])
        .arg(&bg)
        .arg("-o")
        .arg(&bg))?;
    let opt = std::fs::metadata(&bg).map_err(|e| format!("{}: {e}", bg.display()))?.len();
    let wrapper = root.join("edge/lambda-edge/js/index.mjs");
    std::fs::copy(&wrapper, pkg.join("index.mjs")).map_err(|e| format!("{}: {e}", wrapper.display()))?;
    let zip = out.join("offload-lambda-edge.zip");
    run(Command::new("node").arg(root.join("deploy/zip.mjs")).arg(&zip).arg(&pkg).stdout(std::process::Stdio::null()))?;
    let zipped = std::fs::metadata(&zip).map_err(|e| format!("{}: {e}", zip.display()))?.len();
    eprintln!(
        "lambda-edge: wasm {bound} bytes bound, {opt} bytes after wasm-opt -Oz; zip {zipped} bytes ({})",
        zip.display()
    );
    eprintln!(
        "lambda-edge: quotas: viewer triggers {zipped}/{LAMBDA_VIEWER_ZIP_MAX} bytes, origin triggers {zipped}/{LAMBDA_ORIGIN_ZIP_MAX} bytes; generated responses are capped in the adapter at {GENERATED_VIEWER_MAX} (viewer) / {GENERATED_ORIGIN_MAX} (origin) bytes"
    );
    if zipped > LAMBDA_VIEWER_ZIP_MAX {
        return Err(format!(
            "lambda-edge: the package is {zipped} bytes: over the 1 MB quota for viewer triggers"
        ));
    }
    Ok(zip)
}

/// JS string literal (JSON string syntax is valid JS).
fn js_str(s: &str) -> String {
    serde_json_string(s)
}

fn serde_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The rules the generated CloudFront Function must satisfy (checked here
/// and, independently, by `tests/cloudfront-function/function.test.mjs`):
/// - at most 10 KB (the CloudFront Functions size quota);
/// - `function handler(event)` is defined;
/// - `require(` only for the runtime's modules `crypto` and `cloudfront`;
/// - none of what the runtime lacks or forbids: timers (`setTimeout`,
///   `setInterval`, `setImmediate`), network (`fetch`, `XMLHttpRequest`),
///   promise combinators and chains (`Promise`, `.then(`; `await` on the
///   KeyValueStore helpers is the documented way), dynamic code (`eval`,
///   `new Function`, `import(`), `process`.
pub const CF_FORBIDDEN: &[&str] = &[
    "setTimeout",
    "setInterval",
    "setImmediate",
    "fetch(",
    "XMLHttpRequest",
    // `async`/`await` are allowed (cloudfront-js-2.0 has them; the
    // KeyValueStore helpers return promises); promise combinators and
    // chains are not (the runtime's memory quota, per its docs).
    "Promise",
    ".then(",
    "eval(",
    "new Function",
    "import(",
    "process.",
];

pub fn check_cloudfront_function(code: &str) -> Result<(), String> {
    if code.len() > CF_FUNCTION_MAX {
        return Err(format!("cloudfront-function: {} bytes: over the {CF_FUNCTION_MAX}-byte quota", code.len()));
    }
    if !code.contains("function handler(event)") {
        return Err("cloudfront-function: no `function handler(event)`".into());
    }
    for line in code.lines().filter(|l| l.starts_with("import ")) {
        if line != "import cf from 'cloudfront';" {
            return Err(format!("cloudfront-function: {line:?}: only the cloudfront module may be imported"));
        }
    }
    for bad in CF_FORBIDDEN {
        if code.contains(bad) {
            return Err(format!("cloudfront-function: uses {bad:?}, which cloudfront-js-2.0 does not offer"));
        }
    }
    let mut rest = code;
    while let Some(i) = rest.find("require(") {
        let arg = &rest[i + 8..];
        if !(arg.starts_with("'crypto')") || arg.starts_with("'cloudfront')")) {
            return Err(format!("cloudfront-function: require of something other than crypto/cloudfront: {:.40}", &rest[i..]));
        }
        rest = arg;
    }
    Ok(())
}

/// Generate the viewer-request CloudFront Function (`cloudfront-js-2.0`)
/// from the config: signed-link checks (HMAC-SHA256 with the `[links]`
/// keys, via the runtime's `crypto` module), cache-key normalization of the
/// query (per route `cache_key`: tracking parameters, deny/allow lists,
/// sorting), removal of the test geo header unless trusted, and a region
/// hint header from the viewer's country. There are no redirects in the
/// config format, so none are generated.
pub fn generate_cloudfront_function(config: &Config) -> String {
    // Routes, most specific first: exact paths, then longer prefixes.
    let mut routes: Vec<_> = config.routes().iter().collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.pattern().specificity()));
    let mut r_js = Vec::new();
    for r in &routes {
        let mut fields = Vec::new();
        match r.pattern() {
            PathPattern::Exact(p) => fields.push(format!("p:{},x:1", js_str(p))),
            PathPattern::Prefix(p) => fields.push(format!("p:{}", js_str(p))),
        }
        if r.signed_links() {
            fields.push("l:1".into());
        }
        if let Some(rc) = r.cache() {
            let k = &rc.key;
            let list = |v: &[String]| format!("[{}]", v.iter().map(|s| js_str(s)).collect::<Vec<_>>().join(","));
            let mut kf = Vec::new();
            if k.drop_tracking {
                kf.push("t:1".to_owned());
            }
            if k.sort_query {
                kf.push("s:1".to_owned());
            }
            if !k.query_deny.is_empty() {
                kf.push(format!("d:{}", list(&k.query_deny)));
            }
            if let Some(a) = &k.query_allow {
                kf.push(format!("a:{}", list(a)));
            }
            fields.push(format!("k:{{{}}}", kf.join(",")));
        }
        if let Target::Bucket(_) = r.target() {
            fields.push("b:1".into());
        }
        r_js.push(format!("{{{}}}", fields.join(",")));
    }
    // Country → preferred region (the first region whose `continents`
    // contain the country's continent; explicit `countries` win).
    let mut hints: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            let code = String::from_utf8(vec![a, b]).unwrap_or_default();
            let Some(country) = Country::parse(&code) else { continue };
            let regions = config.routing().regions();
            let by_country = regions.iter().find(|r| r.countries().contains(&country));
            let by_continent = || {
                let c = country.continent()?;
                regions.iter().find(|r| r.continents().contains(&c))
            };
            if let Some(region) = by_country.or_else(by_continent) {
                hints.entry(region.name().to_owned()).or_default().push(code);
            }
        }
    }
    let hints_js: Vec<String> =
        hints.iter().map(|(region, codes)| format!("{}:{}", js_str(region), js_str(&codes.join(" ")))).collect();
    let signed = routes.iter().any(|r| r.signed_links());
    // Key id -> the KeyValueStore key holding its secret (never a value).
    // A key without a `kvs` source is left out: links signed with it are
    // refused as "unknown key id" here.
    let keys_js = if signed {
        config
            .links()
            .map(|l| {
                l.keys
                    .iter()
                    .filter_map(|(id, r)| Some(format!("{}:{}", js_str(id), js_str(r.kvs_key()?))))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let tracking = TRACKING_PARAMS.iter().map(|t| js_str(t)).collect::<Vec<_>>().join(",");
    let trust = config.routing().trust_test_header();

    let mut js = String::new();
    js.push_str("// Offload viewer-request CloudFront Function (cloudfront-js-2.0).\n");
    js.push_str("// Generated by `cargo xtask package cloudfront-function` from offload.toml; do not edit.\n");
    js.push_str("// It holds no secrets: link keys are read from the associated KeyValueStore.\n");
    if signed {
        js.push_str("import cf from 'cloudfront';\n");
        js.push_str("var crypto = require('crypto');\n");
        js.push_str("var kvs = cf.kvs();\n");
    }
    let _ = writeln!(js, "var R = [{}];", r_js.join(","));
    let _ = writeln!(js, "var T = [{tracking}];");
    let _ = writeln!(js, "var K = {{{keys_js}}};");
    let _ = writeln!(js, "var H = {{}}, HS = {{{}}};", hints_js.join(","));
    js.push_str("Object.keys(HS).forEach(function (r) { HS[r].split(' ').forEach(function (c) { H[c] = r; }); });\n");
    let _ = writeln!(js, "var TRUST_GEO = {trust};");
    // The canonical-request byte classes of offload-core (one table).
    let _ = writeln!(js, "var C = {};", js_str(&offload_core::proxy::canonical::byte_class_table()));
    let _ = writeln!(js, "var MAXT = {};", offload_core::proxy::canonical::MAX_TARGET_BYTES);
    // The quota is 10 KB: the fixed part goes without indentation and
    // comment lines (the source above stays readable).
    for line in CF_FUNCTION_BODY.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")) {
        js.push_str(line);
        js.push('\n');
    }
    js
}

/// The fixed part of the CloudFront Function (ES5 plus what
/// cloudfront-js-2.0 documents; no timers, network or async).
const CF_FUNCTION_BODY: &str = r#"var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function route(uri) {
    for (var i = 0; i < R.length; i++) {
        var r = R[i];
        if (r.x ? uri === r.p : uri.indexOf(r.p) === 0) return r;
    }
    return null;
}

function matches(p, n) {
    return p.charAt(p.length - 1) === '*' ? n.indexOf(p.slice(0, -1)) === 0 : p === n;
}

function keep(k, n) {
    var l = n.toLowerCase(), i;
    if (k.t && (l.indexOf('utm_') === 0 || T.indexOf(l) >= 0)) return false;
    for (i = 0; k.d && i < k.d.length; i++) if (matches(k.d[i], n)) return false;
    if (!k.a) return true;
    for (i = 0; i < k.a.length; i++) if (matches(k.a[i], n)) return true;
    return false;
}

// Canonical base64url (no padding, no stray bits) to a string of bytes;
// null otherwise.
function unb64(s) {
    var out = '', bits = 0, n = 0;
    for (var i = 0; i < s.length; i++) {
        var v = B64.indexOf(s.charAt(i));
        if (v < 0) return null;
        bits = ((bits << 6) | v) & 0xffffff;
        n += 6;
        if (n >= 8) { n -= 8; out += String.fromCharCode((bits >> n) & 255); }
    }
    return n > 4 || (bits & ((1 << n) - 1)) ? null : out;
}

// The link check of offload-core (sign/link.rs, token version 2): token =
// b64url(payload) "." b64url(HMAC-SHA256(key, "offload-link-v2\n" payload)),
// payload = "v2|link|kid|expires_at|client ip or empty|methods|scope", the
// scope with '%' and '|' written %25 and %7C. Same checks in the same order
// and the same reasons as verify_link (LinkError::reason).
var M = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
async function verify(token, path, method, ip, now) {
    var dot = token.indexOf('.'), bad = 'malformed token', i;
    if (dot < 0 || token.length > 4096) return bad;
    var payload = unb64(token.slice(0, dot)), given = token.slice(dot + 1);
    if (payload === null || given.length !== 43 || unb64(given) === null || /[^\x20-\x7e]/.test(payload)) return bad;
    var f = payload.split('|');
    if (f[0] === 'v1') return 'token version v1 is no longer accepted; reissue';
    if (f[0] !== 'v2' || (f[1] !== 'link' && f[1] !== 'presign')) return bad;
    if (f[1] !== 'link') return 'wrong audience';
    if (f.length !== 7 || !/^[0-9]{1,15}$/.test(f[3]) || (f[4] && !/^[0-9a-f.:]+$/.test(f[4])) || /%(?!25|7C)/.test(f[6])) return bad;
    var ms = f[5].split(',');
    for (i = 0; i < ms.length; i++) if (M.indexOf(ms[i]) < 0 || ms.indexOf(ms[i]) !== i) return bad;
    var scope = f[6].replace(/%(25|7C)/g, function (m, c) { return c === '25' ? '%' : '|'; });
    if (scope.charAt(0) !== '/' || /[\\ ]|%2f|%5c|[\/?](\.|%2e){1,2}([\/?]|$)/i.test(scope)) return bad;
    var name = Object.prototype.hasOwnProperty.call(K, f[2]) ? K[f[2]] : null;
    if (name === null) return 'unknown key id';
    var key;
    try { key = await kvs.get(name); } catch (e) { return 'key unavailable'; }
    var mac = crypto.createHmac('sha256', key).update('offload-link-v2\n' + payload).digest('base64url');
    var diff = 0;
    for (i = 0; i < mac.length; i++) diff |= mac.charCodeAt(i) ^ given.charCodeAt(i);
    if (diff !== 0) return 'bad signature';
    if (now >= Number(f[3])) return 'expired';
    if (ms.indexOf(method) < 0) return 'method not allowed';
    if (scope.charAt(scope.length - 1) === '/' ? path.indexOf(scope) !== 0 : path !== scope) return 'outside the token scope';
    if (f[4] && f[4] !== ip) return 'bound to another client address';
    return null;
}

function refuse(message) {
    return {
        statusCode: 403,
        statusDescription: 'Forbidden',
        headers: { 'content-type': { value: 'application/json' }, 'cache-control': { value: 'no-store' } },
        body: JSON.stringify({ error: message, field: 'token', status: 403 })
    };
}

// The canonical request of offload-core (proxy/canonical.rs), from its
// byte-class table C: the same refusals with the same messages.
var HX = '0123456789ABCDEF';
function esc(b) { return '%' + HX.charAt(b >> 4) + HX.charAt(b & 15); }
function utf8ok(a) {
    for (var i = 0; i < a.length;) {
        var b = a[i], n = b < 128 ? 0 : b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : -1;
        if (n < 0) return false;
        var lo = b === 0xE0 ? 0xA0 : b === 0xF0 ? 0x90 : 0x80, hi = b === 0xED ? 0x9F : b === 0xF4 ? 0x8F : 0xBF;
        for (var j = 1; j <= n; j++) {
            var c = a[i + j];
            if (c === undefined || c < lo || c > hi) return false;
            lo = 0x80; hi = 0xBF;
        }
        i += n + 1;
    }
    return true;
}
function bytesOf(s) {
    var a = [];
    for (var i = 0; i < s.length; i++) {
        var c = s.charCodeAt(i);
        if (c < 0x80) a.push(c);
        else if (c < 0x800) a.push(0xC0 | c >> 6, 0x80 | c & 63);
        else a.push(0xE0 | c >> 12, 0x80 | c >> 6 & 63, 0x80 | c & 63);
    }
    return a;
}
// The canonical form of a path (isPath) or query string, or {e: message}.
function canon(s, isPath) {
    var part = isPath ? 'path' : 'query', out = '', seg = [], start = 0, a = bytesOf(s);
    function no(what, at) { return { e: 'request target: ' + part + ': ' + what + ' at byte ' + at + ' is not allowed' }; }
    function segment(at, last) {
        if (seg.length === 1 && seg[0] === 46 || seg.length === 2 && seg[0] === 46 && seg[1] === 46) return no("dot segment ('.' or '..')", at);
        if (!seg.length && !last) return no("empty segment ('//')", at);
        if (!utf8ok(seg)) return { e: 'request target: path: segment at byte ' + at + ' decodes to invalid UTF-8' };
        return null;
    }
    if (a.length > MAXT) return { e: 'request target: ' + part + ': longer than ' + MAXT + ' bytes' };
    if (isPath && a[0] !== 47) return { e: "request target: path: must start with '/'" };
    for (var i = 0; i < a.length; i++) {
        var b = a[i], k = C.charAt(b), r;
        if (isPath && b === 47) {
            if (i > 0 && (r = segment(start, false))) return r;
            seg = []; start = i + 1; out += '/'; continue;
        }
        if (k === '%') {
            var hh = String.fromCharCode(a[i + 1] || 0, a[i + 2] || 0);
            if (!/^[0-9A-Fa-f]{2}$/.test(hh)) return { e: 'request target: ' + part + ': malformed percent-encoding at byte ' + i };
            var x = parseInt(hh, 16), kd = C.charAt(x);
            if (kd === 'u') out += String.fromCharCode(x);
            else if (isPath && x === 47) return no("encoded '/' (%2F)", i);
            else if (isPath && kd === 'b') return no("encoded '\\' (%5C)", i);
            else if (x === 0) return no('NUL byte', i);
            else if (isPath && kd === 'c') return no('encoded control byte ' + esc(x), i);
            else out += esc(x);
            seg.push(x); i += 2; continue;
        }
        if (k === 'c') return no(b === 0 ? 'NUL byte' : 'control byte 0x' + HX.charAt(b >> 4) + HX.charAt(b & 15), i);
        if (k === 'b' && isPath) return no("'\\'", i);
        out += k === 'u' || k === 'r' ? String.fromCharCode(b) : esc(b);
        seg.push(b);
    }
    if (isPath && (r = segment(start, true))) return r;
    if (out.length > MAXT) return { e: 'request target: ' + part + ': longer than ' + MAXT + ' bytes' };
    return out;
}

function bad(message) {
    return {
        statusCode: 400,
        statusDescription: 'Bad Request',
        headers: { 'content-type': { value: 'application/json' }, 'cache-control': { value: 'no-store' } },
        body: JSON.stringify({ error: 'bad request: ' + message, status: 400 })
    };
}

// [error message or null, the query object with every name and value canonical].
function canonQuery(q) {
    var out = {}, names = Object.keys(q);
    for (var i = 0; i < names.length; i++) {
        var n = canon(names[i], false);
        if (typeof n !== 'string') return [n.e, null];
        var e = q[names[i]], vals = e.multiValue ? e.multiValue : [e], mv = [];
        for (var j = 0; j < vals.length; j++) {
            var v = canon(vals[j].value, false);
            if (typeof v !== 'string') return [v.e, null];
            mv.push({ value: v });
        }
        // Names that differ only in spelling (`%74oken`, `token`) are one
        // name, values in order, as in the core's canonical query.
        if (out[n]) mv = (out[n].multiValue || [out[n]]).concat(mv);
        out[n] = mv.length > 1 ? { value: mv[0].value, multiValue: mv } : { value: mv[0].value };
    }
    return [null, out];
}

async function handler(event) {
    var req = event.request, h = req.headers;
    if (/[a-z]/.test(req.method)) return bad('request target: method: must be upper-case (methods are case-sensitive)');
    var cu = canon(req.uri, true);
    if (typeof cu !== 'string') return bad(cu.e);
    req.uri = cu;
    var cq = canonQuery(req.querystring);
    if (cq[0] !== null) return bad(cq[0]);
    var q = req.querystring = cq[1];
    if (!TRUST_GEO) delete h['x-offload-geo'];
    var country = h['cloudfront-viewer-country'];
    if (country && H[country.value]) h['x-offload-region-hint'] = { value: H[country.value] };
    else delete h['x-offload-region-hint'];
    var r = route(req.uri);
    if (!r) return req;
    if (r.l) {
        if (!q.token) return refuse('this path needs a signed link');
        var err = await verify(q.token.value, req.uri, req.method, event.viewer.ip, Math.floor(Date.now() / 1000));
        if (err) return refuse('signed link refused: ' + err);
    }
    if (r.k && (req.method === 'GET' || req.method === 'HEAD')) {
        var names = Object.keys(q), out = {};
        if (r.k.s) names.sort();
        for (var i = 0; i < names.length; i++) {
            if ((r.l && names[i] === 'token') || keep(r.k, names[i])) out[names[i]] = q[names[i]];
        }
        req.querystring = out;
    }
    return req;
}
"#;

/// `cargo xtask package cloudfront-function`: generate, check, write and
/// print the size. Returns the file's path.
pub fn package_cloudfront_function(root: &Path, build: Build) -> Result<PathBuf, String> {
    let config = check_build(root, build, "package cloudfront-function")?;
    let code = generate_cloudfront_function(&config);
    check_cloudfront_function(&code)?;
    let dir = root.join(".offload/cloudfront-function");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("offload.js");
    std::fs::write(&path, &code).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::sign::write_link_agreement_table(&config, &dir)?;
    crate::canonical::write_canonical_agreement_table(root, &dir)?;
    eprintln!("cloudfront-function: {} bytes (quota {CF_FUNCTION_MAX}) ({})", code.len(), path.display());
    let rendered = render_template(root, &code)?;
    eprintln!("cloudfront-function: inlined into {}", rendered.display());
    Ok(path)
}

/// The placeholder `FunctionCode` in deploy/cloudformation.yaml.
const TEMPLATE_PLACEHOLDER: &str =
    "      FunctionCode: |\n        function handler(event) {\n            return event.request;\n        }\n";

/// `.offload/cloudformation.yaml`: the template with the generated
/// CloudFront Function inlined (CloudFormation takes function code inline).
fn render_template(root: &Path, code: &str) -> Result<PathBuf, String> {
    let src = root.join("deploy/cloudformation.yaml");
    let template = std::fs::read_to_string(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    if !template.contains(TEMPLATE_PLACEHOLDER) {
        return Err(format!("{}: the FunctionCode placeholder is missing", src.display()));
    }
    let mut block = String::from("      FunctionCode: |\n");
    for line in code.lines() {
        if !line.is_empty() {
            block.push_str("        ");
            block.push_str(line);
        }
        block.push('\n');
    }
    let out = root.join(".offload/cloudformation.yaml");
    std::fs::write(&out, template.replacen(TEMPLATE_PLACEHOLDER, &block, 1))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// A requirements file installed into the venv under `.offload/venv`
/// (created once; reinstalled when the file changes). Returns the venv's
/// `bin` directory.
pub fn venv_install(root: &Path, requirements: &str) -> Result<PathBuf, String> {
    let venv = root.join(".offload/venv");
    let bin = venv.join("bin");
    let reqs = root.join(requirements);
    let stamp = venv.join(format!(".{}", requirements.replace('/', "_")));
    let wanted = std::fs::read_to_string(&reqs).map_err(|e| format!("{}: {e}", reqs.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        if !bin.join("python").exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        run(Command::new(bin.join("python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&reqs))?;
        std::fs::write(&stamp, &wanted).map_err(|e| format!("{}: {e}", stamp.display()))?;
    }
    Ok(bin)
}

/// cfn-lint from `deploy/requirements.txt` in the venv under
/// `.offload/venv`, run on `deploy/cloudformation.yaml` and on the rendered
/// `.offload/cloudformation.yaml` (with the generated function inlined).
pub fn cfn_lint(root: &Path) -> Result<(), String> {
    let bin = venv_install(root, "deploy/requirements.txt")?;
    let mut lint = Command::new(bin.join("cfn-lint"));
    lint.arg("deploy/cloudformation.yaml").current_dir(root);
    if root.join(".offload/cloudformation.yaml").exists() {
        lint.arg(".offload/cloudformation.yaml");
    }
    run(&mut lint)
}

/// `wrangler deploy --dry-run`: builds the Worker with the wrangler.toml
/// build command and bundles it without publishing. First with the local
/// config as it is, which must be refused (it trusts the test header),
/// then with a copy that does not (`.offload/offload.deploy-check.toml`).
pub fn wrangler_dry_run(root: &Path) -> Result<(), String> {
    let out = root.join(".offload/wrangler-dry-run");
    let _ = std::fs::remove_dir_all(&out);
    let wrangler = || {
        let mut c = Command::new(root.join("node_modules/.bin/wrangler"));
        c.args(["deploy", "--dry-run", "--outdir"])
            .arg(&out)
            .current_dir(root)
            .envs(offload_e2e::worker_build_env(root))
            .env_remove(offload_e2e::LOCAL_STACK_ENV);
        c
    };
    let config = load_config(root)?;
    if config.routing().trust_test_header() {
        let refused = wrangler().output().map_err(|e| format!("wrangler: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
        if refused.status.success() || !text.contains("trust_test_header = true") {
            return Err("wrangler deploy accepted a config with trust_test_header = true".into());
        }
        eprintln!("wrangler deploy refused the local config (trust_test_header = true), as it must");
        let text = std::fs::read_to_string(config_path(root)).map_err(|e| e.to_string())?;
        let deployable = text.replace("trust_test_header = true", "trust_test_header = false");
        let copy = root.join(".offload/offload.deploy-check.toml");
        std::fs::write(&copy, deployable).map_err(|e| format!("{}: {e}", copy.display()))?;
        return run(wrangler().env("OFFLOAD_CONFIG", &copy));
    }
    run(&mut wrangler())
}

/// Secrets Manager / SSM contents for the Lambda@Edge tests
/// (`.offload/test-secrets/aws-secrets.json`, beside, not inside, the
/// deploy artifacts): the local `.dev.vars` values
/// under the config's `aws_secret` / `ssm` names, which the Node tests
/// seed into moto. Also the values the tests sign with (`bindings`).
pub fn write_lambda_test_secrets(root: &Path) -> Result<PathBuf, String> {
    let config = load_config(root)?;
    let vars = devvars::ensure(root, &config)?;
    let mut secrets_manager = serde_json::Map::new();
    let mut ssm = serde_json::Map::new();
    for (src, value) in vars.by_source(&config, Platform::LambdaEdge) {
        match src {
            Source::SecretsManager { secret_id, json_key: Some(k) } => {
                let entry = secrets_manager.entry(secret_id.to_owned()).or_insert_with(|| serde_json::json!({}));
                if let Some(o) = entry.as_object_mut() {
                    o.insert(k.to_owned(), value.into());
                }
            }
            Source::SecretsManager { secret_id, json_key: None } => {
                secrets_manager.insert(secret_id.to_owned(), value.into());
            }
            Source::Parameter(name) => {
                ssm.insert(name.to_owned(), value.into());
            }
            _ => {}
        }
    }
    let bindings: serde_json::Map<String, serde_json::Value> =
        vars.values().map(|(k, v)| (k.to_owned(), v.into())).collect();
    let doc = serde_json::json!({ "secretsManager": secrets_manager, "ssm": ssm, "bindings": bindings });
    // Test data holding local secret values: never in an artifact folder.
    let dir = root.join(".offload/test-secrets");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("aws-secrets.json");
    std::fs::write(&path, doc.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// moto (`tests/lambda-edge/requirements.txt`) in the project venv, for
/// the Lambda@Edge secrets tests.
pub fn ensure_moto(root: &Path) -> Result<(), String> {
    venv_install(root, "tests/lambda-edge/requirements.txt").map(|_| ())
}

/// The artifact scan (see `scan.rs`): every `.dev.vars` value against
/// every deployable artifact built by the steps before.
pub fn scan_artifacts(root: &Path) -> Result<(), String> {
    let config = load_config(root)?;
    let vars = DevVars::load(root).or_else(|_| devvars::ensure(root, &config))?;
    let secrets: Vec<(String, String)> = vars.values().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if secrets.is_empty() {
        return Err("artifact scan: .dev.vars holds no values".into());
    }
    let artifacts = [
        "edge/workers/build",
        ".offload/wrangler-dry-run",
        ".offload/lambda-edge/pkg",
        ".offload/lambda-edge/offload-lambda-edge.zip",
        ".offload/cloudfront-function/offload.js",
        ".offload/cloudformation.yaml",
    ]
    .map(|a| root.join(a));
    let r = crate::scan::scan(root, &artifacts, &secrets)?;
    eprintln!(
        "artifact scan: {} secret values x {} forms ({} patterns) in {} files, {} bytes, of {}: {} hits",
        r.values,
        r.forms as f64 / r.values.max(1) as f64,
        r.forms,
        r.files,
        r.bytes,
        r.artifacts.join(", "),
        r.hits.len()
    );
    if r.hits.is_empty() {
        Ok(())
    } else {
        Err(format!("artifact scan: secret values found: {}", r.hits.join("; ")))
    }
}

/// The Node test runner on a directory of `*.test.mjs` files.
fn node_tests(root: &Path, dir: &str) -> Result<(), String> {
    run(Command::new("node").args(["--test", dir]).current_dir(root))
}

/// The S3 signing compatibility run: `cases` random presigned URLs
/// compared byte for byte with the AWS SDK for JavaScript v3.
pub fn sign_compat(root: &Path, cases: u32) -> Result<(), String> {
    run(Command::new("node").arg("tests/sign-compat/compat.mjs").arg(cases.to_string()).current_dir(root))
}

/// A test step: name and what to run.
pub type Step = (&'static str, Box<dyn FnMut() -> Result<(), String>>);

/// The deploy checks for `cargo xtask test`, in order. The artifacts are
/// built from the local config (it may trust the test header; the dry-run
/// step checks that a deploy build refuses it), and scanned last.
pub fn steps(root: &Path) -> Vec<Step> {
    let r = root.to_path_buf();
    let (r1, r2, r3, r4, r5, r6, r7) = (r.clone(), r.clone(), r.clone(), r.clone(), r.clone(), r.clone(), r);
    vec![
        ("Lambda@Edge package (wasm32, wasm-opt -Oz, zip, size quotas)", Box::new(move || package_lambda_edge(&r1, Build::Local).map(|_| ()))),
        ("Lambda@Edge handlers in Node, secrets from moto (node --test tests/lambda-edge)", Box::new(move || {
            ensure_moto(&r2)?;
            write_lambda_test_secrets(&r2)?;
            node_tests(&r2, "tests/lambda-edge/")
        })),
        ("S3 presign = AWS SDK v3, byte for byte (10000 random cases)", Box::new(move || sign_compat(&r3, 10_000))),
        ("CloudFront Function: generate + node --test tests/cloudfront-function", Box::new(move || {
            package_cloudfront_function(&r4, Build::Local)?;
            node_tests(&r4, "tests/cloudfront-function/")
        })),
        ("CloudFormation template: cfn-lint", Box::new(move || cfn_lint(&r5))),
        ("Workers: wrangler deploy --dry-run (refuses trust_test_header)", Box::new(move || wrangler_dry_run(&r6))),
        ("Artifact scan: no local secret value in any artifact", Box::new(move || scan_artifacts(&r7))),
    ]
}

/// `cargo xtask bench sign`: presign throughput, Offload ÷ the AWS
/// implementations, in the same process: the Lambda@Edge Wasm in Node vs
/// the AWS SDK for JavaScript v3, and the native signer vs `aws-sigv4`.
#[allow(dead_code)] // wired by `cargo xtask bench sign` (xtask/src/bench.rs)
pub fn bench_sign(root: &Path) -> Result<(), String> {
    package_lambda_edge(root, Build::Local)?;
    run(Command::new("node").args(["tests/sign-compat/bench.mjs", "2"]).current_dir(root))?;
    run(cargo()
        .args(["run", "--release", "-p", "offload-core", "--example", "presign_bench", "--", "2"])
        .current_dir(root))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_generated_function_follows_the_runtime_rules() {
        let config = load_config(&offload_e2e::root()).unwrap();
        let code = generate_cloudfront_function(&config);
        check_cloudfront_function(&code).unwrap();
        // Key names, never values: the function reads them from its store.
        assert!(code.contains("var K = {'local-1':'offload-link-local-1'};"), "{code}");
        assert!(code.starts_with("// Offload") && code.contains("\nimport cf from 'cloudfront';\n"));
        assert!(check_cloudfront_function(&code.replace("import cf from 'cloudfront';", "import fs from 'fs';")).is_err());
        assert!(check_cloudfront_function(&format!("{code}\nsetTimeout(function(){{}}, 1);")).is_err());
        assert!(check_cloudfront_function(&format!("{code}\nvar x = require('fs');")).is_err());
        assert!(check_cloudfront_function(&"x".repeat(CF_FUNCTION_MAX + 1)).is_err());
    }

    #[test]
    fn js_strings_are_escaped() {
        assert_eq!(js_str("a'b\\c\n"), "'a\\'b\\\\c\\u000a'");
    }
}
