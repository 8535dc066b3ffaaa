//! What the workspace's command-line tools (`sender`, `loadgen`, `xps-check`) share: reading
//! their arguments, and the exit statuses for `--help` (0) and a bad command line (2), the same
//! as the stages' (`shared::xps_utils`).

use std::fmt::Display;
use std::process::ExitCode;

pub use shared::xps_utils::CliError;

/// Exit status for a bad command line.
pub const EXIT_USAGE: u8 = 2;

/// A usage error for `program`, with the line that points to `--help`.
pub fn usage_error(program: &str, message: impl Display) -> CliError {
    CliError::Usage(format!("{program}: {message}\nTry '{program} --help' for more information."))
}

/// Reads the process's arguments (which must be UTF-8) and parses them with `parse`. On
/// `--help` it prints the usage on stdout and gives back exit status 0; on a bad argument it
/// prints why on stderr and gives back [`EXIT_USAGE`]; `main` returns that status.
pub fn parse_process_args<T>(
    program: &str,
    parse: impl FnOnce(Vec<String>) -> Result<T, CliError>,
) -> Result<T, ExitCode> {
    let args: Vec<String> = match std::env::args_os().skip(1).map(|arg| arg.into_string()).collect() {
        Ok(args) => args,
        Err(arg) => {
            eprintln!("{program}: argument {arg:?} is not valid UTF-8");
            return Err(ExitCode::from(EXIT_USAGE));
        }
    };
    match parse(args) {
        Ok(config) => Ok(config),
        Err(CliError::Help(text)) => {
            print!("{text}");
            Err(ExitCode::SUCCESS)
        }
        Err(CliError::Usage(text)) => {
            eprintln!("{text}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Splits `--name=value` into `("--name", Some("value"))`; any other argument comes back whole,
/// with `None`, so tools accept both `--port 8002` and `--port=8002`.
pub fn split_option(arg: &str) -> (&str, Option<String>) {
    match arg.split_once('=') {
        Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
        _ => (arg, None),
    }
}
