//! The `xps_listener` module (`network/xps_listener.c`): a listening socket bound to one host
//! and port. It accepts clients and creates an `xps_connection` for each.

use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use log::{debug, error, info};
use shared::sys;
use shared::xps_utils::{FdReserve, listener_extras, xps_getaddrinfo};

use crate::network::xps_connection::xps_connection_create;
use crate::xps::{DEFAULT_BACKLOG, LISTENERS, xps_loop_attach, xps_loop_detach};

/// `struct xps_listener_s`.
pub struct XpsListener {
    /// The epoll instance the listener is attached to (the page's `int epoll_fd`).
    pub epoll_fd: Rc<OwnedFd>,
    /// The address it is bound to, as given (`const char *host`).
    pub host: String,
    /// The port it listens on; the one the OS picked when asked for port 0.
    pub port: u16,
    /// The listening socket. `OwnedFd` closes it when the listener is freed.
    pub sock_fd: OwnedFd,
    /// A spare descriptor, so the listener can turn a client away instead of spinning when the
    /// process is out of descriptors (not in the course; see `FdReserve`).
    pub fd_reserve: FdReserve,
}

/// `xps_listener_create()`: creates a non-blocking listening socket on `host:port`, attaches it
/// to the loop and adds it to the global `LISTENERS`. `None` (the C's NULL) on error, after
/// logging it and undoing what was done: the socket closes when `sock_fd` is dropped.
pub fn xps_listener_create(epoll_fd: &Rc<OwnedFd>, host: &str, port: u16) -> Option<Rc<XpsListener>> {
    // Create socket instance
    let sock_fd = sys::socket_nonblocking()
        .inspect_err(|e| error!(target: "xps_listener_create()", "socket() failed: {e}"))
        .ok()?;

    // Make address reusable
    sys::set_reuseaddr(sock_fd.as_fd())
        .inspect_err(|e| error!(target: "xps_listener_create()", "setsockopt() failed: {e}"))
        .ok()?;

    // Setup listener address
    let addr = xps_getaddrinfo(host, port)
        .inspect_err(|e| error!(target: "xps_listener_create()", "xps_getaddrinfo() failed: {e}"))
        .ok()?;

    // Binding to port
    sys::bind(sock_fd.as_fd(), addr)
        .inspect_err(|e| error!(target: "xps_listener_create()", "failed to bind() to {host}:{port}: {e}"))
        .ok()?;

    // Listening on port
    sys::listen(sock_fd.as_fd(), DEFAULT_BACKLOG)
        .inspect_err(|e| error!(target: "xps_listener_create()", "listen() failed: {e}"))
        .ok()?;

    // Not in the course (a given helper): read back the port the OS picked when asked for port
    // 0, and open the spare descriptor that turns clients away when out of fds (`FdReserve`).
    let (port, fd_reserve) =
        listener_extras(sock_fd.as_fd()).inspect_err(|e| error!(target: "xps_listener_create()", "{e}")).ok()?;

    // Create & allocate memory for a listener instance, and init values
    let listener =
        Rc::new(XpsListener { epoll_fd: Rc::clone(epoll_fd), host: host.to_string(), port, sock_fd, fd_reserve });

    // Attach listener to loop
    xps_loop_attach(epoll_fd.as_fd(), listener.sock_fd.as_fd(), sys::EPOLLIN as u32).ok()?;

    // Add listener to global listeners list
    LISTENERS.with_borrow_mut(|listeners| listeners.push(Some(Rc::clone(&listener))));

    debug!(target: "xps_listener_create()", "created listener on port {port}");
    Some(listener)
}

/// `xps_listener_destroy()`: detaches the listener from the loop, sets its entry in
/// `LISTENERS` to `None`, closes its socket and frees it.
///
/// It takes the listener by value: after destroy, the compiler rejects any further use of it,
/// where C would compile a use-after-free.
pub fn xps_listener_destroy(listener: Rc<XpsListener>) {
    // Detach listener from loop (an error is logged; destroying goes on regardless)
    let _ = xps_loop_detach(listener.epoll_fd.as_fd(), listener.sock_fd.as_fd());

    // Set listener to None in 'listeners' list
    let owned = LISTENERS.with_borrow_mut(|listeners| {
        listeners.iter_mut().find(|curr| curr.as_ref().is_some_and(|curr| Rc::ptr_eq(curr, &listener)))?.take()
    });
    drop(owned);

    debug!(target: "xps_listener_destroy()", "destroyed listener on port {}", listener.port);

    // Close socket & free listener instance: dropping the last handle closes `sock_fd` and
    // frees the memory, as the C's close() and free() do.
    drop(listener);
}

/// `xps_listener_connection_handler()`: accepts one waiting client and creates its connection.
pub fn xps_listener_connection_handler(listener: &Rc<XpsListener>) {
    // Accepting connection
    let conn_sock_fd = match sys::accept(listener.sock_fd.as_fd()) {
        Ok(fd) => fd,
        Err(e) => {
            // Out of descriptors, the course's C spins here: FdReserve turns the client away.
            if let Some(reason) = listener.fd_reserve.on_accept_error(listener.sock_fd.as_fd(), &e) {
                error!(target: "xps_listener_connection_handler()", "accept() failed on {}:{}: {reason}", listener.host, listener.port);
            }
            return;
        }
    };

    // Creating connection instance (on failure, `conn_sock_fd` was dropped, i.e. closed)
    let Some(client) = xps_connection_create(&listener.epoll_fd, conn_sock_fd) else {
        error!(target: "xps_listener_connection_handler()", "xps_connection_create() failed");
        return;
    };
    let _ = client.listener.set(Rc::downgrade(listener));

    info!(target: "xps_listener_connection_handler()", "new connection");
}
