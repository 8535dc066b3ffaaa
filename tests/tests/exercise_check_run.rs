//! How `check` runs, on scratch copies whose stage is broken on purpose: it is never silent (on
//! a terminal each milestone's line comes as soon as it is known, and a long check shows a
//! `still running` line), always bounded (a function that never returns is named within 30 s),
//! lists every failing extra in one run, and `watch` runs it again on a save.
//!
//! These build the stage in a scratch copy: they take [`support::serial`] and share one target
//! folder, so each rebuilds only what its change touches.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Running, edit, exercise, scratch, serial, shared_target};

const BUILD: Duration = Duration::from_secs(600);

/// Builds the stage's checks in the scratch copy `root` (so that a timed run times the checks).
fn build(root: &std::path::Path, krate: &str) {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["test", "-p", krate, "--no-run", "--quiet"]).current_dir(root).env("CARGO_TARGET_DIR", shared_target());
    let mut running = Running::start(cmd);
    let code = running.wait(BUILD);
    let (_, stderr) = running.output();
    assert_eq!(code, Some(0), "cargo test -p {krate} --no-run failed in the scratch copy:\n{stderr}");
}

const MAIN6: &str = "stage06/src/main.rs";
const CONNECTION6: &str = "stage06/src/network/xps_connection.rs";

#[test]
fn on_a_terminal_milestone_lines_come_as_known_and_a_long_check_shows_still_running() {
    let _serial = serial();
    let root = scratch("ws");
    // Every Milestone #1 check takes 5 s (they all create a loop); Milestone #2 then fails.
    edit(
        &root,
        MAIN6,
        "pub fn xps_loop_create() -> io::Result<OwnedFd> {\n",
        "pub fn xps_loop_create() -> io::Result<OwnedFd> {\n    std::thread::sleep(std::time::Duration::from_secs(5));\n",
    );
    edit(&root, CONNECTION6, "    reverse_message(message);\n", "");
    build(&root, "stage06");

    let exe = env!("CARGO_BIN_EXE_xps-exercise");
    let mut cmd = Command::new("script");
    cmd.args(["-qefc", &format!("{exe} check 6"), "/dev/null"])
        .env("XPS_EXERCISE_ROOT", &root)
        .env("CARGO_TARGET_DIR", shared_target());
    let mut running = Running::start(cmd);
    let code = running.wait(Duration::from_secs(180));
    let ended = Instant::now();
    let (stdout, _) = running.output();
    assert_eq!(code, Some(1), "check 6 must fail at Milestone #2:\n{stdout}");
    let chunks = running.chunks.lock().expect("the chunks").clone();
    let mut seen = String::new();
    let mut first_line_at = None;
    for (at, chunk) in &chunks {
        seen.push_str(chunk);
        if first_line_at.is_none() && seen.contains("ok    Milestone #1") {
            first_line_at = Some(*at);
        }
    }
    let first_line_at = first_line_at.unwrap_or_else(|| panic!("no `ok    Milestone #1` line:\n{stdout}"));
    assert!(
        ended.duration_since(first_line_at) > Duration::from_secs(3),
        "the Milestone #1 line must come as soon as it is known, seconds before Milestone #2's checks end \
         (it came {:?} before the end):\n{stdout}",
        ended.duration_since(first_line_at)
    );
    assert!(stdout.contains("still running: milestone_1_"), "a 5 s check must show a `still running` line:\n{stdout}");
    assert!(stdout.contains("FAIL  Milestone #2"), "{stdout}");

    // Piped, the same lines without the ticker.
    let piped = exercise(&root, &["check", "6"], Duration::from_secs(180));
    assert_eq!(piped.code, Some(1), "{}", piped.all());
    assert!(!piped.stdout.contains("still running") && !piped.stdout.contains('\x1b'), "{}", piped.all());
    assert!(
        piped.stdout.contains("  ok    Milestone #1 (milestone_1): 4 checks pass\n  FAIL  Milestone #2"),
        "{}",
        piped.all()
    );
}

/// `check` on a stage whose `function` never returns (`file`'s `old` replaced with `new`): it
/// ends within 30 s, and its Next step starts with that function.
fn a_function_that_never_returns_is_named_within_30_s(stage: &str, file: &str, old: &str, new: &str, function: &str) {
    let _serial = serial();
    let root = scratch("ws");
    edit(&root, file, old, new);
    build(&root, &format!("stage0{stage}"));
    let ran = exercise(&root, &["check", stage], Duration::from_secs(120));
    assert_eq!(ran.code, Some(1), "{}", ran.all());
    assert!(ran.took < Duration::from_secs(30), "check must end within 30 s, it took {:?}:\n{}", ran.took, ran.all());
    let first = ran.stdout.split("Next step\n").nth(1).and_then(|rest| rest.lines().next()).unwrap_or_default();
    assert!(
        first.starts_with(&format!("  fix:      {function}()  at ")),
        "the Next step must start with {function}(), which never returns; it was:\n{}",
        ran.all()
    );
}

#[test]
fn a_never_returning_xps_listener_create_is_named_within_30_s() {
    let signature =
        "pub fn xps_listener_create(epoll_fd: &Rc<OwnedFd>, host: &str, port: u16) -> Option<Rc<XpsListener>> {";
    a_function_that_never_returns_is_named_within_30_s(
        "6",
        "stage06/src/network/xps_listener.rs",
        signature,
        &format!(
            "{signature}\n    loop {{\n        std::thread::sleep(std::time::Duration::from_secs(1));\n    }}\n    #[allow(unreachable_code)]"
        ),
        "xps_listener_create",
    );
}

#[test]
fn a_never_returning_xps_loop_run_is_named_within_30_s() {
    // The learner's loop goes on after the wake-up instead of returning.
    a_function_that_never_returns_is_named_within_30_s(
        "7",
        "stage07/src/core/xps_loop.rs",
        "        if handle_epoll_events(loop_, &epoll_events[..n_events]).is_break() {\n            return Ok(());\n        }\n",
        "        let _ = handle_epoll_events(loop_, &epoll_events[..n_events]);\n",
        "xps_loop_run",
    );
}

#[test]
fn every_failing_extra_is_listed_in_one_run_and_only_strict_fails_on_them() {
    let _serial = serial();
    let root = scratch("ws");
    // A learner's reversal that gives up on bytes that are not UTF-8: every milestone passes.
    edit(
        &root,
        CONNECTION6,
        "    reverse_message(message);\n",
        "    if std::str::from_utf8(message).is_ok() {\n        reverse_message(message);\n    }\n",
    );
    build(&root, "stage06");
    let ran = exercise(&root, &["check", "6"], Duration::from_secs(300));
    assert_eq!(ran.code, Some(0), "extras do not fail check:\n{}", ran.all());
    for id in
        ["extra_raw_bytes_and_empty_lines_are_reversed_byte_for_byte", "extra_bytes_0x80_to_0xff_come_back_reversed"]
    {
        assert!(
            ran.stdout.contains(&format!("    FAIL  {id}: ")),
            "every failing extra is listed, {id} too:\n{}",
            ran.all()
        );
    }
    let summary = ran.stdout.lines().find(|l| l.starts_with("  extras: ")).unwrap_or_else(|| panic!("{}", ran.all()));
    let listed = ran.stdout.lines().filter(|l| l.starts_with("    FAIL  extra_")).count();
    let (passing, total) = summary["  extras: ".len()..].split_once(" of ").expect("N of M");
    let total: usize = total.split(' ').next().and_then(|t| t.parse().ok()).expect("M");
    assert_eq!(
        passing.parse::<usize>().expect("N") + listed,
        total,
        "N of M pass, and the others listed:\n{}",
        ran.all()
    );
    assert!(
        ran.stdout.contains("The first extra that fails:\nNext step\n  fix:      xps_connection_read_handler()"),
        "{}",
        ran.all()
    );

    let strict = exercise(&root, &["check", "6", "--strict"], Duration::from_secs(300));
    assert_eq!(strict.code, Some(1), "--strict fails on extras:\n{}", strict.all());
}

#[test]
fn watch_runs_check_again_when_a_file_is_saved_and_stops_on_ctrl_c() {
    let _serial = serial();
    let root = scratch("ws");
    let started = exercise(&root, &["start", "6"], Duration::from_secs(60));
    assert_eq!(started.code, Some(0), "{}", started.all());
    build(&root, "stage06");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xps-exercise"));
    cmd.args(["watch", "6"]).env("XPS_EXERCISE_ROOT", &root).env("CARGO_TARGET_DIR", shared_target());
    let mut running = Running::start(cmd);
    let waiting = "watch 6: waiting for a save in stage06/src";
    assert!(running.wait_for(waiting, 1, Duration::from_secs(120)), "no first run:\n{}", running.stdout_so_far());
    let saved = std::fs::File::options().append(true).open(root.join(MAIN6)).expect("open main.rs");
    saved.set_modified(std::time::SystemTime::now() + Duration::from_secs(1)).expect("touch main.rs");
    assert!(
        running.wait_for(waiting, 2, Duration::from_secs(120)),
        "no run after the save:\n{}",
        running.stdout_so_far()
    );
    let out = running.stdout_so_far();
    assert!(out.contains("watch 6: stage06/src/main.rs saved"), "{out}");
    assert_eq!(out.matches("FAIL  Milestone #1").count(), 2, "check must run twice:\n{out}");
    running.signal(libc::SIGINT);
    let status = running.wait_status(Duration::from_secs(10)).expect("Ctrl+C must end watch within 10 s");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGINT),
        "Ctrl+C ends watch as it ends any command-line tool: {status:?}"
    );
}
