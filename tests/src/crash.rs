//! Reading how a server crashed from what it printed and how it ended: the first Rust panic,
//! the lines of a sanitizer's, Valgrind's or the C library's report that name the error and the
//! learner's own stack frame, and exit statuses in words.

use std::process::ExitStatus;

/// What to look at when the server panicked.
pub(crate) const PANIC_HINT: &str =
    "the function at that file:line panicked (`not yet implemented` is a todo!() still to write)";

/// The first Rust panic in a process's output, as `MESSAGE at FILE:LINE`, from the standard
/// panic report (a line starting with `thread '`, so a client's message cannot pass for one):
///
/// ```text
/// thread 'main' panicked at stage06/src/network/xps_listener.rs:40:5:
/// not yet implemented: xps_listener_create ...
/// ```
pub(crate) fn find_panic(output: &str) -> Option<String> {
    let mut lines = output.lines();
    let location = lines.find_map(|line| {
        let (_, at) = line.strip_prefix("thread '")?.split_once(" panicked at ")?;
        Some(at.trim().trim_end_matches(':'))
    })?;
    // FILE:LINE:COLUMN -> FILE:LINE
    let location = match location.rsplit_once(':') {
        Some((file_line, column)) if column.chars().all(|c| c.is_ascii_digit()) => file_line,
        _ => location,
    };
    let message = lines.next().map_or("", str::trim);
    Some(if message.is_empty() { format!("at {location}") } else { format!("{message} at {location}") })
}

/// The lines of `text` that tell how a program crashed or what memory error it made (see
/// [`Server::crash_lines`](crate::Server::crash_lines)).
pub(crate) fn crash_lines_of(text: &str) -> Vec<String> {
    const MARKERS: [&str; 14] = [
        "ERROR: AddressSanitizer",
        "ERROR: LeakSanitizer",
        "runtime error:",
        "Invalid read of size",
        "Invalid write of size",
        "Invalid free",
        "Process terminating with default action",
        "panicked at",
        "not yet implemented",
        "double free",
        "free(): invalid",
        "malloc(): ",
        "stack smashing detected",
        "Segmentation fault",
    ];
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() && found.len() < 8 {
        let line = lines[i].trim();
        if MARKERS.iter().any(|m| line.contains(m)) {
            found.push(shorten(line));
            // The first frame after it that is in the program's own code.
            if let Some(frame) = lines[i + 1..].iter().take(40).map(|l| l.trim()).find(|l| is_own_frame(l)) {
                let frame = format!("  {}", shorten(frame));
                if !found.contains(&frame) {
                    found.push(frame);
                }
            }
        }
        i += 1;
    }
    found.dedup();
    found
}

/// A stack frame line (`#1 0x55d4 in handler src/conn.c:42`, Valgrind's
/// `==12== at 0x1091: handler (conn.c:42)`) in the program's own code: it names a source file
/// and line and is not in a sanitizer, the C library or Rust's standard library.
pub(crate) fn is_own_frame(line: &str) -> bool {
    let frame = line.starts_with('#') || line.contains(" at 0x") || line.contains(" by 0x");
    let has_line = line.contains(".c:") || line.contains(".rs:") || line.contains(".cpp:") || line.contains(".h:");
    let foreign = ["sanitizer", "libasan", "libubsan", "/usr/", "libc.so", "rustc/", "vg_replace"];
    frame && has_line && !foreign.iter().any(|f| line.contains(f))
}

pub(crate) fn shorten(line: &str) -> String {
    if line.chars().count() > 160 { format!("{}...", line.chars().take(157).collect::<String>()) } else { line.into() }
}

/// The name of a signal that ends a crashing program.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGPIPE => "SIGPIPE",
        _ => return None,
    })
}

/// Whether `status` says the program crashed: killed by a signal such as SIGSEGV or SIGABRT
/// (or a shell's exit status 128 + that signal).
pub(crate) fn crashed(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code > 128 && signal_name(code - 128).is_some(),
        (None, Some(sig)) => signal_name(sig).is_some(),
        _ => false,
    }
}

/// `exited with status 1`, `killed by signal 11 (SIGSEGV: ...)`, or `still running`.
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "still running".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) if code > 128 && signal_name(code - 128).is_some() => format!(
                "exited with status {code} (128 + {}: a shell saying that the server was killed by {})",
                code - 128,
                signal_name(code - 128).unwrap_or_default()
            ),
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => {
                let name = match sig {
                    libc::SIGABRT => " (SIGABRT: an assert() failed, or the C library found corrupted memory)",
                    libc::SIGSEGV => " (SIGSEGV: a bad pointer or an out-of-bounds access)",
                    libc::SIGBUS => " (SIGBUS: a bad memory access)",
                    libc::SIGFPE => " (SIGFPE: a division by zero?)",
                    libc::SIGILL => " (SIGILL: undefined behaviour, or a sanitizer's trap)",
                    libc::SIGPIPE => " (SIGPIPE: send() to a client that had left; use MSG_NOSIGNAL)",
                    libc::SIGINT => " (SIGINT)",
                    libc::SIGKILL => " (SIGKILL)",
                    libc::SIGTERM => " (SIGTERM)",
                    _ => "",
                };
                let core = if s.core_dumped() { ", core dumped" } else { "" };
                format!("killed by signal {sig}{name}{core}")
            }
            _ => format!("{s}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_found_with_its_message_and_file_line() {
        let output = "[DEBUG] xps_loop_create() : created loop\n\
                      thread 'main' panicked at stage06/src/network/xps_listener.rs:40:5:\n\
                      not yet implemented: xps_listener_create: read the page's section\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            find_panic(output).as_deref(),
            Some(
                "not yet implemented: xps_listener_create: read the page's section at \
                 stage06/src/network/xps_listener.rs:40"
            )
        );
        assert_eq!(find_panic("[ERROR] main() : failed\n"), None);
        assert_eq!(find_panic("[CLIENT MESSAGE] thread panicked at x.rs:1:2:\nboo\n"), None);
        assert_eq!(
            find_panic("thread 'main' (438) panicked at stage07/src/main.rs:9:5:\nboom\n").as_deref(),
            Some("boom at stage07/src/main.rs:9")
        );
    }

    #[test]
    fn crash_lines_name_the_error_and_the_frame_in_the_learners_code() {
        let asan = "==1==ERROR: AddressSanitizer: stack-buffer-overflow on address 0x7ffd\n\
                    WRITE of size 1 at 0x7ffd thread T0\n    \
                    #0 0x4f1 in __interceptor_memset ../sanitizer_common/sanitizer_common_interceptors.inc:799\n    \
                    #1 0x55d in xps_connection_read_handler src/network/xps_connection.c:71\n";
        let lines = crash_lines_of(asan);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("stack-buffer-overflow"), "{lines:?}");
        assert!(lines[1].contains("xps_connection.c:71"), "{lines:?}");
    }

    #[test]
    fn statuses_are_described_in_words() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe_status(None), "still running");
        assert_eq!(describe_status(Some(ExitStatus::from_raw(1 << 8))), "exited with status 1");
        assert!(describe_status(Some(ExitStatus::from_raw(libc::SIGSEGV))).contains("SIGSEGV"));
        assert!(crashed(ExitStatus::from_raw(libc::SIGABRT)));
        assert!(crashed(ExitStatus::from_raw((128 + libc::SIGSEGV) << 8)));
        assert!(!crashed(ExitStatus::from_raw(libc::SIGKILL)));
    }
}
