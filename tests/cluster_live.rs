//! `reauthorize` and `disconnect` end to end over a real 3-server NATS
//! cluster, driving the live core the way a connection does: on
//! `Reauthorize` it re-runs the `on_mount` hooks in place (fresh assigns, no
//! reconnect), on `Close` it closes; a view whose hooks now halt is
//! redirected.
#![cfg(feature = "nats")]

mod live_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use live_support::{ALICE, Counters, NOW, Store, block_on, current_user, guide_router, ring, session_for};
use liveguard::audit::MemorySink;
use liveguard::cluster::nats::Nats;
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::cluster::registry::{CloseReason, ConnectionCommand, ConnectionEvents};
use liveguard::keys::KeyId;
use liveguard::live::{HttpOutcome, HttpRequest, JoinError, JoinRequest, Joined, LiveApp, Redirect};
use liveguard::socket_id::LiveSocketId;
use liveguard::{OsRandom, live::Assigns};
use serde_json::json;
use support::nats::NatsCluster;
use tokio::sync::mpsc;

/// What a connection did with a command.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    /// Re-authorized in place; whether the user is now an admin.
    Kept { admin: bool },
    /// The hooks halted: the client is sent here.
    Redirected(String),
    /// Closed with this code.
    Closed(u16),
}

/// The loop a live connection runs beside its socket.
async fn connection(
    app: Arc<LiveApp>,
    mut joined: Joined,
    mut events: ConnectionEvents,
    seen: mpsc::UnboundedSender<Seen>,
) {
    while let Some(command) = events.recv().await {
        let outcome = match command {
            ConnectionCommand::Reauthorize => match app.reauthorize(&mut joined).await {
                Ok(()) => Seen::Kept { admin: current_user(&joined.socket).is_some_and(|u| u.admin) },
                Err(JoinError::Redirect(Redirect::Redirect { to } | Redirect::LiveRedirect { to })) => {
                    Seen::Redirected(to)
                }
                Err(other) => panic!("unexpected {other:?}"),
            },
            ConnectionCommand::Close(reason) => Seen::Closed(reason.close_code()),
        };
        let done = !matches!(outcome, Seen::Kept { .. });
        let _ = seen.send(outcome);
        if done {
            return;
        }
    }
}

/// Liveguard node `node-<index>` under its own NATS user, on `url`.
async fn node(index: usize, url: &str) -> Arc<Node> {
    let user = support::nats::node_user(index);
    let options = async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
        .custom_inbox_prefix(support::nats::node_inbox(index));
    let backbone = Arc::new(Nats::connect(url, options).await.unwrap());
    Node::start(NodeConfig::new(user.user), &ring(), backbone, Arc::new(MemorySink::new())).await.unwrap()
}

async fn seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthorize_reruns_hooks_in_place_on_every_node_and_redirects_revoked_sessions() {
    let cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3).expect("a 3-node cluster")).await.unwrap();
    let (a, b, c) = (
        node(0, &cluster.node(0).client_url()).await,
        node(1, &cluster.node(1).client_url()).await,
        node(2, &cluster.node(2).client_url()).await,
    );
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while [&a, &b, &c].iter().any(|n| n.members() != ["node-0", "node-1", "node-2"]) {
        assert!(std::time::Instant::now() < until, "membership");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let store = Store::seeded();
    let app = Arc::new(LiveApp::new(
        guide_router(&store, &Arc::new(Counters::default())),
        &ring(),
        Arc::new(MemorySink::new()),
    ));
    let request =
        HttpRequest { url: "/projects".into(), session: session_for(Some("alice-token")), assigns: Assigns::new() };
    let HttpOutcome::Page(page) = block_on(app.http_mount(request, NOW, &mut OsRandom)).unwrap() else {
        panic!("a page")
    };
    let payload = json!({"url": "/projects", "session": page.session_token, "static": page.static_token});
    let topic = format!("lv:{}", page.socket.id());
    let join = || {
        block_on(app.join(JoinRequest { topic: &topic, payload: &payload, connect_session: Some(&page.session) }, NOW))
            .unwrap()
    };

    // Alice's session has a tab on b and one on c.
    let alice = LiveSocketId::new("users_sessions:alice-token").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (reg_b, events_b) = b.register(alice.clone(), KeyId(1)).unwrap();
    let (reg_c, events_c) = c.register(alice.clone(), KeyId(1)).unwrap();
    tokio::spawn(connection(app.clone(), join(), events_b, tx.clone()));
    tokio::spawn(connection(app.clone(), join(), events_c, tx.clone()));

    // A role change: both tabs re-run their hooks and keep running as admin.
    store.update_user(ALICE, |u| u.admin = true);
    let report = a.reauthorize(&alice, Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.connections(), 2);
    assert_eq!(
        (seen(&mut rx).await, seen(&mut rx).await),
        (Some(Seen::Kept { admin: true }), Some(Seen::Kept { admin: true }))
    );

    // The session is revoked server-side: the next re-authorization halts
    // in the hook, and both tabs are sent to /login.
    store.delete_token("alice-token");
    a.reauthorize(&alice, Duration::from_secs(5)).await.unwrap();
    let login = Some(Seen::Redirected("/login".into()));
    assert_eq!((seen(&mut rx).await, seen(&mut rx).await), (login.clone(), login));
    drop((reg_b, reg_c));

    // A disconnect closes with 1001.
    let (_reg, events) = c.register(alice.clone(), KeyId(1)).unwrap();
    store.tokens.lock().unwrap().insert("alice-token".into(), ALICE);
    tokio::spawn(connection(app.clone(), join(), events, tx));
    a.disconnect(&alice, Duration::from_secs(5)).await.unwrap();
    assert_eq!(seen(&mut rx).await, Some(Seen::Closed(CloseReason::Disconnected.close_code())));
    assert_eq!(CloseReason::Disconnected.close_code(), 1001);
}
