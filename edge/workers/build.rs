//! Bundle and validate the edge config at build time (shared by
//! edge/workers and edge/lambda-edge): a bad config fails
//! the build with a message naming the field and value.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=OFFLOAD_CONFIG");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = std::env::var_os("OFFLOAD_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../offload.toml"));
    println!("cargo:rerun-if-changed={}", path.display());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read edge config {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    if let Err(e) = offload_core::Config::from_toml(&text) {
        eprintln!("error: {}: {e}", path.display());
        std::process::exit(1);
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("offload.toml");
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("error: cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}
