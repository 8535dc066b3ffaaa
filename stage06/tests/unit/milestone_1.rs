//! Milestone #1 of the stage 6 page: the listener module, checked in-process.
//!
//! The page's Milestone #1 comes before the server can run: there is a listener module and a
//! loop to attach it to, but no connection module and no `main` yet. So these checks call the
//! page's functions directly, as a C learner could from a small test program:
//! `xps_loop_create()`, `xps_listener_create(epoll_fd, "127.0.0.1", 0)`, the global `LISTENERS`
//! and `xps_listener_destroy()`. They read only what the page defines (the listener's `port` and
//! `sock_fd`, the `LISTENERS` list) and talk TCP to the socket.
//!
//! A client's `connect()` succeeds as soon as the kernel queues it on a listening socket, before
//! anyone calls `accept()`: accepting is `xps_listener_connection_handler()`'s job, which the
//! server only runs from Milestone #2 on, so these checks never accept.
//!
//! Port 0 asks the OS for a free port, so these checks run side by side with any other test;
//! `LISTENERS` is per thread, and each test runs on a thread of its own.
//!
//! Run them with `cargo test -p stage06 milestone_1`.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use shared::sys;
use xps_tests::Failure;

use crate::network::xps_listener::{xps_listener_create, xps_listener_destroy};
use crate::xps::XpsListener;
use crate::{LISTENERS, xps_loop_create};

/// How long a client waits for `connect()`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Panics with a failure's text: what was expected, what happened, what to look at.
#[track_caller]
fn fail(failure: Failure) -> ! {
    panic!("\n{failure}")
}

/// `xps_loop_create()`, wrapped as `main` shares it.
fn create_loop() -> Rc<OwnedFd> {
    match xps_loop_create() {
        Ok(epoll_fd) => Rc::new(epoll_fd),
        Err(e) => fail(
            Failure::new("xps_loop_create() failed")
                .detail("expected", "an epoll fd (Ok)")
                .detail("received", format!("Err({e})"))
                .hint("xps_loop_create() in stage06/src/main.rs: create the epoll instance (sys::epoll_create)"),
        ),
    }
}

/// `xps_listener_create(epoll_fd, "127.0.0.1", 0)`, which must return a listener on the port
/// the OS picked.
fn create_listener(epoll_fd: &Rc<OwnedFd>) -> Rc<XpsListener> {
    let Some(listener) = xps_listener_create(epoll_fd, "127.0.0.1", 0) else {
        fail(
            Failure::new("xps_listener_create(epoll_fd, \"127.0.0.1\", 0) returned None")
                .detail("expected", "Some(listener) listening on a port the OS picks")
                .hint(
                    "xps_listener_create() in stage06/src/network/xps_listener.rs: socket, setsockopt \
                     (SO_REUSEADDR), bind, listen, then attach to the loop; each failure is logged",
                ),
        )
    };
    if listener.port == 0 {
        fail(
            Failure::new("the listener's port is 0")
                .detail("expected", "the port the OS picked for port 0 (sys::local_addr(sock_fd).port())")
                .detail("received", "0: nobody can connect to port 0")
                .hint("xps_listener_create(): keep the given lines that read back the port the OS picked"),
        );
    }
    listener
}

/// The address a client connects to.
fn addr(listener: &XpsListener) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], listener.port))
}

/// Where `listener` sits in `LISTENERS`, if it is there.
fn index_in_listeners(listener: &Rc<XpsListener>) -> Option<usize> {
    LISTENERS.with_borrow(|listeners| {
        listeners.iter().position(|entry| entry.as_ref().is_some_and(|entry| Rc::ptr_eq(entry, listener)))
    })
}

/// Waits up to `timeout` for epoll to report events; how many it reported.
fn ready_events(epoll_fd: &OwnedFd, timeout: Duration) -> usize {
    let mut events = [sys::empty_epoll_event(); 8];
    sys::epoll_wait(epoll_fd.as_fd(), &mut events, timeout.as_millis() as i32)
        .unwrap_or_else(|e| panic!("epoll_wait() on the loop's epoll fd failed: {e}"))
}

#[test]
fn milestone_1_a_listener_on_port_0_is_listening_and_in_listeners() {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);

    if index_in_listeners(&listener).is_none() {
        let entries = LISTENERS.with_borrow(|listeners| listeners.iter().filter(|l| l.is_some()).count());
        fail(
            Failure::new("the new listener is not in LISTENERS")
                .detail("expected", "LISTENERS holds Some(listener) for the listener xps_listener_create() returned")
                .detail("received", format!("LISTENERS holds {entries} other listener(s)"))
                .hint("xps_listener_create(): push the listener onto the global LISTENERS list (the page's vec_push)"),
        );
    }

    if let Err(e) = TcpStream::connect_timeout(&addr(&listener), CONNECT_TIMEOUT) {
        fail(
            Failure::new(format!("nothing listens on 127.0.0.1:{}", listener.port))
                .detail("expected", "connect() succeeds: the listener's socket is bound and listening")
                .detail("received", format!("connect() failed: {e}"))
                .hint("xps_listener_create(): bind() to the address, then listen() with DEFAULT_BACKLOG"),
        );
    }

    xps_listener_destroy(listener);
}

#[test]
fn milestone_1_a_client_can_connect_and_the_loop_reports_it() {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);

    let _client = TcpStream::connect_timeout(&addr(&listener), CONNECT_TIMEOUT).unwrap_or_else(|e| {
        fail(
            Failure::new(format!("a client could not connect to 127.0.0.1:{}", listener.port))
                .detail("expected", "connect() succeeds")
                .detail("received", format!("connect() failed: {e}"))
                .hint("xps_listener_create(): bind() to the address, then listen() with DEFAULT_BACKLOG"),
        )
    });

    // The waiting client makes the listening socket readable: the loop must report it, which it
    // does only for sockets attached to it.
    let n = ready_events(&epoll_fd, CONNECT_TIMEOUT);
    if n == 0 {
        fail(
            Failure::new("a client is waiting to be accepted, but the loop reports nothing")
                .detail("expected", "epoll_wait() on the loop reports the listening socket readable (EPOLLIN)")
                .detail("received", format!("no event within {CONNECT_TIMEOUT:?}"))
                .hint(
                    "xps_listener_create() must attach the socket: xps_loop_attach(epoll_fd, sock_fd, EPOLLIN); \
                     xps_loop_attach() in stage06/src/main.rs: epoll_ctl(EPOLL_CTL_ADD) (sys::epoll_add)",
                ),
        );
    }

    xps_listener_destroy(listener);
}

#[test]
fn milestone_1_destroy_closes_the_socket_frees_the_listener_and_leaves_none() {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);
    let address = addr(&listener);
    let index = index_in_listeners(&listener).unwrap_or_else(|| {
        fail(
            Failure::new("the new listener is not in LISTENERS")
                .hint("xps_listener_create(): push the listener onto the global LISTENERS list"),
        )
    });
    let len = LISTENERS.with_borrow(Vec::len);
    let weak = Rc::downgrade(&listener);

    xps_listener_destroy(listener);

    let entry = LISTENERS.with_borrow(|listeners| listeners.get(index).map(Option::is_none));
    let len_after = LISTENERS.with_borrow(Vec::len);
    if entry != Some(true) || len_after != len {
        fail(
            Failure::new("after xps_listener_destroy(), LISTENERS does not hold None where the listener was")
                .detail("expected", format!("entry {index} is None, and the list keeps its {len} entries"))
                .detail(
                    "received",
                    match entry {
                        Some(false) => format!("entry {index} still holds a listener"),
                        _ => format!("the list has {len_after} entries: the entry was removed"),
                    },
                )
                .hint(
                    "xps_listener_destroy(): set the entry to None (`take()` it) instead of removing it, as \
                     the page does: the list may be in use elsewhere (the loop) at that moment",
                ),
        );
    }

    if weak.upgrade().is_some() {
        fail(
            Failure::new("after xps_listener_destroy(), the listener is still alive")
                .detail("expected", "destroy drops the last handle (Rc) to the listener: the C's free()")
                .detail("received", format!("{} handle(s) still held", weak.strong_count()))
                .hint("xps_listener_destroy(): take the listener out of LISTENERS and let it drop; keep no copy"),
        );
    }

    match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
        other => fail(
            Failure::new(format!("after xps_listener_destroy(), 127.0.0.1:{} still accepts clients", address.port()))
                .detail("expected", "connect() is refused: destroy closes the listening socket")
                .detail("received", format!("{other:?}"))
                .hint("xps_listener_destroy(): the socket closes when the listener (its OwnedFd) is dropped"),
        ),
    }
}

#[test]
fn milestone_1_destroy_detaches_the_socket_from_the_loop() {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);
    let address = addr(&listener);
    // A second fd for the same socket keeps it open and listening after destroy closes the
    // listener's own fd. epoll watches the socket, not the fd number: unless destroy detached it
    // (EPOLL_CTL_DEL), epoll goes on reporting it, the classic trap of closing without detaching.
    let same_socket = listener.sock_fd.try_clone().expect("dup() the listening socket");

    xps_listener_destroy(listener);

    let _client = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).expect("connect to the still-open socket");
    let n = ready_events(&epoll_fd, Duration::from_millis(300));
    if n != 0 {
        fail(
            Failure::new("after xps_listener_destroy(), the loop still reports the listener's socket")
                .detail("expected", "no event: destroy detaches the socket from the loop before closing it")
                .detail("received", format!("{n} event(s) for a client connecting to the socket"))
                .hint(
                    "xps_listener_destroy() must call xps_loop_detach(epoll_fd, sock_fd) first; \
                     xps_loop_detach() in stage06/src/main.rs: epoll_ctl(EPOLL_CTL_DEL) (sys::epoll_del)",
                ),
        );
    }
    drop(same_socket);
}
