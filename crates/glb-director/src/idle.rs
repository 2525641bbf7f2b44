//! How a core that polls for packets behaves when there are none: spin a
//! while (a packet may be a microsecond away), then sleep, longer and
//! longer, so an idle director does not burn its CPUs.

use std::time::Duration;

/// How a core behaves when it has nothing to do: first `spin_polls`
/// empty polls with a CPU pause, then sleeps that start at `sleep` and
/// double with every further empty poll up to `max_sleep`. The first
/// packet resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Empty polls answered with a CPU pause before sleeping.
    pub spin_polls: u32,
    /// First sleep; zero never sleeps (busy polling).
    pub sleep: Duration,
    /// Longest sleep.
    pub max_sleep: Duration,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        IdlePolicy {
            spin_polls: 1024,
            sleep: Duration::from_micros(100),
            max_sleep: Duration::from_micros(1000),
        }
    }
}
