//! Finding a workspace binary (`stage06`, `stage07`, `sender`, `loadgen`, `xps-check`, ...) at
//! run time, not through a path compiled into the test: a workspace clone that was moved to
//! another folder after it was built still runs its checks.
//!
//! Under `cargo test` (Cargo sets `CARGO` for the tests it runs) the binary is built first, so
//! it is never older than its source: `cargo build --bin NAME --message-format=json`, run from
//! the workspace root, says where the executable is (quick when it is up to date). A test run
//! directly, without Cargo, takes the binary next to its own executable
//! (`target/<profile>/NAME`), and builds it only if there is none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::json::Json;
use crate::process;

/// The longest a build of one binary may take (a first build on a slow machine included).
const BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);

/// The path of workspace binary `name`, built if needed (see the module's documentation).
/// Panics with what went wrong if it can be neither found nor built.
pub fn stage_binary(name: &str) -> PathBuf {
    static FOUND: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let found = FOUND.get_or_init(Default::default);
    // One lookup at a time: parallel tests would otherwise run cargo side by side.
    let mut found = found.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = found.get(name) {
        return path.clone();
    }
    let under_cargo = std::env::var_os("CARGO").is_some();
    let beside = if under_cargo { None } else { next_to_current_exe(name) };
    let path = match beside {
        Some(path) => path,
        None => build(name).unwrap_or_else(|why| panic!("cannot find or build the workspace binary `{name}`: {why}")),
    };
    found.insert(name.to_string(), path.clone());
    path
}

/// `target/<profile>/NAME` for the running executable: a test runs from
/// `target/<profile>/deps/`, a tool from `target/<profile>/`.
fn next_to_current_exe(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let dirs = [Some(dir), dir.parent().filter(|_| dir.file_name().is_some_and(|n| n == "deps"))];
    dirs.into_iter().flatten().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The workspace root: the nearest folder, from the current one up, whose `Cargo.toml` has a
/// `[workspace]` table.
pub fn workspace_root() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors().find(|dir| is_workspace_root(dir)).map(Path::to_path_buf)
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
}

/// The cargo profile the running executable was built with, from its folder: `target/debug`
/// is the dev profile, `target/release` the release one, `target/NAME` a custom one.
fn profile_args() -> Vec<String> {
    let exe = std::env::current_exe().ok();
    let mut dir = exe.as_deref().and_then(Path::parent);
    if dir.and_then(Path::file_name).is_some_and(|n| n == "deps") {
        dir = dir.and_then(Path::parent);
    }
    match dir.and_then(Path::file_name).and_then(|n| n.to_str()) {
        Some("debug") => vec![],
        Some("release") => vec!["--release".into()],
        Some(other) if dir.and_then(Path::parent).is_some_and(|t| t.join("CACHEDIR.TAG").exists()) => {
            vec!["--profile".into(), other.into()]
        }
        _ if cfg!(debug_assertions) => vec![],
        _ => vec!["--release".into()],
    }
}

/// Builds `name` with cargo from the workspace root; the executable's path.
fn build(name: &str) -> Result<PathBuf, String> {
    let root = workspace_root().ok_or_else(|| {
        "no workspace found: run from inside the workspace (a folder whose Cargo.toml has [workspace])".to_string()
    })?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--quiet", "--bin", name, "--message-format=json"]).args(profile_args()).current_dir(&root);
    let output = process::run_bounded(cmd, BUILD_LIMIT)
        .map_err(|e| format!("could not run {}: {e}", Path::new(&cargo).display()))?;
    if output.timed_out {
        return Err(format!("`cargo build --bin {name}` did not finish within {BUILD_LIMIT:?}"));
    }
    if !output.status.is_some_and(|s| s.success()) {
        return Err(format!(
            "`cargo build --bin {name}` in {} failed ({}):\n{}",
            root.display(),
            crate::server::describe_status(output.status),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().filter_map(Json::parse).find_map(|m| executable_of(&m)).ok_or_else(|| {
        format!(
            "`cargo build --bin {name}` succeeded but named no executable (is `{name}` a binary of this workspace?)"
        )
    })
}

/// The executable a compiler-artifact message names, if any.
fn executable_of(message: &Json) -> Option<PathBuf> {
    (message.get("reason").as_str() == Some("compiler-artifact"))
        .then(|| message.get("executable").as_str().map(PathBuf::from))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_is_read_from_cargos_json() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"stage07"},"executable":"/w/target/debug/stage07","fresh":true}"#;
        let executable = |line: &str| executable_of(&Json::parse(line).expect("JSON"));
        assert_eq!(executable(line), Some(PathBuf::from("/w/target/debug/stage07")));
        let escaped = r#"{"reason":"compiler-artifact","executable":"/a \"b\"\\c"}"#;
        assert_eq!(executable(escaped), Some(PathBuf::from(r#"/a "b"\c"#)));
        assert_eq!(executable(r#"{"reason":"compiler-artifact","executable":null}"#), None);
        assert_eq!(executable(r#"{"reason":"build-finished","success":true}"#), None);
    }

    #[test]
    fn the_workspace_root_is_found_from_a_member_folder() {
        let root = workspace_root().expect("the tests run inside the workspace");
        assert!(root.join("tests").join("Cargo.toml").is_file(), "{}", root.display());
    }
}
