//! `cargo xtask bench cache`: how much origin traffic each cache lets
//! through under a skewed workload, against the ideal, at two client rates,
//! and the highest rate each one holds.
//!
//! ```text
//! cargo xtask bench cache [--duration SECS] [--rate REQ_PER_S]
//!                         [--systems offload,caches-default,varnish,nginx,direct]
//!                         [--keys N] [--zipf S] [--seed N] [--concurrency N]
//!                         [--path TEMPLATE] [--ttl SECS]
//!                         [--no-search | --search-only] [--max-rate REQ_PER_S]
//!                         [--search-duration SECS] [--search-budget SECS]
//!                         [--worker-dir DIR] [--origin-shim PATH] [--no-cache-api]
//! ```
//!
//! Systems: `offload` (the Offload edge under plain `workerd serve`),
//! `caches-default` (the JS Worker tests/bench/workers/cache-default.js,
//! `caches.default` in front of the origin, in the same workerd set-up:
//! same config, miniflare's Cache API; it tells Offload's own cost apart
//! from the platform cache's), `varnish`, `nginx`, and `direct` (the origin
//! alone, no cache).
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
//!
//! Then (unless `--no-search`; `--search-only` skips the 1x/10x runs) the
//! highest offered rate each system holds:
//! short cold-cache runs (`--search-duration`, default 6 s) at rates
//! doubling from `--rate` up to `--max-rate`, then bisecting between the
//! highest rate held and the lowest failed until they are within 10 %, at
//! most `--search-budget` seconds (default 80) per system. A rate is held
//! when no request is shed, none fails, and the achieved rate is at least
//! 0.98 × the offered one (the requests the run's schedule holds ÷ its
//! duration). Printed per system with p99 and origin ÷ bound at that rate,
//! and the ratio the hot-path goal uses: Offload's highest held rate ÷ the
//! `caches.default` Worker's.

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
    start_varnish, start_workerd, version_of, EdgeWorker,
};
use offload_supervise::Supervisor;

pub(crate) const ORIGIN_PORT: u16 = 18810;
pub(crate) const EDGE_PORT: u16 = 18811;
const VARNISH_PORT: u16 = 18812;
const NGINX_PORT: u16 = 18813;
const CACHES_DEFAULT_PORT: u16 = 18814;

/// The origin path requested for key `{key}`. origin-shim's
/// `/api/items/{id}` answers `max-age=60, stale-while-revalidate=30`; the
/// bench is meant to run at TTL 10 s once the origin can be told so.
const PATH_TEMPLATE: &str = "/api/items/{key}?ttl=10";

/// A request this late when a connection frees up is not sent.
const MAX_LATENESS: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const ALL_SYSTEMS: [&str; 5] = ["direct", "offload", "caches-default", "varnish", "nginx"];

/// A rate is held when the achieved rate is at least this share of the offered one.
const HOLD_ACHIEVED: f64 = 0.98;
/// The rate search stops when the lowest failed rate is within this share
/// above the highest held one.
const SEARCH_RESOLUTION: f64 = 0.10;
/// The rate search does not go below this (req/s).
const MIN_RATE: f64 = 1.0;

struct Opts {
    duration: Duration,
    /// The 1x/10x runs.
    fixed: bool,
    search: Option<SearchOpts>,
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

/// `cargo xtask bench <cache|edge|memory|sign>`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum BenchCmd {
    /// Origin traffic each cache lets through under a Zipf workload, against the ideal, at 1x and 10x rate.
    Cache(CacheArgs),
    /// Offload's hit, miss and bypass against the floors (do-nothing JS, workers-rs hello world, JS caches.default, JS pass-through) in one workerd; cold start; Wasm size by crate.
    Edge(crate::edge_bench::EdgeArgs),
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
    /// Seconds per (system, rate) run (1 to 86400).
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = run_seconds)]
    duration: f64,
    /// Client requests per second ("1x"; ten times that is also run; 1 to 1000000).
    #[arg(long, value_name = "REQ_PER_S", default_value_t = 200.0, value_parser = req_per_s)]
    rate: f64,
    /// Systems to measure, in order (`caches-default`: the JS Worker with caches.default; `direct`: no cache).
    #[arg(long, value_name = "S,S", value_delimiter = ',', default_values_t = ["offload", "caches-default", "varnish", "nginx"].map(String::from),
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
    /// Skip the search for the highest rate each system holds.
    #[arg(long)]
    no_search: bool,
    /// Only the rate search: skip the 1x/10x runs.
    #[arg(long, conflicts_with = "no_search")]
    search_only: bool,
    /// The rate search goes no higher than this (req/s; 1 to 1000000).
    #[arg(long, value_name = "REQ_PER_S", default_value_t = 20_000.0, value_parser = req_per_s)]
    max_rate: f64,
    /// Seconds per run of the rate search (1 to 86400).
    #[arg(long, value_name = "SECS", default_value_t = 6.0, value_parser = run_seconds)]
    search_duration: f64,
    /// Seconds the rate search may take per system, starting and stopping included
    /// (it always makes at least one run; 1 to 86400).
    #[arg(long, value_name = "SECS", default_value_t = 80.0, value_parser = run_seconds)]
    search_budget: f64,
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

/// A number flag within `lo..=hi`.
fn number_in(v: &str, lo: f64, hi: f64) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        Ok(_) => Err(format!("{v:?} is out of range ({lo} to {hi})")),
        Err(e) => Err(format!("{v:?} is not a number: {e}")),
    }
}

/// Seconds: 1 to a day.
fn run_seconds(v: &str) -> Result<f64, String> {
    number_in(v, 1.0, 86_400.0)
}

/// Requests per second: `MIN_RATE` to a million.
fn req_per_s(v: &str) -> Result<f64, String> {
    number_in(v, MIN_RATE, 1e6)
}

fn parse_opts(a: &CacheArgs) -> Opts {
    Opts {
        duration: Duration::from_secs_f64(a.duration),
        fixed: !a.search_only,
        search: (!a.no_search).then(|| SearchOpts {
            limits: SearchLimits {
                base: a.rate,
                max: a.max_rate,
                budget: Duration::from_secs_f64(a.search_budget),
            },
            duration: Duration::from_secs_f64(a.search_duration),
        }),
        rate: a.rate,
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

/// The scheduled requests of a run of `duration`: (offset from start in µs, key).
fn schedule(opts: &Opts, rate: f64, duration: Duration, seed: u64) -> Vec<(u64, u32)> {
    let zipf = Zipf::new(opts.keys, opts.zipf);
    let mut rng = Rng(seed);
    let end = duration.as_secs_f64();
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

// ------------------------------------------------------------ rate search ----

/// The rate search's settings.
struct SearchOpts {
    limits: SearchLimits,
    /// Per run.
    duration: Duration,
}

/// Where the rate search starts and what bounds it.
#[derive(Clone, Copy, Debug)]
struct SearchLimits {
    /// The first rate tried (req/s).
    base: f64,
    /// No rate above this is tried (req/s).
    max: f64,
    /// Per system, runs and restarts included; the first run always happens.
    budget: Duration,
}

/// One run of the rate search: the offered rate and whether it was held.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Probe {
    rate: f64,
    held: bool,
}

/// Why the rate search stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The lowest failed rate is within `SEARCH_RESOLUTION` of the highest held.
    Converged,
    /// `--max-rate` is held: the system may hold more.
    MaxRate,
    /// The budget is spent before the bracket converged.
    Budget,
    /// Not even `MIN_RATE` is held.
    Floor,
}

impl Stop {
    fn describe(self) -> &'static str {
        match self {
            Stop::Converged => "converged",
            Stop::MaxRate => "held --max-rate",
            Stop::Budget => "budget spent",
            Stop::Floor => "nothing held",
        }
    }
}

/// What the rate search does next.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Probe(f64),
    Done(Stop),
}

/// Whether a run held its offered rate: nothing shed, no errors, and the
/// achieved rate at least `HOLD_ACHIEVED` × the rate its schedule offered
/// (its requests ÷ its duration, not the nominal rate, which a Poisson
/// schedule misses by a few per cent in a short run).
fn holds(r: &Row) -> bool {
    let offered = r.planned as f64 / r.duration.as_secs_f64().max(1e-9);
    r.shed == 0 && r.errors == 0 && r.achieved >= HOLD_ACHIEVED * offered
}

/// The bracket of the runs so far: the highest rate held, and the lowest
/// failed rate above it (a failure below a held rate is taken as noise:
/// holding is assumed to be monotonic in the rate).
fn bracket(probes: &[Probe]) -> (Option<f64>, Option<f64>) {
    let held = probes.iter().filter(|p| p.held).map(|p| p.rate).fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))));
    let failed = probes
        .iter()
        .filter(|p| !p.held && held.is_none_or(|h| p.rate > h))
        .map(|p| p.rate)
        .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.min(r))));
    (held, failed)
}

/// The rate search's next step given its runs so far, the time `spent` on
/// them and what one run costs (`run_cost`, the slowest so far): doubling
/// from `base` while rates are held (up to `max`), halving while none is,
/// then bisecting between the highest held and the lowest failed rate
/// until they are within `SEARCH_RESOLUTION`; no run that would overrun
/// the budget. Rates are whole req/s.
fn next_step(probes: &[Probe], limits: &SearchLimits, spent: Duration, run_cost: Duration) -> Step {
    let max = limits.max.max(MIN_RATE).round();
    if probes.is_empty() {
        return Step::Probe(limits.base.round().clamp(MIN_RATE, max));
    }
    let next = match bracket(probes) {
        (Some(held), None) if held >= max => return Step::Done(Stop::MaxRate),
        (Some(held), None) => (held * 2.0).min(max),
        (None, Some(failed)) if failed <= MIN_RATE => return Step::Done(Stop::Floor),
        (None, Some(failed)) => (failed / 2.0).max(MIN_RATE),
        (Some(held), Some(failed)) => {
            if failed <= held * (1.0 + SEARCH_RESOLUTION) {
                return Step::Done(Stop::Converged);
            }
            (held + failed) / 2.0
        }
        // Unreachable with at least one run, which either held or failed.
        (None, None) => return Step::Done(Stop::Floor),
    }
    .round();
    if probes.iter().any(|p| p.rate == next) {
        // Rounding to whole req/s met a rate already run: nothing finer to try.
        return Step::Done(Stop::Converged);
    }
    if spent + run_cost > limits.budget {
        return Step::Done(Stop::Budget);
    }
    Step::Probe(next)
}

/// The outcome of one system's rate search.
struct Search {
    system: String,
    label: String,
    /// The run at the highest rate held.
    held: Option<Row>,
    /// The lowest rate failed above it.
    failed: Option<f64>,
    stop: Stop,
    runs: usize,
    spent: Duration,
}

// ----------------------------------------------------------------- origin ----

/// Status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// One request (10 s timeout, no redirects followed): status, headers, body.
pub(crate) fn http(method: &str, url: &str) -> Result<Answer, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .redirects(0)
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

/// The bench origin's request count (`/_shim/stats` `total`).
pub(crate) fn origin_total(origin: &str) -> Result<u64, String> {
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
    duration: Duration,
    /// Requests in the run's schedule (sent + shed).
    planned: usize,
    sent: usize,
    shed: usize,
    errors: usize,
    achieved: f64,
    origin: u64,
    bound: u64,
    p50: f64,
    p99: f64,
}

impl Row {
    fn origin_over_bound(&self) -> f64 {
        self.origin as f64 / self.bound.max(1) as f64
    }
}

/// The benches' origin: origin-shim `shim` as region "bench" on
/// 127.0.0.1:[`ORIGIN_PORT`], no access log; its base URL once it listens.
pub(crate) fn start_origin(procs: &mut Supervisor, shim: &Path) -> Result<String, String> {
    let mut cmd = Command::new(shim);
    cmd.args(["origin", "--region", "bench", "--listen", &format!("127.0.0.1:{ORIGIN_PORT}"), "--no-access-log"]);
    procs.spawn("origin", cmd)?;
    procs.wait_tcp("origin", ORIGIN_PORT, Duration::from_secs(30))?;
    Ok(format!("http://127.0.0.1:{ORIGIN_PORT}"))
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

/// How the systems under test are started and reached.
struct Systems<'a> {
    root: &'a Path,
    state: &'a Path,
    origin: &'a str,
    worker_dir: Option<&'a Path>,
    cache_api: bool,
    have_varnish: bool,
    have_nginx: bool,
}

impl Systems<'_> {
    /// The system's name in the tables, or None when it cannot run here.
    fn label(&self, system: &str) -> Option<String> {
        match system {
            "direct" => Some("origin directly (no cache)".into()),
            "offload" if self.worker_dir.is_some() => Some(
                if self.cache_api { "Offload edge (plain workerd)" } else { "Offload edge (no Cache API)" }.into(),
            ),
            "caches-default" => Some("JS Worker + caches.default".into()),
            "varnish" if self.have_varnish => Some(format!("Varnish {}", version_of("varnish"))),
            "nginx" if self.have_nginx => Some(format!("nginx {}", version_of("nginx"))),
            _ => None,
        }
    }

    /// Starts a fresh process of `system` (a cold cache) and returns its port.
    fn start(&self, procs: &mut Supervisor, system: &str) -> Result<u16, String> {
        let run_dir = self.state.join(format!("run-{system}"));
        match system {
            "direct" => Ok(ORIGIN_PORT),
            "offload" => {
                let dir = self.worker_dir.ok_or("no Workers build")?;
                start_edge(procs, system, self.root, dir, &run_dir, EDGE_PORT, self.cache_api)?;
                Ok(EDGE_PORT)
            }
            "caches-default" => {
                let worker = EdgeWorker::cache_default_js(self.root, self.origin);
                // The Worker is nothing without its Cache API: --no-cache-api is Offload's alone.
                start_workerd(procs, system, self.root, &worker, &run_dir, CACHES_DEFAULT_PORT, true)?;
                Ok(CACHES_DEFAULT_PORT)
            }
            "varnish" => {
                let vcl = self.root.join("tests/bench/varnish.vcl");
                start_varnish(procs, system, &vcl, &run_dir, VARNISH_PORT, &["-s", "malloc,256M"])?;
                Ok(VARNISH_PORT)
            }
            "nginx" => {
                start_nginx(procs, system, &self.root.join("tests/bench/nginx.conf"), &run_dir, NGINX_PORT)?;
                Ok(NGINX_PORT)
            }
            other => Err(format!("unknown system {other:?}")),
        }
    }
}

/// One run: `system` started cold, `rate` req/s for `duration`, stopped.
fn measure(
    procs: &mut Supervisor,
    systems: &Systems<'_>,
    opts: &Opts,
    ttl: u64,
    (system, label): (&str, &str),
    rate: f64,
    duration: Duration,
) -> Result<Row, String> {
    let result = systems.start(procs, system).and_then(|port| {
        let base = format!("http://127.0.0.1:{port}");
        // The system answers through to the origin before the clock starts.
        let probe = format!("{base}{}", opts.path.replace("{key}", "warmup"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http("GET", &probe) {
                Ok((200, _, _)) => break,
                r if Instant::now() > deadline => return Err(format!("{probe} did not answer 200: {r:?}")),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        origin_reset(systems.origin)?;
        let plan = Arc::new(schedule(opts, rate, duration, opts.seed ^ (rate as u64).rotate_left(32)));
        eprintln!("  {label}: {} requests at {rate} req/s for {:.0} s...", plan.len(), duration.as_secs_f64());
        let run = generate(&base, &opts.path, &plan, opts.concurrency);
        let origin_requests = origin_total(systems.origin)?;
        let mut lat: Vec<u64> = run.samples.iter().map(|s| s.latency_us).collect();
        lat.sort_unstable();
        let errors = run.samples.iter().filter(|s| !(200..300).contains(&s.status)).count();
        Ok(Row {
            system: system.to_owned(),
            label: label.to_owned(),
            rate,
            duration,
            planned: plan.len(),
            sent: run.samples.len(),
            shed: run.shed,
            errors,
            achieved: run.samples.len() as f64 / run.elapsed.as_secs_f64().max(1e-9),
            origin: origin_requests,
            bound: lower_bound(&run.samples, ttl * 1_000_000),
            p50: percentile(&lat, 0.50),
            p99: percentile(&lat, 0.99),
        })
    });
    if system == "direct" {
        return result;
    }
    let alive = procs.check_alive(system);
    procs.stop(system);
    let row = result.map_err(|e| format!("{system} at {rate} req/s: {e}"))?;
    alive.map_err(|e| format!("{system} died during the run at {rate} req/s: {e}"))?;
    Ok(row)
}

/// The highest rate `system` holds (see `next_step`).
fn search(
    procs: &mut Supervisor,
    systems: &Systems<'_>,
    opts: &Opts,
    search: &SearchOpts,
    ttl: u64,
    (system, label): (&str, &str),
) -> Result<Search, String> {
    let start = Instant::now();
    let mut probes: Vec<Probe> = Vec::new();
    let mut held: Option<Row> = None;
    let mut run_cost = Duration::ZERO;
    let stop = loop {
        let rate = match next_step(&probes, &search.limits, start.elapsed(), run_cost) {
            Step::Done(stop) => break stop,
            Step::Probe(rate) => rate,
        };
        let t = Instant::now();
        let row = measure(procs, systems, opts, ttl, (system, label), rate, search.duration)?;
        run_cost = run_cost.max(t.elapsed());
        let ok = holds(&row);
        eprintln!(
            "    {} (achieved {:.1} req/s, shed {}, err {}, p99 {:.2} ms)",
            if ok { "held" } else { "not held" },
            row.achieved,
            row.shed,
            row.errors,
            row.p99
        );
        probes.push(Probe { rate, held: ok });
        if ok && held.as_ref().is_none_or(|h| rate > h.rate) {
            held = Some(row);
        }
    };
    Ok(Search {
        system: system.to_owned(),
        label: label.to_owned(),
        held,
        failed: bracket(&probes).1,
        stop,
        runs: probes.len(),
        spent: start.elapsed(),
    })
}

pub(crate) fn main(which: BenchCmd) -> Result<(), String> {
    let root = root();
    let opts = match which {
        BenchCmd::Sign(args) => return crate::deploy::bench_sign(&root, &args.only, args.worker_dir.as_deref()),
        BenchCmd::Memory(args) => return crate::memory::main(&args),
        BenchCmd::Edge(args) => return crate::edge_bench::main(&args),
        BenchCmd::Cache(args) => parse_opts(&args),
    };
    let wants = |s: &str| opts.systems.iter().any(|x| x == s);
    ensure_ports_free(&[ORIGIN_PORT, EDGE_PORT, VARNISH_PORT, NGINX_PORT, CACHES_DEFAULT_PORT])?;
    let state = root.join(".offload/bench");
    let shim = origin_shim_binary(&root, opts.origin_shim.as_deref())?;
    // The tools that build the edge; workerd and miniflare's Cache API
    // workers (node_modules) for the caches.default Worker.
    if (wants("offload") && opts.worker_dir.is_none())
        || (wants("caches-default") && !root.join("node_modules/miniflare").exists())
    {
        crate::setup::ensure(&root)?;
    }
    let worker_dir = if !wants("offload") {
        None
    } else if let Some(dir) = &opts.worker_dir {
        Some(dir.clone())
    } else {
        let out = state.join("worker");
        build_edge(&root, &root.join("tests/bench/offload.bench.toml"), &out)?;
        Some(out)
    };
    let (have_varnish, have_nginx) = ensure_proxies(wants("varnish"), wants("nginx"));

    let mut procs = Supervisor::new(state.join("logs"))?;
    let origin = start_origin(&mut procs, &shim)?;
    let ttl = match opts.ttl {
        Some(t) => t,
        None => origin_ttl(&origin, &opts.path)?,
    };
    let systems = Systems {
        root: &root,
        state: &state,
        origin: &origin,
        worker_dir: worker_dir.as_deref(),
        cache_api: opts.cache_api,
        have_varnish,
        have_nginx,
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
    let mut searches: Vec<Search> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for system in &opts.systems {
        let Some(label) = systems.label(system) else {
            problems.push(format!("{system}: not installed, skipped"));
            continue;
        };
        for &rate in rates.iter().filter(|_| opts.fixed) {
            match measure(&mut procs, &systems, &opts, ttl, (system, &label), rate, opts.duration) {
                Ok(r) => rows.push(r),
                Err(e) => problems.push(e),
            }
        }
        if let Some(search_opts) = &opts.search {
            eprintln!("  {label}: the highest rate held...");
            match search(&mut procs, &systems, &opts, search_opts, ttl, (system, &label)) {
                Ok(s) => searches.push(s),
                Err(e) => problems.push(format!("rate search: {e}")),
            }
        }
    }
    drop(procs);

    let mut out = String::new();
    if opts.fixed {
        out.push_str(&fixed_table(&opts, ttl, &rows, rates));
    } else {
        let _ = writeln!(
            out,
            "\nbench cache: Zipf(s={}) over {} keys, GET {}, TTL {ttl} s, open-loop Poisson arrivals, <= {} in flight",
            opts.zipf, opts.keys, opts.path, opts.concurrency
        );
    }
    if let Some(s) = &opts.search {
        out.push_str(&search_table(&searches, s));
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

/// The 1x/10x table and the origin growth between the two rates.
fn fixed_table(opts: &Opts, ttl: u64, rows: &[Row], rates: [f64; 2]) -> String {
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
    for r in rows {
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
            r.origin_over_bound(),
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
    out
}

/// The rate search's table and the goal's ratio (Offload ÷ caches.default).
fn search_table(searches: &[Search], opts: &SearchOpts) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n  highest offered rate held (shed 0, err 0, achieved >= {HOLD_ACHIEVED} x offered): {:.0} s cold-cache runs, \
         doubling from {:.0} req/s (at most {:.0}) then bisecting to {:.0} %, <= {:.0} s per system",
        opts.duration.as_secs_f64(),
        opts.limits.base,
        opts.limits.max,
        SEARCH_RESOLUTION * 100.0,
        opts.limits.budget.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  {:<28} {:>10} {:>8} {:>8} {:>10} {:>5} {:>6}  stopped",
        "system", "held req/s", "p99 ms", "orig/bnd", "failed at", "runs", "secs"
    );
    for s in searches {
        let (held, p99, ob) = match &s.held {
            Some(r) => (format!("{:.0}", r.rate), format!("{:.2}", r.p99), format!("{:.2}", r.origin_over_bound())),
            None => ("none".into(), "-".into(), "-".into()),
        };
        let failed = s.failed.map_or_else(|| "-".into(), |f| format!("{f:.0}"));
        let _ = writeln!(
            out,
            "  {:<28} {:>10} {:>8} {:>8} {:>10} {:>5} {:>6.0}  {}",
            s.label,
            held,
            p99,
            ob,
            failed,
            s.runs,
            s.spent.as_secs_f64(),
            s.stop.describe()
        );
    }
    let find = |name: &str| searches.iter().find(|s| s.system == name);
    if let (Some(offload), Some(js)) = (find("offload"), find("caches-default")) {
        let _ = writeln!(out, "\n  {}", goal_line(offload, js));
    }
    out
}

/// "Offload's highest held rate ÷ the caches.default Worker's", with
/// Offload's origin ÷ bound there, against the issue's goal (≥ 1.5×, ≤ 1.05);
/// says when a side's figure is only a bound.
fn goal_line(offload: &Search, js: &Search) -> String {
    let (Some(o), Some(j)) = (&offload.held, &js.held) else {
        return "Offload ÷ caches.default Worker, highest held rate: n/a (a side held no rate)".into();
    };
    let mut notes = Vec::new();
    for (s, what) in [(offload, "Offload"), (js, "caches.default Worker")] {
        match s.stop {
            Stop::Converged | Stop::Floor => {}
            Stop::MaxRate => notes.push(format!("{what} held --max-rate: its rate is a lower bound")),
            Stop::Budget => notes.push(format!("{what}'s search ran out of budget before converging")),
        }
    }
    format!(
        "Offload ÷ caches.default Worker, highest held rate: {:.2}x ({:.0} / {:.0} req/s; goal >= 1.5x); \
         Offload's origin ÷ bound there: {:.2} (goal <= 1.05){}",
        o.rate / j.rate,
        o.rate,
        j.rate,
        o.origin_over_bound(),
        if notes.is_empty() { String::new() } else { format!("\n  note: {}", notes.join("; ")) }
    )
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
        let a = schedule(&opts, 200.0, opts.duration, 1);
        assert_eq!(a, schedule(&opts, 200.0, opts.duration, 1));
        assert!((1800..2200).contains(&a.len()), "{} requests", a.len());
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        Ok(())
    }

    fn parse(args: &[&str]) -> Result<Opts, String> {
        use clap::Parser as _;
        let argv = [&["xtask", "bench", "cache"][..], args].concat();
        let cli = crate::Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let crate::Cmd::Bench { which: BenchCmd::Cache(args) } = cli.command else { return Err("not bench cache".into()) };
        Ok(parse_opts(&args))
    }

    #[test]
    fn search_flags_set_the_search_and_bad_numbers_are_refused() -> Result<(), String> {
        let opts = parse(&["--rate", "100", "--max-rate", "5000", "--search-duration", "3", "--search-budget", "40"])?;
        let search = opts.search.ok_or("no search")?;
        assert_eq!((search.limits.base, search.limits.max), (100.0, 5000.0));
        assert_eq!((search.duration, search.limits.budget), (Duration::from_secs(3), Duration::from_secs(40)));
        assert!(parse(&["--no-search"])?.search.is_none());
        assert!(parse(&["--no-search"])?.fixed);
        let only = parse(&["--search-only"])?;
        assert!(only.search.is_some() && !only.fixed);
        assert!(parse(&["--search-only", "--no-search"]).is_err_and(|e| e.contains("cannot be used with")));
        for (flag, bad) in [("--rate", "0"), ("--duration", "nan"), ("--search-budget", "inf"), ("--max-rate", "0.5"), ("--duration", "1e30"), ("--search-duration", "six")] {
            match parse(&[flag, bad]) {
                Err(e) => assert!(e.contains(bad) && e.contains(flag), "{flag} {bad}: {e}"),
                Ok(_) => return Err(format!("{flag} {bad} was accepted")),
            }
        }
        Ok(())
    }

    const LIMITS: SearchLimits = SearchLimits { base: 200.0, max: 20_000.0, budget: Duration::from_secs(80) };
    const COST: Duration = Duration::from_secs(9);

    /// Runs the search against a system that holds every rate up to
    /// `capacity`, returning the rates it tried and why it stopped.
    fn simulate(capacity: f64, limits: &SearchLimits) -> (Vec<f64>, Stop) {
        let mut probes = Vec::new();
        loop {
            let spent = COST * u32::try_from(probes.len()).unwrap_or(u32::MAX);
            match next_step(&probes, limits, spent, if probes.is_empty() { Duration::ZERO } else { COST }) {
                Step::Probe(rate) => probes.push(Probe { rate, held: rate <= capacity }),
                Step::Done(stop) => return (probes.iter().map(|p| p.rate).collect(), stop),
            }
        }
    }

    fn p(rate: f64, held: bool) -> Probe {
        Probe { rate, held }
    }

    #[test]
    fn search_doubles_from_the_base_then_bisects_to_the_resolution() {
        let limits = SearchLimits { budget: Duration::from_secs(1000), ..LIMITS };
        let (rates, stop) = simulate(1000.0, &limits);
        assert_eq!(rates, [200.0, 400.0, 800.0, 1600.0, 1200.0, 1000.0, 1100.0]);
        assert_eq!(stop, Stop::Converged);
        assert_eq!(bracket(&[p(1000.0, true), p(1100.0, false), p(1200.0, false)]), (Some(1000.0), Some(1100.0)));
    }

    #[test]
    fn search_steps_given_the_runs_so_far() {
        let s = Duration::ZERO;
        assert_eq!(next_step(&[], &LIMITS, s, s), Step::Probe(200.0));
        assert_eq!(next_step(&[p(200.0, true)], &LIMITS, s, COST), Step::Probe(400.0));
        // Bisects between the highest held and the lowest failed rate.
        assert_eq!(next_step(&[p(200.0, true), p(400.0, true), p(800.0, false)], &LIMITS, s, COST), Step::Probe(600.0));
        // Within 10 %: done.
        assert_eq!(next_step(&[p(1000.0, true), p(1090.0, false)], &LIMITS, s, COST), Step::Done(Stop::Converged));
        assert_eq!(next_step(&[p(1000.0, true), p(1110.0, false)], &LIMITS, s, COST), Step::Probe(1055.0));
        // The base fails: halve until something holds.
        assert_eq!(next_step(&[p(200.0, false)], &LIMITS, s, COST), Step::Probe(100.0));
        assert_eq!(next_step(&[p(200.0, false), p(100.0, false)], &LIMITS, s, COST), Step::Probe(50.0));
        assert_eq!(next_step(&[p(1.0, false)], &LIMITS, s, COST), Step::Done(Stop::Floor));
        // A failure below a held rate is noise: the search goes on upwards.
        assert_eq!(next_step(&[p(200.0, false), p(400.0, true)], &LIMITS, s, COST), Step::Probe(800.0));
    }

    #[test]
    fn search_stays_within_max_rate_and_budget() {
        // Doubling is capped at --max-rate; holding it ends the search.
        let limits = SearchLimits { max: 500.0, ..LIMITS };
        assert_eq!(next_step(&[p(400.0, true)], &limits, Duration::ZERO, COST), Step::Probe(500.0));
        assert_eq!(next_step(&[p(400.0, true), p(500.0, true)], &limits, Duration::ZERO, COST), Step::Done(Stop::MaxRate));
        let (rates, stop) = simulate(f64::INFINITY, &limits);
        assert_eq!((rates, stop), (vec![200.0, 400.0, 500.0], Stop::MaxRate));
        // A base above --max-rate starts at the max.
        let limits = SearchLimits { base: 900.0, max: 500.0, ..LIMITS };
        assert_eq!(next_step(&[], &limits, Duration::ZERO, Duration::ZERO), Step::Probe(500.0));
        // No run that would overrun the budget (80 s): 8 runs of 9 s fit, a 9th does not.
        let (rates, stop) = simulate(5000.0, &LIMITS);
        assert_eq!(rates.len(), 8, "{rates:?}");
        assert_eq!(stop, Stop::Budget);
        assert_eq!(next_step(&[p(200.0, true)], &LIMITS, Duration::from_secs(75), COST), Step::Done(Stop::Budget));
        // The first run always happens.
        let limits = SearchLimits { budget: Duration::ZERO, ..LIMITS };
        assert_eq!(next_step(&[], &limits, Duration::ZERO, Duration::ZERO), Step::Probe(200.0));
    }

    #[test]
    fn search_stops_when_rounding_repeats_a_rate() {
        let limits = SearchLimits { base: 1.0, ..LIMITS };
        // Held 1, failed 2: the midpoint 1.5 rounds to 2, already run.
        assert_eq!(next_step(&[p(1.0, true), p(2.0, false)], &limits, Duration::ZERO, COST), Step::Done(Stop::Converged));
    }

    fn row(planned: usize, shed: usize, errors: usize, achieved: f64) -> Row {
        Row {
            system: "offload".into(),
            label: "Offload".into(),
            rate: 1000.0,
            duration: Duration::from_secs(10),
            planned,
            sent: planned - shed,
            shed,
            errors,
            achieved,
            origin: 105,
            bound: 100,
            p50: 1.0,
            p99: 2.0,
        }
    }

    #[test]
    fn a_rate_is_held_without_shedding_errors_or_falling_behind() {
        // The schedule offered 970 req/s (9700 requests in 10 s).
        assert!(holds(&row(9700, 0, 0, 960.0)));
        assert!(holds(&row(9700, 0, 0, 0.98 * 970.0)));
        assert!(!holds(&row(9700, 0, 0, 940.0)), "fell behind by more than 2 %");
        assert!(!holds(&row(9700, 1, 0, 960.0)), "shed one");
        assert!(!holds(&row(9700, 0, 1, 960.0)), "one error");
    }

    #[test]
    fn goal_line_gives_the_ratio_and_says_when_it_is_a_bound() {
        let search = |system: &str, rate: f64, stop: Stop| Search {
            system: system.into(),
            label: system.into(),
            held: Some(Row { rate, ..row(100, 0, 0, 10.0) }),
            failed: None,
            stop,
            runs: 5,
            spent: Duration::from_secs(50),
        };
        let line = goal_line(&search("offload", 1500.0, Stop::Converged), &search("caches-default", 600.0, Stop::Converged));
        assert!(line.contains("2.50x (1500 / 600 req/s"), "{line}");
        assert!(line.contains("origin ÷ bound there: 1.05"), "{line}");
        assert!(!line.contains("note"), "{line}");
        let line = goal_line(&search("offload", 20000.0, Stop::MaxRate), &search("caches-default", 600.0, Stop::Budget));
        assert!(line.contains("Offload held --max-rate: its rate is a lower bound"), "{line}");
        assert!(line.contains("caches.default Worker's search ran out of budget"), "{line}");
        let none = Search { held: None, ..search("caches-default", 1.0, Stop::Floor) };
        assert!(goal_line(&search("offload", 1500.0, Stop::Converged), &none).contains("n/a"));
    }
}
