//! `cargo xtask bench sign`, workerd part: Offload's presign endpoint
//! (`POST /_offload/presign` in the Workers build) against a JS Worker
//! presigning with npm `aws4fetch`, both in ONE `workerd serve`
//! (tests/bench/sign/workerd.capnp, 127.0.0.1:18841 and :18842).
//!
//! Offload's side does the whole endpoint: bearer grant check (HMAC), JSON
//! body, presign with the isolate's cached day key, JSON answer. The
//! aws4fetch side presigns the same kind of URL (GET, query signing, the
//! same bucket, key and expiry) for a `GET /presign?key=K`, with no
//! authorization of its own. Load: closed loop, `CONCURRENCY` keep-alive
//! connections in this process, every request a new key, alternating
//! rounds (Offload, aws4fetch, Offload, ...) so drift hits both alike.
//! A third row, `GET` on the presign path (a 405 from the request head),
//! is Offload's floor there: its Workers adapter and request machine with
//! no signing; a fourth, a `POST` for a key outside the grant (a 403 after
//! the body is read and the grant checked), adds the body and the grant
//! check, so the endpoint's costs can be told apart.
//! The secrets (S3 key pair, link key) are random per run and reach
//! workerd only through its environment.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use offload_core::sign::link::issue_grant;
use offload_core::sign::{GrantClaims, KeyScope, LinkKey, Methods};
use offload_e2e::devvars::fresh_value;
use offload_supervise::Supervisor;

use crate::conformance::{build_edge, copy, ensure_ports_free, fresh_dir, workerd_bin};

const OFFLOAD_PORT: u16 = 18841;
const AWS4FETCH_PORT: u16 = 18842;
const CONCURRENCY: usize = 8;
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(3);
const EXPIRES: u64 = 900;
const BUCKET_URL: &str = "https://offload-bench-uploads.s3.us-east-1.amazonaws.com/";

/// One side's request for key number `n`.
#[derive(Clone)]
enum Side {
    Offload { port: u16, auth: String },
    /// `GET` on the presign path: the 405 the endpoint answers from the
    /// request head (no body, no grant, no signing): Offload's Workers
    /// adapter and request machine alone.
    OffloadFloor { port: u16 },
    /// `POST` with the grant and a body for a key outside the grant: the
    /// 403 after reading the body and checking the grant, no signing.
    OffloadRefused { port: u16, auth: String },
    Aws4fetch { port: u16 },
}

impl Side {
    fn port(&self) -> u16 {
        match self {
            Side::Offload { port, .. }
            | Side::OffloadFloor { port }
            | Side::OffloadRefused { port, .. }
            | Side::Aws4fetch { port } => *port,
        }
    }

    fn key(n: usize) -> String {
        format!("bench/{n}/photo.jpg")
    }

    /// The raw HTTP/1.1 request (keep-alive).
    fn request(&self, n: usize) -> Vec<u8> {
        let key = Self::key(n);
        match self {
            Side::Offload { port, auth } | Side::OffloadRefused { port, auth } => {
                let key = if let Side::OffloadRefused { .. } = self { format!("other/{n}") } else { key };
                let body = format!(r#"{{"bucket":"uploads","key":"{key}","method":"GET","expires":{EXPIRES}}}"#);
                format!(
                    "POST /_offload/presign HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: {auth}\r\n\
                     content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            Side::OffloadFloor { port } => format!("GET /_offload/presign HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n"),
            Side::Aws4fetch { port } => {
                format!("GET /presign?key={key}&expires={EXPIRES} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n")
            }
        }
        .into_bytes()
    }

    /// One request on `conn`: the URL answered, checked to be a presigned
    /// URL of key `n`.
    fn call(&self, conn: &mut Conn, n: usize) -> Result<String, String> {
        let (status, body) = conn.exchange(&self.request(n))?;
        let body = String::from_utf8_lossy(&body);
        let want = match self {
            Side::OffloadFloor { .. } => Some(405),
            Side::OffloadRefused { .. } => Some(403),
            Side::Offload { .. } | Side::Aws4fetch { .. } => None,
        };
        if let Some(want) = want {
            return if status == want { Ok(String::new()) } else { Err(format!("status {status} (want {want}): {body}")) };
        }
        if status != 200 {
            return Err(format!("status {status}: {body}"));
        }
        let url = body
            .split_once(r#""url":""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(url, _)| url)
            .ok_or_else(|| format!("no url in {body}"))?;
        let key = Self::key(n);
        if !url.starts_with(&format!("{BUCKET_URL}{key}?")) || !url.contains("X-Amz-Signature=") {
            return Err(format!("not a presigned URL of {key}: {url}"));
        }
        Ok(url.to_owned())
    }
}

/// A keep-alive HTTP/1.1 connection: a small client of its own, so the
/// load generator's cost per request stays small next to the servers'.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> Result<Conn, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
        Ok(Conn { stream, buf: Vec::with_capacity(4096) })
    }

    /// Sends `request`, reads one response with a `Content-Length` body.
    fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.stream.write_all(request).map_err(|e| format!("send: {e}"))?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed before a response".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| "response head is not UTF-8".to_owned())?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line: {head}"))?;
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
            })
            .ok_or_else(|| format!("response without Content-Length: {head}"))?;
        while self.buf.len() < head_end + length {
            let n = self.stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed in a response body".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[head_end..head_end + length].to_vec()))
    }
}

/// Requests answered per second over `ROUND` at `CONCURRENCY`; any failed
/// request fails the run.
fn round(side: &Side, next: &Arc<AtomicUsize>) -> Result<f64, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (side, next, stop) = (side.clone(), Arc::clone(next), Arc::clone(&stop));
            std::thread::spawn(move || -> Result<usize, String> {
                let mut conn = Conn::open(side.port())?;
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    side.call(&mut conn, next.fetch_add(1, Ordering::Relaxed))?;
                    done += 1;
                }
                Ok(done)
            })
        })
        .collect();
    std::thread::sleep(ROUND);
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| "a load thread panicked".to_owned())??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// `worker_dir`: a Workers build of tests/bench/sign/offload.toml made
/// before (`index.js`, `index_bg.wasm`); none: build it.
pub(crate) fn main(root: &Path, worker_dir: Option<&Path>) -> Result<(), String> {
    ensure_ports_free(&[OFFLOAD_PORT, AWS4FETCH_PORT])?;
    crate::setup::ensure(root)?;
    let state = root.join(".offload/bench-sign");
    let worker: PathBuf = match worker_dir {
        Some(dir) => dir.to_owned(),
        None => {
            let out = state.join("worker");
            build_edge(root, &root.join("tests/bench/sign/offload.toml"), &out)?;
            out
        }
    };
    let run = state.join("run");
    fresh_dir(&run)?;
    std::fs::create_dir_all(run.join("worker")).map_err(|e| format!("{}: {e}", run.display()))?;
    for f in ["index.js", "index_bg.wasm"] {
        copy(&worker.join(f), &run.join("worker").join(f))?;
    }
    let sign = root.join("tests/bench/sign");
    copy(&sign.join("workerd.capnp"), &run.join("workerd.capnp"))?;
    copy(&sign.join("aws4fetch.js"), &run.join("aws4fetch.js"))?;
    copy(&root.join("node_modules/aws4fetch/dist/aws4fetch.esm.mjs"), &run.join("aws4fetch.mjs"))?;

    let link_secret = fresh_value("OFFLOAD_LINK_KEY_BENCH_1")?;
    let link_key = LinkKey::new("bench-1", link_secret.clone().into_bytes()).map_err(|e| e.to_string())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let grant = issue_grant(
        &link_key,
        &GrantClaims {
            expires_at: now + 3600,
            client_ip: None,
            methods: Methods::GET,
            bucket: "uploads".into(),
            keys: KeyScope::Prefix("bench/".into()),
            max_content_length: None,
            content_types: vec![],
            max_expires: EXPIRES,
        },
    )
    .map_err(|e| format!("bench sign: grant: {e}"))?;

    let mut procs = Supervisor::new(state.join("logs"))?;
    let mut cmd = Command::new(workerd_bin(root)?);
    cmd.args(["serve", "workerd.capnp"])
        .current_dir(&run)
        .env("OFFLOAD_S3_ACCESS_KEY_ID", fresh_value("OFFLOAD_S3_ACCESS_KEY_ID")?)
        .env("OFFLOAD_S3_SECRET_ACCESS_KEY", fresh_value("OFFLOAD_S3_SECRET_ACCESS_KEY")?)
        .env("OFFLOAD_LINK_KEY_BENCH_1", link_secret);
    procs.spawn("workerd", cmd)?;
    procs.wait_tcp("workerd", OFFLOAD_PORT, Duration::from_secs(60))?;
    procs.wait_tcp("workerd", AWS4FETCH_PORT, Duration::from_secs(10))?;

    let offload = Side::Offload { port: OFFLOAD_PORT, auth: format!("Bearer {grant}") };
    let floor = Side::OffloadFloor { port: OFFLOAD_PORT };
    let refused = Side::OffloadRefused { port: OFFLOAD_PORT, auth: format!("Bearer {grant}") };
    let aws4fetch = Side::Aws4fetch { port: AWS4FETCH_PORT };
    // Both answer a presigned GET of the same object for the same expiry,
    // signed with the same access key for the same scope.
    let a = offload.call(&mut Conn::open(OFFLOAD_PORT)?, 0).map_err(|e| format!("Offload presign endpoint: {e}"))?;
    let b = aws4fetch.call(&mut Conn::open(AWS4FETCH_PORT)?, 0).map_err(|e| format!("aws4fetch Worker: {e}"))?;
    let param = |u: &str, name: &str| {
        u.split(['?', '&']).find_map(|p| p.strip_prefix(name).and_then(|v| v.strip_prefix('='))).map(str::to_owned)
    };
    for name in ["X-Amz-Credential", "X-Amz-Expires", "X-Amz-SignedHeaders"] {
        if param(&a, name) != param(&b, name) {
            return Err(format!("bench sign: the two URLs differ in {name}: {:?} vs {:?}", param(&a, name), param(&b, name)));
        }
    }

    let version = Command::new(workerd_bin(root)?)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "presign endpoint in one `workerd serve` ({version}), {CONCURRENCY} connections, closed loop, \
         {ROUNDS} alternating rounds of {} s each",
        ROUND.as_secs()
    );
    let next = Arc::new(AtomicUsize::new(1));
    // Warm-up: both isolates compiled, JITted, day keys derived.
    round(&offload, &next)?;
    round(&floor, &next)?;
    round(&refused, &next)?;
    round(&aws4fetch, &next)?;
    let (mut ours, mut floors, mut refusals, mut theirs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours.push(round(&offload, &next)?);
        floors.push(round(&floor, &next)?);
        refusals.push(round(&refused, &next)?);
        theirs.push(round(&aws4fetch, &next)?);
    }
    procs.check_alive("workerd")?;
    let show = |rates: &[f64]| rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len() as f64;
    let (o, f, r, t) = (mean(&ours), mean(&floors), mean(&refusals), mean(&theirs));
    println!("  {:<60} {o:>8.0} req/s  (rounds: {})", "Offload POST /_offload/presign (grant check + presign)", show(&ours));
    println!("  {:<60} {f:>8.0} req/s  (rounds: {})", "Offload GET /_offload/presign -> 405 (adapter floor)", show(&floors));
    println!("  {:<60} {r:>8.0} req/s  (rounds: {})", "Offload POST, key outside the grant -> 403 (body + grant)", show(&refusals));
    println!("  {:<60} {t:>8.0} req/s  (rounds: {})", "aws4fetch Worker GET /presign (AwsClient.sign, signQuery)", show(&theirs));
    println!("ratio Offload endpoint / aws4fetch Worker: {:.2}x (goal >= 2x)", o / t);
    println!("ratio Offload endpoint / its 405 floor: {:.2}x; 403 (body + grant) / 405 floor: {:.2}x", o / f, r / f);
    Ok(())
}
