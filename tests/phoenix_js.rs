//! The official phoenix.js client (npm `phoenix` 1.8.16 with `ws` 8.23.0 as
//! its transport, pinned in `tests/js/package-lock.json`) against two
//! endpoint nodes on a real 3-server NATS cluster.
//!
//! Each test starts the cluster and the nodes, then runs one scenario of
//! `tests/js/scenarios.mjs` under Node. The script asserts what the client
//! sees; it asks this side, over a line protocol on its stdin and stdout,
//! for what an application would do (render a page, log a user out on a
//! node) and for server-side state, which it asserts too.
//!
//! Needs `node` (20+) and `npm ci --prefix tests/js` (the README's test
//! command runs it).
#![cfg(all(feature = "ws", feature = "nats"))]

mod live_support;
mod support;
mod ws_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use live_support::ring;
use liveguard::cluster::nats::Nats;
use liveguard::live::JOIN_TOKEN_VERSION;
use liveguard::session::Session;
use liveguard::token::SignedTokens;
use liveguard::{MaxAge, Timestamp};
use serde_json::{Value, json};
use support::nats::NatsCluster;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use ws_support::{ORIGIN, Served, Site, node, socket_id};

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

/// Two endpoint nodes, `a` on NATS server 0 and `b` on server 1, serving
/// one site.
struct Deployment {
    site: Site,
    a: Served,
    b: Served,
    sessions: BTreeMap<String, Session>,
    _nats: NatsCluster,
}

impl Deployment {
    async fn start() -> Self {
        let nats = tokio::task::spawn_blocking(|| NatsCluster::start(3)).await.expect("joined").expect("a cluster");
        let site = Site::new();
        let mut nodes = Vec::new();
        // Node `a` is liveguard node-0 (NATS user node-0) on server 0, `b`
        // is node-1 on server 1.
        for index in 0..2 {
            let user = support::nats::node_user(index);
            let options = async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
                .custom_inbox_prefix(support::nats::node_inbox(index));
            let backbone = Nats::connect(&nats.node(index).client_url(), options).await.expect("connected to NATS");
            nodes.push(node(user.user, Arc::new(backbone), &site).await);
        }
        // Each node must see the other before it serves, so that a report
        // names both.
        let until = Instant::now() + Duration::from_secs(10);
        while nodes.iter().any(|n| n.members() != ["node-0", "node-1"]) {
            assert!(Instant::now() < until, "the nodes did not see each other");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = Served::start(&site, nodes[0].clone(), Site::config()).await;
        let b = Served::start(&site, nodes[1].clone(), Site::config()).await;
        Self { site, a, b, sessions: BTreeMap::new(), _nats: nats }
    }

    fn served(&self, name: &str) -> &Served {
        if name == "b" { &self.b } else { &self.a }
    }

    /// Answers one request of the script.
    async fn answer(&mut self, request: &Value) -> Value {
        match request["ask"].as_str().unwrap_or_default() {
            // A page of `url` for the session logged in with `token`
            // (one session per token, shared by its tabs).
            "page" => {
                let token = request["token"].as_str().expect("a token");
                let session = self.sessions.entry(token.to_string()).or_insert_with(|| self.site.login(token)).clone();
                let url = request["url"].as_str().expect("a url");
                let page = match request["signed_days_ago"].as_u64() {
                    Some(days) => {
                        let then = Timestamp::from_unix_millis(Timestamp::now().as_unix_millis() - days * 86_400_000);
                        self.site.page_at(&session, url, then)
                    }
                    None => self.site.page(&session, url),
                };
                serde_json::to_value(page).expect("JSON")
            }
            // A join token signed with the right key but another version.
            "outdated_token" => {
                let signer = SignedTokens::new(&ring(), "liveguard live session");
                let payload = (JOIN_TOKEN_VERSION + 1, vec![1u8, 2, 3]);
                json!(signer.sign_with_max_age(&payload, Timestamp::now(), MaxAge::FOURTEEN_DAYS).expect("signed"))
            }
            // phx.gen.auth's log out: delete the session token, then
            // disconnect its live_socket_id from the node named by `via`.
            "logout" => {
                let token = request["token"].as_str().expect("a token");
                self.site.store.delete_token(token);
                let node = self.served(request["via"].as_str().unwrap_or("a")).endpoint.node().clone();
                let report = node.disconnect(&socket_id(token), Duration::from_secs(5)).await;
                let report = report.expect("a report");
                // The script names the nodes a and b.
                let answered: BTreeMap<&str, Option<u32>> =
                    report.applied.iter().map(|(name, n)| (if name == "node-1" { "b" } else { "a" }, *n)).collect();
                json!({"answered": answered, "silent": report.silent, "connections": report.connections()})
            }
            "state" => json!({
                "projects": self.site.store.project_ids(),
                "handled": self.site.counters.handled(),
                "mounts": self.site.counters.mounts(),
                "registered": {
                    "a": self.a.endpoint.node().registry().len(),
                    "b": self.b.endpoint.node().registry().len(),
                },
            }),
            other => panic!("the script asked for {other:?}"),
        }
    }

    /// Runs `scenario` of `tests/js/scenarios.mjs` to its end.
    async fn run(mut self, scenario: &str) {
        let dir = js_dir();
        assert!(
            dir.join("node_modules/phoenix/package.json").exists(),
            "the phoenix npm client is not installed: run `npm ci --prefix tests/js`"
        );
        let mut child = tokio::process::Command::new("node")
            .arg("scenarios.mjs")
            .arg(scenario)
            .current_dir(&dir)
            .env("LG_ENDPOINT_A", format!("ws://{}/live", self.a.addr))
            .env("LG_ENDPOINT_B", format!("ws://{}/live", self.b.addr))
            .env("LG_ORIGIN", ORIGIN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node (20 or later) on PATH");
        let mut stdin = child.stdin.take().expect("a stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("a stdout")).lines();
        let until = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(until, lines.next_line()).await.expect("the scenario ended in time");
            let Some(line) = line.expect("read the script's output") else { break };
            let Ok(request) = serde_json::from_str::<Value>(&line) else {
                println!("node: {line}");
                continue;
            };
            let answer = self.answer(&request).await;
            let reply = json!({"id": request["id"], "answer": answer}).to_string() + "\n";
            stdin.write_all(reply.as_bytes()).await.expect("answered the script");
        }
        let status = tokio::time::timeout_at(until, child.wait()).await.expect("node exited").expect("a status");
        assert!(status.success(), "scenario {scenario} failed ({status}); its assertion is printed above");
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phoenix_js_joins_and_refusals() {
    Deployment::start().await.run("joins").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phoenix_js_events_are_authorized_on_the_server() {
    Deployment::start().await.run("events").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phoenix_js_disconnect_from_the_other_node_closes_every_tab_then_redirects() {
    Deployment::start().await.run("disconnect").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phoenix_js_hostile_frames_harm_only_their_own_connection() {
    Deployment::start().await.run("hostile").await;
}
