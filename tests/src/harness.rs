//! Runs one check the same way for every front-end.
//!
//! [`execute`] runs a check's body on a thread of its own and waits at most the check's time
//! limit, so no check can hang its caller; it catches panics (the code under test's, which the
//! panic hook records with a backtrace, and a check's own failure, raised with [`fail`]); it puts
//! the best-founded blame first ([`crate::blame`]); and it writes the check's records when asked
//! ([`crate::record`]). The `#[test]`s the registry generates call [`test_binary_check`] and
//! [`test_in_process_check`], which print the failure for `cargo test` and fail the test.
//!
//! Code under test that runs on threads of its own (a loop, a core) is started with [`spawn`],
//! so its panics are the check's; a check says which page function it is calling with
//! [`calling`], so a call that never returns is blamed on that function.

use std::any::Any;
use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, Once, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::Server;
use crate::blame::{self, Build, Evidence, Source};
use crate::panic::Panic;
use crate::record::{self, Event, Record};
use crate::registry::{Check, Run};
use crate::report::Failure;

/// The stage binary a check runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// 6 or 7.
    pub stage: u8,
    /// The server binary.
    pub bin: PathBuf,
    /// How many ports the stage listens on (3 for stage 6, 4 for stage 7).
    pub n_ports: usize,
    /// The ports it listens on when given none.
    pub default_ports: &'static [u16],
}

impl Target {
    /// The workspace's binary of `stage`, found (and built if needed) at run time.
    pub fn of_stage(stage: u8) -> Target {
        let (n_ports, default_ports): (usize, &'static [u16]) = match stage {
            6 => (3, &[8001, 8002, 8003]),
            _ => (4, &[8001, 8002, 8003, 8004]),
        };
        Target { stage, bin: crate::workspace_binary(&format!("stage0{stage}")), n_ports, default_ports }
    }

    /// `BIN --host 127.0.0.1 ARGS...`, with `RUST_BACKTRACE=1` so a panic comes with the frames
    /// the harness reads its blame from.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("RUST_BACKTRACE", "1").args(["--host", "127.0.0.1"]).args(args);
        cmd
    }

    /// Starts the stage on OS-picked ports (with `XPS_DEBUG=1` if `debug`), listening.
    pub fn start_server(&self, debug: bool) -> Result<Server, Failure> {
        let ports = vec!["0"; self.n_ports];
        let mut cmd = self.command(&ports);
        if debug {
            cmd.env("XPS_DEBUG", "1");
        }
        let server = Server::spawn(cmd, self.n_ports)?;
        crate::diagnose::verify_listening(&server)?;
        Ok(server)
    }
}

// ---------------------------------------------------------------------------------------------
// What the code under test did during a check

/// A check's context, shared by every thread the check runs code on.
struct Context {
    /// The page function each thread is calling now, innermost last. Its room is reserved up
    /// front, so that saying which function is called allocates nothing on the check's threads
    /// (checks count the bytes the code under test allocates).
    calling: Mutex<Vec<&'static str>>,
    /// Panics of the code under test.
    panics: Mutex<Vec<Panic>>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Arc<Context>>> = const { RefCell::new(None) };
}

fn current() -> Option<Arc<Context>> {
    CONTEXT.with_borrow(Clone::clone)
}

/// Starts a thread for code under test, named `name`, that belongs to the running check.
pub fn spawn<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let context = current();
    thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            CONTEXT.set(context);
            f()
        })
        .expect("spawn a thread")
}

/// Says that the check is calling the page function `function` until the guard is dropped.
pub fn calling(function: &'static str) -> Calling {
    if let Some(context) = current() {
        context.calling.lock().unwrap_or_else(PoisonError::into_inner).push(function);
    }
    Calling(())
}

/// See [`calling`].
pub struct Calling(());

impl Drop for Calling {
    fn drop(&mut self) {
        if let Some(context) = current() {
            context.calling.lock().unwrap_or_else(PoisonError::into_inner).pop();
        }
    }
}

/// Puts first on `failure` the page function the check is calling now, as one that never
/// returned: for a check whose own wait for code under test ran out.
pub fn stuck(failure: Failure) -> Failure {
    let Some(function) =
        current().and_then(|c| c.calling.lock().unwrap_or_else(PoisonError::into_inner).last().cloned())
    else {
        return failure;
    };
    failure.blame_with(crate::report::Blame::never_returned(function))
}

/// Ends the check with `failure`: an in-process check's way to fail from deep inside its code.
pub fn fail(failure: Failure) -> ! {
    std::panic::panic_any(failure)
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(f) = payload.downcast_ref::<Failure>() {
        f.summary.clone()
    } else {
        "(a panic without a message)".into()
    }
}

/// Records every panic of code under test in its check's context, with a backtrace; a check's
/// own [`fail`] is not a panic of the code and is not printed.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Failure>().is_some() {
                return;
            }
            if let Some(context) = current() {
                let at = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                let backtrace = std::backtrace::Backtrace::force_capture().to_string();
                let panic = Panic::from_hook(panic_message(info.payload()), at, &backtrace);
                context.panics.lock().unwrap_or_else(PoisonError::into_inner).push(panic);
            }
            previous(info);
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// Running a check

/// How a check ran.
#[derive(Debug)]
pub struct Outcome {
    /// Passed, or failed and why (blame resolved).
    pub result: Result<(), Failure>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Runs `body` as `check` against `stage` within the check's time limit and returns its
/// outcome, the blame resolved for `build` with `source` (the stage's Rust sources, when at
/// hand). Records the start and the end when [`record::RECORDS_ENV`] names a file.
pub fn execute(
    check: &Check,
    stage: u8,
    build: Build,
    source: Option<&Source>,
    body: impl FnOnce() -> Result<(), Failure> + Send + 'static,
) -> Outcome {
    install_panic_hook();
    record::append_if_asked(&Record { id: check.id.into(), stage, event: Event::Started });
    let started = Instant::now();
    let context = Arc::new(Context { calling: Mutex::new(Vec::with_capacity(16)), panics: Mutex::new(Vec::new()) });
    let (tx, rx) = mpsc::channel();
    let on_thread = Arc::clone(&context);
    let thread = thread::Builder::new()
        .name(check.id.into())
        .spawn(move || {
            CONTEXT.set(Some(on_thread));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = tx.send(result);
        })
        .expect("spawn a thread");
    let (result, timed_out) = match rx.recv_timeout(check.limit) {
        Ok(Ok(result)) => (result, false),
        Ok(Err(payload)) => match payload.downcast::<Failure>() {
            Ok(failure) => (Err(*failure), false),
            Err(payload) => {
                (Err(Failure::new(format!("the check stopped on a panic: {}", panic_message(&*payload)))), false)
            }
        },
        Err(_) => {
            (Err(Failure::new(format!("the check did not finish within its time limit of {:?}", check.limit))), true)
        }
    };
    // A stuck thread is left behind: the process ends it on exit.
    if !timed_out {
        let _ = thread.join();
    }
    let result = result.map_err(|failure| {
        let panics = context.panics.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let hung =
            timed_out.then(|| context.calling.lock().unwrap_or_else(PoisonError::into_inner).last().cloned()).flatten();
        let evidence = Evidence { panics: &panics, hung_in: hung, default: check.blames.first().copied() };
        blame::resolve(failure, &evidence, stage, source, build)
    });
    let outcome = Outcome { result, elapsed: started.elapsed() };
    record::append_if_asked(&Record {
        id: check.id.into(),
        stage,
        event: Event::Finished { seconds: outcome.elapsed.as_secs_f64(), outcome: outcome.result.clone() },
    });
    outcome
}

/// A server shared by the harness and the check's thread, so that the harness can stop it
/// when the check runs out of time.
type ServerSlot = Arc<Mutex<Option<Arc<Server>>>>;

/// The body of a check that runs against the stage's binary.
fn binary_body(check: &'static Check, target: Target, slot: ServerSlot) -> impl FnOnce() -> Result<(), Failure> + Send {
    move || match check.run {
        Run::Server(f) | Run::DebugServer(f) => {
            let server = Arc::new(target.start_server(matches!(check.run, Run::DebugServer(_)))?);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&server));
            f(&server)
        }
        Run::Binary(f) => f(&target),
        Run::InProcess | Run::Tester(_) => {
            Err(Failure::new(format!("{} does not run against the stage's binary", check.id)))
        }
    }
}

/// The `#[test]` of a check that runs against the stage's binary: prints the failure for
/// `cargo test` and fails the test.
pub fn test_binary_check(id: &str, stage: u8) {
    let check = Check::get(id);
    let target = Target::of_stage(stage);
    let slot: ServerSlot = Arc::default();
    let outcome =
        execute(check, stage, Build::Rust, Source::find(stage).as_ref(), binary_body(check, target, Arc::clone(&slot)));
    if let Some(server) = slot.lock().unwrap_or_else(PoisonError::into_inner).take() {
        // The check's thread is done with it, or stuck: stop the server either way.
        server.signal(libc::SIGKILL);
    }
    conclude(outcome, stage);
}

/// The `#[test]` of an in-process check: `body` calls the page's functions.
pub fn test_in_process_check(id: &str, stage: u8, body: fn() -> Result<(), Failure>) {
    // The in-process checks of a test binary run one at a time, from finding the sources to
    // the printed result. Several count the process's open fds, and one needs the kernel to
    // hand its next eventfd the number it just closed: an fd another check opened meanwhile
    // (reading Cargo.toml, writing a record, resolving a panic's backtrace) would spoil them.
    // A check that runs out of time lets the next one go; its stuck thread stays behind.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let check = Check::get(id);
    let outcome = execute(check, stage, Build::Rust, Source::find(stage).as_ref(), body);
    conclude(outcome, stage);
}

/// Prints a failure where `cargo test` shows it (the test's captured output) and fails the test
/// without a second panic message pointing into the kit.
fn conclude(outcome: Outcome, stage: u8) {
    if let Err(failure) = outcome.result {
        println!("\n{}", failure.render(stage));
        std::panic::resume_unwind(Box::new(failure.summary.clone()));
    }
}

/// Runs a server check against `server` and panics with its report if it fails: for the kit's
/// own tests, which run checks against fake servers.
pub fn run(server: &Server, check: fn(&Server) -> Result<(), Failure>) {
    if let Err(failure) = check(server) {
        panic!("\n{failure}");
    }
}
