//! The line a worker process prints on its stdout (one JSON object per
//! line): once when it is connected, about five times a second while it
//! runs, and once more, marked `done`, after it has drained. Counts are
//! cumulative, so a lost or late line costs nothing but freshness; what
//! happened to single keys comes as what is new since the previous line,
//! so a line stays small however long the run.

use requeue::controller::Counts;
use serde::{Deserialize, Serialize};

/// One report of a worker process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The controller's counts so far.
    pub counts: WireCounts,
    /// Handler calls so far, counted by the reconciler itself.
    pub attempted: u64,
    /// Reconciles that asked to come back later, so far.
    pub requeued_after: u64,
    /// The latest simulated panic's message.
    pub last_panic: Option<String>,
    /// Fleet positions this process reconciled for the first time since
    /// its previous line.
    pub reconciled: Vec<usize>,
    /// Warning events its controller recorded since its previous line:
    /// (fleet position, reason, message). The parent records them again
    /// into its own event pipeline, so the correlator sees every process's
    /// errors together.
    pub events: Vec<(usize, String, String)>,
    /// Errors of its queue calls worth telling (corruption, undecodable
    /// keys) since its previous line, each distinct one once (at most
    /// [`ERRORS_PER_LINE`]).
    #[serde(default)]
    pub errors: Vec<WireError>,
    /// The last line: the workers drained their keys in hand; exiting.
    pub done: bool,
}

/// Errors a line carries at most (the rest wait for the next lines).
pub const ERRORS_PER_LINE: usize = 8;

/// An error a worker process's queue returned, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The queue's state is corrupt (the run fails).
    pub corrupt: bool,
    /// The error's text (naming the key and field for corruption).
    pub text: String,
}

/// [`Counts`], as it travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCounts {
    pub succeeded: u64,
    pub failed: u64,
    pub panicked: u64,
    pub requeued: u64,
    pub requeues_refused: u64,
    pub lease_lost: u64,
}

impl From<Counts> for WireCounts {
    fn from(c: Counts) -> Self {
        WireCounts {
            succeeded: c.succeeded,
            failed: c.failed,
            panicked: c.panicked,
            requeued: c.requeued,
            requeues_refused: c.requeues_refused,
            lease_lost: c.lease_lost,
        }
    }
}

impl WireCounts {
    /// Adds `other` to these counts, as `Counts` (summing processes).
    pub fn add_to(self, sum: &mut Counts) {
        sum.succeeded += self.succeeded;
        sum.failed += self.failed;
        sum.panicked += self.panicked;
        sum.requeued += self.requeued;
        sum.requeues_refused += self.requeues_refused;
        sum.lease_lost += self.lease_lost;
    }
}

impl Line {
    /// The line as one line of JSON (no newline).
    pub fn encode(&self) -> String {
        // Only plain numbers, strings and vectors: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// A line read from a worker.
    pub fn decode(text: &str) -> Result<Line, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_survives_the_trip() {
        let line = Line {
            counts: WireCounts {
                succeeded: 5,
                failed: 2,
                panicked: 1,
                ..WireCounts::default()
            },
            attempted: 7,
            requeued_after: 1,
            last_panic: Some("simulated bug in \"ns-0/obj-1\"\n".into()),
            reconciled: vec![0, 3],
            events: vec![(3, "ReconcileError".into(), "conflict".into())],
            errors: vec![WireError {
                corrupt: true,
                text: "queue state is corrupt: rq:{q}:owners is a string".into(),
            }],
            done: true,
        };
        let text = line.encode();
        assert!(!text.contains('\n'), "one line: {text}");
        assert_eq!(Line::decode(&text).expect("decodes"), line);
        let mut sum = Counts::default();
        line.counts.add_to(&mut sum);
        line.counts.add_to(&mut sum);
        assert_eq!((sum.processed(), sum.panicked), (14, 2));
    }

    #[test]
    fn a_line_without_errors_still_reads() {
        let line = Line::decode(r#"{"counts":{"succeeded":1,"failed":0,"panicked":0,"requeued":0,"requeues_refused":0,"lease_lost":0},"attempted":1,"requeued_after":0,"last_panic":null,"reconciled":[],"events":[],"done":false}"#)
            .expect("decodes");
        assert!(line.errors.is_empty());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Line::decode("panic caught by requeue: boom").is_err());
    }
}
