//! A server under test: started through the process runner ([`crate::process`]), its output
//! read as it arrives ([`crate::output`]), its ports learned from its log or from `/proc`, and
//! stopped with everything it started when the test ends, also when it panics.

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::activity::Activity;
pub(crate) use crate::crash::{PANIC_HINT, crashed, describe_status};
pub use crate::listening::Listening;
use crate::output::Log;
use crate::process::{self, Options, Process};
use crate::{Failure, listening, procfs, program_name};

/// How long a server may take to print its "listening" lines.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`Server::stop`] (and dropping a server) waits after SIGINT before SIGKILL: long
/// enough for Valgrind or a sanitizer to print its report, short enough not to slow the tests.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long [`Server::stop_all`] waits after SIGINT before SIGKILL.
const STOP_ALL_GRACE: Duration = Duration::from_millis(500);

/// A server process under test, in a process group of its own: it and everything it starts
/// (`sh -c "cd dir && ./xps"`, `make run`, a run script, a daemon it forks off) are stopped
/// together. Dropping it stops them all (also when a test panics).
///
/// The server is the process that listens: once its sockets show up ([`Server::listening_now`]),
/// the process that holds them names it and is the one [`Server::pid`] gives, whatever wrapper
/// started it.
pub struct Server {
    process: Process,
    name: String,
    ports: Vec<u16>,
    /// The ports it was expected to listen on and does not ([`Server::wait_listening`]).
    missing: Vec<u16>,
    log: Log,
    /// When the command was started.
    started: Instant,
    /// The leader's start time, in clock ticks after boot (`/proc/<pid>/stat`).
    leader_start: u64,
    /// The process that holds the listening sockets, once seen.
    listener: Option<u32>,
    /// When [`Server::listening_now`] first saw each port listening.
    seen_at: Vec<(u16, Instant)>,
    /// What the checks' clients saw last, for a check that runs out of time.
    activity: Mutex<Activity>,
}

/// How the server's listening process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Its exit status, when it is known: the leader's, or a daemon's this process adopted;
    /// `None` for a process a wrapper of the server reaped (`sh -c "./xps; true"`).
    pub status: Option<ExitStatus>,
}

impl Ended {
    /// `exited with status 1`, `killed by signal 11 (...)`, or that the status went to a wrapper.
    pub fn describe(&self) -> String {
        match self.status {
            Some(status) => describe_status(Some(status)),
            None => "exited or was killed (its status went to the command that started it)".into(),
        }
    }
}

impl Server {
    /// Starts `bin --host 127.0.0.1 0 0 ...` (`n_ports` times `0`: the OS picks free ports) and
    /// waits for its `Server listening on port N` lines. Panics with the server's output if it
    /// does not start.
    pub fn start_on_free_ports(bin: impl AsRef<OsStr>, n_ports: usize) -> Server {
        let mut cmd = Command::new(bin.as_ref());
        cmd.args(["--host", "127.0.0.1"]).args(std::iter::repeat_n("0", n_ports));
        Server::spawn(cmd, n_ports).unwrap_or_else(|f| panic!("\n{f}"))
    }

    /// Starts `cmd` and waits until it has logged `n_ports` listening lines.
    pub fn spawn(cmd: Command, n_ports: usize) -> Result<Server, Failure> {
        Server::spawn_with(cmd, n_ports, &Options::default())
    }

    /// [`Server::spawn`] with `options` for the process (a limit on its open files, say); its
    /// stdout and stderr are read into the log whatever `options` says.
    pub fn spawn_with(cmd: Command, n_ports: usize, options: &Options) -> Result<Server, Failure> {
        let mut server = Server::spawn_unready(cmd, None, options)?;
        let ports = server.log.wait_ports(n_ports, Instant::now() + START_TIMEOUT);
        let got = ports.len();
        server.ports = ports.into_iter().take(n_ports).collect();
        if got < n_ports {
            let status = server.wait_exit(Duration::from_millis(200));
            let not_listening = format!("{} did not start listening on {n_ports} ports", server.name);
            // A panic (a `todo!()` still in the code, say) is the real reason: show it first.
            let (failure, hint) = match server.panic_report() {
                Some(panic) => {
                    (Failure::new(format!("{} panicked: {panic}", server.name)).detail("so", not_listening), PANIC_HINT)
                }
                None => (
                    Failure::new(not_listening),
                    "the server's output below; every listener logs one `Server listening on port N` line",
                ),
            };
            return Err(failure
                .detail("expected", format!("{n_ports} lines like `[INFO] main() : Server listening on port N`"))
                .detail("received", format!("{got} such lines; process {}", describe_status(status)))
                .hint(hint)
                .log_of(&server));
        }
        Ok(server)
    }

    /// Starts `cmd` that listens on known `ports` (the course's defaults, for a learner's own
    /// build that cannot be told to use port 0) and waits until it listens on every one.
    pub fn spawn_on_ports(cmd: Command, ports: &[u16]) -> Result<Server, Failure> {
        let (server, missing) = Server::spawn_listening(cmd, ports, None)?;
        if let Some(&port) = missing.first() {
            return Err(Failure::new(format!("{} is not listening on port {port}", server.name))
                .hint("does the server create a listener on this port?")
                .log_of(&server));
        }
        Ok(server)
    }

    /// Starts `cmd`, named `name` in messages (a guess from the command line; the process that
    /// listens renames it), and waits until it listens on `ports`, watching `/proc/net/tcp`:
    /// nothing connects to the server to find out, so it sees no client before the checks' own.
    /// Returns the server and the ports it does not listen on: once at least one port listens,
    /// a port still missing a second later is given up on, so a server that forgot one port is
    /// told so at once.
    pub fn spawn_listening(cmd: Command, ports: &[u16], name: Option<&str>) -> Result<(Server, Vec<u16>), Failure> {
        let mut server = Server::launch(cmd, name)?;
        let missing = server.wait_listening(ports, START_TIMEOUT)?;
        Ok((server, missing))
    }

    /// Starts `cmd` without waiting for anything (see [`Server::spawn_listening`]).
    pub fn launch(cmd: Command, name: Option<&str>) -> Result<Server, Failure> {
        Server::spawn_unready(cmd, name, &Options::default())
    }

    /// Waits up to `timeout` until the server listens on `ports` (see
    /// [`Server::spawn_listening`]); the ports it does not listen on, or why it never started.
    pub fn wait_listening(&mut self, ports: &[u16], timeout: Duration) -> Result<Vec<u16>, Failure> {
        const SETTLE: Duration = Duration::from_secs(1);
        let deadline = Instant::now() + timeout;
        let mut last_new = Instant::now();
        let mut seen: Vec<u16> = Vec::new();
        loop {
            for port in self.listening_now(ports) {
                if !seen.contains(&port) {
                    seen.push(port);
                    last_new = Instant::now();
                }
            }
            if seen.len() == ports.len() {
                break;
            }
            // A server that daemonizes exits at once and leaves its child to listen: only when
            // nothing of it is left has it exited before listening.
            if let Some(status) = self.process.exit_status()
                && self.pids().is_empty()
            {
                let waiting_for: Vec<String> = ports.iter().filter(|p| !seen.contains(p)).map(u16::to_string).collect();
                let mut failure =
                    Failure::new(format!("{} exited before listening on port {}", self.name, waiting_for.join(" ")))
                        .detail("status", describe_status(Some(status)));
                for line in self.crash_lines() {
                    failure = failure.detail("crash", line);
                }
                return Err(failure
                    .hint(
                        "the output below says why it stopped: a port already in use, an argument it refuses, a crash?",
                    )
                    .log_of(self));
            }
            let now = Instant::now();
            if (!seen.is_empty() && now.duration_since(last_new) > SETTLE) || now > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        if seen.is_empty() {
            let elsewhere: Vec<String> = self.listening().iter().map(|l| l.addr.to_string()).collect();
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            let failure = Failure::new(format!(
                "{} is not listening on any of ports {} after {timeout:?}",
                self.name,
                list.join(" ")
            ));
            let failure = if elsewhere.is_empty() {
                failure.detail("listening", "on nothing at all")
            } else {
                failure.detail("listening", format!("on {} instead", elsewhere.join(", ")))
            };
            return Err(failure
                .hint("does the server listen on the stage's ports when started like this?")
                .log_of(self));
        }
        self.ports = ports.iter().copied().filter(|p| seen.contains(p)).collect();
        self.missing = ports.iter().copied().filter(|p| !seen.contains(p)).collect();
        Ok(self.missing.clone())
    }

    /// Which of `ports` the server listens on now. The first time it listens on one, the
    /// process that holds the socket becomes the server: [`Server::pid`] and [`Server::name`].
    pub fn listening_now(&mut self, ports: &[u16]) -> Vec<u16> {
        let listening = self.listening();
        if self.listener.is_none()
            && let Some(pid) = listening.iter().filter(|l| ports.contains(&l.addr.port())).find_map(|l| l.pid)
        {
            self.listener = Some(pid);
            if let Some(words) = procfs::cmdline(pid).filter(|w| !w.is_empty()) {
                self.name = program_name::program_name(&words);
            }
        }
        let now: Vec<u16> = ports.iter().copied().filter(|&p| listening.iter().any(|l| l.addr.port() == p)).collect();
        for &port in &now {
            if !self.seen_at.iter().any(|(p, _)| *p == port) {
                self.seen_at.push((port, Instant::now()));
            }
        }
        now
    }

    /// When [`Server::listening_now`] (or a wait built on it) first saw `port` listening.
    pub fn listened_at(&self, port: u16) -> Option<Instant> {
        self.seen_at.iter().find(|(p, _)| *p == port).map(|(_, at)| *at)
    }

    /// How long after the command the listening process started (0 when the command is the
    /// server itself): the time a wrapper (`cargo run`, `make run`) took before it started it.
    pub fn listener_started_after_command(&self) -> Option<Duration> {
        let started = procfs::stat(self.listener?)?.start_time;
        // SAFETY: sysconf() takes no pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Some(Duration::from_millis(started.saturating_sub(self.leader_start) * 1000 / hz))
    }

    /// When the command was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Starts `cmd` through the process runner, named `name` (default: the program's file
    /// name), with its output read into the log.
    fn spawn_unready(cmd: Command, name: Option<&str>, options: &Options) -> Result<Server, Failure> {
        let name = name.map(str::to_string).unwrap_or_else(|| {
            std::path::Path::new(cmd.get_program())
                .file_name()
                .map_or_else(|| "server".to_string(), |n| n.to_string_lossy().into_owned())
        });
        let options = Options { stdout: process::Stream::Piped, stderr: process::Stream::Piped, ..options.clone() };
        let mut process = Process::spawn(cmd, &options).map_err(|e| {
            Failure::new(format!("could not start {name}: {e}")).hint("was the server built? is the path right?")
        })?;
        let streams: Vec<Box<dyn Read + Send>> = [
            process.take_stdout().map(|s| Box::new(s) as Box<dyn Read + Send>),
            process.take_stderr().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        let leader_start = procfs::stat(process.pid()).map_or(0, |s| s.start_time);
        Ok(Server {
            process,
            name,
            ports: Vec::new(),
            missing: Vec::new(),
            log: Log::read_from(streams),
            started: Instant::now(),
            leader_start,
            listener: None,
            seen_at: Vec::new(),
            activity: Mutex::default(),
        })
    }

    /// The ports the server listens on, in the order it logged them.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The ports it was expected to listen on and does not (for a server started on known
    /// ports, [`Server::wait_listening`]).
    pub fn missing_ports(&self) -> &[u16] {
        &self.missing
    }

    /// The server's name (its binary's file name, or the name it was started with).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's process id: the process that listens, once seen, else the command's (whose
    /// pid is also the process group's id). Checks read `/proc/<pid>/...` of this one.
    pub fn pid(&self) -> u32 {
        self.listener.unwrap_or_else(|| self.process.pid())
    }

    /// The process id of the command that was started (the process group's leader), which may
    /// be a wrapper of the server (`sh`, `make`, `cargo`).
    pub fn command_pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the listening process has ended (once [`Server::listening_now`] has found it;
    /// before that, the command), and how.
    pub fn ended(&self) -> Option<Ended> {
        let leader = self.process.pid();
        match self.listener {
            None => self.exited().map(|status| Ended { status: Some(status) }),
            Some(pid) if pid == leader => self.exited().map(|status| Ended { status: Some(status) }),
            Some(pid) => {
                let alive = procfs::stat(pid).is_some_and(|s| !s.is_zombie());
                // An adopted daemon is our child: its status can be read without reaping it.
                (!alive).then(|| Ended { status: process::peek_exit(pid) })
            }
        }
    }

    /// Sends `signal` to every process of the server (its group and what carries its marker),
    /// for a caller that shares the server with a check's thread.
    pub fn signal_all(&self, signal: libc::c_int) {
        self.process.signal_all(signal);
    }

    /// What the checks' clients saw last (see [`Activity`]).
    pub fn activity(&self) -> Activity {
        self.activity.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Notes one reply a client received (or waited for), for [`Server::activity`].
    pub(crate) fn note(&self, update: impl FnOnce(&mut Activity)) {
        update(&mut self.activity.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// A mark in the server's output: [`Server::output_since`] gives what it printed after.
    pub fn output_mark(&self) -> usize {
        self.log.mark()
    }

    /// What the server printed after `mark` (as much of it as is kept), colours removed.
    pub fn output_since(&self, mark: usize) -> String {
        self.log.since(mark)
    }

    /// Every live process of the server: its process group, and whatever it started that left
    /// the group (a daemon) but carries the run's marker.
    pub fn pids(&self) -> Vec<u32> {
        self.process.pids()
    }

    /// The last `lines` lines of the server's stdout and stderr, long lines shortened. Waits up
    /// to half a second for the output to settle first: what the server printed just before a
    /// check failed may still be on its way through the pipe.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log.tail(lines)
    }

    /// The first Rust panic in the kept output, as `MESSAGE at FILE:LINE`
    /// (`not yet implemented: xps_listener_create ... at stage06/src/network/xps_listener.rs:40`).
    pub fn panic_report(&self) -> Option<String> {
        self.log.panic_report()
    }

    /// Whether the kept output (the last 256 KiB) contains `needle`, colours removed.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.contains(needle)
    }

    /// Waits up to `timeout` for the output to contain `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The lines of the server's output that tell how it crashed or what memory error it made:
    /// AddressSanitizer's and UndefinedBehaviorSanitizer's `ERROR:`/`runtime error:` lines and
    /// the first stack frame in the program's own code, Valgrind's `Invalid read/write` and its
    /// first frame with a file and line, a Rust panic, glibc's `double free`, a shell's
    /// `Segmentation fault`. At most 8 lines, in the order printed.
    pub fn crash_lines(&self) -> Vec<String> {
        self.log.crash_lines()
    }

    /// [`Server::crash_lines`] in what the server printed after `mark` ([`Server::output_mark`]).
    pub fn crash_lines_since(&self, mark: usize) -> Vec<String> {
        crate::crash::crash_lines_of(&self.log.since(mark))
    }

    /// Sends SIGINT, as Ctrl+C in the server's terminal does.
    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the server process.
    pub fn signal(&self, signal: libc::c_int) {
        if let Err(e) = self.process.signal(signal) {
            panic!("kill({signal}) of {} (pid {}) failed: {e}", self.name, self.pid());
        }
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// The server's descriptors that are sockets but not listening ones (its connections), in
    /// order.
    pub fn connection_fds(&self) -> std::io::Result<Vec<i32>> {
        procfs::connection_fds(self.pid())
    }

    /// The exit status if the process has exited, without reaping it (for callers that only
    /// share the server).
    pub fn exited(&self) -> Option<ExitStatus> {
        self.process.peek_exit_status()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Stops the server and everything it started: SIGINT (as Ctrl+C would, so Valgrind and
    /// sanitizers print their reports), then SIGKILL to whatever is left after `grace`.
    /// Returns the server's exit status, or `None` if it had to be killed; its output up to the
    /// end stays readable ([`Server::log_tail`]).
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let status = self.process.stop(grace);
        // Let the output readers take in what the server printed while it stopped.
        self.log.wait_closed(Duration::from_millis(500));
        status
    }

    /// Stops every server (every process of the runner) this process started that is still
    /// running (SIGINT, then SIGKILL half a second later), for a program's Ctrl+C handler:
    /// nothing it started outlives it. The caller exits next: from now on, a thread that would
    /// start a server waits for that exit instead.
    pub fn stop_all() {
        process::stop_all(STOP_ALL_GRACE);
    }

    /// The TCP sockets the server listens on (every process of it, from `/proc`).
    pub fn listening(&self) -> Vec<Listening> {
        let pids = self.pids();
        listening::held_by(|pid| pids.contains(&pid))
    }

    /// Every TCP socket listening on `port` on this machine, with its owner where `/proc` tells
    /// (processes of other users are not shown).
    pub fn listeners_on(port: u16) -> Vec<Listening> {
        listening::on_port(port)
    }

    /// How many file descriptors the server has open, from `/proc/<pid>/fd`.
    pub fn open_fds(&self) -> std::io::Result<usize> {
        procfs::fd_count(self.pid())
    }

    /// The CPU time (user + system) the server has used so far, from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> std::io::Result<Duration> {
        procfs::cpu_time(self.pid())
    }

    /// `exited with status 1`, `killed by signal 11 (SIGSEGV: ...)`, or `still running`.
    pub fn describe_status(status: Option<ExitStatus>) -> String {
        describe_status(status)
    }

    /// Whether `status` says the program crashed (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL,
    /// SIGPIPE, or a shell's 128 + one of them): what a sanitizer can explain.
    pub fn crashed(status: ExitStatus) -> bool {
        crashed(status)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}
