//! A tool's Ctrl+C: stopping every run still live in this process, once, and the one way the
//! tools wait for SIGINT, SIGTERM and SIGHUP.
//!
//! The course's stage 7 handles Ctrl+C with a `signal()` handler that only sets a flag; a tool
//! that must stop servers, print and exit cannot do that from a handler. Instead the signals are
//! blocked in every thread and one thread of its own waits for them with `sigwait()`, and then
//! runs ordinary code.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::members::{Run, Seen};
use super::peek_exit;

/// The runs started in this process and not stopped yet, so that [`stop_all`] can stop them.
/// A process is spawned while this lock is held, so `stop_all` never misses one that is
/// starting; once `stop_all` has run, `stopping` refuses new ones.
pub(super) struct Registry {
    pub runs: Vec<Run>,
    pub stopping: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { runs: Vec::new(), stopping: false });

/// The signal [`on_interrupt`] received, 0 until one arrives.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// The signal (SIGINT, SIGTERM, SIGHUP) that [`on_interrupt`] received, if one has arrived: set
/// before the runs are stopped, so that a tool's main thread that sees its server die can tell
/// an interruption from the server's own death.
pub fn interrupted() -> Option<libc::c_int> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

pub(super) fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops every run still live in this process, for a program's Ctrl+C: SIGINT to each run's
/// group and marked processes, up to `grace` for the leaders to exit, then SIGKILL to whatever
/// is left. Nothing is reaped: the caller exits next. From now on a thread that would start a
/// process waits for that exit instead ([`super::Process::spawn`]).
pub fn stop_all(grace: Duration) {
    {
        let mut registry = registry();
        registry.stopping = true;
        // Signalled under the lock: an owner takes its run out of the registry (under the
        // lock) before it reaps the leader, so every group signalled here still exists.
        for run in &registry.runs {
            run.signal_all(libc::SIGINT, &mut Seen::default());
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let all_exited = registry().runs.iter().all(|run| peek_exit(run.leader).is_some());
        if all_exited {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let registry = registry();
    for run in &registry.runs {
        run.kill_all(&mut Seen::default());
    }
}

/// The one way the tools handle Ctrl+C (SIGINT), SIGTERM and SIGHUP: blocks them in the
/// calling thread, which every thread started later inherits, and waits for them on a thread
/// of its own. When one arrives it runs [`stop_all`] with `grace`, then `then(signal)`, which
/// may print and exit with a status of the tool's choice; if it returns, the process ends as
/// the signal would have ended it.
///
/// Call it first thing in `main`, before any other thread starts: a thread started earlier
/// does not have the signals blocked, and the kernel may deliver one to it, ending the program
/// without stopping anything. Processes started through [`super::Process`] begin with no signal
/// blocked.
pub fn on_interrupt(grace: Duration, then: impl FnOnce(libc::c_int) + Send + 'static) {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset/sigaddset initialise it and
    // pthread_sigmask reads it. It changes only the calling thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let waiter = move || {
        let mut signal: libc::c_int = 0;
        // SAFETY: `set` is an initialised signal set owned by this closure; `signal` is a live int.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            return;
        }
        INTERRUPTED.store(signal, Ordering::SeqCst);
        stop_all(grace);
        then(signal);
        die_by(signal);
    };
    thread::Builder::new().name("xps-interrupt".into()).spawn(waiter).expect("start the signal-waiting thread");
}

/// Ends the process as `signal`'s default action does (so a shell sees "killed by SIGINT"),
/// or with status 128 + signal if that does not end it.
fn die_by(signal: libc::c_int) -> ! {
    // SAFETY: a zeroed sigset_t is valid storage, initialised by sigemptyset/sigaddset. With
    // the default action restored and the signal unblocked in this thread, raise() delivers it
    // here and the kernel ends the whole process.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    std::process::exit(128 + signal)
}
