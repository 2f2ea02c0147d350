//! A quieter panic hook while the demo runs. The demo panics on purpose,
//! dozens of times a second; printing each one would scroll the plain
//! output away and garble the live view. The simulated panics are counted
//! and the latest one kept for the view; in plain mode the first few are
//! still printed by the previous hook. Any other panic is a real bug and
//! goes to the previous hook as usual.

use super::reconcile::SIMULATED_PANIC;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

type Hook = Arc<dyn Fn(&PanicHookInfo<'_>) + Send + Sync>;

/// In plain mode, how many simulated panics are printed before going quiet.
const PRINTED_IN_PLAIN_MODE: u64 = 3;

/// What the hook saw: a count and the latest message only (bounded).
#[derive(Debug, Default)]
pub struct PanicLog {
    seen: AtomicU64,
    last: Mutex<Option<String>>,
}

impl PanicLog {
    /// The latest simulated panic's message.
    pub fn last(&self) -> Option<String> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Puts the previous hook back when dropped.
pub struct QuietPanics {
    previous: Hook,
}

impl QuietPanics {
    /// Installs the quiet hook; `live` silences every simulated panic.
    pub fn install(live: bool, log: Arc<PanicLog>) -> Self {
        let previous: Hook = Arc::from(std::panic::take_hook());
        let chained = previous.clone();
        std::panic::set_hook(Box::new(move |info| {
            let message = requeue::crash::panic_message(info.payload());
            if !message.starts_with(SIMULATED_PANIC) {
                return chained(info);
            }
            let n = log.seen.fetch_add(1, Ordering::Relaxed) + 1;
            *log.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(message.to_string());
            if !live && n <= PRINTED_IN_PLAIN_MODE {
                chained(info);
                if n == PRINTED_IN_PLAIN_MODE {
                    eprintln!("(further simulated panics are counted, not printed)");
                }
            }
        }));
        QuietPanics { previous }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // the hook cannot be changed now; the process is ending anyway
        }
        let previous = self.previous.clone();
        std::panic::set_hook(Box::new(move |info| previous(info)));
    }
}
