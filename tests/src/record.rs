//! Check results as records in a file, for the tools that run `cargo test` for a learner.
//!
//! When the environment variable [`RECORDS_ENV`] names a file, the harness appends one record
//! when a check starts and one when it ends, with its outcome as a value (the [`Failure`], blame
//! resolved). `xps-exercise` reads these records, as they come, instead of libtest's text.
//!
//! One record is one line: `key=value` fields separated by tabs, values escaped (`\\`, `\t`,
//! `\n`, `\r`). Each line goes to the file in a single `write()` on a file opened for appending,
//! so records of checks running at the same time, in threads or in several test binaries, do not
//! interleave; a reader takes complete lines only.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use crate::panic::Panic;
use crate::report::{Blame, BlamedBy, Failure, Findings, Target};
use crate::roles::Role;

/// The environment variable naming the records file.
pub const RECORDS_ENV: &str = "XPS_CHECK_RECORDS";

/// One record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The check's id.
    pub id: String,
    /// The stage it ran against.
    pub stage: u8,
    /// What happened.
    pub event: Event,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The check started.
    Started,
    /// The check ended, after `seconds`.
    Finished {
        /// How long it took.
        seconds: f64,
        /// Whether it passed, and if not, why.
        outcome: Result<(), Failure>,
    },
}

impl Record {
    /// The record as one line, without its `\n`.
    pub fn encode(&self) -> String {
        let mut fields: Vec<(&str, String)> = vec![("id", self.id.clone()), ("stage", self.stage.to_string())];
        match &self.event {
            Event::Started => fields.push(("event", "start".into())),
            Event::Finished { seconds, outcome } => {
                fields.push(("event", "end".into()));
                fields.push(("seconds", format!("{seconds:.3}")));
                match outcome {
                    Ok(()) => fields.push(("outcome", "pass".into())),
                    Err(failure) => {
                        fields.push(("outcome", "fail".into()));
                        encode_failure(failure, &mut fields);
                    }
                }
            }
        }
        fields.iter().map(|(key, value)| format!("{key}={}", escape(value))).collect::<Vec<_>>().join("\t")
    }

    /// A record from a line [`Record::encode`] wrote.
    pub fn decode(line: &str) -> Result<Record, String> {
        let mut fields = Vec::new();
        for field in line.split('\t') {
            let (key, value) = field.split_once('=').ok_or_else(|| format!("a field without `=`: {field:?}"))?;
            fields.push((key, unescape(value)));
        }
        let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        let id = get("id").ok_or("no id")?.to_string();
        let stage = get("stage").and_then(|s| s.parse().ok()).ok_or("no stage")?;
        let event = match get("event") {
            Some("start") => Event::Started,
            Some("end") => {
                let seconds = get("seconds").and_then(|s| s.parse().ok()).ok_or("no seconds")?;
                let outcome = match get("outcome") {
                    Some("pass") => Ok(()),
                    Some("fail") => Err(decode_failure(&fields)?),
                    other => return Err(format!("unknown outcome {other:?}")),
                };
                Event::Finished { seconds, outcome }
            }
            other => return Err(format!("unknown event {other:?}")),
        };
        Ok(Record { id, stage, event })
    }
}

fn encode_failure(failure: &Failure, fields: &mut Vec<(&str, String)>) {
    fields.push(("summary", failure.summary.clone()));
    for (key, value) in [("sent", &failure.sent), ("expected", &failure.expected), ("received", &failure.received)] {
        if let Some(value) = value {
            fields.push((key, value.clone()));
        }
    }
    for (label, value) in &failure.details {
        fields.push(("detail_label", label.clone()));
        fields.push(("detail_value", value.clone()));
    }
    if let Some(blame) = &failure.blame {
        let target = match &blame.target {
            Target::Role(role) => format!("role:{role:?}"),
            Target::Named(name) => format!("fn:{name}"),
        };
        fields.push(("blame", target));
        fields.push(("blame_why", blame.why.clone()));
        fields.push(("blame_by", format!("{:?}", blame.by)));
        if let Some(at) = &blame.at {
            fields.push(("blame_at", at.clone()));
        }
    }
    if !failure.hint.is_empty() {
        fields.push(("hint", failure.hint.clone()));
    }
    if !failure.log_tail.is_empty() {
        fields.push(("log", failure.log_tail.clone()));
    }
    if let Some(note) = &failure.ahead_of_the_page {
        fields.push(("ahead_of_the_page", note.clone()));
    }
    if let Some(what_to_do) = &failure.not_the_code {
        fields.push(("not_the_code", what_to_do.clone()));
    }
    if let Some(panic) = &failure.panic {
        fields.push(("panic", panic.message.clone()));
        if let Some(at) = &panic.at {
            fields.push(("panic_at", at.clone()));
        }
    }
    for line in &failure.crash {
        fields.push(("crash", line.clone()));
    }
}

fn decode_failure(fields: &[(&str, String)]) -> Result<Failure, String> {
    let get = |key: &str| fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    let labels = fields.iter().filter(|(k, _)| *k == "detail_label").map(|(_, v)| v.clone());
    let values = fields.iter().filter(|(k, _)| *k == "detail_value").map(|(_, v)| v.clone());
    let blame = match get("blame") {
        None => None,
        Some(target) => {
            let target = if let Some(role) = target.strip_prefix("role:") {
                Target::Role(Role::parse(role).ok_or_else(|| format!("unknown role {role}"))?)
            } else if let Some(name) = target.strip_prefix("fn:") {
                Target::Named(name.to_string())
            } else {
                return Err(format!("a blame that is neither role: nor fn: {target:?}"));
            };
            let by = get("blame_by").unwrap_or_default();
            let by = [BlamedBy::Todo, BlamedBy::Borrow, BlamedBy::Panic, BlamedBy::Hang, BlamedBy::Check]
                .into_iter()
                .find(|b| format!("{b:?}") == by)
                .ok_or_else(|| format!("unknown blame_by {by:?}"))?;
            Some(Blame { target, why: get("blame_why").unwrap_or_default(), by, at: get("blame_at") })
        }
    };
    Ok(Failure::from(Findings {
        summary: get("summary").unwrap_or_default(),
        sent: get("sent"),
        expected: get("expected"),
        received: get("received"),
        details: labels.zip(values).collect(),
        blame,
        hint: get("hint").unwrap_or_default(),
        log_tail: get("log").unwrap_or_default(),
        panic: get("panic").map(|message| Panic { message, at: get("panic_at"), frames: Vec::new() }),
        crash: fields.iter().filter(|(k, _)| *k == "crash").map(|(_, v)| v.clone()).collect(),
        ahead_of_the_page: get("ahead_of_the_page"),
        not_the_code: get("not_the_code"),
    }))
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Appends `record` to the file at `path`, in one write.
pub fn append(path: &Path, record: &Record) -> io::Result<()> {
    let mut line = record.encode();
    line.push('\n');
    OpenOptions::new().create(true).append(true).open(path)?.write_all(line.as_bytes())
}

/// Appends `record` to the file [`RECORDS_ENV`] names, if it names one. The file is opened once
/// and kept open, so that writing a record opens no fd while in-process checks count theirs. A
/// file that cannot be written is said on stderr; the check's own result stands.
pub fn append_if_asked(record: &Record) {
    static FILE: std::sync::OnceLock<Option<std::sync::Mutex<std::fs::File>>> = std::sync::OnceLock::new();
    let Some(path) = std::env::var_os(RECORDS_ENV) else { return };
    let file = FILE.get_or_init(|| match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(file) => Some(std::sync::Mutex::new(file)),
        Err(e) => {
            eprintln!("cannot open the check records {}: {e}", Path::new(&path).display());
            None
        }
    });
    let Some(file) = file else { return };
    let mut line = record.encode();
    line.push('\n');
    let mut file = file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(e) = file.write_all(line.as_bytes()) {
        eprintln!("cannot append to the check records {}: {e}", Path::new(&path).display());
    }
}

/// The complete records in `text` (a partly written last line is left for the next read), and
/// how many bytes they took.
pub fn parse_complete(text: &str) -> (Vec<Result<Record, String>>, usize) {
    let complete = text.rfind('\n').map_or(0, |i| i + 1);
    let records = text[..complete].lines().filter(|l| !l.is_empty()).map(Record::decode).collect();
    (records, complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_survives_the_round_trip_whatever_its_text() {
        let failure = Failure::new("client 1 on port 8001 got a wrong reply\twith a tab")
            .detail("sent", "\"hello\\n\"")
            .detail("expected", "\"olleh\\n\"")
            .detail("received", "\"\\x00\"\r\n(then nothing)")
            .detail("string", "3 of 100 (seed 42)")
            .detail("string", "a repeated label, kept in order")
            .hint("look \\ here")
            .blame(Role::ReadHandler, "the reply is built there");
        let mut failure = failure;
        *failure = Findings {
            log_tail: "[INFO] a\n[ERROR] b\n".into(),
            panic: Some(Panic {
                message: "boom\nsecond line".into(),
                at: Some("stage06/src/main.rs:9".into()),
                frames: Vec::new(),
            }),
            crash: vec!["==1==ERROR: AddressSanitizer: heap-use-after-free".into(), "  #1 in f x.c:3".into()],
            ahead_of_the_page: Some("stage 8's change is in".into()),
            not_the_code: Some("stop the program that holds port 8001".into()),
            ..(*failure).clone()
        };
        let record = Record {
            id: "milestone_2_step_1_2".into(),
            stage: 6,
            event: Event::Finished { seconds: 1.25, outcome: Err(failure) },
        };
        let line = record.encode();
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(Record::decode(&line), Ok(record));

        let named = Failure::new("x").blame_with(Blame {
            target: Target::Named("xps_loop_run".into()),
            why: "still todo!()".into(),
            by: BlamedBy::Todo,
            at: Some("stage07/src/core/xps_loop.rs:200".into()),
        });
        let record = Record { id: "a".into(), stage: 7, event: Event::Finished { seconds: 0.0, outcome: Err(named) } };
        assert_eq!(Record::decode(&record.encode()), Ok(record));
    }

    #[test]
    fn only_complete_lines_are_read() {
        let start = Record { id: "a".into(), stage: 7, event: Event::Started };
        let end = Record { id: "a".into(), stage: 7, event: Event::Finished { seconds: 2.0, outcome: Ok(()) } };
        let text = format!("{}\n{}\nid=b\tsta", start.encode(), end.encode());
        let (records, used) = parse_complete(&text);
        assert_eq!(records, vec![Ok(start), Ok(end)]);
        assert_eq!(&text[used..], "id=b\tsta");
    }
}
