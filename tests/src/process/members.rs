//! Which processes belong to a run, and signalling and reaping them.
//!
//! A run's members are the live processes in its process group (the leader's pid is the group's
//! id) and the live processes whose `XPS_RUN` environment variable carries the run's marker
//! word: those that left the group with `setsid()` or `setpgid()` included.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::procfs;

/// The environment variable that carries the markers of the runs a process belongs to,
/// separated by spaces, outermost first.
pub const MARKER_VAR: &str = "XPS_RUN";

/// How long [`Run::kill_all`] keeps killing processes that appear (a fork during the kill).
const KILL_LIMIT: Duration = Duration::from_secs(5);

/// The name this program gives its runs' markers: its executable's file name (`xps-check`,
/// `xps-lock`, `process_runner-1a2b...` for a test binary), so that [`super::leftovers`] can
/// find what an earlier run of the same tool left.
pub fn tool_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        let name = exe.as_deref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        let name: String = name.unwrap_or_else(|| "xps".into()).chars().map(sanitize).collect();
        if name.is_empty() { "xps".into() } else { name }
    })
}

fn sanitize(c: char) -> char {
    if c == ':' || c.is_whitespace() { '_' } else { c }
}

/// This process as markers name it: its pid and start time (a pid alone may be reused).
fn owner() -> (u32, u64) {
    static OWNER: OnceLock<(u32, u64)> = OnceLock::new();
    *OWNER.get_or_init(|| {
        let pid = std::process::id();
        (pid, procfs::stat(pid).map_or(0, |s| s.start_time))
    })
}

/// A fresh marker word for a run: `TOOL:PID:START:N`.
pub(super) fn new_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let (pid, start) = owner();
    format!("{}:{pid}:{start}:{}", tool_tag(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The `XPS_RUN` value for `cmd`: the markers it would inherit (from its own environment
/// settings, else ours), then `marker`.
pub(super) fn marker_value(cmd: &Command, marker: &str) -> OsString {
    let inherited = match cmd.get_envs().find(|(name, _)| *name == MARKER_VAR) {
        Some((_, value)) => value.map(OsString::from),
        None => std::env::var_os(MARKER_VAR),
    };
    let mut value = inherited.filter(|v| !v.is_empty()).unwrap_or_default();
    if !value.is_empty() {
        value.push(" ");
    }
    value.push(marker);
    value
}

/// A marker word, taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Marker<'a> {
    pub tool: &'a str,
    pub owner_pid: u32,
    pub owner_start: u64,
}

pub(super) fn parse_marker(word: &str) -> Option<Marker<'_>> {
    let mut parts = word.split(':');
    let tool = parts.next()?;
    let owner_pid = parts.next()?.parse().ok()?;
    let owner_start = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some(Marker { tool, owner_pid, owner_start })
}

/// The marker words `pid` carries (none if it is gone, a zombie, or another user's).
pub(super) fn markers_of(pid: u32) -> Vec<String> {
    procfs::env_var(pid, MARKER_VAR).map(|v| v.split(' ').map(str::to_string).collect()).unwrap_or_default()
}

/// The live processes (zombies left out) whose `XPS_RUN` carries `marker`
/// ([`super::Process::marker`]): what is left of a run, its leader's group aside.
pub fn pids_carrying(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    procfs::pids()
        .into_iter()
        .filter(|&pid| pid != me && procfs::stat(pid).is_some_and(|s| !s.is_zombie()))
        .filter(|&pid| markers_of(pid).iter().any(|m| m == marker))
        .collect()
}

/// What a run is, for finding its members.
#[derive(Debug, Clone)]
pub(super) struct Run {
    /// The leader's pid: also the process group's id.
    pub leader: u32,
    /// The leader's start time: every member started after it.
    pub leader_start: u64,
    /// The run's marker word.
    pub marker: String,
}

/// A live member of a run.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub pid: u32,
    pub start_time: u64,
    pub pgrp: u32,
    pub session: u32,
}

/// What a run's stop has seen of it, to know its orphans once they are zombies (whose
/// environment can no longer be read).
#[derive(Debug, Default)]
pub(super) struct Seen {
    pids: HashSet<(u32, u64)>,
    groups: HashSet<u32>,
    sessions: HashSet<u32>,
}

impl Seen {
    fn record(&mut self, member: &Member) {
        self.pids.insert((member.pid, member.start_time));
        // Our own group and session hold other code's children too: never count them.
        let (own_group, own_session) = own_group_and_session();
        if member.pgrp != own_group {
            self.groups.insert(member.pgrp);
        }
        if member.session != own_session {
            self.sessions.insert(member.session);
        }
    }
}

fn own_group_and_session() -> (u32, u32) {
    static OWN: OnceLock<(u32, u32)> = OnceLock::new();
    *OWN.get_or_init(|| procfs::stat(std::process::id()).map_or((0, 0), |s| (s.pgrp, s.session)))
}

impl Run {
    /// The run's live processes: its group's members and those carrying its marker. When none
    /// is found it looks once more, 20 ms later: a process that forked and exited while `/proc`
    /// was being listed (a daemon's double fork) leaves a child the listing did not have yet.
    pub fn live_members(&self) -> Vec<Member> {
        let found = self.scan();
        if !found.is_empty() {
            return found;
        }
        thread::sleep(Duration::from_millis(20));
        self.scan()
    }

    fn scan(&self) -> Vec<Member> {
        let me = std::process::id();
        procfs::pids()
            .into_iter()
            .filter(|&pid| pid != me)
            .filter_map(|pid| {
                let stat = procfs::stat(pid)?;
                // A descendant started after the leader; a zombie is no longer running.
                if stat.is_zombie() || stat.start_time < self.leader_start {
                    return None;
                }
                let member = stat.pgrp == self.leader || markers_of(pid).contains(&self.marker);
                member.then_some(Member { pid, start_time: stat.start_time, pgrp: stat.pgrp, session: stat.session })
            })
            .collect()
    }

    /// Sends `signal` to the group and to every live member outside it, recording them in
    /// `seen`. The caller makes sure the leader is not reaped yet: only then does the group id
    /// still name this run's group.
    pub fn signal_all(&self, signal: libc::c_int, seen: &mut Seen) {
        // SAFETY: kill() takes no pointers. The group's id is the unreaped leader's pid, which
        // the kernel does not reuse for another group while the leader exists.
        unsafe { libc::kill(-(self.leader as libc::pid_t), signal) };
        for member in self.live_members() {
            seen.record(&member);
            if member.pgrp != self.leader {
                signal_pid(member.pid, member.start_time, signal);
            }
        }
    }

    /// SIGKILL to every member until none is left alive (a member may fork meanwhile), for at
    /// most [`KILL_LIMIT`].
    pub fn kill_all(&self, seen: &mut Seen) {
        let deadline = Instant::now() + KILL_LIMIT;
        // SAFETY: as in signal_all: the leader is not reaped yet.
        unsafe { libc::kill(-(self.leader as libc::pid_t), libc::SIGKILL) };
        loop {
            let live = self.live_members();
            if live.is_empty() || Instant::now() >= deadline {
                return;
            }
            // SAFETY: as above.
            unsafe { libc::kill(-(self.leader as libc::pid_t), libc::SIGKILL) };
            for member in &live {
                seen.record(member);
                signal_pid(member.pid, member.start_time, libc::SIGKILL);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reaps the zombies among our children that belong to the run (not the leader): the
    /// orphans the kernel handed to us as their subreaper. Only processes we know are the
    /// run's: seen alive with its marker, or in its group, or in a group or session that one
    /// of its members was in. Never `waitpid(-1)`: other children are not ours to reap.
    pub fn reap_adopted(&self, seen: &Seen) {
        let me = std::process::id();
        for _ in 0..50 {
            let mut dying = false;
            for pid in procfs::pids() {
                let Some(stat) = procfs::stat(pid) else { continue };
                if stat.ppid != me || pid == self.leader {
                    continue;
                }
                let ours = stat.pgrp == self.leader
                    || seen.pids.contains(&(pid, stat.start_time))
                    || seen.groups.contains(&stat.pgrp)
                    || seen.sessions.contains(&stat.session);
                if !ours {
                    continue;
                }
                if stat.is_zombie() {
                    let mut status = 0;
                    // SAFETY: `status` is a live int; the pid is a zombie child of ours, which
                    // cannot be reused until it is reaped, so this reaps exactly that process.
                    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
                } else {
                    dying = true;
                }
            }
            if !dying {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sends `signal` to `pid` if it is still the process that started at `start_time`. Through a
/// pidfd, so a pid reused since the check cannot be reached.
pub(super) fn signal_pid(pid: u32, start_time: u64, signal: libc::c_int) {
    let same = || procfs::stat(pid).is_some_and(|s| s.start_time == start_time);
    // SAFETY: pidfd_open() takes a pid and flags, no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        // A kernel without pidfds (before 5.3): check, then kill; a pid reused in between is
        // the one race left.
        if same() {
            // SAFETY: kill() takes no pointers.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
        return;
    }
    // SAFETY: pidfd_open() returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    // The pidfd names the process that had `pid` when it was opened: if that one still has
    // the start time we saw, it is the process we mean.
    if same() {
        // SAFETY: the fd is a live pidfd; a null siginfo is allowed (as kill() would send it).
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0 as libc::c_uint,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_its_tool_and_owner() {
        let marker = new_marker();
        let parsed = parse_marker(&marker).expect("our own marker parses");
        assert_eq!(parsed.tool, tool_tag());
        assert_eq!(parsed.owner_pid, std::process::id());
        assert_eq!(parse_marker("xps-check:12:34"), None);
        assert_eq!(parse_marker("xps-check:12:34:5:6"), None);
        assert_eq!(parse_marker("a:1:2:3"), Some(Marker { tool: "a", owner_pid: 1, owner_start: 2 }));
    }

    #[test]
    fn markers_nest_after_the_inherited_ones() {
        let mut cmd = Command::new("true");
        cmd.env(MARKER_VAR, "outer:1:2:3");
        assert_eq!(marker_value(&cmd, "inner:4:5:6"), "outer:1:2:3 inner:4:5:6");
        cmd.env_remove(MARKER_VAR);
        assert_eq!(marker_value(&cmd, "inner:4:5:6"), "inner:4:5:6");
    }
}
