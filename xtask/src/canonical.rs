//! The canonical-request agreement table for the CloudFront Function:
//! `.offload/cloudfront-function/canonical.json` holds raw paths and query
//! strings with offload-core's verdict for each (`canonical_path` /
//! `canonical_query`: the canonical form, or the refusal's message), and
//! tests/cloudfront-function/hostile.test.mjs checks that the generated
//! function's `canon()` says exactly the same, byte for byte.
//!
//! The inputs: every path and query of tests/shared-cases/hostile.json,
//! a fixed list of edge cases, and random strings over an alphabet of the
//! bytes that matter (fixed seed, so the table is the same on every run).

use std::path::Path;

use offload_core::proxy::canonical::{canonical_path, canonical_query};
use serde_json::{json, Value};

/// Inputs chosen by hand: each byte class, each refusal, escapes of each.
const FIXED_PATHS: &[&str] = &[
    "/", "/a", "/a/", "/%41%7a%30%2D%2e%5F%7E", "/%3b%3B;", "/%3F?", "/%23", "/a%20b c", "/é/ü", "/%C3%A9",
    "/%E2%82%AC", "/%F0%9F%98%80", "/%F4%90%80%80", "/%ED%A0%80", "/%C2", "/%E0%A0", "/%FF", "/\u{7f}",
    "/a\tb", "/a\u{1}", "/a%01", "/a%1F", "/a%20", "/a%7f", "/.", "/..", "/.a", "/..a", "/a.", "/%2e", "/%2E%2e",
    "/a/%2e/", "/a/./", "/a/../", "//", "/a//", "/a//b", "/%", "/%%", "/%4", "/%4g", "/%g4", "/a%2fb", "/a%2Fb",
    "/a%5cb", "/a%5Cb", "/a\\b", "a", "", "*", "/\"<>`^{|}[]#", "/!$&'()*+,;=:@", "/~user", "/%7euser",
    "/%252F", "/%25", "/a%00", "/a\u{0}",
];
const FIXED_QUERIES: &[&str] = &[
    "", "a", "a=1", "a=%7e", "a=%7E&b=%2f", "a=%00", "a=\u{0}", "a=%01", "a=\u{1}", "a=%0d%0a", "a=\\", "a=%5c",
    "%74oken=x", "token=%2e%2e%2f", "a=b=c", "&&", "a=%", "a=%z1", "a=é", "a= b", "a=#", "a=%23", "a=[]", "a=%FF",
    "a=\u{7f}", "q=%C0%AE",
];

/// Bytes that matter to the rules: every class, hex digits of interesting
/// escapes, and a few multi-byte characters.
const ALPHABET: &[&str] = &[
    "/", "/", "/", ".", ".", "%", "%", "2", "e", "E", "f", "F", "5", "c", "C", "0", "a", "~", "\\", ";", "=", "&", "?",
    "+", " ", "é", "\u{1}", "\u{7f}", "#", "%2F", "%2e", "%C0%AE", "%00", "%25", "..", "//", "%5C", "%7E", "%7e",
];

/// A small deterministic generator (xorshift64*), so the table is stable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

fn random_inputs(rng: &mut Rng, count: usize, path: bool) -> Vec<String> {
    (0..count)
        .map(|_| {
            let mut s = String::from(if path { "/" } else { "" });
            for _ in 0..1 + rng.below(12) {
                s.push_str(ALPHABET[rng.below(ALPHABET.len())]);
            }
            s
        })
        .collect()
}

/// The paths and queries of the hostile table (placeholders left as text:
/// they are input like any other).
fn hostile_inputs(root: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let file = root.join("tests/shared-cases/hostile.json");
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let table: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let (mut paths, mut queries) = (Vec::new(), Vec::new());
    for c in table["cases"].as_array().into_iter().flatten() {
        let target = c["request"]["target"].as_str().unwrap_or("");
        let target = target.strip_prefix("http://{{host}}").unwrap_or(target);
        let (p, q) = target.split_once('?').unwrap_or((target, ""));
        paths.push(p.to_owned());
        queries.push(q.to_owned());
    }
    Ok((paths, queries))
}

fn verdict(r: Result<Option<String>, String>) -> Value {
    match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e }),
    }
}

/// The table: `[{ "part": "path"|"query", "input": .., "rust": { "ok": .. } | { "error": .. } }]`.
pub fn canonical_agreement_table(root: &Path) -> Result<Value, String> {
    let (mut paths, mut queries) = hostile_inputs(root)?;
    paths.extend(FIXED_PATHS.iter().map(|s| (*s).to_owned()));
    queries.extend(FIXED_QUERIES.iter().map(|s| (*s).to_owned()));
    let mut rng = Rng(0x0FF1_0AD5_EED5_1234);
    paths.extend(random_inputs(&mut rng, 300, true));
    paths.push(format!("/{}", "a".repeat(offload_core::proxy::canonical::MAX_TARGET_BYTES)));
    queries.push("a".repeat(offload_core::proxy::canonical::MAX_TARGET_BYTES + 1));
    // Inputs within the limit whose canonical (encoded) form is not.
    paths.push(format!("/{}", "\u{e9}".repeat(2000)));
    queries.push(format!("a={}", "\u{e9}".repeat(2000)));
    paths.push(format!("/{}", "\u{e9}".repeat(1000)));
    queries.extend(random_inputs(&mut rng, 150, false));
    let mut rows = Vec::new();
    for p in paths {
        let v = verdict(canonical_path(&p).map(Some).map_err(|e| e.to_string()));
        rows.push(json!({ "part": "path", "input": p, "rust": v }));
    }
    for q in queries {
        let v = verdict(canonical_query(&q).map_err(|e| e.to_string()));
        rows.push(json!({ "part": "query", "input": q, "rust": v }));
    }
    Ok(Value::Array(rows))
}

/// Writes [`canonical_agreement_table`] to `dir/canonical.json`.
pub fn write_canonical_agreement_table(root: &Path, dir: &Path) -> Result<(), String> {
    let table = canonical_agreement_table(root)?;
    let path = dir.join("canonical.json");
    std::fs::write(&path, format!("{table:#}\n")).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_table_covers_every_refusal_and_many_inputs() {
        let table = canonical_agreement_table(&offload_e2e::root()).unwrap();
        let rows = table.as_array().unwrap();
        assert!(rows.len() >= 100, "{} rows", rows.len());
        let errors: Vec<&str> = rows.iter().filter_map(|r| r["rust"]["error"].as_str()).collect();
        for what in [
            "encoded '/'", "encoded '\\'", "'\\'", "NUL byte", "control byte", "malformed percent-encoding",
            "dot segment", "empty segment", "invalid UTF-8", "must start with '/'", "longer than",
        ] {
            assert!(errors.iter().any(|e| e.contains(what)), "no input is refused for {what}");
        }
        let ok = rows.iter().filter(|r| r["rust"].get("ok").is_some()).count();
        assert!(ok >= 50 && errors.len() >= 50, "{ok} accepted, {} refused", errors.len());
    }
}
