//! The `xps_core` module (`core/xps_core.c`): one instance of eXpServer.
//!
//! The core owns what stage 6 kept in global variables: the lists of listeners and
//! connections, the receive buffer, and exactly one loop. Destroying the core destroys all of
//! them, so nothing global is left and two cores can run in one process (later stages run one
//! per thread).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use log::{debug, error, info};

use crate::core::xps_loop::{xps_loop_create, xps_loop_destroy, xps_loop_run};
use crate::network::xps_connection::xps_connection_destroy;
use crate::network::xps_listener::{xps_listener_create, xps_listener_destroy};
use crate::xps::{DEFAULT_BUFFER_SIZE, DEFAULT_NULLS_THRESH, XpsConnection, XpsError, XpsListener, XpsLoop, XpsResult};

/// `struct xps_core_s`.
pub struct XpsCore {
    /// The core's one loop (`xps_loop_t *loop`; `loop` is a Rust keyword).
    pub loop_: XpsLoop,
    /// Every listener created, `None` where one was destroyed.
    pub listeners: RefCell<Vec<Option<Rc<XpsListener>>>>,
    /// Every connection accepted, `None` where one was destroyed.
    pub connections: RefCell<Vec<Option<Rc<XpsConnection>>>>,
    /// How many entries of `listeners` are `None`.
    pub n_null_listeners: Cell<u32>,
    /// How many entries of `connections` are `None`.
    pub n_null_connections: Cell<u32>,
    /// The receive buffer every connection's read handler reuses (stage 6 kept it in a global).
    pub buff: RefCell<Vec<u8>>,
}

/// `xps_core_create()`: creates a core and its loop. `None` (the C's NULL) on error, after
/// logging it.
pub fn xps_core_create() -> Option<Rc<XpsCore>> {
    let Some(loop_) = xps_loop_create() else {
        error!(target: "xps_core_create()", "xps_loop_create() failed");
        return None;
    };

    // Init values
    let core = Rc::new(XpsCore {
        loop_,
        listeners: RefCell::new(Vec::new()),
        connections: RefCell::new(Vec::new()),
        n_null_listeners: Cell::new(0),
        n_null_connections: Cell::new(0),
        buff: RefCell::new(vec![0; DEFAULT_BUFFER_SIZE]),
    });

    debug!(target: "xps_core_create()", "created core");
    Some(core)
}

/// `xps_core_destroy()`: destroys every connection, then every listener, then the loop, then
/// frees the core. Afterwards none of their fds is open and none of their memory allocated.
pub fn xps_core_destroy(core: Rc<XpsCore>) {
    // Destroy connections. The handles are collected first: each destroy removes its entry.
    let connections: Vec<_> = core.connections.borrow().iter().flatten().cloned().collect();
    connections.into_iter().for_each(xps_connection_destroy);
    core.connections.take();

    // Destroy listeners
    let listeners: Vec<_> = core.listeners.borrow().iter().flatten().cloned().collect();
    listeners.into_iter().for_each(xps_listener_destroy);
    core.listeners.take();

    // Destroy the loop and free the core. Listeners and connections only held `Weak` handles
    // to the core, so this is the last `Rc`.
    match Rc::try_unwrap(core) {
        Ok(core) => xps_loop_destroy(core.loop_),
        Err(_) => {
            error!(target: "xps_core_destroy()", "the core is still in use; it is freed when its last user drops it")
        }
    }

    debug!(target: "xps_core_destroy()", "destroyed core");
}

/// `xps_core_start()`: creates a listener on each port, logs `Server listening on port N` for
/// each, and runs the loop. Returns when the loop stops (Ctrl+C), or with `Err` if a listener
/// could not be created or the loop failed. Either way the caller destroys the core.
///
/// The page creates listeners on 8001 to 8004; here the ports come from the command line
/// (8001 to 8004 when none are given).
pub fn xps_core_start(core: &Rc<XpsCore>, host: &str, ports: &[u16]) -> XpsResult {
    debug!(target: "xps_start()", "starting core");

    // Create listeners
    for &port in ports {
        let Some(listener) = xps_listener_create(core, host, port) else {
            error!(target: "xps_core_start()", "failed to create listener on {host}:{port}");
            return Err(XpsError::Fail);
        };
        info!(target: "xps_core_start()", "Server listening on port {}", listener.port);
    }

    // Run loop instance
    xps_loop_run(&core.loop_)
}

/// Takes `instance`'s entry out of `list`, leaving `None`, and counts it in `n_null`, as the
/// page's destroy functions do. Returns the list's handle, for the caller to drop.
///
/// Once more than `DEFAULT_NULLS_THRESH` entries are `None`, the list is compacted. The page
/// postpones this to a later stage ("when it is safe to do so"); here it is always safe, since
/// the loop finds instances through loop events, never through positions in these lists.
pub fn xps_core_take<T>(list: &RefCell<Vec<Option<Rc<T>>>>, n_null: &Cell<u32>, instance: &Rc<T>) -> Option<Rc<T>> {
    let mut list = list.borrow_mut();
    let owned = list.iter_mut().find(|curr| curr.as_ref().is_some_and(|curr| Rc::ptr_eq(curr, instance)))?.take();
    n_null.set(n_null.get() + 1);
    if n_null.get() > DEFAULT_NULLS_THRESH {
        list.retain(Option::is_some);
        n_null.set(0);
    }
    owned
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use crate::core::xps_loop::{LoopWaker, xps_loop_waker};

    /// Runs one core on its own thread: one listener on an OS-picked port, then the loop until
    /// woken. Reports the port and a waker; returns how many connections the core held when
    /// the loop stopped, after checking that destroying the core freed everything it owned.
    fn run_core(ready: mpsc::Sender<(u16, LoopWaker)>) -> usize {
        let core = xps_core_create().expect("create core");
        let listener = xps_listener_create(&core, "127.0.0.1", 0).expect("create listener");
        ready.send((listener.port, xps_loop_waker(&core.loop_))).unwrap();
        let weak_listener = Rc::downgrade(&listener);
        drop(listener);

        xps_loop_run(&core.loop_).expect("the loop stops when woken");

        let connections = core.connections.borrow().iter().flatten().count();
        let weak_connections: Vec<_> = core.connections.borrow().iter().flatten().map(Rc::downgrade).collect();
        let weak_core = Rc::downgrade(&core);
        xps_core_destroy(core);
        assert!(weak_core.upgrade().is_none(), "the core is freed");
        assert!(weak_listener.upgrade().is_none(), "its listener is freed");
        assert!(weak_connections.iter().all(|c| c.upgrade().is_none()), "its connections are freed");
        connections
    }

    fn round_trip(port: u16, message: &[u8]) -> (TcpStream, Vec<u8>) {
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        client.write_all(message).unwrap();
        let mut reply = vec![0; message.len()];
        client.read_exact(&mut reply).unwrap();
        (client, reply)
    }

    /// The refactor itself: with the lists and the loop inside the core instead of in globals,
    /// two cores run side by side in one process, each serving only its own clients.
    #[test]
    fn two_cores_in_one_process_each_serve_their_own_clients() {
        let _fds = crate::core::xps_loop::tests::fd_tests_lock();
        let (tx, rx) = mpsc::channel();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let tx = tx.clone();
                thread::spawn(move || run_core(tx))
            })
            .collect();
        let cores: Vec<(u16, LoopWaker)> = (0..2).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
        assert_ne!(cores[0].0, cores[1].0);

        let mut clients = Vec::new();
        for (i, (port, _)) in cores.iter().enumerate() {
            let message = format!("hello core {i}\n");
            let (client, reply) = round_trip(*port, message.as_bytes());
            assert_eq!(reply, format!("{} eroc olleh\n", i).as_bytes());
            clients.push(client);
        }

        for (_, waker) in &cores {
            waker.wake();
        }
        let held: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(held, [1, 1], "each core holds its own client's connection, and only that one");

        // Destroying each core closed its client's connection and its listening socket.
        for (mut client, (port, _)) in clients.into_iter().zip(&cores) {
            let mut byte = [0u8; 1];
            assert_eq!(client.read(&mut byte).unwrap(), 0, "the client sees end-of-file");
            assert!(TcpStream::connect(("127.0.0.1", *port)).is_err(), "port {port} is closed");
        }
    }

    #[test]
    fn take_sets_none_counts_it_and_compacts_past_the_threshold() {
        let list = RefCell::new(Vec::new());
        let n_null = Cell::new(0);
        let items: Vec<Rc<u32>> = (0..=DEFAULT_NULLS_THRESH + 1).map(Rc::new).collect();
        list.borrow_mut().extend(items.iter().cloned().map(Some));

        assert!(xps_core_take(&list, &n_null, &items[0]).is_some());
        assert!(list.borrow()[0].is_none());
        assert_eq!(n_null.get(), 1);
        assert!(xps_core_take(&list, &n_null, &items[0]).is_none(), "already taken");
        assert_eq!(n_null.get(), 1);

        for item in &items[1..=DEFAULT_NULLS_THRESH as usize] {
            xps_core_take(&list, &n_null, item);
        }
        assert_eq!(n_null.get(), 0, "compacted once more than DEFAULT_NULLS_THRESH were None");
        assert_eq!(list.borrow().len(), 1);
        assert!(Rc::ptr_eq(list.borrow()[0].as_ref().unwrap(), items.last().unwrap()));
    }
}
