//! The name to give a server in messages, from a command line: the program itself, not the
//! wrapper or interpreter that runs it.
//!
//! `stdbuf -oL ./xps`, `valgrind --leak-check=full ./xps`, `env X=1 ./xps`, `python3 ./xps`
//! and `sh -c "cd src && ./xps"` all name `xps`; `cargo run -p stage07` names `stage07`. Used
//! twice: on the command a learner gives, before anything runs (a first guess), and on the
//! command line of the process that turns out to hold the listening sockets
//! ([`crate::Server`] renames itself then), which is right even when the guess is not
//! (`sh -c "./xps; true"` would otherwise be named `true`).

use std::path::Path;

/// Programs that run another program named later on their command line.
const WRAPPERS: [&str; 14] = [
    "stdbuf",
    "valgrind",
    "valgrind.bin",
    "nice",
    "setsid",
    "nohup",
    "env",
    "timeout",
    "exec",
    "time",
    "taskset",
    "ionice",
    "unbuffer",
    "strace",
];

/// Interpreters that run a script named later on their command line.
fn is_interpreter(word: &str) -> bool {
    let versioned =
        |name: &str| word.strip_prefix(name).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'));
    versioned("python") || versioned("perl") || versioned("ruby") || word == "node"
}

/// Whether option `arg` of `program` takes the next argument as its value (`stdbuf -o L`,
/// `env -u NAME`, `python3 -X dev`).
fn takes_a_value(program: &str, arg: &str) -> bool {
    let flags: &[&str] = match program {
        "stdbuf" => &["-i", "-o", "-e"],
        "env" => &["-u", "-C"],
        "nice" => &["-n"],
        "timeout" => &["-s", "-k"],
        "ionice" => &["-c", "-n", "-p"],
        "strace" => &["-o", "-e", "-p", "-s"],
        p if is_interpreter(p) => &["-X", "-W"],
        _ => &[],
    };
    flags.contains(&arg)
}

/// The name of the server that `command` (program and arguments) runs.
pub fn program_name(command: &[String]) -> String {
    let base = |word: &str| Path::new(word).file_name().map_or(word.to_string(), |n| n.to_string_lossy().into_owned());
    let mut i = 0;
    while i < command.len() {
        let word = base(&command[i]);
        match word.as_str() {
            w if WRAPPERS.contains(&w) || is_interpreter(w) => {
                i += 1;
                while i < command.len() {
                    let arg = &command[i];
                    if takes_a_value(&word, arg) {
                        i += 2;
                    } else if arg.starts_with('-') || (word == "env" && arg.contains('=')) {
                        i += 1;
                    } else {
                        break;
                    }
                }
                // timeout DURATION CMD, taskset MASK CMD
                if matches!(word.as_str(), "timeout" | "taskset") {
                    i += 1;
                }
            }
            "sh" | "bash" | "dash" | "zsh" => {
                let Some(script) = command.iter().skip(i + 1).skip_while(|a| *a != "-c").nth(1) else {
                    // `sh run.sh`: the script names the server.
                    return command.get(i + 1).filter(|a| !a.starts_with('-')).map_or(word, |a| base(a));
                };
                let last = script.rsplit(['&', ';', '|']).map(str::trim).find(|s| !s.is_empty()).unwrap_or(script);
                let words: Vec<String> = last.split_whitespace().map(str::to_string).collect();
                return if words.is_empty() { word } else { program_name(&words) };
            }
            "cargo" => {
                let after = |flag: &str| command.iter().position(|a| a == flag).and_then(|p| command.get(p + 1));
                if let Some(name) = after("--bin").or_else(|| after("-p")).or_else(|| after("--package")) {
                    return name.clone();
                }
                if let Some(manifest) = after("--manifest-path") {
                    let dir = Path::new(manifest).parent().and_then(Path::file_name);
                    return dir.map_or("cargo run".into(), |d| d.to_string_lossy().into_owned());
                }
                return "cargo run".into();
            }
            _ => return word,
        }
    }
    command.first().map_or("server".into(), |c| base(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_server_is_named_not_its_wrapper_or_interpreter() {
        assert_eq!(program_name(&words("./xps")), "xps");
        assert_eq!(program_name(&words("stdbuf -oL ./xps")), "xps");
        assert_eq!(program_name(&words("stdbuf -o L /home/me/expserver/src/xps")), "xps");
        assert_eq!(program_name(&words("valgrind --leak-check=full -q ./build/xps")), "xps");
        assert_eq!(program_name(&words("/usr/bin/valgrind.bin -q ./srv 9005")), "srv");
        assert_eq!(program_name(&words("env XPS_DEBUG=1 ./xps")), "xps");
        assert_eq!(program_name(&words("python3 -u /tmp/fake/xps correct 0.0.0.0 8001")), "xps");
        assert_eq!(program_name(&words("python3.11 /tmp/fake/xps")), "xps");
        assert_eq!(program_name(&["sh".into(), "-c".into(), "cd src && ./xps".into()]), "xps");
        assert_eq!(program_name(&words("sh run.sh")), "run.sh");
        assert_eq!(program_name(&words("cargo run -q --manifest-path ../my-xps/Cargo.toml --")), "my-xps");
        assert_eq!(program_name(&words("cargo run -p stage07")), "stage07");
    }

    #[test]
    fn a_guess_from_a_wrapper_script_can_be_wrong_which_is_why_the_listener_names_the_server() {
        // The last command of the script is `true`: only the process that listens tells.
        assert_eq!(program_name(&["sh".into(), "-c".into(), "./xps; true".into()]), "true");
    }
}
