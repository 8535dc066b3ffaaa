//! The `xps_loop` module (`core/xps_loop.c`): the event loop, on Linux epoll.
//!
//! An instance (a listener, a connection) attaches its fd with a callback and a pointer to
//! itself. When epoll reports the fd, the loop calls `read_cb(ptr)`: it never needs to know
//! what the instance is. This replaces stage 6's scan of the global lists.
//!
//! Where this departs from the page: `events` is a table indexed by fd, and epoll carries back
//! a token (the fd and a generation) instead of the loop event's address, so that finding an
//! event is one index and a stale event never reaches a newer instance (`given/loop_token.rs`);
//! and another thread can stop the loop (`given/loop_waker.rs`).

use std::cell::RefCell;
use std::ffi::c_void;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use log::{debug, error};
use shared::sys;

use crate::given::loop_token::{Generations, Token};
use crate::given::loop_waker::{WakeFd, wake_fd_create};
use crate::xps::{MAX_EPOLL_EVENTS, XpsError, XpsHandler, XpsResult};

/// `struct xps_loop_s`.
///
/// The page's loop also points back to its core; nothing in stage 7 uses that pointer, and here
/// the core owns its loop as a field, so the loop has none. The page's `epoll_events` array is a
/// local of [`xps_loop_run`]. The page's `n_null_events` counts the entries detach set to NULL,
/// so that a later stage can compact the list; this table has nothing to compact (a slot belongs
/// to its fd number, and the next attach of that number fills it again), so it has no such count.
pub struct XpsLoop {
    /// The epoll instance.
    pub epoll_fd: OwnedFd,
    /// The loop events, indexed by fd; `None` where nothing is attached (the page's NULL).
    events: RefCell<Vec<Option<Box<LoopEvent>>>>,
    /// Ours: the generation each attach gets (`given/loop_token.rs`).
    generations: Generations,
    /// Ours: the eventfd another thread writes to stop the loop (`given/loop_waker.rs`).
    pub wake_fd: WakeFd,
}

/// `struct loop_event_s`: what the loop knows about one attached fd.
pub struct LoopEvent {
    /// The fd epoll watches.
    pub fd: RawFd,
    /// Called when the fd is readable.
    pub read_cb: XpsHandler,
    /// The instance the fd belongs to, passed to `read_cb`.
    pub ptr: *mut c_void,
    /// Ours, not the page's: tells this attach apart from earlier ones of the same fd.
    generation: u32,
}

/// `loop_event_create()`: allocates a loop event (the C's malloc).
pub fn loop_event_create(fd: RawFd, ptr: *mut c_void, read_cb: XpsHandler) -> Box<LoopEvent> {
    assert!(!ptr.is_null(), "a loop event needs the instance it belongs to");
    let event = Box::new(LoopEvent { fd, read_cb, ptr, generation: 0 });
    debug!(target: "event_create()", "created event");
    event
}

/// `loop_event_destroy()`: frees a loop event (the C's free).
pub fn loop_event_destroy(event: Box<LoopEvent>) {
    drop(event);
    debug!(target: "event_destroy()", "destroyed event");
}

/// `xps_loop_create()`: creates the epoll instance and an empty table of loop events. `None`
/// (the C's NULL) on error, after logging it.
pub fn xps_loop_create() -> Option<XpsLoop> {
    let epoll_fd =
        sys::epoll_create().inspect_err(|e| error!(target: "xps_loop_create()", "epoll_create1() failed: {e}")).ok()?;
    // Ours: the eventfd that lets Ctrl+C stop the loop (it logs its own errors)
    let wake_fd = wake_fd_create(epoll_fd.as_fd())?;
    debug!(target: "xps_loop_create()", "created loop");
    Some(XpsLoop { epoll_fd, events: RefCell::new(Vec::new()), generations: Generations::default(), wake_fd })
}

/// `xps_loop_destroy()`: destroys every loop event still attached, closes the epoll fd, and
/// frees the loop.
pub fn xps_loop_destroy(loop_: XpsLoop) {
    for event in loop_.events.take().into_iter().flatten() {
        loop_event_destroy(event);
    }
    // Ours: close the wake-up eventfd now, even if a LoopWaker outlives the loop
    loop_.wake_fd.close();
    drop(loop_);
    debug!(target: "xps_loop_destroy()", "destroyed loop");
}

/// `xps_loop_attach()`: watches `fd` for `event_flags`; when it is ready, the loop calls
/// `read_cb(ptr)`.
///
/// # Safety
///
/// Until `fd` is detached ([`xps_loop_detach`]) or the loop destroyed, the loop may call
/// `read_cb(ptr)` at any time: for all that time `ptr` must meet `read_cb`'s `# Safety`
/// contract (for the listener's and the connection's callbacks: point to their live instance).
pub unsafe fn xps_loop_attach(
    loop_: &XpsLoop,
    fd: BorrowedFd<'_>,
    event_flags: u32,
    ptr: *mut c_void,
    read_cb: XpsHandler,
) -> XpsResult {
    let raw_fd = fd.as_raw_fd();
    let mut event = loop_event_create(raw_fd, ptr, read_cb);

    // Attach fd to epoll. Where the page gives epoll the loop event's address, we give it a
    // token: the fd and a generation that is new for this attach.
    let token = loop_.generations.next_token(raw_fd);
    event.generation = token.generation;
    if let Err(e) = sys::epoll_add(loop_.epoll_fd.as_fd(), fd, event_flags, token.to_data()) {
        error!(target: "xps_loop_attach()", "epoll_ctl(EPOLL_CTL_ADD) failed: {e}");
        loop_event_destroy(event);
        return Err(XpsError::Fail);
    }

    // Add the loop event to the events list: at index fd, growing the table if needed. The slot
    // must be empty: every owner detaches its fd before closing it. (An fd closed without a
    // detach would leave its event behind, to be overwritten here when the number is reused.)
    let mut events = loop_.events.borrow_mut();
    let index = raw_fd as usize;
    if index >= events.len() {
        events.resize_with(index + 1, || None);
    }
    debug_assert!(events[index].is_none(), "fd {raw_fd} was closed without xps_loop_detach()");
    events[index] = Some(event);
    Ok(())
}

/// `xps_loop_detach()`: stops watching `fd` and destroys its loop event. After it returns, no
/// event for `fd` reaches its old callback, not even one already returned by `epoll_wait()`.
pub fn xps_loop_detach(loop_: &XpsLoop, fd: BorrowedFd<'_>) -> XpsResult {
    let raw_fd = fd.as_raw_fd();
    let index = raw_fd as usize;

    // Find the loop event of fd: one index, no search
    if loop_.events.borrow().get(index).is_none_or(Option::is_none) {
        error!(target: "xps_loop_detach()", "fd {raw_fd} is not attached");
        return Err(XpsError::Fail);
    }

    // Detach fd from epoll
    let result = sys::epoll_del(loop_.epoll_fd.as_fd(), fd).map_err(|e| {
        error!(target: "xps_loop_detach()", "epoll_ctl(EPOLL_CTL_DEL) failed: {e}");
        XpsError::Fail
    });

    // Destroy the loop event and set it to None, even if epoll_ctl() failed: the caller frees
    // the instance next, so no event may keep pointing to it.
    if let Some(event) = loop_.events.borrow_mut()[index].take() {
        debug_assert_eq!(event.fd, raw_fd, "events are indexed by their fd");
        loop_event_destroy(event);
    }
    result
}

/// `xps_loop_run()`: waits for events and calls each one's callback, until the loop is woken
/// through a `LoopWaker` (`Ok`) or `epoll_wait()` fails (`Err`, after logging it). A loop
/// that returned can be run again; it returns again at the next wake-up.
pub fn xps_loop_run(loop_: &XpsLoop) -> XpsResult {
    let mut epoll_events = [sys::empty_epoll_event(); MAX_EPOLL_EVENTS];
    loop {
        debug!(target: "xps_loop_run()", "epoll wait");
        let n_events = match sys::epoll_wait(loop_.epoll_fd.as_fd(), &mut epoll_events, -1) {
            Ok(n) => n,
            Err(e) => {
                error!(target: "xps_loop_run()", "epoll_wait() failed: {e}");
                return Err(XpsError::Fail);
            }
        };
        debug!(target: "xps_loop_run()", "epoll wait over");
        if handle_epoll_events(loop_, &epoll_events[..n_events]).is_break() {
            return Ok(());
        }
    }
}

/// The `for` loop of the page's `xps_loop_run()`: calls the callback of each event of one
/// `epoll_wait()` batch that is still attached. `Break` when the loop was woken to stop.
fn handle_epoll_events(loop_: &XpsLoop, epoll_events: &[sys::epoll_event]) -> ControlFlow<()> {
    debug!(target: "xps_loop_run()", "handling {} events", epoll_events.len());
    for (i, curr_epoll_event) in epoll_events.iter().enumerate() {
        debug!(target: "xps_loop_run()", "handling event no. {}", i + 1);
        let (flags, token) = (curr_epoll_event.events, Token::from_data(curr_epoll_event.u64));

        // Ours: the wake-up eventfd stops the loop (given/loop_waker.rs)
        if token == Token::WAKE {
            loop_.wake_fd.drain();
            debug!(target: "xps_loop_run()", "woken up: stopping the loop");
            return ControlFlow::Break(());
        }

        // Check if the event still exists: an earlier callback of this batch may have detached
        // it, or detached it and attached a newer instance on the same fd. One index and one
        // comparison instead of the page's search (given/loop_token.rs). The callback and
        // pointer are copied out, so `events` is not borrowed while the callback runs (the
        // callback may attach and detach).
        let found = loop_
            .events
            .borrow()
            .get(token.fd as usize)
            .and_then(Option::as_ref)
            .filter(|event| event.generation == token.generation)
            .map(|event| (event.read_cb, event.ptr));
        let Some((read_cb, ptr)) = found else {
            debug!(target: "handle_epoll_events()", "event not found. skipping");
            continue;
        };

        // Read event. HUP and ERR count as readable too (the page checks EPOLLIN only): the read
        // callback's recv() then reports the hang-up or error, instead of the loop waking for it
        // again and again.
        if flags & (sys::EPOLLIN | sys::EPOLLHUP | sys::EPOLLERR) as u32 != 0 {
            debug!(target: "handle_epoll_events()", "EVENT / read");
            // SAFETY: read_cb and ptr were just copied from a loop event that is in the table,
            // and nothing has run since: that event is attached now. xps_loop_attach() stored
            // it, under the contract that while it stays attached, ptr meets read_cb's
            // `# Safety` (its instance is alive). The generation check above makes it the very
            // attach epoll reported; soundness needs only that it is attached.
            unsafe { read_cb(ptr) };
        }
    }
    ControlFlow::Continue(())
}
