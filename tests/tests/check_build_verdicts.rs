//! Every run of `xps-check` ends in a verdict a teacher can trust, whatever the server or the
//! machine does: a server that answers late, listens late, listens on IPv6 only, daemonizes,
//! runs under a wrapper, never stalls; a port taken before the run; a run killed with SIGKILL.
//! Each test asserts the verdict, the exit status, the closing line, and that nothing is left
//! listening or running afterwards (in the run's own network namespace, `check_build/mod.rs`).

mod check_build;

use check_build::{
    ALL_PORTS, Fake, assert_contains, assert_ended, assert_valid_xml, check, check_python, in_own_network, section,
};

#[test]
fn a_server_that_answers_each_message_3_s_late_still_gets_a_verdict_and_a_junit_report() {
    let fake = Fake::python("slow");
    let junit = fake.dir.join("slow.xml");
    let junit_arg = junit.to_string_lossy().into_owned();
    // Each connection on a thread of its own: check 2's ten replies come 3 s late together.
    let done = check_python(&fake, &["--official", "7", "--junit", &junit_arg], "slow,threads", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 1, "3 passed, 1 failed");
    assert_contains(
        section(&done.stdout, "tester_check_1_single_client_input_output"),
        &["replies on port 8001 take 3.0", "takes about 3 h 20 min", "the tester has no time limit"],
    );
    assert_contains(
        &done.stdout,
        &["the course's tester would FAIL this build:\n  - check 1: replies on port 8001 take 3.0"],
    );
    let xml = assert_valid_xml(&junit);
    assert_contains(&xml, &["tests=\"4\" failures=\"1\"", "takes about 3 h 20 min"]);
}

#[test]
fn a_server_that_listens_after_1_5_s_passes_our_checks_but_the_tester_would_fail_all_three() {
    let fake = Fake::python("late");
    let done = check_python(&fake, &["--stage", "7"], "late", "0.0.0.0", &ALL_PORTS);
    // This run's own checks wait for the server; the tester connects at its first look.
    assert_ended(&done, 1, "16 passed, 3 failed");
    assert_contains(
        section(&done.stdout, "tester_network_address"),
        &["note: xps was not listening on port 8001 8002 8003 8004 at the tester's first look, 1 s after it started"],
    );
    for n in 1..=3 {
        assert_contains(
            &done.stdout,
            &[&format!(
                "  - check {n}: xps was not listening on port 8001 when the tester connected, about 1 s after starting it \
                 (it listened after 1."
            )],
        );
    }
}

#[test]
fn a_server_on_ipv6_only_is_told_so_in_every_check_and_by_the_testers_network_check() {
    let fake = Fake::python("v6only");
    let done = check_python(&fake, &["--stage", "7", "--official"], "v6only", "::", &ALL_PORTS);
    assert_ended(&done, 1, "0 passed, 4 failed");
    assert_contains(
        section(&done.stdout, "tester_check_2_multiple_clients_same_port"),
        &["could not connect", "xps listens on [::]:8001 only, IPv6 only (IPV6_V6ONLY is set)", "IPV6_V6ONLY, &no"],
    );
    assert_contains(
        &done.stdout,
        &["  - xps listens on [::]:8001, [::]:8002, [::]:8003, [::]:8004 only: IPv6 only (IPV6_V6ONLY is set)"],
    );
}

#[test]
fn a_server_that_daemonizes_passes_our_checks_fails_the_testers_and_leaves_nothing_behind() {
    let fake = Fake::python("daemon");
    let done = check_python(&fake, &["--stage", "7"], "daemon", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 1, "16 passed, 3 failed");
    assert_contains(
        &done.stdout,
        &[
            "the course's tester would FAIL this build:\n  - xps's command exited with status 0 before the tester's first look",
            "the container stops when it exits",
        ],
    );
}

#[test]
fn a_server_started_through_a_wrapper_is_named_and_watched_by_the_process_that_listens() {
    let fake = Fake::python("wrapper");
    let server = format!("{} correct 0.0.0.0 8001 8002 8003 8004; true", fake.path());
    let done = check(&fake, "", &["--stage", "7", "--", "sh", "-c", &server]);
    assert_ended(&done, 0, "19 passed, 0 failed");
    assert_contains(
        section(
            &done.stdout,
            "extra_experiment_1_stage7_blocks_everyone_while_one_client_does_not_read_and_recovers_when_it_quits",
        ),
        &["PASS ("],
    );
    assert_contains(&done.stdout, &["the course's tester would PASS this build", "and xps listens on every interface"]);
}

#[test]
fn a_port_taken_before_the_run_is_could_not_judge_naming_the_program_that_holds_it() {
    let fake = Fake::python("taken");
    let junit = fake.dir.join("taken.xml");
    let blocker = "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', 8001))\ns.listen()\ntime.sleep(300)";
    let script = format!(
        "python3 -c \"{blocker}\" &\nblocker=$!\nuntil ss -ltnH | grep -q ':8001 '; do sleep 0.05; done\n\
         \"$XPS_CHECK\" \"$@\" > out.txt 2> err.txt\necho $? > status\nkill $blocker; wait $blocker"
    );
    let path = fake.path();
    let args = [
        "--stage",
        "7",
        "--junit",
        junit.to_str().unwrap(),
        "--",
        &path,
        "correct",
        "0.0.0.0",
        "8001",
        "8002",
        "8003",
        "8004",
    ];
    let done = in_own_network(&fake, &script, &args, std::time::Duration::from_secs(120));
    assert_ended(&done, 2, "0 passed, 0 failed, 19 not run");
    assert_contains(
        &done.stdout,
        &[
            "could not judge this build: port 8001 was already taken before xps started: pid ",
            "python3 -c import socket, time s = socket.socket() s.bind(('0.0.0.0', 8001))",
            "listens on 0.0.0.0:8001",
        ],
    );
    let xml = assert_valid_xml(&junit);
    assert_contains(&xml, &["errors=\"1\"", "<error message=\"port 8001 was already taken"]);
}

#[test]
fn a_stage_7_server_that_never_stalls_gets_a_note_not_a_failure() {
    let fake = Fake::python("threads");
    let done = check_python(&fake, &["--stage", "7"], "threads", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 0, "19 passed, 0 failed");
    assert_contains(
        section(
            &done.stdout,
            "extra_experiment_1_stage7_blocks_everyone_while_one_client_does_not_read_and_recovers_when_it_quits",
        ),
        &["PASS, with a note", "note: your server does not stall (Experiment #1)", "the change stage 8 makes"],
    );
}

#[test]
fn what_a_check_build_killed_with_sigkill_left_running_is_stopped_by_the_next_run() {
    let fake = Fake::python("leftover");
    let script = "\"$XPS_CHECK\" --stage 7 -- \"$PWD/xps\" daemon 0.0.0.0 8001 8002 8003 8004 > first.txt 2>&1 &\n\
                  first=$!\n\
                  until ss -ltnH | grep -q ':8001 '; do sleep 0.05; done\n\
                  kill -KILL $first\n\
                  wait $first\n\
                  ss -ltnH | grep -c ':800[1-4] ' > left-by-first.txt\n\
                  \"$XPS_CHECK\" \"$@\" > out.txt 2> err.txt\n\
                  echo $? > status";
    let path = fake.path();
    let args = ["--stage", "7", "--official", "--", &path, "correct", "0.0.0.0", "8001", "8002", "8003", "8004"];
    let done = in_own_network(&fake, script, &args, std::time::Duration::from_secs(120));
    let left = std::fs::read_to_string(fake.dir.join("left-by-first.txt")).unwrap_or_default();
    assert_eq!(left.trim(), "4", "the killed run should have left its daemon listening on the 4 ports");
    assert_ended(&done, 0, "4 passed, 0 failed");
    assert_contains(
        &done.stdout,
        &["note: stopped pid ", "left running by an earlier check-build run (pid ", "that was killed"],
    );
}

#[test]
fn a_crash_when_check_2s_clients_leave_is_not_check_2s_failure_but_a_bug_the_tester_does_not_see() {
    // Removing a connection that is not its port's last one crashes this server: check 1's one
    // client per port never does that; check 2's ten clients leave together after their
    // replies, when the tester has passed check 2 and kills the server; check 3's first client
    // leaves while the second is connected, which the tester sees.
    let fake = Fake::python("crash-on-leave");
    let done = check_python(&fake, &["--stage", "7", "--official"], "crash_removing_middle", "0.0.0.0", &ALL_PORTS);
    assert_ended(&done, 1, "3 passed, 1 failed; 1 bug the tester does not see (above)");
    assert_contains(section(&done.stdout, "tester_check_2_multiple_clients_same_port"), &["PASS"]);
    assert_contains(
        &done.stdout,
        &[
            "  - xps died (killed by signal 11 (SIGSEGV: a bad pointer or an out-of-bounds access)) when the tester's \
             check 2's clients disconnected after their last reply",
            "  - check 3: xps died during the check: killed by signal 11",
        ],
    );
}
