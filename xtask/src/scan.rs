//! The artifact scan: no local secret value may appear in anything that
//! could be deployed. Every value of `.dev.vars` is looked for, as written
//! and in its hex and base64 forms (standard and URL-safe, at every byte
//! alignment, so a value inside a longer encoded blob is found too), in
//! every build output: the Workers build (`edge/workers/build/`) and every
//! file under `.offload/` but the Python venv (the `wrangler deploy
//! --dry-run` bundle, the Lambda@Edge package and zip, the CloudFront
//! Function, the CloudFormation template, the site, logs, bucket data).
//! A hit names the file and the binding, never the value.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;

/// The searchable forms of `value`: itself, hex (both cases) and the
/// alignment-independent cores of its base64 and base64url encodings.
pub fn forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![value.to_vec()];
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    out.push(hex.clone().into_bytes());
    out.push(hex.to_ascii_uppercase().into_bytes());
    for engine in [&STANDARD, &URL_SAFE] {
        for pad in 0..3usize {
            let mut data = vec![0u8; pad];
            data.extend_from_slice(value);
            let enc = engine.encode(&data);
            // Characters fully determined by `value`: skip those touching
            // the `pad` leading bytes, and the last group (it depends on
            // what follows the value in a longer blob).
            let start = (pad * 8).div_ceil(6);
            let end = (data.len() * 8 / 6).min(enc.len());
            if end > start + 8 {
                out.push(enc.as_bytes()[start..end].to_vec());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// What the scan looked at.
#[derive(Debug, Default)]
pub struct Report {
    pub artifacts: Vec<String>,
    pub files: usize,
    pub bytes: u64,
    pub values: usize,
    pub forms: usize,
    pub hits: Vec<String>,
}

/// Scan `artifacts` (files or directories, each of which must exist) for
/// every `(name, value)` in `secrets`.
pub fn scan(root: &Path, artifacts: &[PathBuf], secrets: &[(String, String)]) -> Result<Report, String> {
    let mut report = Report::default();
    let patterns: Vec<(&str, Vec<Vec<u8>>)> =
        secrets.iter().map(|(n, v)| (n.as_str(), forms(v.as_bytes()))).collect();
    report.values = patterns.len();
    report.forms = patterns.iter().map(|(_, f)| f.len()).sum();
    for a in artifacts {
        let mut files = Vec::new();
        if a.is_dir() {
            files_under(a, &mut files);
        } else if a.is_file() {
            files.push(a.clone());
        }
        if files.is_empty() {
            return Err(format!("artifact scan: {} is missing or empty (build it first)", a.display()));
        }
        report.artifacts.push(a.strip_prefix(root).unwrap_or(a).display().to_string());
        for f in files {
            let data = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            report.files += 1;
            report.bytes += data.len() as u64;
            for (name, forms) in &patterns {
                if forms.iter().any(|p| !p.is_empty() && data.windows(p.len()).any(|w| w == p.as_slice())) {
                    report.hits.push(format!("{}: the value of {name}", f.strip_prefix(root).unwrap_or(&f).display()));
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_form_is_found_and_a_clean_file_passes() {
        let dir = std::env::temp_dir().join(format!("offload-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = "local-0123456789abcdef0123456789abcdef".to_owned();
        let secrets = vec![("OFFLOAD_X".to_owned(), secret.clone())];
        let clean = dir.join("clean.js");
        std::fs::write(&clean, "var K = {'local-1':'offload-link-local-1'};").unwrap();
        let r = scan(&dir, &[clean], &secrets).unwrap();
        assert!(r.hits.is_empty() && r.files == 1 && r.values == 1 && r.forms >= 6, "{r:?}");
        // Planted: raw, hex, and base64 inside a longer blob at each alignment.
        let mut planted = vec![secret.clone()];
        planted.push(secret.bytes().map(|b| format!("{b:02X}")).collect());
        for prefix in ["", "a", "ab", "abc"] {
            planted.push(STANDARD.encode(format!("{prefix}{secret}!tail")));
            planted.push(URL_SAFE.encode(format!("{prefix}{secret}?")));
        }
        for (i, p) in planted.iter().enumerate() {
            let f = dir.join(format!("planted-{i}"));
            std::fs::write(&f, format!("xx{p}yy")).unwrap();
            let r = scan(&dir, &[f], &secrets).unwrap();
            assert_eq!(r.hits.len(), 1, "form {i} ({p}) not found");
            assert!(!r.hits[0].contains(&secret), "{:?}", r.hits);
        }
        assert!(scan(&dir, &[dir.join("nope")], &secrets).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
