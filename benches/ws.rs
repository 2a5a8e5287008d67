//! Run with `cargo bench --bench ws --features ws` (about 20 s); `-- --test` runs everything once at a tiny scale.
//!
//! Measures the WebSocket endpoint against bare tokio-tungstenite, in the
//! same run, for two budgets:
//!
//! - **Memory**: ≤ 8 KiB of server RSS per idle authenticated connection.
//!   - Each memory case runs in a fresh *server process*: this binary,
//!     re-executed with `LIVEGUARD_WS_BENCH_ROLE=server`. That way the heap
//!     one case freed cannot absorb the next case's connections.
//!   - Once it listens, the server reads its RSS from `/proc/self/statm`
//!     (resident pages × page size). It then re-executes this binary again
//!     as the *client process* (`LIVEGUARD_WS_BENCH_ROLE=clients`).
//!   - The client process builds the same site from the same keys. It runs
//!     the HTTP phase of one page for each of `n` distinct users, then
//!     opens `n` connections, each with its own session cookie, CSRF token
//!     and `live_socket_id`. It prints `ready` and holds the connections
//!     until its stdin closes. No page data passes through the server
//!     process.
//!   - The server lets the connections settle and reads its RSS again. The
//!     difference divided by `n` is the cost of one connection. A counting
//!     global allocator (on only in server processes) also gives the live
//!     heap per connection, without malloc overhead.
//!   - Cases:
//!     - liveguard's endpoint, connections idle after the upgrade;
//!     - the same, with one LiveView joined per connection;
//!     - a what-if: the endpoint with a 4 KiB read buffer;
//!     - the *floor*: a bare server with the endpoint's `WebSocketConfig`
//!       (2 KiB read buffer), i.e. the same transport without liveguard;
//!     - bare `accept_async` with tungstenite's default config (a 128 KiB
//!       read buffer).
//! - **Connect**: secure connect + join ≤ 1.3× a bare connect.
//!   - Secure: TCP connect, the upgrade through the endpoint (Origin check,
//!     cookie session decode, CSRF verify, registration with the node), and
//!     a `phx_join` of the page's `lv:` topic, until the `ok` reply.
//!   - Bare: the same client sends the same request to an `accept_async`
//!     server (default config), which echoes the join frame back. The floor
//!     config is timed too.
//!   - All servers and the client share this process, one connection at a
//!     time. The cases are interleaved, with the order rotated each round,
//!     and each sample is a distinct user. The client closes each
//!     connection and waits for the server's end before the next one.
//!   - Runs on a 2-worker multi-thread runtime, as the servers run, then on
//!     a current-thread runtime. The current-thread run has no cross-thread
//!     wake-ups, so the fixed costs weigh the most.
//!   - The time of each step (TCP, upgrade, first round trip) is reported.
//!     The endpoint's checks are also timed without I/O, and the sizes
//!     behind a connection's memory are printed.
//!
//! The site is minimal but real: one `live_session` whose `on_mount` hook
//! loads the user from the session's `user_token` (an in-memory map), one
//! view, a signed session cookie, a node on the in-process backbone, and
//! `NoAudit`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use liveguard::audit::NoAudit;
use liveguard::cluster::backbone::InProcess;
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::csrf::CsrfState;
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::live::{
    Assigns, BoxFuture, CurrentUser, Guard, HttpOutcome, HttpRequest, JoinRequest, Joined, LiveApp, LiveConnection,
    LiveRouter, LiveView, Socket, UserSource,
};
use liveguard::origin::OriginPolicy;
use liveguard::session::{Session, SessionCookie, USER_TOKEN};
use liveguard::socket_id::LiveSocketId;
use liveguard::ws::{Endpoint, EndpointConfig};
use liveguard::{OsRandom, Timestamp};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{self, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

// ---------------------------------------------------------------------------
// Counting allocator (server processes only)
// ---------------------------------------------------------------------------

/// `System`, counting the bytes (requested sizes) and blocks currently
/// allocated once `COUNTING` is on. Only the memory cases' server processes
/// turn it on, to break their RSS down; elsewhere it costs one relaxed load
/// per allocation.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

fn layout_size(layout: Layout) -> isize {
    isize::try_from(layout.size()).unwrap_or(isize::MAX)
}

fn counted(bytes: isize, blocks: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        LIVE_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            counted(layout_size(layout), 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            counted(layout_size(layout), 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        counted(-layout_size(layout), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            counted(isize::try_from(new_size).unwrap_or(isize::MAX) - layout_size(layout), 0);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live heap bytes and blocks right now (while counting).
fn heap() -> (i64, i64) {
    (LIVE_BYTES.load(Ordering::SeqCst) as i64, LIVE_BLOCKS.load(Ordering::SeqCst) as i64)
}

// ---------------------------------------------------------------------------
// Scale and budgets
// ---------------------------------------------------------------------------

struct Scale {
    /// Connections per memory case.
    conns: usize,
    /// Warm-up and measured rounds of the connect cases.
    warmup: usize,
    rounds: usize,
    /// Iterations of each in-process check timing.
    micro: usize,
    /// Pause before the baseline RSS reading, and after the clients are ready.
    settle_before: Duration,
    settle_after: Duration,
}

const FULL: Scale = Scale {
    conns: 10_000,
    warmup: 200,
    rounds: 2000,
    micro: 5000,
    settle_before: Duration::from_millis(500),
    settle_after: Duration::from_millis(1500),
};

const QUICK: Scale = Scale {
    conns: 50,
    warmup: 5,
    rounds: 20,
    micro: 20,
    settle_before: Duration::from_millis(20),
    settle_after: Duration::from_millis(50),
};

const MEMORY_BUDGET_BYTES: f64 = 8.0 * 1024.0;
const CONNECT_BUDGET_RATIO: f64 = 1.3;

/// How many connections the client process opens at once.
const CONNECTING: usize = 64;
/// The longest any one step may take before the bench gives up.
const WAIT: Duration = Duration::from_secs(10);

const ROLE: &str = "LIVEGUARD_WS_BENCH_ROLE";
const CASE: &str = "LIVEGUARD_WS_BENCH_CASE";
const CONNS: &str = "LIVEGUARD_WS_BENCH_CONNS";
const ADDR: &str = "LIVEGUARD_WS_BENCH_ADDR";
const JOIN: &str = "LIVEGUARD_WS_BENCH_JOIN";
const SETTLE_BEFORE: &str = "LIVEGUARD_WS_BENCH_SETTLE_BEFORE_MS";
const SETTLE_AFTER: &str = "LIVEGUARD_WS_BENCH_SETTLE_AFTER_MS";

// ---------------------------------------------------------------------------
// The site: one live_session with an auth hook, one view
// ---------------------------------------------------------------------------

const COOKIE: &str = "_bench_key";
const SALT: &str = "signed cookie";
const ORIGIN: &str = "http://localhost:4000";
const PAGE_URL: &str = "http://localhost:4000/dashboard";

fn ring() -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new(vec![7; 64]).expect("a 64-byte secret key base"))
}

#[derive(Clone, Debug)]
struct User {
    id: u64,
    email: String,
    confirmed: bool,
}

/// Server-side session tokens, as phx.gen.auth keeps them (here in memory).
struct Accounts {
    by_token: HashMap<String, User>,
}

impl Accounts {
    /// Users `0..users`, all confirmed, each with one session token.
    fn seeded(users: usize) -> Arc<Self> {
        let by_token = (0..users)
            .map(|i| (user_token(i), User { id: i as u64, email: format!("user{i}@example.com"), confirmed: true }))
            .collect();
        Arc::new(Self { by_token })
    }
}

/// The session token of user `i` (43 characters, the length of
/// phx.gen.auth's url-encoded 32-byte tokens).
fn user_token(i: usize) -> String {
    format!("bench-session-token-{i:023}")
}

/// The user of the session's token: what `require_authenticated`'s guard
/// loads (the site's `Guard` sends anonymous users to /login and
/// unconfirmed ones to /confirm).
impl UserSource for Accounts {
    type User = User;

    fn user<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Option<User>> {
        Box::pin(async move {
            let token: String = session.get(USER_TOKEN).ok().flatten()?;
            self.by_token.get(&token).cloned()
        })
    }
}

struct Dashboard;

impl LiveView for Dashboard {
    const NAME: &'static str = "DashboardLive";

    fn render(&self, socket: &Socket) -> Value {
        let user = socket.get::<CurrentUser<User>>().cloned().flatten();
        json!({"hello": user.as_ref().map(|u| u.email.as_str()), "id": user.map(|u| u.id)})
    }
}

/// The application, its cookie and its accounts, identical (same keys) in
/// every process of the bench.
struct Site {
    app: Arc<LiveApp>,
    cookie: SessionCookie,
}

impl Site {
    fn new(users: usize) -> Self {
        let accounts = Accounts::seeded(users);
        let router = LiveRouter::builder()
            .live_session("authenticated", |s| {
                s.on_mount(Guard::signed_in("RequireUser", accounts, "/login").require(|u| u.confirmed, "/confirm"), "")
                    .live("/dashboard", Dashboard)
            })
            .build()
            .expect("the bench router builds");
        let ring = ring();
        let app = Arc::new(LiveApp::new(router, &ring, Arc::new(NoAudit)));
        let cookie = SessionCookie::signed(COOKIE, &ring, SALT).expect("a session cookie config");
        Self { app, cookie }
    }

    /// User `i` logs in (user token, `live_socket_id`, CSRF state) and
    /// gets the dashboard: what a browser holds before it connects.
    async fn page(&self, i: usize) -> PageData {
        let token = user_token(i);
        let mut session = Session::new();
        session.put(USER_TOKEN, &token).expect("a string session value");
        session.put_live_socket_id(&socket_id(&token));
        session.put_csrf_state(&CsrfState::generate(&mut OsRandom).expect("OS randomness"));
        let request = HttpRequest { url: PAGE_URL.to_string(), session, assigns: Assigns::new() };
        let outcome =
            self.app.http_mount(request, Timestamp::now(), &mut OsRandom).await.expect("the HTTP phase of the page");
        let HttpOutcome::Page(page) = outcome else { panic!("{PAGE_URL} did not render for user {i}: {outcome:?}") };
        let value = self.cookie.encode(&page.session, Timestamp::now(), &mut OsRandom).expect("a session cookie");
        PageData {
            cookie: format!("{COOKIE}={value}"),
            csrf_token: page.csrf_token.as_str().to_string(),
            topic: format!("lv:{}", page.socket.id()),
            join_token: page.session_token,
            static_token: page.static_token,
            session: page.session,
        }
    }
}

/// The `live_socket_id` phx.gen.auth puts in the session of `token`.
fn socket_id(token: &str) -> LiveSocketId {
    LiveSocketId::new(format!("users_sessions:{token}")).expect("a valid live_socket_id")
}

/// What a client needs from a rendered page.
struct PageData {
    /// `name=value` for the `Cookie` header.
    cookie: String,
    /// `<meta name="csrf-token">`.
    csrf_token: String,
    /// `lv:<view id>`.
    topic: String,
    /// `data-phx-session`.
    join_token: String,
    /// `data-phx-static`.
    static_token: String,
    /// The cookie session (for the in-process timings only).
    session: Session,
}

impl PageData {
    fn query(&self) -> String {
        format!("_csrf_token={}&vsn=2.0.0", self.csrf_token)
    }

    /// The upgrade request phoenix.js sends from the page.
    fn request(&self, addr: SocketAddr) -> Request {
        let url = format!("ws://{addr}/live/websocket?{}", self.query());
        let mut request = url.into_client_request().expect("a WebSocket request");
        let headers = request.headers_mut();
        headers.insert("cookie", HeaderValue::from_str(&self.cookie).expect("a Cookie header"));
        headers.insert("origin", HeaderValue::from_static(ORIGIN));
        request
    }

    fn join_payload(&self) -> Value {
        json!({
            "url": PAGE_URL,
            "params": {"_csrf_token": self.csrf_token, "_mounts": 0},
            "session": self.join_token,
            "static": self.static_token,
        })
    }

    /// `[join_ref, ref, topic, "phx_join", payload]`.
    fn join_frame(&self) -> String {
        json!(["1", "1", self.topic, "phx_join", self.join_payload()]).to_string()
    }
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// Serves the site's endpoint on 127.0.0.1 port 0.
async fn liveguard_server(site: &Site, config: EndpointConfig) -> (SocketAddr, Endpoint) {
    let node = Node::start(NodeConfig::new("a"), &ring(), Arc::new(InProcess::new()), Arc::new(NoAudit))
        .await
        .expect("a node on the in-process backbone");
    let endpoint = Endpoint::new(site.app.clone(), node, site.cookie.clone(), config).expect("an endpoint");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the endpoint");
    let addr = listener.local_addr().expect("the endpoint's address");
    tokio::spawn(liveguard::ws::serve(listener, endpoint.clone(), std::future::pending::<()>()));
    (addr, endpoint)
}

/// The endpoint's configuration: `EndpointConfig::new`'s defaults, Origin
/// `//localhost`, and `idle_timeout`.
fn endpoint_config(idle_timeout: Duration) -> EndpointConfig {
    EndpointConfig::new(OriginPolicy::allow_list(["//localhost"]).expect("an Origin policy")).idle_timeout(idle_timeout)
}

/// The endpoint's `WebSocketConfig` (`EndpointConfig::new`'s defaults),
/// for the floor.
fn floor_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0)
        .max_message_size(Some(128 * 1024))
        .max_frame_size(Some(128 * 1024))
}

/// Every client of the bench: a small read buffer keeps the client process
/// small and the client's own cost low in the connect timings.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// A bare tokio-tungstenite server on 127.0.0.1 port 0, its connections
/// held in a `JoinSet` as `liveguard::ws::serve` does.
async fn bare_server(config: Option<WebSocketConfig>, upgraded: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port for the bare server");
    let addr = listener.local_addr().expect("the bare server's address");
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    connections.spawn(bare_connection(stream, config, upgraded.clone()));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    addr
}

/// One bare connection: `accept_async` (`config` `None`) or
/// `accept_async_with_config`, then text frames echoed until the end.
async fn bare_connection(stream: TcpStream, config: Option<WebSocketConfig>, upgraded: Arc<AtomicUsize>) {
    let ws = match config {
        None => tokio_tungstenite::accept_async(stream).await,
        Some(config) => tokio_tungstenite::accept_async_with_config(stream, Some(config)).await,
    };
    let Ok(mut ws) = ws else { return };
    upgraded.fetch_add(1, Ordering::Relaxed);
    while let Some(Ok(message)) = ws.next().await {
        if message.is_text() && ws.send(message).await.is_err() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

type Client = WebSocketStream<TcpStream>;

async fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).await.expect("a TCP connection to the bench server");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    tcp
}

async fn upgrade(request: Request, tcp: TcpStream) -> Client {
    let upgraded = tokio_tungstenite::client_async_with_config(request, tcp, Some(client_config()));
    let (ws, _) = upgraded.await.expect("the WebSocket upgrade");
    ws
}

/// The next text frame, parsed.
async fn next_json(ws: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time");
        match message {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).expect("a JSON frame"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

fn assert_joined(reply: &Value) {
    let ok = reply[3] == "phx_reply" && reply[4]["status"] == "ok";
    assert!(ok, "the join was refused: {reply}");
}

/// Sends a close frame and waits until the server has ended the TCP
/// connection: the server closes first, so TIME_WAIT stays on its side and
/// the client's `connect()` never has to search past thousands of ports
/// still in TIME_WAIT.
async fn close(mut ws: Client) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
        let mut rest = [0_u8; 256];
        while matches!(ws.get_mut().read(&mut rest).await, Ok(read) if read > 0) {}
    })
    .await;
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MemoryCase {
    Liveguard,
    LiveguardJoined,
    /// Not a budget case: what a 4 KiB read buffer
    /// (`EndpointConfig::read_buffer_bytes(4096)`) costs.
    LiveguardSmallBuffer,
    Floor,
    TungsteniteDefault,
}

impl MemoryCase {
    const ALL: [Self; 5] =
        [Self::Liveguard, Self::LiveguardJoined, Self::LiveguardSmallBuffer, Self::Floor, Self::TungsteniteDefault];

    fn key(self) -> &'static str {
        match self {
            Self::Liveguard => "liveguard",
            Self::LiveguardJoined => "liveguard-joined",
            Self::LiveguardSmallBuffer => "liveguard-4k",
            Self::Floor => "floor",
            Self::TungsteniteDefault => "tungstenite-default",
        }
    }

    fn from_key(key: &str) -> Self {
        Self::ALL.into_iter().find(|case| case.key() == key).unwrap_or_else(|| panic!("unknown memory case {key:?}"))
    }

    fn label(self) -> &'static str {
        match self {
            Self::Liveguard => "liveguard endpoint, authenticated, connected (no join)",
            Self::LiveguardJoined => "liveguard endpoint, authenticated, one LiveView joined",
            Self::LiveguardSmallBuffer => "(what-if) liveguard, no join, read_buffer_bytes(4096)",
            Self::Floor => "floor: bare accept_async_with_config, endpoint's WebSocketConfig (2 KiB read buffer)",
            Self::TungsteniteDefault => "bare accept_async, tungstenite's default config (128 KiB read buffer)",
        }
    }

    fn joins(self) -> bool {
        self == Self::LiveguardJoined
    }
}

/// The process's resident set, from `/proc/self/statm`.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (the bench needs Linux)");
    let pages: u64 =
        statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).expect("resident pages in statm");
    pages * page_size()
}

/// `AT_PAGESZ` from the auxiliary vector (4096 if it cannot be read).
fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
    auxv.chunks_exact(16)
        .map(|entry| {
            let word = |bytes: &[u8]| u64::from_ne_bytes(bytes.try_into().expect("8 bytes"));
            (word(&entry[..8]), word(&entry[8..]))
        })
        .find(|&(key, _)| key == AT_PAGESZ)
        .map_or(4096, |(_, value)| value)
}

fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the bench's parent process"))
}

fn env_number(name: &str) -> u64 {
    env_var(name).parse().unwrap_or_else(|_| panic!("{name} is a number"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// One memory case's result, as the server process reports it.
struct MemoryResult {
    case: MemoryCase,
    conns: usize,
    rss_before: u64,
    rss_after: u64,
    /// Live heap (requested bytes, blocks) before and after, from the
    /// counting allocator.
    heap_before: (i64, i64),
    heap_after: (i64, i64),
    /// Connections the server holds when it reads `after` (registered ids
    /// for liveguard, upgraded connections for the bare servers).
    held: usize,
    /// How long the client process took to open every connection.
    connect_all: Duration,
}

impl MemoryResult {
    fn per_conn(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / self.conns as f64
    }

    fn heap_per_conn(&self) -> (f64, f64) {
        let n = self.conns as f64;
        ((self.heap_after.0 - self.heap_before.0) as f64 / n, (self.heap_after.1 - self.heap_before.1) as f64 / n)
    }
}

/// Runs one memory case in a fresh server process.
fn measure_memory(case: MemoryCase, scale: &Scale) -> MemoryResult {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let output = std::process::Command::new(exe)
        .env(ROLE, "server")
        .env(CASE, case.key())
        .env(CONNS, scale.conns.to_string())
        .env(SETTLE_BEFORE, scale.settle_before.as_millis().to_string())
        .env(SETTLE_AFTER, scale.settle_after.as_millis().to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("the server process runs");
    assert!(output.status.success(), "the server process for {} failed: {}", case.key(), output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("result ")).expect("a result line from the server process");
    let fields: Vec<i64> =
        line.split_whitespace().map(|f| f.parse().expect("numbers in the server's result line")).collect();
    let [rss_before, rss_after, bytes_before, bytes_after, blocks_before, blocks_after, held, connect_ms] = fields[..]
    else {
        panic!("malformed result line {line:?}")
    };
    let unsigned = |value: i64| u64::try_from(value).expect("a non-negative count");
    MemoryResult {
        case,
        conns: scale.conns,
        rss_before: unsigned(rss_before),
        rss_after: unsigned(rss_after),
        heap_before: (bytes_before, blocks_before),
        heap_after: (bytes_after, blocks_after),
        held: unsigned(held) as usize,
        connect_all: Duration::from_millis(unsigned(connect_ms)),
    }
}

/// The server process of one memory case: serve, read RSS, start the client
/// process, read RSS once its connections are idle, report. Its runtime's
/// workers serve while this thread waits on the client process.
fn server_role() {
    COUNTING.store(true, Ordering::SeqCst);
    let case = MemoryCase::from_key(&env_var(CASE));
    let conns = env_number(CONNS) as usize;
    let settle_before = Duration::from_millis(env_number(SETTLE_BEFORE));
    let settle_after = Duration::from_millis(env_number(SETTLE_AFTER));
    let runtime = runtime();
    let upgraded = Arc::new(AtomicUsize::new(0));
    // The site (its accounts hold every user) is application state: it is
    // built before the baseline.
    let (addr, endpoint) = runtime.block_on(async {
        match case {
            MemoryCase::Liveguard | MemoryCase::LiveguardJoined | MemoryCase::LiveguardSmallBuffer => {
                let site = Site::new(conns);
                let mut config = endpoint_config(Duration::from_secs(3600));
                if case == MemoryCase::LiveguardSmallBuffer {
                    config = config.read_buffer_bytes(4096);
                }
                let (addr, endpoint) = liveguard_server(&site, config).await;
                (addr, Some(endpoint))
            }
            MemoryCase::Floor => (bare_server(Some(floor_config()), upgraded.clone()).await, None),
            MemoryCase::TungsteniteDefault => (bare_server(None, upgraded.clone()).await, None),
        }
    });
    std::thread::sleep(settle_before);
    let rss_before = rss_bytes();
    let heap_before = heap();

    let exe = std::env::current_exe().expect("the bench binary's path");
    let mut clients = std::process::Command::new(exe)
        .env(ROLE, "clients")
        .env(ADDR, addr.to_string())
        .env(CONNS, conns.to_string())
        .env(JOIN, if case.joins() { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the client process starts");
    let stdout = clients.stdout.take().expect("the client process's stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("ready ").map(str::to_string))
        .expect("the client process reported ready");
    let mut fields = ready.split_whitespace().map(|f| f.parse::<u64>().expect("numbers after ready"));
    let opened = fields.next().expect("the number of connections");
    let connect_ms = fields.next().expect("the time to open them");
    assert_eq!(opened, conns as u64, "the client process opened every connection");

    std::thread::sleep(settle_after);
    let rss_after = rss_bytes();
    let heap_after = heap();
    let held = match &endpoint {
        Some(endpoint) => endpoint.node().registry().len(),
        None => upgraded.load(Ordering::Relaxed),
    };
    println!(
        "result {rss_before} {rss_after} {} {} {} {} {held} {connect_ms}",
        heap_before.0, heap_after.0, heap_before.1, heap_after.1
    );
    // The server's sockets close first (their TIME_WAIT stays on the
    // server's port), then the client process is told to exit.
    drop(endpoint);
    runtime.shutdown_timeout(WAIT);
    drop(clients.stdin.take());
    let status = clients.wait().expect("the client process's status");
    assert!(status.success(), "the client process failed: {status}");
}

/// The client process of one memory case: `n` users' pages, `n`
/// connections (joined if asked), held until stdin closes.
fn clients_role() {
    let addr: SocketAddr = env_var(ADDR).parse().expect("the server's address");
    let conns = env_number(CONNS) as usize;
    let join = env_var(JOIN) == "1";
    runtime().block_on(async move {
        let site = Site::new(conns);
        let mut pages = Vec::with_capacity(conns);
        for i in 0..conns {
            pages.push(site.page(i).await);
        }
        let pages = Arc::new(pages);
        let started = Instant::now();
        let mut workers = JoinSet::new();
        for worker in 0..CONNECTING {
            let pages = pages.clone();
            workers.spawn(async move {
                let mut held = Vec::new();
                for page in pages.iter().skip(worker).step_by(CONNECTING) {
                    let mut ws = upgrade(page.request(addr), tcp_connect(addr).await).await;
                    if join {
                        ws.send(Message::text(page.join_frame())).await.expect("the join sent");
                        assert_joined(&next_json(&mut ws).await);
                    }
                    held.push(ws);
                }
                held
            });
        }
        let mut held = Vec::with_capacity(conns);
        while let Some(opened) = workers.join_next().await {
            held.extend(opened.expect("a client worker"));
        }
        println!("ready {} {}", held.len(), started.elapsed().as_millis());
        // Hold every connection, idle, until the server process is done.
        tokio::task::spawn_blocking(|| {
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
        })
        .await
        .expect("stdin read");
        drop(held);
    });
}

// ---------------------------------------------------------------------------
// Connect latency
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ConnectCase {
    Liveguard,
    TungsteniteDefault,
    Floor,
}

impl ConnectCase {
    const ALL: [Self; 3] = [Self::Liveguard, Self::TungsteniteDefault, Self::Floor];

    fn label(self) -> &'static str {
        match self {
            Self::Liveguard => "liveguard: secure upgrade + phx_join → ok",
            Self::TungsteniteDefault => "bare accept_async (default config) + echo",
            Self::Floor => "bare, endpoint's WebSocketConfig + echo",
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Sample {
    tcp: Duration,
    upgrade: Duration,
    round_trip: Duration,
}

impl Sample {
    fn handshake(&self) -> Duration {
        self.tcp + self.upgrade
    }

    fn total(&self) -> Duration {
        self.tcp + self.upgrade + self.round_trip
    }
}

/// One connection: TCP, upgrade, the join frame and its answer (the join
/// reply, or the echo), then a clean close (not timed).
async fn connect_once(addr: SocketAddr, page: &PageData, check_join: bool) -> Sample {
    let request = page.request(addr);
    let frame = Message::text(page.join_frame());
    let t0 = Instant::now();
    let tcp = tcp_connect(addr).await;
    let t1 = Instant::now();
    let mut ws = upgrade(request, tcp).await;
    let t2 = Instant::now();
    ws.send(frame).await.expect("the join frame sent");
    let reply = next_json(&mut ws).await;
    let t3 = Instant::now();
    if check_join {
        assert_joined(&reply);
    }
    close(ws).await;
    Sample { tcp: t1 - t0, upgrade: t2 - t1, round_trip: t3 - t2 }
}

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

/// Percentiles and mean in µs.
fn stats(samples: impl Iterator<Item = Duration>) -> Stats {
    let mut us: Vec<f64> = samples.map(|d| d.as_secs_f64() * 1e6).collect();
    assert!(!us.is_empty(), "no samples");
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() as f64 * q) as usize).min(us.len() - 1)];
    Stats { p50: at(0.5), p99: at(0.99), mean: us.iter().sum::<f64>() / us.len() as f64 }
}

/// Mean time of `f` over `n` calls, in µs.
async fn time_each<F, Fut>(n: usize, mut f: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for i in 0..n {
        f(i).await;
    }
    started.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// The connect cases on the current runtime (`runtime` names it); the
/// ratios of liveguard to the bare default server, mean and p50. With
/// `diagnostics`, also times the endpoint's checks without I/O and prints
/// the sizes that make up a connection's memory.
async fn connect_bench(scale: &Scale, runtime: &str, diagnostics: bool) -> (f64, f64) {
    let site = Site::new(scale.warmup + scale.rounds);
    let mut pages = Vec::with_capacity(scale.warmup + scale.rounds);
    for i in 0..scale.warmup + scale.rounds {
        pages.push(site.page(i).await);
    }
    let (liveguard_addr, endpoint) = liveguard_server(&site, endpoint_config(Duration::from_secs(60))).await;
    assert_eq!(
        format!("{:?}", endpoint.websocket_config()),
        format!("{:?}", floor_config()),
        "the floor uses the endpoint's WebSocketConfig"
    );
    let default_addr = bare_server(None, Arc::new(AtomicUsize::new(0))).await;
    let floor_addr = bare_server(Some(floor_config()), Arc::new(AtomicUsize::new(0))).await;
    let addr = |case| match case {
        ConnectCase::Liveguard => liveguard_addr,
        ConnectCase::TungsteniteDefault => default_addr,
        ConnectCase::Floor => floor_addr,
    };

    let mut samples: [Vec<Sample>; 3] = Default::default();
    for (round, page) in pages.iter().enumerate() {
        for k in 0..ConnectCase::ALL.len() {
            let index = (round + k) % ConnectCase::ALL.len();
            let case = ConnectCase::ALL[index];
            let sample = tokio::time::timeout(WAIT, connect_once(addr(case), page, case == ConnectCase::Liveguard))
                .await
                .expect("a connection in time");
            if round >= scale.warmup {
                samples[index].push(sample);
            }
        }
    }
    assert_eq!(endpoint.node().registry().len(), 0, "every closed connection unregistered");

    println!();
    println!(
        "connect, {runtime}: {} rounds after {} warm-up, cases interleaved (order rotated each round), \
         one connection at a time, each sample a distinct user; µs",
        scale.rounds, scale.warmup
    );
    println!(
        "{:<46} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8}",
        "case", "p50", "p99", "mean", "TCP p50", "upgr p50", "rtt p50", "hs mean"
    );
    let mut all = Vec::new();
    for (index, case) in ConnectCase::ALL.into_iter().enumerate() {
        let s = &samples[index];
        let total = stats(s.iter().map(Sample::total));
        let tcp = stats(s.iter().map(|x| x.tcp));
        let upgrade = stats(s.iter().map(|x| x.upgrade));
        let round_trip = stats(s.iter().map(|x| x.round_trip));
        let handshake = stats(s.iter().map(Sample::handshake));
        println!(
            "{:<46} {:>8.1} {:>8.1} {:>8.1} | {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            case.label(),
            total.p50,
            total.p99,
            total.mean,
            tcp.p50,
            upgrade.p50,
            round_trip.p50,
            handshake.mean
        );
        all.push((total, handshake, round_trip));
    }
    let (lg_total, lg_handshake, lg_rtt) = &all[0];
    let (bare_total, bare_handshake, bare_rtt) = &all[1];
    let (floor_total, _, _) = &all[2];
    let mean_ratio = lg_total.mean / bare_total.mean;
    let p50_ratio = lg_total.p50 / bare_total.p50;
    println!(
        "ratio liveguard / bare (default config): mean {mean_ratio:.2}, p50 {p50_ratio:.2}, p99 {:.2}",
        lg_total.p99 / bare_total.p99
    );
    println!(
        "ratio liveguard / floor (2 KiB config):   mean {:.2}, p50 {:.2}",
        lg_total.mean / floor_total.mean,
        lg_total.p50 / floor_total.p50
    );
    println!(
        "where the time goes (liveguard − bare, µs): handshake (TCP + upgrade) mean {:+.1} (p50 {:+.1}), \
         first round trip (join vs echo) mean {:+.1} (p50 {:+.1})",
        lg_handshake.mean - bare_handshake.mean,
        lg_handshake.p50 - bare_handshake.p50,
        lg_rtt.mean - bare_rtt.mean,
        lg_rtt.p50 - bare_rtt.p50
    );
    if diagnostics {
        print_diagnostics(scale, &pages, liveguard_addr, &endpoint).await;
    }
    (mean_ratio, p50_ratio)
}

/// The endpoint's work without I/O, and the sizes behind a connection's
/// memory.
async fn print_diagnostics(scale: &Scale, pages: &[PageData], liveguard_addr: SocketAddr, endpoint: &Endpoint) {
    let now = Timestamp::now();
    let upgrade_requests: Vec<http::Request<()>> = pages
        .iter()
        .map(|page| {
            http::Request::builder()
                .uri(format!("/live/websocket?{}", page.query()))
                .header("host", liveguard_addr.to_string())
                .header("origin", ORIGIN)
                .header("cookie", &page.cookie)
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .body(())
                .expect("an upgrade request")
        })
        .collect();
    let n = scale.micro;
    let check = time_each(n, |i| {
        let accepted = endpoint.check_upgrade(&upgrade_requests[i % pages.len()], now);
        assert!(accepted.is_ok_and(|a| a.session.is_some()), "the upgrade check accepts the session");
        std::future::ready(())
    })
    .await;
    let payloads: Vec<Value> = pages.iter().map(PageData::join_payload).collect();
    let join = time_each(n, |i| {
        let page = &pages[i % pages.len()];
        let request = JoinRequest {
            topic: &page.topic,
            payload: &payloads[i % pages.len()],
            connect_session: Some(&page.session),
        };
        let app = endpoint.app();
        async move {
            assert!(app.join(request, now).await.is_ok(), "LiveApp::join accepts the page");
        }
    })
    .await;
    let ids: Vec<LiveSocketId> = (0..pages.len()).map(|i| socket_id(&user_token(i))).collect();
    let node = endpoint.node();
    let register = time_each(n, |i| {
        let id = ids[i % ids.len()].clone();
        async move {
            let registered = node.register(id, KeyId(1)).expect("a registration");
            drop(registered);
        }
    })
    .await;
    println!(
        "in-process, no I/O (mean of {n}): Endpoint::check_upgrade (Origin, cookie, CSRF) {check:.1} µs, \
         LiveApp::join (tokens, hook, mount, render) {join:.1} µs, Node::register + drop {register:.1} µs"
    );

    // What a connection's task holds for its whole life: tokio allocates
    // the task for the largest state of its future.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let local = listener.local_addr().expect("an address");
    let (_client, (stream, _)) =
        tokio::join!(async { TcpStream::connect(local).await.expect("a loopback connection") }, async {
            listener.accept().await.expect("an accepted connection")
        });
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let accept = endpoint.accept(stream, stopped);
    let liveguard_future = std::mem::size_of_val(&accept);
    drop(accept);
    let (_client, (stream, _)) =
        tokio::join!(async { TcpStream::connect(local).await.expect("a loopback connection") }, async {
            listener.accept().await.expect("an accepted connection")
        });
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(endpoint.websocket_config())).await;
    let accepted = endpoint.check_upgrade(&upgrade_requests[0], now).expect("an accepted upgrade");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let run = endpoint.run(ws, accepted, stopped);
    let run_future = std::mem::size_of_val(&run);
    drop(run);
    let mut connection = LiveConnection::new(endpoint.app().clone(), None, 100);
    let mut out = Vec::new();
    let receive = connection.receive("", now, &mut out);
    let receive_future = std::mem::size_of_val(&receive);
    drop(receive);
    let (_client, (stream, _)) =
        tokio::join!(async { TcpStream::connect(local).await.expect("a loopback connection") }, async {
            listener.accept().await.expect("an accepted connection")
        });
    let bare = bare_connection(stream, Some(floor_config()), Arc::new(AtomicUsize::new(0)));
    let bare_future = std::mem::size_of_val(&bare);
    drop(bare);
    println!(
        "future sizes (a connection task's cell holds one for its whole life): Endpoint::accept {liveguard_future} B \
         (of which Endpoint::run {run_future} B, within it LiveConnection::receive {receive_future} B), \
         bare_connection {bare_future} B"
    );
    // A joined view lives in `LiveConnection`'s `BTreeMap<String, Channel>`
    // (`Channel` = `Option<String>` + `Joined`): a B-tree leaf has room for
    // 11 entries, allocated with the first.
    let channel = std::mem::size_of::<Option<String>>() + std::mem::size_of::<Joined>();
    println!(
        "struct sizes: WebSocketStream<TcpStream> {} B, Joined {} B, Session {} B, Socket {} B; \
         one-channel BTreeMap leaf ≈ 11 × ({} + {channel}) = {} B",
        std::mem::size_of::<Client>(),
        std::mem::size_of::<Joined>(),
        std::mem::size_of::<Session>(),
        std::mem::size_of::<Socket>(),
        std::mem::size_of::<String>(),
        11 * (std::mem::size_of::<String>() + channel)
    );
    let page = &pages[0];
    let mut ws = upgrade(page.request(liveguard_addr), tcp_connect(liveguard_addr).await).await;
    let frame = page.join_frame();
    ws.send(Message::text(frame.as_str())).await.expect("the join sent");
    let reply = next_json(&mut ws).await;
    assert_joined(&reply);
    close(ws).await;
    println!(
        "frames: phx_join {} B (Cookie header {} B), its reply {} B",
        frame.len(),
        page.cookie.len(),
        reply.to_string().len()
    );
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => return server_role(),
        Ok("clients") => return clients_role(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        return;
    }
    let quick = has("--test") || !has("--bench");
    let scale = if quick { QUICK } else { FULL };
    let started = Instant::now();
    println!(
        "ws bench: 2 tokio workers per process, loopback, scale {}",
        if quick { "QUICK (test run, numbers meaningless)" } else { "full" }
    );

    // Connect first: the memory cases' 40 000 connections leave sockets in
    // TIME_WAIT for a minute.
    let (mean_ratio, p50_ratio) =
        runtime().block_on(connect_bench(&scale, "multi-thread runtime (2 workers, as the servers run)", true));
    // One thread: no cross-thread wake-ups, whose cost in this VM varies
    // from one process to the next, so the fixed costs weigh the most.
    let single = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let (single_mean, single_p50) = single.block_on(connect_bench(&scale, "current-thread runtime", false));
    drop(single);
    let connect_met = mean_ratio <= CONNECT_BUDGET_RATIO && p50_ratio <= CONNECT_BUDGET_RATIO;
    let single_met = single_mean <= CONNECT_BUDGET_RATIO && single_p50 <= CONNECT_BUDGET_RATIO;

    println!();
    println!(
        "memory: {} idle connections per case, each case in a fresh server process, clients in another process; \
         server RSS from /proc/self/statm, heap = live requested bytes (counting allocator, excludes malloc overhead)",
        scale.conns
    );
    println!(
        "{:<90} {:>8} {:>8} {:>10} {:>10} {:>7} {:>8}",
        "case", "before", "after", "RSS/conn", "heap/conn", "blocks", "open all"
    );
    let mut results = Vec::new();
    for case in MemoryCase::ALL {
        let result = measure_memory(case, &scale);
        assert_eq!(result.held, result.conns, "{}: the server holds every connection", case.key());
        let (heap_bytes, heap_blocks) = result.heap_per_conn();
        println!(
            "{:<90} {:>6.1}Mi {:>6.1}Mi {:>7.2}KiB {:>7.2}KiB {:>7.1} {:>6}ms",
            case.label(),
            result.rss_before as f64 / 1048576.0,
            result.rss_after as f64 / 1048576.0,
            result.per_conn() / 1024.0,
            heap_bytes / 1024.0,
            heap_blocks,
            result.connect_all.as_millis()
        );
        results.push(result);
    }
    let find = |case: MemoryCase| results.iter().find(|r| r.case == case).expect("every case ran");
    let liveguard = find(MemoryCase::Liveguard).per_conn();
    let joined = find(MemoryCase::LiveguardJoined).per_conn();
    let floor = find(MemoryCase::Floor).per_conn();
    let heap = |case: MemoryCase| find(case).heap_per_conn().0;
    println!(
        "liveguard beyond the floor: RSS {:.2} KiB, heap {:.2} KiB per connection (no join); RSS {:.2} KiB, heap {:.2} KiB (joined)",
        (liveguard - floor) / 1024.0,
        (heap(MemoryCase::Liveguard) - heap(MemoryCase::Floor)) / 1024.0,
        (joined - floor) / 1024.0,
        (heap(MemoryCase::LiveguardJoined) - heap(MemoryCase::Floor)) / 1024.0
    );
    let verdict = |bytes: f64| if bytes <= MEMORY_BUDGET_BYTES { "met" } else { "BUDGET MISSED" };
    println!(
        "verdict memory: ≤ 8 KiB RSS per idle authenticated connection: {:.2} KiB → {}",
        liveguard / 1024.0,
        verdict(liveguard)
    );
    println!("verdict memory, one LiveView joined: {:.2} KiB → {}", joined / 1024.0, verdict(joined));
    let small = find(MemoryCase::LiveguardSmallBuffer).per_conn();
    println!(
        "(what-if, no budget) with read_buffer_bytes(4096): {:.2} KiB → would be {}",
        small / 1024.0,
        verdict(small)
    );
    println!(
        "verdict connect: secure connect + join ≤ {CONNECT_BUDGET_RATIO}× bare: multi-thread mean {mean_ratio:.2}, \
         p50 {p50_ratio:.2} → {}; current-thread mean {single_mean:.2}, p50 {single_p50:.2} → {}",
        if connect_met { "met" } else { "BUDGET MISSED" },
        if single_met { "met" } else { "BUDGET MISSED" }
    );
    println!();
    println!("ws bench done in {:.1} s", started.elapsed().as_secs_f64());
}
