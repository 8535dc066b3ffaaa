//! What stage 7's in-process checks share (`milestone_1`, `milestone_2`, `modules`,
//! `extra_checks`): a thread that runs a loop under a time limit, callbacks that record what they
//! were given, what the loop thread is doing when it is stuck, and a lock for checks that count
//! or reuse fds. (The bytes each thread allocates are counted in `alloc.rs`.)
//!
//! The checks use only the stage's own signatures of the page's prototypes
//! (`xps_loop_create/destroy/attach/detach/run`) and the given `LoopWaker`, never the loop's
//! fields: a loop written the page's way (a list searched for the event) passes them as ours
//! (a table indexed by fd) does.

use std::cell::RefCell;
use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};

use std::time::Duration;

use shared::sys;
use xps_tests::harness::{self, calling};

use super::alloc::net_blocks;
use xps_tests::{Failure, Role};

use crate::core::xps_loop::{
    LoopEvent, xps_loop_attach, xps_loop_create, xps_loop_destroy, xps_loop_detach, xps_loop_run,
};
use crate::given::loop_waker::{LoopWaker, xps_loop_waker};
use crate::xps::{XpsHandler, XpsLoop};

/// How long a check waits for a loop (or a core) before calling it stuck.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub use xps_tests::harness::{fail, panic_message};

mod stuck;
use stuck::stuck;

// ---------------------------------------------------------------------------------------------
// File descriptors

/// How many fds the process has open.
pub fn open_fds() -> usize {
    loop_fds().len()
}

/// The process's fds of the kinds a loop and its instances open: sockets, epoll instances and
/// eventfds. Files the test harness itself opens meanwhile (its records, a backtrace's debug
/// info) are not counted.
fn loop_fds() -> Vec<xps_tests::procfs::Fd> {
    let fds = xps_tests::procfs::own_fds().unwrap_or_else(|e| fail(Failure::new(format!("read /proc/self/fd: {e}"))));
    fds.into_iter()
        .filter(|f| f.target.to_str().is_some_and(|t| t.starts_with("socket:") || t.starts_with("anon_inode:")))
        .collect()
}

/// What those fds are, for a failure message (`7 -> anon_inode:[eventpoll]`).
pub fn describe_open_fds() -> String {
    loop_fds().iter().map(|f| format!("{} -> {}", f.fd, f.target.display())).collect::<Vec<_>>().join(", ")
}

/// A new eventfd: an fd the checks make readable when they want (`sys::eventfd_signal`).
pub fn eventfd() -> OwnedFd {
    sys::eventfd().expect("eventfd()")
}

// ---------------------------------------------------------------------------------------------
// Running code on a thread of its own, under a time limit

/// Runs `f` on a new thread and waits up to [`TIMEOUT`] for it. A loop is not `Send`, so `f`
/// creates its own. If `f` panics (a `todo!()`, say), panics with its message, saying what it
/// was doing (`doing()` at that moment); if it does not finish in time, panics with
/// `stuck(...)`'s failure. The stuck thread is left behind; the test binary ends it on exit.
pub fn within<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
    doing: impl Fn() -> String,
    stuck: impl FnOnce() -> Failure,
) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = harness::spawn("loop", move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(value) => {
            let _ = thread.join();
            value
        }
        Err(mpsc::RecvTimeoutError::Timeout) => fail(stuck()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let payload = thread.join().expect_err("the thread ended without a result, so it panicked");
            match payload.downcast::<Failure>() {
                // A check's own failure raised on the loop thread.
                Ok(failure) => fail(*failure),
                // The harness recorded the panic, with its backtrace, and blames from it.
                Err(payload) => fail(Failure::new(format!("panicked {}: {}", doing(), panic_message(&*payload)))),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A loop with recording callbacks

/// How many test instances (fds with a callback and a ptr) a scenario has at most.
pub const SLOTS: usize = 4;

/// Where the loop thread is, for the message when it is stuck or panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Creating,
    Attaching,
    Running,
    Destroying,
    Done,
}

impl Phase {
    fn doing(self) -> &'static str {
        match self {
            Phase::Creating => "in xps_loop_create()",
            Phase::Attaching => "while attaching the test's fds (xps_loop_attach)",
            Phase::Running => "in xps_loop_run() or a callback it called",
            Phase::Destroying => "in xps_loop_destroy()",
            Phase::Done => "after xps_loop_destroy()",
        }
    }
}

/// What the loop thread reports as it goes, readable from the test thread even when the loop
/// thread is stuck.
pub struct Progress {
    phase: AtomicU8,
    /// How many times each slot's callback was called.
    pub calls: [AtomicU32; SLOTS],
    /// Whether a callback has asked the loop to stop (`LoopWaker::wake`).
    pub woken: AtomicBool,
    /// A scenario's own value (the fd-reuse check: whether the fd number was reused).
    pub note: AtomicI64,
    /// The loop thread's id, to see where it waits (`/proc/self/task/<tid>/wchan`); 0 unknown.
    tid: AtomicI32,
    /// The fewest loop events an `xps_loop_attach()` kept (1: it keeps the one it created),
    /// `i64::MAX` before any attach.
    kept_by_attach: AtomicI64,
    /// The fewest loop events an `xps_loop_detach()` destroyed (1), `i64::MAX` before any.
    freed_by_detach: AtomicI64,
}

impl Progress {
    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Creating,
            1 => Phase::Attaching,
            2 => Phase::Running,
            3 => Phase::Destroying,
            _ => Phase::Done,
        }
    }
}

/// A scenario's state on the loop thread; callbacks reach it through a thread-local, never
/// through the `ptr` they are given (a wrong `ptr` must be reported, not dereferenced).
pub struct Scenario {
    /// The loop under test.
    pub loop_: XpsLoop,
    waker: LoopWaker,
    progress: Arc<Progress>,
    /// Each slot's eventfd, while open.
    fds: RefCell<[Option<OwnedFd>; SLOTS]>,
    /// Distinct addresses, one per slot, given as `ptr`: slot i attaches `&tags[i]`.
    tags: [u8; SLOTS],
    /// Every callback call, in order: (slot of the callback, the ptr it got).
    calls: RefCell<Vec<(usize, usize)>>,
    /// What each slot's callback does after recording its call.
    actions: [fn(&Scenario); SLOTS],
}

thread_local! {
    static SCENARIO: RefCell<Option<Rc<Scenario>>> = const { RefCell::new(None) };
}

/// The read callbacks the checks attach: slot i's is `CALLBACKS[i]`.
pub const CALLBACKS: [XpsHandler; SLOTS] = [callback_0, callback_1, callback_2, callback_3];

fn callback_0(ptr: *mut c_void) {
    callback(0, ptr);
}
fn callback_1(ptr: *mut c_void) {
    callback(1, ptr);
}
fn callback_2(ptr: *mut c_void) {
    callback(2, ptr);
}
fn callback_3(ptr: *mut c_void) {
    callback(3, ptr);
}

fn callback(slot: usize, ptr: *mut c_void) {
    let scenario = SCENARIO.with_borrow(Clone::clone).expect("a callback runs only while its scenario runs");
    scenario.calls.borrow_mut().push((slot, ptr as usize));
    scenario.progress.calls[slot].fetch_add(1, Ordering::SeqCst);
    (scenario.actions[slot])(&scenario);
}

/// An action that does nothing more than record the call.
pub fn just_record(_: &Scenario) {}

impl Scenario {
    /// The `ptr` slot `slot` attaches with.
    pub fn ptr(&self, slot: usize) -> *mut c_void {
        std::ptr::from_ref(&self.tags[slot]).cast_mut().cast()
    }

    /// Opens a new eventfd for `slot` (not readable yet); returns its fd number.
    pub fn open(&self, slot: usize) -> i32 {
        let fd = eventfd();
        let number = fd.as_raw_fd();
        self.fds.borrow_mut()[slot] = Some(fd);
        number
    }

    /// The number of `slot`'s open eventfd.
    pub fn fd_number(&self, slot: usize) -> i32 {
        self.fds.borrow()[slot].as_ref().expect("the slot's fd is open").as_raw_fd()
    }

    /// Closes `slot`'s eventfd.
    pub fn close(&self, slot: usize) {
        self.fds.borrow_mut()[slot] = None;
    }

    /// `xps_loop_attach(loop, fd, EPOLLIN, ptr(slot), CALLBACKS[slot])`, which must succeed.
    pub fn attach(&self, slot: usize) {
        let fds = self.fds.borrow();
        let fd = fds[slot].as_ref().expect("the slot's fd is open");
        let (result, kept) = net_blocks(size_of::<LoopEvent>(), || {
            let _calling = calling("xps_loop_attach");
            // SAFETY: the kit's callbacks never dereference ptr; they only record its address.
            unsafe { xps_loop_attach(&self.loop_, fd.as_fd(), sys::EPOLLIN as u32, self.ptr(slot), CALLBACKS[slot]) }
        });
        self.progress.kept_by_attach.fetch_min(kept, Ordering::SeqCst);
        if let Err(e) = result {
            fail(
                Failure::new(format!("xps_loop_attach() of an eventfd returned Err({e:?})"))
                    .detail("expected", "Ok(()): epoll accepts an open eventfd with EPOLLIN")
                    .blame(
                        Role::LoopAttach,
                        "loop_event_create(), then epoll_ctl(EPOLL_CTL_ADD); Ok(()) when both worked",
                    ),
            );
        }
    }

    /// `xps_loop_detach(loop, fd)`, which must succeed.
    pub fn detach(&self, slot: usize) {
        let fds = self.fds.borrow();
        let fd = fds[slot].as_ref().expect("the slot's fd is open");
        let (result, kept) = net_blocks(size_of::<LoopEvent>(), || {
            let _calling = calling("xps_loop_detach");
            xps_loop_detach(&self.loop_, fd.as_fd())
        });
        self.progress.freed_by_detach.fetch_min(-kept, Ordering::SeqCst);
        if let Err(e) = result {
            fail(
                Failure::new(format!("xps_loop_detach() of an attached eventfd returned Err({e:?})"))
                    .detail("expected", "Ok(())")
                    .blame(
                        Role::LoopDetach,
                        "find the fd's loop event, epoll_ctl(EPOLL_CTL_DEL); Ok(()) when it was attached",
                    ),
            );
        }
    }

    /// Makes `slot`'s eventfd readable (it stays readable until drained).
    pub fn signal(&self, slot: usize) {
        sys::eventfd_signal(self.fds.borrow()[slot].as_ref().expect("the slot's fd is open").as_fd())
            .expect("write to an eventfd");
    }

    /// Makes `slot`'s eventfd not readable again.
    pub fn drain(&self, slot: usize) {
        if let Some(fd) = self.fds.borrow()[slot].as_ref() {
            sys::eventfd_drain(fd.as_fd()).expect("read from an eventfd");
        }
    }

    /// How many times `slot`'s callback has been called.
    pub fn calls(&self, slot: usize) -> u32 {
        self.progress.calls[slot].load(Ordering::SeqCst)
    }

    /// Sets the scenario's own value (see [`Progress::note`]).
    pub fn note(&self, value: i64) {
        self.progress.note.store(value, Ordering::SeqCst);
    }

    /// Asks the loop to stop: `xps_loop_run()` must return once it sees the wake-up.
    pub fn stop(&self) {
        self.progress.woken.store(true, Ordering::SeqCst);
        self.waker.wake();
    }
}

/// What a scenario's run reports back.
pub struct Outcome {
    /// Every callback call, in order: (slot of the callback, name of the ptr it got).
    pub calls: Vec<(usize, String)>,
    /// What `xps_loop_run()` returned.
    pub run_result: String,
    /// How many times each slot's callback was called.
    pub counts: [u32; SLOTS],
    /// The scenario's own value.
    pub note: i64,
    /// The fewest loop events a detach destroyed (`i64::MAX` if none ran): 0 or less means some
    /// `xps_loop_detach()` destroyed none.
    pub freed_by_detach: i64,
}

/// A scenario: what each slot is called, which slots' callbacks must be called for the loop
/// to get to the end, and what happens before the loop runs and in each callback.
pub struct Plan {
    /// The check's name for each slot (`"a"`, `"old"`, ...), for messages.
    pub names: [&'static str; SLOTS],
    /// Slots whose callbacks must be called (a timeout then says "never called").
    pub must_be_called: &'static [usize],
    /// Runs after `xps_loop_create()`, before `xps_loop_run()`: open, attach, signal.
    pub setup: fn(&Scenario),
    /// What each slot's callback does after recording its call.
    pub actions: [fn(&Scenario); SLOTS],
}

/// Runs `plan` on a loop of its own thread: create the loop, `setup`, `xps_loop_run()` until a
/// callback calls [`Scenario::stop`], then `xps_loop_destroy()`. Fails within [`TIMEOUT`],
/// saying which, if `xps_loop_run()` never calls a callback the plan needs or never returns
/// after the wake-up.
pub fn run_scenario(plan: Plan) -> Outcome {
    let progress = Arc::new(Progress {
        phase: AtomicU8::new(Phase::Creating as u8),
        calls: Default::default(),
        woken: AtomicBool::new(false),
        tid: AtomicI32::new(0),
        kept_by_attach: AtomicI64::new(i64::MAX),
        freed_by_detach: AtomicI64::new(i64::MAX),
        note: AtomicI64::new(0),
    });
    let names = plan.names;
    let must_be_called = plan.must_be_called;
    let on_thread = Arc::clone(&progress);
    within(
        move || run_on_this_thread(plan, on_thread),
        {
            let progress = Arc::clone(&progress);
            move || progress.phase().doing().to_string()
        },
        move || stuck(&progress, names, must_be_called),
    )
}

fn run_on_this_thread(plan: Plan, progress: Arc<Progress>) -> Outcome {
    progress.tid.store(xps_tests::procfs::current_tid().unwrap_or(0), Ordering::SeqCst);
    let created = {
        let _calling = calling("xps_loop_create");
        xps_loop_create()
    };
    let Some(loop_) = created else {
        fail(
            Failure::new("xps_loop_create() returned None")
                .detail("expected", "Some(loop): an epoll fd and an empty list of loop events")
                .blame(Role::LoopCreate, "it returned None; its ERROR log line says which call failed"),
        )
    };
    progress.set_phase(Phase::Attaching);
    let scenario = Rc::new(Scenario {
        waker: xps_loop_waker(&loop_),
        loop_,
        progress: Arc::clone(&progress),
        fds: RefCell::new(Default::default()),
        tags: [0; SLOTS],
        calls: RefCell::new(Vec::new()),
        actions: plan.actions,
    });
    // The ptrs as attached: the tags' addresses inside the Rc, before anything moves.
    let tags: Vec<usize> = (0..SLOTS).map(|slot| scenario.ptr(slot) as usize).collect();
    SCENARIO.set(Some(Rc::clone(&scenario)));
    (plan.setup)(&scenario);

    progress.set_phase(Phase::Running);
    let run_result = {
        let _calling = calling("xps_loop_run");
        format!("{:?}", xps_loop_run(&scenario.loop_))
    };

    progress.set_phase(Phase::Destroying);
    SCENARIO.set(None);
    let scenario = Rc::try_unwrap(scenario).unwrap_or_else(|_| panic!("the scenario is no longer in use"));
    let name_of = |ptr: usize| match tags.iter().position(|&tag| tag == ptr) {
        Some(slot) => format!("{}'s ptr", plan.names[slot]),
        None => format!("{ptr:#x}, none of the attached ptrs"),
    };
    let calls = scenario.calls.take().into_iter().map(|(slot, ptr)| (slot, name_of(ptr))).collect();
    {
        let _calling = calling("xps_loop_destroy");
        xps_loop_destroy(scenario.loop_);
    }
    drop(scenario.fds);
    progress.set_phase(Phase::Done);
    Outcome {
        calls,
        run_result,
        counts: std::array::from_fn(|slot| progress.calls[slot].load(Ordering::SeqCst)),
        note: progress.note.load(Ordering::SeqCst),
        freed_by_detach: progress.freed_by_detach.load(Ordering::SeqCst),
    }
}
