//! The pub/sub backbone nodes talk over: a small trait, and the in-process
//! implementation for one node with no external server.

use std::boxed::Box;
use std::string::String;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

use tokio::sync::{mpsc, watch};

use crate::live::BoxFuture;

/// One message delivered to a subscription.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// Where the publisher wants answers, if anywhere.
    pub reply: Option<String>,
    /// The bytes published.
    pub payload: Vec<u8>,
}

/// Interest in a subject at the broker; unsubscribes when dropped.
pub struct Interest {
    _guard: Box<dyn Send + Sync>,
}

impl Interest {
    /// Interest that lasts until `guard` is dropped, which must unsubscribe.
    pub fn new(guard: Box<dyn Send + Sync>) -> Self {
        Self { _guard: guard }
    }
}

impl std::fmt::Debug for Interest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interest")
    }
}

/// Messages on the subjects of one subscription; unsubscribes when dropped.
pub struct Subscription {
    rx: mpsc::UnboundedReceiver<Delivery>,
    _interest: Interest,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription fed by `rx`, for as long as `interest` lasts.
    pub fn new(rx: mpsc::UnboundedReceiver<Delivery>, interest: Interest) -> Self {
        Self { rx, _interest: interest }
    }

    /// The next message, or `None` once the backbone closed the subscription.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

/// Whether the node is connected to its backbone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackboneStatus {
    /// Messages flow.
    Connected,
    /// The connection to the broker is lost: disconnects published elsewhere
    /// do not reach this node.
    Disconnected,
}

/// The backbone could not do what was asked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackboneError {
    /// The subject is not valid for the backbone.
    InvalidSubject,
    /// The backbone is not connected or refused the operation.
    Unavailable,
}

impl std::fmt::Display for BackboneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InvalidSubject => "invalid subject",
            Self::Unavailable => "the backbone is unavailable",
        })
    }
}

impl core::error::Error for BackboneError {}

/// A subject-based pub/sub with NATS semantics: `.`-separated tokens, `*`
/// matches one token, `>` matches the rest.
pub trait Backbone: Send + Sync + 'static {
    /// Publishes `payload` on `subject`, with an optional reply subject.
    fn publish(
        &self,
        subject: String,
        reply: Option<String>,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), BackboneError>>;

    /// Subscribes to `subject` (wildcards allowed), delivering into `sink`
    /// until the returned [`Interest`] is dropped. Many subscriptions may
    /// share one sink.
    fn subscribe_into(
        &self,
        subject: String,
        sink: mpsc::UnboundedSender<Delivery>,
    ) -> BoxFuture<'_, Result<Interest, BackboneError>>;

    /// Subscribes to `subject` (wildcards allowed) with a sink of its own.
    fn subscribe(&self, subject: String) -> BoxFuture<'_, Result<Subscription, BackboneError>> {
        Box::pin(async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let interest = self.subscribe_into(subject, tx).await?;
            Ok(Subscription::new(rx, interest))
        })
    }

    /// Resolves once every earlier publish and subscribe was handed to the
    /// broker connection, in order: the broker applies them before anything
    /// this node publishes later. (With NATS, other servers of a cluster
    /// learn a subscription over their routes a moment later.)
    fn flush(&self) -> BoxFuture<'_, Result<(), BackboneError>>;

    /// The connection status, updated as it changes.
    fn status(&self) -> watch::Receiver<BackboneStatus>;
}

/// Whether `subject` matches the subscription `pattern`.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

type Subscribers = Vec<(u64, String, mpsc::UnboundedSender<Delivery>)>;

struct Shared {
    subscribers: Mutex<Subscribers>,
    next: AtomicU64,
    status: watch::Sender<BackboneStatus>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The backbone of a single node: delivery in process, no server. The
/// embedded default; every node of a cluster needs a shared backbone such as
/// NATS instead.
#[derive(Clone)]
pub struct InProcess {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("subscriptions", &self.shared.lock().len()).finish()
    }
}

impl Default for InProcess {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcess {
    /// A backbone with no subscriptions.
    pub fn new() -> Self {
        let (status, _) = watch::channel(BackboneStatus::Connected);
        Self { shared: Arc::new(Shared { subscribers: Mutex::new(Vec::new()), next: AtomicU64::new(0), status }) }
    }
}

struct Unsubscribe {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.shared.lock().retain(|(id, _, _)| *id != self.id);
    }
}

impl Backbone for InProcess {
    fn publish(
        &self,
        subject: String,
        reply: Option<String>,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<(), BackboneError>> {
        let result = if subject.is_empty() || subject.contains(['*', '>', ' ']) {
            Err(BackboneError::InvalidSubject)
        } else {
            for (_, pattern, tx) in self.shared.lock().iter() {
                if subject_matches(pattern, &subject) {
                    let _ =
                        tx.send(Delivery { subject: subject.clone(), reply: reply.clone(), payload: payload.clone() });
                }
            }
            Ok(())
        };
        Box::pin(core::future::ready(result))
    }

    fn subscribe_into(
        &self,
        subject: String,
        sink: mpsc::UnboundedSender<Delivery>,
    ) -> BoxFuture<'_, Result<Interest, BackboneError>> {
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        self.shared.lock().push((id, subject, sink));
        let guard = Unsubscribe { shared: Arc::clone(&self.shared), id };
        Box::pin(core::future::ready(Ok(Interest::new(Box::new(guard)))))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BackboneError>> {
        Box::pin(core::future::ready(Ok(())))
    }

    fn status(&self) -> watch::Receiver<BackboneStatus> {
        self.shared.status.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_like_nats() {
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.bc"));
    }
}
