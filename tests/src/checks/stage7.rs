//! What stage 7 adds to stage 6's behaviour: Ctrl+C (and SIGTERM, SIGHUP), Experiment #1, and
//! the DEBUG log following the page's function call order.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::ChildStdout;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::milestone_2::one_client_on_each_port_gets_its_reversal;
use super::ports;
use crate::process::{Options, Process};
use crate::{Client, Failure, Role, Server, Target};

/// Stage 7's Experiment #1, a behaviour the course documents (and stage 8 fixes): the server's
/// connection sockets block, so while it is stuck in `send()` to a client that never reads,
/// no other client is served; once that client quits, the others are served again.
pub fn experiment_1_blocking_send_stalls_everyone_until_the_sender_quits(server: &Server) -> Result<(), Failure> {
    let ports = ports(server, 1)?;
    let (sender_port, other_port) = (ports[0], *ports.get(1).unwrap_or(&ports[0]));

    // 1. A sender that never reads streams data until its own send() would block: the server
    //    stopped reading, because it is itself blocked sending replies nobody reads.
    let sender = Client::connect(server, sender_port, "sender (never reads)")?;
    let sent = fill_until_blocked(sender.stream(), server).map_err(|why| {
        Failure::new(format!(
            "{} never got stuck (Experiment #1: stage 7 blocks here; stage 8 fixes it)",
            sender.label()
        ))
        .detail("observed", why)
        .blame(
            Role::ReadHandler,
            "stage 7 uses blocking connection sockets, so send() to a client that does not read blocks the server",
        )
        .ahead_of_the_page(DOES_NOT_STALL)
        .log_of(server)
    })?;

    // 2. A second client is not served while the server is blocked.
    let mut other = Client::connect(server, other_port, "second client")?;
    other.send(server, b"hello\n")?;
    other
        .expect_silence(
            server,
            b"hello\n",
            Duration::from_secs(1),
            "while the server is blocked in send() to the sender, nobody else should be served \
             (Experiment #1: the documented stage 7 behaviour, which stage 8 fixes with non-blocking sockets)",
        )
        .map_err(|f| {
            f.detail("sender sent", format!("{sent} bytes before its send() blocked")).ahead_of_the_page(DOES_NOT_STALL)
        })?;

    // 3. The sender quits: the server's send() fails, it drops the sender and serves the other.
    drop(sender);
    other.expect(server, b"hello\n", b"olleh\n").map_err(|f| {
        f.hint("after the sender quits, the server's blocked send() fails; it should destroy that connection and serve the rest")
    })
}

/// What Experiment #1 finds in a server that does not stall: for a learner's own build, a note,
/// not a failure (the experiment shows the page's design; stage 8 changes it).
const DOES_NOT_STALL: &str = "your server does not stall (Experiment #1): a client that does not read held up no \
     other client, as after the change stage 8 makes (non-blocking sockets); the page's stage 7 stalls here, and that \
     is what the experiment shows, not a requirement";

/// Writes to `stream` (made non-blocking) until the server is stuck: writes have failed with
/// `WouldBlock` for half a second in a row, and, where Linux tells (`/proc/<pid>/wchan`), the
/// server process sleeps in the kernel's wait for send-buffer space (`wait_woken`) rather than
/// in `epoll_wait()` or on a full stdout pipe. Returns how many bytes went out, or why it gave
/// up (more than 1 GiB or 30 s without getting stuck).
pub fn fill_until_blocked(stream: &TcpStream, server: &Server) -> Result<usize, String> {
    const LIMIT: usize = 1 << 30;
    stream.set_nonblocking(true).map_err(|e| format!("set_nonblocking failed: {e}"))?;
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let started = Instant::now();
    let mut total = 0;
    let mut blocked_since: Option<Instant> = None;
    let mut stream = stream;
    loop {
        match stream.write(&chunk) {
            Ok(n) => {
                total += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) && server_waits_in_send(server) {
                    return Ok(total);
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("send failed after {total} bytes: {e}")),
        }
        if total > LIMIT || started.elapsed() > Duration::from_secs(30) {
            return Err(format!("{total} bytes went out in {:?} and the server kept reading", started.elapsed()));
        }
    }
}

/// Whether a thread of the server sleeps in a blocking `send()`, as far as
/// `/proc/<pid>/task/*/wchan` (the kernel function each thread waits in) tells; `true` when the
/// kernel does not say.
fn server_waits_in_send(server: &Server) -> bool {
    let Ok(wchans) = crate::procfs::thread_wchans(server.pid()) else { return true };
    wchans.is_empty() || wchans.iter().any(|wchan| matches!(wchan.as_str(), "wait_woken" | "sk_stream_wait_memory"))
}

/// Stage 7's graceful shutdown, proven: with a client connected on every port, `signal` (SIGINT
/// for Ctrl+C; SIGTERM and SIGHUP take the same path) makes the server destroy every
/// connection, every listener and then the core, and exit 0 within 2 s.
///
/// The kernel closes every socket at any exit, so clients seeing end-of-file proves nothing by
/// itself; what proves the graceful path are the page's DEBUG lines (the server must run with
/// `XPS_DEBUG=1`): `destroyed connection` for each client, `destroyed listener on port N` for
/// each port, then `destroyed core`.
pub fn shutdown_destroys_every_instance_then_exits_0(server: &mut Server, signal: libc::c_int) -> Result<(), Failure> {
    let ports = server.ports().to_vec();
    let mut clients = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let mut client = Client::connect(server, port, format!("client {}", i + 1))?;
        client.round_trip(server, b"before the signal\n")?;
        clients.push(client);
    }
    let name = match signal {
        libc::SIGINT => "SIGINT (Ctrl+C)",
        libc::SIGTERM => "SIGTERM (kill PID)",
        libc::SIGHUP => "SIGHUP (terminal closed)",
        _ => "the signal",
    };

    let sent = Instant::now();
    server.signal(signal);
    let status = server.wait_exit(Duration::from_secs(2));
    let exited_0 = status.is_some_and(|s| s.code() == Some(0));
    if !exited_0 {
        return Err(Failure::new(format!("after {name} the server must exit with status 0 within 2 s"))
            .detail("received", format!("{} after {:?}", crate::server::describe_status(status), sent.elapsed()))
            .blame(Role::SigintHandler, "the handler wakes the loop; main then destroys the core and exits 0")
            .log_of(server));
    }

    let log = server.log_tail(10_000);
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("[DEBUG]")).collect();
    let position = |suffix: &str| lines.iter().rposition(|l| l.ends_with(suffix));
    let missing = |what: String, role: Role, why: &str| {
        Failure::new(format!("after {name} the server exited 0, but it did not destroy {what} first"))
            .detail("expected", "with XPS_DEBUG=1, a `[DEBUG] ...` line for each destroyed connection and listener, then `destroyed core`")
            .blame(role, why)
            .hint("sigint_handler() must make the loop return so that main calls xps_core_destroy(), which destroys every connection and listener")
            .log_of(server)
    };
    let Some(core) = position("destroyed core") else {
        return Err(missing("the core".into(), Role::SigintHandler, "the core must be destroyed before the exit"));
    };
    let connections = lines[..core].iter().filter(|l| l.ends_with("destroyed connection")).count();
    if connections < clients.len() {
        return Err(missing(
            format!("its {} connections (saw {connections} `destroyed connection` lines)", clients.len()),
            Role::CoreDestroy,
            "destroy every connection still in the core's list",
        ));
    }
    let destroyed_listeners = lines[..core].iter().filter(|l| l.contains("destroyed listener on port")).count();
    for port in &ports {
        if !lines[..core].iter().any(|l| l.ends_with(&format!("destroyed listener on port {port}"))) {
            return Err(if destroyed_listeners >= ports.len() {
                missing(
                    format!(
                        "the listener on port {port}: {destroyed_listeners} listeners were destroyed, but none logged port {port}"
                    ),
                    Role::ListenerDestroy,
                    "its DEBUG line must name the listener's own port (listener.port)",
                )
            } else {
                missing(
                    format!("the listener on port {port}"),
                    Role::CoreDestroy,
                    "destroy every listener still in the core's list",
                )
            });
        }
    }
    for mut client in clients {
        client.expect_eof(server, Duration::from_secs(1))?;
    }
    Ok(())
}

/// `stage07 --host 127.0.0.1 PORTS...` with `XPS_DEBUG=1`, started and listening.
fn start_debug(target: &Target, ports: &[u16]) -> Result<Server, Failure> {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    let mut cmd = target.command(&ports);
    cmd.env("XPS_DEBUG", "1");
    Server::spawn(cmd, ports.len())
}

/// Ctrl+C, as the page designs it: every connection and listener, then the core, destroyed on
/// the way out (the DEBUG lines prove it), exit 0; and the same ports can be listened on again.
pub fn ctrl_c_destroys_every_connection_listener_and_the_core_then_exits_0(target: &Target) -> Result<(), Failure> {
    let mut server = start_debug(target, &[0, 0, 0, 0])?;
    let ports = server.ports().to_vec();
    shutdown_destroys_every_instance_then_exits_0(&mut server, libc::SIGINT)?;
    if !server.log_contains("[WARNING] sigint_handler() : SIGINT received") {
        return Err(Failure::new("after Ctrl+C the server did not log `[WARNING] sigint_handler() : SIGINT received`")
            .blame(Role::SigintHandler, "log the page's WARNING line when SIGINT arrives")
            .log_of(&server));
    }
    let again = start_debug(target, &ports)?;
    one_client_on_each_port_gets_its_reversal(&again)
}

/// `kill PID`, systemd and docker stop a server with SIGTERM; closing its terminal sends SIGHUP.
/// Both take Ctrl+C's graceful path instead of killing the process outright (status 143 / 129).
pub fn sigterm_and_sighup_shut_down_like_ctrl_c_and_exit_0(target: &Target) -> Result<(), Failure> {
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let mut server = start_debug(target, &[0, 0])?;
        shutdown_destroys_every_instance_then_exits_0(&mut server, signal)?;
    }
    Ok(())
}

/// Stuck in `send()` to a client that never reads, the server still ends within 2 s of SIGINT:
/// the graceful path cannot finish, so the handler forces the exit (status 1) and says so.
pub fn ctrl_c_while_blocked_in_send_forces_the_exit_within_2_seconds(target: &Target) -> Result<(), Failure> {
    let mut server = start_debug(target, &[0, 0])?;
    let sender = Client::connect(&server, server.ports()[0], "sender (never reads)")?;
    fill_until_blocked(sender.stream(), &server).map_err(|why| {
        Failure::new("the server never blocked in send()")
            .detail("observed", why)
            .blame(
                Role::ReadHandler,
                "stage 7's connection sockets block: send() to a client that does not read must block",
            )
            .log_of(&server)
    })?;
    let sent = Instant::now();
    server.sigint();
    let status = server.wait_exit(Duration::from_secs(2));
    let forced = status.is_some_and(|s| s.code() == Some(1)) && server.log_contains("forcing the exit");
    drop(sender);
    if !forced {
        return Err(Failure::new(
            "stuck in send(), the server must still end within 2 s of SIGINT, with status 1, saying it forces the exit",
        )
        .detail("received", format!("{} after {:?}", crate::server::describe_status(status), sent.elapsed()))
        .blame(
            Role::SigintHandler,
            "after the grace period, the handler forces the exit (status 1) and says why on stderr",
        )
        .log_of(&server));
    }
    Ok(())
}

/// Ctrl+C must work while the server is stuck writing its log to a stdout nobody reads
/// (`cargo run -p stage07 | less` with `less` paused, a terminal paused with Ctrl+S): the signal
/// handler may not wait for the stdout lock the stuck main thread holds. The graceful path
/// cannot finish there, so the handler forces the exit (status 1) and says why on stderr.
pub fn ctrl_c_exits_within_2_seconds_while_stdout_is_not_being_read(target: &Target) -> Result<(), Failure> {
    let mut server = UnreadStdoutServer::start(target)?;
    let port = server.port;
    // One client sends 200 x 1 KB: the server prints each message, and the stdout pipe (64 KB)
    // fills long before the end, leaving the server stuck in write(1, ...).
    let sender = thread::spawn(move || {
        let Ok(mut client) = TcpStream::connect(("127.0.0.1", port)) else { return };
        let _ = client.set_write_timeout(Some(Duration::from_secs(10)));
        let line = [b"x".repeat(1023), b"\n".to_vec()].concat();
        for _ in 0..200 {
            if client.write_all(&line).is_err() {
                return;
            }
        }
        thread::sleep(Duration::from_secs(10));
    });
    if !server.wait_blocked_on_stdout(Duration::from_secs(10)) {
        return Err(Failure::new("the server never got stuck writing to its stdout pipe")
            .detail("received", format!("wchan {:?}", server.wchan())));
    }
    let sent = Instant::now();
    server.signal(libc::SIGINT);
    let status = server.wait_exit(Duration::from_secs(2));
    let stderr = server.stderr();
    drop(sender);
    let Some(status) = status else {
        return Err(Failure::new(format!("with its stdout not being read, the server must still exit within 2 s of SIGINT; after {:?} it is still running", sent.elapsed()))
            .detail("stderr", stderr)
            .blame(Role::SigintHandler, "the handler must not log (and so wait for the stdout lock) before it wakes the loop"));
    };
    if status.code() != Some(1) || !stderr.contains("forcing the exit") {
        return Err(Failure::new("a forced exit (the core was not destroyed) exits 1 and says so on stderr")
            .detail("received", format!("{}; stderr {stderr:?}", crate::server::describe_status(Some(status))))
            .blame(
                Role::SigintHandler,
                "after the grace period, the handler forces the exit (status 1) and says why on stderr",
            ));
    }
    Ok(())
}

/// The page's function call order, as the DEBUG log shows it with `XPS_DEBUG=1`: one client says
/// hello and leaves, then Ctrl+C. Each step lists every start of line the page itself uses for
/// it: the page's code logs the read handler's `peer closed connection` as
/// `connection_loop_read_handler()`, and its note calls that function `connection_read_handler`.
const PAGE_CALL_ORDER: [&[&str]; 23] = [
    &["[DEBUG] xps_loop_create() : created loop"],
    &["[DEBUG] xps_core_create() : created core"],
    &["[DEBUG] xps_start() : starting core"],
    &["[DEBUG] event_create() : created event"],
    &["[DEBUG] xps_listener_create() : created listener on port"],
    &["[INFO] xps_core_start() : Server listening on port"],
    &["[DEBUG] xps_loop_run() : epoll wait"],
    &["[DEBUG] xps_loop_run() : epoll wait over"],
    &["[DEBUG] xps_loop_run() : handling 1 events"],
    &["[DEBUG] xps_loop_run() : handling event no. 1"],
    &["[DEBUG] handle_epoll_events() : EVENT / read"],
    &["[DEBUG] event_create() : created event"],
    &["[DEBUG] xps_connection_create() : created connection"],
    &["[INFO] listener_connection_handler() : new connection"],
    &["[CLIENT MESSAGE] hello"],
    &[
        "[INFO] connection_read_handler() : peer closed connection",
        "[INFO] connection_loop_read_handler() : peer closed connection",
    ],
    &["[DEBUG] event_destroy() : destroyed event"],
    &["[DEBUG] xps_connection_destroy() : destroyed connection"],
    &["[WARNING] sigint_handler() : SIGINT received"],
    &["[DEBUG] event_destroy() : destroyed event"],
    &["[DEBUG] xps_listener_destroy() : destroyed listener on port"],
    &["[DEBUG] xps_loop_destroy() : destroyed loop"],
    &["[DEBUG] xps_core_destroy() : destroyed core"],
];

/// Where `log` leaves `order` (each step a line that starts with one of its texts, found after
/// the previous step's line; other lines may come between): `None` if it follows it, else the
/// index of the first step not found and the index of the log line the step before matched.
pub fn first_step_not_followed(log: &str, order: &[&[&str]]) -> Option<(usize, Option<usize>)> {
    let lines: Vec<&str> = log.lines().collect();
    let mut after: Option<usize> = None;
    for (step, accepted) in order.iter().enumerate() {
        let from = after.map_or(0, |i| i + 1);
        match lines[from..].iter().position(|line| accepted.iter().any(|a| line.starts_with(a))) {
            Some(i) => after = Some(from + i),
            None => return Some((step, after)),
        }
    }
    None
}

/// With `XPS_DEBUG=1` the debug lines follow the page's function call order.
pub fn debug_log_follows_the_pages_function_call_order(target: &Target) -> Result<(), Failure> {
    let mut server = start_debug(target, &[0])?;
    let mut client = Client::connect(&server, server.ports()[0], "client")?;
    client.round_trip(&server, b"hello\n")?;
    client.close();
    server.wait_for_log("destroyed connection", Duration::from_secs(5));
    server.sigint();
    server.wait_exit(Duration::from_secs(2));
    match call_order_failure(&server.log_tail(1000)) {
        None => Ok(()),
        Some(failure) => Err(failure.log_of(&server)),
    }
}

/// The failure for a DEBUG log that leaves [`PAGE_CALL_ORDER`]: the expected sequence, and the
/// first step not found with the log line where it was expected.
fn call_order_failure(log: &str) -> Option<Failure> {
    let (step, after) = first_step_not_followed(log, &PAGE_CALL_ORDER)?;
    let lines: Vec<&str> = log.lines().collect();
    let expected: Vec<String> = PAGE_CALL_ORDER
        .iter()
        .enumerate()
        .map(|(i, accepted)| format!("{:>2}. {}", i + 1, accepted.join("  or  ")))
        .collect();
    let received = match after {
        Some(i) => format!(
            "steps 1-{step} in order, step {step} at log line {} (`{}`); after it, no line starts with `{}`; the next log line is {}",
            i + 1,
            lines[i],
            PAGE_CALL_ORDER[step].join("` or `"),
            lines.get(i + 1).map_or("(none: the log ends there)".to_string(), |l| format!("`{l}`"))
        ),
        None => format!("no line starts with `{}`", PAGE_CALL_ORDER[step].join("` or `")),
    };
    Some(
        Failure::new(format!(
            "the DEBUG log leaves the page's call order at step {} of {}: `{}`",
            step + 1,
            PAGE_CALL_ORDER.len(),
            PAGE_CALL_ORDER[step][0]
        ))
        .detail("expected", format!("these lines in this order (others may come between):\n{}", expected.join("\n")))
        .detail("received", received)
        .blame(Role::CoreStart, "the call order is the page's: each function logs its own line"),
    )
}

/// A stage 7 server whose stdout is a pipe this check reads only up to the `listening` line.
/// Dropping it stops the server.
struct UnreadStdoutServer {
    /// Kept open and never read again, so the pipe fills. (Dropped before `process`: a server
    /// stuck writing to it then gets EPIPE and stops sooner.)
    _stdout: Option<ChildStdout>,
    process: Process,
    port: u16,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl UnreadStdoutServer {
    fn start(target: &Target) -> Result<UnreadStdoutServer, Failure> {
        let cmd = target.command(&["0"]);
        let mut process = Process::spawn(cmd, &Options::default())
            .map_err(|e| Failure::new(format!("could not start the stage: {e}")))?;
        let stdout = process.take_stdout().expect("stdout is piped");
        let mut stderr_pipe = process.take_stderr().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut server = UnreadStdoutServer { _stdout: None, process, port: 0, stderr };
        // Read stdout on a thread only until the port is known, so a silent server cannot hang us.
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some((_, port)) = line.split_once("Server listening on port ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                    break;
                }
                line.clear();
            }
            reader.into_inner()
        });
        let Some(port) = rx.recv_timeout(Duration::from_secs(20)).ok().flatten() else {
            return Err(Failure::new("the stage did not log its port")
                .detail("stderr", server.stderr())
                .blame(Role::Start, "log `Server listening on port N` for each listener"));
        };
        server.port = port;
        server._stdout = reader.join().ok();
        Ok(server)
    }

    /// The kernel function the server's main thread sleeps in (`/proc/PID/wchan`).
    fn wchan(&self) -> String {
        crate::procfs::wchan(self.process.pid()).unwrap_or_default()
    }

    /// Waits until the server sleeps writing to its full stdout pipe.
    fn wait_blocked_on_stdout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.wchan().ends_with("pipe_write") {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn signal(&self, signal: libc::c_int) {
        let _ = self.process.signal(signal);
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// What the server wrote to stderr so far, as text.
    fn stderr(&self) -> String {
        thread::sleep(Duration::from_millis(50));
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The page's log, with `read_handler` as the name of the read handler's `peer closed` line.
    fn page_log(read_handler: &str) -> String {
        PAGE_CALL_ORDER
            .iter()
            .map(|accepted| {
                let line = accepted[0].replace("connection_read_handler()", read_handler);
                format!("{line} 8001\n[DEBUG] something else in between\n")
            })
            .collect()
    }

    #[test]
    fn both_names_the_page_gives_the_read_handler_follow_the_call_order() {
        for name in ["connection_read_handler()", "connection_loop_read_handler()"] {
            assert_eq!(first_step_not_followed(&page_log(name), &PAGE_CALL_ORDER), None, "{name}");
        }
    }

    #[test]
    fn another_name_fails_showing_the_expected_sequence_and_the_line_where_it_differs() {
        let log = page_log("xps_connection_read_handler()");
        let failure = call_order_failure(&log).expect("a name the page does not use must fail");
        let text = failure.render(7);
        for needle in [
            "leaves the page's call order at step 16 of 23",
            "16. [INFO] connection_read_handler() : peer closed connection  or  [INFO] connection_loop_read_handler() : peer closed connection",
            " 1. [DEBUG] xps_loop_create() : created loop",
            "23. [DEBUG] xps_core_destroy() : destroyed core",
            "the next log line is `[DEBUG] something else in between`",
        ] {
            assert!(text.contains(needle), "the failure should contain {needle:?}; it was:\n{text}");
        }
    }
}
