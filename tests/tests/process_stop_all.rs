//! `process::stop_all`, what a tool's Ctrl+C runs: every run still live in the process is
//! stopped, a daemon and a server that ignores SIGINT included, and nothing new starts after
//! it. A test binary of its own: after `stop_all` this process refuses new runs for good.

use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use xps_tests::process::{self, Options, Process};
use xps_tests::procfs;

fn python(script: &str) -> Process {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]);
    Process::spawn(cmd, &Options::default()).expect("start python3")
}

#[test]
fn stop_all_stops_every_run_and_then_refuses_new_ones() {
    let plain = python("import time\nwhile True:\n    time.sleep(0.05)\n");
    let deaf = python(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.05)\n",
    );
    let daemon =
        python("import os, time\nif os.fork() > 0:\n    os._exit(0)\nos.setsid()\nwhile True:\n    time.sleep(0.05)\n");
    let runs = [&plain, &deaf, &daemon];
    let deadline = Instant::now() + Duration::from_secs(10);
    // The daemon's launcher exits at once; wait until its child is there (and SIGINT handlers set).
    while daemon.pids().is_empty() || deaf.pids().is_empty() {
        assert!(Instant::now() < deadline, "the runs did not start");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    let pids: Vec<u32> = runs.iter().flat_map(|r| r.pids()).collect();
    assert!(pids.len() >= 3, "every run has a live process: {pids:?}");

    process::stop_all(Duration::from_millis(300));

    let alive: Vec<u32> = pids.iter().copied().filter(|&p| procfs::stat(p).is_some_and(|s| !s.is_zombie())).collect();
    assert_eq!(alive, Vec::<u32>::new(), "processes still running after stop_all()");
    for run in runs {
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
