//! `watch`: `check` again each time a file of the stage is saved, the loop rustlings learners
//! live in. A poll of modification times twice a second is enough (no file-notification crate):
//! a save is seen within half a second, and a run of `check` takes seconds anyway.

use std::io::IsTerminal;
use std::thread;
use std::time::{Duration, SystemTime};

use crate::Fail;
use crate::check::{self, Verdict};
use crate::manifest::Manifest;
use crate::run::Ctx;
use crate::workspace;

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(500);

/// Runs `check`, then again after every save, until Ctrl+C (which ends this program and the
/// checks it runs, see [`crate::run::forward_interrupts`]).
pub fn watch(ctx: &Ctx, m: &Manifest) -> Result<u8, Fail> {
    let n = m.stage;
    let src = m.src_dir();
    let terminal = std::io::stdout().is_terminal();
    let mut why = "first run".to_string();
    loop {
        let before = snapshot(ctx, &src);
        if terminal {
            // Clear the screen and go to its top: each run starts on a clean page.
            print!("\x1b[2J\x1b[H");
        }
        println!("watch {n}: {why}");
        let verdict = check::run_check(ctx, m, false);
        println!();
        if verdict != Verdict::Fails {
            println!("Stage {n} is done: every milestone and course check passes.");
        }
        println!("watch {n}: waiting for a save in {src} (Ctrl+C stops)");
        let changed = wait_for_change(ctx, &src, before);
        why = format!("{} saved", changed.join(", "));
    }
}

/// Each file of `dir` with its modification time and size.
fn snapshot(ctx: &Ctx, dir: &str) -> Vec<(String, Option<SystemTime>, u64)> {
    workspace::work_files(ctx, dir)
        .into_iter()
        .map(|file| {
            let meta = std::fs::metadata(ctx.path(&file));
            let modified = meta.as_ref().ok().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (file, modified, len)
        })
        .collect()
}

/// Waits until a file of `dir` differs from `before` (saved, created or deleted); returns which.
fn wait_for_change(ctx: &Ctx, dir: &str, before: Vec<(String, Option<SystemTime>, u64)>) -> Vec<String> {
    loop {
        thread::sleep(POLL);
        let now = snapshot(ctx, dir);
        if now != before {
            // An editor may write several files, or one in steps: let the save finish.
            thread::sleep(POLL);
            let now = snapshot(ctx, dir);
            let mut changed: Vec<String> =
                now.iter().filter(|entry| !before.contains(entry)).map(|(file, _, _)| file.clone()).collect();
            changed.extend(
                before.iter().filter(|(file, _, _)| !now.iter().any(|(f, _, _)| f == file)).map(|(f, _, _)| f.clone()),
            );
            return changed;
        }
    }
}
