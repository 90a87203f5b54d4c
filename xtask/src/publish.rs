//! `cargo xtask publish DIR [--bucket ALIAS] [--prefix P] [--edge URL]
//! [--fingerprint] [--dry-run] [--no-purge]`: put a static site (the output folder of any
//! generator) into a bucket of the config, signed with Offload's own SigV4
//! signer, with the headers a CDN needs:
//!
//! - fingerprinted assets (a content hash in the name, as generators emit
//!   them: `app.3f9a1c2b.js`, `index-BRyZ3xKp.css`, or added by
//!   `--fingerprint`, which rewrites the HTML's references) get
//!   `Cache-Control: public, max-age=31536000, immutable`;
//! - HTML and every other file get a short TTL with
//!   `stale-while-revalidate` ([`SHORT_CACHE_CONTROL`]) and a
//!   `Surrogate-Key` (`site html` / `site asset`, stored as the object's
//!   `x-amz-meta-surrogate-key`: S3 keeps only `x-amz-meta-*` of custom
//!   fields);
//! - `Content-Type` by extension (`mime_guess`).
//!
//! Only changed objects are uploaded (the local MD5 against the listed
//! ETag; uploads carry `Content-MD5`, so the bucket refuses a corrupted
//! body), objects gone from DIR are deleted, and what changed (the HTML and
//! every other file without a content hash, uploaded or deleted) is purged
//! through the edge's purge endpoint at the end. A file that cannot
//! be published (unreadable, a name that is not UTF-8, a key S3 would
//! refuse) is reported by name and left as it is in the bucket; the rest
//! is published and the command fails at the end.
//!
//! Credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
//! `AWS_SESSION_TOKEN`) when set, else the bucket's references resolved
//! from `.dev.vars` (the local stack). The purge token: `OFFLOAD_PURGE_TOKEN`,
//! else `.dev.vars`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use offload_core::config::{Bucket, EdgeKeys};
use offload_core::sign::sigv4::{sign, AmzDate, Credentials, PayloadHash, SignableRequest, SigningParams, SigningSettings};
use offload_core::Config;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// `Cache-Control` of fingerprinted assets: a new name for every content.
pub const IMMUTABLE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of HTML and unfingerprinted files: a minute fresh, then
/// a day served stale while the edge revalidates.
pub const SHORT_CACHE_CONTROL: &str = "public, max-age=60, stale-while-revalidate=86400";
/// S3's longest key, in bytes.
const MAX_KEY_BYTES: usize = 1024;
/// Most URLs in one purge request (the endpoint's limit).
const PURGE_BATCH: usize = 1000;

/// S3 URI encoding: everything but `A-Z a-z 0-9 - _ . ~` (and `/` in paths).
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
const QUERY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `cargo xtask publish`.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct Args {
    /// The static site's output folder.
    dir: PathBuf,
    /// The bucket alias in offload.toml.
    #[arg(long)]
    bucket: Option<String>,
    /// Publish below this key prefix (e.g. `docs/`); the rest of the bucket
    /// is left alone.
    #[arg(long, default_value = "")]
    prefix: String,
    /// The edge whose purge endpoint gets the changed URLs.
    #[arg(long)]
    edge: Option<String>,
    /// Print what would change; upload, delete and purge nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not purge the changed files at the edge.
    #[arg(long)]
    no_purge: bool,
    /// Add a content hash to unhashed assets that HTML refers to, and
    /// rewrite the references.
    #[arg(long)]
    fingerprint: bool,
}

/// The prefix as a key prefix: ends in `/`, no leading `/`, no dot segments.
fn checked(mut a: Args) -> Result<Args, String> {
    if !a.prefix.is_empty() && !a.prefix.ends_with('/') {
        a.prefix.push('/');
    }
    if a.prefix.starts_with('/') || a.prefix.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("--prefix {:?}: no leading '/' and no '.' or '..' segments", a.prefix));
    }
    Ok(a)
}

/// One file of DIR, ready to publish.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// The object key (the bucket's prefix + `--prefix` + the relative path).
    pub key: String,
    pub path: PathBuf,
    pub md5_hex: String,
    pub bytes: u64,
    pub content_type: String,
    pub cache_control: &'static str,
    pub surrogate_key: Option<&'static str>,
    /// What to upload instead of the file's bytes (HTML whose references
    /// `--fingerprint` rewrote).
    pub body: Option<Vec<u8>>,
}

/// Whether a file name carries a content hash, as site generators write
/// them: a `.`- or `-`-separated part of 8 to 64 letters and digits with
/// at least one digit and one letter (`app.3f9a1c2b.js`,
/// `index-BRyZ3xKp.css`, Hugo's `main.min.<sha256>.css`).
pub fn is_fingerprinted(file_name: &str) -> bool {
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    stem.split(['.', '-']).skip(1).chain(stem.split('.').skip(1)).any(|part| {
        (8..=64).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && part.bytes().any(|b| b.is_ascii_digit())
            && part.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

/// `Content-Type` by extension; text types say UTF-8.
pub fn content_type(file_name: &str) -> String {
    let mime = mime_guess::from_path(file_name).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.essence_str(), "application/javascript" | "application/json" | "image/svg+xml" | "application/xml");
    match mime.essence_str() {
        "application/javascript" => "text/javascript; charset=utf-8".to_owned(),
        e if textual => format!("{e}; charset=utf-8"),
        e => e.to_owned(),
    }
}

/// Why S3 (or the edge) would refuse `key`, if it would.
pub fn key_problem(key: &str) -> Option<String> {
    if key.len() > MAX_KEY_BYTES {
        return Some(format!("the key is {} bytes; S3 keys are at most {MAX_KEY_BYTES}", key.len()));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Some(format!("the key has the control character {c:?} (S3 lists keys in XML 1.0, which cannot carry it)"));
    }
    if key.split('/').any(|s| s == "." || s == "..") {
        return Some("the key has a '.' or '..' segment (the edge resolves or refuses those)".to_owned());
    }
    None
}

fn md5_of(path: &Path) -> Result<(String, u64), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file that cannot be published: (relative path, why).
pub type Unpublishable = (String, String);

/// Every file under `dir` (hidden names, starting with `.`, are left out),
/// in key order, and the files that cannot be published, with why.
pub fn scan(dir: &Path, key_prefix: &str) -> Result<(Vec<LocalFile>, Vec<Unpublishable>), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{}: not a folder", dir.display()));
    }
    let mut files = Vec::new();
    let mut bad = Vec::new();
    let walk = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name().into_iter();
    for entry in walk.filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.')) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let p = e.path().map(|p| p.display().to_string()).unwrap_or_default();
                bad.push((p, format!("cannot read: {e}")));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let Some(rel_str) = rel.to_str() else {
            bad.push((rel.display().to_string(), "the file name is not UTF-8 (S3 keys are UTF-8)".to_owned()));
            continue;
        };
        let rel_key = rel_str.replace(std::path::MAIN_SEPARATOR, "/");
        let key = format!("{key_prefix}{rel_key}");
        if let Some(why) = key_problem(&key) {
            bad.push((rel_key, why));
            continue;
        }
        let (md5_hex, bytes) = match md5_of(entry.path()) {
            Ok(v) => v,
            Err(e) => {
                bad.push((rel_key, e));
                continue;
            }
        };
        let name = rel_key.rsplit('/').next().unwrap_or(&rel_key);
        let html = name.ends_with(".html") || name.ends_with(".htm");
        let fingerprinted = !html && is_fingerprinted(name);
        files.push(LocalFile {
            key,
            path: entry.path().to_owned(),
            md5_hex,
            bytes,
            content_type: content_type(name),
            cache_control: if fingerprinted { IMMUTABLE_CACHE_CONTROL } else { SHORT_CACHE_CONTROL },
            surrogate_key: if fingerprinted { None } else if html { Some("site html") } else { Some("site asset") },
            body: None,
        });
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((files, bad))
}

/// Extensions `--fingerprint` gives a content hash when HTML refers to them.
const FINGERPRINTABLE: [&str; 12] = ["css", "js", "mjs", "svg", "png", "jpg", "jpeg", "gif", "webp", "avif", "woff", "woff2"];

/// An 8-character window of a hex digest with a letter and a digit (so
/// [`is_fingerprinted`] recognizes it).
fn name_hash(hex_digest: &str) -> String {
    (0..hex_digest.len().saturating_sub(7))
        .filter_map(|i| hex_digest.get(i..i + 8))
        .find(|w| w.bytes().any(|b| b.is_ascii_digit()) && w.bytes().any(|b| b.is_ascii_alphabetic()))
        .map_or_else(|| format!("{}a0", hex_digest.get(..6).unwrap_or("000000")), str::to_owned)
}

/// `name.ext` → `name.<hash>.ext` (the spelling of `name` kept).
fn hashed_name(file_name: &str, hash: &str) -> String {
    match file_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{hash}.{ext}"),
        _ => format!("{file_name}.{hash}"),
    }
}

/// The site-relative path a reference in the HTML file at `html_rel`
/// points to, if it is a path on this site.
fn resolve_reference(value: &str, html_rel: &str, site_prefix: &str) -> Option<String> {
    let path = value.split(['?', '#']).next()?;
    if path.is_empty() || path.contains("://") || path.starts_with("//") || path.contains(':') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    let joined = match decoded.strip_prefix('/') {
        Some(abs) => abs.strip_prefix(site_prefix).unwrap_or(abs).to_owned(),
        None => match html_rel.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{decoded}"),
            None => decoded.into_owned(),
        },
    };
    let mut out: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    Some(out.join("/"))
}

/// `--fingerprint`: every unfingerprinted asset an HTML file refers to
/// (`src="…"`, `href="…"`) is also published as `name.<hash>.ext`
/// (immutable), and the HTML is published with its references rewritten.
/// The original names stay published (CSS and scripts may refer to them).
pub fn fingerprint(mut files: Vec<LocalFile>, key_prefix: &str, site_prefix: &str) -> Result<Vec<LocalFile>, String> {
    let index: BTreeMap<String, usize> =
        files.iter().enumerate().map(|(i, f)| (f.key.strip_prefix(key_prefix).unwrap_or(&f.key).to_owned(), i)).collect();
    let mut copies: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for i in 0..files.len() {
        let rel = files[i].key.strip_prefix(key_prefix).unwrap_or(&files[i].key).to_owned();
        if !(rel.ends_with(".html") || rel.ends_with(".htm")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&files[i].path) else { continue };
        let lower = text.to_ascii_lowercase();
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut changed = false;
        let mut search = 0;
        while let Some(pos) = ["src=", "href="].iter().filter_map(|a| lower.get(search..)?.find(a).map(|p| (p + search, a.len()))).min() {
            let (start, len) = pos;
            search = start + len;
            let Some(quote) = text.get(search..search + 1).filter(|q| *q == "\"" || *q == "'") else { continue };
            let Some(end) = text.get(search + 1..).and_then(|t| t.find(quote)).map(|e| e + search + 1) else { break };
            let value = &text[search + 1..end];
            search = end;
            let Some(target) = resolve_reference(value, &rel, site_prefix) else { continue };
            let Some(&j) = index.get(&target) else { continue };
            let name = target.rsplit('/').next().unwrap_or(&target);
            let ext = name.rsplit_once('.').map_or("", |(_, e)| e).to_ascii_lowercase();
            if !FINGERPRINTABLE.contains(&ext.as_str()) || is_fingerprinted(name) {
                continue;
            }
            let hash = name_hash(&files[j].md5_hex);
            let new_target = match target.rsplit_once('/') {
                Some((d, n)) => format!("{d}/{}", hashed_name(n, &hash)),
                None => hashed_name(&target, &hash),
            };
            copies.insert(new_target, (j, hash.clone()));
            // The reference with its file name hashed, spelled as written.
            let path_end = value.find(['?', '#']).unwrap_or(value.len());
            let name_start = value[..path_end].rfind('/').map_or(0, |p| p + 1);
            let new_value = format!("{}{}{}", &value[..name_start], hashed_name(&value[name_start..path_end], &hash), &value[path_end..]);
            out.push_str(&text[at..end - value.len()]);
            out.push_str(&new_value);
            at = end;
            changed = true;
        }
        if changed {
            out.push_str(&text[at..]);
            let bytes = out.into_bytes();
            files[i].md5_hex = hex(&Md5::digest(&bytes));
            files[i].bytes = bytes.len() as u64;
            files[i].body = Some(bytes);
        }
    }
    for (new_rel, (j, _)) in copies {
        let mut copy = files[j].clone();
        copy.key = format!("{key_prefix}{new_rel}");
        copy.cache_control = IMMUTABLE_CACHE_CONTROL;
        copy.surrogate_key = None;
        if index.contains_key(&new_rel) {
            continue;
        }
        files.push(copy);
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

/// A bucket and how to sign requests to it.
struct S3 {
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
}

struct S3Resp {
    status: u16,
    etag: String,
    body: Vec<u8>,
}

impl S3 {
    fn send(&self, method: &str, encoded_path: &str, query: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<S3Resp, String> {
        let mut url = self.bucket.url_for_encoded_key(encoded_path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
        let time = AmzDate::from_unix_secs(now).map_err(|e| e.to_string())?;
        let host = self.bucket.host();
        let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
        all.extend_from_slice(headers);
        let payload = if body.is_empty() { PayloadHash::EmptyBody } else { PayloadHash::Body(body) };
        let req = SignableRequest { method, url: &url, headers: &all, payload };
        let params = SigningParams {
            credentials: &self.credentials,
            region: self.bucket.region(),
            service: "s3",
            time,
            settings: SigningSettings::s3(),
            signing_key: None,
        };
        let signed = sign(&req, &params).map_err(|e| format!("{method} {url}: signing: {e}"))?;
        let mut r = self.agent.request(method, &url);
        for (n, v) in headers {
            r = r.set(n, v);
        }
        for (n, v) in signed.instructions.headers() {
            r = r.set(n, v);
        }
        let result = if method == "PUT" { r.send_bytes(body) } else { r.call() };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("{method} {}: {e}", url.split('?').next().unwrap_or(""))),
        };
        let status = resp.status();
        let etag = resp.header("etag").unwrap_or("").trim_matches('"').to_owned();
        let mut body = Vec::new();
        resp.into_reader().read_to_end(&mut body).map_err(|e| format!("{method} {url}: body: {e}"))?;
        Ok(S3Resp { status, etag, body })
    }

    /// The ETag of one object (HEAD), quotes removed; empty when it has none.
    fn etag(&self, key: &str) -> Result<String, String> {
        let r = self.send("HEAD", &encode_key(key), "", &[], b"")?;
        match r.status {
            200 => Ok(r.etag),
            404 => Ok(String::new()),
            code => Err(format!("HEAD {key}: {code}")),
        }
    }

    /// Every key under `prefix` with its ETag (quotes removed).
    fn list(&self, prefix: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![("list-type", "2".to_owned()), ("prefix", prefix.to_owned())];
            if let Some(t) = &token {
                q.push(("continuation-token", t.clone()));
            }
            q.sort();
            let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_ENCODE))).collect();
            let r = self.send("GET", "/", &query.join("&"), &[], b"")?;
            if r.status != 200 {
                return Err(format!("listing bucket {:?}: {} {}", self.bucket.bucket(), r.status, String::from_utf8_lossy(&r.body)));
            }
            let page: ListResult = quick_xml::de::from_reader(r.body.as_slice()).map_err(|e| format!("listing bucket {:?}: {e}", self.bucket.bucket()))?;
            for c in page.contents {
                out.insert(c.key, c.etag.trim_matches('"').to_owned());
            }
            match page.next_continuation_token {
                Some(t) if page.is_truncated => token = Some(t),
                _ => return Ok(out),
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListResult {
    #[serde(default)]
    contents: Vec<ListEntry>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListEntry {
    key: String,
    #[serde(rename = "ETag", default)]
    etag: String,
}

fn encode_key(key: &str) -> String {
    format!("/{}", utf8_percent_encode(key, KEY_ENCODE))
}

/// The URL paths viewers use for `key` (the bucket prefix removed): the
/// file's own path, and for an index file its folder too.
fn url_paths(bucket: &Bucket, key: &str) -> Vec<String> {
    let rel = key.strip_prefix(bucket.prefix()).unwrap_or(key);
    let mut out = vec![encode_key(rel)];
    if let Some(index) = bucket.index() {
        if rel == index || rel.ends_with(&format!("/{index}")) {
            let dir = &rel[..rel.len() - index.len()];
            out.push(encode_key(dir).trim_end_matches('/').to_owned() + "/");
        }
    }
    out
}

/// What a publish did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub unchanged: usize,
    pub deleted: usize,
    pub purged: usize,
    pub failed: usize,
}

pub(crate) fn main(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let a = checked(args.clone())?;
    let dir = a.dir.clone();
    let root = offload_e2e::root();
    let config = crate::deploy::load_config(&root)?;
    let alias = a.bucket.clone().unwrap_or_else(|| "www".to_owned());
    let Some(bucket) = config.bucket(&alias).cloned() else {
        let known: Vec<&str> = config.buckets().map(Bucket::alias).collect();
        return Err(format!("unknown bucket {alias:?} (the config has: {})", known.join(", ")));
    };
    let (files, bad) = scan(&dir, &format!("{}{}", bucket.prefix(), a.prefix))?;
    let files = if a.fingerprint { fingerprint(files, &format!("{}{}", bucket.prefix(), a.prefix), &a.prefix)? } else { files };
    let keys = LocalKeys::load(&root, &config);
    let credentials = keys.credentials(&alias)?;
    let s3 = S3 {
        bucket: bucket.clone(),
        credentials,
        agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).build(),
    };
    let list_prefix = format!("{}{}", bucket.prefix(), a.prefix);
    let mut remote = s3.list(&list_prefix)?;
    // A listing without ETags (some S3-compatible servers leave them
    // out): ask for the ETag of each object that DIR also has.
    for f in &files {
        if remote.get(&f.key).is_some_and(String::is_empty) {
            let etag = s3.etag(&f.key)?;
            remote.insert(f.key.clone(), etag);
        }
    }
    let mut summary = Summary { files: files.len(), failed: bad.len(), ..Summary::default() };
    let verb = if a.dry_run { "would upload" } else { "upload" };
    let local: BTreeSet<&str> = files.iter().map(|f| f.key.as_str()).collect();
    let bad_keys: BTreeSet<String> = bad.iter().map(|(k, _)| format!("{list_prefix}{k}")).collect();
    let changed: Vec<&LocalFile> = files.iter().filter(|f| remote.get(&f.key) != Some(&f.md5_hex)).collect();
    summary.unchanged = files.len() - changed.len();
    let mut purge: Vec<String> = Vec::new();
    let mut errors: Vec<String> = bad.iter().map(|(k, why)| format!("{k:?}: {why}")).collect();
    for (i, f) in changed.iter().enumerate() {
        eprintln!("publish: [{}/{}] {verb} {} ({} bytes, {})", i + 1, changed.len(), f.key, f.bytes, f.cache_control);
        if a.dry_run {
            summary.uploaded += 1;
            summary.uploaded_bytes += f.bytes;
            continue;
        }
        match put(&s3, f) {
            Ok(()) => {
                summary.uploaded += 1;
                summary.uploaded_bytes += f.bytes;
                // The edge may hold an older copy (within its TTL and
                // stale-while-revalidate window), even of a key that is
                // new to the bucket (deleted and published again).
                // Fingerprinted files get a new name instead.
                if f.cache_control != IMMUTABLE_CACHE_CONTROL {
                    purge.extend(url_paths(&bucket, &f.key));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let gone: Vec<&String> = remote.keys().filter(|k| !local.contains(k.as_str()) && !bad_keys.contains(*k)).collect();
    for k in gone {
        eprintln!("publish: {} {k}", if a.dry_run { "would delete" } else { "delete" });
        if a.dry_run {
            summary.deleted += 1;
            continue;
        }
        match s3.send("DELETE", &encode_key(k), "", &[], b"") {
            Ok(r) if r.status == 204 || r.status == 200 => {
                summary.deleted += 1;
                purge.extend(url_paths(&bucket, k));
            }
            Ok(r) => errors.push(format!("{k}: delete refused: {} {}", r.status, String::from_utf8_lossy(&r.body))),
            Err(e) => errors.push(format!("{k}: {e}")),
        }
    }
    if !purge.is_empty() && !a.dry_run && !a.no_purge {
        let edge = a.edge.clone().or_else(|| std::env::var("OFFLOAD_EDGE_URL").ok()).unwrap_or_else(|| format!("http://127.0.0.1:{}", offload_e2e::EDGE_PORT));
        match keys.purge_token().and_then(|t| purge_urls(&edge, &t, &purge)) {
            Ok(n) => summary.purged = n,
            Err(e) => errors.push(format!("purge: {e}")),
        }
    }
    println!(
        "publish: {} files in {}: {} {} ({} bytes), {} unchanged, {} {}, {} purged, {} failed; {:.1} s",
        summary.files,
        dir.display(),
        summary.uploaded,
        if a.dry_run { "would be uploaded" } else { "uploaded" },
        summary.uploaded_bytes,
        summary.unchanged,
        summary.deleted,
        if a.dry_run { "would be deleted" } else { "deleted" },
        summary.purged,
        errors.len(),
        started.elapsed().as_secs_f64()
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} file(s) not published (left as they were in the bucket):\n  {}", errors.len(), errors.join("\n  ")))
    }
}

fn put(s3: &S3, f: &LocalFile) -> Result<(), String> {
    let body = match &f.body {
        Some(b) => b.clone(),
        None => std::fs::read(&f.path).map_err(|e| format!("{}: cannot read: {e}", f.path.display()))?,
    };
    let digest = Md5::digest(&body);
    if hex(&digest) != f.md5_hex {
        return Err(format!("{}: changed while publishing; run again", f.key));
    }
    let md5_b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    let mut headers = vec![
        ("content-type", f.content_type.as_str()),
        ("cache-control", f.cache_control),
        ("content-md5", md5_b64.as_str()),
    ];
    if let Some(k) = f.surrogate_key {
        headers.push(("x-amz-meta-surrogate-key", k));
    }
    let r = s3.send("PUT", &encode_key(&f.key), "", &headers, &body)?;
    if r.status == 200 {
        Ok(())
    } else {
        Err(format!("{}: the bucket refused the upload: {} {}", f.key, r.status, String::from_utf8_lossy(&r.body).chars().take(300).collect::<String>()))
    }
}

/// POST the URLs to the edge's purge endpoint (in batches); the number
/// of entries it purged.
fn purge_urls(edge: &str, token: &str, urls: &[String]) -> Result<usize, String> {
    let mut purged = 0;
    for batch in urls.chunks(PURGE_BATCH) {
        let body = serde_json::json!({ "urls": batch }).to_string();
        let url = format!("{}/_offload/purge", edge.trim_end_matches('/'));
        let resp = ureq::post(&url)
            .set("authorization", &format!("Bearer {token}"))
            .set("content-type", "application/json")
            .send_string(&body);
        match resp {
            Ok(r) => {
                let v: serde_json::Value = r.into_json().map_err(|e| format!("{url}: {e}"))?;
                purged += v["purged"].as_u64().unwrap_or(0) as usize;
            }
            Err(ureq::Error::Status(code, r)) => return Err(format!("{url}: {code} {}", r.into_string().unwrap_or_default())),
            Err(e) => return Err(format!("{url}: {e}")),
        }
    }
    eprintln!("publish: purged {} changed URL(s) at the edge ({purged} cache entries)", urls.len());
    Ok(purged)
}

/// Credentials and the purge token: from the environment, else `.dev.vars`.
struct LocalKeys {
    keys: Result<EdgeKeys, String>,
}

impl LocalKeys {
    fn load(root: &Path, config: &Config) -> Self {
        let keys = offload_e2e::devvars::DevVars::load(root)
            .and_then(|v| EdgeKeys::resolve(config, &v.secret_map()).map_err(|e| format!("{}: {e}", offload_e2e::devvars::FILE)));
        Self { keys }
    }

    fn credentials(&self, alias: &str) -> Result<Credentials, String> {
        if let (Ok(id), Ok(secret)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
            return Ok(Credentials::new(id, secret, std::env::var("AWS_SESSION_TOKEN").ok()));
        }
        let keys = self.keys.as_ref().map_err(|e| format!("no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY set, and the local keys: {e}"))?;
        keys.bucket_credentials(alias)
            .cloned()
            .ok_or_else(|| format!("bucket {alias:?} has no credentials in the config; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))
    }

    fn purge_token(&self) -> Result<String, String> {
        if let Ok(t) = std::env::var("OFFLOAD_PURGE_TOKEN") {
            return Ok(t);
        }
        let keys = self.keys.as_ref().map_err(|e| format!("no OFFLOAD_PURGE_TOKEN set, and the local keys: {e}"))?;
        let t = keys.purge_token().ok_or("the config has no [cache] purge_token (use --no-purge)")?;
        String::from_utf8(t.expose().to_vec()).map_err(|_| "the purge token is not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fingerprints_are_recognized() {
        for name in ["app.3f9a1c2b.js", "index-BRyZ3xKp.css", "main.min.0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9.css", "chunk.a1b2c3d4.woff2", "logo.5d41402a.svg"] {
            assert!(is_fingerprinted(name), "{name}");
        }
        for name in ["app.js", "style.css", "bootstrap.min.css", "jquery-3.7.1.js", "index.html", "favicon.ico", "report-final.pdf"] {
            assert!(!is_fingerprinted(name), "{name}");
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("a.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.wasm"), "application/wasm");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("a.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn keys_s3_would_refuse_are_named() {
        assert!(key_problem("a/b c/ü.html").is_none());
        assert!(key_problem(&"x".repeat(1025)).unwrap().contains("1025 bytes"));
        assert!(key_problem("a\u{1}b").unwrap().contains("control character"));
        assert!(key_problem("a/../b").unwrap().contains("'..'"));
    }

    #[test]
    fn bad_arguments_are_refused() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: Args,
        }
        let parse = |v: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(std::iter::once("publish").chain(v.iter().copied()))
                .map_err(|e| e.to_string())
                .and_then(|c| checked(c.a))
        };
        assert!(parse(&["a", "b"]).unwrap_err().contains("unexpected argument 'b'"));
        assert!(parse(&["a", "--bogus"]).unwrap_err().contains("--bogus"));
        assert!(parse(&["a", "--bucket"]).unwrap_err().contains("--bucket"));
        assert!(parse(&[]).unwrap_err().contains("<DIR>"));
        assert!(parse(&["a", "--prefix", "../x"]).is_err());
        assert_eq!(parse(&["a", "--prefix", "gen"]).unwrap().prefix, "gen/");
    }

    #[test]
    fn fingerprint_adds_hashes_and_rewrites_the_html() {
        let dir = std::env::temp_dir().join(format!("offload-publish-fp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::create_dir_all(dir.join("css")).unwrap();
        std::fs::write(dir.join("css/site.css"), "p{}").unwrap();
        std::fs::write(dir.join("my app.js"), "1").unwrap();
        std::fs::write(dir.join("app.3f9a1c2b.js"), "2").unwrap();
        let page = r#"<link href="../css/site.css?v=1" rel=stylesheet><script src='/gen/my%20app.js'></script><script src="/app.3f9a1c2b.js"></script><a href="https://x.test/css/site.css">x</a>"#;
        std::fs::write(dir.join("docs/index.html"), page).unwrap();
        let (files, _) = scan(&dir, "gen/").unwrap();
        let files = fingerprint(files, "gen/", "gen/").unwrap();
        let css_hash = name_hash(&hex(&Md5::digest(b"p{}")));
        let js_hash = name_hash(&hex(&Md5::digest(b"1")));
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert!(keys.contains(&format!("gen/css/site.{css_hash}.css").as_str()), "{keys:?}");
        assert!(keys.contains(&format!("gen/my app.{js_hash}.js").as_str()), "{keys:?}");
        assert!(keys.contains(&"gen/css/site.css") && keys.len() == 6, "{keys:?}");
        let html = files.iter().find(|f| f.key == "gen/docs/index.html").unwrap();
        let body = String::from_utf8(html.body.clone().unwrap()).unwrap();
        assert_eq!(
            body,
            format!(r#"<link href="../css/site.{css_hash}.css?v=1" rel=stylesheet><script src='/gen/my%20app.{js_hash}.js'></script><script src="/app.3f9a1c2b.js"></script><a href="https://x.test/css/site.css">x</a>"#)
        );
        assert_eq!(html.md5_hex, hex(&Md5::digest(body.as_bytes())));
        let copy = files.iter().find(|f| f.key.starts_with("gen/css/site.") && f.key != "gen/css/site.css").unwrap();
        assert_eq!((copy.cache_control, copy.surrogate_key), (IMMUTABLE_CACHE_CONTROL, None));
        assert!(is_fingerprinted(copy.key.rsplit('/').next().unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scan_lists_files_in_key_order_and_names_bad_ones() {
        let dir = std::env::temp_dir().join(format!("offload-publish-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub dir")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(dir.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dir.join("sub dir/ü.css"), "a{}").unwrap();
        std::fs::write(dir.join("app.3f9a1c2b.js"), "1").unwrap();
        std::fs::write(dir.join(".git/HEAD"), "x").unwrap();
        let (files, bad) = scan(&dir, "p/").unwrap();
        let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["p/app.3f9a1c2b.js", "p/index.html", "p/sub dir/ü.css"]);
        assert!(bad.is_empty());
        assert_eq!(files[0].cache_control, IMMUTABLE_CACHE_CONTROL);
        assert_eq!((files[1].cache_control, files[1].surrogate_key), (SHORT_CACHE_CONTROL, Some("site html")));
        assert_eq!(files[1].md5_hex, hex(&Md5::digest(b"<h1>hi</h1>")));
        assert!(scan(&dir.join("missing"), "").unwrap_err().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
