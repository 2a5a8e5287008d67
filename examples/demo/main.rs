//! The demo: log in, projects, an admin area, and log out that reaches every tab on every node.
//! Run with `npm ci --prefix examples/demo/assets && cargo run --example demo --features axum` and open
//! http://127.0.0.1:4000 (one node, in-process backbone). With `--nodes 3` (and `--features axum,nats`)
//! it starts a 3-server NATS cluster from `nats.conf` and one node per server on ports 4000, 4001, 4002.
//! `--check` starts, logs in and reads a live page over HTTP, then exits (what CI runs).

#[path = "app.rs"]
mod app;
#[cfg(feature = "nats")]
#[path = "../../tests/support/nats.rs"]
mod nats_support;

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use app::Demo;
use liveguard::audit::{AuditSink, TracingSink};
use liveguard::cluster::backbone::{Backbone, InProcess};

type BoxError = Box<dyn Error + Send + Sync>;

struct Options {
    nodes: usize,
    check: bool,
}

fn options() -> Result<Options, BoxError> {
    let mut options = Options { nodes: 1, check: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nodes" => options.nodes = args.next().ok_or("--nodes takes a number")?.parse()?,
            "--check" => options.check = true,
            other => return Err(format!("unknown argument {other}; use --nodes N and --check").into()),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/assets");
    if !assets.join("node_modules/phoenix/package.json").exists() {
        return Err("the phoenix client is missing: run `npm ci --prefix examples/demo/assets`".into());
    }
    let audit: Arc<dyn AuditSink> = Arc::new(TracingSink);
    let demo = Demo::new(audit.clone(), assets);

    // The embedded default: one node, in-process. Several nodes: a NATS
    // cluster, one server per node.
    #[cfg(feature = "nats")]
    let (_cluster, backbones) = backbones(options.nodes).await?;
    #[cfg(not(feature = "nats"))]
    let backbones: Vec<Arc<dyn Backbone>> = match options.nodes {
        1 => vec![Arc::new(InProcess::new())],
        _ => return Err("several nodes need the nats feature: --features axum,nats".into()),
    };

    let mut nodes = Vec::new();
    let mut lives = Vec::new();
    for (index, backbone) in backbones.into_iter().enumerate() {
        let (node, live) = demo.node(&format!("node-{index}"), backbone, audit.clone()).await;
        nodes.push(node);
        lives.push(live);
    }
    app::await_members(&nodes).await?;
    let mut addresses = Vec::new();
    for (index, live) in lives.iter().enumerate() {
        let port = if options.check { 0 } else { 4000 + index as u16 };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let router = demo.router(live);
        tokio::spawn(async move { axum::serve(listener, router).await });
        println!("node-{index}: http://{addr}, members {:?}", nodes[index].members());
        addresses.push(addr);
    }

    if options.check {
        return check(addresses[0]).await;
    }
    println!("log in as alice@example.com / alice-password or root@example.com / root-password; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    for live in &lives {
        live.shutdown();
    }
    Ok(())
}

#[cfg(feature = "nats")]
async fn backbones(nodes: usize) -> Result<(Option<nats_support::NatsCluster>, Vec<Arc<dyn Backbone>>), BoxError> {
    if nodes <= 1 {
        return Ok((None, vec![Arc::new(InProcess::new())]));
    }
    let cluster = tokio::task::spawn_blocking(move || nats_support::NatsCluster::start(nodes))
        .await?
        .map_err(|err| format!("{err:?}"))?;
    let mut backbones: Vec<Arc<dyn Backbone>> = Vec::new();
    for index in 0..nodes {
        // Each node under its own NATS user (nats.conf), with the reply
        // inbox that user may read.
        let user = nats_support::node_user(index);
        let options = async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
            .custom_inbox_prefix(format!("liveguard.reply.{}", user.user));
        let urls = cluster.client_urls().join(",");
        let nats = liveguard::cluster::nats::Nats::connect(&urls, options).await?;
        backbones.push(Arc::new(nats));
    }
    println!("nats: {nodes} servers from nats.conf");
    Ok((Some(cluster), backbones))
}

/// Logs in over HTTP and reads the projects page: the demo works.
async fn check(addr: SocketAddr) -> Result<(), BoxError> {
    let report = tokio::task::spawn_blocking(move || -> Result<String, BoxError> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().max_redirects(0).http_status_as_error(false).build().into();
        let base = format!("http://{addr}");
        let mut form = agent.get(&format!("{base}/login")).call()?;
        let cookie = first_cookie(&form).ok_or("no session cookie on the login form")?;
        let body = form.body_mut().read_to_string()?;
        let csrf = between(&body, r#"name="_csrf_token" value=""#, "\"").ok_or("no CSRF token in the form")?;
        let login = agent.post(&format!("{base}/login")).header("cookie", &cookie).send_form([
            ("email", "alice@example.com"),
            ("password", "alice-password"),
            ("_csrf_token", csrf),
        ])?;
        let session = first_cookie(&login).ok_or("log in set no cookie")?;
        let mut page = agent.get(&format!("{base}/projects")).header("cookie", &session).call()?;
        let status = page.status();
        let body = page.body_mut().read_to_string()?;
        if status != 200 || !body.contains("data-phx-session") {
            return Err(format!("GET /projects answered {status}").into());
        }
        let anonymous = agent.get(&format!("{base}/projects")).call()?;
        let to = anonymous.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        Ok(format!(
            "check: logged in as alice, /projects is a live page; anonymous /projects -> {} {to}",
            anonymous.status()
        ))
    })
    .await??;
    println!("{report}");
    Ok(())
}

fn first_cookie<B>(response: &ureq::http::Response<B>) -> Option<String> {
    let header = response.headers().get("set-cookie")?.to_str().ok()?;
    Some(header.split(';').next()?.to_string())
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    Some(&text[from..from + text[from..].find(end)?])
}
