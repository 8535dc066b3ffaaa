//! The list itself: every check, declared once (see [`crate::registry`] for what reads it).
//!
//! Order: the page's milestones, then the course's checks, then the extras; within each, the
//! order a learner meets them. An entry:
//!
//! ```text
//! ID {
//!     run: KIND(PATH),          // server | debug_server | binary: PATH in this crate
//!                               // in_process: PATH in stageNN/tests/unit/ | tester(N)
//!     stages: Six | Seven | Both,
//!     milestone: M1 | M2 | CourseCheck1..3 | Extra | Tester,
//!     limit: SECONDS,           // server start included
//!     any_build: BOOL,          // scripts/check-build.sh runs it against a learner's C build
//!     blames: [ROLE, ...],      // the page functions it exercises, first blamed first
//!     expects: "what it expects, in the page's words",
//! }
//! ```

/// Calls `$callback! { $($arg)* ; ENTRY ENTRY ... }` with every check of the workspace.
#[macro_export]
macro_rules! with_checks {
    ($callback:path $(, $arg:tt)*) => {
        $callback! { $($arg)* ;

        // ---- Milestone #1, stage 6: the listener module, in-process ----------------------------
        milestone_1_a_listener_on_port_0_is_listening_and_in_listeners {
            run: in_process(milestone_1::a_listener_on_port_0_is_listening_and_in_listeners),
            stages: Six, milestone: M1, limit: 15, any_build: false,
            blames: [ListenerCreate, LoopCreate],
            expects: "xps_listener_create(epoll_fd, \"127.0.0.1\", 0) returns a listener that listens on the port the OS picked and is in LISTENERS",
        }
        milestone_1_a_client_can_connect_and_the_loop_reports_it {
            run: in_process(milestone_1::a_client_can_connect_and_the_loop_reports_it),
            stages: Six, milestone: M1, limit: 15, any_build: false,
            blames: [ListenerCreate, LoopAttach],
            expects: "a client can connect to the listener, and epoll_wait() on the loop reports its socket readable: xps_listener_create() attached it",
        }
        milestone_1_destroy_closes_the_socket_frees_the_listener_and_leaves_none {
            run: in_process(milestone_1::destroy_closes_the_socket_frees_the_listener_and_leaves_none),
            stages: Six, milestone: M1, limit: 15, any_build: false,
            blames: [ListenerDestroy],
            expects: "xps_listener_destroy() sets the listener's entry in LISTENERS to None, frees it and closes its socket",
        }
        milestone_1_destroy_detaches_the_socket_from_the_loop {
            run: in_process(milestone_1::destroy_detaches_the_socket_from_the_loop),
            stages: Six, milestone: M1, limit: 15, any_build: false,
            blames: [ListenerDestroy, LoopDetach],
            expects: "xps_listener_destroy() detaches the socket from the loop (xps_loop_detach) before closing it",
        }

        // ---- Milestone #2, stage 6: the connection module, in-process ---------------------------
        milestone_2_connection_create_attaches_and_adds_to_connections {
            run: in_process(milestone_2::connection_create_attaches_and_adds_to_connections),
            stages: Six, milestone: M2, limit: 15, any_build: false,
            blames: [ConnectionCreate, LoopAttach],
            expects: "xps_connection_create(epoll_fd, sock_fd) returns a connection that is in CONNECTIONS, has the client's remote_ip and is attached to the loop",
        }
        milestone_2_connection_destroy_detaches_closes_and_leaves_none {
            run: in_process(milestone_2::connection_destroy_detaches_closes_and_leaves_none),
            stages: Six, milestone: M2, limit: 15, any_build: false,
            blames: [ConnectionDestroy, LoopDetach],
            expects: "xps_connection_destroy() sets the connection's entry in CONNECTIONS to None, detaches its socket, closes it and frees the connection",
        }
        milestone_2_listener_connection_handler_accepts_and_creates_a_connection {
            run: in_process(milestone_2::listener_connection_handler_accepts_and_creates_a_connection),
            stages: Six, milestone: M2, limit: 15, any_build: false,
            blames: [ConnectionHandler],
            expects: "with a client waiting, xps_listener_connection_handler() accepts it and creates its connection, whose listener is set",
        }
        milestone_2_read_handler_replies_with_the_reversal_and_destroys_on_end_of_file {
            run: in_process(milestone_2::read_handler_replies_with_the_reversal_and_destroys_on_end_of_file),
            stages: Six, milestone: M2, limit: 15, any_build: false,
            blames: [ReadHandler],
            expects: "xps_connection_read_handler() sends back the reversal of what the client sent, and destroys the connection when the client closes",
        }

        // ---- Milestone #1, stage 7: the loop module, in-process -------------------------------
        milestone_1_loop_event_create_keeps_fd_ptr_and_read_cb_and_destroy_frees_it {
            run: in_process(milestone_1::loop_event_create_keeps_fd_ptr_and_read_cb_and_destroy_frees_it),
            stages: Seven, milestone: M1, limit: 15, any_build: false,
            blames: [EventCreate, EventDestroy],
            expects: "loop_event_create(fd, ptr, read_cb) returns an event holding them; loop_event_destroy() frees it",
        }
        milestone_1_create_and_destroy_a_loop {
            run: in_process(milestone_1::create_and_destroy_a_loop),
            stages: Seven, milestone: M1, limit: 15, any_build: false,
            blames: [LoopCreate, LoopDestroy],
            expects: "xps_loop_create() returns a loop; xps_loop_destroy() closes its fds and frees all it allocated",
        }
        milestone_1_two_fds_with_different_ptrs_each_callback_gets_its_own_ptr {
            run: in_process(milestone_1::two_fds_with_different_ptrs_each_callback_gets_its_own_ptr),
            stages: Seven, milestone: M1, limit: 15, any_build: false,
            blames: [Dispatch, LoopAttach, EventCreate, LoopRun],
            expects: "two fds attached with different read_cb and ptr: when both are readable, xps_loop_run() calls each read_cb with its own ptr",
        }
        milestone_1_detach_stops_delivery {
            run: in_process(milestone_1::detach_stops_delivery),
            stages: Seven, milestone: M1, limit: 15, any_build: false,
            blames: [LoopDetach, Dispatch],
            expects: "after xps_loop_detach(fd), no event of that fd reaches its read_cb",
        }
        milestone_1_an_event_whose_owner_was_detached_earlier_in_the_same_batch_is_not_delivered {
            run: in_process(milestone_1::an_event_whose_owner_was_detached_earlier_in_the_same_batch_is_not_delivered),
            stages: Seven, milestone: M1, limit: 15, any_build: false,
            blames: [Dispatch, LoopDetach],
            expects: "an event already returned by epoll_wait() is skipped when an earlier callback of the same batch detached its fd (the page's \"check if event still exists\")",
        }
        milestone_1_destroy_frees_every_loop_event_and_closes_its_fds {
            run: in_process(milestone_1::destroy_frees_every_loop_event_and_closes_its_fds),
            stages: Seven, milestone: M1, limit: 15, any_build: false,
            blames: [LoopDestroy, EventDestroy, LoopDetach],
            expects: "xps_loop_destroy() destroys every loop event still attached and closes the epoll fd",
        }

        // ---- Milestone #2, stage 7: the core, in-process ----------------------------------------
        milestone_2_listener_create_attaches_and_adds_to_the_cores_listeners {
            run: in_process(modules::listener_create_attaches_and_adds_to_the_cores_listeners),
            stages: Seven, milestone: M2, limit: 15, any_build: false,
            blames: [ListenerCreate, CoreCreate],
            expects: "xps_listener_create(core, \"127.0.0.1\", 0) returns a listener that listens, is in core.listeners and is attached to the core's loop",
        }
        milestone_2_listener_destroy_detaches_and_leaves_none {
            run: in_process(modules::listener_destroy_detaches_and_leaves_none),
            stages: Seven, milestone: M2, limit: 15, any_build: false,
            blames: [ListenerDestroy],
            expects: "xps_listener_destroy() detaches the listener from the core's loop, sets its entry in core.listeners to None, frees it and closes its socket",
        }
        milestone_2_connection_create_attaches_and_adds_to_the_cores_connections {
            run: in_process(modules::connection_create_attaches_and_adds_to_the_cores_connections),
            stages: Seven, milestone: M2, limit: 15, any_build: false,
            blames: [ConnectionCreate],
            expects: "xps_connection_create(core, sock_fd) returns a connection that is in core.connections, has the client's remote_ip and is attached to the core's loop",
        }
        milestone_2_connection_destroy_detaches_closes_and_leaves_none_in_core_connections {
            run: in_process(modules::connection_destroy_detaches_closes_and_leaves_none),
            stages: Seven, milestone: M2, limit: 15, any_build: false,
            blames: [ConnectionDestroy],
            expects: "xps_connection_destroy() sets its entry in core.connections to None, detaches its socket, closes it and frees the connection",
        }
        milestone_2_two_cores_in_one_process_each_serve_their_own_clients {
            run: in_process(milestone_2::two_cores_in_one_process_each_serve_their_own_clients),
            stages: Seven, milestone: M2, limit: 30, any_build: false,
            blames: [CoreCreate, ListenerCreate, ConnectionCreate, CoreDestroy],
            expects: "two cores in one process each serve their own clients, and xps_core_destroy() frees each with its listeners and connections",
        }
        milestone_2_destroying_a_core_leaves_no_fd_open {
            run: in_process(milestone_2::destroying_a_core_leaves_no_fd_open),
            stages: Seven, milestone: M2, limit: 30, any_build: false,
            blames: [CoreDestroy, ConnectionDestroy, ListenerDestroy, LoopDestroy],
            expects: "after xps_core_destroy(), every fd the core, its listeners and its connections opened is closed",
        }

        // ---- Milestone #2: the server, over TCP -------------------------------------------------
        milestone_2_step_1_2_one_client_on_each_port_gets_its_reversal {
            run: server(checks::milestone_2::one_client_on_each_port_gets_its_reversal),
            stages: Both, milestone: M2, limit: 40, any_build: true,
            blames: [ReadHandler, ConnectionHandler, ConnectionCreate, Dispatch, Start],
            expects: "Milestone #2 steps 1-2: a client on each port sends a line and gets it back reversed",
        }
        milestone_2_step_3_second_and_third_clients_on_a_busy_port_are_served {
            run: server(checks::milestone_2::second_and_third_clients_on_a_busy_port_are_served),
            stages: Both, milestone: M2, limit: 40, any_build: true,
            blames: [ConnectionHandler, ConnectionCreate, Dispatch, ReadHandler],
            expects: "Milestone #2 step 3: a 2nd and 3rd client on a port that has one are served, the 1st still is",
        }
        milestone_2_step_4_interleaved_messages_from_all_clients_each_get_their_own_reply {
            run: server(checks::milestone_2::interleaved_messages_from_all_clients_each_get_their_own_reply),
            stages: Both, milestone: M2, limit: 40, any_build: true,
            blames: [Dispatch, ReadHandler],
            expects: "Milestone #2 step 4: all clients send before any reads; each gets its own reply",
        }
        milestone_2_step_5_server_stays_up_after_clients_disconnect_and_accepts_new_ones {
            run: debug_server(checks::milestone_2::server_stays_up_after_clients_disconnect_and_accepts_new_ones),
            stages: Both, milestone: M2, limit: 40, any_build: true,
            blames: [ReadHandler, ConnectionDestroy, LoopDetach],
            expects: "Milestone #2 step 5: clients disconnect; the server closes their connections, stays up and serves new clients",
        }
        milestone_2_test_four_clients_on_three_ports_each_get_their_reply {
            run: server(checks::milestone_2::four_clients_on_three_ports_each_get_their_reply),
            stages: Both, milestone: M2, limit: 40, any_build: true,
            blames: [Dispatch, ReadHandler, ConnectionCreate],
            expects: "the page's test \"4 clients and 3 ports\": each of 4 clients gets its own replies",
        }

        // ---- Milestone #2, stage 7: Ctrl+C, where the page puts it -------------------------------
        milestone_2_ctrl_c_destroys_every_connection_listener_and_the_core_then_exits_0 {
            run: binary(checks::shutdown::ctrl_c_destroys_every_connection_listener_and_the_core_then_exits_0),
            stages: Seven, milestone: M2, limit: 40, any_build: false,
            blames: [SigintHandler, CoreDestroy, ConnectionDestroy, ListenerDestroy],
            expects: "the page's sigint_handler(): on Ctrl+C every connection, every listener, then the core destroyed (the page's DEBUG lines), exit 0; the ports bind again at once",
        }

        // ---- The course's automated checks ------------------------------------------------------
        course_check_1_single_client_on_every_port_100_random_strings {
            run: server(checks::course::single_client_on_every_port_100_random_strings),
            stages: Both, milestone: CourseCheck1, limit: 60, any_build: true,
            blames: [ReadHandler],
            expects: "course check 1 (long strings): on every port, 100 strings of 1-1000 characters, each reversed",
        }
        course_check_2_ten_clients_at_once_on_one_port {
            run: server(checks::course::ten_clients_at_once_on_one_port),
            stages: Both, milestone: CourseCheck2, limit: 40, any_build: true,
            blames: [Dispatch, ReadHandler],
            expects: "course check 2: 10 clients on one port send string-<i>; each gets its own reversal",
        }
        course_check_3_disconnect_does_not_affect_other_clients {
            run: server(checks::course::disconnect_does_not_affect_other_clients),
            stages: Both, milestone: CourseCheck3, limit: 40, any_build: true,
            blames: [ReadHandler, ConnectionDestroy],
            expects: "course check 3: after a client leaves, an old and a new client are served",
        }

        // ---- Extras: bytes and clients ------------------------------------------------------------
        extra_raw_bytes_and_empty_lines_are_reversed_byte_for_byte {
            run: server(checks::bytes::raw_bytes_and_empty_lines_are_reversed_byte_for_byte),
            stages: Both, milestone: Extra, limit: 40, any_build: false,
            blames: [ReadHandler],
            expects: "NUL, invalid UTF-8, \\r, empty lines and messages without a newline come back reversed byte for byte",
        }
        extra_message_without_a_newline_comes_back_reversed {
            run: server(checks::bytes::message_without_a_newline_comes_back_reversed),
            stages: Both, milestone: Extra, limit: 40, any_build: true,
            blames: [ReadHandler],
            expects: "a message without a trailing newline comes back reversed whole (\"no newline\" -> \"enilwen on\")",
        }
        extra_empty_lines_come_back_as_they_are {
            run: server(checks::bytes::empty_lines_come_back_as_they_are),
            stages: Both, milestone: Extra, limit: 40, any_build: true,
            blames: [ReadHandler],
            expects: "an empty line (just \\n) comes back as \\n",
        }
        extra_bytes_0x80_to_0xff_come_back_reversed {
            run: server(checks::bytes::bytes_0x80_to_0xff_come_back_reversed),
            stages: Both, milestone: Extra, limit: 40, any_build: true,
            blames: [ReadHandler],
            expects: "bytes 0x80-0xff (not UTF-8) come back reversed byte for byte",
        }
        extra_nul_bytes_come_back_reversed {
            run: server(checks::bytes::nul_bytes_come_back_reversed),
            stages: Both, milestone: Extra, limit: 40, any_build: true,
            blames: [ReadHandler],
            expects: "a NUL byte inside a message comes back in its reversed place",
        }
        extra_nothing_comes_after_a_reply {
            run: server(checks::bytes::nothing_comes_after_a_reply),
            stages: Both, milestone: Extra, limit: 40, any_build: true,
            blames: [ReadHandler],
            expects: "after each reply, nothing more arrives (no \\0 from strlen+1, no leftovers)",
        }
        extra_a_message_that_fills_the_receive_buffer_comes_back_reversed {
            run: server(checks::bytes::message_that_fills_the_receive_buffer_comes_back_reversed),
            stages: Both, milestone: Extra, limit: 40, any_build: true,
            blames: [ReadHandler],
            expects: "one message of exactly DEFAULT_BUFFER_SIZE (100000) bytes fills the receive buffer in one recv() and comes back reversed (a sanitizer shows `buff[read_n] = '\\0'` writing past the buffer)",
        }
        extra_client_that_resets_is_dropped_and_others_stay_served {
            run: server(checks::bytes::client_that_resets_is_dropped_and_others_stay_served),
            stages: Both, milestone: Extra, limit: 40, any_build: false,
            blames: [ReadHandler, ConnectionDestroy],
            expects: "a client that resets its connection is logged with the OS error text and dropped; the others stay served",
        }
        extra_clients_that_reset_their_connection_are_logged_at_info_never_error {
            run: server(checks::misbehaviour::clients_that_reset_their_connection_are_logged_at_info_never_error),
            stages: Both, milestone: Extra, limit: 60, any_build: false,
            blames: [ReadHandler],
            expects: "50 clients that reset after a reply are each logged at INFO, never ERROR, and the server serves on",
        }
        extra_clients_that_reset_before_they_are_accepted_log_no_error {
            run: server(checks::misbehaviour::clients_that_reset_before_they_are_accepted_log_no_error),
            stages: Both, milestone: Extra, limit: 60, any_build: false,
            blames: [ConnectionCreate, ConnectionHandler],
            expects: "clients that reset before the server accepts them log no ERROR (getpeername's ENOTCONN is the client's doing)",
        }
        extra_client_bytes_cannot_clear_the_terminal_or_forge_a_log_line {
            run: server(checks::misbehaviour::client_bytes_cannot_clear_the_terminal_or_forge_a_log_line),
            stages: Both, milestone: Extra, limit: 40, any_build: false,
            blames: [ReadHandler],
            expects: "a client's escape sequences, \\r and a fake [ERROR] line are printed escaped, one [CLIENT MESSAGE] prefix per line",
        }

        // ---- Extras: the command line -------------------------------------------------------------
        extra_help_prints_usage_and_exits_0 {
            run: binary(checks::command_line::help_prints_usage_and_exits_0),
            stages: Both, milestone: Extra, limit: 30, any_build: false,
            blames: [Main],
            expects: "-h and --help print the usage on stdout and exit 0",
        }
        extra_bad_arguments_exit_2_naming_the_argument {
            run: binary(checks::command_line::bad_arguments_exit_2_naming_the_argument),
            stages: Both, milestone: Extra, limit: 30, any_build: false,
            blames: [Main],
            expects: "a bad port or an unknown option is named on stderr, with exit status 2, before anything listens",
        }
        extra_port_in_use_exits_1_naming_host_port_and_os_error {
            run: binary(checks::command_line::port_in_use_exits_1_naming_host_port_and_os_error),
            stages: Both, milestone: Extra, limit: 30, any_build: false,
            blames: [ListenerCreate, Main, ListenerDestroy],
            expects: "a port already in use: an ERROR naming the host, the port and the OS error, the listeners created before it destroyed, exit status 1",
        }
        extra_unknown_host_exits_1_naming_the_host {
            run: binary(checks::command_line::unknown_host_exits_1_naming_the_host),
            stages: Both, milestone: Extra, limit: 40, any_build: false,
            blames: [ListenerCreate],
            expects: "an unknown --host: an ERROR naming the host, exit status 1",
        }
        extra_default_ports_are_listened_on_and_served {
            run: binary(checks::command_line::default_ports_are_listened_on_and_served),
            stages: Both, milestone: Extra, limit: 240, any_build: false,
            blames: [Start, ListenerCreate],
            expects: "without port arguments the server listens on the course's ports (8001-8003 for stage 6, 8001-8004 for stage 7), in order, and serves each",
        }

        // ---- Extras: stage 7's signals beyond Ctrl+C, Experiment #1 and call order -----------------------------
        extra_sigterm_and_sighup_shut_down_like_ctrl_c_and_exit_0 {
            run: binary(checks::shutdown::sigterm_and_sighup_shut_down_like_ctrl_c_and_exit_0),
            stages: Seven, milestone: Extra, limit: 40, any_build: false,
            blames: [SigintHandler, CoreDestroy],
            expects: "SIGTERM and SIGHUP take Ctrl+C's graceful path and exit 0",
        }
        extra_ctrl_c_exits_within_2_seconds_while_stdout_is_not_being_read {
            run: binary(checks::shutdown::ctrl_c_exits_within_2_seconds_while_stdout_is_not_being_read),
            stages: Seven, milestone: Extra, limit: 40, any_build: false,
            blames: [SigintHandler],
            expects: "with a stdout nobody reads, Ctrl+C still ends the server within 2 s (status 1, saying why on stderr)",
        }
        extra_ctrl_c_while_blocked_in_send_forces_the_exit_within_2_seconds {
            run: binary(checks::shutdown::ctrl_c_while_blocked_in_send_forces_the_exit_within_2_seconds),
            stages: Seven, milestone: Extra, limit: 60, any_build: false,
            blames: [SigintHandler],
            expects: "stuck in send() to a client that does not read, Ctrl+C still ends the server within 2 s (status 1, saying why)",
        }
        extra_experiment_1_stage7_blocks_everyone_while_one_client_does_not_read_and_recovers_when_it_quits {
            run: server(checks::stage7::experiment_1_blocking_send_stalls_everyone_until_the_sender_quits),
            stages: Seven, milestone: Extra, limit: 90, any_build: true,
            blames: [ReadHandler],
            expects: "Experiment #1: while a client that never reads has the server stuck in send(), another client gets no reply; once it quits, that client gets its reply",
        }
        extra_debug_log_follows_the_pages_function_call_order {
            run: binary(checks::stage7::debug_log_follows_the_pages_function_call_order),
            stages: Seven, milestone: Extra, limit: 40, any_build: false,
            blames: [CoreStart],
            expects: "with XPS_DEBUG=1 the DEBUG lines follow the page's function call order",
        }

        // ---- Extras: stage 7's loop, in-process ---------------------------------------------------
        extra_stale_event_not_delivered_to_a_new_instance_after_fd_reuse_in_the_same_batch {
            run: in_process(extra_checks::stale_event_not_delivered_to_a_new_instance_after_fd_reuse_in_the_same_batch),
            stages: Seven, milestone: Extra, limit: 15, any_build: false,
            blames: [Dispatch, LoopAttach],
            expects: "an event of a destroyed instance whose fd a new instance reused in the same batch is not delivered to the new one",
        }
        extra_a_woken_loop_runs_again_until_woken_again {
            run: in_process(extra_checks::a_woken_loop_runs_again_until_woken_again),
            stages: Seven, milestone: Extra, limit: 15, any_build: false,
            blames: [LoopRun],
            expects: "a loop that returned after a wake-up runs again, and returns at the next wake-up",
        }

        // ---- Extras: hardening --------------------------------------------------------------------
        extra_out_of_fds_the_server_does_not_spin_keeps_serving_and_accepts_again {
            run: binary(checks::hardening::fds::out_of_fds_the_server_does_not_spin_keeps_serving_and_accepts_again),
            stages: Both, milestone: Extra, limit: 120, any_build: false,
            blames: [ConnectionHandler],
            expects: "out of file descriptors (ulimit -n 64), the server does not spin, keeps serving its clients and accepts again once fds free up",
        }
        extra_connect_round_trip_close_1000_times_leaks_no_fd {
            run: server(checks::hardening::fds::connect_round_trip_close_1000_times_leaks_no_fd),
            stages: Both, milestone: Extra, limit: 120, any_build: false,
            blames: [ConnectionDestroy, ReadHandler],
            expects: "1000 clients that connect, maybe send, and leave give every fd back",
        }
        extra_storm_of_random_clients_gets_every_byte_back_and_leaks_no_fd {
            run: server(checks::hardening::load::storm_of_random_clients_gets_every_byte_back_and_leaks_no_fd),
            stages: Both, milestone: Extra, limit: 180, any_build: false,
            blames: [ReadHandler, ConnectionDestroy],
            expects: "many clients at once, random sizes, disconnects and resets: every byte comes back, no fd leaks",
        }
        extra_one_mib_streamed_while_reading_comes_back_whole {
            run: server(checks::hardening::load::one_mib_streamed_while_reading_comes_back_whole),
            stages: Both, milestone: Extra, limit: 120, any_build: false,
            blames: [ReadHandler],
            expects: "1 MiB streamed by a client that reads as it sends comes back whole, each recv()'s bytes reversed",
        }
        extra_memory_stays_flat_however_much_a_client_sends {
            run: server(checks::hardening::load::memory_stays_flat_however_much_a_client_sends),
            stages: Both, milestone: Extra, limit: 120, any_build: false,
            blames: [ReadHandler],
            expects: "the server's memory does not grow with what a client sends",
        }

        // ---- The course's tester, as it runs (scripts/check-build.sh only) ----------------------
        tester_network_address {
            run: tester(0),
            stages: Both, milestone: Tester, limit: 60, any_build: true,
            blames: [ListenerCreate],
            expects: "the tester connects over its container's network, not loopback: the server must listen on every interface (0.0.0.0, or [::] without IPV6_V6ONLY), not on loopback only (read from /proc/net/tcp; nothing leaves this machine)",
        }
        tester_check_1_single_client_input_output {
            run: tester(1),
            stages: Both, milestone: Tester, limit: 120, any_build: true,
            blames: [ReadHandler, Start],
            expects: "tester check 1: on each of ports 8001-8004, one client sends 1000 strings of 0-99 letters and digits and \\n, one at a time; the first chunk back must be the reversal",
        }
        tester_check_2_multiple_clients_same_port {
            run: tester(2),
            stages: Both, milestone: Tester, limit: 60, any_build: true,
            blames: [Dispatch, ReadHandler],
            expects: "tester check 2 (same server process as check 1): 10 clients on 8001 send string-<i> at once; each one's first chunk back must be its own reversal",
        }
        tester_check_3_error_handling {
            run: tester(3),
            stages: Both, milestone: Tester, limit: 60, any_build: true,
            blames: [ReadHandler, ConnectionDestroy],
            expects: "tester check 3 (fresh server): a client leaves without sending; an existing and a new client are served and the server keeps running",
        }
        }
    };
}
