//! What a check's clients saw, kept on the [`Server`](crate::Server) as they go: when a check
//! runs out of time, this is what it can still say ("19 replies in 60 s, each after about 3.0 s;
//! the last: client on port 8001 sent ...").

use std::time::Duration;

/// The replies a check's clients received so far, and the last exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// How many replies came.
    pub replies: usize,
    /// The time spent waiting for them, in all.
    pub waited: Duration,
    /// The longest wait for one.
    pub slowest: Duration,
    /// The last message a client sent, and what came of it.
    pub last: Option<Exchange>,
}

/// One message and its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The client (`client 1 on port 8001`).
    pub client: String,
    /// What it sent, escaped.
    pub sent: String,
    /// Whether the reply came (`false`: the client was still waiting, or gave up).
    pub replied: bool,
    /// How long it waited.
    pub waited: Duration,
}

impl Activity {
    /// Notes that `client`, having sent `sent` (escaped), waited `waited` and got its reply or not.
    pub fn exchange(&mut self, client: &str, sent: String, waited: Duration, replied: bool) {
        if replied {
            self.replies += 1;
            self.waited += waited;
            self.slowest = self.slowest.max(waited);
        }
        self.last = Some(Exchange { client: client.to_string(), sent, replied, waited });
    }

    /// What the clients saw, in one sentence: how many replies, how fast, and the last message.
    pub fn summary(&self) -> String {
        let mut text = match self.replies {
            0 => "no reply came".to_string(),
            n => {
                let average = self.waited / u32::try_from(n).unwrap_or(u32::MAX);
                format!(
                    "{n} repl{} came, after {:.2} s on average (the slowest after {:.2} s)",
                    if n == 1 { "y" } else { "ies" },
                    average.as_secs_f64(),
                    self.slowest.as_secs_f64()
                )
            }
        };
        if let Some(last) = &self.last {
            let outcome = if last.replied { "got its reply" } else { "was still waiting for its reply" };
            text.push_str(&format!(
                "; the last: {} sent {} and {outcome} after {:.1} s",
                last.client,
                last.sent,
                last.waited.as_secs_f64()
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_how_many_how_fast_and_the_last_message() {
        let mut activity = Activity::default();
        assert_eq!(activity.summary(), "no reply came");
        activity.exchange("client on port 8001", "\"a\\n\"".into(), Duration::from_secs(3), true);
        activity.exchange("client on port 8001", "\"b\\n\"".into(), Duration::from_secs(1), false);
        assert_eq!(
            activity.summary(),
            "1 reply came, after 3.00 s on average (the slowest after 3.00 s); the last: client on port 8001 \
             sent \"b\\n\" and was still waiting for its reply after 1.0 s"
        );
    }
}
