//! The guides quote the code that exists: every Rust block (and every diff block) in them is
//! either checked against the source file it quotes, or marked as an illustration.
//!
//! A block is marked by an HTML comment on the line right above its opening fence (invisible
//! once rendered; the text around the block names the file, or says it is an illustration):
//!
//! - `<!-- quote: PATH -->`: the block's lines appear in PATH (relative to the workspace root),
//!   in the same order. Any fenced block may carry one (a `text` call tree, say) and is then
//!   checked the same way.
//! - `<!-- quote-diff: OLD NEW -->`: a `diff` block; its context and `-` lines appear in OLD, its
//!   context and `+` lines in NEW.
//! - `<!-- illustration -->`: not the project's code as it stands (shortened, or the idea
//!   without the details); nothing is checked.
//!
//! How a quote matches its file:
//!
//! - each line is compared with its leading and trailing spaces trimmed, and blank lines are
//!   skipped on both sides;
//! - a line that is only `...` stands for lines left out, any number of them;
//! - a line with `...` elsewhere (`pub fn f(x: u8) { ... }`) matches a line of the file that
//!   starts with what comes before the `...`;
//! - comment lines of the file (`//`, `///`, `//!`) may be left out of a quote, and a quote may
//!   show a doc comment's text without its `//!` or `///`.
//!
//! When a quote fails, the message names the block and the first line that is not in the file:
//! change the guide to what the code says now (or mark the block as an illustration, and say so
//! in the text).

use std::fs;
use std::path::{Path, PathBuf};

/// The guides whose code blocks are checked.
const GUIDES: [&str; 4] = ["docs/stage06.md", "docs/stage07.md", "docs/c-to-rust.md", "docs/benchmarks.md"];

/// Fenced blocks that must carry a marker: those that show code.
const CODE_LANGUAGES: [&str; 2] = ["rust", "diff"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate sits in the workspace").to_path_buf()
}

/// A fenced block of a guide.
struct Block {
    /// `docs/stage07.md:813`: where its opening fence is.
    place: String,
    /// The info string's first word (`rust`, `text`, ...).
    language: String,
    /// The marker comment above it, if any (`quote: stage07/src/main.rs`).
    marker: Option<String>,
    lines: Vec<String>,
}

/// The fenced blocks of a Markdown file (``` fences, indented or not).
fn blocks(guide: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - lines[i].trim_start().len();
        let marker = i
            .checked_sub(1)
            .map(|j| lines[j].trim())
            .and_then(|l| l.strip_prefix("<!--")?.strip_suffix("-->"))
            .map(|m| m.trim().to_string());
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim_start() != "```" {
            let line = lines[i];
            body.push(line.get(indent.min(line.len() - line.trim_start().len())..).unwrap_or(line).to_string());
            i += 1;
        }
        out.push(Block {
            place: format!("{guide}:{}", start + 1),
            language: info.split([' ', ',', '{']).next().unwrap_or("").to_string(),
            marker,
            lines: body,
        });
        i += 1;
    }
    out
}

/// A source line's text without its comment marker (`//! main()` -> `main()`), if it is a comment.
fn comment_text(line: &str) -> Option<&str> {
    ["//!", "///", "//"].iter().find_map(|m| line.strip_prefix(m)).map(str::trim)
}

/// Whether the quoted line `want` matches the file's line `have` (both trimmed).
fn line_matches(want: &str, have: &str) -> bool {
    let texts = [Some(have), comment_text(have)];
    match want.find("...") {
        Some(at) if at > 0 => {
            let prefix = want[..at].trim_end();
            texts.iter().flatten().any(|t| t.starts_with(prefix))
        }
        _ => texts.iter().flatten().any(|t| *t == want),
    }
}

/// Checks that `quote` appears in `file_lines` as the rules above say; the first quoted line
/// that does not, otherwise.
fn find_quote(quote: &[String], file_lines: &[&str]) -> Result<(), String> {
    let file: Vec<&str> = file_lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    // Runs of quoted lines, split where the quote leaves lines out (`...` alone).
    let mut runs: Vec<Vec<&str>> = vec![Vec::new()];
    for line in quote.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if line == "..." {
            runs.push(Vec::new());
        } else {
            runs.last_mut().expect("at least one run").push(line);
        }
    }
    let mut from = 0;
    for run in runs.iter().filter(|r| !r.is_empty()) {
        let mut best: (usize, usize) = (0, from); // (lines matched, where), for the message
        let found = (from..file.len()).find_map(|start| {
            let (mut q, mut f) = (0, start);
            while q < run.len() && f < file.len() {
                if line_matches(run[q], file[f]) {
                    q += 1;
                } else if !(q > 0 && comment_text(file[f]).is_some()) {
                    break;
                }
                f += 1;
            }
            if q > best.0 {
                best = (q, start);
            }
            (q == run.len()).then_some(f)
        });
        match found {
            Some(end) => from = end,
            None => return Err(format!("this line is not in the file (where it should follow): {}", run[best.0])),
        }
    }
    Ok(())
}

fn read(root: &Path, path: &str) -> Result<String, String> {
    fs::read_to_string(root.join(path)).map_err(|e| format!("cannot read {path}: {e}"))
}

/// What is wrong with one block, if anything.
fn check_block(root: &Path, block: &Block) -> Result<(), String> {
    let Some(marker) = &block.marker else {
        return if CODE_LANGUAGES.contains(&block.language.as_str()) {
            Err("no marker: put `<!-- quote: PATH -->` or `<!-- illustration -->` on the line above it".into())
        } else {
            Ok(())
        };
    };
    if marker == "illustration" {
        return Ok(());
    }
    if let Some(path) = marker.strip_prefix("quote:") {
        let text = read(root, path.trim())?;
        return find_quote(&block.lines, &text.lines().collect::<Vec<_>>())
            .map_err(|e| format!("{}: {e}", path.trim()));
    }
    if let Some(paths) = marker.strip_prefix("quote-diff:") {
        let [old, new] = paths.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(format!("`{marker}`: a quote-diff names two files, OLD and NEW"));
        };
        let side = |keep: char| -> Vec<String> {
            block
                .lines
                .iter()
                .filter_map(|l| match l.chars().next() {
                    None => Some(String::new()),
                    Some('@') => Some("...".to_string()),
                    Some(c) if c == ' ' || c == keep => Some(l[1..].to_string()),
                    _ => None,
                })
                .collect()
        };
        for (path, keep) in [(old, '-'), (new, '+')] {
            let text = read(root, path)?;
            find_quote(&side(keep), &text.lines().collect::<Vec<_>>()).map_err(|e| format!("{path}: {e}"))?;
        }
        return Ok(());
    }
    Err(format!("unknown marker `<!-- {marker} -->`: quote: PATH, quote-diff: OLD NEW, or illustration"))
}

#[test]
fn every_code_block_in_the_guides_quotes_the_code_or_is_marked_as_an_illustration() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let (mut quoted, mut illustrations) = (0, 0);
    for guide in GUIDES {
        let text = read(&root, guide).unwrap_or_else(|e| panic!("{e}"));
        for block in blocks(guide, &text) {
            match check_block(&root, &block) {
                Err(e) => problems.push(format!("{} (```{}): {e}", block.place, block.language)),
                Ok(()) if block.marker.as_deref() == Some("illustration") => illustrations += 1,
                Ok(()) if block.marker.is_some() => quoted += 1,
                Ok(()) => {}
            }
        }
    }
    assert!(
        problems.is_empty(),
        "code blocks in the guides that do not match the code:\n\n{}\n\n(the rules: tests/tests/docs_quote_the_code.rs)",
        problems.join("\n")
    );
    println!("blocks that quote the code: {quoted}; marked as illustrations: {illustrations}");
}

#[test]
fn a_quote_matches_with_gaps_prefixes_and_left_out_comments_and_fails_on_drift() {
    let file = ["fn f() {", "    // step one", "    let a = 1;", "", "    let b = 2;", "    g(a, b)", "}"];
    let quote = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(find_quote(&quote(&["fn f() {", "let a = 1;", "let b = 2;"]), &file).is_ok(), "comment left out");
    assert!(find_quote(&quote(&["fn f() { ... }", "...", "g(a, b)"]), &file).is_ok(), "prefix and gap");
    assert!(find_quote(&quote(&["let b = 2;", "...", "let a = 1;"]), &file).is_err(), "order matters");
    let drift = find_quote(&quote(&["let a = 1;", "let b = 3;"]), &file).unwrap_err();
    assert!(drift.contains("let b = 3;"), "{drift}");
}
