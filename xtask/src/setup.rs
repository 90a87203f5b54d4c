//! Install what a fresh machine lacks, at pinned versions, through the
//! project's own files: the wasm32 target, wasm-bindgen-cli matching the
//! `wasm-bindgen` pin, wasm-pack, worker-build, the npm packages from package-lock.json
//! (wrangler, miniflare/workerd, binaryen's wasm-opt, esbuild), cfn-lint
//! and moto (pinned requirements files) in the venv `.offload/venv`,
//! Chromium + ChromeDriver from Debian when running as root, and the
//! fuzzing nightly (`fuzz/rust-toolchain.toml`) with cargo-fuzz.

use std::path::Path;
use std::process::Command;

use crate::run as exec;

/// Must equal the `wasm-bindgen = "=..."` pin in the workspace Cargo.toml
/// (a unit test checks it).
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
pub const WORKER_BUILD_VERSION: &str = "0.8.7";
/// wasm-pack builds the browser package and runs the core's wasm tests,
/// always with `--mode no-install` (the wasm-bindgen above, the npm
/// binaryen's wasm-opt, Debian's chromedriver: nothing downloaded).
pub const WASM_PACK_VERSION: &str = "0.15.1";

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn has_version(cmd: &str, version: &str) -> bool {
    output(cmd, &["--version"]).is_some_and(|v| v.split_whitespace().any(|w| w.trim_start_matches('v') == version))
}

pub fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

pub fn ensure(root: &Path) -> Result<(), String> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        eprintln!("setup: adding the wasm32-unknown-unknown target");
        exec(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    if !has_version("wasm-bindgen", WASM_BINDGEN_VERSION) {
        eprintln!("setup: installing wasm-bindgen-cli {WASM_BINDGEN_VERSION} (a few minutes, once)");
        exec(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]))?;
    }
    if !has_version("wasm-pack", WASM_PACK_VERSION) {
        eprintln!("setup: installing wasm-pack {WASM_PACK_VERSION} (a few minutes, once)");
        exec(Command::new("cargo").args(["install", "wasm-pack", "--version", WASM_PACK_VERSION, "--locked"]))?;
    }
    if !has_version("worker-build", WORKER_BUILD_VERSION) {
        eprintln!("setup: installing worker-build {WORKER_BUILD_VERSION} (a few minutes, once)");
        exec(Command::new("cargo").args(["install", "worker-build", "--version", WORKER_BUILD_VERSION]))?;
    }
    let lock = root.join("package-lock.json");
    let stamp = root.join("node_modules/.package-lock.json");
    let stale = match (std::fs::metadata(&lock).and_then(|m| m.modified()), std::fs::metadata(&stamp).and_then(|m| m.modified())) {
        (Ok(l), Ok(s)) => l > s,
        _ => true,
    };
    if stale || !root.join("node_modules/.bin/wrangler").exists() {
        eprintln!("setup: npm ci (wrangler, miniflare/workerd, binaryen, esbuild from package-lock.json)");
        exec(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(root))?;
    }
    crate::fuzz::ensure(root)?;
    let root_user = output("id", &["-u"]).is_some_and(|u| u.trim() == "0");
    // cfn-lint runs from a venv under .offload/ (deploy/requirements.txt).
    if output("python3", &["-m", "venv", "--help"]).is_none() && root_user {
        eprintln!("setup: apt-get install python3-venv (for cfn-lint)");
        exec(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
        exec(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "python3-venv"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    // The Python tools, pinned, in the project venv .offload/venv (never a
    // global pip install): cfn-lint, and moto for the Lambda@Edge secrets
    // tests.
    for reqs in ["deploy/requirements.txt", "tests/lambda-edge/requirements.txt"] {
        crate::deploy::venv_install(root, reqs)?;
    }
    // Local secret values (git-ignored .dev.vars): kept if present,
    // random values for bindings it lacks. `cargo xtask dev` renews them.
    let config = crate::deploy::load_config(root)?;
    offload_e2e::devvars::ensure(root, &config)?;
    let have_browser = output("chromium", &["--version"]).is_some() && Path::new(&chromedriver()).exists();
    if !have_browser {
        if !root_user {
            return Err("Chromium and ChromeDriver are missing: run `sudo apt-get install -y chromium chromium-driver`".into());
        }
        eprintln!("setup: apt-get install chromium chromium-driver");
        exec(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
        exec(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn wasm_bindgen_pin_matches_the_cli_we_install() {
        let manifest = std::fs::read_to_string(offload_e2e::root().join("Cargo.toml")).unwrap();
        let pin = format!("wasm-bindgen = \"={}\"", super::WASM_BINDGEN_VERSION);
        assert!(manifest.contains(&pin), "workspace Cargo.toml must pin {pin}");
    }

    #[test]
    fn wrangler_is_pinned_in_the_lockfile() {
        let lock = std::fs::read_to_string(offload_e2e::root().join("package-lock.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&lock).unwrap();
        assert_eq!(v["packages"]["node_modules/wrangler"]["version"], "4.86.0");
        assert_eq!(v["packages"]["node_modules/binaryen"]["version"], "132.0.0");
    }
}
