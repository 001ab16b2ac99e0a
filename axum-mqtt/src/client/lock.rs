//! Locking a mutex without ever panicking on poison.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering from a panic elsewhere (the data stays consistent: every critical
/// section of the client is panic free, but a poisoned lock must never take the client down).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
