//! `xps-exercise`: the "do it yourself" mode behind `scripts/exercise.sh`.
//!
//! A learner turns a stage into a skeleton generated from the reference (`start`), and the
//! stage's milestone checks, run in the page's order, say what to write next (`check`). Hints,
//! a comparison with the reference, a reset and the way back to the reference complete it. The
//! functions each stage has the learner write are listed in `tests/exercises/stageNN.txt`.

mod check;
mod manifest;
mod run;
mod selftest;
mod skeleton;
mod workspace;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use manifest::{MILESTONES, Manifest, milestone_index};
use run::Ctx;
use skeleton::{is_todo, remove_allow_line};
use workspace::{FnState, fn_state};
use xps_tests::rust_src::find_fn;

const PROGRAM: &str = "exercise.sh";

/// Exit status for bad input (unknown stage or function, a tree `start` would overwrite).
const EXIT_USAGE: u8 = 2;

const HELP: &str = "\
Usage: scripts/exercise.sh COMMAND STAGE [FUNCTION] [LEVEL]

Do the course yourself: turn a stage into a skeleton whose functions are todo!(), and let the
milestone checks tell you what to write next. STAGE is 6 or 7.

Commands:
  start STAGE                    turn STAGE's code into the skeleton (its folder must be clean)
  check STAGE                    run the milestones in the page's order; show the next step
  hint STAGE FUNCTION [LEVEL]    hints for FUNCTION: 1 the page, 2 the steps in Rust, 3 the code
  compare STAGE [FUNCTION]       your code against the reference
  reset STAGE [FUNCTION]         back to the skeleton (your text is saved first)
  solution STAGE                 back to the reference, reading mode (your text is saved first)
  status STAGE                   which functions are still todo!(), which milestones pass

`scripts/exercise.sh COMMAND --help` says more about each command; docs/exercises.md is the guide.

Exit status: 0 on success (check: every milestone passes), 1 if a check or command failed,
2 for bad input.
";

fn command_help(command: &str) -> Option<&'static str> {
    Some(match command {
        "start" => {
            "Usage: scripts/exercise.sh start STAGE

Turns stageNN/src into the skeleton: the body of every function the page has you write
becomes todo!(\"...\") naming the function and the page's section; everything else (structs,
fields, signatures, docs, the Rust-only plumbing) stays as in the reference. It records the
reference commit as refs/xps-exercise/stageNN, so hints, compare, reset and solution keep
working after you commit. It adds one #![allow(unused_imports, dead_code)] line to the crate
root (todo!() bodies leave imports unused); solution removes it.

Stage 7: where the page says a function keeps stage 6's logic, your own stage 6 code for it
(from stage06/src, if you wrote it) goes in a comment above the todo!().

stageNN/src must have no uncommitted changes: start refuses (exit 2) rather than overwrite them.
"
        }
        "check" => {
            "Usage: scripts/exercise.sh check STAGE

Builds the stage, then runs its checks in the page's order (cargo test -p stageNN PREFIX):
milestone_1, milestone_2, course_check_1, course_check_2, course_check_3, then extra (the
workspace's checks beyond the course). It stops at the first that fails and prints one next
step: the function to write or fix (file:line), the page's section, what the check saw, and
hint 1. Compile errors are shown as such. Every run is time-limited.

Exit status: 0 when every milestone passes, 1 otherwise, 2 for bad input.
"
        }
        "hint" => {
            "Usage: scripts/exercise.sh hint STAGE FUNCTION [LEVEL]

LEVEL 1 (default): what the page's section asks. 2: the steps in Rust terms (which shared::sys
call, what to log, what to undo on error). 3: the reference's own code for FUNCTION.
"
        }
        "compare" => {
            "Usage: scripts/exercise.sh compare STAGE [FUNCTION]

Shows, function by function, how your code differs from the reference (a unified diff: - the
reference, + yours). Without FUNCTION, every function of the stage.
"
        }
        "reset" => {
            "Usage: scripts/exercise.sh reset STAGE [FUNCTION]

Puts FUNCTION (or the whole stage) back to the skeleton. Your current text is saved first, in
a folder under .git/xps-exercise/backups/ that reset names.
"
        }
        "solution" => {
            "Usage: scripts/exercise.sh solution STAGE

Back to reading mode: stageNN/src becomes the reference again (the commit start recorded, or
HEAD). Your current text is saved first, in a folder under .git/xps-exercise/backups/.
"
        }
        "status" => {
            "Usage: scripts/exercise.sh status STAGE

Lists the stage's functions (todo!() or written) with their milestone, then runs every
milestone and says which pass.
"
        }
        "selftest" => {
            "Usage: xps-exercise selftest [STAGE]

Proves the exercise mode on a scratch copy of the workspace (under the target folder): the
skeleton builds and check fails at Milestone #1 naming the first function; the reference passes
every milestone; each learner function alone put back to todo!() fails at its manifest
milestone; stageNN/src has no todo!(); for stage 7, the page-shaped loop passes every milestone
and fails only the extra fd-reuse check.
"
        }
        _ => return None,
    })
}

/// An error to report: its message and exit status.
pub(crate) struct Fail(pub u8, pub String);

fn usage(message: impl Into<String>) -> Fail {
    Fail(EXIT_USAGE, format!("{}\nTry 'scripts/exercise.sh --help' for more information.", message.into()))
}

fn failure(message: impl Into<String>) -> Fail {
    Fail(1, message.into())
}

fn main() -> ExitCode {
    // Die quietly when the reader of our output goes away (`| head`), as command-line tools do,
    // instead of panicking on the failed print.
    // SAFETY: signal() with SIG_DFL installs no handler of ours; it runs before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    run::forward_interrupts();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, message)) => {
            eprintln!("{PROGRAM}: {message}");
            ExitCode::from(code)
        }
    }
}

fn root() -> PathBuf {
    if let Some(root) = std::env::var_os("XPS_EXERCISE_ROOT") {
        return PathBuf::from(root);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

fn dispatch(args: &[String]) -> Result<u8, Fail> {
    let Some(command) = args.first() else {
        return Err(usage("which command? start, check, hint, compare, reset, solution or status"));
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        print!("{HELP}");
        return Ok(0);
    }
    let Some(help) = command_help(command) else {
        return Err(usage(format!("unknown command '{command}'")));
    };
    let rest = &args[1..];
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        print!("{help}");
        return Ok(0);
    }
    if let Some(option) = rest.iter().find(|a| a.starts_with('-')) {
        return Err(usage(format!("unknown option '{option}' for {command}")));
    }
    let ctx = Ctx { root: root(), target_dir: None };
    if command == "selftest" {
        let stages = match rest {
            [] => vec![6, 7],
            [stage] => vec![parse_stage(stage)?.stage],
            _ => return Err(usage("selftest takes at most one STAGE")),
        };
        return selftest::run(&ctx, &stages).map_err(failure);
    }
    let Some(stage) = rest.first() else {
        return Err(usage(format!("which stage? for example: scripts/exercise.sh {command} 6")));
    };
    let m = parse_stage(stage)?;
    let (max_args, needs_function) = match command.as_str() {
        "hint" => (3, true),
        "compare" | "reset" => (2, false),
        _ => (1, false),
    };
    if rest.len() > max_args {
        return Err(usage(format!("too many arguments for {command}: '{}'", rest[max_args..].join(" "))));
    }
    let function = match rest.get(1) {
        Some(name) => Some(find_function(&m, name)?),
        None if needs_function => {
            return Err(usage(format!(
                "which function? stage {} has: {}",
                m.stage,
                m.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        None => None,
    };
    let level = match (command.as_str(), rest.get(2).map(String::as_str)) {
        (_, None | Some("1")) => 1,
        ("hint", Some("2")) => 2,
        ("hint", Some("3")) => 3,
        (_, Some(other)) => return Err(usage(format!("unknown hint level '{other}': 1, 2 or 3"))),
    };
    if !workspace::is_git(&ctx) {
        return Err(usage(format!(
            "{} is not a git clone: the exercise mode keeps the reference in git",
            ctx.root.display()
        )));
    }
    match command.as_str() {
        "start" => start(&ctx, &m),
        "check" => check(&ctx, &m),
        "hint" => hint(&ctx, &m, function.expect("hint needs a function"), level),
        "compare" => compare(&ctx, &m, function),
        "reset" => reset(&ctx, &m, function),
        "solution" => solution(&ctx, &m),
        "status" => status(&ctx, &m),
        _ => unreachable!("command_help knows every command"),
    }
}

fn parse_stage(stage: &str) -> Result<Manifest, Fail> {
    let n: u8 = match stage.trim_start_matches("stage").trim_start_matches('0') {
        "6" => 6,
        "7" => 7,
        _ => return Err(usage(format!("unknown stage '{stage}': the exercise mode has stages 6 and 7"))),
    };
    Ok(manifest::load(n).expect("stages 6 and 7 have manifests"))
}

fn find_function<'a>(m: &'a Manifest, name: &str) -> Result<&'a manifest::Function, Fail> {
    let name = name.trim_end_matches("()");
    m.function(name).ok_or_else(|| {
        usage(format!(
            "stage {} has no learner function '{name}'; its functions are: {}",
            m.stage,
            m.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// `start`: the skeleton, generated from HEAD, which becomes the recorded reference.
pub(crate) fn start(ctx: &Ctx, m: &Manifest) -> Result<u8, Fail> {
    let n = m.stage;
    let src = m.src_dir();
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
    for f in &m.functions {
        let text = workspace::show(ctx, "HEAD", &f.file).map_err(failure)?;
        let span = find_fn(&text, &f.name).ok_or_else(|| {
            failure(format!("{} at HEAD has no `fn {}`: is this a clone of the workspace?", f.file, f.name))
        })?;
        if is_todo(span.body(&text)) {
            return Err(Fail(
                EXIT_USAGE,
                format!(
                    "stage {n} is already started: the committed {}() ({}) is still todo!().\n\
                     Go on with `scripts/exercise.sh check {n}`; start over with `scripts/exercise.sh reset {n}`.",
                    f.name, f.file
                ),
            ));
        }
    }
    if let Some(recorded) = workspace::recorded(ctx, n)
        && workspace::tree_id(ctx, &recorded, &src) != workspace::tree_id(ctx, "HEAD", &src)
    {
        return Err(Fail(
            EXIT_USAGE,
            format!(
                "stage {n} was already started from commit {}, and {src} was committed since.\n\
                 Go on with `scripts/exercise.sh check {n}`; start over with `scripts/exercise.sh reset {n}` (it saves your text first),\n\
                 or, to make HEAD the new reference, first run: git update-ref -d {}",
                &recorded[..recorded.len().min(12)],
                workspace::ref_name(n)
            ),
        ));
    }
    let out = ctx.git(&["update-ref", &workspace::ref_name(n), "HEAD"]);
    if !out.ok() {
        return Err(failure(format!("git update-ref failed: {}", out.stderr.trim())));
    }
    let head = ctx.git(&["rev-parse", "--short", "HEAD"]).stdout.trim().to_string();
    write_skeleton(ctx, m, "HEAD", None)?;
    println!("Stage {n} is now a skeleton: {} functions are todo!() in {src}:", m.functions.len());
    let (name_w, place_w) = widths(ctx, m);
    for f in &m.functions {
        let (_, line) = fn_state(ctx, f);
        let from6 = if f.stage6.is_some() { "  (stage 6 code for it in a comment above)" } else { "" };
        let place = format!("{}:{line}", f.file);
        println!("  {:<name_w$} {place:<place_w$} {}{from6}", format!("{}()", f.name), f.milestone);
    }
    println!();
    println!(
        "The reference is commit {head}, recorded as {} (for hints, compare, reset, solution).",
        workspace::ref_name(n)
    );
    println!("`git diff {src}` now shows exactly what you will write (and one #![allow] line in {}).", m.crate_root);
    println!();
    println!("Next: scripts/exercise.sh check {n}");
    Ok(0)
}

/// Writes the skeleton of every learner file of `m` from `rev` (`only`: one function, into the
/// current text).
fn write_skeleton(ctx: &Ctx, m: &Manifest, rev: &str, only: Option<&manifest::Function>) -> Result<(), Fail> {
    let comment = |f: &manifest::Function| workspace::stage6_comment(ctx, f);
    match only {
        Some(f) => {
            let reference = workspace::show(ctx, rev, &f.file).map_err(failure)?;
            let current = workspace::read(ctx, &f.file).map_err(failure)?;
            let mut text =
                skeleton::replace_body(m.stage, f, &current, &reference, comment(f).as_deref()).map_err(failure)?;
            if f.file == m.crate_root {
                text = skeleton::add_allow_line(&text, m.stage);
            } else {
                let root = workspace::read(ctx, &m.crate_root).map_err(failure)?;
                workspace::write(ctx, &m.crate_root, &skeleton::add_allow_line(&root, m.stage)).map_err(failure)?;
            }
            workspace::write(ctx, &f.file, &text).map_err(failure)
        }
        None => {
            for (file, reference) in workspace::reference_texts(ctx, m, rev).map_err(failure)? {
                let text = skeleton::skeleton_file(m, &file, &reference, &comment).map_err(failure)?;
                workspace::write(ctx, &file, &text).map_err(failure)?;
            }
            Ok(())
        }
    }
}

fn check(ctx: &Ctx, m: &Manifest) -> Result<u8, Fail> {
    println!("Stage {}: building, then the milestones in the page's order (cargo test -p {} PREFIX)", m.stage, m.krate);
    match check::run_all(ctx, m, None, true) {
        Err(errors) => {
            println!("  FAIL  the stage does not compile yet");
            println!();
            println!("{errors}");
            println!();
            println!("Fix the code the compiler points to; todo!() bodies are fine, they compile.");
            Ok(1)
        }
        Ok(results) => Ok(if check::report(ctx, m, &results) { 0 } else { 1 }),
    }
}

fn hint(ctx: &Ctx, m: &Manifest, f: &manifest::Function, level: u8) -> Result<u8, Fail> {
    let n = m.stage;
    let milestone = MILESTONES[milestone_index(&f.milestone).expect("manifest milestones are known")].1;
    println!(
        "{}() -- hint {level} of 3 (stage {n}, page section \"{}\"; checked from {milestone} on)",
        f.name, f.section
    );
    println!();
    match level {
        1 | 2 => println!("{}", f.hints[usize::from(level) - 1]),
        _ => {
            let rev = workspace::reference_rev(ctx, n);
            let text = workspace::show(ctx, &rev, &f.file).map_err(failure)?;
            let span =
                find_fn(&text, &f.name).ok_or_else(|| failure(format!("no `fn {}` in {} at {rev}", f.name, f.file)))?;
            if is_todo(span.body(&text)) {
                return Err(failure(format!(
                    "{rev}'s {}() is a todo!(), not the reference: run `scripts/exercise.sh start {n}` from a commit of main first",
                    f.name
                )));
            }
            println!("The reference's code ({} at {}):", f.file, &rev[..rev.len().min(12)]);
            println!();
            let item = &text[span.item_start..=span.body_close];
            println!(
                "{}",
                item.lines().map(|l| l.strip_prefix(span.indent.as_str()).unwrap_or(l)).collect::<Vec<_>>().join("\n")
            );
        }
    }
    if level < 3 {
        println!();
        println!("More: scripts/exercise.sh hint {n} {} {}", f.name, level + 1);
    }
    Ok(0)
}

fn compare(ctx: &Ctx, m: &Manifest, only: Option<&manifest::Function>) -> Result<u8, Fail> {
    let n = m.stage;
    let rev = workspace::reference_rev(ctx, n);
    let dir = workspace::git_path(ctx, "compare").map_err(failure)?;
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["reference", "yours"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    println!(
        "Stage {n}: your code (+) against the reference (-, commit {}), function by function",
        &rev[..rev.len().min(12)]
    );
    let functions: Vec<&manifest::Function> = match only {
        Some(f) => vec![f],
        None => m.functions.iter().collect(),
    };
    let (mut todo, mut same) = (Vec::new(), Vec::new());
    for f in functions {
        let reference = workspace::show(ctx, &rev, &f.file).map_err(failure)?;
        let ref_span =
            find_fn(&reference, &f.name).ok_or_else(|| failure(format!("no `fn {}` in the reference", f.name)))?;
        let yours = workspace::read(ctx, &f.file).map_err(failure)?;
        let Some(span) = find_fn(&yours, &f.name) else {
            println!("\n{}(): not found in {} (the checks call it by this name)", f.name, f.file);
            continue;
        };
        let (a, b) = (ref_span.text(&reference), span.text(&yours));
        if is_todo(span.body(&yours)) {
            todo.push(format!("{}()", f.name));
        } else if a == b {
            same.push(format!("{}()", f.name));
        } else {
            println!("\n{}()  ({}:{})", f.name, f.file, span.line(&yours));
            let file = format!("{}.rs", f.name);
            std::fs::write(dir.join("reference").join(&file), format!("{a}\n")).map_err(|e| failure(e.to_string()))?;
            std::fs::write(dir.join("yours").join(&file), format!("{b}\n")).map_err(|e| failure(e.to_string()))?;
            let color =
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) { "--color=always" } else { "--no-color" };
            let out = Command::new("git")
                .current_dir(&dir)
                .args(["diff", "--no-index", "--no-prefix", color, "--"])
                .arg(format!("reference/{file}"))
                .arg(format!("yours/{file}"))
                .output()
                .map_err(|e| failure(format!("could not run git diff: {e}")))?;
            let text = String::from_utf8_lossy(&out.stdout);
            // The file names say it all; git's own header lines would only add noise.
            for line in text.lines().skip_while(|l| !l.contains("--- reference/")) {
                println!("{line}");
            }
        }
    }
    if !same.is_empty() {
        println!("\nThe same as the reference: {}", same.join(", "));
    }
    if !todo.is_empty() {
        println!("\nStill todo!(): {}", todo.join(", "));
    }
    if only.is_none() {
        // Changes outside the learner functions (the allow line aside).
        for (file, reference) in workspace::reference_texts(ctx, m, &rev).map_err(failure)? {
            let Ok(mut yours) = workspace::read(ctx, &file) else { continue };
            for f in m.functions.iter().filter(|f| f.file == file) {
                if let (Some(s), Some(r)) = (find_fn(&yours, &f.name), find_fn(&reference, &f.name)) {
                    yours = format!("{}{}{}", &yours[..s.body_open], r.body(&reference), &yours[s.body_close + 1..]);
                }
            }
            if remove_allow_line(&yours) != reference {
                println!(
                    "\nNote: {file} also differs from the reference outside these functions (git diff {rev} -- {file})."
                );
            }
        }
    }
    Ok(0)
}

fn reset(ctx: &Ctx, m: &Manifest, only: Option<&manifest::Function>) -> Result<u8, Fail> {
    let n = m.stage;
    let Some(rev) = workspace::recorded(ctx, n) else {
        return Err(Fail(EXIT_USAGE, format!("stage {n} is not started: run `scripts/exercise.sh start {n}` first")));
    };
    let src = m.src_dir();
    match only {
        Some(f) => {
            let saved =
                workspace::backup(ctx, &format!("stage{n:02}-{}", f.name), &[f.file.clone(), m.crate_root.clone()])
                    .map_err(failure)?;
            write_skeleton(ctx, m, &rev, Some(f))?;
            println!("Saved {} as it was in {}", f.file, saved.display());
            println!("{}() is todo!() again ({}:{}).", f.name, f.file, fn_state(ctx, f).1);
        }
        None => {
            let files = workspace::work_files(ctx, &src);
            let saved = workspace::backup(ctx, &format!("stage{n:02}"), &files).map_err(failure)?;
            restore_reference(ctx, &rev, &src)?;
            write_skeleton(ctx, m, &rev, None)?;
            println!("Saved {src} as it was in {}", saved.display());
            println!("Stage {n} is the skeleton again; next: scripts/exercise.sh check {n}");
        }
    }
    Ok(0)
}

/// Writes every file of `dir` at `rev` into the working tree (the index is left alone).
fn restore_reference(ctx: &Ctx, rev: &str, dir: &str) -> Result<(), Fail> {
    for file in workspace::ls_tree(ctx, rev, dir).map_err(failure)? {
        let text = workspace::show(ctx, rev, &file).map_err(failure)?;
        if let Some(parent) = ctx.path(&file).parent() {
            std::fs::create_dir_all(parent).map_err(|e| failure(format!("cannot create {}: {e}", parent.display())))?;
        }
        workspace::write(ctx, &file, &text).map_err(failure)?;
    }
    Ok(())
}

fn solution(ctx: &Ctx, m: &Manifest) -> Result<u8, Fail> {
    let n = m.stage;
    let rev = workspace::reference_rev(ctx, n);
    for f in &m.functions {
        let text = workspace::show(ctx, &rev, &f.file).map_err(failure)?;
        if find_fn(&text, &f.name).is_none_or(|span| is_todo(span.body(&text))) {
            return Err(failure(format!(
                "{rev} is not the reference ({}() is todo!() there) and no reference was recorded: check out main's {} first",
                f.name,
                m.src_dir()
            )));
        }
    }
    let src = m.src_dir();
    let files = workspace::work_files(ctx, &src);
    let saved = workspace::backup(ctx, &format!("stage{n:02}-before-solution"), &files).map_err(failure)?;
    restore_reference(ctx, &rev, &src)?;
    println!("Saved {src} as it was in {}", saved.display());
    println!("{src} is the reference again (commit {}): reading mode.", &rev[..rev.len().min(12)]);
    println!("`scripts/exercise.sh start {n}` gives you the skeleton again (once {src} has no uncommitted changes).");
    Ok(0)
}

fn status(ctx: &Ctx, m: &Manifest) -> Result<u8, Fail> {
    let n = m.stage;
    match workspace::recorded(ctx, n) {
        Some(rev) => println!("Stage {n}: started (reference {})", &rev[..12]),
        None => println!("Stage {n}: not started (scripts/exercise.sh start {n}); {} is the reference", m.src_dir()),
    }
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
        println!("  {state:<8} {:<name_w$} {place:<place_w$} {}", format!("{}()", f.name), f.milestone);
    }
    println!();
    println!("Milestones:");
    match check::run_all(ctx, m, None, false) {
        Err(errors) => {
            println!("  the stage does not compile yet:\n{}", check::indent(&errors, "    "));
        }
        Ok(results) => {
            for (result, (_, label)) in results.iter().zip(MILESTONES) {
                let verdict = if result.passed() {
                    format!("pass ({} checks)", result.passed.len())
                } else if let Some(error) = &result.error {
                    format!("FAIL: {}", error.lines().next().unwrap_or_default())
                } else {
                    let total = result.failed.len() + result.passed.len();
                    let checks = if total == 1 { "check" } else { "checks" };
                    format!("FAIL ({} of {total} {checks} failed)", result.failed.len())
                };
                println!("  {:<16} {verdict}   {label}", result.prefix);
            }
        }
    }
    println!();
    println!("Next step: scripts/exercise.sh check {n}");
    Ok(0)
}

/// Column widths for a table of `m`'s functions: `name()` and `file:line`.
fn widths(ctx: &Ctx, m: &Manifest) -> (usize, usize) {
    let name = m.functions.iter().map(|f| f.name.len() + 2).max().unwrap_or(0);
    let place = m.functions.iter().map(|f| f.file.len() + 1 + fn_state(ctx, f).1.to_string().len()).max().unwrap_or(0);
    (name, place)
}
