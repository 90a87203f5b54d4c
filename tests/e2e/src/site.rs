//! The static site the local bucket serves: the browser package built by
//! `wasm-pack build --target web` (the project's wasm-bindgen and wasm-opt,
//! nothing downloaded), then `www/build.mjs` (pages in the layout,
//! fingerprinted assets) into `.offload/site/`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the built site goes (git-ignored).
pub fn dir(root: &Path) -> PathBuf {
    root.join(".offload/site")
}

/// Where wasm-pack puts the browser package.
pub fn package_dir(root: &Path) -> PathBuf {
    super::target_dir(root).join("browser-pkg")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("{shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// `wasm-pack build edge/browser --target web --profile browser` (the
/// workspace's size-optimized release profile; `--mode no-install`: the
/// wasm-bindgen on PATH, the npm binaryen's wasm-opt).
pub fn build_package(root: &Path) -> Result<PathBuf, String> {
    let out = package_dir(root);
    run(Command::new("wasm-pack")
        .args(["--quiet", "build", "edge/browser", "--target", "web", "--profile", "browser", "--mode", "no-install", "--no-pack", "--out-dir"])
        .arg(&out)
        .current_dir(root)
        .env("PATH", super::tool_path(root)))?;
    Ok(out)
}

/// Build the browser package and the site; returns the site's folder.
pub fn build(root: &Path) -> Result<PathBuf, String> {
    let pkg = build_package(root)?;
    let out = dir(root);
    run(Command::new("node").arg(root.join("www/build.mjs")).arg("--out").arg(&out).arg("--pkg").arg(&pkg).current_dir(root))?;
    Ok(out)
}
