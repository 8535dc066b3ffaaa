//! What the tests of the tools share: scratch copies of the workspace, running the real
//! `xps-exercise` on them with a time limit (every process it starts stopped at the end), and
//! the process-runner tests' fake servers.
//!
//! A scratch copy is the workspace's files (tracked and untracked, not ignored) in a fresh git
//! repository under the target folder. Copies that build share one target folder, and the tests
//! that build take [`serial`] first: the stage binaries they build land at the same paths there.

#![allow(dead_code, reason = "each test file uses the part it needs")]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};
use xps_tests::process::{Options, Process, run_bounded};
use xps_tests::scratch::{self, Scratch};

/// The workspace this test belongs to.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_path_buf()
}

/// `target/xps-exercise-tests`: where the scratch copies live (found from this test's own path,
/// `target/debug/deps/NAME`).
pub fn base() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    exe.ancestors().nth(3).expect("target/debug/deps/NAME").join("xps-exercise-tests")
}

/// The target folder the scratch copies share.
pub fn shared_target() -> PathBuf {
    base().join("target")
}

/// Holds the other building tests off until dropped.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `git ARGS` in `dir` (as the learner); panics with its output if it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.args(["-c", "user.name=learner", "-c", "user.email=learner@localhost", "-c", "commit.gpgsign=false"])
        .args(["-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always"])
        .args(args)
        .current_dir(dir);
    let out = run_bounded(cmd, Duration::from_secs(120)).expect("git runs");
    assert!(
        out.status.is_some_and(|s| s.success()),
        "git {} failed in {}:\n{}{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copies the workspace's files into `dir` (emptied first), without git.
pub fn copy_workspace(dir: &Path) {
    scratch::copy_workspace(&workspace(), dir).unwrap_or_else(|e| panic!("copy the workspace: {e}"));
}

/// A scratch copy at `base()/NAME`, committed as the repository's first commit on `main`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = base().join(name);
    Scratch::create_at(&workspace(), &dir, &shared_target()).unwrap_or_else(|e| panic!("a scratch copy: {e}")).root
}

/// Replaces `old` with `new` in `file` of the workspace at `root` (`old` must be there once).
pub fn edit(root: &Path, file: &str, old: &str, new: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
    assert_eq!(text.matches(old).count(), 1, "{file} should contain {old:?} once");
    std::fs::write(&path, text.replace(old, new)).expect("write the file");
}

/// What a run printed.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (`None`: killed).
    pub code: Option<i32>,
    /// stdout and stderr.
    pub stdout: String,
    pub stderr: String,
    /// How long it took.
    pub took: Duration,
}

impl Ran {
    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!("exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.took, self.stdout, self.stderr)
    }
}

/// `xps-exercise ARGS` on the workspace at `root`, built in `target` (with `cwd` as its current
/// folder), stopped after `limit`.
pub fn exercise_in(root: &Path, target: &Path, cwd: &Path, args: &[&str], limit: Duration) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xps-exercise"));
    cmd.args(args).current_dir(cwd).env("CARGO_TARGET_DIR", target).env_remove("XPS_EXERCISE_ROOT");
    if root != cwd {
        cmd.env("XPS_EXERCISE_ROOT", root);
    }
    let mut running = Running::start(cmd);
    let started = Instant::now();
    let code = running.wait(limit);
    let (stdout, stderr) = running.output();
    Ran { code, stdout, stderr, took: started.elapsed() }
}

/// `xps-exercise ARGS` run from the workspace at `root` itself, in the shared target folder.
pub fn exercise(root: &Path, args: &[&str], limit: Duration) -> Ran {
    exercise_in(root, &shared_target(), root, args, limit)
}

/// A process started through the kit's runner (a group of its own), with its output collected
/// by threads; dropping it stops everything it started, a panicking test included.
pub struct Running {
    process: Process,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: Option<thread::JoinHandle<String>>,
    /// Chunks of stdout as they came, with when: for tests of what is printed when.
    pub chunks: std::sync::Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Running {
    /// Starts `cmd` with stdout and stderr piped.
    pub fn start(cmd: Command) -> Running {
        let program = cmd.get_program().to_owned();
        let mut process =
            Process::spawn(cmd, &Options::default()).unwrap_or_else(|e| panic!("could not start {program:?}: {e}"));
        let chunks = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&chunks);
        let mut out = process.take_stdout().expect("piped");
        let stdout = thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                all.extend_from_slice(&buf[..n]);
                let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap_or_else(PoisonError::into_inner).push((Instant::now(), chunk));
            }
            String::from_utf8_lossy(&all).into_owned()
        });
        let mut err = process.take_stderr().expect("piped");
        let stderr = thread::spawn(move || {
            let mut all = String::new();
            let _ = err.read_to_string(&mut all);
            all
        });
        Running { process, stdout: Some(stdout), stderr: Some(stderr), chunks }
    }

    /// Waits up to `limit` for the exit; stops the run then. The exit code (`None`: killed).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        self.wait_status(limit).and_then(|status| status.code())
    }

    /// Waits up to `limit` for the exit and stops what is left of the run; `None` if it was
    /// still running then.
    pub fn wait_status(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let status = self.process.wait_exit(limit);
        self.process.stop(Duration::ZERO);
        status
    }

    /// stdout so far, as text.
    pub fn stdout_so_far(&self) -> String {
        self.chunks.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|(_, c)| c.as_str()).collect()
    }

    /// Waits up to `limit` until stdout contains `needle` `times` times.
    pub fn wait_for(&self, needle: &str, times: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stdout_so_far().matches(needle).count() >= times {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let _ = self.process.signal(signal);
    }

    /// Everything it printed (after it ended).
    pub fn output(&mut self) -> (String, String) {
        let stdout = self.stdout.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default()).unwrap_or_default();
        (stdout, stderr)
    }
}

/// The first line `stream` gives within 20 seconds.
pub fn first_line(stream: impl Read + Send + 'static) -> String {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("the process printed no line within 20 s")
}

/// `python3 -c SCRIPT`.
pub fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]);
    cmd
}
