//! One build's run: its header, each check announced and reported as it ends, the server
//! started for each check and stopped after it, and the closing lines. The two parts live in
//! [`crate::workspace`] and [`crate::tester`]; both report through here.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use xps_tests::memory_errors::memory_errors;
use xps_tests::{Failure, Rng, Role, Server, process};

use crate::command::{How, ServerCommand};
use crate::machine;
use crate::outcome::{Case, Death, Outcome, Part, Problem, Report, When};
use crate::print::{self, Out};
use crate::session::{Ran, Session, StartError, Stopped};

/// How long a dying server gets to be seen dead after a check that failed.
const DEATH_WAIT: Duration = Duration::from_millis(1500);

/// A build's run in progress.
pub struct Run {
    /// The server command.
    pub command: ServerCommand,
    /// Where the run's lines go.
    pub out: Out,
    /// What it found so far.
    pub report: Report,
    /// The random seed of the run's strings.
    pub seed: u64,
    /// How many checks the run has, for `[i/N]`.
    pub total: usize,
    /// Paths in memory-error reports are shown relative to this folder.
    base: Option<PathBuf>,
}

impl Run {
    /// A run of `command` for `stage`, reporting to `out`.
    pub fn new(stage: u8, official: bool, command: ServerCommand, out: Out, total: usize) -> Run {
        let base = command.dir.clone().or_else(|| std::env::current_dir().ok());
        let report = Report::new(stage, official, command.display(), command.guess_name());
        Run { command, out, report, seed: Rng::seed_from_time(), total, base }
    }

    /// The stage.
    pub fn stage(&self) -> u8 {
        self.report.stage
    }

    /// Announces the next check.
    pub fn announce(&mut self, id: &str, expects: &str) {
        self.out.line("");
        self.out.line(format!("[{}/{}] {id}", self.report.cases.len() + 1, self.total));
        self.out.line(format!("      expects: {expects}"));
    }

    /// Prints a check's outcome under its name and keeps it.
    pub fn record(&mut self, id: &'static str, part: Part, outcome: Outcome, elapsed: Duration) {
        let case = Case { id, part, outcome, elapsed };
        let text = print::outcome_text(&case, &self.report);
        self.out.indented(&text);
        self.report.cases.push(case);
    }

    /// Keeps checks that did not run, without printing each.
    pub fn not_run(&mut self, ids: impl IntoIterator<Item = &'static str>, part: Part, why: &str) {
        for id in ids {
            let outcome = Outcome::NotRun(why.to_string());
            self.report.cases.push(Case { id, part, outcome, elapsed: Duration::ZERO });
        }
    }

    /// Whether the run must stop: a signal came, or the build cannot be judged.
    pub fn stopping(&mut self) -> bool {
        if let Some(signal) = process::interrupted() {
            self.report.interrupted = Some(signal);
        }
        self.report.interrupted.is_some() || self.report.cannot_judge.is_some()
    }

    /// Starts the server on `ports`, `how`. A failure to start is the build's
    /// (`Err(Some(failure))`); ports that were taken, or a command that cannot run, make the
    /// build impossible to judge (`Err(None)`, noted in the report).
    pub fn start(&mut self, ports: &[u16], how: How) -> Result<(Session, Vec<u16>), Option<Failure>> {
        if let Some(why) = machine::ports_taken(ports, &self.report.name) {
            self.report.cannot_judge = Some(why);
            return Err(None);
        }
        match Session::start(self.command.command(how), &self.report.name, ports) {
            Ok((session, missing)) => {
                self.report.name = session.server().name().to_string();
                Ok((session, missing))
            }
            Err(StartError::Failed(failure)) => Err(Some(failure)),
            Err(StartError::CannotJudge(why)) => {
                self.report.cannot_judge = Some(why);
                Err(None)
            }
        }
    }

    /// A check's outcome from how it ran and what the server did meanwhile (what it printed
    /// after `mark`): the server's death or a memory error it reported first, then what the
    /// clients saw. Called before the server is stopped. For the tester's check `tester`, a
    /// memory error reported without the server stopping is not the check's: the tester sees
    /// only its sockets (it goes with the bugs it does not see).
    pub fn judge(&mut self, server: &Server, mark: usize, ran: Ran, tester: Option<u8>) -> Outcome {
        if let Some(signal) = process::interrupted() {
            return Outcome::Interrupted(signal);
        }
        if let Some(panic) = ran.checker_panic {
            let why = format!("the checker itself failed (a panic in its own code: {panic}); please report it");
            self.report.cannot_judge = Some(why.clone());
            return Outcome::NotRun(why);
        }
        let deadline = Instant::now() + if ran.result.is_ok() { Duration::ZERO } else { DEATH_WAIT };
        let ended = loop {
            match server.ended() {
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                ended => break ended,
            }
        };
        let mut crash = server.crash_lines_since(mark);
        if let (None, Some(n)) = (&ended, tester) {
            self.unseen(&server.output_since(mark), When::Serving(n));
            crash.clear();
        }
        if ended.is_some() || !crash.is_empty() {
            let death = ended.map(|e| Death { how: e.describe(), crashed: e.status.is_some_and(Server::crashed) });
            let output = output_before_report(&server.output_since(mark));
            return Outcome::Fail(Box::new(Problem { death, crash, failure: ran.result.err(), output }));
        }
        match ran.result {
            Ok(()) => Outcome::Pass,
            Err(failure) if failure.not_the_code.is_some() => {
                // The machine stopped the check (another program holds its ports): no verdict.
                let why = format!("{} ({})", failure.summary, failure.not_the_code.as_deref().unwrap_or_default());
                self.report.cannot_judge = Some(why.clone());
                Outcome::NotRun(why)
            }
            Err(failure) => match failure.ahead_of_the_page.clone() {
                Some(note) => Outcome::Note(note),
                None => Outcome::Fail(Box::new(Problem::seen(with_strlen_hint(failure)))),
            },
        }
    }

    /// Notes what a server that was still running did when it was stopped with SIGINT: memory
    /// errors it reported, a crash. The tester kills with SIGKILL and never sees these.
    pub fn shutdown(&mut self, stopped: &Stopped) {
        if !stopped.was_running {
            return;
        }
        let errors = memory_errors(&stopped.output);
        for error in &errors {
            self.report.bug(error.describe(self.base.as_deref()), When::Shutdown);
        }
        if let Some(status) = stopped.status.filter(|&s| Server::crashed(s))
            && errors.is_empty()
        {
            let handler = Role::SigintHandler.c_function(self.stage());
            self.report.bug(
                format!(
                    "{} was {}: look at {handler}() and what runs after it",
                    self.report.name,
                    Server::describe_status(Some(status))
                ),
                When::Shutdown,
            );
        }
    }

    /// Notes memory errors in `output` as bugs the tester does not see, `when`.
    pub fn unseen(&mut self, output: &str, when: When) {
        for error in memory_errors(output) {
            self.report.bug(error.describe(self.base.as_deref()), when.clone());
        }
    }

    /// Ends the run: writes the JUnit report if asked (a report that cannot be written fails
    /// the run, naming the path), prints the closing lines, and gives the report back.
    pub fn finish(mut self, junit: Option<&std::path::Path>) -> Report {
        let mut junit_note = None;
        if let Some(path) = junit {
            match print::write_junit(path, &self.report) {
                Ok(()) => junit_note = Some(format!("(JUnit report written to {})", path.display())),
                Err(why) => {
                    eprintln!("{}: {why}", crate::cli::program());
                    junit_note = Some(format!("(JUnit report NOT written: {why})"));
                    self.report.unwritten = Some(why);
                }
            }
        }
        print::closing(&mut self.out, &self.report, junit_note.as_deref());
        self.report
    }
}

/// What the clients saw, with what its bytes suggest: a reply that starts with a stray `\0`
/// (the previous reply was sent with strlen + 1 bytes).
fn with_strlen_hint(failure: Failure) -> Failure {
    if failure.received.as_deref().is_some_and(|r| r.starts_with("\"\\x00")) {
        return failure.detail(
            "also",
            "the reply starts with a \\x00 left over after the previous reply: are you sending strlen+1? \
             (the check that nothing comes after a reply looks for it on its own)",
        );
    }
    failure
}

/// The server's last 12 lines before a sanitizer's or Valgrind's report began (its tail is a
/// memory map, useless here; the report's key lines are shown on their own).
fn output_before_report(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
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
