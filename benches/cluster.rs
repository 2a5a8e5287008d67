//! The cluster over a real 3-server NATS cluster (nats-server from PATH or
//! /usr/sbin, started by `tests/support/nats.rs`): cross-node disconnect
//! latency against a plain NATS publish, a disconnect storm, and registry
//! memory per connection in both interest modes.
//!
//! Budgets (DESIGN.md §6), all measured in this one run:
//!
//! - cross-node disconnect: p99 ≤ 2× the p99 of a plain async-nats publish
//!   from a client on server 0 to a subscriber on server 2 (same payload
//!   size, samples interleaved with liveguard's);
//! - disconnect storm: 10k distinct ids disconnected from one node, every
//!   connection closed and every report complete, ≤ 1 s;
//! - registry entry: ≤ 256 B per registered connection beyond the id itself
//!   (counted by this binary's global allocator: requested bytes, no malloc
//!   overhead).
//!
//! Two clusters of three liveguard nodes share the NATS servers, isolated by
//! their subject prefixes: `liveguard.w` (every node `InterestMode::Wildcard`,
//! the default) and `liveguard.p` (every node `InterestMode::PerId`). Node `a`
//! is on server 0, `b` on server 1, `c` on server 2. The plain baseline
//! publishes on `liveguard.plain`, which no node subscribes to.
//!
//! `cargo bench --bench cluster --features nats` measures (about 20 s);
//! without cargo's `--bench` argument (`cargo test --benches --features
//! nats`) or with `-- --test` everything runs once at a small scale.

#[path = "../tests/support/nats.rs"]
mod nats_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use futures_util::StreamExt as _;
use liveguard::audit::{AuditRecord, AuditSink};
use liveguard::cluster::backbone::Backbone;
use liveguard::cluster::control::{Command, ControlCodec, ControlMessage, MessageId, ReplayGuard};
use liveguard::cluster::nats::Nats;
use liveguard::cluster::node::{InterestMode, Node, NodeConfig, Report};
use liveguard::cluster::registry::{CloseReason, ConnectionCommand, ConnectionEvents, Registration};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::socket_id::{LiveSocketId, subject};
use liveguard::{OsRandom, Timestamp};
use nats_support::NatsCluster;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------

/// `System`, counting the bytes and blocks currently allocated (requested
/// sizes) across every thread, async-nats' and tokio's included.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

fn size_of_layout(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap_or(isize::MAX)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(size_of_layout(layout), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(size_of_layout(layout), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(size_of_layout(layout), Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            let grown = isize::try_from(new_size).unwrap_or(isize::MAX) - size_of_layout(layout);
            LIVE_BYTES.fetch_add(grown, Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes and blocks right now.
fn live() -> (isize, isize) {
    (LIVE_BYTES.load(Ordering::SeqCst), LIVE_BLOCKS.load(Ordering::SeqCst))
}

/// Lets background tasks (forwarders, drivers, the NATS handlers) finish
/// what the last step started before a snapshot.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Bytes and blocks per item between two snapshots.
fn per_item(before: (isize, isize), after: (isize, isize), items: usize) -> (f64, f64) {
    let n = items as f64;
    ((after.0 - before.0) as f64 / n, (after.1 - before.1) as f64 / n)
}

// ---------------------------------------------------------------------------
// Scale, fixtures
// ---------------------------------------------------------------------------

struct Scale {
    /// Filler connections per measured node (distinct ids).
    conns: usize,
    /// Latency samples per case.
    samples: usize,
    warmup: usize,
    /// Ids disconnected at once in the storm (all on c), and how many of
    /// them also have a connection on b.
    storm: usize,
    storm_on_b: usize,
    /// Register-then-disconnect races per interest mode.
    race_trials: usize,
}

const FULL: Scale =
    Scale { conns: 10_000, samples: 2_000, warmup: 100, storm: 10_000, storm_on_b: 1_000, race_trials: 200 };
const QUICK: Scale = Scale { conns: 300, samples: 40, warmup: 5, storm: 300, storm_on_b: 30, race_trials: 10 };

const WILDCARD: &str = "liveguard.w";
const PER_ID: &str = "liveguard.p";
const PLAIN: &str = "liveguard.plain";
const DEADLINE: Duration = Duration::from_secs(5);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new((0u8..64).map(|i| i.wrapping_mul(29) ^ 0x5c).collect()).unwrap())
}

/// A `live_socket_id` as phx.gen.auth writes it: `"users_sessions:" <>
/// Base.url_encode64(<32 random bytes>)` (59 bytes, one `=`), distinct per
/// `(set, i)`.
fn session_id(set: u64, i: usize) -> LiveSocketId {
    let mut state = (set << 40) ^ (i as u64) ^ 0x9e37_79b9_7f4a_7c15;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    LiveSocketId::new(format!("users_sessions:{}", URL_SAFE.encode(bytes))).unwrap()
}

/// Counts refused control messages and keeps the first few reasons; the
/// ones with an empty payload (NATS "no responders" status messages) apart.
#[derive(Default)]
struct CountingAudit {
    refused: AtomicU64,
    empty: AtomicU64,
    reasons: Mutex<Vec<String>>,
}

impl AuditSink for CountingAudit {
    fn record(&self, record: AuditRecord) {
        if let AuditRecord::ControlRefused { subject, reason } = record {
            self.refused.fetch_add(1, Ordering::Relaxed);
            if reason.contains("empty token") {
                self.empty.fetch_add(1, Ordering::Relaxed);
            }
            let mut reasons = self.reasons.lock().unwrap();
            if reasons.len() < 5 {
                reasons.push(format!("{subject}: {reason}"));
            }
        }
    }
}

fn app_options() -> async_nats::ConnectOptions {
    let user = nats_support::app_user();
    async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
}

struct Member {
    node: Arc<Node>,
    nats: Arc<Nats>,
    _driver: JoinHandle<()>,
}

async fn start_node(name: &str, prefix: &str, mode: InterestMode, url: &str, audit: &Arc<CountingAudit>) -> Member {
    let nats = Arc::new(Nats::connect(url, app_options()).await.expect("connect to nats"));
    let config = NodeConfig::new(name).prefix(prefix).interest(mode);
    let (node, driver) = Node::start(config, &ring(), nats.clone(), audit.clone()).await.expect("node starts");
    Member { node, nats, _driver: tokio::spawn(driver) }
}

/// Heartbeats until every node knows the three of its cluster, then every
/// half second for the rest of the run (members are forgotten after 15 s).
async fn meet(nodes: Vec<Arc<Node>>) -> JoinHandle<()> {
    let until = Instant::now() + Duration::from_secs(10);
    while !nodes.iter().all(|n| n.members() == ["a", "b", "c"]) {
        assert!(Instant::now() < until, "membership from heartbeats");
        for node in &nodes {
            node.heartbeat().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for node in &nodes {
                let _ = node.heartbeat().await;
            }
        }
    })
}

/// Polls server `i`'s `/subsz` until it counts at least `at_least`
/// subscriptions (local and learnt over routes) and the count is stable.
fn wait_for_interest(cluster: &NatsCluster, i: usize, at_least: u64) -> u64 {
    let read =
        || cluster.node(i).monitor("subsz").ok().and_then(|v| v.get("num_subscriptions").and_then(|n| n.as_u64()));
    let until = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    let mut stable = 0;
    while Instant::now() < until {
        let now = read().unwrap_or(0);
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
        if now >= at_least && stable >= 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

type Held = (Registration, ConnectionEvents);

async fn register_all(node: &Node, ids: impl IntoIterator<Item = LiveSocketId>, into: &mut Vec<Held>) {
    for id in ids {
        into.push(node.register(id, KeyId(1)).await.expect("register"));
    }
}

const CLOSED: Option<ConnectionCommand> = Some(ConnectionCommand::Close(CloseReason::Disconnected));

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Stats {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

/// Percentiles in µs (nearest rank).
fn stats(samples: &[Duration]) -> Stats {
    if samples.is_empty() {
        return Stats::default();
    }
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let rank = |q: f64| us[((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
    Stats {
        n: us.len(),
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: us[us.len() - 1],
        mean: us.iter().sum::<f64>() / us.len() as f64,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "BUDGET MISSED" }
}

// ---------------------------------------------------------------------------
// 1. Cross-node disconnect latency
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Latency {
    plain: Vec<Duration>,
    wildcard: Vec<Duration>,
    wildcard_acked: Vec<Duration>,
    wildcard_signed: Vec<Duration>,
    per_id: Vec<Duration>,
    lost: [usize; 4],
    incomplete_reports: usize,
}

struct Target {
    id: LiveSocketId,
    held: Held,
}

/// `a.disconnect(id)` spawned at `t0` (as a logout handler would); the time
/// until the connection on c gets its Close, and until the report is back.
/// The report ends at `ack_deadline` or when the close arrived
/// (`end_at_close`: with per-id interest `a` and `b` never answer).
async fn disconnect_sample(
    a: &Arc<Node>,
    target: &mut Target,
    end_at_close: bool,
) -> (Option<Duration>, Duration, bool) {
    let (tx, rx) = oneshot::channel::<()>();
    let (a, id) = (a.clone(), target.id.clone());
    let t0 = Instant::now();
    let task = tokio::spawn(async move {
        let deadline = async move {
            if end_at_close {
                let _ = rx.await;
            } else {
                tokio::time::sleep(DEADLINE).await;
            }
        };
        a.disconnect(&id, deadline).await
    });
    let got = tokio::time::timeout(CLOSE_TIMEOUT, target.held.1.recv()).await;
    let closed = t0.elapsed();
    let _ = tx.send(());
    let report: Report = task.await.unwrap().expect("disconnect");
    let acked = t0.elapsed();
    let closed = matches!(got, Ok(c) if c == CLOSED).then_some(closed);
    (closed, acked, report.complete())
}

/// The signed disconnect published directly on a's backbone, no reply
/// subject (no inbox subscription, no acknowledgement): signing, the bus and
/// c's driver only.
async fn signed_sample(codec: &ControlCodec, a: &Nats, target: &mut Target) -> Option<Duration> {
    let t0 = Instant::now();
    let message = ControlMessage {
        id: MessageId::random(&mut OsRandom).unwrap(),
        node: "a".into(),
        command: Command::Disconnect(target.id.clone()),
    };
    let wire = codec.encode(&message, Timestamp::now()).unwrap();
    a.publish(subject(WILDCARD, &target.id), None, wire.into_bytes()).await.unwrap();
    let got = tokio::time::timeout(CLOSE_TIMEOUT, target.held.1.recv()).await;
    let took = t0.elapsed();
    matches!(got, Ok(c) if c == CLOSED).then_some(took)
}

async fn plain_sample(
    publisher: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    payload: &[u8],
) -> Option<Duration> {
    let t0 = Instant::now();
    publisher.publish(PLAIN, payload.to_vec().into()).await.unwrap();
    let got = tokio::time::timeout(CLOSE_TIMEOUT, sub.next()).await;
    let took = t0.elapsed();
    matches!(got, Ok(Some(_))).then_some(took)
}

// ---------------------------------------------------------------------------
// 2. Storm, and a plain-NATS storm of the same shape
// ---------------------------------------------------------------------------

struct Storm {
    ids: usize,
    connections: usize,
    spawned: Duration,
    all_closed: Option<Duration>,
    closed: usize,
    reports_done: Duration,
    complete: usize,
    acked_connections: u64,
    errors: usize,
}

async fn storm(a: &Arc<Node>, ids: &[LiveSocketId], held: Vec<Held>) -> Storm {
    let connections = held.len();
    let closer = tokio::spawn(async move {
        let limit = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut closed = 0;
        for (registration, mut events) in held {
            if matches!(tokio::time::timeout_at(limit, events.recv()).await, Ok(c) if c == CLOSED) {
                closed += 1;
            }
            // The connection goes away once closed, as a real one would.
            drop(registration);
        }
        (closed, Instant::now())
    });
    let t0 = Instant::now();
    let tasks: Vec<JoinHandle<_>> = ids
        .iter()
        .map(|id| {
            let (a, id) = (a.clone(), id.clone());
            tokio::spawn(async move { a.disconnect(&id, tokio::time::sleep(DEADLINE)).await })
        })
        .collect();
    let spawned = t0.elapsed();
    let (mut complete, mut acked_connections, mut errors) = (0, 0, 0);
    for task in tasks {
        match task.await {
            Ok(Ok(report)) => {
                complete += usize::from(report.complete());
                acked_connections += report.connections();
            }
            _ => errors += 1,
        }
    }
    let reports_done = t0.elapsed();
    let (closed, closed_at) = closer.await.unwrap();
    Storm {
        ids: ids.len(),
        connections,
        spawned,
        all_closed: (closed == connections).then(|| closed_at - t0),
        closed,
        reports_done,
        complete,
        acked_connections,
        errors,
    }
}

/// How the plain-NATS storm is shaped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// liveguard's pattern: responders on `<prefix>.>` (as Wildcard nodes,
    /// so every answer also reaches every responder), one inbox
    /// subscription per request (subscribe, flush, publish, unsubscribe).
    Wide,
    /// Responders on `<prefix>.socket.*` only; inbox per request.
    Narrow,
    /// Responders on `<prefix>.socket.*`; one inbox subscription
    /// `<prefix>.inbox.>` for all requests, answers dispatched by subject.
    NarrowMuxed,
}

/// liveguard's message pattern without liveguard (no signing, no
/// verification): three responders (one client per server) answer every
/// request; a requester on server 0 sends `ids` requests concurrently, each
/// waiting for three answers.
async fn plain_storm(
    clients: &[async_nats::Client; 3],
    prefix: &str,
    ids: usize,
    shape: Shape,
    payload_len: usize,
    ack_len: usize,
) -> (Duration, usize) {
    let pattern = if shape == Shape::Wide { format!("{prefix}.>") } else { format!("{prefix}.socket.*") };
    let inbox_prefix = format!("{prefix}.inbox.");
    let mut background = Vec::new();
    for client in clients {
        let mut sub = client.subscribe(pattern.clone()).await.unwrap();
        client.flush().await.unwrap();
        let (client, inbox_prefix) = (client.clone(), inbox_prefix.clone());
        let ack = vec![b'k'; ack_len];
        background.push(tokio::spawn(async move {
            while let Some(message) = sub.next().await {
                if message.subject.starts_with(inbox_prefix.as_str()) {
                    continue;
                }
                if let Some(reply) = message.reply {
                    let _ = client.publish(reply, ack.clone().into()).await;
                }
            }
        }));
    }
    let requester = clients[0].clone();
    type Waiting = Arc<Mutex<std::collections::HashMap<usize, (u8, oneshot::Sender<()>)>>>;
    let waiting: Waiting = Arc::default();
    if shape == Shape::NarrowMuxed {
        let mut answers = requester.subscribe(format!("{inbox_prefix}>")).await.unwrap();
        let (waiting, inbox_prefix) = (waiting.clone(), inbox_prefix.clone());
        background.push(tokio::spawn(async move {
            while let Some(message) = answers.next().await {
                let Some(i) = message.subject.strip_prefix(inbox_prefix.as_str()).and_then(|i| i.parse().ok()) else {
                    continue;
                };
                let mut waiting = waiting.lock().unwrap();
                if let Some((left, _)) = waiting.get_mut(&i) {
                    *left -= 1;
                    if *left == 0 {
                        let _ = waiting.remove(&i).unwrap().1.send(());
                    }
                }
            }
        }));
    }
    requester.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let tasks: Vec<JoinHandle<bool>> = (0..ids)
        .map(|i| {
            let (requester, waiting) = (requester.clone(), waiting.clone());
            let (inbox, subject) = (format!("{inbox_prefix}{i}"), format!("{prefix}.socket.{i}"));
            let payload = vec![b'p'; payload_len];
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + DEADLINE;
                if shape == Shape::NarrowMuxed {
                    let (tx, rx) = oneshot::channel();
                    waiting.lock().unwrap().insert(i, (3, tx));
                    requester.publish_with_reply(subject, inbox, payload.into()).await.unwrap();
                    return matches!(tokio::time::timeout_at(deadline, rx).await, Ok(Ok(())));
                }
                let mut answers = requester.subscribe(inbox.clone()).await.unwrap();
                requester.flush().await.unwrap();
                requester.publish_with_reply(subject, inbox, payload.into()).await.unwrap();
                for _ in 0..3 {
                    if !matches!(tokio::time::timeout_at(deadline, answers.next()).await, Ok(Some(_))) {
                        return false;
                    }
                }
                true
            })
        })
        .collect();
    let mut complete = 0;
    for task in tasks {
        complete += usize::from(task.await.unwrap());
    }
    let took = t0.elapsed();
    for task in background {
        task.abort();
    }
    (took, complete)
}

/// Time per operation of `f`, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut(usize)) -> Duration {
    let t0 = Instant::now();
    for i in 0..n {
        f(i);
    }
    t0.elapsed() / n as u32
}

// ---------------------------------------------------------------------------
// Register-then-disconnect race (DESIGN invariant 9)
// ---------------------------------------------------------------------------

/// Registers a fresh id on `c` and, as soon as `register` returns (the
/// session would now be validated for the last time and found valid),
/// disconnects it from `a`, as a logout on another node racing the mount
/// would. Returns how many connections never got their Close (checked
/// again at the end, so a late Close is not counted as lost).
async fn race(a: &Arc<Node>, c: &Arc<Node>, set: u64, trials: usize) -> (usize, usize) {
    let mut missed = Vec::new();
    let mut ran = 0;
    for k in 0..trials {
        ran += 1;
        let id = session_id(set, k);
        let (registration, mut events) = c.register(id.clone(), KeyId(1)).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let a = a.clone();
        let task = tokio::spawn(async move {
            a.disconnect(&id, async move {
                let _ = rx.await;
            })
            .await
        });
        let got = tokio::time::timeout(Duration::from_millis(250), events.recv()).await;
        let _ = tx.send(());
        let _ = task.await;
        if !matches!(got, Ok(c) if c == CLOSED) {
            missed.push((registration, events));
            if missed.len() >= 10 {
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lost = missed.iter_mut().map(|held| held.1.try_recv().is_none()).filter(|&none| none).count();
    (lost, ran)
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        return;
    }
    let quick = has("--test") || !has("--bench");
    let scale = if quick { QUICK } else { FULL };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(&scale, quick));
}

async fn run(scale: &Scale, quick: bool) {
    let started = Instant::now();
    let cluster =
        tokio::task::spawn_blocking(|| NatsCluster::start(3).expect("a 3-server nats-server cluster")).await.unwrap();
    let urls = cluster.client_urls();
    let audit = Arc::new(CountingAudit::default());
    let version = cluster.node(0).monitor("varz").ok().and_then(|v| v.get("version").map(|v| v.to_string()));
    println!(
        "cluster bench: 3 nats-server {} (routes full mesh, loopback), {} liveguard nodes, scale {}",
        version.unwrap_or_default(),
        6,
        if quick { "QUICK (test run, numbers meaningless)" } else { "full" }
    );

    let [wa, wb, wc] = [
        start_node("a", WILDCARD, InterestMode::Wildcard, &urls[0], &audit).await,
        start_node("b", WILDCARD, InterestMode::Wildcard, &urls[1], &audit).await,
        start_node("c", WILDCARD, InterestMode::Wildcard, &urls[2], &audit).await,
    ];
    let [pa, pb, pc] = [
        start_node("a", PER_ID, InterestMode::PerId, &urls[0], &audit).await,
        start_node("b", PER_ID, InterestMode::PerId, &urls[1], &audit).await,
        start_node("c", PER_ID, InterestMode::PerId, &urls[2], &audit).await,
    ];
    let _w_heartbeats = meet(vec![wa.node.clone(), wb.node.clone(), wc.node.clone()]).await;
    let _p_heartbeats = meet(vec![pa.node.clone(), pb.node.clone(), pc.node.clone()]).await;
    let plain0 = app_options().connect(&urls[0]).await.unwrap();
    let plain2 = app_options().connect(&urls[2]).await.unwrap();
    let plain2_memory = app_options().connect(&urls[2]).await.unwrap();

    // -----------------------------------------------------------------------
    // 3. Memory (first, while nothing else runs but heartbeats)
    // -----------------------------------------------------------------------
    let n = scale.conns;
    let wildcard_ids: Vec<LiveSocketId> = (0..n).map(|i| session_id(1, i)).collect();
    let per_id_ids: Vec<LiveSocketId> = (0..n).map(|i| session_id(2, i)).collect();
    let id_len = wildcard_ids.iter().map(|id| id.as_str().len()).sum::<usize>() as f64 / n as f64;

    // The id's own String.
    let mut clones: Vec<LiveSocketId> = Vec::with_capacity(n);
    settle().await;
    let before = live();
    clones.extend(wildcard_ids.iter().cloned());
    let id_cost = per_item(before, live(), n);
    drop(clones);

    // Wildcard: register n connections on c (ids built beforehand and moved
    // in, so their own Strings are not in the delta).
    let mut wc_held: Vec<Held> = Vec::with_capacity(n);
    let mut moving = wildcard_ids.clone();
    settle().await;
    let before = live();
    register_all(&wc.node, moving.drain(..), &mut wc_held).await;
    settle().await;
    let wildcard_cost = per_item(before, live(), n);
    drop(moving);

    // PerId: the same on the per-id c, which also subscribes once per id.
    let mut pc_held: Vec<Held> = Vec::with_capacity(n);
    let mut moving = per_id_ids.clone();
    settle().await;
    let before = live();
    let t0 = Instant::now();
    register_all(&pc.node, moving.drain(..), &mut pc_held).await;
    let per_id_register_time = t0.elapsed();
    settle().await;
    let per_id_cost = per_item(before, live(), n);
    drop(moving);

    // A plain async-nats subscription (client side), for comparison.
    let mut subs = Vec::with_capacity(n);
    settle().await;
    let before = live();
    for i in 0..n {
        subs.push(plain2_memory.subscribe(format!("liveguard.m.{i}")).await.unwrap());
    }
    plain2_memory.flush().await.unwrap();
    settle().await;
    let nats_sub_cost = per_item(before, live(), n);
    drop(subs);
    plain2_memory.flush().await.unwrap();

    // -----------------------------------------------------------------------
    // 1. Latency
    // -----------------------------------------------------------------------
    let rounds = scale.warmup + scale.samples;
    let make_targets = |set: u64| (0..rounds).map(move |i| session_id(set, i)).collect::<Vec<_>>();
    let mut wc_targets = Vec::with_capacity(rounds);
    let mut wc_signed_targets = Vec::with_capacity(rounds);
    let mut pc_targets = Vec::with_capacity(rounds);
    for (node, set, into) in
        [(&wc.node, 3, &mut wc_targets), (&wc.node, 4, &mut wc_signed_targets), (&pc.node, 5, &mut pc_targets)]
    {
        for id in make_targets(set) {
            let held = node.register(id.clone(), KeyId(1)).await.unwrap();
            into.push(Target { id, held });
        }
    }
    let mut plain_sub = plain2.subscribe(PLAIN).await.unwrap();
    plain2.flush().await.unwrap();
    // Every per-id subscription on server 2 must be known on server 0
    // before a's disconnects can reach c.
    let expected_subs = (n + rounds) as u64;
    let seen_subs = tokio::task::block_in_place(|| wait_for_interest(&cluster, 0, expected_subs));

    let codec = ControlCodec::new(&ring(), 30, 5_000);
    let payload_len = {
        let message = ControlMessage {
            id: MessageId::random(&mut OsRandom).unwrap(),
            node: "a".into(),
            command: Command::Disconnect(wc_targets[0].id.clone()),
        };
        codec.encode(&message, Timestamp::now()).unwrap().len()
    };
    let payload = vec![b'x'; payload_len];

    let mut lat = Latency::default();
    let latency_started = Instant::now();
    for round in 0..rounds {
        let record = round >= scale.warmup;
        for case in (0..4).map(|k| (k + round) % 4) {
            match case {
                0 => match plain_sample(&plain0, &mut plain_sub, &payload).await {
                    Some(d) if record => lat.plain.push(d),
                    None => lat.lost[0] += 1,
                    _ => {}
                },
                1 => {
                    let (closed, acked, complete) = disconnect_sample(&wa.node, &mut wc_targets[round], false).await;
                    lat.incomplete_reports += usize::from(!complete);
                    match closed {
                        Some(d) if record => {
                            lat.wildcard.push(d);
                            lat.wildcard_acked.push(acked);
                        }
                        None => lat.lost[1] += 1,
                        _ => {}
                    }
                }
                2 => match signed_sample(&codec, &wa.nats, &mut wc_signed_targets[round]).await {
                    Some(d) if record => lat.wildcard_signed.push(d),
                    None => lat.lost[2] += 1,
                    _ => {}
                },
                _ => match disconnect_sample(&pa.node, &mut pc_targets[round], true).await.0 {
                    Some(d) if record => lat.per_id.push(d),
                    None => lat.lost[3] += 1,
                    _ => {}
                },
            }
        }
    }
    let latency_time = latency_started.elapsed();
    drop((wc_targets, wc_signed_targets, pc_targets, plain_sub));

    // -----------------------------------------------------------------------
    // Register-then-disconnect race, both modes
    // -----------------------------------------------------------------------
    let race_wildcard = race(&wa.node, &wc.node, 6, scale.race_trials).await;
    let race_per_id = race(&pa.node, &pc.node, 7, scale.race_trials).await;

    // PerId: disconnects of ids that no node holds (a logout without an open
    // live view), and what the audit log makes of them.
    let refused_before = audit.refused.load(Ordering::Relaxed);
    let unknown = 20;
    let t0 = Instant::now();
    let mut unknown_answered = 0;
    for i in 0..unknown {
        let report = pa.node.disconnect(&session_id(8, i), tokio::time::sleep(Duration::from_millis(100))).await;
        unknown_answered += report.unwrap().answered.len();
    }
    let unknown_time = t0.elapsed() / unknown as u32;
    settle().await;
    let unknown_refused = audit.refused.load(Ordering::Relaxed) - refused_before;

    // -----------------------------------------------------------------------
    // 2. Storm (Wildcard, the default): the filler ids of c, some also on b
    // -----------------------------------------------------------------------
    drop(pc_held);
    let storm_ids: Vec<LiveSocketId> = wildcard_ids[..scale.storm.min(n)].to_vec();
    let mut storm_held: Vec<Held> = wc_held.drain(..storm_ids.len()).collect();
    register_all(&wb.node, storm_ids[..scale.storm_on_b].iter().cloned(), &mut storm_held).await;
    settle().await;
    let storm_result = storm(&wa.node, &storm_ids, storm_held).await;
    drop(wc_held);
    settle().await;

    // Where the time goes: the crypto per message, and the same message
    // pattern on plain NATS.
    let ack_len = {
        let message = ControlMessage {
            id: MessageId::random(&mut OsRandom).unwrap(),
            node: "c".into(),
            command: Command::Ack { to: MessageId::random(&mut OsRandom).unwrap(), connections: 1 },
        };
        codec.encode(&message, Timestamp::now()).unwrap().len()
    };
    let k = 20_000;
    let wires: Vec<String> = (0..k)
        .map(|i| {
            let message = ControlMessage {
                id: MessageId::random(&mut OsRandom).unwrap(),
                node: "a".into(),
                command: Command::Disconnect(wildcard_ids[i % n].clone()),
            };
            codec.encode(&message, Timestamp::now()).unwrap()
        })
        .collect();
    let sign = per_call(k, |i| {
        let message = ControlMessage {
            id: MessageId::random(&mut OsRandom).unwrap(),
            node: "a".into(),
            command: Command::Disconnect(wildcard_ids[i % n].clone()),
        };
        std::hint::black_box(codec.encode(&message, Timestamp::now()).unwrap());
    });
    let mut guard = ReplayGuard::new();
    let verify = per_call(k, |i| {
        std::hint::black_box(codec.decode(wires[i].as_bytes(), Timestamp::now(), &mut guard).unwrap());
    });
    let clients = [
        app_options().connect(&urls[0]).await.unwrap(),
        app_options().connect(&urls[1]).await.unwrap(),
        app_options().connect(&urls[2]).await.unwrap(),
    ];
    let plain_storm_wide = plain_storm(&clients, "liveguard.s1", scale.storm, Shape::Wide, payload_len, ack_len).await;
    let plain_storm_narrow =
        plain_storm(&clients, "liveguard.s2", scale.storm, Shape::Narrow, payload_len, ack_len).await;
    let plain_storm_muxed =
        plain_storm(&clients, "liveguard.s3", scale.storm, Shape::NarrowMuxed, payload_len, ack_len).await;

    // -----------------------------------------------------------------------
    // Results
    // -----------------------------------------------------------------------
    let refused = audit.refused.load(Ordering::Relaxed);
    println!("\n== 1. cross-node disconnect latency (a on server 0 -> c on server 2), µs ==");
    println!(
        "{} connections on c (distinct ids) in each mode; {} interleaved rounds after {} warm-up; payload {} B",
        n, scale.samples, scale.warmup, payload_len
    );
    println!("server 0 knows {seen_subs} subscriptions (expected at least {expected_subs}) before sampling");
    println!("{:<58} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9}", "case", "n", "p50", "p90", "p99", "mean", "max");
    let plain = stats(&lat.plain);
    let rows = [
        ("plain async-nats publish 0 -> subscriber on 2", plain),
        ("Wildcard: a.disconnect() -> Close on c", stats(&lat.wildcard)),
        ("Wildcard: a.disconnect() -> report complete (3 acks)", stats(&lat.wildcard_acked)),
        ("Wildcard: sign + publish (no reply) -> Close on c", stats(&lat.wildcard_signed)),
        ("PerId: a.disconnect() -> Close on c", stats(&lat.per_id)),
    ];
    for (name, s) in rows {
        println!("{:<58} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1}", name, s.n, s.p50, s.p90, s.p99, s.mean, s.max);
    }
    println!(
        "lost (no Close within {CLOSE_TIMEOUT:?}): plain {}, wildcard {}, wildcard signed {}, per-id {}; \
         incomplete wildcard reports: {}",
        lat.lost[0], lat.lost[1], lat.lost[2], lat.lost[3], lat.incomplete_reports
    );
    let ratio = |s: Stats| s.p99 / plain.p99;
    let wildcard_ratio = ratio(stats(&lat.wildcard));
    let per_id_ratio = ratio(stats(&lat.per_id));
    println!(
        "p99 ratio Wildcard disconnect / plain = {:.2} (budget <= 2): {}",
        wildcard_ratio,
        verdict(wildcard_ratio <= 2.0 && lat.lost[1] == 0)
    );
    println!(
        "p99 ratio PerId disconnect / plain    = {:.2} (budget <= 2): {}",
        per_id_ratio,
        verdict(per_id_ratio <= 2.0 && lat.lost[3] == 0)
    );
    println!(
        "p99 ratio Wildcard signed publish / plain = {:.2}; p50 ratios: wildcard {:.2}, per-id {:.2}",
        ratio(stats(&lat.wildcard_signed)),
        stats(&lat.wildcard).p50 / plain.p50,
        stats(&lat.per_id).p50 / plain.p50
    );
    println!("(latency phase took {:.1} s)", latency_time.as_secs_f64());

    println!("\n== 2. disconnect storm (Wildcard) ==");
    let s = &storm_result;
    let wall = s.all_closed.map_or(s.reports_done, |c| c.max(s.reports_done));
    println!(
        "{} ids, {} connections ({} on c, {} also on b); tasks spawned in {:.1} ms",
        s.ids,
        s.connections,
        s.ids,
        s.connections - s.ids,
        s.spawned.as_secs_f64() * 1e3
    );
    println!(
        "all connections closed: {} ({} / {})",
        s.all_closed.map_or("NO".to_string(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3)),
        s.closed,
        s.connections
    );
    println!(
        "all reports back: {:.0} ms; complete {} / {}; connections acknowledged {}; errors {}",
        s.reports_done.as_secs_f64() * 1e3,
        s.complete,
        s.ids,
        s.acked_connections,
        s.errors
    );
    let storm_ok = wall <= Duration::from_secs(1)
        && s.complete == s.ids
        && s.closed == s.connections
        && s.acked_connections == s.connections as u64;
    println!(
        "storm wall time {:.0} ms (budget <= 1000 ms, all closed and acknowledged): {}",
        wall.as_secs_f64() * 1e3,
        verdict(storm_ok)
    );
    if wall <= Duration::from_secs(1) {
        println!("  margin {:.0} ms", (Duration::from_secs(1) - wall).as_secs_f64() * 1e3);
    }
    println!(
        "  (PerId: not run; its disconnect() returns only at its deadline, since nodes without the id never answer)"
    );
    if !storm_ok && wall > Duration::from_secs(1) {
        println!(
            "  missed by {:.0} ms ({:.2}x the budget)",
            (wall - Duration::from_secs(1)).as_secs_f64() * 1e3,
            wall.as_secs_f64()
        );
    }
    println!("where the time goes:");
    println!(
        "  sign one control message (id draw + postcard + HMAC): {:.2} µs; verify one (incl. replay guard): {:.2} µs",
        sign.as_secs_f64() * 1e6,
        verify.as_secs_f64() * 1e6
    );
    let crypto = s.ids as f64 * (4.0 * sign.as_secs_f64() + 6.0 * verify.as_secs_f64());
    println!(
        "  the storm signs 4 and verifies 6 messages per id (command + 3 acks; 3 command checks + 3 ack checks at a): \
         {:.0} ms of CPU in all",
        crypto * 1e3
    );
    println!(
        "  same pattern on plain NATS, no crypto (subscribe inbox, flush, publish with reply, 3 answers), {} ids:",
        scale.storm
    );
    println!(
        "    responders on <prefix>.> (as Wildcard nodes; every ack also reaches every node): {:.0} ms, complete {}",
        plain_storm_wide.0.as_secs_f64() * 1e3,
        plain_storm_wide.1
    );
    println!(
        "    responders on <prefix>.socket.* (acks reach only the requester):              {:.0} ms, complete {}",
        plain_storm_narrow.0.as_secs_f64() * 1e3,
        plain_storm_narrow.1
    );
    println!(
        "    ... and one shared inbox subscription instead of one per request:             {:.0} ms, complete {}",
        plain_storm_muxed.0.as_secs_f64() * 1e3,
        plain_storm_muxed.1
    );

    println!("\n== 3. memory per registered connection (counting allocator, requested bytes) ==");
    println!("{:<66} {:>10} {:>8}", "what (per connection / id)", "bytes", "blocks");
    let memory_rows = [
        ("the id's own String (LiveSocketId clone, measured)", id_cost),
        ("Wildcard: Node::register, beyond the id", wildcard_cost),
        ("PerId: Node::register incl. its NATS subscription, beyond the id", per_id_cost),
        ("plain async-nats Client::subscribe (client side)", nats_sub_cost),
    ];
    for (name, (bytes, blocks)) in memory_rows {
        println!("{:<66} {:>10.0} {:>8.2}", name, bytes, blocks);
    }
    println!(
        "(ids are {id_len:.0} bytes; {n} connections per mode; PerId registration took {:.0} ms)",
        per_id_register_time.as_secs_f64() * 1e3
    );
    println!(
        "Wildcard = the registry entry (connection number, key id, shared close slot) and the id's map key, shared by its connections"
    );
    println!("PerId interest beyond the Wildcard registry: {:.0} B per id", per_id_cost.0 - wildcard_cost.0);
    println!(
        "(size_of::<async_nats::Message>() = {} B: a subscriber's channel allocates a first block of 32 of them)",
        std::mem::size_of::<async_nats::Message>()
    );
    println!("DESIGN.md preliminary figures: ~4900 B client memory per NATS subscription, ~160 B per registry entry");
    println!(
        "Wildcard registry {:.0} B beyond the id (budget <= 256 B): {}",
        wildcard_cost.0,
        verdict(wildcard_cost.0 <= 256.0)
    );
    println!(
        "PerId registry    {:.0} B beyond the id (budget <= 256 B): {}",
        per_id_cost.0,
        verdict(per_id_cost.0 <= 256.0)
    );

    println!(
        "\n== register-then-disconnect race (invariant 9): fresh id registered on c, a.disconnect() as soon as \
         register() returns; lost = no Close within 250 ms nor 1 s later; stops after 10 lost =="
    );
    println!(
        "Wildcard: {} of {} disconnects published right after register() returned never closed the connection",
        race_wildcard.0, race_wildcard.1
    );
    println!(
        "PerId:    {} of {} disconnects published right after register() returned never closed the connection{}",
        race_per_id.0,
        race_per_id.1,
        if race_per_id.0 > 0 { "  <- INVARIANT 9 BROKEN" } else { "" }
    );
    println!(
        "PerId disconnect of an id no node holds: {unknown_answered} answers over {unknown} disconnects, \
         {:.0} ms each (= the 100 ms deadline), {unknown_refused} ControlRefused audit records",
        unknown_time.as_secs_f64() * 1e3
    );
    println!(
        "\ncontrol messages refused by nodes: {refused}, of which {} with an empty payload \
         (NATS 503 no-responders status messages on a PerId inbox, audited as invalid control messages)",
        audit.empty.load(Ordering::Relaxed)
    );
    for reason in audit.reasons.lock().unwrap().iter() {
        println!("  {reason}");
    }
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    // The nodes' drivers and clients go with the runtime; the servers are
    // killed when `cluster` drops.
    drop(cluster);
}
