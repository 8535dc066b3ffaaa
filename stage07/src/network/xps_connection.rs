//! The `xps_connection` module (`network/xps_connection.c`): one accepted TCP client. It reads
//! what the client sends, prints it, and sends it back reversed.

use std::cell::OnceCell;
use std::ffi::c_void;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::{Rc, Weak};

use log::{debug, error, info};
use shared::sys;
use shared::xps_utils::{get_remote_ip, print_client_message, reverse_message};

use crate::core::xps_core::xps_core_take;
use crate::core::xps_loop::{xps_loop_attach, xps_loop_detach};
use crate::xps::{XpsCore, XpsListener};

/// `struct xps_connection_s`.
pub struct XpsConnection {
    /// The core the connection belongs to (the page's `xps_core_t *core`). `Weak`: the core owns
    /// the connection, not the other way round.
    pub core: Weak<XpsCore>,
    /// The connection socket; *blocking*, as in the course. `OwnedFd` closes it when freed.
    pub sock_fd: OwnedFd,
    /// The listener that accepted it, set once right after creation as the page's
    /// `client->listener = listener`. `Weak`: a connection does not own its listener.
    pub listener: OnceCell<Weak<XpsListener>>,
    /// The client's IPv4 address as text (the page's malloc'd `char *remote_ip`).
    pub remote_ip: String,
}

/// `xps_connection_create()`: wraps an accepted socket, attaches it to the core's loop with
/// `connection_loop_read_handler` as its read callback, and adds it to `core.connections`.
/// `None` (the C's NULL) on error, after logging it; `sock_fd` is then closed (dropped).
pub fn xps_connection_create(core: &Rc<XpsCore>, sock_fd: OwnedFd) -> Option<Rc<XpsConnection>> {
    let remote_ip = get_remote_ip(sock_fd.as_fd())
        .inspect_err(|e| error!(target: "xps_connection_create()", "get_remote_ip() failed: {e}"))
        .ok()?;

    // Allocate and init values
    let connection =
        Rc::new(XpsConnection { core: Rc::downgrade(core), sock_fd, listener: OnceCell::new(), remote_ip });

    // Attach sock_fd to epoll: the loop will call connection_loop_read_handler(ptr) with a
    // pointer to this connection. It stays valid while attached: core.connections keeps the
    // connection alive until xps_connection_destroy(), which detaches first.
    let ptr = Rc::as_ptr(&connection).cast_mut().cast::<c_void>();
    let flags = sys::EPOLLIN as u32;
    xps_loop_attach(&core.loop_, connection.sock_fd.as_fd(), flags, ptr, connection_loop_read_handler).ok()?;

    // Add connection to core's 'connections' list
    core.connections.borrow_mut().push(Some(Rc::clone(&connection)));

    debug!(target: "xps_connection_create()", "created connection");
    Some(connection)
}

/// `xps_connection_destroy()`: sets the connection's entry in `core.connections` to `None`,
/// detaches it from the loop, closes its socket and frees it.
///
/// It takes the connection by value, so code after a destroy cannot touch it: the compiler
/// turns C's use-after-free into an error.
pub fn xps_connection_destroy(connection: Rc<XpsConnection>) {
    if let Some(core) = connection.core.upgrade() {
        // Set connection to None in core's 'connections' list
        drop(xps_core_take(&core.connections, &core.n_null_connections, &connection));

        // Detach connection from loop (an error is logged; destroying goes on regardless)
        let _ = xps_loop_detach(&core.loop_, connection.sock_fd.as_fd());
    }

    // Close connection socket FD, free remote_ip, free connection instance: dropping the last
    // handle does all three, as the C's close() and two free() calls do.
    drop(connection);

    debug!(target: "xps_connection_destroy()", "destroyed connection");
}

/// `connection_loop_read_handler()`: the connection's read callback (stage 6's
/// `xps_connection_read_handler`, now called by the loop through a pointer). Reads what one
/// `recv()` returns, prints it, reverses it and sends it all back. On EOF or an error the
/// connection is destroyed.
///
/// The socket is blocking, as in the course: if the client stops reading and the kernel's send
/// buffer fills, `send()` blocks the whole server (the page's Experiment #1).
fn connection_loop_read_handler(ptr: *mut c_void) {
    assert!(!ptr.is_null());
    let ptr = ptr.cast::<XpsConnection>().cast_const();
    // SAFETY: the loop calls this only while the connection's event is attached, and `ptr` is the
    // `Rc::as_ptr` that xps_connection_create() attached: the very pointer `Rc::into_raw` returns (into_raw
    // is as_ptr plus forgetting the handle; here core.connections keeps that handle instead). The
    // core holds it until xps_connection_destroy(), which detaches before it lets go, so the strong
    // count is at least 1 and taking one more reference is sound. That reference keeps the
    // connection alive for this whole call, whatever the call destroys.
    let connection = unsafe {
        Rc::increment_strong_count(ptr);
        Rc::from_raw(ptr)
    };
    let Some(core) = connection.core.upgrade() else { return };
    let buff = &mut *core.buff.borrow_mut();

    let read_n = match sys::recv(connection.sock_fd.as_fd(), buff) {
        Ok(0) => {
            info!(target: "connection_read_handler()", "peer closed connection");
            xps_connection_destroy(connection);
            return;
        }
        Ok(n) => n,
        Err(e) => {
            error!(target: "connection_loop_read_handler()", "recv() failed (client {}): {e}", connection.remote_ip);
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
                error!(target: "connection_loop_read_handler()", "send() failed (client {}): {e}", connection.remote_ip);
                xps_connection_destroy(connection);
                return;
            }
        }
    }
}
