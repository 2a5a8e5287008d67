//! Nodes on a real 3-server JetStream cluster (Debian's nats-server), each
//! node under its own NATS user from `nats.conf`: revocations recorded in the
//! stream and applied by every node, reports that name every member, forged
//! entries refused, and a node that was away catching up from its position.
//! The faults (freeze, kill -9, cut routes, floods) are in `tests/chaos.rs`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use liveguard::audit::{AuditRecord, MemorySink};
use liveguard::cluster::backbone::Backbone;
use liveguard::cluster::control::{Command, ControlCodec, ControlMessage, MessageId, Revocation};
use liveguard::cluster::nats::Nats;
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::cluster::protocol::{ClusterEvent, Subjects};
use liveguard::cluster::registry::{CloseReason, ConnectionCommand, ConnectionEvents};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::socket_id::LiveSocketId;
use liveguard::{OsRandom, Timestamp};
use support::nats::{NatsCluster, node_inbox, node_user};

const WAIT: Duration = Duration::from_secs(10);

fn ring(byte: u8) -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new(vec![byte; 64]).unwrap())
}

fn id(s: &str) -> LiveSocketId {
    LiveSocketId::new(s).unwrap()
}

/// Node `index`'s connection options: its own user and reply inbox, and
/// only the servers it is given (the client would otherwise move to the
/// servers the cluster announces).
fn options(index: usize) -> async_nats::ConnectOptions {
    let user = node_user(index);
    async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
        .custom_inbox_prefix(node_inbox(index))
        .ignore_discovered_servers()
}

/// Node `index` (named `node-<index>`) connected to `urls`.
async fn node(index: usize, urls: &str, audit: &Arc<MemorySink>) -> Arc<Node> {
    let backbone: Arc<dyn Backbone> = Arc::new(Nats::connect(urls, options(index)).await.unwrap());
    let config = NodeConfig::new(&format!("node-{index}"))
        .heartbeat_interval(Duration::from_millis(100))
        .member_timeout(Duration::from_secs(1));
    Node::start(config, &ring(1), backbone, audit.clone()).await.unwrap()
}

/// A 3-server cluster and one node per server, each told its own server
/// only (no failover), so a test knows which server carries which node.
async fn three_nodes(audit: &Arc<MemorySink>) -> (NatsCluster, [Arc<Node>; 3]) {
    let cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await.unwrap().expect("3 nats-servers");
    let mut nodes = Vec::new();
    for index in 0..3 {
        nodes.push(node(index, &cluster.node(index).client_url(), audit).await);
    }
    let nodes: [Arc<Node>; 3] = nodes.try_into().unwrap_or_else(|_| unreachable!());
    for node in &nodes {
        assert!(eventually(|| node.members().len() == 3).await, "{} sees {:?}", node.name(), node.members());
    }
    (cluster, nodes)
}

async fn next(events: &mut ConnectionEvents) -> Option<ConnectionCommand> {
    tokio::time::timeout(WAIT, events.recv()).await.ok().flatten()
}

/// Polls `check` until it holds or [`WAIT`] passes.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < until {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

const CLOSED: Option<ConnectionCommand> = Some(ConnectionCommand::Close(CloseReason::Disconnected));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_on_one_node_closes_the_id_on_every_node_and_nothing_else() {
    let audit = Arc::new(MemorySink::new());
    let (_cluster, [a, b, c]) = three_nodes(&audit).await;
    let (_r0, mut on_a) = a.register(id("users_sessions:alice"), KeyId(1)).unwrap();
    let (_r1, mut on_b) = b.register(id("users_sessions:alice"), KeyId(1)).unwrap();
    let (_r2, mut on_c) = c.register(id("users_sessions:alice"), KeyId(1)).unwrap();
    let (_r3, mut bob) = c.register(id("users_sessions:bob"), KeyId(1)).unwrap();

    let report = a.disconnect(&id("users_sessions:alice"), WAIT).await.expect("durable and acknowledged");
    assert!(report.complete(), "{report:?}");
    assert_eq!(report.position, 1, "the first entry of the stream");
    assert_eq!(report.connections(), 3, "{report:?}");
    for name in ["node-0", "node-1", "node-2"] {
        assert_eq!(report.applied.get(name), Some(&Some(1)), "{name}: {report:?}");
    }
    assert_eq!((next(&mut on_a).await, next(&mut on_b).await, next(&mut on_c).await), (CLOSED, CLOSED, CLOSED));
    assert_eq!(bob.try_recv(), None, "bob's session is untouched");
    assert!(eventually(|| [&a, &b, &c].iter().all(|n| n.applied() == 1)).await, "every node applied entry 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthorize_and_retire_key_reach_every_node() {
    let audit = Arc::new(MemorySink::new());
    let (_cluster, [a, b, c]) = three_nodes(&audit).await;
    let (_r1, mut on_b) = b.register(id("s1"), KeyId(1)).unwrap();
    let (_r2, mut old_key) = c.register(id("s2"), KeyId(7)).unwrap();
    let (_r3, mut new_key) = c.register(id("s3"), KeyId(1)).unwrap();

    let report = a.reauthorize(&id("s1"), WAIT).await.expect("reauthorize");
    assert!(report.complete(), "{report:?}");
    assert_eq!(next(&mut on_b).await, Some(ConnectionCommand::Reauthorize));

    let report = b.retire_key(KeyId(7), WAIT).await.expect("retire");
    assert!(report.complete(), "{report:?}");
    assert_eq!(report.position, 2);
    assert_eq!(next(&mut old_key).await, Some(ConnectionCommand::Close(CloseReason::KeyRetired)));
    assert_eq!(new_key.try_recv(), None, "connections under other keys stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_entries_in_the_stream_change_nothing() {
    let audit = Arc::new(MemorySink::new());
    let (cluster, [a, b, _c]) = three_nodes(&audit).await;
    let (_r, mut on_b) = b.register(id("victim"), KeyId(1)).unwrap();

    // node-0's credentials may append to the stream: an attacker holding
    // them appends a revocation MAC'd under another key, and junk.
    let thief = Nats::connect(&cluster.node(0).client_url(), options(0)).await.unwrap();
    let jetstream = async_nats::jetstream::new(thief.client().clone());
    let subject = Subjects::new("liveguard").socket(&id("victim"));
    let wrong = ControlCodec::new(&ring(9));
    let forged = ControlMessage {
        id: MessageId::random(&mut OsRandom).unwrap(),
        node: "node-0".into(),
        command: Command::Revoke(Revocation::Disconnect(id("victim"))),
    };
    let bytes = wrong.encode(&forged, Timestamp::from_unix_secs(1_700_000_000)).unwrap().into_bytes();
    for payload in [bytes, b"junk".to_vec(), vec![0; 1024]] {
        jetstream.publish(subject.clone(), payload.into()).await.unwrap().await.expect("appended");
    }
    assert!(eventually(|| b.applied() >= 3).await, "node-1 read past the forged entries: {}", b.applied());
    assert_eq!(on_b.try_recv(), None, "the forgery closed nothing");
    let refused =
        audit.take().iter().filter(|r| matches!(r, AuditRecord::Cluster(ClusterEvent::Refused { .. }))).count();
    assert!(refused >= 3, "each node audits the refused entries: {refused}");

    // The real one still works, at the next position.
    let report = a.disconnect(&id("victim"), WAIT).await.unwrap();
    assert_eq!(report.position, 4);
    assert_eq!(next(&mut on_b).await, CLOSED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_from_the_cluster_catches_up_when_its_server_returns() {
    let audit = Arc::new(MemorySink::new());
    let (mut cluster, [a, _b, c]) = three_nodes(&audit).await;
    let (_r, mut on_c) = c.register(id("alice"), KeyId(1)).unwrap();

    // node-2's only server goes down: node-2 hears nothing.
    tokio::task::block_in_place(|| cluster.kill(2)).unwrap();
    // The deadline covers a stream leader election if server 2 led the stream.
    let report = a.disconnect(&id("alice"), Duration::from_secs(10)).await.expect("durable on the majority");
    assert!(!report.complete(), "node-2 cannot have acknowledged: {report:?}");
    assert!(report.silent.contains(&"node-2".to_string()) || report.applied.get("node-2") == Some(&None), "{report:?}");

    // Back: it reads the stream from its own position and closes alice.
    tokio::task::block_in_place(|| cluster.restart(2)).unwrap();
    assert_eq!(next(&mut on_c).await, CLOSED, "node-2 applied the revocation it missed");
    assert!(eventually(|| c.applied() == 1).await);
}
