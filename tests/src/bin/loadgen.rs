//! `loadgen`: a load generator for benchmarking the eXpServer stages.
//!
//! It measures how many messages per second a server answers, and how long each answer takes,
//! while many clients talk to it at once. It also checks every answer.
//!
//! 1. It raises its own limit on open files (`RLIMIT_NOFILE`) as far as the hard limit allows,
//!    since every connection is a file descriptor. If that is still too low for the run, it says
//!    so on stderr and tries anyway.
//! 2. It opens `--idle K` idle connections and makes one round trip on each, so the server has
//!    surely accepted them, then leaves them open and silent until the end. A server that scans
//!    a list of every connection for each event (stage 6) slows down as K grows; one that finds
//!    the connection directly (stage 7's callbacks) should not.
//! 3. It opens `--clients N` active connections, each driven by its own thread. For
//!    `--seconds S` each one repeatedly sends an `--size M` byte message (random letters, `\n`
//!    last), reads until the whole M-byte reply has arrived, however TCP splits it, and checks
//!    that it is the message reversed with the `\n` kept last. It records the round-trip time.
//!
//! Each read waits at most 5 s. A reply that does not arrive in time, or is cut short, counts as
//! *missing* (and that client stops: its stream is out of step); a reply with other bytes counts
//! as *wrong*. The report goes to stdout as readable lines, then one line for scripts:
//!
//! ```text
//! RESULT rate=61234.5 p50_us=240 p99_us=610 messages=306172 wrong=0 missing=0 idle=1000 clients=16 size=64
//! ```
//!
//! Latencies are kept in a histogram allocated before the run (see [`Histogram`]): nothing is
//! allocated per message, and memory does not grow with the run's length.
//!
//! Run it against a server (its stdout to /dev/null: printing every message is slow):
//!
//! ```text
//! cargo build --release -p stage06 -p xps_tests
//! (ulimit -n 20000; ./target/release/stage06 --host 127.0.0.1 8001 >/dev/null) &
//! ./target/release/loadgen --port 8001 --clients 16 --size 64 --seconds 5 --idle 1000
//! ```
//!
//! Exit status: 0 if at least one round trip completed and no reply was wrong or missing; 1 if
//! not, or if a connection failed; 2 for bad command-line arguments.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use xps_tests::tool::{self, CliError};

const PROGRAM: &str = "loadgen";
const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 8001;
const DEFAULT_CLIENTS: usize = 16;
const DEFAULT_SIZE: usize = 64;
const DEFAULT_SECONDS: f64 = 5.0;
const DEFAULT_IDLE: usize = 0;
/// The smallest message: one letter and the `\n`.
const MIN_SIZE: usize = 2;
/// The largest message. The server answers each recv() separately, so a message must reach it
/// in one piece; 16 KiB always does on loopback, far below its 100000-byte buffer.
const MAX_SIZE: usize = 16 * 1024;
const MAX_CLIENTS: usize = 10_000;
const MAX_IDLE: usize = 1_000_000;
const MAX_SECONDS: f64 = 86_400.0;
/// How long one connect(), read() or write() may wait.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// File descriptors wanted beyond the connections themselves (stdio, and a few to spare).
const FD_MARGIN: usize = 64;
/// Each client thread needs little stack: its buffers are on the heap.
const CLIENT_STACK_SIZE: usize = 256 * 1024;
/// What an idle connection sends once, and the reply it expects.
const IDLE_MESSAGE: &[u8] = b"idle\n";
const IDLE_REPLY: &[u8] = b"eldi\n";

fn usage() -> String {
    format!(
        "Usage: {PROGRAM} [OPTIONS]\n\
         \n\
         Benchmarks an eXpServer stage: N clients send M-byte messages for S seconds while K idle\n\
         connections stay open; every reply is checked (the message reversed, '\\n' kept last).\n\
         Prints a report and a final line for scripts:\n  \
           RESULT rate=<msg/s> p50_us=<int> p99_us=<int> messages=<int> wrong=<int> missing=<int> \
         idle=<K> clients=<N> size=<M>\n\
         \n\
         Options:\n      \
               --host HOST     server address or name (default: {DEFAULT_HOST})\n      \
               --port PORT     server port, 1 to 65535 (default: {DEFAULT_PORT})\n      \
               --clients N     active connections, one thread each, 1 to {MAX_CLIENTS} (default: {DEFAULT_CLIENTS})\n      \
               --size M        message size in bytes, {MIN_SIZE} to {MAX_SIZE} (default: {DEFAULT_SIZE})\n      \
               --seconds S     how long to send, may be fractional, up to {MAX_SECONDS} (default: {DEFAULT_SECONDS})\n      \
               --idle K        idle connections held open during the run, 0 to {MAX_IDLE} (default: {DEFAULT_IDLE})\n  \
           -h, --help          print this help and exit\n\
         \n\
         Exit status: 0 if messages > 0 and no reply was wrong or missing, 1 otherwise or on a\n\
         connection error, 2 for bad arguments.\n"
    )
}

/// What the command line asks for.
struct Config {
    host: String,
    port: u16,
    clients: usize,
    size: usize,
    seconds: f64,
    idle: usize,
}

/// Parses a whole number in `min..=max` for option `name`.
fn parse_count(name: &str, value: &str, min: usize, max: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("invalid {name} '{value}': expected a whole number from {min} to {max}")),
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Config, CliError> {
    let bad = |msg: String| tool::usage_error(PROGRAM, msg);
    let mut config = Config {
        host: DEFAULT_HOST.to_string(),
        port: DEFAULT_PORT,
        clients: DEFAULT_CLIENTS,
        size: DEFAULT_SIZE,
        seconds: DEFAULT_SECONDS,
        idle: DEFAULT_IDLE,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(CliError::Help(usage()));
        }
        let (name, inline_value) = tool::split_option(&arg);
        const OPTIONS: [&str; 6] = ["--host", "--port", "--clients", "--size", "--seconds", "--idle"];
        if !OPTIONS.contains(&name) {
            return Err(bad(format!("unknown argument '{arg}'")));
        }
        let Some(value) = inline_value.or_else(|| args.next()) else {
            return Err(bad(format!("{name} needs a value")));
        };
        let parsed = match name {
            "--host" if value.is_empty() => Err("--host needs a non-empty HOST".to_string()),
            "--host" => {
                config.host = value;
                Ok(())
            }
            "--port" => parse_count("port", &value, 1, usize::from(u16::MAX)).map(|port| config.port = port as u16),
            "--clients" => parse_count("client count", &value, 1, MAX_CLIENTS).map(|n| config.clients = n),
            "--size" => parse_count("message size", &value, MIN_SIZE, MAX_SIZE).map(|m| config.size = m),
            "--idle" => parse_count("idle count", &value, 0, MAX_IDLE).map(|k| config.idle = k),
            _ => match value.parse::<f64>() {
                Ok(s) if s > 0.0 && s <= MAX_SECONDS => {
                    config.seconds = s;
                    Ok(())
                }
                _ => Err(format!(
                    "invalid duration '{value}': expected seconds above 0 and up to {MAX_SECONDS}, \
                     for example 5 or 0.5"
                )),
            },
        };
        parsed.map_err(bad)?;
    }
    Ok(config)
}

fn main() -> ExitCode {
    let config = match tool::parse_process_args(PROGRAM, parse_args) {
        Ok(config) => config,
        Err(status) => return status,
    };
    match run(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The whole run. `Ok(true)` if every reply was right, `Ok(false)` if the report found
/// problems (already printed), `Err` for an error that stopped the run.
fn run(config: &Config) -> Result<bool, String> {
    // Resolve the host once, rather than once per connection.
    let addrs: Vec<SocketAddr> = (config.host.as_str(), config.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host '{}': {e}", config.host))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("host '{}' has no address", config.host));
    }
    let target = format!("{}:{}", config.host, config.port);

    raise_open_file_limit(config.idle, config.clients);

    // Idle connections: connected, one round trip each, then left alone until the end.
    let started = Instant::now();
    let mut idle = Vec::with_capacity(config.idle);
    for i in 0..config.idle {
        let stream = open_idle(&addrs).map_err(|e| format!("idle #{i} ({target}): {e}"))?;
        idle.push(stream);
    }
    if config.idle > 0 {
        eprintln!(
            "{PROGRAM}: {} idle connections open and answered ({:.2} s)",
            config.idle,
            started.elapsed().as_secs_f64()
        );
    }

    // Active connections, all opened before any thread starts sending.
    let mut streams = Vec::with_capacity(config.clients);
    for j in 0..config.clients {
        let stream = connect(&addrs)
            .and_then(|stream| {
                stream.set_nodelay(true)?;
                Ok(stream)
            })
            .map_err(|e| format!("client #{j} ({target}): {}", describe_connect_error(&e)))?;
        streams.push(stream);
    }

    let duration = Duration::from_secs_f64(config.seconds);
    let (reports, elapsed) = run_clients(streams, config.size, duration)?;

    // Add up what the clients saw.
    let mut latencies = Histogram::new();
    let (mut messages, mut wrong, mut missing) = (0u64, 0u64, 0u64);
    for report in &reports {
        latencies.merge(&report.latencies);
        messages += report.messages;
        wrong += report.wrong;
        missing += report.missing;
    }
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { messages as f64 / secs } else { 0.0 };
    let p50 = latencies.percentile(50.0);
    let p99 = latencies.percentile(99.0);

    println!("server:   {target}");
    println!("clients:  {}", config.clients);
    println!("size:     {} bytes", config.size);
    println!("idle:     {}", config.idle);
    println!("seconds:  {secs:.2} (asked for {})", config.seconds);
    println!("messages: {messages}");
    println!("rate:     {rate:.1} msg/s");
    println!("p50:      {p50} us");
    println!("p99:      {p99} us");
    println!("wrong:    {wrong}");
    println!("missing:  {missing}");
    println!(
        "RESULT rate={rate:.1} p50_us={p50} p99_us={p99} messages={messages} wrong={wrong} \
         missing={missing} idle={} clients={} size={}",
        config.idle, config.clients, config.size
    );
    // Only now may the idle connections close.
    drop(idle);

    Ok(explain_failures(&reports, messages, config.seconds))
}

/// Prints on stderr what went wrong, if anything. Returns whether the run passed.
fn explain_failures(reports: &[ClientReport], messages: u64, seconds: f64) -> bool {
    let mut passed = true;
    for (j, report) in reports.iter().enumerate() {
        if let Some(error) = &report.error {
            eprintln!("{PROGRAM}: client #{j}: {error}");
            passed = false;
        }
        if let Some(reason) = &report.missing_reason {
            eprintln!("{PROGRAM}: client #{j}: reply missing: {reason}");
            passed = false;
        }
    }
    let first_wrong = reports
        .iter()
        .enumerate()
        .filter_map(|(j, report)| report.first_wrong.as_ref().map(|w| (j, w)))
        .min_by_key(|(_, w)| w.at);
    if let Some((j, w)) = first_wrong {
        let total: u64 = reports.iter().map(|r| r.wrong).sum();
        eprintln!(
            "{PROGRAM}: FAILED: {total} wrong replies; the first, on client #{j}:\n{}",
            describe_difference(&w.got, &w.expected)
        );
        passed = false;
    }
    if messages == 0 && passed {
        eprintln!("{PROGRAM}: FAILED: no round trip completed in {seconds} s");
        passed = false;
    } else if !passed {
        eprintln!("{PROGRAM}: FAILED (see above)");
    }
    passed
}

/// Shows a wrong reply next to the expected one, escaped (`\n`, `\xff`...). Long replies are
/// cut to a window around the first differing byte.
fn describe_difference(got: &[u8], expected: &[u8]) -> String {
    const WINDOW: usize = 40;
    let first = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
    let (from, to) = if expected.len() <= 2 * WINDOW {
        (0, expected.len().max(got.len()))
    } else {
        (first.saturating_sub(WINDOW), first + WINDOW)
    };
    let show = |bytes: &[u8]| {
        let end = to.min(bytes.len());
        let start = from.min(end);
        format!(
            "{}\"{}\"{}",
            if start > 0 { "..." } else { "" },
            bytes[start..end].escape_ascii(),
            if end < bytes.len() { "..." } else { "" }
        )
    };
    format!(
        "  first difference at byte {first} of {}\n  got:      {}\n  expected: {}",
        expected.len(),
        show(got),
        show(expected)
    )
}

/// Connects to the first of `addrs` that answers, waiting at most [`IO_TIMEOUT`] for each, and
/// sets the read and write timeouts. (A plain connect() to a server whose accept queue is full
/// can wait minutes.)
fn connect(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, IO_TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no address to connect to")))
}

/// A connect error's text, with a hint when it is the open-file limit.
fn describe_connect_error(e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::EMFILE) {
        format!(
            "cannot connect: {e}; this process ran out of file descriptors \
             (raise `ulimit -n`, or ask for fewer --idle/--clients)"
        )
    } else {
        format!("cannot connect: {e}")
    }
}

/// Opens one idle connection and makes one round trip on it.
fn open_idle(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut stream = connect(addrs).map_err(|e| describe_connect_error(&e))?;
    stream.write_all(IDLE_MESSAGE).map_err(|e| format!("send() failed: {e}"))?;
    let mut reply = [0u8; IDLE_MESSAGE.len()];
    match read_reply(&mut stream, &mut reply) {
        Ok(Reply::Complete) if reply == IDLE_REPLY => Ok(stream),
        Ok(Reply::Complete) => {
            Err(format!("wrong reply to its first message:\n{}", describe_difference(&reply, IDLE_REPLY)))
        }
        Ok(Reply::Missing(reason)) => Err(format!(
            "reply missing: {reason} (has the server run out of file descriptors? \
             start it from a shell with a higher `ulimit -n`)"
        )),
        Err(e) => Err(format!("recv() failed: {e}")),
    }
}

/// How reading one reply ended, short of an error.
enum Reply {
    /// The buffer is full.
    Complete,
    /// The reply did not arrive in time, or the server closed the connection first.
    Missing(String),
}

/// Whether `e` is a read or write timeout. Linux reports those as `EAGAIN` (`WouldBlock`).
fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Reads until `reply` is full. TCP is a byte stream: the reply may come in several pieces.
fn read_reply(stream: &mut TcpStream, reply: &mut [u8]) -> io::Result<Reply> {
    let mut got = 0;
    while got < reply.len() {
        match stream.read(&mut reply[got..]) {
            Ok(0) => {
                return Ok(Reply::Missing(format!(
                    "the server closed the connection after {got} of {} reply bytes",
                    reply.len()
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                return Ok(Reply::Missing(format!(
                    "no data for {} s ({got} of {} reply bytes arrived)",
                    IO_TIMEOUT.as_secs(),
                    reply.len()
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::Complete)
}

/// What one active client saw.
struct ClientReport {
    /// Round trips with a right reply.
    messages: u64,
    wrong: u64,
    missing: u64,
    /// Latencies of the right replies.
    latencies: Histogram,
    first_wrong: Option<WrongReply>,
    /// Why the reply counted in `missing` is missing (a client stops at its first one).
    missing_reason: Option<String>,
    /// The connection error that stopped this client, if one did.
    error: Option<String>,
}

/// A reply that was not the message reversed.
struct WrongReply {
    at: Instant,
    got: Vec<u8>,
    expected: Vec<u8>,
}

/// Starts one thread per stream, lets them all go at once, and collects their reports.
/// Returns them with the time from the start to the last thread's end.
fn run_clients(
    streams: Vec<TcpStream>,
    size: usize,
    duration: Duration,
) -> Result<(Vec<ClientReport>, Duration), String> {
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(streams.len());
        let mut start_signals = Vec::with_capacity(streams.len());
        for (j, stream) in streams.into_iter().enumerate() {
            // Each thread waits for its deadline on a channel, so none starts before all exist.
            // If a spawn fails, returning drops the senders: the waiting threads see that and
            // end, and the scope joins them.
            let (start_tx, start_rx) = mpsc::channel::<Instant>();
            let handle = thread::Builder::new()
                .name(format!("client-{j}"))
                .stack_size(CLIENT_STACK_SIZE)
                .spawn_scoped(scope, move || run_client(j, stream, size, &start_rx))
                .map_err(|e| format!("client #{j}: cannot start a thread: {e}"))?;
            handles.push(handle);
            start_signals.push(start_tx);
        }
        let start = Instant::now();
        let deadline = start + duration;
        for start_tx in &start_signals {
            // A send fails only if that thread has already ended, which it cannot have.
            let _ = start_tx.send(deadline);
        }
        let reports = handles
            .into_iter()
            .enumerate()
            .map(|(j, handle)| {
                handle.join().unwrap_or_else(|_| {
                    let mut report = ClientReport::new();
                    report.error = Some(format!("client #{j}: its thread panicked"));
                    report
                })
            })
            .collect();
        Ok((reports, start.elapsed()))
    })
}

impl ClientReport {
    fn new() -> Self {
        ClientReport {
            messages: 0,
            wrong: 0,
            missing: 0,
            latencies: Histogram::new(),
            first_wrong: None,
            missing_reason: None,
            error: None,
        }
    }
}

/// One active client: round trips until the deadline it receives on `start`.
fn run_client(j: usize, mut stream: TcpStream, size: usize, start: &mpsc::Receiver<Instant>) -> ClientReport {
    // Everything the loop needs is allocated here, once.
    let mut report = ClientReport::new();
    let mut rng = XorShift64::new(j as u64);
    let mut message = vec![0u8; size];
    let mut expected = vec![0u8; size];
    let mut reply = vec![0u8; size];
    let Ok(deadline) = start.recv() else {
        return report; // the run was called off
    };
    while Instant::now() < deadline {
        fill_message(&mut rng, &mut message, &mut expected);
        let sent_at = Instant::now();
        if let Err(e) = stream.write_all(&message) {
            if is_timeout(&e) {
                report.missing += 1;
                report.missing_reason =
                    Some(format!("send() blocked for {} s: the server is not reading", IO_TIMEOUT.as_secs()));
            } else {
                report.error = Some(format!("send() failed: {e}"));
            }
            break;
        }
        match read_reply(&mut stream, &mut reply) {
            Ok(Reply::Complete) if reply == expected => {
                report.latencies.record(sent_at.elapsed());
                report.messages += 1;
            }
            Ok(Reply::Complete) => {
                // Still in step (exactly `size` bytes were read), so the client goes on.
                report.wrong += 1;
                if report.first_wrong.is_none() {
                    report.first_wrong =
                        Some(WrongReply { at: Instant::now(), got: reply.clone(), expected: expected.clone() });
                }
            }
            Ok(Reply::Missing(reason)) => {
                // Out of step: a late reply would be taken for the next one. Stop here.
                report.missing += 1;
                report.missing_reason = Some(reason);
                break;
            }
            Err(e) => {
                report.error = Some(format!("recv() failed: {e}"));
                break;
            }
        }
    }
    report
}

/// Fills `message` with random lowercase letters and a final `\n`, and `expected` with the
/// reply the server should send: the letters reversed, the `\n` still last.
fn fill_message(rng: &mut XorShift64, message: &mut [u8], expected: &mut [u8]) {
    let (body, newline) = message.split_at_mut(message.len() - 1);
    newline[0] = b'\n';
    // One 64-bit random number gives 8 letters: each byte b in 0..=255 becomes b * 26 / 256.
    for chunk in body.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        for (dst, b) in chunk.iter_mut().zip(bytes) {
            *dst = b'a' + ((u16::from(b) * 26) >> 8) as u8;
        }
    }
    let (expected_body, expected_newline) = expected.split_at_mut(expected.len() - 1);
    for (dst, &src) in expected_body.iter_mut().zip(body.iter().rev()) {
        *dst = src;
    }
    expected_newline[0] = b'\n';
}

/// Marsaglia's xorshift64: a tiny, fast pseudo-random generator. Not for secrets; plenty for
/// making test messages differ.
struct XorShift64(u64);

impl XorShift64 {
    /// A generator for client `seed`. The state must never be 0, hence the `| 1`.
    fn new(seed: u64) -> Self {
        XorShift64(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Latencies in microseconds, counted in buckets of fixed memory (a simplified HDR histogram).
///
/// Values below 256 us have a bucket each. Above that, each power of two is split into 128
/// buckets, so a reported value is within 1% of the real one. About 30 KB per histogram,
/// allocated once, however many messages are recorded; histograms of several clients add up
/// bucket by bucket.
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    /// Buckets per power of two: 2^7 = 128.
    const SUB_BITS: u32 = 7;
    const SUB: usize = 1 << Self::SUB_BITS;
    /// Values are capped at 2^36 - 1 us, about 19 hours.
    const MAX_BITS: u32 = 36;
    const BUCKETS: usize = (Self::MAX_BITS - Self::SUB_BITS + 1) as usize * Self::SUB;

    fn new() -> Self {
        Histogram { counts: vec![0; Self::BUCKETS], total: 0 }
    }

    /// The bucket of value `v`. Below 2 * SUB it is `v`; above, with `shift` the number of
    /// low bits dropped so that `v >> shift` is in SUB..2 * SUB, it is `shift * SUB + (v >>
    /// shift)`: consecutive, without gaps.
    fn index(v: u64) -> usize {
        let v = v.min((1 << Self::MAX_BITS) - 1);
        if v < 2 * Self::SUB as u64 {
            return v as usize;
        }
        let shift = (u64::BITS - 1 - v.leading_zeros()) - Self::SUB_BITS;
        shift as usize * Self::SUB + (v >> shift) as usize
    }

    /// The value reported for bucket `i`: the middle of the range of values it counts.
    fn value(i: usize) -> u64 {
        if i < 2 * Self::SUB {
            return i as u64;
        }
        let shift = i / Self::SUB - 1;
        let low = ((i % Self::SUB + Self::SUB) as u64) << shift;
        low + (1 << shift) / 2
    }

    fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(us)] += 1;
        self.total += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// The `p`th percentile (0 < p <= 100) by nearest rank; 0 if nothing was recorded.
    fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p * self.total as f64 / 100.0).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(i);
            }
        }
        Self::value(Self::BUCKETS - 1)
    }
}

/// Raises this process's soft limit on open files to its hard limit, and warns on stderr if
/// even that is too low for `idle + clients` connections.
fn raise_open_file_limit(idle: usize, clients: usize) {
    let needed = (idle + clients + FD_MARGIN) as libc::rlim_t;
    let (mut soft, hard) = match get_nofile_limit() {
        Ok(limits) => limits,
        Err(e) => {
            eprintln!("{PROGRAM}: warning: getrlimit(RLIMIT_NOFILE) failed: {e}");
            return;
        }
    };
    if soft < hard {
        // With no hard limit, Linux still refuses a soft limit above /proc/sys/fs/nr_open, so
        // ask only for what is needed then.
        let wanted = if hard == libc::RLIM_INFINITY { needed.max(soft) } else { hard };
        match set_nofile_limit(wanted, hard) {
            Ok(()) => soft = wanted,
            Err(e) => eprintln!(
                "{PROGRAM}: warning: setrlimit(RLIMIT_NOFILE) to {wanted} failed: {e}; \
                 the limit stays {soft}"
            ),
        }
    }
    if soft < needed {
        eprintln!(
            "{PROGRAM}: warning: {idle} idle + {clients} active connections need about {needed} \
             open files, but this process may open only {soft} (hard limit {hard}). Trying anyway: \
             the connections past the limit will fail with \"Too many open files\". Raise the hard \
             limit (as root: ulimit -Hn {needed}) or ask for fewer connections."
        );
    }
}

/// `getrlimit(RLIMIT_NOFILE)`: the (soft, hard) limits on open file descriptors.
fn get_nofile_limit() -> io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable `struct rlimit` that lives through the call;
    // getrlimit() only writes into it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// `setrlimit(RLIMIT_NOFILE)` to `soft` and `hard`.
fn set_nofile_limit(soft: libc::rlim_t, hard: libc::rlim_t) -> io::Result<()> {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `limit` is a valid `struct rlimit` that lives through the call; setrlimit() only
    // reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_consecutive_and_close() {
        let mut last = 0;
        for v in 0..1_000_000u64 {
            let i = Histogram::index(v);
            assert!(i == last || i == last + 1, "gap at {v}");
            last = i;
            let reported = Histogram::value(i);
            assert!(reported.abs_diff(v) * 100 <= v.max(1), "{v} reported as {reported}");
        }
        assert!(Histogram::index(u64::MAX) < Histogram::BUCKETS);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut h = Histogram::new();
        for us in 1..=100 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(Histogram::new().percentile(50.0), 0);
    }

    #[test]
    fn messages_are_letters_and_expected_is_the_reversal() {
        let mut rng = XorShift64::new(3);
        for size in [MIN_SIZE, 9, 64, MAX_SIZE] {
            let mut message = vec![0; size];
            let mut expected = vec![0; size];
            fill_message(&mut rng, &mut message, &mut expected);
            assert!(message[..size - 1].iter().all(u8::is_ascii_lowercase));
            assert_eq!(message.last(), Some(&b'\n'));
            let mut want = message[..size - 1].to_vec();
            want.reverse();
            want.push(b'\n');
            assert_eq!(expected, want);
        }
    }

    #[test]
    fn arguments_are_checked() {
        let parse = |args: &[&str]| parse_args(args.iter().map(|s| s.to_string()));
        let c = parse(&["--port=9000", "--clients", "2", "--seconds", "0.5"]).ok().unwrap();
        assert_eq!((c.port, c.clients, c.seconds, c.size), (9000, 2, 0.5, 64));
        for bad in [
            &["--size", "1"][..],
            &["--size", "16385"],
            &["--clients", "0"],
            &["--seconds", "0"],
            &["--seconds", "nan"],
            &["--port", "0"],
            &["--idle"],
            &["--bogus"],
        ] {
            assert!(matches!(parse(bad), Err(CliError::Usage(_))), "{bad:?}");
        }
    }
}
