//! eXpServer Stage 7 in Rust: core and loop modules (course page `stage-07.md`).
//!
//! `main.rs` shrinks to what the page's `main.c` does: create a core, start it, and handle
//! Ctrl+C. The loop moved to `core/xps_loop.rs`, the global lists into the core
//! (`core/xps_core.rs`). Listeners and connections attach themselves to the loop with a
//! callback and a pointer to themselves, so the loop calls them without scanning any list.
//!
//! ```text
//! main()
//!   xps_core_create()
//!     xps_loop_create()
//!   xps_core_start()
//!     xps_listener_create()
//!       xps_loop_attach()
//!         loop_event_create()
//!     xps_loop_run()
//!       epoll_wait()
//!       handle_epoll_events()
//!         listener_connection_handler()
//!           xps_connection_create()
//!             xps_loop_attach()
//!         connection_loop_read_handler()
//!           recv() / send()
//!           xps_connection_destroy()
//!             xps_loop_detach()
//!               loop_event_destroy()
//!   sigint_handler()            (Ctrl+C, on the ctrlc thread: wakes the loop, waits)
//!   xps_core_destroy()          (back on the main thread, once xps_loop_run() returned)
//! ```

mod core {
    pub mod xps_core;
    pub mod xps_loop;
}
mod network {
    pub mod xps_connection;
    pub mod xps_listener;
}
#[cfg(test)]
#[path = "../tests/unit/mod.rs"]
mod unit;
mod xps;

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use log::{error, warn};
use shared::sys;
use shared::xps_logger;
use shared::xps_utils::{self, EXIT_FAILURE};

use crate::core::xps_core::{xps_core_create, xps_core_destroy, xps_core_start};
use crate::core::xps_loop::{LoopWaker, xps_loop_waker};

/// The ports stage 7 listens on when none are given, as in the course.
const DEFAULT_PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

/// How long Ctrl+C waits for the graceful shutdown to finish before forcing the exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

fn main() {
    xps_logger::init();
    let config = xps_utils::parse_args_or_exit("stage07", &DEFAULT_PORTS);

    let Some(core) = xps_core_create() else {
        std::process::exit(EXIT_FAILURE);
    };

    // The page calls `signal(SIGINT, sigint_handler)`, and its handler destroys the core and
    // exits. That is not safe: a signal handler interrupts the program anywhere, maybe inside
    // malloc() or halfway through changing the very lists the core destroys, and may only call
    // async-signal-safe functions (free() and printf() are not). The `ctrlc` crate runs our
    // handler on a thread of its own instead, for SIGINT and also SIGTERM (`kill`, systemd,
    // docker) and SIGHUP (the terminal closed). The handler only wakes the loop; the core is
    // destroyed here, on the thread that owns it, once the loop has returned.
    let waker = xps_loop_waker(&core.loop_);
    if let Err(e) = ctrlc::set_handler(move || sigint_handler(&waker)) {
        error!(target: "main()", "could not install the Ctrl+C handler: {e}");
    }

    let result = xps_core_start(&core, &config.host, &config.ports);
    shutdown_reached(Shutdown::LoopStopped);
    if result.is_ok() {
        // The loop returns Ok only when woken, and only sigint_handler() wakes it. Logged here,
        // on the main thread, not in the handler: see sigint_handler().
        warn!(target: "sigint_handler()", "SIGINT received");
    }
    xps_core_destroy(core);
    shutdown_reached(Shutdown::CoreDestroyed);
    std::process::exit(if result.is_ok() { 0 } else { EXIT_FAILURE });
}

/// `sigint_handler()`: runs on the `ctrlc` thread when SIGINT (Ctrl+C), SIGTERM or SIGHUP
/// arrives. It wakes the loop, so that `xps_loop_run()` returns and `main` logs
/// `SIGINT received`, destroys the core and exits 0, then waits for that to be done.
///
/// It logs nothing itself: the logger writes to stdout under a lock, and the main thread may
/// hold that lock, stuck writing to a stdout nobody reads (`| less`, a terminal paused with
/// Ctrl+S). If the main thread is stuck there, or in a blocking `send()` to a client that never
/// reads (the page's Experiment #1), the shutdown never finishes: after [`SHUTDOWN_GRACE`] the
/// handler says so on stderr, without taking any lock, and ends the process with status 1 (the
/// kernel still closes every socket, but the core was not destroyed).
fn sigint_handler(waker: &LoopWaker) {
    waker.wake();
    let reached = wait_for_shutdown(SHUTDOWN_GRACE);
    if reached != Shutdown::CoreDestroyed {
        force_exit(reached);
    }
}

/// How far the graceful shutdown has got. Not in the course: the main thread moves it on, and
/// the signal handler's thread waits on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    /// The loop is still running (or stuck in a callback).
    Running,
    /// `xps_loop_run()` returned; the core is being destroyed.
    LoopStopped,
    /// The core is destroyed; the process exits now.
    CoreDestroyed,
}

static SHUTDOWN: (Mutex<Shutdown>, Condvar) = (Mutex::new(Shutdown::Running), Condvar::new());

/// Records that the shutdown got to `stage` and tells a waiting signal handler.
fn shutdown_reached(stage: Shutdown) {
    *SHUTDOWN.0.lock().unwrap_or_else(PoisonError::into_inner) = stage;
    SHUTDOWN.1.notify_all();
}

/// Waits up to `grace` for the core to be destroyed; returns how far the shutdown got.
fn wait_for_shutdown(grace: Duration) -> Shutdown {
    let state = SHUTDOWN.0.lock().unwrap_or_else(PoisonError::into_inner);
    let (state, _) = SHUTDOWN
        .1
        .wait_timeout_while(state, grace, |stage| *stage != Shutdown::CoreDestroyed)
        .unwrap_or_else(PoisonError::into_inner);
    *state
}

/// Ends the process with status 1 after a shutdown that did not finish, saying why on stderr
/// with a plain `write()` (no lock another thread could hold).
fn force_exit(reached: Shutdown) -> ! {
    let why = match reached {
        Shutdown::Running => {
            "the loop did not stop: the server is blocked, in send() to a client that does not read \
             (see Experiment #1) or writing to a stdout nobody reads"
        }
        _ => "the core was not destroyed in time",
    };
    let message = format!("[WARNING] sigint_handler() : {why}; forcing the exit after {SHUTDOWN_GRACE:?}\n");
    sys::write_stderr_unlocked(message.as_bytes());
    sys::exit_immediately(EXIT_FAILURE)
}
