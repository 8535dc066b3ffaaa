//! Which function to look at first, from what a failed check observed.
//!
//! A check blames the page function its observation points to ([`Failure::blame`]). Stronger
//! evidence comes first ([`BlamedBy`]): the `todo!()` the check reached; a `RefCell` borrow held
//! by a caller while a callee borrows again (the function that holds it); any other panic (the
//! function it happened in, its `FILE:LINE` mapped to the enclosing `fn`); a call that never
//! returned. Every blame is then given a place, `FILE:LINE`, in the stage's sources when they
//! are at hand (a learner's Rust stage), and named as the build names it (a C build of the course
//! uses the page's names, see [`Role::c_function`]).

use std::path::{Path, PathBuf};

use crate::panic::{Panic, split_file_line};
use crate::report::{Blame, BlamedBy, Failure, Target};
use crate::roles::Role;
use crate::rust_src::{all_fns, enclosing_fn, find_fn};

/// A stage's Rust sources: the workspace root and the stage.
#[derive(Debug, Clone)]
pub struct Source {
    root: PathBuf,
    stage: u8,
}

impl Source {
    /// The sources of `stage` in the workspace that holds the current directory (a test runs
    /// in its package's folder), if there is one.
    pub fn find(stage: u8) -> Option<Source> {
        let root = crate::scratch::workspace_root()?;
        root.join(format!("stage0{stage}/src")).is_dir().then_some(Source { root, stage })
    }

    /// The sources of `stage` under the workspace `root`.
    pub fn at(root: &Path, stage: u8) -> Source {
        Source { root: root.to_path_buf(), stage }
    }

    /// `file` as panics and backtraces give it, relative to the workspace root: `./` removed,
    /// the root removed from an absolute path, and a path relative to the stage's package
    /// (`src/main.rs`, as a backtrace's debug info may give it) put under `stageNN/`.
    fn normalize(&self, file: &str) -> String {
        let file = file.strip_prefix("./").unwrap_or(file);
        let file = Path::new(file).strip_prefix(&self.root).map_or(file, |rel| rel.to_str().unwrap_or(file));
        match file.strip_prefix("src/") {
            Some(rest) => format!("stage0{}/src/{rest}", self.stage),
            None => file.to_string(),
        }
    }

    /// Whether `file` (as `Source::normalize` makes it) is one of the stage's own source
    /// files: `stageNN/src/...`, not a test file compiled into it.
    pub fn is_stage_file(&self, file: &str) -> bool {
        file.starts_with(&format!("stage0{}/src/", self.stage)) && !file.contains("/../")
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(self.normalize(file))).ok()
    }

    /// The stage's source files, relative to the root, in a stable order.
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    walk(&path, root, out);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && let Ok(rel) = path.strip_prefix(root)
                {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.root.join(format!("stage0{}/src", self.stage)), &self.root, &mut files);
        files
    }

    /// `FILE:LINE` of `fn function` in the stage's sources.
    pub fn locate(&self, function: &str) -> Option<String> {
        self.files().into_iter().find_map(|file| {
            let text = self.read(&file)?;
            let span = find_fn(&text, function)?;
            Some(format!("{file}:{}", span.line(&text)))
        })
    }

    /// The function enclosing `FILE:LINE` of the stage's sources, with that place
    /// (`stageNN/src/FILE:LINE`).
    fn function_at(&self, file: &str, line: usize) -> Option<(String, String)> {
        let file = self.normalize(file);
        if !self.is_stage_file(&file) {
            return None;
        }
        let text = self.read(&file)?;
        let (name, _) = enclosing_fn(&text, line)?;
        Some((name, format!("{file}:{line}")))
    }
}

/// How the build under test names the page's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// This workspace's Rust stage (or a learner's version of it).
    Rust,
    /// A C build of the course.
    C,
}

/// What the harness knows when it resolves a failure's blame.
pub struct Evidence<'a> {
    /// Panics of the code under test during the check (in-process: caught by the panic hook;
    /// a server's is already in the failure).
    pub panics: &'a [Panic],
    /// The function the check was calling when its time ran out.
    pub hung_in: Option<&'a str>,
    /// The check's default blame, when nothing better is known.
    pub default: Option<Role>,
}

/// Puts the best-founded blame first on `failure`, gives it a place, and names it as `build`
/// names the page's functions.
pub fn resolve(
    mut failure: Failure,
    evidence: &Evidence<'_>,
    stage: u8,
    source: Option<&Source>,
    build: Build,
) -> Failure {
    let panics: Vec<Panic> = failure.panic.iter().chain(evidence.panics).cloned().collect();
    for panic in &panics {
        if let Some(blame) = source.and_then(|s| from_panic(panic, s)) {
            failure = failure.blame_with(blame);
        } else if let Some(name) = panic.todo_name() {
            let todo = Blame { target: Target::Named(name.into()), why: TODO_WHY.into(), by: BlamedBy::Todo, at: None };
            failure = failure.blame_with(todo);
        }
    }
    if failure.panic.is_none() {
        failure.panic = evidence.panics.first().cloned();
    }
    if let Some(function) = evidence.hung_in {
        failure = failure.blame_with(Blame::never_returned(function));
    }
    if failure.blame.is_none()
        && failure.not_the_code.is_none()
        && let Some(role) = evidence.default
    {
        failure = failure.blame(role, "the check exercises it first");
    }
    if let Some(blame) = failure.blame.as_mut() {
        if build == Build::C
            && let Target::Role(role) = blame.target
        {
            blame.target = Target::Named(role.c_function(stage).to_string());
        }
        if blame.at.is_none() {
            blame.at = source.and_then(|s| s.locate(&blame.function(stage)));
        }
    }
    failure
}

const TODO_WHY: &str = "still todo!(): the check reached it";

/// The blame a panic's place and backtrace give, if they are in the stage's own code.
fn from_panic(panic: &Panic, source: &Source) -> Option<Blame> {
    // The stage's own frames, innermost first: (function, file, line).
    let mut own: Vec<(String, String, usize)> = Vec::new();
    let places = panic.at.iter().chain(panic.frames.iter().filter_map(|f| f.at.as_ref()));
    for (file, line) in places.filter_map(|at| split_file_line(at)) {
        if let Some((name, place)) = source.function_at(file, line)
            && !own.iter().any(|(_, f, l)| format!("{f}:{l}") == place)
        {
            let file = place.rsplit_once(':').map_or(place.clone(), |(f, _)| f.to_string());
            own.push((name, file, line));
        }
    }
    let (first, file, line) = own.first()?.clone();
    let at = Some(format!("{file}:{line}"));
    if panic.is_todo() {
        return Some(Blame { target: Target::Named(first), why: TODO_WHY.into(), by: BlamedBy::Todo, at });
    }
    if panic.is_borrow() {
        return Some(borrow_holder(&own, source));
    }
    let message = panic.message.lines().next().unwrap_or_default();
    Some(Blame { target: Target::Named(first), why: format!("it panicked: {message}"), by: BlamedBy::Panic, at })
}

/// For a `RefCell` "already borrowed" panic: the caller that holds the other borrow of the same
/// cell while it calls on (found by the cell's name in its body), else the innermost function.
fn borrow_holder(own: &[(String, String, usize)], source: &Source) -> Blame {
    let (callee, file, line) = &own[0];
    let cell = source.read(file).and_then(|text| text.lines().nth(line - 1).and_then(borrowed_cell));
    let holder = cell.as_deref().and_then(|cell| {
        own[1..].iter().find(|(name, file, _)| {
            source.read(file).is_some_and(|text| {
                all_fns(&text)
                    .into_iter()
                    .filter(|(n, _)| n == name)
                    .any(|(_, span)| BORROWS.iter().any(|b| span.body(&text).contains(&format!("{cell}{b}"))))
            })
        })
    });
    let what = cell.as_deref().map_or("a RefCell".to_string(), |cell| format!("`{cell}` (a RefCell)"));
    match holder {
        Some((name, file, line)) => Blame {
            target: Target::Named(name.clone()),
            why: format!(
                "it holds a borrow of {what} while it calls on, and {callee}() borrows it again (\"already \
                 borrowed\"): copy what you need out of the borrow, drop it, then call"
            ),
            by: BlamedBy::Borrow,
            at: Some(format!("{file}:{line}")),
        },
        None => Blame {
            target: Target::Named(callee.clone()),
            why: format!(
                "it borrows {what} while a borrow of it is still alive (\"already borrowed\"): copy what you \
                 need out of the first borrow and drop it before borrowing again or calling on"
            ),
            by: BlamedBy::Borrow,
            at: Some(format!("{file}:{line}")),
        },
    }
}

/// The ways code takes a `RefCell` borrow, after the cell's name.
const BORROWS: [&str; 4] = [".borrow()", ".borrow_mut()", ".with_borrow(", ".with_borrow_mut("];

/// The name of the cell a line of code borrows: `events` in `loop_.events.borrow_mut()[i]`,
/// `CONNECTIONS` in `CONNECTIONS.with_borrow_mut(|c| ...)`.
fn borrowed_cell(line: &str) -> Option<String> {
    let at = BORROWS.iter().filter_map(|b| line.find(b)).min()?;
    let before = &line[..at];
    let name: String = before.chars().rev().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then(|| name.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borrowed_cell_is_the_name_before_the_borrow() {
        assert_eq!(
            borrowed_cell("    if let Some(e) = loop_.events.borrow_mut()[index].take() {").as_deref(),
            Some("events")
        );
        assert_eq!(borrowed_cell("CONNECTIONS.with_borrow_mut(|c| c.push(x));").as_deref(), Some("CONNECTIONS"));
        assert_eq!(borrowed_cell("let x = 1;"), None);
    }

    fn scratch(files: &[(&str, &str)]) -> (PathBuf, Source) {
        let root =
            std::env::temp_dir().join(format!("xps-blame-{}-{:?}", std::process::id(), std::thread::current().id()));
        for (file, text) in files {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let source = Source::at(&root, 7);
        (root, source)
    }

    #[test]
    fn a_borrow_panic_blames_the_caller_that_holds_the_borrow() {
        let loop_rs = "fn xps_loop_detach(l: &L) {\n    l.events.borrow_mut().clear();\n}\n\
                       fn handle_epoll_events(l: &L) {\n    let events = l.events.borrow();\n    cb(l);\n}\n";
        let conn_rs =
            "fn connection_loop_read_handler(c: &C) {\n    let b = c.buff.borrow_mut();\n    xps_loop_detach(l);\n}\n";
        let (root, source) =
            scratch(&[("stage07/src/core/xps_loop.rs", loop_rs), ("stage07/src/network/xps_connection.rs", conn_rs)]);
        let report = "thread 'main' (1) panicked at stage07/src/core/xps_loop.rs:2:14:\nRefCell already borrowed\n\
                      stack backtrace:\n   0: core::cell::panic_already_borrowed\n  \
                      1: stage07::core::xps_loop::xps_loop_detach\n             at ./stage07/src/core/xps_loop.rs:2:14\n  \
                      2: stage07::network::xps_connection::connection_loop_read_handler\n             at ./stage07/src/network/xps_connection.rs:3:5\n  \
                      3: stage07::core::xps_loop::handle_epoll_events\n             at ./stage07/src/core/xps_loop.rs:6:5\n";
        let mut failure = Failure::new("no reply");
        failure.panic = Panic::parse(report);
        let failure =
            resolve(failure, &Evidence { panics: &[], hung_in: None, default: None }, 7, Some(&source), Build::Rust);
        let blame = failure.blame.clone().unwrap();
        let _ = std::fs::remove_dir_all(root);
        assert_eq!(blame.target, Target::Named("handle_epoll_events".into()), "{}", blame.why);
        assert_eq!(blame.by, BlamedBy::Borrow);
        assert_eq!(blame.at.as_deref(), Some("stage07/src/core/xps_loop.rs:6"));
        assert!(blame.why.contains("`events`") && blame.why.contains("xps_loop_detach()"), "{}", blame.why);
    }

    #[test]
    fn a_todo_blames_its_function_and_a_check_blame_gets_a_place() {
        let src = "fn main() {\n}\n\nfn xps_loop_run(e: i32) {\n    todo!(\"xps_loop_run() -- write it\")\n}\n";
        let (root, source) = scratch(&[("stage07/src/main.rs", src)]);
        let todo = Panic::parse(
            "thread 'main' panicked at stage07/src/main.rs:5:5:\nnot yet implemented: xps_loop_run() -- write it\n",
        );
        let mut failure = Failure::new("x").blame(Role::ReadHandler, "observed");
        failure.panic = todo;
        let failure =
            resolve(failure, &Evidence { panics: &[], hung_in: None, default: None }, 7, Some(&source), Build::Rust);
        let blame = failure.blame.clone().unwrap();
        assert_eq!((blame.target, blame.by), (Target::Named("xps_loop_run".into()), BlamedBy::Todo));
        assert_eq!(blame.at.as_deref(), Some("stage07/src/main.rs:5"));

        let observed = Failure::new("x").blame(Role::Main, "observed");
        let observed =
            resolve(observed, &Evidence { panics: &[], hung_in: None, default: None }, 7, Some(&source), Build::Rust);
        let _ = std::fs::remove_dir_all(root);
        assert_eq!(observed.blame.clone().unwrap().at.as_deref(), Some("stage07/src/main.rs:1"));
    }

    #[test]
    fn a_c_build_is_told_the_pages_names_and_no_place() {
        let failure = Failure::new("x").blame(Role::Dispatch, "observed");
        let failure = resolve(failure, &Evidence { panics: &[], hung_in: None, default: None }, 7, None, Build::C);
        let blame = failure.blame.clone().unwrap();
        assert_eq!((blame.target, blame.at), (Target::Named("xps_loop_run".into()), None));
    }
}
