//! The three Lambda@Edge triggers: CloudFront event records in, the
//! [`Edge`]'s decisions out, expressed by the core's CloudFront policy
//! ([`offload_core::cloudfront::policy`]). This crate only converts and
//! keeps the per-container state.
//!
//! - **viewer-request** (before CloudFront's cache, every request): the
//!   presign endpoint and the signed-link gate answer here; otherwise the
//!   request goes on normalized to what Offload's cache key sees.
//! - **origin-request** (cache misses): the core picks the regional origin
//!   (geo from `CloudFront-Viewer-*` headers, passive health, failover
//!   state kept per container) or signs the bucket request; the event's
//!   request is rewritten to go there.
//! - **origin-response**: the route's cache rules as `Cache-Control`, and
//!   the origin's health recorded.

use offload_core::cloudfront::event::{error_json, BodyError};
use offload_core::cloudfront::{policy, Answer, Event, Request, Response, Trigger};
use offload_core::pipeline::{presign_too_large, PRESIGN_MAX_BODY};
use offload_core::proxy::canonical::CanonicalRequest;
use offload_core::secret::{SecretError, SecretMap};
use offload_core::sign::Credentials;
use offload_core::{Config, Edge, EdgeState, Forward, Plan, Step, Upstream, Viewer};

type HttpResponse = http::Response<Vec<u8>>;

/// The executor's per-container state: the edge and its passive health
/// and retry budget (a Lambda container serves one request at a time and
/// lives for many).
#[derive(Debug)]
pub struct Lambda {
    edge: Edge,
    state: EdgeState,
    role: Option<Credentials>,
}

impl Lambda {
    /// The edge from a validated config and the secrets read from AWS
    /// ([`offload_core::cloudfront::secrets`]); fails naming the first missing secret.
    pub fn new(config: Config, secrets: &SecretMap) -> Result<Self, SecretError> {
        let edge = Edge::new(config, secrets)?;
        let state = EdgeState::new(edge.config());
        Ok(Self { edge, state, role: None })
    }

    /// New secret values (a refresh after the cache TTL): the edge is
    /// rebuilt with them; health and retry state, and the role's
    /// credentials, are kept.
    pub fn set_secrets(&mut self, secrets: &SecretMap) -> Result<(), SecretError> {
        self.edge = Edge::new(self.edge.config().clone(), secrets)?;
        if let Some(role) = self.role.clone() {
            self.set_credentials(&role);
        }
        Ok(())
    }

    pub fn edge(&self) -> &Edge {
        &self.edge
    }

    /// The Lambda role's credentials (from the runtime's environment) for
    /// the buckets that sign with them ([`policy::buckets_on_role`]).
    pub fn set_credentials(&mut self, credentials: &Credentials) {
        self.role = Some(credentials.clone());
        let aliases: Vec<String> = policy::buckets_on_role(self.edge.config()).map(str::to_owned).collect();
        for alias in aliases {
            self.edge.set_bucket_credentials(&alias, credentials.clone());
        }
    }

    /// Both request triggers: the event's request in canonical form and
    /// the core's plan for it, or the response that answers it.
    fn plan(&self, ev: &Request, host: Option<&str>, now_ms: u64) -> Result<(CanonicalRequest, Box<Forward>), Box<HttpResponse>> {
        let viewer = ev.viewer();
        let req = ev.to_http(host, viewer.tls).ok_or_else(|| Box::new(error_json(400, "request target is not valid")))?;
        // One canonical form decides everything, here and in CloudFront's
        // cache key (viewer-request rewrites the event's URI to it).
        let req = self.edge.canonicalize(&req)?;
        if let Some(resp) = self.presign(ev, &req, &viewer, now_ms) {
            return Err(Box::new(resp));
        }
        match self.edge.plan(&req, &viewer, now_ms) {
            Plan::Respond(resp) => Err(Box::new(resp)),
            Plan::Forward(fwd) => Ok((req, fwd)),
        }
    }

    /// The presign endpoint, if this request is for it (either request
    /// trigger; the body needs the behavior's "include body" option).
    fn presign(&self, ev: &Request, req: &CanonicalRequest, viewer: &Viewer, now_ms: u64) -> Option<HttpResponse> {
        if !self.edge.is_presign(req) {
            return None;
        }
        // Refused from the head first (method, token, declared size): the
        // body is not even decoded.
        if let Some(refused) = self.edge.presign_precheck(req) {
            return Some(refused);
        }
        Some(match ev.body_bytes(PRESIGN_MAX_BODY) {
            Ok(bytes) => self.edge.presign_endpoint(req, &bytes, viewer, now_ms / 1000),
            Err(BodyError::TooLarge) => presign_too_large(),
            Err(BodyError::NotBase64) => error_json(400, "request body is not valid base64"),
        })
    }

    /// viewer-request: edge-answered requests, the signed-link gate, and
    /// the request normalized for CloudFront's cache key.
    pub fn viewer_request(&mut self, event: &Event, now_ms: u64) -> Answer {
        let respond = |resp: &HttpResponse| Answer::Respond(Response::generated(Trigger::ViewerRequest, resp));
        let Some(ev) = event.cf().and_then(|cf| cf.request.as_ref()) else {
            return respond(&error_json(500, "not a CloudFront request event"));
        };
        match self.plan(ev, ev.headers.value("host"), now_ms) {
            Err(resp) => respond(&resp),
            Ok((req, fwd)) => Answer::Forward(policy::normalize_viewer_request(ev, &req, &fwd, self.edge.config())),
        }
    }

    /// origin-request (CloudFront's misses only, so a CloudFront hit never
    /// costs retry budget): the request rewritten to its origin.
    pub fn origin_request(&mut self, event: &Event, now_ms: u64, rand: u32) -> Answer {
        let respond = |resp: &HttpResponse| Answer::Respond(Response::generated(Trigger::OriginRequest, resp));
        let Some((cf, ev)) = event.cf().and_then(|cf| Some((cf, cf.request.as_ref()?))) else {
            return respond(&error_json(500, "not a CloudFront request event"));
        };
        let mut fwd = match self.plan(ev, cf.viewer_host(), now_ms) {
            Ok((_, fwd)) => fwd,
            Err(resp) => return respond(&resp),
        };
        self.edge.begin(&mut fwd, &mut self.state, now_ms, rand);
        let sent = match &fwd.step {
            Step::Send { request, .. } => request,
            Step::GiveUp { response, .. } => return respond(response),
            Step::Deliver => return Answer::Forward(ev.clone()),
            Step::Begin => return respond(&error_json(502, "no upstream chosen")),
        };
        let bucket = match &fwd.upstream {
            Upstream::Bucket { alias } => self.edge.config().bucket(alias),
            Upstream::Origins => None,
        };
        Answer::Forward(policy::to_origin(ev, sent, fwd.route, bucket))
    }

    /// origin-response: cache rules as `Cache-Control`, the origin's
    /// health recorded.
    pub fn origin_response(&mut self, event: &Event, now_ms: u64) -> Response {
        let Some((cf, resp)) = event.cf().and_then(|cf| Some((cf, cf.response.as_ref()?))) else {
            return Response::generated(Trigger::OriginResponse, &error_json(502, "not a CloudFront response event"));
        };
        policy::origin_response(self.edge.config(), &mut self.state, cf.request.as_ref(), resp, now_ms)
    }
}

#[cfg(test)]
mod link_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use offload_core::secret::{Platform, Secret, Source};
    use offload_core::sign::link::issue_link;
    use offload_core::sign::{LinkClaims, Scope};
    use serde_json::{json, Value};

    const CONFIG: &str = r#"
        [regions.us-east-1]
        location = { lat = 38.9, lon = -77.4 }
        origins = [{ url = "http://127.0.0.1:18701" }]
        [buckets.www]
        endpoint = "http://127.0.0.1:18703"
        bucket = "www"
        region = "us-east-1"
        [links]
        current = "k1"
        keys = [{ id = "k1", secret = { ssm = "/offload/k1" } }]
        [[routes]]
        path = "/private/*"
        bucket = "www"
        signed_links = true
    "#;
    const NOW_MS: u64 = 1_700_000_000_000;

    fn event(v: Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    fn viewer_event(querystring: &str) -> Event {
        event(json!({ "Records": [{ "cf": { "config": { "eventType": "viewer-request" }, "request": {
            "clientIp": "203.0.113.9", "method": "GET", "uri": "/private/a.txt", "querystring": querystring,
            "headers": { "host": [{ "key": "Host", "value": "d1.cloudfront.net" }] } } } }] }))
    }

    fn value(answer: &Answer) -> Value {
        serde_json::to_value(answer).unwrap()
    }

    /// The gate reads the canonical query, where `%74oken` is `token`; the
    /// token viewer-request keeps for origin-request must be that one, or
    /// the two triggers disagree (found by the hostile suite).
    #[test]
    fn the_token_kept_for_origin_request_is_the_one_the_gate_read() {
        let mut secrets = SecretMap::new(Platform::LambdaEdge);
        secrets.insert(&Source::Parameter("/offload/k1"), Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()));
        let mut lambda = Lambda::new(Config::from_toml(CONFIG).unwrap(), &secrets).unwrap();
        lambda.set_credentials(&Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None));
        let key = lambda.edge().keys().links().unwrap().current().unwrap().clone();
        let token = issue_link(&key, &LinkClaims::new(Scope::parse("/private/a.txt").unwrap(), NOW_MS / 1000 + 60)).unwrap();
        for qs in [format!("%74oken={token}"), format!("x=1&%74oken={token}"), format!("token={token}&token=bad")] {
            let out = value(&lambda.viewer_request(&viewer_event(&qs), NOW_MS));
            assert!(out.get("status").is_none(), "{qs}: refused {out}");
            assert_eq!(out["querystring"].as_str().unwrap().rsplit('&').next().unwrap(), format!("token={token}"), "{qs}");
            let mut origin = out.clone();
            origin["headers"]["host"] = json!([{ "key": "Host", "value": "d1.cloudfront.net" }]);
            let ev = event(json!({ "Records": [{ "cf": { "config": { "eventType": "origin-request", "distributionDomainName": "d1.cloudfront.net" }, "request": origin } }] }));
            let sent = value(&lambda.origin_request(&ev, NOW_MS, 1));
            assert!(sent.get("status").is_none(), "{qs}: origin-request refused {sent}");
            assert_eq!(sent["uri"], "/www/private/a.txt", "{qs}");
        }
    }
}
