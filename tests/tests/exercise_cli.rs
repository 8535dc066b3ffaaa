//! The exercise tool's command line (`scripts/exercise.sh`, i.e. `xps-exercise`): help, and
//! bad input refused with a clear message and exit status 2 before anything is touched. The
//! tool's behaviour on a workspace is proven by `xps-exercise selftest` (run by `.ci/run`).

use assert_cmd::Command;
use predicates::str::contains;

fn exercise() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xps-exercise"));
    // A folder that is no workspace: none of these may get as far as reading one.
    cmd.env("XPS_EXERCISE_ROOT", std::env::temp_dir().join("xps-exercise-no-such-workspace"));
    cmd
}

#[test]
fn help_lists_every_command_and_each_command_has_its_own() {
    let out = exercise().arg("--help").assert().success();
    let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for command in ["start", "check", "watch", "hint", "compare", "reset", "solution", "status"] {
        assert!(help.contains(&format!("  {command} STAGE")), "--help does not list {command}:\n{help}");
        exercise().args([command, "--help"]).assert().success().stdout(contains(format!("exercise.sh {command}")));
    }
}

#[test]
fn bad_input_exits_2_saying_what_is_wrong() {
    let cases: [(&[&str], &str); 8] = [
        (&[], "which command?"),
        (&["build", "6"], "unknown command 'build'"),
        (&["check"], "which stage?"),
        (&["check", "8"], "unknown stage '8'"),
        (&["hint", "6"], "which function? stage 6 has: xps_loop_create"),
        (&["hint", "6", "xps_loop_crate"], "stage 6 has no learner function 'xps_loop_crate'"),
        (&["hint", "7", "loop_event_create", "4"], "unknown hint level '4'"),
        (&["check", "6"], "is not the workspace"),
    ];
    for (args, message) in cases {
        exercise().args(args).assert().code(2).stderr(contains(message));
    }
}
