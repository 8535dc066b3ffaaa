//! The test build's allocator: the system's, counting the bytes each thread has allocated and
//! not freed ([`live_bytes`]), and the blocks of one size a call leaves behind
//! ([`net_blocks`]), so the in-process checks can tell whether the loop frees what it allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The test build's allocator: the system's, counting the bytes each thread has allocated and
/// not freed, so a check can tell whether `xps_loop_destroy()` freed every loop event. Only in
/// `cargo test` builds of stage07 (this module is `#[cfg(test)]`); the server uses the system
/// allocator directly.
struct CountingAllocator;

thread_local! {
    /// Bytes this thread allocated minus bytes it freed. A `const` Cell: no lazy init and no
    /// destructor, so using it inside the allocator never allocates.
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
    /// The block size [`net_blocks`] watches (0: none), and the blocks of that size allocated
    /// minus those freed meanwhile.
    static WATCH: Cell<(usize, i64)> = const { Cell::new((0, 0)) };
}

fn count(bytes: i64) {
    // try_with: the thread may be tearing down its thread-locals.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + bytes));
}

/// Counts one block of `size` bytes allocated (`+1`) or freed (`-1`) if that size is watched.
fn watch(size: usize, one: i64) {
    let _ = WATCH.try_with(|watch| {
        let (watched, net) = watch.get();
        if watched == size {
            watch.set((watched, net + one));
        }
    });
}

/// Runs `f` on this thread and says how many blocks of `size` bytes it left allocated (a
/// negative number: freed): `xps_loop_attach()` keeps one loop event (`+1`), `xps_loop_detach()`
/// destroys one (`-1`).
pub fn net_blocks<T>(size: usize, f: impl FnOnce() -> T) -> (T, i64) {
    WATCH.set((size, 0));
    let result = f();
    let (_, net) = WATCH.replace((0, 0));
    (result, net)
}

// SAFETY: every method forwards to `System` with the same arguments, so the `GlobalAlloc`
// contract holds as it does for `System`; the counting touches only a thread-local integer.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), passed on unchanged.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64);
            watch(layout.size(), 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as i64);
            watch(layout.size(), 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
        watch(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as i64 - layout.size() as i64);
            watch(layout.size(), -1);
            watch(new_size, 1);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Bytes the calling thread has allocated and not freed so far.
pub fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}
