//! `xps-check`: the course's checks for one stage, run against any server command.
//!
//! A learner who writes the course in C can check their own build offline with the very checks
//! this workspace's tests run (`xps_tests::checks`):
//!
//! ```text
//! scripts/check-build.sh 6 -- ./xps            # what most people run (it builds this binary)
//! xps-check --stage 6 -- ./xps                 # the binary itself
//! xps-check --stage 7 -- stdbuf -oL ./xps      # C's printf buffers a pipe: stdbuf shows its log
//! ```
//!
//! For each check it starts `CMD ARGS...` afresh, waits until the stage's default ports accept
//! connections (stage 6: 8001-8003, stage 7: 8001-8004, as the course's `main.c` and
//! `xps_core_start()` create them), runs the check, then kills the server. A fresh server per
//! check is what `cargo test` does too: one check that leaves the server stuck (Experiment #1
//! does, on purpose) or crashed cannot fail the checks after it. The checks, in this order:
//!
//! 1. the page's Milestone #2, steps 1 to 5, and its "4 clients and 3 ports" test;
//! 2. the course's three automated checks;
//! 3. stage 7 only: Experiment #1 (the documented stall of a blocking `send()`).
//!
//! Each check is reported by name, with what it expects; a failure shows what was sent, what
//! was expected and what was received, and the last lines the server printed. After a check
//! passes, the server must still be running (the course's check 3 says the server must not
//! exit; a crash right after the last reply would otherwise go unnoticed).
//!
//! The ports are the course's fixed ones, so two runs at once would collide with each other and
//! with the workspace's tests that use them: `scripts/check-build.sh` holds the same lock file
//! those tests take while it runs this binary.
//!
//! Exit status: 0 if every check passed, 1 if one failed or the server did not start, 2 for bad
//! command-line arguments.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, ExitCode, ExitStatus};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use xps_tests::tool::{self, CliError};

use xps_tests::{Failure, Server, checks};

const PROGRAM: &str = "xps-check";
/// The longest one check may take, server start included, before the run is abandoned. The
/// checks bound every read themselves; this only guards against a server that swallows a
/// `send()` for ever.
const CHECK_TIMEOUT: Duration = Duration::from_secs(180);

/// A check of the kit, with the name it has there and what it expects, in one line.
struct Entry {
    name: &'static str,
    expects: &'static str,
    check: fn(&Server) -> Result<(), Failure>,
}

/// `entry!(check_name, "what it expects")`: an [`Entry`] for `xps_tests::checks::check_name`.
macro_rules! entry {
    ($name:ident, $expects:expr) => {
        Entry { name: stringify!($name), expects: $expects, check: checks::$name }
    };
}

/// The checks for `stage`, in the order they run.
fn checks_for(stage: u8) -> Vec<Entry> {
    let mut list = vec![
        entry!(
            one_client_on_each_port_gets_its_reversal,
            "Milestone #2 steps 1-2: a client on each port sends a line and gets it back reversed"
        ),
        entry!(
            second_and_third_clients_on_a_busy_port_are_served,
            "Milestone #2 step 3: a 2nd and 3rd client on a port that has one are served, the 1st still is"
        ),
        entry!(
            interleaved_messages_from_all_clients_each_get_their_own_reply,
            "Milestone #2 step 4: all clients send before any reads; each gets its own reply"
        ),
        entry!(
            server_stays_up_after_clients_disconnect_and_accepts_new_ones,
            "Milestone #2 step 5: clients disconnect; the server stays up and serves new clients"
        ),
        entry!(
            four_clients_on_three_ports_each_get_their_reply,
            "the page's test \"4 clients and 3 ports\": each of 4 clients gets its own replies"
        ),
        entry!(
            course_check_1_single_client_on_every_port_100_random_strings,
            "course check 1: on every port, 100 random strings one at a time, each reversed"
        ),
        entry!(
            course_check_2_ten_clients_at_once_on_one_port,
            "course check 2: 10 clients on one port send string-<i>; each gets its own reversal"
        ),
        entry!(
            course_check_3_disconnect_does_not_affect_other_clients,
            "course check 3: after a client leaves, an old and a new client are served"
        ),
    ];
    if stage == 7 {
        list.push(entry!(
            experiment_1_blocking_send_stalls_everyone_until_the_sender_quits,
            "Experiment #1: while a client that never reads has the server stuck in send(), a \
             client on 8002 gets no reply; once it quits, that client gets its reply"
        ));
    }
    list
}

/// The ports the course's server listens on at `stage`.
fn ports_for(stage: u8) -> &'static [u16] {
    match stage {
        6 => &[8001, 8002, 8003],
        _ => &[8001, 8002, 8003, 8004],
    }
}

fn usage() -> String {
    format!(
        "Usage: {PROGRAM} --stage 6|7 [--list] -- CMD [ARGS...]\n\
         \n\
         Runs the course's checks for a stage against the server that `CMD ARGS...` starts: the\n\
         page's Milestone #2 steps and its \"4 clients and 3 ports\" test, the course's three\n\
         automated checks, and for stage 7 Experiment #1. These are the checks `cargo test` runs\n\
         against this workspace's own stages (xps_tests::checks).\n\
         \n\
         The server must listen on the stage's default ports, on 127.0.0.1 or 0.0.0.0:\n  \
           stage 6: 8001 8002 8003        stage 7: 8001 8002 8003 8004\n\
         Each check starts CMD afresh and kills it afterwards. Use scripts/check-build.sh, which\n\
         builds this program and holds the lock the workspace's tests take on these ports.\n\
         \n\
         Options:\n      \
               --stage N   the stage whose checks to run: 6 or 7\n      \
               --list      print the stage's checks and exit\n  \
           -h, --help      print this help and exit\n\
         \n\
         Examples:\n  \
           {PROGRAM} --stage 6 -- ./xps\n  \
           {PROGRAM} --stage 7 -- stdbuf -oL ./xps     (C's printf buffers a pipe; stdbuf shows the log)\n\
         \n\
         Exit status: 0 if every check passed, 1 if any failed, 2 for bad arguments.\n"
    )
}

/// What the command line asks for.
struct Config {
    stage: u8,
    list: bool,
    command: Vec<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Config, CliError> {
    let bad = |msg: String| tool::usage_error(PROGRAM, msg);
    let mut stage = None;
    let mut list = false;
    let mut args = args.into_iter();
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(CliError::Help(usage())),
            "--list" => list = true,
            "--" => {
                command.extend(args.by_ref());
                break;
            }
            _ if arg == "--stage" || arg.starts_with("--stage=") => {
                let value = match arg.strip_prefix("--stage=") {
                    Some(value) => value.to_string(),
                    None => args.next().ok_or_else(|| bad("--stage needs a value: 6 or 7".into()))?,
                };
                stage = match value.as_str() {
                    "6" | "06" | "stage06" => Some(6),
                    "7" | "07" | "stage07" => Some(7),
                    _ => {
                        return Err(bad(format!("unknown stage '{value}': this kit has the checks of stages 6 and 7")));
                    }
                };
            }
            _ => return Err(bad(format!("unexpected argument '{arg}' (the server command goes after `--`)"))),
        }
    }
    let Some(stage) = stage else {
        return Err(bad("which stage? give --stage 6 or --stage 7".into()));
    };
    if command.is_empty() && !list {
        return Err(bad("no server command: put it after `--`, for example `-- ./xps`".into()));
    }
    Ok(Config { stage, list, command })
}

fn main() -> ExitCode {
    let config = match tool::parse_process_args(PROGRAM, parse_args) {
        Ok(config) => config,
        Err(status) => return status,
    };

    let entries = checks_for(config.stage);
    if config.list {
        for entry in &entries {
            println!("{}\n    {}", entry.name, entry.expects);
        }
        return ExitCode::SUCCESS;
    }
    if run_all(&config, &entries) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// How one check ended.
enum Outcome {
    Pass,
    Fail(String),
    /// The server did not start: the checks after this one are not run.
    NoServer(String),
}

/// Runs every check, printing each result and a summary. True if all passed.
fn run_all(config: &Config, entries: &[Entry]) -> bool {
    let ports = ports_for(config.stage);
    let port_list: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!(
        "{PROGRAM}: stage {} checks against `{}` on ports {}",
        config.stage,
        config.command.join(" "),
        port_list.join(" ")
    );
    println!("(each check starts the server afresh and stops it afterwards)");

    let (mut passed, mut failed) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        println!();
        println!("[{}/{}] {}", i + 1, entries.len(), entry.name);
        println!("      expects: {}", entry.expects);
        let started = Instant::now();
        let outcome = run_one(config, ports, entry);
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Outcome::Pass => {
                passed += 1;
                println!("      PASS ({took:.1} s)");
            }
            Outcome::Fail(text) => {
                failed += 1;
                println!("      FAIL ({took:.1} s)");
                print_indented(&text);
            }
            Outcome::NoServer(text) => {
                failed += 1;
                println!("      FAIL ({took:.1} s): the server did not start");
                print_indented(&text);
                let not_run = entries.len() - i - 1;
                println!();
                println!("{passed} passed, {failed} failed, {not_run} not run (the server did not start)");
                return false;
            }
        }
    }
    println!();
    println!("{passed} passed, {failed} failed");
    failed == 0
}

fn print_indented(text: &str) {
    for line in text.trim_end().lines() {
        println!("      {line}");
    }
}

/// Starts the server, runs one check against it, kills it.
fn run_one(config: &Config, ports: &[u16], entry: &Entry) -> Outcome {
    // A port that already accepts connections belongs to some other program (a server left
    // running in another terminal): the checks would talk to it instead of to CMD.
    if let Some(port) = ports.iter().copied().find(|&port| accepts_connections(port)) {
        return Outcome::NoServer(format!(
            "port {port} is already in use by another program, before {} started\n  \
             look at:  is a server still running in another terminal? stop it (Ctrl+C) and run again",
            config.command[0]
        ));
    }

    let mut cmd = Command::new(&config.command[0]);
    cmd.args(&config.command[1..]);
    let mut server = match Server::spawn_on_ports(cmd, ports) {
        Ok(server) => server,
        Err(failure) => return Outcome::NoServer(failure.to_string()),
    };

    // A watchdog, in case a check hangs: report it and end the run. The server dies with us
    // (the kit starts it with PR_SET_PDEATHSIG).
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let name = entry.name;
    let watchdog = thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(CHECK_TIMEOUT) {
            println!("      FAIL: {name} did not finish within {CHECK_TIMEOUT:?}; stopping the run");
            std::process::exit(1);
        }
    });

    let check = entry.check;
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(&server)));
    drop(done_tx);
    let _ = watchdog.join();

    match result {
        Ok(Ok(())) => match server.wait_exit(Duration::ZERO) {
            None => Outcome::Pass,
            Some(status) => Outcome::Fail(
                Failure::new(format!("{} exited during the check", server.name()))
                    .detail("expected", "the server keeps running")
                    .detail("observed", describe(status))
                    .hint("the server must not exit when a client disconnects or an error happens on one connection")
                    .log_of(&server)
                    .to_string(),
            ),
        },
        Ok(Err(failure)) => Outcome::Fail(failure.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Outcome::Fail(format!("the check panicked: {message}\n{}", server.log_tail(25)))
        }
    }
    // Dropping `server` kills it and waits for it, freeing the ports for the next check.
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// `exited with status 1` or `killed by signal 11 (SIGSEGV)`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                6 => " (SIGABRT: an assert() failed?)",
                11 => " (SIGSEGV: a bad pointer?)",
                13 => " (SIGPIPE: send() to a client that had left; see MSG_NOSIGNAL)",
                _ => "",
            };
            format!("killed by signal {signal}{name}")
        }
        _ => status.to_string(),
    }
}
