//! `xps-exercise`: the "do it yourself" mode behind `scripts/exercise.sh`.
//!
//! A learner turns a stage into a skeleton generated from the reference (`start`), and the
//! stage's milestone checks, run in the page's order, say what to write next (`check`). Hints,
//! a comparison with the reference, a reset and the way back to the reference complete it. The
//! functions each stage has the learner write are listed in `tests/exercises/stageNN.txt`.

mod check;
mod edit;
mod manifest;
mod next_step;
mod read;
mod reference;
mod run;
mod runner;
mod selftest;
mod skeleton;
mod watch;
mod workspace;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use manifest::Manifest;
use run::Ctx;

const PROGRAM: &str = "exercise.sh";

/// Exit status for bad input (unknown stage or function, a tree `start` would overwrite).
pub(crate) const EXIT_USAGE: u8 = 2;

const HELP: &str = "\
Usage: scripts/exercise.sh COMMAND STAGE [FUNCTION] [LEVEL]

Do the course yourself: turn a stage into a skeleton whose functions are todo!(), and let the
milestone checks tell you what to write next. STAGE is 6 or 7.

Commands:
  start STAGE                    turn STAGE's code into the skeleton (its folder must be clean)
  check STAGE [--strict]         run the milestones in the page's order; show the next step
  watch STAGE                    run check again each time a file of the stage is saved
  hint STAGE FUNCTION [LEVEL]    hints for FUNCTION: 1 the page, 2 the steps in Rust, 3 the code
  compare STAGE [FUNCTION]       your code against the reference
  reset STAGE [FUNCTION]         back to the skeleton (your text is saved first)
  solution STAGE                 back to the reference, reading mode (your text is saved first)
  status STAGE                   which functions are still todo!(), which milestones pass

`scripts/exercise.sh COMMAND --help` says more about each command; docs/exercises.md is the guide.
Without git (a zip download), check, watch, status and hints 1-2 work; the rest need history.

Exit status: 0 on success (check: every milestone and course check passes), 1 if a check or
command failed, 2 for bad input.
";

fn command_help(command: &str) -> Option<&'static str> {
    Some(match command {
        "start" => {
            "Usage: scripts/exercise.sh start STAGE

Turns stageNN/src into the skeleton: the body of every function the page has you write
becomes todo!(\"...\") naming the function and the page's section; everything else (structs,
fields, signatures, docs, the Rust-only plumbing) stays as in the reference. It records the
reference commit in .xps-exercise/stageNN.txt (and git add-s it: commit it with your work), so
hints, compare, reset and solution find the reference in any clone. It adds one #![allow(unused_imports, dead_code)] line to the crate
root (todo!() bodies leave imports unused); solution removes it.

Stage 7: where the page says a function keeps stage 6's logic, your own stage 6 code for it
(from stage06/src, if you wrote it) goes in a comment above the todo!().

stageNN/src must have no uncommitted changes: start refuses (exit 2) rather than overwrite them.
"
        }
        "check" => {
            "Usage: scripts/exercise.sh check STAGE [--strict]

Builds the stage, then runs its checks in the page's order: milestone_1, milestone_2,
course_check_1, course_check_2, course_check_3. It stops at the first that fails and prints one
next step: the function to write or fix first (file:line, and why), what the check saw, the
page's section and hint 1. Once they all pass, it runs the extras (the workspace's checks beyond
the course) and lists every one that fails. Compile errors are shown as such. Every check has a
time limit; on a terminal, a check that takes more than 2 s shows a `still running` line.

Exit status: 0 when every milestone and course check passes (--strict: and every extra), 1
otherwise, 2 for bad input.
"
        }
        "watch" => {
            "Usage: scripts/exercise.sh watch STAGE

Runs check, then runs it again each time a file of stageNN/src is saved (it looks at their
modification times twice a second), clearing the screen first on a terminal. Says when the stage
is done. Ctrl+C stops it.
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

Puts FUNCTION (or every function you write) back to the skeleton; the rest of each file stays
as it is. Your current text is saved first, in a folder under .git/xps-exercise/backups/ that
reset names.
"
        }
        "solution" => {
            "Usage: scripts/exercise.sh solution STAGE

Back to reading mode: each function you write becomes the reference's code again (from the
commit start recorded in .xps-exercise/stageNN.txt). The rest of each file stays as it is, so a
fix merged from main since start is kept. Your current text is saved first, in a folder under
.git/xps-exercise/backups/.
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
and fails only the extra fd-reuse check. The reference must also pass every extra (--strict).
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

pub(crate) fn failure(message: impl Into<String>) -> Fail {
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

/// The workspace: `XPS_EXERCISE_ROOT` (scripts/exercise.sh sets it), else the folder above the
/// current one that has the exercise manifests. Found at run time, so a moved clone works.
fn root() -> PathBuf {
    if let Some(root) = std::env::var_os("XPS_EXERCISE_ROOT") {
        return PathBuf::from(root);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors().find(|dir| is_workspace(dir)).map_or(cwd.clone(), Path::to_path_buf)
}

fn is_workspace(dir: &Path) -> bool {
    dir.join("Cargo.toml").is_file() && dir.join("tests/exercises/stage06.txt").is_file()
}

fn dispatch(args: &[String]) -> Result<u8, Fail> {
    let Some(command) = args.first() else {
        return Err(usage("which command? start, check, watch, hint, compare, reset, solution or status"));
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        print!("{HELP}");
        return Ok(0);
    }
    let Some(help) = command_help(command) else {
        return Err(usage(format!("unknown command '{command}'")));
    };
    let rest: Vec<&String> = args[1..].iter().collect();
    if rest.iter().any(|a| *a == "-h" || *a == "--help") {
        print!("{help}");
        return Ok(0);
    }
    let strict = command == "check" && rest.iter().any(|a| *a == "--strict");
    let rest: Vec<String> = rest.into_iter().filter(|a| !(strict && *a == "--strict")).cloned().collect();
    if let Some(option) = rest.iter().find(|a| a.starts_with('-')) {
        return Err(usage(format!("unknown option '{option}' for {command}")));
    }
    let ctx = Ctx { root: root(), target_dir: None };
    if command == "selftest" {
        let stages = match rest.as_slice() {
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
    if !is_workspace(&ctx.root) {
        return Err(usage(format!(
            "{} is not the workspace (no Cargo.toml and tests/exercises/ there): run scripts/exercise.sh from your clone",
            ctx.root.display()
        )));
    }
    let needs_history = matches!(command.as_str(), "start" | "compare" | "reset" | "solution") || level == 3;
    if needs_history && !workspace::is_git(&ctx) {
        return Err(Fail(EXIT_USAGE, reference::find(&ctx, &m).expect_err("not a git clone")));
    }
    match command.as_str() {
        "start" => edit::start(&ctx, &m),
        "check" => Ok(check::check(&ctx, &m, strict)),
        "watch" => watch::watch(&ctx, &m),
        "hint" => read::hint(&ctx, &m, function.expect("hint needs a function"), level),
        "compare" => read::compare(&ctx, &m, function),
        "reset" => edit::reset(&ctx, &m, function),
        "solution" => edit::solution(&ctx, &m),
        "status" => Ok(check::status(&ctx, &m, &started(&ctx, &m))),
        _ => unreachable!("command_help knows every command"),
    }
}

/// What `status` says about where the stage stands.
fn started(ctx: &Ctx, m: &Manifest) -> String {
    let n = m.stage;
    match reference::recorded(ctx, n) {
        Some((commit, _)) => {
            format!(
                "started (reference {}, recorded in {})",
                &commit[..commit.len().min(12)],
                reference::record_path(n)
            )
        }
        None => format!("not started (scripts/exercise.sh start {n}); {} is the reference", m.src_dir()),
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
