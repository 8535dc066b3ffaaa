//! The course's logger (`utils/xps_logger.c`), built on the `log` facade and `env_logger`.
//!
//! The C calls `logger(LOG_INFO, "main()", "Server listening on port %u", port)`. In Rust the
//! same call is a `log` macro whose *target* is the calling function's name:
//!
//! ```
//! shared::xps_logger::init();
//! log::info!(target: "main()", "Server listening on port {}", 8001);
//! // prints: [INFO] main() : Server listening on port 8001
//! ```
//!
//! - One line per record, on stdout, written and flushed as a whole.
//! - Levels print as the course prints them: `ERROR`, `WARNING` (`log::warn!`), `INFO`, `DEBUG`.
//! - DEBUG records only when the environment variable `XPS_DEBUG` is `1`. When it is not,
//!   `log::debug!` returns before it formats anything, so DEBUG lines cost nothing on the
//!   hot path.
//! - Colours as in the course (level on a coloured background, function name in green), only
//!   when stdout is a terminal, so pipes and files get the plain text the tests read.

use std::io::{IsTerminal, Write};

use log::{Level, LevelFilter};

/// The environment variable that turns DEBUG lines on, as in the course.
pub const XPS_DEBUG: &str = "XPS_DEBUG";

const RESET: &str = "\x1b[0m";
const GREEN: &str = "\x1b[32m";

/// The level word the course prints, and its colour.
fn level_style(level: Level) -> (&'static str, &'static str) {
    match level {
        Level::Error => ("ERROR", "\x1b[41m"),  // red background
        Level::Warn => ("WARNING", "\x1b[43m"), // yellow background
        Level::Info => ("INFO", "\x1b[44m"),    // blue background
        Level::Debug => ("DEBUG", "\x1b[35m"),  // magenta text
        Level::Trace => ("DEBUG", "\x1b[35m"),  // the course has no TRACE; print it as DEBUG
    }
}

/// Whether `XPS_DEBUG` asks for DEBUG lines (it must be exactly `1`, as in the course).
pub fn debug_enabled() -> bool {
    std::env::var_os(XPS_DEBUG).is_some_and(|v| v == "1")
}

/// Writes one record as the course's logger prints it. `color` adds the ANSI colours.
pub fn write_line(
    out: &mut dyn Write,
    level: Level,
    function: &str,
    message: &std::fmt::Arguments<'_>,
    color: bool,
) -> std::io::Result<()> {
    let (word, style) = level_style(level);
    if color {
        writeln!(out, "{style}[{word}]{RESET} {GREEN}{function}{RESET} : {message}")
    } else {
        writeln!(out, "[{word}] {function} : {message}")
    }
}

/// Installs the logger. Call it once at the start of `main`; calling it again does nothing
/// (it never panics), which lets unit tests that start servers in one process call it freely.
pub fn init() {
    let color = std::io::stdout().is_terminal();
    let level = if debug_enabled() { LevelFilter::Debug } else { LevelFilter::Info };
    let result = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stdout)
        .format(move |buf, record| write_line(buf, record.level(), record.target(), record.args(), color))
        .try_init();
    // A second `init` finds a logger already set: that is fine, keep the first one.
    drop(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: Level, function: &str, message: std::fmt::Arguments<'_>, color: bool) -> String {
        let mut out = Vec::new();
        write_line(&mut out, level, function, &message, color).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_line_matches_the_course() {
        let got = line(Level::Info, "main()", format_args!("Server listening on port {}", 8001), false);
        assert_eq!(got, "[INFO] main() : Server listening on port 8001\n");
        let got = line(Level::Warn, "sigint_handler()", format_args!("SIGINT received"), false);
        assert_eq!(got, "[WARNING] sigint_handler() : SIGINT received\n");
    }

    #[test]
    fn coloured_line_colours_level_and_function() {
        let got = line(Level::Error, "f()", format_args!("x"), true);
        assert_eq!(got, "\x1b[41m[ERROR]\x1b[0m \x1b[32mf()\x1b[0m : x\n");
    }

    #[test]
    fn init_twice_does_not_panic() {
        init();
        init();
        log::info!(target: "tests()", "logger initialised twice");
    }
}
