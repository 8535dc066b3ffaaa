//! The one list of checks.
//!
//! Every check of the workspace is declared once, in [`with_checks!`](crate::with_checks): its id (the name of its
//! `#[test]`, which starts with its milestone's prefix), the stages it runs on, its milestone,
//! its time limit, whether `scripts/check-build.sh` runs it against any build (a learner's C
//! included), the page functions it can blame, what it expects in the page's words, and the
//! function that runs it. Everything else reads that list:
//!
//! - [`CHECKS`], the table `xps-check` and `xps-exercise` iterate;
//! - the `#[test]` functions `cargo test` runs, generated in each stage's crate by
//!   [`stage_tests!`](crate::stage_tests) (the checks that start the stage's binary) and
//!   [`in_process_tests!`](crate::in_process_tests) (those compiled into the stage itself,
//!   whose bodies live in `stageNN/tests/unit/`).
//!
//! Adding a check is one entry here and its function.

use std::time::Duration;

use crate::checks::ServerCheck;
use crate::harness::Target;
use crate::report::Failure;
use crate::roles::Role;

/// Where a check belongs, in the page's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Milestone {
    /// The page's Milestone #1.
    M1,
    /// The page's Milestone #2.
    M2,
    /// The course's automated check 1.
    CourseCheck1,
    /// The course's automated check 2.
    CourseCheck2,
    /// The course's automated check 3.
    CourseCheck3,
    /// Beyond the course.
    Extra,
    /// The course's tester, as it runs (only `xps-check` runs these).
    Tester,
}

impl Milestone {
    /// Every milestone a stage's `cargo test` has, in order.
    pub const ORDER: [Milestone; 6] = [
        Milestone::M1,
        Milestone::M2,
        Milestone::CourseCheck1,
        Milestone::CourseCheck2,
        Milestone::CourseCheck3,
        Milestone::Extra,
    ];

    /// The prefix of its checks' ids (`milestone_1`), which `cargo test -p stageNN PREFIX` runs.
    pub fn prefix(self) -> &'static str {
        match self {
            Milestone::M1 => "milestone_1",
            Milestone::M2 => "milestone_2",
            Milestone::CourseCheck1 => "course_check_1",
            Milestone::CourseCheck2 => "course_check_2",
            Milestone::CourseCheck3 => "course_check_3",
            Milestone::Extra => "extra",
            Milestone::Tester => "tester",
        }
    }

    /// How it is named to a learner.
    pub fn label(self) -> &'static str {
        match self {
            Milestone::M1 => "Milestone #1",
            Milestone::M2 => "Milestone #2",
            Milestone::CourseCheck1 => "the course's automated check 1",
            Milestone::CourseCheck2 => "the course's automated check 2",
            Milestone::CourseCheck3 => "the course's automated check 3",
            Milestone::Extra => "the workspace's extras (beyond the course)",
            Milestone::Tester => "the course's tester",
        }
    }
}

/// The stages a check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stages {
    /// Stage 6 only.
    Six,
    /// Stage 7 only.
    Seven,
    /// Both.
    Both,
}

impl Stages {
    /// Whether the check runs on `stage`.
    pub fn has(self, stage: u8) -> bool {
        matches!((self, stage), (Stages::Both, _) | (Stages::Six, 6) | (Stages::Seven, 7))
    }
}

/// How a check runs.
#[derive(Clone, Copy)]
pub enum Run {
    /// Against a server the harness starts: the stage's binary on OS-picked ports, or, in
    /// `xps-check`, the learner's command on the stage's default ports.
    Server(ServerCheck),
    /// The same, with `XPS_DEBUG=1`: the check reads the page's DEBUG lines.
    DebugServer(ServerCheck),
    /// The check starts the stage's binary itself (command-line arguments, signals, limits).
    Binary(fn(&Target) -> Result<(), Failure>),
    /// Compiled into the stage's own unit tests, calling the page's functions in-process; the
    /// body is in `stageNN/tests/unit/`.
    InProcess,
    /// A part of the course's tester as it runs (`xps-check`): 0 for the network address, 1 to 3
    /// for its checks.
    Tester(u8),
}

/// One check.
#[derive(Clone, Copy)]
pub struct Check {
    /// Its id: the name of its `#[test]`.
    pub id: &'static str,
    /// The stages it runs on.
    pub stages: Stages,
    /// Where it belongs.
    pub milestone: Milestone,
    /// How long it may take, server start included; it fails when the time is up.
    pub limit: Duration,
    /// Whether `scripts/check-build.sh` runs it against any build (a C build included).
    pub any_build: bool,
    /// The page functions it exercises, the one to blame first when nothing better is known
    /// first.
    pub blames: &'static [Role],
    /// What it expects, in one sentence in the page's words.
    pub expects: &'static str,
    /// How it runs.
    pub run: Run,
}

impl Check {
    /// The check with id `id`; panics if there is none (a `#[test]` generated from this list
    /// always finds its own).
    pub fn get(id: &str) -> &'static Check {
        CHECKS.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no check has the id {id}"))
    }

    /// The checks of `stage` in `milestone`, in the list's order.
    pub fn of(stage: u8, milestone: Milestone) -> impl Iterator<Item = &'static Check> {
        CHECKS.iter().filter(move |c| c.stages.has(stage) && c.milestone == milestone)
    }
}

/// Turns an entry's `run:` into a [`Run`] (the in-process ones' bodies are not reachable from
/// here: they are compiled into the stage).
#[doc(hidden)]
#[macro_export]
macro_rules! __run {
    (in_process($($path:tt)*)) => { $crate::registry::Run::InProcess };
    (server($($path:tt)*)) => { $crate::registry::Run::Server($crate::$($path)*) };
    (debug_server($($path:tt)*)) => { $crate::registry::Run::DebugServer($crate::$($path)*) };
    (binary($($path:tt)*)) => { $crate::registry::Run::Binary($crate::$($path)*) };
    (tester($part:literal)) => { $crate::registry::Run::Tester($part) };
}

/// Builds [`CHECKS`] from the list.
macro_rules! table {
    (; $( $id:ident {
        run: $kind:ident $args:tt,
        stages: $stages:ident,
        milestone: $milestone:ident,
        limit: $limit:literal,
        any_build: $any:literal,
        blames: [$($role:ident),* $(,)?],
        expects: $expects:literal $(,)?
    } )*) => {
        /// Every check, in the list's order (milestones in the page's order).
        pub static CHECKS: &[Check] = &[$(
            Check {
                id: stringify!($id),
                stages: Stages::$stages,
                milestone: Milestone::$milestone,
                limit: Duration::from_secs($limit),
                any_build: $any,
                blames: &[$(Role::$role),*],
                expects: $expects,
                run: $crate::__run!($kind $args),
            },
        )*];
    };
}

crate::with_checks!(table);

/// The `#[test]`s of `stage` that start its binary:
/// `xps_tests::with_checks!(xps_tests::stage_tests, 6);` in `stageNN/tests/checks.rs`.
#[macro_export]
macro_rules! stage_tests {
    ($stage:tt; $( $id:ident { run: $kind:ident $args:tt, stages: $stages:ident, $($rest:tt)* } )*) => {
        $( $crate::stage_tests!(@stage $stage $stages $kind $id); )*
    };
    (@stage 6 Six $kind:ident $id:ident) => { $crate::stage_tests!(@kind 6 $kind $id); };
    (@stage 6 Both $kind:ident $id:ident) => { $crate::stage_tests!(@kind 6 $kind $id); };
    (@stage 7 Seven $kind:ident $id:ident) => { $crate::stage_tests!(@kind 7 $kind $id); };
    (@stage 7 Both $kind:ident $id:ident) => { $crate::stage_tests!(@kind 7 $kind $id); };
    (@stage $($other:tt)*) => {};
    (@kind $stage:tt server $id:ident) => { $crate::stage_tests!(@test $stage $id); };
    (@kind $stage:tt debug_server $id:ident) => { $crate::stage_tests!(@test $stage $id); };
    (@kind $stage:tt binary $id:ident) => { $crate::stage_tests!(@test $stage $id); };
    (@kind $($other:tt)*) => {};
    (@test $stage:tt $id:ident) => {
        #[test]
        fn $id() {
            $crate::harness::test_binary_check(stringify!($id), $stage);
        }
    };
}

/// The in-process `#[test]`s of `stage`:
/// `xps_tests::with_checks!(xps_tests::in_process_tests, 6);` in `stageNN/tests/unit/mod.rs`. Each entry's `run: in_process(PATH)` names its body,
/// `fn() -> Result<(), Failure>`, relative to that module.
#[macro_export]
macro_rules! in_process_tests {
    ($stage:tt; $( $id:ident { run: $kind:ident $args:tt, stages: $stages:ident, $($rest:tt)* } )*) => {
        $( $crate::in_process_tests!(@stage $stage $stages $kind $id $args); )*
    };
    (@stage 6 Six in_process $id:ident $args:tt) => { $crate::in_process_tests!(@test 6 $id $args); };
    (@stage 6 Both in_process $id:ident $args:tt) => { $crate::in_process_tests!(@test 6 $id $args); };
    (@stage 7 Seven in_process $id:ident $args:tt) => { $crate::in_process_tests!(@test 7 $id $args); };
    (@stage 7 Both in_process $id:ident $args:tt) => { $crate::in_process_tests!(@test 7 $id $args); };
    (@stage $($other:tt)*) => {};
    (@test $stage:tt $id:ident ($($body:tt)*)) => {
        #[test]
        fn $id() {
            $crate::harness::test_in_process_check(stringify!($id), $stage, $($body)*);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_an_id_of_its_own_that_starts_with_its_milestone() {
        for (i, check) in CHECKS.iter().enumerate() {
            assert!(
                CHECKS[..i].iter().all(|other| other.id != check.id),
                "the id {} is declared twice in tests/src/list.rs",
                check.id
            );
            assert!(
                check.id.starts_with(check.milestone.prefix()),
                "{} is in {:?}, so its id must start with `{}`",
                check.id,
                check.milestone,
                check.milestone.prefix()
            );
        }
    }
}
