//! Publish deadlines, kept in the waiters rather than in a timer each (why: `client/deadlines.rs`,
//! whose watcher task sleeps until the earliest one and calls `Core::expire`).

use std::time::Duration;

use tokio::time::Instant;

/// When a waiter gives up, and the timeout it was given (for the error).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub after: Duration,
}

impl Deadline {
    /// `after` from now; `None` when that is too far away to represent (no timeout, then).
    pub fn after(after: Duration) -> Option<Deadline> {
        Instant::now()
            .checked_add(after)
            .map(|at| Deadline { at, after })
    }
}
