//! The page's way of finding loop events, for the exercise selftest: the three functions of
//! `stage07/src/core/xps_loop.rs` that the stage 7 page writes differently, written as its C does.
//! Everything else (the structs, `xps_loop_create`, `xps_loop_run`, the given waker and token) is
//! the reference's own: the selftest (`xps-exercise selftest`, point 5) puts these three
//! functions in place of the reference's, in a scratch copy of the workspace, and runs every
//! check. This file is not compiled on its own.
//!
//! - `xps_loop_attach()` pushes the new loop event onto the `events` list and gives epoll the
//!   loop event's *address* to carry back (the page's `event.data.ptr = loop_event`);
//! - `xps_loop_detach()` searches the list for the fd's loop event, destroys it and leaves `None`
//!   (the page's `NULL`); the list is never compacted here, as on the page (the reference's loop
//!   has no `n_null_events`, so neither is it counted);
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

/// `xps_loop_attach()`: watches `fd` for `event_flags`; when it is ready, the loop calls
/// `read_cb(ptr)`.
///
/// The page's way: epoll carries back the loop event's address, and the loop event goes onto
/// the `events` list.
///
/// # Safety
///
/// Until `fd` is detached ([`xps_loop_detach`]) or the loop destroyed, the loop may call
/// `read_cb(ptr)` at any time: for all that time `ptr` must meet `read_cb`'s `# Safety`
/// contract.
pub unsafe fn xps_loop_attach(
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
/// the loop event and set its entry to `None`.
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

    // Destroy the loop event and set it to None
    if let Some(event) = loop_.events.borrow_mut()[index].take() {
        loop_event_destroy(event);
    }
    result
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
            // SAFETY: read_cb and ptr were just copied from a loop event that is in the list, and
            // nothing has run since: that event is attached now. xps_loop_attach() stored it,
            // under the contract that while it stays attached, ptr meets read_cb's `# Safety`.
            // (The address search can find a newer loop event than the one epoll reported, the
            // ABA case above: that event is still attached, so the call is sound, but it is
            // delivered to the wrong instance.)
            unsafe { read_cb(ptr) };
        }
    }
    ControlFlow::Continue(())
}
