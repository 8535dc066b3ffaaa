//! Turning the reference into the skeleton: each learner function's body becomes a `todo!()`
//! naming the function and the page's section; everything else stays as it is.

use crate::manifest::Function;
use xps_tests::rust_src::{FnSpan, code_mask, find_fn};

/// The one line `start` adds to the crate root (see [`allow_line`]); this is how it begins.
/// The skeleton's `todo!()` bodies leave imports and helpers unused; one crate-level line
/// silences that for the whole stage, where the alternatives would touch every file's imports
/// (and so every `git diff`) or change the stage's Cargo.toml. `solution` removes it and
/// `compare` ignores it.
pub const ALLOW_PREFIX: &str = "#![allow(unused_imports, dead_code)] // exercise mode:";

/// The allow line for `stage`.
pub fn allow_line(stage: u8) -> String {
    format!(
        "{ALLOW_PREFIX} todo!() bodies leave these unused; `scripts/exercise.sh solution {stage}` removes this line"
    )
}

/// Whether `line` is an allow line `start` added.
pub fn is_allow_line(line: &str) -> bool {
    line.trim_start().starts_with(ALLOW_PREFIX)
}

/// Whether a function body is (still) a `todo!()`: it calls `todo!(` or `unimplemented!(`.
pub fn is_todo(body: &str) -> bool {
    let mask = code_mask(body);
    ["todo!(", "unimplemented!("].iter().any(|needle| {
        body.match_indices(needle).any(|(i, _)| mask[i] && (i == 0 || !body.as_bytes()[i - 1].is_ascii_alphanumeric()))
    })
}

/// The text of the `todo!()` for `f`: `not yet implemented: NAME() ...` when reached.
pub fn todo_message(stage: u8, f: &Function) -> String {
    let text = format!(
        "{}() -- write it: stage {stage} page, section \"{}\"; hints: scripts/exercise.sh hint {stage} {}",
        f.name, f.section, f.name
    );
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('{', "{{").replace('}', "}}")
}

/// The skeleton body (braces included) for `f`, whose reference is `span` in `reference`.
/// `comment` (stage 7: the stage 6 code the page says to keep) goes above the `todo!()`.
pub fn skeleton_body(stage: u8, f: &Function, reference: &str, span: &FnSpan, comment: Option<&str>) -> String {
    let inner = format!("{}    ", span.indent);
    let mut body = String::from("{\n");
    let mut names = span.params.clone();
    if let Some(marker) = &f.keep_through {
        // Keep the given lines (main's command-line parsing) up to the marker's line.
        let old = span.body(reference);
        if let Some(pos) = old.find(marker.as_str()) {
            let end = old[pos..].find('\n').map_or(old.len() - 1, |p| pos + p + 1);
            let kept = &old[old.find('\n').map_or(1, |p| p + 1)..end];
            body.push_str(kept);
            for line in kept.lines() {
                if let Some(rest) = line.trim().strip_prefix("let ") {
                    let rest = rest.strip_prefix("mut ").unwrap_or(rest);
                    let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && !name.starts_with('_') {
                        names.push(name);
                    }
                }
            }
        }
    }
    if let Some(comment) = comment {
        for line in comment.lines() {
            body.push_str(&inner);
            body.push_str("//");
            if !line.is_empty() {
                body.push(' ');
                body.push_str(line);
            }
            body.push('\n');
        }
    }
    match names.len() {
        0 => {}
        1 => body.push_str(&format!("{inner}let _ = &{};\n", names[0])),
        _ => body.push_str(&format!(
            "{inner}let _ = ({});\n",
            names.iter().map(|n| format!("&{n}")).collect::<Vec<_>>().join(", ")
        )),
    }
    body.push_str(&format!("{inner}todo!(\"{}\")\n{}}}", todo_message(stage, f), span.indent));
    body
}

/// `src` with `f`'s body replaced by the skeleton body generated from `reference` (the
/// reference version of the same file). `Err` if either lacks the function.
pub fn replace_body(
    stage: u8,
    f: &Function,
    src: &str,
    reference: &str,
    comment: Option<&str>,
) -> Result<String, String> {
    let ref_span = find_fn(reference, &f.name).ok_or(format!("no `fn {}` in the reference {}", f.name, f.file))?;
    let span = find_fn(src, &f.name).ok_or(format!("no `fn {}` in {}", f.name, f.file))?;
    let body = skeleton_body(stage, f, reference, &ref_span, comment);
    Ok(format!("{}{}{}", &src[..span.body_open], body, &src[span.body_close + 1..]))
}

/// Adds the allow line after the crate root's leading `//!` docs (once).
pub fn add_allow_line(src: &str, stage: u8) -> String {
    if src.lines().any(is_allow_line) {
        return src.to_string();
    }
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("//!") || t.starts_with("#![") {
            offset += line.len();
        } else {
            break;
        }
    }
    format!("{}{}\n{}", &src[..offset], allow_line(stage), &src[offset..])
}

/// `src` without the allow line.
pub fn remove_allow_line(src: &str) -> String {
    src.split_inclusive('\n').filter(|l| !is_allow_line(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str) -> Function {
        Function { section: "a {b} \"c\"".into(), ..Function::named(name) }
    }

    #[test]
    fn body_names_the_function_and_section_and_silences_the_parameters() {
        let src = "//! Doc.\nuse x;\n\n/// Doc.\npub fn f(a: u8, _b: u8, mut c: String) -> u8 {\n    a + 1\n}\n";
        let out = replace_body(6, &function("f"), src, src, None).unwrap();
        assert!(
            out.contains(
                "    let _ = (&a, &c);\n    todo!(\"f() -- write it: stage 6 page, section \\\"a {{b}} \\\"c\\\"\\\""
            ),
            "{out}"
        );
        assert!(out.ends_with("\n}\n"));
        assert!(is_todo(xps_tests::rust_src::find_fn(&out, "f").unwrap().body(&out)));
        let with_allow = add_allow_line(&out, 6);
        assert!(with_allow.starts_with(&format!("//! Doc.\n{}\nuse x;", allow_line(6))));
        assert_eq!(remove_allow_line(&with_allow), out);
    }

    #[test]
    fn main_keeps_its_lines_through_the_marker_and_silences_what_they_bind() {
        let src = "fn main() {\n    init();\n    let config = parse_args_or_exit(\"x\");\n    run(config);\n}\n";
        let f = Function { keep_through: Some("parse_args_or_exit".into()), ..function("main") };
        let out = replace_body(6, &f, src, src, Some("old:\n    code")).unwrap();
        assert!(
            out.starts_with("fn main() {\n    init();\n    let config = parse_args_or_exit(\"x\");\n    // old:\n    //     code\n    let _ = &config;\n    todo!("),
            "{out}"
        );
        assert!(!out.contains("run(config)"));
    }

    #[test]
    fn todo_in_a_comment_or_string_is_not_a_todo() {
        assert!(!is_todo("{ // todo!(\n let s = \"todo!(\"; }"));
        assert!(is_todo("{ x(); todo!() }"));
    }
}
