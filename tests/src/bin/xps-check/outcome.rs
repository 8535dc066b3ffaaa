//! What a run found, as values: each check's outcome, the bugs the tester does not see, the
//! tester's predicted verdict, and whether the build could be judged at all. Everything the
//! run prints (the closing lines, the teacher's table, JUnit) is made from these.

use std::time::Duration;

use xps_tests::Failure;

/// How one check ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed, and why.
    Fail(Box<Problem>),
    /// What it saw is a later stage's behaviour: a note, not a failure.
    Note(String),
    /// Ctrl+C (or SIGTERM, SIGHUP) stopped the run during it; its result is unknown.
    Interrupted(i32),
    /// It did not run, and why.
    NotRun(String),
}

/// Why a check failed: the server's death or the memory errors it reported first (what
/// happened), then what the clients saw.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    /// How the server ended during the check (`killed by signal 11 (SIGSEGV ...)`).
    pub death: Option<Death>,
    /// The lines of a crash or memory-error report it printed during the check.
    pub crash: Vec<String>,
    /// What the clients saw.
    pub failure: Option<Failure>,
    /// The server's last lines before any report, when the death or the report is shown.
    pub output: String,
}

/// How the server ended during a check.
#[derive(Debug, Clone)]
pub struct Death {
    /// In words (`exited with status 1`).
    pub how: String,
    /// Whether it crashed (a signal such as SIGSEGV, or a shell's 128 + one).
    pub crashed: bool,
}

impl Problem {
    /// A problem that is only what the clients saw.
    pub fn seen(failure: Failure) -> Problem {
        Problem { failure: Some(failure), ..Problem::default() }
    }

    /// The problem in one line, for a list (the tester's reasons, the teacher's table, JUnit).
    pub fn summary(&self, name: &str) -> String {
        match (&self.death, self.crash.first(), &self.failure) {
            (Some(death), _, _) => format!("{name} died during the check: {}", death.how),
            (None, Some(line), _) => format!("{name} reported a memory error: {line}"),
            (None, None, Some(failure)) => failure.summary.clone(),
            (None, None, None) => "failed".into(),
        }
    }
}

/// One check, as reported.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its id in the registry.
    pub id: &'static str,
    /// `workspace` or `tester`.
    pub part: Part,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// The two parts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// This workspace's checks.
    Workspace,
    /// The course's tester, as it runs.
    Tester,
}

impl Part {
    /// As JUnit's `classname`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Workspace => "workspace",
            Part::Tester => "tester",
        }
    }
}

/// When a bug the tester does not see showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// When check-build stopped the server with SIGINT, as Ctrl+C would (the tester uses
    /// SIGKILL).
    Shutdown,
    /// While serving the tester's check N, without stopping the server (the tester only watches
    /// its sockets).
    Serving(u8),
    /// When the tester's check N's clients disconnected, after its last reply (the tester has
    /// resolved the check and kills the server next).
    AfterCheck(u8),
}

impl When {
    /// In words, after the bug.
    pub fn describe(&self) -> String {
        match self {
            When::Shutdown => "during shutdown (when stopped with SIGINT, as Ctrl+C does)".into(),
            When::Serving(n) => format!("while serving the tester's check {n}, without stopping the server"),
            When::AfterCheck(n) => format!(
                "when the tester's check {n}'s clients disconnected after their last reply (the tester has its \
                 verdict by then)"
            ),
        }
    }
}

/// A bug the tester cannot see: real, and worth fixing, but not part of its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bug {
    /// What it is (`double free in loop_event_destroy() at core/xps_loop.c:26`).
    pub what: String,
    /// When it showed.
    pub when: When,
    /// How many times it showed.
    pub times: usize,
}

/// What a run found about one build.
#[derive(Debug, Clone)]
pub struct Report {
    /// 6 or 7.
    pub stage: u8,
    /// Only the tester's part ran.
    pub official: bool,
    /// The command, as given.
    pub command: String,
    /// The server's name.
    pub name: String,
    /// Each check, in order.
    pub cases: Vec<Case>,
    /// The bugs the tester does not see, each once.
    pub bugs: Vec<Bug>,
    /// Why the tester would fail the build, one reason per line; empty if it would pass.
    pub tester_fails: Vec<String>,
    /// Why the build could not be judged, if it could not.
    pub cannot_judge: Option<String>,
    /// The signal that interrupted the run, if one did.
    pub interrupted: Option<i32>,
    /// Why a report file asked for could not be written, if it could not: the run fails.
    pub unwritten: Option<String>,
}

/// The verdict a run ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The tester would pass it.
    Pass,
    /// The tester would fail it.
    Fail,
    /// It could not be judged.
    CannotJudge,
    /// The run was interrupted before the verdict.
    Interrupted,
}

impl Verdict {
    /// In one word, for a table.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::CannotJudge => "could not judge",
            Verdict::Interrupted => "interrupted",
        }
    }
}

impl Report {
    /// An empty report for `command`.
    pub fn new(stage: u8, official: bool, command: String, name: String) -> Report {
        Report {
            stage,
            official,
            command,
            name,
            cases: Vec::new(),
            bugs: Vec::new(),
            tester_fails: Vec::new(),
            cannot_judge: None,
            interrupted: None,
            unwritten: None,
        }
    }

    /// Notes `bug`, once: a second sighting counts.
    pub fn bug(&mut self, what: String, when: When) {
        match self.bugs.iter_mut().find(|b| b.what == what && b.when == when) {
            Some(bug) => bug.times += 1,
            None => self.bugs.push(Bug { what, when, times: 1 }),
        }
    }

    /// How many checks passed (a note counts as passed), failed, and did not run.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Outcome) -> bool| self.cases.iter().filter(|c| f(&c.outcome)).count();
        (
            count(|o| matches!(o, Outcome::Pass | Outcome::Note(_))),
            count(|o| matches!(o, Outcome::Fail(_))),
            count(|o| matches!(o, Outcome::NotRun(_) | Outcome::Interrupted(_))),
        )
    }

    /// The tester's predicted verdict.
    pub fn verdict(&self) -> Verdict {
        if self.cannot_judge.is_some() {
            Verdict::CannotJudge
        } else if self.interrupted.is_some() {
            Verdict::Interrupted
        } else if self.tester_fails.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    /// The exit status: 2 could not judge (or a report could not be written), 128 + N
    /// interrupted by signal N, 1 a check failed
    /// (or, for the whole run, a bug was found), 0 otherwise. With `--official`, the tester's
    /// verdict alone.
    pub fn exit_status(&self) -> u8 {
        let (_, failed, not_run) = self.counts();
        match self.verdict() {
            Verdict::CannotJudge => 2,
            _ if self.unwritten.is_some() => 2,
            Verdict::Interrupted => 128 + self.interrupted.unwrap_or(2) as u8,
            Verdict::Fail if self.official => 1,
            Verdict::Pass if self.official => 0,
            _ if failed > 0 || not_run > 0 || !self.bugs.is_empty() || !self.tester_fails.is_empty() => 1,
            _ => 0,
        }
    }

    /// The first failure's sentence, for the teacher's table.
    pub fn first_failure(&self) -> Option<String> {
        if let Some(why) = &self.cannot_judge {
            return Some(why.clone());
        }
        self.cases.iter().find_map(|c| match &c.outcome {
            Outcome::Fail(problem) => Some(format!("{}: {}", c.id, problem.summary(&self.name))),
            _ => None,
        })
    }
}
