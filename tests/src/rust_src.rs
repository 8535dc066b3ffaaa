//! Just enough of a Rust lexer to find a function's body: which bytes are code (not a comment,
//! string or char literal), `fn NAME`, its parameter names, and the braces of its body. The
//! exercise mode builds skeletons and hints with it; the harness finds which function a panic's
//! `FILE:LINE` is in.

/// Where one function sits in a source file (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnSpan {
    /// Start of the line holding `fn NAME` (its indentation included).
    pub line_start: usize,
    /// Start of the item: its doc comments and attributes, if any, else `line_start`.
    pub item_start: usize,
    /// The body's `{`.
    pub body_open: usize,
    /// The body's closing `}`.
    pub body_close: usize,
    /// The parameters' names (`self` for a method, none for `_` patterns).
    pub params: Vec<String>,
    /// The indentation of the `fn` line.
    pub indent: String,
}

impl FnSpan {
    /// The whole body, braces included.
    pub fn body<'a>(&self, src: &'a str) -> &'a str {
        &src[self.body_open..=self.body_close]
    }

    /// The function from its `fn` line to its closing brace.
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.line_start..=self.body_close]
    }

    /// The 1-based line number of the `fn` line.
    pub fn line(&self, src: &str) -> usize {
        line_of(src, self.line_start)
    }
}

/// The 1-based line number of byte `offset`.
pub fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// For each byte of `src`, whether it is code: false inside comments, string, byte-string,
/// raw-string and char literals (their delimiters included).
pub fn code_mask(src: &str) -> Vec<bool> {
    let s = src.as_bytes();
    let mut mask = vec![true; s.len()];
    let mut i = 0;
    let mark = |mask: &mut Vec<bool>, from: usize, to: usize| {
        for m in &mut mask[from..to.min(s.len())] {
            *m = false;
        }
    };
    while i < s.len() {
        let c = s[i];
        let prev_ident = i > 0 && is_ident(s[i - 1]);
        if c == b'/' && s.get(i + 1) == Some(&b'/') {
            let end = s[i..].iter().position(|&b| b == b'\n').map_or(s.len(), |p| i + p);
            mark(&mut mask, i, end);
            i = end;
        } else if c == b'/' && s.get(i + 1) == Some(&b'*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < s.len() && depth > 0 {
                if s[j] == b'/' && s.get(j + 1) == Some(&b'*') {
                    depth += 1;
                    j += 2;
                } else if s[j] == b'*' && s.get(j + 1) == Some(&b'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            mark(&mut mask, i, j);
            i = j;
        } else if !prev_ident
            && ((c == b'r' && raw_string_start(s, i))
                || (matches!(c, b'b' | b'c') && s.get(i + 1) == Some(&b'r') && raw_string_start(s, i + 1)))
        {
            let r = if c == b'r' { i } else { i + 1 };
            let hashes = s[r + 1..].iter().take_while(|&&b| b == b'#').count();
            let body = r + 1 + hashes + 1;
            let mut j = body;
            let end = loop {
                if j >= s.len() {
                    break s.len();
                }
                if s[j] == b'"' && s[j + 1..].iter().take(hashes).filter(|&&b| b == b'#').count() == hashes {
                    break j + 1 + hashes;
                }
                j += 1;
            };
            mark(&mut mask, i, end);
            i = end;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != b'"' {
                j += if s[j] == b'\\' { 2 } else { 1 };
            }
            mark(&mut mask, i, j + 1);
            i = j + 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}', b'x') or a lifetime / label ('a, 'static).
            if s.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < s.len() && s[j] != b'\'' {
                    j += if s[j] == b'\\' { 2 } else { 1 };
                }
                mark(&mut mask, i, j + 1);
                i = j + 1;
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                if s.get(i + 1 + ch_len) == Some(&b'\'') {
                    mark(&mut mask, i, i + 2 + ch_len);
                    i += 2 + ch_len;
                } else {
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    mask
}

fn raw_string_start(s: &[u8], r: usize) -> bool {
    let hashes = s[r + 1..].iter().take_while(|&&b| b == b'#').count();
    s.get(r + 1 + hashes) == Some(&b'"')
}

/// Finds `fn NAME` (in code, not in a comment or string) with a body, and its parts.
pub fn find_fn(src: &str, name: &str) -> Option<FnSpan> {
    all_fns(src).into_iter().find(|(found, _)| found == name).map(|(_, span)| span)
}

/// Every `fn NAME` with a body in `src`, in order: its name and its parts.
pub fn all_fns(src: &str) -> Vec<(String, FnSpan)> {
    let mask = code_mask(src);
    let s = src.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = src[from..].find("fn").map(|p| p + from) {
        from = pos + 2;
        if !mask[pos] || (pos > 0 && is_ident(s[pos - 1])) || !s.get(pos + 2).is_some_and(u8::is_ascii_whitespace) {
            continue;
        }
        let mut j = pos + 2;
        while j < s.len() && s[j].is_ascii_whitespace() {
            j += 1;
        }
        let len = s[j..].iter().take_while(|&&b| is_ident(b)).count();
        if len == 0 {
            continue;
        }
        if let Some(span) = fn_parts(src, &mask, pos, j + len) {
            found.push((src[j..j + len].to_string(), span));
        }
    }
    found
}

/// The innermost function whose lines (from `fn` to its closing brace) hold 1-based `line`.
pub fn enclosing_fn(src: &str, line: usize) -> Option<(String, FnSpan)> {
    all_fns(src)
        .into_iter()
        .filter(|(_, span)| (span.line(src)..=line_of(src, span.body_close)).contains(&line))
        .min_by_key(|(_, span)| span.body_close - span.line_start)
}

/// From just after the name: the parameters, then the body's braces.
fn fn_parts(src: &str, mask: &[bool], fn_pos: usize, after_name: usize) -> Option<FnSpan> {
    let s = src.as_bytes();
    let mut depth = 0i32; // () [] <>, outside the body
    let mut params_open = None;
    let mut params_close = None;
    let mut body_open = None;
    let mut i = after_name;
    while i < s.len() {
        if mask[i] {
            match s[i] {
                b'(' | b'[' | b'<' => {
                    if s[i] == b'(' && depth == 0 && params_open.is_none() {
                        params_open = Some(i);
                    }
                    depth += 1;
                }
                b'>' if i > 0 && s[i - 1] == b'-' => {}
                b')' | b']' | b'>' => {
                    depth -= 1;
                    if s[i] == b')' && depth == 0 && params_close.is_none() && params_open.is_some() {
                        params_close = Some(i);
                    }
                }
                b';' if depth == 0 => return None,
                b'{' if depth == 0 && params_close.is_some() => {
                    body_open = Some(i);
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    let body_open = body_open?;
    let mut depth = 0;
    let mut body_close = None;
    for (k, &b) in s.iter().enumerate().skip(body_open) {
        if !mask[k] {
            continue;
        }
        if b == b'{' {
            depth += 1;
        } else if b == b'}' {
            depth -= 1;
            if depth == 0 {
                body_close = Some(k);
                break;
            }
        }
    }
    let line_start = src[..fn_pos].rfind('\n').map_or(0, |p| p + 1);
    let indent: String = src[line_start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect();
    let params = param_names(&src[params_open? + 1..params_close?], &mask[params_open? + 1..params_close?]);
    Some(FnSpan {
        line_start,
        item_start: item_start(src, line_start),
        body_open,
        body_close: body_close?,
        params,
        indent,
    })
}

/// The first line of the doc comments and attributes right above `line_start`.
fn item_start(src: &str, line_start: usize) -> usize {
    let mut start = line_start;
    while start > 0 {
        let prev_start = src[..start - 1].rfind('\n').map_or(0, |p| p + 1);
        let prev = src[prev_start..start - 1].trim_start();
        if prev.starts_with("///") || prev.starts_with("#[") {
            start = prev_start;
        } else {
            break;
        }
    }
    start
}

/// The names bound by a parameter list (`a: A, mut b: B, _: C, &self`).
fn param_names(params: &str, mask: &[bool]) -> Vec<String> {
    let s = params.as_bytes();
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, &b) in s.iter().enumerate() {
        if !mask[i] {
            continue;
        }
        match b {
            b'(' | b'[' | b'<' | b'{' => depth += 1,
            b'>' if i > 0 && s[i - 1] == b'-' => {}
            b')' | b']' | b'>' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&params[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&params[start..]);
    parts
        .into_iter()
        .filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            let pattern = part.split(':').next()?.trim().trim_start_matches('&').trim();
            // `&'a self`, `&'a mut self`
            let pattern = if pattern.starts_with('\'') {
                pattern.split_once(' ').map_or(pattern, |(_, p)| p).trim()
            } else {
                pattern
            };
            let pattern = pattern.strip_prefix("mut ").unwrap_or(pattern).trim();
            (!pattern.starts_with('_') && pattern.bytes().all(is_ident)).then(|| pattern.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r###"
//! fn hidden() { in a doc comment }
/// Doc.
#[inline]
pub fn target<'a, T: Into<u8>>(a: &'a str, mut b: Vec<u8>, _c: u8, f: fn(u8) -> u8) -> Option<u8> {
    let s = "}{ \" }";
    let r = r#"} "{ "#;
    let c = '}';
    let d = b'{';
    let e = '\'';
    /* } /* nested { */ } */
    'outer: loop { break 'outer; }
    // }
    if true { Some(1) } else { None }
}
fn after(x: u8) {}
"###;

    #[test]
    fn finds_the_body_whatever_braces_hide_in_strings_chars_lifetimes_and_comments() {
        let span = find_fn(SRC, "target").expect("found");
        let body = span.body(SRC);
        assert!(body.starts_with("{\n    let s"), "{body}");
        assert!(body.ends_with("else { None }\n}"), "{body}");
        assert_eq!(span.params, ["a", "b", "f"]);
        assert!(SRC[span.item_start..].starts_with("/// Doc."));
        assert_eq!(span.line(SRC), 5);
        assert!(find_fn(SRC, "hidden").is_none(), "fn in a comment is not a function");
        assert!(find_fn(SRC, "targ").is_none(), "whole names only");
        assert_eq!(find_fn(SRC, "after").unwrap().params, ["x"]);
    }

    #[test]
    fn the_enclosing_function_of_a_line_is_the_innermost() {
        let src = "fn outer() {\n    fn inner() {\n        x();\n    }\n    y();\n}\nfn next() {}\n";
        assert_eq!(enclosing_fn(src, 3).map(|(name, _)| name).as_deref(), Some("inner"));
        assert_eq!(enclosing_fn(src, 5).map(|(name, _)| name).as_deref(), Some("outer"));
        assert_eq!(enclosing_fn(src, 7).map(|(name, _)| name).as_deref(), Some("next"));
        assert_eq!(enclosing_fn(src, 8), None);
        let names: Vec<String> = all_fns(SRC).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["target", "after"]);
    }

    #[test]
    fn methods_and_no_parameters() {
        let src = "impl A {\n    pub fn wake(&self) {\n        x();\n    }\n}\nfn main() {}\n";
        let span = find_fn(src, "wake").unwrap();
        assert_eq!(span.params, ["self"]);
        assert_eq!(span.indent, "    ");
        assert!(find_fn(src, "main").unwrap().params.is_empty());
    }
}
