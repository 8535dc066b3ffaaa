//! A page-shaped `xps_loop` (`core/xps_loop.c`): a drop-in replacement for
//! `stage07/src/core/xps_loop.rs`, written the way the stage 7 page writes its C. It is a test
//! fixture, not part of any crate: the exercise selftest copies it over the reference loop to
//! prove that the checks accept the page's design (issue "Do it yourself, stage 7").
//!
//! Same public API, same given structs (`LoopEvent`, `Token`, `XpsLoop`, `LoopWaker`) and given
//! helpers as the reference; what differs is how events are found, as on the page:
//!
//! - `xps_loop_attach()` pushes the new loop event onto the `events` list and gives epoll the
//!   loop event's *address* to carry back (the page's `event.data.ptr = loop_event`);
//! - `xps_loop_detach()` searches the list for the fd's loop event, destroys it and leaves `None`
//!   (the page's `NULL`), counting it in `n_null_events`; the list is never compacted here;
//! - `handle_epoll_events()` searches the list for the address epoll returned ("search through
//!   loop->events and get index of curr_event") and skips the event when it is not there: its
//!   owner was detached earlier in the same batch. It never dereferences that address; it uses
//!   the loop event it found in the list.
//!
//! It passes every milestone check. It fails one extra, on purpose:
//! `extra_stale_event_not_delivered_to_a_new_instance_after_fd_reuse_in_the_same_batch`. When an
//! earlier callback of the batch destroys an instance and creates another, the allocator usually
//! gives the new loop event the address the old one was freed from, so the old event's address
//! is found in the list and delivered to the new instance (ABA). The reference's `Token` (fd and
//! generation) is what prevents that.
//!
//! By hand, in a scratch copy of the workspace (never on main):
//!
//! ```text
//! cp tests/exercises/stage07/page_shaped_xps_loop.rs stage07/src/core/xps_loop.rs
//! cargo test -p stage07 --no-fail-fast
//! ```
//!
//! Every test passes but `extra_checks::extra_stale_event_not_delivered_..._fd_reuse_...`, whose
//! failure reads `new's read_cb got new's ptr` and explains the scenario.
//!
//! The given structs keep fields this design does not use (the generation, the token's parts).
#![allow(dead_code, reason = "the given structs keep the generation and token fields the page's design does not use")]

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

/// A handle that can stop `loop_` from another thread.
pub fn xps_loop_waker(loop_: &XpsLoop) -> LoopWaker {
    LoopWaker(Arc::clone(&loop_.wake_fd))
}

/// `xps_loop_attach()`: watches `fd` for `event_flags`; when it is ready, the loop calls
/// `read_cb(ptr)`. `ptr` must stay valid until [`xps_loop_detach`] of this fd.
///
/// The page's way: epoll carries back the loop event's address, and the loop event goes onto
/// the `events` list.
pub fn xps_loop_attach(
    loop_: &XpsLoop,
    fd: BorrowedFd<'_>,
    event_flags: u32,
    ptr: *mut c_void,
    read_cb: XpsHandler,
) -> XpsResult {
    let event = loop_event_create(fd.as_raw_fd(), ptr, read_cb);

    // Attach to epoll: the data epoll carries back is the loop event's address.
    let address = std::ptr::from_ref::<LoopEvent>(&event) as u64;
    if let Err(e) = sys::epoll_add(loop_.epoll_fd.as_fd(), fd, event_flags, address) {
        error!(target: "xps_loop_attach()", "epoll_ctl(EPOLL_CTL_ADD) failed: {e}");
        loop_event_destroy(event);
        return Err(XpsError::Fail);
    }

    // Add the loop event to the events list
    loop_.events.borrow_mut().push(Some(event));
    Ok(())
}

/// `xps_loop_detach()`: stops watching `fd` and destroys its loop event.
///
/// The page's way: search `events` for the loop event of `fd`, detach the fd from epoll, destroy
/// the loop event, set its entry to `None` and count it in `n_null_events`.
pub fn xps_loop_detach(loop_: &XpsLoop, fd: BorrowedFd<'_>) -> XpsResult {
    let raw_fd = fd.as_raw_fd();

    // Find the loop event of fd: a linear search
    let index = loop_.events.borrow().iter().position(|event| event.as_ref().is_some_and(|event| event.fd == raw_fd));
    let Some(index) = index else {
        error!(target: "xps_loop_detach()", "fd {raw_fd} is not attached");
        return Err(XpsError::Fail);
    };

    // Detach fd from epoll
    let result = sys::epoll_del(loop_.epoll_fd.as_fd(), fd).map_err(|e| {
        error!(target: "xps_loop_detach()", "epoll_ctl(EPOLL_CTL_DEL) failed: {e}");
        XpsError::Fail
    });

    // Destroy the loop event, set it to None and count it
    if let Some(event) = loop_.events.borrow_mut()[index].take() {
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
            // Read the eventfd back to zero, or it stays readable and every later run of this
            // loop would return at once.
            if let Some(wake_fd) = loop_.wake_fd.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
                && let Err(e) = sys::eventfd_drain(wake_fd.as_fd())
            {
                error!(target: "xps_loop_run()", "read() from eventfd failed: {e}");
            }
            debug!(target: "xps_loop_run()", "woken up: stopping the loop");
            return Batch::Stop;
        }

        // Check if the event still exists: it could have been destroyed by a previous event of
        // this batch. The page's search through loop->events for curr_event's address (a
        // tree would be faster). The address is only compared, never dereferenced: the callback
        // and pointer come from the loop event found in the list, copied out so `events` is
        // not borrowed while the callback runs.
        let curr_event = curr_epoll_event.u64;
        let found = loop_
            .events
            .borrow()
            .iter()
            .flatten()
            .find(|event| std::ptr::from_ref::<LoopEvent>(event) as u64 == curr_event)
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
