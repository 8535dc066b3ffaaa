//! The page's Milestone #2, over TCP: the netcat steps 1 to 5 and "try the same test with 4
//! clients and 3 ports".

use super::{every_port, message, ports};
use crate::{Client, Failure, Server};

/// Milestone #2, steps 1 and 2: a netcat client on each port sends a message and gets it back
/// reversed.
pub fn one_client_on_each_port_gets_its_reversal(server: &Server) -> Result<(), Failure> {
    for (i, &port) in every_port(server)?.iter().enumerate() {
        let label = format!("client {}", i + 1);
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
    }
    Ok(())
}

/// Milestone #2, step 3: more clients on a port that already has one are served too, and the
/// first is still served after them.
pub fn second_and_third_clients_on_a_busy_port_are_served(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut clients = Vec::new();
    for i in 1..=3 {
        let label = format!("client {i}");
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
        clients.push((label, client));
    }
    for (label, client) in &mut clients {
        client.round_trip(server, &message(label, 2))?;
    }
    Ok(())
}

/// The page's test "Try the same test with 4 clients and 3 ports".
pub fn four_clients_on_three_ports_each_get_their_reply(server: &Server) -> Result<(), Failure> {
    let ports = ports(server, 3)?;
    let mut clients = Vec::new();
    for i in 0..4 {
        let label = format!("client {}", i + 1);
        let client = Client::connect(server, ports[i % 3], &label)?;
        clients.push((label, client));
    }
    for round in 1..=3 {
        for (label, client) in &mut clients {
            client.round_trip(server, &message(label, round))?;
        }
    }
    Ok(())
}

/// Milestone #2, step 4: every client sends before any reads; each gets its own reply.
pub fn interleaved_messages_from_all_clients_each_get_their_own_reply(server: &Server) -> Result<(), Failure> {
    let mut clients = Vec::new();
    for (i, &port) in every_port(server)?.iter().enumerate() {
        for j in 1..=2 {
            let label = format!("client {}.{j}", i + 1);
            let client = Client::connect(server, port, &label)?;
            clients.push((label, client));
        }
    }
    for round in 1..=3 {
        let sent: Vec<Vec<u8>> = clients.iter().map(|(label, _)| message(label, round)).collect();
        for ((_, client), msg) in clients.iter_mut().zip(&sent) {
            client.send(server, msg)?;
        }
        // Read in the opposite order to the sends: no reply may depend on another's.
        for ((_, client), msg) in clients.iter_mut().zip(&sent).rev() {
            client.expect(server, msg, &crate::expected_reply(msg))?;
        }
    }
    Ok(())
}

/// Milestone #2, step 5: clients disconnect; the server closes their connections (run with
/// `XPS_DEBUG=1`, its log says whether it destroyed them), stays up and serves new clients.
pub fn server_stays_up_after_clients_disconnect_and_accepts_new_ones(server: &Server) -> Result<(), Failure> {
    let ports = every_port(server)?;
    for (i, &port) in ports.iter().enumerate() {
        let label = format!("client {}", i + 1);
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
        client.close();
    }
    super::leaks::every_connection_closed(server, ports.len(), true)?;
    for (i, &port) in every_port(server)?.iter().enumerate() {
        let label = format!("new client {}", i + 1);
        let mut client = Client::connect(server, port, &label)?;
        client.round_trip(server, &message(&label, 1))?;
    }
    Ok(())
}
