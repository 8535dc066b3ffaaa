//! `xps-check` for a teacher and an autograder: several builds in one run with a summary table
//! and a JUnit file each; a JUnit report that cannot be written fails the run; a closed stdout
//! ends it quietly; `scripts/check-build.sh` takes its options in any order before `--`.

mod check_build;

use std::time::Duration;

use check_build::{ALL_PORTS, Fake, assert_contains, assert_ended, assert_valid_xml, check, in_own_network};

#[test]
fn several_builds_get_one_summary_table_and_a_report_and_junit_file_each() {
    let fake = Fake::python("class");
    let class = fake.dir.join("class");
    let builds = [("alice", "correct 0.0.0.0"), ("bob", "correct 127.0.0.1"), ("carol", "nul 0.0.0.0")];
    for (name, modes_host) in builds {
        std::fs::create_dir_all(class.join(name)).unwrap();
        let command = format!("../../xps {modes_host} {}\n", ALL_PORTS.join(" "));
        std::fs::write(class.join(name).join("check-build.cmd"), command).unwrap();
    }
    std::fs::create_dir_all(class.join("dave")).unwrap();
    let results = fake.dir.join("results");
    let (class_arg, results_arg) = (class.to_string_lossy().into_owned(), results.to_string_lossy().into_owned());
    let done = check(&fake, "", &["--official", "--builds", &class_arg, "--out", &results_arg, "7"]);
    assert_ended(&done, 2, "(summary written to");
    assert_contains(
        &done.stdout,
        &[
            "xps-check: 4 builds from",
            "[1/4] alice: `../../xps correct 0.0.0.0 8001 8002 8003 8004`",
            "build  tester verdict   checks passed  first failure",
            "alice  PASS             4 of 4         -",
            "bob    FAIL             3 of 4         tester_network_address: xps listens on 127.0.0.1:8001",
            "carol  FAIL             1 of 4         tester_check_1_single_client_input_output: tester's client on port 8001",
            "dave   could not judge  0 of 0         no check-build.cmd and no xps in",
        ],
    );
    for name in ["alice", "bob", "carol", "dave"] {
        let xml = assert_valid_xml(&results.join(format!("{name}.xml")));
        assert_contains(&xml, &["<testsuite name=\"xps-check stage 7\""]);
        assert!(results.join(format!("{name}.txt")).is_file(), "{name}.txt");
    }
    let alice = std::fs::read_to_string(results.join("alice.txt")).unwrap();
    assert_contains(&alice, &["the course's tester would PASS this build", "4 passed, 0 failed"]);
    let summary = std::fs::read_to_string(results.join("summary.txt")).unwrap();
    assert_contains(&summary, &["alice  PASS", "dave   could not judge"]);
}

#[test]
fn a_junit_report_that_cannot_be_written_fails_the_run_naming_the_path() {
    let fake = Fake::python("unwritable");
    let path = fake.path();
    let args = ["7", "--official", "--junit", "/nonexistent/r.xml", "--", &path, "correct", "0.0.0.0"];
    let done = check(&fake, "", &[&args[..], &ALL_PORTS].concat());
    assert_ended(&done, 2, "4 passed, 0 failed");
    assert_contains(&done.stderr, &["cannot write the JUnit report /nonexistent/r.xml: No such file or directory"]);
    assert_contains(&done.stdout, &["the course's tester would PASS this build", "(JUnit report NOT written:"]);
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_and_stops_the_server() {
    let fake = Fake::python("head");
    let script = "(\"$XPS_CHECK\" \"$@\" 2> err.txt; echo $? > status) | head -3 > out.txt";
    let path = fake.path();
    let args = [&["7", "--", &path, "correct", "0.0.0.0"][..], &ALL_PORTS].concat();
    let done = in_own_network(&fake, script, &args, Duration::from_secs(120));
    assert_eq!(done.code, Some(128 + libc::SIGPIPE), "{}", done.text());
    assert_eq!(done.stdout.lines().count(), 3, "{}", done.stdout);
    assert!(!done.stderr.contains("panicked"), "no panic for a closed stdout:\n{}", done.stderr);
    assert!(done.listening_after.is_empty(), "{:?}", done.listening_after);
    assert!(done.processes_after.is_empty(), "{:?}", done.processes_after);
}

#[test]
fn check_build_sh_takes_its_options_in_any_order_before_the_command() {
    let fake = Fake::python("script");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let script = format!("\"{}/scripts/check-build.sh\" \"$@\" > out.txt 2> err.txt\necho $? > status", root.display());
    let path = fake.path();
    let args = [&["--official", "--junit", "r.xml", "7", "--", &path, "correct", "0.0.0.0"][..], &ALL_PORTS].concat();
    let done = in_own_network(&fake, &script, &args, Duration::from_secs(600));
    assert_ended(&done, 0, "4 passed, 0 failed");
    assert_contains(&done.stdout, &["check-build.sh: the course's tester's checks for stage 7"]);
    assert_valid_xml(&fake.dir.join("r.xml"));
}
