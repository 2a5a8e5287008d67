//! A synchronous, std-only harness that runs real `nats-server` processes for
//! the integration tests: one node ([`NatsServer::start`]) or a full-mesh
//! cluster ([`NatsCluster::start`]), every node started from the crate's
//! `nats.conf` with JetStream on and a store directory of its own.
//!
//! A JetStream cluster needs every server started with routes to all the
//! others, its own included: the harness picks the cluster ports first (binds
//! port 0 for each, reads the port, releases it) and starts every server with
//! the full route list. If another process takes one of those ports in the
//! moment between, that server exits with "address already in use" and the
//! harness starts the whole cluster again on fresh ports.
//!
//! Compared with the test harness of async-nats (its `nats-server` crate), it
//! never guesses ports and never sleeps for synchronisation:
//!
//! - every port (client, monitoring, cluster) is chosen by the server at bind
//!   time (`-p -1 -m -1`, `cluster.listen: 127.0.0.1:-1` in `nats.conf`) and
//!   read back from the JSON file that `--ports_file_dir` makes the server
//!   write (`nats-server_<pid>.ports`), so concurrent tests cannot collide
//!   at start;
//! - readiness is polled with a deadline: the ports file exists, `/healthz`
//!   says `ok` and, for a cluster, `/routez` shows `num_routes == N - 1` on
//!   every node;
//! - a missing `nats-server` is an [`Error`] naming `apt-get install
//!   nats-server`, not a panic;
//! - `Drop` kills and reaps the process and removes the node's temporary
//!   directory (log, ports file) without ever panicking.
//!
//! A killed or stopped node can be restarted on the same client, monitoring
//! and cluster ports ([`NatsServer::restart`], [`NatsCluster::restart`]), for
//! the "backbone lost and back" tests.
//!
//! Limits: if the test process itself is killed (SIGKILL), `Drop` does not run
//! and the servers outlive it. While a node is down, another process may be
//! given one of its ports (the kernel hands freed ports to any `-1` listener,
//! e.g. a server of a concurrent test); a restart then retries until that port
//! is free again and, past its timeout, fails with an error quoting the log.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The cluster name every clustered node is started with (`--cluster_name`).
pub const CLUSTER_NAME: &str = "liveguard";
/// The subject prefix the application user is confined to by `nats.conf`.
pub const SUBJECT_PREFIX: &str = "liveguard";

/// How long a start, a restart or a mesh may take before it is an error.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause between two polls of [`wait_until`] and of the readiness checks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long a graceful [`NatsServer::stop`] may take before the node is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before a restart tries again a port that another process took.
pub const RESTART_RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Every node binds to loopback only (`host` in `nats.conf`).
const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Directories searched after `PATH`: Debian installs the server in `/usr/sbin`,
/// which is not on a regular user's `PATH`.
const FALLBACK_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 20;

// ---------------------------------------------------------------------------
// Errors, credentials, polling
// ---------------------------------------------------------------------------

/// A harness failure: the message says what went wrong and, when a server was
/// involved, quotes the end of its log. `Debug` prints the message as is, so
/// `.expect("...")` in a test shows it readably.
pub struct Error {
    message: String,
    /// The server exited because one of its ports was taken.
    port_taken: bool,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), port_taken: false }
    }

    /// The full message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// User name and password of a NATS user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: &'static str,
    pub password: &'static str,
}

/// The NATS user of liveguard node `index` in `nats.conf` (`node-0` ..
/// `node-3`, local development credentials). Panics past `node-3`: add users
/// to `nats.conf` first.
pub fn node_user(index: usize) -> Credentials {
    const USERS: [Credentials; 4] = [
        Credentials { user: "node-0", password: "liveguard-dev-node-0" },
        Credentials { user: "node-1", password: "liveguard-dev-node-1" },
        Credentials { user: "node-2", password: "liveguard-dev-node-2" },
        Credentials { user: "node-3", password: "liveguard-dev-node-3" },
    ];
    USERS[index]
}

/// The reply-inbox prefix node `index`'s user may subscribe to (`nats.conf`),
/// for async-nats's `custom_inbox_prefix`.
pub fn node_inbox(index: usize) -> String {
    format!("liveguard.reply.{}", node_user(index).user)
}

/// The `nats.conf` at the crate root.
pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("nats.conf")
}

/// Polls `condition` every [`POLL_INTERVAL`] until it returns `true` (then
/// `true`) or `deadline` has passed (then `false`). The condition is always
/// evaluated at least once, and once more at the deadline.
pub fn wait_until(deadline: Instant, mut condition: impl FnMut() -> bool) -> bool {
    poll_until(deadline, || condition().then_some(())).is_some()
}

/// Like [`wait_until`], for a condition that produces a value: returns the
/// first `Some`, or `None` once `deadline` has passed.
pub fn poll_until<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

// ---------------------------------------------------------------------------
// Locating the server
// ---------------------------------------------------------------------------

/// Finds `nats-server` on `PATH`, then in `/usr/sbin`, `/usr/local/sbin` and
/// `/usr/local/bin`.
pub fn nats_server_binary() -> Result<PathBuf, Error> {
    let fallbacks: Vec<&Path> = FALLBACK_DIRS.iter().map(Path::new).collect();
    locate_nats_server(std::env::var_os("PATH").as_deref(), &fallbacks)
}

/// Finds an executable `nats-server` in the directories of `path_var` (a
/// `PATH`-style list), then in `fallback_dirs`. The error names the install
/// command.
pub fn locate_nats_server(path_var: Option<&OsStr>, fallback_dirs: &[&Path]) -> Result<PathBuf, Error> {
    let from_path: Vec<PathBuf> = path_var.map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    // An empty `PATH` entry would mean the working directory: skipped.
    let candidates = from_path
        .iter()
        .map(PathBuf::as_path)
        .chain(fallback_dirs.iter().copied())
        .filter(|dir| !dir.as_os_str().is_empty());
    for dir in candidates {
        let candidate = dir.join("nats-server");
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    let searched: Vec<String> = fallback_dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::new(format!(
        "nats-server was not found on PATH nor in {}: the NATS tests need it; install it with \
         `sudo apt-get install nats-server` (Debian/Ubuntu; v2.9 or later) or put a nats-server binary on PATH \
         (https://docs.nats.io/running-a-nats-service/introduction/installation)",
        searched.join(", ")
    )))
}

fn is_executable(path: &Path) -> bool {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o111 != 0
            }
            #[cfg(not(unix))]
            {
                true
            }
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Temporary directories and names
// ---------------------------------------------------------------------------

static SEQUENCE: AtomicUsize = AtomicUsize::new(0);

/// A tag unique on this machine for this run: process id, a per-process
/// sequence number and the clock.
fn unique_tag() -> String {
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{seq}-{nanos:09}", std::process::id())
}

/// Creates a fresh directory `liveguard-<name>` under the system temporary
/// directory; never reuses an existing one (a suffix is added instead).
fn create_unique_dir(name: &str) -> Result<PathBuf, Error> {
    let base = std::env::temp_dir();
    let mut last_error = None;
    for attempt in 0..16 {
        let suffix = if attempt == 0 { String::new() } else { format!("-{}", unique_tag()) };
        let dir = base.join(format!("liveguard-{name}{suffix}"));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last_error = Some(e),
        }
    }
    Err(Error::new(format!(
        "could not create a temporary directory under {}: {}",
        base.display(),
        last_error.map(|e| e.to_string()).unwrap_or_default()
    )))
}

// ---------------------------------------------------------------------------
// One node
// ---------------------------------------------------------------------------

/// The ports of a node, as the server reported them. Zero until known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ports {
    client: u16,
    monitoring: u16,
    cluster: u16,
}

/// One running `nats-server` process started from `nats.conf`: a standalone
/// server ([`NatsServer::start`]) or a node of a [`NatsCluster`].
///
/// Its ports are fixed at the first start and kept across restarts. Dropping
/// it kills the process and removes its temporary directory.
pub struct NatsServer {
    binary: PathBuf,
    config: PathBuf,
    name: String,
    dir: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    routes: Vec<String>,
    /// The cluster port picked before start (clustered nodes only).
    cluster: Option<u16>,
    /// The route URL this server gossips to the others (`--cluster_advertise`).
    advertise: Option<String>,
    child: Option<Child>,
    frozen: bool,
    ports: Ports,
    http: ureq::Agent,
}

impl fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsServer")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("ports", &self.ports)
            .field("routes", &self.routes)
            .field("dir", &self.dir)
            .finish()
    }
}

impl NatsServer {
    /// Starts one node from `nats.conf` on ports chosen by the server and
    /// waits (at most [`READY_TIMEOUT`]) until `/healthz` says ok. Like every
    /// node it also listens for routes (the `cluster` block of `nats.conf`),
    /// but has none.
    pub fn start() -> Result<Self, Error> {
        let binary = nats_server_binary()?;
        let name = format!("nats-{}", unique_tag());
        let mut server = Self::spawn(binary, name, None, Vec::new())?;
        server.wait_ready(Instant::now() + READY_TIMEOUT)?;
        server.wait_for_jetstream(Instant::now() + READY_TIMEOUT)?;
        Ok(server)
    }

    /// Creates the node's directory and starts the process, without waiting.
    fn spawn(binary: PathBuf, name: String, cluster: Option<u16>, routes: Vec<String>) -> Result<Self, Error> {
        Self::spawn_advertising(binary, name, cluster, routes, None)
    }

    fn spawn_advertising(
        binary: PathBuf,
        name: String,
        cluster: Option<u16>,
        routes: Vec<String>,
        advertise: Option<String>,
    ) -> Result<Self, Error> {
        let dir = create_unique_dir(&name)?;
        let mut server = Self {
            binary,
            config: config_path(),
            log: dir.join(format!("{name}.log")),
            stderr: dir.join(format!("{name}.stderr")),
            name,
            dir,
            routes,
            cluster,
            advertise,
            child: None,
            frozen: false,
            ports: Ports::default(),
            http: monitoring_agent(),
        };
        server.launch()?;
        Ok(server)
    }

    /// Starts the process: on the known ports if there are some (a restart),
    /// else on ports chosen by the server.
    fn launch(&mut self) -> Result<(), Error> {
        let port_arg = |port: u16| if port == 0 { "-1".to_owned() } else { port.to_string() };
        let mut command = Command::new(&self.binary);
        command
            .arg("-c")
            .arg(&self.config)
            .arg("-n")
            .arg(&self.name)
            .arg("-p")
            .arg(port_arg(self.ports.client))
            .arg("-m")
            .arg(port_arg(self.ports.monitoring))
            .arg("--ports_file_dir")
            .arg(&self.dir)
            .arg("-l")
            .arg(&self.log)
            // The store outlives restarts of the node, as a disk would.
            .arg("-js")
            .arg("-sd")
            .arg(self.store_dir());
        if let Some(port) = self.cluster {
            command
                .arg("--cluster_name")
                .arg(CLUSTER_NAME)
                .arg("--cluster")
                .arg(format!("nats://{HOST}:{port}"))
                .arg("--routes")
                .arg(self.routes.join(","));
            if let Some(advertise) = &self.advertise {
                command.arg("--cluster_advertise").arg(advertise);
            }
        }
        // Anything printed before the log file is open (a config error) lands here.
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", self.stderr.display())))?;
        let child = command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Error::new(format!("cannot start {}: {e}", self.binary.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls until the ports file of the current process exists (and, on a
    /// restart, shows the same ports) and `/healthz` says ok.
    fn wait_ready(&mut self, deadline: Instant) -> Result<(), Error> {
        let Some(pid) = self.pid() else {
            return Err(self.failure("is not running"));
        };
        let ports_file = self.ports_file(pid);
        let mut ports = None;
        let mut last = String::from("no ports file yet");
        loop {
            if let Some(status) = self.exit_status() {
                self.child = None;
                let _ = fs::remove_file(&ports_file);
                let mut error = self.failure(&format!("exited during start-up ({status})"));
                // nats-server prefixes its log lines with `[<pid>]`.
                let prefix = format!("[{pid}] ");
                error.port_taken =
                    self.log().lines().any(|line| line.starts_with(&prefix) && line.contains("address already in use"));
                return Err(error);
            }
            if ports.is_none() {
                match read_ports_file(&ports_file) {
                    Ok(Some(found)) => ports = Some(found),
                    Ok(None) => {}
                    Err(e) => last = e,
                }
            }
            if let Some(found) = ports {
                if self.ports != Ports::default() && found != self.ports {
                    return Err(
                        self.failure(&format!("restarted on other ports: {found:?} instead of {:?}", self.ports))
                    );
                }
                self.ports = found;
                match self.health() {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e.message,
                }
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("not ready by the deadline: {last}")));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The node name (`-n`), also `server_name` in `/varz`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while the harness considers the node running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `false` after [`kill`](Self::kill), [`stop`](Self::stop) or a failed
    /// start, until the next [`restart`](Self::restart). (A server that dies
    /// on its own is noticed by the next restart or readiness wait only.)
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `nats://127.0.0.1:<client port>`, without credentials.
    pub fn client_url(&self) -> String {
        format!("nats://{HOST}:{}", self.ports.client)
    }

    /// `nats://<user>:<password>@127.0.0.1:<client port>` (the user and
    /// password must be URL-safe, as those of `nats.conf` are).
    pub fn url_for(&self, credentials: Credentials) -> String {
        format!("nats://{}:{}@{HOST}:{}", credentials.user, credentials.password, self.ports.client)
    }

    /// The client address, for raw TCP.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(HOST, self.ports.client))
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.ports.client
    }

    /// `http://127.0.0.1:<monitoring port>`.
    pub fn monitoring_url(&self) -> String {
        format!("http://{HOST}:{}", self.ports.monitoring)
    }

    /// The monitoring port.
    pub fn monitoring_port(&self) -> u16 {
        self.ports.monitoring
    }

    /// `nats://127.0.0.1:<cluster port>`: where other nodes route to.
    pub fn cluster_url(&self) -> String {
        format!("nats://{HOST}:{}", self.ports.cluster)
    }

    /// The cluster (route) port.
    pub fn cluster_port(&self) -> u16 {
        self.ports.cluster
    }

    /// The routes (`--routes`) this node solicits.
    pub fn routes(&self) -> &[String] {
        &self.routes
    }

    /// The node's temporary directory (log, ports file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// Whether the node is frozen ([`freeze`](Self::freeze)).
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Freezes the process (SIGSTOP): its sockets stay open and silent, as a
    /// hung server's would. Does nothing if the node is not running.
    pub fn freeze(&mut self) -> Result<(), Error> {
        self.signal("STOP")?;
        self.frozen = self.child.is_some();
        Ok(())
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn thaw(&mut self) -> Result<(), Error> {
        self.signal("CONT")?;
        self.frozen = false;
        Ok(())
    }

    fn signal(&self, signal: &str) -> Result<(), Error> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::new(format!("{}: cannot run kill -{signal}: {e}", self.name)))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::new(format!("{}: kill -{signal} {pid} failed: {status}", self.name)))
        }
    }

    /// `/jsz`'s view of the JetStream meta leader's name, `None` while
    /// there is none (a standalone node has no meta group: its own name).
    pub fn meta_leader(&self) -> Result<Option<String>, Error> {
        let jsz = self.monitor("jsz")?;
        if self.cluster.is_none() {
            return Ok(jsz.get("config").map(|_| self.name.clone()));
        }
        Ok(jsz
            .get("meta_cluster")
            .and_then(|meta| meta.get("leader"))
            .and_then(Value::as_str)
            .filter(|leader| !leader.is_empty())
            .map(str::to_owned))
    }

    /// `/jsz?streams=true`'s entry for `stream` (state, cluster), if this
    /// node holds it.
    pub fn stream_detail(&self, stream: &str) -> Result<Option<Value>, Error> {
        let jsz = self.monitor("jsz?streams=true")?;
        let streams = jsz
            .get("account_details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|account| account.get("stream_detail").and_then(Value::as_array))
            .flatten();
        Ok(streams.into_iter().find(|detail| detail.get("name").and_then(Value::as_str) == Some(stream)).cloned())
    }

    /// Polls until `/jsz` names a meta leader (JetStream can take requests).
    pub fn wait_for_jetstream(&self, deadline: Instant) -> Result<(), Error> {
        let mut last = String::from("no answer");
        let ready = wait_until(deadline, || match self.meta_leader() {
            Ok(Some(_)) => true,
            Ok(None) => {
                last = "no meta leader".into();
                false
            }
            Err(e) => {
                last = e.message;
                false
            }
        });
        if ready { Ok(()) } else { Err(self.failure(&format!("JetStream not ready by the deadline: {last}"))) }
    }

    /// The server log file (kept across restarts; appended to).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The server log so far (empty if unreadable).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET <monitoring url>/<endpoint>` parsed as JSON, e.g. `"varz"`,
    /// `"routez"`, `"connz"`, `"subsz?subs=1"`.
    pub fn monitor(&self, endpoint: &str) -> Result<Value, Error> {
        let url = format!("{}/{}", self.monitoring_url(), endpoint.trim_start_matches('/'));
        let mut response = self.http.get(&url).call().map_err(|e| Error::new(format!("GET {url}: {e}")))?;
        let status = response.status();
        let body = response.body_mut().read_to_string().map_err(|e| Error::new(format!("GET {url}: body: {e}")))?;
        if !status.is_success() {
            return Err(Error::new(format!("GET {url}: {status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|e| Error::new(format!("GET {url}: not JSON ({e}): {body}")))
    }

    /// `Ok` when `/healthz` answers `{"status":"ok"}`.
    pub fn health(&self) -> Result<(), Error> {
        let health = self.monitor("healthz")?;
        match health.get("status").and_then(Value::as_str) {
            Some("ok") => Ok(()),
            _ => Err(Error::new(format!("{}: /healthz says {health}", self.name))),
        }
    }

    /// Whether `/healthz` answers ok right now.
    pub fn is_healthy(&self) -> bool {
        self.health().is_ok()
    }

    /// `num_routes` of `/routez`.
    pub fn num_routes(&self) -> Result<u64, Error> {
        let routez = self.monitor("routez")?;
        routez
            .get("num_routes")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::new(format!("{}: /routez without num_routes: {routez}", self.name)))
    }

    /// Kills the process abruptly (SIGKILL: no goodbye to clients or routes)
    /// and reaps it. Does nothing if the node is not running.
    pub fn kill(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        self.frozen = false;
        let killed = child.kill();
        let waited = child.wait();
        // A killed server leaves its ports file behind.
        let _ = fs::remove_file(self.ports_file(pid));
        match (killed, waited) {
            (_, Ok(_)) => Ok(()),
            (Err(e), Err(_)) | (Ok(()), Err(e)) => {
                Err(Error::new(format!("{}: cannot kill pid {pid}: {e}", self.name)))
            }
        }
    }

    /// Stops the process gracefully (SIGTERM through `nats-server --signal`:
    /// clients and routes are closed by the server) and waits for it to exit,
    /// at most [`STOP_TIMEOUT`], after which it is killed. Does nothing if the
    /// node is not running.
    pub fn stop(&mut self) -> Result<(), Error> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        if self.frozen {
            self.thaw()?;
        }
        let signalled = Command::new(&self.binary)
            .arg("--signal")
            .arg(format!("term={pid}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let exited = matches!(signalled, Ok(s) if s.success())
            && wait_until(Instant::now() + STOP_TIMEOUT, || self.exit_status().is_some());
        let result = if exited {
            self.child = None;
            Ok(())
        } else {
            let _ = self.kill();
            Err(Error::new(format!("{}: did not stop on SIGTERM within {STOP_TIMEOUT:?}; killed", self.name)))
        };
        let _ = fs::remove_file(self.ports_file(pid));
        result
    }

    /// Starts the node again on the same client, monitoring and cluster ports
    /// and with the same routes, and waits until `/healthz` says ok, at most
    /// [`READY_TIMEOUT`]. A running node is killed first. (A [`NatsCluster`]
    /// node is better restarted with [`NatsCluster::restart`], which also
    /// waits for the mesh.) See [`restart_within`](Self::restart_within).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.restart_within(READY_TIMEOUT)
    }

    /// [`restart`](Self::restart) with a timeout. While the node was down,
    /// another process may have been given one of its ports (the kernel hands
    /// freed ports to any `-1` listener, e.g. a server of a concurrent test):
    /// the server then exits with "address already in use", and the restart
    /// tries again every [`RESTART_RETRY_INTERVAL`] until the port is free or
    /// the timeout has passed (then the error quotes the server log and the
    /// node is left down).
    pub fn restart_within(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        self.kill()?;
        loop {
            self.launch()?;
            match self.wait_ready(deadline) {
                Err(e) if e.port_taken && Instant::now() + RESTART_RETRY_INTERVAL < deadline => {
                    std::thread::sleep(RESTART_RETRY_INTERVAL);
                }
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Leave no half-started process behind: the node is down.
                    let _ = self.kill();
                    return Err(e);
                }
            }
        }
    }

    fn ports_file(&self, pid: u32) -> PathBuf {
        self.dir.join(format!("nats-server_{pid}.ports"))
    }

    /// `Some` when the process has exited (it is then reaped).
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// An error about this node, with the end of its log and stderr.
    fn failure(&self, what: &str) -> Error {
        let mut message = format!("nats-server {} ({}): {what}", self.name, self.dir.display());
        for (label, path) in [("log", &self.log), ("stderr", &self.stderr)] {
            let text = fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
                message.push_str(&format!("\n--- {label} ({}), last lines:\n{}", path.display(), tail.join("\n")));
            }
        }
        Error::new(message)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            // Shown with the failing test's output.
            eprintln!("{}", self.failure("dropped during a panic"));
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A plain-HTTP client for the loopback monitoring endpoint: short timeouts,
/// statuses as values, no proxy from the environment, no pooled connections
/// (a restarted node must not be asked over a dead socket).
fn monitoring_agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .proxy(None)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .build();
    ureq::Agent::new_with_config(config)
}

/// Reads `nats-server_<pid>.ports`: `Ok(None)` while it does not exist or is
/// incomplete, `Err` when it cannot be understood.
fn read_ports_file(path: &Path) -> Result<Option<Ports>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(_) => return Ok(None),
    };
    let Ok(json) = serde_json::from_str::<Value>(&text) else {
        // Possibly caught half-written: poll again.
        return Ok(None);
    };
    let port = |key: &str| -> Result<u16, String> {
        let url = json
            .get(key)
            .and_then(Value::as_array)
            .and_then(|urls| urls.first())
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{}: no `{key}` URL in {text}", path.display()))?;
        url.rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .ok_or_else(|| format!("{}: cannot read the port of {url}", path.display()))
    };
    // A standalone node has no cluster listener.
    let cluster = if json.get("cluster").is_some() { port("cluster")? } else { 0 };
    Ok(Some(Ports { client: port("nats")?, monitoring: port("monitoring")?, cluster }))
}

// ---------------------------------------------------------------------------
// A cluster
// ---------------------------------------------------------------------------

/// `size` nodes started from `nats.conf` in one JetStream cluster
/// (`liveguard`), in a full mesh: every node routes to every node, its own
/// cluster port included, as JetStream needs. One node is a standalone
/// JetStream server. Dropping it kills every node.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    /// With [`NatsCluster::start_cuttable`]: the proxy each route from
    /// node `.0` to node `.1` goes through.
    links: Vec<(usize, usize, proxy::Proxy)>,
}

/// How many times a start is tried again when a picked cluster port was
/// taken by another process before its server bound it.
const START_ATTEMPTS: usize = 5;

impl NatsCluster {
    /// Starts `size` nodes and waits (at most [`READY_TIMEOUT`] in all) until
    /// each is healthy, `/routez` shows `size - 1` routes on every node and
    /// every node knows the JetStream meta leader.
    pub fn start(size: usize) -> Result<Self, Error> {
        if size == 0 {
            return Err(Error::new("a cluster needs at least one node"));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(size) {
                Err(e) if e.port_taken && attempt < START_ATTEMPTS => continue,
                result => return result,
            }
        }
    }

    /// Like [`start`](Self::start), but every route between two nodes goes
    /// through a [`proxy::Proxy`], so [`cut`](Self::cut) can partition a
    /// node from the others and [`heal`](Self::heal) can end it. A node's
    /// route to itself stays direct.
    pub fn start_cuttable(size: usize) -> Result<Self, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start_cuttable(size) {
                Err(e) if e.port_taken && attempt < START_ATTEMPTS => continue,
                result => return result,
            }
        }
    }

    fn try_start_cuttable(size: usize) -> Result<Self, Error> {
        if size < 2 {
            return Err(Error::new("a cuttable cluster needs at least two nodes"));
        }
        let binary = nats_server_binary()?;
        let tag = unique_tag();
        let deadline = Instant::now() + READY_TIMEOUT;
        let ports = pick_ports(size)?;
        let mut links = Vec::new();
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let mut routes = Vec::new();
            for (j, target) in ports.iter().enumerate() {
                if i == j {
                    routes.push(format!("nats://{HOST}:{target}"));
                    continue;
                }
                let link = proxy::Proxy::start(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, *target)))
                    .map_err(|e| Error::new(format!("cannot start a route proxy: {e}")))?;
                routes.push(format!("nats://{}", link.addr()));
                links.push((i, j, link));
            }
            // Servers gossip their route URL and dial the ones they learn
            // of directly, around the proxies: the URL they gossip refuses
            // connections, so every route is one of the proxied ones.
            nodes.push(NatsServer::spawn_advertising(
                binary.clone(),
                format!("nats-{tag}-node-{}", i + 1),
                Some(*port),
                routes,
                Some(format!("{HOST}:1")),
            )?);
        }
        for node in &mut nodes {
            node.wait_ready(deadline)?;
        }
        let cluster = Self { nodes, links };
        cluster.wait_for_mesh(deadline)?;
        cluster.wait_for_jetstream(deadline)?;
        Ok(cluster)
    }

    /// Cuts every route of node `i` (a partition of `i` against the rest):
    /// its route connections are shut down and new ones refused. Only for a
    /// cluster from [`start_cuttable`](Self::start_cuttable).
    pub fn cut(&self, i: usize) -> Result<(), Error> {
        if self.links.is_empty() {
            return Err(Error::new("this cluster was not started with start_cuttable"));
        }
        for (from, to, link) in &self.links {
            if *from == i || *to == i {
                link.cut();
            }
        }
        Ok(())
    }

    /// Ends [`cut`](Self::cut): the servers' route retries get through again.
    pub fn heal(&self, i: usize) -> Result<(), Error> {
        for (from, to, link) in &self.links {
            if *from == i || *to == i {
                link.heal();
            }
        }
        Ok(())
    }

    /// Polls until no node of the cluster shows a route to node `i`, and
    /// `i` shows none.
    pub fn wait_for_cut(&self, i: usize, deadline: Instant) -> Result<(), Error> {
        let cut = wait_until(deadline, || {
            self.route_counts().iter().enumerate().all(|(j, c)| match c {
                Some(count) if j == i => *count == 0,
                Some(count) => *count == (self.size() as u64).saturating_sub(2),
                None => true,
            })
        });
        if cut { Ok(()) } else { Err(Error::new(format!("routes not cut by the deadline: {:?}", self.route_counts()))) }
    }

    fn try_start(size: usize) -> Result<Self, Error> {
        let binary = nats_server_binary()?;
        let tag = unique_tag();
        let deadline = Instant::now() + READY_TIMEOUT;
        if size == 1 {
            let mut node = NatsServer::spawn(binary, format!("nats-{tag}-node-1"), None, Vec::new())?;
            node.wait_ready(deadline)?;
            node.wait_for_jetstream(deadline)?;
            return Ok(Self { nodes: vec![node], links: Vec::new() });
        }
        let ports = pick_ports(size)?;
        let routes: Vec<String> = ports.iter().map(|port| format!("nats://{HOST}:{port}")).collect();
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            nodes.push(NatsServer::spawn(
                binary.clone(),
                format!("nats-{tag}-node-{}", i + 1),
                Some(*port),
                routes.clone(),
            )?);
        }
        for node in &mut nodes {
            node.wait_ready(deadline)?;
        }
        let cluster = Self { nodes, links: Vec::new() };
        cluster.wait_for_mesh(deadline)?;
        cluster.wait_for_jetstream(deadline)?;
        Ok(cluster)
    }

    /// The number of nodes (running or not).
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`, counted from 0 (node 0 is the seed). Panics if out of range.
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Node `i`, mutably. Panics if out of range.
    pub fn node_mut(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }

    /// All nodes.
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// The client URLs of all nodes, without credentials.
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::client_url).collect()
    }

    /// Kills node `i` abruptly (see [`NatsServer::kill`]).
    pub fn kill(&mut self, i: usize) -> Result<(), Error> {
        self.nodes[i].kill()
    }

    /// Stops node `i` gracefully (see [`NatsServer::stop`]).
    pub fn stop(&mut self, i: usize) -> Result<(), Error> {
        self.nodes[i].stop()
    }

    /// Freezes node `i` (see [`NatsServer::freeze`]).
    pub fn freeze(&mut self, i: usize) -> Result<(), Error> {
        self.nodes[i].freeze()
    }

    /// Thaws node `i` (see [`NatsServer::thaw`]).
    pub fn thaw(&mut self, i: usize) -> Result<(), Error> {
        self.nodes[i].thaw()
    }

    /// Restarts node `i` on its previous ports, routes and store, and waits
    /// until the mesh of the running nodes is full again and every running
    /// node knows a meta leader.
    pub fn restart(&mut self, i: usize) -> Result<(), Error> {
        self.nodes[i].restart()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        self.wait_for_mesh(deadline)?;
        self.wait_for_jetstream(deadline)
    }

    /// Polls until every running, unfrozen node names a JetStream meta
    /// leader.
    pub fn wait_for_jetstream(&self, deadline: Instant) -> Result<(), Error> {
        for node in self.nodes.iter().filter(|n| n.is_running() && !n.is_frozen()) {
            node.wait_for_jetstream(deadline)?;
        }
        Ok(())
    }

    /// `num_routes` of every node (`None` for a node that is down or does
    /// not answer).
    pub fn route_counts(&self) -> Vec<Option<u64>> {
        self.nodes.iter().map(|n| if n.is_running() && !n.is_frozen() { n.num_routes().ok() } else { None }).collect()
    }

    /// Polls until every running node shows a route to every other running
    /// node (`num_routes == running - 1`), e.g. after a start, a restart or,
    /// with one node killed, once the survivors noticed it.
    pub fn wait_for_mesh(&self, deadline: Instant) -> Result<(), Error> {
        let running = self.nodes.iter().filter(|n| n.is_running() && !n.is_frozen()).count();
        let expected = running.saturating_sub(1) as u64;
        let mut counts = Vec::new();
        let meshed = wait_until(deadline, || {
            counts = self.route_counts();
            self.nodes.iter().zip(&counts).all(|(n, c)| !n.is_running() || n.is_frozen() || *c == Some(expected))
        });
        if meshed {
            Ok(())
        } else {
            let mut message = format!(
                "cluster not meshed by the deadline: expected {expected} routes on each of the {running} \
                 running nodes, /routez num_routes per node: {counts:?}"
            );
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                message.push('\n');
                message.push_str(node.failure("log of a running node").message());
            }
            Err(Error::new(message))
        }
    }
}

/// `count` distinct loopback ports, each bound once on port 0 by this
/// process and released: the cluster ports of a JetStream cluster must be
/// known before its first server starts.
fn pick_ports(count: usize) -> Result<Vec<u16>, Error> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind((HOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::new(format!("cannot bind a loopback port: {e}")))?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::new(format!("no local address: {e}")))
}

/// A TCP proxy that can be cut and healed: the route between two
/// nats-servers goes through one, so a test can partition a server from the
/// others without touching the processes. Cutting shuts down every
/// connection through the proxy and refuses new ones (accepted, then closed
/// at once, as a dropped link looks to the dialler); healing lets new ones
/// through again, and the servers' own route retries reconnect.
pub mod proxy {

    use std::io::{self, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;

    /// One listening proxy forwarding to `target`. Dropping it cuts it and
    /// stops accepting.
    #[derive(Debug)]
    pub struct Proxy {
        addr: SocketAddr,
        shared: Arc<Shared>,
    }

    #[derive(Debug, Default)]
    struct Shared {
        cut: AtomicBool,
        stopped: AtomicBool,
        /// Both ends of every connection open through the proxy.
        open: Mutex<Vec<TcpStream>>,
    }

    impl Shared {
        fn shut_all(&self) {
            let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    impl Proxy {
        /// Listens on a loopback port chosen by the kernel and forwards every
        /// connection to `target`.
        pub fn start(target: SocketAddr) -> io::Result<Self> {
            let listener = TcpListener::bind(("127.0.0.1", 0))?;
            let addr = listener.local_addr()?;
            let shared = Arc::new(Shared::default());
            let accepting = shared.clone();
            thread::Builder::new().name(format!("proxy-{addr}")).spawn(move || accept(listener, target, accepting))?;
            Ok(Self { addr, shared })
        }

        /// Where clients connect.
        pub fn addr(&self) -> SocketAddr {
            self.addr
        }

        /// Shuts down every connection through the proxy and refuses new ones.
        pub fn cut(&self) {
            self.shared.cut.store(true, Ordering::SeqCst);
            self.shared.shut_all();
        }

        /// Lets new connections through again.
        pub fn heal(&self) {
            self.shared.cut.store(false, Ordering::SeqCst);
        }

        /// Whether the proxy is cut.
        pub fn is_cut(&self) -> bool {
            self.shared.cut.load(Ordering::SeqCst)
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.shared.stopped.store(true, Ordering::SeqCst);
            self.cut();
            // Wakes the accept loop so it sees `stopped`.
            let _ = TcpStream::connect(self.addr);
        }
    }

    fn accept(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
        for incoming in listener.incoming() {
            if shared.stopped.load(Ordering::SeqCst) {
                return;
            }
            let Ok(client) = incoming else { continue };
            if shared.cut.load(Ordering::SeqCst) {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let Ok(server) = TcpStream::connect(target) else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(client2), Ok(server2), Ok(client3), Ok(server3)) =
                (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone())
            else {
                continue;
            };
            {
                let mut open = shared.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                open.push(client3);
                open.push(server3);
            }
            // A cut between the check above and the registration must not let
            // this connection live.
            if shared.cut.load(Ordering::SeqCst) {
                shared.shut_all();
                continue;
            }
            let _ = thread::Builder::new().name("proxy-up".into()).spawn(move || pipe(client, server));
            let _ = thread::Builder::new().name("proxy-down".into()).spawn(move || pipe(server2, client2));
        }
    }

    fn pipe(mut from: TcpStream, mut to: TcpStream) {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    }
}
