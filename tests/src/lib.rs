//! The check engine and test kit every stage shares.
//!
//! Each check of the course is declared once, in the registry (`list.rs`, read through
//! [`registry`]), and run the same way by every front-end: the `#[test]`s `cargo test` runs in
//! each stage's crate, `scripts/check-build.sh` (`xps-check`) against any build, and
//! `scripts/exercise.sh` (`xps-exercise`) for a learner writing a stage.
//!
//! - [`registry`]: the checks, their milestones, time limits and the page functions they blame.
//! - [`harness`]: runs one check on a thread within its time limit, catches panics, resolves the
//!   blame ([`blame`]) and writes its [`record`]s.
//! - [`report`]: a check's [`Failure`], a typed value until it is printed.
//! - [`checks`]: the checks that talk to a server; [`Server`] starts and stops
//!   the server under test, [`Client`] talks to it with a timeout on every read.
//! - [`process`]: the one runner that starts, signals and reaps processes; [`procfs`]: all
//!   that is read from `/proc`; [`binaries`]: the workspace's binaries, found at run time.
//! - [`tool`]: what the command-line tools share.

mod activity;
pub mod binaries;
pub mod blame;
pub mod checks;
mod client;
mod crash;
pub mod diagnose;
pub mod harness;
pub mod in_process;
pub mod json;
pub mod junit;
mod list;
pub mod listening;
pub mod memory_errors;
mod output;
pub mod panic;
mod port_lock;
pub mod process;
pub mod procfs;
pub mod program_name;
pub mod record;
pub mod registry;
pub mod report;
pub mod roles;
pub mod rust_src;
pub mod scratch;
mod server;
pub mod sock_diag;
pub mod tool;

use std::path::PathBuf;
use std::time::Duration;

pub use activity::{Activity, Exchange};
pub use client::Client;
pub use harness::Target;
pub use listening::{Listening, Reach};
pub use port_lock::{DefaultPortsLock, LockError};
pub use registry::{CHECKS, Check, Milestone};
pub use report::{Failure, escape};
pub use roles::Role;
pub use server::{Ended, Server};

/// How long a client waits for a whole reply before calling it missing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the course's servers send back for `message`: the bytes reversed, a trailing `\n` kept
/// last. Written here independently of the servers' own code, so the tests do not check the
/// server against itself.
pub fn expected_reply(message: &[u8]) -> Vec<u8> {
    let (body, newline) = match message.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (message, &b""[..]),
    };
    body.iter().rev().chain(newline).copied().collect()
}

/// A small, seedable random generator (xorshift64*), so a failing random test can be replayed
/// from the seed it prints. Not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// A seed from the clock, for tests that print it.
    pub fn seed_from_time() -> u64 {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        (nanos as u64) ^ u64::from(std::process::id())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` random letters and digits.
    pub fn alphanumeric(&mut self, len: usize) -> Vec<u8> {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len).map(|_| CHARS[self.below(CHARS.len() as u64) as usize]).collect()
    }
}

/// The path of a workspace binary (`stage06`, `stage07`, `sender`, `loadgen`, ...), built
/// first when the tests run under cargo: [`binaries::stage_binary`].
pub fn workspace_binary(name: &str) -> PathBuf {
    binaries::stage_binary(name)
}
