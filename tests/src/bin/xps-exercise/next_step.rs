//! The Next step for one failed check: exactly one function first, with its file and line and
//! why (the blame the harness resolved: a `todo!()` the check reached, a panic, a `RefCell`
//! borrow held across a call, a call that never returned, or what the check observed), then
//! what the check saw, the page's section and hint 1 for that function, and the milestone's other
//! functions as context.
//!
//! The first line after `Next step` is always
//! `  write:    NAME()  at FILE:LINE  (still todo!(): the check reached it)` or
//! `  fix:      NAME()  at FILE:LINE  (why)`.

use xps_tests::report::BlamedBy;
use xps_tests::{Check, Failure, Milestone};

use crate::check::indent;
use crate::manifest::Manifest;
use crate::run::Ctx;
use crate::workspace::{FnState, fn_state};

/// How many lines of a failure's text are shown (the first ones, then the last ones).
const SHOWN_LINES: usize = 45;

/// Prints the Next step for `check`, which failed with `failure`.
pub fn print(ctx: &Ctx, m: &Manifest, check: &Check, failure: &Failure) {
    let n = m.stage;
    println!("Next step");
    if let Some(what_to_do) = &failure.not_the_code {
        println!("  not your code: {what_to_do}");
    }
    let blamed = failure.blame.as_ref().map(|blame| {
        let name = blame.function(n);
        let at = blame.at.clone().or_else(|| m.function(&name).map(|f| format!("{}:{}", f.file, fn_state(ctx, f).1)));
        let verb = if blame.by == BlamedBy::Todo { "write:" } else { "fix:" };
        let at = at.map(|at| format!("  at {at}")).unwrap_or_default();
        println!("  {verb:<9} {name}(){at}  ({})", blame.why);
        name
    });
    let function = blamed.as_deref().and_then(|name| m.function(name));
    if let Some(f) = function {
        println!("  read:     the page ({}), section \"{}\"", m.page, f.section);
    }
    println!("  check:    {}", check.id);
    println!("  expects:  {}", check.expects);
    // The blame is the line above; the rest is what the check saw.
    let mut saw = failure.clone();
    saw.blame = None;
    // A panic is printed on its own line, with its place: the summary need not repeat it.
    if let Some(panic) = &saw.panic
        && let Some(at) = saw.summary.find(&panic.message)
    {
        saw.summary = saw.summary[..at].trim_end_matches([':', ' ']).to_string();
    }
    println!("{}", indent(&shorten(&saw.render(n), SHOWN_LINES), "    | "));
    if let Some(f) = function {
        println!("  hint 1:");
        println!("{}", indent(&f.hints[0], "    "));
    }
    if check.milestone != Milestone::Extra {
        context(ctx, m, check.milestone, blamed.as_deref());
    }
    println!();
    match function {
        Some(f) => {
            println!("More: scripts/exercise.sh hint {n} {} 2   (level 3 shows the reference's code)", f.name);
            println!("      scripts/exercise.sh compare {n} {}   (your code against the reference)", f.name);
        }
        None => println!("More: scripts/exercise.sh compare {n}   (your code against the reference)"),
    }
    println!("Run the failing check alone: cargo test -p {} {}", m.krate, check.id);
}

/// The functions the manifest has the learner write up to `milestone` (those of the latest
/// milestone that has any), other than the one blamed: where else to look.
fn context(ctx: &Ctx, m: &Manifest, milestone: Milestone, blamed: Option<&str>) {
    let own = m.functions.iter().map(|f| f.milestone).filter(|&f| f <= milestone).max();
    let others: Vec<String> = m
        .functions
        .iter()
        .filter(|f| Some(f.milestone) == own && Some(f.name.as_str()) != blamed)
        .map(|f| {
            let (state, line) = fn_state(ctx, f);
            let todo = if state == FnState::Todo { "  (still todo!())" } else { "" };
            format!("{}() at {}:{line}{todo}", f.name, f.file)
        })
        .collect();
    if !others.is_empty() {
        println!("  also checked by this milestone:");
        for line in others {
            println!("              {line}");
        }
    }
}

/// At most `lines` lines of `text` (the first ones, then the last ones).
fn shorten(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    if all.len() <= lines {
        return text.trim_end().to_string();
    }
    let head = lines * 2 / 3;
    let tail = lines - head;
    format!(
        "{}\n... ({} lines left out) ...\n{}",
        all[..head].join("\n"),
        all.len() - lines,
        all[all.len() - tail..].join("\n")
    )
}
