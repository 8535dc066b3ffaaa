//! The `xps_loop` module (`core/xps_loop.c`): the event loop, on Linux epoll.
//!
//! An instance (a listener, a connection) attaches its fd with a callback and a pointer to
//! itself. When epoll reports the fd, the loop calls `read_cb(ptr)`: it never needs to know
//! what the instance is. This replaces stage 6's scan of the global lists.
//!
//! ## Where this departs from the page: O(1) dispatch and stale events
//!
//! The page stores each `loop_event_t *` in `epoll_event.data.ptr`, and before using one it
//! searches `loop->events` linearly to check the event still exists (an earlier callback in the
//! same `epoll_wait()` batch may have destroyed it), noting that a tree would be faster.
//!
//! Here `events` is a table indexed by fd, as in Redis's `ae.c`: the kernel gives out the
//! lowest free fd numbers, so the table stays as small as the number of open fds. What epoll
//! carries back is not a pointer but a [`Token`]: the fd and a generation number that is new for
//! every attach. Dispatch is one index plus one comparison:
//!
//! - the slot is empty: the event's owner was detached earlier in this batch, skip it;
//! - the slot holds an event with another generation: the fd was closed and reused by a newer
//!   instance earlier in this batch; the old event must not reach it, skip it;
//! - otherwise the event is the one epoll reported, still attached: call it.
//!
//! Since the token is never dereferenced, a stale event cannot touch freed memory, and since a
//! reused fd gets a new generation, it cannot be delivered to the wrong instance. (The page's
//! search for the event's *address* can: if the new instance's loop event is allocated at the
//! address the old one was freed from, as `malloc` often does, the stale event is found and
//! delivered to the new instance.)

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

use log::{debug, error};
use shared::sys;

use crate::xps::{MAX_EPOLL_EVENTS, XpsError, XpsHandler, XpsResult};

/// `struct loop_event_s`: what the loop knows about one attached fd.
pub struct LoopEvent {
    /// The fd epoll watches.
    pub fd: RawFd,
    /// Called when the fd is readable.
    pub read_cb: XpsHandler,
    /// The instance the fd belongs to, passed to `read_cb`. Points to a live instance for as
    /// long as the event is attached: every owner detaches before it frees itself.
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

/// What epoll carries back with each event in place of the page's `loop_event_t *`: the fd and
/// the generation of its attach, packed into the 64 bits of `epoll_event.data` (mio's `Token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    fd: u32,
    generation: u32,
}

impl Token {
    /// The loop's own wake-up eventfd (no fd is ever `u32::MAX`).
    pub const WAKE: Token = Token { fd: u32::MAX, generation: u32::MAX };

    fn new(fd: RawFd, generation: u32) -> Token {
        Token { fd: fd as u32, generation }
    }

    /// The 64 bits epoll stores.
    fn to_data(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.fd)
    }

    /// The token back from what epoll returned.
    fn from_data(data: u64) -> Token {
        Token { fd: data as u32, generation: (data >> 32) as u32 }
    }
}

/// `struct xps_loop_s`.
///
/// The page's loop also points back to its core; nothing in stage 7 uses that pointer, and
/// here the core owns its loop as a field, so the loop has none.
pub struct XpsLoop {
    /// The epoll instance.
    pub epoll_fd: OwnedFd,
    /// Attached events, indexed by fd; `None` where nothing is attached.
    events: RefCell<Vec<Option<Box<LoopEvent>>>>,
    /// How many entries of `events` are `None` (the page's `n_null_events`).
    pub n_null_events: Cell<u32>,
    /// The generation the next attach gets.
    next_generation: Cell<u32>,
    /// An eventfd attached to the loop: making it readable from another thread (the Ctrl+C
    /// handler) makes [`xps_loop_run`] return. `None` once the loop is destroyed.
    wake_fd: Arc<Mutex<Option<OwnedFd>>>,
}

/// A handle another thread may keep to stop a loop: [`LoopWaker::wake`] makes
/// [`xps_loop_run`] return. Not in the course (see `main.rs` for why).
#[derive(Clone)]
pub struct LoopWaker(Arc<Mutex<Option<OwnedFd>>>);

impl LoopWaker {
    /// Asks the loop to return from [`xps_loop_run`]. Does nothing once the loop is destroyed.
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

/// The `ptr` to attach for `instance`: the address of the value an `Rc` shares (what C would
/// pass as `void *`). Turn it back with [`instance_from_ptr`].
pub fn instance_ptr<T>(instance: &Rc<T>) -> *mut c_void {
    Rc::as_ptr(instance).cast_mut().cast()
}

/// Turns the `ptr` a callback receives back into a handle to its instance; the C just casts
/// `void *` to `xps_listener_t *`. The handle keeps the instance alive until the callback is
/// done with it, whatever the callback destroys meanwhile.
///
/// # Safety
///
/// `ptr` must come from [`instance_ptr`] of an `Rc<T>` of which some handle is still alive.
/// A read callback may rely on this when its owner keeps a handle for as long as the event is
/// attached and detaches before letting it go, as `core.listeners` and `core.connections` do.
pub unsafe fn instance_from_ptr<T>(ptr: *mut c_void) -> Rc<T> {
    assert!(!ptr.is_null(), "a callback needs the instance it was attached with");
    let ptr = ptr.cast::<T>().cast_const();
    // SAFETY: by the contract above, `ptr` is `Rc::as_ptr` of a live `Rc<T>`: the very pointer
    // `Rc::into_raw` returns (into_raw is as_ptr plus forgetting the handle, and the owner's
    // handle stands in for the forgotten one). The strong count is at least 1, so taking one
    // more reference with increment_strong_count and adopting it with from_raw is sound.
    unsafe {
        Rc::increment_strong_count(ptr);
        Rc::from_raw(ptr)
    }
}

/// `xps_loop_create()`: creates the epoll instance and the wake-up eventfd. `None` (the C's
/// NULL) on error, after logging it.
pub fn xps_loop_create() -> Option<XpsLoop> {
    let epoll_fd =
        sys::epoll_create().inspect_err(|e| error!(target: "xps_loop_create()", "epoll_create1() failed: {e}")).ok()?;
    let wake_fd = sys::eventfd().inspect_err(|e| error!(target: "xps_loop_create()", "eventfd() failed: {e}")).ok()?;
    sys::epoll_add(epoll_fd.as_fd(), wake_fd.as_fd(), sys::EPOLLIN as u32, Token::WAKE.to_data())
        .inspect_err(|e| error!(target: "xps_loop_create()", "epoll_ctl(EPOLL_CTL_ADD) failed: {e}"))
        .ok()?;
    debug!(target: "xps_loop_create()", "created loop");
    Some(XpsLoop {
        epoll_fd,
        events: RefCell::new(Vec::new()),
        n_null_events: Cell::new(0),
        next_generation: Cell::new(0),
        wake_fd: Arc::new(Mutex::new(Some(wake_fd))),
    })
}

/// `xps_loop_destroy()`: destroys every loop event still attached, closes the wake-up eventfd
/// and the epoll fd, and frees the loop.
pub fn xps_loop_destroy(loop_: XpsLoop) {
    for event in loop_.events.take().into_iter().flatten() {
        loop_event_destroy(event);
    }
    // Close the eventfd now, even if a LoopWaker outlives the loop.
    drop(loop_.wake_fd.lock().unwrap_or_else(PoisonError::into_inner).take());
    drop(loop_);
    debug!(target: "xps_loop_destroy()", "destroyed loop");
}

/// Reads the wake-up eventfd back to zero once the loop has seen it (not in the course, given):
/// otherwise it stays readable and every later run of this loop would return at once.
fn drain_wake_fd(loop_: &XpsLoop) {
    if let Some(wake_fd) = loop_.wake_fd.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
        && let Err(e) = sys::eventfd_drain(wake_fd.as_fd())
    {
        error!(target: "xps_loop_run()", "read() from eventfd failed: {e}");
    }
}

/// A handle that can stop `loop_` from another thread.
pub fn xps_loop_waker(loop_: &XpsLoop) -> LoopWaker {
    LoopWaker(Arc::clone(&loop_.wake_fd))
}

/// `xps_loop_attach()`: watches `fd` for `event_flags`; when it is ready, the loop calls
/// `read_cb(ptr)`. `ptr` must stay valid until [`xps_loop_detach`] of this fd.
pub fn xps_loop_attach(
    loop_: &XpsLoop,
    fd: BorrowedFd<'_>,
    event_flags: u32,
    ptr: *mut c_void,
    read_cb: XpsHandler,
) -> XpsResult {
    let raw_fd = fd.as_raw_fd();
    let mut event = loop_event_create(raw_fd, ptr, read_cb);
    // Wrapping is sound: a token is only ever compared within the epoll_wait() batch that
    // returned it (at most MAX_EPOLL_EVENTS events), and a wrong match would need 2^32 attaches
    // of one fd within that one batch.
    event.generation = loop_.next_generation.get();
    loop_.next_generation.set(event.generation.wrapping_add(1));

    let token = Token::new(raw_fd, event.generation);
    if let Err(e) = sys::epoll_add(loop_.epoll_fd.as_fd(), fd, event_flags, token.to_data()) {
        error!(target: "xps_loop_attach()", "epoll_ctl(EPOLL_CTL_ADD) failed: {e}");
        loop_event_destroy(event);
        return Err(XpsError::Fail);
    }

    // Store the event at index fd, growing the table with empty slots if needed.
    let mut events = loop_.events.borrow_mut();
    let index = raw_fd as usize;
    if index >= events.len() {
        loop_.n_null_events.set(loop_.n_null_events.get() + (index - events.len()) as u32);
        events.resize_with(index + 1, || None);
    } else {
        // The slot must be empty: every owner detaches its fd before closing it. An fd closed
        // without a detach leaves its event behind, and epoll, which forgets a closed fd by
        // itself, accepts the fd number again when it is reused: the old event would be
        // overwritten here without being destroyed, and n_null_events would drift.
        debug_assert!(events[index].is_none(), "fd {raw_fd} was closed without xps_loop_detach()");
        if events[index].is_none() {
            loop_.n_null_events.set(loop_.n_null_events.get() - 1);
        }
    }
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

    // Destroy the loop event, set it to None and count it, even if epoll_ctl() failed: the
    // caller frees the instance next, so no event may keep pointing to it.
    if let Some(event) = loop_.events.borrow_mut()[index].take() {
        debug_assert_eq!(event.fd, raw_fd, "events are indexed by their fd");
        loop_event_destroy(event);
    }
    loop_.n_null_events.set(loop_.n_null_events.get() + 1);
    result
}

/// `xps_loop_run()`: waits for events and calls each one's callback, until the loop is woken
/// through a [`LoopWaker`] (`Ok`) or `epoll_wait()` fails (`Err`, after logging it). A loop
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
        if handle_epoll_events(loop_, &epoll_events[..n_events]) == Batch::Stop {
            return Ok(());
        }
    }
}

/// Whether the loop goes on after a batch.
#[derive(Debug, PartialEq, Eq)]
enum Batch {
    Continue,
    Stop,
}

/// Calls the callback of each event of one `epoll_wait()` batch that is still attached.
fn handle_epoll_events(loop_: &XpsLoop, epoll_events: &[sys::epoll_event]) -> Batch {
    debug!(target: "xps_loop_run()", "handling {} events", epoll_events.len());
    for (i, curr_epoll_event) in epoll_events.iter().enumerate() {
        debug!(target: "xps_loop_run()", "handling event no. {}", i + 1);
        let (flags, token) = (curr_epoll_event.events, Token::from_data(curr_epoll_event.u64));

        if token == Token::WAKE {
            drain_wake_fd(loop_);
            debug!(target: "xps_loop_run()", "woken up: stopping the loop");
            return Batch::Stop;
        }

        // Check the event still exists: an earlier callback in this batch may have detached it,
        // or detached it and attached a newer instance on the same fd. One index and one
        // comparison instead of the page's search (see the module docs). The callback and
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
            read_cb(ptr);
        }
    }
    Batch::Continue
}
