//! Helpers the process-runner tests share.

use std::io::{BufRead, BufReader, Read};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The first line `stream` gives within 20 seconds.
pub fn first_line(stream: impl Read + Send + 'static) -> String {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("the process printed no line within 20 s")
}

/// `python3 -c SCRIPT`.
pub fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]);
    cmd
}
