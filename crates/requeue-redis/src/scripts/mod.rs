//! The Lua scripts: every state transition of a queue is one script.
//!
//! Each script is a shared prelude (key names, clock, the `add`/`get`/`done`
//! cores) concatenated at compile time with one small body. They run
//! through [`redis::Script`]: `EVALSHA`, falling back to `EVAL` (which
//! loads the script) on `NOSCRIPT`. Pipelined `EVALSHA` does not fall back,
//! so call [`Scripts::load_all`] on every connect and reconnect.
//!
//! Conventions shared by every script:
//!
//! * `KEYS` = the 10 keys of [`QueueKeys::all`], in that order.
//! * `ARGV[1]` = now in ms as a decimal string, or the empty string for the
//!   server's `TIME` (see [`Now`](crate::ops::Now)).
//! * Expected outcomes come back as codes, never as errors; the work per
//!   call is bounded by a `batch` argument (or, for scripts without one, a
//!   fixed bound of 100 due items promoted).
//! * Nothing half-done: Redis does not undo the writes of a script that
//!   fails part-way, so every script reads its arguments and checks the
//!   type of every key it touches and every stored number it reads or
//!   increments *before* its first write. A key or field that holds
//!   something the scripts never write stops the script with
//!   `REQUEUE_CORRUPT <key> <field> <problem>`, which the client reports
//!   as [`Error::Corrupt`]: the state is left
//!   exactly as it was, so nothing is lost. (`tests/corruption.rs`
//!   corrupts every key and number field of a live queue and runs every
//!   script against it.)
//! * Every script that changes the queue, and `len`, first promotes the
//!   delayed items already due (at most `batch`, or 100), so a due item is
//!   queued before anything that happens after its due time. When nothing
//!   is due that costs one `ZRANGE … BYSCORE LIMIT 0 n`.
//!
//! The typed wrappers in [`ops`](crate::ops) are the intended way to call
//! them.

use crate::error::Error;
use crate::keys::QueueKeys;
use redis::{Script, ScriptInvocation};
use std::sync::LazyLock;

/// Prepends the shared prelude to a script body at compile time.
macro_rules! with_prelude {
    ($file:literal) => {
        concat!(include_str!("prelude.lua"), "\n", include_str!($file))
    };
}

/// One of the crate's scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScriptName {
    /// client-go `Add`.
    Add,
    /// `Add` for up to [`MAX_BATCH`](crate::ops::MAX_BATCH) items.
    AddBatch,
    /// client-go `AddAfter`.
    AddAfter,
    /// client-go `AddRateLimited` with the limiter evaluated in Lua.
    AddRateLimited,
    /// Reap, promote and lease the head of the queue.
    Get,
    /// Fenced `Done`.
    Done,
    /// `Done` then `Get` in one call.
    DoneGet,
    /// Fenced lease renewal.
    Extend,
    /// Fenced give-back to the head of the queue.
    Release,
    /// Reap expired leases only.
    Reap,
    /// Read-only snapshot for inspection.
    Inspect,
    /// client-go `Len`, after promoting due items.
    Len,
    /// Read-only: every key's type and content, for diagnosis and repair.
    Dump,
    /// Adds, fenced dones and gets of many callers in one call, in order.
    Batch,
}

impl ScriptName {
    /// Every script, in a fixed order.
    pub const ALL: [ScriptName; 14] = [
        ScriptName::Add,
        ScriptName::AddBatch,
        ScriptName::AddAfter,
        ScriptName::AddRateLimited,
        ScriptName::Get,
        ScriptName::Done,
        ScriptName::DoneGet,
        ScriptName::Extend,
        ScriptName::Release,
        ScriptName::Reap,
        ScriptName::Inspect,
        ScriptName::Len,
        ScriptName::Dump,
        ScriptName::Batch,
    ];

    /// A stable snake_case name (for logs and a `script` metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptName::Add => "add",
            ScriptName::AddBatch => "add_batch",
            ScriptName::AddAfter => "add_after",
            ScriptName::AddRateLimited => "add_rate_limited",
            ScriptName::Get => "get",
            ScriptName::Done => "done",
            ScriptName::DoneGet => "done_get",
            ScriptName::Extend => "extend",
            ScriptName::Release => "release",
            ScriptName::Reap => "reap",
            ScriptName::Inspect => "inspect",
            ScriptName::Len => "len",
            ScriptName::Dump => "dump",
            ScriptName::Batch => "batch",
        }
    }

    /// The full Lua source (prelude included) sent to Redis.
    pub fn source(self) -> &'static str {
        match self {
            ScriptName::Add => with_prelude!("add.lua"),
            ScriptName::AddBatch => with_prelude!("add_batch.lua"),
            ScriptName::AddAfter => with_prelude!("add_after.lua"),
            ScriptName::AddRateLimited => with_prelude!("add_rate_limited.lua"),
            ScriptName::Get => with_prelude!("get.lua"),
            ScriptName::Done => with_prelude!("done.lua"),
            ScriptName::DoneGet => with_prelude!("done_get.lua"),
            ScriptName::Extend => with_prelude!("extend.lua"),
            ScriptName::Release => with_prelude!("release.lua"),
            ScriptName::Reap => with_prelude!("reap.lua"),
            ScriptName::Inspect => with_prelude!("inspect.lua"),
            ScriptName::Len => with_prelude!("len.lua"),
            ScriptName::Dump => with_prelude!("dump.lua"),
            ScriptName::Batch => with_prelude!("batch.lua"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every script, hashed once per process.
#[derive(Debug)]
pub struct Scripts {
    scripts: [Script; ScriptName::ALL.len()],
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    scripts: ScriptName::ALL.map(|name| Script::new(name.source())),
});

impl Scripts {
    /// The process-wide set (the SHA1s are computed on first use).
    pub fn global() -> &'static Scripts {
        &SCRIPTS
    }

    /// The [`redis::Script`] for `name`.
    pub fn script(&self, name: ScriptName) -> &Script {
        // `scripts` holds one entry per `ScriptName::ALL`, in that order.
        &self.scripts[name.index()]
    }

    /// The SHA1 that `EVALSHA` uses for `name`.
    pub fn sha1(&self, name: ScriptName) -> &str {
        self.script(name).get_hash()
    }

    /// `SCRIPT LOAD`s every script, so that `EVALSHA` (pipelined too) finds
    /// them. Call it on connect and on every reconnect: a restarted or
    /// failed-over server has an empty script cache.
    pub async fn load_all<C>(&self, conn: &mut C) -> Result<(), Error>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        for script in &self.scripts {
            script.load_async(conn).await?;
        }
        Ok(())
    }

    /// An invocation of `name` with the 10 `KEYS` and `now` (`ARGV[1]`)
    /// filled in; add the script's own arguments with `.arg(…)`.
    pub fn prepare(&self, name: ScriptName, keys: &QueueKeys, now: &[u8]) -> ScriptInvocation<'_> {
        let mut invocation = self.script(name).prepare_invoke();
        for key in keys.all() {
            invocation.key(key.as_str());
        }
        invocation.arg(now);
        invocation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_starts_with_the_prelude_and_has_a_distinct_hash() {
        let scripts = Scripts::global();
        let mut hashes: Vec<&str> = ScriptName::ALL.iter().map(|n| scripts.sha1(*n)).collect();
        for name in ScriptName::ALL {
            assert!(
                name.source().starts_with("-- prelude.lua"),
                "{}",
                name.as_str()
            );
            assert_eq!(ScriptName::ALL[name.index()], name);
        }
        let prelude = include_str!("prelude.lua");
        for name in ScriptName::ALL {
            // Only the prelude names keys (from KEYS) and reads the clock.
            let body = &name.source()[prelude.len()..];
            for forbidden in ["KEYS", "rq:", "TIME"] {
                assert!(
                    !body.contains(forbidden),
                    "{} uses {forbidden}",
                    name.as_str()
                );
            }
        }
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), ScriptName::ALL.len());
    }
}
