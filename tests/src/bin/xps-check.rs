//! `xps-check`: the course's checks for one stage, run against any server command, and what the
//! course's own tester would say about it.
//!
//! ```text
//! scripts/check-build.sh 6 -- ./xps              # what most people run (it builds this binary)
//! xps-check --stage 6 -- ./xps                   # the binary itself
//! xps-check --stage 7 --official -- ./xps        # only the course tester's checks, as it runs them
//! ```
//!
//! Two parts, both run by default:
//!
//! 1. **This workspace's checks** (`xps_tests::checks`), each against a fresh server on the
//!    stage's ports (stage 6: 8001-8003, stage 7: 8001-8004): the page's Milestone #2 steps, its
//!    "4 clients and 3 ports" test, the course's three checks, the bugs learners' builds really
//!    have (messages without a newline, empty lines, raw bytes, bytes after a reply), and for
//!    stage 7 Experiment #1.
//! 2. **The course's tester** (eXpServer/expserver-tester, stages 6 and 7), exactly as it runs:
//!    ports 8001-8004 for both stages; check 1 (1000 strings of 0-99 letters and digits and
//!    `\n` per port, one client per port) and check 2 (10 clients at once on 8001) against one
//!    server process; check 3 (a client leaves without sending, an existing and a new client
//!    are served) against a fresh one, as the tester restarts the server that check 2 stopped.
//!    Replies are compared as the tester does: the first chunk received must be the reversal,
//!    with nothing after it. The tester connects over its container's network, not loopback;
//!    this is judged without sending anything off this machine: the server's listening sockets
//!    (`/proc/net/tcp`) must include every interface (0.0.0.0), not 127.0.0.1 only.
//!    `--official` runs this part alone; it takes a few seconds, so every run ends with the
//!    tester's predicted verdict and why.
//!
//! All traffic goes to 127.0.0.1. The server runs in a process group of its own, is stopped
//! after each check with SIGINT (so Valgrind and sanitizers print their reports) and SIGKILL
//! after a grace period, with everything it started; Ctrl+C (or SIGTERM/SIGHUP) stops it too.
//! A server that dies is reported first, as what happened (exit status or signal, crash lines
//! from its output), before what the clients saw. Readiness is read from `/proc/net/tcp`: the
//! server sees no probe connection.
//!
//! Exit status: 0 if every check passed, 1 if one failed or the server did not start, 2 for bad
//! command-line arguments.

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use xps_tests::checks::bytes::SANITIZER_HINT;
use xps_tests::checks::tester::{self, TESTER_PORTS};
use xps_tests::registry::{self, CHECKS};
use xps_tests::tool::{self, CliError};
use xps_tests::{Failure, Rng, Server, process, procfs};

const PROGRAM: &str = "xps-check";
/// The longest one check may take, server start included, before the run is abandoned. The
/// checks bound every read themselves; this only guards against a server that swallows a
/// `send()` for ever.
const CHECK_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a server gets after SIGINT before SIGKILL: Valgrind's report needs a moment.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long the servers get after Ctrl+C before SIGKILL: the user is waiting.
const STOP_ALL_GRACE: Duration = Duration::from_millis(500);

/// A check of the registry that runs against a server, with what it expects, in one line.
struct Entry {
    name: &'static str,
    expects: &'static str,
    check: fn(&Server) -> Result<(), Failure>,
}

/// The registry's checks for `stage` that run against any build, in the registry's order.
fn checks_for(stage: u8) -> Vec<Entry> {
    CHECKS
        .iter()
        .filter(|c| c.any_build && c.stages.has(stage))
        .filter_map(|c| match c.run {
            registry::Run::Server(check) | registry::Run::DebugServer(check) => {
                Some(Entry { name: c.id, expects: c.expects, check })
            }
            _ => None,
        })
        .collect()
}

/// The tester's parts, as they are reported: the registry's tester entries, in order.
fn tester_cases() -> Vec<(&'static str, &'static str)> {
    CHECKS.iter().filter(|c| matches!(c.run, registry::Run::Tester(_))).map(|c| (c.id, c.expects)).collect()
}

/// The ports the course's server listens on at `stage`, as the page creates them.
fn ports_for(stage: u8) -> &'static [u16] {
    match stage {
        6 => &[8001, 8002, 8003],
        _ => &[8001, 8002, 8003, 8004],
    }
}

fn usage() -> String {
    format!(
        "Usage: {PROGRAM} --stage 6|7 [--official] [--junit FILE] [--list] -- CMD [ARGS...]\n\
         \n\
         Runs the course's checks for a stage against the server that `CMD ARGS...` starts, then\n\
         the course's tester's three checks exactly as it runs them, and says whether the\n\
         tester would pass the build, and why.\n\
         \n\
         The server must listen on the stage's ports when started as CMD ARGS... (the tester\n\
         starts it with no arguments):\n  \
           this workspace's checks: stage 6: 8001 8002 8003    stage 7: 8001 8002 8003 8004\n  \
           the tester's checks:     8001 8002 8003 8004 for both stages, on 0.0.0.0\n\
         All traffic stays on 127.0.0.1. Each check starts CMD afresh and stops it (SIGINT, then\n\
         SIGKILL) with everything it started. Use scripts/check-build.sh, which builds this\n\
         program and holds the lock the workspace's tests take on these ports.\n\
         \n\
         Options:\n      \
               --stage N      the stage whose checks to run: 6 or 7\n      \
               --official     run only the tester's checks, as the tester runs them\n      \
               --junit FILE   also write the results as JUnit XML to FILE (for CI and autograders)\n      \
               --list         print the checks and exit\n  \
           -h, --help         print this help and exit\n\
         \n\
         Examples:\n  \
           {PROGRAM} --stage 6 -- ./xps\n  \
           {PROGRAM} --stage 7 --official -- ./xps\n  \
           {PROGRAM} --stage 7 -- stdbuf -oL ./xps     (C's printf buffers a pipe; stdbuf shows the log)\n\
         \n\
         Exit status: 0 if every check passed, 1 if any failed, 2 for bad arguments.\n"
    )
}

/// What the command line asks for.
struct Config {
    stage: u8,
    list: bool,
    official: bool,
    junit: Option<String>,
    command: Vec<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Config, CliError> {
    let bad = |msg: String| tool::usage_error(PROGRAM, msg);
    let mut stage = None;
    let mut list = false;
    let mut official = false;
    let mut junit = None;
    let mut args = args.into_iter();
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        let (name, inline) = tool::split_option(&arg);
        match name {
            "-h" | "--help" => return Err(CliError::Help(usage())),
            "--list" => list = true,
            "--official" => official = true,
            "--" => {
                command.extend(args.by_ref());
                break;
            }
            "--junit" => {
                let value = match inline {
                    Some(value) => value,
                    None => args.next().ok_or_else(|| bad("--junit needs a file name".into()))?,
                };
                if value.is_empty() {
                    return Err(bad("--junit needs a file name".into()));
                }
                junit = Some(value);
            }
            "--stage" => {
                let value = match inline {
                    Some(value) => value,
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
    Ok(Config { stage, list, official, junit, command })
}

fn main() -> ExitCode {
    let config = match tool::parse_process_args(PROGRAM, parse_args) {
        Ok(config) => config,
        Err(status) => return status,
    };
    let entries = checks_for(config.stage);
    if config.list {
        if !config.official {
            for entry in &entries {
                println!("{}\n    {}", entry.name, entry.expects);
            }
        }
        for (name, expects) in tester_cases() {
            println!("{name}\n    {expects}");
        }
        return ExitCode::SUCCESS;
    }
    if let Err(message) = find_program(&config.command[0]) {
        eprintln!("{PROGRAM}: {message}");
        return ExitCode::from(tool::EXIT_USAGE);
    }
    close_inherited_fds_on_exec();
    stop_servers_on_signals();

    let mut run = Run::new(&config);
    run.header();
    if !config.official {
        run.workspace_checks(&entries);
    }
    run.tester_checks();
    run.finish()
}

// ---------------------------------------------------------------------------------------------
// The server command
// ---------------------------------------------------------------------------------------------

/// Checks that `program` can be started, with a hint for `xps` that should be `./xps`.
fn find_program(program: &str) -> Result<(), String> {
    if program.contains('/') {
        return match Path::new(program).is_file() {
            true => Ok(()),
            false => Err(format!("{program}: no such file; is the path right, and was it built?")),
        };
    }
    let in_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    match (in_path, Path::new(program).is_file()) {
        (true, _) => Ok(()),
        (false, true) => Err(format!(
            "`{program}` is not a command in PATH, but there is a file {program} here: write `-- ./{program}` \
             (as in a shell, a command without a `/` is looked up in PATH, not in the current folder)"
        )),
        (false, false) => Err(format!("`{program}`: command not found (not in PATH, and no such file here)")),
    }
}

/// The name of the server a command starts, looking through wrappers: `stdbuf -oL ./xps`,
/// `valgrind --leak-check=full ./xps`, `sh -c "cd src && ./xps"`, `env X=1 ./xps`, `cargo run -p
/// stage07` all name the server (`xps`, `stage07`), not the wrapper.
fn server_name(command: &[String]) -> String {
    let base = |word: &str| Path::new(word).file_name().map_or(word.to_string(), |n| n.to_string_lossy().into_owned());
    let mut i = 0;
    while i < command.len() {
        let word = base(&command[i]);
        match word.as_str() {
            "stdbuf" | "valgrind" | "nice" | "setsid" | "nohup" | "env" | "timeout" | "exec" | "time" | "taskset"
            | "ionice" | "unbuffer" => {
                i += 1;
                while i < command.len() {
                    let arg = &command[i];
                    if matches!(arg.as_str(), "-i" | "-o" | "-e" | "-n" | "-s" | "-k" | "-u") {
                        i += 2;
                    } else if arg.starts_with('-') || (word == "env" && arg.contains('=')) {
                        i += 1;
                    } else {
                        break;
                    }
                }
                // timeout DURATION CMD, taskset MASK CMD
                if matches!(word.as_str(), "timeout" | "taskset") {
                    i += 1;
                }
            }
            "sh" | "bash" | "dash" | "zsh" => {
                let Some(script) = command.iter().skip(i + 1).skip_while(|a| *a != "-c").nth(1) else {
                    return word;
                };
                let last = script.rsplit(['&', ';', '|']).map(str::trim).find(|s| !s.is_empty()).unwrap_or(script);
                let words: Vec<String> = last.split_whitespace().map(str::to_string).collect();
                return if words.is_empty() { word } else { server_name(&words) };
            }
            "cargo" => {
                let after = |flag: &str| command.iter().position(|a| a == flag).and_then(|p| command.get(p + 1));
                if let Some(name) = after("--bin").or_else(|| after("-p")).or_else(|| after("--package")) {
                    return name.clone();
                }
                if let Some(manifest) = after("--manifest-path") {
                    let dir = Path::new(manifest).parent().and_then(Path::file_name);
                    return dir.map_or("cargo run".into(), |d| d.to_string_lossy().into_owned());
                }
                return "cargo run".into();
            }
            _ => return word,
        }
    }
    command.first().map_or("server".into(), |c| base(c))
}

/// Marks every descriptor this program inherited (beyond stdin, stdout, stderr) close-on-exec:
/// it keeps them, but the servers it starts do not inherit them (a lock a caller holds on an
/// inherited descriptor, say, so a server can never hold it).
fn close_inherited_fds_on_exec() {
    let Ok(fds) = procfs::own_fds() else { return };
    for fd in fds.into_iter().map(|f| f.fd).filter(|&fd| fd > 2) {
        // SAFETY: fcntl() takes no pointers; on a descriptor that is not open (the one the
        // listing used, closed since) it fails with EBADF, which is harmless.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Ctrl+C (or SIGTERM, SIGHUP) stops every server still running and everything it started,
/// then exits: nothing is left behind. (The servers start with no signal blocked.)
fn stop_servers_on_signals() {
    process::on_interrupt(STOP_ALL_GRACE, |signal| {
        println!();
        println!("{PROGRAM}: interrupted (signal {signal}); stopped the server and everything it started");
        std::process::exit(128 + signal);
    });
}

// ---------------------------------------------------------------------------------------------
// Running and reporting
// ---------------------------------------------------------------------------------------------

/// How one check ended.
enum Outcome {
    Pass,
    Fail(String),
}

/// One reported check, for the closing count and the JUnit report.
struct Case {
    suite: &'static str,
    name: String,
    outcome: Outcome,
    seconds: f64,
}

struct Run<'a> {
    config: &'a Config,
    name: String,
    cases: Vec<Case>,
    /// The checks not run (the server did not start), by name.
    not_run: Vec<&'static str>,
    /// Why the tester would fail the build, one reason per line.
    tester_fails: Vec<String>,
    seed: u64,
}

impl<'a> Run<'a> {
    fn new(config: &'a Config) -> Self {
        Run {
            config,
            name: server_name(&config.command),
            cases: Vec::new(),
            not_run: Vec::new(),
            tester_fails: Vec::new(),
            seed: Rng::seed_from_time(),
        }
    }

    fn header(&self) {
        let command = self.config.command.join(" ");
        let list = |ports: &[u16]| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
        if self.config.official {
            println!(
                "{PROGRAM}: the course's tester's checks for stage {} against `{command}` (server: {}) on ports {}",
                self.config.stage,
                self.name,
                list(&TESTER_PORTS)
            );
        } else {
            println!(
                "{PROGRAM}: stage {} checks against `{command}` (server: {}) on ports {}, then the course's tester's checks on ports {}",
                self.config.stage,
                self.name,
                list(ports_for(self.config.stage)),
                list(&TESTER_PORTS)
            );
        }
        println!("(the server is started afresh for each check and stopped afterwards; all traffic to 127.0.0.1)");
    }

    fn total(&self) -> usize {
        let workspace = if self.config.official { 0 } else { checks_for(self.config.stage).len() };
        workspace + tester_cases().len()
    }

    fn announce(&self, name: &str, expects: &str) {
        println!();
        println!("[{}/{}] {name}", self.cases.len() + self.not_run.len() + 1, self.total());
        println!("      expects: {expects}");
    }

    fn record(&mut self, suite: &'static str, name: &str, started: Instant, outcome: Outcome) {
        let seconds = started.elapsed().as_secs_f64();
        match &outcome {
            Outcome::Pass => println!("      PASS ({seconds:.1} s)"),
            Outcome::Fail(text) => {
                println!("      FAIL ({seconds:.1} s)");
                for line in text.trim_end().lines() {
                    println!("      {line}");
                }
            }
        }
        self.cases.push(Case { suite, name: name.to_string(), outcome, seconds });
    }

    /// Starts the server for a check on `ports`; a failure to start is the check's failure.
    fn start(&self, ports: &[u16]) -> Result<(Server, Vec<u16>), String> {
        for &port in ports {
            if let Some(other) = Server::listeners_on(port).into_iter().next() {
                let owner = other.owner.unwrap_or_else(|| "another program (of another user?)".into());
                return Err(format!(
                    "port {port} is already in use, before {} started: {} listens on {}\n  \
                     look at:  is a server still running in another terminal? stop it (Ctrl+C) and run again",
                    self.name, owner, other.addr
                ));
            }
        }
        let mut cmd = Command::new(&self.config.command[0]);
        cmd.args(&self.config.command[1..]);
        Server::spawn_listening(cmd, ports, Some(&self.name)).map_err(|f| f.to_string())
    }

    /// This workspace's checks, each against a fresh server.
    fn workspace_checks(&mut self, entries: &[Entry]) {
        let ports = ports_for(self.config.stage);
        for (i, entry) in entries.iter().enumerate() {
            self.announce(entry.name, entry.expects);
            let started = Instant::now();
            let (mut server, missing) = match self.start(ports) {
                Ok(started) => started,
                Err(text) => {
                    self.record(
                        "workspace",
                        entry.name,
                        started,
                        Outcome::Fail(format!("the server did not start\n{text}")),
                    );
                    self.not_run.extend(entries[i + 1..].iter().map(|e| e.name));
                    println!();
                    println!(
                        "({} more of this workspace's checks not run: the server did not start)",
                        entries.len() - i - 1
                    );
                    return;
                }
            };
            if i == 0 && !missing.is_empty() {
                println!(
                    "      note: {} does not listen on port {}: the checks that need it fail",
                    self.name,
                    join(&missing)
                );
            }
            let result = guarded(entry.name, || (entry.check)(&server));
            let result = match result {
                Ok(())
                    if !missing.is_empty()
                        && (entry.name.contains("each_port") || entry.name.contains("every_port")) =>
                {
                    Err(missing_ports_text(&self.name, &missing, ports, self.config.stage))
                }
                other => other,
            };
            let outcome = self.conclude(&mut server, result);
            self.record("workspace", entry.name, started, outcome);
        }
    }

    /// After a check: the server's death first, then what the clients saw, then memory errors
    /// the server printed; stops the server.
    fn conclude(&self, server: &mut Server, result: Result<(), String>) -> Outcome {
        let died = server.wait_exit(if result.is_ok() { Duration::ZERO } else { Duration::from_millis(1500) });
        server.stop(STOP_GRACE);
        let crash = server.crash_lines();
        let mut text = String::new();
        if let Some(status) = died {
            text.push_str(&format!("{} died during the check: {}\n", self.name, Server::describe_status(Some(status))));
        }
        if !crash.is_empty() {
            text.push_str(if died.is_some() {
                "  what it printed as it crashed:\n"
            } else {
                "the server reported a memory error or crash:\n"
            });
            for line in &crash {
                text.push_str(&format!("  | {line}\n"));
            }
        }
        if died.is_some() || !crash.is_empty() {
            let sanitized = crash.iter().any(|l| l.contains("Sanitizer") || l.contains("runtime error:"));
            let own_frame = crash.iter().find(|l| l.starts_with("  ")).map(|l| l.trim().to_string());
            match (sanitized, own_frame) {
                (true, Some(frame)) => text.push_str(&format!(
                    "  look at:  the sanitizer names the line: the first frame in your own code, `{frame}`\n"
                )),
                (true, None) => text.push_str(
                    "  look at:  the sanitizer's report below; build with -g so that it names files and lines\n",
                ),
                (false, _) if died.is_some_and(Server::crashed) || !crash.is_empty() => {
                    text.push_str(&format!("  look at:  {SANITIZER_HINT}\n"))
                }
                (false, _) => text.push_str(
                    "  look at:  the server must keep running whatever a client does; the output below says why it stopped\n",
                ),
            }
            let output = format!("server output (last lines):\n{}", indent(&output_before_report(server)));
            match &result {
                Err(failure) => {
                    // The clients' side, without its own guesses (the death explains it) and with
                    // the server's output before any sanitizer report, not the report's tail.
                    let cut = failure.find("server output (last lines):").unwrap_or(failure.len());
                    let seen: String = failure[..cut]
                        .lines()
                        .filter(|l| !l.trim_start().starts_with("look at:"))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    text.push_str(&format!("what the clients saw:\n{seen}{output}"));
                }
                Ok(()) => text.push_str(&output),
            }
            return Outcome::Fail(text);
        }
        match result {
            Ok(()) => Outcome::Pass,
            Err(failure) => {
                let stray = failure.contains(" extra byte") && failure.contains("\\x00");
                if failure.contains("received: \"\\x00") && !stray {
                    return Outcome::Fail(format!(
                        "{failure}  also:     the reply starts with a \\x00 left over after the previous reply: \
                         are you sending strlen+1? (nothing_comes_after_a_reply checks this on its own)\n"
                    ));
                }
                if stray && !failure.contains("fsanitize") {
                    Outcome::Fail(format!("{failure}  also:     {SANITIZER_HINT}\n"))
                } else {
                    Outcome::Fail(failure)
                }
            }
        }
    }

    /// The course tester's checks, as it runs them.
    fn tester_checks(&mut self) {
        println!();
        println!(
            "== the course's tester (stages 6 and 7: ports 8001-8004, 0.0.0.0; its checks exactly as it runs them)"
        );
        let names = tester_cases();

        // The server the tester starts once, for checks 1 and 2.
        self.announce(names[0].0, names[0].1);
        let started = Instant::now();
        let (mut server, missing) = match self.start(&TESTER_PORTS) {
            Ok(started) => started,
            Err(text) => {
                self.record("tester", names[0].0, started, Outcome::Fail(format!("the server did not start\n{text}")));
                self.not_run.extend(names[1..].iter().map(|(name, _)| *name));
                println!();
                println!("(the tester's 3 checks not run: the server did not start)");
                self.tester_fails.push(format!("{} does not start listening on ports 8001-8004", self.name));
                return;
            }
        };
        if !missing.is_empty() {
            println!(
                "      note: {} does not listen on port {}: the tester's check 1 needs it",
                self.name,
                join(&missing)
            );
        }
        let address = self.judge_address(&server);
        if address.is_err() {
            println!(
                "      note: the checks below connect over loopback and may pass; the tester's connections would be refused"
            );
        }
        if let Err(why) = &address {
            self.tester_fails.push(why.lines().next().unwrap_or_default().to_string());
        }
        self.record("tester", names[0].0, started, address.map_or_else(Outcome::Fail, |()| Outcome::Pass));

        // Check 1: every tester port, one after the other, on this one server.
        self.announce(names[1].0, names[1].1);
        let started = Instant::now();
        let mut failures = Vec::new();
        for port in TESTER_PORTS {
            if missing.contains(&port) {
                println!("      port {port}: not listening");
                failures.push(missing_ports_text(&self.name, &[port], &TESTER_PORTS, self.config.stage));
                continue;
            }
            let seed = self.seed;
            match guarded("tester check 1", || tester::tester_check_1_on_port(&server, port, seed)) {
                Ok(()) => println!("      port {port}: 1000 strings, every reply right"),
                Err(text) => {
                    println!("      port {port}: failed");
                    failures.push(format!("port {port}: {text}"));
                    if server.wait_exit(Duration::from_millis(500)).is_some() {
                        break;
                    }
                }
            }
        }
        // The server's output once, after the last port's failure.
        let last = failures.len().saturating_sub(1);
        for failure in &mut failures[..last] {
            if let Some(cut) = failure.find("server output (last lines):") {
                failure.truncate(cut);
            }
        }
        let result = if failures.is_empty() { Ok(()) } else { Err(failures.join("")) };
        let dead = server.wait_exit(Duration::ZERO).is_some();
        let crash = if dead { Vec::new() } else { server.crash_lines() };
        let outcome = if dead {
            self.conclude(&mut server, result)
        } else if !crash.is_empty() {
            // A memory error Valgrind reported without stopping the server: check 2 still runs on it.
            let mut text = String::from("the server reported a memory error or crash:\n");
            for line in &crash {
                text.push_str(&format!("  | {line}\n"));
            }
            text.push_str(&format!("  look at:  {SANITIZER_HINT}\n"));
            if let Err(failure) = result {
                text.push_str(&format!("what the clients saw:\n{failure}"));
            }
            Outcome::Fail(text)
        } else {
            plain(result)
        };
        self.tester_verdict(1, &outcome, &missing);
        self.record("tester", names[1].0, started, outcome);

        // Check 2: the same server, unless check 1 killed it (the tester then restarts it).
        self.announce(names[2].0, names[2].1);
        let started = Instant::now();
        if server.wait_exit(Duration::ZERO).is_some() {
            server.stop(STOP_GRACE);
            println!("      (the server died in check 1; the tester restarts it, and so does this check)");
            match self.start(&TESTER_PORTS) {
                Ok((fresh, _)) => server = fresh,
                Err(text) => {
                    self.tester_fails.push("check 2: the server did not restart".into());
                    self.record(
                        "tester",
                        names[2].0,
                        started,
                        Outcome::Fail(format!("the server did not start\n{text}")),
                    );
                    self.not_run.push(names[3].0);
                    return;
                }
            }
        }
        let result = if missing.contains(&8001) {
            Err(missing_ports_text(&self.name, &[8001], &TESTER_PORTS, self.config.stage))
        } else {
            guarded("tester check 2", || tester::tester_check_2(&server, 8001))
        };
        // The tester stops the server after check 2.
        let outcome = self.conclude(&mut server, result);
        self.tester_verdict(2, &outcome, &missing);
        self.record("tester", names[2].0, started, outcome);

        // Check 3: a fresh server.
        self.announce(names[3].0, names[3].1);
        let started = Instant::now();
        let outcome = match self.start(&TESTER_PORTS) {
            Err(text) => Outcome::Fail(format!("the server did not start\n{text}")),
            Ok((mut server, missing)) => {
                let result = if missing.contains(&8001) {
                    Err(missing_ports_text(&self.name, &[8001], &TESTER_PORTS, self.config.stage))
                } else {
                    let seed = self.seed;
                    guarded("tester check 3", || tester::tester_check_3(&server, 8001, seed))
                };
                let result = result.and_then(|()| match server.wait_exit(Duration::from_millis(200)) {
                    None => Ok(()),
                    Some(status) => Err(format!(
                        "{} exited after a client disconnected: {}\n",
                        self.name,
                        Server::describe_status(Some(status))
                    )),
                });
                self.conclude(&mut server, result)
            }
        };
        self.tester_verdict(3, &outcome, &missing);
        self.record("tester", names[3].0, started, outcome);
    }

    /// Whether the tester, connecting over the network, could reach the server.
    fn judge_address(&self, server: &Server) -> Result<(), String> {
        let listening = server.listening();
        let mut loopback_only = Vec::new();
        for port in TESTER_PORTS {
            let on_port: Vec<_> = listening.iter().filter(|l| l.addr.port() == port).collect();
            if !on_port.is_empty() && !on_port.iter().any(|l| l.reachable_from_network()) {
                loopback_only.push(on_port[0].addr.to_string());
            }
        }
        if loopback_only.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{} listens on {} only: loopback, which the tester cannot reach\n  \
             why:      the tester runs your server in a container and connects over the container's \
             network, not loopback, so a server bound to 127.0.0.1 refuses its connections: all three \
             of its checks would fail (this workspace's checks pass: they connect to 127.0.0.1)\n  \
             look at:  bind to INADDR_ANY, 0.0.0.0 (every interface): the host you pass to \
             xps_listener_create()/getaddrinfo(), or `addr.sin_addr.s_addr = htonl(INADDR_ANY)`",
            self.name,
            loopback_only.join(", ")
        ))
    }

    /// Notes why the tester would fail check `n` (when it would).
    fn tester_verdict(&mut self, n: usize, outcome: &Outcome, missing: &[u16]) {
        if let Outcome::Fail(text) = outcome {
            let first = text.lines().next().unwrap_or_default();
            let reason = if n == 1 && !missing.is_empty() {
                format!("check 1: nothing listens on port {} (the tester checks 8001-8004)", join(missing))
            } else {
                format!("check {n}: {first}")
            };
            self.tester_fails.push(reason);
        }
    }

    fn finish(self) -> ExitCode {
        let passed = self.cases.iter().filter(|c| matches!(c.outcome, Outcome::Pass)).count();
        let failed = self.cases.len() - passed;
        println!();
        if self.tester_fails.is_empty() {
            println!(
                "the course's tester would PASS this build: its 3 checks pass as it runs them, on ports \
                 8001-8004, and {} listens on every interface",
                self.name
            );
        } else {
            println!("the course's tester would FAIL this build:");
            for reason in &self.tester_fails {
                println!("  - {reason}");
            }
        }
        if let Some(path) = &self.config.junit {
            match std::fs::File::create(path).and_then(|mut f| f.write_all(self.junit().as_bytes())) {
                Ok(()) => println!("(JUnit report written to {path})"),
                Err(e) => eprintln!("{PROGRAM}: cannot write the JUnit report {path}: {e}"),
            }
        }
        if !self.not_run.is_empty() {
            println!("{passed} passed, {failed} failed, {} not run", self.not_run.len());
        } else {
            println!("{passed} passed, {failed} failed");
        }
        if failed == 0 && self.not_run.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }

    /// The results as JUnit XML: one test case per check, the failure text as in the terminal.
    fn junit(&self) -> String {
        let failed = self.cases.iter().filter(|c| matches!(c.outcome, Outcome::Fail(_))).count();
        let total: f64 = self.cases.iter().map(|c| c.seconds).sum();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        xml.push_str(&format!(
            "<testsuite name=\"xps-check stage {}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{}\" time=\"{total:.3}\">\n",
            self.config.stage,
            self.cases.len() + self.not_run.len(),
            self.not_run.len()
        ));
        xml.push_str(&format!(
            "  <properties><property name=\"command\" value=\"{}\"/></properties>\n",
            xml_escape(&self.config.command.join(" "))
        ));
        for case in &self.cases {
            let head = format!(
                "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                case.suite,
                xml_escape(&case.name),
                case.seconds
            );
            match &case.outcome {
                Outcome::Pass => xml.push_str(&format!("{head}/>\n")),
                Outcome::Fail(text) => {
                    let first = text.lines().next().unwrap_or("failed");
                    xml.push_str(&format!(
                        "{head}>\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                        xml_escape(first),
                        xml_escape(text)
                    ));
                }
            }
        }
        for name in &self.not_run {
            xml.push_str(&format!(
                "  <testcase classname=\"not_run\" name=\"{name}\"><skipped message=\"not run: the server did not start\"/></testcase>\n"
            ));
        }
        xml.push_str("</testsuite>\n");
        xml
    }
}

/// A check's result, or its panic, as text.
fn guarded(name: &str, check: impl FnOnce() -> Result<(), Failure>) -> Result<(), String> {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let name = name.to_string();
    // A watchdog, in case a check hangs: report it and end the run, stopping the servers.
    let watchdog = thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(CHECK_TIMEOUT) {
            println!("      FAIL: {name} did not finish within {CHECK_TIMEOUT:?}; stopping the run");
            Server::stop_all();
            std::process::exit(1);
        }
    });
    let result = panic::catch_unwind(AssertUnwindSafe(check));
    drop(done_tx);
    let _ = watchdog.join();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(failure)) => Err(failure.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(format!("the check panicked: {message}\n"))
        }
    }
}

/// The server's last 12 lines of output before a sanitizer's or Valgrind's report began (its
/// tail is a memory map, useless here; the report's key lines are shown on their own).
fn output_before_report(server: &Server) -> String {
    let all = server.log_tail(400);
    let lines: Vec<&str> = all.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            l.contains("ERROR: AddressSanitizer")
                || l.contains("ERROR: LeakSanitizer")
                || l.contains("runtime error:")
                || l.contains("Invalid read of size")
                || l.contains("Invalid write of size")
        })
        .unwrap_or(lines.len());
    lines[start.saturating_sub(12)..start].iter().map(|l| format!("{l}\n")).collect()
}

fn plain(result: Result<(), String>) -> Outcome {
    result.map_or_else(Outcome::Fail, |()| Outcome::Pass)
}

/// What to say about ports the server does not listen on.
fn missing_ports_text(name: &str, missing: &[u16], wanted: &[u16], stage: u8) -> String {
    let mut text = format!("{name} does not listen on port {} (it should listen on {})\n", join(missing), join(wanted));
    if stage == 6 && missing == [8004] {
        text.push_str(
            "  look at:  the page's stage 6 creates listeners on 8001-8003, but the course's tester checks \
             8001-8004 for stage 6 too: create a 4th listener on 8004 (this workspace's stage06: \
             `cargo run -p stage06 -- 8001 8002 8003 8004`)\n",
        );
    } else {
        text.push_str(
            "  look at:  does the server create a listener on every port? the tester starts it with no arguments\n",
        );
    }
    text
}

fn join(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  | {l}\n")).collect()
}

/// Text safe inside XML attributes and elements (control characters other than tab and
/// newline, which XML 1.0 forbids, become `?`).
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_server_is_named_not_its_wrapper() {
        assert_eq!(server_name(&words("./xps")), "xps");
        assert_eq!(server_name(&words("stdbuf -oL ./xps")), "xps");
        assert_eq!(server_name(&words("stdbuf -o L /home/me/expserver/src/xps")), "xps");
        assert_eq!(server_name(&words("valgrind --leak-check=full -q ./build/xps")), "xps");
        assert_eq!(server_name(&words("env XPS_DEBUG=1 ./xps")), "xps");
        assert_eq!(server_name(&["sh".into(), "-c".into(), "cd src && ./xps".into()]), "xps");
        assert_eq!(server_name(&words("cargo run -q --manifest-path ../my-xps/Cargo.toml --")), "my-xps");
        assert_eq!(server_name(&words("cargo run -p stage07")), "stage07");
    }

    #[test]
    fn junit_text_is_escaped() {
        assert_eq!(xml_escape("a<b> & \"c\"\x01"), "a&lt;b&gt; &amp; &quot;c&quot;?");
    }
}
