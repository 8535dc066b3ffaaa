//! The course's utilities (`utils/xps_utils.c`), plus the command line both stages accept.
//!
//! | C (course)                 | Rust                                   |
//! |----------------------------|----------------------------------------|
//! | `is_valid_port(port)`      | [`is_valid_port`]                      |
//! | `xps_getaddrinfo(host, port)` (NULL on error) | [`xps_getaddrinfo`] (`io::Result`) |
//! | `get_remote_ip(sock_fd)` (malloc'd string) | [`get_remote_ip`] (`String`)  |
//! | the reversal loop in the read handler | [`reverse_message`]         |
//! | `printf("[CLIENT MESSAGE] %s", buff)` | [`print_client_message`]    |

use std::cell::RefCell;
use std::ffi::{CString, OsString};
use std::io::{self, IoSlice, Write};
use std::net::SocketAddrV4;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sys;

/// Default host, as in the course: every IPv4 interface. Anyone who can reach this machine
/// can reach the server; pass `--host 127.0.0.1` to keep it to this machine.
pub const DEFAULT_HOST: &str = "0.0.0.0";

/// `is_valid_port()`: a TCP port is 0..=65535 (0 asks the OS to pick a free one).
pub fn is_valid_port(port: u32) -> bool {
    port <= u32::from(u16::MAX)
}

/// `xps_getaddrinfo()`: resolves `host` to an IPv4 address with `getaddrinfo()`, as the course
/// does, and pairs it with `port`. Logs the resolved address at DEBUG.
///
/// The C returns a `struct addrinfo *` the caller must `freeaddrinfo()`; here the list is freed
/// before returning and the caller gets a plain `SocketAddrV4`. An unknown host is an error
/// whose text names the host.
pub fn xps_getaddrinfo(host: &str, port: u16) -> io::Result<SocketAddrV4> {
    let c_host = CString::new(host).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("host '{}' contains a NUL byte", host.escape_debug()))
    })?;
    let ip = sys::getaddrinfo_ipv4(&c_host)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve host '{host}': {e}")))?;
    log::debug!(target: "xps_getaddrinfo()", "host: {host}, port: {port}, resolved ip: {ip}");
    Ok(SocketAddrV4::new(ip, port))
}

/// `get_remote_ip()`: the peer's IPv4 address as text, via `getpeername()`.
pub fn get_remote_ip(sock_fd: BorrowedFd<'_>) -> io::Result<String> {
    Ok(sys::peer_addr(sock_fd)?.ip().to_string())
}

/// Reverses a client's message in place, byte by byte, keeping a trailing `\n` last:
/// `hello\n` becomes `olleh\n`, `\n` stays `\n`.
///
/// The course's C reverses with `strlen()`, so it stops at a NUL byte; this works on every
/// byte, NUL and invalid UTF-8 included.
pub fn reverse_message(buf: &mut [u8]) {
    match buf.split_last_mut() {
        Some((b'\n', body)) => body.reverse(),
        _ => buf.reverse(),
    }
}

/// What the read handler prints before each client message, as in the course.
pub const CLIENT_MESSAGE_PREFIX: &[u8] = b"[CLIENT MESSAGE] ";

/// Prints a client's message to stdout as `[CLIENT MESSAGE] <message>`, ending the line if the
/// message does not.
///
/// Not quite the course's `printf`: a client's bytes go to the learner's terminal, so they are
/// shown, never obeyed. Control characters other than `\t` (an escape sequence such as
/// `\x1b[2J` would clear the screen, a `\r` would overwrite the line) and bytes that are not
/// UTF-8 are printed escaped (`\x1b`, `\xff`), and every line of a message gets its own
/// `[CLIENT MESSAGE] ` prefix, so no message can forge a log line such as
/// `[ERROR] main() : ...`. For display only: the reply uses the real bytes.
///
/// A plain one-line message, the common case, goes out in a single `writev()` and allocates
/// nothing.
pub fn print_client_message(message: &[u8]) {
    let mut out = io::stdout().lock();
    let body = message.strip_suffix(b"\n").unwrap_or(message);
    let result = if is_plain_line(body) {
        write_all_vectored(
            &mut out,
            &mut [IoSlice::new(CLIENT_MESSAGE_PREFIX), IoSlice::new(body), IoSlice::new(b"\n")],
        )
    } else {
        write_escaped_lines(&mut out, body)
    };
    // A closed or full stdout must not stop the server from serving clients.
    drop(result.and_then(|()| out.flush()));
}

/// Whether a character is shown as itself: anything but a control character, tab excepted.
fn is_shown(c: char) -> bool {
    !c.is_control() || c == '\t'
}

/// Valid UTF-8 on one line with nothing to escape.
fn is_plain_line(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(|text| text.chars().all(is_shown))
}

/// Writes each `\n`-separated line of `body` as its own `[CLIENT MESSAGE] ` line, escaping
/// control characters (`\x1b`, `\u{9b}`) and bytes that are not UTF-8 (`\xff`).
fn write_escaped_lines(out: &mut impl Write, body: &[u8]) -> io::Result<()> {
    for line in body.split(|&b| b == b'\n') {
        out.write_all(CLIENT_MESSAGE_PREFIX)?;
        for chunk in line.utf8_chunks() {
            let mut text = chunk.valid();
            while let Some(at) = text.find(|c: char| !is_shown(c)) {
                out.write_all(&text.as_bytes()[..at])?;
                let c = text[at..].chars().next().unwrap_or_default();
                if c.is_ascii() {
                    write!(out, "\\x{:02x}", c as u32)?;
                } else {
                    write!(out, "{}", c.escape_unicode())?;
                }
                text = &text[at + c.len_utf8()..];
            }
            out.write_all(text.as_bytes())?;
            for byte in chunk.invalid() {
                write!(out, "\\x{byte:02x}")?;
            }
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `Write::write_all_vectored` is not stable yet: write every slice, resuming after short writes.
fn write_all_vectored(out: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `error`, from `recv()`, `send()` or `getpeername()` on a client's socket, is
/// something the client did to its own connection (reset it, left early) rather than a failure
/// of the server.
pub fn is_client_gone(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ECONNRESET | libc::EPIPE | libc::ENOTCONN | libc::ECONNABORTED | libc::ETIMEDOUT)
    )
}

/// The level to log a client socket's `error` at. Not the course's, which logs every `recv()`
/// and `send()` failure as ERROR: as nginx does, what a client did to its own connection is
/// INFO, and ERROR is kept for the server's own failures. Otherwise any client could fill the
/// log with ERROR lines just by resetting its connections.
pub fn client_error_level(error: &io::Error) -> log::Level {
    if is_client_gone(error) { log::Level::Info } else { log::Level::Error }
}

/// A spare file descriptor a listener keeps so that it can still turn clients away when the
/// process runs out of descriptors. Not in the course (see [`FdReserve::on_accept_error`]).
///
/// When `accept()` fails with `EMFILE` (this process has as many fds open as its limit allows)
/// or `ENFILE` (the whole system is full), the waiting client stays in the listening socket's
/// queue, so the socket stays readable and epoll reports it again at once: the course's C loop
/// spins at 100% CPU, logging an error each time, until a descriptor frees up. The reserve
/// breaks that loop the way libuv does: close the spare fd, `accept()` the waiting client into
/// the freed slot, close it at once (the client sees its connection closed), and open the
/// spare again. Every client already connected is served as before, and as soon as any
/// descriptor frees up, `accept()` succeeds again.
pub struct FdReserve {
    spare: RefCell<Option<OwnedFd>>,
}

/// When the out-of-descriptors error was last logged. One for the whole process, like the
/// descriptor limit itself: a server with four listeners still logs it at most once a second.
static FD_RESERVE_LAST_LOGGED: Mutex<Option<Instant>> = Mutex::new(None);

/// How often the out-of-descriptors error is logged at most.
pub const FD_RESERVE_LOG_INTERVAL: Duration = Duration::from_secs(1);

impl FdReserve {
    /// Opens the spare descriptor (`/dev/null`).
    pub fn new() -> io::Result<FdReserve> {
        Ok(FdReserve { spare: RefCell::new(Some(open_spare()?)) })
    }

    /// Call when `accept()` on `listen_fd` failed with `error`. Returns the text to log, or
    /// `None` when nothing should be logged:
    ///
    /// - `EAGAIN`/`EWOULDBLOCK`, `ECONNABORTED`: no client was waiting after all, or it reset
    ///   its connection before it was accepted; nothing to log (any client could otherwise
    ///   fill the log).
    /// - `EMFILE`/`ENFILE`: one waiting client is accepted into the spare slot and closed, so
    ///   the listening socket does not stay readable for ever; logged at most once per
    ///   [`FD_RESERVE_LOG_INTERVAL`] in the whole process.
    /// - anything else: logged every time.
    pub fn on_accept_error(&self, listen_fd: BorrowedFd<'_>, error: &io::Error) -> Option<String> {
        if error.kind() == io::ErrorKind::WouldBlock || is_client_gone(error) {
            return None;
        }
        if !matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            return Some(error.to_string());
        }
        // Free the spare slot, take the waiting client into it, and close it at once.
        self.spare.borrow_mut().take();
        let shed = sys::accept(listen_fd).map(drop).is_ok();
        let reopened = open_spare().map(|fd| *self.spare.borrow_mut() = Some(fd)).is_ok();

        let now = Instant::now();
        let mut last_logged = FD_RESERVE_LAST_LOGGED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if last_logged.is_some_and(|last| now.duration_since(last) < FD_RESERVE_LOG_INTERVAL) {
            return None;
        }
        *last_logged = Some(now);
        Some(format!(
            "{error}; {} (this message is shown at most once a second)",
            match (shed, reopened) {
                (true, true) => "closed a waiting client to make room; serving the clients already connected",
                (true, false) => "closed a waiting client; the spare descriptor could not be reopened yet",
                (false, _) => "could not even accept into the spare descriptor",
            }
        ))
    }
}

/// The Rust-only plumbing a listener needs right after `listen()`, given to the learner (not in
/// the course): the port the socket really listens on (the one the OS picked when asked for
/// port 0; the tests use port 0 to run side by side) and the spare descriptor of
/// [`FdReserve`]. The error says which of the two failed, with the OS error text.
pub fn listener_extras(sock_fd: BorrowedFd<'_>) -> io::Result<(u16, FdReserve)> {
    let context = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} failed: {e}"));
    let port = sys::local_addr(sock_fd).map_err(|e| context("getsockname()", e))?.port();
    let fd_reserve = FdReserve::new().map_err(|e| context("open() of the spare descriptor", e))?;
    Ok((port, fd_reserve))
}

fn open_spare() -> io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
}

/// What a stage was asked to do on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The address every listener binds to.
    pub host: String,
    /// One listener per port, in order; 0 lets the OS pick.
    pub ports: Vec<u16>,
}

/// Why the command line did not give a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// `-h`/`--help`: print this usage text on stdout and exit 0.
    Help(String),
    /// A bad argument: print this message on stderr and exit [`EXIT_USAGE`].
    Usage(String),
}

/// Exit status for a bad command line (the convention of BSD's `sysexits` and most CLIs).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when the server cannot start (a port in use, an unknown host, ...).
pub const EXIT_FAILURE: i32 = 1;

/// The `--help` text of a stage.
pub fn usage(program: &str, default_ports: &[u16]) -> String {
    let ports: Vec<String> = default_ports.iter().map(u16::to_string).collect();
    format!(
        "Usage: {program} [--host HOST] [PORT ...]\n\
         \n\
         eXpServer in Rust: listens on each PORT, and sends every message a client sends back reversed.\n\
         \n\
         Arguments:\n  \
           PORT ...          ports to listen on (default: {}); 0 lets the OS pick a free port\n\
         \n\
         Options:\n      \
               --host HOST   address to listen on (default: {DEFAULT_HOST}, every interface, as in the course;\n                    \
                             use 127.0.0.1 to accept only clients on this machine)\n  \
           -h, --help        print this help and exit\n\
         \n\
         Environment:\n  \
           XPS_DEBUG=1       also print DEBUG log lines\n",
        ports.join(" ")
    )
}

/// Parses `[--host HOST] [PORT ...]` (the arguments after the program name).
pub fn parse_args(
    program: &str,
    args: impl IntoIterator<Item = OsString>,
    default_ports: &[u16],
) -> Result<Config, CliError> {
    let bad = |msg: String| CliError::Usage(format!("{program}: {msg}\nTry '{program} --help' for more information."));
    let mut host = DEFAULT_HOST.to_string();
    let mut ports = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else {
            return Err(bad(format!("argument {arg:?} is not valid UTF-8")));
        };
        match arg {
            "-h" | "--help" => return Err(CliError::Help(usage(program, default_ports))),
            "--host" => match args.next().map(|h| h.into_string()) {
                Some(Ok(h)) if !h.is_empty() => host = h,
                Some(Ok(_)) => return Err(bad("--host needs a non-empty HOST".into())),
                Some(Err(h)) => return Err(bad(format!("host {h:?} is not valid UTF-8"))),
                None => {
                    return Err(bad("--host needs a value, for example --host 127.0.0.1".into()));
                }
            },
            _ if arg.starts_with("--host=") => {
                host = arg["--host=".len()..].to_string();
                if host.is_empty() {
                    return Err(bad("--host needs a non-empty HOST".into()));
                }
            }
            _ if arg.starts_with('-') && arg != "-" && arg.parse::<i64>().is_err() => {
                return Err(bad(format!("unknown option '{arg}'")));
            }
            _ => match arg.parse::<u32>() {
                Ok(port) if is_valid_port(port) => ports.push(port as u16),
                Ok(_) => {
                    return Err(bad(format!("invalid port '{arg}': ports go from 0 to 65535")));
                }
                Err(_) => {
                    return Err(bad(format!("invalid port '{arg}': not a number from 0 to 65535")));
                }
            },
        }
    }
    if ports.is_empty() {
        ports = default_ports.to_vec();
    }
    Ok(Config { host, ports })
}

/// Parses the process's own arguments; on `--help` prints the usage and exits 0, on a bad
/// argument prints why on stderr and exits [`EXIT_USAGE`].
pub fn parse_args_or_exit(program: &str, default_ports: &[u16]) -> Config {
    match parse_args(program, std::env::args_os().skip(1), default_ports) {
        Ok(config) => config,
        Err(CliError::Help(text)) => {
            print!("{text}");
            std::process::exit(0);
        }
        Err(CliError::Usage(text)) => {
            eprintln!("{text}");
            std::process::exit(EXIT_USAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, CliError> {
        parse_args("xps", args.iter().map(OsString::from), &[8001, 8002, 8003])
    }

    #[test]
    fn valid_ports_are_0_to_65535() {
        assert!(is_valid_port(0) && is_valid_port(8001) && is_valid_port(65535));
        assert!(!is_valid_port(65536));
    }

    #[test]
    fn reversal_keeps_the_trailing_newline_last() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"hello\n", b"olleh\n"),
            (b"\n", b"\n"),
            (b"", b""),
            (b"abc", b"cba"),
            (b"a\0b\xff\n", b"\xffb\0a\n"),
            (b"ab\n\n", b"\nba\n"),
        ];
        for (input, want) in cases {
            let mut buf = input.to_vec();
            reverse_message(&mut buf);
            assert_eq!(buf, want, "reversing {:?}", input.escape_ascii().to_string());
        }
    }

    fn escaped(body: &[u8]) -> String {
        let mut out = Vec::new();
        write_escaped_lines(&mut out, body).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn client_messages_are_shown_never_obeyed() {
        assert!(is_plain_line(b"hello\tworld"));
        assert!(!is_plain_line(b"two\nlines") && !is_plain_line(b"\x1b[2J") && !is_plain_line(b"\xff"));
        assert_eq!(escaped(b"ok\xffok"), "[CLIENT MESSAGE] ok\\xffok\n");
        assert_eq!(escaped(b"\x1b[2Jcleared?\r"), "[CLIENT MESSAGE] \\x1b[2Jcleared?\\x0d\n");
        assert_eq!(escaped("c1 \u{9b} é".as_bytes()), "[CLIENT MESSAGE] c1 \\u{9b} é\n");
        assert_eq!(
            escaped(b"hi\n[ERROR] main() : forged"),
            "[CLIENT MESSAGE] hi\n[CLIENT MESSAGE] [ERROR] main() : forged\n",
            "every line of a message is marked as the client's"
        );
        let mut out = Vec::new();
        write_all_vectored(&mut out, &mut [IoSlice::new(CLIENT_MESSAGE_PREFIX), IoSlice::new(b"hi\n")]).unwrap();
        assert_eq!(out, b"[CLIENT MESSAGE] hi\n");
    }

    #[test]
    fn errors_a_client_causes_are_info_the_servers_own_are_error() {
        for errno in [libc::ECONNRESET, libc::EPIPE, libc::ENOTCONN] {
            assert_eq!(client_error_level(&io::Error::from_raw_os_error(errno)), log::Level::Info, "errno {errno}");
        }
        for errno in [libc::EBADF, libc::ENOMEM, libc::EFAULT] {
            assert_eq!(client_error_level(&io::Error::from_raw_os_error(errno)), log::Level::Error, "errno {errno}");
        }
    }

    #[test]
    fn getaddrinfo_resolves_and_names_unknown_hosts() {
        assert_eq!(xps_getaddrinfo("127.0.0.1", 80).unwrap(), "127.0.0.1:80".parse().unwrap());
        assert_eq!(xps_getaddrinfo("localhost", 8001).unwrap(), "127.0.0.1:8001".parse().unwrap());
        let err = xps_getaddrinfo("no-such-host.invalid", 80).unwrap_err();
        assert!(err.to_string().contains("'no-such-host.invalid'"), "{err}");
    }

    #[test]
    fn fd_reserve_sheds_a_waiting_client_when_out_of_descriptors() {
        use std::os::fd::AsFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let reserve = FdReserve::new().unwrap();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);

        // Nothing waiting: the spare is used and reopened, the error is logged once.
        let first = reserve.on_accept_error(listener.as_fd(), &emfile).expect("the first EMFILE is logged");
        assert!(first.contains("Too many open files"), "{first}");
        assert!(reserve.spare.borrow().is_some(), "the spare descriptor is reopened");

        // A waiting client is accepted into the spare slot and closed; not logged again so soon.
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(reserve.on_accept_error(listener.as_fd(), &emfile), None);
        let mut byte = [0u8; 1];
        assert_eq!(
            std::io::Read::read(&mut client, &mut byte).unwrap(),
            0,
            "the shed client sees its connection closed"
        );
        assert!(matches!(listener.accept(), Err(e) if e.kind() == io::ErrorKind::WouldBlock), "nobody is left waiting");

        // Other errors are always logged; a would-block or a client gone is not an error.
        let other = io::Error::from_raw_os_error(libc::EPROTO);
        assert!(reserve.on_accept_error(listener.as_fd(), &other).is_some());
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(reserve.on_accept_error(listener.as_fd(), &aborted), None);
        let would_block = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(reserve.on_accept_error(listener.as_fd(), &would_block), None);
    }

    #[test]
    fn command_line() {
        assert_eq!(parse(&[]).unwrap(), Config { host: "0.0.0.0".into(), ports: vec![8001, 8002, 8003] });
        assert_eq!(
            parse(&["--host", "127.0.0.1", "0", "9000"]).unwrap(),
            Config { host: "127.0.0.1".into(), ports: vec![0, 9000] }
        );
        assert_eq!(parse(&["--host=localhost"]).unwrap().host, "localhost");
        assert!(matches!(parse(&["--help"]), Err(CliError::Help(t)) if t.contains("--host HOST")));
        assert!(matches!(parse(&["-h"]), Err(CliError::Help(_))));
        for (args, needle) in [
            (&["abc"][..], "invalid port 'abc'"),
            (&["65536"][..], "invalid port '65536'"),
            (&["-1"][..], "invalid port '-1'"),
            (&["--verbose"][..], "unknown option '--verbose'"),
            (&["--host"][..], "--host needs a value"),
        ] {
            match parse(args) {
                Err(CliError::Usage(msg)) => assert!(msg.contains(needle), "{args:?}: {msg}"),
                other => panic!("{args:?} should be a usage error, got {other:?}"),
            }
        }
    }
}
