//! Two WebSocket endpoint nodes on one NATS cluster: a scripted client on node-0 is disconnected by a logout on node-1.
//! Run with `cargo run --example ws_cluster --features ws,nats` (needs nats-server: apt-get install nats-server).

#[path = "../tests/support/nats.rs"]
mod nats_support;

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use liveguard::audit::NoAudit;
use liveguard::cluster::nats::Nats;
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::csrf::CsrfState;
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::live::{
    Assigns, BoxFuture, CurrentUser, Guard, HttpOutcome, HttpRequest, LiveApp, LiveRouter, LiveView, Socket, UserSource,
};
use liveguard::origin::OriginPolicy;
use liveguard::session::{Session, SessionCookie, USER_TOKEN};
use liveguard::socket_id::LiveSocketId;
use liveguard::ws::{Endpoint, EndpointConfig, serve};
use liveguard::{OsRandom, Timestamp};
use nats_support::NatsCluster;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type BoxError = Box<dyn Error>;

const COOKIE: &str = "_app_key";
const ORIGIN: &str = "http://localhost:4000";
/// How long any single step may take before the example gives up.
const WAIT: Duration = Duration::from_secs(5);

/// Server-side session tokens: logging out deletes the token, which is what the rejoin's `on_mount` sees.
struct Store {
    tokens: Mutex<BTreeMap<String, &'static str>>,
}

/// phx.gen.auth's `require_authenticated`, as a `Guard`: no user behind the session's token means /login.
impl UserSource for Store {
    type User = &'static str;

    fn user<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Option<&'static str>> {
        Box::pin(async move {
            let token: String = session.get(USER_TOKEN).ok().flatten()?;
            self.tokens.lock().ok()?.get(&token).copied()
        })
    }
}

struct Projects;
impl LiveView for Projects {
    const NAME: &'static str = "ProjectsLive";
    fn render(&self, socket: &Socket) -> Value {
        json!({"user": socket.get::<CurrentUser<&'static str>>().copied().flatten(), "projects": ["apollo", "gemini"]})
    }
}

/// What a browser keeps from the rendered page.
struct PageData {
    cookie: String,
    csrf_token: String,
    topic: String,
    session: String,
    static_token: String,
}

/// The HTTP phase of GET /projects right after login: the session carries the user token, the `live_socket_id`
/// a logout disconnects, and a CSRF state.
async fn get_projects(app: &LiveApp, cookie: &SessionCookie, token: &str) -> Result<PageData, BoxError> {
    let mut session = Session::new();
    session.put(USER_TOKEN, token)?;
    session.put_live_socket_id(&live_socket_id(token)?);
    session.put_csrf_state(&CsrfState::generate(&mut OsRandom)?);
    let request = HttpRequest { url: "/projects".into(), session, assigns: Assigns::new() };
    let HttpOutcome::Page(page) = app.http_mount(request, Timestamp::now(), &mut OsRandom).await? else {
        return Err("GET /projects did not render a page".into());
    };
    let value = cookie.encode(&page.session, Timestamp::now(), &mut OsRandom)?;
    Ok(PageData {
        cookie: format!("{COOKIE}={value}"),
        csrf_token: page.csrf_token.as_str().to_string(),
        topic: format!("lv:{}", page.socket.id()),
        session: page.session_token,
        static_token: page.static_token,
    })
}

fn live_socket_id(token: &str) -> Result<LiveSocketId, BoxError> {
    Ok(LiveSocketId::new(format!("users_sessions:{token}"))?)
}

/// A Phoenix Channels V2 client doing what phoenix.js does for one LiveView.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
}

impl Client {
    async fn connect(addr: SocketAddr, page: &PageData) -> Result<Self, BoxError> {
        let url = format!("ws://{addr}/live/websocket?_csrf_token={}&vsn=2.0.0", page.csrf_token);
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("cookie", HeaderValue::from_str(&page.cookie)?);
        request.headers_mut().insert("origin", HeaderValue::from_static(ORIGIN));
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { ws, next_ref: 0 })
    }

    /// Joins the page's view: the reply's status and response.
    async fn join(&mut self, page: &PageData) -> Result<(String, Value), BoxError> {
        self.next_ref += 1;
        let join_ref = self.next_ref.to_string();
        let payload = json!({
            "url": "http://localhost:4000/projects",
            "params": {"_csrf_token": page.csrf_token, "_mounts": 0},
            "session": page.session,
            "static": page.static_token,
        });
        let frame = json!([join_ref, join_ref, page.topic, "phx_join", payload]);
        self.ws.send(Message::text(frame.to_string())).await?;
        loop {
            if let Message::Text(text) = self.next().await? {
                let frame: Value = serde_json::from_str(text.as_str())?;
                if frame[1] == json!(join_ref) && frame[3] == "phx_reply" {
                    let status = frame[4]["status"].as_str().unwrap_or("?").to_string();
                    return Ok((status, frame[4]["response"].clone()));
                }
            }
        }
    }

    /// Reads until the server's close frame: when it came, its code and reason.
    async fn closed(&mut self) -> Result<(Instant, u16, String), BoxError> {
        loop {
            if let Message::Close(frame) = self.next().await? {
                let at = Instant::now();
                // Reading on sends tungstenite's close reply, as a browser would: the server waits for it.
                while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
                let frame = frame.ok_or("a close frame without a code")?;
                return Ok((at, u16::from(frame.code), frame.reason.to_string()));
            }
        }
    }

    async fn next(&mut self) -> Result<Message, BoxError> {
        match tokio::time::timeout(WAIT, self.ws.next()).await {
            Err(_) => Err(format!("no frame within {WAIT:?}").into()),
            Ok(None) => Err("the connection ended without a close frame".into()),
            Ok(Some(message)) => Ok(message?),
        }
    }
}

/// A liveguard node on its own nats-server, and its WebSocket endpoint on an ephemeral port.
struct Served {
    node: Arc<Node>,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Liveguard node `node-<index>` under its own NATS user (nats.conf), connected to `nats_url`.
async fn start_node(index: usize, nats_url: &str, ring: &KeyRing) -> Result<Arc<Node>, BoxError> {
    let user = nats_support::node_user(index);
    let options = async_nats::ConnectOptions::with_user_and_password(user.user.into(), user.password.into())
        .custom_inbox_prefix(nats_support::node_inbox(index));
    let backbone = Nats::connect(nats_url, options).await?;
    let config = NodeConfig::new(&format!("node-{index}"));
    Ok(Node::start(config, ring, Arc::new(backbone), Arc::new(NoAudit)).await?)
}

/// The nodes run their own heartbeats; until both list each other, a report could not name the other one.
async fn wait_for_peers(a: &Node, b: &Node) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    while a.members().len() < 2 || b.members().len() < 2 {
        if Instant::now() >= deadline {
            return Err(format!("nodes never saw each other: a {:?}, b {:?}", a.members(), b.members()).into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed())
}

async fn serve_endpoint(app: &Arc<LiveApp>, node: Arc<Node>, cookie: &SessionCookie) -> Result<Served, BoxError> {
    let config = EndpointConfig::new(OriginPolicy::allow_list(["//localhost"])?);
    let endpoint = Endpoint::new(app.clone(), node.clone(), cookie.clone(), config)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, endpoint, async move {
        let _ = stopped.await;
    }));
    println!("node {}: serving ws://{addr}/live/websocket", node.name());
    Ok(Served { node, addr, stop, task })
}

fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

async fn run(cluster: &NatsCluster) -> Result<(), BoxError> {
    let store = Arc::new(Store { tokens: Mutex::new(BTreeMap::from([("alice-token".into(), "alice@example.com")])) });
    let router = LiveRouter::builder()
        .live_session("authenticated", |s| {
            s.on_mount(Guard::signed_in("RequireUser", store.clone(), "/login"), "").live("/projects", Projects)
        })
        .build()?;
    // Every node shares the key ring: a cookie or join token signed on one node verifies on any other.
    let ring = KeyRing::new(KeyId(1), SecretKeyBase::new(vec![7; 64])?);
    let app = Arc::new(LiveApp::new(router, &ring, Arc::new(NoAudit)));
    let cookie = SessionCookie::signed(COOKIE, &ring, "signed cookie")?;

    let node_a = start_node(0, &cluster.node(0).client_url(), &ring).await?;
    let node_b = start_node(1, &cluster.node(1).client_url(), &ring).await?;
    let waited = wait_for_peers(&node_a, &node_b).await?;
    println!("cluster: node-0 on nats server 1, node-1 on server 2, members of each other after {}", millis(waited));
    let a = serve_endpoint(&app, node_a, &cookie).await?;
    let b = serve_endpoint(&app, node_b, &cookie).await?;

    let page = get_projects(&app, &cookie, "alice-token").await?;
    println!("http: GET /projects as alice -> page {} with cookie, CSRF token and join token", page.topic);
    let mut client = Client::connect(a.addr, &page).await?;
    let (status, response) = client.join(&page).await?;
    println!("client: joined {} on node-0 -> {status} {}", page.topic, response["rendered"]);

    // Logout on node-1: the token goes first, so whatever reconnects can no longer mount.
    store.tokens.lock().map_err(|_| "store lock poisoned")?.remove("alice-token");
    let id = live_socket_id("alice-token")?;
    let published = Instant::now();
    let (report, close) = tokio::join!(b.node.disconnect(&id, WAIT), client.closed());
    let answered_in = published.elapsed();
    let report = report?;
    let answered: Vec<String> = report
        .applied
        .iter()
        .map(|(node, n)| match n {
            Some(n) => format!("{node}: {n}"),
            None => format!("{node}: applied"),
        })
        .collect();
    let silent = if report.complete() { String::new() } else { format!(", silent: {:?}", report.silent) };
    println!(
        "node-1: disconnect({}) -> durable at position {}, applied by {{{}}} in {}, {} connection(s) closed{silent}",
        id.as_str(),
        report.position,
        answered.join(", "),
        millis(answered_in),
        report.connections(),
    );
    let (closed_at, code, reason) = close?;
    println!("client: closed with {code} ({reason}) {} after the publish", millis(closed_at - published));

    // Like phoenix.js, the client reconnects with the page it still holds: the handshake passes (the cookie is
    // intact), but the join re-runs on_mount against the store and is sent to the login page.
    let mut client = Client::connect(a.addr, &page).await?;
    let (status, response) = client.join(&page).await?;
    println!("client: rejoin {} on node-0 -> {status} {response}", page.topic);

    let _ = a.stop.send(());
    let _ = b.stop.send(());
    let (served_a, served_b, close) = tokio::join!(a.task, b.task, client.closed());
    served_a??;
    served_b??;
    let (_, code, reason) = close?;
    println!("endpoints: a and b shut down gracefully; the client saw {code} ({reason})");
    Ok(())
}

fn main() -> ExitCode {
    // Started before the runtime: the harness blocks while it polls the servers' readiness.
    let cluster = match NatsCluster::start(3) {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("ws_cluster: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("nats: {} servers from nats.conf in one cluster: {}", cluster.size(), cluster.client_urls().join(", "));
    // The runtime, and the NATS clients on it, end before the cluster is dropped (which kills the servers).
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BoxError::from)
        .and_then(|runtime| runtime.block_on(run(&cluster)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ws_cluster: {error}");
            ExitCode::FAILURE
        }
    }
}
