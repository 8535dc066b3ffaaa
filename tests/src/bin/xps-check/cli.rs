//! The command line: which stage, which builds (one command, or a teacher's folder or list of
//! them), which checks, and where the reports go. Options go anywhere before `--`.

use std::path::PathBuf;

use xps_tests::tool::{self, CliError};

/// The name messages use: `check-build.sh` when the script runs this program (it says so in
/// `XPS_CHECK_AS`), else `xps-check`.
pub fn program() -> String {
    std::env::var("XPS_CHECK_AS").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| "xps-check".into())
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// 6 or 7.
    pub stage: u8,
    /// Print the checks and exit.
    pub list: bool,
    /// Only the tester's checks, the server started as the tester starts it.
    pub official: bool,
    /// Where to write the JUnit report (one build).
    pub junit: Option<PathBuf>,
    /// What to check.
    pub builds: Builds,
}

/// The build or builds to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builds {
    /// One server command, run from the current directory.
    One(Vec<String>),
    /// A teacher's builds: a folder with one subfolder per build, or a list file; each build's
    /// report and JUnit file go to `out`.
    Many {
        /// The folder or list file.
        from: PathBuf,
        /// Where the reports go.
        out: PathBuf,
    },
}

/// The folder the builds' reports go to when `--out` does not say.
pub const DEFAULT_OUT: &str = "check-build-results";

pub fn usage() -> String {
    let program = program();
    let stage = if program == "xps-check" { "--stage 6|7" } else { "6|7" };
    format!(
        "Usage: {program} {stage} [--official] [--junit FILE] -- CMD [ARGS...]\n       \
         {program} {stage} [--official] --builds FOLDER|LIST [--out DIR]\n\
         \n\
         Runs the course's checks for a stage against the server that `CMD ARGS...` starts, then\n\
         the course's tester's three checks exactly as it runs them, and says whether the\n\
         tester would pass the build, and why. Options may come in any order before `--`.\n\
         \n\
         The server must listen on the stage's ports:\n  \
           this workspace's checks: stage 6: 8001 8002 8003    stage 7: 8001 8002 8003 8004\n  \
           the tester's checks:     8001 8002 8003 8004 for both stages, on 0.0.0.0\n\
         All traffic stays on 127.0.0.1. Each check starts CMD afresh and stops it (SIGINT, then\n\
         SIGKILL) with everything it started.\n\
         \n\
         Options:\n      \
               --stage N        the stage whose checks to run: 6 or 7 (or just `6`, `7`)\n      \
               --official       only the tester's checks, the server started as the tester starts\n                       \
                                it: `CMD ARGS... /usr/src/public/xps_config.json`, ASAN_OPTIONS=detect_leaks=0\n      \
               --junit FILE     also write the results as JUnit XML to FILE (for CI and autograders)\n      \
               --builds PATH    check several builds, one after another (for a teacher): PATH is a\n                       \
                                folder with one subfolder per build (its command in check-build.cmd,\n                       \
                                else ./xps), or a list file of `NAME: COMMAND` lines; commands run\n                       \
                                with sh -c from the build's subfolder or the list's folder\n      \
               --out DIR        where --builds writes each build's report (NAME.txt), its JUnit file\n                       \
                                (NAME.xml) and the summary (summary.txt); default: ./{DEFAULT_OUT}\n      \
               --list           print the checks and exit\n  \
           -h, --help           print this help and exit\n\
         \n\
         Examples:\n  \
           {program} {s7} -- ./xps\n  \
           {program} {s7} --official -- ./xps\n  \
           {program} {s7} -- stdbuf -oL ./xps     (C's printf buffers a pipe; stdbuf shows the log)\n  \
           {program} {s7} --official --builds submissions/\n\
         \n\
         Exit status: 0 if every check passed, 1 if one failed (or, without --official, a bug the\n\
         tester does not see was found), 2 if the build could not be judged (the ports were taken,\n\
         the command does not exist, the checker failed, a report could not be written) or the\n\
         arguments are wrong, 128+N when interrupted by signal N.\n",
        s7 = if program == "xps-check" { "--stage 7" } else { "7" },
    )
}

/// Reads the arguments (without the program's name).
pub fn parse_args(args: Vec<String>) -> Result<Config, CliError> {
    let program = program();
    let bad = |msg: String| tool::usage_error(&program, msg);
    let mut stage = None;
    let mut list = false;
    let mut official = false;
    let mut junit = None;
    let mut builds = None;
    let mut out = None;
    let mut command = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = tool::split_option(&arg);
        let mut value = |what: &str| -> Result<String, CliError> {
            let value = inline.clone().or_else(|| args.next()).unwrap_or_default();
            if value.is_empty() { Err(bad(format!("{name} needs {what}"))) } else { Ok(value) }
        };
        match name {
            "-h" | "--help" => return Err(CliError::Help(usage())),
            "--list" => list = true,
            "--official" => official = true,
            "--junit" => junit = Some(PathBuf::from(value("a file name")?)),
            "--builds" => builds = Some(PathBuf::from(value("a folder or a list file")?)),
            "--out" => out = Some(PathBuf::from(value("a folder")?)),
            "--stage" => stage = Some(parse_stage(&value("a value: 6 or 7")?).map_err(bad)?),
            "6" | "7" | "06" | "07" if stage.is_none() => stage = Some(parse_stage(name).map_err(bad)?),
            "--" => {
                command = Some(args.by_ref().collect::<Vec<_>>());
                break;
            }
            _ if name.starts_with('-') => {
                return Err(bad(format!("unknown option '{arg}' (the server command goes after `--`)")));
            }
            _ => {
                let hint = if stage.is_none() { "; the stage is 6 or 7" } else { "" };
                return Err(bad(format!("unexpected argument '{arg}' (the server command goes after `--`{hint})")));
            }
        }
    }
    let Some(stage) = stage else {
        return Err(bad(format!("which stage? for example: {program} 7 -- ./xps")));
    };
    let builds = match (command, builds) {
        (Some(_), Some(_)) => return Err(bad("give either a command after `--` or --builds, not both".into())),
        (None, Some(from)) => {
            if junit.is_some() {
                return Err(bad("--builds writes one JUnit file per build into --out; drop --junit".into()));
            }
            Builds::Many { from, out: out.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_OUT)) }
        }
        (Some(command), None) if !command.is_empty() => Builds::One(command),
        _ if list => Builds::One(Vec::new()),
        _ => return Err(bad(format!("no server command: put it after `--`, for example: {program} {stage} -- ./xps"))),
    };
    if out.is_some() && matches!(builds, Builds::One(_)) {
        return Err(bad("--out goes with --builds".into()));
    }
    Ok(Config { stage, list, official, junit, builds })
}

fn parse_stage(value: &str) -> Result<u8, String> {
    match value {
        "6" | "06" | "stage06" => Ok(6),
        "7" | "07" | "stage07" => Ok(7),
        _ => Err(format!("unknown stage '{value}': the checks are for stages 6 and 7")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Config, CliError> {
        parse_args(line.split_whitespace().map(str::to_string).collect())
    }

    #[test]
    fn options_go_anywhere_before_the_command() {
        let expected = Config {
            stage: 7,
            list: false,
            official: true,
            junit: Some("r.xml".into()),
            builds: Builds::One(vec!["./xps".into(), "--official".into()]),
        };
        assert_eq!(parse("--official 7 --junit r.xml -- ./xps --official").unwrap(), expected);
        assert_eq!(parse("7 --junit=r.xml --official -- ./xps --official").unwrap(), expected);
        assert_eq!(parse("--junit r.xml --stage 7 --official -- ./xps --official").unwrap(), expected);
    }

    #[test]
    fn a_teachers_builds_and_bad_command_lines() {
        let config = parse("7 --builds class/ --official").unwrap();
        assert_eq!(config.builds, Builds::Many { from: "class/".into(), out: DEFAULT_OUT.into() });
        for bad in
            ["-- ./xps", "8 -- ./xps", "7", "7 ./xps", "7 --builds x -- ./xps", "7 --out d -- ./xps", "7 --junit"]
        {
            assert!(matches!(parse(bad), Err(CliError::Usage(_))), "{bad} should be refused");
        }
    }
}
