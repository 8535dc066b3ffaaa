//! Running cargo and git with a time limit, so that nothing `check` starts can hang it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use xps_tests::process;

/// What a command printed, and how it ended.
#[derive(Debug)]
pub struct Output {
    /// Its exit code; `None` if it was killed (timeout or signal).
    pub code: Option<i32>,
    /// Whether it was killed for running longer than its limit.
    pub timed_out: bool,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Output {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Where the commands run, and with which target folder.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The workspace root.
    pub root: PathBuf,
    /// `CARGO_TARGET_DIR` for the cargo commands, if not the workspace's own.
    pub target_dir: Option<PathBuf>,
}

impl Ctx {
    /// `cargo ARGS` in the workspace, killed (with every process it started) after `limit`.
    pub fn cargo(&self, args: &[&str], limit: Duration) -> Output {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(args).current_dir(&self.root);
        if let Some(dir) = &self.target_dir {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        // Plain, uncoloured output, to parse.
        cmd.env("CARGO_TERM_COLOR", "never").env("RUST_BACKTRACE", "0").env_remove("RUST_LOG");
        run_bounded(cmd, limit)
    }

    /// `git ARGS` in the workspace (a minute at most).
    pub fn git(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.root).args(args);
        run_bounded(cmd, Duration::from_secs(60))
    }

    /// A path under the workspace root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Runs `cmd` through the kit's process runner (a process group of its own, marked),
/// collecting its output; after `limit` it is stopped with everything it started.
pub fn run_bounded(cmd: Command, limit: Duration) -> Output {
    let program = cmd.get_program().to_owned();
    match process::run_bounded(cmd, limit) {
        Ok(finished) => Output {
            code: finished.status.and_then(|s| s.code()),
            timed_out: finished.timed_out,
            stdout: String::from_utf8_lossy(&finished.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&finished.stderr).into_owned(),
        },
        Err(e) => Output {
            code: None,
            timed_out: false,
            stdout: String::new(),
            stderr: format!("could not run {program:?}: {e}"),
        },
    }
}

/// Makes Ctrl+C (and SIGTERM, SIGHUP) stop the running command with everything it started
/// (the runner puts it in a process group of its own, which the terminal's Ctrl+C no longer
/// reaches), then end this program as the signal would have. Call it before any thread starts.
pub fn forward_interrupts() {
    process::on_interrupt(Duration::from_millis(500), |_| {});
}
