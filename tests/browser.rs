//! The demo app in headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `tests/js/package-lock.json`), on two nodes of a
//! real 3-server NATS cluster: two tabs of one session on two nodes, log out
//! in one, the other lands on /login within 2 s; a non-admin is refused the
//! admin area by a direct request and by live navigation; a delete forged
//! from the console for another user's project is denied.
#![cfg(all(feature = "axum", feature = "nats"))]

#[path = "../examples/demo/app.rs"]
mod app;
mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use liveguard::audit::{AuditSink, MemorySink};
use liveguard::cluster::nats::Nats;
use support::nats::NatsCluster;

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_in_a_browser_on_two_nodes() {
    assert!(Path::new(CHROMIUM).exists(), "headless Chromium is missing: apt-get install chromium");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let js = root.join("tests/js");
    assert!(js.join("node_modules/playwright-core").exists(), "run `npm ci --prefix tests/js`");
    let assets = root.join("examples/demo/assets");
    assert!(assets.join("node_modules/phoenix").exists(), "run `npm ci --prefix examples/demo/assets`");

    let cluster = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await.expect("joined").expect("a cluster");
    let audit = Arc::new(MemorySink::new());
    let demo = app::Demo::new(audit.clone(), assets);
    let mut nodes = Vec::new();
    let mut urls = Vec::new();
    for index in 0..2 {
        let user = support::nats::node_user(index);
        let options = async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
            .custom_inbox_prefix(support::nats::node_inbox(index));
        let backbone = Nats::connect(&cluster.node(index).client_url(), options).await.expect("connected to NATS");
        let sink: Arc<dyn AuditSink> = audit.clone();
        let (node, live) = demo.node(user.user, Arc::new(backbone), sink).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        urls.push(format!("http://{}", listener.local_addr().expect("an address")));
        let router = demo.router(&live);
        tokio::spawn(async move { axum::serve(listener, router).await });
        nodes.push(node);
    }
    app::await_members(&nodes).await.expect("membership");

    let run = tokio::process::Command::new("node")
        .arg("browser.mjs")
        .current_dir(&js)
        .env("LG_NODE_A", &urls[0])
        .env("LG_NODE_B", &urls[1])
        .env("LG_CHROMIUM", CHROMIUM)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(120), run).await.expect("in time").expect("node runs");
    assert!(status.success(), "the browser scenario failed ({status}); its assertion is printed above");

    // Server-side: the forged delete changed nothing, her own went.
    let projects = demo.accounts.project_ids();
    assert!(projects.contains(&20) && !projects.contains(&11), "{projects:?}");
    assert!(
        audit
            .take()
            .iter()
            .any(|r| matches!(r, liveguard::audit::AuditRecord::EventDenied { event, .. } if event == "delete")),
        "the forged delete is audited"
    );
}
