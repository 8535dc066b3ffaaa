//! One start of the server, shared by the checks that run against it: each check runs through
//! the engine ([`xps_tests::harness::execute`]) on a thread of its own within its time limit,
//! and the server is stopped afterwards (SIGINT, as Ctrl+C would, then SIGKILL) with what it
//! printed while it stopped kept apart: that belongs to no check.

use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use xps_tests::blame::Build;
use xps_tests::registry::Check;
use xps_tests::{Failure, Server, harness};

/// How long a server gets after SIGINT before SIGKILL: Valgrind's and a sanitizer's reports
/// need a moment.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long the server gets to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a server did not start.
pub enum StartError {
    /// The build's own doing: it exited, or never listened.
    Failed(Failure),
    /// Not the build's doing: the command could not be run at all.
    CannotJudge(String),
}

/// A running server, shared with the checks' threads.
pub struct Session {
    server: Arc<Server>,
}

/// How a check ran against the session's server.
pub struct Ran {
    /// Passed, or why not (the engine's blame resolved).
    pub result: Result<(), Failure>,
    /// Whether it ran out of its time limit (the thread may still be running).
    pub timed_out: bool,
    /// A panic of the checker's own code, if the check stopped on one: the checker failed.
    pub checker_panic: Option<String>,
}

/// How the server stopped.
pub struct Stopped {
    /// Whether it was still running when it was told to stop.
    pub was_running: bool,
    /// The listening process's exit status when it is the command itself (`None` if it had to
    /// be killed, or a wrapper reaped it).
    pub status: Option<ExitStatus>,
    /// What it printed from the SIGINT on.
    pub output: String,
}

impl Session {
    /// Starts `cmd`, named `name` until the process that listens names it, and waits until it
    /// listens on `ports`; also the ports it does not listen on.
    pub fn start(cmd: Command, name: &str, ports: &[u16]) -> Result<(Session, Vec<u16>), StartError> {
        let mut server = Server::launch(cmd, Some(name)).map_err(|f| StartError::CannotJudge(f.summary.clone()))?;
        match server.wait_listening(ports, START_TIMEOUT) {
            Ok(missing) => Ok((Session::from(server), missing)),
            Err(failure) => Err(not_found(&mut server).map_or(StartError::Failed(failure), StartError::CannotJudge)),
        }
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Runs `body` against the server as `check` (its time limit, and `stage`'s names for the
    /// page's functions as a C build has them).
    pub fn run<F>(&self, check: &Check, stage: u8, body: F) -> Ran
    where
        F: FnOnce(&Server) -> Result<(), Failure> + Send + 'static,
    {
        let server = Arc::clone(&self.server);
        let done = Arc::new(AtomicBool::new(false));
        let panicked = Arc::new(Mutex::new(None));
        let (done_in, panicked_in) = (Arc::clone(&done), Arc::clone(&panicked));
        let outcome = harness::execute(check, stage, Build::C, None, move || {
            let result = panic::catch_unwind(AssertUnwindSafe(|| body(&server)));
            done_in.store(true, Ordering::SeqCst);
            match result {
                Ok(result) => result,
                Err(payload) => {
                    if payload.downcast_ref::<Failure>().is_none() {
                        *panicked_in.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(harness::panic_message(&*payload));
                    }
                    panic::resume_unwind(payload)
                }
            }
        });
        let timed_out = !done.load(Ordering::SeqCst);
        let result = match outcome.result {
            Err(failure) if timed_out => Err(failure.detail("seen", self.server.activity().summary())),
            other => other,
        };
        let checker_panic = panicked.lock().unwrap_or_else(PoisonError::into_inner).take();
        Ran { result, timed_out, checker_panic }
    }

    /// Stops the server and everything it started: SIGINT, then SIGKILL after [`STOP_GRACE`].
    /// A check thread that ran out of time may still hold it: the server is stopped under it,
    /// which ends its reads.
    pub fn stop(self) -> Stopped {
        let was_running = self.server.ended().is_none();
        let mark = self.server.output_mark();
        let is_command = self.server.pid() == self.server.command_pid();
        let mut shared = self.server;
        let deadline = Instant::now() + STOP_GRACE;
        let mut signalled = false;
        let mut server = loop {
            match Arc::try_unwrap(shared) {
                Ok(server) => break server,
                Err(still) if Instant::now() > deadline + Duration::from_secs(10) => {
                    // The stuck thread will stop it when it lets go (Server's Drop).
                    still.signal_all(libc::SIGKILL);
                    return Stopped { was_running, status: None, output: still.output_since(mark) };
                }
                Err(still) => {
                    if !signalled {
                        still.signal_all(libc::SIGINT);
                        signalled = true;
                    } else if Instant::now() > deadline {
                        still.signal_all(libc::SIGKILL);
                    }
                    shared = still;
                    thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let status = server.stop(STOP_GRACE);
        Stopped { was_running, status: status.filter(|_| is_command), output: server.output_since(mark) }
    }
}

impl From<Server> for Session {
    fn from(server: Server) -> Session {
        Session { server: Arc::new(server) }
    }
}

/// Why the build cannot be judged, when a shell said that the command does not exist (exit
/// status 127 before listening, as `sh -c` reports a command it cannot find).
fn not_found(server: &mut Server) -> Option<String> {
    let status = server.wait_exit(Duration::from_millis(200))?;
    (status.code() == Some(127)).then(|| {
        let said = server.log_tail(3).lines().last().unwrap_or_default().trim().to_string();
        format!("the command was not found (exit status 127: {said})")
    })
}
