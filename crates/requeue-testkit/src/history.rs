//! What the workers' logs say happened, and the checks on it.

use crate::log::Line;
use crate::parent::Worker;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One processing, from its `S`, `D` and `E` lines.
#[derive(Debug, Clone)]
pub struct Interval {
    /// The worker's index.
    pub worker: usize,
    /// The item.
    pub key: String,
    /// Its lease's token.
    pub token: String,
    /// The seq of its `S` line.
    pub start: u64,
    /// The seq of its `D` (or `E`) line. `None`: the worker never got
    /// there (killed, or still running).
    pub end: Option<u64>,
    /// How its end went (`E`'s `rc`), if it was logged.
    pub rc: Option<String>,
}

impl Interval {
    fn lost(&self) -> bool {
        self.rc.as_deref() == Some("lost")
    }

    fn token_number(&self) -> i64 {
        self.token
            .parse()
            .unwrap_or_else(|_| panic!("token {:?} is not a number", self.token))
    }
}

/// Every worker's processings and every add, in seq order.
#[derive(Debug, Default)]
pub struct History {
    /// Every processing, by start.
    pub intervals: Vec<Interval>,
    /// key → seq of its last add (parent's and workers').
    pub last_add: HashMap<String, u64>,
    /// How many adds there were in all.
    pub adds: usize,
    /// How many of `adds` are the parent's (one per key: its last).
    pub parent_keys: usize,
    /// Per worker: (leases lost, leases reaped) from its `C` line.
    pub counters: Vec<Option<(u64, u64)>>,
    /// Workers killed with `kill -9`: their open processings ended with
    /// the process (their leases were left to be reaped).
    pub killed: HashSet<usize>,
    /// Whether tokens are fencing tokens: numbers, a later lease of a key
    /// always the larger ([`fencing_tokens`](History::fencing_tokens)).
    pub fencing: bool,
}

impl History {
    /// Reads the workers' logs; `parent_adds` are the parent's own adds.
    pub fn read(workers: &[Worker], parent_adds: &HashMap<String, u64>) -> History {
        let logs: Vec<Vec<Line>> = workers.iter().map(Worker::lines).collect();
        History::from_lines(&logs, parent_adds)
    }

    /// As [`read`](History::read), from parsed logs (one per worker).
    pub fn from_lines(logs: &[Vec<Line>], parent_adds: &HashMap<String, u64>) -> History {
        let mut history = History::default();
        for (key, &seq) in parent_adds {
            history.add(key, seq);
        }
        history.parent_keys = parent_adds.len();
        for (w, lines) in logs.iter().enumerate() {
            let mut open: HashMap<String, usize> = HashMap::new();
            let mut counters = None;
            for line in lines.iter().cloned() {
                match line {
                    Line::Start { key, token, seq } => {
                        open.insert(token.clone(), history.intervals.len());
                        history.intervals.push(Interval {
                            worker: w,
                            key,
                            token,
                            start: seq,
                            end: None,
                            rc: None,
                        });
                    }
                    Line::Ending { key, token, seq } => {
                        let i = *open
                            .get(&token)
                            .unwrap_or_else(|| panic!("D without S: {key} {token}"));
                        history.intervals[i].end = Some(seq);
                    }
                    Line::End {
                        key,
                        token,
                        seq,
                        rc,
                        requeue,
                    } => {
                        let i = open
                            .remove(&token)
                            .unwrap_or_else(|| panic!("E without S: {key} {token}"));
                        // A requeue's re-add ran unless the end failed
                        // outright (`lost` comes from the done that
                        // follows the re-add in the same call).
                        if let Some(a) = requeue.filter(|_| rc == "ok" || rc == "lost") {
                            history.add(&key, a);
                        }
                        let interval = &mut history.intervals[i];
                        interval.end = Some(seq);
                        interval.rc = Some(rc);
                    }
                    Line::Add { key, seq } => history.add(&key, seq),
                    Line::Valid { .. } => {}
                    Line::Counters { lost, reaped } => counters = Some((lost, reaped)),
                }
            }
            history.counters.push(counters);
        }
        history.intervals.sort_by_key(|i| i.start);
        history
    }

    /// Tokens are fencing tokens (numbers, a later lease of a key always
    /// the larger): [`overlaps`](History::overlaps) also flags an older
    /// lease honoured after a newer one, and
    /// [`not_taken_over`](History::not_taken_over) can tell which given-up
    /// leases no later lease followed.
    pub fn fencing_tokens(mut self) -> History {
        self.fencing = true;
        self
    }

    fn add(&mut self, key: &str, seq: u64) {
        self.adds += 1;
        let last = self.last_add.entry(key.to_string()).or_insert(0);
        *last = (*last).max(seq);
    }

    /// Whether `interval`'s holder gave up its lease without ending it:
    /// its done reported `LeaseLost`, or its process was killed while it
    /// processed (before its `D`: its end was never sent).
    fn gone(&self, interval: &Interval) -> bool {
        interval.lost() || (interval.end.is_none() && self.killed.contains(&interval.worker))
    }

    /// Whether `interval` is a killed worker's last, ended or not: its
    /// outcome was never logged.
    fn cut_short(&self, interval: &Interval) -> bool {
        interval.rc.is_none() && self.killed.contains(&interval.worker)
    }

    /// Pairs of processings of one key that break the lease rules:
    /// (violations, excused).
    ///
    /// Two processings of a key must not overlap, unless a side gave its
    /// lease up (reported `LeaseLost`, or was killed during it): only a
    /// holder that lost its lease may overlap (excused). With
    /// [`fencing_tokens`](History::fencing_tokens), the one with the
    /// smaller token (the older lease) must also have ended before the
    /// other started, and only the older one's loss excuses: two may
    /// overlap, or the older run after the newer, only when the older gave
    /// its lease up. Anything else is a key held by two holders at once,
    /// or a newer lease handed out while an older one was still honoured.
    pub fn overlaps(&self) -> (Vec<String>, Vec<String>) {
        let mut by_key: BTreeMap<&str, Vec<&Interval>> = BTreeMap::new();
        for interval in &self.intervals {
            by_key.entry(&interval.key).or_default().push(interval);
        }
        let (mut bad, mut excused) = (Vec::new(), Vec::new());
        for intervals in by_key.values() {
            // Sorted by start; each is compared with every earlier one.
            for (j, later) in intervals.iter().enumerate() {
                for earlier in &intervals[..j] {
                    let overlap = earlier.end.is_none_or(|end| end > later.start);
                    let older_ran_later =
                        self.fencing && earlier.token_number() > later.token_number();
                    if !overlap && !older_ran_later {
                        continue;
                    }
                    let what = if overlap {
                        "overlaps"
                    } else {
                        "ended before the start of, with a larger token,"
                    };
                    let text = format!("{earlier:?} {what} {later:?}");
                    let excuse = if self.fencing {
                        self.gone(if older_ran_later { later } else { earlier })
                    } else {
                        self.gone(earlier) || self.gone(later)
                    };
                    if excuse {
                        excused.push(text);
                    } else {
                        bad.push(text);
                    }
                }
            }
        }
        (bad, excused)
    }

    /// Keys whose last add was not followed by a processing that started
    /// after it (docs/redis.md §7, third row).
    pub fn unserved_adds(&self) -> Vec<String> {
        let mut last_start: HashMap<&str, u64> = HashMap::new();
        for interval in &self.intervals {
            let s = last_start.entry(&interval.key).or_insert(0);
            *s = (*s).max(interval.start);
        }
        let mut unserved: Vec<String> = self
            .last_add
            .iter()
            .filter(|(key, add)| last_start.get(key.as_str()).is_none_or(|s| s < add))
            .map(|(key, add)| {
                format!(
                    "{key}: last add at {add}, last start {:?}",
                    last_start.get(key.as_str())
                )
            })
            .collect();
        unserved.sort();
        unserved
    }

    /// Processings without an end (but for a killed worker's), or whose
    /// end is neither `ok` nor `lost`.
    pub fn unfinished(&self) -> Vec<String> {
        self.intervals
            .iter()
            .filter(|i| !matches!(i.rc.as_deref(), Some("ok" | "lost")) && !self.cut_short(i))
            .map(|i| format!("{i:?}"))
            .collect()
    }

    /// Each processing that ended with `LeaseLost`, with the next hand-out
    /// of its key: if that one started after this one's end, the loss was
    /// probably spurious (its done ran, the reply was lost, the retry found
    /// no owner), since nobody else held the key meanwhile.
    pub fn lost_details(&self) -> Vec<String> {
        self.intervals
            .iter()
            .filter(|i| i.lost())
            .map(|lost| {
                let next = self
                    .intervals
                    .iter()
                    .find(|i| i.key == lost.key && i.start > lost.start);
                format!("{lost:?}; next hand-out of the key: {next:?}")
            })
            .collect()
    }

    /// How many processings ended with `LeaseLost`.
    pub fn lost(&self) -> usize {
        self.intervals.iter().filter(|i| i.lost()).count()
    }

    /// Per worker: how many processings started after `seq`.
    pub fn started_after(&self, workers: usize, seq: u64) -> Vec<usize> {
        let mut counts = vec![0; workers];
        for interval in self.intervals.iter().filter(|i| i.start > seq) {
            counts[interval.worker] += 1;
        }
        counts
    }

    /// The processings of `worker` whose lease it gave up without ending
    /// it (killed during it, or `LeaseLost`) that no later lease of the key
    /// (a larger token) followed: its keys must be reaped and processed
    /// again. (A later lease may have started first, in seq order: the
    /// holder can stall between its `get` and its `S`.) Needs
    /// [`fencing_tokens`](History::fencing_tokens).
    pub fn not_taken_over(&self, worker: usize) -> Vec<String> {
        assert!(self.fencing, "not_taken_over needs fencing tokens");
        self.intervals
            .iter()
            .filter(|i| i.worker == worker && self.gone(i))
            .filter(|gone| {
                !self
                    .intervals
                    .iter()
                    .any(|i| i.key == gone.key && i.token_number() > gone.token_number())
            })
            .map(|gone| {
                let key: Vec<String> = self
                    .intervals
                    .iter()
                    .filter(|i| i.key == gone.key)
                    .map(|i| format!("  {i:?}"))
                    .collect();
                format!(
                    "{gone:?}; last add of the key at {:?}; its processings:\n{}",
                    self.last_add.get(&gone.key),
                    key.join("\n")
                )
            })
            .collect()
    }

    /// The processings of `worker` its holder gave up (see
    /// [`not_taken_over`](History::not_taken_over)).
    pub fn given_up(&self, worker: usize) -> usize {
        self.intervals
            .iter()
            .filter(|i| i.worker == worker && self.gone(i))
            .count()
    }

    /// The checks every hot-key run makes of its history, `workers` the
    /// number of worker processes: no key held twice at once (and, with
    /// fencing tokens, no lease honoured after a newer one), every add
    /// served, every processing ended `ok` or `lost` (a killed worker's
    /// last aside), every given-up lease taken over (with fencing tokens),
    /// and every worker worked. Excused overlaps and lost leases are
    /// printed.
    pub fn assert_sound(&self, workers: usize) {
        let (bad, excused) = self.overlaps();
        assert!(
            bad.is_empty(),
            "a key was processed twice at once (or against the token order):\n{}",
            bad.join("\n")
        );
        for text in &excused {
            eprintln!("overlap excused by LeaseLost: {text}");
        }
        for text in self.lost_details() {
            eprintln!("LeaseLost: {text}");
        }
        let unserved = self.unserved_adds();
        assert!(
            unserved.is_empty(),
            "adds never served:\n{}",
            unserved.join("\n")
        );
        let unfinished = self.unfinished();
        assert!(
            unfinished.is_empty(),
            "processings not ended ok:\n{}",
            unfinished.join("\n")
        );
        if self.fencing {
            for w in 0..workers {
                let orphans = self.not_taken_over(w);
                assert!(
                    orphans.is_empty(),
                    "worker {w} gave these up, and no later lease of the key followed:\n{}",
                    orphans.join("\n")
                );
            }
        }
        let per_worker = self.started_after(workers, 0);
        assert!(
            per_worker.iter().all(|&n| n > 0),
            "a worker never worked: {per_worker:?}"
        );
    }

    /// The part of a run's summary that comes from the history: how many
    /// processings by whom, adds by the parent and by the workers, leases
    /// lost, excused overlaps, the workers' counters.
    pub fn summary(&self, workers: usize, parent_adds: usize) -> String {
        format!(
            "{} processings by {:?}; {} adds by the parent over {} keys, {} by the workers; \
             {} LeaseLost, {} excused overlaps; worker counters (lost, reaped) {:?}",
            self.intervals.len(),
            self.started_after(workers, 0),
            parent_adds,
            self.parent_keys,
            self.adds - self.parent_keys,
            self.lost(),
            self.overlaps().1.len(),
            self.counters,
        )
    }
}
