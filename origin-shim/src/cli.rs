//! Command line: `origin-shim origin ...` and `origin-shim bucket ...`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::bucket::{self, BucketConfig, Secret, SECRET_KEY_ENV};
use crate::origin::auth::{self as origin_auth, OriginAuth, KEYS_ENV as AUTH_KEYS_ENV, SECRET_ENV as AUTH_SECRET_ENV};
use crate::origin::{self, OriginConfig};
use crate::server::OsSignals;
use crate::{Error, ServerHandle};

/// Local stand-ins for the Offload edge's upstreams: a regional web origin and a
/// SigV4-verifying S3 bucket.
#[derive(Debug, Parser)]
#[command(name = "origin-shim", version)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Serve a regional web origin (JSON API with per-path counters).
    Origin(OriginArgs),
    /// Serve a local S3-compatible bucket that verifies AWS SigV4.
    Bucket(BucketArgs),
}

#[derive(Debug, Args)]
pub struct OriginArgs {
    /// Region this origin plays (reported in X-Origin-Region and bodies).
    #[arg(long, value_name = "REGION", default_value = "us-east-1", value_parser = parse_region)]
    pub region: String,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18701")]
    pub listen: SocketAddr,
    /// Do not write the per-request JSON log lines to stdout.
    #[arg(long)]
    pub no_access_log: bool,
    /// Serve the /_shim/* control endpoints on this second address, and only
    /// there; needed for `refuse` and /_shim/stop, /_shim/start.
    #[arg(long, value_name = "ADDR")]
    pub control_listen: Option<SocketAddr>,
    /// Require the edge's origin-auth header, signed with this key id. The secret
    /// comes from the OFFLOAD_ORIGIN_AUTH_SECRET env var or --auth-secret-file.
    #[arg(long, value_name = "ID", value_parser = parse_key_id)]
    pub auth_key_id: Option<String>,
    /// File holding the origin-auth secret (trailing CR/LF ignored), instead of
    /// the OFFLOAD_ORIGIN_AUTH_SECRET env var.
    #[arg(long, value_name = "FILE", requires = "auth_key_id")]
    pub auth_secret_file: Option<PathBuf>,
    /// File of origin-auth keys, one `kid=secret` per line, all accepted (key
    /// rotation); instead of --auth-key-id. The OFFLOAD_ORIGIN_AUTH_KEYS env var
    /// (entries separated by whitespace) does the same.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["auth_key_id", "auth_secret_file"])]
    pub auth_keys_file: Option<PathBuf>,
    /// Header carrying the origin-auth signature (lower case).
    #[arg(long, value_name = "NAME", default_value = offload_core::route::auth::DEFAULT_HEADER)]
    pub auth_header: String,
    /// Accepted distance between the signature's timestamp and this clock.
    #[arg(long, value_name = "SECS", default_value_t = origin_auth::DEFAULT_MAX_SKEW_SECS)]
    pub auth_max_skew_secs: u64,
}

#[derive(Debug, Args)]
pub struct BucketArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:18703")]
    pub listen: SocketAddr,
    /// Directory served as buckets (one sub-directory per bucket; created if missing).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Access key id that requests must be signed with.
    #[arg(long, value_name = "ID")]
    pub access_key: String,
    /// Secret key (prefer the OFFLOAD_S3_SECRET_KEY env var, which wins when both are set).
    #[arg(long, value_name = "SECRET", hide_default_value = true)]
    pub secret_key: Option<String>,
    /// Bucket to create on start (and to copy --seed into).
    #[arg(long, value_name = "NAME", value_parser = parse_bucket)]
    pub bucket: Option<String>,
    /// Directory whose files are copied (recursively) into --bucket on start.
    #[arg(long, value_name = "DIR", requires = "bucket")]
    pub seed: Option<PathBuf>,
    /// Bucket whose objects anonymous clients may GET/HEAD (repeatable).
    #[arg(long, value_name = "NAME", value_parser = parse_bucket)]
    pub public_read: Vec<String>,
    /// Page origin allowed to use the bucket from a browser (CORS: GET,
    /// HEAD, PUT with presigned URLs), e.g. http://127.0.0.1:18787 (repeatable).
    #[arg(long, value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,
}

fn parse_region(s: &str) -> Result<String, String> {
    origin::validate_region(s).map(|()| s.to_owned())
}

fn parse_key_id(s: &str) -> Result<String, String> {
    if offload_core::route::auth::valid_key_id(s) {
        Ok(s.to_owned())
    } else {
        Err("use 1-64 of [A-Za-z0-9._-]".to_owned())
    }
}

fn parse_bucket(s: &str) -> Result<String, String> {
    bucket::validate_bucket_name(s).map(|()| s.to_owned())
}

/// A flag-value error in clap's format (exit code 2).
fn flag_error(flag: &str, value: &str, reason: &str) -> clap::Error {
    Cli::command().error(
        ErrorKind::InvalidValue,
        format!("invalid value '{value}' for '{flag}': {reason}"),
    )
}

impl BucketArgs {
    /// Resolves the secret (env first) and checks paths; errors name the flag.
    pub fn into_config(
        self,
        env_secret: Option<String>,
    ) -> Result<(BucketConfig, SocketAddr), clap::Error> {
        let secret = env_secret
            .filter(|s| !s.is_empty())
            .or(self.secret_key.filter(|s| !s.is_empty()))
            .ok_or_else(|| {
                Cli::command().error(
                    ErrorKind::MissingRequiredArgument,
                    format!("a secret key is required: set {SECRET_KEY_ENV} (preferred) or pass --secret-key"),
                )
            })?;
        if self.access_key.is_empty() {
            return Err(flag_error("--access-key", "", "must not be empty"));
        }
        if let Some(seed) = &self.seed {
            if !seed.is_dir() {
                return Err(flag_error(
                    "--seed",
                    &seed.display().to_string(),
                    "not a directory",
                ));
            }
        }
        if self.root.exists() && !self.root.is_dir() {
            return Err(flag_error(
                "--root",
                &self.root.display().to_string(),
                "not a directory",
            ));
        }
        let config = BucketConfig {
            root: self.root,
            access_key: self.access_key,
            secret_key: Secret::new(secret),
            bucket: self.bucket,
            seed: self.seed,
            public_read: self.public_read,
            cors_origins: self.cors_origin,
        };
        Ok((config, self.listen))
    }
}

/// Reads a secret file, dropping trailing CR/LF; errors name the flag and path,
/// never the content.
fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>, clap::Error> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        flag_error(
            "--auth-secret-file",
            &path.display().to_string(),
            &format!("cannot read: {e}"),
        )
    })?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

/// Reads a keys file; errors name the flag and path, never the content.
fn read_keys_file(path: &std::path::Path) -> Result<String, clap::Error> {
    std::fs::read_to_string(path).map_err(|e| {
        flag_error("--auth-keys-file", &path.display().to_string(), &format!("cannot read: {e}"))
    })
}

/// `kid=secret` entries separated by whitespace; `#` starts a comment line.
/// Errors name the entry's position and key id, never a secret.
fn parse_keys(text: &str) -> Result<Vec<(String, offload_core::route::auth::Secret)>, clap::Error> {
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        for entry in line.split_whitespace() {
            let Some((kid, secret)) = entry.split_once('=') else {
                return Err(Cli::command().error(
                    ErrorKind::InvalidValue,
                    format!("origin-auth keys: entry {} is not kid=secret", keys.len() + 1),
                ));
            };
            keys.push((kid.to_owned(), offload_core::route::auth::Secret::new(secret.as_bytes().to_vec())));
        }
    }
    Ok(keys)
}

impl OriginArgs {
    /// Resolves the origin-auth secret (env or file) and validates the auth
    /// settings; errors name the flag and never contain the secret.
    ///
    /// Auth is on only when `--auth-key-id` is given; the env var alone does not
    /// turn it on (so a shell that exports it for the edge does not change the
    /// shim), and giving both the env var and `--auth-secret-file` is an error.
    pub fn into_config(
        self,
        env_secret: Option<String>,
    ) -> Result<(OriginConfig, SocketAddr), clap::Error> {
        self.into_config_with_keys(env_secret, None)
    }

    /// [`Self::into_config`] with the OFFLOAD_ORIGIN_AUTH_KEYS value too:
    /// several keys (`kid=secret`, whitespace-separated; or the lines of
    /// `--auth-keys-file`) turn auth on with all of them accepted.
    pub fn into_config_with_keys(
        self,
        env_secret: Option<String>,
        env_keys: Option<String>,
    ) -> Result<(OriginConfig, SocketAddr), clap::Error> {
        let env_keys = env_keys.filter(|s| !s.trim().is_empty());
        let keys_text = match (&self.auth_keys_file, env_keys) {
            (Some(_), Some(_)) => {
                return Err(Cli::command().error(
                    ErrorKind::ArgumentConflict,
                    format!("origin-auth keys are given twice: set {AUTH_KEYS_ENV} or pass --auth-keys-file, not both"),
                ))
            }
            (Some(path), None) => Some(read_keys_file(path)?),
            (None, Some(text)) => Some(text),
            (None, None) => None,
        };
        if let Some(text) = keys_text {
            if self.auth_key_id.is_some() {
                return Err(Cli::command().error(
                    ErrorKind::ArgumentConflict,
                    format!("--auth-key-id and a key list ({AUTH_KEYS_ENV} / --auth-keys-file) exclude each other"),
                ));
            }
            let keys = parse_keys(&text)?;
            let auth = OriginAuth::with_keys(keys)
                .and_then(|a| a.with_header(&self.auth_header))
                .and_then(|a| a.with_max_skew_secs(self.auth_max_skew_secs))
                .map_err(|e| match e.value() {
                    Some(v) if e.setting() != "secret" => flag_error(AUTH_KEYS_ENV, v, e.expected()),
                    _ => Cli::command().error(
                        ErrorKind::InvalidValue,
                        format!("origin-auth keys ({AUTH_KEYS_ENV} / --auth-keys-file): {} {}", e.setting(), e.expected()),
                    ),
                })?;
            let config = OriginConfig {
                region: self.region,
                access_log: !self.no_access_log,
                auth: Some(auth),
                control_listen: self.control_listen,
            };
            return Ok((config, self.listen));
        }
        let auth = match &self.auth_key_id {
            None => None,
            Some(kid) => {
                let env_secret = env_secret.filter(|s| !s.is_empty());
                let secret = match (env_secret, &self.auth_secret_file) {
                    (Some(_), Some(_)) => {
                        return Err(Cli::command().error(
                            ErrorKind::ArgumentConflict,
                            format!(
                                "the origin-auth secret is given twice: set {AUTH_SECRET_ENV} or pass --auth-secret-file, not both"
                            ),
                        ))
                    }
                    (Some(s), None) => s.into_bytes(),
                    (None, Some(path)) => read_secret_file(path)?,
                    (None, None) => {
                        return Err(Cli::command().error(
                            ErrorKind::MissingRequiredArgument,
                            format!(
                                "--auth-key-id needs a secret: set {AUTH_SECRET_ENV} (preferred) or pass --auth-secret-file"
                            ),
                        ))
                    }
                };
                let auth = OriginAuth::new(kid, offload_core::route::auth::Secret::new(secret))
                    .and_then(|a| a.with_header(&self.auth_header))
                    .and_then(|a| a.with_max_skew_secs(self.auth_max_skew_secs))
                    .map_err(|e| {
                        let flag = match e.setting() {
                            "key_id" => "--auth-key-id",
                            "header" => "--auth-header",
                            "max_skew_secs" => "--auth-max-skew-secs",
                            _ => "",
                        };
                        match (flag, e.value()) {
                            ("", _) | (_, None) => Cli::command().error(
                                ErrorKind::InvalidValue,
                                format!("the origin-auth secret ({AUTH_SECRET_ENV} or --auth-secret-file) {}", e.expected()),
                            ),
                            (flag, Some(v)) => flag_error(flag, v, e.expected()),
                        }
                    })?;
                Some(auth)
            }
        };
        let config = OriginConfig {
            region: self.region,
            access_log: !self.no_access_log,
            auth,
            control_listen: self.control_listen,
        };
        Ok((config, self.listen))
    }
}

/// Entry point of the `origin-shim` binary.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let job = match cli.mode {
        Mode::Origin(args) => match args.into_config_with_keys(std::env::var(AUTH_SECRET_ENV).ok(), std::env::var(AUTH_KEYS_ENV).ok()) {
            Ok((config, listen)) => Job::Origin(config, listen),
            Err(e) => return clap_exit(&e),
        },
        Mode::Bucket(args) => match args.into_config(std::env::var(SECRET_KEY_ENV).ok()) {
            Ok((config, listen)) => Job::Bucket(config, listen),
            Err(e) => return clap_exit(&e),
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("origin-shim: error: cannot start tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(job)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("origin-shim: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn clap_exit(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

enum Job {
    Origin(OriginConfig, SocketAddr),
    Bucket(BucketConfig, SocketAddr),
}

async fn run(job: Job) -> Result<(), Error> {
    // Handlers first: the "listening" line tells tests they may signal us.
    let signals = OsSignals::install()?;
    let (mode, handle): (&str, ServerHandle) = match job {
        Job::Origin(config, listen) => ("origin", origin::start(config, listen).await?),
        Job::Bucket(config, listen) => ("bucket", bucket::start(config, listen).await?),
    };
    crate::origin::layers::write_stdout_line(&listening_line(mode, handle.addr()));
    if let Some(control) = handle.control_addr() {
        crate::origin::layers::write_stdout_line(&control_line(mode, control));
    }
    signals.wait().await?;
    handle.shutdown().await
}

/// The line printed once the server is accepting connections.
#[must_use]
pub fn listening_line(mode: &str, addr: SocketAddr) -> String {
    format!("origin-shim {mode} listening on http://{addr}")
}

/// The second line printed when the server has a control listener.
#[must_use]
pub fn control_line(mode: &str, addr: SocketAddr) -> String {
    format!("origin-shim {mode} control listening on http://{addr}")
}
