//! `cargo xtask fuzz [--time S] [TARGET...]`: the cargo-fuzz targets in
//! `fuzz/` (their own workspace and lock file), built once on the nightly
//! pinned in `fuzz/rust-toolchain.toml`, then each run for `S` seconds
//! (default 60). Prints per target: execs, execs/s, crashes, corpus size.
//! The working corpus is `fuzz/corpus/<target>/` (git-ignored) seeded from
//! the committed `fuzz/seeds/<target>/`; a crash leaves its input in
//! `fuzz/artifacts/<target>/` and fails the command.
//!
//! `cargo xtask test` runs [`short_run`]: every target for a few seconds
//! from the seeds only (a scratch corpus), failing on any crash.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::run as exec;

/// The cargo-fuzz release `cargo xtask setup` installs (`--locked`).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target in `fuzz/Cargo.toml` (a unit test checks the two agree).
pub const TARGETS: [&str; 8] =
    ["config", "cache_control", "cache_key", "link_token", "presign_endpoint", "purge", "sigv4", "lambda_event"];

/// Seconds each target runs in `cargo xtask test`.
pub const SHORT_RUN_SECS: u64 = 5;

/// Built without a sanitizer: the project's crates forbid `unsafe`, the
/// targets look for panics and broken invariants, and AddressSanitizer
/// would halve the exec rate. Debug assertions (overflow checks) are on.
const BUILD_FLAGS: [&str; 3] = ["--sanitizer", "none", "--debug-assertions"];

/// The nightly channel pinned in `fuzz/rust-toolchain.toml`.
pub fn nightly(root: &Path) -> Result<String, String> {
    let path = root.join("fuzz/rust-toolchain.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    value
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{}: no [toolchain] channel", path.display()))
}

/// The rustup `cargo` proxy (so `+toolchain` works), with nothing the
/// outer cargo set that would pin the stable toolchain.
fn rustup_cargo(channel: &str) -> Command {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let proxy = home.map(|h| h.join("bin/cargo")).filter(|p| p.exists()).unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(proxy);
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_MANIFEST_DIR"] {
        c.env_remove(var);
    }
    c.arg(format!("+{channel}"));
    c
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Install the pinned nightly (minimal profile) and cargo-fuzz if missing.
pub fn ensure(root: &Path) -> Result<(), String> {
    let channel = nightly(root)?;
    let installed = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !installed.lines().any(|l| l.starts_with(&channel)) {
        eprintln!("setup: rustup toolchain install {channel} --profile minimal (for cargo xtask fuzz)");
        exec(Command::new("rustup").args(["toolchain", "install", &channel, "--profile", "minimal"]))?;
    }
    let version = output(rustup_cargo(&channel).args(["fuzz", "--version"])).unwrap_or_default();
    if !version.split_whitespace().any(|w| w == CARGO_FUZZ_VERSION) {
        eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ_VERSION} (about two minutes, once)");
        exec(Command::new("cargo").args(["install", "cargo-fuzz", "--version", CARGO_FUZZ_VERSION, "--locked"]))?;
    }
    Ok(())
}

fn build(root: &Path, channel: &str) -> Result<(), String> {
    exec(rustup_cargo(channel).current_dir(root).args(["fuzz", "build", "--fuzz-dir", "fuzz"]).args(BUILD_FLAGS))
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunStats {
    pub execs: u64,
    pub execs_per_sec: u64,
    pub crashes: u64,
    pub corpus: usize,
    pub secs: u64,
}

/// libFuzzer's `-print_final_stats=1` lines and crash reports.
pub fn parse_stats(stderr: &str) -> RunStats {
    let stat = |name: &str| {
        stderr
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .next_back()
            .unwrap_or(0)
    };
    RunStats {
        execs: stat("number_of_executed_units"),
        execs_per_sec: stat("average_exec_per_sec"),
        crashes: stderr.lines().filter(|l| l.contains("Test unit written to")).count() as u64,
        ..RunStats::default()
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).filter(|e| e.path().is_file()).count()).unwrap_or(0)
}

/// Run one built target for `secs` on `corpus` (plus the seeds).
fn run_target(root: &Path, channel: &str, target: &str, corpus: &Path, secs: u64) -> Result<RunStats, String> {
    std::fs::create_dir_all(corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let seeds = root.join("fuzz/seeds").join(target);
    let started = Instant::now();
    let out = rustup_cargo(channel)
        .current_dir(root)
        .args(["fuzz", "run", "--fuzz-dir", "fuzz"])
        .args(BUILD_FLAGS)
        .arg(target)
        .arg(corpus)
        .arg(&seeds)
        .args(["--", &format!("-max_total_time={secs}"), "-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cargo fuzz run {target}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut stats = parse_stats(&stderr);
    stats.corpus = files_in(corpus);
    stats.secs = started.elapsed().as_secs();
    if !out.status.success() {
        // A crash (or a build/start failure): show libFuzzer's report.
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        for line in tail.iter().rev() {
            eprintln!("  | {line}");
        }
        stats.crashes = stats.crashes.max(1);
    }
    Ok(stats)
}

fn print_table(rows: &[(&str, RunStats)]) {
    println!("{:<18} {:>12} {:>9} {:>8} {:>8} {:>6}", "target", "execs", "execs/s", "crashes", "corpus", "secs");
    for (t, s) in rows {
        println!("{t:<18} {:>12} {:>9} {:>8} {:>8} {:>6}", s.execs, s.execs_per_sec, s.crashes, s.corpus, s.secs);
    }
}

fn run_all(root: &Path, targets: &[&str], secs: u64, scratch: bool) -> Result<(), String> {
    let channel = nightly(root)?;
    ensure(root)?;
    build(root, &channel)?;
    let mut rows = Vec::new();
    for &t in targets {
        let corpus = if scratch {
            let dir = root.join("fuzz/target/short-run-corpus").join(t);
            let _ = std::fs::remove_dir_all(&dir);
            dir
        } else {
            root.join("fuzz/corpus").join(t)
        };
        eprintln!("fuzz: {t} for {secs} s");
        let stats = run_target(root, &channel, t, &corpus, secs)?;
        rows.push((t, stats));
    }
    print_table(&rows);
    let crashed: Vec<&str> = rows.iter().filter(|(_, s)| s.crashes > 0).map(|(t, _)| *t).collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz: crashes in {} (inputs under fuzz/artifacts/)", crashed.join(", ")))
    }
}

/// The step of `cargo xtask test`: every target for [`SHORT_RUN_SECS`].
pub fn short_run(root: &Path) -> Result<(), String> {
    run_all(root, &TARGETS, SHORT_RUN_SECS, true)
}

/// `cargo xtask fuzz [--time S] [TARGET...]`.
#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// Seconds each target runs.
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    time: u64,
    /// Targets to run (default: all).
    #[arg(value_name = "TARGET", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    targets: Vec<String>,
}

pub fn main(args: &FuzzArgs) -> Result<(), String> {
    let mut targets: Vec<&str> = args.targets.iter().map(String::as_str).collect();
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    run_all(&crate::root(), &targets, args.time, false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_match_the_fuzz_manifest() {
        let root = crate::root();
        let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap()).unwrap();
        let mut bins: Vec<&str> =
            manifest["bin"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
        let mut ours = TARGETS.to_vec();
        bins.sort_unstable();
        ours.sort_unstable();
        assert_eq!(bins, ours);
        for t in TARGETS {
            assert!(files_in(&root.join("fuzz/seeds").join(t)) > 0, "no seeds for {t}");
        }
    }

    #[test]
    fn nightly_is_pinned_to_a_date() {
        let channel = nightly(&crate::root()).unwrap();
        let date = channel.strip_prefix("nightly-").unwrap();
        assert_eq!(date.len(), 10);
        assert!(date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() }));
    }

    #[test]
    fn final_stats_and_crashes_are_read() {
        let log = "#1024\tDONE   cov: 10\nstat::number_of_executed_units: 123456\nstat::average_exec_per_sec:     4115\n";
        assert_eq!(parse_stats(log), RunStats { execs: 123_456, execs_per_sec: 4115, ..RunStats::default() });
        let crash = "==1== ERROR: libFuzzer: deadly signal\nartifact_prefix='a/'; Test unit written to a/crash-1\n";
        assert_eq!(parse_stats(crash).crashes, 1);
    }
}
