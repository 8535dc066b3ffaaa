//! The course's three automated checks, as this workspace runs them on OS-picked ports (the
//! course's tester as it really runs them is [`super::tester`]).

use std::thread;
use std::time::Duration;

use super::{every_port, ports};
use crate::{Client, Failure, Rng, Server};

/// The course's automated check 1: on every port, one client sends 100 random strings (letters
/// and digits, up to 1000 characters, each ending in `\n`), one at a time; each reply must be
/// the reversal.
pub fn single_client_on_every_port_100_random_strings(server: &Server) -> Result<(), Failure> {
    let seed = Rng::seed_from_time();
    let mut rng = Rng::new(seed);
    for &port in every_port(server)? {
        let mut client = Client::connect(server, port, "client")?;
        for n in 1..=100 {
            let len = 1 + rng.below(1000) as usize;
            let mut msg = rng.alphanumeric(len);
            msg.push(b'\n');
            client
                .round_trip(server, &msg)
                .map_err(|f| f.detail("string", format!("{n} of 100 (random seed {seed})")))?;
        }
    }
    Ok(())
}

/// The course's automated check 2: ten clients connect to one port at once and each sends
/// `string-<i>\n`; each must get its own reversal.
pub fn ten_clients_at_once_on_one_port(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(Client::connect(server, port, format!("client {i}"))?);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(server, format!("string-{i}\n").as_bytes())?;
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let sent = format!("string-{i}\n").into_bytes();
        client.expect(server, &sent, &crate::expected_reply(&sent))?;
    }
    Ok(())
}

/// The course's automated check 3: a client disconnects; a client that was already connected
/// and a new client must both still be served, and the server must not exit.
pub fn disconnect_does_not_affect_other_clients(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut leaving = Client::connect(server, port, "leaving client")?;
    let mut staying = Client::connect(server, port, "staying client")?;
    leaving.round_trip(server, b"I am leaving\n")?;
    staying.round_trip(server, b"I am staying\n")?;
    leaving.close();
    thread::sleep(Duration::from_millis(100));
    staying.round_trip(server, b"still here\n")?;
    let mut new = Client::connect(server, port, "new client")?;
    new.round_trip(server, b"I am new\n")?;
    Ok(())
}
