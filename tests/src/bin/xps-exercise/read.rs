//! The commands that only read: `hint` (levels 1 and 2 from the manifest, 3 the reference's
//! code) and `compare` (the learner's functions against the reference's).

use std::process::Command;

use crate::edit::rest_differs;
use crate::manifest::{Function, Manifest};
use crate::reference;
use crate::run::Ctx;
use crate::skeleton::is_todo;
use crate::workspace;
use crate::{Fail, failure};
use xps_tests::rust_src::find_fn;

/// `hint`: levels 1 and 2 need nothing but the manifest (they work without git); level 3 shows
/// the verified reference's code.
pub fn hint(ctx: &Ctx, m: &Manifest, f: &Function, level: u8) -> Result<u8, Fail> {
    let n = m.stage;
    println!(
        "{}() -- hint {level} of 3 (stage {n}, page section \"{}\"; checked from {} on)",
        f.name,
        f.section,
        f.milestone.label()
    );
    println!();
    match level {
        1 | 2 => println!("{}", f.hints[usize::from(level) - 1]),
        _ => {
            let reference = reference::find(ctx, m).map_err(failure)?;
            let text = workspace::show(ctx, reference.commit(), &f.file).map_err(failure)?;
            let span = find_fn(&text, &f.name)
                .ok_or_else(|| failure(format!("no `fn {}` in {} at {}", f.name, f.file, reference.short())))?;
            println!("The reference's code ({} at {}):", f.file, reference.short());
            println!();
            let item = &text[span.item_start..=span.body_close];
            println!(
                "{}",
                item.lines().map(|l| l.strip_prefix(span.indent.as_str()).unwrap_or(l)).collect::<Vec<_>>().join("\n")
            );
        }
    }
    if level < 3 {
        println!();
        println!("More: scripts/exercise.sh hint {n} {} {}", f.name, level + 1);
    }
    Ok(0)
}

/// `compare`: a unified diff of each learner function, the reference's (`-`) against the
/// learner's (`+`).
pub fn compare(ctx: &Ctx, m: &Manifest, only: Option<&Function>) -> Result<u8, Fail> {
    let n = m.stage;
    let reference = reference::find(ctx, m).map_err(failure)?;
    let rev = reference.commit();
    let dir = workspace::git_path(ctx, "compare").map_err(failure)?;
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["reference", "yours"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    println!("Stage {n}: your code (+) against the reference (-, commit {}), function by function", reference.short());
    let functions: Vec<&Function> = match only {
        Some(f) => vec![f],
        None => m.functions.iter().collect(),
    };
    let (mut todo, mut same) = (Vec::new(), Vec::new());
    for f in functions {
        let theirs = workspace::show(ctx, rev, &f.file).map_err(failure)?;
        let ref_span =
            find_fn(&theirs, &f.name).ok_or_else(|| failure(format!("no `fn {}` in the reference", f.name)))?;
        let yours = workspace::read(ctx, &f.file).map_err(failure)?;
        let Some(span) = find_fn(&yours, &f.name) else {
            println!("\n{}(): not found in {} (the checks call it by this name)", f.name, f.file);
            continue;
        };
        let (a, b) = (ref_span.text(&theirs), span.text(&yours));
        if is_todo(span.body(&yours)) {
            todo.push(format!("{}()", f.name));
        } else if a == b {
            same.push(format!("{}()", f.name));
        } else {
            println!("\n{}()  ({}:{})", f.name, f.file, span.line(&yours));
            let file = format!("{}.rs", f.name);
            std::fs::write(dir.join("reference").join(&file), format!("{a}\n")).map_err(|e| failure(e.to_string()))?;
            std::fs::write(dir.join("yours").join(&file), format!("{b}\n")).map_err(|e| failure(e.to_string()))?;
            let color =
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) { "--color=always" } else { "--no-color" };
            let out = Command::new("git")
                .current_dir(&dir)
                .args(["diff", "--no-index", "--no-prefix", color, "--"])
                .arg(format!("reference/{file}"))
                .arg(format!("yours/{file}"))
                .output()
                .map_err(|e| failure(format!("could not run git diff: {e}")))?;
            let text = String::from_utf8_lossy(&out.stdout);
            // The file names say it all; git's own header lines would only add noise.
            for line in text.lines().skip_while(|l| !l.contains("--- reference/")) {
                println!("{line}");
            }
        }
    }
    if !same.is_empty() {
        println!("\nThe same as the reference: {}", same.join(", "));
    }
    if !todo.is_empty() {
        println!("\nStill todo!(): {}", todo.join(", "));
    }
    if only.is_none() {
        for (file, theirs) in workspace::reference_texts(ctx, m, rev).map_err(failure)? {
            let Ok(yours) = workspace::read(ctx, &file) else { continue };
            if rest_differs(m, &file, &yours, &theirs) {
                println!(
                    "\nNote: {file} also differs from the reference outside these functions (git diff {} -- {file}).",
                    reference.short()
                );
            }
        }
    }
    Ok(0)
}
