//! A teacher's run: several builds, one after another, each with its full report in a file of
//! its own (`NAME.txt`) and its JUnit report (`NAME.xml`), and one summary table of them all
//! (on the terminal and in `summary.txt`).
//!
//! The builds come from a folder with one subfolder per build (its command is the first line of
//! `check-build.cmd` there, else `./xps`), or from a list file of `NAME: COMMAND` lines (`#`
//! starts a comment). A command runs with `sh -c` from its build's subfolder, or from the list
//! file's folder.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::{Config, program};
use crate::command::ServerCommand;
use crate::outcome::{Report, Verdict};
use crate::print::{self, Out};
use crate::run::Run;

/// The file in a build's subfolder that holds its command.
pub const COMMAND_FILE: &str = "check-build.cmd";

/// One build to check: its name, and its command or why it has none.
struct Build {
    name: String,
    command: Result<ServerCommand, String>,
}

/// Checks every build `from` names, writing their reports into `out`.
pub fn run(config: &Config, from: &Path, out: &Path) -> ExitCode {
    let builds = match builds_from(from) {
        Ok(builds) if !builds.is_empty() => builds,
        Ok(_) => return fail(&format!("{} names no build", from.display())),
        Err(why) => return fail(&why),
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        return fail(&format!("cannot create the folder {}: {e}", out.display()));
    }
    let part = if config.official { "the course's tester's checks" } else { "all checks" };
    println!(
        "{}: {} builds from {}, stage {} ({part}), one after another; each build's report and JUnit file go to {}",
        program(),
        builds.len(),
        from.display(),
        config.stage,
        out.display()
    );
    let mut reports: Vec<(String, Report)> = Vec::new();
    for (i, build) in builds.iter().enumerate() {
        if xps_tests::process::interrupted().is_some() {
            break;
        }
        let started = Instant::now();
        let file_name = file_name(&build.name);
        let (text, xml) = (out.join(format!("{file_name}.txt")), out.join(format!("{file_name}.xml")));
        let file = match File::create(&text) {
            Ok(file) => file,
            Err(e) => return fail(&format!("cannot write {}: {e}", text.display())),
        };
        let shown = build.command.as_ref().map_or_else(|why| why.clone(), |c| format!("`{}`", c.display()));
        println!("[{}/{}] {}: {shown}", i + 1, builds.len(), build.name);
        let report = match build.command.clone().and_then(|c| c.find().map(|()| c)) {
            Ok(command) => crate::check_build(config, command, Out::File(file), Some(&xml)),
            Err(why) => {
                let command = ServerCommand { words: vec!["?".into()], dir: None };
                let mut run = Run::new(config.stage, config.official, command, Out::File(file), 0);
                run.report.name = build.name.clone();
                run.report.cannot_judge = Some(why);
                run.finish(Some(&xml))
            }
        };
        println!(
            "      {}: {} ({:.0} s; {})",
            report.verdict().word(),
            print::counts_line(&report),
            started.elapsed().as_secs_f64(),
            text.display()
        );
        reports.push((build.name.clone(), report));
    }
    let table = summary(&reports);
    println!();
    print!("{table}");
    let summary_path = out.join("summary.txt");
    if let Err(e) = std::fs::write(&summary_path, &table) {
        return fail(&format!("cannot write {}: {e}", summary_path.display()));
    }
    println!("(summary written to {})", summary_path.display());
    let statuses = reports.iter().map(|(_, r)| r.exit_status());
    let status = match xps_tests::process::interrupted() {
        Some(signal) => 128 + signal as u8,
        None => statuses.fold(0, |worst, s| if s == 2 || worst == 2 { 2 } else { worst.max(s) }),
    };
    ExitCode::from(status)
}

/// The builds in `from`: a folder's subfolders, or a list file's lines.
fn builds_from(from: &Path) -> Result<Vec<Build>, String> {
    if from.is_dir() {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(from)
            .map_err(|e| format!("cannot read the folder {}: {e}", from.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        return Ok(dirs.iter().map(|dir| folder_build(dir)).collect());
    }
    let text = std::fs::read_to_string(from).map_err(|e| format!("cannot read the list {}: {e}", from.display()))?;
    let here = from.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut builds = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, command)) = line.split_once(':').filter(|(n, c)| !n.trim().is_empty() && !c.trim().is_empty())
        else {
            return Err(format!("{}:{}: expected `NAME: COMMAND`, got {line:?}", from.display(), n + 1));
        };
        builds.push(Build { name: name.trim().into(), command: Ok(ServerCommand::shell(command.trim(), here)) });
    }
    Ok(builds)
}

/// A build in a subfolder: its `check-build.cmd`'s first line, else `./xps`.
fn folder_build(dir: &Path) -> Build {
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    let listed = std::fs::read_to_string(dir.join(COMMAND_FILE)).ok().and_then(|text| {
        text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string)
    });
    let command = match listed {
        Some(line) => Ok(ServerCommand::shell(&line, dir)),
        None if dir.join("xps").is_file() => Ok(ServerCommand { words: vec!["./xps".into()], dir: Some(dir.into()) }),
        None => Err(format!("no {COMMAND_FILE} and no xps in {}", dir.display())),
    };
    Build { name, command }
}

/// The summary table: build, the tester's verdict, checks passed, the first failure's sentence.
fn summary(reports: &[(String, Report)]) -> String {
    let rows: Vec<[String; 4]> = reports
        .iter()
        .map(|(name, report)| {
            let (passed, _, _) = report.counts();
            let verdict = match report.verdict() {
                Verdict::Fail if report.official => "FAIL".into(),
                verdict => verdict.word().to_string(),
            };
            let first = report.first_failure().unwrap_or_else(|| "-".into());
            [name.clone(), verdict, format!("{passed} of {}", report.cases.len()), shorten(&first, 110)]
        })
        .collect();
    let head = ["build", "tester verdict", "checks passed", "first failure"].map(String::from);
    let widths: Vec<usize> =
        (0..3).map(|i| rows.iter().chain([&head]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut table = String::new();
    for row in std::iter::once(&head).chain(&rows) {
        table.push_str(&format!(
            "{:w0$}  {:w1$}  {:w2$}  {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }
    table
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.into()
    } else {
        format!("{}...", text.chars().take(max - 3).collect::<String>())
    }
}

/// A build's name as a file name: letters, digits, `.`, `-` and `_` kept, the rest `_`.
fn file_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

fn fail(why: &str) -> ExitCode {
    eprintln!("{}: {why}", program());
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_file_names_each_build_and_its_command_run_from_the_list_s_folder() {
        let dir = std::env::temp_dir().join(format!("xps-check-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("class.txt");
        std::fs::write(&list, "# the class\nalice: cd alice && ./xps\n\nbob : ./bob/xps\n").unwrap();
        let builds = builds_from(&list).unwrap();
        let names: Vec<&str> = builds.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(builds[1].command, Ok(ServerCommand::shell("./bob/xps", &dir)));
        std::fs::write(&list, "alice ./xps\n").unwrap();
        let refused = builds_from(&list).err().unwrap_or_default();
        assert!(refused.contains("class.txt:1: expected `NAME: COMMAND`"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(file_name("ann marie/2"), "ann_marie_2");
    }
}
