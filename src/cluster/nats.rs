//! The NATS backbone (feature `nats`): async-nats on tokio, with the log of
//! revocations in a JetStream stream on the same nats-server cluster.
//!
//! - Heartbeats and acknowledgements use core NATS (at most once).
//! - Revocations are appended to a stream (replicated over up to three
//!   servers, deduplicated by `Nats-Msg-Id`), and every node reads the stream
//!   from its own position with an ephemeral pull consumer. The feed issues
//!   one pull at a time and reads the stream sequence and the count of
//!   entries still pending from each delivery, which give the stream's end;
//!   after each expired (idle) pull it asks the stream for its end. A feed
//!   that hears nothing for longer than a pull's expiry reports itself
//!   broken, and the node follows the stream again from its position.

use std::boxed::Box;
use std::string::{String, ToString};
use std::sync::Arc;
use std::time::Duration;
use std::vec::Vec;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{ConnectOptions, HeaderMap, Subscriber};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backbone::{Backbone, BackboneError, BackboneErrorKind, Delivery, Interest, Log, LogFeed};
use super::control::{MAX_CONTROL_BYTES, MessageId};
use super::protocol::{LogEvent, Subjects};
use crate::live::BoxFuture;

/// Where the stream keeps its entries.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Storage {
    /// On disk: survives a restart of every server. The default.
    #[default]
    File,
    /// In memory: survives the loss of a minority of servers only.
    Memory,
}

/// How the revocation stream is set up when a node finds it missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    stream: Option<String>,
    replicas: Option<usize>,
    retention: Duration,
    storage: Storage,
    max_bytes: i64,
    duplicate_window: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            stream: None,
            replicas: None,
            retention: Duration::from_secs(60 * 86_400),
            storage: Storage::File,
            max_bytes: 256 * 1024 * 1024,
            duplicate_window: Duration::from_secs(300),
        }
    }
}

impl LogConfig {
    /// The defaults: the stream is named after the subject prefix
    /// (`<prefix with . as _>_revocations`), replicated over min(3,
    /// servers) servers, keeps entries 60 days (phx.gen.auth's session
    /// validity; it must be no shorter than the longest session max age),
    /// on disk, at most 256 MiB (then new revocations are refused, never old
    /// ones evicted), deduplicating appends for 5 minutes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream's name.
    pub fn stream(mut self, name: &str) -> Self {
        self.stream = Some(String::from(name));
        self
    }

    /// How many servers hold each entry (default min(3, servers)).
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = Some(replicas);
        self
    }

    /// How long entries are kept: no shorter than the longest session max
    /// age, so a revocation outlives every token it could be about.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// File or memory storage.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// The stream's size limit in bytes; when full, new appends are refused.
    pub fn max_bytes(mut self, bytes: i64) -> Self {
        self.max_bytes = bytes;
        self
    }

    fn stream_name(&self, subjects: &Subjects) -> String {
        match &self.stream {
            Some(name) => name.clone(),
            None => std::format!("{}_revocations", subjects.prefix().replace('.', "_")),
        }
    }
}

/// A node's connection to a NATS cluster.
#[derive(Clone, Debug)]
pub struct Nats {
    client: async_nats::Client,
    log: LogConfig,
}

/// How long one JetStream API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one append attempt waits for the stream's acknowledgement
/// before it counts as failed and is retried (deduplicated by message id):
/// an R3 append takes milliseconds, and a short attempt keeps a healed
/// fault's backlog moving.
const APPEND_TIMEOUT: Duration = Duration::from_secs(1);
/// How many entries one pull asks for.
const PULL_BATCH: usize = 256;
/// How long a pull waits at the server for entries.
const PULL_EXPIRES: Duration = Duration::from_millis(1000);
/// How long past a pull's expiry the feed waits for the server's answer
/// before it counts as broken.
const PULL_MARGIN: Duration = Duration::from_millis(1500);
/// How long an ephemeral consumer outlives its last pull.
const CONSUMER_INACTIVE: Duration = Duration::from_secs(30);

impl Nats {
    /// Connects to `url` (one server, or several separated by commas) with
    /// `options` (credentials, TLS, an inbox prefix the node's user may
    /// subscribe to, ...). The backbone sets a 1 s ping interval, so a frozen
    /// server is noticed within a few seconds and the client moves to another
    /// one, and retries reconnecting forever with a backoff capped at one
    /// second. A failed first connection is an error.
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<Self, BackboneError> {
        let servers = url
            .split(',')
            .map(|server| server.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| BackboneError::with_source(BackboneErrorKind::Refused, err))?;
        let client = options
            .ping_interval(Duration::from_secs(1))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 50).min(1_000)))
            .connect(servers)
            .await
            .map_err(|err| BackboneError::with_source(BackboneErrorKind::Unavailable, err))?;
        Ok(Self { client, log: LogConfig::default() })
    }

    /// Sets up the revocation stream with `config` when it is missing.
    pub fn log_config(mut self, config: LogConfig) -> Self {
        self.log = config;
        self
    }

    /// The underlying client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    fn jetstream(&self) -> jetstream::Context {
        let mut context = jetstream::new(self.client.clone());
        context.set_timeout(REQUEST_TIMEOUT);
        context
    }
}

fn unavailable(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BackboneError {
    BackboneError::with_source(BackboneErrorKind::Unavailable, err)
}

/// Aborts the task that forwards a subscription's messages, which drops
/// (and so unsubscribes) the NATS subscriber.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Backbone for Nats {
    fn publish(&self, subject: String, payload: Vec<u8>) -> BoxFuture<'_, Result<(), BackboneError>> {
        Box::pin(async move { self.client.publish(subject, payload.into()).await.map_err(unavailable) })
    }

    fn subscribe_into(
        &self,
        subject: String,
        sink: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<Interest, BackboneError>> {
        Box::pin(async move {
            let mut subscriber = self.client.subscribe(subject).await.map_err(unavailable)?;
            let forward = tokio::spawn(async move {
                while let Some(message) = subscriber.next().await {
                    // Status messages carry no payload of ours; oversized
                    // ones are junk, dropped before any copy.
                    if message.status.is_some() || message.payload.len() > MAX_CONTROL_BYTES {
                        continue;
                    }
                    let delivery = Delivery { subject: message.subject.to_string(), payload: message.payload.to_vec() };
                    match sink.try_send(delivery) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => break,
                    }
                }
            });
            Ok(Interest::new(Box::new(AbortOnDrop(forward.abort_handle()))))
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BackboneError>> {
        Box::pin(async move { self.client.flush().await.map_err(unavailable) })
    }

    fn open_log<'a>(&'a self, subjects: &'a Subjects) -> BoxFuture<'a, Result<Arc<dyn Log>, BackboneError>> {
        Box::pin(async move {
            let jetstream = self.jetstream();
            let name = self.log.stream_name(subjects);
            let wanted: Vec<String> = subjects.log().into_iter().collect();
            let servers = self.client.server_info().connect_urls.len().max(1);
            let config = stream::Config {
                name: name.clone(),
                subjects: wanted.clone(),
                retention: stream::RetentionPolicy::Limits,
                discard: stream::DiscardPolicy::New,
                max_age: self.log.retention,
                max_bytes: self.log.max_bytes,
                max_message_size: i32::try_from(MAX_CONTROL_BYTES).unwrap_or(i32::MAX),
                storage: match self.log.storage {
                    Storage::File => stream::StorageType::File,
                    Storage::Memory => stream::StorageType::Memory,
                },
                num_replicas: self.log.replicas.unwrap_or(servers.min(3)),
                duplicate_window: self.log.duplicate_window,
                deny_delete: true,
                deny_purge: true,
                ..Default::default()
            };
            let mut stream = jetstream.get_or_create_stream(config).await.map_err(|err| {
                BackboneError::with_source(BackboneErrorKind::Refused, std::format!("revocation stream {name}: {err}"))
            })?;
            let info = stream.info().await.map_err(unavailable)?;
            if let Some(missing) = wanted.iter().find(|subject| !info.config.subjects.contains(subject)) {
                return Err(BackboneError::with_source(
                    BackboneErrorKind::Refused,
                    std::format!("stream {name} exists but does not record {missing}"),
                ));
            }
            let log: Arc<dyn Log> = Arc::new(NatsLog { client: self.client.clone(), jetstream, stream, name });
            Ok(log)
        })
    }
}

struct NatsLog {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: stream::Stream,
    name: String,
}

impl Log for NatsLog {
    fn end(&self) -> BoxFuture<'_, Result<u64, BackboneError>> {
        Box::pin(async move {
            let info = self.stream.get_info().await.map_err(unavailable)?;
            Ok(info.state.last_sequence)
        })
    }

    fn append(
        &self,
        subject: String,
        message: MessageId,
        payload: Vec<u8>,
    ) -> BoxFuture<'_, Result<u64, BackboneError>> {
        Box::pin(async move {
            let publish =
                jetstream::message::PublishMessage::build().payload(payload.into()).message_id(message.to_hex());
            let attempt = async {
                let ack = self.jetstream.send_publish(subject, publish).await.map_err(unavailable)?;
                ack.await.map_err(unavailable)
            };
            match tokio::time::timeout(APPEND_TIMEOUT, attempt).await {
                Ok(ack) => Ok(ack?.sequence),
                Err(elapsed) => Err(unavailable(elapsed)),
            }
        })
    }

    fn follow(&self, from: u64) -> BoxFuture<'_, Result<Box<dyn LogFeed>, BackboneError>> {
        Box::pin(async move {
            let config = consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: from.max(1) },
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: CONSUMER_INACTIVE,
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            };
            let consumer = self.stream.create_consumer(config).await.map_err(unavailable)?;
            let name = consumer.cached_info().name.clone();
            let inbox = self.client.new_inbox();
            let subscriber = self.client.subscribe(inbox.clone()).await.map_err(unavailable)?;
            let feed: Box<dyn LogFeed> = Box::new(NatsFeed {
                client: self.client.clone(),
                stream: self.stream.clone(),
                pull_subject: std::format!("$JS.API.CONSUMER.MSG.NEXT.{}.{name}", self.name),
                inbox,
                subscriber,
                pull: None,
                queued: None,
            });
            Ok(feed)
        })
    }
}

struct Pull {
    /// When the answer to this pull is overdue.
    overdue: Instant,
    /// Entries still to come before the pull is complete.
    remaining: usize,
}

struct NatsFeed {
    client: async_nats::Client,
    stream: stream::Stream,
    pull_subject: String,
    inbox: String,
    subscriber: Subscriber,
    pull: Option<Pull>,
    /// The log's end, due after the entry just returned.
    queued: Option<LogEvent>,
}

impl NatsFeed {
    async fn request(&mut self) -> Result<(), ()> {
        let body = std::format!(
            r#"{{"batch":{PULL_BATCH},"expires":{}}}"#,
            u64::try_from(PULL_EXPIRES.as_nanos()).unwrap_or(u64::MAX)
        );
        self.client
            .publish_with_reply_and_headers(
                self.pull_subject.clone(),
                self.inbox.clone(),
                HeaderMap::new(),
                body.into(),
            )
            .await
            .map_err(|_| ())?;
        self.pull = Some(Pull { overdue: Instant::now() + PULL_EXPIRES + PULL_MARGIN, remaining: PULL_BATCH });
        Ok(())
    }
}

impl LogFeed for NatsFeed {
    fn next(&mut self) -> BoxFuture<'_, LogEvent> {
        Box::pin(async move {
            if let Some(event) = self.queued.take() {
                return event;
            }
            loop {
                if self.pull.is_none() && self.request().await.is_err() {
                    return LogEvent::Broken;
                }
                let overdue = self.pull.as_ref().map_or_else(Instant::now, |pull| pull.overdue);
                let message = match tokio::time::timeout_at(overdue, self.subscriber.next()).await {
                    Ok(Some(message)) => message,
                    // The consumer or its server stopped answering.
                    Ok(None) | Err(_) => return LogEvent::Broken,
                };
                match message.status.map(|status| status.as_u16()) {
                    // An expired pull: nothing was pending at the server. Ask
                    // the stream where it ends (a lost delivery at the tail
                    // shows up as an end the node never reaches).
                    Some(408) => {
                        self.pull = None;
                        match tokio::time::timeout(REQUEST_TIMEOUT, self.stream.get_info()).await {
                            Ok(Ok(info)) => return LogEvent::End(info.state.last_sequence),
                            _ => continue,
                        }
                    }
                    Some(100) => continue,
                    // Consumer deleted, leadership change, ...: follow anew.
                    Some(_) => return LogEvent::Broken,
                    None => {}
                }
                let Some((position, pending)) = message.reply.as_deref().and_then(ack_position) else {
                    return LogEvent::Broken;
                };
                let mut batch_done = false;
                if let Some(pull) = self.pull.as_mut() {
                    pull.remaining = pull.remaining.saturating_sub(1);
                    batch_done = pull.remaining == 0;
                }
                if batch_done {
                    self.pull = None;
                }
                if pending == 0 || batch_done {
                    self.queued = Some(LogEvent::End(position.saturating_add(pending)));
                }
                // Oversized entries are junk: refused unread.
                let payload =
                    if message.payload.len() > MAX_CONTROL_BYTES { Vec::new() } else { message.payload.to_vec() };
                return LogEvent::Entry { position, subject: message.subject.to_string(), payload };
            }
        })
    }
}

/// The stream sequence and the count of entries still pending, from a
/// JetStream delivery's reply subject: `$JS.ACK.<stream>.<consumer>.
/// <delivered>.<stream seq>.<consumer seq>.<time>.<pending>` (9 tokens), or
/// the 12-token form with a domain and an account hash after `$JS.ACK`.
pub(crate) fn ack_position(reply: &str) -> Option<(u64, u64)> {
    let tokens: Vec<&str> = reply.split('.').collect();
    let (sequence, pending) = match tokens.len() {
        9 => (tokens[5], tokens[8]),
        n if n >= 12 => (tokens[7], tokens[10]),
        _ => return None,
    };
    if tokens.first() != Some(&"$JS") || tokens.get(1) != Some(&"ACK") {
        return None;
    }
    Some((sequence.parse().ok()?, pending.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::ack_position;

    #[test]
    fn ack_subjects_of_both_forms_give_sequence_and_pending() {
        assert_eq!(ack_position("$JS.ACK.revocations.c1.1.42.7.1700000000000000000.3"), Some((42, 3)));
        assert_eq!(ack_position("$JS.ACK.dom.acchash.revocations.c1.1.42.7.1700000000000000000.0.r4nd"), Some((42, 0)));
        assert_eq!(ack_position("$JS.ACK.revocations.c1.1.x.7.1.3"), None);
        assert_eq!(ack_position("_INBOX.abc"), None);
        assert_eq!(ack_position("$JS.ACK.a.b.c"), None);
    }
}
