//! The memory errors a server's output reports, as values: what the error is, and the first
//! stack frame in the program's own code (its function and `FILE:LINE`).
//!
//! AddressSanitizer and LeakSanitizer (`-fsanitize=address`), UndefinedBehaviorSanitizer
//! (`-fsanitize=undefined`), Valgrind and the C library each print their own report; a
//! learner needs the same two things from each: what went wrong, and where in their code.
//!
//! ```text
//! ==1==ERROR: AddressSanitizer: attempting double-free on 0x602000000010 in thread T0:
//!     #0 0x7f0d686b76a8 in __interceptor_free ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:52
//!     #1 0x56434500b196 in loop_event_destroy /home/me/expserver/src/core/xps_loop.c:26
//! ```
//!
//! is a `double free` in `loop_event_destroy()` at `/home/me/expserver/src/core/xps_loop.c:26`.

use crate::crash::{is_own_frame, shorten};

/// One reported memory error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryError {
    /// What it is, in words: `double free`, `use-after-free`, `stack buffer overflow`,
    /// `memory leak: 48 byte(s) in 1 allocation(s)`, `index 100000 out of bounds for type 'char [100000]'`.
    pub what: String,
    /// The function of the first stack frame in the program's own code, if the report has one.
    pub function: Option<String>,
    /// That frame's `FILE:LINE` (for UBSan, the line it reports).
    pub at: Option<String>,
    /// The report's first line, as printed (shortened).
    pub line: String,
}

impl MemoryError {
    /// `double free in loop_event_destroy() at core/xps_loop.c:26`, with paths under `base`
    /// made relative to it.
    pub fn describe(&self, base: Option<&std::path::Path>) -> String {
        let mut text = self.what.clone();
        if let Some(function) = &self.function {
            text.push_str(&format!(" in {function}()"));
        }
        if let Some(at) = &self.at {
            let base = base.and_then(|b| b.to_str()).map(|b| format!("{}/", b.trim_end_matches('/')));
            let at = base.as_deref().and_then(|b| at.strip_prefix(b)).unwrap_or(at);
            text.push_str(&format!(" at {at}"));
        }
        text
    }
}

/// Every memory error `text` reports, in order.
pub fn memory_errors(text: &str) -> Vec<MemoryError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((what, own_line)) = classify(line, &lines[i + 1..]) else { continue };
        let frame = lines[i + 1..].iter().take(60).map(|l| l.trim()).find(|l| is_own_frame(l)).and_then(parse_frame);
        let (function, at) = match (frame, own_line) {
            (Some((function, at)), _) => (Some(function), Some(at)),
            (None, at) => (None, at),
        };
        found.push(MemoryError { what, function, at, line: shorten(line.trim()) });
    }
    found
}

/// What a report's first line says, and the place it names itself (UBSan's `FILE:LINE:COL:`).
fn classify(line: &str, after: &[&str]) -> Option<(String, Option<String>)> {
    let line = line.trim();
    if let Some(rest) = line.split_once("ERROR: AddressSanitizer: ").map(|(_, r)| r) {
        return Some((asan_kind(rest), None));
    }
    if line.contains("ERROR: LeakSanitizer: detected memory leaks") {
        let summary = after.iter().find_map(|l| l.split_once("SUMMARY: AddressSanitizer: ").map(|(_, r)| r.trim()));
        let what = match summary.and_then(|s| s.strip_suffix('.')) {
            Some(s) => format!("memory leak: {}", s.replace(" leaked in ", " in ")),
            None => "memory leak".into(),
        };
        return Some((what, None));
    }
    if let Some((place, message)) = line.split_once(": runtime error: ") {
        // FILE:LINE:COL
        let at = place.rsplit_once(':').map_or(place, |(file_line, _)| file_line).to_string();
        return Some((message.trim().to_string(), Some(at)));
    }
    let glibc = [
        ("double free detected", "double free (found by the C library)"),
        ("free(): invalid pointer", "free() of a pointer malloc() did not return (found by the C library)"),
        ("malloc(): ", "heap corruption (found by the C library)"),
        ("stack smashing detected", "stack buffer overflow (stack smashing, found by the C library)"),
    ];
    if let Some((_, what)) = glibc.iter().find(|(marker, _)| line.contains(marker)) {
        return Some((what.to_string(), None));
    }
    for marker in ["Invalid read of size", "Invalid write of size", "Invalid free()"] {
        if let Some(at) = line.find(marker) {
            return Some((line[at..].trim_end_matches(" / delete / delete[] / realloc()").to_lowercase(), None));
        }
    }
    None
}

/// ASan's error kind in words, from what follows `ERROR: AddressSanitizer: `.
fn asan_kind(rest: &str) -> String {
    let token = rest.split_whitespace().next().unwrap_or(rest);
    match token {
        "attempting" if rest.contains("double-free") => "double free".into(),
        "attempting" => "free() of a pointer malloc() did not return".into(),
        "heap-use-after-free" => "use-after-free".into(),
        "SEGV" => "segmentation fault (a bad pointer)".into(),
        other => other.replace('-', " "),
    }
}

/// `#1 0x55 in func /path/file.c:26:5` or Valgrind's `at 0x10: func (file.c:26)`: the function
/// and `FILE:LINE`.
fn parse_frame(frame: &str) -> Option<(String, String)> {
    if let Some((_, rest)) = frame.split_once(" in ") {
        let (function, place) = rest.split_once(' ')?;
        let place = place.trim();
        // FILE:LINE:COL -> FILE:LINE
        let parts: Vec<&str> = place.rsplitn(3, ':').collect();
        let at = match parts.as_slice() {
            [col, line, file] if col.chars().all(|c| c.is_ascii_digit()) => format!("{file}:{line}"),
            _ => place.to_string(),
        };
        return Some((function.to_string(), at));
    }
    let (_, rest) = frame.split_once(": ")?;
    let (function, place) = rest.split_once(" (")?;
    Some((function.trim().to_string(), place.trim_end_matches(')').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_double_free_names_the_learners_function_and_line() {
        let text = "[INFO] main() : bye\n\
            =================================================================\n\
            ==27808==ERROR: AddressSanitizer: attempting double-free on 0x602000000010 in thread T0:\n    \
            #0 0x7f0d686b76a8 in __interceptor_free ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:52\n    \
            #1 0x56434500b196 in loop_event_destroy /home/me/xps/src/core/xps_loop.c:26\n    \
            #2 0x7f0d67c45249 in __libc_start_call_main ../sysdeps/nptl/libc_start_call_main.h:58\n";
        let errors = memory_errors(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].describe(Some(std::path::Path::new("/home/me/xps/src"))),
            "double free in loop_event_destroy() at core/xps_loop.c:26"
        );
    }

    #[test]
    fn ubsan_leaks_valgrind_and_glibc_reports_are_each_read() {
        let ubsan = "srv.c:20:11: runtime error: index 100000 out of bounds for type 'char [100000]'\n";
        assert_eq!(
            memory_errors(ubsan)[0].describe(None),
            "index 100000 out of bounds for type 'char [100000]' at srv.c:20"
        );
        let leak = "==9==ERROR: LeakSanitizer: detected memory leaks\n\nDirect leak of 48 byte(s) in 1 object(s) allocated from:\n    \
            #0 0x7f in __interceptor_malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69\n    \
            #1 0x55 in xps_connection_create /w/src/network/xps_connection.c:12:5\n\n\
            SUMMARY: AddressSanitizer: 48 byte(s) leaked in 1 allocation(s).\n";
        assert_eq!(
            memory_errors(leak)[0].describe(None),
            "memory leak: 48 byte(s) in 1 allocation(s) in xps_connection_create() at /w/src/network/xps_connection.c:12"
        );
        let valgrind = "==5== Invalid read of size 4\n==5==    at 0x10916B: handler (conn.c:42)\n==5==    by 0x1091: main (main.c:9)\n";
        assert_eq!(memory_errors(valgrind)[0].describe(None), "invalid read of size 4 in handler() at conn.c:42");
        assert_eq!(
            memory_errors("free(): double free detected in tcache 2\n")[0].what,
            "double free (found by the C library)"
        );
        assert!(memory_errors("[CLIENT MESSAGE] hello\n").is_empty());
    }
}
