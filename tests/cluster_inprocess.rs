//! Nodes over the in-process backbone: durable, acknowledged disconnects,
//! in-place re-authorization, key retirement, library-run membership, and
//! log entries that are forged, replayed or misrouted.

use std::sync::Arc;
use std::time::Duration;

use liveguard::audit::{AuditRecord, MemorySink};
use liveguard::cluster::backbone::{Backbone, InProcess, Log};
use liveguard::cluster::control::{Command, ControlCodec, ControlMessage, MessageId, Revocation};
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::cluster::protocol::{ClusterEvent, Subjects};
use liveguard::cluster::registry::{CloseReason, ConnectionCommand, ConnectionEvents};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::socket_id::LiveSocketId;
use liveguard::{OsRandom, Timestamp};

const WAIT: Duration = Duration::from_secs(5);

fn ring(byte: u8) -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new(vec![byte; 64]).unwrap())
}

fn id(s: &str) -> LiveSocketId {
    LiveSocketId::new(s).unwrap()
}

async fn node(name: &str, backbone: &InProcess, audit: &Arc<MemorySink>) -> Arc<Node> {
    let backbone: Arc<dyn Backbone> = Arc::new(backbone.clone());
    let config =
        NodeConfig::new(name).heartbeat_interval(Duration::from_millis(50)).member_timeout(Duration::from_secs(1));
    Node::start(config, &ring(1), backbone, audit.clone()).await.unwrap()
}

async fn next(events: &mut ConnectionEvents) -> Option<ConnectionCommand> {
    tokio::time::timeout(WAIT, events.recv()).await.ok().flatten()
}

/// Polls `check` until it holds or five seconds pass.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < until {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

#[tokio::test]
async fn a_disconnect_closes_every_tab_of_the_id_and_is_durable() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let a = node("a", &backbone, &audit).await;
    let (_t1, mut tab1) = a.register(id("users_sessions:alice"), KeyId(1)).unwrap();
    let (_t2, mut tab2) = a.register(id("users_sessions:alice"), KeyId(1)).unwrap();
    let (_b, mut bob) = a.register(id("users_sessions:bob"), KeyId(1)).unwrap();
    let report = a.disconnect(&id("users_sessions:alice"), WAIT).await.unwrap();
    assert_eq!(report.applied.get("a"), Some(&Some(2)));
    assert!(report.complete(), "{report:?}");
    assert_eq!((report.connections(), report.position), (2, 1));
    assert_eq!(backbone.end().await.unwrap(), 1, "the revocation is in the log");
    let closed = Some(ConnectionCommand::Close(CloseReason::Disconnected));
    assert_eq!((next(&mut tab1).await, next(&mut tab2).await), (closed, closed));
    assert_eq!(bob.try_recv(), None, "other users are untouched");
    let records = audit.take();
    let issued = records.iter().any(|r| matches!(r, AuditRecord::Cluster(ClusterEvent::Issued { connections: 2, .. })));
    let durable = records.iter().any(|r| matches!(r, AuditRecord::Cluster(ClusterEvent::Durable { position: 1, .. })));
    assert!(issued && durable, "{records:?}");
}

#[tokio::test]
async fn every_node_applies_it_and_silent_members_are_named() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let (a, b, c) =
        (node("a", &backbone, &audit).await, node("b", &backbone, &audit).await, node("c", &backbone, &audit).await);
    let (_x, mut on_b) = b.register(id("s1"), KeyId(1)).unwrap();
    let (_y, mut on_c) = c.register(id("s1"), KeyId(1)).unwrap();
    // Membership is the nodes' own: nobody calls a heartbeat.
    assert!(eventually(|| a.members() == ["a", "b", "c"]).await, "{:?}", a.members());
    let report = a.disconnect(&id("s1"), WAIT).await.unwrap();
    assert_eq!(report.applied, [("a".into(), Some(0)), ("b".into(), Some(1)), ("c".into(), Some(1))].into());
    assert!(report.complete());
    assert_eq!(next(&mut on_b).await, Some(ConnectionCommand::Close(CloseReason::Disconnected)));
    assert_eq!(next(&mut on_c).await, Some(ConnectionCommand::Close(CloseReason::Disconnected)));

    // A member whose node is gone is named once the deadline passes, and
    // forgotten once its heartbeats stop counting.
    drop(c);
    let report = a.disconnect(&id("s2"), Duration::from_millis(300)).await.unwrap();
    assert_eq!(report.silent, ["c"]);
    assert!(!report.complete());
    assert!(eventually(|| a.members() == ["a", "b"]).await, "{:?}", a.members());
}

#[tokio::test]
async fn reauthorize_and_retire_key_reach_only_their_connections() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let (a, b) = (node("a", &backbone, &audit).await, node("b", &backbone, &audit).await);
    let (_old, mut old_key) = b.register(id("s1"), KeyId(1)).unwrap();
    let (_new, mut new_key) = b.register(id("s2"), KeyId(2)).unwrap();
    assert!(eventually(|| a.members().len() == 2).await);
    let report = a.reauthorize(&id("s2"), WAIT).await.unwrap();
    assert_eq!(report.connections(), 1);
    assert_eq!(next(&mut new_key).await, Some(ConnectionCommand::Reauthorize));
    let report = a.retire_key(KeyId(1), WAIT).await.unwrap();
    assert_eq!(report.connections(), 1);
    assert_eq!(next(&mut old_key).await, Some(ConnectionCommand::Close(CloseReason::KeyRetired)));
    assert_eq!(new_key.try_recv(), None);
    assert_eq!((a.applied(), b.applied()), (2, 2), "both nodes applied both, in order");
}

#[tokio::test]
async fn forged_replayed_and_misrouted_entries_are_ignored_and_audited() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let a = node("a", &backbone, &audit).await;
    let (_t, mut tab) = a.register(id("victim"), KeyId(1)).unwrap();
    let subjects = Subjects::new("liveguard");
    let victim = subjects.socket(&id("victim"));
    let now = Timestamp::now();
    let message =
        |command| ControlMessage { id: MessageId::random(&mut OsRandom).unwrap(), node: "evil".into(), command };
    let append = |subject: String, payload: Vec<u8>| {
        let backbone = backbone.clone();
        async move { backbone.append(subject, MessageId::random(&mut OsRandom).unwrap(), payload).await.unwrap() }
    };
    let disconnect = |who: &str| Command::Revoke(Revocation::Disconnect(id(who)));

    // Forged: signed with a key the cluster does not hold.
    let forged = ControlCodec::new(&ring(9)).encode(&message(disconnect("victim")), now).unwrap();
    append(victim.clone(), forged.into_bytes()).await;
    // Garbage.
    append(victim.clone(), b"\xff not a token".to_vec()).await;
    // Genuine, but for another id than the subject it was logged under.
    let genuine = ControlCodec::new(&ring(1));
    let misrouted = genuine.encode(&message(disconnect("someone-else")), now).unwrap();
    append(victim.clone(), misrouted.into_bytes()).await;
    let mut refused = Vec::new();
    assert!(
        eventually(|| {
            refused.extend(
                audit.take().into_iter().filter(|r| matches!(r, AuditRecord::Cluster(ClusterEvent::Refused { .. }))),
            );
            refused.len() >= 3
        })
        .await,
        "{refused:?}"
    );
    let reasons: Vec<String> = refused.iter().map(ToString::to_string).collect();
    assert!(reasons[0].contains("tag does not verify"), "{reasons:?}");
    assert!(reasons[1].contains("invalid control message"), "{reasons:?}");
    assert!(reasons[2].contains("does not match its body"), "{reasons:?}");
    assert_eq!(tab.try_recv(), None, "nothing was closed by them");
    assert_eq!(a.applied(), 3, "refused entries are passed over, once");

    // Replayed: a genuine revocation, appended again later (a new log
    // position, the same message id) after the user logged in anew.
    let original = message(disconnect("victim"));
    let wire = genuine.encode(&original, now).unwrap();
    append(victim.clone(), wire.clone().into_bytes()).await;
    assert_eq!(next(&mut tab).await, Some(ConnectionCommand::Close(CloseReason::Disconnected)));
    let (_again, mut new_tab) = a.register(id("victim"), KeyId(1)).unwrap();
    append(victim, wire.into_bytes()).await;
    assert!(eventually(|| a.applied() == 5).await);
    assert_eq!(new_tab.try_recv(), None, "the replay closed nothing");
}
