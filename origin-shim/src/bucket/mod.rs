//! Bucket mode: a local S3-compatible server (s3s + s3s-fs) that verifies SigV4.
//!
//! `root` is served as a set of buckets (each sub-directory is a bucket, objects are
//! plain files below it; s3s-fs keeps its metadata in dot-files directly in `root`).
//! Requests must be signed with the configured access key (SigV4 header auth or
//! presigned query auth); see [`access`] for the anonymous public-read rule.

pub mod access;
pub mod cors;
mod seed;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;

use crate::server::ServerHandle;
use crate::Error;

pub use self::access::PublicReadPolicy;
pub use self::seed::content_type_for;

/// Env var the CLI reads the secret key from.
pub const SECRET_KEY_ENV: &str = "OFFLOAD_S3_SECRET_KEY";

/// A secret that never shows up in `Debug`/`Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Configuration of a bucket server.
#[derive(Debug, Clone)]
pub struct BucketConfig {
    /// Directory whose sub-directories are the buckets (created if missing).
    pub root: PathBuf,
    pub access_key: String,
    pub secret_key: Secret,
    /// Bucket to create on start (and to seed into).
    pub bucket: Option<String>,
    /// Directory copied (recursively) into `bucket` on start.
    pub seed: Option<PathBuf>,
    /// Buckets whose objects anonymous clients may GET/HEAD.
    pub public_read: Vec<String>,
    /// Page origins allowed to use the bucket from a browser (CORS), e.g.
    /// `http://127.0.0.1:18787` for presigned uploads from the edge's pages.
    pub cors_origins: Vec<String>,
}

/// S3 bucket-name rules (the common subset): 3-63 chars of `[a-z0-9.-]`, starting
/// and ending with a letter or digit.
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && edge_ok(bytes.first())
        && edge_ok(bytes.last())
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err("expected an S3 bucket name: 3-63 characters of [a-z0-9.-], starting and ending with a letter or digit".to_owned())
    }
}

impl BucketConfig {
    /// Checks names and keys (not the filesystem).
    pub fn validate(&self) -> Result<(), Error> {
        if self.access_key.is_empty() {
            return Err(Error::Config("access key is empty".to_owned()));
        }
        if self.secret_key.expose().is_empty() {
            return Err(Error::Config("secret key is empty".to_owned()));
        }
        for name in self.bucket.iter().chain(&self.public_read) {
            validate_bucket_name(name)
                .map_err(|e| Error::Config(format!("bucket {name:?}: {e}")))?;
        }
        if self.seed.is_some() && self.bucket.is_none() {
            return Err(Error::Config(
                "a seed directory needs a bucket to copy into".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Prepares `root` (bucket dir, seed), binds `listen` and serves S3 on the current
/// tokio runtime.
pub async fn start(config: BucketConfig, listen: SocketAddr) -> Result<ServerHandle, Error> {
    config.validate()?;
    let root = config.root.clone();
    tokio::fs::create_dir_all(&root)
        .await
        .map_err(|source| Error::Fs {
            context: "cannot create bucket root",
            path: root.clone(),
            source,
        })?;
    let fs = FileSystem::new(&root).map_err(|e| Error::Backend(format!("{e:?}")))?;

    if let Some(bucket) = &config.bucket {
        let dir = root.join(bucket);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| Error::Fs {
                context: "cannot create bucket directory",
                path: dir.clone(),
                source,
            })?;
        if let Some(seed_dir) = &config.seed {
            seed::seed_bucket(&fs, bucket, seed_dir).await?;
        }
    }

    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(
            config.access_key.clone(),
            config.secret_key.expose().to_owned(),
        ));
        // Must be set together with auth: s3s only runs access checks when an auth
        // provider is configured.
        b.set_access(PublicReadPolicy::new(config.public_read.iter().cloned()));
        b.build()
    };

    let cors = std::sync::Arc::new(cors::Cors::new(config.cors_origins.clone()));
    let listener = crate::server::bind(listen).await?;
    let addr = listener.local_addr()?;

    Ok(ServerHandle::spawn(addr, move |shutdown| async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        let mut stop = std::pin::pin!(shutdown.wait());
        loop {
            let socket = tokio::select! {
                res = listener.accept() => match res {
                    Ok((socket, _peer)) => socket,
                    // Transient accept errors (e.g. EMFILE): back off briefly.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = stop.as_mut() => break,
            };
            let (cors, service) = (cors.clone(), service.clone());
            let svc = hyper::service::service_fn(move |req| cors::serve(cors.clone(), service.clone(), req));
            let conn = http.serve_connection(TokioIo::new(socket), svc);
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    }))
}
