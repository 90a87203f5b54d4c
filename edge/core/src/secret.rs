//! Secrets: where they come from ([`SecretRef`]) and their values
//! ([`Secret`]).
//!
//! The config never holds a secret value, only a reference naming where
//! each platform finds it:
//!
//! ```toml
//! [routing.origin_auth]
//! key_id = "k1"
//! secret = { binding = "OFFLOAD_ORIGIN_AUTH_SECRET", aws_secret = "offload/edge", json_key = "origin_auth", kvs = "origin-auth" }
//! ```
//!
//! - `binding`: a Workers secret binding (`wrangler secret put NAME`; local
//!   runs read `.dev.vars`), also the environment variable of native hosts;
//! - `aws_secret` (+ optional `json_key` when the secret string is a JSON
//!   object) or `ssm` (a SecureString parameter): Lambda@Edge reads them at
//!   cold start with the function's role;
//! - `kvs`: a key in the CloudFront KeyValueStore associated with the
//!   CloudFront Function (signed-link keys only).
//!
//! A reference may name several sources (one per platform); each platform
//! uses its own and refuses to start when it is missing. A plain string in
//! the config (`secret = "..."`) is refused with an error that does not
//! repeat it.
//!
//! ```
//! use offload_core::secret::{Platform, RawSecret, Secret, SecretMap};
//! let raw: RawSecret = serde_json::from_str(r#"{ "binding": "OFFLOAD_PURGE_TOKEN" }"#).unwrap();
//! let r = raw.validate("cache.purge_token").unwrap();
//! let mut values = SecretMap::new(Platform::Workers);
//! let src = r.source(Platform::Workers).unwrap();
//! values.insert(&src, Secret::new(b"0123456789abcdef".to_vec()));
//! assert_eq!(values.resolve("cache.purge_token", &r).unwrap().len(), 16);
//! let inline: RawSecret = serde_json::from_str(r#""hunter2-hunter2""#).unwrap();
//! let e = inline.validate("cache.purge_token").unwrap_err().to_string();
//! assert!(e.contains("cache.purge_token") && !e.contains("hunter2"));
//! ```

use std::collections::BTreeMap;
use std::fmt;


use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Secret bytes. `Debug` prints `Secret(<redacted>)`; there is no
/// `Display`, no `Serialize` and no `Deserialize` (the config holds
/// references, never values).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The raw bytes, for computing MACs.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The platforms that resolve references, each from its own source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Platform {
    /// Cloudflare Workers (secret bindings); also native hosts and local
    /// stacks (environment variables, `.dev.vars`).
    Workers,
    /// Lambda@Edge: AWS Secrets Manager or SSM Parameter Store.
    LambdaEdge,
    /// CloudFront Functions: the associated KeyValueStore.
    CloudFrontFunction,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Workers => "Workers (binding)",
            Self::LambdaEdge => "Lambda@Edge (aws_secret or ssm)",
            Self::CloudFrontFunction => "CloudFront Functions (kvs)",
        })
    }
}

/// Where an AWS-hosted secret lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AwsSecret {
    /// Secrets Manager: a secret id (name or ARN), and the key to read
    /// when the secret string is a JSON object.
    SecretsManager { secret_id: String, json_key: Option<String> },
    /// SSM Parameter Store (read with decryption).
    Parameter { name: String },
}

/// A validated reference: one or more sources, at most one per platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    binding: Option<String>,
    aws: Option<AwsSecret>,
    kvs: Option<String>,
}

/// One source of a reference, as a platform reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source<'a> {
    Binding(&'a str),
    SecretsManager { secret_id: &'a str, json_key: Option<&'a str> },
    Parameter(&'a str),
    Kvs(&'a str),
}

impl Source<'_> {
    /// A stable key naming this source (never the value), e.g.
    /// `binding:OFFLOAD_LINK_KEY`, `aws_secret:offload/edge#link`,
    /// `ssm:/offload/link`, `kvs:link-key`.
    pub fn key(&self) -> String {
        match self {
            Self::Binding(n) => format!("binding:{n}"),
            Self::SecretsManager { secret_id, json_key: None } => format!("aws_secret:{secret_id}"),
            Self::SecretsManager { secret_id, json_key: Some(k) } => format!("aws_secret:{secret_id}#{k}"),
            Self::Parameter(n) => format!("ssm:{n}"),
            Self::Kvs(k) => format!("kvs:{k}"),
        }
    }
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Binding(n) => write!(f, "secret binding {n:?}"),
            Self::SecretsManager { secret_id, json_key: None } => write!(f, "Secrets Manager secret {secret_id:?}"),
            Self::SecretsManager { secret_id, json_key: Some(k) } => {
                write!(f, "Secrets Manager secret {secret_id:?} key {k:?}")
            }
            Self::Parameter(n) => write!(f, "SSM parameter {n:?}"),
            Self::Kvs(k) => write!(f, "KeyValueStore key {k:?}"),
        }
    }
}

impl SecretRef {
    /// A reference to a binding / environment variable only.
    pub fn binding(name: impl Into<String>) -> Result<Self, SecretError> {
        let name = name.into();
        check_binding("binding", &name)?;
        Ok(Self { binding: Some(name), aws: None, kvs: None })
    }
    /// The source `platform` reads, if this reference names one.
    pub fn source(&self, platform: Platform) -> Option<Source<'_>> {
        match platform {
            Platform::Workers => self.binding.as_deref().map(Source::Binding),
            Platform::LambdaEdge => self.aws.as_ref().map(|a| match a {
                AwsSecret::SecretsManager { secret_id, json_key } => {
                    Source::SecretsManager { secret_id, json_key: json_key.as_deref() }
                }
                AwsSecret::Parameter { name } => Source::Parameter(name),
            }),
            Platform::CloudFrontFunction => self.kvs.as_deref().map(Source::Kvs),
        }
    }
    /// The binding name, if any.
    pub fn binding_name(&self) -> Option<&str> {
        self.binding.as_deref()
    }
    /// The KeyValueStore key, if any.
    pub fn kvs_key(&self) -> Option<&str> {
        self.kvs.as_deref()
    }
}

/// A secret reference as written in the config. A plain string is kept
/// only as the fact that one was written (its value is dropped at once).
#[derive(Clone, PartialEq, Eq)]
pub enum RawSecret {
    /// `secret = "..."`: refused by [`RawSecret::validate`].
    Inline,
    Ref(RawSecretRef),
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline => f.write_str("Inline(<dropped>)"),
            Self::Ref(r) => r.fmt(f),
        }
    }
}

/// `{ binding = .., aws_secret = .., json_key = .., ssm = .., kvs = .. }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    pub binding: Option<String>,
    pub aws_secret: Option<String>,
    pub json_key: Option<String>,
    pub ssm: Option<String>,
    pub kvs: Option<String>,
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSecret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference such as { binding = \"NAME\" }")
            }
            // The value is not kept, so no error can ever show it.
            fn visit_str<E: de::Error>(self, _v: &str) -> Result<RawSecret, E> {
                Ok(RawSecret::Inline)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSecret, A::Error> {
                RawSecretRef::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawSecret::Ref)
            }
        }
        d.deserialize_any(V)
    }
}

fn check_binding(field: &str, name: &str) -> Result<(), SecretError> {
    let ok = (1..=128).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SecretError::bad_name(field, "binding", name, "1-128 of [A-Za-z0-9_], not starting with a digit"))
    }
}

fn check_chars(field: &str, which: &'static str, v: &str, max: usize, extra: &[u8], why: &'static str) -> Result<(), SecretError> {
    if (1..=max).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b)) {
        Ok(())
    } else {
        Err(SecretError::bad_name(field, which, v, why))
    }
}

impl RawSecret {
    /// Validate the reference written at `field` (e.g. `links.keys[0].secret`).
    pub fn validate(self, field: &str) -> Result<SecretRef, SecretError> {
        let r = match self {
            Self::Inline => return Err(SecretError::new(field, SecretErrorKind::Inline)),
            Self::Ref(r) => r,
        };
        if let Some(b) = &r.binding {
            check_binding(field, b)?;
        }
        let aws = match (r.aws_secret, r.ssm, r.json_key) {
            (Some(_), Some(_), _) => return Err(SecretError::new(field, SecretErrorKind::Conflict("aws_secret", "ssm"))),
            (None, _, Some(_)) => {
                return Err(SecretError::new(field, SecretErrorKind::Conflict("json_key", "no aws_secret")))
            }
            (Some(id), None, json_key) => {
                // Secret names: [A-Za-z0-9/_+=.@-]; ARNs add ':'.
                check_chars(field, "aws_secret", &id, 2048, b"/_+=.@-:", "a secret name or ARN")?;
                if let Some(k) = &json_key {
                    if k.is_empty() || k.len() > 256 || k.chars().any(char::is_control) {
                        return Err(SecretError::bad_name(field, "json_key", k, "1-256 characters, no control characters"));
                    }
                }
                Some(AwsSecret::SecretsManager { secret_id: id, json_key })
            }
            (None, Some(name), None) => {
                check_chars(field, "ssm", &name, 2048, b"/_.-:", "a parameter name or ARN of [A-Za-z0-9/_.-:]")?;
                Some(AwsSecret::Parameter { name })
            }
            (None, None, None) => None,
        };
        if let Some(k) = &r.kvs {
            check_chars(field, "kvs", k, 512, b"_.-", "1-512 of [A-Za-z0-9_.-]")?;
        }
        if r.binding.is_none() && aws.is_none() && r.kvs.is_none() {
            return Err(SecretError::new(field, SecretErrorKind::NoSource));
        }
        Ok(SecretRef { binding: r.binding, aws, kvs: r.kvs })
    }
}

/// Resolved secret values of one platform, keyed by source
/// ([`Source::key`]). Executors fill it from the platform (Workers
/// bindings, Secrets Manager / SSM answers, environment variables) and
/// hand it to [`crate::Edge::new`]. `Debug` shows the keys, not the values.
#[derive(Clone)]
pub struct SecretMap {
    platform: Platform,
    values: BTreeMap<String, Secret>,
}

impl Default for SecretMap {
    fn default() -> Self {
        Self::new(Platform::Workers)
    }
}

impl fmt::Debug for SecretMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMap").field("platform", &self.platform).field("keys", &self.values.keys()).finish()
    }
}

impl SecretMap {
    pub fn new(platform: Platform) -> Self {
        Self { platform, values: BTreeMap::new() }
    }
    /// A Workers/native map from (binding name, value) pairs, e.g. the
    /// environment or a parsed `.dev.vars`.
    pub fn from_bindings<N: AsRef<str>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut m = Self::new(Platform::Workers);
        for (n, v) in pairs {
            m.insert_binding(n.as_ref(), Secret::new(v.as_ref().to_vec()));
        }
        m
    }
    pub fn platform(&self) -> Platform {
        self.platform
    }
    pub fn insert(&mut self, source: &Source<'_>, value: Secret) {
        self.values.insert(source.key(), value);
    }
    /// Insert by binding name (environment variables, `.dev.vars`).
    pub fn insert_binding(&mut self, name: &str, value: Secret) {
        self.insert(&Source::Binding(name), value);
    }
    pub fn get(&self, source: &Source<'_>) -> Option<&Secret> {
        self.values.get(&source.key())
    }
    /// The value of the reference at `field` on this map's platform; the
    /// error names the field and the source, never a value.
    pub fn resolve(&self, field: &str, r: &SecretRef) -> Result<Secret, SecretError> {
        let source = r
            .source(self.platform)
            .ok_or_else(|| SecretError::new(field, SecretErrorKind::NoSourceFor(self.platform)))?;
        match self.get(&source) {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            _ => Err(SecretError::new(field, SecretErrorKind::Missing(source.to_string()))),
        }
    }
}

/// A bad reference, or a secret the platform did not supply. Names the
/// field and the source; never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    field: String,
    kind: SecretErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretErrorKind {
    Inline,
    NoSource,
    Conflict(&'static str, &'static str),
    BadName { which: &'static str, value: String, why: &'static str },
    NoSourceFor(Platform),
    Missing(String),
    Invalid { source: String, why: &'static str },
}

impl SecretError {
    fn new(field: &str, kind: SecretErrorKind) -> Self {
        Self { field: field.to_owned(), kind }
    }
    fn bad_name(field: &str, which: &'static str, value: &str, why: &'static str) -> Self {
        Self::new(field, SecretErrorKind::BadName { which, value: value.to_owned(), why })
    }
    /// A resolved value that is unusable (e.g. too short): names the field
    /// and where it came from.
    pub fn invalid(field: &str, r: &SecretRef, platform: Platform, why: &'static str) -> Self {
        let source = r.source(platform).map_or_else(|| "(no source)".to_owned(), |s| s.to_string());
        Self::new(field, SecretErrorKind::Invalid { source, why })
    }
    /// The config field holding the reference.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.kind {
            SecretErrorKind::Inline => write!(
                f,
                "{field}: a secret value is not allowed in the config; name where it comes from: \
                 {{ binding = \"NAME\" }} (Workers, local .dev.vars), {{ aws_secret = \"id\" }} or \
                 {{ ssm = \"/name\" }} (Lambda@Edge), {{ kvs = \"key\" }} (CloudFront Functions)"
            ),
            SecretErrorKind::NoSource => {
                write!(f, "{field}: names no source: give binding, aws_secret, ssm or kvs")
            }
            SecretErrorKind::Conflict(a, b) => write!(f, "{field}: {a} together with {b}"),
            SecretErrorKind::BadName { which, value, why } => {
                write!(f, "{field}.{which}: bad name {value:?}: {why}")
            }
            SecretErrorKind::NoSourceFor(p) => write!(f, "{field}: no source for {p}"),
            SecretErrorKind::Missing(source) => write!(f, "{field}: {source} is not set"),
            SecretErrorKind::Invalid { source, why } => write!(f, "{field}: the value of {source} {why}"),
        }
    }
}

impl std::error::Error for SecretError {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn raw(toml_value: &str) -> Result<RawSecret, String> {
        #[derive(Deserialize)]
        struct Doc {
            s: RawSecret,
        }
        toml::from_str::<Doc>(&format!("s = {toml_value}")).map(|d| d.s).map_err(|e| e.to_string())
    }

    fn validate(toml_value: &str) -> Result<SecretRef, String> {
        raw(toml_value)?.validate("x.secret").map_err(|e| e.to_string())
    }

    #[test]
    fn references_parse_and_pick_the_platform_source() {
        let r = validate(r#"{ binding = "OFFLOAD_LINK_KEY", aws_secret = "offload/edge", json_key = "link", kvs = "link-1" }"#)
            .unwrap();
        assert_eq!(r.source(Platform::Workers), Some(Source::Binding("OFFLOAD_LINK_KEY")));
        assert_eq!(
            r.source(Platform::LambdaEdge),
            Some(Source::SecretsManager { secret_id: "offload/edge", json_key: Some("link") })
        );
        assert_eq!(r.source(Platform::CloudFrontFunction), Some(Source::Kvs("link-1")));
        let ssm = validate(r#"{ ssm = "/offload/link" }"#).unwrap();
        assert_eq!(ssm.source(Platform::LambdaEdge), Some(Source::Parameter("/offload/link")));
        assert_eq!(ssm.source(Platform::Workers), None);
        let arn = validate(r#"{ aws_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:offload-AbCdEf" }"#);
        assert!(arn.is_ok(), "{arn:?}");
    }

    #[test]
    fn bad_references_name_the_field_and_never_a_value() {
        let cases = [
            (r#""offload-local-secret-value""#, "x.secret: a secret value is not allowed in the config"),
            ("{}", "x.secret: names no source"),
            (r#"{ aws_secret = "a", ssm = "/b" }"#, "x.secret: aws_secret together with ssm"),
            (r#"{ json_key = "k" }"#, "x.secret: json_key together with no aws_secret"),
            (r#"{ binding = "1BAD" }"#, "x.secret.binding: bad name \"1BAD\""),
            (r#"{ binding = "A-B" }"#, "x.secret.binding: bad name \"A-B\""),
            (r#"{ ssm = "a b" }"#, "x.secret.ssm: bad name \"a b\""),
            (r#"{ kvs = "" }"#, "x.secret.kvs: bad name \"\""),
        ];
        for (value, want) in cases {
            let got = validate(value).unwrap_err();
            assert!(got.starts_with(want), "{value}: {got}");
            assert!(!got.contains("offload-local-secret-value"), "{got}");
        }
        let unknown = raw(r#"{ bindng = "X" }"#).unwrap_err();
        assert!(unknown.contains("unknown field `bindng`"), "{unknown}");
        assert_eq!(format!("{:?}", raw(r#""hunter2""#).unwrap()), "Inline(<dropped>)");
    }

    #[test]
    fn resolution_errors_name_the_source_not_the_value() {
        let r = validate(r#"{ binding = "OFFLOAD_PURGE_TOKEN" }"#).unwrap();
        let mut m = SecretMap::new(Platform::Workers);
        assert_eq!(
            m.resolve("cache.purge_token", &r).unwrap_err().to_string(),
            "cache.purge_token: secret binding \"OFFLOAD_PURGE_TOKEN\" is not set"
        );
        m.insert_binding("OFFLOAD_PURGE_TOKEN", Secret::new(Vec::new()));
        assert!(m.resolve("cache.purge_token", &r).is_err(), "an empty value counts as missing");
        m.insert_binding("OFFLOAD_PURGE_TOKEN", Secret::new(b"s3cr3t-value-0123".to_vec()));
        assert_eq!(m.resolve("cache.purge_token", &r).unwrap().expose(), b"s3cr3t-value-0123");
        let dbg = format!("{m:?}");
        assert!(dbg.contains("binding:OFFLOAD_PURGE_TOKEN") && !dbg.contains("s3cr3t"), "{dbg}");
        let lambda = SecretMap::new(Platform::LambdaEdge);
        assert_eq!(
            lambda.resolve("cache.purge_token", &r).unwrap_err().to_string(),
            "cache.purge_token: no source for Lambda@Edge (aws_secret or ssm)"
        );
        let e = SecretError::invalid("links.keys[0].secret", &r, Platform::Workers, "is shorter than 32 bytes");
        assert_eq!(
            e.to_string(),
            "links.keys[0].secret: the value of secret binding \"OFFLOAD_PURGE_TOKEN\" is shorter than 32 bytes"
        );
        assert_eq!(format!("{:?}", Secret::new(b"abc".to_vec())), "Secret(<redacted>)");
    }
}
