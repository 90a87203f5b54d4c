//! `presign_json(json) -> json`: the S3 presigner behind a JSON boundary,
//! for the byte-for-byte comparison with the AWS SDK for JavaScript v3
//! (`tests/sign-compat/`, through the Lambda@Edge build's `presign`
//! export) and its benchmark.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    presign, AddressingStyle, Credentials, PresignMethod, PresignRequest, QueryFormat, ResponseOverrides, S3Bucket,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Input {
    endpoint: String,
    bucket: String,
    region: String,
    /// `path` or `virtual` (default).
    #[serde(default)]
    style: Style,
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    key: String,
    /// `GET`, `HEAD` or `PUT`.
    method: Method,
    expires: u64,
    /// Unix seconds the URL is signed at.
    now: u64,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_length: Option<u64>,
    #[serde(default)]
    response: Overrides,
    /// `js` (default: the JS SDK v3 layout) or `docs` (the S3 docs layout).
    #[serde(default)]
    format: Format,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Style {
    Path,
    #[default]
    Virtual,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    #[serde(alias = "get")]
    Get,
    #[serde(alias = "head")]
    Head,
    #[serde(alias = "put")]
    Put,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Js,
    Docs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Overrides {
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    content_type: Option<String>,
    expires: Option<String>,
}

fn error(msg: impl std::fmt::Display) -> String {
    json!({ "error": msg.to_string() }).to_string()
}

/// Presign from a JSON request; `{"url", "expiresAt", "headers"}` or
/// `{"error"}`. Errors never contain the secret.
pub fn presign_json(input: &str) -> String {
    let i: Input = match serde_json::from_str(input) {
        Ok(i) => i,
        Err(e) => return error(format!("presign: bad input: {e}")),
    };
    let style = match i.style {
        Style::Virtual => AddressingStyle::VirtualHosted,
        Style::Path => AddressingStyle::Path,
    };
    let method = match i.method {
        Method::Get => PresignMethod::Get,
        Method::Head => PresignMethod::Head,
        Method::Put => PresignMethod::Put,
    };
    let format = match i.format {
        Format::Js => QueryFormat::JsSdkV3,
        Format::Docs => QueryFormat::AwsDocs,
    };
    let bucket = match S3Bucket::new(&i.endpoint, &i.bucket, &i.region, style) {
        Ok(b) => b,
        Err(e) => return error(e),
    };
    let creds = Credentials::new(i.access_key_id, i.secret_access_key, i.session_token);
    let r = &i.response;
    let req = PresignRequest {
        method,
        key: &i.key,
        expires_in: i.expires,
        version_id: i.version_id.as_deref(),
        content_type: i.content_type.as_deref(),
        content_length: i.content_length,
        checksum: None,
        response: ResponseOverrides {
            cache_control: r.cache_control.as_deref(),
            content_disposition: r.content_disposition.as_deref(),
            content_encoding: r.content_encoding.as_deref(),
            content_language: r.content_language.as_deref(),
            content_type: r.content_type.as_deref(),
            expires: r.expires.as_deref(),
        },
        format,
    };
    match presign(&bucket, &creds, &req, i.now, None) {
        Ok(url) => {
            let headers: serde_json::Map<String, Value> =
                url.headers().iter().map(|(k, v)| ((*k).to_owned(), Value::String(v.clone()))).collect();
            json!({ "url": url.as_str(), "expiresAt": url.expires_at(), "headers": headers }).to_string()
        }
        Err(e) => error(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn s3_docs_example() {
        let out = presign_json(
            r#"{"endpoint":"https://s3.amazonaws.com","bucket":"examplebucket","region":"us-east-1",
                "accessKeyId":"AKIAIOSFODNN7EXAMPLE","secretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "key":"test.txt","method":"GET","expires":86400,"now":1369353600,"format":"docs"}"#,
        );
        assert!(out.contains("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"), "{out}");
        let bad = presign_json(r#"{"endpoint":"x"}"#);
        assert!(bad.contains("error"), "{bad}");
        let method = presign_json(
            r#"{"endpoint":"https://s3.amazonaws.com","bucket":"b","region":"us-east-1","accessKeyId":"AKID",
                "secretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","key":"k","method":"DELETE","expires":60,"now":1}"#,
        );
        assert!(method.contains("unknown variant `DELETE`, expected one of `GET`"), "{method}");
        assert!(!method.contains("wJalrXUtnFEMI"), "{method}");
    }
}
