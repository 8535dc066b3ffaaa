//! A corpus of typical learner mistakes, each one small edit to the reference, over both
//! stages, every function the pages have a learner write, and every milestone: for each,
//! `scripts/exercise.sh check N` must exit 1 within 20 s, and its Next step must name the
//! function at fault first.
//!
//! The kinds: wrong bytes sent back, something not attached or not detached, an instance left in
//! or missing from a list, a resource never freed, a call that never returns, a `RefCell`
//! borrow held across a call, a log line with the wrong value. The blame must follow from what
//! the checks observe, not from this list: the harness and the checks never see it.
//!
//! Each mistake is applied to a scratch copy of the workspace (`xps_tests::scratch`), built
//! (not timed), then checked with the exercise tool, timed.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xps_tests::scratch::{Scratch, workspace_root};
use xps_tests::workspace_binary;

/// One learner mistake.
struct Mistake {
    /// The stage it is made in.
    stage: u8,
    /// The function at fault: the one the Next step must name first.
    function: &'static str,
    /// What kind of mistake it is, in a few words.
    kind: &'static str,
    /// The file the edit is in.
    file: &'static str,
    /// The reference's text, and what the learner wrote instead.
    old: &'static str,
    new: &'static str,
}

const S6_MAIN: &str = "stage06/src/main.rs";
const S6_LISTENER: &str = "stage06/src/network/xps_listener.rs";
const S6_CONNECTION: &str = "stage06/src/network/xps_connection.rs";
const S7_LOOP: &str = "stage07/src/core/xps_loop.rs";
const S7_CORE: &str = "stage07/src/core/xps_core.rs";
const S7_LISTENER: &str = "stage07/src/network/xps_listener.rs";
const S7_CONNECTION: &str = "stage07/src/network/xps_connection.rs";
const S7_MAIN: &str = "stage07/src/main.rs";

/// The corpus.
const MISTAKES: &[Mistake] = &[
    // ---- stage 6, Milestone #1 ----
    Mistake {
        stage: 6,
        function: "xps_loop_create",
        kind: "a call that never returns (a retry loop without an exit)",
        file: S6_MAIN,
        old: "sys::epoll_create().inspect_err(|e| error!(target: \"xps_loop_create()\", \"epoll_create1() failed: {e}\"))",
        new: "loop { if let Ok(fd) = sys::epoll_create() { drop(fd); } }",
    },
    Mistake {
        stage: 6,
        function: "xps_loop_attach",
        kind: "the event does not carry the fd (event.data.fd = fd forgotten)",
        file: S6_MAIN,
        old: "sys::epoll_add(epoll_fd, fd, events, fd.as_raw_fd() as u64)",
        new: "sys::epoll_add(epoll_fd, fd, events, 0)",
    },
    Mistake {
        stage: 6,
        function: "xps_loop_detach",
        kind: "not detached: EPOLL_CTL_DEL never made",
        file: S6_MAIN,
        old: "    sys::epoll_del(epoll_fd, fd)\n        .inspect_err(|e| error!(target: \"xps_loop_detach()\", \"epoll_ctl(EPOLL_CTL_DEL) failed: {e}\"))",
        new: "    let _ = (epoll_fd, fd);\n    Ok(())",
    },
    Mistake {
        stage: 6,
        function: "xps_listener_create",
        kind: "an instance missing from its list (LISTENERS)",
        file: S6_LISTENER,
        old: "    LISTENERS.with_borrow_mut(|listeners| listeners.push(Some(Rc::clone(&listener))));\n",
        new: "",
    },
    Mistake {
        stage: 6,
        function: "xps_listener_destroy",
        kind: "not detached before closing",
        file: S6_LISTENER,
        old: "    let _ = xps_loop_detach(listener.epoll_fd.as_fd(), listener.sock_fd.as_fd());\n",
        new: "",
    },
    // ---- stage 6, Milestone #2 ----
    Mistake {
        stage: 6,
        function: "xps_listener_connection_handler",
        kind: "the connection's listener never set",
        file: S6_LISTENER,
        old: "    let _ = client.listener.set(Rc::downgrade(listener));\n",
        new: "    let _ = &client;\n",
    },
    Mistake {
        stage: 6,
        function: "xps_connection_create",
        kind: "not attached to the loop",
        file: S6_CONNECTION,
        old: "    xps_loop_attach(epoll_fd.as_fd(), connection.sock_fd.as_fd(), sys::EPOLLIN as u32).ok()?;\n",
        new: "",
    },
    Mistake {
        stage: 6,
        function: "xps_connection_destroy",
        kind: "an instance left in its list (CONNECTIONS): its socket never closes",
        file: S6_CONNECTION,
        old: "connections.iter_mut().find(|curr| curr.as_ref().is_some_and(|curr| Rc::ptr_eq(curr, &connection)))?.take()",
        new: "connections.iter_mut().find(|curr| curr.as_ref().is_some_and(|curr| Rc::ptr_eq(curr, &connection)))?.clone()",
    },
    Mistake {
        stage: 6,
        function: "xps_connection_read_handler",
        kind: "wrong bytes sent back: the newline reversed too",
        file: S6_CONNECTION,
        old: "    reverse_message(message);",
        new: "    message.reverse();",
    },
    Mistake {
        stage: 6,
        function: "xps_loop_run",
        kind: "events of connections never dispatched (only LISTENERS searched)",
        file: S6_MAIN,
        old: "            if let Some(connection) = connection {\n                xps_connection_read_handler(connection);\n            }",
        new: "            let _ = connection;",
    },
    Mistake {
        stage: 6,
        function: "xps_loop_run",
        kind: "a RefCell borrow held across a call (CONNECTIONS borrowed while the handler destroys)",
        file: S6_MAIN,
        old: "            let connection = CONNECTIONS.with_borrow(|connections| {\n                connections.iter().flatten().find(|curr| curr.sock_fd.as_raw_fd() == curr_fd).cloned()\n            });\n            if let Some(connection) = connection {\n                xps_connection_read_handler(connection);\n            }",
        new: "            CONNECTIONS.with_borrow(|connections| {\n                if let Some(connection) = connections.iter().flatten().find(|curr| curr.sock_fd.as_raw_fd() == curr_fd) {\n                    xps_connection_read_handler(Rc::clone(connection));\n                }\n            });",
    },
    Mistake {
        stage: 6,
        function: "main",
        kind: "a log line with the wrong value (the port asked for, 0, not the listener's)",
        file: S6_MAIN,
        old: "info!(target: \"main()\", \"Server listening on port {}\", listener.port);",
        new: "info!(target: \"main()\", \"Server listening on port {}\", port);",
    },
    // ---- stage 7, Milestone #1: the loop module ----
    Mistake {
        stage: 7,
        function: "xps_loop_create",
        kind: "returns None (the C's NULL) for a loop it created",
        file: S7_LOOP,
        old: "    Some(XpsLoop { epoll_fd, events: RefCell::new(Vec::new()), generations: Generations::default(), wake_fd })",
        new: "    drop(XpsLoop { epoll_fd, events: RefCell::new(Vec::new()), generations: Generations::default(), wake_fd });\n    None",
    },
    Mistake {
        stage: 7,
        function: "xps_loop_destroy",
        kind: "a resource never freed: the loop events still attached",
        file: S7_LOOP,
        old: "    for event in loop_.events.take().into_iter().flatten() {\n        loop_event_destroy(event);\n    }",
        new: "    std::mem::forget(loop_.events.take());",
    },
    Mistake {
        stage: 7,
        function: "loop_event_create",
        kind: "a field set with the wrong value (fd 0)",
        file: S7_LOOP,
        old: "Box::new(LoopEvent { fd, read_cb, ptr, generation: 0 })",
        new: "Box::new(LoopEvent { fd: 0, read_cb, ptr, generation: 0 })",
    },
    Mistake {
        stage: 7,
        function: "loop_event_destroy",
        kind: "a resource never freed (the event forgotten, not dropped)",
        file: S7_LOOP,
        old: "    drop(event);\n    debug!(target: \"event_destroy()\"",
        new: "    std::mem::forget(event);\n    debug!(target: \"event_destroy()\"",
    },
    Mistake {
        stage: 7,
        function: "xps_loop_attach",
        kind: "an instance missing from its list: the loop event never stored in the events",
        file: S7_LOOP,
        old: "    events[index] = Some(event);",
        new: "    drop(event);",
    },
    Mistake {
        stage: 7,
        function: "xps_loop_detach",
        kind: "not detached: EPOLL_CTL_DEL never made",
        file: S7_LOOP,
        old: "    let result = sys::epoll_del(loop_.epoll_fd.as_fd(), fd).map_err(|e| {",
        new: "    let result = Ok::<(), std::io::Error>(()).map_err(|e| {",
    },
    Mistake {
        stage: 7,
        function: "xps_loop_run",
        kind: "a call that never returns: the wake-up does not stop the loop",
        file: S7_LOOP,
        old: "        if handle_epoll_events(loop_, &epoll_events[..n_events]).is_break() {\n            return Ok(());\n        }",
        new: "        let _ = handle_epoll_events(loop_, &epoll_events[..n_events]);",
    },
    Mistake {
        stage: 7,
        function: "handle_epoll_events",
        kind: "a RefCell borrow held across a call (the events, while read_cb runs)",
        file: S7_LOOP,
        old: "        let found = loop_\n            .events\n            .borrow()\n            .get(token.fd as usize)",
        new: "        let events = loop_.events.borrow();\n        let found = events\n            .get(token.fd as usize)",
    },
    Mistake {
        stage: 7,
        function: "xps_loop_run",
        kind: "a loop that never waits: epoll_wait() skipped",
        file: S7_LOOP,
        old: "    loop {\n        debug!(target: \"xps_loop_run()\", \"epoll wait\");",
        new: "    loop {\n        if std::hint::black_box(true) {\n            continue;\n        }\n        debug!(target: \"xps_loop_run()\", \"epoll wait\");",
    },
    Mistake {
        stage: 7,
        function: "handle_epoll_events",
        kind: "events found but their read_cb never called",
        file: S7_LOOP,
        old: "            debug!(target: \"handle_epoll_events()\", \"EVENT / read\");",
        new: "            debug!(target: \"handle_epoll_events()\", \"EVENT / read\");\n            continue;",
    },
    Mistake {
        stage: 7,
        function: "handle_epoll_events",
        kind: "the wake-up never handled: the waker's eventfd taken for an unknown event",
        file: S7_LOOP,
        old: "        if token == Token::WAKE {",
        new: "        if token == Token::WAKE && std::hint::black_box(false) {",
    },
    // ---- stage 7, Milestone #2: the core, the listener and the connection ----
    Mistake {
        stage: 7,
        function: "xps_core_create",
        kind: "returns None (the C's NULL) for a core it created",
        file: S7_CORE,
        old: "    debug!(target: \"xps_core_create()\", \"created core\");\n    Some(core)",
        new: "    drop(core);\n    None",
    },
    Mistake {
        stage: 7,
        function: "xps_core_destroy",
        kind: "a resource never freed: the connections are not destroyed",
        file: S7_CORE,
        old: "    core.connections.take().into_iter().flatten().for_each(xps_connection_destroy);",
        new: "    let _ = xps_connection_destroy;",
    },
    Mistake {
        stage: 7,
        function: "xps_core_start",
        kind: "a log line with the wrong value (the port asked for, 0, not the listener's)",
        file: S7_CORE,
        old: "\"Server listening on port {}\", listener.port);",
        new: "\"Server listening on port {}\", port);",
    },
    Mistake {
        stage: 7,
        function: "xps_listener_create",
        kind: "not attached to the loop",
        file: S7_LISTENER,
        old: "    unsafe { xps_loop_attach(&core.loop_, fd, sys::EPOLLIN as u32, ptr, listener_connection_handler) }.ok()?;",
        new: "    let _ = (fd, ptr);",
    },
    Mistake {
        stage: 7,
        function: "xps_listener_destroy",
        kind: "not detached before closing",
        file: S7_LISTENER,
        old: "    let _ = xps_loop_detach(&core.loop_, listener.sock_fd.as_fd());\n",
        new: "",
    },
    Mistake {
        stage: 7,
        function: "listener_connection_handler",
        kind: "the accepted client never made a connection",
        file: S7_LISTENER,
        old: "    let Some(client) = xps_connection_create(&core, conn_sock_fd) else {\n        error!(target: \"listener_connection_handler()\", \"xps_connection_create() failed\");\n        return;\n    };\n    let _ = client.listener.set(Rc::downgrade(&listener));",
        new: "    drop(conn_sock_fd);",
    },
    Mistake {
        stage: 7,
        function: "xps_connection_create",
        kind: "an instance missing from its list (core.connections)",
        file: S7_CONNECTION,
        old: "    core.connections.borrow_mut().push(Some(Rc::clone(&connection)));\n",
        new: "",
    },
    Mistake {
        stage: 7,
        function: "xps_connection_destroy",
        kind: "not detached before closing",
        file: S7_CONNECTION,
        old: "    let _ = xps_loop_detach(&core.loop_, connection.sock_fd.as_fd());\n",
        new: "",
    },
    Mistake {
        stage: 7,
        function: "connection_loop_read_handler",
        kind: "wrong bytes sent back: the newline reversed too",
        file: S7_CONNECTION,
        old: "    reverse_message(message);",
        new: "    message.reverse();",
    },
    Mistake {
        stage: 7,
        function: "sigint_handler",
        kind: "Ctrl+C does not wake the loop: only the forced exit ends the server",
        file: S7_MAIN,
        old: "    waker.wake();\n    if !shutdown::loop_stopped_within(SHUTDOWN_GRACE) {",
        new: "    let _ = waker;\n    if !shutdown::loop_stopped_within(SHUTDOWN_GRACE) {",
    },
    Mistake {
        stage: 7,
        function: "xps_listener_destroy",
        kind: "a log line with the wrong value (destroyed listener on port 0)",
        file: S7_LISTENER,
        old: "\"destroyed listener on port {}\", listener.port);",
        new: "\"destroyed listener on port {}\", 0);",
    },
];

/// How long `check` may take on a mistake (the build before it is not counted).
const CHECK_LIMIT: Duration = Duration::from_secs(20);

/// Runs `cmd` to its end within `limit`; its exit code (None if it was stopped) and stdout.
fn run(mut cmd: Command, limit: Duration) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start a command");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    (code, reader.join().unwrap_or_default(), elapsed)
}

/// The function the Next step names first: the first line after `Next step` reads
/// `  fix:      NAME()  at FILE:LINE  (why)` or `  write:    NAME() ...`.
fn named_first(output: &str) -> Option<String> {
    let mut lines = output.lines().skip_while(|l| l.trim() != "Next step");
    lines.next()?;
    let first = lines.next()?.trim();
    let rest = first.strip_prefix("fix:").or_else(|| first.strip_prefix("write:"))?.trim_start();
    Some(rest.split("()").next()?.to_string())
}

#[test]
fn each_typical_learner_mistake_is_blamed_on_the_function_at_fault_within_20_s() {
    let root = workspace_root().expect("the tests run inside the workspace");
    let scratch = Scratch::create(&root, "learner-mistakes").expect("a scratch copy of the workspace");
    let exercise = workspace_binary("xps-exercise");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = |stage: u8| {
        let mut cmd = scratch.command(&cargo);
        cmd.args(["test", "-q", "-p", &format!("stage0{stage}"), "--no-run"]);
        run(cmd, Duration::from_secs(900))
    };
    let mut problems = Vec::new();
    for mistake in MISTAKES {
        scratch.restore().expect("restore the scratch copy");
        if let Err(e) = scratch.replace(mistake.file, mistake.old, mistake.new) {
            problems.push(format!("{} ({}): the reference changed: {e}", mistake.function, mistake.kind));
            continue;
        }
        if build(mistake.stage).0 != Some(0) {
            problems.push(format!("{} ({}): the mistake does not build", mistake.function, mistake.kind));
            continue;
        }
        let mut check = scratch.command(&exercise);
        check.args(["check", &mistake.stage.to_string()]).env("XPS_EXERCISE_ROOT", &scratch.root);
        let (code, output, took) = run(check, CHECK_LIMIT + Duration::from_secs(10));
        let named = named_first(&output);
        println!(
            "stage {} {:<32} {:<70} exit {code:?} in {:.1} s, names {named:?}",
            mistake.stage,
            format!("{}()", mistake.function),
            mistake.kind,
            took.as_secs_f32()
        );
        if code != Some(1) || took > CHECK_LIMIT || named.as_deref() != Some(mistake.function) {
            problems.push(format!(
                "{}() ({}): expected exit 1 within {CHECK_LIMIT:?} naming {}() first; got exit {code:?} after {:.1} s \
                 naming {named:?}. check printed:\n{output}",
                mistake.function,
                mistake.kind,
                mistake.function,
                took.as_secs_f32()
            ));
        }
    }
    scratch.restore().expect("restore the scratch copy");
    assert!(
        problems.is_empty(),
        "{} of {} mistakes not blamed right:\n\n{}",
        problems.len(),
        MISTAKES.len(),
        problems.join("\n\n")
    );
}
