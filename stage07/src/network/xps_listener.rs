//! The `xps_listener` module (`network/xps_listener.c`): a listening socket bound to one host
//! and port. It accepts clients and creates an `xps_connection` for each.

use std::ffi::c_void;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::{Rc, Weak};

use log::{debug, error, info};
use shared::sys;
use shared::xps_utils::{FdReserve, listener_extras, xps_getaddrinfo};

use crate::core::xps_core::xps_core_take;
use crate::given::instance_ptr::{instance_from_ptr, instance_ptr};
use crate::network::xps_connection::xps_connection_create;
use crate::xps::{DEFAULT_BACKLOG, XpsCore, xps_loop_attach, xps_loop_detach};

/// `struct xps_listener_s`.
pub struct XpsListener {
    /// The core it belongs to (the page's `xps_core_t *core`); `Weak`: the core owns the listener.
    pub core: Weak<XpsCore>,
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
/// to the core's loop and adds it to `core.listeners`. `None` (the C's NULL) on error, after
/// logging it and undoing what was done: the socket closes when `sock_fd` is dropped.
pub fn xps_listener_create(core: &Rc<XpsCore>, host: &str, port: u16) -> Option<Rc<XpsListener>> {
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
        Rc::new(XpsListener { core: Rc::downgrade(core), host: host.to_string(), port, sock_fd, fd_reserve });

    // Attach listener to loop
    let (fd, ptr) = (listener.sock_fd.as_fd(), instance_ptr(&listener));
    // SAFETY: core.listeners keeps it alive; xps_listener_destroy() detaches it before dropping it.
    unsafe { xps_loop_attach(&core.loop_, fd, sys::EPOLLIN as u32, ptr, listener_connection_handler) }.ok()?;

    // Add listener to core's listeners list
    core.listeners.borrow_mut().push(Some(Rc::clone(&listener)));

    debug!(target: "xps_listener_create()", "created listener on port {port}");
    Some(listener)
}

/// `xps_listener_destroy()`: detaches the listener from the loop, sets its entry in
/// `core.listeners` to `None`, closes its socket and frees it.
///
/// It takes the listener by value: after destroy, the compiler rejects any further use of it,
/// where C would compile a use-after-free.
pub fn xps_listener_destroy(listener: Rc<XpsListener>) {
    let Some(core) = listener.core.upgrade() else { return }; // no core: no loop or list left either

    // Detach listener from loop (an error is logged; destroying goes on regardless)
    let _ = xps_loop_detach(&core.loop_, listener.sock_fd.as_fd());

    // Set listener to None in core's 'listeners' list
    drop(xps_core_take(&core.listeners, &core.n_null_listeners, &listener));

    debug!(target: "xps_listener_destroy()", "destroyed listener on port {}", listener.port);

    // Close socket & free listener instance: dropping the last handle closes `sock_fd` and
    // frees the memory, as the C's close() and free() do.
    drop(listener);
}

/// `listener_connection_handler()`: accepts one waiting client and creates its connection.
///
/// # Safety
///
/// `ptr` must be [`instance_ptr`] of a live listener.
unsafe fn listener_connection_handler(ptr: *mut c_void) {
    // SAFETY: this function's contract is instance_from_ptr's.
    let listener = unsafe { instance_from_ptr::<XpsListener>(ptr) };
    let Some(core) = listener.core.upgrade() else { return };

    // Accepting connection
    let conn_sock_fd = match sys::accept(listener.sock_fd.as_fd()) {
        Ok(fd) => fd,
        Err(e) => {
            // Out of descriptors, the course's C spins here: FdReserve turns the client away.
            if let Some(reason) = listener.fd_reserve.on_accept_error(listener.sock_fd.as_fd(), &e) {
                error!(target: "listener_connection_handler()", "accept() failed on {}:{}: {reason}", listener.host, listener.port);
            }
            return;
        }
    };

    // Creating connection instance (on failure, `conn_sock_fd` was dropped, i.e. closed)
    let Some(client) = xps_connection_create(&core, conn_sock_fd) else {
        error!(target: "listener_connection_handler()", "xps_connection_create() failed");
        return;
    };
    let _ = client.listener.set(Rc::downgrade(&listener));

    info!(target: "listener_connection_handler()", "new connection");
}
