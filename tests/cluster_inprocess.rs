//! Nodes over the in-process backbone: acknowledged disconnects, in-place
//! re-authorization, key retirement, membership, and control messages that
//! are forged, replayed or misrouted.

use std::sync::Arc;
use std::time::Duration;

use liveguard::audit::{AuditRecord, MemorySink};
use liveguard::cluster::backbone::{Backbone, InProcess};
use liveguard::cluster::control::{Command, ControlCodec, ControlMessage, MessageId};
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::cluster::registry::{CloseReason, ConnectionCommand, ConnectionEvents};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::socket_id::{LiveSocketId, subject};
use liveguard::{OsRandom, Timestamp};

fn ring(byte: u8) -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new(vec![byte; 64]).unwrap())
}

fn id(s: &str) -> LiveSocketId {
    LiveSocketId::new(s).unwrap()
}

fn deadline() -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_secs(5))
}

async fn node(name: &str, backbone: &InProcess, audit: &Arc<MemorySink>) -> Arc<Node> {
    let backbone: Arc<dyn Backbone> = Arc::new(backbone.clone());
    let (node, driver) = Node::start(NodeConfig::new(name), &ring(1), backbone, audit.clone()).await.unwrap();
    tokio::spawn(driver);
    node
}

async fn next(events: &mut ConnectionEvents) -> Option<ConnectionCommand> {
    tokio::time::timeout(Duration::from_secs(5), events.recv()).await.ok().flatten()
}

/// Polls `check` until it holds or five seconds pass.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

#[tokio::test]
async fn a_disconnect_closes_every_tab_of_the_id_and_is_acknowledged() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let a = node("a", &backbone, &audit).await;
    let (_t1, mut tab1) = a.register(id("users_sessions:alice"), KeyId(1)).await.unwrap();
    let (_t2, mut tab2) = a.register(id("users_sessions:alice"), KeyId(1)).await.unwrap();
    let (_b, mut bob) = a.register(id("users_sessions:bob"), KeyId(1)).await.unwrap();
    let report = a.disconnect(&id("users_sessions:alice"), deadline()).await.unwrap();
    assert_eq!(report.answered.get("a"), Some(&2));
    assert!(report.complete(), "{report:?}");
    assert_eq!(report.connections(), 2);
    let closed = Some(ConnectionCommand::Close(CloseReason::Disconnected));
    assert_eq!((next(&mut tab1).await, next(&mut tab2).await), (closed, closed));
    assert_eq!(bob.try_recv(), None, "other users are untouched");
}

#[tokio::test]
async fn every_node_on_the_backbone_answers_and_silent_members_are_named() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let (a, b, c) =
        (node("a", &backbone, &audit).await, node("b", &backbone, &audit).await, node("c", &backbone, &audit).await);
    let (_x, mut on_b) = b.register(id("s1"), KeyId(1)).await.unwrap();
    let (_y, mut on_c) = c.register(id("s1"), KeyId(1)).await.unwrap();
    b.heartbeat().await.unwrap();
    c.heartbeat().await.unwrap();
    assert!(eventually(|| a.members() == ["a", "b", "c"]).await, "{:?}", a.members());
    let report = a.disconnect(&id("s1"), deadline()).await.unwrap();
    assert_eq!(report.answered, [("a".into(), 0), ("b".into(), 1), ("c".into(), 1)].into());
    assert!(report.complete());
    assert_eq!(next(&mut on_b).await, Some(ConnectionCommand::Close(CloseReason::Disconnected)));
    assert_eq!(next(&mut on_c).await, Some(ConnectionCommand::Close(CloseReason::Disconnected)));

    // A member that stops answering is named once the deadline passes.
    let quiet = Arc::new(MemorySink::new());
    let (d, driver) = Node::start(NodeConfig::new("d"), &ring(1), Arc::new(backbone.clone()), quiet).await.unwrap();
    drop(driver);
    d.heartbeat().await.unwrap();
    assert!(eventually(|| a.members().contains(&"d".to_string())).await);
    let report = a.disconnect(&id("s1"), tokio::time::sleep(Duration::from_millis(300))).await.unwrap();
    assert_eq!(report.silent, ["d"]);
    assert!(!report.complete());
}

#[tokio::test]
async fn reauthorize_and_retire_key_reach_only_their_connections() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let a = node("a", &backbone, &audit).await;
    let (_old, mut old_key) = a.register(id("s1"), KeyId(1)).await.unwrap();
    let (_new, mut new_key) = a.register(id("s2"), KeyId(2)).await.unwrap();
    let report = a.reauthorize(&id("s2"), deadline()).await.unwrap();
    assert_eq!(report.connections(), 1);
    assert_eq!(next(&mut new_key).await, Some(ConnectionCommand::Reauthorize));
    let report = a.retire_key(KeyId(1), deadline()).await.unwrap();
    assert_eq!(report.connections(), 1);
    assert_eq!(next(&mut old_key).await, Some(ConnectionCommand::Close(CloseReason::KeyRetired)));
    assert_eq!(new_key.try_recv(), None);
}

#[tokio::test]
async fn forged_replayed_and_misrouted_messages_are_ignored_and_audited() {
    let (backbone, audit) = (InProcess::new(), Arc::new(MemorySink::new()));
    let a = node("a", &backbone, &audit).await;
    let (_t, mut tab) = a.register(id("victim"), KeyId(1)).await.unwrap();
    let victim = subject("liveguard", &id("victim"));
    let now = Timestamp::now();
    let message =
        |command| ControlMessage { id: MessageId::random(&mut OsRandom).unwrap(), node: "evil".into(), command };

    // Forged: signed with a key the cluster does not hold.
    let forged = ControlCodec::new(&ring(9), 30, 5_000).encode(&message(Command::Disconnect(id("victim"))), now);
    backbone.publish(victim.clone(), None, forged.unwrap().into_bytes()).await.unwrap();
    // Garbage.
    backbone.publish(victim.clone(), None, b"\xff not a token".to_vec()).await.unwrap();
    // Genuine, but for another id than the subject it was sent on.
    let genuine = ControlCodec::new(&ring(1), 30, 5_000);
    let misrouted = genuine.encode(&message(Command::Disconnect(id("someone-else"))), now).unwrap();
    backbone.publish(victim.clone(), None, misrouted.into_bytes()).await.unwrap();
    let mut refused = Vec::new();
    assert!(
        eventually(|| {
            refused.extend(audit.take().into_iter().filter(|r| matches!(r, AuditRecord::ControlRefused { .. })));
            refused.len() >= 3
        })
        .await,
        "{refused:?}"
    );
    let reasons: Vec<String> = refused.iter().map(ToString::to_string).collect();
    assert!(reasons[0].contains("tag does not verify"), "{reasons:?}");
    assert!(reasons[1].contains("invalid control message"), "{reasons:?}");
    assert!(reasons[2].contains("another id"), "{reasons:?}");
    assert_eq!(tab.try_recv(), None, "nothing was closed by them");
    assert_eq!(a.members(), ["a"], "a misrouted message makes no member");

    // Replayed: a genuine disconnect captured from the bus is played again
    // after the user logged in anew.
    let mut tap = backbone.subscribe(victim.clone()).await.unwrap();
    a.disconnect(&id("victim"), deadline()).await.unwrap();
    assert_eq!(next(&mut tab).await, Some(ConnectionCommand::Close(CloseReason::Disconnected)));
    let captured = tap.next().await.unwrap();
    let (_again, mut new_tab) = a.register(id("victim"), KeyId(1)).await.unwrap();
    audit.take();
    backbone.publish(captured.subject, None, captured.payload).await.unwrap();
    assert!(
        eventually(|| audit
            .take()
            .iter()
            .any(|r| matches!(r, AuditRecord::ControlRefused { reason, .. } if reason.contains("replayed"))))
        .await
    );
    assert_eq!(new_tab.try_recv(), None, "the replay closed nothing");
}
