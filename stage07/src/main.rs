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
//!   sigint_handler()            (Ctrl+C, on the ctrlc thread: wakes the loop)
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
#[path = "../tests/unit/extra.rs"]
mod extra;
#[cfg(test)]
#[path = "../tests/unit/milestone_1.rs"]
mod milestone_1;
#[cfg(test)]
#[path = "../tests/unit/milestone_2.rs"]
mod milestone_2;
#[cfg(test)]
#[path = "../tests/unit/kit.rs"]
mod unit_kit;
mod xps;

use std::thread;
use std::time::Duration;

use log::{error, warn};
use shared::xps_logger;
use shared::xps_utils::{self, EXIT_FAILURE};

use crate::core::xps_core::{xps_core_create, xps_core_destroy, xps_core_start};
use crate::core::xps_loop::{LoopWaker, xps_loop_waker};

/// The ports stage 7 listens on when none are given, as in the course.
const DEFAULT_PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

/// How long Ctrl+C waits for a graceful shutdown before forcing the exit.
const FORCE_EXIT_AFTER: Duration = Duration::from_secs(1);

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
    // handler on a thread of its own instead; the handler only wakes the loop, and the core is
    // destroyed here, on the thread that owns it, once the loop has returned.
    let waker = xps_loop_waker(&core.loop_);
    if let Err(e) = ctrlc::set_handler(move || sigint_handler(&waker)) {
        error!(target: "main()", "could not install the Ctrl+C handler: {e}");
    }

    let result = xps_core_start(&core, &config.host, &config.ports);
    xps_core_destroy(core);
    std::process::exit(if result.is_ok() { 0 } else { EXIT_FAILURE });
}

/// `sigint_handler()`: runs on the `ctrlc` thread when SIGINT (Ctrl+C) arrives. It wakes the
/// loop, which returns so `main` can destroy the core and exit 0.
///
/// If the main thread is stuck in a blocking `send()` to a client that never reads (the page's
/// Experiment #1), the loop cannot notice the wake-up. After [`FORCE_EXIT_AFTER`] the handler
/// says so and ends the process itself, with status 1: the kernel still closes every socket,
/// but the core was not destroyed.
fn sigint_handler(waker: &LoopWaker) {
    warn!(target: "sigint_handler()", "SIGINT received");
    waker.wake();
    thread::sleep(FORCE_EXIT_AFTER);
    warn!(
        target: "sigint_handler()",
        "the loop did not stop within {FORCE_EXIT_AFTER:?} (blocked in send() to a client that does not read? \
         see Experiment #1); forcing the exit"
    );
    std::process::exit(EXIT_FAILURE);
}
