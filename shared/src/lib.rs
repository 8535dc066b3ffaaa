//! Code every stage of the Rust eXpServer shares.
//!
//! The course keeps two helper modules outside the stage-by-stage work: `utils/xps_logger.c`
//! and `utils/xps_utils.c`. This crate is their Rust home, so `stage06` and `stage07` use one
//! copy of them and `diff -r stage06/src stage07/src` shows only what the stage changes.
//!
//! - [`xps_logger`]: `[LEVEL] function() : message` lines on stdout, on top of `log`.
//! - [`xps_utils`]: `is_valid_port`, `xps_getaddrinfo`, `get_remote_ip`, the string reversal,
//!   printing a client's message, and the command line both stages accept.
//! - [`sys`]: thin safe wrappers around the Linux calls the stages make (`socket`, `bind`,
//!   `accept`, `recv`, `send`, `epoll_*`). The course calls these straight from its C; keeping
//!   every `unsafe` libc call here lets the stage code read like the course page while staying
//!   safe Rust.

// The course's server is built on Linux epoll. Failing here, in the first crate every stage
// builds, gives one clear message instead of a wall of missing-libc-item errors.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "eXpServer uses Linux epoll, so it only builds on Linux. \
     On Windows use WSL (https://learn.microsoft.com/windows/wsl/); on macOS use a Linux VM or container."
);

pub mod sys;
pub mod xps_logger;
pub mod xps_utils;
