//! Stage 7's shutdown: Ctrl+C (and SIGTERM, SIGHUP) destroys every instance and exits 0, or,
//! when the graceful path cannot finish (stuck in `send()`, stuck writing to a stdout nobody
//! reads), the handler forces the exit within 2 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ChildStdout;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::milestone_2::one_client_on_each_port_gets_its_reversal;
use super::stage7::{fill_until_blocked, start_debug};
use crate::process::{Options, Process};
use crate::{Client, Failure, Role, Server, Target};

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
