//! The commands that change the learner's files: `start` (the skeleton), `reset` (back to the
//! skeleton) and `solution` (back to the reference).
//!
//! `reset` and `solution` touch the learner's functions only (and the one allow line): the rest
//! of every file stays as it is in the working tree, so a fix pulled from main into a struct or a
//! given helper after `start` is kept, and they say where the rest differs from the recorded
//! reference.

use crate::check::widths;
use crate::manifest::{Function, Manifest};
use crate::reference::{self, Reference};
use crate::run::Ctx;
use crate::skeleton::{self, remove_allow_line};
use crate::workspace::{self, fn_state};
use crate::{EXIT_USAGE, Fail, failure};
use xps_tests::rust_src::find_fn;

/// `start`: the skeleton, generated from HEAD, which becomes the recorded reference.
pub fn start(ctx: &Ctx, m: &Manifest) -> Result<u8, Fail> {
    let n = m.stage;
    let src = m.src_dir();
    if !workspace::is_git(ctx) {
        return Err(Fail(EXIT_USAGE, reference::find(ctx, m).expect_err("not a git clone")));
    }
    let dirty = workspace::dirty(ctx, &src).map_err(failure)?;
    if !dirty.is_empty() {
        return Err(Fail(
            EXIT_USAGE,
            format!(
                "{src} has changes that start would overwrite:\n{}\nNothing was changed. Keep them with `git commit` or `git stash`, or let \
                 `scripts/exercise.sh reset {n}` save them to a file and give you the skeleton.",
                dirty.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
            ),
        ));
    }
    if let Some(name) = reference::todo_at(ctx, m, "HEAD") {
        return Err(Fail(
            EXIT_USAGE,
            format!(
                "stage {n} is already started: the committed {name}() is still todo!().\n\
                 Go on with `scripts/exercise.sh check {n}`; start over with `scripts/exercise.sh reset {n}`."
            ),
        ));
    }
    let head = ctx.git(&["rev-parse", "--verify", "HEAD^{commit}"]).stdout.trim().to_string();
    let tree = workspace::tree_id(ctx, &head, &src).ok_or_else(|| failure(format!("HEAD has no {src}")))?;
    if let Ok(Reference::Recorded(old)) = reference::find(ctx, m)
        && workspace::tree_id(ctx, &old, &src).as_deref() != Some(tree.as_str())
    {
        return Err(Fail(
            EXIT_USAGE,
            format!(
                "stage {n} was already started from commit {}, and {src} was committed since.\n\
                 Go on with `scripts/exercise.sh check {n}`; start over with `scripts/exercise.sh reset {n}` (it saves your text first),\n\
                 or, to make HEAD the new reference, first delete {}",
                &old[..12],
                reference::record_path(n)
            ),
        ));
    }
    reference::record(ctx, m, &head, &tree).map_err(failure)?;
    write_skeleton(ctx, m, &head, None)?;
    println!("Stage {n} is now a skeleton: {} functions are todo!() in {src}:", m.functions.len());
    let (name_w, place_w) = widths(ctx, m);
    for f in &m.functions {
        let (_, line) = fn_state(ctx, f);
        let from6 = if f.stage6.is_some() { "  (stage 6 code for it in a comment above)" } else { "" };
        let place = format!("{}:{line}", f.file);
        println!("  {:<name_w$} {place:<place_w$} {}{from6}", format!("{}()", f.name), f.milestone.prefix());
    }
    println!();
    println!(
        "The reference is commit {}, recorded in {} (git add-ed: commit it with your work; hints, compare, reset and solution need it).",
        &head[..12],
        reference::record_path(n)
    );
    println!("`git diff {src}` now shows exactly what you will write (and one #![allow] line in {}).", m.crate_root);
    println!();
    println!("Next: scripts/exercise.sh check {n}");
    Ok(0)
}

/// What to put in the learner's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bodies {
    /// The skeleton's `todo!()`s (with the allow line).
    Skeleton,
    /// The reference's code (without the allow line).
    Reference,
}

/// Replaces the learner functions of `m` (`only`: one) in the working tree with `bodies` from
/// `rev`, leaving the rest of each file as it is; returns the files whose rest differs from `rev`.
fn restore_functions(
    ctx: &Ctx,
    m: &Manifest,
    rev: &str,
    only: Option<&Function>,
    bodies: Bodies,
) -> Result<Vec<String>, Fail> {
    let mut kept = Vec::new();
    for file in m.files() {
        let reference = workspace::show(ctx, rev, &file).map_err(failure)?;
        let mut text = workspace::read(ctx, &file).map_err(failure)?;
        for f in m.functions.iter().filter(|f| f.file == file && only.is_none_or(|o| o.name == f.name)) {
            text = match bodies {
                Bodies::Skeleton => {
                    let comment = workspace::stage6_comment(ctx, f);
                    skeleton::replace_body(m.stage, f, &text, &reference, comment.as_deref()).map_err(failure)?
                }
                Bodies::Reference => {
                    let (Some(ours), Some(theirs)) = (find_fn(&text, &f.name), find_fn(&reference, &f.name)) else {
                        return Err(failure(format!(
                            "no `fn {}` in {file}: put its signature back (git show {}:./{file})",
                            f.name,
                            &rev[..12]
                        )));
                    };
                    format!("{}{}{}", &text[..ours.body_open], theirs.body(&reference), &text[ours.body_close + 1..])
                }
            };
        }
        text = match bodies {
            Bodies::Skeleton if file == m.crate_root => skeleton::add_allow_line(&text, m.stage),
            Bodies::Skeleton => text,
            Bodies::Reference => remove_allow_line(&text),
        };
        if rest_differs(m, &file, &text, &reference) {
            kept.push(file.clone());
        }
        workspace::write(ctx, &file, &text).map_err(failure)?;
    }
    if bodies == Bodies::Skeleton && only.is_some_and(|f| f.file != m.crate_root) {
        let root = workspace::read(ctx, &m.crate_root).map_err(failure)?;
        workspace::write(ctx, &m.crate_root, &skeleton::add_allow_line(&root, m.stage)).map_err(failure)?;
    }
    Ok(kept)
}

/// Whether `text` differs from `reference` outside the learner functions (and the allow line).
pub fn rest_differs(m: &Manifest, file: &str, text: &str, reference: &str) -> bool {
    let mut text = remove_allow_line(text);
    for f in m.functions.iter().filter(|f| f.file == file) {
        if let (Some(s), Some(r)) = (find_fn(&text, &f.name), find_fn(reference, &f.name)) {
            text = format!("{}{}{}", &text[..s.body_open], r.body(reference), &text[s.body_close + 1..]);
        }
    }
    text != reference
}

fn say_kept(kept: &[String], reference: &Reference) {
    for file in kept {
        println!(
            "Kept {file} outside your functions as it is: it differs there from the reference (commit {}), \
             a newer main merged since start, say (`git diff {} -- {file}` shows how).",
            reference.short(),
            reference.short()
        );
    }
}

/// `reset`: the skeleton again, for one function or all (the learner's text saved first).
pub fn reset(ctx: &Ctx, m: &Manifest, only: Option<&Function>) -> Result<u8, Fail> {
    let n = m.stage;
    let reference = reference::find(ctx, m).map_err(failure)?;
    if matches!(reference, Reference::Head(_)) {
        return Err(Fail(EXIT_USAGE, format!("stage {n} is not started: run `scripts/exercise.sh start {n}` first")));
    }
    let label = match only {
        Some(f) => format!("stage{n:02}-{}", f.name),
        None => format!("stage{n:02}"),
    };
    let saved = workspace::backup(ctx, &label, &m.files()).map_err(failure)?;
    let kept = restore_functions(ctx, m, reference.commit(), only, Bodies::Skeleton)?;
    println!("Saved your files as they were in {}", saved.display());
    match only {
        Some(f) => println!("{}() is todo!() again ({}:{}).", f.name, f.file, fn_state(ctx, f).1),
        None => println!("Stage {n} is the skeleton again; next: scripts/exercise.sh check {n}"),
    }
    say_kept(&kept, &reference);
    Ok(0)
}

/// `solution`: the reference's code in every learner function, reading mode.
pub fn solution(ctx: &Ctx, m: &Manifest) -> Result<u8, Fail> {
    let n = m.stage;
    let src = m.src_dir();
    let reference = reference::find(ctx, m).map_err(failure)?;
    let saved = workspace::backup(ctx, &format!("stage{n:02}-before-solution"), &m.files()).map_err(failure)?;
    let kept = restore_functions(ctx, m, reference.commit(), None, Bodies::Reference)?;
    println!("Saved your files as they were in {}", saved.display());
    println!("{src}'s functions are the reference's again (commit {}): reading mode.", reference.short());
    say_kept(&kept, &reference);
    println!("`scripts/exercise.sh start {n}` gives you the skeleton again (once {src} has no uncommitted changes).");
    Ok(0)
}

/// Writes the skeleton of every learner file of `m` from `rev` (`only`: one function, into the
/// current text).
fn write_skeleton(ctx: &Ctx, m: &Manifest, rev: &str, only: Option<&Function>) -> Result<(), Fail> {
    restore_functions(ctx, m, rev, only, Bodies::Skeleton).map(drop)
}
