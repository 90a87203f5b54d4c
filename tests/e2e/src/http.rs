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
