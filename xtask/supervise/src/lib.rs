//! Process supervision for everything that starts local processes: the
//! local stack of `cargo xtask dev` and of the end-to-end tests (origin-shim
//! regions, the bucket, `wrangler dev` with its workerd), and the harnesses
//! of `cargo xtask conformance` and `cargo xtask bench` (workerd, Varnish,
//! nginx, the suite's server).
//!
//! Why a crate of its own, here: both `xtask` (a binary) and the e2e
//! harness (`tests/e2e`, which `xtask` itself depends on for the local
//! stack) start processes, so the code they share has to sit below both.
//! It is orchestration, never product code, so it lives beside `xtask`;
//! it depends on nothing else in the workspace, so any crate can use it.
//!
//! What it does:
//! - every process starts as the leader of its own process group, stdin
//!   closed, stdout and stderr to `<logs>/<name>.log` ([`Supervisor`]);
//! - waits (with a deadline) until a TCP port accepts, or until any check
//!   passes, failing early with the log's tail when the process exits;
//! - stopping a process stops its whole group (wrangler's workerd,
//!   nginx's workers, varnish's child): SIGTERM, a grace period, SIGKILL
//!   for whatever is left; on drop of the [`Group`] / [`Supervisor`], and
//!   on Ctrl-C / SIGTERM / SIGHUP of this process ([`install_interrupt_handler`]);
//! - checks that loopback ports are free before a run starts.
//!
//! Linux only (process groups, `/proc`), like the rest of the local tooling.

use std::fs::{self, File};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a process group gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Lines of a log shown when a process dies or does not get ready.
const TAIL_LINES: usize = 30;

const POLL: Duration = Duration::from_millis(50);

// ------------------------------------------------------------- groups ----

/// Process groups this process started and has not stopped yet (their
/// leaders' pids): what an interrupt stops.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<u32>> {
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn signal_group(pgid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pgid) {
        // ESRCH (the group is gone) is the expected end.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// Whether any process of group `pgid` is still running (zombies, which
/// are only waiting to be reaped, do not count). Reads `/proc`.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(dir) = fs::read_dir("/proc") else { return false };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
}

/// One child process, started as the leader of its own process group, so
/// that stopping it reaches every process it started. Stopped on drop.
pub struct Group {
    name: String,
    child: Child,
    stopped: bool,
}

impl Group {
    /// Starts `cmd` in a new process group (the caller sets its stdio).
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Group, String> {
        cmd.process_group(0);
        let shown = format!("{cmd:?}");
        // Registered under the lock, so an interrupt cannot fall between
        // the start and the registration and miss this group.
        let mut live = live();
        let child = cmd.spawn().map_err(|e| format!("start {name} ({shown}): {e}"))?;
        live.push(child.id());
        Ok(Group { name: name.to_owned(), child, stopped: false })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The leader's pid, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The leader's exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the leader to exit; `None` if it has not.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops the whole group: SIGTERM, up to `grace` for every member to
    /// exit, then SIGKILL for whatever is left.
    pub fn stop_within(&mut self, grace: Duration) {
        stop_groups(&mut [self], grace);
    }

    /// [`Group::stop_within`] with [`GRACE`].
    pub fn stop(&mut self) {
        self.stop_within(GRACE);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM every group at once, one shared grace period, then SIGKILL.
fn stop_groups(groups: &mut [&mut Group], grace: Duration) {
    let groups: Vec<&mut &mut Group> = groups.iter_mut().filter(|g| !g.stopped).collect();
    for g in &groups {
        signal_group(g.pid(), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    for g in groups {
        let pgid = g.pid();
        while Instant::now() < deadline {
            // Reap the leader as soon as it exits (a zombie leader would
            // keep the group looking alive), then wait for the rest.
            let _ = g.child.try_wait();
            if !group_alive(pgid) {
                break;
            }
            std::thread::sleep(POLL);
        }
        // Children of the leader (workerd under wrangler, nginx's workers)
        // may outlive it: KILL the group in any case.
        signal_group(pgid, Signal::SIGKILL);
        let _ = g.child.wait();
        // SIGKILL is not instant: return once the group is really gone.
        let killed = Instant::now() + Duration::from_secs(2);
        while group_alive(pgid) && Instant::now() < killed {
            std::thread::sleep(Duration::from_millis(10));
        }
        g.stopped = true;
        live().retain(|p| *p != pgid);
    }
}

// ---------------------------------------------------------- interrupts ----

static WATCHED: AtomicBool = AtomicBool::new(false);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// On Ctrl-C (SIGINT), SIGTERM or SIGHUP: stop every process group this
/// process started and has not stopped (SIGTERM, [`GRACE`], SIGKILL) and
/// exit with status 130. After [`watch_interrupts`], the first signal only
/// sets [`interrupted`] (for a loop that then stops things in order, like
/// `cargo xtask dev`); a second one stops everything at once.
pub fn install_interrupt_handler() -> Result<(), String> {
    ctrlc::set_handler(|| {
        if WATCHED.load(Ordering::SeqCst) && !INTERRUPTED.swap(true, Ordering::SeqCst) {
            return;
        }
        stop_all_live();
        std::process::exit(130);
    })
    .map_err(|e| format!("installing the Ctrl-C handler: {e}"))
}

/// See [`install_interrupt_handler`].
pub fn watch_interrupts() {
    WATCHED.store(true, Ordering::SeqCst);
}

/// Whether an interrupt arrived while [`watch_interrupts`] was on.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Stops every live group without their `Child` handles (the interrupt
/// handler runs on its own thread while the owners are busy).
fn stop_all_live() {
    let pgids: Vec<u32> = live().clone();
    for pgid in &pgids {
        signal_group(*pgid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && pgids.iter().any(|p| group_alive(*p)) {
        std::thread::sleep(POLL);
    }
    for pgid in &pgids {
        signal_group(*pgid, Signal::SIGKILL);
    }
}

// --------------------------------------------------------- supervisor ----

struct Proc {
    group: Group,
    log: PathBuf,
}

/// Named processes, each logging to `<logs>/<name>.log`. Dropping the
/// supervisor stops them all (every group at once, see [`Group::stop`]).
pub struct Supervisor {
    procs: Vec<Proc>,
    logs: PathBuf,
}

impl Supervisor {
    /// A supervisor whose processes log into `logs` (created if missing).
    pub fn new(logs: impl Into<PathBuf>) -> Result<Supervisor, String> {
        let logs = logs.into();
        fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        Ok(Supervisor { procs: Vec::new(), logs })
    }

    /// The folder holding the logs.
    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Where `name`'s output goes.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Starts `cmd` as `name`: its own process group, stdin closed, stdout
    /// and stderr to [`Supervisor::log_path`] (truncated).
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<(), String> {
        if self.procs.iter().any(|p| p.group.name() == name) {
            return Err(format!("start {name}: a process of that name is already running"));
        }
        let log = self.log_path(name);
        let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let group = Group::spawn(name, &mut cmd)?;
        self.procs.push(Proc { group, log });
        Ok(())
    }

    fn find(&mut self, name: &str) -> Result<&mut Proc, String> {
        self.procs.iter_mut().find(|p| p.group.name() == name).ok_or_else(|| format!("no process named {name}"))
    }

    /// `Err` with the log's tail if `name` has exited (or was never started).
    pub fn check_alive(&mut self, name: &str) -> Result<(), String> {
        let p = self.find(name)?;
        match p.group.exited() {
            Some(status) => Err(format!("{name} exited ({status}); {}", log_tail(&p.log, TAIL_LINES))),
            None => Ok(()),
        }
    }

    /// Polls `ready` until it holds, `name` dies (error with its log's
    /// tail) or `timeout` passes (error naming `what` and the log).
    pub fn wait_for(&mut self, name: &str, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive(name)?;
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = self.log_path(name);
                return Err(format!("{name}: {what} within {} s; {}", timeout.as_secs_f64(), log_tail(&log, TAIL_LINES)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`.
    pub fn wait_tcp(&mut self, name: &str, port: u16, timeout: Duration) -> Result<(), String> {
        self.wait_for(name, &format!("did not listen on 127.0.0.1:{port}"), timeout, || !port_free(port))
    }

    /// The pid of `name` (the leader of its group).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.iter().find(|p| p.group.name() == name).map(|p| p.group.pid())
    }

    /// Stops `name` (its whole group) and forgets it.
    pub fn stop(&mut self, name: &str) {
        if let Some(i) = self.procs.iter().position(|p| p.group.name() == name) {
            self.procs.remove(i).group.stop();
        }
    }

    /// The first process found to have exited, with its status and log.
    pub fn dead_process(&mut self) -> Option<String> {
        self.procs.iter_mut().find_map(|p| {
            let status = p.group.exited()?;
            Some(format!("{} exited ({status}); {}", p.group.name(), log_tail(&p.log, TAIL_LINES)))
        })
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let mut groups: Vec<&mut Group> = self.procs.iter_mut().map(|p| &mut p.group).collect();
        stop_groups(&mut groups, GRACE);
    }
}

// -------------------------------------------------------- ports, logs ----

/// Whether nothing accepts connections on 127.0.0.1:`port`.
pub fn port_free(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err()
}

/// `Err` naming the first port in use; `who` says what may hold it
/// (e.g. "is `cargo xtask dev` already running?").
pub fn ensure_ports_free(ports: &[u16], who: &str) -> Result<(), String> {
    match ports.iter().find(|p| !port_free(**p)) {
        Some(p) => Err(format!("port 127.0.0.1:{p} is in use ({who})")),
        None => Ok(()),
    }
}

/// "log PATH:" and the last `lines` lines of the file.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    format!("log {}:\n{}", log.display(), tail.join("\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("offload-supervise-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn stopping_reaches_every_process_of_the_group() {
        let mut sup = Supervisor::new(scratch("group")).unwrap();
        // The leader starts two children, as wrangler starts workerd.
        sup.spawn("tree", sh("sleep 300 & sleep 300 & wait")).unwrap();
        let pgid = sup.pid("tree").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(group_alive(pgid));
        assert!(live().contains(&pgid));
        let t = Instant::now();
        sup.stop("tree");
        assert!(t.elapsed() < GRACE, "SIGTERM was enough: {:?}", t.elapsed());
        assert!(!group_alive(pgid), "a member of the group survived");
        assert!(!live().contains(&pgid));
        assert!(sup.pid("tree").is_none());
    }

    #[test]
    fn a_group_ignoring_sigterm_is_killed_after_the_grace_period() {
        let ready = scratch("stubborn");
        let script = format!("trap '' TERM; sleep 300 & touch {}; wait; sleep 300", ready.display());
        let mut g = Group::spawn("stubborn", sh(&script).stdout(Stdio::null())).unwrap();
        let pgid = g.pid();
        // Only once the trap is set (a loaded machine may take a while).
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(ready.exists(), "the script never got going");
        let t = Instant::now();
        g.stop_within(Duration::from_millis(500));
        assert!(t.elapsed() >= Duration::from_millis(500));
        assert!(!group_alive(pgid));
        let _ = fs::remove_file(&ready);
    }

    #[test]
    fn dropping_the_supervisor_stops_everything() {
        let pgids = {
            let mut sup = Supervisor::new(scratch("drop")).unwrap();
            sup.spawn("a", sh("sleep 300")).unwrap();
            sup.spawn("b", sh("sleep 300 & wait")).unwrap();
            assert!(sup.spawn("a", sh("true")).unwrap_err().contains("already running"));
            [sup.pid("a").unwrap(), sup.pid("b").unwrap()]
        };
        assert!(pgids.iter().all(|p| !group_alive(*p)));
    }

    #[test]
    fn output_goes_to_the_log_and_a_dead_process_is_reported_with_it() {
        let dir = scratch("log");
        let mut sup = Supervisor::new(&dir).unwrap();
        sup.spawn("boom", sh("echo starting; echo failing >&2; exit 3")).unwrap();
        let e = sup.wait_tcp("boom", 1, Duration::from_secs(10)).unwrap_err();
        assert!(e.starts_with("boom exited (exit status: 3)"), "{e}");
        assert!(e.contains("starting\nfailing"), "{e}");
        assert_eq!(fs::read_to_string(dir.join("boom.log")).unwrap(), "starting\nfailing\n");
        assert!(sup.dead_process().unwrap().contains("boom exited"));
        assert!(sup.check_alive("nobody").unwrap_err().contains("no process named nobody"));
    }

    #[test]
    fn waits_for_a_port_and_gives_up_at_the_deadline() {
        let mut sup = Supervisor::new(scratch("port")).unwrap();
        sup.spawn("idle", sh("echo idle; sleep 300")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_free(port));
        sup.wait_tcp("idle", port, Duration::from_secs(5)).unwrap();
        assert!(ensure_ports_free(&[port], "a test listener").unwrap_err().contains(&format!("127.0.0.1:{port} is in use (a test listener)")));
        drop(listener);
        assert!(port_free(port));
        let t = Instant::now();
        let e = sup.wait_tcp("idle", port, Duration::from_millis(300)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(e.contains(&format!("did not listen on 127.0.0.1:{port} within 0.3 s")) && e.contains("idle"), "{e}");
    }
}
