//! Request coalescing ("collapsed forwarding") as a pure state machine.
//!
//! For each key at most one request (the *leader*, holding a [`Permit`])
//! goes to the origin; others *wait* with a [`Ticket`] and are told the
//! outcome. No async runtime here: the adapter keeps a `Coalescer` per
//! isolate/process, parks waiters on its own futures or promises, and
//! calls [`Coalescer::poll`] when woken ([`Coalescer::complete`] returns the
//! tickets to wake) or on a timer.
//!
//! States per key: *free* → `begin` → *leading* (permit, waiters queue) →
//! `complete` → *free* (waiters get the outcome) or `abandon` (the leader
//! failed: the oldest waiter is promoted to leader) or, when the leader has
//! held the lock for `lock_timeout_ms`, it is a *dangling writer*: the next
//! `begin` or waiting `poll` takes over as leader. A late completion from a
//! superseded leader still releases the waiters. Time is `now_ms`,
//! milliseconds from any fixed origin, passed in.
//!
//! ```
//! use offload_core::cache::coalesce::{Begin, Coalescer, CoalesceConfig, Outcome, Poll};
//! let mut c = Coalescer::new(CoalesceConfig::default());
//! let Begin::Lead(permit) = c.begin("k", 0) else { panic!() };
//! let Begin::Wait(ticket) = c.begin("k", 10) else { panic!() };
//! assert_eq!(c.poll(ticket, 20), Poll::Pending);
//! assert_eq!(c.complete(permit, Outcome::Stored, 30), Ok(vec![ticket]));
//! assert_eq!(c.poll(ticket, 31), Poll::Ready(Outcome::Stored));
//! ```

use std::collections::{BTreeMap, VecDeque};

/// Identifies one waiting (or leading) request.
pub type Ticket = u64;

/// Limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalesceConfig {
    /// A leader holding the lock this long is presumed dead.
    pub lock_timeout_ms: u64,
    /// Waiters per key; more requests bypass coalescing.
    pub max_waiters: usize,
    /// How long an outcome waits to be polled before [`Coalescer::sweep`]
    /// drops it.
    pub outcome_ttl_ms: u64,
}

impl Default for CoalesceConfig {
    fn default() -> Self {
        Self { lock_timeout_ms: 10_000, max_waiters: 1_000, outcome_ttl_ms: 30_000 }
    }
}

/// The right (and duty) to fetch a key and then call
/// [`Coalescer::complete`] or [`Coalescer::abandon`].
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    key: String,
    ticket: Ticket,
}

impl Permit {
    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }
}

/// What `begin` decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// Fetch from the origin.
    Lead(Permit),
    /// Wait for the leader; poll with this ticket.
    Wait(Ticket),
    /// Too many waiters: go to the origin without coalescing.
    Bypass,
}

/// The leader's result, given to every waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response was stored: look it up again (a collapsed hit,
    /// `Cache-Status: ...; collapsed`).
    Stored,
    /// Nothing usable was stored: fetch from the origin yourself.
    NotStored,
}

/// A waiter's state.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    Pending,
    Ready(Outcome),
    /// The leader failed or dangled: you lead now.
    Lead(Permit),
    /// Unknown ticket (forgotten, swept, or never issued): fetch yourself.
    Unknown,
}

/// A misuse of the coalescer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoalesceError {
    #[error("coalesce: no lock for key (already completed or swept)")]
    NoLock,
    #[error("coalesce: ticket {0} does not hold the lock")]
    NotLeader(Ticket),
}

#[derive(Debug)]
struct Lock {
    leader: Ticket,
    since_ms: u64,
    superseded: Vec<Ticket>,
    waiters: VecDeque<Ticket>,
}

/// Coalescing state for many keys. See the module docs.
#[derive(Debug, Default)]
pub struct Coalescer {
    config: CoalesceConfig,
    locks: BTreeMap<String, Lock>,
    waiting_on: BTreeMap<Ticket, String>,
    ready: BTreeMap<Ticket, (Outcome, u64)>,
    next: Ticket,
}

impl Coalescer {
    pub fn new(config: CoalesceConfig) -> Self {
        Self { config, ..Self::default() }
    }

    fn ticket(&mut self) -> Ticket {
        self.next += 1;
        self.next
    }

    fn dangling(&self, lock: &Lock, now_ms: u64) -> bool {
        now_ms.saturating_sub(lock.since_ms) >= self.config.lock_timeout_ms
    }

    /// A request missed the cache for `key`: lead or wait.
    pub fn begin(&mut self, key: &str, now_ms: u64) -> Begin {
        let ticket = self.ticket();
        let timeout = self.config.lock_timeout_ms;
        let max_waiters = self.config.max_waiters;
        match self.locks.get_mut(key) {
            None => {
                let lock = Lock { leader: ticket, since_ms: now_ms, superseded: Vec::new(), waiters: VecDeque::new() };
                self.locks.insert(key.to_owned(), lock);
                Begin::Lead(Permit { key: key.to_owned(), ticket })
            }
            Some(lock) if now_ms.saturating_sub(lock.since_ms) >= timeout => {
                lock.superseded.push(lock.leader);
                lock.leader = ticket;
                lock.since_ms = now_ms;
                Begin::Lead(Permit { key: key.to_owned(), ticket })
            }
            Some(lock) if lock.waiters.len() >= max_waiters => Begin::Bypass,
            Some(lock) => {
                lock.waiters.push_back(ticket);
                self.waiting_on.insert(ticket, key.to_owned());
                Begin::Wait(ticket)
            }
        }
    }

    /// Where a waiter stands. `Lead` is returned once; the permit must then
    /// be completed or abandoned.
    pub fn poll(&mut self, ticket: Ticket, now_ms: u64) -> Poll {
        if let Some((outcome, _)) = self.ready.remove(&ticket) {
            return Poll::Ready(outcome);
        }
        let Some(key) = self.waiting_on.get(&ticket).cloned() else {
            return Poll::Unknown;
        };
        let Some(lock) = self.locks.get(&key) else {
            self.waiting_on.remove(&ticket);
            return Poll::Unknown;
        };
        if lock.leader == ticket {
            self.waiting_on.remove(&ticket);
            return Poll::Lead(Permit { key, ticket });
        }
        if self.dangling(lock, now_ms) {
            if let Some(lock) = self.locks.get_mut(&key) {
                lock.superseded.push(lock.leader);
                lock.leader = ticket;
                lock.since_ms = now_ms;
                lock.waiters.retain(|w| *w != ticket);
            }
            self.waiting_on.remove(&ticket);
            return Poll::Lead(Permit { key, ticket });
        }
        Poll::Pending
    }

    /// The leader finished: release the waiters with `outcome`. Returns the
    /// tickets to wake. A superseded (dangling) leader may still complete.
    pub fn complete(&mut self, permit: Permit, outcome: Outcome, now_ms: u64) -> Result<Vec<Ticket>, CoalesceError> {
        let lock = self.locks.get(&permit.key).ok_or(CoalesceError::NoLock)?;
        if lock.leader != permit.ticket && !lock.superseded.contains(&permit.ticket) {
            return Err(CoalesceError::NotLeader(permit.ticket));
        }
        let Some(lock) = self.locks.remove(&permit.key) else {
            return Err(CoalesceError::NoLock);
        };
        // A promoted waiter that has not polled yet also gets the outcome.
        let mut woken: Vec<Ticket> = lock.waiters.into_iter().collect();
        if lock.leader != permit.ticket && self.waiting_on.contains_key(&lock.leader) {
            woken.push(lock.leader);
        }
        for w in &woken {
            self.waiting_on.remove(w);
            self.ready.insert(*w, (outcome, now_ms));
        }
        Ok(woken)
    }

    /// The leader failed (origin error, client gone before the body): the
    /// oldest waiter becomes leader. Returns its ticket, to wake it.
    pub fn abandon(&mut self, permit: Permit, now_ms: u64) -> Result<Option<Ticket>, CoalesceError> {
        let lock = self.locks.get_mut(&permit.key).ok_or(CoalesceError::NoLock)?;
        if lock.leader != permit.ticket {
            if lock.superseded.contains(&permit.ticket) {
                lock.superseded.retain(|t| *t != permit.ticket);
                return Ok(None);
            }
            return Err(CoalesceError::NotLeader(permit.ticket));
        }
        Ok(self.promote(&permit.key, now_ms))
    }

    /// A waiter gives up (its client went away). If it had just been
    /// promoted, the next waiter is promoted instead.
    pub fn forget(&mut self, ticket: Ticket, now_ms: u64) -> Option<Ticket> {
        self.ready.remove(&ticket);
        let key = self.waiting_on.remove(&ticket)?;
        let lock = self.locks.get_mut(&key)?;
        if lock.leader == ticket {
            return self.promote(&key, now_ms);
        }
        lock.waiters.retain(|w| *w != ticket);
        None
    }

    fn promote(&mut self, key: &str, now_ms: u64) -> Option<Ticket> {
        let lock = self.locks.get_mut(key)?;
        match lock.waiters.pop_front() {
            Some(next) => {
                lock.leader = next;
                lock.since_ms = now_ms;
                Some(next)
            }
            None => {
                self.locks.remove(key);
                None
            }
        }
    }

    /// Drop outcomes nobody polled within `outcome_ttl_ms`, and dangling
    /// locks nobody waits on.
    pub fn sweep(&mut self, now_ms: u64) {
        let ttl = self.config.outcome_ttl_ms;
        self.ready.retain(|_, (_, at)| now_ms.saturating_sub(*at) < ttl);
        let timeout = self.config.lock_timeout_ms;
        let waiting_on = &self.waiting_on;
        self.locks.retain(|_, l| {
            now_ms.saturating_sub(l.since_ms) < timeout || !l.waiters.is_empty() || waiting_on.contains_key(&l.leader)
        });
        let locks = &self.locks;
        self.waiting_on.retain(|_, k| locks.contains_key(k));
    }

    /// Keys with a leader now.
    pub fn in_flight(&self) -> usize {
        self.locks.len()
    }

    /// Waiters queued on `key`.
    pub fn waiters(&self, key: &str) -> usize {
        self.locks.get(key).map_or(0, |l| l.waiters.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::type_complexity)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn lead(b: Begin) -> Permit {
        match b {
            Begin::Lead(p) => p,
            other => panic!("expected Lead, got {other:?}"),
        }
    }
    fn wait(b: Begin) -> Ticket {
        match b {
            Begin::Wait(t) => t,
            other => panic!("expected Wait, got {other:?}"),
        }
    }

    fn cfg() -> CoalesceConfig {
        CoalesceConfig { lock_timeout_ms: 100, max_waiters: 2, outcome_ttl_ms: 50 }
    }

    #[test]
    fn one_leader_many_waiters() {
        let mut c = Coalescer::new(cfg());
        let p = lead(c.begin("a", 0));
        let w1 = wait(c.begin("a", 1));
        let w2 = wait(c.begin("a", 2));
        assert_eq!(c.begin("a", 3), Begin::Bypass);
        let other = lead(c.begin("b", 3));
        assert_eq!(c.waiters("a"), 2);
        assert_eq!(c.in_flight(), 2);
        assert_eq!(c.poll(w1, 5), Poll::Pending);
        assert_eq!(c.complete(p, Outcome::NotStored, 10), Ok(vec![w1, w2]));
        assert_eq!(c.poll(w1, 11), Poll::Ready(Outcome::NotStored));
        assert_eq!(c.poll(w1, 11), Poll::Unknown, "an outcome is delivered once");
        assert_eq!(c.poll(w2, 11), Poll::Ready(Outcome::NotStored));
        // The key is free again.
        let p2 = lead(c.begin("a", 12));
        assert_eq!(c.complete(p2, Outcome::Stored, 13), Ok(vec![]));
        assert_eq!(c.complete(other, Outcome::Stored, 13), Ok(vec![]));
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn abandon_promotes_oldest_waiter() {
        let mut c = Coalescer::new(cfg());
        let p = lead(c.begin("a", 0));
        let w1 = wait(c.begin("a", 1));
        let w2 = wait(c.begin("a", 2));
        assert_eq!(c.abandon(p, 5), Ok(Some(w1)));
        let p1 = match c.poll(w1, 6) {
            Poll::Lead(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.poll(w2, 6), Poll::Pending);
        assert_eq!(c.complete(p1, Outcome::Stored, 7), Ok(vec![w2]));
        assert_eq!(c.poll(w2, 8), Poll::Ready(Outcome::Stored));
        // Abandon with no waiters frees the key.
        let p = lead(c.begin("a", 9));
        assert_eq!(c.abandon(p, 10), Ok(None));
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn dangling_writer_is_taken_over() {
        let mut c = Coalescer::new(cfg());
        let old = lead(c.begin("a", 0));
        let w = wait(c.begin("a", 10));
        assert_eq!(c.poll(w, 99), Poll::Pending);
        // After the timeout the waiter leads.
        let new = match c.poll(w, 100) {
            Poll::Lead(p) => p,
            other => panic!("{other:?}"),
        };
        let w2 = wait(c.begin("a", 101));
        // The superseded leader's late result still releases waiters.
        assert_eq!(c.complete(old, Outcome::Stored, 150), Ok(vec![w2]));
        assert_eq!(c.complete(new, Outcome::Stored, 151), Err(CoalesceError::NoLock));
        // A new request also takes over a dangling lock.
        let _stuck = lead(c.begin("b", 0));
        let fresh = lead(c.begin("b", 200));
        assert_eq!(fresh.key(), "b");
    }

    #[test]
    fn misuse_is_an_error_not_a_panic() {
        let mut c = Coalescer::new(cfg());
        let p = lead(c.begin("a", 0));
        let forged = Permit { key: "a".into(), ticket: 999 };
        assert_eq!(c.complete(forged, Outcome::Stored, 1), Err(CoalesceError::NotLeader(999)));
        let forged = Permit { key: "a".into(), ticket: 999 };
        assert_eq!(c.abandon(forged, 1), Err(CoalesceError::NotLeader(999)));
        assert_eq!(c.complete(p, Outcome::Stored, 1), Ok(vec![]));
        let stale = Permit { key: "a".into(), ticket: 1 };
        assert_eq!(c.abandon(stale, 2), Err(CoalesceError::NoLock));
        assert_eq!(c.poll(12345, 0), Poll::Unknown);
    }

    #[test]
    fn forget_and_sweep() {
        let mut c = Coalescer::new(cfg());
        let p = lead(c.begin("a", 0));
        let w1 = wait(c.begin("a", 1));
        let w2 = wait(c.begin("a", 2));
        assert_eq!(c.forget(w2, 3), None);
        assert_eq!(c.waiters("a"), 1);
        // w1 is promoted, then forgets before polling: nobody leads, key freed.
        assert_eq!(c.abandon(p, 4), Ok(Some(w1)));
        assert_eq!(c.forget(w1, 5), None);
        assert_eq!(c.in_flight(), 0);

        // Unpolled outcomes and dangling locks are swept.
        let p = lead(c.begin("b", 0));
        let w = wait(c.begin("b", 1));
        c.complete(p, Outcome::Stored, 10).unwrap();
        let _dangling = lead(c.begin("c", 10));
        c.sweep(59);
        assert_eq!(c.poll(w, 59), Poll::Ready(Outcome::Stored));
        let p = lead(c.begin("d", 0));
        let w = wait(c.begin("d", 1));
        c.complete(p, Outcome::Stored, 10).unwrap();
        c.sweep(60);
        assert_eq!(c.poll(w, 60), Poll::Unknown);
        c.sweep(110);
        assert_eq!(c.in_flight(), 0);
    }
}
