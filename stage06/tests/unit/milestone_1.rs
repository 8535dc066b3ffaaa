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
//! Each check is a function the registry (`tests/src/list.rs`) names; a failure is raised with
//! `fail()` and names the page function it points to (`Role`), found by what the check saw:
//! where the loop is involved, the check tries the loop's own function alone first, so that a
//! listener that does not attach itself and an `xps_loop_attach()` that does not work are told
//! apart.
//!
//! Run them with `cargo test -p stage06 milestone_1`.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use xps_tests::{Failure, Role};

use super::kit::{CONNECT_TIMEOUT, addr, create_listener, create_loop, destroy_listener, index_in_listeners};
use super::kit::{loop_functions_work, ready_events};
use crate::LISTENERS;
use std::os::fd::AsFd;
use xps_tests::in_process::{fd_data, reported_data};

/// A listener on port 0 listens on the port the OS picked and is in `LISTENERS`.
pub fn a_listener_on_port_0_is_listening_and_in_listeners() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);

    if index_in_listeners(&listener).is_none() {
        let entries = LISTENERS.with_borrow(|listeners| listeners.iter().filter(|l| l.is_some()).count());
        return Err(Failure::new("the new listener is not in LISTENERS")
            .detail("expected", "LISTENERS holds Some(listener) for the listener xps_listener_create() returned")
            .detail("received", format!("LISTENERS holds {entries} other listener(s)"))
            .blame(Role::ListenerCreate, "push the listener onto the global LISTENERS list (the page's vec_push)"));
    }

    if let Err(e) = TcpStream::connect_timeout(&addr(&listener), CONNECT_TIMEOUT) {
        return Err(Failure::new(format!("nothing listens on 127.0.0.1:{}", listener.port))
            .detail("expected", "connect() succeeds: the listener's socket is bound and listening")
            .detail("received", format!("connect() failed: {e}"))
            .blame(Role::ListenerCreate, "bind() to the address, then listen() with DEFAULT_BACKLOG"));
    }

    destroy_listener(listener);
    Ok(())
}

/// A client can connect, and the waiting client makes the loop report the listening socket.
pub fn a_client_can_connect_and_the_loop_reports_it() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);

    let _client = TcpStream::connect_timeout(&addr(&listener), CONNECT_TIMEOUT).map_err(|e| {
        Failure::new(format!("a client could not connect to 127.0.0.1:{}", listener.port))
            .detail("expected", "connect() succeeds")
            .detail("received", format!("connect() failed: {e}"))
            .blame(Role::ListenerCreate, "bind() to the address, then listen() with DEFAULT_BACKLOG")
    })?;

    // The waiting client makes the listening socket readable: the loop must report it, which it
    // does only for sockets attached to it.
    let data = reported_data(epoll_fd.as_fd(), CONNECT_TIMEOUT);
    if data.is_empty() {
        let failure = Failure::new("a client is waiting to be accepted, but the loop reports nothing")
            .detail("expected", "epoll_wait() on the loop reports the listening socket readable (EPOLLIN)")
            .detail("received", format!("no event within {CONNECT_TIMEOUT:?}"));
        return Err(match loop_functions_work(&epoll_fd) {
            Err(Role::LoopAttach) => failure.blame(
                Role::LoopAttach,
                "an eventfd attached with it alone is not reported either: epoll_ctl(EPOLL_CTL_ADD) the fd with \
                 the events given (sys::epoll_add)",
            ),
            _ => failure.blame(
                Role::ListenerCreate,
                "xps_loop_attach() works alone, so the listener's socket was not attached: call \
                 xps_loop_attach(epoll_fd, sock_fd, EPOLLIN) after listen()",
            ),
        });
    }
    let want = fd_data(listener.sock_fd.as_fd());
    if !data.contains(&want) {
        let failure = Failure::new("the loop reports the listening socket, but its event does not carry the socket's fd")
            .detail("expected", format!("the event's data is the fd, {want} (the page's `event.data.fd = fd`): xps_loop_run() finds the listener by it"))
            .detail("received", format!("data {data:?}"));
        return Err(match loop_functions_work(&epoll_fd) {
            Err(Role::LoopAttach) => failure.blame(
                Role::LoopAttach,
                "give epoll the fd as the event's data: sys::epoll_add(epoll_fd, fd, events, fd.as_raw_fd() as u64)",
            ),
            _ => failure.blame(Role::ListenerCreate, "attach the listener's own socket, sock_fd"),
        });
    }

    destroy_listener(listener);
    Ok(())
}

/// Destroy sets the listener's entry to `None`, frees the listener and closes its socket.
pub fn destroy_closes_the_socket_frees_the_listener_and_leaves_none() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);
    let address = addr(&listener);
    let index = index_in_listeners(&listener).ok_or_else(|| {
        Failure::new("the new listener is not in LISTENERS")
            .blame(Role::ListenerCreate, "push the listener onto the global LISTENERS list")
    })?;
    let len = LISTENERS.with_borrow(Vec::len);
    let weak = Rc::downgrade(&listener);

    destroy_listener(listener);

    let entry = LISTENERS.with_borrow(|listeners| listeners.get(index).map(Option::is_none));
    let len_after = LISTENERS.with_borrow(Vec::len);
    if entry != Some(true) || len_after != len {
        return Err(Failure::new("after xps_listener_destroy(), LISTENERS does not hold None where the listener was")
            .detail("expected", format!("entry {index} is None, and the list keeps its {len} entries"))
            .detail(
                "received",
                match entry {
                    Some(false) => format!("entry {index} still holds a listener"),
                    _ => format!("the list has {len_after} entries: the entry was removed"),
                },
            )
            .blame(
                Role::ListenerDestroy,
                "set the entry to None (`take()` it) instead of removing it, as the page does: the list may be in \
                 use elsewhere (the loop) at that moment",
            ));
    }

    if weak.upgrade().is_some() {
        return Err(Failure::new("after xps_listener_destroy(), the listener is still alive")
            .detail("expected", "destroy drops the last handle (Rc) to the listener: the C's free()")
            .detail("received", format!("{} handle(s) still held", weak.strong_count()))
            .blame(Role::ListenerDestroy, "take the listener out of LISTENERS and let it drop; keep no copy"));
    }

    match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
        other => Err(Failure::new(format!(
            "after xps_listener_destroy(), 127.0.0.1:{} still accepts clients",
            address.port()
        ))
        .detail("expected", "connect() is refused: destroy closes the listening socket")
        .detail("received", format!("{other:?}"))
        .blame(Role::ListenerDestroy, "the socket closes when the listener (its OwnedFd) is dropped")),
    }
}

/// Destroy detaches the socket from the loop before closing it.
pub fn destroy_detaches_the_socket_from_the_loop() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);
    let address = addr(&listener);
    // A second fd for the same socket keeps it open and listening after destroy closes the
    // listener's own fd. epoll watches the socket, not the fd number: unless destroy detached it
    // (EPOLL_CTL_DEL), epoll goes on reporting it, the classic trap of closing without detaching.
    let same_socket = listener.sock_fd.try_clone().expect("dup() the listening socket");

    destroy_listener(listener);

    let _client = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).expect("connect to the still-open socket");
    let n = ready_events(&epoll_fd, Duration::from_millis(300));
    drop(same_socket);
    if n != 0 {
        let failure = Failure::new("after xps_listener_destroy(), the loop still reports the listener's socket")
            .detail("expected", "no event: destroy detaches the socket from the loop before closing it")
            .detail("received", format!("{n} event(s) for a client connecting to the socket"));
        return Err(match loop_functions_work(&epoll_fd) {
            Err(Role::LoopDetach) => failure.blame(
                Role::LoopDetach,
                "an eventfd detached with it alone is still reported: epoll_ctl(EPOLL_CTL_DEL) the fd \
                 (sys::epoll_del)",
            ),
            _ => failure.blame(
                Role::ListenerDestroy,
                "xps_loop_detach() works alone, so destroy did not detach the socket: call \
                 xps_loop_detach(epoll_fd, sock_fd) before closing it",
            ),
        });
    }
    Ok(())
}
