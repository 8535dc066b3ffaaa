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
/// What the Rust needs and the page does not ask for, each in a module of its own.
mod given {
    pub mod instance_ptr;
    pub mod loop_token;
    pub mod loop_waker;
    pub mod shutdown;
}
mod network {
    pub mod xps_connection;
    pub mod xps_listener;
}
#[cfg(test)]
#[path = "../tests/unit/mod.rs"]
mod unit;
mod xps;

use log::{error, warn};
use shared::xps_logger;
use shared::xps_utils::{self, EXIT_FAILURE};

use crate::core::xps_core::{xps_core_create, xps_core_destroy, xps_core_start};
use crate::given::loop_waker::{LoopWaker, xps_loop_waker};
use crate::given::shutdown::{self, SHUTDOWN_GRACE};

/// The ports stage 7 listens on when none are given, as in the course.
const DEFAULT_PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

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
    shutdown::loop_stopped();
    if result.is_ok() {
        // The loop returns Ok only when woken, and only sigint_handler() wakes it. Logged here,
        // on the main thread, not in the handler: see sigint_handler().
        warn!(target: "sigint_handler()", "SIGINT received");
    }
    xps_core_destroy(core);
    std::process::exit(if result.is_ok() { 0 } else { EXIT_FAILURE });
}

/// `sigint_handler()`: runs on the `ctrlc` thread when SIGINT (Ctrl+C), SIGTERM or SIGHUP
/// arrives. It wakes the loop, so that `xps_loop_run()` returns and `main` logs
/// `SIGINT received`, destroys the core and exits 0.
///
/// It logs nothing itself: the logger writes to stdout under a lock, and the main thread may
/// hold that lock, stuck writing to a stdout nobody reads (`| less`, a terminal paused with
/// Ctrl+S). If the main thread is stuck there, or in a blocking `send()` to a client that never
/// reads (the page's Experiment #1), the loop never stops: after [`SHUTDOWN_GRACE`] the handler
/// forces the exit (`given/shutdown.rs`). Once the loop has stopped, the core's teardown is not
/// cut short, however long it takes.
fn sigint_handler(waker: &LoopWaker) {
    waker.wake();
    if !shutdown::loop_stopped_within(SHUTDOWN_GRACE) {
        shutdown::force_exit();
    }
}
