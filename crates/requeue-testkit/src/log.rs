//! The worker's log: its lines (see the crate docs), written whole and
//! read back parsed.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// An append-only log, one `write` per line (no torn lines between tasks).
pub(crate) struct Log(pub(crate) Mutex<File>);

impl Log {
    pub(crate) fn line(&self, line: String) {
        let mut file = self.0.lock().unwrap();
        file.write_all(line.as_bytes()).unwrap();
    }
}

/// One parsed log line (see the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `S`: a processing started.
    Start {
        /// The item.
        key: String,
        /// Its lease's token.
        token: String,
        /// When, in [`Seq`](crate::Seq) order.
        seq: u64,
    },
    /// `D`: a processing is over; its end is sent next.
    Ending {
        /// The item.
        key: String,
        /// Its lease's token.
        token: String,
        /// When, in [`Seq`](crate::Seq) order.
        seq: u64,
    },
    /// `E`: a processing ended.
    End {
        /// The item.
        key: String,
        /// Its lease's token.
        token: String,
        /// The seq of its `D` line, taken before the end was sent.
        seq: u64,
        /// How the end went: `ok`, `lost` (`LeaseLost`), `err`, `unreleased`.
        rc: String,
        /// The seq of the end's re-add, if it re-added.
        requeue: Option<u64>,
    },
    /// `A`: the worker added a key while processing.
    Add {
        /// The item.
        key: String,
        /// Taken before the add was sent.
        seq: u64,
    },
    /// `V`: hold mode, `item.is_valid()` just before ending.
    Valid {
        /// The item.
        key: String,
        /// Its lease's token.
        token: String,
        /// What `is_valid` said.
        valid: bool,
    },
    /// `C`: the worker's queue's counters, at exit.
    Counters {
        /// Leases it lost.
        lost: u64,
        /// Leases of others it reaped.
        reaped: u64,
    },
}

impl Line {
    /// A `S` line, for checks on made-up logs.
    pub fn start(key: &str, token: &str, seq: u64) -> Line {
        Line::Start {
            key: key.into(),
            token: token.into(),
            seq,
        }
    }

    /// An `E` line, for checks on made-up logs.
    pub fn end(key: &str, token: &str, seq: u64, rc: &str, requeue: Option<u64>) -> Line {
        Line::End {
            key: key.into(),
            token: token.into(),
            seq,
            rc: rc.into(),
            requeue,
        }
    }
}

/// The complete (newline-terminated) lines of a log; a torn last line of a
/// worker that is still writing (or was killed) is skipped.
pub fn read_log(path: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| parse(line).unwrap_or_else(|| panic!("bad log line {line:?} in {path:?}")))
        .collect()
}

fn parse(line: &str) -> Option<Line> {
    let f: Vec<&str> = line.split(' ').collect();
    let num = |s: &str| s.parse::<u64>().ok();
    Some(match f.as_slice() {
        ["S", key, token, seq] => Line::Start {
            key: key.to_string(),
            token: token.to_string(),
            seq: num(seq)?,
        },
        ["D", key, token, seq] => Line::Ending {
            key: key.to_string(),
            token: token.to_string(),
            seq: num(seq)?,
        },
        ["E", key, token, seq, rc, req] => Line::End {
            key: key.to_string(),
            token: token.to_string(),
            seq: num(seq)?,
            rc: rc.to_string(),
            requeue: if *req == "-" { None } else { Some(num(req)?) },
        },
        ["A", key, seq] => Line::Add {
            key: key.to_string(),
            seq: num(seq)?,
        },
        ["V", key, token, valid] => Line::Valid {
            key: key.to_string(),
            token: token.to_string(),
            valid: valid.parse().ok()?,
        },
        ["C", lost, reaped] => Line::Counters {
            lost: num(lost)?,
            reaped: num(reaped)?,
        },
        _ => return None,
    })
}
