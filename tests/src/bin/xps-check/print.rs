//! Everything a run prints, from the values in [`crate::outcome`]: each check as it ends, the
//! bugs the tester does not see, the tester's verdict and the closing line, and the JUnit
//! report made of the same text.
//!
//! Output goes to stdout, or (for a teacher's builds) to each build's report file. A closed
//! stdout (`check-build.sh ... | head -3`) ends the run quietly: the servers are stopped and the
//! program exits as a program killed by SIGPIPE does, without a message.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::path::Path;

use xps_tests::junit::{self, CaseResult};
use xps_tests::process;

use crate::outcome::{Case, Outcome, Problem, Report, Verdict};

/// Where a run's lines go.
pub enum Out {
    /// The terminal (or whatever stdout is).
    Stdout,
    /// A build's report file, for a teacher's run.
    File(File),
}

impl Out {
    /// Writes `text` and a newline.
    pub fn line(&mut self, text: impl std::fmt::Display) {
        let written = match self {
            Out::Stdout => writeln!(std::io::stdout().lock(), "{text}"),
            Out::File(file) => writeln!(file, "{text}"),
        };
        match written {
            Err(e) if e.kind() == ErrorKind::BrokenPipe && matches!(self, Out::Stdout) => stdout_closed(),
            // A report file that cannot be written is said once the run ends (see `teacher`).
            _ => {}
        }
    }

    /// Writes each line of `text` indented by six spaces, under a check's name.
    pub fn indented(&mut self, text: &str) {
        for line in text.trim_end().lines() {
            self.line(format!("      {line}"));
        }
    }
}

/// Whoever read stdout has gone: stop everything and end, quietly, with the status of a
/// program killed by SIGPIPE.
fn stdout_closed() -> ! {
    process::stop_all(std::time::Duration::from_millis(500));
    std::process::exit(128 + libc::SIGPIPE)
}

/// A check's outcome, as printed under its name (after the PASS/FAIL line's first word).
pub fn outcome_text(case: &Case, report: &Report) -> String {
    let seconds = case.elapsed.as_secs_f64();
    match &case.outcome {
        Outcome::Pass => format!("PASS ({seconds:.1} s)"),
        Outcome::Fail(problem) => format!("FAIL ({seconds:.1} s)\n{}", problem_text(problem, report)),
        Outcome::Note(note) => format!("PASS, with a note ({seconds:.1} s)\nnote: {note}"),
        Outcome::Interrupted(signal) => format!(
            "INTERRUPTED ({seconds:.1} s): signal {signal} arrived during this check, which stopped the server; \
             its result is unknown"
        ),
        Outcome::NotRun(why) => format!("NOT RUN: {why}"),
    }
}

/// A failure in full: the server's death or its memory error report first (what happened), then
/// what the clients saw, then the server's last lines.
pub fn problem_text(problem: &Problem, report: &Report) -> String {
    let mut text = String::new();
    if let Some(death) = &problem.death {
        text.push_str(&format!("{} died during the check: {}\n", report.name, death.how));
    }
    if !problem.crash.is_empty() {
        text.push_str(if problem.death.is_some() {
            "  what it printed as it crashed:\n"
        } else {
            "the server reported a memory error or crash:\n"
        });
        for line in &problem.crash {
            text.push_str(&format!("  | {line}\n"));
        }
    }
    if problem.death.is_some() || !problem.crash.is_empty() {
        let sanitized = problem.crash.iter().any(|l| l.contains("Sanitizer") || l.contains("runtime error:"));
        let own_frame = problem.crash.iter().find(|l| l.starts_with("  ")).map(|l| l.trim().to_string());
        match (sanitized, own_frame) {
            (true, Some(frame)) => text.push_str(&format!(
                "  look at:  the sanitizer names the line: the first frame in your own code, `{frame}`\n"
            )),
            (true, None) => {
                text.push_str("  look at:  the sanitizer's report; build with -g so that it names files and lines\n")
            }
            (false, _) if problem.death.as_ref().is_some_and(|d| d.crashed) || !problem.crash.is_empty() => {
                text.push_str(&format!("  look at:  {}\n", xps_tests::checks::bytes::SANITIZER_HINT))
            }
            (false, _) => text.push_str(
                "  look at:  the server must keep running whatever a client does; its output below says why it stopped\n",
            ),
        }
        if let Some(failure) = &problem.failure {
            // The death explains the rest: what the clients saw, without their own guesses.
            let mut seen = failure.clone();
            seen.log_tail.clear();
            seen.crash.clear();
            seen.hint.clear();
            text.push_str(&format!("what the clients saw:\n{}", seen.render(report.stage)));
        }
        if !problem.output.trim().is_empty() {
            text.push_str("server output during the check (last lines):\n");
            for line in problem.output.lines() {
                text.push_str(&format!("  | {line}\n"));
            }
        }
        return text;
    }
    match &problem.failure {
        Some(failure) => text.push_str(&failure.render(report.stage)),
        None => text.push_str("failed\n"),
    }
    text
}

/// The closing lines: the bugs the tester does not see, the tester's verdict, then
/// `N passed, N failed`.
pub fn closing(out: &mut Out, report: &Report, junit_note: Option<&str>) {
    out.line("");
    if !report.bugs.is_empty() {
        out.line("bugs the tester does not see (it stops the server with SIGKILL and watches only its sockets; fix them anyway):");
        for bug in &report.bugs {
            let times = if bug.times > 1 { format!(" ({} times)", bug.times) } else { String::new() };
            out.line(format!("  - {} {}{times}", bug.what, bug.when.describe()));
        }
    }
    match report.verdict() {
        Verdict::CannotJudge => {
            out.line(format!("could not judge this build: {}", report.cannot_judge.as_deref().unwrap_or("unknown")))
        }
        Verdict::Interrupted => out.line(format!(
            "interrupted (signal {}): stopped the server and everything it started; no verdict",
            report.interrupted.unwrap_or(0)
        )),
        Verdict::Pass => out.line(format!(
            "the course's tester would PASS this build: its 3 checks pass as it runs them, on ports 8001-8004, and {} \
             listens on every interface",
            report.name
        )),
        Verdict::Fail => {
            out.line("the course's tester would FAIL this build:");
            for reason in &report.tester_fails {
                out.line(format!("  - {reason}"));
            }
        }
    }
    if let Some(note) = junit_note {
        out.line(note);
    }
    out.line(counts_line(report));
}

/// `18 passed, 1 failed`, with what did not run and the bugs when there are some.
pub fn counts_line(report: &Report) -> String {
    let (passed, failed, not_run) = report.counts();
    let mut line = format!("{passed} passed, {failed} failed");
    if not_run > 0 {
        line.push_str(&format!(", {not_run} not run"));
    }
    match report.bugs.len() {
        0 => {}
        1 => line.push_str("; 1 bug the tester does not see (above)"),
        n => line.push_str(&format!("; {n} bugs the tester does not see (above)")),
    }
    line
}

/// The report as a JUnit suite: one case per check, the failure text as printed.
pub fn junit_suite(report: &Report) -> junit::Suite {
    let mut cases: Vec<junit::Case> = report
        .cases
        .iter()
        .map(|case| {
            let text = outcome_text(case, report);
            let result = match &case.outcome {
                Outcome::Pass | Outcome::Note(_) => CaseResult::Passed,
                Outcome::Fail(problem) => CaseResult::Failed { message: problem.summary(&report.name), text },
                Outcome::Interrupted(signal) => {
                    CaseResult::Error { message: format!("interrupted by signal {signal}"), text }
                }
                Outcome::NotRun(why) => CaseResult::Skipped(why.clone()),
            };
            junit::Case {
                classname: case.part.name().into(),
                name: case.id.into(),
                seconds: case.elapsed.as_secs_f64(),
                result,
            }
        })
        .collect();
    if let Some(why) = &report.cannot_judge {
        cases.push(junit::Case {
            classname: "check-build".into(),
            name: "the build could be judged".into(),
            seconds: 0.0,
            result: CaseResult::Error { message: why.clone(), text: why.clone() },
        });
    }
    let mut properties = vec![("command".to_string(), report.command.clone())];
    properties.push(("tester_verdict".into(), report.verdict().word().into()));
    for bug in &report.bugs {
        properties.push(("bug".into(), format!("{} {}", bug.what, bug.when.describe())));
    }
    junit::Suite { name: format!("xps-check stage {}", report.stage), properties, cases }
}

/// Writes the report's JUnit file; an error names the path.
pub fn write_junit(path: &Path, report: &Report) -> Result<(), String> {
    std::fs::write(path, junit_suite(report).render())
        .map_err(|e| format!("cannot write the JUnit report {}: {e}", path.display()))
}
