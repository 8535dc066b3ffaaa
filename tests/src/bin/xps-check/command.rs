//! The server command: what the learner gave (or a teacher's list names), whether it exists,
//! and how it is started: as given, with `XPS_DEBUG=1` for the checks that read the page's
//! DEBUG lines, or as the course's tester starts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use xps_tests::program_name::program_name;

/// The argument the tester starts every server with (`ContainerManager.ts`:
/// `./${binaryId} ${PUBLIC_DIR}/xps_config.json`, `PUBLIC_DIR` being `/usr/src/public`).
pub const TESTER_CONFIG_ARG: &str = "/usr/src/public/xps_config.json";

/// The environment the tester starts every server with (`export ASAN_OPTIONS=detect_leaks=0`).
pub const TESTER_ASAN_OPTIONS: &str = "detect_leaks=0";

/// A command that starts a build's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    /// The program and its arguments.
    pub words: Vec<String>,
    /// Where it runs from (`None`: the current directory).
    pub dir: Option<PathBuf>,
}

/// How a check starts the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// As given.
    AsGiven,
    /// As given, with `XPS_DEBUG=1`.
    Debug,
    /// As the tester starts it: `ASAN_OPTIONS=detect_leaks=0`, and with `config_arg` the
    /// tester's one argument after the command's own (`--official`).
    AsTheTester {
        /// Whether to append [`TESTER_CONFIG_ARG`].
        config_arg: bool,
    },
}

impl ServerCommand {
    /// `sh -c LINE`, run from `dir`: a command from a teacher's list.
    pub fn shell(line: &str, dir: &Path) -> ServerCommand {
        ServerCommand { words: vec!["sh".into(), "-c".into(), line.into()], dir: Some(dir.to_path_buf()) }
    }

    /// The command as shown to a reader, as a shell would take it (a word with spaces or a
    /// shell's special characters in single quotes).
    pub fn display(&self) -> String {
        match self.words.as_slice() {
            [sh, c, line] if sh == "sh" && c == "-c" && self.dir.is_some() => line.clone(),
            words => words.iter().map(|w| quoted(w)).collect::<Vec<_>>().join(" "),
        }
    }

    /// The server's name, guessed from the command line (the process that listens renames it).
    pub fn guess_name(&self) -> String {
        program_name(&self.words)
    }

    /// Checks that the program can be started, with a hint for `xps` that should be `./xps`.
    pub fn find(&self) -> Result<(), String> {
        let program = self.words.first().map(String::as_str).unwrap_or_default();
        let here = |p: &str| match &self.dir {
            Some(dir) => dir.join(p),
            None => PathBuf::from(p),
        };
        if program.contains('/') {
            return match here(program).is_file() {
                true => Ok(()),
                false => Err(format!("{program}: no such file; is the path right, and was it built?")),
            };
        }
        let in_path = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
            .unwrap_or(false);
        match (in_path, here(program).is_file()) {
            (true, _) => Ok(()),
            (false, true) => Err(format!(
                "`{program}` is not a command in PATH, but there is a file {program} here: write `-- ./{program}` \
                 (as in a shell, a command without a `/` is looked up in PATH, not in the current folder)"
            )),
            (false, false) => Err(format!("`{program}`: command not found (not in PATH, and no such file here)")),
        }
    }

    /// The command to start, `how`.
    pub fn command(&self, how: How) -> Command {
        let mut cmd = Command::new(&self.words[0]);
        cmd.args(&self.words[1..]);
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        match how {
            How::AsGiven => {}
            How::Debug => {
                cmd.env("XPS_DEBUG", "1");
            }
            How::AsTheTester { config_arg } => {
                cmd.env("ASAN_OPTIONS", TESTER_ASAN_OPTIONS);
                if config_arg {
                    cmd.arg(TESTER_CONFIG_ARG);
                }
            }
        }
        cmd
    }
}

/// `word`, in single quotes if a shell would split or expand it.
fn quoted(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tester_s_way_adds_its_argument_and_environment() {
        let command = ServerCommand { words: vec!["./xps".into()], dir: None };
        let cmd = command.command(How::AsTheTester { config_arg: true });
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, [TESTER_CONFIG_ARG]);
        assert!(cmd.get_envs().any(|(k, v)| k == "ASAN_OPTIONS" && v == Some(TESTER_ASAN_OPTIONS.as_ref())));
        assert_eq!(command.command(How::AsGiven).get_args().count(), 0);
        let wrapped = ServerCommand { words: vec!["sh".into(), "-c".into(), "./xps; true".into()], dir: None };
        assert_eq!(wrapped.display(), "sh -c './xps; true'");
        let listed = ServerCommand::shell("cd src && ./xps", Path::new("/tmp/alice"));
        assert_eq!((listed.display(), listed.guess_name()), ("cd src && ./xps".into(), "xps".into()));
    }
}
