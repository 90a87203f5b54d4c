//! A tiny blocking HTTP client for the tests: every status is a response
//! (4xx/5xx are not errors), headers are kept as lists.

use std::time::Duration;

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON ({e}): {}", self.text()))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .redirects(0)
        .build()
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Result<Resp, String> {
    let mut req = agent().request(method, url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("{method} {url}: {e}")),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| resp.all(&n).into_iter().map(|v| (n.clone(), v.to_owned())).collect::<Vec<_>>())
        .collect();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).map_err(|e| format!("{url}: body: {e}"))?;
    Ok(Resp { status, headers, body })
}

pub fn get(url: &str) -> Result<Resp, String> {
    request("GET", url, &[], None)
}

/// Byte `offset` of origin-shim's blob pattern for `seed`
/// (`GET /api/blob/{n}?seed=`, `POST /api/sink?seed=`; see
/// `origin_shim::origin::blob::pattern_byte`).
pub fn blob_byte(offset: u64, seed: u64) -> u8 {
    (offset.wrapping_add(seed) % 251) as u8
}

/// `len` bytes of the blob pattern, generated as they are read (an upload
/// body of any size in constant memory).
pub struct BlobReader {
    pub offset: u64,
    pub len: u64,
    pub seed: u64,
}

impl std::io::Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.offset).min(out.len() as u64) as usize;
        for (i, b) in out[..n].iter_mut().enumerate() {
            *b = blob_byte(self.offset + i as u64, self.seed);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Send `body` (its length in `Content-Length` if `length`, else chunked).
pub fn upload(url: &str, headers: &[(&str, &str)], body: BlobReader, length: bool) -> Result<Resp, String> {
    let mut req = agent().post(url);
    for (n, v) in headers {
        req = req.set(n, v);
    }
    if length {
        req = req.set("content-length", &body.len.to_string());
    }
    let resp = match req.send(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(format!("POST {url}: {e}")),
    };
    let status = resp.status();
    let headers = resp.headers_names().into_iter().filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_owned()))).collect();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut out).map_err(|e| format!("{url}: body: {e}"))?;
    Ok(Resp { status, headers, body: out })
}

/// A request written byte for byte over TCP (`Connection: close`), so the
/// server gets exactly `head` (request line and header lines, CRLF-ended,
/// without the blank line) and `body`: no client normalizes the target
/// (`%2F`, `\`, `//`, dot segments), refuses a lower-case method or folds
/// two `Host` fields into one. Reads until the server closes; a chunked
/// body is decoded.
pub fn raw_request(addr: &str, head: &[u8], body: &[u8]) -> Result<Resp, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
    let mut req = head.to_vec();
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
    s.write_all(&req).map_err(|e| format!("{addr}: write: {e}"))?;
    // Read until the response is complete by its own framing (servers may
    // be slow to close even after `Connection: close`), or until closed.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if response_complete(&raw) {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => return Err(format!("{addr}: read: {e}")),
            Err(_) => break,
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| {
        format!("{addr}: no response head in {:?}", String::from_utf8_lossy(&raw[..raw.len().min(200)]))
    })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}: bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| format!("{addr}: bad chunked body"))?;
    }
    Ok(Resp { status, headers, body })
}

/// Whether `raw` holds a whole response: its head and, by Content-Length
/// or chunked framing, its body.
fn response_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let field = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()));
    if let Some(len) = field("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        return body.len() >= len;
    }
    if field("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return body.ends_with(b"0\r\n\r\n") && dechunk(body).is_some();
    }
    // A status without a body, or close-delimited.
    head.starts_with("http/1.1 304") || head.starts_with("http/1.1 204")
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(b.get(..eol)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = b.get(eol + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}
