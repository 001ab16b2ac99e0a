//! One tokio runtime per process, made by the first client that starts in it.
//!
//! A runtime inherited through `fork` (gunicorn `--preload` imports the app, and so starts its
//! client, in the master) has no threads in the child: using it would hang. Each runtime is
//! tagged with the pid that made it; a different pid gets a new one, and the inherited one is
//! leaked on purpose (dropping it would wait for threads that do not exist in this process).

use std::sync::Mutex;

use pyo3::exceptions::PyRuntimeError;
use pyo3::PyResult;
use tokio::runtime::{Handle, Runtime};

struct ProcessRuntime {
    pid: u32,
    runtime: Runtime,
}

/// Taken only by Python threads holding the GIL, and only for a moment: no thread can hold it
/// while another one forks, so a child never inherits it locked.
static RUNTIME: Mutex<Option<ProcessRuntime>> = Mutex::new(None);

/// This process's runtime, started on first use.
pub fn handle() -> PyResult<Handle> {
    let pid = std::process::id();
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(rt) = slot.as_ref() {
        if rt.pid == pid {
            return Ok(rt.runtime.handle().clone());
        }
        // Inherited from the parent: its threads are not here.
        std::mem::forget(slot.take());
    }
    // One worker: the client's work per message is small, and a second worker mostly costs
    // wake-ups; the Python side has its own threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("flask-mqtt")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the MQTT runtime: {e}")))?;
    let handle = runtime.handle().clone();
    *slot = Some(ProcessRuntime { pid, runtime });
    Ok(handle)
}

/// The pid the caller runs in (`std::process::id`, read again after every fork).
pub fn pid() -> u32 {
    std::process::id()
}
