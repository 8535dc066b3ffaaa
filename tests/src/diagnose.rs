//! What the server under test shows when a check fails: its log tail, a panic with its
//! backtrace, a crash report.

use crate::panic::Panic;
use crate::{Failure, Server};

/// How many of the server's last lines a failure shows.
const LOG_LINES: usize = 25;

impl Failure {
    /// Attaches what `server` shows: the tail of its output, and a panic (a `todo!()` still to
    /// write, a `RefCell` borrowed twice) or a crash report, which the harness reads its blame
    /// from.
    pub fn log_of(mut self, server: &Server) -> Self {
        self.log_tail = server.log_tail(LOG_LINES);
        if self.panic.is_none() {
            self.panic = Panic::parse(&server.log_tail(usize::MAX));
        }
        if self.panic.is_none() && self.crash.is_empty() {
            self.crash = server.crash_lines();
        }
        self
    }
}
