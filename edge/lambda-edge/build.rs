//! Bundle the edge config at build time, validated, as JSON: the Wasm
//! parses it with `serde_json` (which it carries anyway) instead of a TOML
//! parser, which keeps the Lambda@Edge package small. A bad config fails
//! the build with a message naming the field and value; the JSON must
//! give exactly the config the TOML gives.

use std::path::PathBuf;

fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-env-changed=OFFLOAD_CONFIG");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = std::env::var_os("OFFLOAD_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../offload.toml"));
    println!("cargo:rerun-if-changed={}", path.display());
    let shown = path.display();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(format!("cannot read edge config {shown}: {e}")));
    let config = offload_core::Config::from_toml(&text).unwrap_or_else(|e| fail(format!("{shown}: {e}")));
    let json = toml::from_str::<serde_json::Value>(&text)
        .map(|v| v.to_string())
        .unwrap_or_else(|e| fail(format!("{shown}: {e}")));
    if offload_core::Config::from_json(&json).ok().as_ref() != Some(&config) {
        fail(format!("{shown}: the config reads differently as JSON"));
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("offload.json");
    std::fs::write(&out, json).unwrap_or_else(|e| fail(format!("cannot write {}: {e}", out.display())));
}
