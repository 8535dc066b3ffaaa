//! The per-stage manifests (`tests/exercises/stageNN.txt`): the functions a learner writes,
//! where each is, which page section explains it, which milestone first checks it, and the
//! hints. The code itself is never copied here: the skeleton and hint level 3 come from the
//! reference solution in `stageNN/src`.
//!
//! Format: `key: value` lines; `[NAME]` starts a function; `hint1:` and `hint2:` are followed
//! by their text, indented by four spaces; `#` starts a comment line.

use xps_tests::Milestone;

/// The milestone whose prefix (`milestone_1`, `extra`, ...) is `prefix`: the registry's
/// [`Milestone::ORDER`] is the one list of milestones.
pub fn milestone_named(prefix: &str) -> Option<Milestone> {
    Milestone::ORDER.into_iter().find(|m| m.prefix() == prefix)
}

/// One learner-written function.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its name, as in the code and the page.
    pub name: String,
    /// Its file, relative to the workspace root.
    pub file: String,
    /// The page's section that explains it.
    pub section: String,
    /// The first milestone whose checks fail while it is `todo!()`.
    pub milestone: Milestone,
    /// Stage 7: the stage 6 function whose logic the page says it keeps.
    pub stage6: Option<String>,
    /// For `main`: the skeleton keeps the body's lines up to the one containing this text.
    pub keep_through: Option<String>,
    /// Hint level 1 (what the page asks) and level 2 (the steps in Rust terms).
    pub hints: [String; 2],
}

impl Function {
    /// A function called `name`, to be filled in by the manifest's lines.
    pub fn named(name: &str) -> Function {
        Function {
            name: name.to_string(),
            file: String::new(),
            section: String::new(),
            milestone: Milestone::M1,
            stage6: None,
            keep_through: None,
            hints: Default::default(),
        }
    }
}

/// One stage's manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// 6 or 7.
    pub stage: u8,
    /// The crate (`stage06`).
    pub krate: String,
    /// The course page's file name.
    pub page: String,
    /// The crate root, where `start` adds the allow line.
    pub crate_root: String,
    /// The learner-written functions, in the page's order.
    pub functions: Vec<Function>,
}

impl Manifest {
    /// The function called `name`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The source folder (`stage06/src`).
    pub fn src_dir(&self) -> String {
        format!("{}/src", self.krate)
    }

    /// The files that hold learner functions, each once, in manifest order.
    pub fn files(&self) -> Vec<String> {
        let mut files: Vec<String> = Vec::new();
        for f in &self.functions {
            if !files.contains(&f.file) {
                files.push(f.file.clone());
            }
        }
        files
    }
}

const STAGE06: &str = include_str!("../../../exercises/stage06.txt");
const STAGE07: &str = include_str!("../../../exercises/stage07.txt");

/// The manifest of `stage` (6 or 7).
pub fn load(stage: u8) -> Option<Manifest> {
    let text = match stage {
        6 => STAGE06,
        7 => STAGE07,
        _ => return None,
    };
    Some(parse(text).unwrap_or_else(|e| panic!("tests/exercises/stage0{stage}.txt: {e}")))
}

/// Parses a manifest.
pub fn parse(text: &str) -> Result<Manifest, String> {
    let mut manifest = Manifest::default();
    let mut hint: Option<usize> = None;
    // Whether each function has its `milestone:` line (there is no default).
    let mut milestone_given: Vec<bool> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if let Some(level) = hint {
            if let Some(rest) = line.strip_prefix("    ") {
                let f = manifest.functions.last_mut().ok_or(format!("line {n}: hint outside a function"))?;
                f.hints[level].push_str(rest);
                f.hints[level].push('\n');
                continue;
            }
            if line.trim().is_empty() {
                if let Some(f) = manifest.functions.last_mut() {
                    f.hints[level].push('\n');
                }
                continue;
            }
            hint = None;
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            manifest.functions.push(Function::named(name));
            milestone_given.push(false);
            continue;
        }
        let (key, value) = trimmed.split_once(':').ok_or(format!("line {n}: expected `key: value`"))?;
        let value = value.trim().to_string();
        let Some(f) = manifest.functions.last_mut() else {
            match key {
                "stage" => manifest.stage = value.parse().map_err(|_| format!("line {n}: bad stage"))?,
                "crate" => manifest.krate = value,
                "page" => manifest.page = value,
                "crate_root" => manifest.crate_root = value,
                _ => return Err(format!("line {n}: unknown key `{key}`")),
            }
            continue;
        };
        match key {
            "file" => f.file = value,
            "section" => f.section = value,
            "milestone" => {
                f.milestone = milestone_named(&value).ok_or(format!("line {n}: unknown milestone `{value}`"))?;
                if let Some(given) = milestone_given.last_mut() {
                    *given = true;
                }
            }
            "stage6" => f.stage6 = Some(value),
            "keep_through" => f.keep_through = Some(value),
            "hint1" | "hint2" => hint = Some(if key == "hint1" { 0 } else { 1 }),
            _ => return Err(format!("line {n}: unknown key `{key}`")),
        }
    }
    for (f, milestone_given) in manifest.functions.iter_mut().zip(milestone_given) {
        for h in &mut f.hints {
            *h = h.trim_end().to_string();
        }
        if f.file.is_empty() || f.section.is_empty() || !milestone_given || f.hints.iter().any(String::is_empty) {
            return Err(format!("[{}] needs file, section, milestone, hint1 and hint2", f.name));
        }
    }
    if manifest.krate.is_empty() || manifest.crate_root.is_empty() || manifest.functions.is_empty() {
        return Err("needs stage, crate, page, crate_root and functions".into());
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_manifests_parse_and_list_their_milestone_functions_in_page_order() {
        for stage in [6, 7] {
            let m = load(stage).unwrap();
            assert_eq!(m.stage, stage);
            let order: Vec<Milestone> = m.functions.iter().map(|f| f.milestone).collect();
            assert!(order.windows(2).all(|w| w[0] <= w[1]), "stage {stage}: functions in milestone order");
        }
    }
}
