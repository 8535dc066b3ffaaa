//! The `xps_connection` module (`network/xps_connection.c`): one accepted TCP client. It reads
//! what the client sends, prints it, and sends it back reversed.

use std::cell::OnceCell;
use std::ffi::c_void;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::{Rc, Weak};

use log::{Level, debug, info, log};
use shared::sys;
use shared::xps_utils::{client_error_level, get_remote_ip, is_client_gone, print_client_message, reverse_message};

use crate::core::xps_core::xps_core_take;
use crate::given::instance_ptr::{instance_from_ptr, instance_ptr};
use crate::xps::{XpsCore, XpsListener, xps_loop_attach, xps_loop_detach};

/// `struct xps_connection_s`.
pub struct XpsConnection {
    /// The core it belongs to (the page's `xps_core_t *core`); `Weak`: the core owns the connection.
    pub core: Weak<XpsCore>,
    /// The connection socket; *blocking*, as in the course. `OwnedFd` closes it when freed.
    pub sock_fd: OwnedFd,
    /// The listener that accepted it, set once right after creation as the page's
    /// `client->listener = listener`. `Weak`: a connection does not own its listener.
    pub listener: OnceCell<Weak<XpsListener>>,
    /// The client's IPv4 address as text (the page's malloc'd `char *remote_ip`); `None`, the
    /// page's NULL, if the client left before its address could be read.
    pub remote_ip: Option<String>,
}

/// `xps_connection_create()`: wraps an accepted socket, attaches it to the loop and adds it to
/// `core.connections`. `None` (the C's NULL) on error, after logging it; `sock_fd` is
/// then closed (dropped).
pub fn xps_connection_create(core: &Rc<XpsCore>, sock_fd: OwnedFd) -> Option<Rc<XpsConnection>> {
    // Allocate and init values. Rust allocates and initialises in one step, so the remote IP is
    // read here, before the attach that the page does first. A client that reset its connection
    // before accept() returned has no address any more: that is the client's doing, not a server
    // error, so it is logged at DEBUG and the connection goes on with `None`, as the page's goes
    // on with NULL; its first read then reports the client gone.
    let remote_ip = get_remote_ip(sock_fd.as_fd())
        .inspect_err(|e| {
            let level = if is_client_gone(e) { Level::Debug } else { Level::Error };
            log!(target: "xps_connection_create()", level, "get_remote_ip() failed: {e}");
        })
        .ok();
    let connection =
        Rc::new(XpsConnection { core: Rc::downgrade(core), sock_fd, listener: OnceCell::new(), remote_ip });

    // Attach sock_fd to epoll
    let (fd, ptr) = (connection.sock_fd.as_fd(), instance_ptr(&connection));
    // SAFETY: core.connections keeps it alive; xps_connection_destroy() detaches it before dropping it.
    unsafe { xps_loop_attach(&core.loop_, fd, sys::EPOLLIN as u32, ptr, connection_loop_read_handler) }.ok()?;

    // Add connection to core's 'connections' list
    core.connections.borrow_mut().push(Some(Rc::clone(&connection)));

    debug!(target: "xps_connection_create()", "created connection");
    Some(connection)
}

/// `xps_connection_destroy()`: sets the connection's entry in `core.connections` to `None`, detaches
/// it from the loop, closes its socket and frees it.
///
/// It takes the connection by value, so code after a destroy cannot touch it: the compiler
/// turns C's use-after-free into an error.
pub fn xps_connection_destroy(connection: Rc<XpsConnection>) {
    let Some(core) = connection.core.upgrade() else { return }; // no core: no loop or list left either

    // Set connection to None in core's 'connections' list
    drop(xps_core_take(&core.connections, &core.n_null_connections, &connection));

    // Detach connection from loop (an error is logged; destroying goes on regardless)
    let _ = xps_loop_detach(&core.loop_, connection.sock_fd.as_fd());

    // Close connection socket FD, free remote_ip, free connection instance: dropping the last
    // handle does all three, as the C's close() and two free() calls do.
    drop(connection);

    debug!(target: "xps_connection_destroy()", "destroyed connection");
}

/// `connection_loop_read_handler()`: reads what one `recv()` returns, prints it, reverses it and
/// sends it all back. On EOF or an error the connection is destroyed.
///
/// The socket is blocking, as in the course: if the client stops reading and the kernel's send
/// buffer fills, `send()` blocks the whole server (stage 7's Experiment #1).
///
/// Errors the client caused (it reset the connection, it left) are logged at INFO, the
/// server's own at ERROR (see `client_error_level`); the page logs both as ERROR.
///
/// # Safety
///
/// `ptr` must be [`instance_ptr`] of a live connection.
unsafe fn connection_loop_read_handler(ptr: *mut c_void) {
    // SAFETY: this function's contract is instance_from_ptr's.
    let connection = unsafe { instance_from_ptr::<XpsConnection>(ptr) };
    let Some(core) = connection.core.upgrade() else { return };
    let mut buff = core.buff.borrow_mut();
    let remote_ip = connection.remote_ip.as_deref().unwrap_or("unknown");

    let read_n = match sys::recv(connection.sock_fd.as_fd(), &mut buff[..]) {
        Ok(0) => {
            info!(target: "connection_read_handler()", "peer closed connection");
            drop(buff);
            xps_connection_destroy(connection);
            return;
        }
        Ok(n) => n,
        Err(e) => {
            log!(target: "connection_loop_read_handler()", client_error_level(&e), "recv() failed (client {remote_ip}): {e}");
            drop(buff);
            xps_connection_destroy(connection);
            return;
        }
    };
    let message = &mut buff[..read_n];

    // Print client message, then reverse it
    print_client_message(message);
    reverse_message(message);

    // Sending reversed message to client
    let mut bytes_written = 0;
    while bytes_written < read_n {
        match sys::send(connection.sock_fd.as_fd(), &message[bytes_written..]) {
            Ok(write_n) => bytes_written += write_n,
            Err(e) => {
                log!(target: "connection_loop_read_handler()", client_error_level(&e), "send() failed (client {remote_ip}): {e}");
                drop(buff);
                xps_connection_destroy(connection);
                return;
            }
        }
    }
}
