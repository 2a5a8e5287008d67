//! The backbone nodes talk over: a pub/sub bus for heartbeats and
//! acknowledgements, and a durable, ordered log for revocations. A small
//! trait, and the in-process implementation for one node with no server.

use std::boxed::Box;
use std::collections::VecDeque;
use std::string::String;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use std::vec::Vec;

use tokio::sync::{Notify, mpsc};

use super::control::{MAX_CONTROL_BYTES, MessageId};
use super::protocol::{LogEvent, Subjects};
use crate::live::BoxFuture;

/// One message delivered to a subscription.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// The bytes published (never more than [`MAX_CONTROL_BYTES`]: a
    /// backbone drops larger messages before copying them).
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

/// What went wrong on the backbone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum BackboneErrorKind {
    /// The subject is not valid for the backbone.
    InvalidSubject,
    /// The broker could not be reached, or did not answer in time.
    Unavailable,
    /// The broker refused the operation (permissions, limits, a log whose
    /// configuration does not match).
    Refused,
}

impl std::fmt::Display for BackboneErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InvalidSubject => "invalid subject",
            Self::Unavailable => "the backbone is unavailable",
            Self::Refused => "the backbone refused the operation",
        })
    }
}

/// A backbone failure: its kind, and the underlying error when there is one.
#[derive(Debug)]
pub struct BackboneError {
    kind: BackboneErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackboneError {
    /// An error of `kind` without a source.
    pub fn new(kind: BackboneErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(kind: BackboneErrorKind, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { kind, source: Some(source.into()) }
    }

    /// What went wrong.
    pub fn kind(&self) -> BackboneErrorKind {
        self.kind
    }
}

impl std::fmt::Display for BackboneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for BackboneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A subject-based pub/sub with NATS semantics (`.`-separated tokens, `*`
/// matches one token, `>` the rest), and a durable log.
pub trait Backbone: Send + Sync + 'static {
    /// Publishes `payload` on `subject`, at most once.
    fn publish(&self, subject: String, payload: Vec<u8>) -> BoxFuture<'_, Result<(), BackboneError>>;

    /// Subscribes to `subject` (wildcards allowed), delivering into `sink`
    /// until the returned [`Interest`] is dropped. A delivery that finds
    /// `sink` full, or that is larger than [`MAX_CONTROL_BYTES`], is dropped
    /// (never waited for, never copied): the bus is at-most-once anyway.
    fn subscribe_into(
        &self,
        subject: String,
        sink: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<Interest, BackboneError>>;

    /// Resolves once every earlier publish and subscribe was handed to the
    /// broker, in order.
    fn flush(&self) -> BoxFuture<'_, Result<(), BackboneError>>;

    /// Opens (creating it when missing) the durable log recording
    /// `subjects.log()`.
    fn open_log<'a>(&'a self, subjects: &'a Subjects) -> BoxFuture<'a, Result<Arc<dyn Log>, BackboneError>>;
}

/// A durable, ordered log of revocations, read by every node from its own
/// position.
pub trait Log: Send + Sync + 'static {
    /// The position of the last entry (0 when empty).
    fn end(&self) -> BoxFuture<'_, Result<u64, BackboneError>>;

    /// Appends `payload` under `subject`, deduplicated by `message` (a retry
    /// of an append that did land returns the first one's position), and
    /// resolves with its position once the log holds it durably.
    fn append(
        &self,
        subject: String,
        message: MessageId,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<u64, BackboneError>>;

    /// Reads the log from position `from` on, in order.
    fn follow(&self, from: u64) -> BoxFuture<'_, Result<Box<dyn LogFeed>, BackboneError>>;
}

/// A reader of the log from some position.
pub trait LogFeed: Send {
    /// The next event. Cancel-safe: a dropped call loses nothing, so it can
    /// sit in a `select!`. A feed reports the log's end ([`LogEvent::End`])
    /// whenever it has delivered everything, and at least about once a
    /// second while idle.
    fn next(&mut self) -> BoxFuture<'_, LogEvent>;
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

type Subscribers = Vec<(u64, String, mpsc::Sender<Delivery>)>;

struct Shared {
    subscribers: Mutex<Subscribers>,
    next: AtomicU64,
    log: Mutex<InProcessLog>,
    appended: Notify,
}

#[derive(Default)]
struct InProcessLog {
    entries: Vec<(String, Vec<u8>)>,
    /// Message ids of recent appends and their positions (deduplication).
    recent: VecDeque<(MessageId, u64)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn log(&self) -> MutexGuard<'_, InProcessLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The backbone of a single process: delivery and the log in memory, no
/// server. The embedded default. Its log is as durable as the process,
/// which is as long as any of its connections lives; every node of a cluster
/// needs a shared backbone such as NATS instead.
#[derive(Clone)]
pub struct InProcess {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess")
            .field("subscriptions", &self.shared.lock().len())
            .field("log", &self.shared.log().entries.len())
            .finish()
    }
}

impl Default for InProcess {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends remembered for deduplication by the in-process log.
const DEDUPE_WINDOW: usize = 4096;
/// How often an idle in-process feed proves it is caught up.
const IDLE_PROOF: Duration = Duration::from_millis(500);

impl InProcess {
    /// A backbone with no subscriptions and an empty log.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                subscribers: Mutex::new(Vec::new()),
                next: AtomicU64::new(0),
                log: Mutex::new(InProcessLog::default()),
                appended: Notify::new(),
            }),
        }
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
    fn publish(&self, subject: String, payload: Vec<u8>) -> BoxFuture<'_, Result<(), BackboneError>> {
        let result = if subject.is_empty() || subject.contains(['*', '>', ' ']) {
            Err(BackboneError::new(BackboneErrorKind::InvalidSubject))
        } else {
            if payload.len() <= MAX_CONTROL_BYTES {
                for (_, pattern, tx) in self.shared.lock().iter() {
                    if subject_matches(pattern, &subject) {
                        let _ = tx.try_send(Delivery { subject: subject.clone(), payload: payload.clone() });
                    }
                }
            }
            Ok(())
        };
        Box::pin(core::future::ready(result))
    }

    fn subscribe_into(
        &self,
        subject: String,
        sink: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<Interest, BackboneError>> {
        let id = self.shared.next.fetch_add(1, Ordering::Relaxed);
        self.shared.lock().push((id, subject, sink));
        let guard = Unsubscribe { shared: Arc::clone(&self.shared), id };
        Box::pin(core::future::ready(Ok(Interest::new(Box::new(guard)))))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BackboneError>> {
        Box::pin(core::future::ready(Ok(())))
    }

    fn open_log<'a>(&'a self, _: &'a Subjects) -> BoxFuture<'a, Result<Arc<dyn Log>, BackboneError>> {
        let log: Arc<dyn Log> = Arc::new(self.clone());
        Box::pin(core::future::ready(Ok(log)))
    }
}

impl Log for InProcess {
    fn end(&self) -> BoxFuture<'_, Result<u64, BackboneError>> {
        let end = self.shared.log().entries.len() as u64;
        Box::pin(core::future::ready(Ok(end)))
    }

    fn append(
        &self,
        subject: String,
        message: MessageId,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<u64, BackboneError>> {
        let position = {
            let mut log = self.shared.log();
            match log.recent.iter().find(|(id, _)| *id == message) {
                Some(&(_, position)) => position,
                None => {
                    log.entries.push((subject, payload));
                    let position = log.entries.len() as u64;
                    log.recent.push_back((message, position));
                    if log.recent.len() > DEDUPE_WINDOW {
                        log.recent.pop_front();
                    }
                    position
                }
            }
        };
        self.shared.appended.notify_waiters();
        Box::pin(core::future::ready(Ok(position)))
    }

    fn follow(&self, from: u64) -> BoxFuture<'_, Result<Box<dyn LogFeed>, BackboneError>> {
        let feed: Box<dyn LogFeed> =
            Box::new(InProcessFeed { shared: Arc::clone(&self.shared), next: from.max(1), proved: false });
        Box::pin(core::future::ready(Ok(feed)))
    }
}

struct InProcessFeed {
    shared: Arc<Shared>,
    next: u64,
    /// Whether the current end was already reported.
    proved: bool,
}

impl LogFeed for InProcessFeed {
    fn next(&mut self) -> BoxFuture<'_, LogEvent> {
        Box::pin(async move {
            loop {
                // Registered before the length is read, so an append in
                // between is not missed.
                let appended = self.shared.appended.notified();
                let (entry, end) = {
                    let log = self.shared.log();
                    let entry = usize::try_from(self.next - 1).ok().and_then(|index| log.entries.get(index).cloned());
                    (entry, log.entries.len() as u64)
                };
                if let Some((subject, payload)) = entry {
                    let position = self.next;
                    self.next += 1;
                    self.proved = false;
                    return LogEvent::Entry { position, subject, payload };
                }
                if !self.proved {
                    self.proved = true;
                    return LogEvent::End(end);
                }
                if tokio::time::timeout(IDLE_PROOF, appended).await.is_err() {
                    return LogEvent::End(end);
                }
            }
        })
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
