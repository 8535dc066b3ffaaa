//! What stage 7 adds to stage 6's behaviour: Experiment #1 and the DEBUG log following the
//! page's function call order. Its Ctrl+C (and SIGTERM, SIGHUP) checks are in [`super::shutdown`].

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::ports;
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

/// `stage07 --host 127.0.0.1 PORTS...` with `XPS_DEBUG=1`, started and listening.
pub(super) fn start_debug(target: &Target, ports: &[u16]) -> Result<Server, Failure> {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    let mut cmd = target.command(&ports);
    cmd.env("XPS_DEBUG", "1");
    Server::spawn(cmd, ports.len())
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
