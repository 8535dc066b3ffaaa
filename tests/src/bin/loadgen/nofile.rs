//! Raising this process's limit on open files: every connection is a file descriptor.

use std::io;

use super::{FD_MARGIN, PROGRAM};

/// Raises this process's soft limit on open files to its hard limit, and warns on stderr if
/// even that is too low for `idle + clients` connections.
pub fn raise_open_file_limit(idle: usize, clients: usize) {
    let needed = (idle + clients + FD_MARGIN) as libc::rlim_t;
    let (mut soft, hard) = match get_nofile_limit() {
        Ok(limits) => limits,
        Err(e) => {
            eprintln!("{PROGRAM}: warning: getrlimit(RLIMIT_NOFILE) failed: {e}");
            return;
        }
    };
    if soft < hard {
        // With no hard limit, Linux still refuses a soft limit above /proc/sys/fs/nr_open, so
        // ask only for what is needed then.
        let wanted = if hard == libc::RLIM_INFINITY { needed.max(soft) } else { hard };
        match set_nofile_limit(wanted, hard) {
            Ok(()) => soft = wanted,
            Err(e) => eprintln!(
                "{PROGRAM}: warning: setrlimit(RLIMIT_NOFILE) to {wanted} failed: {e}; \
                 the limit stays {soft}"
            ),
        }
    }
    if soft < needed {
        eprintln!(
            "{PROGRAM}: warning: {idle} idle + {clients} active connections need about {needed} \
             open files, but this process may open only {soft} (hard limit {hard}). Trying anyway: \
             the connections past the limit will fail with \"Too many open files\". Raise the hard \
             limit (as root: ulimit -Hn {needed}) or ask for fewer connections."
        );
    }
}

/// `getrlimit(RLIMIT_NOFILE)`: the (soft, hard) limits on open file descriptors.
fn get_nofile_limit() -> io::Result<(libc::rlim_t, libc::rlim_t)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable `struct rlimit` that lives through the call;
    // getrlimit() only writes into it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// `setrlimit(RLIMIT_NOFILE)` to `soft` and `hard`.
fn set_nofile_limit(soft: libc::rlim_t, hard: libc::rlim_t) -> io::Result<()> {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `limit` is a valid `struct rlimit` that lives through the call; setrlimit() only
    // reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
