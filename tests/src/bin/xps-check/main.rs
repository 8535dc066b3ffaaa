//! `xps-check`: the course's checks for one stage, run against any server command, and what the
//! course's own tester would say about it.
//!
//! ```text
//! scripts/check-build.sh 7 -- ./xps              # what most people run (it builds this binary)
//! xps-check --stage 7 -- ./xps                   # the binary itself
//! xps-check --stage 7 --official -- ./xps        # only the course tester's checks, as it runs them
//! xps-check --stage 7 --builds class/            # a teacher's builds, one after another
//! ```
//!
//! Two parts, both run by default:
//!
//! 1. **This workspace's checks** ([`workspace`]): the registry's checks that run against any
//!    build, each against a fresh server on the stage's ports, each within its time limit.
//! 2. **The course's tester** ([`tester`]), exactly as it runs: started as it starts the server,
//!    connecting when it connects, judging each check on what it sees before it resolves it.
//!
//! Every run ends in a verdict: PASS, FAIL, or *could not judge* (the machine's ports were
//! taken, the command does not exist, the checker failed), then the bugs the tester does not see
//! (memory errors during shutdown, leaks), then `N passed, N failed`. All of it comes from the
//! values in [`outcome`]; [`print`](mod@print) writes them, and the JUnit report from the same values.
//!
//! All traffic goes to 127.0.0.1. The server runs in a process group of its own, through the
//! kit's process runner, and is stopped after each check with everything it started, daemons
//! included; Ctrl+C stops it too and reports the check it interrupted as interrupted.
//!
//! Exit status: 0 if every check passed, 1 if one failed (or a bug the tester does not see was
//! found; with `--official`, the tester's verdict alone), 2 if the build could not be judged or
//! the arguments are wrong, 128 + N when signal N interrupted the run.

mod cli;
mod command;
mod machine;
mod network;
mod outcome;
mod print;
mod run;
mod session;
mod teacher;
mod tester;
mod workspace;

use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use xps_tests::registry::{self, CHECKS};
use xps_tests::{procfs, tool};

use crate::cli::{Builds, Config, program};
use crate::command::{How, ServerCommand};
use crate::outcome::Report;
use crate::print::Out;
use crate::run::Run;

/// How long the servers get after Ctrl+C before SIGKILL: the user is waiting.
const STOP_ALL_GRACE: Duration = Duration::from_millis(500);

/// How long the main thread gets, after Ctrl+C, to report the check it interrupted and end the
/// run before the program ends without it.
const REPORT_GRACE: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    // First, before any thread: Ctrl+C (or SIGTERM, SIGHUP) stops every server and everything
    // it started; the main thread then sees `process::interrupted()`, reports and exits.
    xps_tests::process::on_interrupt(STOP_ALL_GRACE, |signal| {
        thread::sleep(REPORT_GRACE);
        println!("{}: interrupted (signal {signal}); stopped the server and everything it started", program());
        std::process::exit(128 + signal);
    });
    let config = match tool::parse_process_args(&program(), cli::parse_args) {
        Ok(config) => config,
        Err(status) => return status,
    };
    if config.list {
        for check in workspace::checks(config.stage).into_iter().filter(|_| !config.official) {
            println!("{}\n    {}", check.id, check.expects);
        }
        for check in CHECKS.iter().filter(|c| matches!(c.run, registry::Run::Tester(_))) {
            println!("{}\n    {}", check.id, check.expects);
        }
        return ExitCode::SUCCESS;
    }
    close_inherited_fds_on_exec();
    match &config.builds {
        Builds::One(words) => {
            let command = ServerCommand { words: words.clone(), dir: None };
            if let Err(why) = command.find() {
                eprintln!("{}: {why}", program());
                return ExitCode::from(tool::EXIT_USAGE);
            }
            let report = check_build(&config, command, Out::Stdout, config.junit.as_deref());
            ExitCode::from(report.exit_status())
        }
        Builds::Many { from, out } => teacher::run(&config, from, out),
    }
}

/// How many checks a run of `config` has.
fn total(config: &Config) -> usize {
    let workspace = if config.official { 0 } else { workspace::checks(config.stage).len() };
    workspace + CHECKS.iter().filter(|c| matches!(c.run, registry::Run::Tester(_))).count()
}

/// Checks one build, printing to `out`, and writes its JUnit report to `junit` if given.
fn check_build(config: &Config, command: ServerCommand, out: Out, junit: Option<&Path>) -> Report {
    let mut run = Run::new(config.stage, config.official, command, out, total(config));
    header(&mut run);
    match machine::stop_leftovers(&mut run.out) {
        Err(why) => run.report.cannot_judge = Some(why),
        Ok(()) => {
            if !config.official {
                run.workspace_part();
            }
            run.tester_part();
        }
    }
    run.finish(junit)
}

/// What the run checks, and how.
fn header(run: &mut Run) {
    let (stage, command) = (run.stage(), run.report.command.clone());
    let list = |ports: &[u16]| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
    let tester_ports = list(&xps_tests::checks::tester::TESTER_PORTS);
    if run.report.official {
        let how = run.command.command(How::AsTheTester { config_arg: true });
        let shown: Vec<String> = std::iter::once(how.get_program())
            .chain(how.get_args())
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        run.out.line(format!(
            "{}: the course's tester's checks for stage {stage} against `{command}` on ports {tester_ports}, \
             started as the tester starts it: `{}` with ASAN_OPTIONS={}",
            program(),
            shown.join(" "),
            command::TESTER_ASAN_OPTIONS
        ));
    } else {
        run.out.line(format!(
            "{}: stage {stage} checks against `{command}` on ports {}, then the course's tester's checks on ports \
             {tester_ports}",
            program(),
            list(workspace::ports_for(stage))
        ));
    }
    run.out.line("(the server is started afresh for each check and stopped afterwards; all traffic to 127.0.0.1)");
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
