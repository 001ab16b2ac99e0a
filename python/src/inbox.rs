//! A queue from Rust tasks to one Python consumer that waits on a file descriptor.
//!
//! Why a descriptor and not a blocking call: a Python thread blocked inside Rust would block
//! eventlet's or gevent's hub, where every greenlet shares one OS thread. `select` on a socket is
//! patched by both to yield to the hub, and on plain threads it waits with the GIL released.
//!
//! The protocol: a producer pushes, then writes one byte only if the `pending` flag was clear;
//! the consumer reads the bytes, clears the flag, then drains. An item pushed before the flag is
//! cleared is drained now; one pushed after sets it again and writes a byte, waking the next wait.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// The waking half, shared by producers and the consumer.
struct Signal {
    pending: AtomicBool,
    writer: UnixStream,
}

impl Signal {
    fn notify(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            // Non-blocking: a full socket buffer already holds a wake-up.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

/// What a producer holds: bounded (backpressure: `send` waits) or not, per inbox.
pub struct Sender<T> {
    tx: SenderKind<T>,
    signal: Arc<Signal>,
}

enum SenderKind<T> {
    Bounded(mpsc::Sender<T>),
    Unbounded(mpsc::UnboundedSender<T>),
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        let tx = match &self.tx {
            SenderKind::Bounded(tx) => SenderKind::Bounded(tx.clone()),
            SenderKind::Unbounded(tx) => SenderKind::Unbounded(tx.clone()),
        };
        Sender {
            tx,
            signal: self.signal.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Queues `item`, waiting for room in a bounded inbox. False once the consumer is gone.
    pub async fn send(&self, item: T) -> bool {
        let sent = match &self.tx {
            SenderKind::Bounded(tx) => tx.send(item).await.is_ok(),
            SenderKind::Unbounded(tx) => tx.send(item).is_ok(),
        };
        if sent {
            self.signal.notify();
        }
        sent
    }

    /// Queues `item` without waiting: for unbounded inboxes (a bounded one that is full drops it
    /// and says so).
    pub fn send_now(&self, item: T) -> bool {
        let sent = match &self.tx {
            SenderKind::Bounded(tx) => tx.try_send(item).is_ok(),
            SenderKind::Unbounded(tx) => tx.send(item).is_ok(),
        };
        if sent {
            self.signal.notify();
        }
        sent
    }
}

/// The consumer's half.
pub struct Inbox<T> {
    rx: Mutex<Receiver<T>>,
    signal: Arc<Signal>,
    reader: UnixStream,
}

enum Receiver<T> {
    Bounded(mpsc::Receiver<T>),
    Unbounded(mpsc::UnboundedReceiver<T>),
}

impl<T> Inbox<T> {
    /// A bounded inbox of `capacity` items.
    pub fn bounded(capacity: usize) -> std::io::Result<(Sender<T>, Inbox<T>)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self::make(SenderKind::Bounded(tx), Receiver::Bounded(rx))
    }

    /// An unbounded inbox, for events whose number is bounded elsewhere (one per request, and
    /// requests are bounded by `MAX_PENDING`).
    pub fn unbounded() -> std::io::Result<(Sender<T>, Inbox<T>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        Self::make(SenderKind::Unbounded(tx), Receiver::Unbounded(rx))
    }

    fn make(tx: SenderKind<T>, rx: Receiver<T>) -> std::io::Result<(Sender<T>, Inbox<T>)> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let signal = Arc::new(Signal {
            pending: AtomicBool::new(false),
            writer,
        });
        Ok((
            Sender {
                tx,
                signal: signal.clone(),
            },
            Inbox {
                rx: Mutex::new(rx),
                signal,
                reader,
            },
        ))
    }

    /// The descriptor to wait on for readability.
    pub fn fileno(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Makes the next wait return (the consumer then sees the client stopped).
    pub fn wake(&self) {
        self.signal.pending.store(true, Ordering::SeqCst);
        let _ = (&self.signal.writer).write(&[1]);
    }

    /// Clears the wake-up and takes up to `max` items (possibly none).
    pub fn take(&self, max: usize) -> Vec<T> {
        let mut sink = [0u8; 256];
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
        self.signal.pending.store(false, Ordering::SeqCst);
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        while out.len() < max {
            let next = match &mut *rx {
                Receiver::Bounded(rx) => rx.try_recv().ok(),
                Receiver::Unbounded(rx) => rx.try_recv().ok(),
            };
            match next {
                Some(item) => out.push(item),
                None => break,
            }
        }
        if out.len() == max {
            // More may be waiting: make the next wait return at once.
            self.signal.notify();
        }
        out
    }
}
