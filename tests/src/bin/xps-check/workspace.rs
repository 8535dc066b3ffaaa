//! Part 1 of a run: this workspace's checks, the registry's checks that run against any build
//! (`any_build`), each against a fresh server on the stage's ports, each within its own time
//! limit, all within [`BUDGET`] so that a slow server still gets to the tester's part.

use std::time::{Duration, Instant};

use xps_tests::registry::{self, CHECKS, Check};

use crate::command::How;
use crate::outcome::{Outcome, Part, Problem};
use crate::run::Run;

/// The longest this workspace's checks may take in all: on a server that answers each message
/// seconds late, the checks that send many messages would take an hour each.
pub const BUDGET: Duration = Duration::from_secs(180);

/// The least time a check is started with: below it, it is not run.
const LEAST: Duration = Duration::from_secs(5);

/// The registry's checks for `stage` that run against any build, in the registry's order.
pub fn checks(stage: u8) -> Vec<&'static Check> {
    CHECKS
        .iter()
        .filter(|c| c.any_build && c.stages.has(stage))
        .filter(|c| matches!(c.run, registry::Run::Server(_) | registry::Run::DebugServer(_)))
        .collect()
}

/// The ports the course's server listens on at `stage`, as the page creates them.
pub fn ports_for(stage: u8) -> &'static [u16] {
    match stage {
        6 => &[8001, 8002, 8003],
        _ => &[8001, 8002, 8003, 8004],
    }
}

impl Run {
    /// Runs this workspace's checks, each against a fresh server.
    pub fn workspace_part(&mut self) {
        let stage = self.stage();
        let ports = ports_for(stage);
        let checks = checks(stage);
        let until = Instant::now() + BUDGET;
        for (i, &check) in checks.iter().enumerate() {
            let rest = || checks[i..].iter().map(|c| c.id);
            if self.stopping() {
                self.not_run(rest(), Part::Workspace, "the run stopped before it");
                return;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left < LEAST {
                self.out.line("");
                self.out.line(format!(
                    "({} more of this workspace's checks not run: the {} s they may take in all are spent; the \
                     tester's checks run next)",
                    checks.len() - i,
                    BUDGET.as_secs()
                ));
                self.not_run(rest(), Part::Workspace, "the time this workspace's checks may take in all was spent");
                return;
            }
            self.announce(check.id, check.expects);
            let started = Instant::now();
            let (f, how) = match check.run {
                registry::Run::DebugServer(f) => (f, How::Debug),
                registry::Run::Server(f) => (f, How::AsGiven),
                _ => unreachable!("checks() keeps the server checks only"),
            };
            let (session, missing) = match self.start(ports, how) {
                Ok(started) => started,
                Err(None) => {
                    let outcome = Outcome::NotRun("the build could not be judged (why: below)".into());
                    self.record(check.id, Part::Workspace, outcome, started.elapsed());
                    self.not_run(
                        checks[i + 1..].iter().map(|c| c.id),
                        Part::Workspace,
                        "the build could not be judged",
                    );
                    return;
                }
                Err(Some(failure)) => {
                    let outcome = Outcome::Fail(Box::new(Problem::seen(failure)));
                    self.record(check.id, Part::Workspace, outcome, started.elapsed());
                    self.out.line("");
                    self.out.line(format!(
                        "({} more of this workspace's checks not run: the server did not start)",
                        checks.len() - i - 1
                    ));
                    self.not_run(checks[i + 1..].iter().map(|c| c.id), Part::Workspace, "the server did not start");
                    return;
                }
            };
            if i == 0 && !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(u16::to_string).collect();
                self.out.line(format!(
                    "      note: {} does not listen on port {}: the checks that need it fail",
                    self.report.name,
                    list.join(" ")
                ));
            }
            let mark = session.server().output_mark();
            let limited = Check { limit: check.limit.min(left), ..*check };
            let ran = session.run(&limited, stage, f);
            let outcome = self.judge(session.server(), mark, ran, None);
            let stopped = session.stop();
            if !matches!(outcome, Outcome::Interrupted(_)) {
                self.shutdown(&stopped);
            }
            self.record(check.id, Part::Workspace, outcome, started.elapsed());
        }
    }
}
