//! The local Offload stack: two origin-shim regions, the S3-compatible
//! bucket holding the site built from `www/` ([`site`]), and the edge (the Workers build) in workerd via
//! `wrangler dev`, all on 127.0.0.1. Used by `cargo xtask dev` and by the
//! end-to-end tests. Every process runs in its own process group and is
//! stopped (the whole group) when the [`Stack`] is dropped.

use std::fs::{self, File};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        ("WRANGLER_SEND_METRICS", "false".to_owned()),
        ("CLOUDFLARE_CF_FETCH_ENABLED", "false".to_owned()),
    ]
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

/// A running local stack. Dropping it stops every process it started.
pub struct Stack {
    procs: Vec<Proc>,
    pub edge: String,
    /// (region, origin URL, control URL serving `/_shim/*`).
    pub origins: Vec<(String, String, String)>,
    pub bucket: String,
    pub logs: PathBuf,
}

fn port_free(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err()
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
        if let Some(p) = ports.iter().find(|p| !port_free(**p)) {
            return Err(format!(
                "port 127.0.0.1:{p} is in use (is `cargo xtask dev` already running?)"
            ));
        }
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
        let _ = fs::remove_dir_all(&bucket_root);
        fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;

        let mut stack = Stack {
            procs: Vec::new(),
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
            stack.spawn(&format!("origin-{region}"), cmd)?;
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
        stack.spawn("bucket", cmd)?;
        for (region, _, control) in stack.origins.clone() {
            stack.wait_http(&format!("{control}/_shim/stats"), &format!("origin-{region}"), 30)?;
        }
        stack.wait_tcp(BUCKET_PORT, "bucket", 30)?;

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
        stack.spawn("edge", cmd)?;
        // The first start builds the Worker (release Wasm): allow for it.
        stack.wait_http(&format!("{}/healthz", stack.edge), "edge", 900)?;
        Ok(stack)
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<(), String> {
        let log = self.logs.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
        let child = cmd.spawn().map_err(|e| format!("start {name}: {e}"))?;
        self.procs.push(Proc { name: name.to_owned(), child, log });
        Ok(())
    }

    fn check_alive(&mut self, name: &str) -> Result<(), String> {
        for p in &mut self.procs {
            if p.name == name {
                if let Ok(Some(status)) = p.child.try_wait() {
                    let tail = fs::read_to_string(&p.log).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(30).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(format!("{name} exited ({status}); log {}:\n{}", p.log.display(), tail.join("\n")));
                }
            }
        }
        Ok(())
    }

    fn wait_http(&mut self, url: &str, name: &str, secs: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            self.check_alive(name)?;
            if matches!(http::get(url), Ok(r) if r.status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("{name} did not answer 200 at {url} within {secs} s (log: {})", self.logs.display()))
    }

    fn wait_tcp(&mut self, port: u16, name: &str, secs: u64) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            self.check_alive(name)?;
            if !port_free(port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("{name} did not listen on 127.0.0.1:{port} within {secs} s"))
    }

    /// Whether every process is still running (for `xtask dev`'s loop).
    pub fn dead_process(&mut self) -> Option<String> {
        self.procs.iter_mut().find_map(|p| match p.child.try_wait() {
            Ok(Some(s)) => Some(format!("{} exited ({s}); see {}", p.name, p.log.display())),
            _ => None,
        })
    }
}

/// Send `signal` to the process group led by `pid` (each child is started
/// as a group leader, so this reaches wrangler's workerd children too).
fn signal_group(signal: &str, pid: u32) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SIGTERM each process group (wrangler has workerd children), give
        // them a moment, then SIGKILL whatever is left.
        for p in &self.procs {
            signal_group("TERM", p.child.id());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for p in &mut self.procs {
            while Instant::now() < deadline {
                if matches!(p.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            signal_group("KILL", p.child.id());
            let _ = p.child.wait();
        }
    }
}
