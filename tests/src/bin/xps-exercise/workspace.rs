//! The learner's clone: the working tree, the recorded reference commit, the backups.

use std::fs;
use std::path::{Path, PathBuf};

use crate::manifest::{Function, Manifest};
use crate::run::Ctx;
use crate::skeleton::is_todo;
use xps_tests::rust_src::find_fn;

/// `REV:./PATH`: git reads a path that starts with `./` relative to the folder it runs in, the
/// workspace root (`git -C ROOT`), so every path works whether the workspace is a repository of
/// its own or a subfolder of a bigger one.
fn at(rev: &str, path: &str) -> String {
    format!("{rev}:./{path}")
}

/// `git show REV:PATH` (`PATH` relative to the workspace root).
pub fn show(ctx: &Ctx, rev: &str, path: &str) -> Result<String, String> {
    let out = ctx.git(&["show", &at(rev, path)]);
    if out.ok() { Ok(out.stdout) } else { Err(format!("git show {}: {}", at(rev, path), out.stderr.trim())) }
}

/// The tree id of `dir` at `rev`.
pub fn tree_id(ctx: &Ctx, rev: &str, dir: &str) -> Option<String> {
    let out = ctx.git(&["rev-parse", "--verify", "--quiet", &at(rev, dir)]);
    out.ok().then(|| out.stdout.trim().to_string())
}

/// `git status --porcelain` lines for `dir` (changed, new or deleted files).
pub fn dirty(ctx: &Ctx, dir: &str) -> Result<Vec<String>, String> {
    let out = ctx.git(&["status", "--porcelain", "--", dir]);
    if out.ok() {
        Ok(out.stdout.lines().map(str::to_string).collect())
    } else {
        Err(format!("git status failed: {}", out.stderr.trim()))
    }
}

/// Whether the workspace is a git clone.
pub fn is_git(ctx: &Ctx) -> bool {
    ctx.git(&["rev-parse", "--verify", "--quiet", "HEAD"]).ok()
}

/// A file of the working tree.
pub fn read(ctx: &Ctx, path: &str) -> Result<String, String> {
    fs::read_to_string(ctx.path(path)).map_err(|e| format!("cannot read {path}: {e}"))
}

/// Writes a file of the working tree.
pub fn write(ctx: &Ctx, path: &str, text: &str) -> Result<(), String> {
    fs::write(ctx.path(path), text).map_err(|e| format!("cannot write {path}: {e}"))
}

/// The folder for the tool's own files inside `.git` (never in the working tree).
pub fn git_path(ctx: &Ctx, name: &str) -> Result<PathBuf, String> {
    let out = ctx.git(&["rev-parse", "--git-path", &format!("xps-exercise/{name}")]);
    if !out.ok() {
        return Err(format!("git rev-parse --git-path failed: {}", out.stderr.trim()));
    }
    let path = PathBuf::from(out.stdout.trim());
    Ok(if path.is_absolute() { path } else { ctx.root.join(path) })
}

/// Every file under `dir` of the working tree, relative to the root.
pub fn work_files(ctx: &Ctx, dir: &str) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&ctx.root, &ctx.path(dir), &mut out);
    out.sort();
    out
}

/// Copies the working tree's `files` into a new backup folder named after `label`; returns
/// the folder.
pub fn backup(ctx: &Ctx, label: &str, files: &[String]) -> Result<PathBuf, String> {
    let stamp = timestamp();
    let base = git_path(ctx, "backups")?;
    let mut dir = base.join(format!("{label}-{stamp}"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = base.join(format!("{label}-{stamp}-{n}"));
    }
    for file in files {
        let from = ctx.path(file);
        if !from.exists() {
            continue;
        }
        let to = dir.join(file);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        fs::copy(&from, &to).map_err(|e| format!("cannot save {file} to {}: {e}", to.display()))?;
    }
    Ok(dir)
}

/// UTC date and time as `YYYYmmdd-HHMMSS`.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The state of one learner function in the working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FnState {
    /// Its body still calls `todo!()`.
    Todo,
    /// Written (no `todo!()` left).
    Written,
    /// `fn NAME` is not in its file.
    Missing,
}

/// The state of `f` and the line of its `fn` in the working tree.
pub fn fn_state(ctx: &Ctx, f: &Function) -> (FnState, usize) {
    let Ok(text) = read(ctx, &f.file) else { return (FnState::Missing, 0) };
    match find_fn(&text, &f.name) {
        None => (FnState::Missing, 0),
        Some(span) if is_todo(span.body(&text)) => (FnState::Todo, span.line(&text)),
        Some(span) => (FnState::Written, span.line(&text)),
    }
}

/// Stage 7: the comment `start 7` puts above a `todo!()` whose page says it keeps stage 6's
/// logic: the learner's own stage 6 function if they wrote it (written, and not the text of stage
/// 6's verified reference), else the reference's.
pub fn stage6_comment(ctx: &Ctx, f: &Function) -> Option<String> {
    let name = f.stage6.as_ref()?;
    let stage6 = crate::manifest::load(6)?;
    let file = &stage6.function(name)?.file;
    let dedent = |text: &str, indent: &str| -> String {
        text.lines().map(|l| l.strip_prefix(indent).unwrap_or(l)).collect::<Vec<_>>().join("\n")
    };
    let reference = crate::reference::find(ctx, &stage6).ok();
    let reference_text = reference.as_ref().and_then(|r| show(ctx, r.commit(), file).ok());
    if let Ok(own) = read(ctx, file)
        && let Some(span) = find_fn(&own, name)
        && !is_todo(span.body(&own))
        && reference_text.as_deref().and_then(|r| find_fn(r, name).map(|s| s.text(r).to_string()))
            != Some(span.text(&own).to_string())
    {
        return Some(format!(
            "Your stage 6 {name}() ({file}:{}); the page keeps its logic here:\n\n{}",
            span.line(&own),
            dedent(span.text(&own), &span.indent)
        ));
    }
    let reference = reference_text?;
    let span = find_fn(&reference, name)?;
    if is_todo(span.body(&reference)) {
        return None;
    }
    Some(format!(
        "Stage 6's {name}() (the reference's: stage06/src has no {name}() of your own), whose logic\n\
         the page keeps here:\n\n{}",
        dedent(span.text(&reference), &span.indent)
    ))
}

/// The reference's text of the manifest's learner files, at `rev`.
pub fn reference_texts(ctx: &Ctx, m: &Manifest, rev: &str) -> Result<Vec<(String, String)>, String> {
    m.files().into_iter().map(|file| show(ctx, rev, &file).map(|text| (file, text))).collect()
}
