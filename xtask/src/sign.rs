//! `cargo xtask sign ...`: issue signed links and presign app tokens with
//! the `[links]` keys of a config file (local stacks) or a key from the
//! environment (`OFFLOAD_LINK_KEY_ID` + `OFFLOAD_LINK_KEY`).
//!
//! ```text
//! cargo xtask sign link --path /private/report.txt [--expires 3600] [--ip 203.0.113.9] [--config offload.toml]
//! cargo xtask sign app-token --bucket uploads --prefix user-42/ [--expires 600] [--config offload.toml]
//! ```

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use offload_core::pipeline::presign_scope;
use offload_core::sign::link::{issue, issue_url};
use offload_core::sign::{Claims, LinkKey, Scope};
use offload_core::Config;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn key(args: &[String]) -> Result<LinkKey, String> {
    if let (Ok(id), Ok(secret)) = (std::env::var("OFFLOAD_LINK_KEY_ID"), std::env::var("OFFLOAD_LINK_KEY")) {
        return LinkKey::new(id, secret.into_bytes()).map_err(|e| format!("OFFLOAD_LINK_KEY: {e}"));
    }
    let path = flag(args, "--config").unwrap_or_else(|| offload_e2e::root().join("offload.toml").display().to_string());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let config = Config::from_toml(&text).map_err(|e| format!("{path}: {e}"))?;
    config
        .links()
        .and_then(|l| l.current())
        .cloned()
        .ok_or_else(|| format!("{path}: no [links] keys (or set OFFLOAD_LINK_KEY_ID and OFFLOAD_LINK_KEY)"))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let expires: u64 = match flag(args, "--expires") {
        Some(s) => s.parse().map_err(|_| format!("--expires: not a number of seconds: {s:?}"))?,
        None => 3600,
    };
    let client_ip: Option<IpAddr> = match flag(args, "--ip") {
        Some(s) => Some(s.parse().map_err(|_| format!("--ip: not an IP address: {s:?}"))?),
        None => None,
    };
    let key = key(args)?;
    match args.first().map(String::as_str) {
        Some("link") => {
            let path = flag(args, "--path").ok_or("sign link: --path is required")?;
            let scope = Scope::parse(&path).map_err(|e| format!("--path {path:?}: {e}"))?;
            let claims = Claims { expires_at: now + expires, scope, client_ip };
            println!("{}", issue_url(&key, &claims, &path).map_err(|e| e.to_string())?);
        }
        Some("app-token") => {
            let bucket = flag(args, "--bucket").ok_or("sign app-token: --bucket is required")?;
            let prefix = flag(args, "--prefix").ok_or("sign app-token: --prefix is required (a key or a prefix ending in '/')")?;
            let scope = Scope::parse(&presign_scope(&bucket, &prefix)).map_err(|e| format!("--prefix {prefix:?}: {e}"))?;
            let claims = Claims { expires_at: now + expires, scope, client_ip };
            println!("{}", issue(&key, &claims).map_err(|e| e.to_string())?);
        }
        _ => return Err("usage: cargo xtask sign <link --path P | app-token --bucket B --prefix K> [--expires S] [--ip A] [--config F]".into()),
    }
    Ok(())
}
