//! The local secrets: `.dev.vars` at the workspace root (git-ignored), in
//! the format `wrangler dev` reads for Workers secret bindings
//! (`NAME="value"` lines). [`regenerate`] writes a random value for every
//! binding `offload.toml` references (the local stack does this on every
//! start); everything local that needs a secret (origin-shim, the bucket,
//! `cargo xtask sign`, the tests, the Lambda@Edge test's Secrets Manager)
//! reads it from here, never from the config.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use offload_core::secret::{Platform, Secret, SecretMap, Source};
use offload_core::Config;

/// The file name, next to `wrangler.toml`.
pub const FILE: &str = ".dev.vars";

/// Parsed `.dev.vars`. `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct DevVars {
    values: BTreeMap<String, String>,
}

impl fmt::Debug for DevVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevVars").field("names", &self.values.keys()).finish()
    }
}

pub fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh local value for `name`: an S3 access key id looks like one
/// (20 upper-case characters); everything else is 32 random bytes in hex.
pub fn fresh_value(name: &str) -> Result<String, String> {
    if name.ends_with("ACCESS_KEY_ID") {
        Ok(format!("AKLOCAL{}", hex(&random_bytes(7)?).to_ascii_uppercase().get(..13).unwrap_or("0")))
    } else {
        Ok(format!("local-{}", hex(&random_bytes(32)?)))
    }
}

impl DevVars {
    /// Parse `NAME="value"` / `NAME=value` lines; `#` comments and blank
    /// lines are skipped. Errors name the line number, never its value.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line.split_once('=').ok_or_else(|| format!("{FILE}:{}: expected NAME=\"value\"", i + 1))?;
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            values.insert(name.trim().to_owned(), value.to_owned());
        }
        Ok(Self { values })
    }

    pub fn load(root: &Path) -> Result<Self, String> {
        let p = path(root);
        let text = std::fs::read_to_string(&p)
            .map_err(|e| format!("{}: {e} (run `cargo xtask dev` or `cargo xtask setup`, which write it)", p.display()))?;
        Self::parse(&text)
    }

    /// The value of binding `name`.
    pub fn get(&self, name: &str) -> Result<&str, String> {
        self.values.get(name).map(String::as_str).ok_or_else(|| format!("{FILE}: {name} is not set"))
    }

    /// Every value (for the artifact scan).
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The values as Workers-style bindings for [`offload_core::Edge::new`].
    pub fn secret_map(&self) -> SecretMap {
        SecretMap::from_bindings(self.values.iter().map(|(k, v)| (k.as_str(), v.as_bytes())))
    }

    /// The value of the binding the reference at `field` names.
    pub fn for_ref(&self, config: &Config, field: &str) -> Result<&str, String> {
        let (_, r) = config
            .secret_refs()
            .into_iter()
            .find(|(f, _)| f == field)
            .ok_or_else(|| format!("offload.toml: no secret at {field}"))?;
        let name = r.binding_name().ok_or_else(|| format!("offload.toml: {field} names no binding"))?;
        self.get(name)
    }

    /// The same values keyed by another platform's sources (e.g. the
    /// Secrets Manager / SSM entries a Lambda@Edge test seeds): for every
    /// reference with both a binding and a source for `platform`,
    /// (source, value).
    pub fn by_source<'c>(&self, config: &'c Config, platform: Platform) -> Vec<(Source<'c>, String)> {
        let mut out = Vec::new();
        for (_, r) in config.secret_refs() {
            if let (Some(name), Some(src)) = (r.binding_name(), r.source(platform)) {
                if let Some(v) = self.values.get(name) {
                    out.push((src, v.clone()));
                }
            }
        }
        out
    }

    /// [`Self::secret_map`] for `platform`.
    pub fn platform_map(&self, config: &Config, platform: Platform) -> SecretMap {
        let mut m = SecretMap::new(platform);
        for (src, v) in self.by_source(config, platform) {
            m.insert(&src, Secret::new(v.into_bytes()));
        }
        m
    }
}

fn render(values: &BTreeMap<String, String>) -> String {
    let mut text = String::from(
        "# Local secrets for the Offload stack (Workers secret bindings for `wrangler dev`).\n\
         # Written by `cargo xtask dev` with random values; git-ignored; never commit it.\n",
    );
    for (k, v) in values {
        text.push_str(&format!("{k}=\"{v}\"\n"));
    }
    text
}

fn write(root: &Path, values: BTreeMap<String, String>) -> Result<DevVars, String> {
    let p = path(root);
    std::fs::write(&p, render(&values)).map_err(|e| format!("{}: {e}", p.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
    Ok(DevVars { values })
}

fn bindings(config: &Config) -> Vec<String> {
    let mut names: Vec<String> =
        config.secret_refs().into_iter().filter_map(|(_, r)| r.binding_name().map(str::to_owned)).collect();
    names.sort();
    names.dedup();
    names
}

/// Write new random values for every binding `config` references.
pub fn regenerate(root: &Path, config: &Config) -> Result<DevVars, String> {
    let mut values = BTreeMap::new();
    for name in bindings(config) {
        let v = fresh_value(&name)?;
        values.insert(name, v);
    }
    write(root, values)
}

/// The current `.dev.vars`, topped up with random values for bindings it
/// lacks (created if missing).
pub fn ensure(root: &Path, config: &Config) -> Result<DevVars, String> {
    let mut vars = if path(root).exists() { DevVars::load(root)? } else { DevVars::default() };
    let missing: Vec<String> = bindings(config).into_iter().filter(|n| !vars.values.contains_key(n)).collect();
    if missing.is_empty() {
        return Ok(vars);
    }
    for name in missing {
        let v = fresh_value(&name)?;
        vars.values.insert(name, v);
    }
    write(root, vars.values)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_render_round_trip_and_fresh_values() {
        let mut m = BTreeMap::new();
        m.insert("A_KEY".to_owned(), fresh_value("A_KEY").unwrap());
        m.insert("S3_ACCESS_KEY_ID".to_owned(), fresh_value("S3_ACCESS_KEY_ID").unwrap());
        let parsed = DevVars::parse(&render(&m)).unwrap();
        assert_eq!(parsed.values, m);
        assert_eq!(m["S3_ACCESS_KEY_ID"].len(), 20);
        assert_eq!(m["A_KEY"].len(), 6 + 64);
        assert_ne!(fresh_value("A_KEY").unwrap(), m["A_KEY"], "random per call");
        assert!(DevVars::parse("NO_EQUALS_SIGN").unwrap_err().contains(":1:"));
        assert!(!format!("{parsed:?}").contains(&m["A_KEY"]));
    }
}
