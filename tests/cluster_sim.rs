//! A deterministic simulation of the node protocol over a fault-injecting
//! backbone: log deliveries dropped, duplicated, reordered and delayed;
//! appends that fail or land with their answer lost; control messages
//! dropped, duplicated and delayed; nodes partitioned, crashed and
//! restarted; log positions purged; wall clocks skewed and stepped.
//!
//! Invariants, checked for every seed:
//! - every connection of a revoked session is closed on every node, within
//!   the bound after the faults heal (and within 1 s when no fault is
//!   active), unless the revocation died with its issuer before the log took
//!   it (counted, and bounded in production by periodic re-validation);
//! - no connection of a session that was not revoked is ever closed;
//! - each node instance applies each revocation at most once, in log order;
//! - every caller gets an answer by its deadline, and a revocation reported
//!   durable is in the log at the reported position.
//!
//! `cargo test --test cluster_sim` runs 1,000 seeds. A longer run:
//! `LIVEGUARD_SIM_SEEDS=100000 cargo test --release --test cluster_sim -- --nocapture`.
//! One seed: `LIVEGUARD_SIM_SEED=<seed> cargo test --test cluster_sim -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use liveguard::Timestamp;
use liveguard::cluster::control::{Command, ControlCodec, MessageId, Revocation};
use liveguard::cluster::protocol::{
    ClusterEvent, Local, LogEvent, NodeProtocol, Now, Output, Settings, Subjects, valid_token,
};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::random::{RandomError, SecureRandom};
use liveguard::socket_id::LiveSocketId;

// --- deterministic randomness ---------------------------------------------

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }
}

impl SecureRandom for Rng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

// --- the world ------------------------------------------------------------

const MS: u64 = 1;
const SECOND: u64 = 1000 * MS;
/// Faults are injected until then; partitions end and crashed nodes are back
/// by `HEAL`.
const FAULTS_END: u64 = 20 * SECOND;
const HEAL: u64 = 22 * SECOND;
/// Revocations issued after this see no fault at all.
const CLEAN_FROM: u64 = 25 * SECOND;
const END: u64 = 40 * SECOND;
/// How long after the heal a revocation may take to close everything.
const BOUND_AFTER_HEAL: u64 = 3 * SECOND;
/// How long a revocation may take with no fault at all.
const BOUND_CLEAN: u64 = SECOND;
const REVOKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
struct Faults {
    log_drop: u64,
    log_dup: u64,
    log_jitter: u64,
    control_drop: u64,
    control_dup: u64,
    append_fail: u64,
    append_ack_lost: u64,
    partitions: u64,
    crashes: u64,
    purge: bool,
    clock_steps: u64,
}

impl Faults {
    fn draw(rng: &mut Rng) -> Self {
        Self {
            log_drop: rng.below(60),
            log_dup: rng.below(60),
            log_jitter: rng.below(40),
            control_drop: rng.below(300),
            control_dup: rng.below(60),
            append_fail: rng.below(300),
            append_ack_lost: rng.below(300),
            partitions: rng.below(4),
            crashes: rng.below(3),
            purge: rng.chance(150),
            clock_steps: rng.below(4),
        }
    }
}

#[derive(Debug)]
enum Event {
    Tick(usize),
    /// Delivers the next step of a node's log feed.
    FeedStep {
        node: usize,
        epoch: u32,
        generation: u64,
    },
    LogDelivery {
        node: usize,
        epoch: u32,
        generation: u64,
        event: LogEvent,
    },
    Control {
        node: usize,
        epoch: u32,
        subject: String,
        payload: Vec<u8>,
    },
    Appended {
        node: usize,
        epoch: u32,
        message: MessageId,
        result: Result<u64, ()>,
    },
    FollowReady {
        node: usize,
        epoch: u32,
        generation: u64,
        from: u64,
    },
    Register {
        node: usize,
        session: usize,
    },
    Revoke {
        node: usize,
        session: usize,
    },
    Reauthorize {
        node: usize,
        session: usize,
    },
    Crash(usize),
    Restart(usize),
    Partition(usize, bool),
    StepClock(usize, i64),
    Purge,
}

struct Conn {
    session: usize,
    node: usize,
    registered: u64,
    closed: Option<u64>,
    crashed: bool,
}

#[derive(Default)]
struct SimLocal {
    now: u64,
    /// Connections of this node instance, by index into `World::conns`.
    mine: Vec<usize>,
}

struct Shared<'a> {
    local: &'a mut SimLocal,
    conns: &'a mut Vec<Conn>,
    revoked: &'a BTreeSet<usize>,
    sessions: &'a [LiveSocketId],
}

impl Local for Shared<'_> {
    fn apply(&mut self, revocation: &Revocation) -> u32 {
        let now = self.local.now;
        let mut count = 0;
        for &index in &self.local.mine {
            let conn = &mut self.conns[index];
            if conn.closed.is_some() || conn.crashed {
                continue;
            }
            let id = &self.sessions[conn.session];
            match revocation {
                Revocation::Disconnect(target) if target == id => {
                    conn.closed = Some(now);
                    count += 1;
                }
                // Re-running the hooks closes only what the store revoked.
                Revocation::Reauthorize(target) if target == id => {
                    count += 1;
                    if self.revoked.contains(&conn.session) {
                        conn.closed = Some(now);
                    }
                }
                _ => {}
            }
        }
        count
    }

    fn reauthorize_all(&mut self) -> u32 {
        let now = self.local.now;
        let mut count = 0;
        for &index in &self.local.mine {
            let conn = &mut self.conns[index];
            if conn.closed.is_none() && !conn.crashed {
                count += 1;
                if self.revoked.contains(&conn.session) {
                    conn.closed = Some(now);
                }
            }
        }
        count
    }

    fn close_all(&mut self) -> u32 {
        panic!("the simulation runs BackboneLoss::CatchUp, which never closes everything");
    }
}

struct SimNode {
    name: String,
    protocol: NodeProtocol,
    local: SimLocal,
    up: bool,
    partitioned: bool,
    epoch: u32,
    feed: Option<(u64, u64)>,
    wall_offset: i64,
    /// Applied (position, message) per epoch, for the order check.
    applied: Vec<(u32, u64, MessageId)>,
    next_tick: Option<u64>,
}

struct Issued {
    session: usize,
    node: usize,
    epoch: u32,
    at: u64,
    message: Option<MessageId>,
    answered: Option<(u64, Result<u64, ()>)>,
}

struct World {
    seed: u64,
    rng: Rng,
    faults: Faults,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<SimNode>,
    /// The log: (subject, payload, message id); position = index + 1.
    log: Vec<(String, Vec<u8>, Option<MessageId>)>,
    purged_below: u64,
    deduped: BTreeMap<MessageId, u64>,
    conns: Vec<Conn>,
    sessions: Vec<LiveSocketId>,
    revoked: BTreeSet<usize>,
    issued: Vec<Issued>,
    codec: ControlCodec,
    subjects: Subjects,
    trace: Vec<String>,
}

fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new(vec![7; 64]).expect("64 bytes"))
}

impl World {
    fn new(seed: u64, codec: &ControlCodec) -> Self {
        let mut rng = Rng(seed);
        let faults = Faults::draw(&mut rng);
        let subjects = Subjects::new("liveguard");
        let count = rng.between(2, 5) as usize;
        let mut world = Self {
            seed,
            rng,
            faults,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::new(),
            log: Vec::new(),
            purged_below: 1,
            deduped: BTreeMap::new(),
            conns: Vec::new(),
            sessions: (0..24).map(|i| LiveSocketId::new(format!("users_sessions:s{i}.*>")).expect("id")).collect(),
            revoked: BTreeSet::new(),
            issued: Vec::new(),
            codec: codec.clone(),
            subjects,
            trace: Vec::new(),
        };
        for index in 0..count {
            let name = format!("n{index}");
            assert!(valid_token(&name));
            let wall_offset = world.rng.below(7_200_000) as i64 - 3_600_000;
            let now = Now { mono: Duration::ZERO, wall: Timestamp::from_unix_millis(1_800_000_000_000) };
            let protocol = world.new_protocol(&name, 1, now);
            world.nodes.push(SimNode {
                name,
                protocol,
                local: SimLocal::default(),
                up: true,
                partitioned: false,
                epoch: 0,
                feed: None,
                wall_offset,
                applied: Vec::new(),
                next_tick: None,
            });
        }
        world.plan();
        world
    }

    fn new_protocol(&self, name: &str, from: u64, now: Now) -> NodeProtocol {
        let settings = Settings::default();
        NodeProtocol::new(name, self.subjects.clone(), self.codec.clone(), settings, from, now)
    }

    fn at(&mut self, time: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((time, self.seq), event);
    }

    fn plan(&mut self) {
        let nodes = self.nodes.len();
        for node in 0..nodes {
            self.at(0, Event::Tick(node));
        }
        // Connections and revocations during the faulty period and the
        // clean tail.
        for _ in 0..120 {
            let at = self.rng.below(CLEAN_FROM + 5 * SECOND);
            let (node, session) = (self.rng.below(nodes as u64) as usize, self.rng.below(24) as usize);
            self.at(at, Event::Register { node, session });
        }
        for _ in 0..10 {
            let at = self.rng.between(SECOND, FAULTS_END);
            let (node, session) = (self.rng.below(nodes as u64) as usize, self.rng.below(16) as usize);
            self.at(at, Event::Revoke { node, session });
        }
        for _ in 0..4 {
            let at = self.rng.between(CLEAN_FROM, CLEAN_FROM + 5 * SECOND);
            let (node, session) = (self.rng.below(nodes as u64) as usize, 16 + self.rng.below(8) as usize);
            self.at(at, Event::Revoke { node, session });
        }
        for _ in 0..4 {
            let at = self.rng.between(SECOND, CLEAN_FROM + 5 * SECOND);
            let (node, session) = (self.rng.below(nodes as u64) as usize, self.rng.below(24) as usize);
            self.at(at, Event::Reauthorize { node, session });
        }
        for _ in 0..self.faults.partitions {
            let node = self.rng.below(nodes as u64) as usize;
            let start = self.rng.below(FAULTS_END - SECOND);
            let end = self.rng.between(start + 100, HEAL);
            self.at(start, Event::Partition(node, true));
            self.at(end, Event::Partition(node, false));
        }
        for _ in 0..self.faults.crashes {
            let node = self.rng.below(nodes as u64) as usize;
            let start = self.rng.below(FAULTS_END - SECOND);
            let end = self.rng.between(start + 100, HEAL);
            self.at(start, Event::Crash(node));
            self.at(end, Event::Restart(node));
        }
        for _ in 0..self.faults.clock_steps {
            let node = self.rng.below(nodes as u64) as usize;
            let at = self.rng.below(END);
            let step = self.rng.below(7_200_000) as i64 - 3_600_000;
            self.at(at, Event::StepClock(node, step));
        }
        if self.faults.purge {
            let at = self.rng.between(2 * SECOND, FAULTS_END);
            self.at(at, Event::Purge);
        }
    }

    fn now_of(&self, node: usize) -> Now {
        let wall = (1_800_000_000_000i64 + self.now as i64 + self.nodes[node].wall_offset).max(0) as u64;
        Now { mono: Duration::from_millis(self.now), wall: Timestamp::from_unix_millis(wall) }
    }

    fn faulty(&self) -> bool {
        self.now < FAULTS_END
    }

    fn delay(&mut self, max: u64) -> u64 {
        self.now + self.rng.between(1, max.max(1))
    }

    fn run(&mut self) {
        while let Some((&(time, seq), _)) = self.queue.first_key_value() {
            if time > END {
                break;
            }
            let event = self.queue.remove(&(time, seq)).expect("first key");
            self.now = time;
            self.handle(event);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(node) => {
                if self.nodes[node].next_tick.is_some_and(|t| t > self.now) {
                    return;
                }
                self.nodes[node].next_tick = None;
                if self.nodes[node].up {
                    let now = self.now_of(node);
                    self.with_local(node, |protocol, local| protocol.on_tick(local, now));
                }
            }
            Event::FeedStep { node, epoch, generation } => self.feed_step(node, epoch, generation),
            Event::LogDelivery { node, epoch, generation, event } => {
                if self.alive(node, epoch) {
                    let now = self.now_of(node);
                    self.with_local(node, |protocol, local| protocol.on_log(generation, event, local, now));
                }
            }
            Event::Control { node, epoch, subject, payload } => {
                if self.alive(node, epoch) && !self.nodes[node].partitioned {
                    let now = self.now_of(node);
                    self.nodes[node].protocol.on_control(&subject, &payload, now);
                }
            }
            Event::Appended { node, epoch, message, result } => {
                if self.alive(node, epoch) {
                    let now = self.now_of(node);
                    self.nodes[node].protocol.on_appended(message, result, now);
                }
            }
            Event::FollowReady { node, epoch, generation, from } => {
                if self.alive(node, epoch) {
                    self.nodes[node].feed = Some((generation, from));
                    self.at(self.now, Event::FeedStep { node, epoch, generation });
                }
            }
            Event::Register { node, session } => {
                // The store refuses a revoked session at mount.
                if self.nodes[node].up && !self.revoked.contains(&session) {
                    self.conns.push(Conn { session, node, registered: self.now, closed: None, crashed: false });
                    let index = self.conns.len() - 1;
                    self.nodes[node].local.mine.push(index);
                }
            }
            Event::Revoke { node, session } => {
                if !self.nodes[node].up || self.revoked.contains(&session) {
                    return;
                }
                // The application deletes the server-side session first.
                self.revoked.insert(session);
                let id = self.sessions[session].clone();
                let now = self.now_of(node);
                let mut rng = self.rng.clone();
                let epoch = self.nodes[node].epoch;
                let message = self.with_local(node, |protocol, local| {
                    protocol.revoke(Revocation::Disconnect(id), local, REVOKE_TIMEOUT, now, &mut rng)
                });
                self.rng = rng;
                let message = message.ok();
                self.issued.push(Issued { session, node, epoch, at: self.now, message, answered: None });
            }
            Event::Reauthorize { node, session } => {
                if !self.nodes[node].up {
                    return;
                }
                let id = self.sessions[session].clone();
                let now = self.now_of(node);
                let mut rng = self.rng.clone();
                let _ = self.with_local(node, |protocol, local| {
                    protocol.revoke(Revocation::Reauthorize(id), local, REVOKE_TIMEOUT, now, &mut rng)
                });
                self.rng = rng;
            }
            Event::Crash(node) => {
                if !self.nodes[node].up {
                    return;
                }
                let n = &mut self.nodes[node];
                n.up = false;
                n.feed = None;
                for &index in &n.local.mine {
                    self.conns[index].crashed = true;
                }
                n.local.mine.clear();
                self.trace.push(format!("{} crash {}", self.now, n.name));
            }
            Event::Restart(node) => {
                if self.nodes[node].up {
                    return;
                }
                // A node starts with no connections, from the log's end.
                let from = self.log.len() as u64 + 1;
                let now = self.now_of(node);
                let name = self.nodes[node].name.clone();
                let protocol = self.new_protocol(&name, from, now);
                let n = &mut self.nodes[node];
                n.protocol = protocol;
                n.up = true;
                n.epoch += 1;
                n.next_tick = None;
                self.trace.push(format!("{} restart {name} from {from}", self.now));
                self.at(self.now, Event::Tick(node));
                self.drain(node);
            }
            Event::Partition(node, cut) => {
                self.nodes[node].partitioned = cut;
                self.trace.push(format!("{} partition {} {cut}", self.now, self.nodes[node].name));
                if cut {
                    // The feed stalls; the real one reports itself broken
                    // once its pull is overdue.
                    if let Some((generation, _)) = self.nodes[node].feed.take() {
                        let epoch = self.nodes[node].epoch;
                        let at = self.now + 2500 * MS;
                        self.at(at, Event::LogDelivery { node, epoch, generation, event: LogEvent::Broken });
                    }
                }
            }
            Event::StepClock(node, step) => self.nodes[node].wall_offset += step,
            Event::Purge => {
                // Retention drops the older half of the log.
                self.purged_below = (self.log.len() as u64 / 2).max(1);
                self.trace.push(format!("{} purge below {}", self.now, self.purged_below));
            }
        }
        for node in 0..self.nodes.len() {
            self.drain(node);
        }
    }

    fn alive(&self, node: usize, epoch: u32) -> bool {
        self.nodes[node].up && self.nodes[node].epoch == epoch
    }

    fn with_local<T>(&mut self, node: usize, f: impl FnOnce(&mut NodeProtocol, &mut Shared<'_>) -> T) -> T {
        let now = self.now;
        let n = &mut self.nodes[node];
        n.local.now = now;
        let mut shared =
            Shared { local: &mut n.local, conns: &mut self.conns, revoked: &self.revoked, sessions: &self.sessions };
        f(&mut n.protocol, &mut shared)
    }

    fn feed_step(&mut self, node: usize, epoch: u32, generation: u64) {
        if !self.alive(node, epoch) || self.nodes[node].partitioned {
            return;
        }
        let Some((current, cursor)) = self.nodes[node].feed else { return };
        if current != generation {
            return;
        }
        let cursor = cursor.max(self.purged_below);
        let jitter = if self.faulty() { self.faults.log_jitter } else { 0 };
        if cursor as usize <= self.log.len() {
            let (subject, payload, _) = self.log[cursor as usize - 1].clone();
            self.nodes[node].feed = Some((generation, cursor + 1));
            let dropped = self.faulty() && self.rng.chance(self.faults.log_drop);
            if !dropped {
                let copies = if self.faulty() && self.rng.chance(self.faults.log_dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let at = self.delay(1 + jitter);
                    let event =
                        LogEvent::Entry { position: cursor, subject: subject.clone(), payload: payload.clone() };
                    self.at(at, Event::LogDelivery { node, epoch, generation, event });
                }
            }
            let at = self.now + 1;
            self.at(at, Event::FeedStep { node, epoch, generation });
        } else {
            // Delivered everything: report the end now and then, as the
            // real feed does after an expired pull.
            let at = self.delay(1 + jitter);
            let event = LogEvent::End(self.log.len() as u64);
            self.at(at, Event::LogDelivery { node, epoch, generation, event });
            let at = self.now + 200 * MS;
            self.at(at, Event::FeedStep { node, epoch, generation });
        }
    }

    fn drain(&mut self, node: usize) {
        if !self.nodes[node].up {
            return;
        }
        let epoch = self.nodes[node].epoch;
        while let Some(output) = self.nodes[node].protocol.poll_output() {
            match output {
                Output::Publish { subject, payload } => self.publish(node, subject, payload),
                Output::Append { message, subject, payload } => self.append(node, epoch, message, subject, payload),
                Output::Follow { generation, from } => {
                    self.nodes[node].feed = None;
                    if self.nodes[node].partitioned {
                        let at = self.now + 2 * SECOND;
                        self.at(at, Event::LogDelivery { node, epoch, generation, event: LogEvent::Broken });
                    } else {
                        let at = self.delay(20);
                        self.at(at, Event::FollowReady { node, epoch, generation, from });
                    }
                }
                Output::Done { message, result } => {
                    let at = self.now;
                    let issued = self.issued.iter_mut().find(|i| i.message == Some(message));
                    if let Some(issued) = issued {
                        assert!(issued.answered.is_none(), "seed {}: {message:?} answered twice", self.seed);
                        let position = result.as_ref().map(|report| report.position).map_err(|_| ());
                        issued.answered = Some((at, position));
                    }
                }
                Output::Event(event) => {
                    if let ClusterEvent::Applied { message, position, .. } = &event {
                        self.nodes[node].applied.push((epoch, *position, *message));
                    }
                }
            }
        }
        let next = self.nodes[node].protocol.poll_timeout().as_millis() as u64;
        let next = next.max(self.now + 1);
        if self.nodes[node].next_tick.is_none_or(|t| next < t) {
            self.nodes[node].next_tick = Some(next);
            self.at(next, Event::Tick(node));
        }
    }

    fn publish(&mut self, from: usize, subject: String, payload: Vec<u8>) {
        if self.nodes[from].partitioned {
            return;
        }
        for to in 0..self.nodes.len() {
            let target = &self.nodes[to];
            if !target.up || target.partitioned {
                continue;
            }
            let wanted = subject.starts_with("liveguard.member.")
                || subject == self.subjects.ack(&self.nodes[from].name, &target.name);
            if !wanted {
                continue;
            }
            let faulty = self.faulty();
            if faulty && self.rng.chance(self.faults.control_drop) {
                continue;
            }
            let copies = if faulty && self.rng.chance(self.faults.control_dup) { 2 } else { 1 };
            let epoch = target.epoch;
            for _ in 0..copies {
                let at = self.delay(if faulty { 50 } else { 3 });
                self.at(at, Event::Control { node: to, epoch, subject: subject.clone(), payload: payload.clone() });
            }
        }
    }

    fn append(&mut self, node: usize, epoch: u32, message: MessageId, subject: String, payload: Vec<u8>) {
        let faulty = self.faulty();
        let result = if self.nodes[node].partitioned || (faulty && self.rng.chance(self.faults.append_fail)) {
            Err(())
        } else {
            let position = match self.deduped.get(&message) {
                Some(&position) => position,
                None => {
                    self.log.push((subject, payload, Some(message)));
                    let position = self.log.len() as u64;
                    self.deduped.insert(message, position);
                    position
                }
            };
            if faulty && self.rng.chance(self.faults.append_ack_lost) { Err(()) } else { Ok(position) }
        };
        // A partitioned append fails when its attempt times out (1 s).
        let wait = if self.nodes[node].partitioned { SECOND } else { self.rng.between(1, 10) };
        let at = self.now + wait;
        self.at(at, Event::Appended { node, epoch, message, result });
    }

    fn check(&self) -> Result<u64, String> {
        let fail = |what: String| {
            Err(format!("seed {}: {what}\nfaults {:?}\n{}", self.seed, self.faults, self.trace.join("\n")))
        };
        // Answers by their deadline; durable means in the log there.
        for issued in &self.issued {
            let Some(message) = issued.message else { continue };
            let issuer_alive = self.nodes[issued.node].epoch == issued.epoch && self.nodes[issued.node].up;
            match issued.answered {
                None if issuer_alive => return fail(format!("revocation {message:?} never answered")),
                None => {}
                Some((at, _)) if at > issued.at + REVOKE_TIMEOUT.as_millis() as u64 + 1 => {
                    return fail(format!("revocation {message:?} answered late at {at}"));
                }
                Some((_, Ok(position))) => {
                    let logged = self.log.get(position as usize - 1).and_then(|entry| entry.2);
                    if logged != Some(message) {
                        return fail(format!("revocation {message:?} reported at {position}, which holds {logged:?}"));
                    }
                }
                Some((_, Err(()))) => {}
            }
        }
        // Once per instance, in log order.
        for node in &self.nodes {
            let mut last: BTreeMap<u32, u64> = BTreeMap::new();
            let mut seen = BTreeSet::new();
            for &(epoch, position, message) in &node.applied {
                if last.get(&epoch).is_some_and(|&p| position <= p) {
                    return fail(format!("{} applied position {position} out of order", node.name));
                }
                last.insert(epoch, position);
                if !seen.insert((epoch, message)) {
                    return fail(format!("{} applied {message:?} twice", node.name));
                }
            }
        }
        // Revoked sessions closed everywhere in time; nothing else closed.
        let mut worst = 0;
        for conn in &self.conns {
            if conn.crashed {
                continue;
            }
            let revocation = self.issued.iter().find(|i| i.session == conn.session && i.message.is_some());
            match (revocation, conn.closed) {
                (None, Some(at)) => {
                    return fail(format!(
                        "session {} closed at {at} on n{} without a revocation",
                        conn.session, conn.node
                    ));
                }
                (None, None) => {}
                (Some(issued), closed) => {
                    let message = issued.message.expect("filtered");
                    let in_log = self.deduped.contains_key(&message);
                    let issuer_lost =
                        !in_log && (self.nodes[issued.node].epoch != issued.epoch || !self.nodes[issued.node].up);
                    if issuer_lost {
                        continue;
                    }
                    let bound = if issued.at >= CLEAN_FROM {
                        issued.at + BOUND_CLEAN
                    } else {
                        issued.at.max(HEAL) + BOUND_AFTER_HEAL
                    };
                    match closed {
                        None => {
                            return fail(format!(
                                "session {} revoked at {} still open on n{} (registered {})",
                                conn.session, issued.at, conn.node, conn.registered
                            ));
                        }
                        Some(at) if at > bound => {
                            return fail(format!(
                                "session {} revoked at {} closed on n{} only at {at}",
                                conn.session, issued.at, conn.node
                            ));
                        }
                        Some(at) => worst = worst.max(at.saturating_sub(issued.at.max(HEAL))),
                    }
                }
            }
        }
        Ok(worst)
    }
}

fn run_seed(seed: u64, codec: &ControlCodec) -> Result<u64, String> {
    let mut world = World::new(seed, codec);
    world.run();
    world.check()
}

#[test]
fn revocations_reach_every_node_under_injected_faults() {
    let codec = ControlCodec::new(&ring());
    if let Ok(seed) = std::env::var("LIVEGUARD_SIM_SEED") {
        let seed: u64 = seed.parse().expect("LIVEGUARD_SIM_SEED is a number");
        let worst = run_seed(seed, &codec).unwrap_or_else(|failure| panic!("{failure}"));
        println!("seed {seed}: ok, worst close after the heal {worst} ms");
        return;
    }
    let seeds: u64 = std::env::var("LIVEGUARD_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut worst = 0;
    for seed in 0..seeds {
        match run_seed(seed, &codec) {
            Ok(w) => worst = worst.max(w),
            Err(failure) => {
                panic!("{failure}\nreplay: LIVEGUARD_SIM_SEED={seed} cargo test --test cluster_sim -- --nocapture")
            }
        }
    }
    println!("{seeds} seeds: every invariant held; worst close after the heal {worst} ms");
}

#[test]
fn forged_and_mismatched_messages_change_nothing() {
    let codec = ControlCodec::new(&ring());
    let forger = ControlCodec::new(&KeyRing::new(KeyId(1), SecretKeyBase::new(vec![8; 64]).expect("64 bytes")));
    let subjects = Subjects::new("liveguard");
    let now = Now { mono: Duration::ZERO, wall: Timestamp::from_unix_millis(1_800_000_000_000) };
    let mut protocol = NodeProtocol::new("n0", subjects.clone(), codec.clone(), Settings::default(), 1, now);
    let victim = LiveSocketId::new("users_sessions:victim").expect("id");
    let mut conns = vec![Conn { session: 0, node: 0, registered: 0, closed: None, crashed: false }];
    let mut local = SimLocal { mine: vec![0], ..SimLocal::default() };
    let sessions = vec![victim.clone()];
    let revoked = BTreeSet::new();
    let sign = |codec: &ControlCodec, node: &str, command: Command| {
        let message =
            liveguard::cluster::control::ControlMessage { id: MessageId([1; 16]), node: node.into(), command };
        codec.encode(&message, now.wall).expect("sign").into_bytes()
    };
    let forged = sign(&forger, "n1", Command::Revoke(Revocation::Disconnect(victim.clone())));
    let misplaced = sign(&codec, "n1", Command::Revoke(Revocation::Disconnect(victim.clone())));
    let junk = vec![b'x'; 5000];
    let mut shared = Shared { local: &mut local, conns: &mut conns, revoked: &revoked, sessions: &sessions };
    protocol.on_log(
        1,
        LogEvent::Entry { position: 1, subject: subjects.socket(&victim), payload: forged },
        &mut shared,
        now,
    );
    let other = LiveSocketId::new("users_sessions:other").expect("id");
    protocol.on_log(
        1,
        LogEvent::Entry { position: 2, subject: subjects.socket(&other), payload: misplaced },
        &mut shared,
        now,
    );
    protocol.on_log(
        1,
        LogEvent::Entry { position: 3, subject: subjects.socket(&victim), payload: junk.clone() },
        &mut shared,
        now,
    );
    protocol.on_control(&subjects.member("n1"), &junk, now);
    assert_eq!(conns[0].closed, None, "nothing forged, misplaced or oversized closes a connection");
    assert_eq!(protocol.applied(), 3, "refused entries are skipped, not retried");
    let mut refused = 0;
    while let Some(output) = protocol.poll_output() {
        if matches!(output, Output::Event(ClusterEvent::Refused { .. })) {
            refused += 1;
        }
    }
    assert_eq!(refused, 4, "each refusal is audited");
}

#[test]
fn a_feed_that_keeps_breaking_is_retried_with_a_doubling_pause() {
    let codec = ControlCodec::new(&ring());
    let subjects = Subjects::new("liveguard");
    let hour = Duration::from_secs(3600);
    // Only the follow retries may set the next tick.
    let mut settings = Settings::default();
    (settings.heartbeat_interval, settings.caught_up_grace) = (hour, hour);
    let at =
        |ms: u64| Now { mono: Duration::from_millis(ms), wall: Timestamp::from_unix_millis(1_800_000_000_000 + ms) };
    let mut protocol = NodeProtocol::new("n0", subjects.clone(), codec.clone(), settings, 1, at(0));
    let mut conns = Vec::new();
    let mut local = SimLocal::default();
    let (sessions, revoked) = (Vec::new(), BTreeSet::new());
    let mut shared = Shared { local: &mut local, conns: &mut conns, revoked: &revoked, sessions: &sessions };
    let follows = |protocol: &mut NodeProtocol| {
        let mut generations = Vec::new();
        while let Some(output) = protocol.poll_output() {
            if let Output::Follow { generation, .. } = output {
                generations.push(generation);
            }
        }
        generations
    };
    let mut now = 0;
    // The first tick sends the first heartbeat; the next is an hour away.
    protocol.on_tick(&mut shared, at(0));
    let mut generation = *follows(&mut protocol).last().expect("a new node follows the log");
    let mut pauses = Vec::new();
    for _ in 0..7 {
        protocol.on_log(generation, LogEvent::Broken, &mut shared, at(now));
        let next = protocol.poll_timeout().as_millis() as u64;
        // Nothing is asked of the log before the pause is over.
        protocol.on_tick(&mut shared, at(next - 1));
        assert!(follows(&mut protocol).is_empty(), "followed again before the pause after {pauses:?}");
        protocol.on_tick(&mut shared, at(next));
        generation = *follows(&mut protocol).last().expect("followed again once the pause is over");
        pauses.push(next - now);
        now = next;
    }
    assert_eq!(pauses, [50, 100, 200, 400, 500, 500, 500], "the pause doubles from retry_min up to retry_max");

    // A feed that delivers resets the pause.
    protocol.on_log(generation, LogEvent::End(0), &mut shared, at(now));
    protocol.on_log(generation, LogEvent::Broken, &mut shared, at(now));
    assert_eq!(protocol.poll_timeout().as_millis() as u64 - now, 50, "a delivering feed resets the pause");
}

#[test]
fn a_feed_gone_silent_is_noticed_from_a_peers_heartbeat() {
    let codec = ControlCodec::new(&ring());
    let subjects = Subjects::new("liveguard");
    let hour = Duration::from_secs(3600);
    let mut settings = Settings::default();
    (settings.heartbeat_interval, settings.caught_up_grace) = (hour, hour);
    let lag = settings.lag_grace;
    let at =
        |ms: u64| Now { mono: Duration::from_millis(ms), wall: Timestamp::from_unix_millis(1_800_000_000_000 + ms) };
    let mut protocol = NodeProtocol::new("n0", subjects.clone(), codec.clone(), settings, 1, at(0));
    let mut conns = Vec::new();
    let mut local = SimLocal::default();
    let (sessions, revoked) = (Vec::new(), BTreeSet::new());
    let mut shared = Shared { local: &mut local, conns: &mut conns, revoked: &revoked, sessions: &sessions };
    let follows = |protocol: &mut NodeProtocol| {
        let mut from = Vec::new();
        while let Some(output) = protocol.poll_output() {
            if let Output::Follow { from: position, .. } = output {
                from.push(position);
            }
        }
        from
    };
    protocol.on_tick(&mut shared, at(0));
    assert_eq!(follows(&mut protocol), [1], "a new node follows the log from its start");
    // The feed proves the node caught up, then goes silent without breaking.
    protocol.on_log(1, LogEvent::End(0), &mut shared, at(10));
    let heartbeat = |applied: u64, ms: u64| {
        let message = liveguard::cluster::control::ControlMessage {
            id: MessageId([ms as u8; 16]),
            node: "n1".into(),
            command: Command::Heartbeat { applied },
        };
        codec.encode(&message, at(ms).wall).expect("sign").into_bytes()
    };
    protocol.on_control(&subjects.member("n1"), &heartbeat(0, 5_000), at(5_000));
    protocol.on_tick(&mut shared, at(5_000 + lag.as_millis() as u64));
    assert!(follows(&mut protocol).is_empty(), "a peer at the same position says nothing about the feed");
    // A peer has applied five entries this node never received.
    protocol.on_control(&subjects.member("n1"), &heartbeat(5, 10_000), at(10_000));
    protocol.on_tick(&mut shared, at(10_000 + lag.as_millis() as u64 - 1));
    assert!(follows(&mut protocol).is_empty(), "the feed gets the lag grace to deliver");
    protocol.on_tick(&mut shared, at(10_000 + lag.as_millis() as u64));
    assert_eq!(follows(&mut protocol), [1], "then the node follows again from its own position");
}
