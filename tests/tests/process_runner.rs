//! The process runner (`xps_tests::process`) against processes that make stopping hard: a
//! daemon that double-forks and calls `setsid()`, a server that ignores SIGINT, a `sh -c`
//! wrapper's child, a command that outlives its time limit, and what a killed tool left behind.
//! Every process here listens on 127.0.0.1 only, on a port the OS picks.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

mod support;

use support::{first_line, python};
use xps_tests::process::{self, Options, Process};
use xps_tests::{procfs, workspace_binary};

/// A daemon as a learner's C server might become one: the process started exits at once; its
/// child calls `setsid()` (a session and group of its own, out of the runner's group) and forks
/// the real server, which listens on 127.0.0.1 and prints `port N pid P`.
const DAEMON: &str = r#"
import os, socket, sys, time
if os.fork() > 0:
    os._exit(0)
os.setsid()
if os.fork() > 0:
    os._exit(0)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
print("port %d pid %d" % (s.getsockname()[1], os.getpid()), flush=True)
while True:
    time.sleep(0.05)
"#;

/// `port N pid P` as (N, P).
fn port_and_pid(line: &str) -> (u16, u32) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        ["port", port, "pid", pid] => (port.parse().unwrap(), pid.parse().unwrap()),
        _ => panic!("expected `port N pid P`, got {line:?}"),
    }
}

fn listens_on(port: u16) -> bool {
    procfs::listening_tcp().iter().any(|s| s.local.port() == port)
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

/// Waits up to five seconds for `condition`.
fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn a_daemon_that_double_forks_and_calls_setsid_is_stopped_and_its_port_freed() {
    let mut run = Process::spawn(python(DAEMON), &Options::default()).expect("start python3");
    let (port, daemon) = port_and_pid(&first_line(run.take_stdout().unwrap()));
    let marker = run.marker().to_string();
    assert_eq!(run.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()), Some(0), "the launcher exits 0 at once");
    let me = std::process::id();
    assert!(
        eventually(|| procfs::stat(daemon).is_some_and(|s| s.ppid == me)),
        "the daemon (pid {daemon}) should be adopted by the process that started the run (a child subreaper); \
         its parent is {:?}",
        procfs::stat(daemon).map(|s| s.ppid)
    );
    assert!(run.pids().contains(&daemon), "pids() {:?} should include the daemon {daemon}", run.pids());
    assert!(listens_on(port), "the daemon listens on {port}");

    let status = run.stop(Duration::from_secs(1));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "stop() reports the leader's own exit");
    assert_eq!(process::pids_carrying(&marker), Vec::<u32>::new(), "processes with the run's marker after stop()");
    assert!(!listens_on(port), "something still listens on port {port} after stop()");
    assert!(
        procfs::stat(daemon).is_none(),
        "the daemon (pid {daemon}) should be gone and reaped, not left as {:?}",
        procfs::stat(daemon)
    );
}

#[test]
fn a_server_that_ignores_sigint_is_killed_after_the_grace_period() {
    let script = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\n\
                  while True:\n    time.sleep(0.05)\n";
    let mut run = Process::spawn(python(script), &Options::default()).expect("start python3");
    assert_eq!(first_line(run.take_stdout().unwrap()), "ready\n");
    let pid = run.pid();
    let started = Instant::now();
    let status = run.stop(Duration::from_millis(300));
    let took = started.elapsed();
    assert_eq!(status, None, "a server killed after the grace period has no exit status of its own");
    assert!(took >= Duration::from_millis(300), "SIGKILL came after {took:?}, before the grace period ended");
    assert!(took < Duration::from_secs(5), "stop() took {took:?}");
    assert!(procfs::stat(pid).is_none(), "the server (pid {pid}) should be killed and reaped");
}

#[test]
fn the_exit_status_of_a_normal_exit_is_reported() {
    let mut run = Process::spawn(sh("exit 7"), &Options::default()).expect("start sh");
    let status = run.wait_exit(Duration::from_secs(10)).expect("sh -c 'exit 7' exits");
    assert_eq!(status.code(), Some(7));
    assert_eq!(run.stop(Duration::from_secs(1)).and_then(|s| s.code()), Some(7));
    assert_eq!(run.stop(Duration::from_secs(1)).and_then(|s| s.code()), Some(7), "a second stop() says the same");

    // A server that exits on SIGINT with a status of its own: stop() reports it.
    let script = "import os, signal, time\nsignal.signal(signal.SIGINT, lambda *_: os._exit(3))\n\
                  print('ready', flush=True)\nwhile True:\n    time.sleep(0.05)\n";
    let mut run = Process::spawn(python(script), &Options::default()).expect("start python3");
    assert_eq!(first_line(run.take_stdout().unwrap()), "ready\n");
    let started = Instant::now();
    assert_eq!(run.stop(Duration::from_secs(5)).and_then(|s| s.code()), Some(3));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stop() waited {:?} for a server that exited",
        started.elapsed()
    );
}

#[test]
fn a_plain_child_of_a_sh_c_wrapper_is_stopped() {
    // A background job of a non-interactive shell ignores SIGINT: only SIGKILL ends it.
    let cmd = sh("sleep 600 & echo $!; wait");
    let mut run = Process::spawn(cmd, &Options::default()).expect("start sh");
    let child: u32 = first_line(run.take_stdout().unwrap()).trim().parse().expect("the child's pid");
    assert!(run.pids().contains(&child), "pids() {:?} should include sh's child {child}", run.pids());
    run.stop(Duration::from_millis(200));
    assert!(
        procfs::stat(child).is_none(),
        "sh's child (pid {child}) should be killed and reaped: {:?}",
        procfs::stat(child)
    );
}

#[test]
fn the_open_files_limit_is_set_in_the_child() {
    let cmd = sh("ulimit -n");
    let mut run = Process::spawn(cmd, &Options { open_files_limit: Some(64), ..Options::default() }).unwrap();
    assert_eq!(first_line(run.take_stdout().unwrap()), "64\n");
}

#[test]
fn a_bounded_run_collects_the_output_and_exit_code() {
    let cmd = sh("echo out; echo err >&2; exit 3");
    let done = process::run_bounded(cmd, Duration::from_secs(20)).expect("run sh");
    assert!(!done.timed_out);
    assert_eq!(done.status.and_then(|s| s.code()), Some(3));
    assert_eq!(String::from_utf8_lossy(&done.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&done.stderr), "err\n");
}

#[test]
fn a_bounded_run_kills_a_command_that_outlives_its_limit() {
    // `exec`: the sleep keeps the shell's pid, which the shell prints first.
    let cmd = sh("echo $$; exec sleep 600");
    let started = Instant::now();
    let done = process::run_bounded(cmd, Duration::from_millis(500)).expect("run sh");
    assert!(done.timed_out, "the run should be reported as timed out: {done:?}");
    assert_eq!(done.status, None, "a killed run has no exit status");
    assert!(started.elapsed() < Duration::from_secs(5), "the run took {:?}", started.elapsed());
    let pid: u32 = String::from_utf8_lossy(&done.stdout).trim().parse().expect("the command's pid");
    assert!(
        procfs::stat(pid).is_none(),
        "the command (pid {pid}) should be killed and reaped: {:?}",
        procfs::stat(pid)
    );
}

#[test]
fn a_bounded_run_stops_what_the_command_left_running() {
    // The command exits at once; its background child keeps the output pipe open.
    let cmd = sh("sleep 600 & echo $!");
    let started = Instant::now();
    let done = process::run_bounded(cmd, Duration::from_secs(20)).expect("run sh");
    assert_eq!(done.status.and_then(|s| s.code()), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5), "the run took {:?}", started.elapsed());
    let child: u32 = String::from_utf8_lossy(&done.stdout).trim().parse().expect("the child's pid");
    assert!(procfs::stat(child).is_none(), "the left-over child (pid {child}) should be killed and reaped");
}

#[test]
fn a_daemon_left_by_a_killed_tool_is_found_and_stopped() {
    // xps-lock (a tool that runs a command through the runner) starts the daemon, then is
    // SIGKILLed: it cannot stop the daemon, which carries its marker. Its own lock file, so no
    // other test or script waits for it.
    let dir = std::env::temp_dir().join(format!("xps-leftover-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = format!("leftover-token-{}", std::process::id());
    let mut cmd = Command::new(workspace_binary("xps-lock"));
    cmd.env("TMPDIR", &dir).args(["--", "python3", "-c", DAEMON, &token]);
    let mut tool = Process::spawn(cmd, &Options::default()).expect("start xps-lock");
    let (port, daemon) = port_and_pid(&first_line(tool.take_stdout().unwrap()));
    let tool_pid = tool.pid();
    tool.signal(libc::SIGKILL).unwrap();
    assert!(tool.wait_exit(Duration::from_secs(5)).is_some(), "xps-lock should die of SIGKILL");

    let find = || process::leftovers("xps-lock").into_iter().find(|l| l.command.contains(&token));
    assert!(eventually(|| find().is_some()), "the daemon (pid {daemon}) should be found as a leftover of xps-lock");
    let leftover = find().unwrap();
    assert_eq!((leftover.pid, leftover.owner), (daemon, tool_pid), "{leftover:?}");
    assert!(process::stop_leftover(&leftover, Duration::from_secs(1)), "stop_leftover({leftover:?}) failed");
    assert!(!listens_on(port), "something still listens on port {port} after stop_leftover()");
    drop(tool);
    let _ = std::fs::remove_dir_all(&dir);
}
