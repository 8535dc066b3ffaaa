//! Stage 7's read callbacks are `unsafe fn`: calling `listener_connection_handler` or
//! `connection_loop_read_handler` without an `unsafe` block does not build (error E0133, "call
//! to unsafe function ... requires unsafe block").
//!
//! That is the point of their `# Safety` sections: a handler turns a raw `ptr` back into its
//! instance, which is sound only for the pointer it was attached with, while its instance
//! lives. If they were safe `fn`s, any safe code could call one with a dangling pointer and the
//! build would accept it. The one caller that may, the loop's dispatch, proves the contract in
//! its `// SAFETY:` comment.
//!
//! stage07 is a binary crate, so a `compile_fail` doctest cannot show this. Instead the test
//! makes a scratch copy of the workspace (`xps_tests::scratch`), appends a call of each handler
//! to its module,
//! and runs `cargo check` on the copy twice: with the calls inside `unsafe { }` it must build
//! (so nothing else about the copy is wrong), and with plain calls it must fail with E0133 at
//! exactly those two calls.

use std::fs;
use std::time::Duration;

use xps_tests::process::run_bounded;
use xps_tests::scratch::{Scratch, workspace_root};

/// How long one `cargo check` of the scratch copy may take (the first one also checks the
/// dependencies, on a machine that may be busy building other things).
const CHECK_LIMIT: Duration = Duration::from_secs(900);

/// The handlers: the file that defines each, and its name.
const HANDLERS: [(&str, &str); 2] = [
    ("stage07/src/network/xps_listener.rs", "listener_connection_handler"),
    ("stage07/src/network/xps_connection.rs", "connection_loop_read_handler"),
];

/// Adds to the scratch copy a call of each handler from a new function at the end of its
/// module, inside `unsafe { }` or not (the copy is first put back as committed).
fn add_calls(scratch: &Scratch, in_unsafe_block: bool) {
    scratch.restore().unwrap_or_else(|e| panic!("{e}"));
    for (file, handler) in HANDLERS {
        let text = scratch.read(file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            text.contains(&format!("fn {handler}(ptr: *mut c_void)")),
            "{file} no longer defines `fn {handler}(ptr: *mut c_void)`: this test calls it by that name"
        );
        let call = format!("{handler}(std::ptr::null_mut())");
        let call = if in_unsafe_block { format!("unsafe {{ {call} }}") } else { format!("{call};") };
        let added = format!(
            "\n/// Added by tests/tests/handlers_are_unsafe_to_call.rs.\npub fn call_{handler}() {{\n    {call}\n}}\n"
        );
        fs::write(scratch.path(file), text + &added).unwrap_or_else(|e| panic!("write {file}: {e}"));
    }
}

/// `cargo check -p stage07 --bin stage07` on the copy, within [`CHECK_LIMIT`]: whether it
/// succeeded, and what it printed on stderr (`--message-format short`: one line per error).
fn cargo_check(scratch: &Scratch) -> (bool, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = scratch.command(cargo);
    cmd.args(["check", "--offline", "--quiet", "-p", "stage07", "--bin", "stage07", "--message-format", "short"]);
    let out = run_bounded(cmd, CHECK_LIMIT).expect("start cargo");
    assert!(!out.timed_out, "cargo check of the scratch copy did not finish within {CHECK_LIMIT:?}");
    (out.status.is_some_and(|s| s.success()), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_safe_call_of_either_read_handler_fails_to_build_with_e0133() {
    let root = workspace_root().expect("the tests run inside the workspace");
    let scratch = Scratch::create(&root, "handlers-are-unsafe-to-call").unwrap_or_else(|e| panic!("{e}"));

    // The control: the same calls inside `unsafe { }` build, so the copy itself is sound.
    add_calls(&scratch, true);
    let (ok, stderr) = cargo_check(&scratch);
    assert!(ok, "the scratch copy does not build even with the calls inside `unsafe {{ }}`:\n{stderr}");

    // The calls alone: E0133 at each of them, and no other error.
    add_calls(&scratch, false);
    let (ok, stderr) = cargo_check(&scratch);
    assert!(!ok, "a safe call of a read handler built: is the handler still an `unsafe fn`?\n{stderr}");
    let errors: Vec<&str> =
        stderr.lines().filter(|l| l.contains("error[") || l.contains(": error:")).map(str::trim).collect();
    for (file, handler) in HANDLERS {
        assert!(
            errors.iter().any(|e| e.starts_with(file)
                && e.contains("error[E0133]")
                && e.contains(&format!("call to unsafe function `{handler}`"))),
            "no E0133 for the safe call of {handler} in {file}; the errors were:\n{}\n\nall of stderr:\n{stderr}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), HANDLERS.len(), "errors other than the two E0133s:\n{}", errors.join("\n"));
    println!("what the compiler says:\n{}", errors.join("\n"));
}
