//! What a check reports: a [`Failure`] is a typed value until it is printed.
//!
//! A check builds its failure from what it observed: one summary line, what it sent, expected
//! and received, the page function it blames first and why, a hint, and the server's log tail.
//! The harness ([`crate::harness`]) may then put a better-founded blame first (a `todo!()` the
//! check reached, a panic in the learner's code, a `RefCell` borrow held across a call, a call
//! that never returned). Front-ends print it ([`Failure`]'s `Display`, the exercise tool's Next
//! step, xps-check's report, JUnit) or store it ([`crate::record`]); none of them parses it
//! back out of printed text.

use std::fmt;

use crate::panic::Panic;
use crate::roles::Role;

/// The function a failure is blamed on first, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blame {
    /// The function: a page role, resolved to the stage's name when printed
    /// ([`Blame::function`]), or a name found in the code (a panic's enclosing function).
    pub target: Target,
    /// Why, in one sentence a learner can act on.
    pub why: String,
    /// How the blame was found, which also ranks it: the harness keeps the strongest.
    pub by: BlamedBy,
    /// Where to look, `FILE:LINE`, when known (the panic's line, or the function's first line).
    pub at: Option<String>,
}

/// What a blame points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A function the page defines, named by what it does; its name depends on the stage.
    Role(Role),
    /// A function found in the code by name.
    Named(String),
}

impl From<Role> for Target {
    fn from(role: Role) -> Target {
        Target::Role(role)
    }
}

/// How a blame was found, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlamedBy {
    /// The check reached a `todo!()` in it.
    Todo,
    /// It holds a `RefCell` borrow another function then tried to take.
    Borrow,
    /// It panicked.
    Panic,
    /// It was called and never returned within the check's time limit.
    Hang,
    /// What the check observed points to it.
    Check,
}

impl Blame {
    /// Blames `target`, which was called and never returned; `why` says where to look.
    pub fn hang(target: impl Into<Target>, why: impl Into<String>) -> Blame {
        Blame { target: target.into(), why: why.into(), by: BlamedBy::Hang, at: None }
    }

    /// Blames the page function `function`, which the check called and which never returned.
    pub fn never_returned(function: &str) -> Blame {
        Blame::hang(
            Target::Named(function.to_string()),
            "it was called and never returned: look for a loop that never ends or a call that blocks",
        )
    }

    /// The function's name for `stage` (6 or 7): the page's name in that stage.
    pub fn function(&self, stage: u8) -> String {
        match &self.target {
            Target::Role(role) => role.function(stage).to_string(),
            Target::Named(name) => name.clone(),
        }
    }
}

/// A failed check: everything a learner needs to see what went wrong and where to look. Its
/// fields are those of [`Findings`], reached through `Deref`; it is boxed so that a check's
/// `Result<(), Failure>` stays one pointer wide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure(Box<Findings>);

/// What a [`Failure`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// What went wrong, in one line.
    pub summary: String,
    /// What the check sent, escaped.
    pub sent: Option<String>,
    /// What it expected.
    pub expected: Option<String>,
    /// What it received.
    pub received: Option<String>,
    /// Other `label: value` lines (setup, port, seed, ...), in order.
    pub details: Vec<(String, String)>,
    /// The function to look at first.
    pub blame: Option<Blame>,
    /// What else to look at.
    pub hint: String,
    /// The last lines the server printed (empty for in-process checks).
    pub log_tail: String,
    /// A panic in the code under test, if there was one.
    pub panic: Option<Panic>,
    /// Lines of a crash or memory error report (sanitizers, Valgrind), with the first frame in
    /// the program's own code.
    pub crash: Vec<String>,
    /// Set when what the check saw is what a later stage of the course does, not a bug (a stage
    /// 7 build that does not stall in Experiment #1 has stage 8's change in already): the note
    /// a front-end that checks any build (`xps-check`) prints instead of a failure. `cargo test`
    /// on this workspace's stages still fails: they follow the page.
    pub ahead_of_the_page: Option<String>,
    /// Set when the machine, not the code, made the check fail (another program holds the
    /// ports it needs): what to do about it. Such a failure blames no function.
    pub not_the_code: Option<String>,
}

impl std::ops::Deref for Failure {
    type Target = Findings;
    fn deref(&self) -> &Findings {
        &self.0
    }
}

impl std::ops::DerefMut for Failure {
    fn deref_mut(&mut self) -> &mut Findings {
        &mut self.0
    }
}

impl From<Findings> for Failure {
    fn from(findings: Findings) -> Failure {
        Failure(Box::new(findings))
    }
}

impl Failure {
    /// A failure with no details yet.
    pub fn new(summary: impl Into<String>) -> Self {
        Failure::from(Findings { summary: summary.into(), ..Findings::default() })
    }

    /// Adds one `label: value` line; `sent`, `expected` and `received` fill their own fields.
    pub fn detail(mut self, label: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        match label {
            "sent" if self.sent.is_none() => self.sent = Some(value),
            "expected" if self.expected.is_none() => self.expected = Some(value),
            "received" if self.received.is_none() => self.received = Some(value),
            _ => self.details.push((label.to_string(), value)),
        }
        self
    }

    /// Says what else to look at.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    /// Marks the failure as the machine's doing, not the code's, with what to do about it (see
    /// [`Findings::not_the_code`]).
    pub fn not_the_code(mut self, what_to_do: impl Into<String>) -> Self {
        self.not_the_code = Some(what_to_do.into());
        self
    }

    /// Marks what the check saw as a later stage's behaviour, with the note to print instead of
    /// a failure for any build (see [`Findings::ahead_of_the_page`]).
    pub fn ahead_of_the_page(mut self, note: impl Into<String>) -> Self {
        self.ahead_of_the_page = Some(note.into());
        self
    }

    /// Blames the page function `role` (the check's own reading of what it observed), unless a
    /// blame is already there.
    pub fn blame(self, role: Role, why: impl Into<String>) -> Self {
        self.blame_with(Blame { target: Target::Role(role), why: why.into(), by: BlamedBy::Check, at: None })
    }

    /// Puts `blame` first if it is stronger than the one there (see [`BlamedBy`]).
    pub fn blame_with(mut self, blame: Blame) -> Self {
        if self.blame.as_ref().is_none_or(|old| blame.by < old.by) {
            self.blame = Some(blame);
        }
        self
    }

    /// The role this failure blames, if it blames a page role.
    pub fn blamed_role(&self) -> Option<Role> {
        match self.blame.as_ref()?.target {
            Target::Role(role) => Some(role),
            Target::Named(_) => None,
        }
    }

    /// Writes the failure for a reader, with the blamed function named as in `stage`.
    pub fn render(&self, stage: u8) -> String {
        Rendered(self, stage).to_string()
    }
}

/// A failure as printed for one stage.
struct Rendered<'a>(&'a Failure, u8);

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (failure, stage) = (self.0, self.1);
        writeln!(f, "{}", failure.summary)?;
        if let Some(panic) = &failure.panic {
            writeln!(f, "  {:<10}{}", "panicked:", panic.summary())?;
        }
        for line in &failure.crash {
            writeln!(f, "  {:<10}{line}", "crash:")?;
        }
        let exchange = [("sent", &failure.sent), ("expected", &failure.expected), ("received", &failure.received)];
        for (label, value) in exchange {
            if let Some(value) = value {
                writeln!(f, "  {:<10}{value}", format!("{label}:"))?;
            }
        }
        for (label, value) in &failure.details {
            writeln!(f, "  {:<10}{value}", format!("{label}:"))?;
        }
        if let Some(what_to_do) = &failure.not_the_code {
            writeln!(f, "  {:<10}{what_to_do}", "machine:")?;
        }
        if let Some(blame) = &failure.blame {
            let at = blame.at.as_deref().map(|at| format!(" at {at}")).unwrap_or_default();
            writeln!(f, "  {:<10}{}(){at}: {}", "fix:", blame.function(stage), blame.why)?;
        }
        if !failure.hint.is_empty() {
            writeln!(f, "  look at:  {}", failure.hint)?;
        }
        if !failure.log_tail.is_empty() {
            writeln!(f, "server output (last lines):")?;
            for line in failure.log_tail.lines() {
                writeln!(f, "  | {line}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Failure {
    /// As [`Failure::render`] for stage 7's names; front-ends that know the stage call `render`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Rendered(self, 7), f)
    }
}

impl std::error::Error for Failure {}

/// Bytes as a quoted, escaped string (`"ab\x00\n"`), cut in the middle when long.
pub fn escape(bytes: &[u8]) -> String {
    const KEEP: usize = 60;
    if bytes.len() <= 2 * KEEP {
        format!("\"{}\"", bytes.escape_ascii())
    } else {
        format!(
            "\"{}\" ... ({} bytes) ... \"{}\"",
            bytes[..KEEP].escape_ascii(),
            bytes.len(),
            bytes[bytes.len() - KEEP..].escape_ascii()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_expected_received_are_fields_and_print_in_that_order() {
        let failure = Failure::new("client 1 on port 8001 got a wrong reply")
            .detail("received", "\"hello\\n\"")
            .detail("sent", "\"hello\\n\"")
            .detail("expected", "\"olleh\\n\"")
            .detail("seed", "42")
            .blame(Role::ReadHandler, "the reply is built there");
        assert_eq!(failure.sent.as_deref(), Some("\"hello\\n\""));
        let text = failure.render(6);
        let order: Vec<usize> = ["sent:", "expected:", "received:", "seed:", "fix:"]
            .iter()
            .map(|label| text.find(label).unwrap_or_else(|| panic!("{label} in {text}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("fix:      xps_connection_read_handler(): the reply is built there"), "{text}");
        assert!(failure.render(7).contains("connection_loop_read_handler()"), "{}", failure.render(7));
    }

    #[test]
    fn a_stronger_blame_replaces_a_weaker_one_and_not_the_other_way_round() {
        let todo =
            Blame { target: Target::Named("xps_loop_run".into()), why: "todo".into(), by: BlamedBy::Todo, at: None };
        let failure = Failure::new("x").blame(Role::ReadHandler, "observed").blame_with(todo.clone());
        assert_eq!(failure.blame, Some(todo.clone()));
        let failure = failure.blame(Role::ListenerCreate, "weaker");
        assert_eq!(failure.blame, Some(todo));
    }
}
