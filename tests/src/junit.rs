//! JUnit XML, the report format CI systems and autograders read: one `<testsuite>` with one
//! `<testcase>` per check, written from values (a tool renders each failure's text once, the
//! way its terminal shows it, and hands it here).
//!
//! Any text can go in: a server may print anything, and its output ends up in failure
//! messages. XML 1.0 forbids most control characters and U+FFFE/U+FFFF even escaped, so those
//! are replaced with U+FFFD (the replacement character); `&`, `<`, `>` and `"` are escaped.

/// A suite of test cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// Its name (`xps-check stage 7`).
    pub name: String,
    /// `name = value` properties (the command that was checked).
    pub properties: Vec<(String, String)>,
    /// The cases, in order.
    pub cases: Vec<Case>,
}

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Its group (`workspace`, `tester`).
    pub classname: String,
    /// Its name: the check's id.
    pub name: String,
    /// How long it took.
    pub seconds: f64,
    /// How it ended.
    pub result: CaseResult,
}

/// How a case ended, as JUnit tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseResult {
    /// It passed.
    Passed,
    /// The code under test failed it: a one-line message and the full text.
    Failed {
        /// One line.
        message: String,
        /// The full text.
        text: String,
    },
    /// It could not be run or judged (the machine, the checker, an interruption): a message
    /// and the full text.
    Error {
        /// One line.
        message: String,
        /// The full text.
        text: String,
    },
    /// It was not run, and why.
    Skipped(String),
}

impl Suite {
    /// The suite as a JUnit XML document.
    pub fn render(&self) -> String {
        let count = |f: fn(&CaseResult) -> bool| self.cases.iter().filter(|c| f(&c.result)).count();
        let failures = count(|r| matches!(r, CaseResult::Failed { .. }));
        let errors = count(|r| matches!(r, CaseResult::Error { .. }));
        let skipped = count(|r| matches!(r, CaseResult::Skipped(_)));
        let time: f64 = self.cases.iter().map(|c| c.seconds).sum();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        xml.push_str(&format!(
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
            escape(&self.name),
            self.cases.len()
        ));
        if !self.properties.is_empty() {
            xml.push_str("  <properties>");
            for (name, value) in &self.properties {
                xml.push_str(&format!("<property name=\"{}\" value=\"{}\"/>", escape(name), escape(value)));
            }
            xml.push_str("</properties>\n");
        }
        for case in &self.cases {
            let head = format!(
                "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                escape(&case.classname),
                escape(&case.name),
                case.seconds
            );
            match &case.result {
                CaseResult::Passed => xml.push_str(&format!("{head}/>\n")),
                CaseResult::Failed { message, text } | CaseResult::Error { message, text } => {
                    let tag = if matches!(case.result, CaseResult::Failed { .. }) { "failure" } else { "error" };
                    xml.push_str(&format!(
                        "{head}>\n    <{tag} message=\"{}\">{}</{tag}>\n  </testcase>\n",
                        escape(message),
                        escape(text)
                    ));
                }
                CaseResult::Skipped(why) => {
                    xml.push_str(&format!("{head}><skipped message=\"{}\"/></testcase>\n", escape(why)));
                }
            }
        }
        xml.push_str("</testsuite>\n");
        xml
    }
}

/// Text safe in XML attributes and elements: markup escaped, characters XML 1.0 forbids
/// replaced with U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // Newlines inside an attribute would be normalised to spaces by a reader: keep them.
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if allowed_in_xml(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// XML 1.0's `Char` production, without the three whitespace characters escaped above.
fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_characters_xml_forbids_are_replaced() {
        assert_eq!(
            escape("a<b> & \"c\"\x01\u{FFFE}\u{FFFF}é\n"),
            "a&lt;b&gt; &amp; &quot;c&quot;\u{FFFD}\u{FFFD}\u{FFFD}é&#10;"
        );
    }

    #[test]
    fn a_suite_counts_failures_errors_and_skips() {
        let case = |name: &str, result| Case { classname: "tester".into(), name: name.into(), seconds: 0.5, result };
        let suite = Suite {
            name: "xps-check stage 7".into(),
            properties: vec![("command".into(), "./xps".into())],
            cases: vec![
                case("a", CaseResult::Passed),
                case("b", CaseResult::Failed { message: "wrong".into(), text: "wrong\nreply".into() }),
                case("c", CaseResult::Error { message: "interrupted".into(), text: "interrupted".into() }),
                case("d", CaseResult::Skipped("not run".into())),
            ],
        };
        let xml = suite.render();
        assert!(xml.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"2.000\""), "{xml}");
        assert!(xml.contains("<failure message=\"wrong\">wrong&#10;reply</failure>"), "{xml}");
        assert!(xml.contains("<error message=\"interrupted\">"), "{xml}");
        assert!(xml.contains("<skipped message=\"not run\"/>"), "{xml}");
    }
}
