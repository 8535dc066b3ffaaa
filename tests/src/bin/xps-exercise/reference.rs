//! Which commit holds the reference of a stage, identified by content and never taken on trust.
//!
//! `start` writes `.xps-exercise/stageNN.txt`, a small tracked file, with the commit it started
//! from and the git tree id of that commit's `stageNN/src`; it travels with the learner's
//! commits (push, clone elsewhere, and it is still there). Before any use the record is checked:
//! the commit must exist in this clone, its `stageNN/src` must be the recorded tree, and none of
//! its learner functions may be a `todo!()`. When it cannot be found (a shallow clone, rewritten
//! history) the commands that need it say so and refuse: they never fall back to `HEAD`, which
//! holds the learner's own code once they commit.

use crate::manifest::Manifest;
use crate::run::Ctx;
use crate::skeleton::is_todo;
use crate::workspace;
use xps_tests::rust_src::find_fn;

/// The record's path, relative to the workspace root.
pub fn record_path(stage: u8) -> String {
    format!(".xps-exercise/stage{stage:02}.txt")
}

/// Where a stage's reference is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The stage was started: the recorded commit, verified.
    Recorded(String),
    /// The stage was never started: `HEAD`'s stage folder is the reference (no `todo!()`).
    Head(String),
}

impl Reference {
    /// The commit.
    pub fn commit(&self) -> &str {
        match self {
            Reference::Recorded(commit) | Reference::Head(commit) => commit,
        }
    }

    /// Its short form, for messages.
    pub fn short(&self) -> &str {
        let commit = self.commit();
        &commit[..commit.len().min(12)]
    }
}

/// The record `start` wrote, if there is one: (commit, tree).
pub fn recorded(ctx: &Ctx, stage: u8) -> Option<(String, String)> {
    let text = std::fs::read_to_string(ctx.path(&record_path(stage))).ok()?;
    let field =
        |key: &str| text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(|v| v.trim().to_string()));
    Some((field("commit")?, field("tree")?))
}

/// Writes the record for a stage started from `commit` (whose stage folder is `tree`), and
/// stages it for the learner's next commit.
pub fn record(ctx: &Ctx, m: &Manifest, commit: &str, tree: &str) -> Result<(), String> {
    let path = record_path(m.stage);
    if let Some(dir) = ctx.path(&path).parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = format!(
        "# Written by `scripts/exercise.sh start {}`: the reference {} was started from. Commit it with\n\
         # your work: hints, compare, reset and solution find the reference through it, in any clone.\n\
         commit: {commit}\ntree: {tree}\n",
        m.stage,
        m.src_dir()
    );
    workspace::write(ctx, &path, &text)?;
    let out = ctx.git(&["add", "--", &path]);
    if out.ok() { Ok(()) } else { Err(format!("git add {path}: {}", out.stderr.trim())) }
}

/// Removes the record (the selftest's way back to a fresh clone).
pub fn forget(ctx: &Ctx, stage: u8) {
    let path = record_path(stage);
    let _ = ctx.git(&["rm", "-q", "--cached", "--ignore-unmatch", "--", &path]);
    let _ = std::fs::remove_file(ctx.path(&path));
}

/// The reference of `m`'s stage, verified; `Err` says why it cannot be used.
pub fn find(ctx: &Ctx, m: &Manifest) -> Result<Reference, String> {
    if !workspace::is_git(ctx) {
        return Err(format!(
            "{} is not a git clone (downloaded as a zip?): this command needs the reference from git's history. \
             Without git, `check`, `status` and hints 1 and 2 work; clone the repository to get the rest",
            ctx.root.display()
        ));
    }
    let n = m.stage;
    let Some((commit, tree)) = recorded(ctx, n) else {
        let head = ctx.git(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).stdout.trim().to_string();
        return match todo_at(ctx, m, &head) {
            None => Ok(Reference::Head(head)),
            Some(name) => Err(format!(
                "stage {n} has no recorded reference ({} is missing) and the committed {name}() is todo!(): \
                 HEAD is not the reference. Restore {} from the commit that added it (git log -- {})",
                record_path(n),
                record_path(n),
                record_path(n)
            )),
        };
    };
    let short = &commit[..commit.len().min(12)];
    let exists = ctx.git(&["cat-file", "-e", &format!("{commit}^{{commit}}")]).ok();
    if !exists {
        return Err(format!(
            "the reference stage {n} was started from, commit {short} (recorded in {}), is not in this clone: \
             a shallow clone (`git fetch --unshallow` brings it) or rewritten history. This command needs it \
             and will not take your own commits for the reference",
            record_path(n)
        ));
    }
    if workspace::tree_id(ctx, &commit, &m.src_dir()).as_deref() != Some(tree.as_str()) {
        return Err(format!(
            "commit {short}'s {} is not the one {} recorded: the record was edited, or history rewritten. \
             This command will not guess another reference",
            m.src_dir(),
            record_path(n)
        ));
    }
    if let Some(name) = todo_at(ctx, m, &commit) {
        return Err(format!(
            "commit {short}, recorded in {}, is not the reference: its {name}() is todo!()",
            record_path(n)
        ));
    }
    Ok(Reference::Recorded(commit))
}

/// The first learner function that is `todo!()` (or missing) at `rev`, if any.
pub fn todo_at(ctx: &Ctx, m: &Manifest, rev: &str) -> Option<String> {
    m.functions
        .iter()
        .find(|f| {
            workspace::show(ctx, rev, &f.file)
                .ok()
                .and_then(|text| find_fn(&text, &f.name).map(|span| is_todo(span.body(&text))))
                .unwrap_or(true)
        })
        .map(|f| f.name.clone())
}
