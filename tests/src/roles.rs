//! The page functions a check can blame, by what they do.
//!
//! The same check runs against stage 6 and stage 7, where the function that does a job has
//! another name (stage 6's `xps_connection_read_handler()` is stage 7's
//! `connection_loop_read_handler()`). A check blames a [`Role`]; the report names the function
//! of the stage it ran against. The names are the pages' own, which are also the names a C
//! build of the course uses.

/// A job one page function does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `xps_loop_create()`: the epoll instance (stage 7: and the loop).
    LoopCreate,
    /// `xps_loop_destroy()` (stage 7).
    LoopDestroy,
    /// `loop_event_create()` (stage 7).
    EventCreate,
    /// `loop_event_destroy()` (stage 7).
    EventDestroy,
    /// `xps_loop_attach()`.
    LoopAttach,
    /// `xps_loop_detach()`.
    LoopDetach,
    /// `xps_loop_run()`: waiting, and (stage 6) finding each event's owner.
    LoopRun,
    /// Handing one batch of events to their callbacks: stage 6's `xps_loop_run()`, stage 7's
    /// `handle_epoll_events()` (the page's C does it inside `xps_loop_run()`).
    Dispatch,
    /// `xps_core_create()` (stage 7).
    CoreCreate,
    /// `xps_core_destroy()` (stage 7).
    CoreDestroy,
    /// `xps_core_start()` (stage 7): the listeners, their log lines, the loop.
    CoreStart,
    /// `xps_listener_create()`.
    ListenerCreate,
    /// `xps_listener_destroy()`.
    ListenerDestroy,
    /// Accepting a client: stage 6's `xps_listener_connection_handler()`, stage 7's
    /// `listener_connection_handler()`.
    ConnectionHandler,
    /// `xps_connection_create()`.
    ConnectionCreate,
    /// `xps_connection_destroy()`.
    ConnectionDestroy,
    /// Reading a message and sending its reversal: stage 6's `xps_connection_read_handler()`,
    /// stage 7's `connection_loop_read_handler()`.
    ReadHandler,
    /// The function that creates the listeners, logs `Server listening on port N` for each and
    /// runs the loop: stage 6's `main()`, stage 7's `xps_core_start()`.
    Start,
    /// `main()`.
    Main,
    /// Ctrl+C: `sigint_handler()` (stage 7).
    SigintHandler,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 20] = [
        Role::LoopCreate,
        Role::LoopDestroy,
        Role::EventCreate,
        Role::EventDestroy,
        Role::LoopAttach,
        Role::LoopDetach,
        Role::LoopRun,
        Role::Dispatch,
        Role::CoreCreate,
        Role::CoreDestroy,
        Role::CoreStart,
        Role::ListenerCreate,
        Role::ListenerDestroy,
        Role::ConnectionHandler,
        Role::ConnectionCreate,
        Role::ConnectionDestroy,
        Role::ReadHandler,
        Role::Start,
        Role::Main,
        Role::SigintHandler,
    ];

    /// The role written as its Rust name (`ReadHandler`), as in records.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| format!("{role:?}") == name)
    }

    /// The function's name in `stage` (6 or 7), without parentheses.
    pub fn function(self, stage: u8) -> &'static str {
        let six = stage == 6;
        match self {
            Role::LoopCreate => "xps_loop_create",
            Role::LoopDestroy => "xps_loop_destroy",
            Role::EventCreate => "loop_event_create",
            Role::EventDestroy => "loop_event_destroy",
            Role::LoopAttach => "xps_loop_attach",
            Role::LoopDetach => "xps_loop_detach",
            Role::LoopRun => "xps_loop_run",
            Role::Dispatch if six => "xps_loop_run",
            Role::Dispatch => "handle_epoll_events",
            Role::CoreCreate => "xps_core_create",
            Role::CoreDestroy => "xps_core_destroy",
            Role::CoreStart => "xps_core_start",
            Role::ListenerCreate => "xps_listener_create",
            Role::ListenerDestroy => "xps_listener_destroy",
            Role::ConnectionHandler if six => "xps_listener_connection_handler",
            Role::ConnectionHandler => "listener_connection_handler",
            Role::ConnectionCreate => "xps_connection_create",
            Role::ConnectionDestroy => "xps_connection_destroy",
            Role::ReadHandler if six => "xps_connection_read_handler",
            Role::ReadHandler => "connection_loop_read_handler",
            Role::Start if six => "main",
            Role::Start => "xps_core_start",
            Role::Main => "main",
            Role::SigintHandler => "sigint_handler",
        }
    }

    /// The function's name in a C build of the course: the page's own names, where stage 7
    /// handles a batch of events inside `xps_loop_run()`.
    pub fn c_function(self, stage: u8) -> &'static str {
        match self {
            Role::Dispatch => "xps_loop_run",
            _ => self.function(stage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handlers_have_each_stages_names() {
        assert_eq!(Role::ReadHandler.function(6), "xps_connection_read_handler");
        assert_eq!(Role::ReadHandler.function(7), "connection_loop_read_handler");
        assert_eq!(Role::ConnectionHandler.function(7), "listener_connection_handler");
        assert_eq!(Role::Dispatch.function(7), "handle_epoll_events");
        assert_eq!(Role::Dispatch.c_function(7), "xps_loop_run");
        assert_eq!(Role::Start.function(6), "main");
    }

    #[test]
    fn every_role_parses_back_from_its_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(&format!("{role:?}")), Some(role));
        }
        assert_eq!(Role::parse("Nope"), None);
    }
}
