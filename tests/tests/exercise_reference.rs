//! The exercise mode never takes the learner's code for the reference, and never loses a newer
//! main: a pushed and re-cloned learner repository, a shallow clone, `start 7` over a learner's
//! own stage 6, and a main merged after `start`. These run only git and the tool's text
//! commands (nothing is built).

mod support;

use std::path::Path;
use std::time::Duration;

use support::{edit, exercise, git, scratch};
use xps_tests::rust_src::find_fn;

const LIMIT: Duration = Duration::from_secs(60);

/// Puts `body` (braces included) in place of `function`'s body in `file`.
fn write_body(root: &Path, file: &str, function: &str, body: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).expect("read the file");
    let span = find_fn(&text, function).unwrap_or_else(|| panic!("no fn {function} in {file}"));
    let text = format!("{}{body}{}", &text[..span.body_open], &text[span.body_close + 1..]);
    std::fs::write(&path, text).expect("write the file");
}

fn body_of(root: &Path, file: &str, function: &str) -> String {
    let text = std::fs::read_to_string(root.join(file)).expect("read the file");
    let span = find_fn(&text, function).unwrap_or_else(|| panic!("no fn {function} in {file}"));
    span.body(&text).to_string()
}

const MAIN: &str = "stage06/src/main.rs";
const MINE: &str = "{\n    // my own xps_loop_create\n    sys::epoll_create()\n}";

/// A learner repository: stage 6 started, xps_loop_create() written their way, committed.
fn learner_repo(name: &str) -> std::path::PathBuf {
    let origin = scratch(name);
    let ran = exercise(&origin, &["start", "6"], LIMIT);
    assert_eq!(ran.code, Some(0), "start 6:\n{}", ran.all());
    write_body(&origin, MAIN, "xps_loop_create", MINE);
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "my xps_loop_create"]);
    origin
}

#[test]
fn a_recloned_learner_repo_shows_the_reference_never_the_learners_code() {
    let origin = learner_repo("reclone-origin");
    let clone = origin.with_file_name("reclone-clone");
    let _ = std::fs::remove_dir_all(&clone);
    git(origin.parent().expect("a parent"), &["clone", "-q", "reclone-origin", "reclone-clone"]);

    let hint = exercise(&clone, &["hint", "6", "xps_loop_create", "3"], LIMIT);
    assert_eq!(hint.code, Some(0), "hint 3 in the clone:\n{}", hint.all());
    assert!(hint.stdout.contains("inspect_err"), "hint 3 must show the reference's code:\n{}", hint.all());
    assert!(!hint.stdout.contains("my own"), "hint 3 showed the learner's code as the reference:\n{}", hint.all());

    let compare = exercise(&clone, &["compare", "6", "xps_loop_create"], LIMIT);
    assert_eq!(compare.code, Some(0), "compare in the clone:\n{}", compare.all());
    assert!(
        compare.stdout.contains("+    // my own xps_loop_create"),
        "compare must show the learner's line:\n{}",
        compare.all()
    );
    assert!(!compare.stdout.contains("The same as the reference"), "{}", compare.all());

    let solution = exercise(&clone, &["solution", "6"], LIMIT);
    assert_eq!(solution.code, Some(0), "solution in the clone:\n{}", solution.all());
    let body = body_of(&clone, MAIN, "xps_loop_create");
    assert!(body.contains("inspect_err") && !body.contains("my own"), "solution must restore the reference:\n{body}");
}

#[test]
fn a_shallow_clone_refuses_what_needs_the_reference_and_says_why() {
    let origin = learner_repo("shallow-origin");
    let clone = origin.with_file_name("shallow-clone");
    let _ = std::fs::remove_dir_all(&clone);
    let url = format!("file://{}", origin.display());
    git(origin.parent().expect("a parent"), &["clone", "-q", "--depth", "1", &url, "shallow-clone"]);
    for args in [&["hint", "6", "xps_loop_create", "3"][..], &["compare", "6"], &["solution", "6"], &["reset", "6"]] {
        let ran = exercise(&clone, args, LIMIT);
        assert_eq!(ran.code, Some(1), "{args:?} must refuse:\n{}", ran.all());
        assert!(ran.stderr.contains("is not in this clone"), "{args:?} must say why:\n{}", ran.all());
        assert!(!ran.stdout.contains("my own"), "{args:?} showed the learner's code:\n{}", ran.all());
    }
    assert!(body_of(&clone, MAIN, "xps_loop_create").contains("my own"), "nothing may be changed");
    let hint = exercise(&clone, &["hint", "6", "xps_loop_create", "1"], LIMIT);
    assert_eq!(hint.code, Some(0), "hint 1 needs no history:\n{}", hint.all());
}

#[test]
fn start_7_over_a_committed_stage_6_shows_it_as_your_stage_6() {
    let origin = learner_repo("start7-origin");
    let listener = "stage06/src/network/xps_listener.rs";
    let reference = body_of(&support::workspace(), listener, "xps_listener_destroy");
    write_body(&origin, listener, "xps_listener_destroy", &reference.replacen('{', "{\n    // my stage 6 destroy", 1));
    git(&origin, &["commit", "-q", "-a", "-m", "my stage 6"]);
    let ran = exercise(&origin, &["start", "7"], LIMIT);
    assert_eq!(ran.code, Some(0), "start 7:\n{}", ran.all());
    let seven = std::fs::read_to_string(origin.join("stage07/src/network/xps_listener.rs")).expect("read");
    assert!(seven.contains("Your stage 6 xps_listener_destroy()"), "start 7 must name it as the learner's:\n{seven}");
    assert!(seven.contains("my stage 6 destroy"), "start 7 must show the learner's own stage 6 code");
    assert!(!seven.contains("(the reference's: stage06/src has no xps_listener_destroy()"), "{seven}");
}

#[test]
fn reset_and_solution_keep_a_newer_main_outside_the_learners_functions() {
    let repo = scratch("newer-main");
    git(&repo, &["checkout", "-q", "-b", "work"]);
    let ran = exercise(&repo, &["start", "6"], LIMIT);
    assert_eq!(ran.code, Some(0), "start 6:\n{}", ran.all());
    git(&repo, &["commit", "-q", "-m", "start stage 6"]);
    // main moves on: a fix outside the learner's functions (here, the listener module's docs).
    git(&repo, &["checkout", "-q", "main"]);
    let file = "stage06/src/network/xps_listener.rs";
    let first_line =
        std::fs::read_to_string(repo.join(file)).expect("read").lines().next().expect("a line").to_string();
    edit(&repo, file, &first_line, &format!("{first_line}\n//! (A fix that came with a newer main.)"));
    git(&repo, &["commit", "-q", "-a", "-m", "a newer main"]);
    git(&repo, &["checkout", "-q", "work"]);
    git(&repo, &["merge", "-q", "--no-edit", "main"]);

    for args in [&["reset", "6"][..], &["solution", "6"]] {
        let ran = exercise(&repo, args, LIMIT);
        assert_eq!(ran.code, Some(0), "{args:?}:\n{}", ran.all());
        let text = std::fs::read_to_string(repo.join(file)).expect("read");
        assert!(
            text.contains("(A fix that came with a newer main.)"),
            "{args:?} reverted the newer main:\n{}",
            ran.all()
        );
        assert!(ran.stdout.contains(&format!("Kept {file}")), "{args:?} must say what it kept:\n{}", ran.all());
    }
    let body = body_of(&repo, file, "xps_listener_create");
    assert!(!body.contains("todo!("), "solution must restore the reference's functions:\n{body}");
}
