//! `check` and `status`: build the stage, run its milestones in the page's order (the
//! registry's [`Milestone::ORDER`]), and say what passed and what to do next.

use xps_tests::Milestone;

use crate::manifest::Manifest;
use crate::next_step;
use crate::run::Ctx;
use crate::runner::{self, MilestoneRun, Options, TestBinaries, plural};
use crate::workspace::{FnState, fn_state};

/// What `check` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every milestone and course check passes, and so does every extra.
    AllPass,
    /// Every milestone and course check passes; some extras fail.
    ExtrasFail,
    /// A milestone or course check fails, or the stage does not compile.
    Fails,
}

/// `check`: builds, runs the milestones in order and stops at the first that fails; once they all
/// pass, runs every extra and lists those that fail. Returns the exit status (`strict`: failing
/// extras fail too).
pub fn check(ctx: &Ctx, m: &Manifest, strict: bool) -> u8 {
    match run_check(ctx, m, strict) {
        Verdict::AllPass => 0,
        Verdict::ExtrasFail if !strict => 0,
        Verdict::ExtrasFail | Verdict::Fails => 1,
    }
}

/// `check`'s work and output, without the exit status (`strict`: said where the extras count).
pub fn run_check(ctx: &Ctx, m: &Manifest, strict: bool) -> Verdict {
    let n = m.stage;
    println!("Stage {n}: building, then the milestones in the page's order (cargo test -p {} PREFIX)", m.krate);
    let bins = match runner::build(ctx, m) {
        Ok(bins) => bins,
        Err(errors) => {
            compile_errors(&errors);
            return Verdict::Fails;
        }
    };
    for milestone in Milestone::ORDER {
        let run = runner::run_milestone(ctx, m, &bins, milestone, Options::for_check(milestone));
        if milestone == Milestone::Extra {
            return extras(ctx, m, &run, strict);
        }
        if run.passed() {
            println!("  ok    {}", passed_line(&run));
            continue;
        }
        failed(ctx, m, &run);
        return Verdict::Fails;
    }
    unreachable!("Milestone::ORDER ends with the extras")
}

fn compile_errors(errors: &str) {
    println!("  FAIL  the stage does not compile yet");
    println!();
    println!("{errors}");
    println!();
    println!("Fix the code the compiler points to; todo!() bodies are fine, they compile.");
}

/// `Milestone #1 (milestone_1): 4 checks pass`.
fn passed_line(run: &MilestoneRun) -> String {
    let n = run.n_passed();
    format!(
        "{} ({}): {} pass{}",
        run.milestone.label(),
        run.milestone.prefix(),
        plural(n, "check", "checks"),
        if n == 1 { "es" } else { "" }
    )
}

/// A failed milestone: its line, then the Next step for its first failing check.
fn failed(ctx: &Ctx, m: &Manifest, run: &MilestoneRun) {
    let milestone = run.milestone;
    println!("  FAIL  {} ({})", milestone.label(), milestone.prefix());
    println!();
    match run.failures().first() {
        Some((check, failure)) => next_step::print(ctx, m, check, failure),
        None => {
            println!("Next step");
            println!("  problem:  {}", run.problem.as_deref().unwrap_or("the checks did not all run"));
            println!();
            println!("Run them yourself to see more: cargo test -p {} {}", m.krate, milestone.prefix());
        }
    }
}

/// The extras: how many pass, one line for each that fails, and the Next step for the first.
fn extras(ctx: &Ctx, m: &Manifest, run: &MilestoneRun, strict: bool) -> Verdict {
    let n = m.stage;
    let failures = run.failures();
    let note = match (failures.is_empty(), strict) {
        (true, _) => "",
        (false, false) => " (beyond the course: they fail `check` only with --strict)",
        (false, true) => " (--strict: a failing extra fails `check`)",
    };
    println!("  extras: {} of {} pass{note}", run.n_passed(), run.checks.len());
    for (check, failure) in &failures {
        println!("    FAIL  {}: {}", check.id, failure.summary.lines().next().unwrap_or_default());
    }
    if let Some(problem) = &run.problem {
        println!("    problem: {problem}");
    }
    if let Some((check, failure)) = failures.first() {
        println!();
        println!("The first extra that fails:");
        next_step::print(ctx, m, check, failure);
    }
    println!();
    println!("Stage {n}: every milestone and course check passes.");
    if strict && !failures.is_empty() {
        println!(
            "check --strict fails: {} of the extras {}.",
            failures.len(),
            if failures.len() == 1 { "fails" } else { "fail" }
        );
    }
    if n == 6 {
        println!(
            "Next: compare with the reference (scripts/exercise.sh compare 6), then stage 7 (scripts/exercise.sh start 7)."
        );
    } else {
        println!("Next: compare with the reference (scripts/exercise.sh compare 7).");
    }
    if failures.is_empty() && run.problem.is_none() { Verdict::AllPass } else { Verdict::ExtrasFail }
}

/// `status`: the functions (todo!() or written), then every milestone's verdict.
pub fn status(ctx: &Ctx, m: &Manifest, started: &str) -> u8 {
    let n = m.stage;
    println!("Stage {n}: {started}");
    println!();
    println!("Functions:");
    let (name_w, place_w) = widths(ctx, m);
    for f in &m.functions {
        let (state, line) = fn_state(ctx, f);
        let state = match state {
            FnState::Todo => "todo!()",
            FnState::Written => "written",
            FnState::Missing => "MISSING",
        };
        let place = format!("{}:{line}", f.file);
        println!("  {state:<8} {:<name_w$} {place:<place_w$} {}", format!("{}()", f.name), f.milestone.prefix());
    }
    println!();
    println!("Milestones:");
    let bins: TestBinaries = match runner::build(ctx, m) {
        Ok(bins) => bins,
        Err(errors) => {
            println!("  the stage does not compile yet:\n{}", indent(&errors, "    "));
            println!();
            println!("Next step: scripts/exercise.sh check {n}");
            return 0;
        }
    };
    let mut all_pass = true;
    for milestone in Milestone::ORDER {
        let run = runner::run_milestone(ctx, m, &bins, milestone, Options::for_check(milestone));
        let verdict = if run.passed() {
            format!("pass ({})", plural(run.n_passed(), "check", "checks"))
        } else if milestone == Milestone::Extra {
            format!("{} of {} pass", run.n_passed(), run.checks.len())
        } else if let Some((check, _)) = run.failures().first() {
            all_pass = false;
            format!("FAIL: {}", check.id)
        } else {
            all_pass = false;
            format!("FAIL: {}", run.problem.as_deref().unwrap_or("the checks did not all run"))
        };
        println!("  {:<16} {verdict}   {}", milestone.prefix(), milestone.label());
    }
    if !all_pass {
        println!();
        println!("Next step: scripts/exercise.sh check {n}");
    }
    0
}

/// Column widths for a table of `m`'s functions: `name()` and `file:line`.
pub fn widths(ctx: &Ctx, m: &Manifest) -> (usize, usize) {
    let name = m.functions.iter().map(|f| f.name.len() + 2).max().unwrap_or(0);
    let place = m.functions.iter().map(|f| f.file.len() + 1 + fn_state(ctx, f).1.to_string().len()).max().unwrap_or(0);
    (name, place)
}

/// Indents every line of `text`.
pub fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| if l.is_empty() { by.trim_end().to_string() } else { format!("{by}{l}") })
        .collect::<Vec<_>>()
        .join("\n")
}
