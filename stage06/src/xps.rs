//! What the course's `xps.h` holds: constants shared by every module and the names other
//! modules import.
//!
//! In C, `xps.h` includes every header so each `.c` file includes just `xps.h`. In Rust each
//! module `use`s what it needs; this module keeps the constants and re-exports the instance
//! types under one roof, so a learner can hold it next to the page's `xps.h`.
//!
//! The page's `u_char`, `u_int` and `u_long` typedefs need no Rust twin: `u8`, `u32` and
//! `u64` already say "unsigned".

/// `DEFAULT_BACKLOG`: how many not-yet-accepted connections the kernel queues per listener.
pub const DEFAULT_BACKLOG: i32 = 64;
/// `MAX_EPOLL_EVENTS`: the most events one `epoll_wait()` returns.
pub const MAX_EPOLL_EVENTS: usize = 32;
/// `DEFAULT_BUFFER_SIZE`: the most bytes one `recv()` reads (100 KB).
pub const DEFAULT_BUFFER_SIZE: usize = 100_000;

// Struct typedefs (`typedef struct xps_listener_s xps_listener_t;` ...)
pub use crate::network::xps_connection::XpsConnection;
pub use crate::network::xps_listener::XpsListener;

// Temporary declarations: the globals and loop functions `main.rs` defines that the modules
// use (`main` itself calls `xps_loop_create` and `xps_loop_run`).
// Stage 7 moves them into the core and loop modules.
pub use crate::{CONNECTIONS, LISTENERS};
pub use crate::{xps_loop_attach, xps_loop_detach};
