//! `cargo xtask bench cache`: how much origin traffic each cache lets
//! through under a skewed workload, against the ideal, at two client rates.
//!
//! ```text
//! cargo xtask bench cache [--duration SECS] [--rate REQ_PER_S]
//!                         [--systems offload,varnish,nginx,direct] [--keys N]
//!                         [--zipf S] [--seed N] [--concurrency N]
//!                         [--path TEMPLATE] [--ttl SECS]
//!                         [--worker-dir DIR] [--origin-shim PATH] [--no-cache-api]
//! ```
//!
//! Workload: keys `1..=N` (default 10 000) drawn from Zipf(s) (default 0.9)
//! by inverse CDF over a table, Poisson arrivals at a fixed rate
//! (open loop: a request's latency counts from its *scheduled* time, so a
//! slow system is not rewarded with fewer requests), a seeded RNG so every
//! system gets the very same request sequence. Each (system, rate) run
//! starts from a cold cache (the cache process is restarted) and lasts
//! `--duration` seconds (default 60). The rates are `--rate` (default
//! 200 req/s, "1x") and ten times that ("10x"). At most `--concurrency`
//! (default 64) requests are in flight, one keep-alive connection each; a
//! request whose scheduled time is more than 2 s past when a connection
//! frees up is not sent and counted as `shed`.
//!
//! All systems sit in front of the same origin-shim (127.0.0.1:18810,
//! release build), whose `GET /_shim/stats` `total` (reset with
//! `POST /_shim/reset` before each run) is the origin request count.
//!
//! Metrics per system and rate:
//! - origin ÷ bound: origin requests over the lower bound. The bound is
//!   what an ideal cache (no prefetch) needs given the requests actually
//!   sent: per distinct key, walk its request times in order; the first
//!   request fetches and makes the key fresh for TTL seconds; the first
//!   request at or after that expiry fetches again, and so on. The bound
//!   is the number of fetches summed over keys (one per key per TTL window
//!   actually touched, windows anchored at the fetches). 1.00 is perfect.
//! - hit ratio: 1 − origin requests ÷ client requests sent.
//! - client p50 / p99 latency (from the scheduled send time); achieved:
//!   requests sent ÷ time until the last answer (below the rate when the
//!   system falls behind), shed and err (non-2xx or transport errors).
//! - origin growth: origin req/s at 10x ÷ at 1x, beside the same ratio of
//!   the bounds (what a perfect cache would show). Without a cache it is 10.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use offload_e2e::root;

use crate::conformance::{
    build_edge, ensure_ports_free, ensure_proxies, start_edge, start_nginx,
    start_varnish, version_of,
};
use offload_supervise::Supervisor;

pub(crate) const ORIGIN_PORT: u16 = 18810;
pub(crate) const EDGE_PORT: u16 = 18811;
const VARNISH_PORT: u16 = 18812;
const NGINX_PORT: u16 = 18813;

/// The origin path requested for key `{key}`. origin-shim's
/// `/api/items/{id}` answers `max-age=60, stale-while-revalidate=30`; the
/// bench is meant to run at TTL 10 s once the origin can be told so.
const PATH_TEMPLATE: &str = "/api/items/{key}?ttl=10";

/// A request this late when a connection frees up is not sent.
const MAX_LATENESS: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const ALL_SYSTEMS: [&str; 4] = ["direct", "offload", "varnish", "nginx"];

struct Opts {
    duration: Duration,
    rate: f64,
    systems: Vec<String>,
    keys: usize,
    zipf: f64,
    seed: u64,
    concurrency: usize,
    path: String,
    ttl: Option<u64>,
    worker_dir: Option<PathBuf>,
    origin_shim: Option<PathBuf>,
    cache_api: bool,
}

/// `cargo xtask bench <cache|memory|sign>`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum BenchCmd {
    /// Origin traffic each cache lets through under a Zipf workload, against the ideal, at 1x and 10x rate.
    Cache(CacheArgs),
    /// The edge's memory bound and time to first byte with large bodies, under plain workerd.
    Memory(crate::memory::MemoryArgs),
    /// Presigned URLs per second: Offload against the AWS SDK (Node), aws-sigv4 (native) and an aws4fetch Worker (workerd).
    Sign(SignArgs),
}

/// `bench sign`'s flags.
#[derive(clap::Args, Debug)]
pub(crate) struct SignArgs {
    /// Run only these parts, comma-separated: node, native, workerd [default: all three].
    #[arg(long, value_name = "P,P", value_delimiter = ',')]
    pub(crate) only: Vec<crate::deploy::SignPart>,
    /// workerd part: use this Workers build of tests/bench/sign/offload.toml
    /// (index.js, index_bg.wasm) instead of building one.
    #[arg(long, value_name = "DIR")]
    pub(crate) worker_dir: Option<PathBuf>,
}

/// `cargo xtask bench cache`: the flags (see the module's doc).
#[derive(clap::Args, Debug)]
pub(crate) struct CacheArgs {
    /// Seconds per (system, rate) run (at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    duration: f64,
    /// Client requests per second ("1x"; ten times that is also run).
    #[arg(long, value_name = "REQ_PER_S", default_value_t = 200.0)]
    rate: f64,
    /// Systems to measure, in order.
    #[arg(long, value_name = "S,S", value_delimiter = ',', default_values_t = ["offload", "varnish", "nginx"].map(String::from),
          value_parser = clap::builder::PossibleValuesParser::new(ALL_SYSTEMS))]
    systems: Vec<String>,
    /// Distinct keys (1..=N).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    keys: u32,
    /// The Zipf exponent s.
    #[arg(long, value_name = "S", default_value_t = 0.9)]
    zipf: f64,
    /// Seed of the request sequence (the same for every system).
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Requests in flight at most (1 to 1024).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Origin path per key: starts with / and contains {key}.
    #[arg(long, value_name = "TEMPLATE", default_value = PATH_TEMPLATE, value_parser = path_template)]
    path: String,
    /// TTL of the lower bound in seconds [default: the origin's max-age].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    ttl: Option<u64>,
    #[command(flatten)]
    systems_under_test: BenchBinaries,
}

/// Where a benchmark's edge and origin come from (`bench cache`, `bench memory`).
#[derive(clap::Args, Debug)]
pub(crate) struct BenchBinaries {
    /// A worker-build output to use instead of building the edge.
    #[arg(long, value_name = "DIR")]
    pub(crate) worker_dir: Option<PathBuf>,
    /// An origin-shim binary to use instead of building it.
    #[arg(long, value_name = "PATH")]
    pub(crate) origin_shim: Option<PathBuf>,
    /// The edge without caches.default (its in-isolate cache alone).
    #[arg(long)]
    pub(crate) no_cache_api: bool,
}

fn path_template(p: &str) -> Result<String, String> {
    if p.starts_with('/') && p.contains("{key}") {
        Ok(p.to_owned())
    } else {
        Err(format!("{p:?} must start with / and contain {{key}}"))
    }
}

fn parse_opts(a: &CacheArgs) -> Opts {
    Opts {
        duration: Duration::from_secs_f64(if a.duration.is_finite() { a.duration.max(1.0) } else { 60.0 }),
        rate: a.rate.max(1.0),
        systems: a.systems.clone(),
        keys: a.keys as usize,
        zipf: a.zipf,
        seed: a.seed,
        concurrency: usize::from(a.concurrency),
        path: a.path.clone(),
        ttl: a.ttl,
        worker_dir: a.systems_under_test.worker_dir.clone(),
        origin_shim: a.systems_under_test.origin_shim.clone(),
        cache_api: !a.systems_under_test.no_cache_api,
    }
}

// ------------------------------------------------------------- workload ----

/// SplitMix64: small, seeded, good enough for sampling.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s) over ranks 1..=n by inverse CDF: a table of cumulative weights
/// and a binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let cdf = (1..=n)
            .map(|k| {
                acc += (k as f64).powf(-s);
                acc
            })
            .collect();
        Zipf { cdf }
    }
    /// A rank in 1..=n.
    fn sample(&self, rng: &mut Rng) -> u32 {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let u = rng.next_f64() * total;
        let i = self
            .cdf
            .partition_point(|c| *c <= u)
            .min(self.cdf.len() - 1);
        u32::try_from(i + 1).unwrap_or(u32::MAX)
    }
}

/// The scheduled requests of one run: (offset from start in µs, key).
fn schedule(opts: &Opts, rate: f64, seed: u64) -> Vec<(u64, u32)> {
    let zipf = Zipf::new(opts.keys, opts.zipf);
    let mut rng = Rng(seed);
    let end = opts.duration.as_secs_f64();
    let mut t = 0.0;
    let mut out = Vec::with_capacity((rate * end * 1.1) as usize);
    loop {
        // Exponential inter-arrival times: Poisson arrivals at `rate`.
        t += -(1.0 - rng.next_f64()).ln() / rate;
        if t >= end {
            break;
        }
        out.push(((t * 1e6) as u64, zipf.sample(&mut rng)));
    }
    out
}

// -------------------------------------------------------- load generator ----

#[derive(Clone, Copy)]
struct Sample {
    key: u32,
    /// When it was actually sent, µs from the start.
    sent_us: u64,
    /// From the scheduled time to the end of the body, µs.
    latency_us: u64,
    /// HTTP status, or 0 for a transport error.
    status: u16,
}

struct RunResult {
    samples: Vec<Sample>,
    shed: usize,
    elapsed: Duration,
}

/// Open-loop load: `concurrency` threads take the next scheduled request,
/// sleep until its time and send it on their own keep-alive connection.
fn generate(base: &str, path: &str, plan: &Arc<Vec<(u64, u32)>>, concurrency: usize) -> RunResult {
    let next = Arc::new(AtomicUsize::new(0));
    let shed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (plan, next, shed) = (Arc::clone(plan), Arc::clone(&next), Arc::clone(&shed));
            let (base, path) = (base.to_owned(), path.to_owned());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(REQUEST_TIMEOUT)
                    .redirects(0)
                    .max_idle_connections_per_host(1)
                    .build();
                let mut samples = Vec::new();
                let mut body = Vec::with_capacity(1024);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(at_us, key)) = plan.get(i) else {
                        break;
                    };
                    let due = start + Duration::from_micros(at_us);
                    let now = Instant::now();
                    if now < due {
                        std::thread::sleep(due - now);
                    } else if now - due > MAX_LATENESS {
                        shed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let sent_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let url = format!("{base}{}", path.replace("{key}", &key.to_string()));
                    let status = match agent.get(&url).call() {
                        Ok(r) | Err(ureq::Error::Status(_, r)) => {
                            let status = r.status();
                            body.clear();
                            match r.into_reader().read_to_end(&mut body) {
                                Ok(_) => status,
                                Err(_) => 0,
                            }
                        }
                        Err(_) => 0,
                    };
                    let latency_us = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                    samples.push(Sample {
                        key,
                        sent_us,
                        latency_us,
                        status,
                    });
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for h in handles {
        samples.extend(h.join().unwrap_or_default());
    }
    RunResult {
        samples,
        shed: shed.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

/// The lower bound on origin fetches (see the module docs).
fn lower_bound(samples: &[Sample], ttl_us: u64) -> u64 {
    let mut by_key: Vec<(u32, u64)> = samples.iter().map(|s| (s.key, s.sent_us)).collect();
    by_key.sort_unstable();
    let mut fetches = 0;
    let mut current: Option<(u32, u64)> = None; // (key, fresh until)
    for (key, t) in by_key {
        match current {
            Some((k, until)) if k == key && t < until => {}
            _ => {
                fetches += 1;
                current = Some((key, t + ttl_us));
            }
        }
    }
    fetches
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

// ----------------------------------------------------------------- origin ----

/// Status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

fn http(method: &str, url: &str) -> Result<Answer, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let resp = match agent.request(method, url).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let body = resp
        .into_string()
        .map_err(|e| format!("{url}: body: {e}"))?;
    Ok((status, headers, body))
}

fn origin_total(origin: &str) -> Result<u64, String> {
    let (status, _, body) = http("GET", &format!("{origin}/_shim/stats"))?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("/_shim/stats: {e}: {body}"))?;
    match (status, v["total"].as_u64()) {
        (200, Some(n)) => Ok(n),
        _ => Err(format!("/_shim/stats answered {status}: {body}")),
    }
}

fn origin_reset(origin: &str) -> Result<(), String> {
    match http("POST", &format!("{origin}/_shim/reset"))? {
        (200, _, _) => Ok(()),
        (s, _, b) => Err(format!("/_shim/reset answered {s}: {b}")),
    }
}

/// `max-age` (or `s-maxage`) of the origin's answer for a key.
fn origin_ttl(origin: &str, path: &str) -> Result<u64, String> {
    let url = format!("{origin}{}", path.replace("{key}", "ttl-probe"));
    let (status, headers, _) = http("GET", &url)?;
    let cc = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let directive = |name: &str| {
        cc.split(',').find_map(|d| {
            d.trim()
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix('='))
                .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
        })
    };
    match directive("s-maxage").or_else(|| directive("max-age")) {
        Some(ttl) if status == 200 && ttl > 0 => Ok(ttl),
        _ => Err(format!("{url} answered {status} with Cache-Control {cc:?}: no max-age to take the TTL from (use --ttl)")),
    }
}

// ------------------------------------------------------------------- main ----

struct Row {
    system: String,
    label: String,
    rate: f64,
    sent: usize,
    shed: usize,
    errors: usize,
    achieved: f64,
    origin: u64,
    bound: u64,
    p50: f64,
    p99: f64,
}

pub(crate) fn origin_shim_binary(root: &Path, given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p.to_owned());
    }
    eprintln!("building origin-shim (cargo build --release -p origin-shim)...");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    crate::run(
        Command::new(cargo)
            .args(["build", "--quiet", "--release", "-p", "origin-shim"])
            .current_dir(root),
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release/origin-shim"))
}

pub(crate) fn main(which: BenchCmd) -> Result<(), String> {
    let root = root();
    let opts = match which {
        BenchCmd::Sign(args) => return crate::deploy::bench_sign(&root, &args.only, args.worker_dir.as_deref()),
        BenchCmd::Memory(args) => return crate::memory::main(&args),
        BenchCmd::Cache(args) => parse_opts(&args),
    };
    let wants = |s: &str| opts.systems.iter().any(|x| x == s);
    ensure_ports_free(&[ORIGIN_PORT, EDGE_PORT, VARNISH_PORT, NGINX_PORT])?;
    let state = root.join(".offload/bench");
    let shim = origin_shim_binary(&root, opts.origin_shim.as_deref())?;
    let worker_dir = if !wants("offload") {
        None
    } else if let Some(dir) = &opts.worker_dir {
        Some(dir.clone())
    } else {
        crate::setup::ensure(&root)?;
        let out = state.join("worker");
        build_edge(&root, &root.join("tests/bench/offload.bench.toml"), &out)?;
        Some(out)
    };
    let (have_varnish, have_nginx) = ensure_proxies(wants("varnish"), wants("nginx"));

    let mut procs = Supervisor::new(state.join("logs"))?;
    let mut cmd = Command::new(&shim);
    cmd.args([
        "origin",
        "--region",
        "bench",
        "--listen",
        &format!("127.0.0.1:{ORIGIN_PORT}"),
        "--no-access-log",
    ]);
    procs.spawn("origin", cmd)?;
    procs.wait_tcp("origin", ORIGIN_PORT, Duration::from_secs(30))?;
    let origin = format!("http://127.0.0.1:{ORIGIN_PORT}");
    let ttl = match opts.ttl {
        Some(t) => t,
        None => origin_ttl(&origin, &opts.path)?,
    };
    let rates = [opts.rate, opts.rate * 10.0];
    eprintln!(
        "bench cache: Zipf(s={}) over {} keys, GET {}, TTL {ttl} s, Poisson arrivals at {} and {} req/s, {:.0} s per run, \
         at most {} in flight",
        opts.zipf,
        opts.keys,
        opts.path,
        rates[0],
        rates[1],
        opts.duration.as_secs_f64(),
        opts.concurrency
    );

    let mut rows: Vec<Row> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for system in &opts.systems {
        for (ri, &rate) in rates.iter().enumerate() {
            let run_dir = state.join(format!("run-{system}"));
            // A fresh process per run: every run starts with a cold cache.
            let (label, port, started): (String, u16, Result<(), String>) = match system.as_str() {
                "direct" => ("origin directly (no cache)".into(), ORIGIN_PORT, Ok(())),
                "offload" => {
                    let Some(dir) = &worker_dir else { continue };
                    let r = start_edge(
                        &mut procs,
                        "offload",
                        &root,
                        dir,
                        &run_dir,
                        EDGE_PORT,
                        opts.cache_api,
                    );
                    let label = if opts.cache_api {
                        "Offload edge (plain workerd)"
                    } else {
                        "Offload edge (no Cache API)"
                    };
                    (label.into(), EDGE_PORT, r)
                }
                "varnish" if have_varnish => {
                    let vcl = root.join("tests/bench/varnish.vcl");
                    let r = start_varnish(
                        &mut procs,
                        "varnish",
                        &vcl,
                        &run_dir,
                        VARNISH_PORT,
                        &["-s", "malloc,256M"],
                    );
                    (
                        format!("Varnish {}", version_of("varnish")),
                        VARNISH_PORT,
                        r,
                    )
                }
                "nginx" if have_nginx => {
                    let r = start_nginx(
                        &mut procs,
                        "nginx",
                        &root.join("tests/bench/nginx.conf"),
                        &run_dir,
                        NGINX_PORT,
                    );
                    (format!("nginx {}", version_of("nginx")), NGINX_PORT, r)
                }
                other => {
                    if ri == 0 {
                        problems.push(format!("{other}: not installed, skipped"));
                    }
                    continue;
                }
            };
            if let Err(e) = started {
                problems.push(format!("{system}: did not start: {e}"));
                procs.stop(system);
                continue;
            }
            let base = format!("http://127.0.0.1:{port}");
            let result = (|| -> Result<Row, String> {
                // The system answers through to the origin before the clock starts.
                let probe = format!("{base}{}", opts.path.replace("{key}", "warmup"));
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match http("GET", &probe) {
                        Ok((200, _, _)) => break,
                        r if Instant::now() > deadline => {
                            return Err(format!("{probe} did not answer 200: {r:?}"))
                        }
                        _ => std::thread::sleep(Duration::from_millis(200)),
                    }
                }
                origin_reset(&origin)?;
                let plan = Arc::new(schedule(
                    &opts,
                    rate,
                    opts.seed ^ (rate as u64).rotate_left(32),
                ));
                eprintln!("  {label}: {} requests at {rate} req/s...", plan.len());
                let run = generate(&base, &opts.path, &plan, opts.concurrency);
                let origin_requests = origin_total(&origin)?;
                let mut lat: Vec<u64> = run.samples.iter().map(|s| s.latency_us).collect();
                lat.sort_unstable();
                let errors = run
                    .samples
                    .iter()
                    .filter(|s| !(200..300).contains(&s.status))
                    .count();
                Ok(Row {
                    system: system.clone(),
                    label: label.clone(),
                    rate,
                    sent: run.samples.len(),
                    shed: run.shed,
                    errors,
                    achieved: run.samples.len() as f64 / run.elapsed.as_secs_f64().max(1e-9),
                    origin: origin_requests,
                    bound: lower_bound(&run.samples, ttl * 1_000_000),
                    p50: percentile(&lat, 0.50),
                    p99: percentile(&lat, 0.99),
                })
            })();
            match result {
                Ok(r) => rows.push(r),
                Err(e) => problems.push(format!("{system} at {rate} req/s: {e}")),
            }
            if system != "direct" {
                if let Err(e) = procs.check_alive(system) {
                    problems.push(format!("{system} died during the run: {e}"));
                }
                procs.stop(system);
            }
        }
    }
    drop(procs);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nbench cache: Zipf(s={}) over {} keys, GET {}, TTL {ttl} s, {:.0} s per run, cold cache per run, \
         open-loop Poisson arrivals, <= {} in flight\n",
        opts.zipf,
        opts.keys,
        opts.path,
        opts.duration.as_secs_f64(),
        opts.concurrency
    );
    let _ = writeln!(
        out,
        "  {:<28} {:>7} {:>7} {:>5} {:>5} {:>8} {:>7} {:>7} {:>8} {:>6} {:>8} {:>8}",
        "system",
        "rate",
        "sent",
        "shed",
        "err",
        "achieved",
        "origin",
        "bound",
        "orig/bnd",
        "hit",
        "p50 ms",
        "p99 ms"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "  {:<28} {:>7.0} {:>7} {:>5} {:>5} {:>8.1} {:>7} {:>7} {:>8.2} {:>5.1}% {:>8.2} {:>8.2}",
            r.label,
            r.rate,
            r.sent,
            r.shed,
            r.errors,
            r.achieved,
            r.origin,
            r.bound,
            r.origin as f64 / r.bound.max(1) as f64,
            100.0 * (1.0 - r.origin as f64 / r.sent.max(1) as f64),
            r.p50,
            r.p99
        );
    }
    let _ = writeln!(out, "\n  origin growth from 1x to 10x client rate (origin req/s at 10x / at 1x; a perfect cache shows the bound's ratio, no cache 10):");
    for system in &opts.systems {
        let of = |rate: f64| rows.iter().find(|r| &r.system == system && r.rate == rate);
        if let (Some(a), Some(b)) = (of(rates[0]), of(rates[1])) {
            // Per second of the schedule (the same span at both rates).
            let per_s = |n: u64| n as f64 / opts.duration.as_secs_f64();
            let _ = writeln!(
                out,
                "  {:<28} {:>6.2}   (bound {:.2}; origin {:.1} -> {:.1} req/s)",
                a.label,
                per_s(b.origin) / per_s(a.origin).max(1e-9),
                per_s(b.bound) / per_s(a.bound).max(1e-9),
                per_s(a.origin),
                per_s(b.origin)
            );
        }
    }
    print!("{out}");
    let _ = std::fs::write(state.join("cache.txt"), &out);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "bench harness problems:\n  {}",
            problems.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: u32, sent_us: u64) -> Sample {
        Sample {
            key,
            sent_us,
            latency_us: 0,
            status: 200,
        }
    }

    #[test]
    fn lower_bound_counts_one_fetch_per_key_per_touched_window() {
        let s = 1_000_000;
        let samples = [
            sample(1, 0),
            sample(1, 5 * s),
            sample(1, 10 * s), // window 1 ends at 10 s: new fetch
            sample(1, 19 * s), // inside [10, 20)
            sample(2, 3 * s),  // another key: its own fetch
            sample(1, 45 * s), // long gap: one fetch, not three
        ];
        assert_eq!(lower_bound(&samples, 10 * s), 4);
        assert_eq!(lower_bound(&[], 10 * s), 0);
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(10_000, 0.9);
        let mut rng = Rng(7);
        let draws: Vec<u32> = (0..100_000).map(|_| z.sample(&mut rng)).collect();
        assert!(draws.iter().all(|k| (1..=10_000).contains(k)));
        let top = draws.iter().filter(|k| **k == 1).count() as f64 / draws.len() as f64;
        // P(1) = 1 / H(10000, 0.9) ≈ 0.0637.
        assert!((0.058..0.069).contains(&top), "P(rank 1) = {top}");
    }

    #[test]
    fn schedule_is_deterministic_and_at_rate() -> Result<(), String> {
        use clap::Parser as _;
        let cli = crate::Cli::try_parse_from(["xtask", "bench", "cache", "--duration", "10"]).map_err(|e| e.to_string())?;
        let crate::Cmd::Bench { which: BenchCmd::Cache(args) } = cli.command else { return Err("not bench cache".into()) };
        let opts = parse_opts(&args);
        let a = schedule(&opts, 200.0, 1);
        assert_eq!(a, schedule(&opts, 200.0, 1));
        assert!((1800..2200).contains(&a.len()), "{} requests", a.len());
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        Ok(())
    }
}
