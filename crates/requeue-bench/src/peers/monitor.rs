//! Client round trips, counted with `MONITOR`.
//!
//! A `MONITOR` connection sees every command the server executes, one line
//! each: `1733480000.123456 [0 127.0.0.1:53122] "evalsha" "…"`. The part in
//! brackets says who sent it: a client's address, or `lua` for a command a
//! script ran (`redis.call`). Between the two markers a run sends on its
//! side connection (`ECHO requeue-peers:TAG:start` and `…:stop`), the lines
//! from clients other than that side connection are what the measured
//! system sent, each one request to the server; the `lua` lines are work
//! done inside its scripts.

use super::{CommandCounts, PeerError};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What a `MONITOR` connection saw between a run's markers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorCounts {
    /// Commands sent by the measured system's connections, by name.
    pub client: CommandCounts,
    /// Commands run inside Lua scripts, by name.
    pub script: CommandCounts,
}

/// The marker ECHOed at an edge of the timed part of run `tag`.
pub(crate) fn marker(tag: &str, edge: &str) -> String {
    format!("requeue-peers:{tag}:{edge}")
}

/// A `MONITOR` connection counting the commands between the markers of
/// one run, on a thread of its own.
#[derive(Debug)]
pub struct Monitor {
    url: String,
    client_id: i64,
    counted: mpsc::Receiver<Result<MonitorCounts, PeerError>>,
}

impl Monitor {
    /// Connects to `url` and starts monitoring; the run tagged `tag` may
    /// start once this returns.
    pub fn start(url: &str, tag: &str) -> Result<Monitor, PeerError> {
        let failed = |detail: String| PeerError::Monitor { detail };
        let client = redis::Client::open(url).map_err(|e| failed(chain(&e)))?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| failed(chain(&e)))?;
        let client_id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query(&mut conn)
            .map_err(|e| failed(chain(&e)))?;
        conn.send_packed_command(&redis::cmd("MONITOR").get_packed_command())
            .map_err(|e| failed(chain(&e)))?;
        match conn.recv_response() {
            Ok(redis::Value::Okay) => {}
            Ok(other) => return Err(failed(format!("MONITOR answered {other:?}"))),
            Err(e) => return Err(failed(chain(&e))),
        }
        let (tx, counted) = mpsc::channel();
        let (start, stop) = (marker(tag, "start"), marker(tag, "stop"));
        thread::Builder::new()
            .name("requeue-monitor".into())
            .spawn(move || {
                let mut tally = Tally::new(start, stop);
                let result = loop {
                    match conn.recv_response() {
                        Ok(redis::Value::SimpleString(line)) => match tally.line(&line) {
                            Ok(false) => {}
                            Ok(true) => break Ok(tally.counts),
                            Err(detail) => break Err(failed(detail)),
                        },
                        Ok(_) => {}
                        Err(e) => break Err(failed(chain(&e))),
                    }
                };
                let _ = tx.send(result);
            })
            .map_err(|e| failed(format!("cannot start its thread: {e}")))?;
        Ok(Monitor {
            url: url.to_string(),
            client_id,
            counted,
        })
    }

    /// The counts, once the stop marker has been seen (waiting at most
    /// `within` for it after the run).
    pub fn finish(self, within: Duration) -> Result<MonitorCounts, PeerError> {
        match self.counted.recv_timeout(within) {
            Ok(result) => result,
            Err(_) => Err(PeerError::Monitor {
                detail: format!("the run's stop marker did not show within {within:?}"),
            }),
        }
    }
}

impl Drop for Monitor {
    /// Closes the `MONITOR` connection if its thread still waits (the run
    /// failed, or [`finish`](Monitor::finish) gave up), so that it ends.
    fn drop(&mut self) {
        if matches!(self.counted.try_recv(), Err(mpsc::TryRecvError::Empty))
            && let Ok(client) = redis::Client::open(self.url.as_str())
            && let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2))
        {
            let _: redis::RedisResult<redis::Value> = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(self.client_id)
                .query(&mut conn);
        }
    }
}

/// An error and its causes, each once.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    requeue_redis::error::Chain(error).to_string()
}

/// The counting state of one `MONITOR` stream.
#[derive(Debug)]
struct Tally {
    start: String,
    stop: String,
    /// The side connection's address, once the start marker was seen.
    side: Option<String>,
    counts: MonitorCounts,
    client: BTreeMap<String, u64>,
    script: BTreeMap<String, u64>,
}

impl Tally {
    fn new(start: String, stop: String) -> Tally {
        Tally {
            start,
            stop,
            side: None,
            counts: MonitorCounts::default(),
            client: BTreeMap::new(),
            script: BTreeMap::new(),
        }
    }

    /// Takes one `MONITOR` line; `Ok(true)` once the stop marker was seen
    /// (the counts are then in `self.counts`).
    fn line(&mut self, line: &str) -> Result<bool, String> {
        let Some((source, command, first_arg)) = parse(line) else {
            return Ok(false);
        };
        let Some(side) = &self.side else {
            if command == "echo" && first_arg == Some(self.start.as_str()) {
                if source.starts_with("unix:") {
                    return Err("round trips need TCP: MONITOR cannot tell apart the \
                                clients of a Unix socket"
                        .into());
                }
                self.side = Some(source.to_string());
            }
            return Ok(false);
        };
        if source == side {
            if command == "echo" && first_arg == Some(self.stop.as_str()) {
                self.counts = MonitorCounts {
                    client: CommandCounts::from_pairs(std::mem::take(&mut self.client)),
                    script: CommandCounts::from_pairs(std::mem::take(&mut self.script)),
                };
                return Ok(true);
            }
            // The bench's own INFO.
            return Ok(false);
        }
        let counts = if source == "lua" || source.ends_with("lua") {
            &mut self.script
        } else {
            &mut self.client
        };
        *counts.entry(command).or_insert(0) += 1;
        Ok(false)
    }
}

/// `(source, command in lower case, first argument)` of a `MONITOR` line.
fn parse(line: &str) -> Option<(&str, String, Option<&str>)> {
    let open = line.find(" [")? + 2;
    let close = open + line[open..].find("] ")?;
    let inside = &line[open..close];
    // `0 127.0.0.1:53122` (database, then the client) or `0 lua`.
    let source = inside.split_once(' ').map_or(inside, |(_, source)| source);
    let mut args = line[close + 2..].split(' ');
    fn unquote(arg: &str) -> Option<&str> {
        arg.strip_prefix('"')?.strip_suffix('"')
    }
    let command = unquote(args.next()?)?.to_ascii_lowercase();
    let first_arg = args.next().and_then(unquote);
    Some((source, command, first_arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_between_the_markers_are_split_into_client_and_script_commands() {
        let mut tally = Tally::new(marker("t1", "start"), marker("t1", "stop"));
        let lines = [
            r#"1.0 [0 127.0.0.1:5000] "evalsha" "abc" "1" "before the start""#,
            r#"1.1 [0 127.0.0.1:6000] "ECHO" "requeue-peers:t0:start""#,
            r#"1.2 [0 127.0.0.1:6000] "echo" "requeue-peers:t1:start""#,
            r#"1.3 [0 127.0.0.1:6000] "info" "commandstats""#,
            r#"1.4 [0 127.0.0.1:5000] "evalsha" "abc" "1" "a \"quoted\" key""#,
            r#"1.5 [0 lua] "hget" "k" "f""#,
            r#"1.6 [0 lua] "HSET" "k" "f" "v""#,
            r#"1.7 [1 127.0.0.1:5001] "bzpopmin" "q" "5""#,
            "not a monitor line",
        ];
        for line in lines {
            assert_eq!(tally.line(line), Ok(false), "{line}");
        }
        assert_eq!(
            tally.line(r#"1.8 [0 127.0.0.1:6000] "echo" "requeue-peers:t1:stop""#),
            Ok(true)
        );
        let counts = tally.counts;
        assert_eq!(
            counts.client,
            CommandCounts::from_pairs([("bzpopmin", 1), ("evalsha", 1)])
        );
        assert_eq!(
            counts.script,
            CommandCounts::from_pairs([("hget", 1), ("hset", 1)])
        );
    }

    #[test]
    fn unix_socket_clients_cannot_be_told_apart() {
        let mut tally = Tally::new(marker("u", "start"), marker("u", "stop"));
        let line = r#"1.0 [0 unix:/tmp/redis.sock] "echo" "requeue-peers:u:start""#;
        assert!(tally.line(line).is_err());
    }
}
