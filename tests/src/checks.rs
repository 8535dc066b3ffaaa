//! The milestone checks, one definition each, run against every stage.
//!
//! The checks that talk to a running server take `&Server` and return `Result<(), Failure>`;
//! `scripts/check-build.sh` runs the same functions against a learner's own build. The
//! command-line checks take the binary's path and run it to completion with `assert_cmd`.
//!
//! Naming: each check is named after the behaviour a learner relies on, and the course's own
//! three automated checks are `course_check_1..3`.

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

use crate::{Client, DefaultPortsLock, Failure, Rng, Server};

/// One message a check sends, named after the client that sends it.
fn message(client: &str, n: usize) -> Vec<u8> {
    format!("message {n} from {client}\n").into_bytes()
}

/// At least `n` ports, or a failure saying the server has too few.
fn ports(server: &Server, n: usize) -> Result<&[u16], Failure> {
    if server.ports().len() < n {
        return Err(Failure::new(format!(
            "this check needs {n} ports, the server listens on {}",
            server.ports().len()
        ))
        .log_of(server));
    }
    Ok(server.ports())
}

/// Milestone #2, steps 1 and 2: a netcat client on each port sends a message and gets it back
/// reversed.
pub fn one_client_on_each_port_gets_its_reversal(server: &Server) -> Result<(), Failure> {
    for (i, &port) in server.ports().iter().enumerate() {
        let label = format!("client {}", i + 1);
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
    }
    Ok(())
}

/// Milestone #2, step 3: more clients on a port that already has one are served too, and the
/// first is still served after them.
pub fn second_and_third_clients_on_a_busy_port_are_served(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut clients = Vec::new();
    for i in 1..=3 {
        let label = format!("client {i}");
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
        clients.push((label, client));
    }
    for (label, client) in &mut clients {
        client.round_trip(server, &message(label, 2))?;
    }
    Ok(())
}

/// The page's test "Try the same test with 4 clients and 3 ports".
pub fn four_clients_on_three_ports_each_get_their_reply(server: &Server) -> Result<(), Failure> {
    let ports = ports(server, 3)?;
    let mut clients = Vec::new();
    for i in 0..4 {
        let label = format!("client {}", i + 1);
        let client = Client::connect(server, ports[i % 3], &label)?;
        clients.push((label, client));
    }
    for round in 1..=3 {
        for (label, client) in &mut clients {
            client.round_trip(server, &message(label, round))?;
        }
    }
    Ok(())
}

/// Milestone #2, step 4: every client sends before any reads; each gets its own reply.
pub fn interleaved_messages_from_all_clients_each_get_their_own_reply(server: &Server) -> Result<(), Failure> {
    let mut clients = Vec::new();
    for (i, &port) in server.ports().iter().enumerate() {
        for j in 1..=2 {
            let label = format!("client {}.{j}", i + 1);
            let client = Client::connect(server, port, &label)?;
            clients.push((label, client));
        }
    }
    for round in 1..=3 {
        let sent: Vec<Vec<u8>> = clients.iter().map(|(label, _)| message(label, round)).collect();
        for ((_, client), msg) in clients.iter_mut().zip(&sent) {
            client.send(server, msg)?;
        }
        // Read in the opposite order to the sends: no reply may depend on another's.
        for ((_, client), msg) in clients.iter_mut().zip(&sent).rev() {
            client.expect(server, msg, &crate::expected_reply(msg))?;
        }
    }
    Ok(())
}

/// Milestone #2, step 5: clients disconnect; the server stays up and serves new clients.
pub fn server_stays_up_after_clients_disconnect_and_accepts_new_ones(server: &Server) -> Result<(), Failure> {
    for (i, &port) in server.ports().iter().enumerate() {
        let label = format!("client {}", i + 1);
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
        client.close();
    }
    // Give the server a moment to see the disconnects before the new clients arrive.
    thread::sleep(Duration::from_millis(100));
    for (i, &port) in server.ports().iter().enumerate() {
        let label = format!("new client {}", i + 1);
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
    }
    Ok(())
}

/// The course's automated check 1: on every port, one client sends 100 random strings (letters
/// and digits, up to 1000 characters, each ending in `\n`), one at a time; each reply must be
/// the reversal.
pub fn course_check_1_single_client_on_every_port_100_random_strings(server: &Server) -> Result<(), Failure> {
    let seed = Rng::seed_from_time();
    let mut rng = Rng::new(seed);
    for &port in server.ports() {
        let mut client = Client::connect(server, port, "client")?;
        for n in 1..=100 {
            let len = 1 + rng.below(1000) as usize;
            let mut msg = rng.alphanumeric(len);
            msg.push(b'\n');
            client
                .round_trip(server, &msg)
                .map_err(|f| f.detail("string", format!("{n} of 100 (random seed {seed})")))?;
        }
    }
    Ok(())
}

/// The course's automated check 2: ten clients connect to one port at once and each sends
/// `string-<i>\n`; each must get its own reversal.
pub fn course_check_2_ten_clients_at_once_on_one_port(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(Client::connect(server, port, format!("client {i}"))?);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(server, format!("string-{i}\n").as_bytes())?;
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let sent = format!("string-{i}\n").into_bytes();
        client.expect(server, &sent, &crate::expected_reply(&sent))?;
    }
    Ok(())
}

/// The course's automated check 3: a client disconnects; a client that was already connected
/// and a new client must both still be served, and the server must not exit.
pub fn course_check_3_disconnect_does_not_affect_other_clients(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut leaving = Client::connect(server, port, "leaving client")?;
    let mut staying = Client::connect(server, port, "staying client")?;
    leaving.round_trip(server, b"I am leaving\n")?;
    staying.round_trip(server, b"I am staying\n")?;
    leaving.close();
    thread::sleep(Duration::from_millis(100));
    staying.round_trip(server, b"still here\n")?;
    let mut new = Client::connect(server, port, "new client")?;
    new.round_trip(server, b"I am new\n")?;
    Ok(())
}

/// Any bytes work: NUL, invalid UTF-8, `\r`, empty lines and messages without a newline come
/// back reversed byte for byte, a trailing `\n` staying last.
pub fn raw_bytes_and_empty_lines_are_reversed_byte_for_byte(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut client = Client::connect(server, port, "client")?;
    let messages: [&[u8]; 7] = [
        b"\n",
        b"a\n",
        b"no newline",
        b"nul\0inside\n",
        b"\xff\xfe invalid utf-8 \xc3\n",
        b"windows line\r\n",
        b"\n\n",
    ];
    for msg in messages {
        client.round_trip(server, msg)?;
    }
    Ok(())
}

/// A client that resets its connection (RST instead of FIN) is logged with the OS error text and
/// dropped; the server keeps serving a client already connected and a new one.
pub fn client_that_resets_is_dropped_and_others_stay_served(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut staying = Client::connect(server, port, "staying client")?;
    let mut resetting = Client::connect(server, port, "resetting client")?;
    resetting.round_trip(server, b"about to reset\n")?;
    resetting.reset();
    if !server.wait_for_log("Connection reset by peer", Duration::from_secs(5)) {
        return Err(Failure::new("the server did not log the reset")
            .detail("expected", "an ERROR line with the OS error text `Connection reset by peer`")
            .hint("a recv() error should be logged with io::Error's text, then the connection destroyed")
            .log_of(server));
    }
    staying.round_trip(server, b"still here\n")?;
    let mut new = Client::connect(server, port, "new client")?;
    new.round_trip(server, b"I am new\n")?;
    Ok(())
}

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
        .hint("stage 7 uses blocking connection sockets, so send() to a client that does not read blocks the server")
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
        .map_err(|f| f.detail("sender sent", format!("{sent} bytes before its send() blocked")))?;

    // 3. The sender quits: the server's send() fails, it drops the sender and serves the other.
    drop(sender);
    other.expect(server, b"hello\n", b"olleh\n").map_err(|f| {
        f.hint("after the sender quits, the server's blocked send() fails; it should destroy that connection and serve the rest")
    })
}

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

/// `-h`/`--help` prints the usage on stdout and exits 0.
pub fn help_prints_usage_and_exits_0(bin: &Path) {
    for flag in ["-h", "--help"] {
        Command::new(bin)
            .arg(flag)
            .timeout(Duration::from_secs(10))
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage:").and(predicate::str::contains("--host HOST")));
    }
}

/// A port that is not a number or is above 65535, or an unknown flag, prints a message naming
/// the bad argument on stderr and exits 2, before listening on anything.
pub fn bad_arguments_exit_2_naming_the_argument(bin: &Path) {
    let cases: [(&[&str], &str); 5] = [
        (&["abc"], "invalid port 'abc'"),
        (&["65536"], "invalid port '65536'"),
        (&["8001", "-5"], "invalid port '-5'"),
        (&["--verbose"], "unknown option '--verbose'"),
        (&["--host"], "--host needs a value"),
    ];
    for (args, message) in cases {
        Command::new(bin)
            .args(args)
            .timeout(Duration::from_secs(10))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message))
            .stdout(predicate::str::contains("Server listening").not());
    }
}

/// A port that cannot be bound: an ERROR naming host:port and the OS error, exit status 1, and
/// the listener created before it is destroyed before the exit (its `destroyed listener on
/// port N` DEBUG line, the page's own words). The kernel would close its socket at any exit;
/// only that line shows the server undid what it had done.
pub fn port_in_use_exits_1_naming_host_port_and_os_error(bin: &Path) {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
    let port = taken.local_addr().unwrap().port();
    let output = Command::new(bin)
        .env("XPS_DEBUG", "1")
        .args(["--host", "127.0.0.1", "0", &port.to_string()])
        .timeout(Duration::from_secs(10))
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!("failed to bind() to 127.0.0.1:{port}: Address already in use")))
        .get_output()
        .stdout
        .clone();
    let log = String::from_utf8_lossy(&output);
    let first = log
        .lines()
        .find_map(|l| l.split_once("Server listening on port ").and_then(|(_, p)| p.trim().parse::<u16>().ok()));
    let Some(first) = first else {
        panic!("the first port (0) should have been listened on before the second failed; the output was:\n{log}");
    };
    assert!(
        log.lines().any(|l| l.starts_with("[DEBUG]") && l.ends_with(&format!("destroyed listener on port {first}"))),
        "the listener on port {first}, created before port {port} failed, must be destroyed before the exit \
         (a `[DEBUG] ... destroyed listener on port {first}` line with XPS_DEBUG=1); the output was:\n{log}"
    );
}

/// An unknown host: an ERROR naming the host, exit status 1.
pub fn unknown_host_exits_1_naming_the_host(bin: &Path) {
    Command::new(bin)
        .args(["--host", "no-such-host.invalid", "0"])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("'no-such-host.invalid'"));
}

/// Without port arguments the server listens on the course's default ports, in order, and serves
/// each. Holds [`DefaultPortsLock`] so no other test uses those ports meanwhile.
pub fn default_ports_are_listened_on_and_served(bin: &Path, default_ports: &[u16]) {
    let _lock = DefaultPortsLock::acquire();
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["--host", "127.0.0.1"]);
    let server = Server::spawn(cmd, default_ports.len()).unwrap_or_else(|f| {
        panic!(
            "\n{}",
            f.hint(format!("is another server already running on ports {default_ports:?}? stop it and retry"))
        )
    });
    assert_eq!(server.ports(), default_ports, "the default ports, in the order the course creates them");
    crate::run(&server, one_client_on_each_port_gets_its_reversal);
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
            .hint("the handler wakes the loop; main destroys the core and exits 0")
            .log_of(server));
    }

    let log = server.log_tail(10_000);
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("[DEBUG]")).collect();
    let position = |suffix: &str| lines.iter().rposition(|l| l.ends_with(suffix));
    let missing = |what: String| {
        Failure::new(format!("after {name} the server exited 0, but it did not destroy {what} first"))
            .detail("expected", "with XPS_DEBUG=1, a `[DEBUG] ...` line for each destroyed connection and listener, then `destroyed core`")
            .hint("sigint_handler() must make the loop return so that main calls xps_core_destroy(), which destroys every connection and listener")
            .log_of(server)
    };
    let Some(core) = position("destroyed core") else { return Err(missing("the core".into())) };
    let connections = lines[..core].iter().filter(|l| l.ends_with("destroyed connection")).count();
    if connections < clients.len() {
        return Err(missing(format!(
            "its {} connections (saw {connections} `destroyed connection` lines)",
            clients.len()
        )));
    }
    for port in &ports {
        if !lines[..core].iter().any(|l| l.ends_with(&format!("destroyed listener on port {port}"))) {
            return Err(missing(format!("the listener on port {port}")));
        }
    }
    for mut client in clients {
        client.expect_eof(server, Duration::from_secs(1))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Checks for the bugs learners' own builds have (run by scripts/check-build.sh)
// ---------------------------------------------------------------------------------------------

/// How long a check listens after a reply for bytes that should not come.
const AFTER_REPLY: Duration = Duration::from_millis(300);

/// What to do when a failure looks like memory corruption (a crash, stray bytes).
pub const SANITIZER_HINT: &str = "to find the line, rebuild your C with AddressSanitizer: add \
     `-g -fsanitize=address,undefined` to gcc's compile and link flags, run the check again, \
     and read the ERROR line and the first frame in your own file";

/// One client on the server's first port sends each of `messages`, one at a time, and must get
/// each one's reversal.
fn round_trips(server: &Server, label: &str, messages: &[&[u8]], hint: &str) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut client = Client::connect(server, port, label)?;
    for msg in messages {
        client.round_trip(server, msg).map_err(|f| if f.what.contains("wrong reply") { f.hint(hint) } else { f })?;
    }
    Ok(())
}

/// A message without a trailing `\n` (what `printf 'abc' | nc` or a client's last line sends)
/// comes back reversed whole: `no newline` -> `enilwen on`.
pub fn message_without_a_newline_comes_back_reversed(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"no newline", b"x", b"ab"],
        "only a trailing \\n stays last; a message without one is reversed whole. Does your code \
         treat the last byte as a newline without checking that it is one?",
    )
}

/// Empty lines (a lone `\n`, as netcat sends for Enter on an empty line, and as the course's
/// tester sends about one string in a hundred) come back as they are.
pub fn empty_lines_come_back_as_they_are(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"\n", b"a\n", b"\n"],
        "an empty line is just \\n and comes back as \\n: does the reversal handle length 0 before the newline?",
    )
}

/// Bytes 0x80-0xff (not letters, not UTF-8) come back reversed byte for byte.
pub fn bytes_0x80_to_0xff_come_back_reversed(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"\xff\xfe\x80 raw bytes \xc3\n", b"caf\xc3\xa9\n"],
        "the reply is the bytes reversed one by one, whatever their value; is a `char` (signed in C) \
         compared or converted somewhere?",
    )
}

/// A NUL byte inside a message comes back in its reversed place, like any other byte. (The
/// course's tester sends letters and digits only, so this does not change its verdict.)
pub fn nul_bytes_come_back_reversed(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"nul\0inside\n", b"\0\n"],
        "reverse the read_n bytes recv() returned, not strlen(buff) bytes: strlen() and string \
         functions stop at the first NUL. (The course's tester never sends a NUL.)",
    )
}

/// Nothing comes after a reply: the server sends exactly the reversed message, no `\0` after it
/// (`strlen + 1`), no second copy, no leftovers of an earlier message.
pub fn nothing_comes_after_a_reply(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut client = Client::connect(server, port, "client")?;
    for msg in [&b"hello\n"[..], b"a longer message, 42\n", b"x\n"] {
        client.round_trip(server, msg)?;
        let extra = read_briefly(client.stream(), AFTER_REPLY);
        if !extra.is_empty() {
            let reply = crate::expected_reply(msg);
            return Err(Failure::new(format!("{} got {} after the reply", client.label(), describe_extra(&extra)))
                .detail("sent", crate::escape(msg))
                .detail("expected", format!("{} and nothing more", crate::escape(&reply)))
                .detail("received", format!("{} then {}", crate::escape(&reply), crate::escape(&extra)))
                .hint(extra_bytes_hint(&extra))
                .log_of(server));
        }
    }
    Ok(())
}

/// `1 extra byte "\x00"`, `12 extra bytes "..."`.
pub fn describe_extra(extra: &[u8]) -> String {
    let s = if extra.len() == 1 { "" } else { "s" };
    format!("{} extra byte{s} {}", extra.len(), crate::escape(extra))
}

/// What extra bytes after a reply suggest.
pub fn extra_bytes_hint(extra: &[u8]) -> String {
    if extra == b"\0" {
        "are you sending strlen+1? send exactly the message's length (read_n bytes), without the \
         string's terminating \\0"
            .into()
    } else if extra.contains(&0) {
        format!(
            "stray bytes, with NULs, after the reply: is the length you send() larger than the message? {SANITIZER_HINT}"
        )
    } else {
        "is the length you send() larger than the message, or is an old buffer's content sent again?".into()
    }
}

/// Reads whatever arrives on `stream` within `wait` (nothing if the peer is silent or closed).
fn read_briefly(stream: &TcpStream, wait: Duration) -> Vec<u8> {
    use std::io::Read;
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut stream = stream;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return got;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The course's tester, exactly (eXpServer/expserver-tester, stages 6 and 7)
// ---------------------------------------------------------------------------------------------

/// The ports the course's tester checks, for stage 6 and stage 7 alike.
pub const TESTER_PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

/// The tester reads one chunk per reply: what one read returns. How long we wait for it (the
/// tester itself would wait for ever).
const FIRST_CHUNK_TIMEOUT: Duration = Duration::from_secs(5);

/// The first chunk that arrives on `stream` (one read, as the tester's `data` event), or why none
/// did.
fn first_chunk(stream: &TcpStream) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut buf = vec![0u8; 64 * 1024];
    let mut stream = stream;
    stream.set_read_timeout(Some(FIRST_CHUNK_TIMEOUT)).map_err(|e| e.to_string())?;
    loop {
        return match stream.read(&mut buf) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => Ok(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(format!("nothing within {FIRST_CHUNK_TIMEOUT:?} (the tester would wait for ever)"))
            }
            Err(e) => Err(format!("the socket failed: {e}")),
        };
    }
}

/// Sends `msg` and compares the first chunk that comes back with its reversal, as the tester does.
fn tester_round_trip(server: &Server, client: &Client, msg: &[u8]) -> Result<(), Failure> {
    let mut stream = client.stream();
    if let Err(e) = stream.write_all(msg) {
        return Err(Failure::new(format!("{} could not send: {e}", client.label()))
            .detail("sending", crate::escape(msg))
            .hint("did the server close this connection? look for an ERROR line below")
            .log_of(server));
    }
    expect_first_chunk(server, client, msg)
}

/// Reads the first chunk that arrives for `msg` and compares it with the reversal, as the tester
/// does; a failure says what was wrong with it (pieces, extra bytes, wrong bytes).
fn expect_first_chunk(server: &Server, client: &Client, msg: &[u8]) -> Result<(), Failure> {
    let expected = crate::expected_reply(msg);
    let first = match first_chunk(client.stream()) {
        Ok(first) if first == expected => return Ok(()),
        Ok(first) => first,
        Err(why) => {
            return Err(Failure::new(format!("{} got no reply", client.label()))
                .detail("sent", crate::escape(msg))
                .detail("expected", crate::escape(&expected))
                .detail("received", why)
                .hint("does the loop dispatch this connection's read events? look for an ERROR line below")
                .log_of(server));
        }
    };
    // Say why the first chunk is not the reply: more of it came later, or bytes came with it.
    let rest = read_briefly(client.stream(), AFTER_REPLY);
    let (what, hint) = if expected.starts_with(&first) && first.len() + rest.len() >= expected.len() {
        let rest_shown = &rest[..rest.len().min(expected.len() - first.len())];
        (
            format!("got the reply in pieces: {} first, then {}", crate::escape(&first), crate::escape(rest_shown)),
            "the tester compares only the first chunk it receives with the reply: send the whole reply \
             with one send() (a loop that continues after a partial send() is fine)"
                .to_string(),
        )
    } else if first.starts_with(&expected) {
        let extra = &first[expected.len()..];
        (format!("got {} after the reply", describe_extra(extra)), extra_bytes_hint(extra))
    } else if expected.starts_with(&first) {
        ("got only part of the reply".to_string(), "does the server send() every byte of the message?".to_string())
    } else {
        (
            "got a wrong reply".to_string(),
            "the reply must be the message reversed, a trailing \\n kept last, and nothing else; bytes \
             left over from an earlier reply also make the first chunk wrong"
                .to_string(),
        )
    };
    let mut received = crate::escape(&first);
    if !rest.is_empty() {
        received.push_str(&format!(" (first chunk), then {}", crate::escape(&rest)));
    }
    Err(Failure::new(format!("{} {what}", client.label()))
        .detail("sent", crate::escape(msg))
        .detail("expected", crate::escape(&expected))
        .detail("received", received)
        .hint(hint)
        .log_of(server))
}

/// A random string as the tester makes them: 0 to `max_len - 1` letters and digits, then `\n`.
fn tester_string(rng: &mut Rng, max_len: u64) -> Vec<u8> {
    let len = rng.below(max_len) as usize;
    let mut s = rng.alphanumeric(len);
    s.push(b'\n');
    s
}

/// The tester's check 1, "Single client - input output", on one `port`: one client sends 1000
/// strings of 0-99 letters and digits and `\n` (the tester calls `generateRandomStrings(100,
/// 1000)`: at most 100 long, 1000 of them), one at a time; the first chunk received after each
/// must be its reversal.
pub fn tester_check_1_on_port(server: &Server, port: u16, seed: u64) -> Result<(), Failure> {
    let mut rng = Rng::new(seed ^ u64::from(port));
    let client = Client::connect(server, port, "tester's client")?;
    for n in 1..=1000 {
        let msg = tester_string(&mut rng, 100);
        tester_round_trip(server, &client, &msg)
            .map_err(|f| f.detail("string", format!("{n} of 1000 (random seed {seed})")))?;
    }
    Ok(())
}

/// The tester's check 2, "Multiple clients to same port": 10 clients connect to `port` and each
/// sends `string-<i>\n` as soon as it is connected; the first chunk each receives must be its
/// own reversal.
pub fn tester_check_2(server: &Server, port: u16) -> Result<(), Failure> {
    let mut clients = Vec::new();
    for i in 0..10 {
        let client = Client::connect(server, port, format!("client {i}"))?;
        let msg = format!("string-{i}\n").into_bytes();
        let mut stream = client.stream();
        stream.write_all(&msg).map_err(|e| {
            Failure::new(format!("{} could not send: {e}", client.label()))
                .hint("look for an ERROR line below")
                .log_of(server)
        })?;
        clients.push((client, msg));
    }
    for (client, msg) in &clients {
        expect_first_chunk(server, client, msg)?;
    }
    Ok(())
}

/// The tester's check 3, "Error handling": a client connects, a second connects, and the first
/// disconnects at once without sending anything; then the second sends a string of 0-9 letters
/// and digits and `\n` and must get its reversal, then a new client does the same. (The server
/// must also still be running afterwards; the caller checks that.)
pub fn tester_check_3(server: &Server, port: u16, seed: u64) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let leaving = Client::connect(server, port, "client that disconnects")?;
    let existing = Client::connect(server, port, "existing client")?;
    leaving.close();
    tester_round_trip(server, &existing, &tester_string(&mut rng, 10))?;
    let new = Client::connect(server, port, "new client")?;
    tester_round_trip(server, &new, &tester_string(&mut rng, 10))
}
