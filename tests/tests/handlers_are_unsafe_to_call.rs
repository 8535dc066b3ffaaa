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
//! copies the workspace into a scratch folder, appends a call of each handler to its module,
//! and runs `cargo check` on the copy twice: with the calls inside `unsafe { }` it must build
//! (so nothing else about the copy is wrong), and with plain calls it must fail with E0133 at
//! exactly those two calls.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one `cargo check` of the scratch copy may take (the first one also checks the
/// dependencies, on a machine that may be busy building other things).
const CHECK_LIMIT: Duration = Duration::from_secs(900);

/// The handlers: the file that defines each, and its name.
const HANDLERS: [(&str, &str); 2] = [
    ("stage07/src/network/xps_listener.rs", "listener_connection_handler"),
    ("stage07/src/network/xps_connection.rs", "connection_loop_read_handler"),
];

/// The workspace's root: the folder above this crate's.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate sits in the workspace").to_path_buf()
}

/// Cargo's target folder for this build: this test binary is `<target>/debug/deps/<name>`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors().nth(3).expect("<target>/debug/deps/<test binary>").to_path_buf()
}

/// Copies `from` into `to`, skipping `target` and `.git` folders.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

/// A fresh scratch copy of the workspace (the parts cargo needs) with each handler called from
/// a new function at the end of its module, inside `unsafe { }` or not.
fn scratch_copy(ws: &Path, in_unsafe_block: bool) {
    let root = workspace_root();
    if ws.exists() {
        fs::remove_dir_all(ws).unwrap_or_else(|e| panic!("remove {}: {e}", ws.display()));
    }
    for file in ["Cargo.toml", "Cargo.lock"] {
        fs::create_dir_all(ws).expect("create the scratch folder");
        fs::copy(root.join(file), ws.join(file)).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
    for dir in ["shared", "stage06", "stage07", "tests"] {
        copy_tree(&root.join(dir), &ws.join(dir));
    }
    for (file, handler) in HANDLERS {
        let path = ws.join(file);
        let mut text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
        assert!(
            text.contains(&format!("fn {handler}(ptr: *mut c_void)")),
            "{file} no longer defines `fn {handler}(ptr: *mut c_void)`: this test calls it by that name"
        );
        let call = format!("{handler}(std::ptr::null_mut())");
        let call = if in_unsafe_block { format!("unsafe {{ {call} }}") } else { format!("{call};") };
        text.push_str(&format!(
            "\n/// Added by tests/tests/handlers_are_unsafe_to_call.rs.\npub fn call_{handler}() {{\n    {call}\n}}\n"
        ));
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {file}: {e}"));
    }
}

/// `cargo check -p stage07 --bin stage07` on the copy, within [`CHECK_LIMIT`]: whether it
/// succeeded, and what it printed on stderr (`--message-format short`: one line per error).
fn cargo_check(ws: &Path, target: &Path) -> (bool, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let log = target.join("cargo-check.log");
    let log_file = fs::File::create(&log).expect("create the log file");
    let mut child = Command::new(cargo)
        .args(["check", "--offline", "--quiet", "-p", "stage07", "--bin", "stage07", "--message-format", "short"])
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", target.join("target"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start cargo");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for cargo") {
            break status;
        }
        if started.elapsed() > CHECK_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cargo check of the scratch copy did not finish within {CHECK_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(100));
    };
    (status.success(), fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn a_safe_call_of_either_read_handler_fails_to_build_with_e0133() {
    let base = target_dir().join("handlers-are-unsafe-to-call");
    let ws = base.join("ws");

    // The control: the same calls inside `unsafe { }` build, so the copy itself is sound.
    scratch_copy(&ws, true);
    let (ok, stderr) = cargo_check(&ws, &base);
    assert!(ok, "the scratch copy does not build even with the calls inside `unsafe {{ }}`:\n{stderr}");

    // The calls alone: E0133 at each of them, and no other error.
    scratch_copy(&ws, false);
    let (ok, stderr) = cargo_check(&ws, &base);
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
