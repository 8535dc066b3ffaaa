//! Given code, not on the page: the page's `void *ptr`, for instances that live in an `Rc`.
//!
//! The page attaches a listener to the loop as `void *ptr` (`xps_loop_attach(core->loop,
//! sock_fd, EPOLLIN, listener, listener_connection_handler)`), and its callback casts the
//! pointer back: `xps_listener_t *listener = ptr;`. [`instance_ptr`] is the first cast, for an
//! `Rc<XpsListener>`; [`instance_from_ptr`] is the second, and gives the callback an `Rc` handle
//! of its own: it keeps the instance alive until the callback is done with it, whatever the
//! callback destroys meanwhile. `docs/stage07.md` (note 1) walks through the round trip, and
//! why the callback gets an `Rc` and not a `&mut`.

use std::ffi::c_void;
use std::rc::Rc;

/// The `ptr` to attach for `instance`: the address of the value the `Rc` shares (what C would
/// pass as `void *`). Making it is safe; turning it back is [`instance_from_ptr`].
pub fn instance_ptr<T>(instance: &Rc<T>) -> *mut c_void {
    Rc::as_ptr(instance).cast_mut().cast()
}

/// Turns the `ptr` a callback receives back into a handle to its instance (the C's
/// `xps_listener_t *listener = ptr;`), after the page's `assert(ptr != NULL)`.
///
/// # Safety
///
/// `ptr` must come from [`instance_ptr`] of an `Rc<T>` (this very `T`) of which some handle is
/// still alive.
pub unsafe fn instance_from_ptr<T>(ptr: *mut c_void) -> Rc<T> {
    assert!(!ptr.is_null(), "a callback needs the instance it was attached with");
    let ptr = ptr.cast::<T>().cast_const();
    // SAFETY: by the contract above, `ptr` is `Rc::as_ptr` of a live `Rc<T>`: the very pointer
    // `Rc::into_raw` returns (into_raw is as_ptr plus forgetting the handle, and the live handle
    // stands in for the forgotten one). The strong count is at least 1, so taking one more
    // reference with increment_strong_count and adopting it with from_raw is sound.
    unsafe {
        Rc::increment_strong_count(ptr);
        Rc::from_raw(ptr)
    }
}
