//! Running a command to completion with a time limit, collecting what it printed: for a tool
//! that runs `cargo` or `git` and must not hang on them.

use std::io::{self, Read};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Options, Process};

/// How long the output readers get, once everything of the run is gone, to take in the last
/// bytes (a process that escaped the run could keep a pipe open for ever).
const DRAIN: Duration = Duration::from_secs(2);

/// How a bounded run ended.
#[derive(Debug)]
pub struct Finished {
    /// The command's exit status; `None` if it was killed for running past its limit.
    pub status: Option<ExitStatus>,
    /// Whether it ran past its limit and was killed.
    pub timed_out: bool,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// Runs `cmd` as a [`Process`] (a group of its own, marked), collecting its stdout and stderr.
/// After `limit` the run is stopped (SIGINT, then SIGKILL at once). Once the command has
/// exited, whatever it left running in its group or with its marker (a server a test did not
/// stop) is stopped too: it would keep the pipes open.
pub fn run_bounded(cmd: Command, limit: Duration) -> io::Result<Finished> {
    let mut process = Process::spawn(cmd, &Options::default())?;
    let stdout = Collected::start(process.take_stdout());
    let stderr = Collected::start(process.take_stderr());
    let status = process.wait_exit(limit);
    let timed_out = status.is_none();
    // A run stopped for its time limit has no status of its own (SIGINT may just have ended it).
    let stopped = process.stop(Duration::ZERO);
    let status = if timed_out { None } else { status.or(stopped) };
    let deadline = Instant::now() + DRAIN;
    Ok(Finished { status, timed_out, stdout: stdout.take(deadline), stderr: stderr.take(deadline) })
}

/// One output stream, read to its end on a thread of its own.
struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    ended: Arc<Mutex<bool>>,
}

impl Collected {
    /// Starts reading `stream` (nothing to read if there is none).
    fn start(stream: Option<impl Read + Send + 'static>) -> Collected {
        let collected = Collected { bytes: Arc::default(), ended: Arc::new(Mutex::new(stream.is_none())) };
        if let Some(mut stream) = stream {
            let (bytes, ended) = (Arc::clone(&collected.bytes), Arc::clone(&collected.ended));
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    bytes.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&buf[..n]);
                }
                *ended.lock().unwrap_or_else(|e| e.into_inner()) = true;
            });
        }
        collected
    }

    /// What was read, once the stream has ended or at `deadline`.
    fn take(&self, deadline: Instant) -> Vec<u8> {
        while !*self.ended.lock().unwrap_or_else(|e| e.into_inner()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
