//! The exercise mode wherever the workspace lives: a subfolder of a bigger repository, a clone
//! moved after building, a zip download without `.git`.
//!
//! These build the stage in scratch copies: they take [`support::serial`].

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Running, base, copy_workspace, exercise, exercise_in, git, serial};

const LIMIT: Duration = Duration::from_secs(60);
const CHECK: Duration = Duration::from_secs(600);

#[test]
fn the_workspace_as_a_subfolder_of_a_bigger_repository() {
    let _serial = serial();
    let outer = base().join("outer");
    // Afresh: an earlier run's repository here would leave this run nothing to commit.
    let _ = std::fs::remove_dir_all(&outer);
    let root = outer.join("xps");
    copy_workspace(&root);
    std::fs::write(outer.join("README.md"), "A course repository with the workspace in xps/.\n").expect("write");
    git(&outer, &["init", "-q"]);
    git(&outer, &["add", "-A"]);
    git(&outer, &["commit", "-q", "-m", "a course repository"]);

    let start = exercise(&root, &["start", "6"], LIMIT);
    assert_eq!(start.code, Some(0), "start 6 in a subfolder:\n{}", start.all());
    assert!(root.join(".xps-exercise/stage06.txt").is_file(), "the record is in the workspace");
    let check = exercise(&root, &["check", "6"], CHECK);
    assert_eq!(check.code, Some(1), "{}", check.all());
    assert!(
        check.stdout.contains("Next step\n  write:    xps_loop_create()  at stage06/src/main.rs:"),
        "{}",
        check.all()
    );
    let hint = exercise(&root, &["hint", "6", "xps_loop_create", "3"], LIMIT);
    assert!(hint.code == Some(0) && hint.stdout.contains("inspect_err"), "hint 3:\n{}", hint.all());
    let compare = exercise(&root, &["compare", "6"], LIMIT);
    assert!(
        compare.code == Some(0) && compare.stdout.contains("Still todo!(): xps_loop_create()"),
        "{}",
        compare.all()
    );
    let reset = exercise(&root, &["reset", "6", "xps_loop_create"], LIMIT);
    assert_eq!(reset.code, Some(0), "reset:\n{}", reset.all());
    let solution = exercise(&root, &["solution", "6"], LIMIT);
    assert_eq!(solution.code, Some(0), "solution:\n{}", solution.all());
    let status = git(&outer, &["status", "--porcelain", "--", "xps/stage06/src"]);
    assert_eq!(status, "", "solution gives back the reference exactly");
}

#[test]
fn a_clone_moved_after_building_passes_check_on_the_reference() {
    let _serial = serial();
    let (before, after) = (base().join("moved-before"), base().join("moved-after"));
    let _ = std::fs::remove_dir_all(&after);
    copy_workspace(&before);
    git(&before, &["init", "-q"]);
    git(&before, &["add", "-A"]);
    git(&before, &["commit", "-q", "-m", "a clone"]);
    // Built where it was cloned, with its own target folder inside it, as `cargo test` does.
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["test", "-p", "stage06", "--no-run", "--quiet"]).current_dir(&before).env_remove("CARGO_TARGET_DIR");
    let mut build = Running::start(cmd);
    assert_eq!(build.wait(CHECK), Some(0), "the build failed:\n{}", build.output().1);
    std::fs::rename(&before, &after).expect("move the clone");

    let check = exercise_in(&after, &after.join("target"), &after, &["check", "6"], CHECK);
    assert_eq!(check.code, Some(0), "check 6 on the reference, moved after building:\n{}", check.all());
    assert!(check.stdout.contains("ok    Milestone #2"), "{}", check.all());
}

#[test]
fn a_zip_download_without_git_checks_and_gives_hints_1_and_2() {
    let _serial = serial();
    // Outside any repository: under target/, git would find the workspace's own.
    let root = std::env::temp_dir().join(format!("xps-exercise-zip-{}", std::process::id()));
    copy_workspace(&root);
    let check = exercise(&root, &["check", "6"], CHECK);
    assert_eq!(check.code, Some(0), "check 6 without git:\n{}", check.all());
    for level in ["1", "2"] {
        let hint = exercise(&root, &["hint", "6", "xps_loop_create", level], LIMIT);
        assert!(hint.code == Some(0) && hint.stdout.contains("hint"), "hint {level} without git:\n{}", hint.all());
    }
    for args in [&["hint", "6", "xps_loop_create", "3"][..], &["compare", "6"], &["start", "6"], &["solution", "6"]] {
        let ran = exercise(&root, args, LIMIT);
        assert_eq!(ran.code, Some(2), "{args:?} without git:\n{}", ran.all());
        assert!(ran.stderr.contains("is not a git clone (downloaded as a zip?)"), "{args:?} says why:\n{}", ran.all());
    }
    let _ = std::fs::remove_dir_all(&root);
}
