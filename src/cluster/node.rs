//! A node of a live cluster: its registry, its backbone, and the
//! acknowledged control commands it sends and obeys.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::pin;
use std::string::{String, ToString};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::vec::Vec;

use tokio::sync::mpsc;

use super::backbone::{Backbone, BackboneError, BackboneStatus, Delivery, Interest};
use super::control::{Command, ControlCodec, ControlMessage, MessageId, ReplayGuard};
use super::registry::{ConnectionCommand, ConnectionEvents, InterestChange, Registration, Registry};
use crate::audit::{AuditRecord, AuditSink};
use crate::keys::{KeyId, KeyRing};
use crate::random::OsRandom;
use crate::socket_id::{self, LiveSocketId};
use crate::time::Timestamp;

/// What a node does while its backbone is lost.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum BackboneLoss {
    /// Keep serving; when the backbone returns, ask every live connection to
    /// re-validate its session (`on_mount` again), so a revocation missed
    /// meanwhile takes effect then. The default.
    #[default]
    Revalidate,
    /// Keep serving and never re-validate: Phoenix's behaviour. Unsafe: a
    /// disconnect published during the outage is lost for good.
    KeepServing,
    /// Keep serving for this grace period; if the backbone is still lost
    /// then, close every live connection (1001: clients reconnect, to this
    /// node or another, and mount again). If it returns in time, re-validate
    /// as [`BackboneLoss::Revalidate`]. Needs a timer: feature `nats`.
    #[cfg(feature = "nats")]
    CloseAfter(std::time::Duration),
}

/// How a node subscribes to the disconnects of its connections' ids.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum InterestMode {
    /// One wildcard subscription per node (`<prefix>.>`); every node sees
    /// every command and dispatches locally. The default: a registry entry
    /// costs far less than a broker subscription (BENCHMARKS.md), and every
    /// node answers every command, so reports name exactly the silent ones.
    #[default]
    Wildcard,
    /// One subscription per distinct id with connections on the node,
    /// reference-counted; commands reach only the nodes holding the id, so
    /// a node without it stays silent (and is reported as such).
    ///
    /// A NATS cluster spreads a new subscription over its routes
    /// asynchronously, so [`Node::register`] of a new id also probes the
    /// cluster: every member answers on the id's subject from its own server,
    /// and `register` returns once every known member's answer came through
    /// (proof that its server routes the id here), or after `PROBE_TIMEOUT`
    /// (1 s) for members that do not answer. A new id therefore
    /// costs a cluster round trip, and while a dead member is still listed
    /// (until its heartbeats time out) each new id waits the full timeout.
    PerId,
}

/// How long [`Node::register`] waits for members' answers to the probe of a
/// new id under [`InterestMode::PerId`] (with the NATS backbone).
#[cfg(feature = "nats")]
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How a node names itself and its subjects.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    name: String,
    prefix: String,
    control_max_age_secs: u64,
    clock_skew_ms: u64,
    member_timeout_ms: u64,
    on_loss: BackboneLoss,
    interest: InterestMode,
}

impl NodeConfig {
    /// A node called `name`, with prefix `liveguard`, control messages valid
    /// 30 s with 5 s of clock skew, members forgotten after 15 s of silence,
    /// and [`BackboneLoss::Revalidate`].
    pub fn new(name: &str) -> Self {
        Self {
            name: String::from(name),
            prefix: String::from("liveguard"),
            control_max_age_secs: 30,
            clock_skew_ms: 5_000,
            member_timeout_ms: 15_000,
            on_loss: BackboneLoss::Revalidate,
            interest: InterestMode::Wildcard,
        }
    }

    /// The subject prefix (one or more tokens of `[A-Za-z0-9_-]`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = String::from(prefix);
        self
    }

    /// How long a member is known after its last heartbeat or answer.
    pub fn member_timeout_ms(mut self, timeout: u64) -> Self {
        self.member_timeout_ms = timeout;
        self
    }

    /// How the node subscribes to its connections' ids.
    pub fn interest(mut self, mode: InterestMode) -> Self {
        self.interest = mode;
        self
    }

    /// What to do while the backbone is lost.
    pub fn on_backbone_loss(mut self, policy: BackboneLoss) -> Self {
        self.on_loss = policy;
        self
    }
}

/// Who answered a control command, and what they did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Report {
    /// The command's message id.
    pub message: MessageId,
    /// Each node that answered, with the number of connections it acted on.
    pub answered: BTreeMap<String, u32>,
    /// Known members (from heartbeats and answers) that did not answer
    /// before the deadline. With [`InterestMode::PerId`] this includes the
    /// nodes that hold no connection under the id.
    pub silent: Vec<String>,
}

impl Report {
    /// Connections acted on across the nodes that answered.
    pub fn connections(&self) -> u64 {
        self.answered.values().map(|&n| u64::from(n)).sum()
    }

    /// Whether every known member answered.
    pub fn complete(&self) -> bool {
        self.silent.is_empty()
    }
}

/// Why a node could not start or send a command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NodeError {
    /// The prefix is not one or more tokens of `[A-Za-z0-9_-]`.
    InvalidPrefix,
    /// The node name is not one token of `[A-Za-z0-9_-]` (it names the
    /// node's inbox subject).
    InvalidName,
    /// The backbone failed.
    Backbone(BackboneError),
    /// The command could not be signed or its id drawn.
    Sign,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidPrefix => f.write_str("the subject prefix must be tokens of [A-Za-z0-9_-]"),
            Self::InvalidName => f.write_str("the node name must be one token of [A-Za-z0-9_-]"),
            Self::Backbone(err) => write!(f, "backbone: {err}"),
            Self::Sign => f.write_str("the control message could not be signed"),
        }
    }
}

impl core::error::Error for NodeError {}

impl From<BackboneError> for NodeError {
    fn from(err: BackboneError) -> Self {
        Self::Backbone(err)
    }
}

/// A node: registers live connections and sends and obeys disconnects,
/// re-authorizations and key retirements across the cluster.
pub struct Node {
    config: NodeConfig,
    registry: Arc<Registry>,
    backbone: Arc<dyn Backbone>,
    codec: ControlCodec,
    guard: Mutex<ReplayGuard>,
    members: Mutex<BTreeMap<String, Timestamp>>,
    audit: Arc<dyn AuditSink>,
    /// Where every subscription of the node delivers.
    sink: mpsc::UnboundedSender<Delivery>,
    /// Per-id subscriptions ([`InterestMode::PerId`]); the async lock orders
    /// subscribing and unsubscribing one id.
    per_id: tokio::sync::Mutex<HashMap<LiveSocketId, Interest>>,
    /// Commands awaiting answers, by message id.
    pending: Mutex<HashMap<MessageId, mpsc::UnboundedSender<(String, u32)>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.config.name).field("prefix", &self.config.prefix).finish()
    }
}

impl Node {
    /// Starts a node: subscribes to the cluster's subjects and waits until
    /// that interest is live at its server. Spawn the returned driver on any
    /// executor; it obeys incoming commands until the backbone closes.
    ///
    /// A NATS cluster spreads the subscription over its routes
    /// asynchronously (milliseconds): before accepting connections, send
    /// heartbeats until [`Node::members`] lists the other nodes, which proves
    /// their servers route this node's subjects.
    pub async fn start(
        config: NodeConfig,
        ring: &KeyRing,
        backbone: Arc<dyn Backbone>,
        audit: Arc<dyn AuditSink>,
    ) -> Result<(Arc<Self>, impl Future<Output = ()> + Send + 'static), NodeError> {
        if !config.prefix.split('.').all(valid_token) {
            return Err(NodeError::InvalidPrefix);
        }
        let codec = ControlCodec::new(ring, config.control_max_age_secs, config.clock_skew_ms);
        if !valid_token(&config.name) {
            return Err(NodeError::InvalidName);
        }
        let (sink, deliveries) = mpsc::unbounded_channel();
        // Answers to this node's commands arrive on one inbox of its own.
        let mut subjects = std::vec![
            std::format!("{}.control", config.prefix),
            std::format!("{}.inbox.{}.*", config.prefix, config.name),
        ];
        if config.interest == InterestMode::Wildcard {
            subjects.push(std::format!("{}.socket.*", config.prefix));
        }
        let mut interests = Vec::new();
        for subject in subjects {
            interests.push(backbone.subscribe_into(subject, sink.clone()).await?);
        }
        backbone.flush().await?;
        let (registry, changes) = match config.interest {
            InterestMode::Wildcard => (Registry::new(), None),
            InterestMode::PerId => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Registry::with_interest(tx), Some(rx))
            }
        };
        let node = Arc::new(Self {
            config,
            registry: Arc::new(registry),
            backbone,
            codec,
            guard: Mutex::new(ReplayGuard::new()),
            members: Mutex::new(BTreeMap::new()),
            audit,
            sink,
            per_id: tokio::sync::Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        });
        Ok((Arc::clone(&node), node.drive(interests, deliveries, changes)))
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The live connections of this node.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Registers a live connection, and returns once the node's interest in
    /// `id` is live at the broker, so a disconnect published from then on
    /// reaches it: register first, then validate the session for the last
    /// time (DESIGN invariant 9). With [`InterestMode::PerId`] the first
    /// connection of an id subscribes, waits for a probe to come back through
    /// the node's own server, and (NATS) for every member's answer on the
    /// id's subject; the node's driver must be running.
    pub async fn register(
        &self,
        id: LiveSocketId,
        key_id: KeyId,
    ) -> Result<(Registration, ConnectionEvents), NodeError> {
        if self.config.interest == InterestMode::Wildcard {
            return Ok(self.registry.register(id, key_id));
        }
        let mut per_id = self.per_id.lock().await;
        if !per_id.contains_key(&id) {
            let interest = self.backbone.subscribe_into(self.socket_subject(&id), self.sink.clone()).await?;
            self.sync().await?;
            #[cfg(feature = "nats")]
            {
                let control = std::format!("{}.control", self.config.prefix);
                let deadline = tokio::time::sleep(PROBE_TIMEOUT);
                self.command(control, Command::Probe(id.clone()), deadline).await?;
            }
            per_id.insert(id.clone(), interest);
        }
        Ok(self.registry.register(id, key_id))
    }

    /// Returns once the broker has applied everything this node sent before:
    /// a signed probe goes to the node's own inbox, and the broker handles a
    /// connection's operations in order, so when the probe comes back every
    /// earlier subscription is live at the node's server.
    async fn sync(&self) -> Result<(), NodeError> {
        let probe = MessageId::random(&mut OsRandom).map_err(|_| NodeError::Sign)?;
        let (echo, mut echoed) = mpsc::unbounded_channel();
        self.lock_pending().insert(probe, echo);
        let wire = self.encode(Command::Ack { to: probe, connections: 0 }).map(|(_, wire)| wire);
        let subject = std::format!("{}.inbox.{}.{}", self.config.prefix, self.config.name, probe.to_hex());
        let result = match wire {
            Ok(wire) => match self.backbone.publish(subject, None, wire.into_bytes()).await {
                Ok(()) => echoed.recv().await.map(|_| ()).ok_or(NodeError::Backbone(BackboneError::Unavailable)),
                Err(err) => Err(err.into()),
            },
            Err(err) => Err(err),
        };
        self.lock_pending().remove(&probe);
        result
    }

    /// Drops the subscription of an id whose last connection left, unless
    /// one registered meanwhile.
    async fn forget(&self, id: LiveSocketId) {
        let mut per_id = self.per_id.lock().await;
        if self.registry.count(&id) == 0 {
            per_id.remove(&id);
        }
    }

    /// Closes every connection under `id` on every node. Waits for answers
    /// until every known member answered or `deadline` resolves (e.g.
    /// `tokio::time::sleep(..)`).
    pub async fn disconnect(&self, id: &LiveSocketId, deadline: impl Future<Output = ()>) -> Result<Report, NodeError> {
        self.command(self.socket_subject(id), Command::Disconnect(id.clone()), deadline).await
    }

    /// Re-runs the `on_mount` checks of every connection under `id` on every
    /// node, in place.
    pub async fn reauthorize(
        &self,
        id: &LiveSocketId,
        deadline: impl Future<Output = ()>,
    ) -> Result<Report, NodeError> {
        self.command(self.socket_subject(id), Command::Reauthorize(id.clone()), deadline).await
    }

    /// Closes every connection verified under `key_id` on every node.
    pub async fn retire_key(&self, key_id: KeyId, deadline: impl Future<Output = ()>) -> Result<Report, NodeError> {
        self.command(std::format!("{}.control", self.config.prefix), Command::RetireKey(key_id), deadline).await
    }

    /// Announces this node to the others; call periodically (well within
    /// the member timeout).
    pub async fn heartbeat(&self) -> Result<(), NodeError> {
        let wire = self.encode(Command::Heartbeat)?.1;
        let subject = std::format!("{}.control", self.config.prefix);
        Ok(self.backbone.publish(subject, None, wire.into_bytes()).await?)
    }

    /// The members heard from within the member timeout, this node included.
    pub fn members(&self) -> Vec<String> {
        let now = Timestamp::now();
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|_, seen| seen.saturating_add_millis(self.config.member_timeout_ms) >= now);
        let mut names: Vec<String> = members.keys().cloned().collect();
        if !members.contains_key(&self.config.name) {
            names.push(self.config.name.clone());
            names.sort();
        }
        names
    }

    /// Records that `node` is alive (a heartbeat or an answer).
    fn saw(&self, node: &str) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.insert(String::from(node), Timestamp::now());
    }

    fn socket_subject(&self, id: &LiveSocketId) -> String {
        socket_id::subject(&self.config.prefix, id)
    }

    fn encode(&self, command: Command) -> Result<(MessageId, String), NodeError> {
        let id = MessageId::random(&mut OsRandom).map_err(|_| NodeError::Sign)?;
        let message = ControlMessage { id, node: self.config.name.clone(), command };
        let wire = self.codec.encode(&message, Timestamp::now()).map_err(|_| NodeError::Sign)?;
        Ok((id, wire))
    }

    async fn command(
        &self,
        subject: String,
        command: Command,
        deadline: impl Future<Output = ()>,
    ) -> Result<Report, NodeError> {
        let (message, wire) = self.encode(command)?;
        let (answers, mut replies) = mpsc::unbounded_channel();
        self.lock_pending().insert(message, answers);
        let inbox = std::format!("{}.inbox.{}.{}", self.config.prefix, self.config.name, message.to_hex());
        let expected = self.members();
        let published = self.backbone.publish(subject, Some(inbox), wire.into_bytes()).await;
        let mut answered = BTreeMap::new();
        if published.is_ok() {
            let collect = async {
                while let Some((node, connections)) = replies.recv().await {
                    answered.insert(node, connections);
                    if expected.iter().all(|member| answered.contains_key(member)) {
                        break;
                    }
                }
            };
            race(collect, deadline).await;
        }
        self.lock_pending().remove(&message);
        published?;
        let silent = expected.into_iter().filter(|member| !answered.contains_key(member)).collect();
        Ok(Report { message, answered, silent })
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, mpsc::UnboundedSender<(String, u32)>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decodes a control message, or audits why it was refused.
    fn accept(&self, delivery: &Delivery) -> Option<ControlMessage> {
        let now = Timestamp::now();
        let decoded = {
            let mut guard = self.guard.lock().unwrap_or_else(PoisonError::into_inner);
            self.codec.decode(&delivery.payload, now, &mut guard)
        };
        match decoded {
            Ok(accepted) => Some(accepted.message),
            Err(reason) => {
                self.audit.record(AuditRecord::ControlRefused {
                    subject: delivery.subject.clone(),
                    reason: reason.to_string(),
                });
                None
            }
        }
    }

    fn drive(
        self: Arc<Self>,
        interests: Vec<Interest>,
        mut deliveries: mpsc::UnboundedReceiver<Delivery>,
        changes: Option<mpsc::UnboundedReceiver<InterestChange>>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut status = self.backbone.status();
        let (watcher, forgetter) = (Arc::clone(&self), Arc::clone(&self));
        let obey = async move {
            let _interests = interests;
            while let Some(delivery) = deliveries.recv().await {
                self.obey(delivery).await;
            }
        };
        let watch = async move {
            let mut lost = false;
            while status.changed().await.is_ok() {
                let now = *status.borrow_and_update();
                match (now, watcher.config.on_loss) {
                    (BackboneStatus::Disconnected, BackboneLoss::KeepServing) => {}
                    (BackboneStatus::Disconnected, BackboneLoss::Revalidate) => lost = true,
                    #[cfg(feature = "nats")]
                    (BackboneStatus::Disconnected, BackboneLoss::CloseAfter(grace)) => {
                        lost = true;
                        let back = tokio::time::timeout(grace, status.wait_for(|s| *s == BackboneStatus::Connected));
                        if back.await.is_err() {
                            watcher
                                .registry
                                .broadcast(ConnectionCommand::Close(super::registry::CloseReason::BackboneLost));
                        } else {
                            lost = false;
                            watcher.registry.broadcast(ConnectionCommand::Reauthorize);
                        }
                    }
                    (BackboneStatus::Connected, _) if lost => {
                        lost = false;
                        watcher.registry.broadcast(ConnectionCommand::Reauthorize);
                    }
                    (BackboneStatus::Connected, _) => {}
                }
            }
            core::future::pending::<()>().await;
        };
        let forget = async move {
            let Some(mut changes) = changes else { return core::future::pending().await };
            while let Some(change) = changes.recv().await {
                if let InterestChange::Removed(id) = change {
                    forgetter.forget(id).await;
                }
            }
        };
        async move { race(obey, race(watch, forget)).await }
    }

    async fn obey(&self, delivery: Delivery) {
        let Some(ControlMessage { id: to, node, command }) = self.accept(&delivery) else { return };
        if let Command::Ack { to, connections } = command {
            self.saw(&node);
            if let Some(waiting) = self.lock_pending().get(&to) {
                let _ = waiting.send((node, connections));
            }
            return;
        }
        let connections = match command {
            Command::Disconnect(id) | Command::Reauthorize(id) if delivery.subject != self.socket_subject(&id) => {
                self.audit.record(AuditRecord::ControlRefused {
                    subject: delivery.subject,
                    reason: String::from("command for another id than its subject"),
                });
                return;
            }
            Command::Disconnect(id) => self.registry.disconnect(&id),
            Command::Reauthorize(id) => self.registry.send(&id, ConnectionCommand::Reauthorize),
            Command::RetireKey(key_id) => self.registry.retire_key(key_id),
            Command::Heartbeat => return self.saw(&node),
            Command::Probe(id) => {
                // Answered on the id's subject, not the reply inbox: its
                // arrival is the proof the prober waits for.
                if let Ok((_, wire)) = self.encode(Command::Ack { to, connections: 0 }) {
                    let _ = self.backbone.publish(self.socket_subject(&id), None, wire.into_bytes()).await;
                }
                return;
            }
            Command::Ack { .. } => return,
        };
        let Some(reply) = delivery.reply else { return };
        if let Ok((_, wire)) = self.encode(Command::Ack { to, connections }) {
            let _ = self.backbone.publish(reply, None, wire.into_bytes()).await;
        }
    }
}

fn valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Runs two futures until the first finishes.
async fn race(a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    core::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() || b.as_mut().poll(cx).is_ready() { Poll::Ready(()) } else { Poll::Pending }
    })
    .await
}
