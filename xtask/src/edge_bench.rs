//! `cargo xtask bench edge`: what a request costs in Offload's Worker,
//! against the floors, side by side in one plain `workerd serve`.
//!
//! ```text
//! cargo xtask bench edge [--duration SECS] [--rounds N] [--concurrency N]
//!                        [--cold-starts N] [--l2-keys N]
//!                        [--worker-dir DIR] [--hello-dir DIR] [--origin-shim PATH]
//! ```
//!
//! One `workerd serve` (node_modules' workerd, no wrangler), one socket per
//! service, every service in front of the same origin-shim
//! (127.0.0.1:18810, release build, as `bench cache`):
//!
//! | row | service (port) | request |
//! |---|---|---|
//! | (a) do-nothing JS | tests/bench/workers/nothing.js (18820) | `GET /` |
//! | (b) workers-rs hello world | tests/bench/hello-worker (18821) | `GET /` |
//! | (c) JS `caches.default`, hit | tests/bench/workers/cache-default.js (18822) | `GET /api/items/js-hot?ttl=3600` |
//! | (d1) Offload hit, L1 | the Workers build, tests/bench/offload.edge.toml (18823) | `GET /api/items/hot?ttl=3600` |
//! | (d2) Offload hit, L2 only | same | `GET /api/items/l2-{i}?ttl=3600`, i rotating over `--l2-keys` |
//! | (e) Offload miss | same | `GET /api/private` (`private, no-store`) |
//! | (e) Offload bypass | same | `GET /bypass/api/private` (a route without cache) |
//! | (f) JS pass-through | tests/bench/workers/pass-through.js (18824) | `GET /api/private` |
//!
//! The origin's `/api/items/{id}?ttl=3600` is a small JSON page with
//! `Cache-Control: public, max-age=3600`. Hit rows are warmed first and
//! must cost the origin nothing while measured (the origin's request count
//! is read around every row and printed). (d2): the bench config's L1 is
//! 64 KiB, and every key comes back only after `--l2-keys / 2` others were
//! adopted into L1, far more than it holds: each hit is read from
//! `caches.default` (see tests/bench/offload.edge.toml; the config has no
//! knob that turns L1 off without also turning L2 off).
//!
//! Load: `wrk` (Debian, installed when missing and root), closed loop,
//! keep-alive. In every round each row gets `--duration` seconds at
//! `--concurrency` connections (req/s) and then `--duration` seconds at
//! one connection (p50/p99 latency); rows alternate within a round, and
//! the table shows medians over `--rounds`. Ratios: Offload hit ÷ hello
//! world and ÷ do-nothing (req/s), Offload hit p50 ÷ hello world p50,
//! Offload miss and bypass ÷ pass-through (req/s).
//!
//! Cold start: alternating, `--cold-starts` times, a fresh `workerd serve`
//! with only one service (127.0.0.1:18825; no Cache API service, whose
//! miniflare workers would start with it), timed from spawn to the first
//! expected answer. The isolate's own start: (a) and (b) on `/`, (d) on an
//! unrouted path (the edge's own 404, no subrequest); (d) ÷ (b) is the
//! goal's ratio. The first proxied answer, which also opens the first
//! connection to the origin: Offload's bypass route ÷ (f).
//!
//! Size: the Offload Worker's Wasm, raw and `gzip -9`, and a breakdown by
//! crate with `twiggy` (pinned, `cargo install --locked` when missing) of
//! the copy with function names every Workers build keeps beside the
//! shipped Wasm (`index_bg.named.wasm`, see `ship_wasm`).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use offload_e2e::root;
use offload_supervise::{Group, Supervisor};

use crate::bench::{origin_shim_binary, ORIGIN_PORT};
use crate::conformance::{build_edge, build_worker_crate, copy, copy_miniflare_cache, ensure_ports_free, fresh_dir, workerd_bin};

const NOTHING_PORT: u16 = 18820;
const HELLO_PORT: u16 = 18821;
const JS_CACHE_PORT: u16 = 18822;
const OFFLOAD_PORT: u16 = 18823;
const PASS_PORT: u16 = 18824;
const COLD_PORT: u16 = 18825;
/// workerd's inspector (`--profile`).
const INSPECTOR_PORT: u16 = 18826;

/// As tests/conformance/workerd.capnp and wrangler.toml (a test checks the former).
const COMPAT_DATE: &str = "2025-01-01";

/// twiggy, pinned (installed with `cargo install --locked` when missing).
pub const TWIGGY_VERSION: &str = "0.8.0";

const HIT_PATH: &str = "/api/items/hot?ttl=3600";
const JS_HIT_PATH: &str = "/api/items/js-hot?ttl=3600";
const MISS_PATH: &str = "/api/private";
const BYPASS_PATH: &str = "/bypass/api/private";
/// A path no route of offload.edge.toml takes: the edge answers 404 itself.
const COLD_UNROUTED_PATH: &str = "/cold-start/unrouted";

/// The L2-only row's keys: `{L2_PREFIX}{i}{L2_SUFFIX}`.
const L2_PREFIX: &str = "/api/items/l2-";
const L2_SUFFIX: &str = "?ttl=3600";

fn l2_path(i: u32) -> String {
    format!("{L2_PREFIX}{i}{L2_SUFFIX}")
}

/// `cargo xtask bench edge`: the flags (see the module's doc).
#[derive(clap::Args, Debug)]
pub(crate) struct EdgeArgs {
    /// Seconds per row and round, for each of the two load runs (concurrency, then one connection).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=600))]
    duration: u32,
    /// Rounds (every row once per round, in turn); the table shows medians.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Connections of the req/s run (closed loop, keep-alive).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Cold starts per service (0: none).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    cold_starts: u32,
    /// Keys the L2-only row rotates over (the L1 holds a few dozen).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(200..=100_000))]
    l2_keys: u32,
    /// An Offload worker-build output (built with tests/bench/offload.edge.toml) instead of building it.
    #[arg(long, value_name = "DIR")]
    worker_dir: Option<PathBuf>,
    /// A worker-build output of tests/bench/hello-worker instead of building it.
    #[arg(long, value_name = "DIR")]
    hello_dir: Option<PathBuf>,
    /// An origin-shim binary to use instead of building it.
    #[arg(long, value_name = "PATH")]
    origin_shim: Option<PathBuf>,
    /// After the rounds, a CPU profile of Offload on the hit row and on the
    /// miss row (V8's sampling profiler through workerd's inspector,
    /// tests/bench/profile.mjs): the top functions by self and by
    /// inclusive time.
    #[arg(long)]
    profile: bool,
}

// ------------------------------------------------------------ services ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Code {
    /// One ES module, `<name>/<file>`.
    Js(&'static str),
    /// A worker-build output: `<name>/index.js` and `<name>/index_bg.wasm`.
    Wasm,
}

#[derive(Clone, Copy, Debug)]
struct Service {
    name: &'static str,
    port: u16,
    code: Code,
    /// The `ORIGIN` text binding (the JS Workers' origin).
    origin: bool,
    /// `caches.default` (miniflare's cache workers).
    cache_api: bool,
}

const NOTHING: Service = Service { name: "nothing", port: NOTHING_PORT, code: Code::Js("nothing.js"), origin: false, cache_api: false };
const HELLO: Service = Service { name: "hello", port: HELLO_PORT, code: Code::Wasm, origin: false, cache_api: false };
const JS_CACHE: Service = Service { name: "cache-default", port: JS_CACHE_PORT, code: Code::Js("cache-default.js"), origin: true, cache_api: true };
const OFFLOAD: Service = Service { name: "offload", port: OFFLOAD_PORT, code: Code::Wasm, origin: false, cache_api: true };
const PASS: Service = Service { name: "pass-through", port: PASS_PORT, code: Code::Js("pass-through.js"), origin: true, cache_api: false };

/// The `workerd serve` config for `services`, each on its own socket
/// (127.0.0.1:`port`); `cache_workers` is the text defining `cacheEntry` and
/// `cacheObject` (from tests/conformance/workerd.capnp), used when a
/// service has `cache_api`.
fn workerd_config(services: &[Service], origin: &str, cache_workers: &str) -> String {
    let any_cache = services.iter().any(|s| s.cache_api);
    let mut c = String::from("# Generated by `cargo xtask bench edge`.\nusing Workerd = import \"/workerd/workerd.capnp\";\n\nconst config :Workerd.Config = (\n  services = [\n");
    for s in services {
        let _ = writeln!(c, "    (name = \"{}\", worker = (", s.name);
        match s.code {
            Code::Js(file) => {
                let _ = writeln!(c, "      modules = [(name = \"{file}\", esModule = embed \"{}/{file}\")],", s.name);
            }
            Code::Wasm => {
                let _ = writeln!(
                    c,
                    "      modules = [\n        (name = \"index.js\", esModule = embed \"{0}/index.js\"),\n        (name = \"index_bg.wasm\", wasm = embed \"{0}/index_bg.wasm\"),\n      ],",
                    s.name
                );
            }
        }
        let _ = writeln!(c, "      compatibilityDate = \"{COMPAT_DATE}\",\n      globalOutbound = \"internet\",");
        if s.origin {
            let _ = writeln!(c, "      bindings = [(name = \"ORIGIN\", text = \"{origin}\")],");
        }
        if s.cache_api {
            c.push_str("      cacheApiOutbound = \"cache:0\",\n");
        }
        c.push_str("    )),\n");
    }
    c.push_str("    (name = \"internet\", network = (allow = [\"local\"])),\n");
    if any_cache {
        c.push_str(
            "    (name = \"cache:0\", worker = .cacheEntry),\n    (name = \"cache:cache\", worker = .cacheObject),\n    \
             (name = \"cache-storage\", disk = (path = \"cache-storage\", writable = true)),\n",
        );
    }
    c.push_str("  ],\n  sockets = [\n");
    for s in services {
        let _ = writeln!(c, "    (name = \"{0}\", address = \"127.0.0.1:{1}\", http = (), service = \"{0}\"),", s.name, s.port);
    }
    c.push_str("  ],\n");
    if any_cache {
        c.push_str(
            "  extensions = [\n    ( modules = [\n        (name = \"miniflare:shared\", esModule = embed \"miniflare/shared.worker.js\"),\n        \
             (name = \"miniflare:zod\", esModule = embed \"miniflare/zod.worker.js\"),\n      ] ),\n  ],\n",
        );
    }
    c.push_str(");\n");
    if any_cache {
        c.push('\n');
        c.push_str(cache_workers);
    }
    c
}

/// The `cacheEntry` and `cacheObject` definitions of the conformance config.
fn cache_workers(root: &Path) -> Result<String, String> {
    let path = root.join("tests/conformance/workerd.capnp");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    match text.find("const cacheEntry ") {
        Some(i) if text[i..].contains("const cacheObject ") => Ok(text[i..].to_owned()),
        _ => Err(format!("{}: no `const cacheEntry` / `const cacheObject` to reuse", path.display())),
    }
}

/// Where the built code of each service comes from.
struct Code2 {
    js_dir: PathBuf,
    hello: PathBuf,
    offload: PathBuf,
}

/// Lays out `run_dir` for `services`; the `workerd serve` command to run there.
fn layout_workerd(
    root: &Path,
    code: &Code2,
    run_dir: &Path,
    services: &[Service],
    cache_workers: &str,
) -> Result<Command, String> {
    fresh_dir(run_dir)?;
    for s in services {
        let dir = run_dir.join(s.name);
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        match s.code {
            Code::Js(file) => copy(&code.js_dir.join(file), &dir.join(file))?,
            Code::Wasm => {
                let from = if s.name == HELLO.name { &code.hello } else { &code.offload };
                for f in ["index.js", "index_bg.wasm"] {
                    copy(&from.join(f), &dir.join(f))?;
                }
            }
        }
    }
    if services.iter().any(|s| s.cache_api) {
        fs::create_dir_all(run_dir.join("cache-storage")).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        copy_miniflare_cache(root, &run_dir.join("miniflare"))?;
    }
    let config = workerd_config(services, &format!("http://127.0.0.1:{ORIGIN_PORT}"), cache_workers);
    fs::write(run_dir.join("workerd.capnp"), config).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let mut cmd = Command::new(workerd_bin(root)?);
    cmd.args(["serve", "--experimental", "workerd.capnp"]).current_dir(run_dir);
    if services.iter().any(|s| s.cache_api) {
        cmd.arg("--directory-path").arg(format!("cache-storage={}", run_dir.join("cache-storage").display()));
    }
    Ok(cmd)
}

/// `node tests/bench/profile.mjs` against the service `name` for `secs`.
fn profile(root: &std::path::Path, name: &str, secs: u32) -> Result<String, String> {
    let out = Command::new("node")
        .arg(root.join("tests/bench/profile.mjs"))
        .arg(format!("127.0.0.1:{INSPECTOR_PORT}"))
        .arg(name)
        .arg(secs.to_string())
        .arg("20")
        .current_dir(root)
        .output()
        .map_err(|e| format!("node tests/bench/profile.mjs: {e}"))?;
    if !out.status.success() {
        return Err(format!("tests/bench/profile.mjs: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// -------------------------------------------------------------- wrk ----

/// One wrk run.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WrkResult {
    requests: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    /// Non-2xx/3xx answers plus socket errors.
    errors: u64,
}

/// `730.00us`, `1.05ms`, `2.00s`, `1.00m` in µs.
fn wrk_duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).map(|v| v * mult)
}

/// Parses wrk's `--latency` report.
fn parse_wrk(out: &str) -> Result<WrkResult, String> {
    let mut requests = None;
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0u64;
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("50%"), Some(v)) => p50 = wrk_duration_us(v),
            (Some("99%"), Some(v)) => p99 = wrk_duration_us(v),
            (Some("Requests/sec:"), Some(v)) => rps = v.parse::<f64>().ok(),
            (Some(n), Some("requests")) if line.contains(" requests in ") => requests = n.parse::<u64>().ok(),
            _ => {}
        }
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().map_err(|_| format!("wrk: bad line {line:?}"))?;
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in rest.split(',') {
                let n = part.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok());
                errors += n.ok_or_else(|| format!("wrk: bad line {line:?}"))?;
            }
        }
    }
    match (requests, rps, p50, p99) {
        (Some(requests), Some(rps), Some(p50_us), Some(p99_us)) => Ok(WrkResult { requests, rps, p50_us, p99_us, errors }),
        _ => Err(format!("wrk: no requests/sec or latency distribution in its output:\n{out}")),
    }
}

/// The wrk script of the L2-only row: every thread rotates over `keys` keys,
/// the threads half a rotation apart.
fn l2_script(keys: u32) -> String {
    format!(
        "-- Generated by `cargo xtask bench edge`: the L2-only row.\n\
         local started = 0\n\
         function setup(thread)\n  thread:set(\"start\", started * {half})\n  started = started + 1\nend\n\
         local i = nil\n\
         function request()\n  if i == nil then i = (start or 0) % {keys} end\n  i = i % {keys} + 1\n  \
         return wrk.format(\"GET\", \"{L2_PREFIX}\" .. i .. \"{L2_SUFFIX}\")\nend\n",
        half = keys / 2
    )
}

/// What one load run targets.
#[derive(Clone, Copy)]
enum Target {
    Path(&'static str),
    /// The L2-only rotation (the script's path).
    L2,
}

struct WrkRun<'a> {
    port: u16,
    target: Target,
    connections: u16,
    secs: u32,
    script: &'a Path,
    logs: &'a Path,
}

/// Runs wrk (its own process group, stopped if it overruns) and parses it.
fn wrk(run: &WrkRun<'_>) -> Result<WrkResult, String> {
    let path = match run.target {
        Target::Path(p) => p,
        Target::L2 => "/",
    };
    let url = format!("http://127.0.0.1:{}{path}", run.port);
    let threads = run.connections.min(2);
    let log = run.logs.join("wrk.log");
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = Command::new("wrk");
    cmd.args(["--latency", "--timeout", "5s"])
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", run.connections))
        .arg(format!("-d{}s", run.secs));
    if matches!(run.target, Target::L2) {
        cmd.arg("-s").arg(run.script);
    }
    cmd.arg(&url).stdout(out.try_clone().map_err(|e| e.to_string())?).stderr(out);
    let mut group = Group::spawn("wrk", &mut cmd)?;
    let status = group.wait_timeout(Duration::from_secs(u64::from(run.secs) + 30));
    let text = fs::read_to_string(&log).unwrap_or_default();
    match status {
        Some(s) if s.success() => parse_wrk(&text),
        Some(s) => Err(format!("wrk {url} failed ({s}): {text}")),
        None => {
            group.stop();
            Err(format!("wrk {url} did not finish within {} s", run.secs + 30))
        }
    }
}

// ------------------------------------------------------------- stats ----

/// The median (the mean of the middle two for an even count); NaN if empty.
fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------- the origin ----

/// GET `url`: its status and `Cache-Status`.
fn get(url: &str) -> Result<(u16, Option<String>), String> {
    let (status, headers, _) = crate::bench::http("GET", url)?;
    let cache_status = headers.into_iter().find(|(n, _)| n.eq_ignore_ascii_case("cache-status")).map(|(_, v)| v);
    Ok((status, cache_status))
}

/// GET until 200 (a service that has just started).
fn expect_200(url: &str) -> Result<Option<String>, String> {
    match get(url)? {
        (200, cs) => Ok(cs),
        (s, _) => Err(format!("GET {url} answered {s}, not 200")),
    }
}

// ------------------------------------------------------------- builds ----

/// twiggy at the pinned version, installed with `cargo install --locked`
/// when missing (as `cargo xtask setup` installs its cargo tools).
fn ensure_twiggy() -> Result<(), String> {
    if !crate::setup::has_version("twiggy", TWIGGY_VERSION) {
        eprintln!("bench edge: installing twiggy {TWIGGY_VERSION} (cargo install --locked; a few minutes, once)");
        crate::run(Command::new("cargo").args(["install", "--locked", "twiggy", "--version", TWIGGY_VERSION]))?;
    }
    Ok(())
}

/// wrk from Debian (`apt-get install -y wrk` when missing and root).
fn ensure_wrk() -> Result<(), String> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    let root_user = Command::new("id").arg("-u").output().ok().is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root_user {
        return Err("wrk is missing: run `sudo apt-get install -y wrk`".into());
    }
    eprintln!("bench edge: apt-get install wrk");
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    crate::run(Command::new("apt-get").arg("update").envs(env))?;
    crate::run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "wrk"]).envs(env))
}

/// twiggy's items summed by crate.
struct Breakdown {
    total: u64,
    /// Largest first.
    crates: Vec<(String, u64)>,
    /// The name section's `"function names"` subsection, if any (without
    /// it every function is `code[i]`).
    names: Option<u64>,
}

/// The size breakdown by crate of `wasm` (meaningful with a name section).
fn twiggy_by_crate(wasm: &Path) -> Result<Breakdown, String> {
    let out = Command::new("twiggy")
        .args(["top", "--format", "csv", "-n", "1000000"])
        .arg(wasm)
        .output()
        .map_err(|e| format!("twiggy: {e}"))?;
    if !out.status.success() {
        return Err(format!("twiggy top {} failed: {}", wasm.display(), String::from_utf8_lossy(&out.stderr)));
    }
    parse_twiggy_csv(&String::from_utf8_lossy(&out.stdout))
}

/// Sums twiggy's `top --format csv` rows by crate.
fn parse_twiggy_csv(text: &str) -> Result<Breakdown, String> {
    let mut reader = text.lines();
    let header = reader.next().ok_or("twiggy: empty output")?;
    let cols: Vec<&str> = header.split(',').collect();
    let name_col = cols.iter().position(|c| *c == "Name").ok_or_else(|| format!("twiggy: no Name column in {header:?}"))?;
    let size_col = cols.iter().position(|c| *c == "ShallowSize").ok_or_else(|| format!("twiggy: no ShallowSize column in {header:?}"))?;
    let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut total = 0u64;
    let mut names = None;
    for line in reader.filter(|l| !l.trim().is_empty()) {
        let fields = split_csv(line);
        let (Some(name), Some(size)) = (fields.get(name_col), fields.get(size_col)) else {
            return Err(format!("twiggy: bad row {line:?}"));
        };
        let size: u64 = size.trim().parse().map_err(|_| format!("twiggy: bad size in {line:?}"))?;
        // twiggy's own summary rows.
        if name.starts_with("Σ") || name.starts_with("... and ") {
            continue;
        }
        total += size;
        if name == "\"function names\" subsection" {
            names = Some(size);
        }
        *by.entry(crate_of(name)).or_default() += size;
    }
    let mut crates: Vec<(String, u64)> = by.into_iter().collect();
    crates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Breakdown { total, crates, names })
}

/// One CSV line (fields may be double-quoted with `""` escapes).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// The crate a twiggy item belongs to: the first path segment of a
/// demangled Rust name (`[hash]` dropped), through `&`, `dyn `, `impl `...;
/// for `<A as B>::f`, A's crate unless A is from the standard library (or
/// has no path) and B's is not: `<Vec<T> as serde::Serialize>` is serde's
/// code. wasm-bindgen's glue and data/section items by their kind.
fn crate_of(name: &str) -> String {
    let s = name.trim();
    if s.starts_with("data[") || s.starts_with("data segment") {
        return "(data segments)".into();
    }
    if s.starts_with("__wbg") || s.starts_with("__wbindgen") || s.starts_with("__externref") {
        return "(wasm-bindgen glue)".into();
    }
    if s.starts_with('"') || s.ends_with("subsection") || s.ends_with("section") || s.starts_with("table[") || s.starts_with("elem[") {
        return "(sections, tables)".into();
    }
    if let Some(rest) = s.strip_prefix("_ZN") {
        // Not demangled: the first length-prefixed segment.
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Some(seg) = digits.parse::<usize>().ok().and_then(|n| rest.get(digits.len()..digits.len() + n)) {
            return seg.to_owned();
        }
    }
    if let Some((ty, tr)) = s.strip_prefix('<').and_then(split_as) {
        let std_lib = |c: &str| matches!(c, "core" | "alloc" | "std");
        return match (path_crate(ty), path_crate(tr)) {
            (Some(a), Some(b)) if std_lib(a) && !std_lib(b) => b.to_owned(),
            (Some(a), _) => a.to_owned(),
            (None, Some(b)) => b.to_owned(),
            (None, None) => "(other)".into(),
        };
    }
    match path_crate(s) {
        Some(c) => c.to_owned(),
        None if s.starts_with("code[") => "(unnamed functions)".into(),
        None => "(other)".into(),
    }
}

/// `A as B>...` (after `<A as B>`'s `<`) split at its top-level ` as `.
fn split_as(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' if depth == 0 => return None,
            '>' => depth -= 1,
            ' ' if depth == 0 && s[i..].starts_with(" as ") => return Some((&s[..i], &s[i + 4..])),
            _ => {}
        }
    }
    None
}

/// The crate of a path such as `&mut serde_json[ab12]::Value<T>`.
fn path_crate(s: &str) -> Option<&str> {
    let mut s = s.trim();
    loop {
        let before = s;
        for p in ["<", "&", "*const ", "*mut ", "dyn ", "impl ", "mut ", "("] {
            s = s.strip_prefix(p).unwrap_or(s).trim_start();
        }
        if s == before {
            break;
        }
    }
    let first = &s[..s.find("::")?];
    let first = first.split('[').next().unwrap_or(first);
    (!first.is_empty() && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(first)
}

/// `[cache] max_bytes` of a config (what the L2-only row's argument rests on).
fn l1_max_bytes(config: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let v: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", config.display()))?;
    v.get("cache")
        .and_then(|c| c.get("max_bytes"))
        .and_then(toml::Value::as_integer)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("{}: no [cache] max_bytes", config.display()))
}

// --------------------------------------------------------------- main ----

struct Row {
    id: &'static str,
    label: &'static str,
    port: u16,
    target: Target,
    /// A hit row: the origin must see nothing while it runs.
    hit: bool,
}

const ROWS: [Row; 8] = [
    Row { id: "a", label: "(a) do-nothing JS Worker", port: NOTHING_PORT, target: Target::Path("/"), hit: false },
    Row { id: "b", label: "(b) workers-rs hello world", port: HELLO_PORT, target: Target::Path("/"), hit: false },
    Row { id: "c", label: "(c) JS caches.default, hit", port: JS_CACHE_PORT, target: Target::Path(JS_HIT_PATH), hit: true },
    Row { id: "d1", label: "(d1) Offload hit, L1", port: OFFLOAD_PORT, target: Target::Path(HIT_PATH), hit: true },
    Row { id: "d2", label: "(d2) Offload hit, L2 only", port: OFFLOAD_PORT, target: Target::L2, hit: true },
    Row { id: "e-miss", label: "(e) Offload miss", port: OFFLOAD_PORT, target: Target::Path(MISS_PATH), hit: false },
    Row { id: "e-bypass", label: "(e) Offload bypass route", port: OFFLOAD_PORT, target: Target::Path(BYPASS_PATH), hit: false },
    Row { id: "f", label: "(f) JS pass-through", port: PASS_PORT, target: Target::Path(MISS_PATH), hit: false },
];

#[derive(Default)]
struct Measured {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    errors: u64,
    requests: u64,
    origin: u64,
}

pub(crate) fn main(args: &EdgeArgs) -> Result<(), String> {
    let root = root();
    let started = Instant::now();
    ensure_ports_free(&[ORIGIN_PORT, NOTHING_PORT, HELLO_PORT, JS_CACHE_PORT, OFFLOAD_PORT, PASS_PORT, COLD_PORT, INSPECTOR_PORT])?;
    let state = root.join(".offload/bench-edge");
    fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    crate::setup::ensure(&root)?;
    ensure_wrk()?;
    ensure_twiggy()?;
    let shim = origin_shim_binary(&root, args.origin_shim.as_deref())?;
    let offload = match &args.worker_dir {
        Some(d) => d.clone(),
        None => {
            let out = state.join("offload");
            build_edge(&root, &root.join("tests/bench/offload.edge.toml"), &out)?;
            out
        }
    };
    let hello = match &args.hello_dir {
        Some(d) => d.clone(),
        None => {
            let out = state.join("hello");
            build_worker_crate(&root, &root.join("tests/bench/hello-worker"), None, &out)?;
            out
        }
    };
    let code = Code2 { js_dir: root.join("tests/bench/workers"), hello, offload };
    let cache_text = cache_workers(&root)?;
    let script = state.join("l2.lua");
    fs::write(&script, l2_script(args.l2_keys)).map_err(|e| format!("{}: {e}", script.display()))?;

    let mut procs = Supervisor::new(state.join("logs"))?;
    let origin = crate::bench::start_origin(&mut procs, &shim)?;

    // ---- cold starts first (the machine is quiet; nothing else is up).
    // Each isolate's own start is timed on an answer it makes itself:
    // do-nothing and hello world answer `/`, Offload an unrouted path (its
    // 404, no subrequest). A first proxied answer also pays the first
    // connection to the origin, so Offload's bypass is paired with the JS
    // pass-through, which pays it too.
    let cold_runs: [(&str, Service, &str, u16); 5] = [
        ("do-nothing", NOTHING, "/", 200),
        ("hello world", HELLO, "/", 200),
        ("Offload, edge answer", OFFLOAD, COLD_UNROUTED_PATH, 404),
        ("Offload, bypass", OFFLOAD, BYPASS_PATH, 200),
        ("JS pass-through", PASS, MISS_PATH, 200),
    ];
    let mut cold: Vec<Vec<f64>> = vec![Vec::new(); cold_runs.len()];
    for rep in 0..args.cold_starts {
        for (i, (label, s, path, expected)) in cold_runs.iter().enumerate() {
            // Without miniflare's Cache API workers (JS that workerd would
            // also load at start; the platform's cache is no part of the
            // Worker's start): neither path uses the cache.
            let svc = Service { port: COLD_PORT, cache_api: false, ..*s };
            let url = format!("http://127.0.0.1:{COLD_PORT}{path}");
            let cmd = layout_workerd(&root, &code, &state.join("cold"), &[svc], &cache_text)?;
            let t0 = Instant::now();
            procs.spawn("cold", cmd)?;
            let deadline = t0 + Duration::from_secs(60);
            let ms = loop {
                if matches!(get(&url), Ok((status, _)) if status == *expected) {
                    break t0.elapsed().as_secs_f64() * 1e3;
                }
                if let Err(e) = procs.check_alive("cold") {
                    return Err(format!("cold start of {label}: {e}"));
                }
                if Instant::now() > deadline {
                    procs.stop("cold");
                    return Err(format!("cold start of {label}: no {expected} from {url} within 60 s"));
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            procs.stop("cold");
            eprintln!("  cold start {}/{} {label}: {ms:.1} ms", rep + 1, args.cold_starts);
            cold[i].push(ms);
        }
    }

    // ---- one workerd with every service.
    let all = [NOTHING, HELLO, JS_CACHE, OFFLOAD, PASS];
    let mut cmd = layout_workerd(&root, &code, &state.join("run"), &all, &cache_text)?;
    if args.profile {
        cmd.arg(format!("--inspector-addr=127.0.0.1:{INSPECTOR_PORT}"));
        // Profiles name Rust functions only with the name section: Offload
        // runs as its named copy (the same code before the final strip
        // and wasm-opt -O pass).
        let named = code.offload.join("index_bg.named.wasm");
        if named.exists() {
            copy(&named, &state.join("run").join(OFFLOAD.name).join("index_bg.wasm"))?;
        }
    }
    procs.spawn("workerd", cmd)?;
    for s in &all {
        procs.wait_tcp("workerd", s.port, Duration::from_secs(60))?;
    }
    let base = |port: u16| format!("http://127.0.0.1:{port}");
    // Every service answers; the hit paths are stored; Offload says hit.
    for s in &all {
        let path = match s.name {
            "cache-default" => JS_HIT_PATH,
            "offload" => HIT_PATH,
            "pass-through" => MISS_PATH,
            _ => "/",
        };
        expect_200(&format!("{}{path}", base(s.port)))?;
    }
    std::thread::sleep(Duration::from_millis(100));
    let offload_hit = expect_200(&format!("{}{HIT_PATH}", base(OFFLOAD_PORT)))?;
    if !offload_hit.as_deref().is_some_and(|c| c.contains("hit")) {
        return Err(format!("Offload did not answer {HIT_PATH} from its cache: Cache-Status {offload_hit:?}"));
    }
    for p in [MISS_PATH, BYPASS_PATH] {
        expect_200(&format!("{}{p}", base(OFFLOAD_PORT)))?;
    }
    eprintln!("bench edge: filling L2 with {} keys...", args.l2_keys);
    let before = crate::bench::origin_total(&origin)?;
    for i in 1..=args.l2_keys {
        expect_200(&format!("{}{}", base(OFFLOAD_PORT), l2_path(i)))?;
    }
    let filled = crate::bench::origin_total(&origin)? - before;
    if filled < u64::from(args.l2_keys) {
        return Err(format!("filling L2: {} keys cost the origin only {filled} requests (keys already cached?)", args.l2_keys));
    }

    let mut measured: Vec<Measured> = ROWS.iter().map(|_| Measured::default()).collect();
    let logs = procs.logs().to_owned();
    eprintln!(
        "bench edge: {} rounds x {} rows x ({} s at {} connections + {} s at 1)",
        args.rounds,
        ROWS.len(),
        args.duration,
        args.concurrency,
        args.duration
    );
    for round in 1..=args.rounds {
        for (row, m) in ROWS.iter().zip(measured.iter_mut()) {
            // Warm the hit keys again (another row may have evicted them).
            match row.target {
                Target::Path(p) if row.hit => {
                    expect_200(&format!("{}{p}", base(row.port)))?;
                    // The JS Worker stores in `waitUntil`: let it finish.
                    std::thread::sleep(Duration::from_millis(100));
                    expect_200(&format!("{}{p}", base(row.port)))?;
                }
                _ => {}
            }
            let o0 = crate::bench::origin_total(&origin)?;
            let mut run = WrkRun { port: row.port, target: row.target, connections: args.concurrency, secs: args.duration, script: &script, logs: &logs };
            let load = wrk(&run)?;
            run.connections = 1;
            let one = wrk(&run)?;
            let o1 = crate::bench::origin_total(&origin)?;
            procs.check_alive("workerd")?;
            eprintln!(
                "  round {round} {:<28} {:>9.0} req/s   p50 {:>7.0} µs  p99 {:>7.0} µs  origin +{}",
                row.label,
                load.rps,
                one.p50_us,
                one.p99_us,
                o1 - o0
            );
            m.rps.push(load.rps);
            m.p50.push(one.p50_us);
            m.p99.push(one.p99_us);
            m.errors += load.errors + one.errors;
            m.requests += load.requests + one.requests;
            m.origin += o1 - o0;
        }
    }
    let mut profiles = String::new();
    if args.profile {
        for (label, path) in [("hit (L1)", HIT_PATH), ("miss", MISS_PATH)] {
            let run = WrkRun { port: OFFLOAD_PORT, target: Target::Path(path), connections: 4, secs: args.duration + 2, script: &script, logs: &logs };
            let (profiled, load) = std::thread::scope(|scope| {
                let load = scope.spawn(|| wrk(&run));
                std::thread::sleep(Duration::from_millis(500));
                let profiled = profile(&root, OFFLOAD.name, args.duration);
                (profiled, load.join())
            });
            let load = load.map_err(|_| "wrk thread panicked".to_owned())??;
            let _ = writeln!(profiles, "\n  CPU profile of Offload, {label} ({path}, 4 connections, {:.0} req/s under the profiler):", load.rps);
            for line in profiled?.lines() {
                let _ = writeln!(profiles, "    {line}");
            }
        }
    }
    procs.stop("workerd");
    drop(procs);

    // ---- sizes.
    let (raw, gz) = crate::wasm_size(&code.offload.join("index_bg.wasm"))?;
    let (hraw, hgz) = crate::wasm_size(&code.hello.join("index_bg.wasm"))?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nbench edge: one plain `workerd serve`, origin-shim on 127.0.0.1:{ORIGIN_PORT}; wrk closed loop, keep-alive; \
         req/s at {} connections, latency at 1; {} s per run, medians of {} rounds (rows alternating)\n",
        args.concurrency, args.duration, args.rounds
    );
    let _ = writeln!(out, "  {:<28} {:<24} {:>9} {:>9} {:>9} {:>8} {:>7}", "row", "request", "req/s", "p50 µs", "p99 µs", "origin", "errors");
    for (row, m) in ROWS.iter().zip(&measured) {
        let request = match row.target {
            Target::Path(p) => p.to_owned(),
            Target::L2 => format!("l2-1..{} rotating", args.l2_keys),
        };
        let _ = writeln!(
            out,
            "  {:<28} {:<24} {:>9.0} {:>9.0} {:>9.0} {:>8} {:>7}",
            row.label,
            request,
            median(&m.rps),
            median(&m.p50),
            median(&m.p99),
            m.origin,
            m.errors
        );
    }
    let l1_bytes = l1_max_bytes(&root.join("tests/bench/offload.edge.toml"))?;
    let _ = writeln!(
        out,
        "  (d2): L1 of {l1_bytes} bytes (offload.edge.toml [cache] max_bytes); every key comes back only after {} others were adopted into L1, so each hit is read from caches.default",
        args.l2_keys / 2 - 1
    );
    let med = |id: &str, f: fn(&Measured) -> &Vec<f64>| {
        ROWS.iter().position(|r| r.id == id).map_or(f64::NAN, |i| median(f(&measured[i])))
    };
    let rps = |id: &str| med(id, |m| &m.rps);
    let p50 = |id: &str| med(id, |m| &m.p50);
    let _ = writeln!(out, "\n  ratios (medians; goals from issue 11 in brackets)");
    for (hit, name) in [("d1", "L1"), ("d2", "L2 only")] {
        let _ = writeln!(
            out,
            "  Offload hit {name:<8} req/s / hello world {:>5.2} [>= 0.8]   / do-nothing {:>5.2} [>= 0.5]   p50 / hello world p50 {:>5.2} [<= 1.5]",
            rps(hit) / rps("b"),
            rps(hit) / rps("a"),
            p50(hit) / p50("b")
        );
    }
    let _ = writeln!(
        out,
        "  Offload hit L1 req/s / JS caches.default hit {:>5.2}   hello world / do-nothing {:>5.2}",
        rps("d1") / rps("c"),
        rps("b") / rps("a")
    );
    let _ = writeln!(
        out,
        "  Offload miss req/s / pass-through {:>5.2} [>= 0.95]   Offload bypass / pass-through {:>5.2} [>= 0.95]",
        rps("e-miss") / rps("f"),
        rps("e-bypass") / rps("f")
    );
    if args.cold_starts > 0 {
        let c: Vec<f64> = cold.iter().map(|v| median(v)).collect();
        let _ = writeln!(
            out,
            "\n  cold start (fresh `workerd serve` with one service, no Cache API service, spawn to the first answer, median of {}):\n    \
             own answers: do-nothing {:.1} ms, hello world {:.1} ms (GET /, 200), Offload {:.1} ms (GET {COLD_UNROUTED_PATH}, the edge's 404); \
             Offload / hello world {:.2} [<= 1.5]\n    \
             first proxied answer (one origin fetch): Offload {:.1} ms (GET {BYPASS_PATH}), JS pass-through {:.1} ms (GET {MISS_PATH}); \
             Offload / pass-through {:.2}",
            args.cold_starts, c[0], c[1], c[2], c[2] / c[1], c[3], c[4], c[3] / c[4]
        );
    }
    let _ = writeln!(
        out,
        "\n  Workers Wasm (index_bg.wasm): Offload {raw} B raw, {gz} B gzip -9 [<= 300 KB gzip]; hello world {hraw} B raw, {hgz} B gzip -9"
    );
    let mut problems = Vec::new();
    // The shipped Wasm if it keeps its name section, else a copy with names.
    let shipped = code.offload.join("index_bg.wasm");
    let named = code.offload.join("index_bg.named.wasm");
    let breakdown = match twiggy_by_crate(&shipped) {
        Ok(b) if b.names.is_some() => Ok((b, "the shipped index_bg.wasm (it keeps its name section)".to_owned())),
        _ if named.exists() => twiggy_by_crate(&named)
            .map(|b| (b, "index_bg.named.wasm, the shipped Wasm's copy with names (before the final strip and wasm-opt -O)".to_owned())),
        _ => Err(format!("neither {} nor {} has function names", shipped.display(), named.display())),
    };
    match breakdown {
        Err(e) => problems.push(format!("size breakdown: {e}")),
        Ok((b, of)) => {
            let _ = writeln!(out, "  by crate (twiggy {TWIGGY_VERSION} top, shallow sizes, of {of}: {} B):", b.total);
            if let Some(n) = b.names {
                let _ = writeln!(out, "    (of which the \"function names\" subsection: {n} B)");
            }
            let pct = |n: u64| 100.0 * n as f64 / b.total.max(1) as f64;
            for (name, bytes) in b.crates.iter().take(12) {
                let _ = writeln!(out, "    {name:<28} {bytes:>9} B {:>5.1}%", pct(*bytes));
            }
            let rest: u64 = b.crates.iter().skip(12).map(|c| c.1).sum();
            let _ = writeln!(out, "    {:<28} {rest:>9} B {:>5.1}%", format!("({} more crates)", b.crates.len().saturating_sub(12)), pct(rest));
        }
    }
    for (row, m) in ROWS.iter().zip(&measured) {
        if m.errors > 0 {
            problems.push(format!("{}: {} of {} requests failed (non-2xx or socket errors)", row.label, m.errors, m.requests));
        }
        // A hit row measures hits: a rare miss (e.g. a Cache API read that
        // failed) is shown in its origin column; more than 1 % is an error.
        if row.hit && m.origin * 100 > m.requests {
            problems.push(format!("{}: the origin saw {} of {} requests during a hit row", row.label, m.origin, m.requests));
        }
        if !row.hit && matches!(row.target, Target::Path(p) if p != "/") && m.origin < m.requests {
            problems.push(format!("{}: {} requests but only {} reached the origin", row.label, m.requests, m.origin));
        }
    }
    out.push_str(&profiles);
    let _ = writeln!(out, "\n  ({:.0} s in all, builds included)", started.elapsed().as_secs_f64());
    print!("{out}");
    let _ = fs::write(state.join("edge.txt"), &out);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("bench edge: {}", problems.join("\n  ")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:18820/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   778.17us  305.60us   8.13ms   86.10%
    Req/Sec    10.40k   660.63    11.63k    72.00%
  Latency Distribution
     50%  730.00us
     75%  0.86ms
     90%    1.05ms
     99%    1.73ms
  103498 requests in 5.00s, 15.10MB read
  Non-2xx or 3xx responses: 5
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  20695.10
Transfer/sec:      3.02MB
";

    #[test]
    fn wrk_report_is_parsed() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests, 103_498);
        assert!((r.rps - 20_695.10).abs() < 1e-6);
        assert!((r.p50_us - 730.0).abs() < 1e-9);
        assert!((r.p99_us - 1730.0).abs() < 1e-9);
        assert_eq!(r.errors, 8);
        let clean = WRK.replace("  Non-2xx or 3xx responses: 5\n", "").replace("  Socket errors: connect 0, read 2, write 0, timeout 1\n", "");
        assert_eq!(parse_wrk(&clean).unwrap().errors, 0);
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
        assert!(parse_wrk(&WRK.replace("Requests/sec:  20695.10", "")).is_err());
    }

    #[test]
    fn wrk_durations_in_microseconds() {
        assert_eq!(wrk_duration_us("71.00us"), Some(71.0));
        assert_eq!(wrk_duration_us("1.50ms"), Some(1500.0));
        assert_eq!(wrk_duration_us("2.00s"), Some(2e6));
        assert_eq!(wrk_duration_us("1.00m"), Some(60e6));
        assert_eq!(wrk_duration_us("fast"), None);
        assert_eq!(wrk_duration_us("-1us"), None);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn crates_from_twiggy_names() {
        assert_eq!(crate_of("offload_core::cache::edge::EdgeCache::store::h0123"), "offload_core");
        assert_eq!(crate_of("<serde_json::de::Deserializer<R> as serde::de::Deserializer>::deserialize_any"), "serde_json");
        assert_eq!(crate_of("<&T as core::fmt::Display>::fmt"), "core");
        assert_eq!(crate_of("<core::marker::PhantomData<T> as serde_core::de::DeserializeSeed>::deserialize::h61c1"), "serde_core");
        assert_eq!(crate_of("<f64 as core[c5930c85a12de822]::fmt::Display>::fmt"), "core");
        assert_eq!(crate_of("<dlmalloc[e24a27700634d609]::dlmalloc::Dlmalloc<dlmalloc[e24a]::sys::System>>::malloc"), "dlmalloc");
        assert_eq!(crate_of("serde_json::value::de::<impl serde_core::de::Deserialize for serde_json::value::Value>::deserialize"), "serde_json");
        assert_eq!(crate_of("<core::iter::adapters::GenericShunt<I,R> as core::iter::traits::iterator::Iterator>::next"), "core");
        assert_eq!(crate_of("<&mut alloc::vec::Vec<u8> as core::fmt::Debug>::fmt"), "alloc");
        assert_eq!(crate_of("_ZN4core3fmt5write17h0123456789abcdefE"), "core");
        assert_eq!(crate_of("data[3]"), "(data segments)");
        assert_eq!(crate_of("__wbg_fetch_1234"), "(wasm-bindgen glue)");
        assert_eq!(crate_of("\"function names\" subsection"), "(sections, tables)");
        assert_eq!(crate_of("data segment \".rodata.5\""), "(data segments)");
        assert_eq!(crate_of("code[42]"), "(unnamed functions)");
    }

    #[test]
    fn twiggy_csv_is_summed_by_crate() {
        let csv = "Name,ShallowSize,ShallowSizePercent\n\
                   \"offload_core::a::b\",100,10.0\n\
                   \"offload_core::c\",50,5.0\n\
                   \"<toml::de::X as serde::de::Deserializer>::f, with comma\",30,3.0\n\
                   data[0],20,2.0\n\
                   \"Σ [4 Total Rows]\",200,20.0\n";
        let b = parse_twiggy_csv(csv).unwrap();
        assert_eq!(b.total, 200);
        assert_eq!(b.crates, vec![("offload_core".into(), 150), ("toml".into(), 30), ("(data segments)".into(), 20)]);
        assert_eq!(b.names, None);
        let with_names = format!("{csv}\"\"\"function names\"\" subsection\",7,0.1\n");
        assert_eq!(parse_twiggy_csv(&with_names).unwrap().names, Some(7));
        assert!(parse_twiggy_csv("Name,Size\n").is_err());
        assert!(parse_twiggy_csv("Name,ShallowSize\nx::y,many\n").is_err());
    }

    #[test]
    fn one_socket_per_service_and_cache_workers_only_when_used() {
        let root = root();
        let cache = cache_workers(&root).unwrap();
        let all = [NOTHING, HELLO, JS_CACHE, OFFLOAD, PASS];
        let c = workerd_config(&all, "http://127.0.0.1:18810", &cache);
        for s in &all {
            assert!(c.contains(&format!("address = \"127.0.0.1:{}\", http = (), service = \"{}\"", s.port, s.name)), "{c}");
        }
        assert_eq!(c.matches("cacheApiOutbound = \"cache:0\"").count(), 2, "{c}");
        assert_eq!(c.matches("text = \"http://127.0.0.1:18810\"").count(), 2);
        assert!(c.contains("embed \"offload/index_bg.wasm\"") && c.contains("embed \"hello/index.js\""));
        let plain = workerd_config(&[NOTHING], "http://127.0.0.1:18810", &cache);
        assert!(!plain.contains("cache:0") && !plain.contains("miniflare"), "{plain}");
        // The template this reuses runs the edge at the same compatibility date.
        let template = fs::read_to_string(root.join("tests/conformance/workerd.capnp")).unwrap();
        assert!(template.contains(&format!("compatibilityDate = \"{COMPAT_DATE}\"")));
    }

    #[test]
    fn l2_script_rotates_threads_half_apart() {
        let s = l2_script(1000);
        assert!(s.contains("started * 500"), "{s}");
        assert!(s.contains("\"/api/items/l2-\" .. i .. \"?ttl=3600\""), "{s}");
        assert!(s.contains("i % 1000 + 1"), "{s}");
    }

    #[test]
    fn flags_and_defaults() {
        use clap::Parser as _;
        let cli = crate::Cli::try_parse_from(["xtask", "bench", "edge"]).unwrap();
        let crate::Cmd::Bench { which: crate::bench::BenchCmd::Edge(a) } = cli.command else { panic!("not bench edge") };
        assert_eq!((a.duration, a.rounds, a.concurrency, a.cold_starts, a.l2_keys), (5, 3, 16, 5, 1000));
        assert!(crate::Cli::try_parse_from(["xtask", "bench", "edge", "--concurrency", "0"]).is_err());
        assert!(crate::Cli::try_parse_from(["xtask", "bench", "edge", "--l2-keys", "10"]).is_err());
    }
}
