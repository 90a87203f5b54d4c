//! Offload's viewer-request CloudFront Function (`cloudfront-js-2.0`),
//! generated from the validated config and offload-core's own tables.
//!
//! The function does at the edge what CloudFront's viewer-request stage
//! can: the canonical request (same refusals as
//! `offload_core::proxy::canonical`, from its byte-class table),
//! signed-link checks (HMAC-SHA256 with the `[links]` keys read from the
//! associated KeyValueStore, the token format of `offload_core::sign::link`),
//! cache-key normalization of the query per route (`cache_key`: tracking
//! parameters, deny/allow lists, sorting), removal of the test geo header
//! unless trusted, and a region hint header from the viewer's country.
//!
//! Its logic is fixed JavaScript (`src/function.js`, minified at
//! generation); every value it uses is data put before it by [`generate`]
//! from a `pub` item of offload-core, so the two cannot drift apart by a
//! hand-kept copy. [`check`] enforces the runtime's rules and size quota.
//!
//! ```
//! let config = offload_core::Config::from_toml(r#"
//!     [regions.us-east-1]
//!     location = { lat = 38.9, lon = -77.4 }
//!     origins = [{ url = "https://origin.example" }]
//!     [[routes]]
//!     path = "/api/*"
//!     cache = { default_ttl = 60 }
//! "#).unwrap();
//! let code = offload_cloudfront_function::generate(&config).unwrap();
//! offload_cloudfront_function::check(&code).unwrap();
//! assert!(code.contains("async function handler(event)"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use offload_core::cache::key::{TRACKING_PARAMS, TRACKING_PREFIX};
use offload_core::config::{PathPattern, Target};
use offload_core::proxy::canonical::{byte_class_table, MAX_TARGET_BYTES};
use offload_core::route::geo::{Country, REGION_HINT_HEADER, TEST_HEADER};
use offload_core::route::select::region_for_country;
use offload_core::sign::link::{
    Audience, LinkError, Methods, LINK_FIELDS, MAX_EXPIRES_AT, MAX_TOKEN_LEN, METHOD_NAMES, RETIRED_VERSION,
    TOKEN_PARAM, VERSION,
};
use offload_core::Config;

mod minify;
pub use minify::minify;

/// CloudFront Functions: maximum function size (code and config), bytes.
pub const MAX_BYTES: usize = 10 * 1024;

/// What the generated code must not use: what cloudfront-js-2.0 lacks or
/// forbids (timers, network, promise combinators and chains, dynamic
/// code, `process`). `async`/`await` are allowed (the KeyValueStore
/// helpers return promises; `await` on them is the documented way).
pub const FORBIDDEN: &[&str] = &[
    "setTimeout",
    "setInterval",
    "setImmediate",
    "fetch(",
    "XMLHttpRequest",
    "Promise",
    ".then(",
    "eval(",
    "new Function",
    "import(",
    "process.",
];

/// The one ES import the function may have.
pub const IMPORT: &str = "import cf from 'cloudfront';";

/// The fixed JavaScript, as written (readable, commented).
pub const TEMPLATE: &str = include_str!("function.js");

/// Why generated code breaks a runtime rule, or could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("cloudfront-function: {0} bytes: over the {MAX_BYTES}-byte quota")]
    TooLarge(usize),
    #[error("cloudfront-function: no `function handler(event)`")]
    NoHandler,
    #[error("cloudfront-function: {0:?}: only the cloudfront module may be imported")]
    Import(String),
    #[error("cloudfront-function: uses {0:?}, which cloudfront-js-2.0 does not offer")]
    Forbidden(&'static str),
    #[error("cloudfront-function: require of something other than crypto/cloudfront: {0}")]
    Require(String),
    #[error("cloudfront-function: the template does not minify: {0}")]
    Template(String),
}

/// The rules the generated function must satisfy (checked independently
/// by `tests/cloudfront-function/function.test.mjs` too):
/// at most [`MAX_BYTES`]; `function handler(event)` defined; `import`
/// only [`IMPORT`]; `require(` only of `crypto` and `cloudfront`; none of
/// [`FORBIDDEN`].
pub fn check(code: &str) -> Result<(), Error> {
    if code.len() > MAX_BYTES {
        return Err(Error::TooLarge(code.len()));
    }
    if !code.contains("function handler(event)") {
        return Err(Error::NoHandler);
    }
    if let Some(line) = code.lines().find(|l| l.starts_with("import ") && *l != IMPORT) {
        return Err(Error::Import(line.to_owned()));
    }
    if let Some(bad) = FORBIDDEN.iter().find(|bad| code.contains(**bad)) {
        return Err(Error::Forbidden(bad));
    }
    let mut rest = code;
    while let Some(i) = rest.find("require(") {
        let arg = &rest[i + 8..];
        if !(arg.starts_with("'crypto')") || arg.starts_with("'cloudfront')")) {
            return Err(Error::Require(rest[i..].chars().take(40).collect()));
        }
        rest = arg;
    }
    Ok(())
}

/// A JavaScript string literal (single-quoted; control characters and the
/// JS line terminators escaped).
pub fn js_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn js_list<S: AsRef<str>>(items: &[S]) -> String {
    format!("[{}]", items.iter().map(|s| js_str(s.as_ref())).collect::<Vec<_>>().join(","))
}

/// `R`: the routes, most specific first (the order `Config::route_for`
/// prefers; patterns are unique, so the first match is its choice).
fn routes_js(config: &Config) -> String {
    let mut routes: Vec<_> = config.routes().iter().collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.pattern().specificity()));
    let mut out = Vec::new();
    for r in routes {
        let mut fields = Vec::new();
        match r.pattern() {
            PathPattern::Exact(p) => fields.push(format!("p:{},x:1", js_str(p))),
            PathPattern::Prefix(p) => fields.push(format!("p:{}", js_str(p))),
        }
        if r.signed_links() {
            fields.push("l:1".into());
        }
        if let Some(rc) = r.cache() {
            let k = &rc.key;
            let mut kf = Vec::new();
            if k.drop_tracking {
                kf.push("t:1".to_owned());
            }
            if k.sort_query {
                kf.push("s:1".to_owned());
            }
            if !k.query_deny.is_empty() {
                kf.push(format!("d:{}", js_list(&k.query_deny)));
            }
            if let Some(a) = &k.query_allow {
                kf.push(format!("a:{}", js_list(a)));
            }
            fields.push(format!("k:{{{}}}", kf.join(",")));
        }
        if let Target::Bucket(_) = r.target() {
            fields.push("b:1".into());
        }
        out.push(format!("{{{}}}", fields.join(",")));
    }
    format!("[{}]", out.join(","))
}

/// `HS`: region → the space-separated countries it claims (the region hint).
fn hints_js(config: &Config) -> String {
    let mut hints: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            let code: String = [char::from(a), char::from(b)].iter().collect();
            let Some(country) = Country::parse(&code) else { continue };
            if let Some(region) = region_for_country(config.routing(), country) {
                hints.entry(region.name()).or_default().push(code);
            }
        }
    }
    let pairs: Vec<String> = hints.iter().map(|(r, codes)| format!("{}:{}", js_str(r), js_str(&codes.join(" ")))).collect();
    format!("{{{}}}", pairs.join(","))
}

/// `K`: key id → the KeyValueStore key holding its secret (never a value).
/// A key without a `kvs` source is left out: links signed with it are
/// refused as "unknown key id" by the function.
fn keys_js(config: &Config) -> String {
    let pairs: Vec<String> = config
        .links()
        .map(|l| l.keys.iter().filter_map(|(id, r)| Some(format!("{}:{}", js_str(id), js_str(r.kvs_key()?)))).collect())
        .unwrap_or_default();
    format!("{{{}}}", pairs.join(","))
}

/// `E`: the refusal reasons of `LinkError::reason`, the function's answers.
fn reasons_js() -> String {
    let reasons = [
        ("m", LinkError::Malformed { what: "" }),
        ("v1", LinkError::RetiredVersion),
        ("a", LinkError::WrongAudience { expected: Audience::Link, found: Audience::Presign }),
        ("k", LinkError::UnknownKey { kid: String::new() }),
        ("s", LinkError::BadSignature),
        ("x", LinkError::Expired { expired_at: 0 }),
        ("me", LinkError::MethodNotAllowed { method: String::new(), allowed: Methods::default() }),
        ("o", LinkError::OutOfScope { path: String::new() }),
        ("ip", LinkError::WrongIp),
    ];
    let pairs: Vec<String> = reasons.iter().map(|(k, e)| format!("{k}:{}", js_str(e.reason()))).collect();
    format!("{{{}}}", pairs.join(","))
}

/// The data part: every value the template uses, from the config and
/// offload-core's items (see the names in `src/function.js`).
fn data_js(config: &Config, signed: bool) -> String {
    let mac_prefix = String::from_utf8_lossy(Audience::Link.mac_prefix()).into_owned();
    // An HMAC-SHA256 MAC is 32 bytes: 43 characters of unpadded base64url.
    let mac_len = (32 * 8usize).div_ceil(6);
    let vars = [
        ("R", routes_js(config)),
        ("T", js_list(&TRACKING_PARAMS)),
        ("TP", js_str(TRACKING_PREFIX)),
        ("K", if signed { keys_js(config) } else { "{}".into() }),
        ("HS", hints_js(config)),
        ("TRUST_GEO", config.routing().trust_test_header().to_string()),
        ("GEO", js_str(TEST_HEADER)),
        ("HINT", js_str(REGION_HINT_HEADER)),
        ("C", js_str(&byte_class_table())),
        ("MAXT", MAX_TARGET_BYTES.to_string()),
        ("TK", js_str(TOKEN_PARAM)),
        ("TMAX", MAX_TOKEN_LEN.to_string()),
        ("MACL", mac_len.to_string()),
        ("XD", MAX_EXPIRES_AT.to_string().len().to_string()),
        ("NF", LINK_FIELDS.to_string()),
        ("V", js_str(VERSION)),
        ("V1", js_str(RETIRED_VERSION)),
        ("AL", js_str(Audience::Link.as_str())),
        ("AP", js_str(Audience::Presign.as_str())),
        ("MP", js_str(&mac_prefix)),
        ("M", js_list(&METHOD_NAMES)),
        ("E", reasons_js()),
    ];
    let mut js = String::new();
    for (name, value) in vars {
        let _ = writeln!(js, "var {name} = {value};");
    }
    js
}

/// Generate the function from the config: a comment header, the import
/// and store handle when some route takes signed links, then the data and
/// the template, minified. There are no redirects in the config format,
/// so none are generated. Fails only if the template does not minify (a
/// build defect, tested).
pub fn generate(config: &Config) -> Result<String, Error> {
    let signed = config.routes().iter().any(|r| r.signed_links());
    let mut js = String::new();
    js.push_str("// Offload viewer-request CloudFront Function (cloudfront-js-2.0).\n");
    js.push_str("// Generated by `cargo xtask package cloudfront-function` from offload.toml; do not edit.\n");
    js.push_str("// It holds no secrets: link keys are read from the associated KeyValueStore.\n");
    let mut body = String::new();
    if signed {
        js.push_str(IMPORT);
        js.push('\n');
        body.push_str("var crypto = require('crypto');\nvar kvs = cf.kvs();\n");
    }
    body.push_str(&data_js(config, signed));
    body.push_str(TEMPLATE);
    js.push_str(&minify(&body).map_err(Error::Template)?);
    js.push('\n');
    Ok(js)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bundled() -> Config {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../offload.toml")).unwrap();
        Config::from_toml(&text).unwrap()
    }

    #[test]
    fn the_generated_function_follows_the_runtime_rules() {
        let code = generate(&bundled()).unwrap();
        check(&code).unwrap();
        // Key names, never values: the function reads them from its store.
        assert!(code.contains("var K={'local-1':'offload-link-local-1'};"), "{code}");
        assert!(code.starts_with("// Offload") && code.contains("\nimport cf from 'cloudfront';\n"));
        assert!(code.contains("var kvs=cf.kvs();"));
        // The core's values, not copies.
        assert!(code.contains(&format!("var C='{}';", byte_class_table())));
        assert!(code.contains("var TP='utm_';") && code.contains("var MACL=43;") && code.contains("var XD=15;"));
        assert!(code.contains("E={m:'malformed token',"));
        assert!(code.contains("var GEO='x-offload-geo';") && code.contains("var MP='offload-link-v2\\u000a';"));
        // The bundled config's hints: DE by continent to eu-west-1, BR to us-east-1.
        assert!(code.contains("'eu-west-1':'") && code.contains(" DE "), "{code}");
        assert!(code.len() <= MAX_BYTES, "{} bytes", code.len());
    }

    #[test]
    fn the_checks_refuse_what_the_runtime_lacks() {
        let code = generate(&bundled()).unwrap();
        assert!(matches!(check(&code.replace(IMPORT, "import fs from 'fs';")), Err(Error::Import(_))));
        assert_eq!(check(&format!("{code}\nsetTimeout(function(){{}}, 1);")), Err(Error::Forbidden("setTimeout")));
        assert!(matches!(check(&format!("{code}\nvar x = require('fs');")), Err(Error::Require(_))));
        assert_eq!(check(&"x".repeat(MAX_BYTES + 1)), Err(Error::TooLarge(MAX_BYTES + 1)));
        assert_eq!(check("function other(event) {}"), Err(Error::NoHandler));
    }

    #[test]
    fn without_signed_links_there_is_no_import_or_store() {
        let config = Config::from_toml(
            "[regions.us-east-1]\nlocation = { lat = 38.9, lon = -77.4 }\norigins = [{ url = \"https://o.example\" }]\n[[routes]]\npath = \"/*\"\n",
        )
        .unwrap();
        let code = generate(&config).unwrap();
        check(&code).unwrap();
        assert!(!code.contains("import ") && !code.contains("require(") && code.contains("var K={};"));
    }

    #[test]
    fn js_strings_are_escaped() {
        assert_eq!(js_str("a'b\\c\n\u{2028}"), "'a\\'b\\\\c\\u000a\\u2028'");
    }
}
