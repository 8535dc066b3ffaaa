//! What the check-build tests share: the fake servers in a folder of their own, `xps-check` run
//! in a network namespace of its own (so that runs on the course's fixed ports 8001-8004 go side
//! by side, and never touch the machine's own), and the assertions on what it printed.
//!
//! Where no network namespace can be made (`unshare` refused, no `ip`), each run holds
//! [`DefaultPortsLock`] instead and uses this machine's loopback, one run at a time.

#![allow(dead_code, reason = "each test file uses its own part of the helpers")]

pub mod fakes;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use xps_tests::process::run_bounded;
use xps_tests::{DefaultPortsLock, Server, workspace_binary};

/// The ports the course's tester checks.
pub const PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

/// A folder of its own holding a fake `xps`, removed at the end.
pub struct Fake {
    pub dir: PathBuf,
}

impl Fake {
    fn folder(test: &str) -> Fake {
        let dir = std::env::temp_dir().join(format!("xps-fake-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fake { dir }
    }

    /// The Python fake ([`fakes::PYTHON`]), run by the Python interpreter itself rather than
    /// through `env` and a version manager's shim, which can take longer to start than the
    /// tester's first look allows.
    pub fn python(test: &str) -> Fake {
        let fake = Fake::folder(test);
        let path = fake.dir.join("xps");
        let script = fakes::PYTHON.replacen("#!/usr/bin/env python3", &format!("#!{}", python3()), 1);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        fake
    }

    /// The C fake ([`fakes::C`]) built with `defines` (`-DDOUBLE_FREE`), with
    /// `-fsanitize=address,undefined` if `sanitize`.
    pub fn c(test: &str, defines: &[&str], sanitize: bool) -> Fake {
        let fake = Fake::folder(test);
        std::fs::write(fake.dir.join("xps.c"), fakes::C).unwrap();
        let mut gcc = Command::new("gcc");
        gcc.current_dir(&fake.dir).args(["-g", "-O0", "-o", "xps", "xps.c"]).args(defines);
        if sanitize {
            gcc.arg("-fsanitize=address,undefined");
        }
        let built = run_bounded(gcc, Duration::from_secs(120)).expect("run gcc");
        assert!(built.status.is_some_and(|s| s.success()), "gcc failed: {}", String::from_utf8_lossy(&built.stderr));
        fake
    }

    /// The fake's `xps`.
    pub fn path(&self) -> String {
        self.dir.join("xps").to_string_lossy().into_owned()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Python interpreter's own path (`sys.executable`).
fn python3() -> &'static str {
    static FOUND: OnceLock<String> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "import sys; print(sys.executable)"]);
        let found = run_bounded(cmd, Duration::from_secs(30)).expect("run python3");
        String::from_utf8_lossy(&found.stdout).trim().to_string()
    })
}

/// How a run of a script went.
#[derive(Debug)]
pub struct Done {
    /// The exit status of `xps-check` (the script writes it to `status`).
    pub code: Option<i32>,
    /// What `xps-check` printed on stdout.
    pub stdout: String,
    /// What `xps-check` printed on stderr.
    pub stderr: String,
    /// The sockets listening on ports 8001-8004 once the run had ended, in its network.
    pub listening_after: Vec<String>,
    /// The processes running the fake once the run had ended (`pgrep -a -f`).
    pub processes_after: Vec<String>,
}

impl Done {
    /// stdout, then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// What a script starts with: the files an earlier run in the same folder left are removed.
const CLEAN: &str = "rm -f out.txt err.txt status listening-after.txt left-after.txt shell.pid";

/// How to run a script in a network namespace of its own: `unshare -n` (root), `unshare -rn`
/// (a user namespace), or not at all.
fn namespace() -> Option<&'static [&'static str]> {
    static FOUND: OnceLock<Option<&'static [&'static str]>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let tries: [&'static [&'static str]; 2] = [&["unshare", "-n"], &["unshare", "-rn"]];
        tries.into_iter().find(|prefix| {
            let mut cmd = Command::new(prefix[0]);
            cmd.args(&prefix[1..]).args(["sh", "-c", "ip link set lo up"]);
            run_bounded(cmd, Duration::from_secs(10)).is_ok_and(|f| f.status.is_some_and(|s| s.success()))
        })
    })
}

/// Runs `script` with `sh`, in the fake's folder, with `$XPS_CHECK` naming the checker and
/// `"$@"` being `args`, in a network namespace of its own with loopback up. The script runs
/// `xps-check` itself, writing its output to `out.txt` and `err.txt` and its status to `status`
/// (see [`check`]). Afterwards the sockets still listening on 8001-8004 are listed.
pub fn in_own_network(fake: &Fake, script: &str, args: &[&str], limit: Duration) -> Done {
    let body = format!(
        "{script}\nsleep 0.3\nss -ltnH 2>/dev/null | awk '{{print $4}}' | grep -E ':800[1-4]$' > listening-after.txt\n\
         echo $$ > shell.pid\npgrep -a -f -- \"$PWD/xps\" >> left-after.txt\n"
    );
    let mut _lock = None;
    let mut cmd = match namespace() {
        Some(prefix) => {
            let mut cmd = Command::new(prefix[0]);
            cmd.args(&prefix[1..]).args(["sh", "-c", &format!("ip link set lo up || exit 90\n{CLEAN}\n{body}"), "sh"]);
            cmd
        }
        None => {
            _lock = Some(DefaultPortsLock::acquire());
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &format!("{CLEAN}\n{body}"), "sh"]);
            cmd
        }
    };
    cmd.args(args).current_dir(&fake.dir).env("XPS_CHECK", workspace_binary("xps-check"));
    let finished = run_bounded(cmd, limit).expect("run the script");
    assert!(!finished.timed_out, "the run took longer than {limit:?}: {}", String::from_utf8_lossy(&finished.stderr));
    let read = |name: &str| std::fs::read_to_string(fake.dir.join(name)).unwrap_or_default();
    let mut listening_after: Vec<String> = read("listening-after.txt").lines().map(str::to_string).collect();
    if namespace().is_none() {
        listening_after = PORTS.iter().flat_map(|&p| Server::listeners_on(p)).map(|l| l.addr.to_string()).collect();
    }
    let shell = read("shell.pid").trim().to_string();
    let processes_after = read("left-after.txt")
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(shell.as_str()))
        .map(str::to_string)
        .collect();
    let done = Done {
        code: read("status").trim().parse().ok(),
        stdout: read("out.txt"),
        stderr: read("err.txt") + &String::from_utf8_lossy(&finished.stderr),
        listening_after,
        processes_after,
    };
    println!("--- xps-check {} ---\n{}", args.join(" "), done.text());
    done
}

/// Runs `xps-check ARGS` in a network of its own after `setup` (a shell snippet, which may start
/// something there first).
pub fn check(fake: &Fake, setup: &str, args: &[&str]) -> Done {
    let script = format!("{setup}\n\"$XPS_CHECK\" \"$@\" > out.txt 2> err.txt\necho $? > status");
    in_own_network(fake, &script, args, Duration::from_secs(400))
}

/// `xps-check ARGS -- FAKE MODES HOST PORTS...` for the Python fake.
pub fn check_python(fake: &Fake, args: &[&str], modes: &str, host: &str, ports: &[&str]) -> Done {
    let path = fake.path();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--", path.as_str(), modes, host]);
    all.extend(ports);
    check(fake, "", &all)
}

pub const ALL_PORTS: [&str; 4] = ["8001", "8002", "8003", "8004"];

pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "the output should contain {needle:?}; it was:\n{text}");
    }
}

/// The part of the output about one check, from its `[i/N] name` line to the next check.
pub fn section<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text.find(&format!("] {name}\n")).unwrap_or_else(|| panic!("no check {name} in:\n{text}"));
    let rest = &text[start..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The run ended as a verdict must: the exit status, the closing line, and nothing left
/// listening on the course's ports.
pub fn assert_ended(done: &Done, code: i32, closing: &str) {
    assert_eq!(done.code, Some(code), "exit status; the output:\n{}", done.text());
    let last = done.stdout.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with(closing), "the last line should start with {closing:?}, it is {last:?}:\n{}", done.text());
    assert!(done.listening_after.is_empty(), "still listening after the run: {:?}", done.listening_after);
    assert!(done.processes_after.is_empty(), "still running after the run: {:?}", done.processes_after);
}

/// `path` is a well-formed XML document (Python's expat reads it).
pub fn assert_valid_xml(path: &std::path::Path) -> String {
    let xml = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("the JUnit report {}: {e}", path.display()));
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])"]).arg(path);
    let parsed = run_bounded(cmd, Duration::from_secs(30)).expect("run python3");
    assert!(
        parsed.status.is_some_and(|s| s.success()),
        "{} is not well-formed XML: {}\n{xml}",
        path.display(),
        String::from_utf8_lossy(&parsed.stderr)
    );
    xml
}
