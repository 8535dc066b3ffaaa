//! The command line both stages accept: `--help`, bad arguments, a port in use, an unknown host,
//! the default ports. Each check runs the stage's binary itself.

use std::net::TcpListener;
use std::time::Duration;

use super::milestone_2::one_client_on_each_port_gets_its_reversal;
use crate::process::run_bounded;
use crate::{DefaultPortsLock, Failure, Role, Server, Target, escape};

/// What a finished run of the binary printed, and how it ended.
struct Output {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `BIN ARGS...` (with `XPS_DEBUG=1` if `debug`) to its end, at most `limit`.
fn run(target: &Target, args: &[&str], debug: bool, limit: Duration) -> Result<Output, Failure> {
    let mut cmd = std::process::Command::new(&target.bin);
    cmd.args(args);
    if debug {
        cmd.env("XPS_DEBUG", "1");
    }
    let finished = run_bounded(cmd, limit)
        .map_err(|e| Failure::new(format!("could not run {} {}: {e}", target.bin.display(), args.join(" "))))?;
    match finished.status {
        Some(status) => Ok(Output { status, stdout: finished.stdout, stderr: finished.stderr }),
        None => {
            Err(Failure::new(format!("`{} {}` was still running after {limit:?}", bin_name(target), args.join(" ")))
                .detail("expected", "the server exits on its own")
                .detail("received", format!("it was stopped; its output: {}", escape(&finished.stdout))))
        }
    }
}

fn bin_name(target: &Target) -> String {
    target.bin.file_name().map_or_else(|| "the server".into(), |n| n.to_string_lossy().into_owned())
}

/// What a run printed, for a failure.
fn printed(output: &Output) -> String {
    format!(
        "exit status {:?}, stdout {}, stderr {}",
        output.status.code(),
        escape(&output.stdout),
        escape(&output.stderr)
    )
}

/// `-h` and `--help` print the usage on stdout and exit 0.
pub fn help_prints_usage_and_exits_0(target: &Target) -> Result<(), Failure> {
    for flag in ["-h", "--help"] {
        let output = run(target, &[flag], false, Duration::from_secs(10))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.code() != Some(0) || !stdout.contains("Usage:") || !stdout.contains("--host HOST") {
            return Err(Failure::new(format!("`{} {flag}` did not print the usage and exit 0", bin_name(target)))
                .detail("expected", "exit status 0, and `Usage:` with the `--host HOST` option on stdout")
                .detail("received", printed(&output))
                .blame(Role::Main, "main() reads the command line with the given xps_utils::parse_args_or_exit()"));
        }
    }
    Ok(())
}

/// A port that is not a number or is above 65535, or an unknown flag, prints a message naming
/// the bad argument on stderr and exits 2, before listening on anything.
pub fn bad_arguments_exit_2_naming_the_argument(target: &Target) -> Result<(), Failure> {
    let cases: [(&[&str], &str); 5] = [
        (&["abc"], "invalid port 'abc'"),
        (&["65536"], "invalid port '65536'"),
        (&["8001", "-5"], "invalid port '-5'"),
        (&["--verbose"], "unknown option '--verbose'"),
        (&["--host"], "--host needs a value"),
    ];
    for (args, message) in cases {
        let output = run(target, args, false, Duration::from_secs(10))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.code() != Some(2) || !stderr.contains(message) || stdout.contains("Server listening") {
            return Err(Failure::new(format!(
                "`{} {}` was not refused as a bad argument",
                bin_name(target),
                args.join(" ")
            ))
            .detail("expected", format!("exit status 2, `{message}` on stderr, nothing listening"))
            .detail("received", printed(&output))
            .blame(Role::Main, "main() reads the command line with the given xps_utils::parse_args_or_exit()"));
        }
    }
    Ok(())
}

/// A port that cannot be bound: an ERROR line naming the host, the port and the OS error (in
/// any words), exit status 1, and the listener created before it destroyed before the exit (its
/// `destroyed listener on port N` DEBUG line, the page's own words). The kernel would close its
/// socket at any exit; only that line shows the server undid what it had done.
pub fn port_in_use_exits_1_naming_host_port_and_os_error(target: &Target) -> Result<(), Failure> {
    let taken =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Failure::new(format!("could not bind a port to occupy: {e}")))?;
    let port = taken.local_addr().map_err(|e| Failure::new(format!("getsockname: {e}")))?.port();
    let output = run(target, &["--host", "127.0.0.1", "0", &port.to_string()], true, Duration::from_secs(10))?;
    let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let args = format!("--host 127.0.0.1 0 {port}");
    let named = log.lines().any(|l| {
        l.contains("ERROR")
            && l.contains("127.0.0.1")
            && l.contains(&port.to_string())
            && l.contains("Address already in use")
    });
    if output.status.code() != Some(1) || !named {
        return Err(Failure::new(format!("with port {port} already taken, `{} {args}` did not say so and exit 1", bin_name(target)))
            .detail("expected", format!("exit status 1 and an ERROR line naming the host (127.0.0.1), the port ({port}) and the OS error (`Address already in use`), in any words"))
            .detail("received", format!("exit status {:?}", output.status.code()))
            .blame(Role::ListenerCreate, "when bind() fails, log the host, the port and the OS error text (io::Error), and return None")
            .hint("main() then exits with status 1")
            .with_log(&log));
    }
    let first = log
        .lines()
        .find_map(|l| l.split_once("Server listening on port ").and_then(|(_, p)| p.trim().parse::<u16>().ok()));
    let Some(first) = first else {
        return Err(Failure::new("the first port (0) was not listened on before the second failed")
            .detail("expected", "a `Server listening on port N` line for the first port")
            .blame(Role::Start, "each listener created logs `Server listening on port N`, N the port the OS picked")
            .with_log(&log));
    };
    let destroyed = format!("destroyed listener on port {first}");
    if !log.lines().any(|l| l.starts_with("[DEBUG]") && l.ends_with(&destroyed)) {
        let failure = Failure::new(format!(
            "the listener on port {first}, created before port {port} failed, was not destroyed before the exit"
        ))
        .detail("expected", format!("with XPS_DEBUG=1, a `[DEBUG] ... {destroyed}` line before the exit"));
        // A listener was destroyed, but its line names another port: the log line is wrong.
        let failure = if log.lines().any(|l| l.starts_with("[DEBUG]") && l.contains("destroyed listener on port")) {
            failure.blame(Role::ListenerDestroy, "its DEBUG line must name the listener's own port (listener.port)")
        } else {
            failure
                .blame(Role::Main, "when a listener cannot be created, destroy the ones already created before exiting")
        };
        return Err(failure.with_log(&log));
    }
    Ok(())
}

/// An unknown host: an ERROR naming the host, exit status 1.
pub fn unknown_host_exits_1_naming_the_host(target: &Target) -> Result<(), Failure> {
    let output = run(target, &["--host", "no-such-host.invalid", "0"], false, Duration::from_secs(20))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() != Some(1) || !stdout.contains("no-such-host.invalid") {
        return Err(Failure::new(format!(
            "`{} --host no-such-host.invalid 0` did not name the host and exit 1",
            bin_name(target)
        ))
        .detail("expected", "exit status 1 and an ERROR line naming the host `no-such-host.invalid`")
        .detail("received", printed(&output))
        .blame(
            Role::ListenerCreate,
            "when xps_getaddrinfo() fails, log its error (it names the host) and return None",
        ));
    }
    Ok(())
}

/// Without port arguments the server listens on the course's default ports, in order, and serves
/// each. Holds [`DefaultPortsLock`] so no other test uses those ports meanwhile.
pub fn default_ports_are_listened_on_and_served(target: &Target) -> Result<(), Failure> {
    let _lock = DefaultPortsLock::acquire();
    // Who holds them: each program once, with the addresses it listens on.
    let mut held: Vec<(String, Vec<String>)> = Vec::new();
    for listening in target.default_ports.iter().flat_map(|&port| Server::listeners_on(port)) {
        let owner = listening.owner.unwrap_or_else(|| "another user's program".into());
        match held.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, addrs)) => addrs.push(listening.addr.to_string()),
            None => held.push((owner, vec![listening.addr.to_string()])),
        }
    }
    let held: Vec<String> =
        held.into_iter().map(|(owner, addrs)| format!("{owner} listens on {}", addrs.join(", "))).collect();
    if !held.is_empty() {
        return Err(Failure::new(format!(
            "the course's default ports {:?} are taken by another program, so this check cannot run",
            target.default_ports
        ))
        .detail("held", held.join("; "))
        .not_the_code("stop that program (a server left running in another terminal?) and run the check again"));
    }
    let server = Server::spawn(target.command(&[]), target.default_ports.len()).map_err(|f| {
        f.hint(format!("is another server already running on ports {:?}? stop it and retry", target.default_ports))
    })?;
    if server.ports() != target.default_ports {
        return Err(Failure::new("the server did not listen on the course's default ports, in order")
            .detail("expected", format!("{:?}", target.default_ports))
            .detail("received", format!("{:?}", server.ports()))
            .blame(Role::Start, "create a listener on each port of the given list, in order, and log each")
            .log_of(&server));
    }
    one_client_on_each_port_gets_its_reversal(&server)
}

impl Failure {
    /// Attaches the last lines of a finished run's output.
    fn with_log(mut self, log: &str) -> Self {
        let lines: Vec<&str> = log.lines().collect();
        self.log_tail = lines[lines.len().saturating_sub(25)..].join("\n");
        self
    }
}
