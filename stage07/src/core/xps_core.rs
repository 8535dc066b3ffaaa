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
use crate::xps::{DEFAULT_BUFFER_SIZE, XpsConnection, XpsError, XpsListener, XpsLoop, XpsResult};

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
    // Destroy connections, and de-initialize core.connections. The list is taken out first, so
    // each destroy finds its entry gone instead of searching for it past the None entries of
    // the ones destroyed before it (with nothing compacted, that search would make the whole
    // teardown quadratic in the number of connections).
    core.connections.take().into_iter().flatten().for_each(xps_connection_destroy);

    // Destroy listeners, and de-initialize core.listeners
    core.listeners.take().into_iter().flatten().for_each(xps_listener_destroy);

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

/// Takes `instance`'s entry out of `list`, leaving `None`, and counts it in `n_null`: the step
/// "set it to NULL in the core's list" of the page's destroy functions, written once for both
/// lists. Returns the list's handle, for the caller to drop.
///
/// The page compacts a list once it holds more than `DEFAULT_NULLS_THRESH` NULL entries, but
/// only "in a later stage"; so does this workspace.
pub fn xps_core_take<T>(list: &RefCell<Vec<Option<Rc<T>>>>, n_null: &Cell<u32>, instance: &Rc<T>) -> Option<Rc<T>> {
    let owned =
        list.borrow_mut().iter_mut().find(|curr| curr.as_ref().is_some_and(|curr| Rc::ptr_eq(curr, instance)))?.take();
    n_null.set(n_null.get() + 1);
    owned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_sets_none_and_counts_it() {
        let list = RefCell::new(Vec::new());
        let n_null = Cell::new(0);
        let items: Vec<Rc<u32>> = (0..3).map(Rc::new).collect();
        list.borrow_mut().extend(items.iter().cloned().map(Some));

        assert!(xps_core_take(&list, &n_null, &items[1]).is_some());
        assert!(list.borrow()[1].is_none());
        assert_eq!(n_null.get(), 1);
        assert!(xps_core_take(&list, &n_null, &items[1]).is_none(), "already taken");
        assert_eq!(n_null.get(), 1);
        assert_eq!(list.borrow().len(), 3, "the list is not compacted: the page does that in a later stage");
    }
}
