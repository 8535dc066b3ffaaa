//! The lock on the course's default ports (8001-8004), and naming who holds it.
//!
//! Tests of different stages that start a server on the default ports must never run at the
//! same time, even under a runner that runs test binaries in parallel; nor may
//! `scripts/check-build.sh`, `scripts/experiment1.sh` or `scripts/bench.sh` while a test does.
//! They all take one advisory `flock()` on a file in the system's temp folder: the tests through
//! [`DefaultPortsLock::acquire`], the scripts through the `xps-lock` tool built on
//! [`DefaultPortsLock::acquire_waiting`].

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::procfs;

/// Held while a test or script uses the course's default ports (8001...). Dropping it releases
/// the lock (closing the file does).
pub struct DefaultPortsLock(#[allow(dead_code, reason = "held for its Drop: closing the file releases the lock")] File);

/// Why [`DefaultPortsLock::acquire_waiting`] did not get the lock.
#[derive(Debug)]
pub enum LockError {
    /// The lock file could not be opened or locked.
    Io(PathBuf, io::Error),
    /// Someone still held it when the wait ran out: who, as [`DefaultPortsLock::holder`] says.
    StillHeld(String),
}

impl DefaultPortsLock {
    /// How long a test waits for another test or script that uses the default ports.
    const WAIT: Duration = Duration::from_secs(180);

    /// The lock file: `xps-tests-default-ports.lock` in the system's temp folder (`$TMPDIR`,
    /// else `/tmp`).
    pub fn path() -> PathBuf {
        std::env::temp_dir().join("xps-tests-default-ports.lock")
    }

    /// Waits until no other test or script holds the default ports, then holds them; panics
    /// with a clear message after three minutes.
    pub fn acquire() -> DefaultPortsLock {
        match Self::acquire_waiting(Self::WAIT, |_| {}) {
            Ok(lock) => lock,
            Err(LockError::Io(path, e)) => panic!("cannot lock the default-ports lock file {}: {e}", path.display()),
            Err(LockError::StillHeld(holder)) => panic!(
                "waited {:?} for the default ports: the lock {} is still held by {holder}; retry once it is done",
                Self::WAIT,
                Self::path().display()
            ),
        }
    }

    /// Takes the lock, waiting up to `wait` for whoever holds it. If it is held when first
    /// tried, `on_wait` is told who holds it (`pid 1234 (command line)`), once.
    pub fn acquire_waiting(wait: Duration, on_wait: impl FnOnce(&str)) -> Result<DefaultPortsLock, LockError> {
        let path = Self::path();
        let file = Self::open(&path).map_err(|e| LockError::Io(path.clone(), e))?;
        let deadline = Instant::now() + wait;
        let mut on_wait = Some(on_wait);
        loop {
            // SAFETY: flock() takes no pointers; the fd belongs to `file`, which is open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(DefaultPortsLock(file));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(LockError::Io(path, e));
            }
            if let Some(tell) = on_wait.take() {
                tell(&Self::holder_or_unknown(&path));
            }
            if Instant::now() >= deadline {
                return Err(LockError::StillHeld(Self::holder_or_unknown(&path)));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens the lock file so that any user can lock it: an existing file read-only (flock()
    /// needs no write access, and another user's file in /tmp cannot be opened for writing), a
    /// new one created readable and writable by everyone.
    fn open(path: &Path) -> io::Result<File> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match File::open(path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = File::options().create(true).truncate(false).write(true).mode(0o666).open(path)?;
                // The umask may have taken write access away from the others; give it back.
                let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
                Ok(file)
            }
            Err(e) => Err(e),
        }
    }

    fn holder_or_unknown(path: &Path) -> String {
        Self::holder(path).unwrap_or_else(|| "another test or script (not found in /proc)".into())
    }

    /// Who holds the lock on `path`, as `pid 1234 (command line)`: the process that took it
    /// (`/proc/locks`) or, when that one has exited (a shell's `flock 9` command does), the
    /// processes that have the file open.
    pub fn holder(path: &Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(path).ok()?.ino();
        if let Some(pid) = procfs::flock_holder(inode).filter(|&pid| procfs::stat(pid).is_some()) {
            return Some(format!("pid {pid} ({})", procfs::command(pid)));
        }
        let openers: Vec<String> =
            procfs::openers_of(path).iter().map(|&pid| format!("pid {pid} ({})", procfs::command(pid))).collect();
        (!openers.is_empty()).then(|| openers.join(", or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holder_is_found_in_proc_locks() {
        let path = std::env::temp_dir().join(format!("xps-lock-holder-test-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        // SAFETY: flock() takes no pointers; the fd belongs to `file`, which is open.
        assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0);
        let holder = DefaultPortsLock::holder(&path);
        drop(file);
        let _ = std::fs::remove_file(&path);
        let holder = holder.expect("our own lock is in /proc/locks");
        assert!(holder.starts_with(&format!("pid {} (", std::process::id())), "{holder}");
    }
}
