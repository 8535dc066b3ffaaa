//! Connections a server never closed, said plainly: how many, which fds (at most 10), and what
//! must happen to a client that left.

use std::thread;
use std::time::{Duration, Instant};

use crate::{Failure, Role, Server};

/// How many fds a leak report names at most.
const FDS_SHOWN: usize = 10;

/// How long the server has to close the connections of clients that left.
pub const SETTLE: Duration = Duration::from_secs(2);

/// `fds 7, 9, 11` (at most `FDS_SHOWN`, then how many more).
pub fn fd_list(fds: &[i32]) -> String {
    let shown: Vec<String> = fds.iter().take(FDS_SHOWN).map(i32::to_string).collect();
    let more = fds.len().saturating_sub(FDS_SHOWN);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{} {}{more}", if fds.len() == 1 { "fd" } else { "fds" }, shown.join(", "))
}

/// Waits up to [`SETTLE`] for the server to hold no connection socket: `left` clients have
/// disconnected and no other is connected. With `XPS_DEBUG=1` (`debug`), the page's `destroyed
/// connection` lines tell whether `xps_connection_destroy()` was reached for them.
pub fn every_connection_closed(server: &Server, left: usize, debug: bool) -> Result<(), Failure> {
    let deadline = Instant::now() + SETTLE;
    let open = loop {
        let open = server.connection_fds().map_err(|e| {
            Failure::new(format!("could not read /proc/{}/fd: {e}", server.pid()))
                .hint("has the server exited? the output below says why")
                .log_of(server)
        })?;
        if open.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            break open;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let n = open.len();
    let summary = format!(
        "{n} {} never closed ({}): each disconnected client must be destroyed, and destroy must take it out of \
         the connections list",
        if n == 1 { "connection was" } else { "connections were" },
        fd_list(&open)
    );
    let destroyed = server.log_tail(usize::MAX).lines().filter(|l| l.ends_with("destroyed connection")).count();
    let failure = Failure::new(summary)
        .detail("expected", format!("no connection socket open {SETTLE:?} after {left} clients left"))
        .detail("received", format!("{n} still open"));
    let failure = if debug && destroyed >= left {
        failure.detail("log", format!("{destroyed} `destroyed connection` lines: destroy was reached")).blame(
            Role::ConnectionDestroy,
            "it ran for each client that left, yet their sockets stay open: it must take the connection out \
                 of the list (its entry becomes None), so that the last handle, and with it the socket, is dropped",
        )
    } else {
        let reached = if debug {
            format!(" ({destroyed} `destroyed connection` lines for {left} clients)")
        } else {
            String::new()
        };
        failure.blame(
            Role::ReadHandler,
            format!("when recv() returns 0 (the client left) it must call xps_connection_destroy(){reached}"),
        )
    };
    Err(failure.log_of(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_ten_fds_are_listed() {
        assert_eq!(fd_list(&[7]), "fd 7");
        assert_eq!(fd_list(&[7, 9, 11]), "fds 7, 9, 11");
        let many: Vec<i32> = (5..1005).collect();
        assert_eq!(fd_list(&many), "fds 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 and 990 more");
    }
}
