//! `xps-lock`: runs a command while holding the lock on the course's default ports (8001-8004),
//! the same lock the workspace's tests take ([`xps_tests::DefaultPortsLock`]), so that the
//! scripts that use those ports (`scripts/check-build.sh`, `experiment1.sh`, `bench.sh`) never
//! run at the same time as such a test, or as each other.
//!
//! ```text
//! xps-lock [--wait SECS] [--name PROGRAM] [--fail-message TEXT] -- CMD [ARGS...]
//! ```
//!
//! While it waits it says on stderr who holds the lock (pid and command line). CMD runs through
//! the kit's process runner: in a process group of its own, stopped with everything it started
//! on Ctrl+C (SIGINT, SIGTERM, SIGHUP are passed on to it) and when it exits. CMD's environment
//! has `XPS_DEFAULT_PORTS_HELD=<xps-lock's pid>`, so a script that runs itself again under
//! `xps-lock` (scripts/lib.sh `hold_default_ports`) knows that its parent holds the lock. Exit status: CMD's (128 + N if a signal N ended it), 1 if the lock
//! could not be had, 2 for bad arguments, 127 if CMD could not be started.

use std::process::{Command, ExitCode};
use std::time::Duration;

use xps_tests::process::{self, Options, Process, Stream};
use xps_tests::tool::{self, CliError};
use xps_tests::{DefaultPortsLock, LockError};

const PROGRAM: &str = "xps-lock";
/// How long to wait for the lock by default.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// How long CMD gets after Ctrl+C before SIGKILL: a script's own cleanup, a checker's.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// The variable that tells CMD it runs holding the lock.
const HELD_VAR: &str = "XPS_DEFAULT_PORTS_HELD";

struct Config {
    wait: Duration,
    name: String,
    fail_message: String,
    command: Vec<String>,
}

fn usage() -> String {
    format!(
        "Usage: {PROGRAM} [--wait SECS] [--name PROGRAM] [--fail-message TEXT] -- CMD [ARGS...]\n\
         \n\
         Runs CMD holding the lock on ports 8001-8004 that the workspace's tests and scripts\n\
         take ({}),\n\
         waiting for whoever holds it and naming them on stderr. CMD runs in a process group of\n\
         its own with {HELD_VAR}=<this pid> in its environment; Ctrl+C is passed on\n\
         to it, and whatever it leaves running is stopped when it exits.\n\
         \n\
         Options:\n      \
               --wait SECS          how long to wait for the lock (default: {})\n      \
               --name PROGRAM       the name to give in messages (default: {PROGRAM})\n      \
               --fail-message TEXT  a line to print on stderr as well if the lock stays taken\n  \
           -h, --help               print this help and exit\n\
         \n\
         Exit status: CMD's (128 + N if signal N ended it), 1 if the lock stayed taken, 2 for\n\
         bad arguments, 127 if CMD could not be started.\n",
        DefaultPortsLock::path().display(),
        DEFAULT_WAIT.as_secs()
    )
}

fn parse_args(args: Vec<String>) -> Result<Config, CliError> {
    let bad = |msg: String| tool::usage_error(PROGRAM, msg);
    let mut config =
        Config { wait: DEFAULT_WAIT, name: PROGRAM.into(), fail_message: String::new(), command: Vec::new() };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = tool::split_option(&arg);
        let mut value =
            |what: &str| inline.clone().or_else(|| args.next()).ok_or_else(|| bad(format!("{name} needs {what}")));
        match name {
            "-h" | "--help" => return Err(CliError::Help(usage())),
            "--wait" => {
                let secs = value("a number of seconds")?;
                config.wait = Duration::from_secs(
                    secs.parse().map_err(|_| bad(format!("--wait: '{secs}' is not a number of seconds")))?,
                );
            }
            "--name" => config.name = value("a program name")?,
            "--fail-message" => config.fail_message = value("a message")?,
            "--" => {
                config.command = args.by_ref().collect();
                break;
            }
            _ => return Err(bad(format!("unexpected argument '{arg}' (the command goes after `--`)"))),
        }
    }
    if config.command.is_empty() {
        return Err(bad("no command: put it after `--`".into()));
    }
    Ok(config)
}

fn main() -> ExitCode {
    // First, before any thread: Ctrl+C stops CMD and everything it started, then ends us.
    process::on_interrupt(INTERRUPT_GRACE, |_| {});
    let config = match tool::parse_process_args(PROGRAM, parse_args) {
        Ok(config) => config,
        Err(status) => return status,
    };
    let name = &config.name;
    let path = DefaultPortsLock::path();
    let on_wait = |holder: &str| {
        eprintln!("{name}: waiting for ports 8001-8004: the lock {} is held by {holder}...", path.display());
    };
    let lock = DefaultPortsLock::acquire_waiting(config.wait, on_wait);
    let _lock = match lock {
        Ok(lock) => lock,
        Err(error) => {
            match error {
                LockError::Io(path, e) => eprintln!("{name}: cannot open the lock file {}: {e}", path.display()),
                LockError::StillHeld(holder) => eprintln!(
                    "{name}: the lock {} is still held after {} s, by {holder}",
                    path.display(),
                    config.wait.as_secs()
                ),
            }
            if !config.fail_message.is_empty() {
                eprintln!("{}", config.fail_message);
            }
            return ExitCode::FAILURE;
        }
    };
    let mut cmd = Command::new(&config.command[0]);
    cmd.args(&config.command[1..]).env(HELD_VAR, std::process::id().to_string());
    let options = Options { stdout: Stream::Inherit, stderr: Stream::Inherit, ..Options::default() };
    let mut child = match Process::spawn(cmd, &options) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("{name}: cannot run {}: {e}", config.command[0]);
            return ExitCode::from(127);
        }
    };
    let status = loop {
        if let Some(status) = child.wait_exit(Duration::from_secs(3600)) {
            break status;
        }
    };
    // Whatever CMD left running (a server in its group, a daemon) goes with it.
    child.stop(Duration::from_secs(2));
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
