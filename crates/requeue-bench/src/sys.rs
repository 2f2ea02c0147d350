//! Memory and CPU figures of the running process, read from Linux's `/proc`
//! (no `libc`, no `unsafe`); `None` where `/proc` does not tell.

use std::time::Duration;

/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Current resident set size of this process (`VmRSS` of `/proc/self/status`).
pub fn current_rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// CPU time consumed so far by the threads of this process that are alive
/// now, in nanoseconds: the sum of the first field of every
/// `/proc/self/task/*/schedstat`, falling back to `utime + stime` of
/// `/proc/self/stat` (10 ms resolution) where schedstat is missing.
///
/// The difference of two readings is the CPU time spent in between by the
/// threads alive at the second reading; workloads therefore keep their
/// threads alive until they have read it. The kernel brings a thread's
/// figure up to date when it is switched out, so the calling thread yields
/// first; a thread running on another core at that moment lags by at most
/// one scheduler tick.
pub fn cpu_time() -> Option<Duration> {
    std::thread::yield_now();
    schedstat_sum().or_else(stat_ticks)
}

fn schedstat_sum() -> Option<Duration> {
    let mut total: u64 = 0;
    let mut any = false;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread may exit between the listing and the read: skip it.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
        total = total.saturating_add(ns);
        any = true;
    }
    any.then(|| Duration::from_nanos(total))
}

fn stat_ticks() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture's user-space ABI.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The fraction of the machine's CPU time (all cores) that was idle over
/// the next `span`, from `/proc/stat`: a benchmark on a shared machine
/// waits for this to be near 1 before it runs.
pub fn idle_fraction(span: Duration) -> Option<f64> {
    fn read() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let total = fields.iter().take(8).sum();
        Some((fields.get(3)? + fields.get(4)?, total))
    }
    let (idle0, total0) = read()?;
    std::thread::sleep(span);
    let (idle1, total1) = read()?;
    let total = total1.checked_sub(total0).filter(|&t| t > 0)?;
    Some(idle1.saturating_sub(idle0) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_figures_are_read_on_linux() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let now = current_rss_bytes().expect("VmRSS");
        let peak = peak_rss_bytes().expect("VmHWM");
        assert!(peak >= now && now > 0, "peak {peak} now {now}");
        let before = cpu_time().expect("schedstat or stat");
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            std::hint::spin_loop();
        }
        let after = cpu_time().expect("schedstat or stat");
        assert!(after > before, "{before:?} -> {after:?}");
        assert!(stat_ticks().is_some());
        let idle = idle_fraction(Duration::from_millis(50)).expect("/proc/stat");
        assert!((0.0..=1.0).contains(&idle), "{idle}");
    }
}
