//! `process::stop_all`, what a tool's Ctrl+C runs: every run still live in the process is
//! stopped, a daemon and a server that ignores SIGINT included, and nothing new starts after
//! it. A test binary of its own: after `stop_all` this process refuses new runs for good.

mod support;

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::{first_line, python};
use xps_tests::process::{self, Options, Process};
use xps_tests::procfs;

/// Starts `script`, which prints `ready PID` once set up; the run and that pid.
fn start(script: &str) -> (Process, u32) {
    let mut run = Process::spawn(python(script), &Options::default()).expect("start python3");
    let line = first_line(run.take_stdout().unwrap());
    let pid = line.strip_prefix("ready ").and_then(|p| p.trim().parse().ok());
    (run, pid.unwrap_or_else(|| panic!("expected `ready PID`, got {line:?}")))
}

#[test]
fn stop_all_stops_every_run_and_then_refuses_new_ones() {
    let ready = "print('ready %d' % os.getpid(), flush=True)\nwhile True:\n    time.sleep(0.05)\n";
    let plain = start(&format!("import os, time\n{ready}"));
    let deaf = start(&format!("import os, signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n{ready}"));
    let daemon = start(&format!("import os, time\nif os.fork() > 0:\n    os._exit(0)\nos.setsid()\n{ready}"));
    let pids = [plain.1, deaf.1, daemon.1];

    process::stop_all(Duration::from_millis(300));

    let alive: Vec<u32> = pids.iter().copied().filter(|&p| procfs::stat(p).is_some_and(|s| !s.is_zombie())).collect();
    assert_eq!(alive, Vec::<u32>::new(), "of {pids:?} (plain, ignores SIGINT, daemon), still running after stop_all()");
    for (run, _) in [&plain, &deaf, &daemon] {
        assert_eq!(process::pids_carrying(run.marker()), Vec::<u32>::new(), "marked processes after stop_all()");
    }

    // A run started after stop_all() would race the program's exit: the thread waits instead.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let started = Process::spawn(Command::new("true"), &Options::default());
        let _ = tx.send(started.is_ok());
    });
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "a spawn after stop_all() must not start anything");
}
