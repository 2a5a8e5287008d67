//! The cluster over a real 3-server JetStream cluster (nats-server from PATH or
//! /usr/sbin, started by `tests/support/nats.rs`), three liveguard nodes, one
//! per server, each under its own NATS user. Measured in this one run:
//!
//! - logout → close on another node: `disconnect` on node-0 of an id held on
//!   node-2, until node-2's connection is told to close; p99 against the p99
//!   of a plain core-NATS publish from server 0 to a subscriber on server 2
//!   (same payload size, samples interleaved). Budget ≤ 3×. A JetStream
//!   append (publish + stream acknowledgement) is measured alongside: it is
//!   the durable part of the path;
//! - storm: 10k revocations issued at once on node-0 for ids held across the
//!   three nodes, until every node applied every one and every connection
//!   closed. Budget ≤ 1 s;
//! - catch-up: node-2's server is killed, 10k revocations of ids held on
//!   node-2 are made durable on the other two servers, the outage lasts 60 s,
//!   the server restarts: from its restart until node-2 closed all 10k.
//!   Budget ≤ 1 s;
//! - registry: bytes per registered connection (this binary's counting
//!   allocator: requested bytes, no malloc overhead).
//!
//! `cargo bench --bench cluster --features nats` measures (about 90 s);
//! without cargo's `--bench` argument (`cargo test --benches --features
//! nats`) or with `-- --test` everything runs once at a small scale.

#[path = "../tests/support/nats.rs"]
mod nats_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use futures_util::StreamExt as _;
use liveguard::audit::NoAudit;
use liveguard::cluster::backbone::Backbone;
use liveguard::cluster::control::{Command, ControlCodec, ControlMessage, MessageId, Revocation};
use liveguard::cluster::nats::Nats;
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::cluster::registry::{CloseReason, ConnectionCommand, ConnectionEvents, Registration};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::socket_id::LiveSocketId;
use liveguard::{OsRandom, Timestamp};
use nats_support::{NatsCluster, node_inbox, node_user};

// ---------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------

/// `System`, counting the bytes currently allocated (requested sizes) across
/// every thread, async-nats' and tokio's included.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

fn size_of_layout(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap_or(isize::MAX)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(size_of_layout(layout), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(size_of_layout(layout), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(size_of_layout(layout), Ordering::Relaxed);
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

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------
// Scale, fixtures
// ---------------------------------------------------------------------------

struct Scale {
    /// Connections registered for the memory figure.
    conns: usize,
    /// Latency samples per case, after `warmup` unrecorded rounds.
    samples: usize,
    warmup: usize,
    /// Revocations in the storm and in the catch-up.
    storm: usize,
    /// How long node-2's server stays down in the catch-up.
    outage: Duration,
}

const FULL: Scale = Scale { conns: 10_000, samples: 1_000, warmup: 50, storm: 10_000, outage: Duration::from_secs(60) };
const QUICK: Scale = Scale { conns: 300, samples: 30, warmup: 3, storm: 300, outage: Duration::from_secs(1) };

const WAIT: Duration = Duration::from_secs(10);
const PLAIN: &str = "liveguard.member.node-0";

fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new((0u8..64).map(|i| i.wrapping_mul(29) ^ 0x5c).collect()).unwrap())
}

/// A `live_socket_id` as phx.gen.auth writes it: `"users_sessions:" <>
/// Base.url_encode64(<32 random bytes>)`, distinct per `(set, i)`.
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

fn options(index: usize) -> async_nats::ConnectOptions {
    let user = node_user(index);
    async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
        .custom_inbox_prefix(node_inbox(index))
        // Node-2 must be cut off when its server is down, not fail over.
        .ignore_discovered_servers()
}

async fn start_node(index: usize, url: &str) -> Arc<Node> {
    let backbone: Arc<dyn Backbone> = Arc::new(Nats::connect(url, options(index)).await.expect("connect to nats"));
    Node::start(NodeConfig::new(node_user(index).user), &ring(), backbone, Arc::new(NoAudit)).await.expect("node")
}

type Held = (Registration, ConnectionEvents);

const CLOSED: Option<ConnectionCommand> = Some(ConnectionCommand::Close(CloseReason::Disconnected));

// ---------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Percentiles in µs (nearest rank).
fn stats(samples: &[Duration]) -> Stats {
    if samples.is_empty() {
        return Stats::default();
    }
    let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let rank = |q: f64| us[((q * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1];
    Stats { p50: rank(0.50), p99: rank(0.99), max: us[us.len() - 1] }
}

fn row(name: &str, samples: &[Duration]) -> Stats {
    let s = stats(samples);
    println!(
        "  {name:<44} p50 {:>8.0} µs  p99 {:>8.0} µs  max {:>8.0} µs  (n = {})",
        s.p50,
        s.p99,
        s.max,
        samples.len()
    );
    s
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "BUDGET MISSED" }
}

/// Polls `check` every millisecond until it holds or `WAIT` passes; the
/// time it took.
async fn until(mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if check() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        return;
    }
    let quick = has("--test") || !has("--bench");
    let scale = if quick { QUICK } else { FULL };
    let cluster = NatsCluster::start(3).expect("a 3-server nats-server cluster");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(&scale, quick, cluster));
}

async fn run(scale: &Scale, quick: bool, mut cluster: NatsCluster) {
    let urls = cluster.client_urls();
    let version = cluster.node(0).monitor("varz").ok().and_then(|v| v.get("version").map(|v| v.to_string()));
    println!(
        "cluster bench: 3 nats-server {} with JetStream (R3 file stream, loopback), 3 liveguard nodes, scale {}",
        version.unwrap_or_default(),
        if quick { "QUICK (test run, numbers meaningless)" } else { "full" }
    );
    let nodes = [start_node(0, &urls[0]).await, start_node(1, &urls[1]).await, start_node(2, &urls[2]).await];
    until(|| nodes.iter().all(|n| n.members().len() == 3)).await.expect("membership");
    let [a, _b, c] = &nodes;

    // -- Registry memory, first, while nothing else runs but heartbeats.
    let n = scale.conns;
    let mut ids: Vec<LiveSocketId> = (0..n).map(|i| session_id(1, i)).collect();
    let mut held: Vec<Held> = Vec::with_capacity(n);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = live_bytes();
    for id in ids.drain(..) {
        held.push(c.register(id, KeyId(1)).expect("register"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_conn = (live_bytes() - before) as f64 / n as f64;
    println!("registry: {per_conn:.0} B per registered connection on a node (N = {n}, the id's own String included)");
    drop(held);

    // -- Latency, interleaved: plain publish, JetStream append, liveguard.
    let plain0 = options(0).connect(&urls[0]).await.unwrap();
    let plain2 = options(2).connect(&urls[2]).await.unwrap();
    let mut plain_sub = plain2.subscribe(PLAIN).await.unwrap();
    plain2.flush().await.unwrap();
    let jetstream = async_nats::jetstream::new(plain0.clone());
    let payload_len = {
        let message = ControlMessage {
            id: MessageId::random(&mut OsRandom).unwrap(),
            node: "node-0".into(),
            command: Command::Revoke(Revocation::Disconnect(session_id(2, 0))),
        };
        ControlCodec::new(&ring()).encode(&message, Timestamp::now()).unwrap().len()
    };
    let payload = vec![b'x'; payload_len];
    // Appends of the baseline go to a subject of the revocation stream that
    // no id can name (`_` is not in the id alphabet's subject encoding), and
    // are refused by every node as junk.
    let js_subject = "liveguard.socket._".to_string();
    // Let the plain subscription's interest reach server 0.
    until(|| true).await;
    for _ in 0..100 {
        plain0.publish(PLAIN, payload.clone().into()).await.unwrap();
        plain0.flush().await.unwrap();
        if tokio::time::timeout(Duration::from_millis(50), plain_sub.next()).await.is_ok() {
            break;
        }
    }

    let rounds = scale.warmup + scale.samples;
    let (mut plain, mut append, mut closed, mut reported) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut lost = 0;
    for round in 0..rounds {
        let record = round >= scale.warmup;
        for case in (0..3).map(|k| (k + round) % 3) {
            match case {
                0 => {
                    let t0 = Instant::now();
                    plain0.publish(PLAIN, payload.clone().into()).await.unwrap();
                    plain0.flush().await.unwrap();
                    match tokio::time::timeout(Duration::from_secs(2), plain_sub.next()).await {
                        Ok(Some(_)) if record => plain.push(t0.elapsed()),
                        Ok(Some(_)) => {}
                        _ => lost += 1,
                    }
                }
                1 => {
                    let t0 = Instant::now();
                    let ack = jetstream.publish(js_subject.clone(), payload.clone().into()).await.unwrap();
                    ack.await.expect("appended");
                    if record {
                        append.push(t0.elapsed());
                    }
                }
                _ => {
                    let id = session_id(3, round);
                    let (_registration, mut events) = c.register(id.clone(), KeyId(1)).unwrap();
                    let t0 = Instant::now();
                    let close = async {
                        let seen = tokio::time::timeout(Duration::from_secs(2), events.recv()).await;
                        (seen.ok().flatten(), t0.elapsed())
                    };
                    let (report, (command, close_at)) = tokio::join!(a.disconnect(&id, WAIT), close);
                    let report = report.expect("durable");
                    let report_at = t0.elapsed();
                    if command != CLOSED || !report.complete() {
                        lost += 1;
                    } else if record {
                        closed.push(close_at);
                        reported.push(report_at);
                    }
                }
            }
        }
    }
    println!("latency ({} rounds interleaved, {} warm-up; {lost} lost or incomplete):", scale.samples, scale.warmup);
    let plain = row("plain core-NATS publish, server 0 → 2", &plain);
    let append = row("JetStream append (R3, publish + ack)", &append);
    let closed = row("liveguard logout on node-0 → close on node-2", &closed);
    row("liveguard disconnect() returns, report complete", &reported);
    let ratio = closed.p99 / plain.p99;
    println!(
        "  close p99 / plain publish p99 = {ratio:.2}× (budget ≤ 3×: {}); append p99 / plain p99 = {:.2}×",
        verdict(ratio <= 3.0),
        append.p99 / plain.p99
    );

    // -- Storm: revocations at once on node-0, ids held across the three.
    let m = scale.storm;
    let storm_ids: Vec<LiveSocketId> = (0..m).map(|i| session_id(4, i)).collect();
    let mut storm_held = Vec::with_capacity(m);
    for (i, id) in storm_ids.iter().enumerate() {
        storm_held.push(nodes[i % 3].register(id.clone(), KeyId(1)).unwrap());
    }
    let end_before = a.applied();
    let t0 = Instant::now();
    let issued: Vec<_> = storm_ids.iter().map(|id| a.disconnect(id, WAIT)).collect();
    let reports = futures_util::future::join_all(issued).await;
    let all_reported = t0.elapsed();
    let durable = reports.iter().filter(|r| r.is_ok()).count();
    let complete = reports.iter().filter(|r| r.as_ref().is_ok_and(|r| r.complete())).count();
    let target = end_before + m as u64;
    let applied_everywhere = until(|| nodes.iter().all(|n| n.applied() >= target)).await.map(|d| d + all_reported);
    let mut closes = 0;
    for (_, events) in &mut storm_held {
        if events.try_recv() == CLOSED {
            closes += 1;
        }
    }
    let applied = applied_everywhere.map_or(f64::INFINITY, |d| d.as_secs_f64());
    println!(
        "storm: {m} revocations issued at once on node-0 (ids on all three nodes): {durable} durable, {complete} reports \
         complete, {closes}/{m} connections closed; every report in {:.0} ms, applied on every node in {:.0} ms \
         (budget ≤ 1 s: {})",
        all_reported.as_secs_f64() * 1e3,
        applied * 1e3,
        verdict(applied <= 1.0 && closes == m && durable == m)
    );
    drop(storm_held);

    // -- Catch-up: node-2 cut off while the revocations are made durable.
    let missed: Vec<LiveSocketId> = (0..m).map(|i| session_id(5, i)).collect();
    let mut missed_held: Vec<Held> = missed.iter().map(|id| c.register(id.clone(), KeyId(1)).unwrap()).collect();
    tokio::task::block_in_place(|| cluster.kill(2)).expect("kill server 2");
    let outage_started = Instant::now();
    let issued: Vec<_> = missed.iter().map(|id| a.disconnect(id, Duration::from_millis(200))).collect();
    let durable = futures_util::future::join_all(issued).await.iter().filter(|r| r.is_ok()).count();
    let remaining = scale.outage.saturating_sub(outage_started.elapsed());
    tokio::time::sleep(remaining).await;
    let mut still_open = 0;
    for (_, events) in &mut missed_held {
        if events.try_recv().is_none() {
            still_open += 1;
        }
    }
    tokio::task::block_in_place(|| cluster.restart(2)).expect("restart server 2");
    let t0 = Instant::now();
    let mut open = still_open;
    let caught_up = until(|| {
        for (_, events) in &mut missed_held {
            if events.try_recv() == CLOSED {
                open -= 1;
            }
        }
        open == 0
    })
    .await
    .map(|_| t0.elapsed());
    let caught = caught_up.map_or(f64::INFINITY, |d| d.as_secs_f64());
    println!(
        "catch-up: server 2 down {:.0} s while {durable}/{m} revocations of ids on node-2 became durable ({still_open} \
         of its connections still open at the restart); all closed {:.0} ms after the server was back (budget ≤ 1 s: {})",
        scale.outage.as_secs_f64(),
        caught * 1e3,
        verdict(caught <= 1.0 && durable == m && still_open == m)
    );
    drop(nodes);
}
