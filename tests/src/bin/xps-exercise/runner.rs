//! Building a stage's checks and running one milestone of them, learning what happened from
//! the harness's records (`XPS_CHECK_RECORDS`, [`xps_tests::record`]), never from libtest's
//! text.
//!
//! The build is `cargo test -p stageNN --no-run --message-format=json`: cargo's JSON says which
//! test executables it made and, when the stage does not compile, the compiler's own messages.
//! A milestone then runs those executables directly with exact check ids from the registry: the
//! stage's unit-test binary once per in-process check (`unit::ID`), one after the other in the
//! registry's order, and, at the same time, its `checks` binary once with all the checks that
//! start a server (libtest runs those on parallel threads).
//!
//! Which failure is shown, and when to stop: the failure shown is always the *first failing
//! check in the registry's order* (in-process checks come first there), the one a run of every
//! check would show. As soon as one check has failed and every check before it in that order
//! has ended, nothing still running can change the answer, so the binaries are stopped at once:
//! a check that hangs costs its own time limit, never a later check's. In-process checks run
//! alone because they share their process: a thread left stuck in a loop that never returns,
//! and the fds it holds, would fail the fd counts of checks beside it. Servers share nothing,
//! so their checks run in parallel and a pass stays about as fast as `cargo test`.

use std::fs::{self, File};
use std::io::IsTerminal;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use xps_tests::blame::Source;
use xps_tests::json::Json;
use xps_tests::record::{self, Event, RECORDS_ENV};
use xps_tests::{Check, Failure, Milestone};

use crate::manifest::Manifest;
use crate::run::Ctx;
use xps_tests::process::{Options as ProcessOptions, Process, Stream};

/// How long the build may take (a first build of a fresh clone included).
pub const BUILD_LIMIT: Duration = Duration::from_secs(900);

/// A check running longer than this shows a `still running` line on a terminal.
const TICKER_AFTER: Duration = Duration::from_secs(2);

/// The test executables of a stage.
#[derive(Debug, Clone)]
pub struct TestBinaries {
    /// The stage's unit tests: the in-process checks, named `unit::ID`.
    unit: PathBuf,
    /// `stageNN/tests/checks.rs`: the checks that start the stage's binary.
    checks: PathBuf,
    /// Where this program keeps its records: under the cargo target folder.
    records_dir: PathBuf,
}

/// Builds the stage and its checks; `Err` with the compiler's errors (or why the build failed).
pub fn build(ctx: &Ctx, m: &Manifest) -> Result<TestBinaries, String> {
    let out = ctx.cargo(&["test", "-p", &m.krate, "--no-run", "--message-format=json"], BUILD_LIMIT);
    if out.timed_out {
        return Err(format!("the build took longer than {} s and was stopped", BUILD_LIMIT.as_secs()));
    }
    let (mut unit, mut checks) = (None, None);
    let mut errors: Vec<String> = Vec::new();
    for line in out.stdout.lines() {
        let Some(message) = Json::parse(line) else { continue };
        match message.get("reason").as_str() {
            Some("compiler-message") if message.get("message").get("level").as_str() == Some("error") => {
                let diagnostic = message.get("message");
                let text = diagnostic.get("message").as_str().unwrap_or_default();
                // rustc's closing "aborting due to N previous errors" repeats nothing useful.
                if text.starts_with("aborting due to") {
                    continue;
                }
                let rendered = diagnostic.get("rendered").as_str().unwrap_or(text).trim_end().to_string();
                // The binary is compiled twice (as itself and as its unit tests): each error once.
                if !errors.contains(&rendered) {
                    errors.push(rendered);
                }
            }
            Some("compiler-artifact") if message.get("profile").get("test").as_bool() == Some(true) => {
                let Some(exe) = message.get("executable").as_str() else { continue };
                let kinds = message.get("target").get("kind").items();
                let is = |kind: &str| kinds.iter().any(|k| k.as_str() == Some(kind));
                match message.get("target").get("name").as_str() {
                    Some(name) if name == m.krate && is("bin") => unit = Some(PathBuf::from(exe)),
                    Some("checks") if is("test") => checks = Some(PathBuf::from(exe)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !errors.is_empty() {
        let shown = errors.len().min(4);
        let mut text = errors[..shown].join("\n\n");
        if errors.len() > shown {
            text.push_str(&format!(
                "\n\n... and {} more (cargo build -p {} shows them all)",
                errors.len() - shown,
                m.krate
            ));
        }
        return Err(text);
    }
    match (unit, checks) {
        (Some(unit), Some(checks)) if out.ok() => {
            // target/debug/deps/EXE: the records go to target/xps-exercise/.
            let target = checks.ancestors().nth(3).map_or_else(|| ctx.root.join("target"), Path::to_path_buf);
            Ok(TestBinaries { unit, checks, records_dir: target.join("xps-exercise") })
        }
        _ => Err(format!(
            "cargo test -p {} --no-run did not build the stage's test executables:\n{}",
            m.krate,
            tail(&out.stderr, 30)
        )),
    }
}

/// How one check of a milestone ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed; the failure's blame is the harness's, already resolved.
    Failed(Box<Failure>),
}

/// What one milestone's run gave.
#[derive(Clone)]
pub struct MilestoneRun {
    /// The milestone.
    pub milestone: Milestone,
    /// Its checks for the stage, in the registry's order.
    pub checks: Vec<&'static Check>,
    /// How each ended; `None` when it was not waited for (the run stopped at an earlier
    /// failure).
    pub outcomes: Vec<Option<Outcome>>,
    /// Why the run itself went wrong (a check that never ran, a run past its limit).
    pub problem: Option<String>,
}

impl MilestoneRun {
    /// Every check ran and passed.
    pub fn passed(&self) -> bool {
        self.problem.is_none() && self.outcomes.iter().all(|o| matches!(o, Some(Outcome::Passed)))
    }

    /// How many checks passed.
    pub fn n_passed(&self) -> usize {
        self.outcomes.iter().filter(|o| matches!(o, Some(Outcome::Passed))).count()
    }

    /// The failed checks, in the registry's order.
    pub fn failures(&self) -> Vec<(&'static Check, &Failure)> {
        self.checks
            .iter()
            .zip(&self.outcomes)
            .filter_map(|(check, outcome)| match outcome {
                Some(Outcome::Failed(failure)) => Some((*check, &**failure)),
                _ => None,
            })
            .collect()
    }
}

/// How to run a milestone.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Stop at the first failure in the registry's order (see the module's doc); else wait for
    /// every check (the extras, all of which are listed).
    pub stop_at_first_failure: bool,
    /// Show a `still running: CHECK (N s)` line while a check takes long (on a terminal).
    pub ticker: bool,
}

impl Options {
    /// The options `check` runs `milestone` with: extras all run; the ticker on a terminal.
    pub fn for_check(milestone: Milestone) -> Options {
        Options { stop_at_first_failure: milestone != Milestone::Extra, ticker: std::io::stdout().is_terminal() }
    }
}

/// What the records said so far about each check.
#[derive(Debug, Clone)]
enum State {
    Waiting,
    Running(Instant),
    Done(Outcome),
}

/// Runs `milestone`'s checks of `m`'s stage with `bins`.
pub fn run_milestone(
    ctx: &Ctx,
    m: &Manifest,
    bins: &TestBinaries,
    milestone: Milestone,
    options: Options,
) -> MilestoneRun {
    let checks: Vec<&'static Check> = Check::of(m.stage, milestone).collect();
    let mut run = MilestoneRun { milestone, checks: checks.clone(), outcomes: vec![None; checks.len()], problem: None };
    if checks.is_empty() {
        return run;
    }
    let records =
        bins.records_dir.join(format!("records-{}-{}-{}.txt", m.krate, milestone.prefix(), std::process::id()));
    if let Err(e) = fs::create_dir_all(&bins.records_dir).and_then(|()| File::create(&records).map(drop)) {
        run.problem = Some(format!("cannot create the records file {}: {e}", records.display()));
        return run;
    }
    // In-process checks run one at a time, one process each, in the registry's order: they share
    // their process (its fds, its threads), so one check's leftovers (a thread stuck in a loop
    // that never returns, the fds it holds) must not be another's failure. The checks that start
    // a server share nothing: they run at the same time, in the `checks` binary, meanwhile.
    let in_process: Vec<usize> = (0..checks.len()).filter(|&i| is_in_process(checks[i])).collect();
    let servers: Vec<usize> = (0..checks.len()).filter(|&i| !is_in_process(checks[i])).collect();
    let mut next_in_process = 0;
    let mut procs: Vec<Proc> = Vec::new();
    let spawn = |exe: &Path, ids: Vec<usize>, procs: &mut Vec<Proc>| -> Result<(), String> {
        let names: Vec<String> =
            ids.iter()
                .map(|&i| {
                    if is_in_process(checks[i]) { format!("unit::{}", checks[i].id) } else { checks[i].id.to_string() }
                })
                .collect();
        let log = bins.records_dir.join(format!("{}-{}-{}.log", m.krate, milestone.prefix(), procs.len()));
        let process =
            start(ctx, m, exe, &names, &records, &log).map_err(|e| format!("could not run {}: {e}", exe.display()))?;
        procs.push(Proc { process, log, ids, exit: None });
        Ok(())
    };
    if !servers.is_empty()
        && let Err(e) = spawn(&bins.checks, servers, &mut procs)
    {
        run.problem = Some(e);
    }
    let mut states = vec![State::Waiting; checks.len()];
    let limit = checks.iter().map(|c| c.limit).sum::<Duration>() + Duration::from_secs(60);
    let started = Instant::now();
    let mut reader = RecordReader { path: records.clone(), offset: 0, pending: String::new() };
    let mut ticker = Ticker { on: options.ticker, shown: false };
    loop {
        reader.read_into(&checks, &mut states);
        for proc in &mut procs {
            if proc.exit.is_none() {
                proc.exit = proc.process.exit_status();
            }
        }
        let in_process_failed = in_process.iter().any(|&i| matches!(states[i], State::Done(Outcome::Failed(_))));
        let in_process_busy = procs.iter().any(|p| p.exit.is_none() && p.ids.iter().all(|&i| is_in_process(checks[i])));
        if run.problem.is_none()
            && !in_process_busy
            && next_in_process < in_process.len()
            && !(options.stop_at_first_failure && in_process_failed)
        {
            let id = in_process[next_in_process];
            next_in_process += 1;
            if let Err(e) = spawn(&bins.unit, vec![id], &mut procs) {
                run.problem = Some(e);
            }
            continue;
        }
        let all_exited = procs.iter().all(|p| p.exit.is_some());
        let in_process_over =
            next_in_process == in_process.len() || (options.stop_at_first_failure && in_process_failed);
        if run.problem.is_some()
            || (all_exited && in_process_over)
            || (options.stop_at_first_failure && decided(&states))
        {
            break;
        }
        if started.elapsed() > limit {
            run.problem = Some(format!("the checks did not finish within {} s and were stopped", limit.as_secs()));
            break;
        }
        ticker.show(&checks, &states);
        thread::sleep(Duration::from_millis(50));
    }
    ticker.clear();
    for proc in &mut procs {
        // Stops what is still running: a check not waited for, a stuck thread, its servers.
        proc.process.stop(Duration::ZERO);
    }
    reader.read_into(&checks, &mut states);
    let source = Source::at(&ctx.root, m.stage);
    for (i, state) in states.into_iter().enumerate() {
        // A check that started and never ended, in a binary that exited on its own: the binary
        // died during it (a crash, an abort, a stack overflow).
        let died = procs.iter().find(|p| p.ids.contains(&i) && p.exit.is_some());
        run.outcomes[i] = match (state, died) {
            (State::Done(outcome), _) => Some(outcome),
            (State::Running(_), Some(proc)) => Some(Outcome::Failed(Box::new(crash_failure(
                checks[i],
                proc.exit.expect("exited"),
                &proc.log,
                &source,
                m.stage,
            )))),
            _ => None,
        };
    }
    if run.problem.is_none() && !run.outcomes.iter().any(is_failure) {
        let missing: Vec<&str> =
            checks.iter().zip(&run.outcomes).filter(|(_, o)| o.is_none()).map(|(c, _)| c.id).collect();
        if !missing.is_empty() && run.problem.is_none() {
            run.problem = Some(format!(
                "{} did not run (is the test binary out of date? `cargo test -p {} --no-run` rebuilds it): {}",
                plural(missing.len(), "check", "checks"),
                m.krate,
                missing.join(", ")
            ));
        }
    }
    let _ = fs::remove_file(&records);
    run
}

fn is_failure(outcome: &Option<Outcome>) -> bool {
    matches!(outcome, Some(Outcome::Failed(_)))
}

/// `1 check`, `2 checks`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn is_in_process(check: &Check) -> bool {
    matches!(check.run, xps_tests::registry::Run::InProcess)
}

/// One test binary running some of the milestone's checks.
struct Proc {
    process: Process,
    /// Its stdout and stderr.
    log: PathBuf,
    /// The checks it runs (indexes into the milestone's).
    ids: Vec<usize>,
    /// How it exited on its own (before any stop of ours).
    exit: Option<ExitStatus>,
}

/// Starts one test binary as `cargo test` would (in the package's folder, with `CARGO` set for
/// the kit's own build of the workspace's binaries), running exactly `names`. It runs in a
/// process group of its own, through the kit's runner: stopping it ends the servers and tools
/// its checks started, and it dies with this program.
fn start(
    ctx: &Ctx,
    m: &Manifest,
    exe: &Path,
    names: &[String],
    records: &Path,
    log: &Path,
) -> std::io::Result<Process> {
    let mut cmd = Command::new(exe);
    cmd.arg("--exact").args(names).current_dir(ctx.path(&m.krate));
    cmd.env(RECORDS_ENV, records).env("CARGO", std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.env("CARGO_TERM_COLOR", "never").env("RUST_BACKTRACE", "0");
    if let Some(dir) = &ctx.target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let _ = File::create(log)?;
    let to_log = Stream::File(log.to_path_buf());
    Process::spawn(cmd, &ProcessOptions { stdout: to_log.clone(), stderr: to_log, open_files_limit: None })
}

/// Whether the run has its answer: a check failed and every check before it has ended.
fn decided(states: &[State]) -> bool {
    let Some(first) = states.iter().position(|s| matches!(s, State::Done(Outcome::Failed(_)))) else {
        return false;
    };
    states[..first].iter().all(|s| matches!(s, State::Done(_)))
}

/// The failure of a check whose test binary died while it ran.
fn crash_failure(check: &Check, exit: ExitStatus, log: &Path, source: &Source, stage: u8) -> Failure {
    use std::os::unix::process::ExitStatusExt;
    let how = match (exit.signal(), exit.code()) {
        (Some(signal), _) => format!("was killed by signal {signal}"),
        (None, code) => format!("exited with status {}", code.unwrap_or(-1)),
    };
    let mut failure =
        Failure::new(format!("the test binary {how} while this check was running: a crash in the code it calls?"));
    failure.log_tail = tail(&fs::read_to_string(log).unwrap_or_default(), 15);
    if let Some(&role) = check.blames.first() {
        failure = failure.blame(role, "the check exercises it first");
        if let Some(blame) = failure.blame.as_mut() {
            blame.at = source.locate(&blame.function(stage));
        }
    }
    failure
}

/// Reads the records file as it grows: complete lines only.
struct RecordReader {
    path: PathBuf,
    offset: usize,
    pending: String,
}

impl RecordReader {
    fn read_into(&mut self, checks: &[&'static Check], states: &mut [State]) {
        let Ok(bytes) = fs::read(&self.path) else { return };
        if bytes.len() <= self.offset {
            return;
        }
        self.pending.push_str(&String::from_utf8_lossy(&bytes[self.offset..]));
        self.offset = bytes.len();
        let (records, used) = record::parse_complete(&self.pending);
        self.pending.drain(..used);
        for record in records.into_iter().flatten() {
            let Some(i) = checks.iter().position(|c| c.id == record.id) else { continue };
            states[i] = match record.event {
                Event::Started => State::Running(Instant::now()),
                Event::Finished { outcome: Ok(()), .. } => State::Done(Outcome::Passed),
                Event::Finished { outcome: Err(failure), .. } => State::Done(Outcome::Failed(Box::new(failure))),
            };
        }
    }
}

/// The `still running` line, on a terminal only: rewritten in place, cleared before any other
/// output, so piped output is the same without it.
struct Ticker {
    on: bool,
    shown: bool,
}

impl Ticker {
    fn show(&mut self, checks: &[&'static Check], states: &[State]) {
        if !self.on {
            return;
        }
        let longest = checks
            .iter()
            .zip(states)
            .filter_map(|(c, s)| match s {
                State::Running(since) if since.elapsed() > TICKER_AFTER => Some((c.id, since.elapsed())),
                _ => None,
            })
            .max_by_key(|(_, elapsed)| *elapsed);
        if let Some((id, elapsed)) = longest {
            print!("\r\x1b[K  still running: {id} ({} s)", elapsed.as_secs());
            let _ = std::io::stdout().flush();
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            print!("\r\x1b[K");
            let _ = std::io::stdout().flush();
            self.shown = false;
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
