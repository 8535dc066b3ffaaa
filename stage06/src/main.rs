//! eXpServer Stage 6 in Rust: listener and connection modules (course page `stage-06.md`).
//!
//! `main.rs` holds what the page's `main.c` holds: `main()`, the event loop functions
//! (`xps_loop_create`, `xps_loop_attach`, `xps_loop_detach`, `xps_loop_run`) and the global
//! lists of listeners and connections. When epoll reports an event, [`xps_loop_run`] finds the
//! instance it belongs to by scanning those lists for the event's fd. That O(n) scan is what
//! this stage teaches; stage 7 replaces it with callbacks.
//!
//! ```text
//! main()
//!   xps_loop_create()
//!   xps_listener_create()
//!     xps_loop_attach()
//!   xps_loop_run()
//!   epoll_wait()
//!     xps_listener_connection_handler()
//!       xps_connection_create()
//!     xps_connection_read_handler()
//!       recv() / send()
//!       xps_connection_destroy()
//! ```

mod network {
    pub mod xps_connection;
    pub mod xps_listener;
}
#[cfg(test)]
#[path = "../tests/unit/mod.rs"]
mod unit;
mod xps;

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use log::{debug, error, info};
use shared::sys;
use shared::xps_logger;
use shared::xps_utils::{self, EXIT_FAILURE};

use crate::network::xps_connection::xps_connection_read_handler;
use crate::network::xps_listener::{xps_listener_connection_handler, xps_listener_create, xps_listener_destroy};
use crate::xps::{MAX_EPOLL_EVENTS, XpsConnection, XpsListener};

/// The ports stage 6 listens on when none are given, as in the course.
const DEFAULT_PORTS: [u16; 3] = [8001, 8002, 8003];

// Global variables: the page's `vec_void_t listeners; vec_void_t connections;` in `main.c`.
//
// Rust has no safe mutable global like C's; `thread_local!` + `RefCell` is the safe form for a
// single-threaded server (no `static mut`). Each entry is an `Rc`: the list owns the instance,
// and the loop takes a second handle while it runs a handler, so a handler that destroys its
// own instance never frees memory it is still using. A destroyed instance leaves `None` behind,
// as the page says; counting and compacting the `None`s is "not part of the current stage"
// (stage 7's core adds the counters).
thread_local! {
    /// Every listener created, `None` where one was destroyed.
    pub static LISTENERS: RefCell<Vec<Option<Rc<XpsListener>>>> = const { RefCell::new(Vec::new()) };
    /// Every connection accepted, `None` where one was destroyed.
    pub static CONNECTIONS: RefCell<Vec<Option<Rc<XpsConnection>>>> = const { RefCell::new(Vec::new()) };
}

fn main() {
    xps_logger::init();
    let config = xps_utils::parse_args_or_exit("stage06", &DEFAULT_PORTS);

    // The page's global `int epoll_fd`. It is shared by every listener and connection (each
    // keeps a handle to attach and detach itself), so it lives in an `Rc`.
    let epoll_fd = match xps_loop_create() {
        Ok(fd) => Rc::new(fd),
        Err(_) => std::process::exit(EXIT_FAILURE),
    };

    // Create listeners, one per port (8001, 8002, 8003 by default)
    for &port in &config.ports {
        let Some(listener) = xps_listener_create(&epoll_fd, &config.host, port) else {
            error!(target: "main()", "failed to create listener on {}:{port}; exiting", config.host);
            // Leave nothing listening before exiting.
            let created: Vec<_> = LISTENERS.with_borrow(|listeners| listeners.iter().flatten().cloned().collect());
            created.into_iter().for_each(xps_listener_destroy);
            std::process::exit(EXIT_FAILURE);
        };
        info!(target: "main()", "Server listening on port {}", listener.port);
    }

    xps_loop_run(epoll_fd.as_fd());
    // xps_loop_run() only returns if epoll_wait() itself fails.
    std::process::exit(EXIT_FAILURE);
}

/// `xps_loop_create()`: creates the epoll instance the loop waits on.
pub fn xps_loop_create() -> io::Result<OwnedFd> {
    sys::epoll_create().inspect_err(|e| error!(target: "xps_loop_create()", "epoll_create1() failed: {e}"))
}

/// `xps_loop_attach()`: asks epoll to report `events` on `fd`. The event carries the fd
/// itself (the page's `event.data.fd = fd`), which is all [`xps_loop_run`] gets back.
/// Logs the OS error on failure.
pub fn xps_loop_attach(epoll_fd: BorrowedFd<'_>, fd: BorrowedFd<'_>, events: u32) -> io::Result<()> {
    sys::epoll_add(epoll_fd, fd, events, fd.as_raw_fd() as u64)
        .inspect_err(|e| error!(target: "xps_loop_attach()", "epoll_ctl(EPOLL_CTL_ADD) failed: {e}"))
}

/// `xps_loop_detach()`: stops epoll reporting events on `fd`. Logs the OS error on failure.
pub fn xps_loop_detach(epoll_fd: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    sys::epoll_del(epoll_fd, fd)
        .inspect_err(|e| error!(target: "xps_loop_detach()", "epoll_ctl(EPOLL_CTL_DEL) failed: {e}"))
}

/// `xps_loop_run()`: waits for events and hands each to its listener or connection.
///
/// For every event it searches `LISTENERS`, then `CONNECTIONS`, for the instance whose
/// `sock_fd` is the event's fd: O(listeners + connections) per event. With 10,000 idle
/// connections open, each message pays for up to 10,000 comparisons (see docs/benchmarks.md).
/// Returns only if `epoll_wait()` fails.
pub fn xps_loop_run(epoll_fd: BorrowedFd<'_>) {
    let mut events = [sys::empty_epoll_event(); MAX_EPOLL_EVENTS];
    loop {
        debug!(target: "xps_loop_run()", "epoll wait");
        let n_ready_fds = match sys::epoll_wait(epoll_fd, &mut events, -1) {
            Ok(n) => n,
            Err(e) => {
                error!(target: "xps_loop_run()", "epoll_wait() failed: {e}");
                return;
            }
        };
        debug!(target: "xps_loop_run()", "epoll wait over");

        // Process events
        for event in &events[..n_ready_fds] {
            let curr_fd = event.u64 as i32;

            // Checking if curr_fd is of a listener. `cloned()` takes a second handle, so the
            // list is not borrowed while the handler runs (the handler adds to the lists).
            let listener = LISTENERS.with_borrow(|listeners| {
                listeners.iter().flatten().find(|curr| curr.sock_fd.as_raw_fd() == curr_fd).cloned()
            });
            if let Some(listener) = listener {
                xps_listener_connection_handler(&listener);
                continue;
            }

            // Checking if curr_fd is of a connection
            let connection = CONNECTIONS.with_borrow(|connections| {
                connections.iter().flatten().find(|curr| curr.sock_fd.as_raw_fd() == curr_fd).cloned()
            });
            if let Some(connection) = connection {
                xps_connection_read_handler(connection);
            }
        }
    }
}
