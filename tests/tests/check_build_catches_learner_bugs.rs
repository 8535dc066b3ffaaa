//! `xps-check` (behind scripts/check-build.sh) against fake servers with the bugs learners'
//! builds really have, each showing the verdict and the message a learner sees.
//!
//! The fake is one small Python server, `xps`, with a single-threaded `select()` loop like the
//! course's (so Experiment #1 stalls it as it stalls stage 7), told which bug to have
//! (`check_build/fakes.rs`). Each run has a network namespace of its own
//! (`check_build/mod.rs`), so the runs go side by side on the course's ports.

mod check_build;

use std::process::Command;

use check_build::{
    ALL_PORTS, Fake, assert_contains, assert_ended, assert_valid_xml, check_python, in_own_network, section,
};
use xps_tests::workspace_binary;

#[test]
fn a_correct_server_passes_both_modes_and_the_tester_would_pass_it() {
    let fake = Fake::python("correct");
    let done = check_python(&fake, &["--stage", "6"], "correct", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 0, "18 passed, 0 failed");
    assert_contains(&done.stdout, &["the course's tester would PASS this build"]);
    let done = check_python(&fake, &["--stage", "7", "--official"], "correct", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 0, "4 passed, 0 failed");
    assert_contains(&done.stdout, &["the course's tester would PASS this build", "/usr/src/public/xps_config.json"]);
}

#[test]
fn a_server_on_127_0_0_1_only_passes_our_checks_but_the_tester_would_fail_it() {
    let fake = Fake::python("loopback");
    let done = check_python(&fake, &["--stage", "7", "--official"], "correct", "127.0.0.1", &ALL_PORTS);
    assert_ended(&done, 1, "3 passed, 1 failed");
    assert_contains(
        &done.stdout,
        &[
            "xps listens on 127.0.0.1:8001, 127.0.0.1:8002, 127.0.0.1:8003, 127.0.0.1:8004 only: loopback only",
            "bind to INADDR_ANY, 0.0.0.0",
            "the course's tester would FAIL this build",
        ],
    );
}

#[test]
fn stage_6_on_the_pages_three_ports_is_told_about_8004_and_still_checked_on_the_others() {
    let fake = Fake::python("three-ports");
    let done = check_python(&fake, &["--stage", "6", "--official"], "correct", "0.0.0.0", &ALL_PORTS[..3]);
    assert_ended(&done, 1, "3 passed, 1 failed");
    // Said at once, under the first check, before check 1 runs.
    assert_contains(section(&done.stdout, "tester_network_address"), &["note: xps does not listen on port 8004"]);
    assert_contains(
        section(&done.stdout, "tester_check_1_single_client_input_output"),
        &[
            "port 8003: 1000 strings, every reply right",
            "FAIL",
            "xps does not listen on port 8004",
            "cargo run -p stage06 -- 8001 8002 8003 8004",
        ],
    );
    assert_contains(section(&done.stdout, "tester_check_2_multiple_clients_same_port"), &["PASS"]);
    assert_contains(
        &done.stdout,
        &["the course's tester would FAIL this build", "check 1: xps does not listen on port 8004"],
    );
}

#[test]
fn a_reply_split_over_two_sends_fails_the_testers_first_chunk_comparison() {
    let fake = Fake::python("split");
    let done = check_python(&fake, &["--stage", "7", "--official"], "split", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 1, "1 passed, 3 failed");
    assert_contains(
        section(&done.stdout, "tester_check_1_single_client_input_output"),
        &["got the reply in pieces", "(first chunk), then", "send the whole reply with one send()"],
    );
    assert_contains(&done.stdout, &["the course's tester would FAIL this build"]);
}

#[test]
fn a_trailing_nul_is_named_and_the_junit_report_stays_valid_xml_whatever_the_server_prints() {
    // The server also prints U+FFFE and U+FFFF, which XML forbids even escaped; its output goes
    // into the failures' text.
    let fake = Fake::python("nul");
    let junit = fake.dir.join("report.xml");
    let junit_arg = junit.to_string_lossy().into_owned();
    let done = check_python(&fake, &["--stage", "6", "--junit", &junit_arg], "nul,ufffe", "0.0.0.0", &ALL_PORTS);
    assert_eq!(done.code, Some(1), "{}", done.text());
    assert_contains(
        section(&done.stdout, "extra_nothing_comes_after_a_reply"),
        &[r#"got 1 extra byte "\x00" after the reply"#, "are you sending strlen+1?"],
    );
    assert_contains(
        section(&done.stdout, "tester_check_1_single_client_input_output"),
        &[r#"1 extra byte "\x00" after the reply"#],
    );
    assert_contains(
        &done.stdout,
        &["the course's tester would FAIL this build", &format!("(JUnit report written to {junit_arg})")],
    );
    let xml = assert_valid_xml(&junit);
    println!("--- {junit_arg} ---\n{xml}");
    assert_contains(
        &xml,
        &[
            "<testsuite name=\"xps-check stage 6\" tests=\"18\"",
            "<testcase classname=\"workspace\" name=\"extra_nothing_comes_after_a_reply\"",
            "<failure message=",
            "are you sending strlen+1?",
            "starting \u{FFFD}\u{FFFD}",
        ],
    );
}

#[test]
fn a_message_without_newline_reversed_wrong_fails_our_check_though_the_tester_would_pass() {
    let fake = Fake::python("newline");
    let done = check_python(&fake, &["--stage", "6"], "newline", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 1, "17 passed, 1 failed");
    assert_contains(
        section(&done.stdout, "extra_message_without_a_newline_comes_back_reversed"),
        &[r#"sent:     "no newline""#, r#"expected: "enilwen on""#, r#"received: "nilwen one""#, "trailing \\n"],
    );
    // The tester sends only lines ending in \n: it would not see this bug.
    assert_contains(&done.stdout, &["the course's tester would PASS this build"]);
}

#[test]
fn a_server_that_segfaults_on_its_third_message_is_reported_as_dead_first() {
    let fake = Fake::python("segv");
    let done = check_python(&fake, &["--stage", "7", "--official"], "segv", "0.0.0.0", &ALL_PORTS);
    assert_eq!(done.code, Some(1), "{}", done.text());
    let check_1 = section(&done.stdout, "tester_check_1_single_client_input_output");
    assert_contains(
        check_1,
        &["xps died during the check: killed by signal 11 (SIGSEGV", "-fsanitize=address,undefined"],
    );
    let died = check_1.find("died during the check").unwrap();
    let clients = check_1.find("what the clients saw").expect("the clients' view comes after");
    assert!(died < clients, "the death must be reported before what the clients saw:\n{check_1}");
    assert_contains(
        &done.stdout,
        &["the server died in check 1; the tester restarts it", "the course's tester would FAIL"],
    );
    assert!(done.listening_after.is_empty(), "{:?}", done.listening_after);
}

#[test]
fn ctrl_c_during_a_check_reports_it_as_interrupted_and_leaves_nothing_running() {
    let fake = Fake::python("ctrl-c");
    // A stray background process in the server's group, as a run script might leave; the server
    // answers 3 s late, so that the first check is still waiting when Ctrl+C comes.
    let server = format!("sleep 6071 & cd {} && ./xps slow 0.0.0.0 8001 8002 8003 8004", fake.dir.display());
    let script = "\"$XPS_CHECK\" \"$@\" > out.txt 2> err.txt &\n\
                  checker=$!\n\
                  until ss -ltnH | grep -q ':8001 '; do sleep 0.05; done\n\
                  kill -INT $checker\n\
                  wait $checker\n\
                  echo $? > status\n\
                  pgrep -a -f 'sleep 6071' >> left-after.txt";
    let done = in_own_network(
        &fake,
        script,
        &["--stage", "7", "--", "sh", "-c", &server],
        std::time::Duration::from_secs(120),
    );
    assert_ended(&done, 130, "0 passed, 0 failed, 19 not run");
    let interrupted = section(&done.stdout, "milestone_2_step_1_2_one_client_on_each_port_gets_its_reversal");
    assert_contains(interrupted, &["INTERRUPTED", "signal 2 arrived during this check"]);
    assert!(
        !interrupted.contains("died during the check"),
        "an interruption is not the server's death:\n{interrupted}"
    );
    assert_contains(&done.stdout, &["interrupted (signal 2): stopped the server and everything it started"]);
}

#[test]
fn a_command_without_dot_slash_gets_a_hint() {
    let fake = Fake::python("no-dot-slash");
    let output = Command::new(workspace_binary("xps-check"))
        .args(["--stage", "7", "--", "xps"])
        .current_dir(&fake.dir)
        .output()
        .expect("run xps-check");
    let text = String::from_utf8_lossy(&output.stderr);
    println!("{text}");
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("write `-- ./xps`"), "{text}");
}
