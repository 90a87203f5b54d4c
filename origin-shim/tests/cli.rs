//! Runs the real binary: listening line, access log, bad flags, signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_origin-shim");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns the binary and returns it with its stdout reader and the advertised URL.
fn spawn(
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Proc, BufReader<std::process::ChildStdout>, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let line = line.trim_end().to_owned();
    let url = line.rsplit(' ').next().unwrap().to_owned();
    (Proc(child), out, line, url)
}

fn term(p: &mut Proc) -> std::process::ExitStatus {
    let pid = p.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    for _ in 0..100 {
        if let Some(status) = p.0.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("did not exit on SIGTERM");
}

#[tokio::test]
async fn origin_binary_prints_listening_line_logs_and_exits_on_sigterm() {
    let (mut p, mut out, line, url) = spawn(
        &[
            "origin",
            "--region",
            "eu-central-1",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert!(
        line.starts_with("origin-shim origin listening on http://127.0.0.1:"),
        "{line}"
    );

    let r = common::get(&format!("{url}/api/time?secret=zzz")).await;
    assert_eq!(r.json()["region"], "eu-central-1");

    let mut log = String::new();
    out.read_line(&mut log).unwrap();
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(log["region"], "eu-central-1");
    assert_eq!(log["method"], "GET");
    assert_eq!(log["path"], "/api/time");
    assert_eq!(log["status"], 200);
    assert!(log["ts"].as_u64().is_some() && log["dur_us"].as_u64().is_some());

    assert!(term(&mut p).success());
}

#[tokio::test]
async fn bucket_binary_reads_secret_from_env_and_never_prints_it() {
    let root = common::TempDir::new("cli-root");
    let seed = common::TempDir::new("cli-seed");
    std::fs::write(seed.path().join("a.txt"), "A").unwrap();
    let secret = "very-secret-value-123";
    let (mut p, _out, line, url) = spawn(
        &[
            "bucket",
            "--listen",
            "127.0.0.1:0",
            "--root",
            root.path().to_str().unwrap(),
            "--access-key",
            "AKIDCLI",
            "--bucket",
            "www",
            "--seed",
            seed.path().to_str().unwrap(),
            "--public-read",
            "www",
        ],
        &[("OFFLOAD_S3_SECRET_KEY", secret)],
    );
    assert!(
        line.starts_with("origin-shim bucket listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(!line.contains(secret));
    let r = common::get(&format!("{url}/www/a.txt")).await;
    assert_eq!(r.status, http::StatusCode::OK);
    assert_eq!(r.text(), "A");
    assert!(term(&mut p).success());
    let mut rest = String::new();
    std::io::Read::read_to_string(p.0.stderr.as_mut().unwrap(), &mut rest).unwrap();
    assert!(!rest.contains(secret));
}

fn run_bad(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("OFFLOAD_S3_SECRET_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap(), stderr)
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let (code, err) = run_bad(&["origin", "--listen", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("--listen") && err.contains("nope"), "{err}");

    let (code, err) = run_bad(&["origin", "--region", "Not A Region"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--region") && err.contains("Not A Region"),
        "{err}"
    );

    let (code, err) = run_bad(&["bogus"]);
    assert_eq!(code, 2, "{err}");

    let (code, err) = run_bad(&["bucket", "--root", "/tmp/x", "--access-key", "AK"]);
    assert_eq!(code, 2);
    assert!(err.contains("OFFLOAD_S3_SECRET_KEY"), "{err}");

    let (code, err) = run_bad(&[
        "bucket",
        "--root",
        "/tmp/x",
        "--access-key",
        "AK",
        "--secret-key",
        "s",
        "--bucket",
        "www",
        "--seed",
        "/definitely/not/here",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--seed") && err.contains("/definitely/not/here"),
        "{err}"
    );

    let (code, err) = run_bad(&[
        "bucket",
        "--root",
        "/tmp/x",
        "--access-key",
        "AK",
        "--secret-key",
        "s",
        "--public-read",
        "UPPER_case",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--public-read") && err.contains("UPPER_case"),
        "{err}"
    );

    let (code, err) = run_bad(&[
        "bucket",
        "--root",
        "/tmp/x",
        "--access-key",
        "AK",
        "--secret-key",
        "s",
        "--seed",
        "/tmp",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--bucket"), "{err}");
}

#[test]
fn bind_failure_is_a_clean_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run_bad(&["origin", "--listen", &addr]);
    assert_eq!(code, 1);
    assert!(err.contains(&addr), "{err}");
}

const AUTH_SECRET: &str = "cli-origin-auth-secret-0001";

fn run_origin_bad(args: &[&str], env_secret: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("origin")
        .args(args)
        .env_remove("OFFLOAD_ORIGIN_AUTH_SECRET")
        .env_remove("OFFLOAD_ORIGIN_AUTH_KEYS");
    if let Some(s) = env_secret {
        cmd.env("OFFLOAD_ORIGIN_AUTH_SECRET", s);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap(), stderr)
}

#[tokio::test]
async fn origin_binary_with_auth_and_control_port() {
    use offload_core::route::auth::{sign_origin_request, Secret, SigningKey};
    let (mut p, mut out, line, url) = spawn(
        &[
            "origin",
            "--listen",
            "127.0.0.1:0",
            "--control-listen",
            "127.0.0.1:0",
            "--auth-key-id",
            "k1",
            "--no-access-log",
        ],
        &[("OFFLOAD_ORIGIN_AUTH_SECRET", AUTH_SECRET)],
    );
    assert!(
        line.starts_with("origin-shim origin listening on http://127.0.0.1:"),
        "{line}"
    );
    let mut control = String::new();
    out.read_line(&mut control).unwrap();
    let control = control.trim_end();
    assert!(
        control.starts_with("origin-shim origin control listening on http://127.0.0.1:"),
        "{control}"
    );
    let control_url = control.rsplit(' ').next().unwrap();

    let r = common::get(&format!("{url}/api/time")).await;
    assert_eq!(r.status, http::StatusCode::FORBIDDEN);
    assert_eq!(r.json()["reason"], "missing");

    let host = url.trim_start_matches("http://");
    let key = SigningKey::new("k1", Secret::new(AUTH_SECRET.as_bytes().to_vec()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = sign_origin_request(&key, "GET", "/api/time", host, now);
    let r = common::send(common::request(
        http::Method::GET,
        &format!("{url}/api/time"),
        &[("host", host), ("x-offload-auth", &sig)],
        b"",
    ))
    .await;
    assert_eq!(r.status, http::StatusCode::OK, "{}", r.text());

    let s = common::get(&format!("{control_url}/_shim/stats"))
        .await
        .json();
    assert_eq!(s["refused_auth"], 1, "{s}");
    assert_eq!(s["total"], 1, "{s}");

    assert!(term(&mut p).success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    std::io::Read::read_to_string(p.0.stderr.as_mut().unwrap(), &mut rest).unwrap();
    assert!(!rest.contains(AUTH_SECRET), "{rest}");
}

#[tokio::test]
async fn origin_binary_reads_auth_secret_file() {
    let dir = common::TempDir::new("cli-auth");
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{AUTH_SECRET}\n")).unwrap();
    let (mut p, _out, _line, url) = spawn(
        &[
            "origin",
            "--listen",
            "127.0.0.1:0",
            "--auth-key-id",
            "k2",
            "--auth-secret-file",
            file.to_str().unwrap(),
            "--auth-header",
            "x-edge-auth",
            "--no-access-log",
        ],
        &[],
    );
    use offload_core::route::auth::{sign_origin_request, Secret, SigningKey};
    let host = url.trim_start_matches("http://");
    let key = SigningKey::new("k2", Secret::new(AUTH_SECRET.as_bytes().to_vec()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sig = sign_origin_request(&key, "GET", "/healthz", host, now);
    let r = common::send(common::request(
        http::Method::GET,
        &format!("{url}/healthz"),
        &[("host", host), ("x-edge-auth", &sig)],
        b"",
    ))
    .await;
    assert_eq!(r.status, http::StatusCode::OK, "{}", r.text());
    assert!(term(&mut p).success());
}

#[test]
fn bad_auth_flags_exit_2_naming_the_flag() {
    let (code, err) = run_origin_bad(&["--auth-key-id", "k1"], None);
    assert_eq!(code, 2);
    assert!(err.contains("OFFLOAD_ORIGIN_AUTH_SECRET"), "{err}");

    let (code, err) = run_origin_bad(&["--auth-key-id", "k1"], Some("too-short"));
    assert_eq!(code, 2);
    assert!(
        err.contains("at least 16 bytes") && !err.contains("too-short"),
        "{err}"
    );

    let (code, err) = run_origin_bad(&["--auth-key-id", "k 1"], Some(AUTH_SECRET));
    assert_eq!(code, 2);
    assert!(
        err.contains("--auth-key-id") && err.contains("k 1"),
        "{err}"
    );

    let (code, err) = run_origin_bad(
        &["--auth-key-id", "k1", "--auth-header", "X-Upper"],
        Some(AUTH_SECRET),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--auth-header") && err.contains("X-Upper"),
        "{err}"
    );

    let (code, err) = run_origin_bad(
        &["--auth-key-id", "k1", "--auth-max-skew-secs", "0"],
        Some(AUTH_SECRET),
    );
    assert_eq!(code, 2);
    assert!(err.contains("--auth-max-skew-secs"), "{err}");

    let (code, err) = run_origin_bad(&["--auth-secret-file", "/tmp/x"], None);
    assert_eq!(code, 2);
    assert!(err.contains("--auth-key-id"), "{err}");

    let (code, err) = run_origin_bad(
        &[
            "--auth-key-id",
            "k1",
            "--auth-secret-file",
            "/definitely/not/here",
        ],
        None,
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--auth-secret-file") && err.contains("/definitely/not/here"),
        "{err}"
    );

    let (code, err) = run_origin_bad(
        &[
            "--auth-key-id",
            "k1",
            "--auth-secret-file",
            "/definitely/not/here",
        ],
        Some(AUTH_SECRET),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("not both") && !err.contains(AUTH_SECRET),
        "{err}"
    );

    let (code, err) = run_origin_bad(&["--control-listen", "nope"], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("--control-listen") && err.contains("nope"),
        "{err}"
    );
}

/// Key rotation: every key of OFFLOAD_ORIGIN_AUTH_KEYS (or the lines of
/// --auth-keys-file) verifies; a key not listed does not.
#[tokio::test]
async fn origin_binary_accepts_every_listed_key() {
    use offload_core::route::auth::{sign_origin_request, Secret, SigningKey};
    const OLD: &str = "old-origin-auth-secret-0123";
    const NEW: &str = "new-origin-auth-secret-4567";
    let dir = common::TempDir::new("cli-auth-keys");
    let file = dir.path().join("keys");
    std::fs::write(&file, format!("# rotation\nold={OLD}\nnew={NEW}\n")).unwrap();
    let env_keys = format!("old={OLD} new={NEW}");
    for (args, envs) in [
        (vec!["--auth-keys-file", file.to_str().unwrap()], vec![]),
        (vec![], vec![("OFFLOAD_ORIGIN_AUTH_KEYS", env_keys.as_str())]),
    ] {
        let mut all = vec!["origin", "--listen", "127.0.0.1:0", "--no-access-log"];
        all.extend(args);
        let (mut p, mut out, _line, url) = spawn(&all, &envs);
        let host = url.trim_start_matches("http://").to_owned();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        for (kid, secret, want) in [
            ("old", OLD, http::StatusCode::OK),
            ("new", NEW, http::StatusCode::OK),
            ("other", NEW, http::StatusCode::FORBIDDEN),
            ("new", OLD, http::StatusCode::FORBIDDEN),
        ] {
            let key = SigningKey::new(kid, Secret::new(secret.as_bytes().to_vec()));
            let sig = sign_origin_request(&key, "GET", "/healthz", &host, now);
            let r = common::send(common::request(
                http::Method::GET,
                &format!("{url}/healthz"),
                &[("host", host.as_str()), ("x-offload-auth", &sig)],
                b"",
            ))
            .await;
            assert_eq!(r.status, want, "{kid}: {}", r.text());
        }
        assert!(term(&mut p).success());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        std::io::Read::read_to_string(p.0.stderr.as_mut().unwrap(), &mut rest).unwrap();
        assert!(!rest.contains(OLD) && !rest.contains(NEW), "{rest}");
    }
}

#[test]
fn bad_key_lists_exit_2_without_the_secret() {
    let run = |args: &[&str], keys: &str| {
        let mut cmd = Command::new(BIN);
        cmd.arg("origin").args(args).env_remove("OFFLOAD_ORIGIN_AUTH_SECRET").env("OFFLOAD_ORIGIN_AUTH_KEYS", keys);
        let out = cmd.output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&[], "k1=short-secret");
    assert_eq!(code, 2);
    assert!(err.contains("at least 16 bytes") && !err.contains("short-secret"), "{err}");
    let (code, err) = run(&[], "no-equals-sign-here");
    assert_eq!(code, 2);
    assert!(err.contains("entry 1 is not kid=secret") && !err.contains("no-equals"), "{err}");
    let (code, err) = run(&[], "k1=0123456789abcdef0123 k1=0123456789abcdef4567");
    assert_eq!(code, 2);
    assert!(err.contains("listed twice"), "{err}");
    let (code, err) = run(&["--auth-key-id", "k1"], "k1=0123456789abcdef0123");
    assert_eq!(code, 2);
    assert!(err.contains("exclude each other"), "{err}");
}
