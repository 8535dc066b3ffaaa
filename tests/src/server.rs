//! A server under test: started through the process runner ([`crate::process`]), its output
//! read as it arrives ([`crate::output`]), its ports learned from its log or from `/proc`, and
//! stopped with everything it started when the test ends, also when it panics.

use std::ffi::OsStr;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use crate::crash::{PANIC_HINT, crashed, describe_status};
use crate::output::Log;
use crate::process::{self, Options, Process};
use crate::{Failure, procfs};

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
pub struct Server {
    process: Process,
    name: String,
    ports: Vec<u16>,
    log: Log,
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

    /// Starts `cmd`, named `name` in messages (the server itself, not a wrapper such as `stdbuf`
    /// or `sh`; `None`: the program's file name), and waits until its process group listens on
    /// `ports`, watching `/proc/net/tcp`: nothing connects to the server to find out, so it sees
    /// no client before the checks' own. Returns the server and the ports it does not listen on:
    /// once at least one port listens, a port still missing a second later is given up on, so
    /// a server that forgot one port is told so at once.
    pub fn spawn_listening(cmd: Command, ports: &[u16], name: Option<&str>) -> Result<(Server, Vec<u16>), Failure> {
        const SETTLE: Duration = Duration::from_secs(1);
        let mut server = Server::spawn_unready(cmd, name, &Options::default())?;
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
            // A server that daemonizes exits at once and leaves its child to listen: only when
            // nothing of it is left has it exited before listening.
            if let Some(status) = server.process.exit_status()
                && server.pids().is_empty()
            {
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
        Ok(Server { process, name, ports: Vec::new(), log: Log::read_from(streams) })
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
        self.process.pid()
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
        let owners = procfs::socket_owners(|pid| pids.contains(&pid));
        procfs::listening_tcp()
            .into_iter()
            .filter_map(|s| owners.get(&s.inode).map(|&pid| Listening { addr: s.local, owner: Some(owner(pid)) }))
            .collect()
    }

    /// Every TCP socket listening on `port` on this machine, with its owner where `/proc` tells
    /// (processes of other users are not shown).
    pub fn listeners_on(port: u16) -> Vec<Listening> {
        let on_port: Vec<procfs::TcpSocket> =
            procfs::listening_tcp().into_iter().filter(|s| s.local.port() == port).collect();
        if on_port.is_empty() {
            return Vec::new();
        }
        let owners = procfs::socket_owners(|_| true);
        on_port
            .into_iter()
            .map(|s| Listening { addr: s.local, owner: owners.get(&s.inode).map(|&p| owner(p)) })
            .collect()
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

/// `pid 1234 (command line)`, as failure messages name a socket's owner.
fn owner(pid: u32) -> String {
    format!("pid {pid} ({})", procfs::command(pid))
}
