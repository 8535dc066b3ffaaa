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

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use xps_tests::tool::{self, CliError};

mod client;
mod histogram;
mod message;
mod nofile;

use client::{ClientReport, connect, describe_connect_error, open_idle, run_clients};
use histogram::Histogram;
use message::describe_difference;
use nofile::raise_open_file_limit;

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

#[cfg(test)]
mod tests {
    use super::*;

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
