//! What stage 6's in-process checks share: the loop and a listener made through the page's
//! functions, epoll's view of them, and a probe of the loop's own functions.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use shared::sys;
use xps_tests::harness::{calling, fail};
use xps_tests::in_process::{fd_data, reported_data};
use xps_tests::{Failure, Role};

use crate::network::xps_listener::{xps_listener_create, xps_listener_destroy};
use crate::xps::XpsListener;
use crate::{LISTENERS, xps_loop_attach, xps_loop_create, xps_loop_detach};

/// How long a client waits for `connect()`.
pub const CONNECT_TIMEOUT: Duration = xps_tests::in_process::WAIT;

/// `xps_loop_create()`, wrapped as `main` shares it.
pub fn create_loop() -> Rc<OwnedFd> {
    let _calling = calling("xps_loop_create");
    match xps_loop_create() {
        Ok(epoll_fd) => Rc::new(epoll_fd),
        Err(e) => fail(
            Failure::new("xps_loop_create() failed")
                .detail("expected", "an epoll fd (Ok)")
                .detail("received", format!("Err({e})"))
                .blame(Role::LoopCreate, "create the epoll instance (sys::epoll_create) and return it"),
        ),
    }
}

/// `xps_listener_create(epoll_fd, "127.0.0.1", 0)`, which must return a listener on the port
/// the OS picked.
pub fn create_listener(epoll_fd: &Rc<OwnedFd>) -> Rc<XpsListener> {
    let created = {
        let _calling = calling("xps_listener_create");
        xps_listener_create(epoll_fd, "127.0.0.1", 0)
    };
    let Some(listener) = created else {
        fail(
            Failure::new("xps_listener_create(epoll_fd, \"127.0.0.1\", 0) returned None")
                .detail("expected", "Some(listener) listening on a port the OS picks")
                .blame(
                    Role::ListenerCreate,
                    "socket, setsockopt (SO_REUSEADDR), bind, listen, then attach to the loop; its ERROR line says \
                     which call failed",
                ),
        )
    };
    if listener.port == 0 {
        fail(
            Failure::new("the listener's port is 0")
                .detail("expected", "the port the OS picked for port 0 (sys::local_addr(sock_fd).port())")
                .detail("received", "0: nobody can connect to port 0")
                .blame(Role::ListenerCreate, "keep the given lines that read back the port the OS picked"),
        );
    }
    listener
}

/// `xps_listener_destroy(listener)`.
pub fn destroy_listener(listener: Rc<XpsListener>) {
    let _calling = calling("xps_listener_destroy");
    xps_listener_destroy(listener);
}

/// The address a client connects to.
pub fn addr(listener: &XpsListener) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], listener.port))
}

/// Where `listener` sits in `LISTENERS`, if it is there.
pub fn index_in_listeners(listener: &Rc<XpsListener>) -> Option<usize> {
    LISTENERS.with_borrow(|listeners| {
        listeners.iter().position(|entry| entry.as_ref().is_some_and(|entry| Rc::ptr_eq(entry, listener)))
    })
}

/// Waits up to `timeout` for epoll to report events; how many it reported.
pub fn ready_events(epoll_fd: &OwnedFd, timeout: Duration) -> usize {
    xps_tests::in_process::ready_events(epoll_fd.as_fd(), timeout)
}

/// Whether the loop's own functions work alone: an eventfd attached with `xps_loop_attach()` and
/// made readable is reported, with its fd as the event's data; after `xps_loop_detach()`, it no longer is. `Err` names the one
/// that does not work.
pub fn loop_functions_work(epoll_fd: &Rc<OwnedFd>) -> Result<(), Role> {
    let efd = sys::eventfd().unwrap_or_else(|e| fail(Failure::new(format!("eventfd() failed: {e}"))));
    sys::eventfd_signal(efd.as_fd()).unwrap_or_else(|e| fail(Failure::new(format!("write to an eventfd failed: {e}"))));
    let attached = {
        let _calling = calling("xps_loop_attach");
        xps_loop_attach(epoll_fd.as_fd(), efd.as_fd(), sys::EPOLLIN as u32)
    };
    // Reported, and with the fd as its data (the page's `event.data.fd = fd`): xps_loop_run()
    // finds the event's owner by it.
    let data = reported_data(epoll_fd.as_fd(), Duration::from_millis(300));
    if attached.is_err() || !data.contains(&fd_data(efd.as_fd())) {
        return Err(Role::LoopAttach);
    }
    let detached = {
        let _calling = calling("xps_loop_detach");
        xps_loop_detach(epoll_fd.as_fd(), efd.as_fd())
    };
    if detached.is_err() || ready_events(epoll_fd, Duration::from_millis(300)) != 0 {
        return Err(Role::LoopDetach);
    }
    Ok(())
}
