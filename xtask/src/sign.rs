//! `cargo xtask sign ...`: issue download links and presign grants (token
//! version 2, see `offload_core::sign::link`) with the current `[links]`
//! key of a config file, its value read from the local `.dev.vars`
//! (written by `cargo xtask dev`), or with a key from the environment
//! (`OFFLOAD_LINK_KEY_ID` + `OFFLOAD_LINK_KEY`).
//!
//! ```text
//! cargo xtask sign link --path /private/report.txt [--methods GET,HEAD] [--expires 3600] [--ip 203.0.113.9] [--config offload.toml]
//! cargo xtask sign app-token --bucket uploads (--prefix user-42/ | --key user-42/a.jpg)
//!     [--methods PUT] [--max-size BYTES] [--types image/*,text/plain] [--max-expires 900]
//!     [--expires 3600] [--ip A] [--config offload.toml]
//! ```

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use offload_core::sign::link::{issue_grant, issue_link_url};
use offload_core::sign::{ContentTypePattern, GrantClaims, KeyScope, LinkClaims, LinkKey, Methods, Scope};
use offload_core::config::EdgeKeys;
use offload_core::Config;
use offload_e2e::devvars::DevVars;

/// `cargo xtask sign <link|app-token>`.
#[derive(clap::Subcommand, Debug)]
pub enum SignCmd {
    /// A signed URL path (`/path?token=...`) opening one path or a prefix.
    Link(LinkArgs),
    /// A presign grant for the presign endpoint (`POST /_offload/presign`).
    AppToken(GrantArgs),
}

/// `sign link`'s flags.
#[derive(clap::Args, Debug)]
pub struct LinkArgs {
    /// The path the link opens, with an optional query (its scope is the
    /// canonical path; a path ending in / opens everything below it).
    #[arg(long, value_name = "P")]
    path: String,
    /// Methods the link allows, comma-separated [default: GET,HEAD].
    #[arg(long, value_name = "M,M")]
    methods: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `sign app-token`'s flags.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["prefix", "key"])))]
pub struct GrantArgs {
    /// The bucket the grant is for.
    #[arg(long, value_name = "B")]
    bucket: String,
    /// Every key starting with P.
    #[arg(long, value_name = "P")]
    prefix: Option<String>,
    /// This one key.
    #[arg(long, value_name = "K")]
    key: Option<String>,
    /// Methods the grant allows, comma-separated: GET, HEAD, PUT [default: PUT].
    #[arg(long, value_name = "M,M")]
    methods: Option<String>,
    /// Largest upload in bytes (required when the methods allow PUT).
    #[arg(long, value_name = "BYTES")]
    max_size: Option<u64>,
    /// Content types an upload may have, comma-separated (image/*, */* for any;
    /// required when the methods allow PUT).
    #[arg(long, value_name = "T,T")]
    types: Option<String>,
    /// Longest lifetime of a presigned URL, in seconds.
    #[arg(long, value_name = "S", default_value_t = 900)]
    max_expires: u64,
    #[command(flatten)]
    common: Common,
}

/// What every token takes.
#[derive(clap::Args, Debug)]
struct Common {
    /// Lifetime of the token, in seconds.
    #[arg(long, value_name = "S", default_value_t = 3600)]
    expires: u64,
    /// Bind the token to this client address.
    #[arg(long, value_name = "A")]
    ip: Option<IpAddr>,
    /// The config whose current [links] key signs [default: offload.toml]
    /// (or set OFFLOAD_LINK_KEY_ID and OFFLOAD_LINK_KEY).
    #[arg(long, value_name = "F")]
    config: Option<String>,
}

fn key(config: Option<&str>) -> Result<LinkKey, String> {
    if let (Ok(id), Ok(secret)) = (std::env::var("OFFLOAD_LINK_KEY_ID"), std::env::var("OFFLOAD_LINK_KEY")) {
        return LinkKey::new(id, secret.into_bytes()).map_err(|e| format!("OFFLOAD_LINK_KEY: {e}"));
    }
    let path = config.map_or_else(|| offload_e2e::root().join("offload.toml").display().to_string(), str::to_owned);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let config = Config::from_toml(&text).map_err(|e| format!("{path}: {e}"))?;
    let vars = DevVars::load(&offload_e2e::root())?;
    let keys = EdgeKeys::resolve(&config, &vars.secret_map()).map_err(|e| format!("{}: {e}", offload_e2e::devvars::FILE))?;
    keys.links()
        .and_then(|l| l.current())
        .cloned()
        .ok_or_else(|| format!("{path}: no [links] keys (or set OFFLOAD_LINK_KEY_ID and OFFLOAD_LINK_KEY)"))
}

/// The expiry time and methods of a token.
fn common(c: &Common, methods: Option<&str>, default_methods: Methods) -> Result<(u64, Methods), String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let methods = match methods {
        Some(s) => Methods::parse_list(s).map_err(|e| format!("--methods {s:?}: {e}"))?,
        None => default_methods,
    };
    Ok((now.saturating_add(c.expires), methods))
}

/// `sign link`: a signed URL path (`/path?token=...`).
pub fn link(a: &LinkArgs) -> Result<String, String> {
    let path = a.path.as_str();
    let (expires_at, methods) = common(&a.common, a.methods.as_deref(), Methods::READ)?;
    // The edge compares a link's scope with the canonical request path, so
    // the scope is issued in canonical form (`/%70rivate` → `/private`).
    let scope_path = path.split_once('?').map_or(path, |(p, _)| p);
    let scope_path = &offload_core::proxy::canonical::canonical_path(scope_path).map_err(|e| format!("--path {path:?}: {e}"))?;
    let scope = Scope::parse(scope_path).map_err(|e| format!("--path {path:?}: {e}"))?;
    let claims = LinkClaims { expires_at, scope, client_ip: a.common.ip, methods };
    issue_link_url(&key(a.common.config.as_deref())?, &claims, path).map_err(|e| format!("sign link: {e}"))
}

/// `sign app-token`: a presign grant for the presign endpoint.
pub fn app_token(a: &GrantArgs) -> Result<String, String> {
    let keys = match (&a.prefix, &a.key) {
        (Some(p), None) => KeyScope::Prefix(p.clone()),
        (None, Some(k)) => KeyScope::Exact(k.clone()),
        _ => return Err("sign app-token: give exactly one of --prefix P (every key starting with P) or --key K".into()),
    };
    let (expires_at, methods) = common(&a.common, a.methods.as_deref(), Methods::PUT)?;
    if !methods.is_subset_of(Methods::PRESIGNABLE) {
        return Err(format!("--methods {methods}: a presign grant allows only GET, HEAD and PUT"));
    }
    let put = methods.allows("PUT");
    let max_content_length = a.max_size;
    let content_types = match &a.types {
        Some(list) => list
            .split(',')
            .map(|t| ContentTypePattern::parse(t).map_err(|e| format!("--types {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    if put && max_content_length.is_none() {
        return Err("sign app-token: --max-size BYTES is required when --methods allows PUT".into());
    }
    if put && content_types.is_empty() {
        return Err("sign app-token: --types is required when --methods allows PUT (e.g. image/*,application/pdf; */* for any)".into());
    }
    if !put && (max_content_length.is_some() || !content_types.is_empty()) {
        return Err("sign app-token: --max-size and --types only apply when --methods allows PUT".into());
    }
    let claims = GrantClaims {
        expires_at,
        client_ip: a.common.ip,
        methods,
        bucket: a.bucket.clone(),
        keys,
        max_content_length,
        content_types,
        max_expires: a.max_expires,
    };
    issue_grant(&key(a.common.config.as_deref())?, &claims).map_err(|e| format!("sign app-token: {e}"))
}

/// The table of link tokens the CloudFront Function must judge exactly as
/// `verify_link` does (`tests/cloudfront-function/` runs it): each case's
/// token, request and the Rust verdict (`"ok"` or `LinkError::reason`).
/// Tokens are made with `key` (offload.toml's current `[links]` key, which
/// the generated function holds) at a fixed `now`, under the signed-link
/// route prefix `base` (e.g. `/private/`).
pub fn link_agreement_table(key: &LinkKey, base: &str) -> Result<serde_json::Value, String> {
    use offload_core::sign::link::{issue_link, seal_raw, verify_link};
    use offload_core::sign::Audience;
    const NOW: u64 = 1_700_000_000;
    let e = |e: offload_core::sign::LinkError| e.to_string();
    let scope = |s: &str| Scope::parse(s).map_err(e);
    let link = |s: &str, exp: u64, methods: Methods, ip: Option<&str>| -> Result<String, String> {
        let client_ip = ip.map(|i| i.parse::<IpAddr>().map_err(|x| x.to_string())).transpose()?;
        issue_link(key, &LinkClaims { expires_at: exp, scope: scope(s)?, client_ip, methods }).map_err(e)
    };
    let raw = |aud: Audience, payload: &str| seal_raw(key, aud, payload).map_err(e);
    let kid = key.id();
    let file = format!("{base}report.txt");
    let good = link(base, NOW + 60, Methods::READ, None)?;
    let (good_payload, good_mac) = good.split_once('.').ok_or("token without '.'")?;
    let flip = |c: char| if c == 'A' { 'B' } else { 'A' };
    let tampered_mac = {
        let mut m: Vec<char> = good_mac.chars().collect();
        m[0] = flip(m[0]);
        format!("{good_payload}.{}", m.into_iter().collect::<String>())
    };
    let stray_bits = {
        let last = good_mac.chars().last().unwrap_or('A');
        format!("{good_payload}.{}{}", &good_mac[..good_mac.len() - 1], if last == 'B' { 'C' } else { 'B' })
    };
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let later = format!("{}.{good_mac}", b64(&format!("v2|link|{kid}|{}||GET,HEAD|{base}", NOW + 99_999)));
    let other_key = LinkKey::new("not-a-key", vec![7; 32]).map_err(e)?;
    let unknown = issue_link(&other_key, &LinkClaims::new(scope(base)?, NOW + 60)).map_err(e)?;
    let grant = issue_grant(
        key,
        &GrantClaims {
            expires_at: NOW + 60,
            client_ip: None,
            methods: Methods::GET,
            bucket: "uploads".into(),
            keys: KeyScope::Prefix(String::new()),
            max_content_length: None,
            content_types: vec![],
            max_expires: 60,
        },
    )
    .map_err(e)?;
    let pipe_scope = format!("{base}a%7Cb%7C/");
    let mut cases: Vec<(&str, String, String, &str, &str)> = vec![
        ("prefix link, GET", good.clone(), file.clone(), "GET", ""),
        ("prefix link, HEAD", good.clone(), file.clone(), "HEAD", ""),
        ("prefix link, POST", good.clone(), file.clone(), "POST", ""),
        ("prefix link, DELETE", good.clone(), file.clone(), "DELETE", ""),
        ("POST link, POST", link(&file, NOW + 60, Methods::POST, None)?, file.clone(), "POST", ""),
        ("POST link, GET", link(&file, NOW + 60, Methods::POST, None)?, file.clone(), "GET", ""),
        ("expires now", link(base, NOW, Methods::READ, None)?, file.clone(), "GET", ""),
        ("expires in a second", link(base, NOW + 1, Methods::READ, None)?, file.clone(), "GET", ""),
        ("exact link, its path", link(&file, NOW + 60, Methods::READ, None)?, file.clone(), "GET", ""),
        ("exact link, another path", link(&file, NOW + 60, Methods::READ, None)?, format!("{base}other.txt"), "GET", ""),
        ("bound link, its address", link(base, NOW + 60, Methods::READ, Some("203.0.113.9"))?, file.clone(), "GET", "203.0.113.9"),
        ("bound link, another address", link(base, NOW + 60, Methods::READ, Some("203.0.113.9"))?, file.clone(), "GET", "198.51.100.7"),
        ("escaped scope", link(&pipe_scope, NOW + 60, Methods::READ, None)?, format!("{pipe_scope}x"), "GET", ""),
        ("escaped scope, raw spelling of the path", link(&pipe_scope, NOW + 60, Methods::READ, None)?, format!("{base}a|b|/x"), "GET", ""),
        ("escaped scope, another path", link(&pipe_scope, NOW + 60, Methods::READ, None)?, format!("{base}a|c|/x"), "GET", ""),
        ("presign grant as a link", grant, file.clone(), "GET", ""),
        ("v1 token", raw(Audience::Link, &format!("v1|{kid}|{}||{base}", NOW + 60))?, file.clone(), "GET", ""),
        ("link payload, presign MAC", raw(Audience::Presign, &format!("v2|link|{kid}|{}||GET,HEAD|{base}", NOW + 60))?, file.clone(), "GET", ""),
        ("tampered MAC", tampered_mac, file.clone(), "GET", ""),
        ("tampered expiry", later, file.clone(), "GET", ""),
        ("unknown key id", unknown, file.clone(), "GET", ""),
        ("stray base64 bits", stray_bits, file.clone(), "GET", ""),
        ("garbage", "not-a-token".into(), file.clone(), "GET", ""),
        ("too long", format!("{good}{}", "A".repeat(4096)), file.clone(), "GET", ""),
        ("unknown version", raw(Audience::Link, &format!("v3|link|{kid}|{}||GET|{base}", NOW + 60))?, file.clone(), "GET", ""),
        ("unknown audience", raw(Audience::Link, &format!("v2|links|{kid}|{}||GET|{base}", NOW + 60))?, file.clone(), "GET", ""),
        ("lower-case method", raw(Audience::Link, &format!("v2|link|{kid}|{}||get|{base}", NOW + 60))?, file.clone(), "GET", ""),
        ("repeated method", raw(Audience::Link, &format!("v2|link|{kid}|{}||GET,GET|{base}", NOW + 60))?, file.clone(), "GET", ""),
        ("no methods", raw(Audience::Link, &format!("v2|link|{kid}|{}|||{base}", NOW + 60))?, file.clone(), "GET", ""),
        ("16-digit expiry", raw(Audience::Link, &format!("v2|link|{kid}|0001700000000060||GET|{base}"))?, file.clone(), "GET", ""),
        ("non-canonical escape", raw(Audience::Link, &format!("v2|link|{kid}|{}||GET|{base}%41", NOW + 60))?, format!("{base}A"), "GET", ""),
        ("extra field", raw(Audience::Link, &format!("v2|link|{kid}|{}||GET|{base}|x", NOW + 60))?, file.clone(), "GET", ""),
        ("dot segment scope", raw(Audience::Link, &format!("v2|link|{kid}|{}||GET|{base}../", NOW + 60))?, file.clone(), "GET", ""),
        ("relative scope", raw(Audience::Link, &format!("v2|link|{kid}|{}||GET|private/", NOW + 60))?, file.clone(), "GET", ""),
    ];
    let mut out = Vec::with_capacity(cases.len());
    for (name, token, path, method, ip) in cases.drain(..) {
        let client = if ip.is_empty() { None } else { ip.parse::<IpAddr>().ok() };
        // Both edges compare with the canonical path (proxy::canonical).
        let canonical = offload_core::proxy::canonical::canonical_path(&path).map_err(|e| format!("{name}: {e}"))?;
        let verdict = match verify_link(key, &canonical, method, client, &token, NOW) {
            Ok(_) => "ok",
            Err(err) => err.reason(),
        };
        out.push(serde_json::json!({
            "name": name, "token": token, "path": path, "method": method, "ip": ip, "now": NOW, "rust": verdict,
        }));
    }
    Ok(serde_json::Value::Array(out))
}

/// Writes [`link_agreement_table`] to `dir/tokens.json` for the config's
/// current `[links]` key id and its first signed-link prefix route (nothing
/// when the config has neither), signed with a random test value for that
/// key, written to `dir/test-key.json` (`{id, kvs, secret}`) for the
/// CloudFront Function test's stand-in KeyValueStore. No local secret is
/// used.
pub fn write_link_agreement_table(config: &Config, dir: &std::path::Path) -> Result<(), String> {
    let base = config.routes().iter().filter(|r| r.signed_links()).find_map(|r| match r.pattern() {
        offload_core::config::PathPattern::Prefix(p) => Some(p.clone()),
        offload_core::config::PathPattern::Exact(_) => None,
    });
    let current = config.links().and_then(|l| l.keys.iter().find(|(id, _)| *id == l.current));
    let (Some((id, r)), Some(base)) = (current, base) else {
        return Ok(());
    };
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = LinkKey::new(id.clone(), secret.clone().into_bytes()).map_err(|e| e.to_string())?;
    let table = link_agreement_table(&key, &base)?;
    let path = dir.join("tokens.json");
    std::fs::write(&path, format!("{table:#}\n")).map_err(|e| format!("{}: {e}", path.display()))?;
    let key_doc = serde_json::json!({ "id": id, "kvs": r.kvs_key(), "secret": secret });
    let path = dir.join("test-key.json");
    std::fs::write(&path, key_doc.to_string()).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(what: &SignCmd) -> Result<(), String> {
    let out = match what {
        SignCmd::Link(a) => link(a)?,
        SignCmd::AppToken(a) => app_token(a)?,
    };
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use offload_core::sign::link::{token_from_query, verify_grant, verify_link};
    use offload_core::sign::{GrantRequest, PresignMethod};

    /// `cargo xtask sign <line>` as the command line parses it.
    fn sign(line: &str) -> Result<String, String> {
        use clap::Parser as _;
        let words = ["xtask", "sign"].into_iter().map(str::to_owned).chain(line.split_whitespace().map(str::to_owned));
        let cli = crate::Cli::try_parse_from(words).map_err(|e| e.to_string())?;
        let crate::Cmd::Sign { what } = cli.command else { return Err("not a sign command".into()) };
        match &what {
            SignCmd::Link(a) => link(a),
            SignCmd::AppToken(a) => app_token(a),
        }
    }

    #[test]
    fn flags_are_checked() {
        let cases = [
            ("--path", "a value is required for '--path <P>'"),
            ("--path /a --bogus 1", "unexpected argument '--bogus'"),
            ("--path /a --path /b", "'--path <P>' cannot be used multiple times"),
            ("--path /a --methods GET,FETCH", "--methods \"GET,FETCH\""),
            ("--path /a --expires soon", "invalid value 'soon' for '--expires <S>'"),
            ("--path /a --ip nope", "invalid value 'nope' for '--ip <A>'"),
            ("--path a", "--path \"a\""),
            ("--methods GET", "required arguments were not provided:\n  --path <P>"),
        ];
        for (a, want) in cases {
            let e = sign(&format!("link {a}")).unwrap_err();
            assert!(e.contains(want), "{a}: {e}");
        }
        let cases = [
            ("--prefix u/", "required arguments were not provided:\n  --bucket <B>"),
            ("--bucket up", "required arguments were not provided:\n  <--prefix <P>|--key <K>>"),
            ("--bucket up --prefix u/ --key u/a", "'--prefix <P>' cannot be used with '--key <K>'"),
            ("--bucket up --prefix u/ --types */*", "--max-size BYTES is required"),
            ("--bucket up --prefix u/ --max-size 10", "--types is required"),
            ("--bucket up --prefix u/ --max-size 10 --types image", "--types \"image\""),
            ("--bucket up --prefix u/ --max-size ten --types */*", "invalid value 'ten' for '--max-size <BYTES>'"),
            ("--bucket up --prefix u/ --methods GET --max-size 10", "only apply when --methods allows PUT"),
            ("--bucket up --prefix u/ --methods GET,POST", "--methods GET,POST: a presign grant allows only GET, HEAD and PUT"),
            ("--bucket up --prefix u/ --methods GET --max-expires 0", "max_expires"),
        ];
        for (a, want) in cases {
            let e = sign(&format!("app-token {a}")).unwrap_err();
            assert!(e.contains(want), "{a}: {e}");
        }
    }

    #[test]
    fn the_agreement_table_covers_every_link_verdict() {
        let key = LinkKey::new("k1", vec![1; 32]).unwrap();
        let table = link_agreement_table(&key, "/private/").unwrap();
        let verdicts: std::collections::BTreeSet<&str> =
            table.as_array().unwrap().iter().map(|c| c["rust"].as_str().unwrap()).collect();
        let want = [
            "ok", "malformed token", "token version v1 is no longer accepted; reissue", "wrong audience",
            "unknown key id", "bad signature", "expired", "method not allowed", "outside the token scope",
            "bound to another client address",
        ];
        assert_eq!(verdicts, want.into_iter().collect());
        let case = |name: &str| table.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["rust"].clone();
        assert_eq!(case("presign grant as a link"), "wrong audience");
        assert_eq!(case("link payload, presign MAC"), "bad signature");
        assert_eq!(case("escaped scope"), "ok");
        assert_eq!(case("escaped scope, raw spelling of the path"), "ok");
        assert_eq!(case("escaped scope, another path"), "outside the token scope");
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let keys = offload_e2e::local_keys().unwrap();
        let keys = keys.links().unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        // Issued with the repository's offload.toml [links] key.
        let url = sign("link --path /private/report.txt?a=1 --methods GET --expires 60").unwrap();
        let (path, query) = url.split_once('?').unwrap();
        let token = token_from_query(query).unwrap();
        let claims = verify_link(keys, path, "GET", None, token, now).unwrap();
        assert_eq!(claims.methods, Methods::GET);
        assert!(claims.expires_at >= now + 59 && claims.expires_at <= now + 61);
        assert!(verify_link(keys, path, "HEAD", None, token, now).is_err());

        let grant = sign("app-token --bucket uploads --prefix user-42/ --max-size 1000 --types image/*,text/plain").unwrap();
        let put = GrantRequest {
            bucket: "uploads",
            key: "user-42/a.png",
            method: PresignMethod::Put,
            content_length: Some(1000),
            content_type: Some("image/png"),
            expires: 900,
        };
        let claims = verify_grant(keys, &put, None, &grant, now).unwrap();
        assert_eq!((claims.methods, claims.max_content_length, claims.max_expires), (Methods::PUT, Some(1000), 900));
        let get = GrantRequest { method: PresignMethod::Get, content_length: None, content_type: None, ..put };
        assert!(verify_grant(keys, &get, None, &grant, now).is_err(), "a PUT grant is not a GET grant");
        assert!(verify_link(keys, "/private/report.txt", "GET", None, &grant, now).is_err());
    }
}
