//! What stage 7 adds to stage 6's behaviour (`cargo test -p stage07`): Ctrl+C (and SIGTERM,
//! SIGHUP), Experiment #1, and the debug log following the page's function call order. The
//! tests are named `extra_*`: they go beyond the page's milestones.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{ChildStdout, Command};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use xps_tests::process::{Options, Process};
use xps_tests::{Client, Server, checks, procfs};

const BIN: &str = env!("CARGO_BIN_EXE_stage07");

/// `stage07 --host 127.0.0.1 PORTS...` with `XPS_DEBUG=1`, started and listening.
fn start_debug(ports: &[u16]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.env("XPS_DEBUG", "1").args(["--host", "127.0.0.1"]).args(ports.iter().map(u16::to_string));
    Server::spawn(cmd, ports.len()).unwrap_or_else(|f| panic!("\n{f}"))
}

/// Ctrl+C, as the page designs it: every connection and listener, then the core, destroyed on
/// the way out (the DEBUG lines prove it), exit 0; and the same ports can be listened on again.
#[test]
fn extra_ctrl_c_destroys_every_connection_listener_and_the_core_then_exits_0() {
    let mut server = start_debug(&[0, 0, 0, 0]);
    let ports = server.ports().to_vec();
    checks::shutdown_destroys_every_instance_then_exits_0(&mut server, libc::SIGINT)
        .unwrap_or_else(|f| panic!("\n{f}"));
    assert!(server.log_contains("[WARNING] sigint_handler() : SIGINT received"), "{}", server.log_tail(20));

    let again = start_debug(&ports);
    xps_tests::run(&again, checks::one_client_on_each_port_gets_its_reversal);
}

/// `kill PID`, systemd and docker stop a server with SIGTERM; closing its terminal sends SIGHUP.
/// Both take Ctrl+C's graceful path instead of killing the process outright (status 143 / 129).
#[test]
fn extra_sigterm_and_sighup_shut_down_like_ctrl_c_and_exit_0() {
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let mut server = start_debug(&[0, 0]);
        checks::shutdown_destroys_every_instance_then_exits_0(&mut server, signal).unwrap_or_else(|f| panic!("\n{f}"));
    }
}

/// Ctrl+C must work while the server is stuck writing its log to a stdout nobody reads
/// (`cargo run -p stage07 | less` with `less` paused, a terminal paused with Ctrl+S): the signal
/// handler may not wait for the stdout lock the stuck main thread holds. The graceful path
/// cannot finish there, so the handler forces the exit (status 1) and says why on stderr.
#[test]
fn extra_ctrl_c_exits_within_2_seconds_while_stdout_is_not_being_read() {
    let mut server = UnreadStdoutServer::start();
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
    assert!(
        server.wait_blocked_on_stdout(Duration::from_secs(10)),
        "the server never got stuck writing to its stdout pipe (wchan: {:?})",
        server.wchan()
    );

    let sent = Instant::now();
    server.signal(libc::SIGINT);
    let status = server.wait_exit(Duration::from_secs(2));
    let stderr = server.stderr();
    assert!(
        status.is_some(),
        "with its stdout not being read, the server must still exit within 2 s of SIGINT; after {:?} it is \
         still running. Does sigint_handler() log (and so wait for the stdout lock) before it wakes the loop?\n\
         its stderr: {stderr:?}",
        sent.elapsed()
    );
    assert_eq!(
        status.unwrap().code(),
        Some(1),
        "a forced exit (the core was not destroyed) exits 1; stderr: {stderr:?}"
    );
    assert!(stderr.contains("forcing the exit"), "it must say on stderr that it forces the exit; stderr: {stderr:?}");
    drop(sender);
}

/// A stage 7 server whose stdout is a pipe this test reads only up to the `listening` line.
/// Dropping it stops the server.
struct UnreadStdoutServer {
    /// Kept open and never read again, so the pipe fills. (Dropped before `process`: a server
    /// stuck writing to it then gets EPIPE and stops sooner.)
    stdout: Option<ChildStdout>,
    process: Process,
    port: u16,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl UnreadStdoutServer {
    fn start() -> UnreadStdoutServer {
        let mut cmd = Command::new(BIN);
        cmd.args(["--host", "127.0.0.1", "0"]);
        let mut process = Process::spawn(cmd, &Options::default()).expect("start stage07");
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
        let mut server = UnreadStdoutServer { stdout: None, process, port: 0, stderr };

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
        let port = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        server.port = port.unwrap_or_else(|| panic!("stage07 did not log its port; stderr: {:?}", server.stderr()));
        server.stdout = Some(reader.join().expect("the stdout reader"));
        server
    }

    /// The kernel function the server's main thread sleeps in (`/proc/PID/wchan`).
    fn wchan(&self) -> String {
        procfs::wchan(self.process.pid()).unwrap_or_default()
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
        self.process.signal(signal).expect("signal the server");
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

#[test]
fn extra_ctrl_c_while_blocked_in_send_forces_the_exit_within_2_seconds() {
    let mut server = start_debug(&[0, 0]);
    let sender = Client::connect(&server, server.ports()[0], "sender (never reads)").unwrap();
    checks::fill_until_blocked(sender.stream(), &server)
        .unwrap_or_else(|why| panic!("the server never blocked: {why}"));

    let sent = Instant::now();
    server.sigint();
    let status = server.wait_exit(Duration::from_secs(2));
    assert!(
        status.is_some(),
        "stuck in send(), the server must still exit within 2 s of SIGINT; after {:?} it runs\n{}",
        sent.elapsed(),
        server.log_tail(10)
    );
    assert_eq!(status.unwrap().code(), Some(1), "a forced exit (the core was not destroyed) exits 1");
    assert!(server.log_contains("forcing the exit"), "it must say it is forcing the exit\n{}", server.log_tail(10));
    drop(sender);
}

/// Experiment #1 of the page, as a test: the documented stage 7 behaviour that stage 8 fixes.
#[test]
fn extra_experiment_1_stage7_blocks_everyone_while_one_client_does_not_read_and_recovers_when_it_quits() {
    let server = Server::start_on_free_ports(BIN, 4);
    xps_tests::run(&server, checks::experiment_1_blocking_send_stalls_everyone_until_the_sender_quits);
}

/// With `XPS_DEBUG=1` the debug lines follow the page's function call order.
#[test]
fn extra_debug_log_follows_the_pages_function_call_order() {
    let mut server = start_debug(&[0]);
    let mut client = Client::connect(&server, server.ports()[0], "client").unwrap();
    client.round_trip(&server, b"hello\n").unwrap_or_else(|f| panic!("\n{f}"));
    client.close();
    assert!(server.wait_for_log("destroyed connection", Duration::from_secs(5)), "{}", server.log_tail(30));
    server.sigint();
    server.wait_exit(Duration::from_secs(2));

    let expected = [
        "[DEBUG] xps_loop_create() : created loop",
        "[DEBUG] xps_core_create() : created core",
        "[DEBUG] xps_start() : starting core",
        "[DEBUG] event_create() : created event",
        "[DEBUG] xps_listener_create() : created listener on port",
        "[INFO] xps_core_start() : Server listening on port",
        "[DEBUG] xps_loop_run() : epoll wait",
        "[DEBUG] xps_loop_run() : epoll wait over",
        "[DEBUG] xps_loop_run() : handling 1 events",
        "[DEBUG] xps_loop_run() : handling event no. 1",
        "[DEBUG] handle_epoll_events() : EVENT / read",
        "[DEBUG] event_create() : created event",
        "[DEBUG] xps_connection_create() : created connection",
        "[INFO] listener_connection_handler() : new connection",
        "[CLIENT MESSAGE] hello",
        "[INFO] connection_read_handler() : peer closed connection",
        "[DEBUG] event_destroy() : destroyed event",
        "[DEBUG] xps_connection_destroy() : destroyed connection",
        "[WARNING] sigint_handler() : SIGINT received",
        "[DEBUG] event_destroy() : destroyed event",
        "[DEBUG] xps_listener_destroy() : destroyed listener on port",
        "[DEBUG] xps_loop_destroy() : destroyed loop",
        "[DEBUG] xps_core_destroy() : destroyed core",
    ];
    let log = server.log_tail(1000);
    let mut lines = log.lines();
    for want in expected {
        assert!(
            lines.any(|line| line.starts_with(want)),
            "expected `{want}` after the lines before it in the list, in this order:\n{log}"
        );
    }
}
