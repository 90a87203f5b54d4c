//! Bundle and validate the edge config at build time (shared by
//! edge/workers, edge/workers-example and edge/lambda-edge): a bad config
//! fails the build with a message naming the field and value. Writes its
//! JSON form `$OUT_DIR/offload.json`, which the edge reads at run time
//! without a TOML parser in its Wasm.
//!
//! The config: `$OFFLOAD_CONFIG`, else the crate's own `offload.toml`, else
//! the repository's.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=OFFLOAD_CONFIG");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = std::env::var_os("OFFLOAD_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let own = manifest.join("offload.toml");
            if own.is_file() {
                own
            } else {
                manifest.join("../../offload.toml")
            }
        });
    println!("cargo:rerun-if-changed={}", path.display());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read edge config {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let json = match offload_core::Config::toml_to_json(&text) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let file = out.join("offload.json");
    if let Err(e) = std::fs::write(&file, json) {
        eprintln!("error: cannot write {}: {e}", file.display());
        std::process::exit(1);
    }
}
