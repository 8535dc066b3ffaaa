//! The test kit every stage shares.
//!
//! Each milestone check of the course is written once here and run against every stage (and,
//! through `scripts/check-build.sh`, against a learner's own C build):
//!
//! - [`Server`] starts a server binary on ports the OS picks (or on the default ports), learns
//!   them from its log, keeps the tail of its output for failure messages, and kills it when
//!   dropped, also when a test panics.
//! - [`Client`] is a TCP client whose every read has a timeout and which reads until the whole
//!   reply has arrived, however TCP splits it.
//! - [`checks`] holds the checks themselves. Each returns a [`Failure`] that names the port and
//!   client, shows the bytes sent, expected and received (escaped), the tail of the server's log,
//!   and what a learner should look at.
//! - [`milestone_tests!`] turns the checks into `#[test]` functions inside a stage's crate.

pub mod binaries;
pub mod checks;
mod client;
mod crash;
pub mod hardening;
mod output;
mod port_lock;
pub mod process;
pub mod procfs;
mod server;
pub mod tool;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use client::Client;
pub use port_lock::{DefaultPortsLock, LockError};
pub use server::{Listening, Server};

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

/// Bytes as a quoted, escaped string (`"ab\x00\n"`), cut in the middle when long.
pub fn escape(bytes: &[u8]) -> String {
    const KEEP: usize = 60;
    if bytes.len() <= 2 * KEEP {
        format!("\"{}\"", bytes.escape_ascii())
    } else {
        format!(
            "\"{}\" ... ({} bytes) ... \"{}\"",
            bytes[..KEEP].escape_ascii(),
            bytes.len(),
            bytes[bytes.len() - KEEP..].escape_ascii()
        )
    }
}

/// A failed check: everything a learner needs to see what went wrong and where to look.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, in one line.
    pub what: String,
    /// Details: bytes sent/expected/received, exit statuses, ...
    pub details: Vec<(String, String)>,
    /// What a learner should look at.
    pub hint: String,
    /// The last lines the server printed.
    pub log_tail: String,
}

impl Failure {
    /// A failure with no details yet.
    pub fn new(what: impl Into<String>) -> Self {
        Failure { what: what.into(), details: Vec::new(), hint: String::new(), log_tail: String::new() }
    }

    /// Adds one `label: value` line.
    pub fn detail(mut self, label: &str, value: impl Into<String>) -> Self {
        self.details.push((label.to_string(), value.into()));
        self
    }

    /// Says what to look at.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    /// Attaches the tail of `server`'s output. If the server panicked (a `todo!()` still to
    /// write, say), that is the real reason: the panic becomes the first line, and what the
    /// check saw follows as `so:`.
    pub fn log_of(mut self, server: &Server) -> Self {
        self.log_tail = server.log_tail(25);
        let panicked = format!("{} panicked: ", server.name());
        if let Some(panic) = server.panic_report()
            && !self.what.starts_with(&panicked)
        {
            let what = std::mem::replace(&mut self.what, format!("{panicked}{panic}"));
            self.details.insert(0, ("so".into(), what));
            self.hint = if self.hint.is_empty() {
                server::PANIC_HINT.into()
            } else {
                format!("{}; then: {}", server::PANIC_HINT, self.hint)
            };
        }
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.what)?;
        for (label, value) in &self.details {
            writeln!(f, "  {:<10}{value}", format!("{label}:"))?;
        }
        if !self.hint.is_empty() {
            writeln!(f, "  look at:  {}", self.hint)?;
        }
        if !self.log_tail.is_empty() {
            writeln!(f, "server output (last lines):")?;
            for line in self.log_tail.lines() {
                writeln!(f, "  | {line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// Runs a check and panics with its failure message, for use in `#[test]` functions.
pub fn run(server: &Server, check: fn(&Server) -> Result<(), Failure>) {
    if let Err(failure) = check(server) {
        panic!("\n{failure}");
    }
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

/// Generates one `#[test]` per milestone check, each starting its own server, plus the
/// command-line checks.
///
/// ```text
/// xps_tests::milestone_tests!(bin: env!("CARGO_BIN_EXE_stage06"), ports: 3, default_ports: [8001, 8002, 8003]);
/// ```
///
/// `ports` is how many OS-picked ports each server listens on (the course: 3 for stage 6,
/// 4 for stage 7); `default_ports` are the ports it uses when given none.
///
/// Each test's name starts with where it belongs, so the list reads in the page's order and
/// `cargo test -p stage06 milestone_2` runs one part (`scripts/exercise.sh` filters on these):
/// - `milestone_2_`: the page's Milestone #2, netcat steps 1-5 (`step_N`) and its "Test: try
///   the same test with 4 clients and 3 ports" (`test_`);
/// - `course_check_1_` to `course_check_3_`: the course's own automated checks;
/// - `extra_`: this workspace's checks beyond the course (raw bytes, resets, the command line).
///
/// The default-ports check is an `extra_`, although the page starts its server on 8001-8003:
/// the port list comes from the given argument parsing, not from code a learner writes (a
/// `main` that creates the wrong listeners already fails `milestone_2` on OS-picked ports),
/// and the check fails when anything else holds those ports, such as the server the page has
/// the learner leave running in another terminal. That must not stop `check` at Milestone #2.
///
/// The check functions keep their names (`checks::one_client_on_each_port_gets_its_reversal`,
/// ...): `scripts/check-build.sh` and other tools call them by name.
#[macro_export]
macro_rules! milestone_tests {
    (bin: $bin:expr, ports: $ports:expr, default_ports: $default_ports:expr) => {
        $crate::milestone_tests!(@server $bin, $ports;
            milestone_2_step_1_2_one_client_on_each_port_gets_its_reversal
                => one_client_on_each_port_gets_its_reversal,
            milestone_2_step_3_second_and_third_clients_on_a_busy_port_are_served
                => second_and_third_clients_on_a_busy_port_are_served,
            milestone_2_step_4_interleaved_messages_from_all_clients_each_get_their_own_reply
                => interleaved_messages_from_all_clients_each_get_their_own_reply,
            milestone_2_step_5_server_stays_up_after_clients_disconnect_and_accepts_new_ones
                => server_stays_up_after_clients_disconnect_and_accepts_new_ones,
            milestone_2_test_four_clients_on_three_ports_each_get_their_reply
                => four_clients_on_three_ports_each_get_their_reply,
            course_check_1_single_client_on_every_port_100_random_strings
                => course_check_1_single_client_on_every_port_100_random_strings,
            course_check_2_ten_clients_at_once_on_one_port
                => course_check_2_ten_clients_at_once_on_one_port,
            course_check_3_disconnect_does_not_affect_other_clients
                => course_check_3_disconnect_does_not_affect_other_clients,
            extra_raw_bytes_and_empty_lines_are_reversed_byte_for_byte
                => raw_bytes_and_empty_lines_are_reversed_byte_for_byte,
            extra_client_that_resets_is_dropped_and_others_stay_served
                => client_that_resets_is_dropped_and_others_stay_served,
        );
        $crate::milestone_tests!(@command $bin;
            extra_help_prints_usage_and_exits_0 => help_prints_usage_and_exits_0,
            extra_bad_arguments_exit_2_naming_the_argument => bad_arguments_exit_2_naming_the_argument,
            extra_port_in_use_exits_1_naming_host_port_and_os_error => port_in_use_exits_1_naming_host_port_and_os_error,
            extra_unknown_host_exits_1_naming_the_host => unknown_host_exits_1_naming_the_host,
        );
        #[test]
        fn extra_default_ports_are_listened_on_and_served() {
            $crate::checks::default_ports_are_listened_on_and_served(::std::path::Path::new($bin), &$default_ports);
        }
    };
    (@server $bin:expr, $ports:expr; $($test:ident => $check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                let server = $crate::Server::start_on_free_ports($bin, $ports);
                $crate::run(&server, $crate::checks::$check);
            }
        )+
    };
    (@command $bin:expr; $($test:ident => $check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::checks::$check(::std::path::Path::new($bin));
            }
        )+
    };
}
