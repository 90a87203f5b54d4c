#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The machine driven by a small synchronous executor: an origin closure,
//! an in-memory platform cache and a clock the test moves. (The native
//! tokio host in `edge/native` runs the same machine concurrently.)

use std::collections::HashMap;

use http::{HeaderName, HeaderValue};

use super::*;
use crate::secret::SecretMap;
use crate::Config;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const T0: u64 = 1_700_000_000_000;
const TOKEN: &str = "0123456789abcdef-token";

const CFG: &str = r#"
[edge]
name = "E"
[regions.r1]
location = { lat = 0.0, lon = 0.0 }
origins = [{ url = "http://10.0.0.1:8080" }, { url = "http://10.0.0.2:8080" }]
[routing.failover]
max_attempts = 2
[cache]
purge_token = { binding = "PURGE" }
lock_timeout_ms = 1000
[[routes]]
path = "/api/*"
cache = { stale_if_error = 300 }
[[routes]]
path = "/plain/*"
"#;

type OriginFn = Box<dyn FnMut(&Request<()>, &SendBody) -> Result<(u16, Vec<(&'static str, String)>, Vec<u8>), Outcome>>;

/// A synchronous executor.
struct Exec {
    iso: Isolate,
    now: u64,
    origin: OriginFn,
    l2: HashMap<String, (String, Vec<u8>)>,
    sent: Vec<Request<()>>,
    background: Vec<Machine>,
    logs: Vec<String>,
    /// The viewer body `ReadBody` reads.
    body: Vec<u8>,
    /// The platform's viewer location, for `Locate`, and how often it
    /// was asked for.
    location: crate::route::ViewerLocation,
    locates: usize,
    /// The declared lengths the machine gave with each `ReadBody`, and
    /// with each cache copy (`CacheFill::declared_length`).
    read_lengths: Vec<Option<u64>>,
    fill_lengths: Vec<Option<u64>>,
}

/// What the viewer got.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, n: &str) -> &str {
        self.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl Exec {
    fn new(origin: OriginFn) -> Self {
        Self::with_config(CFG, origin)
    }

    fn with_config(cfg: &str, origin: OriginFn) -> Self {
        let config = Config::from_toml(cfg).unwrap();
        let edge = Edge::new(config, &SecretMap::from_bindings([("PURGE", TOKEN)])).unwrap();
        Self {
            iso: Isolate::new(edge),
            now: T0,
            origin,
            l2: HashMap::new(),
            sent: Vec::new(),
            background: Vec::new(),
            logs: Vec::new(),
            body: Vec::new(),
            location: Default::default(),
            locates: 0,
            read_lengths: Vec::new(),
            fill_lengths: Vec::new(),
        }
    }

    fn tick(&self) -> Tick {
        Tick { now_ms: self.now, random: 7 }
    }

    /// Run one machine to its end; the upstream body is kept between
    /// `Send` and `Respond` as an executor keeps its response.
    fn run(&mut self, mut m: Machine) -> Option<Got> {
        let mut input = Input::Start;
        let mut upstream_body: Option<Vec<u8>> = None;
        for _ in 0..1000 {
            let t = self.tick();
            let io = m.next(&mut self.iso, input, t);
            input = match io {
                Io::ReadBody { limit, declared, .. } => {
                    self.read_lengths.push(declared);
                    Input::Body(if self.body.len() > limit { Err(BodyFailure::TooLarge) } else { Ok(self.body.clone()) })
                }
                Io::CacheGet { key, max_bytes } => {
                    Input::CacheEntry(self.l2.get(&key).filter(|(_, b)| b.len() <= max_bytes).cloned())
                }
                Io::CachePut(w) => {
                    self.l2.insert(w.key, (w.meta, w.body.to_vec()));
                    Input::Done
                }
                Io::CacheDelete(k) => {
                    self.l2.remove(&k);
                    Input::Done
                }
                Io::Locate => {
                    self.locates += 1;
                    Input::Location(self.location.clone())
                }
                Io::Sleep { ms } => {
                    self.now += ms;
                    Input::Woke
                }
                Io::Send { request, body, .. } => {
                    let r = (self.origin)(&request, &body);
                    self.sent.push(request);
                    Input::Upstream(r.map(|(status, hs, body)| {
                        upstream_body = Some(body);
                        let mut headers = HeaderMap::new();
                        for (n, v) in hs {
                            headers.append(HeaderName::from_static(n), HeaderValue::from_str(&v).unwrap());
                        }
                        UpstreamHead { status, headers }
                    }))
                }
                Io::Log { line, .. } => {
                    self.logs.push(line);
                    Input::Done
                }
                Io::Background(b) => {
                    self.background.push(*b);
                    Input::Done
                }
                Io::Fill(fill) => {
                    self.fill(fill, upstream_body.take().unwrap_or_default());
                    Input::Done
                }
                Io::Respond(reply) => {
                    let body = match reply.body {
                        ReplyBody::Empty => Vec::new(),
                        ReplyBody::Bytes(b) => b.to_vec(),
                        ReplyBody::Upstream => upstream_body.take().unwrap(),
                        ReplyBody::UpstreamFill(fill) => {
                            let b = upstream_body.take().unwrap();
                            self.fill(fill, b.clone());
                            b
                        }
                    };
                    return Some(Got { status: reply.status, headers: reply.headers, body });
                }
                Io::Finished => return None,
            };
        }
        panic!("machine did not end");
    }

    fn fill(&mut self, mut fill: CacheFill, body: Vec<u8>) {
        self.fill_lengths.push(fill.declared_length());
        for chunk in body.chunks(4) {
            if fill.accept(&mut self.iso, chunk, self.now) == Chunk::TooLarge {
                return;
            }
        }
        if let Some(w) = fill.finish(&mut self.iso, self.now) {
            self.l2.insert(w.key, (w.meta, w.body.to_vec()));
        }
    }

    fn request(&mut self, method: &str, target: &str, hs: &[(&str, &str)]) -> Got {
        let mut r = Request::builder().method(method).uri(format!("https://e.example{target}")).body(()).unwrap();
        for (n, v) in hs {
            r.headers_mut().append(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        self.run(Machine::new(r, Viewer::default())).expect("a viewer gets a response")
    }

    fn get(&mut self, target: &str) -> Got {
        self.request("GET", target, &[])
    }

    fn run_background(&mut self) {
        for m in std::mem::take(&mut self.background) {
            assert!(self.run(m).is_none(), "a background machine answers no viewer");
        }
    }
}

fn ok(body: &'static str, cc: &'static str) -> OriginFn {
    Box::new(move |_, _| Ok((200, vec![("cache-control", cc.to_owned())], body.as_bytes().to_vec())))
}

#[test]
fn miss_then_hit_sends_one_request() {
    let mut x = Exec::new(ok("hello", "max-age=60"));
    let a = x.get("/api/x");
    assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
    assert!(a.header("cache-status").contains("miss"), "{a:?}");
    assert!(a.header("cache-status").contains("stored"), "{a:?}");
    assert!(!a.header("server-timing").is_empty(), "{a:?}");
    x.now += 1000;
    let b = x.get("/api/x");
    assert_eq!((b.status, b.body.as_slice()), (200, &b"hello"[..]));
    assert!(b.header("cache-status").contains("hit"), "{b:?}");
    assert_eq!(x.sent.len(), 1);
    assert_eq!(x.logs.len(), 1, "one log line per upstream exchange");
}

#[test]
fn l2_entry_fills_a_fresh_isolate() {
    let mut x = Exec::new(ok("hello", "max-age=60"));
    x.get("/api/x");
    // A new isolate (empty L1) with the same platform cache.
    let l2 = std::mem::take(&mut x.l2);
    let mut y = Exec::new(ok("other", "max-age=60"));
    y.l2 = l2;
    let b = y.get("/api/x");
    assert_eq!(b.body, b"hello");
    assert!(y.sent.is_empty(), "served from L2");
}

#[test]
fn head_gets_no_body_and_null_body_statuses_neither() {
    let mut x = Exec::new(Box::new(|r, _| {
        let status = if r.uri().path().ends_with("/nc") { 204 } else { 200 };
        Ok((status, vec![("cache-control", "max-age=60".to_owned())], b"body".to_vec()))
    }));
    let h = x.request("HEAD", "/plain/a", &[]);
    assert_eq!((h.status, h.body.len()), (200, 0));
    let n = x.get("/plain/nc");
    assert_eq!((n.status, n.body.len()), (204, 0));
}

#[test]
fn stale_while_revalidate_answers_now_and_refreshes_in_the_background() {
    let mut n = 0;
    let mut x = Exec::new(Box::new(move |_, _| {
        n += 1;
        Ok((200, vec![("cache-control", "max-age=1, stale-while-revalidate=60".to_owned())], format!("v{n}").into_bytes()))
    }));
    assert_eq!(x.get("/api/s").body, b"v1");
    x.now += 5_000;
    let stale = x.get("/api/s");
    assert_eq!(stale.body, b"v1");
    assert!(stale.header("cache-status").contains("stale-while-revalidate"), "{stale:?}");
    assert_eq!(x.background.len(), 1);
    x.run_background();
    assert_eq!(x.get("/api/s").body, b"v2");
    assert_eq!(x.sent.len(), 2);
}

#[test]
fn stale_if_error_serves_the_stored_response_when_every_origin_fails() {
    let mut up = true;
    let mut x = Exec::new(Box::new(move |_, _| {
        let r = if up { Ok((200, vec![("cache-control", "max-age=1".to_owned())], b"kept".to_vec())) } else { Err(Outcome::ConnectError) };
        up = false;
        r
    }));
    x.get("/api/e");
    x.now += 10_000;
    let got = x.get("/api/e");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"kept"[..]));
    assert!(got.header("cache-status").contains("stale"), "{got:?}");
}

#[test]
fn failover_tries_the_next_origin_after_a_connect_error() {
    let mut x = Exec::new(Box::new(|r, _| {
        if r.uri().host() == Some("10.0.0.1") {
            Err(Outcome::ConnectError)
        } else {
            Ok((200, vec![], b"second".to_vec()))
        }
    }));
    let got = x.get("/plain/f");
    assert_eq!(got.body, b"second");
    let hosts: Vec<_> = x.sent.iter().map(|r| r.uri().host().unwrap().to_owned()).collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert_ne!(hosts[0], hosts[1]);
}

#[test]
fn a_coalesced_miss_waits_for_the_first_and_gets_its_response() {
    let mut x = Exec::new(ok("once", "max-age=60"));
    let r = || Request::builder().uri("https://e.example/api/c").body(()).unwrap();
    let mut first = Machine::new(r(), Viewer::default());
    let t = x.tick();
    let Io::CacheGet { .. } = first.next(&mut x.iso, Input::Start, t) else { panic!("first tries L2") };
    let Io::Send { .. } = first.next(&mut x.iso, Input::CacheEntry(None), t) else { panic!("first goes upstream") };
    // The second finds the key locked: it sleeps.
    let mut second = Machine::new(r(), Viewer::default());
    let Io::Sleep { .. } = second.next(&mut x.iso, Input::Start, t) else { panic!("second waits") };
    // The first's response arrives and is stored.
    let head = UpstreamHead { status: 200, headers: [(http::header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"))].into_iter().collect() };
    let Io::Log { .. } = first.next(&mut x.iso, Input::Upstream(Ok(head)), t) else { panic!() };
    let Io::Respond(Reply { body: ReplyBody::UpstreamFill(fill), .. }) = first.next(&mut x.iso, Input::Done, t) else { panic!() };
    x.fill(fill, b"once".to_vec());
    let Io::Respond(reply) = second.next(&mut x.iso, Input::Woke, t) else { panic!("second is answered") };
    assert_eq!(reply.bytes_body(), Some(&b"once"[..]));
    assert!(reply.headers.get("cache-status").unwrap().to_str().unwrap().contains("collapsed") || reply.headers.get("cache-status").unwrap().to_str().unwrap().contains("hit"));
}

#[test]
fn purge_reads_a_capped_body_and_deletes_platform_entries() {
    let mut x = Exec::new(ok("p", "max-age=60"));
    x.get("/api/p");
    assert_eq!(x.l2.len(), 1);
    x.body = br#"{"urls": ["/api/p"]}"#.to_vec();
    let auth = format!("Bearer {TOKEN}");
    let got = x.request("POST", "/_offload/purge", &[("authorization", &auth)]);
    assert_eq!(got.status, 200, "{:?}", String::from_utf8_lossy(&got.body));
    assert!(x.l2.is_empty(), "the purged URL's platform entry is deleted");
    x.get("/api/p");
    assert_eq!(x.sent.len(), 2, "purged: fetched again");
    // A wrong token is refused before any body is read.
    x.body = vec![b'x'; 300 * 1024];
    let refused = x.request("POST", "/_offload/purge", &[("authorization", "Bearer nope")]);
    assert_eq!(refused.status, 401);
    let too_large = x.request("POST", "/_offload/purge", &[("authorization", &auth)]);
    assert_eq!(too_large.status, 413);
}

#[test]
fn refusals_and_unrelayable_statuses_are_answered_by_the_edge() {
    let mut x = Exec::new(Box::new(|_, _| Ok((999, vec![], Vec::new()))));
    assert_eq!(x.get("/api/%2e%2e/x").status, 400);
    assert!(x.sent.is_empty());
    assert_eq!(x.get("/plain/odd").status, 502);
}

#[test]
fn a_replayable_body_is_read_once_and_resent_on_failover() {
    let mut x = Exec::new(Box::new(|r, body| match body {
        SendBody::Bytes(b) if r.uri().host() == Some("10.0.0.2") => Ok((201, vec![], b.to_vec())),
        SendBody::Bytes(_) => Err(Outcome::ConnectError),
        other => panic!("expected a buffered body, got {other:?}"),
    }));
    x.body = b"payload".to_vec();
    let got = x.request("POST", "/plain/up", &[("content-length", "7")]);
    assert_eq!((got.status, got.body.as_slice()), (201, &b"payload"[..]));
}

#[test]
fn reads_and_cache_copies_carry_the_declared_length_unless_the_platform_decoded_it() {
    let mut x = Exec::new(Box::new(|r, _| {
        let mut hs = vec![("cache-control", "max-age=60".to_owned()), ("content-length", "5".to_owned())];
        if r.uri().path().ends_with("/gz") {
            // `fetch()` decoded it and kept the encoded length.
            hs.push(("content-encoding", "gzip".to_owned()));
        }
        Ok((200, hs, b"hello".to_vec()))
    }));
    x.get("/api/plain");
    x.get("/api/gz");
    assert_eq!(x.fill_lengths, [Some(5), None]);
    x.body = b"payload".to_vec();
    x.request("POST", "/plain/up", &[("content-length", "7")]);
    x.request("POST", "/_offload/purge", &[("authorization", &format!("Bearer {TOKEN}")), ("content-length", "7")]);
    assert_eq!(x.read_lengths, [Some(7), Some(7)]);
}

#[test]
fn a_body_of_unknown_length_streams_once() {
    let mut x = Exec::new(Box::new(|_, body| {
        assert!(matches!(body, SendBody::ViewerStream));
        Err(Outcome::Timeout)
    }));
    let got = x.request("POST", "/plain/up", &[("transfer-encoding", "chunked")]);
    assert_eq!(x.sent.len(), 1, "a streamed body is never replayed");
    assert!(got.status >= 500, "{got:?}");
}

#[test]
fn a_wrong_input_ends_the_machine_without_a_panic() {
    let mut x = Exec::new(ok("x", "max-age=60"));
    let mut m = Machine::new(Request::builder().uri("https://e.example/api/w").body(()).unwrap(), Viewer::default());
    let t = x.tick();
    let Io::CacheGet { .. } = m.next(&mut x.iso, Input::Start, t) else { panic!() };
    let Io::Send { .. } = m.next(&mut x.iso, Input::CacheEntry(None), t) else { panic!() };
    let Io::Respond(r) = m.next(&mut x.iso, Input::Woke, t) else { panic!("answered") };
    assert_eq!(r.status, 502);
    assert!(matches!(m.next(&mut x.iso, Input::Done, t), Io::Finished));
    // The key is not left locked: the next request goes upstream.
    assert_eq!(x.get("/api/w").status, 200);
}

#[test]
fn an_entry_larger_than_the_limit_streams_but_is_not_stored() {
    let big: &'static str = Box::leak("x".repeat(5 * 1024 * 1024).into_boxed_str());
    let mut x = Exec::new(ok(big, "max-age=60"));
    let a = x.get("/api/big");
    assert_eq!(a.body.len(), big.len());
    x.get("/api/big");
    assert_eq!(x.sent.len(), 2, "not stored: fetched again");
}

const TWO_REGIONS: &str = r#"
[regions.frankfurt]
location = { lat = 50.1, lon = 8.7 }
origins = [{ url = "http://10.0.1.1:8080" }]
[regions.sydney]
location = { lat = -33.9, lon = 151.2 }
origins = [{ url = "http://10.0.2.1:8080" }]
[[routes]]
path = "/*"
cache = {}
"#;

fn at(lat: f64, lon: f64) -> crate::route::ViewerLocation {
    crate::route::ViewerLocation { coords: crate::route::geo::LatLon::new(lat, lon), ..Default::default() }
}

#[test]
fn the_viewer_location_is_read_only_when_a_request_goes_to_origins() {
    let mut x = Exec::with_config(TWO_REGIONS, ok("hi", "max-age=60"));
    let get = |x: &mut Exec, target: &str| {
        let r = Request::get(format!("https://e.example{target}")).body(()).unwrap();
        x.run(Machine::new(r, Viewer::default()).locate_later()).expect("a response")
    };
    x.location = at(48.9, 2.4); // Paris: Frankfurt is nearest
    let a = get(&mut x, "/a");
    assert_eq!((a.status, x.locates), (200, 1), "a miss asks once: {a:?}");
    assert_eq!(x.sent[0].uri().host(), Some("10.0.1.1"));
    let hit = get(&mut x, "/a");
    assert!(hit.header("cache-status").contains("hit"), "{hit:?}");
    assert_eq!((x.locates, x.sent.len()), (1, 1), "a hit never asks");
    x.location = at(-37.8, 145.0); // Melbourne: Sydney is nearest
    let b = get(&mut x, "/b");
    assert_eq!((b.status, x.locates), (200, 2));
    assert_eq!(x.sent[1].uri().host(), Some("10.0.2.1"), "the location read late decides the region");
}

/// Hit-for-miss: once a key's response could not be stored, its misses
/// go straight upstream for a while: no platform-cache lookup, and no
/// waiting behind another request of the key (an uncacheable URL must not
/// serialize its viewers). A storable answer is still stored.
#[test]
fn an_uncacheable_key_is_neither_coalesced_nor_looked_up_in_l2() {
    let storable = std::rc::Rc::new(std::cell::Cell::new(false));
    let s = storable.clone();
    let mut x = Exec::new(Box::new(move |_, _| {
        let cc = if s.get() { "max-age=60" } else { "no-store" };
        Ok((200, vec![("cache-control", cc.to_owned())], b"u".to_vec()))
    }));
    let r = |p: &str| Request::builder().uri(format!("https://e.example{p}")).body(()).unwrap();
    // An ordinary miss first (L2, then upstream); the answer is no-store.
    let mut first = Machine::new(r("/api/u"), Viewer::default());
    let t = x.tick();
    let Io::CacheGet { .. } = first.next(&mut x.iso, Input::Start, t) else { panic!("a first miss asks L2") };
    let got = x.get("/api/u");
    assert!(got.header("cache-status").contains("no-store"), "{got:?}");
    // Now marked: two at once both go upstream at once, without L2.
    let t = x.tick();
    let mut a = Machine::new(r("/api/u"), Viewer::default());
    let mut b = Machine::new(r("/api/u"), Viewer::default());
    let Io::Send { .. } = a.next(&mut x.iso, Input::Start, t) else { panic!("a marked miss goes straight upstream") };
    let Io::Send { .. } = b.next(&mut x.iso, Input::Start, t) else { panic!("and does not wait for another") };
    // The mark lapses: a key found uncacheable long ago is an ordinary miss.
    x.get("/api/v");
    x.now += 10 * 60 * 1000;
    let t = x.tick();
    let mut late = Machine::new(r("/api/v"), Viewer::default());
    let Io::CacheGet { .. } = late.next(&mut x.iso, Input::Start, t) else { panic!("the mark has lapsed") };
    // The origin turns cacheable: the answer is stored, the mark ends.
    x.get("/api/w");
    storable.set(true);
    let stored = x.get("/api/w");
    assert!(stored.header("cache-status").contains("stored"), "{stored:?}");
    let hit = x.get("/api/w");
    assert!(hit.header("cache-status").contains("hit"), "{hit:?}");
}
