//! Milestone #2 of the stage 6 page, the in-process part: the connection module and the
//! listener's connection handler, each on its own, before the server runs them together.
//!
//! The page checks Milestone #2 with netcat against the running server (`tests/checks.rs` does
//! the same over TCP). A server that does not answer can fail in any of five functions; these
//! checks call each one through the page's signatures first, so a failure names the one that
//! does not do its part: `xps_connection_create()` (attach, `CONNECTIONS`, `remote_ip`),
//! `xps_connection_destroy()` (`None` left, detach, close), `xps_listener_connection_handler()`
//! (accept, create, `client->listener`), `xps_connection_read_handler()` (the reversal, destroy
//! on end-of-file). They read only what the page defines.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use xps_tests::harness::{calling, fail};
use xps_tests::{Failure, Role, escape};

use xps_tests::in_process::{connected_pair, keep_open, read_some};

use super::kit::{CONNECT_TIMEOUT, addr, create_listener, create_loop, destroy_listener};
use super::kit::{loop_functions_work, ready_events};
use crate::CONNECTIONS;
use crate::network::xps_connection::{xps_connection_create, xps_connection_destroy, xps_connection_read_handler};
use crate::xps::XpsConnection;

/// `xps_connection_create(epoll_fd, sock_fd)`, which must return a connection.
fn create(epoll_fd: &Rc<std::os::fd::OwnedFd>, sock_fd: std::os::fd::OwnedFd) -> Rc<XpsConnection> {
    let created = {
        let _calling = calling("xps_connection_create");
        xps_connection_create(epoll_fd, sock_fd)
    };
    created.unwrap_or_else(|| {
        fail(
            Failure::new("xps_connection_create(epoll_fd, sock_fd) returned None for a connected socket")
                .detail("expected", "Some(connection)")
                .blame(Role::ConnectionCreate, "it returned None; its ERROR line says which call failed"),
        )
    })
}

/// `xps_connection_destroy(connection)`.
fn destroy(connection: Rc<XpsConnection>) {
    let _calling = calling("xps_connection_destroy");
    xps_connection_destroy(connection);
}

/// Where `connection` sits in `CONNECTIONS`, if it is there.
fn index_in_connections(connection: &Rc<XpsConnection>) -> Option<usize> {
    CONNECTIONS.with_borrow(|list| list.iter().position(|c| c.as_ref().is_some_and(|c| Rc::ptr_eq(c, connection))))
}

/// A new connection is in `CONNECTIONS`, has the peer's address, and is attached: a client's
/// bytes make the loop report it.
pub fn connection_create_attaches_and_adds_to_connections() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let (mut client, sock_fd) = connected_pair();
    let connection = create(&epoll_fd, sock_fd);

    if index_in_connections(&connection).is_none() {
        return Err(Failure::new("the new connection is not in CONNECTIONS")
            .detail(
                "expected",
                "CONNECTIONS holds Some(connection) for the connection xps_connection_create() returned",
            )
            .blame(
                Role::ConnectionCreate,
                "push the connection onto the global CONNECTIONS list (the page's vec_push)",
            ));
    }
    if connection.remote_ip.as_deref() != Some("127.0.0.1") {
        return Err(Failure::new("the connection's remote_ip is not the client's address")
            .detail("expected", "Some(\"127.0.0.1\"): the page's `connection->remote_ip = get_remote_ip(sock_fd)`")
            .detail("received", format!("{:?}", connection.remote_ip))
            .blame(Role::ConnectionCreate, "set remote_ip from get_remote_ip(sock_fd)"));
    }
    client.write_all(b"hello\n").expect("send to the connection");
    if ready_events(&epoll_fd, CONNECT_TIMEOUT) == 0 {
        let failure = Failure::new("a client sent a line, but the loop does not report its connection")
            .detail("expected", "epoll_wait() on the loop reports the connection's socket readable (EPOLLIN)");
        return Err(match loop_functions_work(&epoll_fd) {
            Err(Role::LoopAttach) => {
                failure.blame(Role::LoopAttach, "an eventfd attached with it alone is not reported either")
            }
            _ => failure.blame(
                Role::ConnectionCreate,
                "xps_loop_attach() works alone, so the connection's socket was not attached: call \
                 xps_loop_attach(epoll_fd, sock_fd, EPOLLIN)",
            ),
        });
    }
    destroy(connection);
    Ok(())
}

/// Destroy leaves `None` in `CONNECTIONS`, frees the connection, closes its socket (the client
/// reads end-of-file) and detaches it first.
pub fn connection_destroy_detaches_closes_and_leaves_none() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let (mut client, sock_fd) = connected_pair();
    let connection = create(&epoll_fd, sock_fd);
    let index = index_in_connections(&connection).ok_or_else(|| {
        Failure::new("the new connection is not in CONNECTIONS")
            .blame(Role::ConnectionCreate, "push the connection onto the global CONNECTIONS list")
    })?;
    let len = CONNECTIONS.with_borrow(Vec::len);
    let weak = Rc::downgrade(&connection);

    destroy(connection);

    let entry = CONNECTIONS.with_borrow(|list| list.get(index).map(Option::is_none));
    if entry != Some(true) || CONNECTIONS.with_borrow(Vec::len) != len {
        return Err(Failure::new(
            "after xps_connection_destroy(), CONNECTIONS does not hold None where the connection was",
        )
        .detail("expected", format!("entry {index} is None, and the list keeps its {len} entries"))
        .blame(
            Role::ConnectionDestroy,
            "set the entry to None (`take()` it) instead of removing it, as the page does",
        ));
    }
    if weak.upgrade().is_some() {
        return Err(Failure::new("after xps_connection_destroy(), the connection is still alive")
            .detail("received", format!("{} handle(s) still held", weak.strong_count()))
            .blame(Role::ConnectionDestroy, "take it out of CONNECTIONS and let it drop: that closes its socket"));
    }
    let (got, closed) = read_some(&mut client, 1);
    if !closed {
        return Err(Failure::new("after xps_connection_destroy(), the client does not see the connection closed")
            .detail("expected", "end-of-file: destroy closes the connection's socket")
            .detail("received", format!("{} and no end-of-file within 2 s", escape(&got)))
            .blame(Role::ConnectionDestroy, "the socket closes when the connection (its OwnedFd) is dropped"));
    }

    // Detach: a second fd keeps the socket open after destroy closes the connection's own.
    let (mut client, sock_fd) = connected_pair();
    let same_socket = keep_open(sock_fd.as_fd());
    destroy(create(&epoll_fd, sock_fd));
    client.write_all(b"after destroy\n").expect("send to the still-open socket");
    let n = ready_events(&epoll_fd, Duration::from_millis(300));
    drop(same_socket);
    if n != 0 {
        let failure = Failure::new("after xps_connection_destroy(), the loop still reports the connection's socket")
            .detail("expected", "no event: destroy detaches the socket from the loop before closing it");
        return Err(match loop_functions_work(&epoll_fd) {
            Err(Role::LoopDetach) => {
                failure.blame(Role::LoopDetach, "an eventfd detached with it alone is still reported")
            }
            _ => failure.blame(
                Role::ConnectionDestroy,
                "xps_loop_detach() works alone, so destroy did not detach the socket: call \
                 xps_loop_detach(epoll_fd, sock_fd) before closing it",
            ),
        });
    }
    Ok(())
}

/// The listener's connection handler accepts the waiting client, creates its connection (in
/// `CONNECTIONS`, connected to that client) and sets the connection's listener.
pub fn listener_connection_handler_accepts_and_creates_a_connection() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let listener = create_listener(&epoll_fd);
    let client = TcpStream::connect_timeout(&addr(&listener), CONNECT_TIMEOUT).map_err(|e| {
        Failure::new(format!("a client could not connect: {e}")).blame(Role::ListenerCreate, "bind() and listen()")
    })?;
    let before = CONNECTIONS.with_borrow(|list| list.iter().flatten().count());
    {
        let _calling = calling("xps_listener_connection_handler");
        crate::network::xps_listener::xps_listener_connection_handler(&listener);
    }
    let new: Vec<Rc<XpsConnection>> =
        CONNECTIONS.with_borrow(|list| list.iter().flatten().skip(before).cloned().collect());
    let Some(connection) = new.first() else {
        return Err(Failure::new("a client was waiting, and xps_listener_connection_handler() created no connection")
            .detail("expected", "one more connection in CONNECTIONS")
            .blame(
                Role::ConnectionHandler,
                "accept() the client, then xps_connection_create(epoll_fd, conn_sock_fd)",
            ));
    };
    let client_addr = client.local_addr().expect("the client's address");
    let peer = shared::sys::peer_addr(connection.sock_fd.as_fd()).ok();
    if peer.map(std::net::SocketAddr::from) != Some(client_addr) {
        return Err(Failure::new("the new connection's socket is not the waiting client's")
            .detail("expected", format!("a socket connected to {client_addr}"))
            .detail("received", format!("{peer:?}"))
            .blame(Role::ConnectionHandler, "create the connection with the socket accept() returned"));
    }
    let set = connection.listener.get().and_then(std::rc::Weak::upgrade).is_some_and(|l| Rc::ptr_eq(&l, &listener));
    if !set {
        return Err(Failure::new("the new connection's listener is not the listener that accepted it")
            .detail("expected", "the page's `client->listener = listener`")
            .blame(Role::ConnectionHandler, "set the connection's listener after creating it"));
    }
    let connection = Rc::clone(connection);
    drop(new);
    destroy(connection);
    destroy_listener(listener);
    Ok(())
}

/// The read handler sends back the reversal of what the client sent, and on end-of-file
/// destroys the connection.
pub fn read_handler_replies_with_the_reversal_and_destroys_on_end_of_file() -> Result<(), Failure> {
    let epoll_fd = create_loop();
    let (mut client, sock_fd) = connected_pair();
    let connection = create(&epoll_fd, sock_fd);
    client.write_all(b"hello\n").expect("send to the connection");
    {
        let _calling = calling("xps_connection_read_handler");
        xps_connection_read_handler(Rc::clone(&connection));
    }
    let (got, closed) = read_some(&mut client, 6);
    if got != b"olleh\n" {
        return Err(Failure::new("the read handler did not send back the reversal")
            .detail("sent", escape(b"hello\n"))
            .detail("expected", escape(b"olleh\n"))
            .detail(
                "received",
                format!("{}{}", escape(&got), if closed { " (then the connection closed)" } else { "" }),
            )
            .blame(Role::ReadHandler, "recv(), reverse the bytes (a trailing \\n stays last), send() them all back"));
    }

    let weak = Rc::downgrade(&connection);
    drop(connection);
    client.shutdown(Shutdown::Write).expect("the client sends end-of-file");
    {
        let _calling = calling("xps_connection_read_handler");
        let connection = weak.upgrade().ok_or_else(|| {
            Failure::new("the connection was freed while its client was still connected")
                .blame(Role::ReadHandler, "destroy a connection only on end-of-file or an error")
        })?;
        xps_connection_read_handler(connection);
    }
    if weak.upgrade().is_some() {
        return Err(Failure::new("the client closed, and the read handler did not destroy its connection")
            .detail(
                "expected",
                "recv() returns 0 (end-of-file): the page logs `peer closed connection` and destroys it",
            )
            .blame(Role::ReadHandler, "when recv() returns 0, call xps_connection_destroy(connection)"));
    }
    Ok(())
}
