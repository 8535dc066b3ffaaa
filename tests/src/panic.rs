//! A Rust panic of the code under test, as data: its message, where it happened, and the
//! frames of its backtrace.
//!
//! A server's panic comes as the standard report on its stderr (servers under test run with
//! `RUST_BACKTRACE=1`); an in-process check's panic comes to the harness's panic hook, which
//! captures a backtrace. Both give the same [`Panic`], from which the harness reads which of the
//! learner's functions panicked, reached a `todo!()`, or held a `RefCell` borrow.

/// One panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// Its message (`not yet implemented: xps_loop_run() -- write it ...`).
    pub message: String,
    /// `FILE:LINE` where it was raised, `./` removed.
    pub at: Option<String>,
    /// The backtrace's frames, innermost first (empty without a backtrace).
    pub frames: Vec<Frame>,
}

/// One frame of a backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function's path (`stage07::core::xps_loop::xps_loop_detach`, `...::{{closure}}`).
    pub path: String,
    /// `FILE:LINE`, `./` removed, when the frame has one.
    pub at: Option<String>,
}

impl Frame {
    /// The name of the function the frame is in: the last segment of its path that is not a
    /// closure (`xps_loop_run` for `stage06::xps_loop_run::{{closure}}`).
    pub fn function(&self) -> &str {
        let path = self.path.split('<').next().unwrap_or(&self.path);
        path.split("::").filter(|s| !s.is_empty() && !s.starts_with('{')).last().unwrap_or(path)
    }

    /// The frame's file and line, if it has both.
    pub fn file_line(&self) -> Option<(&str, usize)> {
        split_file_line(self.at.as_deref()?)
    }
}

impl Panic {
    /// The first standard panic report in `output`:
    ///
    /// ```text
    /// thread 'main' (12043) panicked at stage07/src/core/xps_loop.rs:201:9:
    /// RefCell already borrowed
    /// stack backtrace:
    ///    0: __rustc::rust_begin_unwind
    ///              at /rustc/.../library/std/src/panicking.rs:689:5
    ///   10: stage07::core::xps_loop::xps_loop_detach
    ///              at ./stage07/src/core/xps_loop.rs:201:9
    /// note: Some details are omitted, ...
    /// ```
    ///
    /// Only a line starting with `thread '` counts, so a client's message echoed by the server
    /// cannot pass for a panic.
    pub fn parse(output: &str) -> Option<Panic> {
        let mut lines = output.lines();
        let at = lines.by_ref().find_map(|line| {
            let (_, at) = line.strip_prefix("thread '")?.split_once(" panicked at ")?;
            Some(at.trim().trim_end_matches(':').to_string())
        })?;
        let mut message = Vec::new();
        let mut frames_text = String::new();
        let mut in_frames = false;
        for line in lines {
            if line.starts_with("note: ") || line.starts_with("thread '") {
                break;
            } else if in_frames {
                // The server's own log lines can come between the frames (stdout and stderr
                // arrive on pipes of their own): only the frames' indented lines count.
                if line.starts_with("  ") {
                    frames_text.push_str(line);
                    frames_text.push('\n');
                }
            } else if line == "stack backtrace:" {
                in_frames = true;
            } else if !is_log_line(line) {
                message.push(line);
            }
        }
        Some(Panic {
            message: message.join("\n").trim().to_string(),
            at: Some(clean_location(&at)),
            frames: parse_frames(&frames_text),
        })
    }

    /// A panic as the panic hook sees it: `location` is `FILE:LINE:COLUMN`, `backtrace` the text
    /// of a captured `std::backtrace::Backtrace`.
    pub fn from_hook(message: String, location: Option<String>, backtrace: &str) -> Panic {
        Panic { message, at: location.as_deref().map(clean_location), frames: parse_frames(backtrace) }
    }

    /// `MESSAGE at FILE:LINE`, the message cut to its first line.
    pub fn summary(&self) -> String {
        let message = self.message.lines().next().unwrap_or("(no message)");
        match &self.at {
            Some(at) => format!("{message} at {at}"),
            None => message.to_string(),
        }
    }

    /// A `todo!()` was reached.
    pub fn is_todo(&self) -> bool {
        self.message.starts_with("not yet implemented")
    }

    /// A `RefCell` was borrowed while another borrow of it was alive.
    pub fn is_borrow(&self) -> bool {
        self.message.contains("already borrowed") || self.message.contains("already mutably borrowed")
    }

    /// The name in a skeleton's `todo!("NAME() -- write it ...")` message.
    pub fn todo_name(&self) -> Option<&str> {
        let rest = self.message.strip_prefix("not yet implemented: ")?;
        let name = &rest[..rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len())];
        (!name.is_empty()).then_some(name)
    }
}

/// `FILE:LINE` from `./FILE:LINE:COLUMN` or `FILE:LINE`.
fn clean_location(at: &str) -> String {
    let at = at.trim().strip_prefix("./").unwrap_or(at.trim());
    match at.rsplit_once(':') {
        Some((file_line, column)) if file_line.contains(':') && column.chars().all(|c| c.is_ascii_digit()) => {
            file_line.to_string()
        }
        _ => at.to_string(),
    }
}

/// `(FILE, LINE)` of `FILE:LINE`.
pub fn split_file_line(at: &str) -> Option<(&str, usize)> {
    let (file, line) = at.rsplit_once(':')?;
    Some((file, line.parse().ok()?))
}

/// The frames of a backtrace's text (`  N: PATH` lines, each maybe followed by `at FILE:L:C`).
/// Whether `line` is one of the server's log lines (`[INFO] ...`, `[CLIENT MESSAGE] ...`),
/// which its stdout can put between the lines of a panic report on stderr.
fn is_log_line(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .is_some_and(|(level, _)| !level.is_empty() && level.chars().all(|c| c.is_ascii_uppercase() || c == ' '))
}

fn parse_frames(text: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(at) = trimmed.strip_prefix("at ") {
            if let Some(frame) = frames.last_mut()
                && frame.at.is_none()
            {
                frame.at = Some(clean_location(at));
            }
        } else if let Some((number, path)) = trimmed.split_once(": ")
            && number.chars().all(|c| c.is_ascii_digit())
            && !number.is_empty()
        {
            frames.push(Frame { path: path.trim().to_string(), at: None });
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "[INFO] listener_connection_handler() : new connection\n\
        thread 'main' (12043) panicked at /rustc/5980/library/std/src/thread/local.rs:757:38:\n\
        RefCell already borrowed\n\
        stack backtrace:\n   \
           0: __rustc::rust_begin_unwind\n             \
                     at /rustc/5980/library/std/src/panicking.rs:689:5\n   \
           9: std::thread::local::LocalKey<core::cell::RefCell<T>>::with_borrow_mut\n             \
                     at /rustc/5980/library/std/src/thread/local.rs:757:14\n  \
          10: stage06::network::xps_connection::xps_connection_destroy\n             \
                     at ./stage06/src/network/xps_connection.rs:75:5\n  \
          11: stage06::xps_loop_run::{{closure}}\n             \
                     at ./stage06/src/main.rs:140:17\n  \
          12: __rust_try\n\
        note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\n";

    #[test]
    fn a_report_gives_message_location_and_frames() {
        let panic = Panic::parse(REPORT).expect("a panic");
        assert_eq!(panic.message, "RefCell already borrowed");
        assert_eq!(panic.at.as_deref(), Some("/rustc/5980/library/std/src/thread/local.rs:757"));
        assert!(panic.is_borrow());
        assert_eq!(panic.frames.len(), 5);
        assert_eq!(panic.frames[2].function(), "xps_connection_destroy");
        assert_eq!(panic.frames[2].file_line(), Some(("stage06/src/network/xps_connection.rs", 75)));
        assert_eq!(panic.frames[3].function(), "xps_loop_run");
        assert_eq!(panic.frames[4].at, None);
        assert_eq!(panic.frames[1].function(), "LocalKey");
    }

    #[test]
    fn log_lines_between_the_report_s_lines_are_not_part_of_it() {
        // What a merged stdout and stderr can look like: the server's log lines arrive between
        // the report's lines.
        let mut lines: Vec<&str> = REPORT.lines().collect();
        lines.insert(3, "[CLIENT MESSAGE] message 1 from client 1");
        lines.insert(6, "[INFO] listener_connection_handler() : new connection");
        lines.insert(9, "[DEBUG] xps_connection_create() : created connection");
        let panic = Panic::parse(&lines.join("\n")).expect("a panic");
        assert_eq!(panic.message, "RefCell already borrowed");
        assert_eq!(panic.frames.len(), 5);
        assert_eq!(panic.frames[2].function(), "xps_connection_destroy");
        assert_eq!(panic.frames[3].function(), "xps_loop_run");
    }

    #[test]
    fn a_todo_without_backtrace_names_its_function() {
        let output = "thread 'main' panicked at stage06/src/network/xps_listener.rs:40:5:\n\
                      not yet implemented: xps_listener_create() -- write it: read the page\n\
                      note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        let panic = Panic::parse(output).unwrap();
        assert!(panic.is_todo());
        assert_eq!(panic.todo_name(), Some("xps_listener_create"));
        assert_eq!(
            panic.summary(),
            "not yet implemented: xps_listener_create() -- write it: read the page at stage06/src/network/xps_listener.rs:40"
        );
        assert!(panic.frames.is_empty());
    }

    #[test]
    fn client_text_is_not_a_panic() {
        assert_eq!(Panic::parse("[CLIENT MESSAGE] thread 'x' panicked at a.rs:1:2:\nboo\n"), None);
        assert_eq!(Panic::parse("[ERROR] main() : failed\n"), None);
    }
}
