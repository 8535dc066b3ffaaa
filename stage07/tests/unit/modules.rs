//! Milestone #2 of the stage 7 page, the module part: the listener and the connection with a
//! core, each function on its own, before the server runs them together.
//!
//! The page changes `xps_listener_create()` and `xps_connection_create()` to take the core, add
//! themselves to its lists and attach themselves to its loop with a callback, and their destroy
//! functions to undo that. These checks call each through the page's signatures on a core whose
//! loop is not running, and read only what the page defines: the core's `listeners` and
//! `connections`, the loop's `epoll_fd` (what epoll reports on it tells what is attached), the
//! instances' `port`, `sock_fd` and `remote_ip`. A failure names the function that does not do
//! its part; where the loop is involved, `xps_loop_attach()`/`xps_loop_detach()` are tried
//! alone first. Like every check here that opens fds, they hold the kit's fd lock.

use std::ffi::c_void;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use shared::sys;
use xps_tests::harness::{calling, fail};
use xps_tests::in_process::{WAIT, connected_pair, keep_open, read_some, ready_events};
use xps_tests::{Failure, Role, escape};

use super::kit::CALLBACKS;
use crate::core::xps_core::xps_core_create;
use crate::core::xps_loop::{xps_loop_attach, xps_loop_detach};
use crate::network::xps_connection::{xps_connection_create, xps_connection_destroy};
use crate::network::xps_listener::{xps_listener_create, xps_listener_destroy};
use crate::xps::{XpsConnection, XpsCore, XpsListener};

/// A core made with `xps_core_create()`, its loop not running.
fn new_core() -> Rc<XpsCore> {
    let created = {
        let _calling = calling("xps_core_create");
        xps_core_create()
    };
    created.unwrap_or_else(|| {
        fail(
            Failure::new("xps_core_create() returned None")
                .blame(Role::CoreCreate, "it returned None; its ERROR line says why"),
        )
    })
}

/// `xps_listener_create(core, "127.0.0.1", 0)`, which must return a listener.
fn new_listener(core: &Rc<XpsCore>) -> Rc<XpsListener> {
    let created = {
        let _calling = calling("xps_listener_create");
        xps_listener_create(core, "127.0.0.1", 0)
    };
    created.unwrap_or_else(|| {
        fail(
            Failure::new("xps_listener_create(core, \"127.0.0.1\", 0) returned None")
                .blame(Role::ListenerCreate, "it returned None; its ERROR line says which call failed"),
        )
    })
}

/// `xps_connection_create(core, sock_fd)`, which must return a connection.
fn new_connection(core: &Rc<XpsCore>, sock_fd: OwnedFd) -> Rc<XpsConnection> {
    let created = {
        let _calling = calling("xps_connection_create");
        xps_connection_create(core, sock_fd)
    };
    created.unwrap_or_else(|| {
        fail(
            Failure::new("xps_connection_create(core, sock_fd) returned None for a connected socket")
                .blame(Role::ConnectionCreate, "it returned None; its ERROR line says which call failed"),
        )
    })
}

/// Whether the loop's own attach and detach work alone, on an eventfd made readable: `Err`
/// names the one that does not.
fn loop_functions_work(core: &XpsCore) -> Result<(), Role> {
    let efd = sys::eventfd().unwrap_or_else(|e| fail(Failure::new(format!("eventfd(): {e}"))));
    sys::eventfd_signal(efd.as_fd()).unwrap_or_else(|e| fail(Failure::new(format!("write to an eventfd: {e}"))));
    let tag = 0u8;
    let ptr: *mut c_void = std::ptr::from_ref(&tag).cast_mut().cast();
    let attached = {
        let _calling = calling("xps_loop_attach");
        // SAFETY: the kit's callbacks never dereference ptr, and the loop is never run here.
        unsafe { xps_loop_attach(&core.loop_, efd.as_fd(), sys::EPOLLIN as u32, ptr, CALLBACKS[0]) }
    };
    if attached.is_err() || ready_events(core.loop_.epoll_fd.as_fd(), Duration::from_millis(300)) == 0 {
        return Err(Role::LoopAttach);
    }
    let detached = {
        let _calling = calling("xps_loop_detach");
        xps_loop_detach(&core.loop_, efd.as_fd())
    };
    if detached.is_err() || ready_events(core.loop_.epoll_fd.as_fd(), Duration::from_millis(300)) != 0 {
        return Err(Role::LoopDetach);
    }
    Ok(())
}

/// Whether `list` (a core's `listeners` or `connections`) holds `instance`.
fn holds<T>(list: &std::cell::RefCell<Vec<Option<Rc<T>>>>, instance: &Rc<T>) -> Option<usize> {
    list.borrow().iter().position(|entry| entry.as_ref().is_some_and(|entry| Rc::ptr_eq(entry, instance)))
}

/// A new listener is in the core's `listeners`, listens, and is attached to the core's loop.
pub fn listener_create_attaches_and_adds_to_the_cores_listeners() -> Result<(), Failure> {
    let core = new_core();
    let listener = new_listener(&core);
    if holds(&core.listeners, &listener).is_none() {
        return Err(Failure::new("the new listener is not in core.listeners").blame(
            Role::ListenerCreate,
            "add the listener to its core's listeners list (the page: `core->listeners`)",
        ));
    }
    let address = SocketAddr::from(([127, 0, 0, 1], listener.port));
    let _client = TcpStream::connect_timeout(&address, WAIT).map_err(|e| {
        Failure::new(format!("nothing listens on {address}: {e}"))
            .blame(Role::ListenerCreate, "bind() to the address, then listen() with DEFAULT_BACKLOG")
    })?;
    if ready_events(core.loop_.epoll_fd.as_fd(), WAIT) == 0 {
        let failure = Failure::new("a client is waiting to be accepted, but the core's loop reports nothing")
            .detail("expected", "epoll_wait() on core.loop_.epoll_fd reports the listening socket readable");
        return Err(match loop_functions_work(&core) {
            Err(role) => failure.blame(role, "tried alone on an eventfd, it does not work either"),
            Ok(()) => failure.blame(
                Role::ListenerCreate,
                "xps_loop_attach() works alone, so the listener was not attached: xps_loop_attach(core's loop, \
                 sock_fd, EPOLLIN, the listener's ptr, listener_connection_handler)",
            ),
        });
    }
    let _calling = calling("xps_listener_destroy");
    xps_listener_destroy(listener);
    Ok(())
}

/// Destroy detaches the listener from the loop, leaves `None` in the core's list, frees it and
/// closes its socket.
pub fn listener_destroy_detaches_and_leaves_none() -> Result<(), Failure> {
    let core = new_core();
    let listener = new_listener(&core);
    let index = holds(&core.listeners, &listener).ok_or_else(|| {
        Failure::new("the new listener is not in core.listeners")
            .blame(Role::ListenerCreate, "add it to core.listeners")
    })?;
    let address = SocketAddr::from(([127, 0, 0, 1], listener.port));
    let same_socket = keep_open(listener.sock_fd.as_fd());
    let weak = Rc::downgrade(&listener);
    {
        let _calling = calling("xps_listener_destroy");
        xps_listener_destroy(listener);
    }
    if core.listeners.borrow().get(index).map(Option::is_none) != Some(true) {
        return Err(Failure::new(
            "after xps_listener_destroy(), core.listeners does not hold None where the listener was",
        )
        .blame(
            Role::ListenerDestroy,
            "set its entry to None (`take()` it), as the page does, and count it in n_null_listeners",
        ));
    }
    if weak.upgrade().is_some() {
        return Err(Failure::new("after xps_listener_destroy(), the listener is still alive")
            .blame(Role::ListenerDestroy, "take it out of core.listeners and let it drop; keep no copy"));
    }
    let _client = TcpStream::connect_timeout(&address, WAIT);
    let reported = ready_events(core.loop_.epoll_fd.as_fd(), Duration::from_millis(300));
    drop(same_socket);
    if reported != 0 {
        let failure = Failure::new("after xps_listener_destroy(), the core's loop still reports the listener's socket")
            .detail("expected", "no event: destroy detaches the socket from the loop before closing it");
        return Err(match loop_functions_work(&core) {
            Err(role) => failure.blame(role, "tried alone on an eventfd, it does not work either"),
            Ok(()) => failure
                .blame(Role::ListenerDestroy, "call xps_loop_detach(core's loop, sock_fd) before closing the socket"),
        });
    }
    Ok(())
}

/// A new connection is in the core's `connections`, has the client's address, and is attached
/// to the core's loop.
pub fn connection_create_attaches_and_adds_to_the_cores_connections() -> Result<(), Failure> {
    let core = new_core();
    let (mut client, sock_fd) = connected_pair();
    let connection = new_connection(&core, sock_fd);
    if holds(&core.connections, &connection).is_none() {
        return Err(Failure::new("the new connection is not in core.connections").blame(
            Role::ConnectionCreate,
            "add the connection to its core's connections list (the page: `core->connections`)",
        ));
    }
    if connection.remote_ip.as_deref() != Some("127.0.0.1") {
        return Err(Failure::new("the connection's remote_ip is not the client's address")
            .detail("expected", "Some(\"127.0.0.1\")")
            .detail("received", format!("{:?}", connection.remote_ip))
            .blame(Role::ConnectionCreate, "set remote_ip from get_remote_ip(sock_fd)"));
    }
    client.write_all(b"hello\n").expect("send to the connection");
    if ready_events(core.loop_.epoll_fd.as_fd(), WAIT) == 0 {
        let failure = Failure::new("a client sent a line, but the core's loop does not report its connection")
            .detail("expected", "epoll_wait() on core.loop_.epoll_fd reports the connection's socket readable");
        return Err(match loop_functions_work(&core) {
            Err(role) => failure.blame(role, "tried alone on an eventfd, it does not work either"),
            Ok(()) => failure.blame(
                Role::ConnectionCreate,
                "xps_loop_attach() works alone, so the connection was not attached: xps_loop_attach(core's loop, \
                 sock_fd, EPOLLIN, the connection's ptr, connection_loop_read_handler)",
            ),
        });
    }
    let _calling = calling("xps_connection_destroy");
    xps_connection_destroy(connection);
    Ok(())
}

/// Destroy leaves `None` in the core's `connections`, detaches the socket, closes it (the
/// client reads end-of-file) and frees the connection.
pub fn connection_destroy_detaches_closes_and_leaves_none() -> Result<(), Failure> {
    let core = new_core();
    let (mut client, sock_fd) = connected_pair();
    let connection = new_connection(&core, sock_fd);
    let index = holds(&core.connections, &connection).ok_or_else(|| {
        Failure::new("the new connection is not in core.connections")
            .blame(Role::ConnectionCreate, "add it to core.connections")
    })?;
    let weak = Rc::downgrade(&connection);
    {
        let _calling = calling("xps_connection_destroy");
        xps_connection_destroy(connection);
    }
    if core.connections.borrow().get(index).map(Option::is_none) != Some(true) {
        return Err(Failure::new(
            "after xps_connection_destroy(), core.connections does not hold None where the connection was",
        )
        .blame(
            Role::ConnectionDestroy,
            "set its entry to None (`take()` it), as the page does, and count it in n_null_connections",
        ));
    }
    if weak.upgrade().is_some() {
        return Err(Failure::new("after xps_connection_destroy(), the connection is still alive").blame(
            Role::ConnectionDestroy,
            "take it out of core.connections and let it drop: that closes its socket",
        ));
    }
    let (got, closed) = read_some(&mut client, 1);
    if !closed {
        return Err(Failure::new("after xps_connection_destroy(), the client does not see the connection closed")
            .detail("received", format!("{} and no end-of-file within {WAIT:?}", escape(&got)))
            .blame(Role::ConnectionDestroy, "the socket closes when the connection (its OwnedFd) is dropped"));
    }

    let (mut client, sock_fd) = connected_pair();
    let same_socket = keep_open(sock_fd.as_fd());
    let connection = new_connection(&core, sock_fd);
    {
        let _calling = calling("xps_connection_destroy");
        xps_connection_destroy(connection);
    }
    client.write_all(b"after destroy\n").expect("send to the still-open socket");
    let reported = ready_events(core.loop_.epoll_fd.as_fd(), Duration::from_millis(300));
    drop(same_socket);
    if reported != 0 {
        let failure =
            Failure::new("after xps_connection_destroy(), the core's loop still reports the connection's socket")
                .detail("expected", "no event: destroy detaches the socket from the loop before closing it");
        return Err(match loop_functions_work(&core) {
            Err(role) => failure.blame(role, "tried alone on an eventfd, it does not work either"),
            Ok(()) => failure
                .blame(Role::ConnectionDestroy, "call xps_loop_detach(core's loop, sock_fd) before closing the socket"),
        });
    }
    Ok(())
}
