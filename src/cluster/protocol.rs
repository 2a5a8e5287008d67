//! The node protocol as a sans-IO state machine: revocations, the durable
//! log, membership and acknowledgements, without a runtime.
//!
//! A [`NodeProtocol`] is fed what happens (log entries, control messages,
//! answers to its own appends, the passing of time) and says what to do
//! ([`Output`]): append a revocation to the log, follow the log from a
//! position, publish a heartbeat or an acknowledgement, finish a caller's
//! revocation with a [`Report`], write an audit event. It takes time
//! ([`Now`]) and randomness as parameters and never reads a clock, so the
//! same code runs under the tokio driver ([`super::node`]) and under a
//! seeded simulation that injects every fault the fault model lists
//! (`docs/FAULT-MODEL.md`).
//!
//! The rules it keeps:
//! - A revocation closes the issuing node's own connections first, then is
//!   appended to the log, retried across failures until the caller's
//!   deadline, and kept in a bounded outbox that goes on retrying after it.
//! - Every node applies the log from its own position, in order, each
//!   position once and each message id once: a redelivered, duplicated or
//!   reordered entry changes nothing, a gap makes the node follow the log
//!   again from the first position it lacks, and positions the log no
//!   longer holds make it re-validate every live connection.
//! - A node that cannot show it is caught up with the log (no proof within
//!   [`Settings::caught_up_grace`]) applies [`BackboneLoss`].
//! - Membership is the protocol's own: it heartbeats every
//!   [`Settings::heartbeat_interval`] and forgets peers silent for
//!   [`Settings::member_timeout`]. A heartbeat carries the position the node
//!   applied, so a lost acknowledgement is made good by the next heartbeat.
//! - Nothing depends on the wall clock but the choice to acknowledge
//!   (entries signed more than [`Settings::ack_window`] ago are applied
//!   silently): timers run on a monotonic clock, replay protection comes
//!   from positions and message ids.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::control::{
    Command, ControlCodec, ControlMessage, ControlRejection, MAX_CONTROL_BYTES, MessageId, Revocation,
};
use crate::random::SecureRandom;
use crate::socket_id::{self, LiveSocketId};
use crate::time::Timestamp;

/// The time as the protocol sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Now {
    /// A monotonic clock (time since any fixed origin): every timer runs on
    /// it, so wall-clock steps cannot stall or hasten one.
    pub mono: Duration,
    /// The wall clock, written into signed messages and read only to decide
    /// whether an entry is recent enough to acknowledge.
    pub wall: Timestamp,
}

/// What a node does while it cannot show that it is caught up with the log.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum BackboneLoss {
    /// Keep serving; once the log is reachable again, apply every revocation
    /// missed meanwhile (the log keeps them). A revoked connection on this
    /// node lives until then, or until its periodic re-validation. The
    /// default.
    #[default]
    CatchUp,
    /// Keep serving for this long; if the node is still not caught up then,
    /// close every live connection (1001: clients reconnect, to this node or
    /// another, and mount again), and keep closing new ones while the loss
    /// lasts. Bounds a revoked connection's life by the grace plus this.
    CloseAfter(Duration),
}

/// The protocol's tunables; [`Settings::default`] documents each default.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// How often the node announces itself and its position (default 1 s).
    pub heartbeat_interval: Duration,
    /// How long a silent peer stays a member (default 5 s).
    pub member_timeout: Duration,
    /// How long the node may go without proof that it is caught up with the
    /// log before it counts as cut off (default 3 s). The log feed proves it
    /// about once a second while idle.
    pub caught_up_grace: Duration,
    /// How long a node behind the log's known end may go without applying
    /// anything before it follows the log again (default 1 s): a lost
    /// delivery at the log's tail is noticed even when nothing follows it.
    pub lag_grace: Duration,
    /// What to do while cut off (default [`BackboneLoss::CatchUp`]).
    pub on_loss: BackboneLoss,
    /// Revocations not yet confirmed by the log, kept and retried (default
    /// 65 536); a revocation beyond that closes only this node's
    /// connections and is refused ([`RevokeErrorKind::OutboxFull`]).
    pub outbox_capacity: usize,
    /// Appends outstanding at once (default 64).
    pub max_in_flight: usize,
    /// First pause before retrying a failed append or follow (default 50 ms);
    /// it doubles up to [`Settings::retry_max`].
    pub retry_min: Duration,
    /// Longest pause between retries (default 500 ms): after a fault heals,
    /// a node is reading the log and its outbox draining within about this
    /// much more.
    pub retry_max: Duration,
    /// Entries signed longer ago than this are applied without an
    /// acknowledgement: their issuer stopped waiting (default 60 s).
    pub ack_window: Duration,
    /// Message ids remembered to skip duplicates (default 65 536).
    pub dedupe_capacity: usize,
    /// Refused control messages audited at once before rate limiting
    /// (default 20), then [`Settings::refusals_per_second`].
    pub refusal_burst: u32,
    /// Refusals audited per second once the burst is spent (default 5); the
    /// rest are counted in the next record.
    pub refusals_per_second: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            member_timeout: Duration::from_secs(5),
            caught_up_grace: Duration::from_secs(3),
            lag_grace: Duration::from_secs(1),
            on_loss: BackboneLoss::CatchUp,
            outbox_capacity: 65_536,
            max_in_flight: 64,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(500),
            ack_window: Duration::from_secs(60),
            dedupe_capacity: 65_536,
            refusal_burst: 20,
            refusals_per_second: 5,
        }
    }
}

/// The subjects of one cluster (prefix `liveguard` by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// The subjects under `prefix` (tokens of `[A-Za-z0-9_-]`, checked by
    /// [`valid_prefix`]).
    pub fn new(prefix: &str) -> Self {
        Self { prefix: String::from(prefix) }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where revocations of `id` are logged: `<prefix>.socket.<token>`.
    pub fn socket(&self, id: &LiveSocketId) -> String {
        socket_id::subject(&self.prefix, id)
    }

    /// Every id's subject: `<prefix>.socket.*`.
    pub fn sockets(&self) -> String {
        alloc::format!("{}.socket.*", self.prefix)
    }

    /// Where key retirements are logged: `<prefix>.keys`.
    pub fn keys(&self) -> String {
        alloc::format!("{}.keys", self.prefix)
    }

    /// Where `node` heartbeats: `<prefix>.member.<node>`.
    pub fn member(&self, node: &str) -> String {
        alloc::format!("{}.member.{node}", self.prefix)
    }

    /// Every node's heartbeats: `<prefix>.member.*`.
    pub fn members(&self) -> String {
        alloc::format!("{}.member.*", self.prefix)
    }

    /// Where `from` acknowledges to `to`: `<prefix>.ack.<from>.<to>`.
    pub fn ack(&self, from: &str, to: &str) -> String {
        alloc::format!("{}.ack.{from}.{to}", self.prefix)
    }

    /// Every acknowledgement addressed to `node`: `<prefix>.ack.*.<node>`.
    pub fn acks_to(&self, node: &str) -> String {
        alloc::format!("{}.ack.*.{node}", self.prefix)
    }

    /// The subjects the durable log records.
    pub fn log(&self) -> [String; 2] {
        [self.sockets(), self.keys()]
    }

    /// The subject a revocation belongs on.
    pub fn revocation(&self, revocation: &Revocation) -> String {
        match revocation {
            Revocation::Disconnect(id) | Revocation::Reauthorize(id) => self.socket(id),
            Revocation::RetireKey(_) => self.keys(),
        }
    }
}

/// Whether `token` is one subject token of `[A-Za-z0-9_-]` (a node name).
pub fn valid_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `prefix` is one or more `.`-separated [`valid_token`]s.
pub fn valid_prefix(prefix: &str) -> bool {
    prefix.split('.').all(valid_token)
}

/// What the node applies to its own live connections.
pub trait Local {
    /// Applies one revocation; returns how many connections it acted on.
    fn apply(&mut self, revocation: &Revocation) -> u32;
    /// Re-runs the `on_mount` checks of every live connection (positions
    /// were lost); returns how many.
    fn reauthorize_all(&mut self) -> u32;
    /// Closes every live connection (1001); returns how many.
    fn close_all(&mut self) -> u32;
}

/// What the log feed reports.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LogEvent {
    /// The entry at `position`.
    Entry {
        /// Its position (JetStream: the stream sequence), from 1.
        position: u64,
        /// The subject it was recorded under.
        subject: String,
        /// Its bytes (already refused by the feed when larger than
        /// [`MAX_CONTROL_BYTES`]: such an entry arrives empty).
        payload: Vec<u8>,
    },
    /// The log's last position, as the log said recently (from a delivery's
    /// count of entries still pending, or by asking the log). A node that has
    /// applied it is caught up as of now; one that stays behind it without
    /// progress for [`Settings::lag_grace`] lost a delivery and follows the
    /// log again.
    End(u64),
    /// The feed stopped (consumer lost, server unreachable); follow again.
    Broken,
}

/// What the protocol asks its driver to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Output {
    /// Publish on the pub/sub bus (at most once).
    Publish {
        /// The subject.
        subject: String,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// Append to the durable log, deduplicated by `message`; answer with
    /// [`NodeProtocol::on_appended`].
    Append {
        /// The revocation's message id (JetStream's `Nats-Msg-Id`).
        message: MessageId,
        /// The subject.
        subject: String,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// Stop the current log feed and follow the log from `from` (the first
    /// position wanted); tag its events with `generation`.
    Follow {
        /// The feed's generation: events of older feeds are ignored.
        generation: u64,
        /// The first position wanted.
        from: u64,
    },
    /// A caller's revocation finished.
    Done {
        /// The revocation, as returned by [`NodeProtocol::revoke`].
        message: MessageId,
        /// Who applied it, or why it is not durable.
        result: Result<Report, RevokeError>,
    },
    /// Something worth an audit record.
    Event(ClusterEvent),
}

/// Who applied a revocation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Report {
    /// The revocation's message id.
    pub message: MessageId,
    /// Its position in the log: it is durable.
    pub position: u64,
    /// Each node known to have applied it, with the number of connections it
    /// acted on (`None` when only its heartbeat's position says it applied
    /// it). The issuing node is always here.
    pub applied: BTreeMap<String, Option<u32>>,
    /// Members when the revocation was issued that did not show they
    /// applied it before the deadline.
    pub silent: Vec<String>,
}

impl Report {
    /// Connections acted on, as far as the answers tell.
    pub fn connections(&self) -> u64 {
        self.applied.values().map(|&n| u64::from(n.unwrap_or(0))).sum()
    }

    /// Whether every member applied it.
    pub fn complete(&self) -> bool {
        self.silent.is_empty()
    }
}

/// Why a revocation did not finish with a [`Report`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RevokeErrorKind {
    /// The log did not confirm it before the deadline. The node's own
    /// connections are closed, and the revocation stays in the outbox,
    /// retried until the log takes it.
    NotDurable,
    /// The outbox is full: it is not kept.
    /// The node's own connections are closed; other nodes may never hear of
    /// it (their periodic re-validation still ends its connections).
    OutboxFull,
    /// It could not be signed or its id drawn.
    Sign,
}

/// A revocation that did not finish with a [`Report`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RevokeError {
    kind: RevokeErrorKind,
}

impl RevokeError {
    pub(crate) fn new(kind: RevokeErrorKind) -> Self {
        Self { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> RevokeErrorKind {
        self.kind
    }

    /// Whether the revocation is kept and still retried.
    pub fn queued(&self) -> bool {
        self.kind == RevokeErrorKind::NotDurable
    }
}

impl fmt::Display for RevokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            RevokeErrorKind::NotDurable => {
                "the revocation is not durable yet: local connections are closed and it is queued for retrying"
            }
            RevokeErrorKind::OutboxFull => {
                "the revocation is not durable and the outbox is full: only local connections were closed"
            }
            RevokeErrorKind::Sign => "the revocation could not be signed",
        })
    }
}

impl core::error::Error for RevokeError {}

/// What the protocol did or saw, for the audit trail.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClusterEvent {
    /// This node issued a revocation and closed its own connections.
    Issued {
        /// The revocation's message id.
        message: MessageId,
        /// What it revokes.
        revocation: Revocation,
        /// Local connections acted on.
        connections: u32,
    },
    /// The log confirmed a revocation of this node.
    Durable {
        /// The message id.
        message: MessageId,
        /// Its position.
        position: u64,
        /// Whether its caller had already been told it was not durable.
        late: bool,
    },
    /// A revocation's deadline passed before the log confirmed it.
    NotDurable {
        /// The message id.
        message: MessageId,
        /// Whether it is kept in the outbox.
        queued: bool,
    },
    /// A revocation from the log was applied here.
    Applied {
        /// The message id.
        message: MessageId,
        /// The node that issued it.
        origin: String,
        /// Its position.
        position: u64,
        /// What it revoked.
        revocation: Revocation,
        /// Connections acted on.
        connections: u32,
    },
    /// A control message or log entry was refused.
    Refused {
        /// Where it arrived.
        subject: String,
        /// Why.
        reason: ControlRejection,
        /// Refusals not audited since the last record (rate limit).
        suppressed: u32,
    },
    /// The log feed skipped positions.
    Gap {
        /// The position the node needed.
        expected: u64,
        /// The position that arrived.
        got: u64,
        /// `false` when the log no longer holds the missing positions: every
        /// live connection was re-validated.
        recoverable: bool,
    },
    /// No proof of being caught up within the grace period.
    Lost,
    /// Caught up again after a loss.
    Recovered,
    /// [`BackboneLoss::CloseAfter`] closed every live connection.
    ClosedAll {
        /// Connections closed.
        connections: u32,
    },
}

impl fmt::Display for ClusterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Issued { message, revocation, connections } => {
                write!(f, "revocation {message} issued: {}, {connections} local connections", Shown(revocation))
            }
            Self::Durable { message, position, late } => {
                let late = if *late { " (after its deadline)" } else { "" };
                write!(f, "revocation {message} durable at position {position}{late}")
            }
            Self::NotDurable { message, queued } => {
                let kept = if *queued { "kept in the outbox" } else { "dropped: outbox full" };
                write!(f, "revocation {message} not durable by its deadline, {kept}")
            }
            Self::Applied { message, origin, position, revocation, connections } => write!(
                f,
                "revocation {message} from {origin:?} applied at position {position}: {}, {connections} connections",
                Shown(revocation)
            ),
            Self::Refused { subject, reason, suppressed } => {
                write!(f, "control message refused on {subject:?}: {reason}")?;
                if *suppressed > 0 {
                    write!(f, " ({suppressed} more refused since the last record)")?;
                }
                Ok(())
            }
            Self::Gap { expected, got, recoverable: true } => {
                write!(f, "log feed skipped from {expected} to {got}: following again")
            }
            Self::Gap { expected, got, recoverable: false } => write!(
                f,
                "log no longer holds positions {expected} to {}: every live connection re-validated",
                got.saturating_sub(1)
            ),
            Self::Lost => f.write_str("no proof of being caught up with the revocation log"),
            Self::Recovered => f.write_str("caught up with the revocation log again"),
            Self::ClosedAll { connections } => {
                write!(f, "cut off from the revocation log too long: closed {connections} connections")
            }
        }
    }
}

/// A revocation as logs show it: ids as fingerprints, never the credential.
struct Shown<'a>(&'a Revocation);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Revocation::Disconnect(id) => write!(f, "disconnect {}", Fingerprint(id)),
            Revocation::Reauthorize(id) => write!(f, "reauthorize {}", Fingerprint(id)),
            Revocation::RetireKey(key_id) => write!(f, "retire key {key_id}"),
        }
    }
}

/// The first 8 bytes of SHA-256 of a `live_socket_id`: tells records of one
/// session apart without writing its (often secret-bearing) id.
struct Fingerprint<'a>(&'a LiveSocketId);

impl fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_str().as_bytes());
        f.write_str("id#")?;
        for byte in &digest[..8] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

struct Member {
    seen: Duration,
    applied: u64,
}

struct Append {
    subject: String,
    payload: Vec<u8>,
    in_flight: bool,
    /// When it is tried next (its key in `NodeProtocol::retries`), unless
    /// in flight.
    retry_at: Duration,
    backoff: Duration,
    /// Told its caller it is not durable (now an outbox entry).
    overdue: bool,
}

struct Waiter {
    deadline: Duration,
    position: Option<u64>,
    expected: Vec<String>,
    applied: BTreeMap<String, Option<u32>>,
}

struct RateLimit {
    tokens: u32,
    refilled: Duration,
    suppressed: u32,
}

/// One node's protocol state. See the module docs.
pub struct NodeProtocol {
    name: String,
    subjects: Subjects,
    codec: ControlCodec,
    settings: Settings,
    members: BTreeMap<String, Member>,
    /// The last log position applied (0: none yet).
    applied: u64,
    generation: u64,
    /// Whether the current feed was just (re)started: its first entry tells
    /// whether missing positions are still in the log.
    fresh_feed: bool,
    /// When the next follow is tried after a broken feed.
    follow_retry: Option<Duration>,
    /// The pause before the last follow retry: it doubles while feeds keep
    /// breaking and resets once one delivers, so a log that refuses consumers
    /// (a stream without a leader) is not asked every `retry_min`.
    follow_backoff: Duration,
    caught_up: Duration,
    /// Whether the feed ever proved the node caught up.
    proved: bool,
    /// The highest log end the feed reported.
    known_end: u64,
    /// When `applied` last advanced (or the feed was started).
    progressed: Duration,
    /// When the lack of a caught-up proof is next acted on.
    proof_deadline: Duration,
    lost: bool,
    closed_all: bool,
    seen: BTreeSet<MessageId>,
    seen_order: VecDeque<MessageId>,
    appends: BTreeMap<MessageId, Append>,
    /// Appends waiting to be tried, by time: the timers stay O(log n) in a
    /// storm of revocations.
    retries: BTreeSet<(Duration, MessageId)>,
    in_flight: usize,
    waiters: BTreeMap<MessageId, Waiter>,
    deadlines: BTreeSet<(Duration, MessageId)>,
    next_heartbeat: Duration,
    refusals: RateLimit,
    out: VecDeque<Output>,
}

impl fmt::Debug for NodeProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeProtocol")
            .field("name", &self.name)
            .field("applied", &self.applied)
            .field("lost", &self.lost)
            .field("outbox", &self.appends.len())
            .finish_non_exhaustive()
    }
}

impl NodeProtocol {
    /// A node called `name` (a [`valid_token`]) on `subjects`, which starts
    /// by following the log from `from` (the position after the log's last
    /// entry, for a node that starts with no connections).
    pub fn new(name: &str, subjects: Subjects, codec: ControlCodec, settings: Settings, from: u64, now: Now) -> Self {
        let burst = settings.refusal_burst;
        let settings_grace = settings.caught_up_grace;
        let mut protocol = Self {
            name: String::from(name),
            subjects,
            codec,
            settings,
            members: BTreeMap::new(),
            applied: from.saturating_sub(1),
            generation: 0,
            fresh_feed: true,
            follow_retry: None,
            follow_backoff: Duration::ZERO,
            caught_up: now.mono,
            proved: false,
            known_end: from.saturating_sub(1),
            progressed: now.mono,
            proof_deadline: now.mono.saturating_add(settings_grace),
            lost: false,
            closed_all: false,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            appends: BTreeMap::new(),
            retries: BTreeSet::new(),
            in_flight: 0,
            waiters: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            next_heartbeat: now.mono,
            refusals: RateLimit { tokens: burst, refilled: now.mono, suppressed: 0 },
            out: VecDeque::new(),
        };
        protocol.follow();
        protocol
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's subjects.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The last log position this node applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Whether the log feed has proved, at least once, that the node is
    /// caught up.
    pub fn has_proof(&self) -> bool {
        self.proved
    }

    /// Whether the node currently cannot show it is caught up.
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Revocations not yet confirmed by the log (the outbox included).
    pub fn outbox_len(&self) -> usize {
        self.appends.len()
    }

    /// The members heard from within the member timeout, this node
    /// included, sorted.
    pub fn members(&self, now: Now) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now.mono.saturating_sub(m.seen) <= self.settings.member_timeout)
            .map(|(name, _)| name.clone())
            .collect();
        if !names.contains(&self.name) {
            names.push(self.name.clone());
            names.sort();
        }
        names
    }

    /// The next thing for the driver to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`NodeProtocol::on_tick`] must run next at the latest.
    pub fn poll_timeout(&self) -> Duration {
        let mut next = self.next_heartbeat.min(self.proof_deadline);
        if self.applied < self.known_end && self.follow_retry.is_none() {
            next = next.min(self.progressed.saturating_add(self.settings.lag_grace));
        }
        if let (true, BackboneLoss::CloseAfter(grace)) = (self.lost && !self.closed_all, self.settings.on_loss) {
            next = next.min(self.caught_up.saturating_add(grace));
        }
        if let Some(at) = self.follow_retry {
            next = next.min(at);
        }
        if let (Some(&(at, _)), true) = (self.retries.first(), self.in_flight < self.settings.max_in_flight) {
            next = next.min(at);
        }
        if let Some(&(at, _)) = self.deadlines.first() {
            next = next.min(at);
        }
        next
    }

    /// Issues a revocation: applies it to this node's connections at once,
    /// then appends it to the log; [`Output::Done`] answers within
    /// `timeout`. Returns the message id that `Done` carries.
    pub fn revoke(
        &mut self,
        revocation: Revocation,
        local: &mut impl Local,
        timeout: Duration,
        now: Now,
        rng: &mut impl SecureRandom,
    ) -> Result<MessageId, RevokeError> {
        let connections = local.apply(&revocation);
        let message = MessageId::random(rng).map_err(|_| RevokeError::new(RevokeErrorKind::Sign))?;
        self.event(ClusterEvent::Issued { message, revocation: revocation.clone(), connections });
        let subject = self.subjects.revocation(&revocation);
        let payload = self.sign(message, Command::Revoke(revocation), now)?;
        // Its own copy from the log must not apply it again.
        self.remember(message);
        if self.appends.len() >= self.settings.outbox_capacity {
            self.event(ClusterEvent::NotDurable { message, queued: false });
            return Err(RevokeError::new(RevokeErrorKind::OutboxFull));
        }
        let backoff = self.settings.retry_min;
        self.appends.insert(
            message,
            Append { subject, payload, in_flight: false, retry_at: now.mono, backoff, overdue: false },
        );
        self.retries.insert((now.mono, message));
        let expected = self.members(now).into_iter().filter(|m| *m != self.name).collect();
        let mut applied = BTreeMap::new();
        applied.insert(self.name.clone(), Some(connections));
        let deadline = now.mono.saturating_add(timeout);
        self.waiters.insert(message, Waiter { deadline, position: None, expected, applied });
        self.deadlines.insert((deadline, message));
        self.pump_appends(now);
        Ok(message)
    }

    /// The log's answer to [`Output::Append`]: its position, or a failure.
    pub fn on_appended(&mut self, message: MessageId, result: Result<u64, ()>, now: Now) {
        let Some(append) = self.appends.get_mut(&message) else { return };
        if append.in_flight {
            append.in_flight = false;
            self.in_flight -= 1;
        }
        match result {
            Ok(position) => self.durable(message, position, now),
            Err(()) => {
                append.retry_at = now.mono.saturating_add(append.backoff);
                append.backoff = append.backoff.saturating_mul(2).min(self.settings.retry_max);
                self.retries.insert((append.retry_at, message));
            }
        }
        self.pump_appends(now);
    }

    /// What the log feed of `generation` reports.
    pub fn on_log(&mut self, generation: u64, event: LogEvent, local: &mut impl Local, now: Now) {
        if generation != self.generation {
            return;
        }
        match event {
            LogEvent::End(end) => {
                self.learned_end(end, now);
                if self.applied >= self.known_end {
                    self.proved_caught_up(now);
                }
            }
            LogEvent::Broken => self.retry_follow(now),
            LogEvent::Entry { position, subject, payload } => self.entry(position, &subject, &payload, local, now),
        }
    }

    /// A control message from the pub/sub bus (heartbeat or
    /// acknowledgement).
    pub fn on_control(&mut self, subject: &str, payload: &[u8], now: Now) {
        let (message, _) = match self.codec.decode(payload, now.wall) {
            Ok(decoded) => decoded,
            Err(reason) => return self.refuse(subject, reason, now),
        };
        let ControlMessage { node, command, .. } = message;
        match command {
            Command::Heartbeat { applied } if subject == self.subjects.member(&node) => {
                if node != self.name {
                    self.saw(&node, applied, now);
                }
            }
            Command::Ack { to, position, connections } if subject == self.subjects.ack(&node, &self.name) => {
                self.saw(&node, 0, now);
                if let Some(waiter) = self.waiters.get_mut(&to) {
                    waiter.applied.insert(node, Some(connections));
                    // Applied by a peer means durable.
                    self.durable(to, position, now);
                }
            }
            _ => self.refuse(subject, ControlRejection::WrongSubject, now),
        }
    }

    /// Runs what is due at `now`: heartbeats, retries, deadlines, the loss
    /// policy.
    pub fn on_tick(&mut self, local: &mut impl Local, now: Now) {
        if now.mono >= self.next_heartbeat {
            self.next_heartbeat = now.mono.saturating_add(self.settings.heartbeat_interval);
            let id = MessageId(heartbeat_id(self.applied, now));
            if let Ok(payload) = self.sign(id, Command::Heartbeat { applied: self.applied }, now) {
                self.out.push_back(Output::Publish { subject: self.subjects.member(&self.name), payload });
            }
        }
        if let Some(at) = self.follow_retry
            && now.mono >= at
        {
            self.follow_at(now);
        }
        let stalled = now.mono.saturating_sub(self.progressed) >= self.settings.lag_grace;
        if self.applied < self.known_end && stalled && self.follow_retry.is_none() {
            // Behind the log's end with nothing arriving: a delivery was lost
            // where no later entry would reveal the gap.
            self.event(ClusterEvent::Gap { expected: self.applied + 1, got: self.known_end, recoverable: true });
            self.follow_at(now);
        }
        if now.mono >= self.proof_deadline {
            self.proof_deadline = now.mono.saturating_add(self.settings.caught_up_grace);
            if !self.lost {
                self.lost = true;
                self.event(ClusterEvent::Lost);
            }
            // A stuck feed proves nothing either way: start another, once
            // per grace period while the loss lasts.
            if self.follow_retry.is_none() {
                self.follow_at(now);
            }
        }
        if let (true, false, BackboneLoss::CloseAfter(grace)) = (self.lost, self.closed_all, self.settings.on_loss)
            && now.mono.saturating_sub(self.caught_up) >= grace
        {
            self.closed_all = true;
            let connections = local.close_all();
            self.event(ClusterEvent::ClosedAll { connections });
        }
        self.pump_appends(now);
        self.finish_overdue(now);
    }

    // --- the log ----------------------------------------------------------

    fn follow_at(&mut self, now: Now) {
        self.progressed = now.mono;
        self.follow();
    }

    fn follow(&mut self) {
        self.generation += 1;
        self.fresh_feed = true;
        self.follow_retry = None;
        self.out.push_back(Output::Follow { generation: self.generation, from: self.applied + 1 });
    }

    fn retry_follow(&mut self, now: Now) {
        let backoff = if self.follow_backoff.is_zero() {
            self.settings.retry_min
        } else {
            self.follow_backoff.saturating_mul(2).clamp(self.settings.retry_min, self.settings.retry_max)
        };
        self.follow_backoff = backoff;
        // Events of the broken feed are ignored from now on.
        self.generation += 1;
        self.follow_retry = Some(now.mono.saturating_add(backoff));
    }

    fn proved_caught_up(&mut self, now: Now) {
        self.caught_up = now.mono;
        self.proved = true;
        self.proof_deadline = now.mono.saturating_add(self.settings.caught_up_grace);
        self.follow_retry = None;
        self.follow_backoff = Duration::ZERO;
        // Whatever gap comes next, this feed has delivered up to the end.
        self.fresh_feed = false;
        if self.lost {
            self.lost = false;
            self.closed_all = false;
            self.event(ClusterEvent::Recovered);
        }
    }

    /// Whether [`BackboneLoss::CloseAfter`] has closed every connection and
    /// the loss lasts: new connections must be refused, since they could not
    /// hear their revocation.
    pub fn refuses_connections(&self) -> bool {
        self.lost && self.closed_all
    }

    fn entry(&mut self, position: u64, subject: &str, payload: &[u8], local: &mut impl Local, now: Now) {
        let fresh = core::mem::replace(&mut self.fresh_feed, false);
        if position <= self.applied {
            return;
        }
        let expected = self.applied + 1;
        if position > expected {
            // A feed that starts past the position asked for means the log
            // dropped those positions; a running feed that skips one lost a
            // delivery, which following again recovers.
            self.event(ClusterEvent::Gap { expected, got: position, recoverable: !fresh });
            if !fresh {
                self.follow_at(now);
                return;
            }
            local.reauthorize_all();
        }
        self.applied = position;
        self.progressed = now.mono;
        self.follow_backoff = Duration::ZERO;
        if self.applied >= self.known_end {
            self.known_end = self.applied;
            self.proved_caught_up(now);
        }
        let decoded = self.codec.decode(payload, now.wall);
        let (message, signed_at) = match decoded {
            Ok(decoded) => decoded,
            Err(reason) => return self.refuse(subject, reason, now),
        };
        let ControlMessage { id, node, command } = message;
        let Command::Revoke(revocation) = command else {
            return self.refuse(subject, ControlRejection::WrongSubject, now);
        };
        if subject != self.subjects.revocation(&revocation) {
            return self.refuse(subject, ControlRejection::WrongSubject, now);
        }
        if self.waiters.contains_key(&id) || self.appends.contains_key(&id) {
            self.durable(id, position, now);
        }
        if !self.remember(id) {
            return;
        }
        let connections = local.apply(&revocation);
        self.event(ClusterEvent::Applied { message: id, origin: node.clone(), position, revocation, connections });
        let recent = now.wall.as_unix_millis().saturating_sub(signed_at.as_unix_millis())
            <= u64::try_from(self.settings.ack_window.as_millis()).unwrap_or(u64::MAX);
        if node != self.name && valid_token(&node) && recent {
            let ack = Command::Ack { to: id, position, connections };
            if let Ok(payload) = self.sign(MessageId(heartbeat_id(position, now)), ack, now) {
                self.out.push_back(Output::Publish { subject: self.subjects.ack(&self.name, &node), payload });
            }
        }
    }

    /// Remembers `id`; `false` when it was already applied.
    fn remember(&mut self, id: MessageId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.seen_order.push_back(id);
        while self.seen_order.len() > self.settings.dedupe_capacity {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    // --- appends and reports ----------------------------------------------

    fn pump_appends(&mut self, now: Now) {
        while self.in_flight < self.settings.max_in_flight {
            let Some(&(at, message)) = self.retries.first() else { break };
            if at > now.mono {
                break;
            }
            self.retries.remove(&(at, message));
            let Some(append) = self.appends.get_mut(&message) else { continue };
            append.in_flight = true;
            self.in_flight += 1;
            self.out.push_back(Output::Append {
                message,
                subject: append.subject.clone(),
                payload: append.payload.clone(),
            });
        }
    }

    /// The log reaches at least `end`: a node that stays short of it for
    /// [`Settings::lag_grace`] follows again. Besides its own feed, a node
    /// learns the end from its own appends and from its peers' MAC'd
    /// heartbeats and acknowledgements, so a feed that went silent without
    /// breaking (its consumer on a server that died) is noticed within about
    /// a heartbeat and the lag grace, not only when the feed times out.
    fn learned_end(&mut self, end: u64, now: Now) {
        if end > self.known_end {
            if self.applied >= self.known_end {
                // Caught up until now: the grace starts when the end moved.
                self.progressed = now.mono;
            }
            self.known_end = end;
        }
    }

    fn durable(&mut self, message: MessageId, position: u64, now: Now) {
        self.learned_end(position, now);
        if let Some(append) = self.appends.remove(&message) {
            if append.in_flight {
                self.in_flight -= 1;
            } else {
                self.retries.remove(&(append.retry_at, message));
            }
            self.event(ClusterEvent::Durable { message, position, late: append.overdue });
        }
        if let Some(waiter) = self.waiters.get_mut(&message) {
            waiter.position.get_or_insert(position);
        }
        self.finish_waiter(message, now);
    }

    fn saw(&mut self, node: &str, applied: u64, now: Now) {
        self.learned_end(applied, now);
        let member = self.members.entry(String::from(node)).or_insert(Member { seen: now.mono, applied });
        member.seen = now.mono;
        let raised = applied > member.applied;
        member.applied = member.applied.max(applied);
        if !raised {
            return;
        }
        let mut confirmed = Vec::new();
        for (message, waiter) in &mut self.waiters {
            if waiter.position.is_some_and(|p| p <= applied) && waiter.expected.iter().any(|m| m == node) {
                waiter.applied.entry(String::from(node)).or_insert(None);
                confirmed.push(*message);
            }
        }
        for message in confirmed {
            self.finish_waiter(message, now);
        }
    }

    /// Answers the waiter of `message` if it is complete.
    fn finish_waiter(&mut self, message: MessageId, now: Now) {
        let complete = self
            .waiters
            .get(&message)
            .is_some_and(|w| w.position.is_some() && w.expected.iter().all(|m| w.applied.contains_key(m)));
        if complete {
            self.answer(message, now);
        }
    }

    /// Answers the waiters past their deadline.
    fn finish_overdue(&mut self, now: Now) {
        while let Some(&(at, message)) = self.deadlines.first() {
            if at > now.mono {
                break;
            }
            self.answer(message, now);
        }
    }

    fn answer(&mut self, message: MessageId, now: Now) {
        let _ = now;
        let Some(waiter) = self.waiters.remove(&message) else { return };
        self.deadlines.remove(&(waiter.deadline, message));
        let result = match waiter.position {
            Some(position) => {
                let silent = waiter.expected.into_iter().filter(|m| !waiter.applied.contains_key(m)).collect();
                Ok(Report { message, position, applied: waiter.applied, silent })
            }
            None => {
                if let Some(append) = self.appends.get_mut(&message) {
                    append.overdue = true;
                }
                self.event(ClusterEvent::NotDurable { message, queued: true });
                Err(RevokeError::new(RevokeErrorKind::NotDurable))
            }
        };
        self.out.push_back(Output::Done { message, result });
    }

    // --- helpers ----------------------------------------------------------

    fn sign(&self, id: MessageId, command: Command, now: Now) -> Result<Vec<u8>, RevokeError> {
        let message = ControlMessage { id, node: self.name.clone(), command };
        self.codec
            .encode(&message, now.wall)
            .map(String::into_bytes)
            .map_err(|_| RevokeError::new(RevokeErrorKind::Sign))
    }

    fn refuse(&mut self, subject: &str, reason: ControlRejection, now: Now) {
        let limit = &mut self.refusals;
        let elapsed = now.mono.saturating_sub(limit.refilled);
        let refill = elapsed.as_millis().saturating_mul(u128::from(self.settings.refusals_per_second)) / 1000;
        if refill > 0 {
            let refill = u32::try_from(refill).unwrap_or(u32::MAX);
            limit.tokens = limit.tokens.saturating_add(refill).min(self.settings.refusal_burst);
            limit.refilled = now.mono;
        }
        if limit.tokens == 0 {
            limit.suppressed = limit.suppressed.saturating_add(1);
            return;
        }
        limit.tokens -= 1;
        let suppressed = core::mem::take(&mut limit.suppressed);
        let subject =
            if subject.len() > MAX_CONTROL_BYTES { String::from("<oversized subject>") } else { String::from(subject) };
        self.event(ClusterEvent::Refused { subject, reason, suppressed });
    }

    fn event(&mut self, event: ClusterEvent) {
        self.out.push_back(Output::Event(event));
    }
}

/// Heartbeats and acknowledgements are never deduplicated by id (their
/// effects only ever raise what a node believes), so their ids need not be
/// random: a counter-like value keeps them off the random source.
fn heartbeat_id(position: u64, now: Now) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&position.to_be_bytes());
    id[8..].copy_from_slice(&now.wall.as_unix_millis().to_be_bytes());
    id
}
