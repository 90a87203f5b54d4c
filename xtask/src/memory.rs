//! `cargo xtask bench memory`: the edge's memory bound and time to first
//! byte while large bodies pass through it, under plain `workerd serve`.
//!
//! ```text
//! cargo xtask bench memory [--download-bytes N (1 GiB)] [--upload-bytes N (500 MB)]
//!                          [--worker-dir DIR] [--origin-shim PATH] [--no-cache-api]
//! ```
//!
//! origin-shim (127.0.0.1:18810, as for `bench cache`) serves `GET /api/blob/{N}`: N bytes of a
//! seeded pattern, chunked, `Cache-Control: public, max-age=300` (a
//! storable response), and `POST /api/sink`, which streams an upload and
//! answers its length and whether every byte matched the pattern. The edge
//! (the Workers build with `tests/bench/offload.bench.toml`, plain
//! `workerd serve` on 127.0.0.1:18811) sits in front. The resident set
//! (VmRSS) of the workerd process is sampled every 10 ms.
//!
//! Printed: workerd RSS before (after one warm-up request) and its peak
//! during the download and during the upload; the time to the viewer's
//! first body byte through the edge and straight from the origin; bytes
//! received and whether the body was complete and byte-exact; whether the
//! response was stored (a second request must not be a hit: it is larger
//! than `max_entry_bytes`); bytes the origin received from the upload and
//! whether they were exact.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offload_e2e::http::{blob_byte as pattern_byte, BlobReader};
use offload_e2e::root;

use crate::bench::{EDGE_PORT, ORIGIN_PORT};
use crate::conformance::{build_edge, ensure_ports_free, start_edge};
use offload_supervise::Supervisor;

const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// `cargo xtask bench memory`: the flags (see the module's doc).
#[derive(clap::Args, Debug)]
pub(crate) struct MemoryArgs {
    /// Bytes of the storable response downloaded through the edge.
    #[arg(long = "download-bytes", value_name = "N", default_value_t = 1 << 30)]
    download: u64,
    /// Bytes uploaded through the edge to the origin.
    #[arg(long = "upload-bytes", value_name = "N", default_value_t = 500_000_000)]
    upload: u64,
    #[command(flatten)]
    systems_under_test: crate::bench::BenchBinaries,
}

struct Opts {
    download: u64,
    upload: u64,
    worker_dir: Option<PathBuf>,
    origin_shim: Option<PathBuf>,
    cache_api: bool,
}

fn parse(a: &MemoryArgs) -> Opts {
    Opts {
        download: a.download,
        upload: a.upload,
        worker_dir: a.systems_under_test.worker_dir.clone(),
        origin_shim: a.systems_under_test.origin_shim.clone(),
        cache_api: !a.systems_under_test.no_cache_api,
    }
}

/// VmRSS of `pid` in bytes.
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples a process's RSS in the background; `peak` since the last reset.
struct Sampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(r) = rss(pid) {
                    p.fetch_max(r, Ordering::Relaxed);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Self { peak, stop, thread: Some(thread) }
    }
    fn take_peak(&self) -> u64 {
        self.peak.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(120))
        .timeout_write(Duration::from_secs(120))
        .redirects(0)
        .build()
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

struct Download {
    status: u16,
    cache_status: String,
    first_byte: Option<Duration>,
    total: Duration,
    received: u64,
    exact: bool,
    error: Option<String>,
}

/// GET `url`; read (and check) at most `max` body bytes.
fn download(url: &str, seed: u64, max: u64) -> Result<Download, String> {
    let started = Instant::now();
    let resp = match agent().get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("GET {url}: {e}")),
    };
    let status = resp.status();
    let cache_status = resp.header("cache-status").unwrap_or("").to_owned();
    let mut reader = resp.into_reader();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut received, mut exact, mut first_byte, mut error) = (0u64, true, None, None);
    while received < max {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                first_byte.get_or_insert_with(|| started.elapsed());
                exact &= buf[..n].iter().enumerate().all(|(i, b)| *b == pattern_byte(received + i as u64, seed));
                received += n as u64;
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    Ok(Download { status, cache_status, first_byte, total: started.elapsed(), received, exact, error })
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
}

pub(crate) fn main(args: &MemoryArgs) -> Result<(), String> {
    let opts = parse(args);
    let root = root();
    ensure_ports_free(&[ORIGIN_PORT, EDGE_PORT])?;
    let state = root.join(".offload/bench-memory");
    let shim = crate::bench::origin_shim_binary(&root, opts.origin_shim.as_deref())?;
    let worker_dir = match &opts.worker_dir {
        Some(d) => d.clone(),
        None => {
            crate::setup::ensure(&root)?;
            let out = state.join("worker");
            build_edge(&root, &root.join("tests/bench/offload.bench.toml"), &out)?;
            out
        }
    };
    let mut procs = Supervisor::new(state.join("logs"))?;
    crate::bench::start_origin(&mut procs, &shim)?;
    start_edge(&mut procs, "edge", &root, &worker_dir, &state.join("run"), EDGE_PORT, opts.cache_api)?;
    let pid = procs.pid("edge").ok_or("no workerd process")?;
    let edge = format!("http://127.0.0.1:{EDGE_PORT}");
    let origin = format!("http://127.0.0.1:{ORIGIN_PORT}");
    run(&opts, pid, &edge, &origin, &worker_dir)
}

fn run(opts: &Opts, pid: u32, edge: &str, origin: &str, worker_dir: &Path) -> Result<(), String> {
    // Warm up: the isolate is created on the first request.
    let warm = download(&format!("{edge}/api/blob/1000?seed=9&cc=no-store"), 9, u64::MAX)?;
    if warm.status != 200 || warm.received != 1000 || !warm.exact {
        return Err(format!("warm-up through the edge failed: status {}, {} bytes", warm.status, warm.received));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = rss(pid).ok_or("cannot read workerd's RSS")?;
    let sampler = Sampler::start(pid);

    let n = opts.download;
    eprintln!("bench memory: GET {} storable chunked response through the edge...", mb(n));
    let path = format!("/api/blob/{n}?seed=1");
    let down = download(&format!("{edge}{path}"), 1, u64::MAX)?;
    let down_peak = sampler.take_peak().max(before);
    let direct = download(&format!("{origin}{path}"), 1, 1)?;
    // Larger than max_entry_bytes: must not have been stored.
    let again = download(&format!("{edge}{path}"), 1, 1)?;

    std::thread::sleep(Duration::from_millis(300));
    let before_up = rss(pid).unwrap_or(0);
    sampler.take_peak();
    let u = opts.upload;
    eprintln!("bench memory: POST {} upload through the edge...", mb(u));
    let started = Instant::now();
    let resp = agent()
        .post(&format!("{edge}/api/sink?seed=2"))
        .set("content-length", &u.to_string())
        .set("content-type", "application/octet-stream")
        .send(BlobReader { offset: 0, len: u, seed: 2 });
    let up_time = started.elapsed();
    let up_peak = sampler.take_peak().max(before_up);
    drop(sampler);
    let (up_status, up_json) = match resp {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let text = r.into_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        }
        Err(e) => (0, serde_json::json!({ "error": e.to_string() })),
    };

    let complete = down.status == 200 && down.received == n && down.exact && down.error.is_none();
    let not_stored = !again.cache_status.contains("hit");
    let origin_got = up_json["body_len"].as_u64().unwrap_or(0);
    let up_exact = up_status == 200 && origin_got == u && up_json["pattern_ok"] == true;
    println!("## bench memory (workerd, {})", worker_dir.display());
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| workerd RSS before | {} |", mb(before));
    println!("| download: {} chunked, `public, max-age=300` | status {} |", mb(n), down.status);
    println!("| workerd peak RSS during the download | {} (+{}) |", mb(down_peak), mb(down_peak.saturating_sub(before)));
    println!("| time to first byte, through the edge | {} |", ms(down.first_byte));
    println!("| time to first byte, origin direct | {} |", ms(direct.first_byte));
    println!("| download time | {:.1} s ({:.0} MB/s) |", down.total.as_secs_f64(), down.received as f64 / 1e6 / down.total.as_secs_f64().max(1e-9));
    println!("| bytes received | {} of {} |", down.received, n);
    println!("| complete and byte-exact | {} |", if complete { "yes" } else { "NO" });
    if let Some(e) = &down.error {
        println!("| download error | {e} |");
    }
    println!("| Cache-Status (first / second request) | `{}` / `{}` |", down.cache_status, again.cache_status);
    println!("| not stored (second request not a hit) | {} |", if not_stored { "yes" } else { "NO" });
    println!("| upload: {} with Content-Length | status {up_status} in {:.1} s |", mb(u), up_time.as_secs_f64());
    println!("| workerd peak RSS during the upload | {} (+{}) |", mb(up_peak), mb(up_peak.saturating_sub(before_up)));
    println!("| bytes the origin received | {origin_got} of {u} |");
    println!("| upload byte-exact at the origin | {} |", if up_exact { "yes" } else { "NO" });
    if !complete || !up_exact {
        return Err("bench memory: a body was not delivered complete and byte-exact".into());
    }
    Ok(())
}
