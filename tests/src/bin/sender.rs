//! `sender`: the course's `sender.c` (stage 7, "Experiment #1") in Rust.
//!
//! It connects to an eXpServer stage (127.0.0.1:8001 unless `--host`/`--port` say otherwise),
//! sends everything it reads on stdin, and **never reads a reply**. That is the point of the
//! experiment: the server sends every message back reversed, the replies fill this client's
//! receive buffer and then the server's send buffer, and from then on the server's *blocking*
//! `send()` waits forever. The server is single-threaded, so it is stuck as a whole: other
//! clients (try `nc localhost 8002`) get no answers either.
//!
//! What it does depends on what stdin is:
//!
//! - **A terminal**: like the page, it prompts `Enter message to send: `, reads a line, sends
//!   it and prints `Message sent to server`, again and again until end of input (Ctrl-D).
//! - **A pipe or a file**: it streams stdin to the server in chunks of up to 64 KiB and reports
//!   progress on stderr, at most every 0.5 s, as `sender: <N> bytes sent`. At end of input it
//!   prints a final `sender: <N> bytes sent (end of input, ...)` line, closes the connection
//!   and exits 0.
//!
//! The progress lines show the stall. Once the server is stuck it stops reading, so this
//! program gets stuck too, inside `send()`, and the total stops growing. When a send has been
//! blocked for 0.5 s, one line saying so is added (`sender: <N> bytes sent (blocked in send()
//! ...)`); after that nothing more is printed until data flows again. A script can run the
//! sender in the background with stderr going to a file and conclude that it has stalled once
//! the last total stays the same for a while.
//!
//! Run it with a server in another terminal:
//!
//! ```text
//! cargo build -p stage06 -p xps_tests
//! ./target/debug/stage06                                   # listens on 8001, 8002, 8003
//! ./target/debug/sender                                    # type messages, Ctrl-D to end
//! head -c 20M /dev/urandom | ./target/debug/sender --port 8001
//! ```
//!
//! Exit status: 0 at end of input, 1 if connecting, reading stdin or sending fails, 2 for bad
//! command-line arguments.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};
use xps_tests::tool::{self, CliError};

const PROGRAM: &str = "sender";
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8001;
/// The largest chunk read from a piped stdin and sent with one `write_all`.
const CHUNK_SIZE: usize = 64 * 1024;
/// Progress lines are printed at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

fn usage() -> String {
    format!(
        "Usage: {PROGRAM} [--host HOST] [--port PORT]\n\
         \n\
         The course's sender.c (stage 7, Experiment #1): connects to an eXpServer, sends what it\n\
         reads on stdin, and never reads the replies.\n\
         \n\
         If stdin is a terminal it prompts for one line at a time, as the course's program does.\n\
         Otherwise (a pipe or a file) it streams stdin and prints `{PROGRAM}: <N> bytes sent` on\n\
         stderr at most every 0.5 s, so you can see when sending stalls.\n\
         \n\
         Options:\n      \
               --host HOST   server address or name (default: {DEFAULT_HOST})\n      \
               --port PORT   server port, 1 to 65535 (default: {DEFAULT_PORT})\n  \
           -h, --help        print this help and exit\n\
         \n\
         Example:\n  \
           head -c 20M /dev/urandom | {PROGRAM} --port 8001\n"
    )
}

/// What the command line asks for.
struct Config {
    host: String,
    port: u16,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Config, CliError> {
    let bad = |msg: String| tool::usage_error(PROGRAM, msg);
    let mut config = Config { host: DEFAULT_HOST.to_string(), port: DEFAULT_PORT };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(CliError::Help(usage()));
        }
        let (name, inline_value) = tool::split_option(&arg);
        if name != "--host" && name != "--port" {
            return Err(bad(format!("unknown argument '{arg}'")));
        }
        let Some(value) = inline_value.or_else(|| args.next()) else {
            return Err(bad(format!("{name} needs a value")));
        };
        if name == "--host" {
            if value.is_empty() {
                return Err(bad("--host needs a non-empty HOST".into()));
            }
            config.host = value;
        } else {
            config.port = match value.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => {
                    return Err(bad(format!("invalid port '{value}': expected a number from 1 to 65535")));
                }
            };
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match tool::parse_process_args(PROGRAM, parse_args) {
        Ok(config) => config,
        Err(status) => return status,
    };

    // The C's socket() + inet_pton() + connect(). `TcpStream::connect` resolves the host and
    // tries each address it resolves to.
    let stream = match TcpStream::connect((config.host.as_str(), config.port)) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("{PROGRAM}: cannot connect to {}:{}: {e}", config.host, config.port);
            return ExitCode::FAILURE;
        }
    };

    let result = if io::stdin().is_terminal() { send_lines(&stream) } else { send_stream(&stream) };
    match result {
        // Dropping `stream` closes the socket (the C's close(sock)).
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Terminal mode, as on the course page: prompt, read a line, send it, say so; until Ctrl-D.
fn send_lines(mut stream: &TcpStream) -> Result<(), String> {
    let mut stdin = io::stdin().lock();
    // Bytes, not a `String`: whatever was typed is sent as is, valid UTF-8 or not.
    let mut line = Vec::new();
    loop {
        print!("Enter message to send: ");
        // The prompt has no newline, so it must be flushed to show up before we wait.
        let _ = io::stdout().flush();
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => {
                // End of input (Ctrl-D): end the prompt's line and stop.
                println!();
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read stdin: {e}")),
        }
        // Send message to the server. `write_all` repeats send() until every byte is queued.
        stream.write_all(&line).map_err(|e| format!("send() failed: {e}"))?;
        println!("Message sent to server");
    }
}

/// What the sending thread shares with the progress thread.
struct Progress {
    /// When the progress clock started; `blocked_since_ms` counts from here.
    start: Instant,
    /// Bytes handed to the kernel so far.
    sent: AtomicU64,
    /// Milliseconds since `start` at which the current send began, or `NOT_SENDING`.
    blocked_since_ms: AtomicU64,
}

/// The value of [`Progress::blocked_since_ms`] while no send is in progress.
const NOT_SENDING: u64 = u64::MAX;

impl Progress {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

/// Pipe mode: streams stdin to the server in chunks and reports progress until end of input.
fn send_stream(stream: &TcpStream) -> Result<(), String> {
    let progress =
        Progress { start: Instant::now(), sent: AtomicU64::new(0), blocked_since_ms: AtomicU64::new(NOT_SENDING) };
    // A second thread prints the progress lines. The sending thread cannot do it itself: when
    // the server stops reading, it sits inside send() and cannot print anything.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let result = thread::scope(|scope| {
        let progress = &progress;
        scope.spawn(move || report_progress(progress, stop_rx));
        let result = copy_stdin(stream, progress);
        // Dropping the channel's sending half wakes the progress thread up and ends it; the
        // scope then waits for it, so its last line comes before ours.
        drop(stop_tx);
        result
    });
    let sent = progress.sent.load(Ordering::Relaxed);
    match result {
        Ok(()) => {
            eprintln!("{PROGRAM}: {sent} bytes sent (end of input, closing the connection)");
            Ok(())
        }
        Err(message) => Err(format!("{message} (after {sent} bytes sent)")),
    }
}

/// The copy loop of pipe mode: read up to [`CHUNK_SIZE`] bytes from stdin, send them all.
fn copy_stdin(mut stream: &TcpStream, progress: &Progress) -> Result<(), String> {
    let mut stdin = io::stdin().lock();
    let mut chunk = vec![0u8; CHUNK_SIZE];
    loop {
        let n = match stdin.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read stdin: {e}")),
        };
        progress.blocked_since_ms.store(progress.now_ms(), Ordering::Relaxed);
        let sent = stream.write_all(&chunk[..n]);
        progress.blocked_since_ms.store(NOT_SENDING, Ordering::Relaxed);
        sent.map_err(|e| format!("send() failed: {e}"))?;
        progress.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The progress thread: every [`PROGRESS_INTERVAL`], prints the total if it grew, or says once
/// that sending is blocked if one send has been waiting that long. Returns when `stop` is
/// disconnected.
fn report_progress(progress: &Progress, stop: mpsc::Receiver<()>) {
    let mut last_total = 0;
    let mut said_blocked = false;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(PROGRESS_INTERVAL) {
        let total = progress.sent.load(Ordering::Relaxed);
        if total != last_total {
            eprintln!("{PROGRAM}: {total} bytes sent");
            last_total = total;
            said_blocked = false;
            continue;
        }
        let since = progress.blocked_since_ms.load(Ordering::Relaxed);
        let blocked_ms = progress.now_ms().saturating_sub(since);
        if since != NOT_SENDING && blocked_ms >= PROGRESS_INTERVAL.as_millis() as u64 {
            if !said_blocked {
                eprintln!(
                    "{PROGRAM}: {total} bytes sent (blocked in send() for {blocked_ms} ms: \
                     the server is not reading)"
                );
                said_blocked = true;
            }
        } else {
            // Waiting for stdin, or a send that has only just started: nothing to say.
            said_blocked = false;
        }
    }
}
