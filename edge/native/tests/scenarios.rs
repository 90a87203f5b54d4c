#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The request loop's scenarios, in-process: the core's machine on the
//! native host, origins as closures, a paused tokio clock (so "60 s
//! later" takes no time). The same loop runs in workerd (tests/e2e).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use offload_core::route::geo::LatLon;
use offload_core::route::Outcome;
use offload_core::secret::SecretMap;
use offload_core::{Config, Viewer};
use offload_native::{Clock, Host};

const TOKEN: &str = "0123456789abcdef-purge";

const CFG: &str = r#"
[edge]
name = "edge"
[regions.near]
location = { lat = 0.0, lon = 0.0 }
origins = [{ url = "http://near.internal" }]
[regions.far]
location = { lat = 50.0, lon = 50.0 }
origins = [{ url = "http://far.internal" }]
[routing]
pool = ["near", "far"]
[routing.failover]
max_attempts = 2
[cache]
purge_token = { binding = "PURGE" }
[[routes]]
path = "/api/*"
cache = { stale_if_error = 300 }
[[routes]]
path = "/*"
"#;

/// Counts what reaches each origin.
#[derive(Default)]
struct Counts {
    near: AtomicUsize,
    far: AtomicUsize,
    all: AtomicUsize,
}

impl Counts {
    fn all(&self) -> usize {
        self.all.load(Ordering::SeqCst)
    }
}

/// A viewer next to the "near" region.
fn viewer() -> Viewer {
    let mut v = Viewer::default();
    v.location.coords = LatLon::new(0.1, 0.1);
    v
}

/// An origin's answer: status, Cache-Control, body.
type Answer = Result<(u16, &'static str, String), Outcome>;

fn host(counts: Arc<Counts>, origin: fn(&str, &str, usize) -> Answer) -> Arc<Host> {
    let config = Config::from_toml(CFG).unwrap();
    let secrets = SecretMap::from_bindings([("PURGE", TOKEN)]);
    let handler = move |req: Request<Bytes>| {
        let counts = Arc::clone(&counts);
        async move {
            let host = req.uri().host().unwrap_or("").to_owned();
            let n = if host.starts_with("near") { &counts.near } else { &counts.far };
            n.fetch_add(1, Ordering::SeqCst);
            let seen = counts.all.fetch_add(1, Ordering::SeqCst) + 1;
            // A little latency, so concurrent viewers overlap.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (status, cc, body) = origin(&host, req.uri().path(), seen)?;
            let mut resp = Response::new(Bytes::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
            resp.headers_mut().insert("cache-control", cc.parse().unwrap());
            Ok(resp)
        }
    };
    Host::new(config, &secrets, handler, Clock::Tokio { base_ms: 1_700_000_000_000 }).unwrap()
}

fn get(path: &str) -> Request<Bytes> {
    Request::builder().uri(format!("https://edge.example{path}")).body(Bytes::new()).unwrap()
}

fn cache_status(r: &Response<Bytes>) -> String {
    r.headers().get("cache-status").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn versioned(_: &str, _: &str, seen: usize) -> Answer {
    Ok((200, "max-age=10, stale-while-revalidate=60", format!("v{seen}")))
}

#[tokio::test(start_paused = true)]
async fn miss_then_hit() {
    let counts = Arc::new(Counts::default());
    let h = host(counts.clone(), versioned);
    let miss = h.handle(get("/api/a"), viewer()).await;
    assert!(cache_status(&miss).contains("miss"), "{}", cache_status(&miss));
    let hit = h.handle(get("/api/a"), viewer()).await;
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    assert_eq!(hit.body(), "v1");
    assert_eq!(counts.near.load(Ordering::SeqCst), 1);
    assert_eq!(h.l2_len(), 1, "stored in the platform cache too");
}

#[tokio::test(start_paused = true)]
async fn coalesced_miss_sends_one_request_for_many_viewers() {
    let counts = Arc::new(Counts::default());
    let h = host(counts.clone(), versioned);
    let viewers: Vec<_> = (0..25)
        .map(|_| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.handle(get("/api/hot"), viewer()).await })
        })
        .collect();
    for v in viewers {
        let r = v.await.unwrap();
        assert_eq!((r.status(), r.body().as_ref()), (StatusCode::OK, &b"v1"[..]));
    }
    assert_eq!(counts.near.load(Ordering::SeqCst), 1, "25 viewers, one origin request");
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_refreshes_in_the_background() {
    let counts = Arc::new(Counts::default());
    let h = host(counts.clone(), versioned);
    h.handle(get("/api/s"), viewer()).await;
    tokio::time::advance(Duration::from_secs(15)).await;
    let stale = h.handle(get("/api/s"), viewer()).await;
    assert_eq!(stale.body(), "v1", "answered at once with the stale copy");
    h.settle().await;
    assert_eq!(counts.all(), 2, "revalidated in the background");
    let fresh = h.handle(get("/api/s"), viewer()).await;
    assert_eq!(fresh.body(), "v2");
    assert!(cache_status(&fresh).contains("hit"), "{}", cache_status(&fresh));
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_when_every_origin_is_down() {
    fn down_after_first(_: &str, _: &str, seen: usize) -> Answer {
        if seen == 1 { Ok((200, "max-age=10", "kept".into())) } else { Err(Outcome::ConnectError) }
    }
    let counts = Arc::new(Counts::default());
    let h = host(counts.clone(), down_after_first);
    h.handle(get("/api/e"), viewer()).await;
    tokio::time::advance(Duration::from_secs(60)).await;
    let r = h.handle(get("/api/e"), viewer()).await;
    assert_eq!((r.status(), r.body().as_ref()), (StatusCode::OK, &b"kept"[..]));
    assert!(cache_status(&r).contains("stale"), "{}", cache_status(&r));
    assert!(counts.far.load(Ordering::SeqCst) >= 1, "the other region was tried first");
}

#[tokio::test(start_paused = true)]
async fn failover_to_the_next_region() {
    fn near_down(host: &str, _: &str, _: usize) -> Answer {
        if host.starts_with("near") { Err(Outcome::ConnectError) } else { Ok((200, "no-store", "from far".into())) }
    }
    let counts = Arc::new(Counts::default());
    let h = host(counts.clone(), near_down);
    let r = h.handle(get("/page"), viewer()).await;
    assert_eq!(r.body(), "from far");
    assert_eq!(counts.near.load(Ordering::SeqCst), 1);
    let timing = r.headers().get("server-timing").unwrap().to_str().unwrap();
    assert!(timing.contains("far"), "{timing}");
}

#[tokio::test(start_paused = true)]
async fn purge_empties_both_caches() {
    let counts = Arc::new(Counts::default());
    let h = host(counts.clone(), versioned);
    h.handle(get("/api/p"), viewer()).await;
    let purge = Request::builder()
        .method("POST")
        .uri("https://edge.example/_offload/purge")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Bytes::from_static(br#"{"urls": ["/api/p"]}"#))
        .unwrap();
    let r = h.handle(purge, viewer()).await;
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.body());
    assert_eq!(h.l2_len(), 0);
    let again = h.handle(get("/api/p"), viewer()).await;
    assert_eq!(again.body(), "v2");
}

#[tokio::test(start_paused = true)]
async fn a_slow_origin_times_out_and_the_next_answers() {
    fn slow_near(_: &str, _: &str, _: usize) -> Answer {
        Ok((200, "no-store", "ok".into()))
    }
    let counts = Arc::new(Counts::default());
    let config = Config::from_toml(CFG).unwrap();
    let c2 = Arc::clone(&counts);
    let handler = move |req: Request<Bytes>| {
        let counts = Arc::clone(&c2);
        async move {
            if req.uri().host() == Some("near.internal") {
                counts.near.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            let (s, cc, b) = slow_near("", "", 0)?;
            let mut r = Response::new(Bytes::from(b));
            *r.status_mut() = StatusCode::from_u16(s).unwrap();
            r.headers_mut().insert("cache-control", cc.parse().unwrap());
            Ok(r)
        }
    };
    let h = Host::new(config, &SecretMap::from_bindings([("PURGE", TOKEN)]), handler, Clock::Tokio { base_ms: 1_700_000_000_000 }).unwrap();
    let r = h.handle(get("/page"), viewer()).await;
    assert_eq!(r.body(), "ok");
    assert_eq!(counts.near.load(Ordering::SeqCst), 1);
}
