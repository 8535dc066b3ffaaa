//! `xps-check` (behind scripts/check-build.sh) against fake servers with the bugs learners'
//! builds really have, each showing the verdict and the message a learner sees.
//!
//! The fakes are one small Python server, `xps`, with a single-threaded `select()` loop like the
//! course's (so Experiment #1 stalls it as it stalls stage 7), told which bug to have. They use
//! the course's fixed ports 8001-8004, so every test here holds [`DefaultPortsLock`].

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use xps_tests::process::{Options, Process};
use xps_tests::{DefaultPortsLock, Server, procfs, workspace_binary};

/// The fake server: `xps MODE HOST PORT...`.
const FAKE: &str = r#"#!/usr/bin/env python3
import os, select, signal, socket, sys, time
mode, host, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
listeners = []
for port in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(64)
    listeners.append(s)
    print("[INFO] main() : Server listening on port %d" % port, flush=True)
conns, count = [], 0
while True:
    ready, _, _ = select.select(listeners + conns, [], [])
    for s in ready:
        if s in listeners:
            conns.append(s.accept()[0])
            continue
        try:
            data = s.recv(100000)
        except OSError:
            data = b""
        if not data:
            conns.remove(s)
            s.close()
            continue
        count += 1
        print("[CLIENT MESSAGE] %r" % data[:60], flush=True)
        if mode == "segv" and count == 3:
            os.kill(os.getpid(), signal.SIGSEGV)
        body, newline = (data[:-1], b"\n") if data.endswith(b"\n") else (data, b"")
        reply = body[::-1] + newline
        if mode == "newline":
            reply = data[:-1][::-1] + data[-1:]
        if mode == "nul":
            reply += b"\0"
        try:
            if mode == "split" and len(reply) > 1:
                s.sendall(reply[:1])
                time.sleep(0.05)
                s.sendall(reply[1:])
            else:
                s.sendall(reply)
        except OSError:
            conns.remove(s)
            s.close()
"#;

/// A folder of its own holding the fake `xps`, removed at the end.
struct Fake {
    dir: PathBuf,
}

impl Fake {
    fn new(test: &str) -> Fake {
        let dir = std::env::temp_dir().join(format!("xps-fake-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("xps");
        std::fs::write(&path, FAKE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fake { dir }
    }

    fn path(&self) -> String {
        self.dir.join("xps").to_string_lossy().into_owned()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `xps-check`, interrupted (which stops its servers) and stopped with everything it
/// started if still running when dropped, also when the test panics.
struct Checker {
    process: Process,
    output: Option<thread::JoinHandle<String>>,
}

impl Checker {
    fn start(args: &[&str]) -> Checker {
        let mut cmd = Command::new(workspace_binary("xps-check"));
        cmd.args(args);
        let mut process = Process::spawn(cmd, &Options::default()).expect("start xps-check");
        let mut stdout = process.take_stdout().unwrap();
        let mut stderr = process.take_stderr().unwrap();
        let output = thread::spawn(move || {
            let err = thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            });
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text + &err.join().unwrap_or_default()
        });
        Checker { process, output: Some(output) }
    }

    /// Waits (at most two minutes) for the run to end: its exit code and everything it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.process.wait_exit(Duration::from_secs(120));
        let status = status.expect("xps-check did not finish within two minutes");
        let text = self.output.take().unwrap().join().unwrap();
        (status.code(), text)
    }

    fn interrupt(&self) {
        self.process.signal(libc::SIGINT).expect("SIGINT to xps-check");
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        // SIGINT first: xps-check then stops its servers itself.
        self.process.stop(Duration::from_secs(5));
    }
}

/// Runs `xps-check ARGS -- FAKE MODE HOST PORTS...` and returns its exit code and output,
/// printed for the test log (what a learner sees).
fn check(fake: &Fake, args: &[&str], mode: &str, host: &str, ports: &[&str]) -> (Option<i32>, String) {
    let path = fake.path();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--", path.as_str(), mode, host]);
    all.extend(ports);
    let (code, text) = Checker::start(&all).finish();
    println!("--- xps-check {} ---\n{text}", all.join(" "));
    (code, text)
}

const ALL_PORTS: [&str; 4] = ["8001", "8002", "8003", "8004"];

fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "the output should contain {needle:?}; it was:\n{text}");
    }
}

/// The part of the output about one check, from its `[i/N] name` line to the next check.
fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text.find(&format!("] {name}\n")).unwrap_or_else(|| panic!("no check {name} in:\n{text}"));
    let rest = &text[start..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// Nothing listens on the tester's ports and no process whose command line contains `marker`
/// is left.
fn assert_nothing_left(marker: &str) {
    thread::sleep(Duration::from_millis(300));
    for port in [8001, 8002, 8003, 8004] {
        let left = Server::listeners_on(port);
        assert!(left.is_empty(), "something still listens on port {port} after the run: {left:?}");
    }
    let me = std::process::id();
    let left: Vec<String> = procfs::pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| procfs::stat(pid).is_some_and(|s| !s.is_zombie()))
        .map(procfs::command)
        .filter(|c| c.contains(marker))
        .collect();
    assert!(left.is_empty(), "processes left after the run: {left:?}");
}

#[test]
fn a_correct_server_passes_both_modes_and_the_tester_would_pass_it() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("correct");
    let (code, text) = check(&fake, &["--stage", "6"], "correct", "0.0.0.0", &ALL_PORTS);
    assert_eq!(code, Some(0), "{text}");
    assert_contains(&text, &["the course's tester would PASS this build", "17 passed, 0 failed"]);
    let (code, text) = check(&fake, &["--stage", "7", "--official"], "correct", "0.0.0.0", &ALL_PORTS);
    assert_eq!(code, Some(0), "{text}");
    assert_contains(&text, &["the course's tester would PASS this build", "4 passed, 0 failed"]);
}

#[test]
fn a_server_on_127_0_0_1_only_passes_our_checks_but_the_tester_would_fail_it() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("loopback");
    let (code, text) = check(&fake, &["--stage", "7", "--official"], "correct", "127.0.0.1", &ALL_PORTS);
    assert_eq!(code, Some(1), "{text}");
    assert_contains(
        &text,
        &[
            "xps listens on 127.0.0.1:8001, 127.0.0.1:8002, 127.0.0.1:8003, 127.0.0.1:8004 only",
            "bind to INADDR_ANY, 0.0.0.0",
            "the course's tester would FAIL this build",
            "3 passed, 1 failed",
        ],
    );
}

#[test]
fn stage_6_on_the_pages_three_ports_is_told_about_8004_and_still_checked_on_the_others() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("three-ports");
    let (code, text) = check(&fake, &["--stage", "6", "--official"], "correct", "0.0.0.0", &ALL_PORTS[..3]);
    assert_eq!(code, Some(1), "{text}");
    // Said at once, under the first check, before check 1 runs.
    assert_contains(section(&text, "tester_network_address"), &["note: xps does not listen on port 8004"]);
    assert_contains(
        section(&text, "tester_check_1_single_client_input_output"),
        &["FAIL", "xps does not listen on port 8004", "cargo run -p stage06 -- 8001 8002 8003 8004"],
    );
    assert_contains(section(&text, "tester_check_2_multiple_clients_same_port"), &["PASS"]);
    assert_contains(
        &text,
        &["the course's tester would FAIL this build", "check 1: nothing listens on port 8004", "3 passed, 1 failed"],
    );
}

#[test]
fn a_reply_split_over_two_sends_fails_the_testers_first_chunk_comparison() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("split");
    let (code, text) = check(&fake, &["--stage", "7", "--official"], "split", "0.0.0.0", &ALL_PORTS);
    assert_eq!(code, Some(1), "{text}");
    assert_contains(
        section(&text, "tester_check_1_single_client_input_output"),
        &["got the reply in pieces", "(first chunk), then", "send the whole reply with one send()"],
    );
    assert_contains(&text, &["the course's tester would FAIL this build"]);
}

#[test]
fn a_trailing_nul_is_named_with_strlen_plus_1_and_written_to_junit() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("nul");
    let junit = fake.dir.join("report.xml");
    let junit_arg = junit.to_string_lossy().into_owned();
    let (code, text) = check(&fake, &["--stage", "6", "--junit", &junit_arg], "nul", "0.0.0.0", &ALL_PORTS);
    assert_eq!(code, Some(1), "{text}");
    assert_contains(
        section(&text, "extra_nothing_comes_after_a_reply"),
        &[r#"got 1 extra byte "\x00" after the reply"#, "are you sending strlen+1?"],
    );
    assert_contains(
        section(&text, "tester_check_1_single_client_input_output"),
        &[r#"1 extra byte "\x00" after the reply"#],
    );
    assert_contains(&text, &["the course's tester would FAIL this build", "failed"]);
    let xml = std::fs::read_to_string(&junit).expect("the JUnit report was written");
    println!("--- {junit_arg} ---\n{xml}");
    assert_contains(
        &xml,
        &[
            "<testsuite name=\"xps-check stage 6\" tests=\"17\"",
            "<testcase classname=\"workspace\" name=\"extra_nothing_comes_after_a_reply\"",
            "<failure message=",
            "are you sending strlen+1?",
        ],
    );
}

#[test]
fn a_message_without_newline_reversed_wrong_fails_our_check_though_the_tester_would_pass() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("newline");
    let (code, text) = check(&fake, &["--stage", "6"], "newline", "0.0.0.0", &ALL_PORTS);
    assert_eq!(code, Some(1), "{text}");
    assert_contains(
        section(&text, "extra_message_without_a_newline_comes_back_reversed"),
        &[r#"sent:     "no newline""#, r#"expected: "enilwen on""#, r#"received: "nilwen one""#, "trailing \\n"],
    );
    // The tester sends only lines ending in \n: it would not see this bug.
    assert_contains(&text, &["the course's tester would PASS this build", "16 passed, 1 failed"]);
}

#[test]
fn a_server_that_segfaults_on_its_third_message_is_reported_as_dead_first() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("segv");
    let (code, text) = check(&fake, &["--stage", "7", "--official"], "segv", "0.0.0.0", &ALL_PORTS);
    assert_eq!(code, Some(1), "{text}");
    let check_1 = section(&text, "tester_check_1_single_client_input_output");
    assert_contains(
        check_1,
        &["xps died during the check: killed by signal 11 (SIGSEGV", "-fsanitize=address,undefined"],
    );
    let died = check_1.find("died during the check").unwrap();
    let clients = check_1.find("what the clients saw").expect("the clients' view comes after");
    assert!(died < clients, "the death must be reported before what the clients saw:\n{check_1}");
    assert_contains(&text, &["the server died in check 1; the tester restarts it", "the course's tester would FAIL"]);
}

#[test]
fn a_server_started_through_sh_c_leaves_nothing_running_after_the_run_or_ctrl_c() {
    let _lock = DefaultPortsLock::acquire();
    let fake = Fake::new("sh-c");
    // A stray background process in the server's group, as a run script might leave.
    let script = format!("sleep 6071 & cd {} && ./xps correct 0.0.0.0 8001 8002 8003 8004", fake.dir.display());
    let (code, text) = Checker::start(&["--stage", "7", "--official", "--", "sh", "-c", &script]).finish();
    println!("--- xps-check --stage 7 --official -- sh -c {script:?} ---\n{text}");
    assert_eq!(code, Some(0), "{text}");
    assert_contains(&text, &["(server: xps)", "4 passed, 0 failed"]);
    assert_nothing_left("sleep 6071");
    assert_nothing_left(&fake.path());

    // Ctrl+C in the middle of a run: the checker stops the server's whole group before it exits.
    let checker = Checker::start(&["--stage", "7", "--", "sh", "-c", &script]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Server::listeners_on(8001).is_empty() {
        assert!(Instant::now() < deadline, "the server never started");
        thread::sleep(Duration::from_millis(20));
    }
    checker.interrupt();
    let (code, text) = checker.finish();
    println!("--- interrupted ---\n{text}");
    assert_eq!(code, Some(130), "{text}");
    assert_contains(&text, &["interrupted", "stopped the server"]);
    assert_nothing_left("sleep 6071");
    assert_nothing_left(&fake.path());
}

#[test]
fn a_command_without_dot_slash_gets_a_hint() {
    let fake = Fake::new("no-dot-slash");
    let output = Command::new(workspace_binary("xps-check"))
        .args(["--stage", "7", "--", "xps"])
        .current_dir(&fake.dir)
        .output()
        .expect("run xps-check");
    let text = String::from_utf8_lossy(&output.stderr);
    println!("{text}");
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("write `-- ./xps`"), "{text}");
    assert!(Path::new(&fake.path()).exists());
}
