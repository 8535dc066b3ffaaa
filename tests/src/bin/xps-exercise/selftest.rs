//! `selftest`: proves, on a scratch copy of the workspace, what the exercise mode promises.
//!
//! 1. the skeleton builds without warnings, and `check` fails at Milestone #1 naming the
//!    manifest's first function;
//! 2. the reference passes every milestone, course check and extra (`check --strict`);
//! 3. each learner function alone put back to `todo!()` fails at the milestone the manifest
//!    names, and `check` names that function: no function goes unchecked;
//! 4. the workspace's stageNN/src has no `todo!(` (main holds the reference), and every
//!    manifest function is in it;
//! 5. stage 7: the page-shaped loop (events found by searching a list, as the page's C does),
//!    swapped in for our loop, passes every milestone and fails only the extra fd-reuse check.
//!
//! The scratch copy lives in the target folder (`xps-exercise-selftest/ws`) with one target
//! folder of its own for all its builds, so cases after the first rebuild only the stage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::check;
use crate::manifest::{Manifest, load};
use crate::run::{Ctx, Output, run_bounded};
use crate::runner::{self, Options};
use crate::skeleton;
use xps_tests::Milestone;
use xps_tests::rust_src::{code_mask, find_fn};
use xps_tests::scratch::Scratch;

/// The page-shaped loop fixture (written with the milestone checks).
pub const PAGE_SHAPED_LOOP: &str = "tests/exercises/stage07/page_shaped_xps_loop.rs";
const LOOP_FILE: &str = "stage07/src/core/xps_loop.rs";

/// Runs the selftest for `stages`; Ok(0) when every point holds.
pub fn run(ctx: &Ctx, stages: &[u8]) -> Result<u8, String> {
    let started = Instant::now();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => ctx.root.join(dir),
        None => ctx.root.join("target"),
    };
    let base = target.join("xps-exercise-selftest");
    let scratch = Ctx { root: base.join("ws"), target_dir: Some(base.join("target")) };
    println!("selftest: scratch copy {} (builds in {})", scratch.root.display(), base.join("target").display());
    make_scratch(ctx, &scratch.root)?;

    let mut failures: Vec<String> = Vec::new();
    for &stage in stages {
        let m = load(stage).ok_or(format!("no manifest for stage {stage}"))?;
        let mut step = |point: &str, result: Result<String, String>, since: Instant| {
            let secs = since.elapsed().as_secs_f32();
            match result {
                Ok(note) => println!("  ok    stage {stage}, {point} {note} [{secs:.1} s]"),
                Err(e) => {
                    println!("  FAIL  stage {stage}, {point} [{secs:.1} s]\n{}", check::indent(&e, "        "));
                    failures.push(format!("stage {stage}, {point}"));
                }
            }
        };
        let t = Instant::now();
        step("4: the reference has no todo!() and every learner function", no_todo_in_reference(ctx, &m), t);
        let t = Instant::now();
        step("2: the reference passes every milestone", reference_passes(&scratch, &m), t);
        let t = Instant::now();
        step("1: the skeleton builds cleanly and check stops at Milestone #1", skeleton_fails_first(&scratch, &m), t);
        for f in &m.functions {
            let t = Instant::now();
            step(
                &format!("3: {}() alone todo!() fails at {}", f.name, f.milestone.prefix()),
                one_todo(&scratch, &m, &f.name),
                t,
            );
        }
        if stage == 7 {
            let t = Instant::now();
            step("5: the page-shaped loop passes all but the fd-reuse extra", page_shaped_loop(ctx, &scratch, &m), t);
        }
        restore(&scratch, &m)?;
    }
    println!(
        "selftest: {} in {:.0} s",
        if failures.is_empty() { "all points hold" } else { "FAILED" },
        started.elapsed().as_secs_f32()
    );
    for failure in &failures {
        println!("  failed: {failure}");
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// Copies the workspace's files (tracked and untracked, not ignored) into a fresh git repo.
fn make_scratch(ctx: &Ctx, ws: &Path) -> Result<(), String> {
    Scratch::create_at(&ctx.root, ws, &ws.with_file_name("target")).map(drop)
}

/// The scratch copy's stage folder back to the reference (its HEAD).
fn restore(scratch: &Ctx, m: &Manifest) -> Result<(), String> {
    let out = scratch.git(&["checkout", "-q", "HEAD", "--", &m.src_dir()]);
    if !out.ok() {
        return Err(format!("git checkout failed in the scratch copy: {}", out.stderr.trim()));
    }
    crate::reference::forget(scratch, m.stage);
    Ok(())
}

/// Runs this program's `args` on the scratch copy (as scripts/exercise.sh would).
fn exercise(scratch: &Ctx, args: &[&str]) -> Output {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("xps-exercise"));
    let mut cmd = Command::new(exe);
    cmd.args(args).env("XPS_EXERCISE_ROOT", &scratch.root);
    if let Some(dir) = &scratch.target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    run_bounded(cmd, Duration::from_secs(1200))
}

fn label(milestone: Milestone) -> String {
    format!("FAIL  {} ({})", milestone.label(), milestone.prefix())
}

/// What `check`'s output says failed, for the error messages.
fn verdict(out: &Output) -> String {
    let lines: Vec<&str> =
        out.stdout.lines().filter(|l| l.starts_with("  FAIL") || l.starts_with("  write:")).collect();
    if lines.is_empty() {
        format!("exit {:?}; output:\n{}\n{}", out.code, out.stdout, out.stderr)
    } else {
        format!("exit {:?}: {}", out.code, lines.join(" / ").trim())
    }
}

fn no_todo_in_reference(ctx: &Ctx, m: &Manifest) -> Result<String, String> {
    let mut problems = Vec::new();
    for file in crate::workspace::work_files(ctx, &m.src_dir()) {
        let Ok(text) = fs::read_to_string(ctx.path(&file)) else { continue };
        let mask = code_mask(&text);
        for (i, _) in text.match_indices("todo!(") {
            if mask[i] {
                problems.push(format!("{file}:{} has todo!(", xps_tests::rust_src::line_of(&text, i)));
            }
        }
        if text.lines().any(skeleton::is_allow_line) {
            problems.push(format!("{file} has the exercise mode's #![allow] line"));
        }
    }
    for f in &m.functions {
        if fs::read_to_string(ctx.path(&f.file)).ok().and_then(|t| find_fn(&t, &f.name)).is_none() {
            problems.push(format!(
                "{}: no `fn {}` (the manifest tests/exercises/stage0{}.txt lists it)",
                f.file, f.name, m.stage
            ));
        }
    }
    problems.extend(hint_names_missing(ctx, m));
    if problems.is_empty() { Ok(format!("({} functions)", m.functions.len())) } else { Err(problems.join("\n")) }
}

fn reference_passes(scratch: &Ctx, m: &Manifest) -> Result<String, String> {
    restore(scratch, m)?;
    let out = exercise(scratch, &["check", &m.stage.to_string(), "--strict"]);
    if out.ok() { Ok(String::new()) } else { Err(format!("check {} on the reference: {}", m.stage, verdict(&out))) }
}

fn skeleton_fails_first(scratch: &Ctx, m: &Manifest) -> Result<String, String> {
    restore(scratch, m)?;
    let n = m.stage.to_string();
    let out = exercise(scratch, &["start", &n]);
    if !out.ok() {
        return Err(format!("start {n} failed: {}{}", out.stdout, out.stderr));
    }
    let build = scratch.cargo(&["build", "-p", &m.krate, "--all-targets"], runner::BUILD_LIMIT);
    let warnings: Vec<&str> =
        build.stderr.lines().filter(|l| l.starts_with("warning") || l.starts_with("error")).collect();
    if !build.ok() || !warnings.is_empty() {
        return Err(format!("the skeleton does not build cleanly:\n{}", build.stderr));
    }
    let out = exercise(scratch, &["check", &n]);
    let first = &m.functions[0];
    let expected = [label(Milestone::M1), format!("Next step\n  write:    {}()", first.name)];
    if out.code == Some(1) && expected.iter().all(|e| out.stdout.contains(e.as_str())) {
        Ok(format!("(names {}())", first.name))
    } else {
        Err(format!("expected check {n} to fail at Milestone #1 naming {}(); got {}", first.name, verdict(&out)))
    }
}

fn one_todo(scratch: &Ctx, m: &Manifest, name: &str) -> Result<String, String> {
    restore(scratch, m)?;
    let f = m.function(name).expect("a manifest function");
    let text = crate::workspace::read(scratch, &f.file)?;
    let mut text = skeleton::replace_body(m.stage, f, &text, &text, None)?;
    if f.file == m.crate_root {
        text = skeleton::add_allow_line(&text, m.stage);
    } else {
        let root = crate::workspace::read(scratch, &m.crate_root)?;
        crate::workspace::write(scratch, &m.crate_root, &skeleton::add_allow_line(&root, m.stage))?;
    }
    crate::workspace::write(scratch, &f.file, &text)?;
    let out = exercise(scratch, &["check", &m.stage.to_string()]);
    let expected = [label(f.milestone), format!("Next step\n  write:    {name}()")];
    if out.code == Some(1) && expected.iter().all(|e| out.stdout.contains(e.as_str())) {
        Ok(String::new())
    } else {
        Err(format!("expected check to fail at {} naming {name}(); got {}", f.milestone.prefix(), verdict(&out)))
    }
}

fn page_shaped_loop(ctx: &Ctx, scratch: &Ctx, m: &Manifest) -> Result<String, String> {
    restore(scratch, m)?;
    let fixture = ctx.path(PAGE_SHAPED_LOOP);
    let Ok(text) = fs::read_to_string(&fixture) else {
        return Err(format!(
            "{PAGE_SHAPED_LOOP} is missing: the page-shaped loop fixture (a loop that finds events by searching\n\
             a list, as the page's C does; written with the milestone checks) is needed for this point"
        ));
    };
    let reference = crate::workspace::read(scratch, LOOP_FILE)?;
    crate::workspace::write(scratch, LOOP_FILE, &with_page_shaped_functions(&reference, &text)?)?;
    let bins = runner::build(scratch, m).map_err(|e| format!("the page-shaped loop does not build:\n{e}"))?;
    let mut problems = Vec::new();
    let mut reuse_failed = Vec::new();
    for milestone in Milestone::ORDER {
        let run = runner::run_milestone(
            scratch,
            m,
            &bins,
            milestone,
            Options { stop_at_first_failure: false, ticker: false },
        );
        if let Some(problem) = &run.problem {
            problems.push(format!("{}: {problem}", milestone.prefix()));
        }
        for (check, failure) in run.failures() {
            if milestone == Milestone::Extra && check.id.contains("fd_reuse") {
                if !failure.render(7).to_lowercase().contains("generation") {
                    problems.push(format!(
                        "the fd-reuse failure message does not point to the generation in our token:\n{}",
                        failure.render(7)
                    ));
                }
                reuse_failed.push(check.id.to_string());
            } else {
                problems
                    .push(format!("{} fails with the page-shaped loop: it must accept the page's design", check.id));
            }
        }
    }
    if reuse_failed.is_empty() {
        problems.push(
            "no extra_*fd_reuse* check failed: the page-shaped loop must fail the stale-event fd-reuse check".into(),
        );
    }
    if problems.is_empty() { Ok(format!("(fails only {})", reuse_failed.join(", "))) } else { Err(problems.join("\n")) }
}

/// The functions the page-shaped loop fixture writes the page's way.
const PAGE_SHAPED_FNS: [&str; 3] = ["xps_loop_attach", "xps_loop_detach", "handle_epoll_events"];

/// The reference loop with [`PAGE_SHAPED_FNS`] (doc comments included) replaced by the
/// fixture's, and the dead-code lint off: the page's way leaves the generation unused.
fn with_page_shaped_functions(reference: &str, fixture: &str) -> Result<String, String> {
    let mut text = reference.to_string();
    for name in PAGE_SHAPED_FNS {
        let theirs = find_fn(fixture, name).ok_or(format!("no `fn {name}` in {PAGE_SHAPED_LOOP}"))?;
        let ours = find_fn(&text, name).ok_or(format!("no `fn {name}` in {LOOP_FILE}"))?;
        text = format!(
            "{}{}{}",
            &text[..ours.item_start],
            &fixture[theirs.item_start..=theirs.body_close],
            &text[ours.body_close + 1..]
        );
    }
    let docs_end: usize = text.split_inclusive('\n').take_while(|line| line.starts_with("//!")).map(str::len).sum();
    Ok(format!(
        "{}#![allow(dead_code, reason = \"the page's way leaves the generation unused\")]\n{}",
        &text[..docs_end],
        &text[docs_end..]
    ))
}

/// The page's own misspellings, quoted by the hints.
const PAGE_SPELLINGS: [&str; 2] = ["xps_listener_destory", "xps_connection_destory"];

/// Names the hints use (`snake_case_fn(` and `Type::`) that the reference no longer has
/// anywhere: hints must follow the code when it is reshaped.
fn hint_names_missing(ctx: &Ctx, m: &Manifest) -> Vec<String> {
    let mut corpus = String::new();
    // Stage 7's hints also name the stage 6 functions whose logic the page keeps.
    for dir in [m.src_dir(), "stage06/src".to_string(), "shared/src".to_string()] {
        for file in crate::workspace::work_files(ctx, &dir) {
            corpus.push_str(&fs::read_to_string(ctx.path(&file)).unwrap_or_default());
        }
    }
    let mut missing = Vec::new();
    for f in &m.functions {
        for hint in &f.hints {
            for name in hint_names(hint) {
                let bare = name.trim_end_matches(['(', ':']);
                if !corpus.contains(bare) && !PAGE_SPELLINGS.contains(&bare) {
                    missing.push(format!("hint of {}(): `{name}` is not in {} or shared/src", f.name, m.src_dir()));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    missing
}

/// `snake_case_fn(` (with at least one `_`) and `CamelType::` in `text`.
fn hint_names(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let end = (i..bytes.len()).find(|&j| !ident(bytes[j])).unwrap_or(bytes.len());
            let word = &text[i..end];
            let rest = &text[end..];
            let snake_fn = word.contains('_') && word.bytes().all(|b| !b.is_ascii_uppercase()) && rest.starts_with('(');
            let type_path = word.as_bytes()[0].is_ascii_uppercase()
                && word.bytes().any(|b| b.is_ascii_lowercase())
                && rest.starts_with("::");
            if snake_fn {
                names.push(format!("{word}("));
            } else if type_path {
                names.push(format!("{word}::"));
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shaped_functions_replace_the_references_and_nothing_else() {
        let fns = |body: &str| {
            PAGE_SHAPED_FNS.map(|name| format!("/// {name}, {body}.\nfn {name}() {{\n    {body}();\n}}\n")).concat()
        };
        let reference = format!("//! The loop.\n\nstruct Given;\n\n{}\nfn xps_loop_run() {{}}\n", fns("ours"));
        let fixture = format!("//! The page's way.\n\n{}", fns("page"));
        let text = with_page_shaped_functions(&reference, &fixture).unwrap();
        let want = format!(
            "//! The loop.\n#![allow(dead_code, reason = \"the page's way leaves the generation unused\")]\n\nstruct Given;\n\n{}\nfn xps_loop_run() {{}}\n",
            fns("page")
        );
        assert_eq!(text, want);
    }

    #[test]
    fn hint_names_are_snake_case_calls_and_type_paths() {
        let names = hint_names("call listener_extras(x), then Token::WAKE; not foo(, Bar or CONST::X");
        assert_eq!(names, ["listener_extras(", "Token::"]);
    }
}
