//! Starting, signalling and reaping processes: the one place in the kit and its tools that
//! does it (the test kit's [`Server`](crate::Server), `xps-check`, `xps-exercise`, `xps-lock`).
//!
//! A server under test may start others (`sh -c "cd src && ./xps"`, `make run`, Valgrind), and
//! a learner's server may even daemonize: fork, `setsid()`, and let its parent exit. Whatever
//! it does, stopping it must leave nothing behind, or the next check finds its ports taken.
//! Three things make sure of that:
//!
//! 1. **A process group of its own**: every process it starts is in it (unless it calls
//!    `setsid()`), and `kill(-pgid, sig)` reaches them all at once. Ctrl+C in the terminal
//!    reaches only the program that started it, which then stops the group.
//! 2. **A marker in the environment**: `XPS_RUN=TOOL:PID:START:N` (the tool that started the
//!    run, its pid and start time, a counter) is inherited by every descendant, and
//!    `/proc/<pid>/environ` shows it, also for one that left the group with `setsid()`.
//!    Markers nest: a run started inside another run's process carries both.
//! 3. **A child subreaper**: the calling process asks the kernel
//!    (`prctl(PR_SET_CHILD_SUBREAPER)`) to adopt its orphaned descendants, so a daemon whose
//!    parent exited becomes our child, and we can reap it once it is stopped.
//!
//! [`Process::stop`] sends SIGINT (as Ctrl+C would, so Valgrind and sanitizers print their
//! reports) to the group and to every process with the run's marker, waits a grace period,
//! sends SIGKILL to whatever is left, and reaps the leader and the orphans it adopted. It never
//! calls `waitpid(-1)`: other code in the same process (`assert_cmd`, std's `Child`) keeps its
//! own children.
//!
//! Also here: [`stop_all`] and [`on_interrupt`] for a tool's Ctrl+C, [`run_bounded`] to run a
//! command to completion with a time limit, and [`leftovers`] to find what an earlier run that
//! was SIGKILLed left running.

mod bounded;
mod interrupt;
mod leftovers;
mod members;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

pub use bounded::{Finished, run_bounded};
pub use interrupt::{interrupted, on_interrupt, stop_all};
pub use leftovers::{Leftover, leftovers, live_owner, stop_leftover};
pub use members::{MARKER_VAR, pids_carrying, tool_tag};

use members::Run;

/// How long [`Process`]'s `Drop` waits after SIGINT before SIGKILL.
pub const DROP_GRACE: Duration = Duration::from_secs(2);

/// What to do with one of the child's output streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stream {
    /// A pipe, handed to the caller ([`Process::take_stdout`], [`Process::take_stderr`]).
    #[default]
    Piped,
    /// The caller's own stdout or stderr.
    Inherit,
    /// `/dev/null`.
    Null,
    /// Appended to this file (created if need be): both streams may name the same one.
    File(std::path::PathBuf),
}

impl Stream {
    fn stdio(&self) -> io::Result<Stdio> {
        Ok(match self {
            Stream::Piped => Stdio::piped(),
            Stream::Inherit => Stdio::inherit(),
            Stream::Null => Stdio::null(),
            Stream::File(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        })
    }
}

/// How to start a process. stdin is always `/dev/null`: nothing a check runs reads a terminal.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where its stdout goes (default: a pipe).
    pub stdout: Stream,
    /// Where its stderr goes (default: a pipe).
    pub stderr: Stream,
    /// A limit on its open files (`ulimit -n`), soft and hard.
    pub open_files_limit: Option<u64>,
}

/// A process started in a group of its own, with a marker its descendants inherit. Dropping it
/// stops it and everything it started ([`Process::stop`] with [`DROP_GRACE`]).
pub struct Process {
    child: Child,
    run: Run,
    /// The leader's exit status, once seen (peeked or reaped).
    status: Option<ExitStatus>,
    /// Set once the leader has been reaped: its pid, and so the group id, may then be reused.
    reaped: bool,
    /// What [`Process::stop`] returned, for a second call.
    stopped: Option<ExitStatus>,
}

impl Process {
    /// Starts `cmd` in a process group of its own, with the run's marker in its environment,
    /// its stdin on `/dev/null`, no signal blocked, and SIGKILL as its parent-death signal (if
    /// the thread that started it dies without stopping it, the kernel kills it).
    ///
    /// After [`stop_all`] has run, the program is about to exit: this then blocks for ever
    /// instead of starting anything, so that no thread races that exit.
    pub fn spawn(mut cmd: Command, options: &Options) -> io::Result<Process> {
        become_subreaper();
        let marker = members::new_marker();
        cmd.env(MARKER_VAR, members::marker_value(&cmd, &marker));
        cmd.stdin(Stdio::null()).stdout(options.stdout.stdio()?).stderr(options.stderr.stdio()?);
        let open_files = options.open_files_limit;
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the child between fork and exec. It only calls setpgid(),
        // prctl(), getppid(), sigemptyset(), sigprocmask() and setrlimit() on locals it owns,
        // all async-signal-safe; it allocates nothing and touches no memory of the parent
        // beyond the copied `open_files` and `parent`.
        unsafe {
            cmd.pre_exec(move || {
                // A process group of its own: the server and whatever it starts are stopped
                // together.
                if libc::setpgid(0, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // If the thread that started it dies without stopping it (the test harness
                // killed, say), the kernel kills it too: no stray servers.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl(): then no signal will ever come. (No
                // allocation here: from_raw_os_error builds the error in place.)
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                // The program that starts it may block the signals it waits for on a thread of
                // its own (on_interrupt does); the child starts with none blocked.
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) == -1 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(limit) = open_files {
                    let rlim = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        // Under the registry's lock, so stop_all() never misses a process that is starting.
        let mut registry = interrupt::registry();
        if registry.stopping {
            drop(registry);
            loop {
                thread::park();
            }
        }
        let child = cmd.spawn()?;
        let pid = child.id();
        // The start time names the leader for good; read it while it cannot have been reaped.
        let start_time = crate::procfs::stat(pid).map_or(0, |s| s.start_time);
        let run = Run { leader: pid, leader_start: start_time, marker };
        registry.runs.push(run.clone());
        drop(registry);
        Ok(Process { child, run, status: None, reaped: false, stopped: None })
    }

    /// The leader's process id (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.run.leader
    }

    /// The run's marker, as it appears among the words of `XPS_RUN` in every descendant.
    pub fn marker(&self) -> &str {
        &self.run.marker
    }

    /// The read end of the child's stdout, if it was [`Stream::Piped`] and not taken yet.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The read end of the child's stderr, if it was [`Stream::Piped`] and not taken yet.
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The leader's exit status if it has exited, without reaping it: while it is a zombie its
    /// pid, and so its process group id, cannot be reused, so signalling the group stays safe.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() && !self.reaped {
            self.status = peek_exit(self.run.leader);
        }
        self.status
    }

    /// [`Process::exit_status`] for callers that only share the process: the same peek, not
    /// remembered.
    pub fn peek_exit_status(&self) -> Option<ExitStatus> {
        self.status.or_else(|| if self.reaped { None } else { peek_exit(self.run.leader) })
    }

    /// Waits up to `timeout` for the leader to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the leader is still running.
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Sends `signal` to the leader only.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        if self.reaped {
            return Err(io::Error::new(io::ErrorKind::NotFound, "the process has been stopped and reaped"));
        }
        // SAFETY: kill() takes no pointers; the pid is our own child, not reaped yet (checked
        // above), so it cannot name another process.
        if unsafe { libc::kill(self.run.leader as libc::pid_t, signal) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `signal` to every process of the run: the group, and every live process with the
    /// run's marker (one that left the group with `setsid()` included).
    pub fn signal_all(&self, signal: libc::c_int) {
        if !self.reaped {
            self.run.signal_all(signal, &mut members::Seen::default());
        }
    }

    /// Every live process of the run: the members of its group and the processes carrying its
    /// marker (zombies left out).
    pub fn pids(&self) -> Vec<u32> {
        if self.reaped {
            return Vec::new();
        }
        self.run.live_members().iter().map(|m| m.pid).collect()
    }

    /// Stops the run: SIGINT to the group and to every process with the run's marker, up to
    /// `grace` for them to exit, SIGKILL to whatever is left; then reaps the leader and the
    /// orphans of the run this process adopted. Returns the leader's exit status, or `None`
    /// if it had to be killed. Calling it again returns the same status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.reaped {
            return self.stopped;
        }
        let mut seen = members::Seen::default();
        let deadline = Instant::now() + grace;
        let mut status = self.exit_status();
        if status.is_none() || !self.run.live_members().is_empty() {
            self.run.signal_all(libc::SIGINT, &mut seen);
            status = self.wait_exit(grace);
            // The leader is gone; give the rest of the run the rest of the grace period.
            while status.is_some() && Instant::now() < deadline && !self.run.live_members().is_empty() {
                thread::sleep(Duration::from_millis(50));
            }
        }
        self.run.kill_all(&mut seen);
        self.run.reap_adopted(&seen);
        // Out of the registry before the leader is reaped: stop_all() signals the group only
        // while the leader is unreaped, under the registry's lock.
        interrupt::registry().runs.retain(|r| r.leader != self.run.leader);
        let reaped = wait_bounded(&mut self.child, Duration::from_secs(5));
        self.reaped = true;
        self.status = status.or(reaped);
        self.stopped = status;
        status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop(DROP_GRACE);
    }
}

/// Makes this process a child subreaper, once: orphaned descendants (a daemon whose parent
/// exited) are reparented to it instead of to init, so they can be found and reaped. Orphans
/// of other code's children become our children too; they are never reaped here, and stay
/// zombies until this process exits (harmless for a test run or a tool).
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl() with PR_SET_CHILD_SUBREAPER takes plain integers.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    });
}

/// Reaps `child`, waiting at most `limit` (a process stuck in the kernel may not die at once).
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            _ => return None,
        }
    }
}

/// The exit status of child `pid` if it has exited, leaving it unreaped (`waitid` with `WNOWAIT`).
pub(crate) fn peek_exit(pid: u32) -> Option<ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    // SAFETY: an all-zero siginfo_t is a valid value (si_pid 0 means "no child changed").
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a live siginfo_t that waitid() fills in; the pid is our own child.
    let ret = unsafe {
        libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
    };
    // SAFETY: waitid() succeeded, so si_pid is set (0 if the child has not exited).
    if ret != 0 || unsafe { info.si_pid() } == 0 {
        return None;
    }
    // SAFETY: as above; for SIGCHLD-type info si_status holds the exit code or signal.
    let value = unsafe { info.si_status() };
    let raw = match info.si_code {
        libc::CLD_EXITED => (value & 0xff) << 8,
        libc::CLD_DUMPED => value | 0x80,
        _ => value,
    };
    Some(ExitStatus::from_raw(raw))
}
