//! Given code, not on the page: stopping the loop from another thread.
//!
//! The page's `xps_loop_run()` never returns: its Ctrl+C handler destroys the core and exits
//! from inside the signal handler, which is not safe (see `main.rs`). Here the handler runs on a
//! thread of its own and only *wakes* the loop: it writes to an eventfd the loop watches, and
//! `xps_loop_run()` returns when epoll reports it. `main` then destroys the core, on the thread
//! that owns it.
//!
//! - [`wake_fd_create`]: the eventfd, attached to the loop's epoll with [`Token::WAKE`];
//! - [`xps_loop_waker`]: a [`LoopWaker`], the handle another thread keeps to wake the loop;
//! - [`WakeFd::drain`]: reads the eventfd back to zero when the loop wakes, so that a loop run
//!   again waits for the next wake-up instead of returning at once.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use log::error;
use shared::sys;

use crate::given::loop_token::Token;
use crate::xps::XpsLoop;

/// The loop's end of the wake-up eventfd (a field of `XpsLoop`). `None` inside once closed.
pub struct WakeFd(Arc<Mutex<Option<OwnedFd>>>);

/// Creates the wake-up eventfd and attaches it to `epoll_fd` with [`Token::WAKE`]. `None` on
/// error, after logging it.
pub fn wake_fd_create(epoll_fd: BorrowedFd<'_>) -> Option<WakeFd> {
    let fd = sys::eventfd().inspect_err(|e| error!(target: "wake_fd_create()", "eventfd() failed: {e}")).ok()?;
    sys::epoll_add(epoll_fd, fd.as_fd(), sys::EPOLLIN as u32, Token::WAKE.to_data())
        .inspect_err(|e| error!(target: "wake_fd_create()", "epoll_ctl(EPOLL_CTL_ADD) failed: {e}"))
        .ok()?;
    Some(WakeFd(Arc::new(Mutex::new(Some(fd)))))
}

impl WakeFd {
    /// Reads the eventfd back to zero once the loop has seen it: otherwise it stays readable,
    /// and every later run of this loop would return at once.
    pub fn drain(&self) {
        if let Some(fd) = self.0.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
            && let Err(e) = sys::eventfd_drain(fd.as_fd())
        {
            error!(target: "xps_loop_run()", "read() from eventfd failed: {e}");
        }
    }

    /// Closes the eventfd now, even if a [`LoopWaker`] outlives the loop: its `wake()` then
    /// does nothing.
    pub fn close(&self) {
        drop(self.0.lock().unwrap_or_else(PoisonError::into_inner).take());
    }
}

/// A handle another thread may keep to stop a loop: [`LoopWaker::wake`] makes
/// `xps_loop_run()` return.
#[derive(Clone)]
pub struct LoopWaker(Arc<Mutex<Option<OwnedFd>>>);

impl LoopWaker {
    /// Asks the loop to return from `xps_loop_run()`. Does nothing once the loop is destroyed.
    /// Logs nothing on success: it runs on another thread, and must never wait for the stdout
    /// lock the loop's thread may hold.
    pub fn wake(&self) {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fd) = guard.as_ref()
            && let Err(e) = sys::eventfd_signal(fd.as_fd())
        {
            error!(target: "xps_loop_wake()", "write() to eventfd failed: {e}");
        }
    }
}

/// A handle that can stop `loop_` from another thread.
pub fn xps_loop_waker(loop_: &XpsLoop) -> LoopWaker {
    LoopWaker(Arc::clone(&loop_.wake_fd.0))
}
