//! A node of a live cluster: the tokio driver of the node protocol
//! ([`super::protocol`]), its registry of live connections, and the
//! revocations it issues and applies.
//!
//! [`Node::start`] spawns the node's driver on the current tokio runtime; it
//! heartbeats, ages members, follows the log, retries appends and answers
//! callers by itself, until the last handle to the node is dropped.

use std::boxed::Box;
use std::collections::HashMap;
use std::string::String;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use std::vec::Vec;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::backbone::{Backbone, BackboneError, Delivery, Interest, Log, LogFeed};
use super::control::{ControlCodec, MessageId, Revocation};
use super::protocol::{
    self, BackboneLoss, Local, LogEvent, NodeProtocol, Now, Output, Report, RevokeError, Settings, Subjects,
};
use super::registry::{CloseReason, ConnectionCommand, ConnectionEvents, Registration, Registry};
use crate::OsRandom;
use crate::audit::{AuditRecord, AuditSink};
use crate::keys::{KeyId, KeyRing};
use crate::live::BoxFuture;
use crate::socket_id::LiveSocketId;
use crate::time::Timestamp;

/// How a node names itself and its subjects, and the protocol's tunables.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    name: String,
    prefix: String,
    settings: Settings,
    start_timeout: Duration,
}

impl NodeConfig {
    /// A node called `name` (one subject token of `[A-Za-z0-9_-]`, unique in
    /// the cluster; with per-node NATS users, the name its user may publish
    /// as), with prefix `liveguard` and [`Settings::default`].
    pub fn new(name: &str) -> Self {
        Self {
            name: String::from(name),
            prefix: String::from("liveguard"),
            settings: Settings::default(),
            start_timeout: Duration::from_secs(10),
        }
    }

    /// The subject prefix (one or more tokens of `[A-Za-z0-9_-]`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = String::from(prefix);
        self
    }

    /// What to do while the node cannot show it is caught up with the log.
    pub fn on_backbone_loss(mut self, policy: BackboneLoss) -> Self {
        self.settings.on_loss = policy;
        self
    }

    /// How often the node heartbeats (default 1 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.settings.heartbeat_interval = interval;
        self
    }

    /// How long a silent peer stays a member (default 5 s).
    pub fn member_timeout(mut self, timeout: Duration) -> Self {
        self.settings.member_timeout = timeout;
        self
    }

    /// How long the node may go without proof that it is caught up before
    /// [`BackboneLoss`] applies (default 3 s).
    pub fn caught_up_grace(mut self, grace: Duration) -> Self {
        self.settings.caught_up_grace = grace;
        self
    }

    /// How many unconfirmed revocations the node keeps retrying (default
    /// 65 536).
    pub fn outbox_capacity(mut self, capacity: usize) -> Self {
        self.settings.outbox_capacity = capacity;
        self
    }

    /// How long [`Node::start`] waits for the log to be readable (default
    /// 10 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }
}

/// What went wrong with a node.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum NodeErrorKind {
    /// The prefix is not one or more tokens of `[A-Za-z0-9_-]`.
    InvalidPrefix,
    /// The node name is not one token of `[A-Za-z0-9_-]`.
    InvalidName,
    /// The backbone failed.
    Backbone,
    /// The log could not be read within the start timeout.
    LogUnreachable,
    /// A revocation did not finish with a report (see
    /// [`NodeError::revoke_error`]).
    Revoke,
    /// The node refuses new connections: it cannot hear revocations and its
    /// [`BackboneLoss::CloseAfter`] grace has passed.
    Refusing,
    /// The node's driver has stopped.
    Stopped,
}

/// A node failure: its kind, and the error beneath it.
#[derive(Debug)]
pub struct NodeError {
    kind: NodeErrorKind,
    revoke: Option<RevokeError>,
    source: Option<BackboneError>,
}

impl NodeError {
    fn new(kind: NodeErrorKind) -> Self {
        Self { kind, revoke: None, source: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> NodeErrorKind {
        self.kind
    }

    /// Why a revocation did not finish, for [`NodeErrorKind::Revoke`]: e.g.
    /// [`RevokeError::queued`] says it is still being retried.
    pub fn revoke_error(&self) -> Option<RevokeError> {
        self.revoke
    }
}

impl From<BackboneError> for NodeError {
    fn from(err: BackboneError) -> Self {
        Self { kind: NodeErrorKind::Backbone, revoke: None, source: Some(err) }
    }
}

impl From<RevokeError> for NodeError {
    fn from(err: RevokeError) -> Self {
        Self { kind: NodeErrorKind::Revoke, revoke: Some(err), source: None }
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, &self.revoke, &self.source) {
            (_, Some(revoke), _) => write!(f, "{revoke}"),
            (_, _, Some(source)) => write!(f, "backbone: {source}"),
            (NodeErrorKind::InvalidPrefix, ..) => f.write_str("the subject prefix must be tokens of [A-Za-z0-9_-]"),
            (NodeErrorKind::InvalidName, ..) => f.write_str("the node name must be one token of [A-Za-z0-9_-]"),
            (NodeErrorKind::LogUnreachable, ..) => f.write_str("the revocation log could not be read in time"),
            (NodeErrorKind::Refusing, ..) => {
                f.write_str("the node cannot hear revocations and refuses new connections")
            }
            (NodeErrorKind::Stopped, ..) => f.write_str("the node's driver has stopped"),
            (NodeErrorKind::Backbone | NodeErrorKind::Revoke, ..) => f.write_str("node error"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match (&self.revoke, &self.source) {
            (Some(revoke), _) => Some(revoke),
            (_, Some(source)) => Some(source),
            _ => None,
        }
    }
}

type Waiters = HashMap<MessageId, oneshot::Sender<Result<Report, RevokeError>>>;

struct Shared {
    protocol: Mutex<NodeProtocol>,
    registry: Arc<Registry>,
    waiters: Mutex<Waiters>,
    audit: Arc<dyn AuditSink>,
    /// Wakes the driver: a caller left work in the protocol, or the node
    /// was dropped.
    wake: Notify,
    stopped: AtomicBool,
    origin: Instant,
    /// Whether the node is caught up with the log.
    in_sync: watch::Sender<bool>,
}

impl Shared {
    fn protocol(&self) -> MutexGuard<'_, NodeProtocol> {
        self.protocol.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Now {
        Now { mono: self.origin.elapsed(), wall: Timestamp::now() }
    }
}

/// A node: registers live connections and issues and applies revocations
/// across the cluster.
pub struct Node {
    name: String,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// Applies revocations to the node's registry.
struct RegistryLocal<'a>(&'a Registry);

impl Local for RegistryLocal<'_> {
    fn apply(&mut self, revocation: &Revocation) -> u32 {
        match revocation {
            Revocation::Disconnect(id) => self.0.disconnect(id),
            Revocation::Reauthorize(id) => self.0.send(id, ConnectionCommand::Reauthorize),
            Revocation::RetireKey(key_id) => self.0.retire_key(*key_id),
        }
    }

    fn reauthorize_all(&mut self) -> u32 {
        self.0.broadcast(ConnectionCommand::Reauthorize)
    }

    fn close_all(&mut self) -> u32 {
        self.0.broadcast(ConnectionCommand::Close(CloseReason::BackboneLost))
    }
}

/// Deliveries of the node's subscriptions waiting for the driver; more are
/// dropped (heartbeats and acknowledgements only: revocations come from the
/// log, which the node reads at its own pace).
const CONTROL_QUEUE: usize = 1024;
/// Publishes outstanding at once; more are dropped (the next heartbeat makes
/// good a lost one).
const MAX_PUBLISHES: usize = 256;

impl Node {
    /// Starts a node on the current tokio runtime: subscribes to the
    /// cluster's heartbeats and to its own acknowledgements, opens the log
    /// (creating it when missing), follows it from its end, and returns once
    /// the node is caught up with it, so a revocation appended from then on
    /// reaches every connection registered here. The driver runs until the
    /// last `Arc<Node>` is dropped.
    pub async fn start(
        config: NodeConfig,
        ring: &KeyRing,
        backbone: Arc<dyn Backbone>,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Arc<Self>, NodeError> {
        if !protocol::valid_prefix(&config.prefix) {
            return Err(NodeError::new(NodeErrorKind::InvalidPrefix));
        }
        if !protocol::valid_token(&config.name) {
            return Err(NodeError::new(NodeErrorKind::InvalidName));
        }
        let subjects = Subjects::new(&config.prefix);
        let (sink, control) = mpsc::channel(CONTROL_QUEUE);
        let interests = std::vec![
            backbone.subscribe_into(subjects.members(), sink.clone()).await?,
            backbone.subscribe_into(subjects.acks_to(&config.name), sink).await?,
        ];
        backbone.flush().await?;
        let log = backbone.open_log(&subjects).await?;
        let end = log.end().await?;
        let origin = Instant::now();
        let now = Now { mono: Duration::ZERO, wall: Timestamp::now() };
        let codec = ControlCodec::new(ring);
        let protocol = NodeProtocol::new(&config.name, subjects, codec, config.settings, end + 1, now);
        let (in_sync, mut synced) = watch::channel(false);
        let shared = Arc::new(Shared {
            protocol: Mutex::new(protocol),
            registry: Arc::new(Registry::new()),
            waiters: Mutex::new(HashMap::new()),
            audit,
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            origin,
            in_sync,
        });
        tokio::spawn(drive(Arc::clone(&shared), backbone, log, control, interests));
        let node = Arc::new(Self { name: config.name, shared });
        match tokio::time::timeout(config.start_timeout, synced.wait_for(|synced| *synced)).await {
            Ok(Ok(_)) => Ok(node),
            _ => Err(NodeError::new(NodeErrorKind::LogUnreachable)),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The live connections of this node.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.shared.registry
    }

    /// Registers a live connection under `id`, whose session was verified
    /// under `key_id`. Register first, then validate the session for the
    /// last time: every revocation the log takes from then on reaches this
    /// registration (the node applies the log in order, from before it was
    /// caught up at start). Refused while [`BackboneLoss::CloseAfter`] has
    /// closed everything.
    pub fn register(&self, id: LiveSocketId, key_id: KeyId) -> Result<(Registration, ConnectionEvents), NodeError> {
        if self.shared.protocol().refuses_connections() {
            return Err(NodeError::new(NodeErrorKind::Refusing));
        }
        Ok(self.shared.registry.register(id, key_id))
    }

    /// Closes every connection under `id` on every node: this node's at
    /// once, then the revocation is appended to the log, retried until the
    /// log takes it or `timeout` passes. The report names the nodes that
    /// applied it and the members that did not show it within `timeout`. If
    /// the log did not take it in time, the error says so
    /// ([`NodeErrorKind::Revoke`]) and the node keeps retrying it.
    pub async fn disconnect(&self, id: &LiveSocketId, timeout: Duration) -> Result<Report, NodeError> {
        self.revoke(Revocation::Disconnect(id.clone()), timeout).await
    }

    /// Re-runs the `on_mount` checks of every connection under `id` on every
    /// node, in place; durable and reported as [`Node::disconnect`].
    pub async fn reauthorize(&self, id: &LiveSocketId, timeout: Duration) -> Result<Report, NodeError> {
        self.revoke(Revocation::Reauthorize(id.clone()), timeout).await
    }

    /// Closes every connection verified under `key_id` on every node;
    /// durable and reported as [`Node::disconnect`].
    pub async fn retire_key(&self, key_id: KeyId, timeout: Duration) -> Result<Report, NodeError> {
        self.revoke(Revocation::RetireKey(key_id), timeout).await
    }

    async fn revoke(&self, revocation: Revocation, timeout: Duration) -> Result<Report, NodeError> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(NodeError::new(NodeErrorKind::Stopped));
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut protocol = self.shared.protocol();
            let mut local = RegistryLocal(&self.shared.registry);
            let now = self.shared.now();
            let message = protocol.revoke(revocation, &mut local, timeout, now, &mut OsRandom)?;
            self.shared.waiters().insert(message, tx);
        }
        self.shared.wake.notify_one();
        match rx.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(NodeError::new(NodeErrorKind::Stopped)),
        }
    }

    /// The members heard from within the member timeout, this node included.
    pub fn members(&self) -> Vec<String> {
        let now = self.shared.now();
        self.shared.protocol().members(now)
    }

    /// The last log position this node applied.
    pub fn applied(&self) -> u64 {
        self.shared.protocol().applied()
    }

    /// Whether the node is caught up with the log (it proved so within its
    /// grace period).
    pub fn is_caught_up(&self) -> bool {
        *self.shared.in_sync.borrow()
    }

    /// Revocations of this node not yet confirmed by the log.
    pub fn outbox_len(&self) -> usize {
        self.shared.protocol().outbox_len()
    }
}

type Appended = BoxFuture<'static, (MessageId, Result<u64, BackboneError>)>;
type Following = BoxFuture<'static, (u64, Result<Box<dyn LogFeed>, BackboneError>)>;

/// The driver: performs what the protocol asks, feeds it what happens.
async fn drive(
    shared: Arc<Shared>,
    backbone: Arc<dyn Backbone>,
    log: Arc<dyn Log>,
    mut control: mpsc::Receiver<Delivery>,
    interests: Vec<Interest>,
) {
    let _interests = interests;
    let mut feed: Option<(u64, Box<dyn LogFeed>)> = None;
    let mut following: Option<Following> = None;
    let mut appends: FuturesUnordered<Appended> = FuturesUnordered::new();
    let mut publishes: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
    loop {
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let deadline = perform(&shared, &backbone, &log, &mut feed, &mut following, &mut appends, &mut publishes);
        let registry = Arc::clone(&shared.registry);
        let mut local = RegistryLocal(&registry);
        tokio::select! {
            () = shared.wake.notified() => {}
            Some(delivery) = control.recv() => {
                let now = shared.now();
                shared.protocol().on_control(&delivery.subject, &delivery.payload, now);
            }
            event = next_event(&mut feed) => {
                let now = shared.now();
                let (generation, event) = event;
                if matches!(event, LogEvent::Broken) {
                    // A broken feed answers `Broken` again at once: polling it
                    // until the protocol's retry would spin this task.
                    feed = None;
                }
                shared.protocol().on_log(generation, event, &mut local, now);
            }
            (generation, result) = next_feed(&mut following), if following.is_some() => {
                following = None;
                match result {
                    Ok(new_feed) => feed = Some((generation, new_feed)),
                    Err(_) => {
                        let now = shared.now();
                        shared.protocol().on_log(generation, LogEvent::Broken, &mut local, now);
                    }
                }
            }
            Some((message, result)) = appends.next(), if !appends.is_empty() => {
                let now = shared.now();
                shared.protocol().on_appended(message, result.map_err(|_| ()), now);
            }
            Some(()) = publishes.next(), if !publishes.is_empty() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
        let now = shared.now();
        let mut protocol = shared.protocol();
        protocol.on_tick(&mut local, now);
        shared.in_sync.send_if_modified(|synced| {
            let caught_up = !protocol.is_lost() && protocol.has_proof();
            std::mem::replace(synced, caught_up) != caught_up
        });
    }
}

async fn next_feed(following: &mut Option<Following>) -> (u64, Result<Box<dyn LogFeed>, BackboneError>) {
    match following {
        Some(future) => future.await,
        None => core::future::pending().await,
    }
}

async fn next_event(feed: &mut Option<(u64, Box<dyn LogFeed>)>) -> (u64, LogEvent) {
    match feed {
        Some((generation, feed)) => (*generation, feed.next().await),
        None => core::future::pending().await,
    }
}

/// Does what the protocol asked; returns when it must be ticked next.
fn perform(
    shared: &Arc<Shared>,
    backbone: &Arc<dyn Backbone>,
    log: &Arc<dyn Log>,
    feed: &mut Option<(u64, Box<dyn LogFeed>)>,
    following: &mut Option<Following>,
    appends: &mut FuturesUnordered<Appended>,
    publishes: &mut FuturesUnordered<BoxFuture<'static, ()>>,
) -> Instant {
    let mut protocol = shared.protocol();
    while let Some(output) = protocol.poll_output() {
        match output {
            Output::Publish { subject, payload } => {
                if publishes.len() < MAX_PUBLISHES {
                    let backbone = Arc::clone(backbone);
                    publishes.push(Box::pin(async move {
                        let _ = backbone.publish(subject, payload).await;
                    }));
                }
            }
            Output::Append { message, subject, payload } => {
                let log = Arc::clone(log);
                appends.push(Box::pin(async move { (message, log.append(subject, message, payload).await) }));
            }
            Output::Follow { generation, from } => {
                *feed = None;
                let log = Arc::clone(log);
                *following = Some(Box::pin(async move { (generation, log.follow(from).await) }));
            }
            Output::Done { message, result } => {
                if let Some(waiter) = shared.waiters().remove(&message) {
                    let _ = waiter.send(result);
                }
            }
            Output::Event(event) => shared.audit.record(AuditRecord::Cluster(event)),
        }
    }
    shared.origin + protocol.poll_timeout()
}
