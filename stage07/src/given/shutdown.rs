//! Given code, not on the page: what Ctrl+C needs here beyond the page's `sigint_handler()`.
//!
//! The page's handler destroys the core and exits from inside the signal handler. Ours (in
//! `main.rs`) runs on a thread of its own and only wakes the loop; `main` destroys the core
//! once `xps_loop_run()` has returned. Two things can keep the loop from ever seeing the
//! wake-up: the main thread stuck in a blocking `send()` to a client that does not read (the
//! page's Experiment #1), or stuck writing its log to a stdout nobody reads. So the handler
//! waits up to [`SHUTDOWN_GRACE`] for the loop to stop ([`loop_stopped`], called by `main`), and
//! forces the exit ([`force_exit`]) only if it has not stopped by then.
//!
//! Once the loop has stopped, the teardown takes as long as it takes: destroying 10,000
//! connections, or any teardown under valgrind, is slow but progressing, and is not cut short.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use shared::sys;
use shared::xps_utils::EXIT_FAILURE;

/// How long the signal handler waits for the loop to stop before it forces the exit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Whether `xps_loop_run()` has returned, and the signal handler's thread waiting for it.
static LOOP_STOPPED: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Records that `xps_loop_run()` has returned, and tells a waiting signal handler.
pub fn loop_stopped() {
    *LOOP_STOPPED.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
    LOOP_STOPPED.1.notify_all();
}

/// Waits up to `grace` for [`loop_stopped`]; whether it came.
pub fn loop_stopped_within(grace: Duration) -> bool {
    let stopped = LOOP_STOPPED.0.lock().unwrap_or_else(PoisonError::into_inner);
    let (stopped, _) =
        LOOP_STOPPED.1.wait_timeout_while(stopped, grace, |stopped| !*stopped).unwrap_or_else(PoisonError::into_inner);
    *stopped
}

/// Ends the process at once with status 1 (the kernel closes every socket; the core is not
/// destroyed), saying why on stderr with a plain `write()`: no lock the stuck main thread
/// could hold.
pub fn force_exit() -> ! {
    let message = format!(
        "[WARNING] sigint_handler() : the loop did not stop: the server is blocked, in send() to a client that \
         does not read (see Experiment #1) or writing to a stdout nobody reads; forcing the exit after \
         {SHUTDOWN_GRACE:?}\n"
    );
    sys::write_stderr_unlocked(message.as_bytes());
    sys::exit_immediately(EXIT_FAILURE)
}
