//! The ready items: FIFO within a priority level, highest level first, with
//! an anti-starvation rule for the lower levels.

use std::collections::VecDeque;

/// An emptied level keeps its buffer only up to this many entries.
const SHRINK_ABOVE: usize = 4096;

/// Items ready to be handed out, ordered by (priority descending, sequence).
///
/// Entries are `(sequence, item)`. An entry whose sequence no longer matches
/// the item's record in the queue map is stale (the item moved to another
/// level); stale entries are skipped when they reach the front and swept out
/// when they outnumber the live ones, so memory stays proportional to the
/// live entries.
#[derive(Debug)]
pub(crate) struct ReadyQueue<T> {
    /// Sorted by priority, highest first. Level 0 always exists; another
    /// is dropped once empty, so there is one per priority among the
    /// entries (at most one per entry).
    levels: Vec<Level<T>>,
    live: usize,
    stale: usize,
    next_seq: u64,
    /// After this many consecutive hand-outs that passed over an older item
    /// of a lower priority, the oldest ready item goes next.
    fairness: Option<u32>,
    passed_over: u32,
}

#[derive(Debug)]
struct Level<T> {
    priority: i32,
    /// Live entries (one per ready key of this priority: the user's items)
    /// and stale ones, which [`ReadyQueue::sweep`] drops once there are
    /// more than 1024 of them and more than live ones.
    entries: VecDeque<(u64, T)>,
}

impl<T> ReadyQueue<T> {
    pub(crate) fn new(fairness: Option<u32>) -> Self {
        ReadyQueue {
            levels: vec![Level {
                priority: 0,
                entries: VecDeque::new(),
            }],
            live: 0,
            stale: 0,
            next_seq: 1,
            fairness,
            passed_over: 0,
        }
    }

    /// Number of live entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Appends `item` at the back of its priority level; returns its sequence (never 0).
    pub(crate) fn push(&mut self, priority: i32, item: T) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let index = match self.levels.iter().position(|l| l.priority <= priority) {
            Some(i) if self.levels[i].priority == priority => i,
            Some(i) => {
                self.insert_level(i, priority);
                i
            }
            None => {
                let i = self.levels.len();
                self.insert_level(i, priority);
                i
            }
        };
        self.levels[index].entries.push_back((seq, item));
        self.live += 1;
        seq
    }

    fn insert_level(&mut self, index: usize, priority: i32) {
        self.levels.insert(
            index,
            Level {
                priority,
                entries: VecDeque::new(),
            },
        );
    }

    /// Records that one live entry became stale (its item was re-pushed or withdrawn).
    pub(crate) fn mark_stale(&mut self) {
        self.live -= 1;
        self.stale += 1;
    }

    /// Whether stale entries dominate enough to be worth sweeping.
    pub(crate) fn wants_sweep(&self) -> bool {
        self.stale > 1024 && self.stale > self.live
    }

    /// Drops every entry for which `is_live` is false.
    pub(crate) fn sweep(&mut self, mut is_live: impl FnMut(&T, u64) -> bool) {
        for level in &mut self.levels {
            level.entries.retain(|(seq, item)| is_live(item, *seq));
        }
        self.stale = 0;
        self.drop_empty_levels();
    }

    fn drop_empty_levels(&mut self) {
        self.levels
            .retain(|l| l.priority == 0 || !l.entries.is_empty());
    }

    /// Removes and returns the next item to hand out, with its priority.
    ///
    /// `is_live(item, seq)` tells live entries from stale ones. Stale
    /// entries at the front of every level are discarded first, so the
    /// fairness rule only ever compares items that are really waiting.
    pub(crate) fn pop(&mut self, is_live: impl Fn(&T, u64) -> bool) -> Option<(T, i32)> {
        let mut discarded = 0;
        for level in &mut self.levels {
            while let Some((seq, item)) = level.entries.front() {
                if is_live(item, *seq) {
                    break;
                }
                level.entries.pop_front();
                discarded += 1;
            }
        }
        self.stale -= discarded;
        let first = self.levels.iter().position(|l| !l.entries.is_empty());
        let Some(first) = first else {
            self.drop_empty_levels();
            return None;
        };
        let (index, served_oldest) = self.choose(first);
        let level = &mut self.levels[index];
        let priority = level.priority;
        let (_, item) = level.entries.pop_front()?;
        if level.entries.is_empty() && priority == 0 && level.entries.capacity() > SHRINK_ABOVE {
            // Drained after a burst: give the memory back.
            level.entries = VecDeque::new();
        }
        self.drop_empty_levels();
        self.live -= 1;
        self.note_served(served_oldest);
        Some((item, priority))
    }

    /// Picks the level to serve: normally the highest non-empty one
    /// (`first`); the level holding the oldest entry once the fairness
    /// budget is spent. Also says whether the pick is the oldest entry.
    fn choose(&self, first: usize) -> (usize, bool) {
        let Some(limit) = self.fairness else {
            return (first, true);
        };
        let front = |i: usize| self.levels[i].entries.front().map(|(s, _)| *s);
        let oldest = (first..self.levels.len())
            .filter_map(|i| front(i).map(|s| (s, i)))
            .min()
            .map_or(first, |(_, i)| i);
        if oldest == first {
            (first, true)
        } else if self.passed_over >= limit {
            (oldest, true)
        } else {
            (first, false)
        }
    }

    fn note_served(&mut self, served_oldest: bool) {
        if served_oldest {
            self.passed_over = 0;
        } else {
            self.passed_over += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop_all(q: &mut ReadyQueue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| q.pop(|_, _| true).map(|(i, _)| i)).collect()
    }

    #[test]
    fn fairness_ignores_stale_entries_when_looking_for_older_items() {
        let mut q = ReadyQueue::new(Some(1));
        let stale = q.push(-1, "a");
        q.mark_stale();
        q.push(0, "a");
        q.push(-1, "c");
        q.push(0, "d");
        let live = |_: &&str, seq: u64| seq != stale;
        let order: Vec<_> = std::iter::from_fn(|| q.pop(live).map(|(i, _)| i)).collect();
        assert_eq!(order, ["a", "d", "c"]);
    }

    #[test]
    fn higher_priority_first_fifo_within_a_level() {
        let mut q = ReadyQueue::new(None);
        q.push(0, "a");
        q.push(5, "b");
        q.push(-3, "c");
        q.push(5, "d");
        q.push(0, "e");
        assert_eq!(pop_all(&mut q), ["b", "d", "a", "e", "c"]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn stale_entries_are_skipped_and_not_counted() {
        let mut q = ReadyQueue::new(None);
        let stale = q.push(0, "old");
        q.push(0, "new");
        q.mark_stale();
        assert_eq!(q.len(), 1);
        let got: Vec<_> =
            std::iter::from_fn(|| q.pop(|_, seq| seq != stale).map(|(i, _)| i)).collect();
        assert_eq!(got, ["new"]);
    }

    #[test]
    fn fairness_serves_the_oldest_after_the_budget_is_spent() {
        let mut q = ReadyQueue::new(Some(2));
        q.push(-100, "low");
        for name in ["h1", "h2", "h3", "h4"] {
            q.push(0, name);
        }
        assert_eq!(pop_all(&mut q), ["h1", "h2", "low", "h3", "h4"]);
    }

    #[test]
    fn sweep_drops_stale_entries() {
        let mut q = ReadyQueue::new(None);
        let s = q.push(3, "x");
        q.push(0, "y");
        q.mark_stale();
        q.sweep(|_, seq| seq != s);
        assert_eq!(q.levels.len(), 1);
        assert_eq!(pop_all(&mut q), ["y"]);
    }
}
