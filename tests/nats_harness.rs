//! Tests of the NATS test harness (`tests/support/nats.rs`) and of `nats.conf`
//! against the real `nats-server`: readiness, the JetStream full mesh, the
//! node users' permissions, freeze, kill/stop and restart on the same ports. The client
//! side is the raw NATS text protocol over std `TcpStream`, so these tests do
//! not depend on the crate's `nats` feature.

mod support;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::nats::{
    CLUSTER_NAME, Credentials, NatsCluster, NatsServer, READY_TIMEOUT, config_path, locate_nats_server,
    nats_server_binary, node_user, wait_until,
};

/// How long one protocol exchange may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A raw NATS protocol client
// ---------------------------------------------------------------------------

/// Lines of the NATS text protocol over a `TcpStream`; reads wait at most
/// until a deadline.
struct Raw {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Raw {
    /// Connects and returns the client with the server's `INFO` JSON.
    fn open(server: &NatsServer) -> (Raw, Value) {
        let stream = TcpStream::connect_timeout(&server.client_addr(), IO_TIMEOUT).expect("connect to the client port");
        let mut raw = Raw { stream, pending: Vec::new() };
        let line = raw.line();
        let info = line.strip_prefix("INFO ").unwrap_or_else(|| panic!("the server greets with INFO, got {line:?}"));
        let info: Value = serde_json::from_str(info).expect("INFO carries JSON");
        (raw, info)
    }

    /// Connects, authenticates as `credentials` in verbose mode and checks the
    /// `+OK` / `PONG` answers.
    fn login(server: &NatsServer, credentials: Credentials) -> Raw {
        let (mut raw, _) = Raw::open(server);
        raw.send(&connect_line(Some(credentials), true));
        raw.send("PING\r\n");
        assert_eq!(raw.line(), "+OK", "CONNECT accepted");
        assert_eq!(raw.line(), "PONG");
        raw
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("write to the server");
    }

    /// The next line, waiting at most [`IO_TIMEOUT`]; panics without one.
    fn line(&mut self) -> String {
        self.line_before(Instant::now() + IO_TIMEOUT).expect("a line from the server in time")
    }

    /// The next line (without `\r\n`) if one arrives before `deadline`;
    /// `None` on timeout or end of stream.
    fn line_before(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.pending.drain(..end + 2).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.stream.set_read_timeout(Some(deadline - now)).expect("set a read timeout");
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}

fn connect_line(credentials: Option<Credentials>, verbose: bool) -> String {
    let mut options = serde_json::json!({ "verbose": verbose, "pedantic": false, "lang": "rust", "version": "test" });
    if let Some(c) = credentials {
        options["user"] = c.user.into();
        options["pass"] = c.password.into();
    }
    format!("CONNECT {options}\r\n")
}

fn num_routes(node: &NatsServer) -> u64 {
    node.num_routes().expect("/routez answers")
}

/// Whether this node is gone from its client port: the connection is refused
/// or, if another process has been given the freed port meanwhile (a server of
/// a concurrent test), that process is not this node.
fn gone_from_client_port(server: &NatsServer) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&server.client_addr(), Duration::from_secs(1)) else {
        return true;
    };
    let mut raw = Raw { stream, pending: Vec::new() };
    let greeting = raw.line_before(Instant::now() + IO_TIMEOUT).unwrap_or_default();
    !greeting.contains(&format!("\"server_name\":\"{}\"", server.name()))
}

// ---------------------------------------------------------------------------
// nats.conf and the binary
// ---------------------------------------------------------------------------

#[test]
fn nats_conf_validates() {
    let binary = nats_server_binary().expect("nats-server installed");
    let output = Command::new(binary).arg("-t").arg("-c").arg(config_path()).output().expect("run nats-server -t");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "nats-server -t -c nats.conf failed: {said}");
    assert!(said.contains("is valid"), "{said}");
}

#[test]
fn nats_conf_declares_the_harness_credentials() {
    let conf = std::fs::read_to_string(config_path()).expect("read nats.conf");
    for index in 0..4 {
        let user = node_user(index);
        assert!(conf.contains(&format!("user: {}", user.user)), "nats.conf names the user {}", user.user);
        assert!(conf.contains(&format!("password: \"{}\"", user.password)), "nats.conf sets {}'s password", user.user);
    }
    // A standalone JetStream server refuses a `cluster` block without routes.
    assert!(!conf.lines().any(|line| line.trim_start().starts_with("cluster")), "clustering is given by flags");
}

#[test]
fn a_missing_server_is_an_error_naming_the_install_command() {
    let nowhere = std::env::temp_dir().join("liveguard-no-such-dir");
    let err = locate_nats_server(Some(std::ffi::OsStr::new("")), &[nowhere.as_path()]).unwrap_err();
    assert!(err.message().contains("apt-get install nats-server"), "{err}");
    let err = locate_nats_server(None, &[]).unwrap_err();
    assert!(err.to_string().contains("apt-get install nats-server"), "{err}");
}

#[test]
fn wait_until_polls_until_true_or_the_deadline() {
    let mut calls = 0;
    assert!(wait_until(Instant::now() + Duration::from_secs(5), || {
        calls += 1;
        calls == 3
    }));
    assert_eq!(calls, 3);

    let start = Instant::now();
    let mut calls = 0;
    assert!(!wait_until(start + Duration::from_millis(50), || {
        calls += 1;
        false
    }));
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(calls >= 2, "evaluated at least at the start and at the deadline, got {calls}");
}

// ---------------------------------------------------------------------------
// One node
// ---------------------------------------------------------------------------

#[test]
fn a_single_node_is_healthy_and_greets_with_info() {
    let server = NatsServer::start().expect("start nats-server");
    assert!(server.is_healthy());
    assert!(server.client_url().starts_with("nats://127.0.0.1:"), "{}", server.client_url());
    assert!(server.monitoring_url().starts_with("http://127.0.0.1:"), "{}", server.monitoring_url());
    assert!(server.client_port() != 0 && server.monitoring_port() != 0);
    assert_ne!(server.client_port(), server.monitoring_port());
    assert_eq!(server.cluster_port(), 0, "a standalone server has no cluster listener");
    assert_eq!(server.meta_leader().expect("/jsz").as_deref(), Some(server.name()), "JetStream is on");

    let (_raw, info) = Raw::open(&server);
    assert_eq!(info["port"], u64::from(server.client_port()));
    assert_eq!(info["server_name"], server.name());
    assert_eq!(info["auth_required"], true, "nats.conf requires authentication");

    let varz = server.monitor("varz").expect("/varz");
    assert_eq!(varz["server_name"], server.name());
    assert_eq!(num_routes(&server), 0);
    assert!(server.log().contains("Server is ready"));
}

#[test]
fn a_node_user_speaks_only_as_itself() {
    let server = NatsServer::start().expect("start nats-server");
    let mut client = Raw::login(&server, node_user(1));

    // Its own heartbeats, acknowledgements and inbox; revocations.
    for allowed in ["PUB liveguard.member.node-1 2\r\nhi\r\n", "PUB liveguard.ack.node-1.node-2 2\r\nhi\r\n"] {
        client.send(allowed);
        assert_eq!(client.line(), "+OK", "{allowed}");
    }
    client.send("SUB liveguard.reply.node-1.> 1\r\n");
    assert_eq!(client.line(), "+OK");
    client.send("SUB liveguard.member.* 2\r\n");
    assert_eq!(client.line(), "+OK");

    // Another node's voice, another node's answers, the stream's erasure.
    for (verb, subject) in [
        ("PUB", "liveguard.member.node-2"),
        ("PUB", "liveguard.ack.node-2.node-1"),
        ("PUB", "$JS.API.STREAM.DELETE.liveguard_revocations"),
        ("PUB", "$JS.API.STREAM.PURGE.liveguard_revocations"),
        ("PUB", "other.subject"),
    ] {
        client.send(&format!("{verb} {subject} 2\r\nhi\r\n"));
        assert_eq!(client.line(), format!("-ERR 'Permissions Violation for Publish to \"{subject}\"'"));
    }
    for subject in ["liveguard.reply.node-2.>", "liveguard.ack.node-1.node-2", "_INBOX.>"] {
        client.send(&format!("SUB {subject} 9\r\n"));
        assert_eq!(client.line(), format!("-ERR 'Permissions Violation for Subscription to \"{subject}\"'"));
    }

    // A permission violation does not close the connection.
    client.send("PING\r\n");
    assert_eq!(client.line(), "PONG");
}

#[test]
fn clients_without_the_app_credentials_are_refused() {
    let server = NatsServer::start().expect("start nats-server");
    let wrong = Credentials { user: node_user(0).user, password: "wrong" };
    for credentials in [None, Some(wrong)] {
        let (mut raw, _) = Raw::open(&server);
        raw.send(&connect_line(credentials, true));
        raw.send("PING\r\n");
        assert_eq!(raw.line(), "-ERR 'Authorization Violation'", "{credentials:?}");
        assert_eq!(raw.line_before(Instant::now() + IO_TIMEOUT), None, "the server closes the connection");
    }
}

#[test]
fn a_stopped_node_restarts_on_the_same_ports() {
    let mut server = NatsServer::start().expect("start nats-server");
    let (url, monitoring, cluster) = (server.client_url(), server.monitoring_url(), server.cluster_url());
    let first_pid = server.pid();

    server.stop().expect("graceful stop");
    assert!(!server.is_running());
    assert!(gone_from_client_port(&server), "{url} is not served after the stop");
    assert!(!server.is_healthy());

    server.restart().expect("restart");
    assert!(server.is_running());
    assert_ne!(server.pid(), first_pid);
    assert_eq!((server.client_url(), server.monitoring_url(), server.cluster_url()), (url, monitoring, cluster));
    assert!(server.is_healthy());
    let (_raw, info) = Raw::open(&server);
    assert_eq!(info["port"], u64::from(server.client_port()));
    drop(Raw::login(&server, node_user(0)));
}

// ---------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------

#[test]
fn three_nodes_form_a_full_mesh_that_carries_messages() {
    let cluster = NatsCluster::start(3).expect("start a 3-node cluster");
    assert_eq!(cluster.size(), 3);
    for node in cluster.nodes() {
        assert!(node.is_healthy(), "{}", node.name());
        assert_eq!(num_routes(node), 2, "{}: /routez", node.name());
        assert_eq!(node.monitor("varz").expect("/varz")["cluster"]["name"], CLUSTER_NAME);
        assert!(node.meta_leader().expect("/jsz").is_some(), "{}: knows the meta leader", node.name());
    }
    let mut names: Vec<&str> = cluster.nodes().iter().map(NatsServer::name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 3, "distinct node names");
    let every_route: Vec<String> = cluster.nodes().iter().map(NatsServer::cluster_url).collect();
    assert!(cluster.nodes().iter().all(|n| n.routes() == every_route), "every node routes to all, itself included");

    // A subscription on node 3 receives a publication on node 1 once the
    // interest has crossed the routes (asynchronously: poll by publishing).
    let mut subscriber = Raw::login(cluster.node(2), node_user(0));
    subscriber.send("SUB liveguard.member.* 1\r\nPING\r\n");
    assert_eq!(subscriber.line(), "+OK");
    assert_eq!(subscriber.line(), "PONG");
    let mut publisher = Raw::login(cluster.node(0), node_user(0));
    let mut received = None;
    let arrived = wait_until(Instant::now() + READY_TIMEOUT, || {
        publisher.send("PUB liveguard.member.node-0 5\r\nhello\r\n");
        assert_eq!(publisher.line(), "+OK");
        received = subscriber.line_before(Instant::now() + Duration::from_millis(20));
        received.is_some()
    });
    assert!(arrived, "no message crossed from node 1 to node 3");
    assert_eq!(received.as_deref(), Some("MSG liveguard.member.node-0 1 5"));
    assert_eq!(subscriber.line(), "hello");
}

#[test]
fn two_clusters_at_once_do_not_collide() {
    let a = NatsCluster::start(3).expect("start cluster a");
    let b = NatsCluster::start(3).expect("start cluster b");
    let mut ports: Vec<u16> = [&a, &b]
        .iter()
        .flat_map(|c| c.nodes())
        .flat_map(|n| [n.client_port(), n.monitoring_port(), n.cluster_port()])
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 18, "18 distinct ports");
    for node in a.nodes().iter().chain(b.nodes()) {
        assert_eq!(num_routes(node), 2, "{}: meshed with its own cluster only", node.name());
    }
    let dirs: Vec<_> = a.nodes().iter().chain(b.nodes()).map(|n| n.dir().to_path_buf()).collect();
    drop((a, b));
    assert!(dirs.iter().all(|d| !d.exists()), "temporary directories removed on drop");
}

#[test]
fn a_killed_node_restarts_on_the_same_port_and_the_mesh_heals() {
    let mut cluster = NatsCluster::start(3).expect("start a 3-node cluster");

    let seed_url = cluster.node(0).client_url();
    cluster.kill(0).expect("kill node 1");
    assert!(!cluster.node(0).is_running());
    assert!(gone_from_client_port(cluster.node(0)));
    cluster.wait_for_mesh(Instant::now() + READY_TIMEOUT).expect("the survivors keep their route");
    assert_eq!(cluster.route_counts(), [None, Some(1), Some(1)]);

    cluster.restart(0).expect("restart node 1");
    assert_eq!(cluster.node(0).client_url(), seed_url);
    assert!(cluster.node(0).is_healthy());
    assert_eq!(cluster.route_counts(), [Some(2), Some(2), Some(2)]);
    drop(Raw::login(cluster.node(0), node_user(0)));

    let third_url = cluster.node(2).client_url();
    cluster.kill(2).expect("kill node 3");
    cluster.wait_for_mesh(Instant::now() + READY_TIMEOUT).expect("nodes 1 and 2 keep their route");
    cluster.restart(2).expect("restart node 3");
    assert_eq!(cluster.node(2).client_url(), third_url);
    assert_eq!(cluster.route_counts(), [Some(2), Some(2), Some(2)]);
}

#[test]
fn a_frozen_node_is_silent_until_thawed() {
    let mut cluster = NatsCluster::start(3).expect("start a 3-node cluster");
    cluster.freeze(1).expect("freeze node 2");
    assert!(cluster.node(1).is_frozen());
    assert!(!cluster.node(1).is_healthy(), "a frozen server answers nothing");
    // The others keep a meta leader between themselves.
    let deadline = Instant::now() + READY_TIMEOUT;
    cluster.wait_for_jetstream(deadline).expect("the majority keeps JetStream");
    cluster.thaw(1).expect("thaw node 2");
    assert!(wait_until(Instant::now() + READY_TIMEOUT, || cluster.node(1).is_healthy()), "thawed node answers");
    cluster.wait_for_mesh(Instant::now() + READY_TIMEOUT).expect("mesh after the thaw");
}

#[test]
fn a_restart_retries_a_taken_port_and_gives_up_with_the_server_log() {
    let mut server = NatsServer::start().expect("start nats-server");
    server.kill().expect("kill");
    let squatter = TcpListener::bind(server.client_addr()).expect("take the freed client port");

    // Held for good: the restart gives up at its timeout, quoting the log.
    let err = server.restart_within(Duration::from_secs(1)).expect_err("the client port is taken");
    assert!(err.message().contains("address already in use"), "the error quotes the server log: {err}");
    assert!(!server.is_running());

    // Released while the restart retries: the restart succeeds.
    let log = server.log_path().to_path_buf();
    let conflicts = move || std::fs::read_to_string(&log).unwrap_or_default().matches("address already in use").count();
    let before = conflicts();
    let restarting = std::thread::spawn(move || {
        let restarted = server.restart();
        (server, restarted)
    });
    assert!(wait_until(Instant::now() + READY_TIMEOUT, || conflicts() > before), "no retry hit the taken port");
    drop(squatter);
    let (server, restarted) = restarting.join().expect("the restarting thread");
    restarted.expect("restart once the port is free");
    assert!(server.is_healthy());
    drop(Raw::login(&server, node_user(0)));
}
