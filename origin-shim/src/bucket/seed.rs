//! Copying a local directory into a bucket at start-up.
//!
//! Objects are written through s3s-fs's own `PutObject` (in-process, no HTTP), so
//! the backend's metadata (ETag, content type) is consistent with what a client
//! upload would produce; seeded files get a `Content-Type` from their extension.

use std::path::{Path, PathBuf};

use s3s::dto::{PutObjectInput, StreamingBlob};
use s3s::{S3Request, S3};
use s3s_fs::FileSystem;

use crate::Error;

/// `Content-Type` for a key, by extension (`application/octet-stream` otherwise).
#[must_use]
pub fn content_type_for(key: &str) -> &'static str {
    let ext = key
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Lists regular files under `dir` as (`key`, path) with `/`-separated keys.
/// Symlinks to files are followed; symlinked directories are skipped (no loops).
fn list_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let io_err = |context: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Fs {
            context,
            path,
            source,
        }
    };
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((current, prefix)) = stack.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(io_err("cannot read seed directory", &current))?;
        for entry in entries {
            let entry = entry.map_err(io_err("cannot read seed directory", &current))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                return Err(Error::Config(format!(
                    "seed file name is not UTF-8: {}",
                    path.display()
                )));
            };
            let key = format!("{prefix}{name}");
            let ft = entry.file_type().map_err(io_err("cannot stat", &path))?;
            if ft.is_dir() {
                stack.push((path, format!("{key}/")));
            } else if ft.is_file()
                || (ft.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
            {
                out.push((key, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies every file under `seed_dir` into `bucket` (overwriting). Returns the
/// number of objects written.
pub(crate) async fn seed_bucket(
    fs: &FileSystem,
    bucket: &str,
    seed_dir: &Path,
) -> Result<usize, Error> {
    let dir = seed_dir.to_path_buf();
    let files = tokio::task::spawn_blocking(move || list_files(&dir))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    for (key, path) in &files {
        let data = tokio::fs::read(path).await.map_err(|source| Error::Fs {
            context: "cannot read seed file",
            path: path.clone(),
            source,
        })?;
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let input = PutObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.clone())
            .content_length(Some(len))
            .content_type(Some(content_type_for(key).to_owned()))
            .body(Some(StreamingBlob::from(s3s::Body::from(data))))
            .build()
            .map_err(|e| Error::Backend(format!("seeding {key}: {e:?}")))?;
        let req = S3Request {
            input,
            method: http::Method::PUT,
            uri: http::Uri::from_static("/"),
            headers: http::HeaderMap::new(),
            extensions: http::Extensions::new(),
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        };
        fs.put_object(req)
            .await
            .map_err(|e| Error::Backend(format!("seeding {bucket}/{key}: {e}")))?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::content_type_for;

    #[test]
    fn content_types() {
        assert_eq!(content_type_for("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type_for("a/b/APP.JS"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
