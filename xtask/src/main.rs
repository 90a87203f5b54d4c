//! `cargo xtask <command>`: install the pinned toolchain, run the local
//! stack, run every test, build the deploy artifacts, benchmark. Every
//! command and flag is declared below with `clap`: `cargo xtask --help`
//! and `cargo xtask <command> --help` list them.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use offload_e2e::{root, tool_path, worker_build_env, Stack};

mod bench;
mod edge_bench;
mod bench_sign;
mod memory;
mod canonical;
mod conformance;
mod setup;
mod deploy;
mod example;
mod publish;
mod fuzz;
mod scan;
mod sign;

/// The project's orchestration: toolchain, local stack, tests, artifacts,
/// benchmarks.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Install what is missing (idempotent, pinned versions).
    Setup,
    /// Build the Workers edge with worker-build (no downloads); the
    /// wrangler.toml build command. Refuses a config that trusts the test
    /// geo header unless OFFLOAD_LOCAL_STACK=1.
    BuildWorker,
    /// Setup, then run the local stack (origins, bucket, edge in workerd)
    /// until Ctrl-C.
    Dev,
    /// Setup, then every test: native, Node, Chromium, workerd, fuzz,
    /// deploy checks.
    Test,
    /// Issue a signed download link or a presign grant.
    Sign {
        #[command(subcommand)]
        what: sign::SignCmd,
    },
    /// Build the deploy artifacts under .offload/, or run the deploy checks.
    Package {
        /// What to build (`check`: every deploy check of `cargo xtask test`).
        #[arg(value_enum, default_value_t = PackageTarget::All)]
        target: PackageTarget,
    },
    /// Run the cargo-fuzz targets in fuzz/ on the pinned nightly.
    Fuzz(fuzz::FuzzArgs),
    /// The http-cache-tests suite against the edge, Varnish and nginx.
    Conformance(conformance::ConformanceArgs),
    /// Build the Workers library example (edge/workers-example) and check
    /// it under plain workerd: Offload in front of the app's own handler.
    Example,
    /// Upload a static-site folder to a bucket of the config (SigV4),
    /// with CDN headers; only changes; purge the changed files at the edge.
    Publish(publish::Args),
    /// Benchmarks: `cache`, `edge`, `memory`, `sign`.
    Bench {
        #[command(subcommand)]
        which: bench::BenchCmd,
    },
}

/// What `cargo xtask package` builds.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PackageTarget {
    /// The Lambda@Edge zip.
    LambdaEdge,
    /// The CloudFront Function.
    CloudfrontFunction,
    /// Both.
    All,
    /// Every deploy check (what `cargo xtask test` runs).
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C (or SIGTERM) stops every process a command started, whole
    // process groups, before xtask exits.
    if let Err(e) = offload_supervise::install_interrupt_handler() {
        eprintln!("xtask: error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Cmd::Setup => setup::ensure(&root()),
        Cmd::BuildWorker => build_worker(&root(), deploy::Build::Deploy),
        Cmd::Dev => dev(),
        Cmd::Test => test(),
        Cmd::Conformance(args) => conformance::main(&args),
        Cmd::Bench { which } => bench::main(which),
        Cmd::Package { target } => deploy::package(&root(), target),
        Cmd::Sign { what } => sign::run(&what),
        Cmd::Fuzz(args) => fuzz::main(&args),
        Cmd::Example => example::run(&root()),
        Cmd::Publish(args) => publish::main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// Run a test command, show its output, and fail unless its first suite
/// really ran tests (a runner that skips them all must not count as a pass).
fn run_counting_tests(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("{shown} failed ({})", out.status));
    }
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("test result: ok. ")?.split(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    if passed == 0 || stdout.contains("so skipping") {
        return Err(format!("{shown}: no test ran (skipped)"));
    }
    eprintln!("{passed} tests passed in the first suite");
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// worker-build with local wasm-bindgen, wasm-opt (npm binaryen) and
/// esbuild; prints the size of the Wasm it produced. This is the
/// wrangler.toml build command, so `wrangler deploy` runs it: a deploy
/// build refuses a config trusting the test header (the local stack sets
/// `OFFLOAD_LOCAL_STACK=1` for `wrangler dev`).
pub(crate) fn build_worker(root: &Path, build: deploy::Build) -> Result<(), String> {
    if build == deploy::Build::Deploy {
        let config = deploy::load_config(root)?;
        offload_e2e::check_deployable(&config, "build-worker")?;
    }
    let mut cmd = Command::new("worker-build");
    cmd.arg("--release").current_dir(root.join("edge/workers")).envs(worker_build_env(root));
    run(&mut cmd)?;
    let wasm = root.join("edge/workers/build/index_bg.wasm");
    let named = deploy::target_dir(root).join("offload-workers-named.wasm");
    ship_wasm(root, &wasm, &named)?;
    ship_entry(root, &root.join("edge/workers/build/index.js"))?;
    let (raw, gz) = wasm_size(&wasm)?;
    eprintln!(
        "worker wasm: {raw} bytes raw, {gz} bytes gzip -9 ({}; with the name section: {})",
        wasm.display(),
        named.display()
    );
    Ok(())
}

/// A worker-build Wasm as it ships. worker-build keeps the name section
/// (function names for stack traces; wasm-opt --debuginfo), a fifth of
/// the Wasm at opt-level "z". The Worker goes without it; the named copy
/// is kept at `named`, for `twiggy` and for reading a trace. Every Workers
/// build goes through this (the deployable one, and the benches' builds
/// of Offload and of the hello-world floor).
pub(crate) fn ship_wasm(root: &Path, wasm: &Path, named: &Path) -> Result<(), String> {
    std::fs::copy(wasm, named).map_err(|e| format!("{} -> {}: {e}", wasm.display(), named.display()))?;
    // Then optimized again (without the names wasm-opt shrinks it further)
    // with the functions ordered by name, which puts the copies of a
    // generic side by side for gzip. Measured, bytes gzip -9:
    // worker-build's output stripped 315,456; `-O` 312,954; `-O
    // --reorder-functions-by-name` 305,885 (on a later build that was
    // 307,642 with `-O` alone); `-Oz` instead of `-O` no smaller.
    deploy::wasm_opt(root, wasm, &["--strip-debug", "-O", "--reorder-functions-by-name", ONE_CALLER_INLINE[0], ONE_CALLER_INLINE[1]])
}

/// What worker-build 0.8.7's shim exports as the Worker (bundled, not
/// minified: `worker_build_env` sets `NO_MINIFY`).
const SHIM_DEFAULT: &str = "var shim_default = new Proxy(Entrypoint, classProxyHooks);";

/// The shim's parts the plain entry keeps: panic recovery (a trap marks
/// the instance critical; the next request resets its state) and the
/// generated `fetch` handler.
const SHIM_KEPT: [&str; 3] = ["function checkReinitialize() {", "function handleMaybeCritical(e) {", "Entrypoint.prototype.fetch = function"];

/// The Worker's entry: worker-build's shim exports a `WorkerEntrypoint`
/// class behind a `Proxy` whose construct trap builds an instance proxy,
/// and whose get trap wraps `fetch` in another proxy, on every request.
/// This replaces that export with a plain module-worker object that keeps
/// the shim's panic recovery: `checkReinitialize` before the call,
/// `handleMaybeCritical` on a throw (what the proxies did; a trap in a
/// later promise reaches the shim's `error` listener either way). Then the
/// bundle is minified, as worker-build would have. Measured in one
/// `workerd serve`, workerd CPU per request (ad hoc, as in the issue 11
/// note): Offload's L1 hit 159/172/180/141 µs with the proxies against
/// 118/147/137/136 µs with the plain object; the bypass route 367/434/426
/// against 344/330/396 µs. Every Workers build goes through this, the
/// hello-world floor of `bench edge` included, so the floor is built as
/// Offload is. A shim that does not have these exact parts (another
/// worker-build version) fails the build instead of shipping unpatched.
pub(crate) fn ship_entry(root: &Path, index_js: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(index_js).map_err(|e| format!("{}: {e}", index_js.display()))?;
    let patched = plain_entry(&text).map_err(|e| format!("{}: {e}", index_js.display()))?;
    std::fs::write(index_js, patched).map_err(|e| format!("{}: {e}", index_js.display()))?;
    let dir = index_js.parent().unwrap_or(Path::new("."));
    let mut esbuild = Command::new(root.join("node_modules/.bin/esbuild"));
    esbuild
        .arg(index_js.file_name().unwrap_or_default())
        .args(["--minify", "--format=esm", "--allow-overwrite", "--log-level=error"])
        .arg(format!("--outfile={}", index_js.file_name().unwrap_or_default().to_string_lossy()))
        .current_dir(dir);
    run(&mut esbuild)
}

/// The bundle `text` with the shim's proxied export replaced by the plain
/// entry ([`ship_entry`]), or why it is not the shim this patches.
fn plain_entry(text: &str) -> Result<String, String> {
    let once = |needle: &str| text.matches(needle).count() == 1;
    if !once(SHIM_DEFAULT) || !SHIM_KEPT.iter().all(|n| once(n)) {
        return Err(format!(
            "not the unminified worker-build {} shim this build patches (expected once each: {SHIM_DEFAULT:?}, {SHIM_KEPT:?}); \
             was NO_MINIFY set, or did worker-build change?",
            setup::WORKER_BUILD_VERSION
        ));
    }
    let entry = "// The Worker's entry: a plain module-worker object (see `cargo xtask`'s ship_entry).\n\
                 var shim_default = {\n  fetch(request, env, ctx) {\n    checkReinitialize();\n    try {\n      \
                 return Entrypoint.prototype.fetch.call({ env, ctx }, request);\n    } catch (e) {\n      \
                 handleMaybeCritical(e);\n      throw e;\n    }\n  }\n};";
    Ok(text.replacen(SHIM_DEFAULT, entry, 1))
}

/// wasm-opt's limit on inlining a function into its only caller (binaryen's
/// default: any size), for both passes of a Workers build: worker-build's
/// (`[package.metadata.wasm-pack.profile.release] wasm-opt` of every crate
/// built with it; a test checks they carry the same) and [`ship_wasm`]'s.
///
/// Why: workerd's V8 compiles Wasm lazily, so the first request pays
/// Liftoff for every function it touches (bench config, GET of an
/// unrouted path: ~390 functions, ~200 KB of code), and Liftoff costs
/// more than linearly in a function's size (locals x blocks). Without the
/// limit, wasm-opt folded the one-caller chain fetch -> build -> config
/// decode -> `Config::try_from` into one 57.7 KB `fetch` shim that took
/// 6.4-9.5 ms to compile on its own (V8 `--trace-wasm-compilation-times`;
/// Liftoff on the first request, per-function minimum over 5 alternating
/// starts, summed: 12.9 ms; with 500: 8.6 ms, the largest function then
/// the config's 17.7 KB serde visitor). `cargo xtask bench edge
/// --cold-starts 9`: Offload's own answer 55.6 -> 49.6 ms, hello world
/// 30.8 -> 30.7 ms. The Wasm got smaller too: 291,241 -> 290,336 B gzip
/// -9. Limits from 200 to 5000 measured alike; steady-state req/s showed
/// no difference beyond the noise.
pub(crate) const ONE_CALLER_INLINE: [&str; 2] = ["--one-caller-inline-max-function-size", "500"];

/// A file's size in bytes, raw and `gzip -9`.
pub(crate) fn wasm_size(path: &Path) -> Result<(u64, usize), String> {
    let raw = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    let out = Command::new("gzip").args(["-9", "-c"]).arg(path).output().map_err(|e| format!("gzip -9 {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!("gzip -9 {} failed ({})", path.display(), out.status));
    }
    Ok((raw, out.stdout.len()))
}

fn dev() -> Result<(), String> {
    let root = root();
    setup::ensure(&root)?;
    println!("starting the local stack (the first start builds the Worker; this can take minutes)...");
    let mut stack = Stack::start()?;
    println!("\nOffload local stack is up:");
    println!("  edge (Workers build in workerd)  {}/", stack.edge);
    println!("    landing page from the bucket   {}/", stack.edge);
    println!("    explain a response (Wasm)      {}/explain.html", stack.edge);
    println!("    upload straight to S3          {}/upload.html", stack.edge);
    println!("    API via us-east-1              {}/api/time", stack.edge);
    println!("    API via eu-west-1              {}/eu/api/time", stack.edge);
    for (region, url, control) in &stack.origins {
        println!("  origin {region:<10}              {url}/   (needs edge auth; stats and faults: {control}/_shim/stats)");
    }
    println!("  bucket (S3, SigV4, private)      {}/www/index.html", stack.bucket);
    println!("\nA viewer elsewhere: curl -H 'x-offload-geo: country=DE' {}/api/time", stack.edge);
    println!("A signed link: cargo xtask sign link --path /private/report.txt");
    println!("  logs                             {}", stack.logs.display());
    println!("\nCtrl-C stops everything.");
    // The first Ctrl-C ends this loop and the stack stops in order; a
    // second one stops every process group at once.
    offload_supervise::watch_interrupts();
    while !offload_supervise::interrupted() {
        if let Some(dead) = stack.dead_process() {
            drop(stack);
            return Err(dead);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nstopping...");
    drop(stack);
    println!("stopped.");
    Ok(())
}

fn test() -> Result<(), String> {
    let root = root();
    let started = Instant::now();
    setup::ensure(&root)?;
    let path = tool_path(&root);
    // The core's wasm32 tests through wasm-pack (`--mode no-install`: the
    // project's wasm-bindgen-test-runner and Debian's chromedriver).
    let wasm_tests = |browser: bool| {
        let mut c = Command::new("wasm-pack");
        c.arg("test");
        if browser {
            // The core's tests are not tied to one platform: run them in
            // the browser (wasm-pack alone would skip them there).
            c.args(["--headless", "--chrome", "--chromedriver"]).arg(setup::chromedriver());
            c.env("WASM_BINDGEN_USE_BROWSER", "1");
        } else {
            c.arg("--node");
        }
        c.args(["--mode", "no-install", "edge/core"]).current_dir(&root).env("PATH", &path);
        c
    };
    let mut native = cargo();
    native.args(["test", "--workspace", "--exclude", "offload-e2e"]);
    let mut e2e = cargo();
    e2e.args(["test", "-p", "offload-e2e", "--test", "edge"]);
    let mut browser = cargo();
    browser.args(["test", "-p", "offload-e2e", "--test", "browser"]);
    let mut steps: Vec<(&str, Box<dyn FnMut() -> Result<(), String>>)> = vec![
        ("native: cargo test --workspace", Box::new(move || run(&mut native))),
        ("wasm32 in Node: core tests (wasm-pack test --node)", Box::new({
            let mut c = wasm_tests(false);
            move || run_counting_tests(&mut c)
        })),
        ("wasm32 in headless Chromium: core tests (wasm-pack test --headless --chrome)", Box::new({
            let mut c = wasm_tests(true);
            move || run_counting_tests(&mut c)
        })),
        ("Workers build (worker-build, no downloads)", Box::new({
            let root = root.clone();
            move || build_worker(&root, deploy::Build::Local)
        })),
        ("end to end: edge in workerd + origins + bucket", Box::new(move || run(&mut e2e))),
        ("Workers library example: Offload in front of the app's handler, in workerd", Box::new({
            let root = root.clone();
            move || example::run(&root)
        })),
        ("real browser: headless Chromium over WebDriver (pages, explainer, upload, publish)", Box::new(move || run(&mut browser))),
        ("fuzz: every cargo-fuzz target, a few seconds each", Box::new({
            let root = root.clone();
            move || fuzz::short_run(&root)
        })),
    ];
    steps.extend(deploy::steps(&root));
    let mut results = Vec::new();
    for (name, step) in &mut steps {
        eprintln!("\n==> {name}");
        let t = Instant::now();
        let r = step();
        if let Err(e) = &r {
            eprintln!("==> {name}: FAILED: {e}");
        }
        results.push((*name, r.is_ok(), t.elapsed()));
    }
    eprintln!("\n==> summary");
    for (name, ok, took) in &results {
        eprintln!("  {:<6} {name} ({:.0} s)", if *ok { "ok" } else { "FAILED" }, took.as_secs_f64());
    }
    let failed = results.iter().filter(|r| !r.1).count();
    let line = format!(
        "xtask test: {}. {} steps passed; {failed} failed; {:.0} s",
        if failed == 0 { "ok" } else { "FAILED" },
        results.len() - failed,
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        eprintln!("{line}");
        Ok(())
    } else {
        Err(line)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// The end of worker-build 0.8.7's bundled shim, as esbuild writes it
    /// unminified (abridged: the hooks' bodies are cut).
    const SHIM_TAIL: &str = "function checkReinitialize() {\n  if (initState.criticalError) {\n    __wbg_reset_state();\n  }\n}\n\
        function handleMaybeCritical(e) {\n  if (e instanceof WebAssembly.RuntimeError) {\n    initState.criticalError = true;\n  }\n}\n\
        var Entrypoint = class extends WorkerEntrypoint {\n};\n\
        Entrypoint.prototype.fetch = function fetch2(arg) {\n  return fetch.call(this, arg, this.env, this.ctx);\n};\n\
        var classProxyHooks = {};\n\
        var shim_default = new Proxy(Entrypoint, classProxyHooks);\n\
        var R2Range2 = new Proxy(R2Range, classProxyHooks);\n\
        export {\n  R2Range2 as R2Range,\n  shim_default as default\n};\n";

    #[test]
    fn plain_entry_replaces_the_proxied_export_and_keeps_panic_recovery() {
        let out = super::plain_entry(SHIM_TAIL).expect("the 0.8.7 shape is patched");
        assert!(!out.contains("new Proxy(Entrypoint"), "{out}");
        assert_eq!(out.matches("var shim_default = {").count(), 1, "{out}");
        let entry = &out[out.find("var shim_default = {").unwrap_or(0)..];
        let (check, call, recover) = (entry.find("checkReinitialize();"), entry.find("Entrypoint.prototype.fetch.call("), entry.find("handleMaybeCritical(e);"));
        assert!(check.is_some() && call.is_some() && recover.is_some(), "{entry}");
        assert!(check < call && call < recover, "reset before the call, recovery on a throw: {entry}");
        // The other exports are left as they were.
        assert!(out.contains("var R2Range2 = new Proxy(R2Range, classProxyHooks);"), "{out}");
    }

    #[test]
    fn plain_entry_refuses_a_shim_of_another_shape() {
        let minified = "var a=new Proxy(b,c);export{a as default};";
        let no_recovery = SHIM_TAIL.replace("function checkReinitialize() {", "function reinit() {");
        let twice = format!("{SHIM_TAIL}{}", super::SHIM_DEFAULT);
        for text in [minified, no_recovery.as_str(), twice.as_str()] {
            let err = super::plain_entry(text).expect_err("not patched");
            assert!(err.contains("NO_MINIFY") && err.contains(super::setup::WORKER_BUILD_VERSION), "{err}");
        }
    }

    /// Both wasm-opt passes of a Workers build cap one-caller inlining
    /// alike: worker-build's (each crate's metadata) and `ship_wasm`'s.
    #[test]
    fn worker_build_crates_cap_one_caller_inlining_as_ship_wasm() {
        let root = offload_e2e::root();
        for krate in ["edge/workers", "tests/bench/hello-worker"] {
            let text = std::fs::read_to_string(root.join(krate).join("Cargo.toml")).unwrap();
            let manifest: toml::Value = toml::from_str(&text).unwrap();
            let args = ["package", "metadata", "wasm-pack", "profile", "release", "wasm-opt"]
                .iter()
                .try_fold(&manifest, |v, k| v.get(k))
                .and_then(toml::Value::as_array)
                .map(|a| a.iter().filter_map(toml::Value::as_str).collect::<Vec<_>>());
            assert_eq!(args, Some(vec!["-O", super::ONE_CALLER_INLINE[0], super::ONE_CALLER_INLINE[1]]), "{krate}/Cargo.toml");
        }
    }
}
