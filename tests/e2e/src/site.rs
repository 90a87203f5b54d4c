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

/// Build the browser package with `wasm-pack build edge/browser --target
/// web --profile browser` (the workspace's size-optimized release profile;
/// `--mode no-install`: the wasm-bindgen on PATH, the npm binaryen's
/// wasm-opt), then the site with `www/build.mjs`; returns the site's folder.
pub fn build(root: &Path) -> Result<PathBuf, String> {
    let (pkg, out) = (package_dir(root), dir(root));
    let mut wasm_pack = Command::new("wasm-pack");
    wasm_pack
        .args(["--quiet", "build", "edge/browser", "--target", "web", "--profile", "browser", "--mode", "no-install", "--no-pack", "--out-dir"])
        .arg(&pkg)
        .current_dir(root)
        .env("PATH", super::tool_path(root));
    let mut site = Command::new("node");
    site.arg(root.join("www/build.mjs")).arg("--out").arg(&out).arg("--pkg").arg(&pkg).current_dir(root);
    for cmd in [&mut wasm_pack, &mut site] {
        let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
        if !status.success() {
            return Err(format!("{cmd:?} failed ({status})"));
        }
    }
    Ok(out)
}
