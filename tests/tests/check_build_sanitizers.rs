//! `xps-check` against C builds of the course's stage 7 shape (`check_build/fakes.rs`), built
//! with gcc, with the memory bugs real learners' builds have: shown where they happen, each
//! with the learner's own function and line, and kept out of the tester's verdict when the
//! tester cannot see them.

mod check_build;

use check_build::{Fake, assert_contains, assert_ended, check, section};

/// The line of `needle` in the C fake, for the frames a sanitizer names.
fn line_of(needle: &str, after: &str) -> usize {
    let source = check_build::fakes::C;
    let from = source.find(after).unwrap_or_else(|| panic!("{after:?} in the C fake"));
    let at = from + source[from..].find(needle).unwrap_or_else(|| panic!("{needle:?} after {after:?}"));
    source[..at].lines().count()
}

#[test]
fn a_double_free_at_shutdown_is_a_bug_the_tester_does_not_see_not_a_tester_failure() {
    let fake = Fake::c("double-free", &["-DDOUBLE_FREE"], true);
    let at = line_of("free(event);", "void loop_event_destroy");
    let bug = format!(
        "  - double free in loop_event_destroy() at xps.c:{at} during shutdown (when stopped with SIGINT, as Ctrl+C does)"
    );
    let done = check(&fake, "", &["--stage", "7", "--", &fake.path()]);
    // Every check passes; the bug shows each time the server is stopped, and is said once.
    assert_ended(&done, 1, "19 passed, 0 failed; 1 bug the tester does not see (above)");
    assert_contains(&done.stdout, &["bugs the tester does not see", &bug, "the course's tester would PASS this build"]);
    // With --official the exit status is the tester's verdict alone; the bug is still said.
    let done = check(&fake, "", &["--stage", "7", "--official", "--", &fake.path()]);
    assert_ended(&done, 0, "4 passed, 0 failed; 1 bug the tester does not see (above)");
    assert_contains(&done.stdout, &[&bug]);
}

#[test]
fn a_message_that_fills_the_buffer_shows_buff_read_n_writing_past_it_in_a_check_of_its_own() {
    let fake = Fake::c("off-by-one", &["-DOFF_BY_ONE"], true);
    let at = line_of("buff[read_n] = '\\0';", "void connection_read_handler");
    let done = check(&fake, "", &["--stage", "7", "--", &fake.path()]);
    // Experiment #1's sender fills the buffer too: the same overflow stops the server there.
    assert_ended(&done, 1, "17 passed, 2 failed");
    let filled = section(&done.stdout, "extra_a_message_that_fills_the_receive_buffer_comes_back_reversed");
    assert_contains(
        filled,
        &[
            "FAIL",
            "xps died during the check",
            "AddressSanitizer: stack-buffer-overflow",
            &format!("in connection_read_handler {}:{at}", fake.dir.join("xps.c").display()),
            "the sanitizer names the line",
        ],
    );
    // The tester's strings are at most 100 bytes: it never fills the buffer.
    assert_contains(&done.stdout, &["the course's tester would PASS this build"]);
}

#[test]
fn a_plain_build_that_dies_of_sigsegv_in_its_sigint_handler_is_told_so() {
    let fake = Fake::c("segv-on-ctrl-c", &["-DSEGV_IN_SIGINT_HANDLER"], false);
    let done = check(&fake, "", &["--stage", "7", "--official", "--", &fake.path()]);
    assert_ended(&done, 0, "4 passed, 0 failed; 1 bug the tester does not see (above)");
    assert_contains(
        &done.stdout,
        &[
            "  - xps was killed by signal 11 (SIGSEGV: a bad pointer or an out-of-bounds access): look at \
             sigint_handler() and what runs after it during shutdown",
            "the course's tester would PASS this build",
        ],
    );
}
