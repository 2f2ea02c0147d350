//! What every loop builder carries besides its own rules.

use crate::clock::{self, SharedClock};
use crate::crash::PanicPolicy;

/// The clock a loop measures time on and how it treats panics.
#[derive(Debug, Clone)]
pub(crate) struct LoopEnv {
    pub(crate) clock: SharedClock,
    pub(crate) panics: PanicPolicy,
}

impl Default for LoopEnv {
    fn default() -> Self {
        LoopEnv {
            clock: clock::real(),
            panics: PanicPolicy::inherit(),
        }
    }
}
