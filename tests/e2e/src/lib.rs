//! The local Offload stack: two origin-shim regions, the S3-compatible
//! bucket holding the site built from `www/` ([`site`]), and the edge (the Workers build) in workerd via
//! `wrangler dev`, all on 127.0.0.1. Used by `cargo xtask dev` and by the
//! end-to-end tests. Every process runs in its own process group, logs to
//! `.offload/logs/<name>.log` and is stopped (the whole group) when the
//! [`Stack`] is dropped: all of that is `offload_supervise`'s.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use offload_supervise::{ensure_ports_free, Supervisor};

pub mod devvars;
pub mod http;
pub mod site;

/// Set (to `1`) only by the local stack and the test steps: builds for
/// local runs may trust the test geo header; deploy builds may not.
pub const LOCAL_STACK_ENV: &str = "OFFLOAD_LOCAL_STACK";

/// Refuse a config that trusts the test header unless this is a local
/// build ([`LOCAL_STACK_ENV`]`=1`): what `cargo xtask build-worker` (the
/// wrangler.toml build command, so `wrangler deploy`) and `cargo xtask
/// package` check before building anything that could be deployed.
pub fn check_deployable(config: &offload_core::Config, what: &str) -> Result<(), String> {
    let local = std::env::var(LOCAL_STACK_ENV).is_ok_and(|v| v == "1");
    if config.routing().trust_test_header() && !local {
        return Err(format!(
            "{what}: refusing to build a deployable artifact from a config with [routing] trust_test_header = true \
             (viewers could choose their region with x-offload-geo); set it to false (or build for a local run with {LOCAL_STACK_ENV}=1)"
        ));
    }
    Ok(())
}

/// Fixed loopback ports of the local stack (they match `offload.toml`).
pub const EDGE_PORT: u16 = 18787;
pub const REGIONS: [(&str, u16); 2] = [("us-east-1", 18701), ("eu-west-1", 18702)];
/// Control ports of the regions (`/_shim/*`: stats, faults, stop/start).
pub const CONTROL_PORT_OFFSET: u16 = 10;
pub const BUCKET_PORT: u16 = 18703;

/// The local stack's config (`offload.toml`), parsed and validated. It
/// holds secret references only; the values are in `.dev.vars`
/// ([`devvars`]).
pub fn local_config() -> Result<offload_core::Config, String> {
    let path = root().join("offload.toml");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    offload_core::Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The local stack's keys: `offload.toml`'s references resolved from
/// `.dev.vars` (what the edge in `wrangler dev` resolves too).
pub fn local_keys() -> Result<offload_core::config::EdgeKeys, String> {
    let config = local_config()?;
    let vars = devvars::DevVars::load(&root())?;
    offload_core::config::EdgeKeys::resolve(&config, &vars.secret_map()).map_err(|e| format!("{}: {e}", devvars::FILE))
}

/// The workspace root (where `Cargo.toml`, `wrangler.toml` and `www/` live).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.join("../..").canonicalize().unwrap_or(here)
}

/// `PATH` with the project's tools first: `node_modules/.bin` (wrangler,
/// the npm binaryen wasm-opt, esbuild) and cargo's bin dir, so that a
/// distribution `wasm-opt` is never picked.
pub fn tool_path(root: &Path) -> String {
    let mut parts = vec![root.join("node_modules/.bin").display().to_string()];
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        parts.push(PathBuf::from(home).join("bin").display().to_string());
    } else if let Some(home) = std::env::var_os("HOME") {
        parts.push(PathBuf::from(home).join(".cargo/bin").display().to_string());
    }
    parts.push(std::env::var("PATH").unwrap_or_default());
    parts.join(":")
}

/// Environment for worker-build: local binaries only, never a download.
pub fn worker_build_env(root: &Path) -> Vec<(&'static str, String)> {
    let bin = root.join("node_modules/.bin");
    vec![
        ("PATH", tool_path(root)),
        ("WASM_OPT_BIN", bin.join("wasm-opt").display().to_string()),
        ("ESBUILD_BIN", bin.join("esbuild").display().to_string()),
        ("WASM_BINDGEN_BIN", "wasm-bindgen".to_owned()),
        // The bundle stays readable for xtask's `ship_entry`, which
        // replaces the shim's proxied entry and then minifies it.
        ("NO_MINIFY", "1".to_owned()),
        ("WRANGLER_SEND_METRICS", "false".to_owned()),
        ("CLOUDFLARE_CF_FETCH_ENABLED", "false".to_owned()),
    ]
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

/// A running local stack. Dropping it stops every process it started.
pub struct Stack {
    procs: Supervisor,
    pub edge: String,
    /// (region, origin URL, control URL serving `/_shim/*`).
    pub origins: Vec<(String, String, String)>,
    pub bucket: String,
    pub logs: PathBuf,
}

impl Stack {
    /// Build origin-shim, start the regions and the bucket, then the edge in
    /// workerd, and wait until each answers.
    pub fn start() -> Result<Stack, String> {
        let root = root();
        let config = local_config()?;
        let auth = config.routing().origin_auth().ok_or("offload.toml: [routing.origin_auth] is required locally")?;
        // Fresh random secrets for this run, where wrangler dev and every
        // local process read them.
        let vars = devvars::regenerate(&root, &config)?;
        let auth_secret = vars.for_ref(&config, "routing.origin_auth.secret")?.to_owned();
        let access_key = vars.for_ref(&config, "buckets.www.access_key_id")?.to_owned();
        let secret_key = vars.for_ref(&config, "buckets.www.secret_access_key")?.to_owned();
        let mut ports = vec![EDGE_PORT, BUCKET_PORT];
        ports.extend(REGIONS.iter().flat_map(|r| [r.1, r.1 + CONTROL_PORT_OFFSET]));
        ensure_ports_free(&ports, "is `cargo xtask dev` or another e2e run already running?")?;
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", "origin-shim"])
            .current_dir(&root)
            .status()
            .map_err(|e| format!("cargo build -p origin-shim: {e}"))?;
        if !status.success() {
            return Err("cargo build -p origin-shim failed".into());
        }
        let site = site::build(&root)?;
        let shim = target_dir(&root).join("debug/origin-shim");
        let state = root.join(".offload");
        let logs = state.join("logs");
        let bucket_root = state.join("bucket");
        // Every stack starts from the same state: the bucket seeded afresh
        // from www/, the platform cache (wrangler's persisted state) empty.
        let _ = fs::remove_dir_all(&bucket_root);
        let _ = fs::remove_dir_all(state.join("wrangler"));
        fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;

        let mut stack = Stack {
            procs: Supervisor::new(&logs)?,
            edge: format!("http://127.0.0.1:{EDGE_PORT}"),
            origins: REGIONS
                .iter()
                .map(|(r, p)| {
                    let control = format!("http://127.0.0.1:{}", p + CONTROL_PORT_OFFSET);
                    ((*r).to_owned(), format!("http://127.0.0.1:{p}"), control)
                })
                .collect(),
            bucket: format!("http://127.0.0.1:{BUCKET_PORT}"),
            logs: logs.clone(),
        };
        for (region, port) in REGIONS {
            let mut cmd = Command::new(&shim);
            cmd.args(["origin", "--region", region, "--listen", &format!("127.0.0.1:{port}")])
                .args(["--control-listen", &format!("127.0.0.1:{}", port + CONTROL_PORT_OFFSET)])
                .args(["--auth-header", auth.header().as_str()])
                .env("OFFLOAD_ORIGIN_AUTH_KEYS", format!("{}={auth_secret}", auth.key_id()));
            stack.procs.spawn(&format!("origin-{region}"), cmd)?;
        }
        // The bucket is private: the edge reads `www` with signed requests,
        // browsers upload to `uploads` with presigned URLs (CORS allows
        // the edge's pages).
        fs::create_dir_all(bucket_root.join("uploads")).map_err(|e| format!("{}: {e}", bucket_root.display()))?;
        let mut cmd = Command::new(&shim);
        cmd.args(["bucket", "--listen", &format!("127.0.0.1:{BUCKET_PORT}"), "--root"])
            .arg(&bucket_root)
            .args(["--access-key", &access_key, "--bucket", "www", "--seed"])
            .arg(&site)
            .args(["--cors-origin", &format!("http://127.0.0.1:{EDGE_PORT}")])
            .env("OFFLOAD_S3_SECRET_KEY", &secret_key);
        stack.procs.spawn("bucket", cmd)?;
        for (region, _, control) in stack.origins.clone() {
            wait_ok(&mut stack.procs, &format!("origin-{region}"), &format!("{control}/_shim/stats"), 30)?;
        }
        stack.procs.wait_tcp("bucket", BUCKET_PORT, Duration::from_secs(30))?;

        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        cmd.args([
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &EDGE_PORT.to_string(),
            "--show-interactive-dev-session=false",
            "--persist-to",
        ])
        .arg(state.join("wrangler"))
        .current_dir(&root)
        .env("CI", "1")
        .env(LOCAL_STACK_ENV, "1")
        .envs(worker_build_env(&root));
        stack.procs.spawn("edge", cmd)?;
        // The first start builds the Worker (release Wasm): allow for it.
        let health = format!("{}/healthz", stack.edge);
        wait_ok(&mut stack.procs, "edge", &health, 900)?;
        Ok(stack)
    }

    /// The first process found to have exited, with its log's tail (for
    /// `xtask dev`'s loop).
    pub fn dead_process(&mut self) -> Option<String> {
        self.procs.dead_process()
    }
}

/// Waits until `url` answers 200 while `name` runs.
fn wait_ok(procs: &mut Supervisor, name: &str, url: &str, secs: u64) -> Result<(), String> {
    let what = format!("did not answer 200 at {url}");
    procs.wait_for(name, &what, Duration::from_secs(secs), || matches!(http::get(url), Ok(r) if r.status == 200))
}
