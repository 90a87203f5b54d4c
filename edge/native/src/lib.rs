//! The native executor of Offload's request machine
//! ([`offload_core::machine`]): the same loop the Workers executor runs,
//! in-process on tokio, with an in-memory platform cache and origins that
//! are plain async closures (the Viceroy style of mock origins). Cache and
//! routing scenarios run here in milliseconds instead of through workerd;
//! benchmarks use it for the core's own cost.
//!
//! Conversion and I/O only, like every executor: no cache, routing or
//! signing decision is made here. Bodies are whole `Bytes` (an origin
//! closure answers with one); the machine's byte limits still apply, and
//! a storable body is fed to the cache copy in chunks as a stream would.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use offload_core::machine::{
    BodyFailure, CacheFill, Chunk, Input, Io, Isolate, Level, Machine, Reply, ReplyBody, SendBody, Tick, UpstreamHead,
};
use offload_core::route::Outcome;
use offload_core::secret::{SecretError, SecretMap};
use offload_core::{Config, Edge, Viewer};
use tokio::task::JoinHandle;

/// Chunk size a storable body is fed to the cache copy in.
const CHUNK: usize = 16 * 1024;

/// A boxed origin answer.
pub type OriginFuture = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Outcome>> + Send>>;

/// Where upstream requests go: any `Fn(Request<Bytes>) -> Future`.
pub trait Origin: Send + Sync + 'static {
    fn send(&self, req: Request<Bytes>) -> OriginFuture;
}

impl<F, Fut> Origin for F
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Bytes>, Outcome>> + Send + 'static,
{
    fn send(&self, req: Request<Bytes>) -> OriginFuture {
        Box::pin(self(req))
    }
}

/// The host's clock.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system clock.
    System,
    /// `base_ms` plus tokio's elapsed time since the host started: with
    /// `tokio::time::pause`, tests move it with `tokio::time::advance`.
    Tokio { base_ms: u64 },
}

/// One isolate's worth of edge: the machine's shared state, a platform
/// cache, an origin.
pub struct Host {
    iso: Mutex<Isolate>,
    l2: Mutex<HashMap<String, (String, Bytes)>>,
    origin: Box<dyn Origin>,
    clock: Clock,
    started: tokio::time::Instant,
    background: Mutex<Vec<JoinHandle<()>>>,
    log: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Host {
    pub fn new(config: Config, secrets: &SecretMap, origin: impl Origin, clock: Clock) -> Result<Arc<Self>, SecretError> {
        Ok(Arc::new(Self {
            iso: Mutex::new(Isolate::new(Edge::new(config, secrets)?)),
            l2: Mutex::new(HashMap::new()),
            origin: Box::new(origin),
            clock,
            started: tokio::time::Instant::now(),
            background: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        }))
    }

    fn tick(&self) -> Tick {
        let now_ms = match self.clock {
            Clock::System => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            Clock::Tokio { base_ms } => base_ms + self.started.elapsed().as_millis() as u64,
        };
        Tick { now_ms, random: rand_u32(now_ms) }
    }

    /// Answer one viewer request.
    pub async fn handle(self: &Arc<Self>, req: Request<Bytes>, viewer: Viewer) -> Response<Bytes> {
        let (parts, body) = req.into_parts();
        let machine = Machine::new(Request::from_parts(parts, ()), viewer);
        self.run(machine, Some(body)).await.unwrap_or_else(|| status_only(StatusCode::NO_CONTENT))
    }

    /// Wait for every background task (revalidations, cache writes).
    pub async fn settle(&self) {
        loop {
            let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.background));
            if tasks.is_empty() {
                return;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }

    /// Entries in the platform cache.
    pub fn l2_len(&self) -> usize {
        lock(&self.l2).len()
    }

    /// The log lines written so far.
    pub fn logs(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    fn next(&self, m: &mut Machine, input: Input) -> Io {
        let t = self.tick();
        m.next(&mut lock(&self.iso), input, t)
    }

    /// Run `m` to its end: `Some` response for a viewer, `None` for a
    /// background machine.
    fn run(self: &Arc<Self>, mut m: Machine, mut viewer_body: Option<Bytes>) -> Pin<Box<dyn Future<Output = Option<Response<Bytes>>> + Send + '_>> {
        Box::pin(async move {
            let mut input = Input::Start;
            let mut last: Option<Bytes> = None;
            loop {
                input = match self.next(&mut m, input) {
                    Io::ReadBody { limit, .. } => {
                        let body = viewer_body.take().unwrap_or_default();
                        Input::Body(if body.len() > limit { Err(BodyFailure::TooLarge) } else { Ok(body.to_vec()) })
                    }
                    // The viewer's location came with the request.
                    Io::Locate => Input::Location(Default::default()),
                    Io::CacheGet { key, max_bytes } => Input::CacheEntry(
                        lock(&self.l2).get(&key).filter(|(_, b)| b.len() <= max_bytes).map(|(m, b)| (m.clone(), b.to_vec())),
                    ),
                    Io::CachePut(w) => {
                        lock(&self.l2).insert(w.key, (w.meta, Bytes::from_owner(w.body)));
                        Input::Done
                    }
                    Io::CacheDelete(key) => {
                        lock(&self.l2).remove(&key);
                        Input::Done
                    }
                    Io::Sleep { ms } => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Input::Woke
                    }
                    Io::Send { request, timeout_ms, body } => {
                        last = None;
                        let body = match body {
                            SendBody::None => Bytes::new(),
                            SendBody::Bytes(b) => Bytes::from_owner(b),
                            SendBody::ViewerStream => viewer_body.take().unwrap_or_default(),
                        };
                        let (parts, ()) = request.into_parts();
                        let sent = self.origin.send(Request::from_parts(parts, body));
                        Input::Upstream(match tokio::time::timeout(Duration::from_millis(timeout_ms), sent).await {
                            Ok(Ok(resp)) => {
                                let (parts, body) = resp.into_parts();
                                last = Some(body);
                                Ok(UpstreamHead { status: parts.status.as_u16(), headers: parts.headers })
                            }
                            Ok(Err(outcome)) => Err(outcome),
                            Err(_) => Err(Outcome::Timeout),
                        })
                    }
                    Io::Log { level, line } => {
                        let tag = if level == Level::Warn { "warn" } else { "info" };
                        lock(&self.log).push(format!("{tag} {line}"));
                        Input::Done
                    }
                    Io::Background(bg) => {
                        let host = Arc::clone(self);
                        let task = tokio::spawn(async move {
                            host.run(*bg, None).await;
                        });
                        lock(&self.background).push(task);
                        Input::Done
                    }
                    Io::Fill(fill) => {
                        self.fill(fill, last.take().unwrap_or_default());
                        Input::Done
                    }
                    Io::Respond(reply) => return Some(self.respond(reply, last.take())),
                    Io::Finished => return None,
                };
            }
        })
    }

    fn respond(&self, reply: Reply, last: Option<Bytes>) -> Response<Bytes> {
        let body = match reply.body {
            ReplyBody::Empty => Bytes::new(),
            ReplyBody::Bytes(b) => Bytes::from_owner(b),
            ReplyBody::Upstream => last.unwrap_or_default(),
            ReplyBody::UpstreamFill(fill) => {
                let body = last.unwrap_or_default();
                self.fill(fill, body.clone());
                body
            }
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
        *resp.headers_mut() = reply.headers;
        resp
    }

    /// Feed a body to the cache copy chunk by chunk, then store it.
    fn fill(&self, mut fill: CacheFill, body: Bytes) {
        for chunk in body.chunks(CHUNK) {
            let t = self.tick();
            if fill.accept(&mut lock(&self.iso), chunk, t.now_ms) == Chunk::TooLarge {
                return;
            }
        }
        let t = self.tick();
        let l2 = fill.finish(&mut lock(&self.iso), t.now_ms);
        if let Some(w) = l2 {
            lock(&self.l2).insert(w.key, (w.meta, Bytes::from_owner(w.body)));
        }
    }
}

fn status_only(status: StatusCode) -> Response<Bytes> {
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = status;
    r
}

/// A cheap per-call random number (xorshift of the clock and a counter):
/// the machine only uses it to spread load over weighted origins.
fn rand_u32(seed: u64) -> u32 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = seed ^ N.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 32) as u32
}
