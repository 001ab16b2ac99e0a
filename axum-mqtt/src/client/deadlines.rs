//! Publish timeouts without a timer per publish.
//!
//! Wrapping each publish in `tokio::time::timeout` registers a timer entry and cancels it again,
//! about 1.5 µs of the 16 µs a QoS 1 `POST /publish` costs the server (bench/RESULTS.md, profile
//! section), although nearly every publish is acknowledged long before its deadline. So the deadline
//! is written into the waiter's entry in the protocol core instead (`core/deadlines.rs`), and one task per client sleeps until the
//! earliest one and answers the waiters whose time is up with [`Error::Timeout`]. Their entries
//! stay in the book, which keeps matching the broker's packet ids to callers in order (as when a
//! caller gives up by dropping its future).
//!
//! With one timeout for every publish (an endpoint's), deadlines grow in the order publishes are
//! made, so the task wakes about once per timeout period under load, and is woken early only when a
//! publish has a deadline before the one it sleeps until (the first after an idle spell, or a
//! shorter timeout).

use std::future::Future;
use std::sync::{Arc, Weak};

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::requests::{Requests, Stop};

/// The watcher task for `requests`: ends when the client stops or its request path is gone (it
/// holds the path weakly, so it never keeps a client alive).
pub(crate) fn watch(requests: &Arc<Requests>) -> impl Future<Output = ()> + Send + 'static {
    let (notify, stop) = (requests.deadline_wakeup(), requests.watch_stop());
    run(Arc::downgrade(requests), notify, stop)
}

async fn run(requests: Weak<Requests>, notify: Arc<Notify>, mut stop: watch::Receiver<Stop>) {
    loop {
        let next = {
            let Some(requests) = requests.upgrade() else {
                return;
            };
            let next = requests.core().expire(Instant::now());
            next
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = notify.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}
