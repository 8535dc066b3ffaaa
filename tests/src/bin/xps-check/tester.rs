//! Part 2 of a run: the course's tester, as it runs (eXpServer/expserver-tester, read at
//! `backend/src/core/ContainerManager.ts`, `StageRunner.ts` and `tests/stages/stage6.ts`,
//! `stage7.ts`):
//!
//! - it starts the server in a container, `./xps /usr/src/public/xps_config.json` with
//!   `ASAN_OPTIONS=detect_leaks=0`, polls the container's state every second and starts its
//!   checks at the first poll that finds it running: about 1 s after the start, it connects,
//!   and a port not listening yet refuses it; a container whose main process has exited by
//!   then (a server that daemonized) has stopped;
//! - check 1 on ports 8001-8004 in turn and check 2 against that one server; it kills the
//!   container (SIGKILL) and starts a fresh one for check 3; a server that died during check 1
//!   is restarted for check 2;
//! - each check is resolved on its last reply; its clients disconnect after, so what the server
//!   does then belongs to what comes next, or to nobody (before check 3 and at the end it is
//!   killed at once).
//!
//! Each check's bodies are in [`xps_tests::checks::tester`]; here is the timeline around them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use xps_tests::checks::tester::{TESTER_PORTS, tester_check_1_on_port, tester_check_2, tester_check_3};
use xps_tests::registry::{self, CHECKS, Check};
use xps_tests::{Client, Failure, Server};

use crate::command::How;
use crate::machine;
use crate::network::{gone_failure, judge_network, late_failure, missing_failure};
use crate::outcome::{Outcome, Part, Problem, When};
use crate::run::Run;
use crate::session::{Ran, START_TIMEOUT, Session};

/// When the tester first looks at its container after starting the server, and connects.
pub const FIRST_LOOK: Duration = Duration::from_secs(1);

/// How long after a check's clients disconnect the server is watched for a crash.
const AFTER_DISCONNECT: Duration = Duration::from_millis(300);

/// The server as the tester starts it, with what its first look found.
pub struct Started {
    session: Session,
    /// The tester's ports it never listened on.
    pub missing: Vec<u16>,
    /// When each tester port started listening, counted from the server process's start.
    pub listened: Vec<(u16, Duration)>,
    /// How the command had ended by the tester's first look, if it had.
    pub gone: Option<String>,
    /// The time the tester's clients have spent since its first look: its checks' own time,
    /// without this run's waits around them.
    spent: Duration,
}

/// Whether the tester finds a port listening when it connects.
pub enum Finds {
    Listening,
    /// Not yet: it listened this long after the server started.
    Late(Duration),
    Missing,
}

impl Started {
    /// Whether the tester, connecting to `port` now, finds it listening.
    pub fn finds(&self, port: u16) -> Finds {
        match self.listened.iter().find(|(p, _)| *p == port) {
            _ if self.missing.contains(&port) => Finds::Missing,
            Some(&(_, at)) if at > FIRST_LOOK + self.spent => Finds::Late(at),
            Some(_) => Finds::Listening,
            None => Finds::Missing,
        }
    }

    pub fn server(&self) -> &Server {
        self.session.server()
    }
}

/// The tester's four parts in the registry: the network address, then checks 1 to 3.
fn parts() -> [&'static Check; 4] {
    let part = |n| CHECKS.iter().find(|c| matches!(c.run, registry::Run::Tester(m) if m == n));
    [0, 1, 2, 3].map(|n| part(n).expect("the registry lists the tester's parts 0 to 3"))
}

impl Run {
    /// The course tester's checks, as it runs them.
    pub fn tester_part(&mut self) {
        let [network, one, two, three] = parts();
        if self.stopping() {
            self.not_run(parts().map(|c| c.id), Part::Tester, "the run stopped before it");
            return;
        }
        self.out.line("");
        self.out.line(
            "== the course's tester (stages 6 and 7: ports 8001-8004, 0.0.0.0; its checks exactly as it runs them)",
        );
        self.announce(network.id, network.expects);
        let t0 = Instant::now();
        let started = match self.tester_start() {
            Ok(started) => started,
            Err(failure) => {
                if let Some(failure) = failure {
                    let how = self.command.command(How::AsTheTester { config_arg: self.report.official });
                    self.report.tester_fails.push(format!(
                        "{} (started as the tester starts it: {})",
                        failure.summary,
                        shown(&how)
                    ));
                    self.record(
                        network.id,
                        Part::Tester,
                        Outcome::Fail(Box::new(Problem::seen(failure))),
                        t0.elapsed(),
                    );
                    self.out.line("");
                    self.out.line("(the tester's 3 checks not run: the server did not start)");
                    self.not_run([one, two, three].map(|c| c.id), Part::Tester, "the server did not start");
                } else {
                    let outcome = Outcome::NotRun("the build could not be judged (why: below)".into());
                    self.record(network.id, Part::Tester, outcome, t0.elapsed());
                    self.not_run([one, two, three].map(|c| c.id), Part::Tester, "the build could not be judged");
                }
                return;
            }
        };
        let outcome = judge_network(self, &started);
        self.record(network.id, Part::Tester, outcome, t0.elapsed());
        if started.gone.is_some() {
            // The tester finds no server whenever it starts one: each of its checks fails alike.
            for check in [one, two, three] {
                self.announce(check.id, check.expects);
                let problem = Problem::seen(gone_failure(self, &started));
                self.record(check.id, Part::Tester, Outcome::Fail(Box::new(problem)), Duration::ZERO);
            }
            self.shutdown(&started.session.stop());
            return;
        }
        let (died, mark, started) = self.check_1(started, one);
        let started = if died || self.stopping() {
            self.shutdown(&started.session.stop());
            None
        } else {
            Some(started)
        };
        self.check_2_or_3(started, two, 2, mark);
        self.check_2_or_3(None, three, 3, 0);
    }

    /// Starts the server as the tester does and waits for its first look; then, as this run's
    /// own checks do, for the ports that were not listening yet. `Err(None)`: the build cannot
    /// be judged.
    fn tester_start(&mut self) -> Result<Started, Option<Failure>> {
        if let Some(why) = machine::ports_taken(&TESTER_PORTS, &self.report.name) {
            self.report.cannot_judge = Some(why);
            return Err(None);
        }
        let cmd = self.command.command(How::AsTheTester { config_arg: self.report.official });
        let mut server = Server::launch(cmd, Some(&self.report.name)).map_err(|f| {
            self.report.cannot_judge = Some(f.summary.clone());
            None
        })?;
        // A wrapper (cargo run, make run) may take a while before it starts the server itself:
        // the tester runs the binary directly, so its first look is counted from the server's
        // own start.
        loop {
            server.listening_now(&TESTER_PORTS);
            let wrapper = server.listener_started_after_command().unwrap_or_default();
            if server.started().elapsed() >= wrapper + FIRST_LOOK {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let gone = server.exited().map(|status| Server::describe_status(Some(status)));
        let missing = server.wait_listening(&TESTER_PORTS, START_TIMEOUT).map_err(Some)?;
        self.report.name = server.name().to_string();
        let wrapper = server.listener_started_after_command().unwrap_or_default();
        let listened = TESTER_PORTS
            .iter()
            .filter_map(|&p| Some((p, server.listened_at(p)?.duration_since(server.started()).saturating_sub(wrapper))))
            .collect();
        Ok(Started { session: Session::from(server), missing, listened, gone, spent: Duration::ZERO })
    }

    /// Check 1, port after port on the server the tester started. Returns whether the server
    /// died during it (the tester then restarts it for check 2), a mark in its output where
    /// check 2's part begins, and the server.
    fn check_1(&mut self, mut started: Started, check: &Check) -> (bool, usize, Started) {
        self.announce(check.id, check.expects);
        let t = Instant::now();
        let mark = started.server().output_mark();
        let mut fails: Vec<(u16, Failure)> = Vec::new();
        let mut connected: Option<Client> = None;
        let mut checker_panic = None;
        for port in TESTER_PORTS {
            // The previous port's client disconnects once its last reply came, as the tester's does.
            drop(connected.take());
            match started.finds(port) {
                Finds::Missing => {
                    self.out.line(format!("      port {port}: not listening"));
                    fails.push((port, missing_failure(self, &[port])));
                    continue;
                }
                Finds::Late(at) => {
                    self.out.line(format!("      port {port}: not listening yet when the tester connects"));
                    fails.push((port, late_failure(self, port, at)));
                    continue;
                }
                Finds::Listening => {}
            }
            let slot = Arc::new(Mutex::new(None));
            let too_slow = Arc::new(AtomicBool::new(false));
            let (body_slot, body_slow, seed, limit) =
                (Arc::clone(&slot), Arc::clone(&too_slow), self.seed, check.limit);
            let left = Check { limit: check.limit.saturating_sub(t.elapsed()).max(Duration::from_secs(1)), ..*check };
            let running = Instant::now();
            let ran = started.session.run(&left, self.stage(), move |server| {
                let client = tester_check_1_on_port(server, port, seed, limit).map_err(|failed| {
                    body_slow.store(failed.too_slow, Ordering::SeqCst);
                    failed.failure
                })?;
                *body_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(client);
                Ok(())
            });
            started.spent += running.elapsed();
            connected = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            checker_panic = checker_panic.or(ran.checker_panic);
            match ran.result {
                Ok(()) => self.out.line(format!("      port {port}: 1000 strings, every reply right")),
                Err(failure) => {
                    self.out.line(format!("      port {port}: failed"));
                    fails.push((port, failure));
                }
            }
            // Too slow here is too slow everywhere: the tester would still be on this port.
            if ran.timed_out
                || too_slow.load(Ordering::SeqCst)
                || started.server().exited().is_some()
                || self.stopping()
            {
                break;
            }
        }
        let server = started.server();
        let result = combine(fails);
        let first_reason = result.as_ref().err().map(|f| f.summary.clone());
        let ran = Ran { result, timed_out: false, checker_panic };
        let outcome = self.judge(server, mark, ran, Some(1));
        let died = server.exited().is_some();
        let next = server.output_mark();
        drop(connected);
        self.tester_reason(1, &outcome, first_reason);
        self.record(check.id, Part::Tester, outcome, t.elapsed());
        (died, next, started)
    }

    /// Check 2 (on `started`, the server of check 1, from `mark` in its output; or, when that
    /// one died, a fresh one) or check 3 (always a fresh one). The server is stopped after.
    fn check_2_or_3(&mut self, started: Option<Started>, check: &Check, n: u8, mark: usize) {
        if self.stopping() {
            self.not_run([check.id], Part::Tester, "the run stopped before it");
            return;
        }
        self.announce(check.id, check.expects);
        let t = Instant::now();
        let (started, mark) = match started {
            Some(started) => (started, mark),
            None => {
                if n == 2 {
                    self.out.line("      (the server died in check 1; the tester restarts it, and so does this check)");
                }
                match self.tester_start() {
                    Ok(started) => (started, 0),
                    Err(failure) => {
                        let outcome = match failure {
                            Some(failure) => Outcome::Fail(Box::new(Problem::seen(failure))),
                            None => Outcome::NotRun("the build could not be judged".into()),
                        };
                        self.tester_reason(n, &outcome, None);
                        self.record(check.id, Part::Tester, outcome, t.elapsed());
                        return;
                    }
                }
            }
        };
        let server = started.server();
        let early = match started.finds(8001) {
            Finds::Missing => Some(missing_failure(self, &[8001])),
            Finds::Late(at) => Some(late_failure(self, 8001, at)),
            Finds::Listening => None,
        };
        let slot = Arc::new(Mutex::new(Vec::new()));
        let ran = match early {
            Some(failure) => Ran { result: Err(failure), timed_out: false, checker_panic: None },
            None => {
                let (body_slot, seed) = (Arc::clone(&slot), self.seed);
                started.session.run(check, self.stage(), move |server| {
                    let clients =
                        if n == 2 { tester_check_2(server, 8001)? } else { tester_check_3(server, 8001, seed)? };
                    *body_slot.lock().unwrap_or_else(PoisonError::into_inner) = clients;
                    Ok(())
                })
            }
        };
        let reason = ran.result.as_ref().err().map(|f| f.summary.clone());
        let outcome = self.judge(server, mark, ran, Some(n));
        // The check is resolved: its clients disconnect, and the tester kills the server next.
        let after = server.output_mark();
        let alive = server.ended().is_none();
        slot.lock().unwrap_or_else(PoisonError::into_inner).clear();
        thread::sleep(AFTER_DISCONNECT);
        if let (true, Some(ended)) = (alive, server.ended()) {
            let output = server.output_since(after);
            if xps_tests::memory_errors::memory_errors(&output).is_empty() {
                self.report.bug(format!("{} died ({})", self.report.name, ended.describe()), When::AfterCheck(n));
            }
            self.unseen(&output, When::AfterCheck(n));
        }
        self.shutdown(&started.session.stop());
        self.tester_reason(n, &outcome, reason);
        self.record(check.id, Part::Tester, outcome, t.elapsed());
    }

    /// Notes why the tester would fail check `n`, when it would.
    fn tester_reason(&mut self, n: u8, outcome: &Outcome, clients_saw: Option<String>) {
        let Outcome::Fail(problem) = outcome else { return };
        let why = match (&problem.death, clients_saw) {
            (None, Some(summary)) => summary,
            _ => problem.summary(&self.report.name),
        };
        self.report.tester_fails.push(format!("check {n}: {why}"));
    }
}

/// Check 1's failures on several ports as one: the first in full, the others' summaries after.
fn combine(fails: Vec<(u16, Failure)>) -> Result<(), Failure> {
    let mut fails = fails.into_iter();
    let Some((port, first)) = fails.next() else { return Ok(()) };
    let mut failure = first;
    if !failure.summary.contains(&format!("port {port}")) {
        failure.summary = format!("port {port}: {}", failure.summary);
    }
    for (port, other) in fails {
        let summary = if other.summary.contains(&format!("port {port}")) {
            other.summary.clone()
        } else {
            format!("port {port}: {}", other.summary)
        };
        failure = failure.detail("also", summary);
    }
    Err(failure)
}

/// A command as a shell would show it.
fn shown(cmd: &std::process::Command) -> String {
    let words = std::iter::once(cmd.get_program()).chain(cmd.get_args());
    words.map(|w| w.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}
