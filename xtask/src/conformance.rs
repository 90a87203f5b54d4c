//! `cargo xtask conformance`: the http-tests cache-tests suite (npm package
//! `http-cache-tests`, pinned in package.json) run offline, on loopback,
//! against the Offload edge under plain `workerd serve`, Varnish and nginx,
//! each in front of the suite's own server; scored with the suite's own
//! classification (`lib/display.mjs`, the code behind cache-tests.fyi).
//!
//! ```text
//! cargo xtask conformance [--systems direct,offload,varnish,nginx]
//!                         [--worker-dir DIR] [--config FILE] [--suite-dir DIR]
//!                         [--id TEST_ID] [--out DIR] [--no-cache-api]
//! ```
//!
//! - `direct` is the suite's server alone (the no-cache baseline).
//! - `--worker-dir`: use this worker-build output instead of building the
//!   edge with `--config` (default tests/conformance/offload.conformance.toml).
//! - `--suite-dir`: another copy of the suite, e.g. a checkout of the
//!   GitHub repository (test-engine/ layout), whose revision is the one
//!   cache-tests.fyi publishes (160 required tests; the npm 0.4.5 CLI runs 165).
//! - `--id`: run one test and print every request and response.
//! - `--no-cache-api`: the edge without `caches.default` (L1 alone).
//!
//! Everything is started as the current user with its own temporary config
//! and working directory under `.offload/conformance/`, and stopped (the
//! whole process group) before the command returns. A low score is the
//! output, not an error: the command fails only when the harness does.
//!
//! This module also holds what `cargo xtask bench cache` shares with it:
//! the Workers build into a separate directory,
//! and the launchers for the edge (or another Worker, such as the JS
//! Worker with `caches.default`) under workerd, Varnish and nginx.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use offload_e2e::{root, worker_build_env};
use offload_supervise::{log_tail, Group, Supervisor};

/// The suite version this harness is written against (package.json pins it).
const SUITE_VERSION: &str = "0.4.5";

/// Loopback ports (the suite server's port is also in
/// tests/conformance/offload.conformance.toml, varnish.vcl and nginx.conf).
const SUITE_PORT: u16 = 18800;
const EDGE_PORT: u16 = 18801;
const VARNISH_PORT: u16 = 18802;
const NGINX_PORT: u16 = 18803;

/// One suite run must finish within this (it takes about 25 s).
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

/// Published on cache-tests.fyi for a newer revision of the suite (160
/// required tests there; the npm 0.4.5 CLI runs 165).
const PUBLISHED: [(&str, u32); 6] = [
    ("ATS", 132),
    ("httpd", 131),
    ("Squid", 122),
    ("Varnish", 119),
    ("nginx", 99),
    ("Fastly", 96),
];

// ------------------------------------------------------------ processes ----

pub(crate) fn ensure_ports_free(ports: &[u16]) -> Result<(), String> {
    offload_supervise::ensure_ports_free(ports, "another conformance or bench run?")
}

fn output_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(text)
}

/// A fresh, empty directory.
pub(crate) fn fresh_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

pub(crate) fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

// ----------------------------------------------------- systems under test ----

/// Builds the Workers edge with `config` bundled (OFFLOAD_CONFIG) into
/// `out` with worker-build's `--out-dir`, so `edge/workers/build` (the main
/// build that `wrangler dev` serves) is left alone.
pub(crate) fn build_edge(root: &Path, config: &Path, out: &Path) -> Result<(), String> {
    build_worker_crate(root, &root.join("edge/workers"), Some(config), out)
}

/// `worker-build --release --out-dir out` in `crate_dir` (the project's
/// wasm-bindgen, wasm-opt and esbuild), with `OFFLOAD_CONFIG=config` if given.
pub(crate) fn build_worker_crate(root: &Path, crate_dir: &Path, config: Option<&Path>, out: &Path) -> Result<(), String> {
    let config = config
        .map(|c| c.canonicalize().map_err(|e| format!("{}: {e}", c.display())))
        .transpose()?;
    fresh_dir(out)?;
    match &config {
        Some(c) => eprintln!("building the Workers edge with {} (worker-build --release)...", c.display()),
        None => eprintln!("building {} (worker-build --release)...", crate_dir.display()),
    }
    let mut cmd = Command::new("worker-build");
    cmd.args(["--release", "--out-dir"])
        .arg(out)
        .current_dir(crate_dir)
        .envs(worker_build_env(root));
    if let Some(c) = &config {
        cmd.env("OFFLOAD_CONFIG", c);
    }
    crate::run(&mut cmd)?;
    for f in ["index.js", "index_bg.wasm"] {
        if !out.join(f).exists() {
            return Err(format!("worker-build left no {}", out.join(f).display()));
        }
    }
    // As `cargo xtask build-worker` ships it (the named copy beside it).
    crate::ship_wasm(root, &out.join("index_bg.wasm"), &out.join("index_bg.named.wasm"))?;
    crate::ship_entry(root, &out.join("index.js"))
}

/// The workerd binary from the npm packages (wrangler's own).
pub(crate) fn workerd_bin(root: &Path) -> Result<PathBuf, String> {
    [
        "node_modules/@cloudflare/workerd-linux-64/bin/workerd",
        "node_modules/workerd/bin/workerd",
    ]
    .iter()
    .map(|p| root.join(p))
    .find(|p| p.exists())
    .ok_or_else(|| "workerd is missing from node_modules (run `cargo xtask setup`)".to_owned())
}

/// The Worker `start_workerd` serves as the "edge" service of
/// tests/conformance/workerd.capnp.
pub(crate) struct EdgeWorker {
    /// Its modules and bindings, copied as `edge-worker.capnp`.
    capnp: PathBuf,
    /// The files that capnp embeds, copied into `worker/`.
    files: Vec<PathBuf>,
    /// Set in workerd's environment (for `fromEnvironment` bindings).
    env: Vec<(&'static str, String)>,
}

impl EdgeWorker {
    /// The Offload edge: a worker-build output (`index.js`, `index_bg.wasm`).
    pub(crate) fn offload(root: &Path, worker_dir: &Path) -> EdgeWorker {
        EdgeWorker {
            capnp: root.join("tests/conformance/edge-offload.capnp"),
            files: ["index.js", "index_bg.wasm"].iter().map(|f| worker_dir.join(f)).collect(),
            env: Vec::new(),
        }
    }

    /// The JS Worker with `caches.default` (tests/bench/workers/cache-default.js)
    /// in front of `origin` (its `ORIGIN` binding, e.g. "http://127.0.0.1:18810").
    pub(crate) fn cache_default_js(root: &Path, origin: &str) -> EdgeWorker {
        EdgeWorker {
            capnp: root.join("tests/bench/workers/cache-default.capnp"),
            files: vec![root.join("tests/bench/workers/cache-default.js")],
            env: vec![("ORIGIN", origin.to_owned())],
        }
    }
}

/// Starts the Workers build in `worker_dir` under plain `workerd serve`
/// (see `start_workerd`).
pub(crate) fn start_edge(
    procs: &mut Supervisor,
    name: &str,
    root: &Path,
    worker_dir: &Path,
    run_dir: &Path,
    port: u16,
    cache_api: bool,
) -> Result<(), String> {
    let worker = EdgeWorker::offload(root, worker_dir);
    start_workerd(procs, name, root, &worker, run_dir, port, cache_api)
}

/// Starts `worker` under plain `workerd serve` on 127.0.0.1:`port` with
/// the config tests/conformance/workerd.capnp (loopback-only network, a
/// Cache API backed by miniflare's cache worker). `run_dir` is emptied and
/// holds the config and the cache. Without `cache_api` the worker gets no
/// Cache API (`caches.default` then fails, as under plain workerd by
/// default): for the Offload edge, its in-isolate cache alone.
pub(crate) fn start_workerd(
    procs: &mut Supervisor,
    name: &str,
    root: &Path,
    worker: &EdgeWorker,
    run_dir: &Path,
    port: u16,
    cache_api: bool,
) -> Result<(), String> {
    fresh_dir(run_dir)?;
    for sub in ["worker", "miniflare", "cache-storage"] {
        fs::create_dir_all(run_dir.join(sub)).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    }
    let template = root.join("tests/conformance/workerd.capnp");
    let mut capnp =
        fs::read_to_string(&template).map_err(|e| format!("{}: {e}", template.display()))?;
    if !cache_api {
        const LINE: &str = "  cacheApiOutbound = \"cache:0\",\n";
        if !capnp.contains(LINE) {
            return Err(format!(
                "{}: no line {LINE:?} to remove for --no-cache-api",
                template.display()
            ));
        }
        capnp = capnp.replace(LINE, "");
    }
    fs::write(run_dir.join("workerd.capnp"), capnp)
        .map_err(|e| format!("{}: {e}", run_dir.display()))?;
    copy(&worker.capnp, &run_dir.join("edge-worker.capnp"))?;
    for f in &worker.files {
        let name = f
            .file_name()
            .ok_or_else(|| format!("{}: not a file", f.display()))?;
        copy(f, &run_dir.join("worker").join(name))?;
    }
    copy_miniflare_cache(root, &run_dir.join("miniflare"))?;
    let mut cmd = Command::new(workerd_bin(root)?);
    cmd.args(["serve", "--experimental", "workerd.capnp", "--socket-addr"])
        .arg(format!("http=127.0.0.1:{port}"))
        .arg("--directory-path")
        .arg(format!(
            "cache-storage={}",
            run_dir.join("cache-storage").display()
        ))
        .envs(worker.env.iter().map(|(k, v)| (k, v)))
        .current_dir(run_dir);
    procs.spawn(name, cmd)?;
    procs.wait_tcp(name, port, Duration::from_secs(60))
}

/// Copies miniflare's Cache API workers (what the `cacheEntry` and
/// `cacheObject` services of tests/conformance/workerd.capnp embed) into
/// `dir` (created if missing).
pub(crate) fn copy_miniflare_cache(root: &Path, dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mf = root.join("node_modules/miniflare/dist/src/workers");
    for (from, to) in [
        ("shared/index.worker.js", "shared.worker.js"),
        ("shared/zod.worker.js", "zod.worker.js"),
        ("cache/cache.worker.js", "cache.worker.js"),
        ("cache/cache-entry.worker.js", "cache-entry.worker.js"),
    ] {
        copy(&mf.join(from), &dir.join(to))?;
    }
    Ok(())
}

/// Starts varnishd in the foreground as the current user (`-j none`) with
/// its own working directory, no management port, on 127.0.0.1:`port`.
pub(crate) fn start_varnish(
    procs: &mut Supervisor,
    name: &str,
    vcl: &Path,
    run_dir: &Path,
    port: u16,
    params: &[&str],
) -> Result<(), String> {
    fresh_dir(run_dir)?;
    let mut cmd = Command::new("varnishd");
    cmd.args(["-F", "-j", "none", "-n"])
        .arg(run_dir.join("varnish"))
        .arg("-a")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-T", "none", "-f"])
        .arg(
            vcl.canonicalize()
                .map_err(|e| format!("{}: {e}", vcl.display()))?,
        )
        .args(params)
        .current_dir(run_dir);
    procs.spawn(name, cmd)?;
    procs.wait_tcp(name, port, Duration::from_secs(60))
}

/// Starts nginx in the foreground (master and workers as the current user)
/// with `conf`, every relative path under `run_dir`.
pub(crate) fn start_nginx(
    procs: &mut Supervisor,
    name: &str,
    conf: &Path,
    run_dir: &Path,
    port: u16,
) -> Result<(), String> {
    fresh_dir(run_dir)?;
    fs::create_dir_all(run_dir.join("tmp")).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let conf = conf
        .canonicalize()
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    let mut globals = "daemon off;".to_owned();
    // As root, nginx would switch its workers to `nobody`: keep them as us.
    if output_of("id", &["-u"]).is_some_and(|u| u.trim() == "0") {
        globals.push_str(" user root;");
    }
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(format!("{}/", run_dir.display()))
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(run_dir.join("error.log"))
        .args(["-g", &globals])
        .current_dir(run_dir);
    procs.spawn(name, cmd)?;
    procs.wait_tcp(name, port, Duration::from_secs(30))
}

fn is_root() -> bool {
    output_of("id", &["-u"]).is_some_and(|u| u.trim() == "0")
}

/// Varnish and nginx from Debian (`apt-get install -y varnish nginx` when
/// missing and root). Their packaged services are not used; Debian's
/// packaging may start them (where an init system runs), in which case the
/// services this install started are stopped again. Returns which of the
/// two are available.
pub(crate) fn ensure_proxies(want_varnish: bool, want_nginx: bool) -> (bool, bool) {
    let have = |bin: &str| Path::new(bin).exists();
    let missing: Vec<&str> = [
        (want_varnish && !have("/usr/sbin/varnishd"), "varnish"),
        (want_nginx && !have("/usr/sbin/nginx"), "nginx"),
    ]
    .iter()
    .filter(|(m, _)| *m)
    .map(|(_, p)| *p)
    .collect();
    if !missing.is_empty() {
        if is_root() {
            eprintln!("installing {} (apt-get install -y)...", missing.join(" "));
            let env = [("DEBIAN_FRONTEND", "noninteractive")];
            let _ = Command::new("apt-get")
                .arg("update")
                .envs(env)
                .stdout(Stdio::null())
                .status();
            let _ = Command::new("apt-get")
                .args(["install", "-y"])
                .args(&missing)
                .envs(env)
                .stdout(Stdio::null())
                .status();
            // Only our own processes serve the harness: stop the packaged
            // services the install may have started (no-op in containers).
            for service in &missing {
                let _ = Command::new("service")
                    .args([*service, "stop"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        } else {
            eprintln!(
                "note: {} missing and not root: `sudo apt-get install -y {}`",
                missing.join(", "),
                missing.join(" ")
            );
        }
    }
    (have("/usr/sbin/varnishd"), have("/usr/sbin/nginx"))
}

pub(crate) fn version_of(system: &str) -> String {
    let first_line = |s: Option<String>| {
        s.and_then(|t| t.lines().next().map(str::to_owned))
            .unwrap_or_default()
    };
    match system {
        // "varnishd (varnish-7.1.1 revision ...)" -> "7.1.1"
        "varnish" => first_line(output_of("varnishd", &["-V"]))
            .replace("varnishd (varnish-", "")
            .split(' ')
            .next()
            .unwrap_or("")
            .to_owned(),
        // "nginx version: nginx/1.22.1" -> "1.22.1"
        "nginx" => first_line(output_of("nginx", &["-v"])).replace("nginx version: nginx/", ""),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------- suite ----

struct Opts {
    systems: Vec<String>,
    worker_dir: Option<PathBuf>,
    config: PathBuf,
    suite_dir: PathBuf,
    /// Run this one test with the suite's dump of every request and response.
    id: Option<String>,
    /// Where the JSON results and summary.txt go.
    out: PathBuf,
    /// Give the edge a Cache API (miniflare's cache worker).
    cache_api: bool,
}

const ALL_SYSTEMS: [&str; 4] = ["direct", "offload", "varnish", "nginx"];

/// `cargo xtask conformance`: the flags (see the module's doc).
#[derive(clap::Args, Debug)]
pub(crate) struct ConformanceArgs {
    /// Systems to test, in order (`direct`: the suite's server alone, the no-cache baseline).
    #[arg(long, value_name = "S,S", value_delimiter = ',', default_values_t = ALL_SYSTEMS.map(String::from),
          value_parser = clap::builder::PossibleValuesParser::new(ALL_SYSTEMS))]
    systems: Vec<String>,
    /// A worker-build output to use instead of building the edge with --config.
    #[arg(long, value_name = "DIR")]
    worker_dir: Option<PathBuf>,
    /// Edge config to build with [default: tests/conformance/offload.conformance.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Another copy of the suite (e.g. a checkout of its repository, test-engine/ layout)
    /// [default: node_modules/http-cache-tests].
    #[arg(long, value_name = "DIR")]
    suite_dir: Option<PathBuf>,
    /// Run this one test and print every request and response.
    #[arg(long, value_name = "TEST_ID")]
    id: Option<String>,
    /// Where the JSON results and summary.txt go [default: tests/conformance/results].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The edge without caches.default (its in-isolate cache alone).
    #[arg(long)]
    no_cache_api: bool,
}

fn parse_opts(root: &Path, args: &ConformanceArgs) -> Opts {
    Opts {
        systems: args.systems.clone(),
        worker_dir: args.worker_dir.clone(),
        config: args.config.clone().unwrap_or_else(|| root.join("tests/conformance/offload.conformance.toml")),
        suite_dir: args.suite_dir.clone().unwrap_or_else(|| root.join("node_modules/http-cache-tests")),
        id: args.id.clone(),
        out: args.out.clone().unwrap_or_else(|| root.join("tests/conformance/results")),
        cache_api: !args.no_cache_api,
    }
}

/// The suite's CLI: `cli.mjs` in the npm package, `test-engine/cli.mjs` in
/// the GitHub repository (a newer revision, for `--suite-dir`).
fn suite_cli(suite: &Path) -> &'static str {
    if suite.join("test-engine/cli.mjs").exists() {
        "test-engine/cli.mjs"
    } else {
        "cli.mjs"
    }
}

/// Runs the suite's CLI against `base` and returns its JSON results.
fn run_suite(suite: &Path, base: &str, out: &Path, log: &Path) -> Result<usize, String> {
    let stdout = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let stderr = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    // The CLI reads its settings the way `npm run cli --base=...` passes them.
    let mut cmd = Command::new("node");
    cmd.args(["--no-warnings", suite_cli(suite)])
        .current_dir(suite)
        .env("npm_config_base", base)
        .env("npm_config_id", "")
        .env("npm_package_config_id", "")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let mut cli = Group::spawn("node cli.mjs", &mut cmd)?;
    let Some(status) = cli.wait_timeout(SUITE_TIMEOUT) else {
        return Err(format!(
            "the suite did not finish against {base} within {} s",
            SUITE_TIMEOUT.as_secs()
        ));
    };
    let text = fs::read_to_string(out).unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "the suite's output against {base} is not JSON ({e}; {status}); {}",
            log_tail(log, 20)
        )
    })?;
    let n = parsed.as_object().map_or(0, serde_json::Map::len);
    if n == 0 {
        return Err(format!(
            "the suite reported no results against {base}; {}",
            log_tail(log, 20)
        ));
    }
    Ok(n)
}

/// Counts per class, from score.mjs.
#[derive(Default, Clone)]
struct Score {
    req: [u64; 5], // pass, fail, setup (incl. retry), dep, other
    req_total: u64,
    opt_pass: u64,
    opt_total: u64,
    check_yes: u64,
    check_total: u64,
    tests: Vec<(String, String)>,
}

fn parse_score(v: &serde_json::Value) -> Score {
    let n =
        |o: &serde_json::Value, k: &str| o.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let r = &v["required"];
    let total = n(r, "total");
    let (pass, fail, setup, dep) = (
        n(r, "pass"),
        n(r, "fail"),
        n(r, "setup_fail") + n(r, "retry"),
        n(r, "dependency_fail"),
    );
    Score {
        req: [pass, fail, setup, dep, total - pass - fail - setup - dep],
        req_total: total,
        opt_pass: n(&v["optional"], "pass"),
        opt_total: n(&v["optional"], "total"),
        check_yes: n(&v["check"], "yes"),
        check_total: n(&v["check"], "total"),
        tests: v["tests"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Scores result files with tests/conformance/score.mjs (the suite's own
/// `determineTestResult`).
/// With `--reference`, also the suite's own published results (`results/`),
/// named `ref:<name> <version>`.
fn score(
    root: &Path,
    suite: &Path,
    files: &[(String, PathBuf)],
) -> Result<Vec<(String, Score)>, String> {
    let mut cmd = Command::new("node");
    cmd.arg(root.join("tests/conformance/score.mjs"))
        .arg(suite)
        .arg("--reference");
    for (name, path) in files {
        cmd.arg(format!("{name}={}", path.display()));
    }
    let out = cmd.output().map_err(|e| format!("node score.mjs: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "score.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("score.mjs output is not JSON: {e}"))?;
    let map = v.as_object().ok_or("score.mjs output is not an object")?;
    Ok(map
        .iter()
        .map(|(name, s)| (name.clone(), parse_score(s)))
        .collect())
}

fn row(label: &str, s: &Score) -> String {
    let other = if s.req[4] > 0 {
        format!("  (+{} other)", s.req[4])
    } else {
        String::new()
    };
    let line = format!(
        "  {label:<30} {:>4}/{:<4} {:>5} {:>6} {:>5}   {:>3}/{:<3}  {:>3}/{:<3}{other}",
        s.req[0],
        s.req_total,
        s.req[1],
        s.req[2],
        s.req[3],
        s.opt_pass,
        s.opt_total,
        s.check_yes,
        s.check_total
    );
    format!("{}\n", line.trim_end())
}

pub(crate) fn main(args: &ConformanceArgs) -> Result<(), String> {
    let root = root();
    let opts = parse_opts(&root, args);
    crate::setup::ensure(&root)?;
    let suite = opts.suite_dir.canonicalize().map_err(|e| {
        format!(
            "{}: {e} (http-cache-tests is a devDependency: run `npm ci`)",
            opts.suite_dir.display()
        )
    })?;
    let pkg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(suite.join("package.json")).unwrap_or_default())
            .map_err(|e| format!("{}/package.json: {e}", suite.display()))?;
    let suite_version = pkg["version"].as_str().unwrap_or("?").to_owned();
    if suite_version != SUITE_VERSION {
        eprintln!(
            "note: http-cache-tests {suite_version} (this harness was written for {SUITE_VERSION})"
        );
    }
    let wants = |s: &str| opts.systems.iter().any(|x| x == s);
    let state = root.join(".offload/conformance");
    let results_dir = opts.out.clone();
    fs::create_dir_all(&results_dir).map_err(|e| format!("{}: {e}", results_dir.display()))?;
    ensure_ports_free(&[SUITE_PORT, EDGE_PORT, VARNISH_PORT, NGINX_PORT])?;

    let worker_dir = if !wants("offload") {
        None
    } else if let Some(dir) = &opts.worker_dir {
        Some(dir.clone())
    } else {
        let out = state.join("worker");
        build_edge(&root, &opts.config, &out)?;
        Some(out)
    };
    let (have_varnish, have_nginx) = ensure_proxies(wants("varnish"), wants("nginx"));

    let mut procs = Supervisor::new(state.join("logs"))?;
    let mut cmd = Command::new("node");
    cmd.arg(root.join("tests/conformance/origin-server.mjs"))
        .arg(&suite)
        .arg(SUITE_PORT.to_string())
        .arg(state.join("suite-server.pid"))
        .current_dir(&suite);
    procs.spawn("suite-server", cmd)?;
    procs.wait_tcp("suite-server", SUITE_PORT, Duration::from_secs(30))?;

    let mut ran: Vec<(String, String, PathBuf)> = Vec::new(); // (system, label, results)
    let mut problems: Vec<String> = Vec::new();
    for system in &opts.systems {
        let started = Instant::now();
        let run_dir = state.join(format!("run-{system}"));
        let (label, port, start): (String, u16, Result<(), String>) = match system.as_str() {
            "direct" => ("origin directly (no cache)".into(), SUITE_PORT, Ok(())),
            "offload" => {
                let Some(dir) = &worker_dir else { continue };
                let r = start_edge(
                    &mut procs,
                    "offload",
                    &root,
                    dir,
                    &run_dir,
                    EDGE_PORT,
                    opts.cache_api,
                );
                let label = if opts.cache_api {
                    "Offload edge (plain workerd)"
                } else {
                    "Offload edge (no Cache API)"
                };
                (label.into(), EDGE_PORT, r)
            }
            "varnish" if have_varnish => {
                let params = [
                    "-p",
                    "default_ttl=0",
                    "-p",
                    "default_grace=0",
                    "-p",
                    "default_keep=3600",
                    "-s",
                    "malloc,64M",
                ];
                let vcl = root.join("tests/conformance/varnish.vcl");
                let r = start_varnish(&mut procs, "varnish", &vcl, &run_dir, VARNISH_PORT, &params);
                (
                    format!("Varnish {}", version_of("varnish")),
                    VARNISH_PORT,
                    r,
                )
            }
            "nginx" if have_nginx => {
                let r = start_nginx(
                    &mut procs,
                    "nginx",
                    &root.join("tests/conformance/nginx.conf"),
                    &run_dir,
                    NGINX_PORT,
                );
                (format!("nginx {}", version_of("nginx")), NGINX_PORT, r)
            }
            other => {
                problems.push(format!("{other}: not installed, skipped"));
                continue;
            }
        };
        if let Err(e) = start {
            problems.push(format!("{system}: did not start: {e}"));
            procs.stop(system);
            continue;
        }
        if let Some(id) = &opts.id {
            eprintln!("\n==> {id} against {label} (127.0.0.1:{port})");
            let mut cli = Command::new("node");
            cli.args(["--no-warnings", suite_cli(&suite)])
                .current_dir(&suite)
                .env("npm_config_base", format!("http://127.0.0.1:{port}"))
                .env("npm_config_id", id)
                .env("npm_package_config_id", id);
            if let Err(e) = crate::run(&mut cli) {
                problems.push(format!("{system}: {e}"));
            }
            if system != "direct" {
                procs.stop(system);
            }
            continue;
        }
        eprintln!("running http-cache-tests {suite_version} against {label} (127.0.0.1:{port})...");
        let out = results_dir.join(format!("{system}.json"));
        let log = procs.log_path(&format!("suite-cli-{system}"));
        match run_suite(&suite, &format!("http://127.0.0.1:{port}"), &out, &log) {
            Ok(n) => {
                eprintln!(
                    "  {n} results in {:.0} s -> {}",
                    started.elapsed().as_secs_f64(),
                    out.display()
                );
                ran.push((system.clone(), label, out));
            }
            Err(e) => problems.push(format!("{system}: {e}")),
        }
        if system != "direct" {
            if let Err(e) = procs.check_alive(system) {
                problems.push(format!("{system} died during the run: {e}"));
            }
            procs.stop(system);
        }
    }
    drop(procs);
    if opts.id.is_some() {
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        };
    }

    // Score our runs and the package's own reference results together.
    let files: Vec<(String, PathBuf)> =
        ran.iter().map(|(s, _, p)| (s.clone(), p.clone())).collect();
    let scores = score(&root, &suite, &files)?;
    let find = |name: &str| scores.iter().find(|(n, _)| n == name).map(|(_, s)| s);

    let mut report = String::new();
    let _ = writeln!(
        report,
        "\nhttp-cache-tests {suite_version} ({}), scored with the suite's own determineTestResult\n",
        suite.display()
    );
    let _ = writeln!(
        report,
        "  {:<30} {:>9} {:>5} {:>6} {:>5}   {:>7}  {:>7}",
        "", "required", "fail", "setup", "dep", "optional", "check"
    );
    let _ = writeln!(report, "  {:<30} {:>9}", "", "pass");
    for (system, label, _) in &ran {
        if let Some(s) = find(system) {
            report.push_str(&row(label, s));
        }
    }
    let _ = writeln!(
        report,
        "\n  reference: the suite's own published results/ (same tests, scored the same way)"
    );
    for (name, s) in scores.iter().filter(|(n, _)| n.starts_with("ref:")) {
        report.push_str(&row(&name["ref:".len()..], s));
    }
    let published: Vec<String> = PUBLISHED.iter().map(|(n, p)| format!("{n} {p}")).collect();
    let _ = writeln!(
        report,
        "\n  published on cache-tests.fyi (newer suite revision, required passes of 160): {}",
        published.join(", ")
    );
    let _ = writeln!(
        report,
        "\n  results: {}/<system>.json; failing required tests per system: summary.txt",
        results_dir.display()
    );

    // Per system: the required tests that did not pass (for whoever fixes them).
    let mut detail = report.clone();
    for (system, label, _) in &ran {
        if let Some(s) = find(system) {
            let _ = writeln!(detail, "\n{label}: required tests not passing");
            for (id, outcome) in &s.tests {
                if outcome.starts_with("required:") && outcome != "required:pass" {
                    let _ = writeln!(detail, "  {:<16} {id}", &outcome["required:".len()..]);
                }
            }
        }
    }
    let summary = results_dir.join("summary.txt");
    fs::write(&summary, &detail).map_err(|e| format!("{}: {e}", summary.display()))?;
    print!("{report}");
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "conformance harness problems:\n  {}",
            problems.join("\n  ")
        ))
    }
}
