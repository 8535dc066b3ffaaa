//! `check` and `status`: build the stage, run its milestones in the page's order, and turn
//! cargo's output into one next step.

use std::time::Duration;

use crate::manifest::{MILESTONES, Manifest, milestone_index};
use crate::run::{Ctx, Output};
use crate::workspace::{FnState, fn_state, read};
use xps_tests::rust_src::find_fn;

/// How long the build may take (a first build of a fresh clone included).
pub const BUILD_LIMIT: Duration = Duration::from_secs(900);
/// How long one milestone's checks may take; each check has its own, much shorter, limits.
pub const MILESTONE_LIMIT: Duration = Duration::from_secs(300);

/// What one milestone's run gave.
#[derive(Debug, Clone, Default)]
pub struct MilestoneResult {
    /// Its test-name prefix.
    pub prefix: String,
    /// The checks that passed.
    pub passed: Vec<String>,
    /// The checks that failed, in cargo's order.
    pub failed: Vec<String>,
    /// The failure text of the check to show (the first that reached a `todo!()`, else the first).
    pub shown: Option<(String, String)>,
    /// Why the run itself failed (a timeout, no check of that name, a crashed test binary).
    pub error: Option<String>,
}

impl MilestoneResult {
    /// Every check ran and passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.failed.is_empty() && !self.passed.is_empty()
    }
}

/// Builds the stage and its checks; `Err` with the compiler's errors.
pub fn build(ctx: &Ctx, m: &Manifest) -> Result<(), String> {
    let out = ctx.cargo(&["test", "-p", &m.krate, "--no-run"], BUILD_LIMIT);
    if out.ok() {
        return Ok(());
    }
    if out.timed_out {
        return Err(format!("the build took longer than {} s and was stopped", BUILD_LIMIT.as_secs()));
    }
    // cargo's progress lines aside, the compiler's diagnostics are blocks between blank lines.
    let stderr: String = out
        .stderr
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !["Compiling ", "Checking ", "Finished ", "Blocking ", "warning: build failed"]
                .iter()
                .any(|p| t.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let blocks: Vec<&str> =
        stderr.split("\n\n").map(|b| b.trim_matches('\n')).filter(|b| b.trim_start().starts_with("error")).collect();
    if blocks.is_empty() {
        return Err(tail(&out.stderr, 30));
    }
    let shown: Vec<&str> = blocks.iter().copied().take(4).collect();
    let mut text = shown.join("\n\n");
    if blocks.len() > shown.len() {
        text.push_str(&format!(
            "\n\n... and {} more (cargo build -p {} shows them all)",
            blocks.len() - shown.len(),
            m.krate
        ));
    }
    Err(text)
}

/// Runs the checks whose names contain `prefix`.
pub fn run_milestone(ctx: &Ctx, m: &Manifest, prefix: &str) -> MilestoneResult {
    let out = ctx.cargo(&["test", "--no-fail-fast", "-p", &m.krate, prefix], MILESTONE_LIMIT);
    parse_test_output(prefix, &out)
}

/// Reads `cargo test`'s output: which checks passed and failed, and their failure texts.
pub fn parse_test_output(prefix: &str, out: &Output) -> MilestoneResult {
    let mut result = MilestoneResult { prefix: prefix.to_string(), ..MilestoneResult::default() };
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, outcome)) = rest.split_once(" ... ")
        {
            let name = name.trim().to_string();
            if outcome.starts_with("ok") {
                result.passed.push(name);
            } else if outcome.starts_with("FAILED") {
                result.failed.push(name);
            }
            continue;
        }
        if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----")) {
            blocks.extend(current.take());
            current = Some((name.to_string(), String::new()));
            continue;
        }
        if line == "failures:" {
            blocks.extend(current.take());
            continue;
        }
        if let Some((_, text)) = current.as_mut()
            && !line.starts_with("note: run with `RUST_BACKTRACE=1`")
        {
            text.push_str(line);
            text.push('\n');
        }
    }
    blocks.extend(current.take());
    // Names start with the page's step numbers: the first by name is the earliest step.
    blocks.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, text) in &mut blocks {
        // A panic inside the test kit says nothing a learner can use; one in their code does.
        *text = text
            .lines()
            .filter(|l| !(l.starts_with("thread '") && l.contains("panicked at tests/src/")))
            .collect::<Vec<_>>()
            .join("\n");
    }
    result.shown = blocks
        .iter()
        .find(|(_, text)| text.contains("not yet implemented: "))
        .or_else(|| blocks.first())
        .map(|(name, text)| (name.clone(), text.trim().to_string()));
    if out.timed_out {
        result.error = Some(format!(
            "the checks did not finish within {} s and were stopped: a server or loop that never returns?",
            MILESTONE_LIMIT.as_secs()
        ));
    } else if result.passed.is_empty() && result.failed.is_empty() {
        result.error = Some(if out.ok() {
            format!("no check's name contains `{prefix}`: are the milestone checks named as the page's milestones?")
        } else {
            format!("the checks could not run:\n{}", tail(&out.stderr, 20))
        });
    } else if !out.ok() && result.failed.is_empty() {
        result.error = Some(format!("a test binary ended abnormally:\n{}", tail(&out.stderr, 20)));
    }
    result
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The name in `not yet implemented: NAME() ...`, if a check reached a `todo!()`.
pub fn todo_reached(text: &str) -> Option<String> {
    let rest = &text[text.find("not yet implemented: ")? + "not yet implemented: ".len()..];
    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// The learner function whose code `text`'s `panicked at FILE:LINE` points into.
fn panicked_in(ctx: &Ctx, m: &Manifest, text: &str) -> Option<String> {
    for (i, _) in text.match_indices("panicked at ") {
        let rest = &text[i + "panicked at ".len()..];
        let mut parts = rest.split(':');
        let (Some(file), Some(line)) = (parts.next(), parts.next()) else { continue };
        let Ok(line) = line.trim().parse::<usize>() else { continue };
        for f in m.functions.iter().filter(|f| f.file == file) {
            let Ok(src) = read(ctx, file) else { continue };
            if let Some(span) = find_fn(&src, &f.name)
                && (span.line(&src)..=xps_tests::rust_src::line_of(&src, span.body_close)).contains(&line)
            {
                return Some(f.name.clone());
            }
        }
    }
    None
}

/// The function a failing milestone points to, and why.
pub fn culprit(ctx: &Ctx, m: &Manifest, milestone: usize, result: &MilestoneResult) -> Option<(String, &'static str)> {
    let text = result.shown.as_ref().map_or("", |(_, text)| text.as_str());
    if let Some(name) = todo_reached(text).filter(|name| m.function(name).is_some()) {
        return Some((name, "still todo!(): the check reached it"));
    }
    let todo = m
        .functions
        .iter()
        .find(|f| milestone_index(&f.milestone).is_some_and(|i| i <= milestone) && fn_state(ctx, f).0 == FnState::Todo);
    if let Some(f) = todo {
        return Some((f.name.clone(), "still todo!()"));
    }
    panicked_in(ctx, m, text).map(|name| (name, "the check failed inside it"))
}

/// Runs the milestones in order up to `until` (all if `None`); stops at the first failing
/// one if `stop_at_first`. `Err` with the compiler's errors if the stage does not build.
pub fn run_all(
    ctx: &Ctx,
    m: &Manifest,
    until: Option<usize>,
    stop_at_first: bool,
) -> Result<Vec<MilestoneResult>, String> {
    build(ctx, m)?;
    let mut results = Vec::new();
    for (i, (prefix, _)) in MILESTONES.iter().enumerate() {
        if until.is_some_and(|until| i > until) {
            break;
        }
        let result = run_milestone(ctx, m, prefix);
        let passed = result.passed();
        results.push(result);
        if stop_at_first && !passed {
            break;
        }
    }
    Ok(results)
}

/// Indents every line of `text`.
pub fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| if l.is_empty() { by.trim_end().to_string() } else { format!("{by}{l}") })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints `check`'s report; returns whether every milestone passed.
pub fn report(ctx: &Ctx, m: &Manifest, results: &[MilestoneResult]) -> bool {
    let n = m.stage;
    for (i, result) in results.iter().enumerate() {
        let label = MILESTONES[i].1;
        if result.passed() {
            let n = result.passed.len();
            println!(
                "  ok    {label} ({}): {n} {} pass{}",
                result.prefix,
                if n == 1 { "check" } else { "checks" },
                if n == 1 { "es" } else { "" }
            );
            continue;
        }
        println!("  FAIL  {label} ({})", result.prefix);
        println!();
        println!("Next step");
        match culprit(ctx, m, i, result) {
            Some((name, why)) => {
                let f = m.function(&name).expect("culprit is a manifest function");
                let (_, line) = fn_state(ctx, f);
                let verb = if why.starts_with("still todo") { "write:" } else { "fix:" };
                println!("  {verb:<9} {name}()  at {}:{line}  ({why})", f.file);
                println!("  read:     the page ({}), section \"{}\"", m.page, f.section);
                if let Some((check, text)) = &result.shown {
                    println!("  check:    {check}");
                    println!("{}", indent(&shorten(text, 45), "    | "));
                }
                if let Some(error) = &result.error {
                    println!("  problem:  {error}");
                }
                println!("  hint 1:");
                println!("{}", indent(&f.hints[0], "    "));
                println!();
                println!("More: scripts/exercise.sh hint {n} {name} 2   (level 3 shows the reference's code)");
                println!("      scripts/exercise.sh compare {n} {name}   (your code against the reference)");
            }
            None => {
                if let Some(error) = &result.error {
                    println!("  problem:  {error}");
                }
                if let Some((check, text)) = &result.shown {
                    println!("  check:    {check}");
                    println!("{}", indent(&shorten(text, 45), "    | "));
                }
                if result.prefix == "extra" {
                    println!("  note:     this check goes beyond the course; its message above says where to look");
                } else {
                    // The functions this milestone checks first, else those of the latest milestone before.
                    let own =
                        m.functions.iter().filter_map(|f| milestone_index(&f.milestone)).filter(|&j| j <= i).max();
                    let mine: Vec<String> = m
                        .functions
                        .iter()
                        .filter(|f| milestone_index(&f.milestone) == own)
                        .map(|f| format!("{}() at {}:{}", f.name, f.file, fn_state(ctx, f).1))
                        .collect();
                    println!("  look at:  the functions this milestone checks:");
                    for line in mine {
                        println!("              {line}");
                    }
                }
                println!();
                println!("More: scripts/exercise.sh compare {n}   (your code against the reference)");
            }
        }
        println!(
            "Run the failing check alone: cargo test -p {} {}",
            m.krate,
            result.shown.as_ref().map_or(result.prefix.as_str(), |(c, _)| c.as_str())
        );
        return false;
    }
    let done = results.len() == MILESTONES.len();
    if done {
        println!();
        println!("Stage {n}: every milestone passes.");
        if n == 6 {
            println!(
                "Next: compare with the reference (scripts/exercise.sh compare 6), then stage 7 (scripts/exercise.sh start 7)."
            );
        } else {
            println!("Next: compare with the reference (scripts/exercise.sh compare 7).");
        }
    }
    done
}

/// At most `lines` lines of `text` (the first ones, then the last ones).
fn shorten(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    if all.len() <= lines {
        return text.to_string();
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
