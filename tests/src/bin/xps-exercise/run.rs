//! Running cargo and git with a time limit, so that nothing `check` starts can hang it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

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

/// Runs `cmd` in a process group of its own, collecting its output; after `limit` the whole
/// group is killed.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Output {
                code: None,
                timed_out: false,
                stdout: String::new(),
                stderr: format!("could not run {:?}: {e}", cmd.get_program()),
            };
        }
    };
    let pgid = child.id() as i32;
    CHILD_GROUP.store(pgid, Ordering::SeqCst);
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .map(|stream| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
    .collect();
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= limit => {
                timed_out = true;
                kill_group(pgid);
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    // Whatever the command left running in its group (a server a test did not stop) would
    // keep the pipes open: end them too.
    kill_group(pgid);
    CHILD_GROUP.store(0, Ordering::SeqCst);
    let mut texts = readers.into_iter().map(|r| r.join().unwrap_or_default());
    Output {
        code: status.and_then(|s| s.code()),
        timed_out,
        stdout: texts.next().unwrap_or_default(),
        stderr: texts.next().unwrap_or_default(),
    }
}

/// Starts `cmd` in process group `group` (0: a new group, whose id is the child's pid), and makes
/// Ctrl+C end that group too (see [`forward_interrupts`]). For commands that run while this
/// program watches them (the test binaries of `check`); [`end_group`] stops the group.
pub fn spawn_in_group(cmd: &mut Command, group: i32) -> std::io::Result<std::process::Child> {
    cmd.stdin(Stdio::null()).process_group(group);
    let child = cmd.spawn()?;
    CHILD_GROUP.store(if group == 0 { child.id() as i32 } else { group }, Ordering::SeqCst);
    Ok(child)
}

/// Kills every process of group `pgid` (one [`spawn_in_group`] made) and forgets it.
pub fn end_group(pgid: i32) {
    kill_group(pgid);
    let _ = CHILD_GROUP.compare_exchange(pgid, 0, Ordering::SeqCst, Ordering::SeqCst);
}

fn kill_group(pgid: i32) {
    // SAFETY: kill() takes plain integers; -pgid names the process group we created for the
    // child (process_group(0) makes its id the group id), so nothing else is signalled.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The process group of the command running now (0: none). The child runs in a group of its
/// own so that a timeout can end everything it started; the terminal's Ctrl+C then no longer
/// reaches it, so [`on_interrupt`] passes it on.
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_interrupt(signal: libc::c_int) {
    let pgid = CHILD_GROUP.load(Ordering::SeqCst);
    if pgid > 0 {
        kill_group(pgid);
    }
    // SAFETY: signal() and raise() are async-signal-safe; with the default action restored,
    // raise() ends this process as the signal would have.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Makes Ctrl+C (and SIGTERM, SIGHUP) end the running command's whole process group too, not
/// only this program, so that no cargo or test server is left running behind it.
pub fn forward_interrupts() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only reads an atomic and calls async-signal-safe functions
        // (kill, signal, raise); it is installed before any thread starts.
        unsafe {
            libc::signal(signal, on_interrupt as *const () as libc::sighandler_t);
        }
    }
}
