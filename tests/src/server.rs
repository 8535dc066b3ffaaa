//! Starting a server under test, reading its output, stopping it.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::net::TcpStream;
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

/// A server process under test. Dropping it kills the process (also when a test panics).
pub struct Server {
    child: Child,
    name: String,
    ports: Vec<u16>,
    output: Arc<(Mutex<Output>, Condvar)>,
    exit_status: Option<ExitStatus>,
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
        let mut server = Server::spawn_unready(cmd)?;
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
    /// build that cannot be told to use port 0) and waits until every port accepts connections.
    pub fn spawn_on_ports(cmd: Command, ports: &[u16]) -> Result<Server, Failure> {
        let mut server = Server::spawn_unready(cmd)?;
        let deadline = Instant::now() + START_TIMEOUT;
        for &port in ports {
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                if let Some(status) = server.try_exit_status() {
                    return Err(Failure::new(format!("{} exited before listening on port {port}", server.name))
                        .detail("status", describe_status(Some(status)))
                        .hint("is another server already using the port? the output below says why it stopped")
                        .log_of(&server));
                }
                if Instant::now() > deadline {
                    return Err(Failure::new(format!("{} is not accepting connections on port {port}", server.name))
                        .hint("does the server listen on this port, on 127.0.0.1 or 0.0.0.0?")
                        .log_of(&server));
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        server.ports = ports.to_vec();
        Ok(server)
    }

    fn spawn_unready(mut cmd: Command) -> Result<Server, Failure> {
        let name = std::path::Path::new(cmd.get_program())
            .file_name()
            .map_or_else(|| "server".to_string(), |n| n.to_string_lossy().into_owned());
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl(),
        // which is async-signal-safe; it touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // If the test thread that started the server dies without dropping it (the test
                // harness killed, say), the kernel kills the server too: no stray servers.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            Failure::new(format!("could not start {name}: {e}")).hint("was the server built? is the path right?")
        })?;
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        for stream in [stdout, stderr].into_iter().flatten().map(File::from) {
            let output = Arc::clone(&output);
            // Always drain the server's output: a server whose stdout pipe is full blocks.
            thread::spawn(move || read_output(stream, &output));
        }
        Ok(Server { child, name, ports: Vec::new(), output, exit_status: None })
    }

    /// The ports the server listens on, in the order it logged them.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The server's name (its binary's file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of the server's stdout and stderr, long lines shortened. Waits up
    /// to half a second for the output to settle first: what the server printed just before a
    /// check failed may still be on its way through the pipe.
    pub fn log_tail(&self, lines: usize) -> String {
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

    /// Sends SIGINT, as Ctrl+C in the server's terminal does.
    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the server process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill() takes no pointers; the pid is our own child, which we have not reaped
        // (reaping happens only in wait_exit / drop), so it cannot name another process.
        let ret = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(ret, 0, "kill({signal}) failed: {}", std::io::Error::last_os_error());
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = self.child.try_wait().ok().flatten();
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
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `exited with status 1`, `killed by signal 9`, or `still running`.
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "still running".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
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
/// parallel. An advisory `flock()` on a file in the system's temp folder.
pub struct DefaultPortsLock(#[allow(dead_code, reason = "held for its Drop: closing the file releases the lock")] File);

impl DefaultPortsLock {
    /// How long to wait for another test or script that uses the default ports.
    const WAIT: Duration = Duration::from_secs(180);

    /// Waits until no other test (or `scripts/check-build.sh`, `scripts/experiment1.sh`) holds
    /// the default ports, then holds them; panics with a clear message after three minutes.
    pub fn acquire() -> DefaultPortsLock {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join("xps-tests-default-ports.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
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
                "waited {:?} for the default ports: another test, or scripts/check-build.sh or \
                 scripts/experiment1.sh, still holds the lock {}; retry once it is done",
                Self::WAIT,
                path.display()
            );
            thread::sleep(Duration::from_millis(100));
        }
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
}
