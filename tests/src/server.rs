//! Starting a server under test, reading its output, stopping it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::Failure;

/// How long a server may take to print its "listening" lines.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How much of a server's output is kept for failure messages and log checks.
const KEEP_OUTPUT: usize = 256 * 1024;

/// What the output readers share with the test.
#[derive(Default)]
struct Output {
    /// The last `KEEP_OUTPUT` bytes of stdout and stderr, interleaved as they arrived.
    tail: Vec<u8>,
    /// Ports from `Server listening on port N` lines, in order.
    ports: Vec<u16>,
    /// Lines seen so far, to find a port line split across reads.
    partial_line: Vec<u8>,
    /// How many of the output streams have closed (2 = the process closed both).
    closed: usize,
    /// How many bytes arrived in all, to tell when the output has settled.
    total: usize,
}

impl Output {
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > KEEP_OUTPUT {
            let cut = self.tail.len() - KEEP_OUTPUT / 2;
            self.tail.drain(..cut);
        }
        for &b in chunk {
            if b == b'\n' {
                let line = strip_ansi(&self.partial_line);
                if let Some(port) = parse_listening_port(&line) {
                    self.ports.push(port);
                }
                self.partial_line.clear();
            } else if self.partial_line.len() < 4096 {
                self.partial_line.push(b);
            }
        }
    }
}

/// Removes ANSI colour codes (`ESC [ ... m`), so coloured logs parse like plain ones.
fn strip_ansi(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What to look at when the server panicked.
pub(crate) const PANIC_HINT: &str =
    "the function at that file:line panicked (`not yet implemented` is a todo!() still to write)";

/// The first Rust panic in a process's output, as `MESSAGE at FILE:LINE`, from the standard
/// panic report (a line starting with `thread '`, so a client's message cannot pass for one):
///
/// ```text
/// thread 'main' panicked at stage06/src/network/xps_listener.rs:40:5:
/// not yet implemented: xps_listener_create ...
/// ```
fn find_panic(output: &str) -> Option<String> {
    let mut lines = output.lines();
    let location = lines.find_map(|line| {
        let (_, at) = line.strip_prefix("thread '")?.split_once(" panicked at ")?;
        Some(at.trim().trim_end_matches(':'))
    })?;
    // FILE:LINE:COLUMN -> FILE:LINE
    let location = match location.rsplit_once(':') {
        Some((file_line, column)) if column.chars().all(|c| c.is_ascii_digit()) => file_line,
        _ => location,
    };
    let message = lines.next().map_or("", str::trim);
    Some(if message.is_empty() { format!("at {location}") } else { format!("{message} at {location}") })
}

/// The port of a `... Server listening on port N` log line.
fn parse_listening_port(line: &str) -> Option<u16> {
    // Only log lines count: a client's message echoed by the server must not look like a port.
    let (_, rest) = line.strip_prefix("[INFO]")?.split_once("Server listening on port ")?;
    rest.trim().parse().ok()
}

/// How long [`Server::stop`] (and dropping a server) waits after SIGINT before SIGKILL: long
/// enough for Valgrind or a sanitizer to print its report, short enough not to slow the tests.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// The process groups of the servers still running, so that [`Server::stop_all`] can stop them
/// when the program that started them is interrupted. A server is spawned while this lock is
/// held, so `stop_all` never misses one that is starting; once `stop_all` has run, `stopping`
/// refuses new servers.
static LIVE_GROUPS: Mutex<LiveGroups> = Mutex::new(LiveGroups { groups: Vec::new(), stopping: false });

struct LiveGroups {
    groups: Vec<libc::pid_t>,
    stopping: bool,
}

fn live_groups() -> std::sync::MutexGuard<'static, LiveGroups> {
    LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A server process under test, in a process group of its own: it and everything it starts
/// (`sh -c "cd dir && ./xps"`, `make run`, a run script) are stopped together. Dropping it stops
/// the whole group (also when a test panics).
pub struct Server {
    child: Child,
    name: String,
    ports: Vec<u16>,
    output: Arc<(Mutex<Output>, Condvar)>,
    exit_status: Option<ExitStatus>,
    /// Set once the child has been reaped (its pid, and so the group id, may then be reused).
    reaped: bool,
}

/// A TCP socket in the LISTEN state, from `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// The local address it listens on (`0.0.0.0:8001`, `127.0.0.1:8001`, `[::]:8001`).
    pub addr: SocketAddr,
    /// Which process holds it, `pid (command)`, when `/proc` says.
    pub owner: Option<String>,
}

impl Listening {
    /// Whether a client on another machine (or in the tester's container network) could connect:
    /// the socket listens on every interface (`0.0.0.0` or `::`), or on some address that is not
    /// loopback.
    pub fn reachable_from_network(&self) -> bool {
        !self.addr.ip().is_loopback()
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
        let mut server = Server::spawn_unready(cmd, None)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let (lock, cond) = &*server.output;
        let mut out = lock.lock().unwrap();
        while out.ports.len() < n_ports && out.closed < 2 && Instant::now() < deadline {
            out = cond.wait_timeout(out, Duration::from_millis(50)).unwrap().0;
        }
        let got = out.ports.len();
        server.ports = out.ports.iter().take(n_ports).copied().collect();
        drop(out);
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

    /// Starts `cmd`, named `name` in messages (the server itself, not a wrapper such as `stdbuf`
    /// or `sh`; `None`: the program's file name), and waits until its process group listens on
    /// `ports`, watching `/proc/net/tcp`: nothing connects to the server to find out, so it sees
    /// no client before the checks' own. Returns the server and the ports it does not listen on:
    /// once at least one port listens, a port still missing a second later is given up on, so
    /// a server that forgot one port is told so at once.
    pub fn spawn_listening(cmd: Command, ports: &[u16], name: Option<&str>) -> Result<(Server, Vec<u16>), Failure> {
        const SETTLE: Duration = Duration::from_secs(1);
        let mut server = Server::spawn_unready(cmd, name)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_new = Instant::now();
        let mut seen: Vec<u16> = Vec::new();
        loop {
            let listening = server.listening();
            for &port in ports {
                if !seen.contains(&port) && listening.iter().any(|l| l.addr.port() == port) {
                    seen.push(port);
                    last_new = Instant::now();
                }
            }
            if seen.len() == ports.len() {
                break;
            }
            if let Some(status) = server.try_exit_status() {
                let waiting_for: Vec<String> = ports.iter().filter(|p| !seen.contains(p)).map(u16::to_string).collect();
                let mut failure =
                    Failure::new(format!("{} exited before listening on port {}", server.name, waiting_for.join(" ")))
                        .detail("status", describe_status(Some(status)));
                for line in server.crash_lines() {
                    failure = failure.detail("crash", line);
                }
                return Err(failure
                    .hint("is another server already using the port? the output below says why it stopped")
                    .log_of(&server));
            }
            let now = Instant::now();
            if (!seen.is_empty() && now.duration_since(last_new) > SETTLE) || now > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        if seen.is_empty() {
            let elsewhere: Vec<String> = server.listening().iter().map(|l| l.addr.to_string()).collect();
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            let failure = Failure::new(format!(
                "{} is not listening on any of ports {} after {START_TIMEOUT:?}",
                server.name,
                list.join(" ")
            ));
            let failure = if elsewhere.is_empty() {
                failure.detail("listening", "on nothing at all")
            } else {
                failure.detail("listening", format!("on {} instead", elsewhere.join(", ")))
            };
            return Err(failure
                .hint("does the server listen on the stage's ports when started like this?")
                .log_of(&server));
        }
        let missing: Vec<u16> = ports.iter().copied().filter(|p| !seen.contains(p)).collect();
        server.ports = ports.iter().copied().filter(|p| seen.contains(p)).collect();
        Ok((server, missing))
    }

    /// Starts `cmd` in a process group of its own, named `name` (default: the program's file name).
    fn spawn_unready(mut cmd: Command, name: Option<&str>) -> Result<Server, Failure> {
        let name = name.map(str::to_string).unwrap_or_else(|| {
            std::path::Path::new(cmd.get_program())
                .file_name()
                .map_or_else(|| "server".to_string(), |n| n.to_string_lossy().into_owned())
        });
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and only calls setpgid(),
        // prctl() and sigprocmask() with a local signal set, all async-signal-safe; it touches
        // no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // A process group of its own: the server and whatever it starts are stopped
                // together, and Ctrl+C in the terminal reaches only the program that started it,
                // which then stops the group.
                if libc::setpgid(0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // If the thread that started the server dies without dropping it (the test
                // harness killed, say), the kernel kills the server too: no stray servers.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                // The program that starts servers may block signals it waits for on a thread of
                // its own (xps-check does); the server starts with none blocked.
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut live = live_groups();
        if live.stopping {
            // stop_all() ran: the program is about to exit. Start nothing more, and do not race
            // that exit by reporting the interrupted checks as failures: wait for it.
            drop(live);
            loop {
                thread::park();
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            Failure::new(format!("could not start {name}: {e}")).hint("was the server built? is the path right?")
        })?;
        live.groups.push(child.id() as libc::pid_t);
        drop(live);
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        for stream in [stdout, stderr].into_iter().flatten().map(File::from) {
            let output = Arc::clone(&output);
            // Always drain the server's output: a server whose stdout pipe is full blocks.
            thread::spawn(move || read_output(stream, &output));
        }
        Ok(Server { child, name, ports: Vec::new(), output, exit_status: None, reaped: false })
    }

    /// The ports the server listens on, in the order it logged them.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The server's name (its binary's file name, or the name it was started with).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's process id (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the server's stdout and stderr, long lines shortened. Waits up
    /// to half a second for the output to settle first: what the server printed just before a
    /// check failed may still be on its way through the pipe.
    pub fn log_tail(&self, lines: usize) -> String {
        self.settle_output();
        let out = self.output.0.lock().unwrap();
        let text = String::from_utf8_lossy(&out.tail);
        let all: Vec<&str> = text.lines().collect();
        let mut tail = String::new();
        for line in &all[all.len().saturating_sub(lines)..] {
            let line = strip_ansi(line.as_bytes());
            if line.chars().count() > 160 {
                let short: String = line.chars().take(157).collect();
                tail.push_str(&format!("{short}..."));
            } else {
                tail.push_str(&line);
            }
            tail.push('\n');
        }
        tail
    }

    /// The first Rust panic in the kept output, as `MESSAGE at FILE:LINE`
    /// (`not yet implemented: xps_listener_create ... at stage06/src/network/xps_listener.rs:40`).
    pub fn panic_report(&self) -> Option<String> {
        find_panic(&strip_ansi(&self.output.0.lock().unwrap().tail))
    }

    /// Waits up to half a second for the output to stop growing.
    fn settle_output(&self) {
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut seen = self.output.0.lock().unwrap().total;
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            let now = self.output.0.lock().unwrap().total;
            if now == seen {
                break;
            }
            seen = now;
        }
    }

    /// Whether the kept output (the last 256 KiB) contains `needle`, colours removed.
    pub fn log_contains(&self, needle: &str) -> bool {
        let out = self.output.0.lock().unwrap();
        strip_ansi(&out.tail).contains(needle)
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
        self.settle_output();
        let text = {
            let out = self.output.0.lock().unwrap();
            strip_ansi(&out.tail)
        };
        crash_lines_of(&text)
    }

    /// Sends SIGINT, as Ctrl+C in the server's terminal does.
    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the server process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill() takes no pointers; the pid is our own child, which we have not reaped
        // (reaping happens only in stop / drop), so it cannot name another process.
        let ret = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(ret, 0, "kill({signal}) failed: {}", std::io::Error::last_os_error());
    }

    /// The exit status if the server has exited, without reaping it: while it is a zombie its
    /// pid, and so its process group id, cannot be reused, so stopping the group stays safe.
    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() && !self.reaped {
            self.exit_status = peek_exit(self.child.id());
        }
        self.exit_status
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_exit_status().is_none()
    }

    /// Stops the server and everything in its process group: SIGINT (as Ctrl+C would, so
    /// Valgrind and sanitizers print their reports), then SIGKILL to whatever is left after
    /// `grace`. Returns the server's exit status, or `None` if it had to be killed; its output
    /// up to the end stays readable ([`Server::log_tail`]).
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.reaped {
            return self.exit_status;
        }
        let pgid = self.child.id() as libc::pid_t;
        let mut status = self.try_exit_status();
        if status.is_none() {
            signal_group(pgid, libc::SIGINT);
            status = self.wait_exit(grace);
        }
        // Whatever the server started is still in the group; the unreaped leader keeps the
        // group's id from being reused, so this reaches only what we started.
        signal_group(pgid, libc::SIGKILL);
        let reaped = self.child.wait().ok();
        self.reaped = true;
        live_groups().groups.retain(|&g| g != pgid);
        if status.is_some() {
            self.exit_status = status;
        } else {
            self.exit_status = reaped;
        }
        // Let the output readers take in what the server printed while it stopped.
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.output.0.lock().unwrap().closed < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        status
    }

    /// Stops every server this process started that is still running (SIGINT, then SIGKILL
    /// half a second later), for a program's Ctrl+C handler: nothing it started outlives it.
    /// The caller exits next: from now on, a thread that would start a server waits for that
    /// exit instead.
    pub fn stop_all() {
        let groups = {
            let mut live = live_groups();
            live.stopping = true;
            live.groups.clone()
        };
        for &pgid in &groups {
            signal_group(pgid, libc::SIGINT);
        }
        thread::sleep(Duration::from_millis(500));
        for &pgid in &groups {
            signal_group(pgid, libc::SIGKILL);
        }
    }

    /// The TCP sockets the server's process group listens on (every process in the group,
    /// from `/proc`).
    pub fn listening(&self) -> Vec<Listening> {
        let pgid = self.child.id() as libc::pid_t;
        let inodes = socket_inodes(|pid, stat| pid == pgid || stat_pgrp(stat) == Some(pgid));
        listening_sockets()
            .into_iter()
            .filter(|(_, inode)| inodes.contains_key(inode))
            .map(|(addr, inode)| Listening { addr, owner: inodes.get(&inode).cloned() })
            .collect()
    }

    /// Every TCP socket listening on `port` on this machine, with its owner where `/proc` tells
    /// (processes of other users are not shown).
    pub fn listeners_on(port: u16) -> Vec<Listening> {
        let on_port: Vec<(SocketAddr, u64)> =
            listening_sockets().into_iter().filter(|(a, _)| a.port() == port).collect();
        if on_port.is_empty() {
            return Vec::new();
        }
        let owners = socket_inodes(|_, _| true);
        on_port.into_iter().map(|(addr, inode)| Listening { addr, owner: owners.get(&inode).cloned() }).collect()
    }

    /// The server's descriptors that are sockets but not listening ones (its connections), in
    /// order, from `/proc/<pid>/fd` and `/proc/net/tcp*`.
    pub fn connection_fds(&self) -> std::io::Result<Vec<i32>> {
        let listening: std::collections::HashSet<u64> = listening_sockets().into_iter().map(|(_, i)| i).collect();
        let mut fds = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{}/fd", self.pid()))?.flatten() {
            let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let Ok(target) = std::fs::read_link(entry.path()) else { continue };
            if socket_inode(&target).is_some_and(|inode| !listening.contains(&inode)) {
                fds.push(fd);
            }
        }
        fds.sort_unstable();
        Ok(fds)
    }

    /// How many file descriptors the server has open, from `/proc/<pid>/fd`.
    pub fn open_fds(&self) -> std::io::Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid()))?.count())
    }

    /// The CPU time (user + system) the server has used so far, from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> std::io::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the `(comm)`; utime and stime are fields 14 and 15 (1-based) of the line.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields.get(11..13).into_iter().flatten().filter_map(|f| f.parse::<u64>().ok()).sum();
        // SAFETY: sysconf() takes no pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(Duration::from_millis(ticks * 1000 / hz))
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

/// Sends `signal` to every process in group `pgid` (errors ignored: the group may be gone).
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    if pgid > 1 {
        // SAFETY: kill() takes no pointers. The group is one this process created (see
        // Server::stop for why its id cannot have been reused).
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// The exit status of child `pid` if it has exited, leaving it unreaped (`waitid` with `WNOWAIT`).
fn peek_exit(pid: u32) -> Option<ExitStatus> {
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

/// The process group of a `/proc/<pid>/stat` line.
fn stat_pgrp(stat: &str) -> Option<libc::pid_t> {
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(2)?.parse().ok()
}

/// The inode of a socket, from what its `/proc/<pid>/fd/N` link points to (`socket:[1234]`).
fn socket_inode(target: &std::path::Path) -> Option<u64> {
    target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The socket inodes held by the processes `keep(pid, stat)` selects, each with its owner
/// (`pid (command)`).
fn socket_inodes(keep: impl Fn(libc::pid_t, &str) -> bool) -> std::collections::HashMap<u64, String> {
    let mut inodes = std::collections::HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return inodes };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if !keep(pid, &stat) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            if let Some(inode) = socket_inode(&target) {
                inodes.entry(inode).or_insert_with(|| format!("pid {pid} ({})", process_command(pid as u32)));
            }
        }
    }
    inodes
}

/// The command line of process `pid`, arguments joined by spaces (`?` if unknown).
pub(crate) fn process_command(pid: u32) -> String {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) if !bytes.is_empty() => {
            let words: Vec<String> = bytes
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            words.join(" ")
        }
        _ => "?".into(),
    }
}

/// Every TCP socket in the LISTEN state in this network namespace: address and inode.
fn listening_sockets() -> Vec<(SocketAddr, u64)> {
    let mut found = Vec::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(table) = std::fs::read_to_string(path) else { continue };
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "0A" {
                continue;
            }
            let (Some(addr), Ok(inode)) = (parse_proc_addr(fields[1], v6), fields[9].parse::<u64>()) else { continue };
            found.push((addr, inode));
        }
    }
    found
}

/// `0100007F:1F41` (IPv4) or 32 hex digits and a port (IPv6), as `/proc/net/tcp*` prints them:
/// each 32-bit word of the address in the host's byte order.
fn parse_proc_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> =
        (0..ip.len() / 8).map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16)).collect::<Result<_, _>>().ok()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip: std::net::IpAddr = match (v6, bytes.len()) {
        (false, 4) => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into(),
        (true, 16) => {
            let octets: [u8; 16] = bytes.try_into().ok()?;
            std::net::Ipv6Addr::from(octets).into()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// See [`Server::crash_lines`].
fn crash_lines_of(text: &str) -> Vec<String> {
    const MARKERS: [&str; 14] = [
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "runtime error:",
        "Invalid read of size",
        "Invalid write of size",
        "Invalid free",
        "Process terminating with default action",
        "panicked at",
        "not yet implemented",
        "double free",
        "free(): invalid",
        "malloc(): ",
        "stack smashing detected",
        "Segmentation fault",
    ];
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() && found.len() < 8 {
        let line = lines[i].trim();
        if MARKERS.iter().any(|m| line.contains(m)) {
            found.push(shorten(line));
            // The first frame after it that is in the program's own code.
            if let Some(frame) = lines[i + 1..].iter().take(40).map(|l| l.trim()).find(|l| is_own_frame(l)) {
                let frame = format!("  {}", shorten(frame));
                if !found.contains(&frame) {
                    found.push(frame);
                }
            }
        }
        i += 1;
    }
    found.dedup();
    found
}

/// A stack frame line (`#1 0x55d4 in handler src/conn.c:42`, Valgrind's
/// `==12== at 0x1091: handler (conn.c:42)`) in the program's own code: it names a source file
/// and line and is not in a sanitizer, the C library or Rust's standard library.
fn is_own_frame(line: &str) -> bool {
    let frame = line.starts_with('#') || line.contains(" at 0x") || line.contains(" by 0x");
    let has_line = line.contains(".c:") || line.contains(".rs:") || line.contains(".cpp:") || line.contains(".h:");
    let foreign = ["sanitizer", "libasan", "libubsan", "/usr/", "libc.so", "rustc/", "vg_replace"];
    frame && has_line && !foreign.iter().any(|f| line.contains(f))
}

fn shorten(line: &str) -> String {
    if line.chars().count() > 160 { format!("{}...", line.chars().take(157).collect::<String>()) } else { line.into() }
}

/// The name of a signal that ends a crashing program.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        _ => return None,
    })
}

/// Whether `status` says the program crashed: killed by a signal such as SIGSEGV or SIGABRT
/// (or a shell's exit status 128 + that signal).
pub(crate) fn crashed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code > 128 && signal_name(code - 128).is_some(),
        (None, Some(sig)) => signal_name(sig).is_some(),
        _ => false,
    }
}

/// `exited with status 1`, `killed by signal 11 (SIGSEGV: ...)`, or `still running`.
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "still running".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) if code > 128 && signal_name(code - 128).is_some() => format!(
                "exited with status {code} (128 + {}: a shell saying that the server was killed by {})",
                code - 128,
                signal_name(code - 128).unwrap_or_default()
            ),
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => {
                let name = match sig {
                    libc::SIGABRT => " (SIGABRT: an assert() failed, or the C library found corrupted memory)",
                    libc::SIGSEGV => " (SIGSEGV: a bad pointer or an out-of-bounds access)",
                    libc::SIGBUS => " (SIGBUS: a bad memory access)",
                    libc::SIGFPE => " (SIGFPE: a division by zero?)",
                    libc::SIGILL => " (SIGILL: undefined behaviour, or a sanitizer's trap)",
                    libc::SIGPIPE => " (SIGPIPE: send() to a client that had left; use MSG_NOSIGNAL)",
                    libc::SIGINT => " (SIGINT)",
                    libc::SIGKILL => " (SIGKILL)",
                    libc::SIGTERM => " (SIGTERM)",
                    _ => "",
                };
                let core = if s.core_dumped() { ", core dumped" } else { "" };
                format!("killed by signal {sig}{name}{core}")
            }
            _ => format!("{s}"),
        },
    }
}

fn read_output(mut stream: File, output: &(Mutex<Output>, Condvar)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                output.0.lock().unwrap().push(&buf[..n]);
                output.1.notify_all();
            }
        }
    }
    output.0.lock().unwrap().closed += 1;
    output.1.notify_all();
}

/// Held while a test uses the course's default ports (8001...), so tests of different stages
/// that do so never run at the same time, even under a runner that runs test binaries in
/// parallel. An advisory `flock()` on a file in the system's temp folder, shared with
/// `scripts/lib.sh` (check-build, experiment1, bench).
pub struct DefaultPortsLock(#[allow(dead_code, reason = "held for its Drop: closing the file releases the lock")] File);

impl DefaultPortsLock {
    /// How long to wait for another test or script that uses the default ports.
    const WAIT: Duration = Duration::from_secs(180);

    /// The lock file: `xps-tests-default-ports.lock` in the system's temp folder.
    pub fn path() -> std::path::PathBuf {
        std::env::temp_dir().join("xps-tests-default-ports.lock")
    }

    /// Waits until no other test (or `scripts/check-build.sh`, `scripts/experiment1.sh`) holds
    /// the default ports, then holds them; panics with a clear message after three minutes.
    pub fn acquire() -> DefaultPortsLock {
        use std::os::fd::AsRawFd;
        let path = Self::path();
        let file = Self::open(&path)
            .unwrap_or_else(|e| panic!("cannot open the default-ports lock file {}: {e}", path.display()));
        let deadline = Instant::now() + Self::WAIT;
        loop {
            // SAFETY: flock() takes no pointers; the fd belongs to `file`, which is open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return DefaultPortsLock(file);
            }
            let e = std::io::Error::last_os_error();
            assert!(e.kind() == std::io::ErrorKind::WouldBlock, "flock({}) failed: {e}", path.display());
            assert!(
                Instant::now() < deadline,
                "waited {:?} for the default ports: the lock {} is still held by {}; retry once it is done",
                Self::WAIT,
                path.display(),
                Self::holder(&path).unwrap_or_else(|| "another test or script (not found in /proc/locks)".into())
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens the lock file so that any user can lock it: an existing file read-only (flock()
    /// needs no write access, and another user's file in /tmp cannot be opened for writing), a
    /// new one created readable and writable by everyone.
    fn open(path: &std::path::Path) -> std::io::Result<File> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match File::open(path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = File::options().create(true).truncate(false).write(true).mode(0o666).open(path)?;
                // The umask may have taken write access away from the others; give it back.
                let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
                Ok(file)
            }
            Err(e) => Err(e),
        }
    }

    /// Who holds the lock on `path`, as `pid 1234 (command line)`, from `/proc/locks`.
    pub fn holder(path: &std::path::Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(path).ok()?.ino();
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        for line in locks.lines() {
            // `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; waiters' lines have `->`.
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || fields[1] != "FLOCK" {
                continue;
            }
            if fields[5].rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(inode) {
                // The pid that took the lock; a shell's `flock 9` command has exited since, and
                // then the holders are the processes that have the file open.
                let pid: u32 = fields[4].parse().ok()?;
                if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    return Some(format!("pid {pid} ({})", process_command(pid)));
                }
                break;
            }
        }
        let me = std::process::id();
        let openers: Vec<String> = std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| {
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .map(|fds| fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path)))
                    .unwrap_or(false)
            })
            .map(|pid| format!("pid {pid} ({})", process_command(pid)))
            .collect();
        (!openers.is_empty()).then(|| openers.join(", or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_found_with_its_message_and_file_line() {
        let output = "[DEBUG] xps_loop_create() : created loop\n\
                      thread 'main' panicked at stage06/src/network/xps_listener.rs:40:5:\n\
                      not yet implemented: xps_listener_create: read the page's section\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            find_panic(output).as_deref(),
            Some(
                "not yet implemented: xps_listener_create: read the page's section at \
                 stage06/src/network/xps_listener.rs:40"
            )
        );
        assert_eq!(find_panic("[ERROR] main() : failed\n"), None);
        assert_eq!(find_panic("[CLIENT MESSAGE] thread panicked at x.rs:1:2:\nboo\n"), None);
        assert_eq!(
            find_panic("thread 'main' (438) panicked at stage07/src/main.rs:9:5:\nboom\n").as_deref(),
            Some("boom at stage07/src/main.rs:9")
        );
    }

    #[test]
    fn port_lines_are_found_plain_coloured_and_split() {
        let mut out = Output::default();
        out.push(b"[INFO] main() : Server listening on port 8001\n\x1b[44m[INFO]\x1b[0m \x1b[32mxps_core_start()\x1b[0m : Server listen");
        out.push(b"ing on port 8002\n[CLIENT MESSAGE] Server listening on port x\n");
        assert_eq!(out.ports, vec![8001, 8002]);
    }

    #[test]
    fn proc_net_tcp_addresses_are_read_in_host_byte_order() {
        let v4 = parse_proc_addr(&format!("{:08X}:1F41", u32::from_ne_bytes([127, 0, 0, 1])), false);
        assert_eq!(v4, Some("127.0.0.1:8001".parse().unwrap()));
        assert_eq!(parse_proc_addr("00000000:1F42", false), Some("0.0.0.0:8002".parse().unwrap()));
        let any6 = parse_proc_addr(&format!("{}:1F43", "0".repeat(32)), true);
        assert_eq!(any6, Some("[::]:8003".parse().unwrap()));
    }

    #[test]
    fn crash_lines_name_the_error_and_the_frame_in_the_learners_code() {
        let asan = "==1==ERROR: AddressSanitizer: stack-buffer-overflow on address 0x7ffd\n\
                    WRITE of size 1 at 0x7ffd thread T0\n    \
                    #0 0x4f1 in __interceptor_memset ../sanitizer_common/sanitizer_common_interceptors.inc:799\n    \
                    #1 0x55d in xps_connection_read_handler src/network/xps_connection.c:71\n";
        let lines = crash_lines_of(asan);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("stack-buffer-overflow"), "{lines:?}");
        assert!(lines[1].contains("xps_connection.c:71"), "{lines:?}");
    }

    #[test]
    fn the_lock_holder_is_found_in_proc_locks() {
        let path = std::env::temp_dir().join(format!("xps-lock-holder-test-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: flock() takes no pointers; the fd belongs to `file`, which is open.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
        let holder = DefaultPortsLock::holder(&path);
        drop(file);
        let _ = std::fs::remove_file(&path);
        let holder = holder.expect("our own lock is in /proc/locks");
        assert!(holder.starts_with(&format!("pid {} (", std::process::id())), "{holder}");
    }
}
