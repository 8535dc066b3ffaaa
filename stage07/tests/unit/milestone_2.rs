//! Milestone #2 of the stage 7 page, the in-process part: the core owns everything.
//!
//! The page's Milestone #2 is stage 6's again, run against the server (`tests/milestones.rs`).
//! What the refactor itself promises is checked here, through the page's functions
//! (`xps_core_create`, `xps_listener_create(core, host, port)`, `xps_core_destroy`) and the
//! given `LoopWaker`: with the lists and the loop inside the core instead of in globals, two
//! cores run side by side in one process, each serving only its own clients, and destroying a
//! core closes every fd it opened.
//!
//! Each core runs on a thread of its own (a core is not `Send`: it is created there); every
//! wait has a time limit, so a core that never stops fails with a message instead of hanging.
//!
//! Run them with `cargo test -p stage07 milestone_2`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;

use xps_tests::harness::{self, calling};
use xps_tests::in_process::read_some;
use xps_tests::{Failure, Role, escape, expected_reply};

use super::kit::{TIMEOUT, describe_open_fds, fail, open_fds, panic_message};
use crate::core::xps_core::{xps_core_create, xps_core_destroy};
use crate::core::xps_loop::xps_loop_run;
use crate::given::loop_waker::{LoopWaker, xps_loop_waker};
use crate::network::xps_listener::xps_listener_create;

/// What a core's thread reports once its loop stopped and the core was destroyed.
struct Destroyed {
    /// How many connections the core held when its loop stopped.
    connections: usize,
    /// Whether the core, its listeners and its connections were all freed by xps_core_destroy().
    freed: Result<(), String>,
}

/// A core running on its own thread: its ports and a waker to stop its loop.
struct RunningCore {
    name: String,
    ports: Vec<u16>,
    waker: WakeOnDrop,
    done: Receiver<Destroyed>,
    thread: JoinHandle<()>,
}

/// Wakes the core's loop when dropped, so a check that fails halfway still stops its core
/// (whose thread then destroys it) instead of leaving it serving for the rest of the run.
struct WakeOnDrop(LoopWaker);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.wake();
    }
}

/// Starts a core on a thread of its own with `n_listeners` listeners on OS-picked ports; its loop
/// runs until woken, then the thread destroys the core and reports.
fn start_core(name: &str, n_listeners: usize) -> RunningCore {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let thread = harness::spawn(name, move || {
        let created = {
            let _calling = calling("xps_core_create");
            xps_core_create()
        };
        let Some(core) = created else {
            fail(
                Failure::new("xps_core_create() returned None")
                    .blame(Role::CoreCreate, "it returned None; its ERROR line says why"),
            );
        };
        let mut ports = Vec::new();
        let mut weak_listeners = Vec::new();
        for _ in 0..n_listeners {
            let created = {
                let _calling = calling("xps_listener_create");
                xps_listener_create(&core, "127.0.0.1", 0)
            };
            let Some(listener) = created else {
                fail(
                    Failure::new("xps_listener_create(core, \"127.0.0.1\", 0) returned None")
                        .blame(Role::ListenerCreate, "it returned None; its ERROR line says which call failed"),
                );
            };
            ports.push(listener.port);
            weak_listeners.push(Rc::downgrade(&listener));
        }
        let _ = ready_tx.send((ports, xps_loop_waker(&core.loop_)));

        let run = {
            let _calling = calling("xps_loop_run");
            xps_loop_run(&core.loop_)
        };
        if let Err(e) = run {
            fail(
                Failure::new(format!("xps_loop_run() returned Err({e:?})"))
                    .detail("expected", "Ok(()) once the waker woke it")
                    .blame(Role::LoopRun, "it returns Ok(()) when the waker's event arrives"),
            );
        }

        let connections = core.connections.borrow().iter().flatten().count();
        let weak_connections: Vec<_> = core.connections.borrow().iter().flatten().map(Rc::downgrade).collect();
        let weak_core = Rc::downgrade(&core);
        {
            let _calling = calling("xps_core_destroy");
            xps_core_destroy(core);
        }
        let freed = if weak_core.upgrade().is_some() {
            Err("the core is still alive".to_string())
        } else if weak_listeners.iter().any(|l| l.upgrade().is_some()) {
            Err("a listener is still alive".to_string())
        } else if weak_connections.iter().any(|c| c.upgrade().is_some()) {
            Err("a connection is still alive".to_string())
        } else {
            Ok(())
        };
        let _ = done_tx.send(Destroyed { connections, freed });
    });
    match ready_rx.recv_timeout(TIMEOUT) {
        Ok((ports, waker)) => RunningCore { name: name.into(), ports, waker: WakeOnDrop(waker), done, thread },
        Err(RecvTimeoutError::Timeout) => fail(harness::stuck(Failure::new(format!(
            "{name} was not ready within {TIMEOUT:?}: xps_core_create() and xps_listener_create() must return"
        )))),
        Err(RecvTimeoutError::Disconnected) => fail(panicked(name, "while being created", thread)),
    }
}

/// The failure for a core thread that ended early: its own failure, or its panic (which the
/// harness recorded, with its backtrace, to blame from).
fn panicked(name: &str, when: &str, thread: JoinHandle<()>) -> Failure {
    match thread.join() {
        Err(payload) => match payload.downcast::<Failure>() {
            Ok(failure) => *failure,
            Err(payload) => Failure::new(format!("{name} panicked {when}: {}", panic_message(&*payload))),
        },
        Ok(()) => Failure::new(format!("{name} ended {when} without a word")),
    }
}

impl RunningCore {
    /// Wakes the core's loop and waits for its thread to destroy the core.
    fn stop(self) -> Destroyed {
        self.waker.0.wake();
        match self.done.recv_timeout(TIMEOUT) {
            Ok(destroyed) => {
                let _ = self.thread.join();
                destroyed
            }
            Err(RecvTimeoutError::Timeout) => fail(harness::stuck(Failure::new(format!(
                "{}: xps_loop_run() or xps_core_destroy() did not return within {TIMEOUT:?} of LoopWaker::wake()",
                self.name
            )))),
            Err(RecvTimeoutError::Disconnected) => {
                fail(panicked(&self.name, "while stopping or being destroyed", self.thread))
            }
        }
    }
}

/// A client of `port` sends `message` and checks the reply is its reversal. A wrong reply is
/// the read handler's; a missing one comes back with the client still connected, blamed by
/// [`blame_missing_reply`].
fn round_trip(core: &str, port: u16, message: &[u8]) -> Result<TcpStream, (Failure, TcpStream)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut client = TcpStream::connect_timeout(&address, TIMEOUT)
        .unwrap_or_else(|e| fail(Failure::new(format!("a client could not connect to {core} on port {port}: {e}"))));
    client.set_read_timeout(Some(TIMEOUT)).expect("set a read timeout");
    client.write_all(message).expect("send to the core");
    let expected = expected_reply(message);
    let (reply, closed) = read_some(&mut client, expected.len());
    if reply == expected {
        return Ok(client);
    }
    let failure = Failure::new(format!("the client of {core} (port {port}) did not get its reversal"))
        .detail("sent", escape(message))
        .detail("expected", escape(&expected))
        .detail("received", format!("{}{}", escape(&reply), if closed { " (then the connection closed)" } else { "" }));
    if reply.is_empty() {
        return Err((failure, client));
    }
    fail(failure.blame(
        Role::ReadHandler,
        "the reply is built there: the message reversed byte for byte, a trailing \\n kept last",
    ))
}

/// Blames a missing reply on what the core held when its loop stopped, its client still
/// connected: no connection means the accepted client was never made a connection of the core
/// (or was dropped at once); a connection that did not answer points to the read handler.
fn blame_missing_reply((failure, client): (Failure, TcpStream), core: RunningCore) -> Failure {
    let destroyed = core.stop();
    drop(client);
    let failure = failure
        .detail("observed", format!("the core held {} connection(s) when its loop stopped", destroyed.connections));
    if destroyed.connections == 0 {
        failure.blame(
            Role::ConnectionHandler,
            "the client was accepted but the core holds no connection for it: create it with \
             xps_connection_create(core, conn_sock_fd), which keeps it in core.connections",
        )
    } else {
        failure.blame(Role::ReadHandler, "the connection is there, and it did not answer with the reversal")
    }
}

/// Reads from `client` until end-of-file, within the time limit.
fn expect_eof(client: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match client.read(&mut buf) {
        Ok(0) => {}
        other => fail(
            Failure::new(format!("{what}: the client did not see end-of-file after xps_core_destroy()"))
                .detail("received", format!("{other:?}"))
                .blame(Role::CoreDestroy, "destroys every connection (xps_connection_destroy), closing its socket"),
        ),
    }
}

pub fn two_cores_in_one_process_each_serve_their_own_clients() -> Result<(), Failure> {
    let cores = [start_core("core 0", 1), start_core("core 1", 1)];
    if cores[0].ports == cores[1].ports {
        fail(Failure::new(format!("both cores report the same port {:?}", cores[0].ports)));
    }

    let mut clients = Vec::new();
    for core in &cores {
        let message = format!("hello {}\n", core.name);
        match round_trip(&core.name, core.ports[0], message.as_bytes()) {
            Ok(client) => clients.push(client),
            Err(failure) => {
                let failed = cores.iter().position(|c| c.name == core.name).expect("a core of the list");
                let core = cores.into_iter().nth(failed).expect("the failing core");
                return Err(blame_missing_reply(failure, core));
            }
        }
    }

    let ports: Vec<u16> = cores.iter().map(|core| core.ports[0]).collect();
    for (core, port) in cores.into_iter().zip(&ports) {
        let name = core.name.clone();
        let destroyed = core.stop();
        if destroyed.connections != 1 {
            fail(
                Failure::new(format!("{name} held {} connections when its loop stopped", destroyed.connections))
                    .detail("expected", "1: its own client's, and only that one")
                    .blame(Role::ConnectionCreate, "adds the connection to *its* core's connections"),
            );
        }
        if let Err(what) = destroyed.freed {
            fail(
                Failure::new(format!("after xps_core_destroy(), {what}"))
                    .blame(Role::CoreDestroy, "destroy every connection, every listener, the loop, then the core"),
            );
        }
        let mut client = clients.remove(0);
        expect_eof(&mut client, &name);
        if TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], *port)), TIMEOUT).is_ok() {
            fail(
                Failure::new(format!("after xps_core_destroy(), {name}'s port {port} still accepts clients"))
                    .blame(Role::CoreDestroy, "destroys every listener (xps_listener_destroy), closing its socket"),
            );
        }
    }
    Ok(())
}

pub fn destroying_a_core_leaves_no_fd_open() -> Result<(), Failure> {
    let fds_before = open_fds();
    let description_before = describe_open_fds();

    let core = start_core("the core", 2);
    let mut clients = Vec::new();
    for (i, &port) in core.ports.clone().iter().enumerate() {
        match round_trip("the core", port, format!("client {i}\n").as_bytes()) {
            Ok(client) => clients.push(client),
            Err(failure) => return Err(blame_missing_reply(failure, core)),
        }
    }
    let destroyed = core.stop();
    if let Err(what) = destroyed.freed {
        fail(
            Failure::new(format!("after xps_core_destroy(), {what}"))
                .blame(Role::CoreDestroy, "destroy every connection, every listener, the loop, then the core"),
        );
    }
    for client in &mut clients {
        expect_eof(client, "the core");
    }
    drop(clients);

    let fds_after = open_fds();
    if fds_after != fds_before {
        fail(
            Failure::new(format!("xps_core_destroy() left {} fd(s) open", fds_after as i64 - fds_before as i64))
                .detail("setup", "a core with 2 listeners and 2 connected clients, then xps_core_destroy()")
                .detail("expected", format!("{fds_before} fds open, as before xps_core_create(): {description_before}"))
                .detail("received", format!("{fds_after}: {}", describe_open_fds()))
                .blame(
                    Role::CoreDestroy,
                    "destroys every connection and listener (closing their sockets) and the \
                 loop (closing its epoll fd)",
                ),
        );
    }
    Ok(())
}
