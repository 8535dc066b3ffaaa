//! What the course's `xps.h` holds: constants shared by every module and the names other
//! modules import.
//!
//! In C, `xps.h` includes every header so each `.c` file includes just `xps.h`. In Rust each
//! module `use`s what it needs; this module keeps the constants and re-exports the instance
//! types under one roof, so a learner can hold it next to the page's `xps.h`.
//!
//! The page's `u_char`, `u_int` and `u_long` typedefs need no Rust twin: `u8`, `u32` and
//! `u64` already say "unsigned".

use std::ffi::c_void;

/// `DEFAULT_BACKLOG`: how many not-yet-accepted connections the kernel queues per listener.
pub const DEFAULT_BACKLOG: i32 = 64;
/// `MAX_EPOLL_EVENTS`: the most events one `epoll_wait()` returns.
pub const MAX_EPOLL_EVENTS: usize = 32;
/// `DEFAULT_BUFFER_SIZE`: the most bytes one `recv()` reads (100 KB).
pub const DEFAULT_BUFFER_SIZE: usize = 100_000;
/// `DEFAULT_NULLS_THRESH`: how many `None` entries a core's list may hold before it is compacted.
/// The page adds it in stage 7 and compacts "in a later stage", so nothing reads it yet.
#[allow(dead_code, reason = "the page defines it in stage 7; the compaction that reads it comes in a later stage")]
pub const DEFAULT_NULLS_THRESH: u32 = 32;

/// The page's error constants. `OK` (0) is `Ok(())`; the rest are the `Err` of [`XpsResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, reason = "the course defines every code in stage 7; stage 7 itself only needs Fail")]
pub enum XpsError {
    /// `E_FAIL` (-1): un-recoverable error.
    Fail = -1,
    /// `E_AGAIN` (-2): try again.
    Again = -2,
    /// `E_NEXT` (-3): do next.
    Next = -3,
    /// `E_NOTFOUND` (-4): file not found.
    NotFound = -4,
    /// `E_PERMISSION` (-5): file permission denied.
    Permission = -5,
    /// `E_EOF` (-6): end of file reached.
    Eof = -6,
}

/// What the C's `int` status return becomes: `Ok(())` for `OK`, `Err(code)` otherwise.
pub type XpsResult = Result<(), XpsError>;

// Struct typedefs (`typedef struct xps_core_s xps_core_t;` ...)
pub use crate::core::xps_core::XpsCore;
pub use crate::core::xps_loop::XpsLoop;
pub use crate::network::xps_connection::XpsConnection;
pub use crate::network::xps_listener::XpsListener;

// xps headers: the loop functions every module may call (`#include "core/xps_loop.h"`), in
// place of stage 6's temporary declarations
pub use crate::core::xps_loop::{xps_loop_attach, xps_loop_detach};

/// `xps_handler_t`: the type of every callback, `void (*)(void *ptr)`. The loop calls it with
/// the `ptr` given to `xps_loop_attach`; the callback knows what that pointer really is.
///
/// An `unsafe fn`: a callback turns `ptr` back into its instance, which is sound only for the
/// `ptr` it was attached with, while its instance is alive. Each callback's `# Safety` section
/// says what it needs; the loop proves it where it calls one (`handle_epoll_events`).
pub type XpsHandler = unsafe fn(*mut c_void);
