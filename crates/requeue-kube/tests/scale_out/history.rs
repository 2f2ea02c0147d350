//! The replicas' logs put together: every reconcile as an interval of the
//! cross-process sequence, and the checks the scale-out test makes.

use super::replica::Line;
use std::collections::BTreeMap;

/// One reconcile.
#[derive(Debug, Clone)]
pub struct Interval {
    pub replica: usize,
    pub key: String,
    pub rv: u64,
    pub start: u64,
    /// `None` while it runs (or if its replica died without ending it).
    pub end: Option<u64>,
    /// Its replica lost a lease while it ran (it was told).
    pub lost: bool,
    /// Cut short by `kill -9`: `end` is the kill's seq.
    pub killed: bool,
}

/// Every reconcile of every replica.
pub struct History {
    pub intervals: Vec<Interval>,
}

impl History {
    /// Pairs each replica's `S` and `E` lines by reconcile id.
    pub fn from_logs(logs: &[Vec<Line>]) -> History {
        let mut intervals = Vec::new();
        for (replica, lines) in logs.iter().enumerate() {
            let mut open: BTreeMap<u64, usize> = BTreeMap::new();
            for line in lines {
                match line {
                    Line::Start { id, key, rv, seq } => {
                        open.insert(*id, intervals.len());
                        intervals.push(Interval {
                            replica,
                            key: key.clone(),
                            rv: *rv,
                            start: *seq,
                            end: None,
                            lost: false,
                            killed: false,
                        });
                    }
                    Line::End { id, seq, lost, .. } => {
                        let at = open.remove(id).expect("an end without a start");
                        intervals[at].end = Some(*seq);
                        intervals[at].lost = *lost;
                    }
                    Line::Slow { .. } => {}
                }
            }
        }
        History { intervals }
    }

    /// `replica` was killed at `seq`: what it had in flight ended then.
    pub fn killed(&mut self, replica: usize, seq: u64) -> Vec<String> {
        let mut held = Vec::new();
        for interval in &mut self.intervals {
            if interval.replica == replica && interval.end.is_none() {
                interval.end = Some(seq);
                interval.killed = true;
                held.push(interval.key.clone());
            }
        }
        held
    }

    /// Pairs of reconciles of one key whose intervals overlap: those where
    /// neither replica was told it lost a lease (a double hold), and those
    /// excused by a lost lease.
    pub fn overlaps(&self) -> (Vec<String>, Vec<String>) {
        let (mut bad, mut excused) = (Vec::new(), Vec::new());
        let mut by_key: BTreeMap<&str, Vec<&Interval>> = BTreeMap::new();
        for interval in &self.intervals {
            by_key.entry(&interval.key).or_default().push(interval);
        }
        for intervals in by_key.values() {
            for (i, a) in intervals.iter().enumerate() {
                for b in &intervals[i + 1..] {
                    let a_end = a.end.unwrap_or(u64::MAX);
                    let b_end = b.end.unwrap_or(u64::MAX);
                    if a.start < b_end && b.start < a_end {
                        let text = format!("{a:?} and {b:?}");
                        if a.lost || b.lost {
                            excused.push(text);
                        } else {
                            bad.push(text);
                        }
                    }
                }
            }
        }
        (bad, excused)
    }

    /// Reconciles that never ended (and were not killed).
    pub fn unfinished(&self) -> Vec<&Interval> {
        self.intervals.iter().filter(|i| i.end.is_none()).collect()
    }

    /// The first completed reconcile of `key` at `rv` that started after
    /// `after`, by a replica that was not killed during it.
    pub fn served(&self, key: &str, rv: u64, after: u64) -> Option<&Interval> {
        self.intervals
            .iter()
            .find(|i| i.key == key && i.rv == rv && i.start > after && i.end.is_some() && !i.killed)
    }

    /// How many reconciles each of `replicas` started after `after`.
    pub fn started_after(&self, replicas: usize, after: u64) -> Vec<usize> {
        let mut counts = vec![0; replicas];
        for interval in self.intervals.iter().filter(|i| i.start > after) {
            counts[interval.replica] += 1;
        }
        counts
    }
}
