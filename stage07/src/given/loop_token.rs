//! Given code, not on the page: what epoll carries back with each event, the [`Token`], in place
//! of the page's `loop_event_t *`.
//!
//! The page puts each loop event's address in `epoll_event.data.ptr`, and before using one it
//! searches `loop->events` for that address, because an earlier callback of the same
//! `epoll_wait()` batch may have destroyed the event ("Check if event still exists"). Our loop
//! (`core/xps_loop.rs`) keeps its events in a table indexed by fd instead, as Redis's `ae.c`
//! does, and gives epoll a token: the fd, and a generation number that is new for every attach
//! (mio's `Token`). Finding the event is then one index and one comparison:
//!
//! - the fd's slot is empty: the event's owner was detached earlier in this batch; skip it;
//! - the slot holds an event of another generation: the fd was closed and reused by a newer
//!   instance earlier in this batch, and the old event must not reach it; skip it;
//! - otherwise the slot holds the very attach epoll reported: call its callback.
//!
//! A token is never dereferenced, so a stale event cannot touch freed memory; and a reused fd
//! gets a new generation, so a stale event cannot reach the wrong instance. The page's search
//! for the event's *address* can be fooled: if the new instance's loop event is allocated where
//! the old one was freed, as `malloc` often does, the stale event is found and delivered to the
//! new instance. `docs/stage07.md` (note 2) tells the whole story, with a picture.

use std::cell::Cell;
use std::os::fd::RawFd;

/// What epoll carries back with an event: the fd and the generation of its attach, packed into
/// the 64 bits of `epoll_event.data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// The fd the event is for.
    pub fd: u32,
    /// Which attach of that fd the event is for.
    pub generation: u32,
}

impl Token {
    /// The loop's wake-up eventfd (`given/loop_waker.rs`): no attached fd is ever `u32::MAX`.
    pub const WAKE: Token = Token { fd: u32::MAX, generation: u32::MAX };

    /// The 64 bits epoll stores: the generation in the high half, the fd in the low half.
    pub fn to_data(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.fd)
    }

    /// The token back from the 64 bits epoll returned.
    pub fn from_data(data: u64) -> Token {
        Token { fd: data as u32, generation: (data >> 32) as u32 }
    }
}

/// Hands out the generations, a new one for every attach.
#[derive(Default)]
pub struct Generations(Cell<u32>);

impl Generations {
    /// The token for a new attach of `fd`.
    ///
    /// Wrapping around is sound: a token is only ever compared within the `epoll_wait()` batch
    /// that returned it (at most `MAX_EPOLL_EVENTS` events), and a wrong match would need 2^32
    /// attaches of one fd within that one batch.
    pub fn next_token(&self, fd: RawFd) -> Token {
        let generation = self.0.get();
        self.0.set(generation.wrapping_add(1));
        Token { fd: fd as u32, generation }
    }
}
