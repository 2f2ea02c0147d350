//! `INFO commandstats`: how many times Redis executed each command.

use std::collections::BTreeMap;

/// Calls per command name (`get`, `evalsha`, `client|setinfo`, …), as
/// `INFO commandstats` reports them or as the difference of two reports.
///
/// Redis counts a command run by a Lua script (`redis.call`) under its own
/// name too, beside the `EVALSHA` that ran the script: the total is the
/// work Redis did, not what clients sent.
///
/// ```
/// use requeue_bench::peers::CommandCounts;
///
/// let before = CommandCounts::parse("# Commandstats\r\ncmdstat_get:calls=2,usec=3,usec_per_call=1.50\r\n");
/// let after = CommandCounts::parse(
///     "cmdstat_get:calls=7,usec=9\r\ncmdstat_evalsha:calls=5,usec=40\r\ncmdstat_info:calls=1,usec=9\r\n",
/// );
/// let delta = after.since(&before);
/// assert_eq!(delta.get("get"), 5);
/// assert_eq!(delta.total(), 11);
/// assert_eq!(delta.without_one("info").total(), 10);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandCounts(BTreeMap<String, u64>);

impl CommandCounts {
    /// Reads the `cmdstat_NAME:calls=N,…` lines of an `INFO commandstats`
    /// reply; other lines are ignored.
    pub fn parse(info: &str) -> CommandCounts {
        let mut calls = BTreeMap::new();
        for line in info.lines() {
            let Some((name, stats)) = line
                .trim()
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let count = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(count) = count {
                calls.insert(name.to_ascii_lowercase(), count);
            }
        }
        CommandCounts(calls)
    }

    /// Counts from name/count pairs (zero counts are dropped).
    pub fn from_pairs<S: Into<String>>(pairs: impl IntoIterator<Item = (S, u64)>) -> CommandCounts {
        CommandCounts(
            pairs
                .into_iter()
                .filter(|(_, count)| *count > 0)
                .map(|(name, count)| (name.into(), count))
                .collect(),
        )
    }

    /// What was executed between `earlier` and this report (commands whose
    /// count did not grow are left out).
    pub fn since(&self, earlier: &CommandCounts) -> CommandCounts {
        CommandCounts(
            self.0
                .iter()
                .filter_map(|(name, &now)| {
                    let grew = now.saturating_sub(earlier.get(name));
                    (grew > 0).then(|| (name.clone(), grew))
                })
                .collect(),
        )
    }

    /// The same counts with one call of `name` taken off (the bench's own
    /// `INFO`, which the later report includes).
    pub fn without_one(mut self, name: &str) -> CommandCounts {
        if let Some(count) = self.0.get_mut(name) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.0.remove(name);
            }
        }
        self
    }

    /// The calls of `name` (0 if none).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `total / items` (0 for no items).
    pub fn per_item(&self, items: u64) -> f64 {
        if items == 0 {
            0.0
        } else {
            self.total() as f64 / items as f64
        }
    }

    /// Each command's calls, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(name, &count)| (name.as_str(), count))
    }
}
