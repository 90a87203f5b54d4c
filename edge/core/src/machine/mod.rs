//! The request machine: the whole request loop of the edge as a sans-IO
//! state machine. Every executor (Workers, the native host in tests and
//! benchmarks) runs this one loop; an executor only converts types and
//! performs the [`Io`] the machine asks for.
//!
//! ```text
//!  executor                                  Machine (this module)
//!  --------                                  ---------------------
//!  Machine::new(head, viewer)
//!  io = m.next(&mut iso, Input::Start, t) ──> canonicalize, dispatch
//!  loop {                                    (purge, presign, routing),
//!    match io {                              cache lookup, coalescing,
//!      ReadBody  -> read, capped  ─┐         L2, failover, store/deliver,
//!      CacheGet  -> caches.match  ─┤         null-body rules, log line
//!      Sleep     -> timer         ─┼─ input ─> m.next(&mut iso, input, t)
//!      Send      -> fetch         ─┤
//!      Background-> waitUntil(..) ─┘
//!      Respond(reply) -> build the response, stream its body; break
//!    }
//!  }
//! ```
//!
//! The models are Pingora's explicit phases and `http-cache-semantics`'
//! "methods return what to do next". The time (`now_ms`) and randomness
//! come in with every input ([`Tick`]); the machine never reads a clock.
//! Shared per-isolate state (health, retry budget, the L1 cache) is an
//! [`Isolate`] the executor keeps and lends to each call; the machine
//! itself holds only this request's state, so many run interleaved.

mod fill;

use std::collections::VecDeque;
use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::cache::edge::{Adopted, AfterResponse, CacheDecision, CacheFetch, CachedResponse, L2Write, Waiting};
use crate::cache::EdgeCache;
use crate::pipeline::{presign_too_large, PRESIGN_MAX_BODY};
use crate::proxy::body::{declared_length, BodyKind, BodyLimit};
use crate::proxy::canonical::CanonicalRequest;
use crate::route::Outcome;
use crate::error::{InternalError, UpstreamError};
use crate::{Edge, EdgeState, Error, Forward, Plan, RequestError, Step, Viewer};

pub use fill::{CacheFill, Chunk};

/// Sleep between polls of a coalesced wait.
pub const POLL_MS: u64 = 10;

/// The per-isolate state every request shares: the edge (config and
/// keys), passive health and retry budget, and the L1 cache.
#[derive(Debug)]
pub struct Isolate {
    pub edge: Edge,
    pub state: EdgeState,
    pub cache: EdgeCache,
}

impl Isolate {
    pub fn new(edge: Edge) -> Self {
        let state = EdgeState::new(edge.config());
        let cache = edge.new_cache();
        Self { edge, state, cache }
    }
}

/// The platform's clock and a random number, read by the executor for
/// each input.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub now_ms: u64,
    pub random: u32,
}

/// What the executor tells the machine.
#[derive(Debug)]
pub enum Input {
    /// The first call.
    Start,
    /// An instruction without a result was carried out.
    Done,
    /// The viewer's body, read as [`Io::ReadBody`] asked.
    Body(Result<Vec<u8>, BodyFailure>),
    /// The platform cache's entry for [`Io::CacheGet`]: its metadata
    /// header and body, `None` for a miss or any failure.
    CacheEntry(Option<(String, Vec<u8>)>),
    /// The [`Io::Sleep`] is over.
    Woke,
    /// The viewer's location for [`Io::Locate`].
    Location(crate::route::ViewerLocation),
    /// The upstream's response head for [`Io::Send`] (the executor keeps
    /// its body until [`Io::Respond`] or the next `Send` says what to do
    /// with it), or why there is none.
    Upstream(Result<UpstreamHead, Outcome>),
}

/// A response head from upstream.
#[derive(Debug, Clone)]
pub struct UpstreamHead {
    pub status: u16,
    pub headers: HeaderMap,
}

/// Why the viewer's body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFailure {
    /// More than the limit of [`Io::ReadBody`].
    TooLarge,
    /// The stream failed (the viewer went away, the platform refused it).
    Failed(String),
}

/// How a request body goes upstream.
#[derive(Debug, Clone)]
pub enum SendBody {
    None,
    /// These bytes (a replayable copy the machine keeps).
    Bytes(Arc<[u8]>),
    /// The viewer's body stream, as it arrives (sent once: a failed
    /// attempt is never replayed after it).
    ViewerStream,
}

/// What the machine asks the executor to do. Each is answered with the
/// [`Input`] named on it.
#[derive(Debug)]
pub enum Io {
    /// Read the whole viewer body, stopping past `limit` bytes
    /// (`BodyFailure::TooLarge`): answer [`Input::Body`]. `declared`: its
    /// `Content-Length`, which frames it (an executor may read a body
    /// declared within `limit` in one call; still refused past `limit`).
    ReadBody { kind: BodyKind, limit: usize, declared: Option<u64> },
    /// Read where the platform places the viewer (Workers `request.cf`):
    /// answer [`Input::Location`]. Asked only of a machine made with
    /// [`Machine::locate_later`], once, when a request goes to a pool of
    /// origins (never for a cache hit).
    Locate,
    /// Look `key` up in the platform cache, reading at most `max_bytes` of
    /// body (a larger entry is a miss): answer [`Input::CacheEntry`].
    CacheGet { key: String, max_bytes: usize },
    /// Write this entry to the platform cache (may run after the response):
    /// answer [`Input::Done`].
    CachePut(L2Write),
    /// Delete this platform-cache key: answer [`Input::Done`].
    CacheDelete(String),
    /// Sleep: answer [`Input::Woke`].
    Sleep { ms: u64 },
    /// Send this request (an absolute URL), waiting at most `timeout_ms`
    /// for the response head (counted from when the body has been sent):
    /// answer [`Input::Upstream`]. A previous upstream response, if any,
    /// is dropped.
    Send { request: Request<()>, timeout_ms: u64, body: SendBody },
    /// Write one log line: answer [`Input::Done`].
    Log { level: Level, line: String },
    /// Run this machine on its own, after the response if the platform
    /// allows (Workers `waitUntil`): answer [`Input::Done`].
    Background(Box<Machine>),
    /// Read the last upstream response's body into this cache copy (no
    /// viewer waits for it): answer [`Input::Done`].
    Fill(CacheFill),
    /// The answer for the viewer. The machine is finished.
    Respond(Reply),
    /// Nothing more to do (a background machine, or any call after the
    /// end). Drop the last upstream response, if any.
    Finished,
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// The viewer's response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

/// Where the viewer's body comes from.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per response, moved once
pub enum ReplyBody {
    /// No body (null-body statuses, `HEAD`, empty bodies). Drop the last
    /// upstream response's body, if any.
    Empty,
    /// These bytes (an answer of the edge or a cached response).
    Bytes(Arc<[u8]>),
    /// The last upstream response's body, streamed through untouched.
    Upstream,
    /// The last upstream response's body, streamed through while a copy
    /// goes into the cache: feed each chunk to [`CacheFill::accept`] before
    /// passing it on, then [`CacheFill::finish`] (or [`CacheFill::fail`]).
    /// The cache copy goes on if the viewer goes away.
    UpstreamFill(CacheFill),
}

impl Reply {
    fn from_http(resp: Response<Vec<u8>>) -> Self {
        let (parts, body) = resp.into_parts();
        Self::bytes(parts.status.as_u16(), parts.headers, Arc::from(body))
    }
    fn bytes(status: u16, headers: HeaderMap, body: Arc<[u8]>) -> Self {
        let body = if body.is_empty() || is_null_body(status) { ReplyBody::Empty } else { ReplyBody::Bytes(body) };
        Self { status, headers, body }
    }
    fn cached(c: CachedResponse) -> Self {
        Self::bytes(c.status, c.headers, c.body)
    }
    /// The body as bytes, when it is not streamed from upstream.
    pub fn bytes_body(&self) -> Option<&[u8]> {
        match &self.body {
            ReplyBody::Bytes(b) => Some(b),
            ReplyBody::Empty => Some(&[]),
            _ => None,
        }
    }
}

/// Statuses that never carry a body (RFC 9110 §6.4.1); the platform
/// refuses a 304 with one.
pub fn is_null_body(status: u16) -> bool {
    matches!(status, 204 | 205 | 304) || status < 200
}

/// The viewer's body as the machine sends it upstream.
#[derive(Debug)]
enum Upload {
    None,
    Buffered(Arc<[u8]>),
    Stream { sent: bool },
}

impl Upload {
    /// Whether an attempt with this body counts as having sent it (so it
    /// may not be replayed): a buffered body unless the connection failed
    /// (nothing reached the origin); a stream always.
    fn sent(&self, connect_error: bool) -> bool {
        match self {
            Self::None => false,
            Self::Buffered(_) => !connect_error,
            Self::Stream { .. } => true,
        }
    }
}

#[derive(Debug)]
enum State {
    Start { raw: Request<()> },
    /// A revalidation in the background: plan again, then fetch.
    Revalidate { fetch: CacheFetch },
    PurgeBody,
    PresignBody,
    ReplayBody,
    Waiting(Waiting),
    L2(CacheFetch),
    /// Waiting for the viewer's location, then upstream.
    Locating,
    /// An attempt is in flight (started at `started`).
    Sent { started: u64 },
    Done,
}

/// One request's state.
#[derive(Debug)]
pub struct Machine {
    state: State,
    head: Option<CanonicalRequest>,
    viewer: Viewer,
    fwd: Option<Box<Forward>>,
    fetch: Option<CacheFetch>,
    upload: Upload,
    tried_l2: bool,
    /// The viewer's location is still to be asked for ([`Io::Locate`]).
    locate: bool,
    /// No viewer waits (a background revalidation).
    background: bool,
    sent_at: u64,
    last: Option<UpstreamHead>,
    /// Instructions decided together, handed out one per call.
    queue: VecDeque<Io>,
}

impl Machine {
    /// A viewer's request (its head; the body stays with the executor
    /// until [`Io::ReadBody`] or [`SendBody::ViewerStream`]).
    pub fn new(raw: Request<()>, viewer: Viewer) -> Self {
        Self::with_state(State::Start { raw }, None, viewer, false)
    }

    /// The executor reads the viewer's location only when asked
    /// ([`Io::Locate`]): for platforms where reading it costs (workerd
    /// parses `request.cf` on first access), so a cache hit never does.
    #[must_use]
    pub fn locate_later(mut self) -> Self {
        self.locate = true;
        self
    }

    fn with_state(state: State, head: Option<CanonicalRequest>, viewer: Viewer, background: bool) -> Self {
        Self {
            state,
            head,
            viewer,
            fwd: None,
            fetch: None,
            upload: Upload::None,
            tried_l2: false,
            locate: false,
            background,
            sent_at: 0,
            last: None,
            queue: VecDeque::new(),
        }
    }

    /// Take the result of the last instruction and say what to do next.
    pub fn next(&mut self, iso: &mut Isolate, input: Input, t: Tick) -> Io {
        if let Some(io) = self.queue.pop_front() {
            return io;
        }
        let state = std::mem::replace(&mut self.state, State::Done);
        let io = match (state, input) {
            (State::Start { raw }, _) => self.start(iso, raw, t),
            (State::Revalidate { fetch }, _) => {
                self.fetch = Some(fetch);
                self.replan(iso, t)
            }
            (State::PurgeBody, Input::Body(body)) => self.purge(iso, body, t),
            (State::PresignBody, Input::Body(body)) => self.presign(iso, body, t),
            (State::ReplayBody, Input::Body(body)) => match body {
                Ok(b) => {
                    self.upload = Upload::Buffered(Arc::from(b));
                    self.go_upstream(iso, t)
                }
                Err(e) => self.fail(iso, &body_error(&e)),
            },
            (State::Waiting(waiting), Input::Woke) => match iso.cache.poll(&waiting, t.now_ms) {
                Some(next) => self.decide(iso, next, t),
                None => {
                    self.state = State::Waiting(waiting);
                    Io::Sleep { ms: POLL_MS }
                }
            },
            (State::L2(fetch), Input::CacheEntry(entry)) => match entry {
                Some((meta, body)) => match iso.cache.adopt_l2(fetch, &meta, body, t.now_ms) {
                    Adopted::Decision(d) => self.decide(iso, d, t),
                    Adopted::Rejected(f) => self.fetch_upstream(iso, f, t),
                },
                None => self.fetch_upstream(iso, fetch, t),
            },
            (State::Locating, Input::Location(location)) => {
                if let Some(fwd) = self.fwd.as_mut() {
                    fwd.set_viewer_location(location.clone());
                }
                self.viewer.location = location;
                self.go_upstream(iso, t)
            }
            (State::Sent { started }, Input::Upstream(result)) => self.on_attempt(iso, started, result, t),
            (State::Done, _) => Io::Finished,
            (state, input) => {
                // An executor answered with the wrong input: end cleanly.
                let what = InternalError::UnexpectedInput { input: input_name(&input), state: state_name(&state) };
                self.state = state;
                self.release(iso, t);
                self.fail(iso, &what.into())
            }
        };
        self.after(io)
    }

    /// Queue-aware: once the machine has answered, later calls finish.
    fn after(&mut self, io: Io) -> Io {
        if matches!(io, Io::Respond(_) | Io::Finished) {
            self.state = State::Done;
        }
        io
    }

    /// Emit `first`, then `more` one per call, before anything queued
    /// earlier (an inner step queues its own follow-ups first).
    fn then(&mut self, first: Io, more: impl IntoIterator<Item = Io>) -> Io {
        for (i, io) in more.into_iter().enumerate() {
            self.queue.insert(i, io);
        }
        first
    }

    fn respond(&self, reply: Reply) -> Io {
        if self.background {
            Io::Finished
        } else {
            Io::Respond(reply)
        }
    }

    fn fail(&mut self, iso: &Isolate, e: &Error) -> Io {
        self.state = State::Done;
        let reply = Reply::from_http(iso.edge.error_response(e));
        self.respond(reply)
    }

    // ----- dispatch ------------------------------------------------------

    /// The dispatch order: canonical form (refusals), purge, presign, the
    /// route's plan, then a body to send or the cache.
    fn start(&mut self, iso: &mut Isolate, raw: Request<()>, t: Tick) -> Io {
        let head = match iso.edge.canonicalize(&raw) {
            Ok(h) => h,
            Err(refusal) => return self.respond(Reply::from_http(*refusal)),
        };
        let declared = declared_length(head.headers());
        if iso.cache.is_purge(&head) {
            // The token is checked before a byte of body is read.
            if let Some(refused) = iso.cache.purge_precheck(&head) {
                return self.respond(Reply::from_http(refused));
            }
            self.head = Some(head);
            self.state = State::PurgeBody;
            return Io::ReadBody { kind: BodyKind::Purge, limit: crate::cache::edge::PURGE_MAX_BODY, declared };
        }
        if iso.edge.is_presign(&head) {
            if let Some(refused) = iso.edge.presign_precheck(&head) {
                return self.respond(Reply::from_http(refused));
            }
            self.head = Some(head);
            self.state = State::PresignBody;
            return Io::ReadBody { kind: BodyKind::Presign, limit: PRESIGN_MAX_BODY, declared };
        }
        let plan = iso.edge.plan(&head, &self.viewer, t.now_ms);
        self.head = Some(head);
        let fwd = match plan {
            Plan::Respond(resp) => return self.respond(Reply::from_http(resp)),
            Plan::Forward(fwd) => fwd,
        };
        let send_body = fwd.send_body;
        let decision = (!send_body).then(|| iso.cache.lookup(iso.edge.cache_query(&fwd), t.now_ms));
        self.fwd = Some(fwd);
        if let Some(decision) = decision {
            return self.decide(iso, decision, t);
        }
        // The viewer's body streams to the origin; it is kept for a retry
        // only when its declared length fits the replay limit (a chunked
        // body of unknown length streams: see `edge/workers` on why).
        let limit = iso.edge.config().routing().body_replay_limit();
        let counter = BodyLimit::new(BodyKind::Replay, limit);
        if limit == 0 || declared.is_none() || counter.refuses_declared(declared) {
            self.upload = Upload::Stream { sent: false };
            return self.go_upstream(iso, t);
        }
        self.state = State::ReplayBody;
        Io::ReadBody { kind: BodyKind::Replay, limit, declared }
    }

    fn purge(&mut self, iso: &mut Isolate, body: Result<Vec<u8>, BodyFailure>, t: Tick) -> Io {
        let body = match body {
            Ok(b) => b,
            Err(BodyFailure::TooLarge) => return self.respond(Reply::from_http(iso.cache.purge_too_large())),
            Err(e) => return self.fail(iso, &body_error(&e)),
        };
        let Some(head) = self.head.as_ref() else { return self.fail(iso, &lost("request")) };
        let result = iso.cache.purge(iso.edge.config(), head, &body, t.now_ms);
        let reply = self.respond(Reply::from_http(result.response));
        let mut deletes: Vec<Io> = result.l2_delete.into_iter().map(Io::CacheDelete).collect();
        deletes.push(reply);
        let first = deletes.remove(0);
        self.then(first, deletes)
    }

    fn presign(&mut self, iso: &mut Isolate, body: Result<Vec<u8>, BodyFailure>, t: Tick) -> Io {
        let body = match body {
            Ok(b) => b,
            Err(BodyFailure::TooLarge) => return self.respond(Reply::from_http(presign_too_large())),
            Err(e) => return self.fail(iso, &body_error(&e)),
        };
        let Some(head) = self.head.as_ref() else { return self.fail(iso, &lost("request")) };
        let resp = iso.edge.presign_endpoint(head, &body, &self.viewer, t.now_ms / 1000);
        self.respond(Reply::from_http(resp))
    }

    // ----- the cache -----------------------------------------------------

    fn decide(&mut self, iso: &mut Isolate, decision: CacheDecision, t: Tick) -> Io {
        match decision {
            CacheDecision::Bypass(status) => {
                if let (Some(s), Some(fwd)) = (status, self.fwd.as_mut()) {
                    fwd.cache_status = s;
                }
                self.go_upstream(iso, t)
            }
            CacheDecision::Respond(c) => self.respond(Reply::cached(c)),
            CacheDecision::RespondAndRevalidate(c, fetch) => {
                let Some(head) = self.head.clone() else { return self.fail(iso, &lost("request")) };
                let mut bg = Machine::with_state(State::Revalidate { fetch }, Some(head), self.viewer.clone(), true);
                bg.locate = self.locate;
                let reply = self.respond(Reply::cached(c));
                self.then(Io::Background(Box::new(bg)), [reply])
            }
            CacheDecision::Wait(waiting) => {
                self.state = State::Waiting(waiting);
                Io::Sleep { ms: POLL_MS }
            }
            CacheDecision::Fetch(fetch) => {
                let key = if self.tried_l2 { None } else { fetch.l2_key() };
                self.tried_l2 = true;
                match key {
                    Some(key) => {
                        let max_bytes = iso.cache.max_entry_bytes();
                        self.state = State::L2(fetch);
                        Io::CacheGet { key, max_bytes }
                    }
                    None => self.fetch_upstream(iso, fetch, t),
                }
            }
        }
    }

    fn fetch_upstream(&mut self, iso: &mut Isolate, fetch: CacheFetch, t: Tick) -> Io {
        self.fetch = Some(fetch);
        self.go_upstream(iso, t)
    }

    /// Plan the request again (a fresh failover walk) for the fetch in
    /// hand: a background revalidation, or a refetch after a 304 that
    /// answered a question the viewer never asked.
    fn replan(&mut self, iso: &mut Isolate, t: Tick) -> Io {
        let plan = match self.head.as_ref() {
            Some(head) => iso.edge.plan(head, &self.viewer, t.now_ms),
            None => return self.fail(iso, &lost("request")),
        };
        match plan {
            Plan::Forward(fwd) => {
                self.fwd = Some(fwd);
                self.go_upstream(iso, t)
            }
            Plan::Respond(_) => {
                self.release(iso, t);
                self.fail(iso, &InternalError::RefetchNotPlanned.into())
            }
        }
    }

    /// Hand a held coalescing permit on (the fetch ended without storing).
    fn release(&mut self, iso: &mut Isolate, t: Tick) {
        if let Some(f) = self.fetch.take() {
            iso.cache.abandon(f, t.now_ms);
        }
    }

    // ----- upstream ------------------------------------------------------

    /// The origin is chosen now, when the request really goes upstream: a
    /// cache hit never gets here, so it costs no retry budget or probe.
    fn go_upstream(&mut self, iso: &mut Isolate, t: Tick) -> Io {
        if self.locate && self.fwd.as_deref().is_some_and(Forward::needs_location) {
            self.locate = false;
            self.state = State::Locating;
            return Io::Locate;
        }
        match self.fwd.as_mut() {
            Some(fwd) => iso.edge.begin(fwd, &mut iso.state, t.now_ms, t.random),
            None => return self.fail(iso, &lost("plan")),
        }
        self.last = None;
        self.step(iso, t)
    }

    /// Act on the plan's current step.
    fn step(&mut self, iso: &mut Isolate, t: Tick) -> Io {
        let Some(step) = self.fwd.as_ref().map(|f| f.step.clone()) else { return self.fail(iso, &lost("plan")) };
        match step {
            Step::Send { mut request, timeout_ms } => {
                if let Some(f) = &self.fetch {
                    f.prepare(&mut request);
                }
                let body = match &mut self.upload {
                    Upload::None => SendBody::None,
                    Upload::Buffered(b) => SendBody::Bytes(b.clone()),
                    Upload::Stream { sent: false } => {
                        self.upload = Upload::Stream { sent: true };
                        SendBody::ViewerStream
                    }
                    Upload::Stream { sent: true } => {
                        return self.fail(iso, &InternalError::BodyAlreadySent.into());
                    }
                };
                self.sent_at = t.now_ms;
                self.state = State::Sent { started: t.now_ms };
                Io::Send { request, timeout_ms, body }
            }
            Step::Begin => {
                self.release(iso, t);
                self.fail(iso, &InternalError::OriginNotChosen.into())
            }
            Step::Deliver => {
                let Some(head) = self.last.take() else {
                    self.release(iso, t);
                    return self.fail(iso, &InternalError::NoUpstreamResponse.into());
                };
                let line = self.fwd.as_ref().map(|f| f.log_line(head.status)).unwrap_or_default();
                let next = self.delivered(iso, head, t);
                self.then(Io::Log { level: Level::Info, line }, [next])
            }
            Step::GiveUp { response, stale_ok } => {
                let status = response.status().as_u16();
                let line = self.fwd.as_ref().map(|f| f.log_line(status)).unwrap_or_default();
                let stale = self.fetch.take().and_then(|f| iso.cache.on_give_up(f, stale_ok, t.now_ms));
                let reply = match stale {
                    Some(c) => Reply::cached(c),
                    None => Reply::from_http(response),
                };
                let next = self.respond(reply);
                self.then(Io::Log { level: Level::Warn, line }, [next])
            }
        }
    }

    fn on_attempt(&mut self, iso: &mut Isolate, started: u64, result: Result<UpstreamHead, Outcome>, t: Tick) -> Io {
        let (outcome, head) = match result {
            Ok(head) => (Outcome::Status(head.status), Some(head)),
            Err(o) => (o, None),
        };
        let body_sent = self.upload.sent(matches!(outcome, Outcome::ConnectError));
        let dur = t.now_ms.saturating_sub(started);
        match self.fwd.as_mut() {
            Some(fwd) => iso.edge.report(fwd, outcome, body_sent, dur, &mut iso.state, t.now_ms),
            None => return self.fail(iso, &lost("plan")),
        }
        self.last = head;
        self.step(iso, t)
    }

    /// The upstream response to deliver: through the cache's decision when
    /// a cache fetch is in hand, else straight through (an unsafe method
    /// then invalidates what it targeted, RFC 9111 §4.4).
    fn delivered(&mut self, iso: &mut Isolate, mut head: UpstreamHead, t: Tick) -> Io {
        let Some(status) = final_status(head.status) else {
            // The platform cannot relay it (its constructor throws): a
            // clear 502 instead.
            self.release(iso, t);
            let e = UpstreamError::UnrelayableStatus(head.status).into();
            return self.fail(iso, &e);
        };
        let Some(fetch) = self.fetch.take() else {
            let Some(fwd) = self.fwd.as_deref() else { return self.fail(iso, &lost("plan")) };
            if fwd.send_body {
                iso.cache.invalidate_after(iso.edge.cache_query(fwd), head.status, &head.headers, t.now_ms);
            }
            iso.edge.finish(fwd, status, &mut head.headers);
            let body = if self.no_viewer_body(head.status) { ReplyBody::Empty } else { ReplyBody::Upstream };
            return self.respond(Reply { status: head.status, headers: head.headers, body });
        };
        let after = iso.cache.on_response(fetch, head.status, &head.headers, self.sent_at, t.now_ms);
        let Some(fwd) = self.fwd.as_mut() else { return self.fail(iso, &lost("plan")) };
        match after {
            AfterResponse::Serve(c) => self.respond(Reply::cached(c)),
            AfterResponse::Refetch(fetch) => {
                self.fetch = Some(fetch);
                self.replan(iso, t)
            }
            AfterResponse::Deliver(d) => {
                d.apply(&mut fwd.cache_status, &mut head.headers);
                iso.edge.finish(fwd, status, &mut head.headers);
                let out = d.status(head.status);
                let body = if self.no_viewer_body(out) { ReplyBody::Empty } else { ReplyBody::Upstream };
                self.respond(Reply { status: out, headers: head.headers, body })
            }
            AfterResponse::Store(pending) => {
                // The body streams to the viewer as it arrives; a copy of
                // at most `max_entry_bytes` is kept and stored once the
                // body is complete.
                let delivery = iso.cache.streaming_delivery(&pending, t.now_ms);
                delivery.apply(&mut fwd.cache_status, &mut head.headers);
                iso.edge.finish(fwd, status, &mut head.headers);
                let out = delivery.status(head.status);
                let fill = CacheFill::new(pending);
                if self.background || delivery.is_not_modified() || self.no_viewer_body(out) {
                    // No body for the viewer (or no viewer): fill the
                    // cache only, then answer.
                    let reply = self.respond(Reply { status: out, headers: head.headers, body: ReplyBody::Empty });
                    return self.then(Io::Fill(fill), [reply]);
                }
                self.respond(Reply { status: out, headers: head.headers, body: ReplyBody::UpstreamFill(fill) })
            }
        }
    }

    fn no_viewer_body(&self, status: u16) -> bool {
        is_null_body(status) || self.head.as_ref().is_some_and(|h| *h.method() == Method::HEAD)
    }
}

/// A final status the edge relays (200..=599); others get a 502.
fn final_status(status: u16) -> Option<StatusCode> {
    if (200..=599).contains(&status) {
        StatusCode::from_u16(status).ok()
    } else {
        None
    }
}

/// A viewer body that could not be read: a 400 that says so (never an
/// empty or truncated body sent on).
fn body_error(e: &BodyFailure) -> Error {
    let detail = match e {
        BodyFailure::TooLarge => "the request body is larger than allowed".to_owned(),
        BodyFailure::Failed(why) => format!("the request body could not be read: {why}"),
    };
    Error::Request(RequestError::new(crate::error::RequestErrorKind::BadRequest, detail))
}

/// An internal state the machine should always have (a bug, reported as
/// a 502 rather than a panic).
fn lost(what: &'static str) -> Error {
    InternalError::MachineLost(what).into()
}

fn input_name(i: &Input) -> &'static str {
    match i {
        Input::Start => "Start",
        Input::Done => "Done",
        Input::Body(_) => "Body",
        Input::CacheEntry(_) => "CacheEntry",
        Input::Woke => "Woke",
        Input::Location(_) => "Location",
        Input::Upstream(_) => "Upstream",
    }
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Start { .. } => "start",
        State::Revalidate { .. } => "revalidate",
        State::PurgeBody => "purge-body",
        State::PresignBody => "presign-body",
        State::ReplayBody => "replay-body",
        State::Waiting(_) => "waiting",
        State::L2(_) => "l2",
        State::Locating => "locating",
        State::Sent { .. } => "sent",
        State::Done => "done",
    }
}

#[cfg(test)]
mod tests;
