//! A scratch copy of the workspace, for tests and selftests that change a stage's code (a
//! learner's mistake, a skeleton) without touching the real one.
//!
//! The copy holds the workspace's files (tracked and untracked, not ignored) in a fresh git
//! repository whose one commit is the copy itself, under the target folder, with a target
//! folder of its own that every build of the copy shares, so that only the first build compiles
//! the dependencies.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::run_bounded;

pub use crate::binaries::workspace_root;

/// The target folder of `root`'s builds: `CARGO_TARGET_DIR` if set, else `root/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// A scratch copy of the workspace.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// The copy's root.
    pub root: PathBuf,
    /// The target folder its builds share.
    pub target: PathBuf,
}

impl Scratch {
    /// A fresh copy of the workspace `from` in `target_dir(from)/NAME/ws`, committed, building in
    /// `target_dir(from)/NAME/target`.
    pub fn create(from: &Path, name: &str) -> Result<Scratch, String> {
        let base = target_dir(from).join(name);
        Scratch::create_at(from, &base.join("ws"), &base.join("target"))
    }

    /// A fresh copy of the workspace `from` in `root` (emptied first), committed as the first
    /// commit of branch `main`, building in `target`.
    pub fn create_at(from: &Path, root: &Path, target: &Path) -> Result<Scratch, String> {
        copy_workspace(from, root)?;
        git(root, &["-c", "init.defaultBranch=main", "init", "-q"])?;
        git(root, &["add", "-A"])?;
        git(
            root,
            &[
                "-c",
                "user.name=scratch",
                "-c",
                "user.email=scratch@localhost",
                "-c",
                "commit.gpgsign=false",
                "commit",
                "-q",
                "-m",
                "the course's workspace",
            ],
        )?;
        Ok(Scratch { root: root.to_path_buf(), target: target.to_path_buf() })
    }

    /// The path of `file` (relative to the workspace) in the copy.
    pub fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    /// `file`'s text in the copy.
    pub fn read(&self, file: &str) -> Result<String, String> {
        fs::read_to_string(self.path(file)).map_err(|e| format!("cannot read {file}: {e}"))
    }

    /// Replaces the first `old` in `file` with `new`; `Err` if `old` is not there.
    pub fn replace(&self, file: &str, old: &str, new: &str) -> Result<(), String> {
        let text = self.read(file)?;
        if !text.contains(old) {
            return Err(format!("{file} does not contain {old:?}"));
        }
        fs::write(self.path(file), text.replacen(old, new, 1)).map_err(|e| format!("cannot write {file}: {e}"))
    }

    /// Puts every file of the copy back as committed.
    pub fn restore(&self) -> Result<(), String> {
        git(&self.root, &["checkout", "-q", "HEAD", "--", "."]).map(drop)
    }

    /// `program` run in the copy's root, building in the copy's target folder.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.root).env("CARGO_TARGET_DIR", &self.target);
        cmd
    }
}

/// Copies the workspace `from`'s files (tracked and untracked, not ignored: what `git ls-files`
/// lists) into `to`, emptied first; no `.git`.
pub fn copy_workspace(from: &Path, to: &Path) -> Result<(), String> {
    let files = git(from, &["ls-files", "-z", "--cached", "--others", "--exclude-standard"])?;
    if to.exists() {
        fs::remove_dir_all(to).map_err(|e| format!("cannot remove {}: {e}", to.display()))?;
    }
    for file in files.split('\0').filter(|f| !f.is_empty()) {
        let source = from.join(file);
        if !source.is_file() {
            continue;
        }
        let copy = to.join(file);
        fs::create_dir_all(copy.parent().expect("a file has a parent")).map_err(|e| e.to_string())?;
        fs::copy(&source, &copy).map_err(|e| format!("cannot copy {file}: {e}"))?;
    }
    Ok(())
}

/// `git ARGS` in `dir`; its stdout, or why it failed.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    let out = run_bounded(cmd, Duration::from_secs(120)).map_err(|e| format!("could not run git: {e}"))?;
    if out.status.is_none_or(|s| !s.success()) {
        return Err(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
