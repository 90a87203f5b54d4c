//! Secrets for Lambda@Edge (which has no environment variables of its
//! own): the config's `aws_secret` / `ssm` references are read at cold
//! start from AWS Secrets Manager (`secretsmanager.GetSecretValue`) and SSM
//! Parameter Store (`AmazonSSM.GetParameter`, `WithDecryption`), with the
//! function's role credentials, signed by Offload's own SigV4 signer.
//!
//! Sans-IO: [`requests`] builds the signed HTTPS POSTs (AWS JSON 1.1
//! protocol: `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target`),
//! the executor sends them (the Lambda@Edge wrapper with `fetch`), and
//! [`apply`] turns the answers (in the same order) into a [`SecretMap`].
//! Errors name the secret and the AWS error type, never a value.
//!
//! Both take the config's references (`Config::secret_refs`: the field
//! and its [`SecretRef`]), so this module needs nothing but the signer.
//!
//! A secret named by ARN is read in the ARN's region; a plain name in the
//! function's region (`AWS_REGION`), so replicate such secrets to every
//! region Lambda@Edge runs in, or name them by ARN.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::secret::{Platform, Secret, SecretMap, SecretRef, Source};
use crate::sign::sigv4::{sign, AmzDate, PayloadHash, SignableRequest, SigningParams, SigningSettings};
use crate::sign::Credentials;

/// One AWS read: a Secrets Manager secret (all its JSON keys at once) or
/// an SSM parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    SecretsManager(String),
    Parameter(String),
}

impl Target {
    fn service(&self) -> &'static str {
        match self {
            Self::SecretsManager(_) => "secretsmanager",
            Self::Parameter(_) => "ssm",
        }
    }
    fn id(&self) -> &str {
        match self {
            Self::SecretsManager(id) | Self::Parameter(id) => id,
        }
    }
    /// The region of an ARN (`arn:aws:<service>:<region>:...`), if it is one.
    fn arn_region(&self) -> Option<&str> {
        let mut parts = self.id().split(':');
        (parts.next() == Some("arn")).then_some(())?;
        let _partition = parts.next()?;
        let _service = parts.next()?;
        parts.next().filter(|r| !r.is_empty())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretsManager(id) => write!(f, "Secrets Manager secret {id:?}"),
            Self::Parameter(name) => write!(f, "SSM parameter {name:?}"),
        }
    }
}

/// Why the secrets could not be read. Never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(String);

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "secrets: {}", self.0)
    }
}

impl std::error::Error for FetchError {}

/// The config's secret references: `(field, reference)`, as
/// `Config::secret_refs` lists them.
pub type Refs<'a> = [(String, &'a SecretRef)];

/// The AWS reads the references need, de-duplicated, in a fixed order.
pub fn targets(refs: &Refs<'_>) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for (_, r) in refs {
        let t = match r.source(Platform::LambdaEdge) {
            Some(Source::SecretsManager { secret_id, .. }) => Target::SecretsManager(secret_id.to_owned()),
            Some(Source::Parameter(name)) => Target::Parameter(name.to_owned()),
            _ => continue,
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// A signed request for the executor to send (POST). Serializes as
/// `{url, headers: {name: value}, body}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRequest {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// The answer to a [`SecretRequest`]: `{status, body}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Answer {
    pub status: u16,
    #[serde(default)]
    pub body: String,
}

/// The signed requests for [`targets`]. `endpoint` replaces the AWS
/// endpoint (`https://<service>.<region>.amazonaws.com`) for tests.
pub fn requests(
    refs: &Refs<'_>,
    credentials: &Credentials,
    region: &str,
    endpoint: Option<&str>,
    now_secs: u64,
) -> Result<Vec<SecretRequest>, FetchError> {
    let time = AmzDate::from_unix_secs(now_secs).map_err(|e| FetchError(format!("clock: {e}")))?;
    let mut out = Vec::new();
    for t in targets(refs) {
        let region = t.arn_region().unwrap_or(region);
        if region.is_empty() {
            return Err(FetchError(format!("{t}: no region (AWS_REGION is not set and the id is not an ARN)")));
        }
        let url = match endpoint {
            Some(e) => format!("{}/", e.trim_end_matches('/')),
            None => format!("https://{}.{region}.amazonaws.com/", t.service()),
        };
        let (target, body) = match &t {
            Target::SecretsManager(id) => ("secretsmanager.GetSecretValue", serde_json::json!({ "SecretId": id })),
            Target::Parameter(name) => {
                ("AmazonSSM.GetParameter", serde_json::json!({ "Name": name, "WithDecryption": true }))
            }
        };
        let body = body.to_string();
        let content_type = "application/x-amz-json-1.1";
        let signable = SignableRequest {
            method: "POST",
            url: &url,
            headers: &[("content-type", content_type), ("x-amz-target", target)],
            payload: PayloadHash::Body(body.as_bytes()),
        };
        let params = SigningParams {
            credentials,
            region,
            service: t.service(),
            time,
            settings: SigningSettings::default(),
            signing_key: None,
        };
        let signed = sign(&signable, &params).map_err(|e| FetchError(format!("{t}: signing: {e}")))?;
        let mut headers = BTreeMap::from([
            ("content-type".to_owned(), content_type.to_owned()),
            ("x-amz-target".to_owned(), target.to_owned()),
        ]);
        headers.extend(signed.instructions.headers().iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        out.push(SecretRequest { url, headers, body });
    }
    Ok(out)
}

/// An AWS JSON error: `__type` is e.g. "ResourceNotFoundException" or
/// "com.amazonaws.secretsmanager#ResourceNotFoundException".
#[derive(Deserialize)]
struct AwsError {
    #[serde(rename = "__type")]
    kind: String,
}

/// `GetSecretValue`'s answer (a binary secret has no `SecretString`).
#[derive(Deserialize)]
struct SecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// `GetParameter`'s answer.
#[derive(Deserialize)]
struct ParameterAnswer {
    #[serde(rename = "Parameter")]
    parameter: Option<Parameter>,
}

#[derive(Deserialize)]
struct Parameter {
    #[serde(rename = "Value")]
    value: Option<String>,
}

fn aws_error(t: &Target, status: u16, body: &str) -> FetchError {
    let kind = serde_json::from_str::<AwsError>(body)
        .ok()
        .map(|e| e.kind.rsplit('#').next().unwrap_or("").to_owned())
        .filter(|t| !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
        .unwrap_or_else(|| "no AWS error type".to_owned());
    FetchError(format!("{t}: HTTP {status}: {kind}"))
}

/// Turn the answers to [`requests`] (same order) into the values of every
/// `aws_secret` / `ssm` reference.
pub fn apply(refs: &Refs<'_>, responses: &[Answer]) -> Result<SecretMap, FetchError> {
    let targets = targets(refs);
    if targets.len() != responses.len() {
        return Err(FetchError(format!("{} answers for {} requests", responses.len(), targets.len())));
    }
    let mut raw: Vec<(Target, String)> = Vec::with_capacity(targets.len());
    for (t, Answer { status, body }) in targets.into_iter().zip(responses) {
        if *status != 200 {
            return Err(aws_error(&t, *status, body));
        }
        let not_json = || FetchError(format!("{t}: the answer is not JSON"));
        let value = match &t {
            Target::SecretsManager(_) => {
                serde_json::from_str::<SecretValue>(body).map_err(|_| not_json())?.secret_string
            }
            Target::Parameter(_) => serde_json::from_str::<ParameterAnswer>(body)
                .map_err(|_| not_json())?
                .parameter
                .and_then(|p| p.value),
        }
        .ok_or_else(|| {
            FetchError(format!(
                "{t}: the answer has no {}",
                if matches!(t, Target::SecretsManager(_)) { "SecretString" } else { "Parameter.Value" }
            ))
        })?;
        raw.push((t, value));
    }
    let mut map = SecretMap::new(Platform::LambdaEdge);
    for (field, r) in refs {
        let Some(source) = r.source(Platform::LambdaEdge) else { continue };
        let value = match source {
            Source::SecretsManager { secret_id, json_key } => {
                let t = Target::SecretsManager(secret_id.to_owned());
                let Some((_, s)) = raw.iter().find(|(x, _)| *x == t) else { continue };
                match json_key {
                    None => s.clone(),
                    Some(k) => {
                        let obj: BTreeMap<String, serde_json::Value> = serde_json::from_str(s)
                            .map_err(|_| FetchError(format!("{field}: {t} is not a JSON object (json_key {k:?} given)")))?;
                        obj.get(k)
                            .and_then(serde_json::Value::as_str)
                            .ok_or_else(|| FetchError(format!("{field}: {t} has no string key {k:?}")))?
                            .to_owned()
                    }
                }
            }
            Source::Parameter(name) => {
                let t = Target::Parameter(name.to_owned());
                let Some((_, s)) = raw.iter().find(|(x, _)| *x == t) else { continue };
                s.clone()
            }
            _ => continue,
        };
        map.insert(&source, Secret::new(value.into_bytes()));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::secret::RawSecret;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// References as `Config::secret_refs` lists them for a config with
    /// origin auth, a purge token and two link keys.
    fn refs() -> Vec<(String, SecretRef)> {
        [
            ("routing.origin_auth.secret", r#"{ "ssm": "/offload/origin-auth" }"#),
            ("cache.purge_token", r#"{ "aws_secret": "offload/edge", "json_key": "purge" }"#),
            ("links.keys[0].secret", r#"{ "aws_secret": "offload/edge", "json_key": "link_a" }"#),
            ("links.keys[1].secret", r#"{ "aws_secret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:link-b" }"#),
            // Not an AWS source: no read.
            ("buckets.b.access_key_id", r#"{ "binding": "B_KEY" }"#),
        ]
        .into_iter()
        .map(|(field, json)| (field.to_owned(), serde_json::from_str::<RawSecret>(json).unwrap().validate(field).unwrap()))
        .collect()
    }

    fn borrowed(refs: &[(String, SecretRef)]) -> Vec<(String, &SecretRef)> {
        refs.iter().map(|(f, r)| (f.clone(), r)).collect()
    }

    fn answers(list: &[(u16, &str)]) -> Vec<Answer> {
        list.iter().map(|(status, body)| Answer { status: *status, body: (*body).to_owned() }).collect()
    }

    fn creds() -> Credentials {
        Credentials::new("AKIDROLE", "role-secret", Some("role-token".to_owned()))
    }

    #[test]
    fn requests_are_deduplicated_signed_json_posts() {
        let owned = refs();
        let cfg = borrowed(&owned);
        let reqs = requests(&cfg, &creds(), "us-east-1", None, 1_700_000_000).unwrap();
        let urls: Vec<&str> = reqs.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://ssm.us-east-1.amazonaws.com/",
                "https://secretsmanager.us-east-1.amazonaws.com/",
                "https://secretsmanager.eu-west-1.amazonaws.com/"
            ]
        );
        assert_eq!(reqs[0].body, r#"{"Name":"/offload/origin-auth","WithDecryption":true}"#);
        assert_eq!(reqs[1].body, r#"{"SecretId":"offload/edge"}"#);
        let h = |i: usize, n: &str| reqs[i].headers[n].clone();
        assert_eq!(h(1, "x-amz-target"), "secretsmanager.GetSecretValue");
        assert_eq!(h(0, "x-amz-target"), "AmazonSSM.GetParameter");
        assert_eq!(h(1, "x-amz-security-token"), "role-token");
        let auth = h(2, "authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDROLE/20231114/eu-west-1/secretsmanager/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"), "{auth}");
        assert!(!format!("{reqs:?}").contains("role-secret"));
        let local = requests(&cfg, &creds(), "us-east-1", Some("http://127.0.0.1:5000"), 1_700_000_000).unwrap();
        assert!(local.iter().all(|r| r.url == "http://127.0.0.1:5000/"));
        assert!(requests(&cfg, &creds(), "", None, 1_700_000_000).unwrap_err().to_string().contains("no region"));
    }

    #[test]
    fn answers_become_values_and_errors_name_the_secret() {
        let owned = refs();
        let cfg = borrowed(&owned);
        let edge = serde_json::json!({"SecretString": r#"{"purge":"purge-token-value-0123","link_a":"link-a-value-0123456789abcdef0123456"}"#}).to_string();
        let ok = answers(&[
            (200, r#"{"Parameter":{"Name":"/offload/origin-auth","Value":"origin-auth-value-0123"}}"#),
            (200, &edge),
            (200, r#"{"SecretString":"link-b-value-0123456789abcdef01234567"}"#),
        ]);
        let map = apply(&cfg, &ok).unwrap();
        assert_eq!(map.resolve("cache.purge_token", cfg[1].1).unwrap().expose(), b"purge-token-value-0123");
        assert_eq!(map.resolve("links.keys[1].secret", cfg[3].1).unwrap().expose(), b"link-b-value-0123456789abcdef01234567");
        assert_eq!(map.resolve("routing.origin_auth.secret", cfg[0].1).unwrap().expose(), b"origin-auth-value-0123");
        assert!(!format!("{map:?}").contains("value"), "{map:?}");
        let mut missing = ok.clone();
        missing[1] = answers(&[(400, r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#)]).remove(0);
        assert_eq!(
            apply(&cfg, &missing).unwrap_err().to_string(),
            "secrets: Secrets Manager secret \"offload/edge\": HTTP 400: ResourceNotFoundException"
        );
        let mut no_key = ok.clone();
        no_key[1].body = serde_json::json!({"SecretString": r#"{"purge":"purge-token-value-0123"}"#}).to_string();
        assert_eq!(
            apply(&cfg, &no_key).unwrap_err().to_string(),
            "secrets: links.keys[0].secret: Secrets Manager secret \"offload/edge\" has no string key \"link_a\""
        );
        let mut not_json = ok.clone();
        not_json[0] = answers(&[(502, "<html>bad gateway</html>")]).remove(0);
        assert_eq!(
            apply(&cfg, &not_json).unwrap_err().to_string(),
            "secrets: SSM parameter \"/offload/origin-auth\": HTTP 502: no AWS error type"
        );
        assert!(apply(&cfg, &ok[..2]).is_err());
    }
}
