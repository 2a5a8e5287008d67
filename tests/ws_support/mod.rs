//! A site for WebSocket tests: the guide's router over the shared accounts
//! store, a signed session cookie, login/logout as phx.gen.auth does them,
//! the HTTP phase of a page, and endpoint nodes served on port 0.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use liveguard::audit::MemorySink;
use liveguard::cluster::backbone::Backbone;
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::csrf::CsrfState;
use liveguard::live::{Assigns, HttpOutcome, HttpRequest, LiveApp};
use liveguard::origin::OriginPolicy;
use liveguard::session::{Session, SessionCookie};
use liveguard::socket_id::LiveSocketId;
use liveguard::ws::{Endpoint, EndpointConfig};
use liveguard::{MaxAge, OsRandom, Timestamp};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::live_support::{Counters, Store, block_on, guide_router, ring, session_for};

pub const COOKIE: &str = "_app_key";
pub const SALT: &str = "signed cookie";
/// The Origin every well-behaved client sends.
pub const ORIGIN: &str = "http://localhost:4000";

/// One application, shared by every node of a test.
pub struct Site {
    pub store: Arc<Store>,
    pub counters: Arc<Counters>,
    pub app: Arc<LiveApp>,
    pub cookie: SessionCookie,
    pub audit: Arc<MemorySink>,
}

impl Site {
    pub fn new() -> Self {
        let store = Store::seeded();
        let counters = Arc::new(Counters::default());
        let audit = Arc::new(MemorySink::new());
        let app = Arc::new(LiveApp::new(guide_router(&store, &counters), &ring(), audit.clone()));
        let cookie = SessionCookie::signed(COOKIE, &ring(), SALT).expect("a cookie config");
        Self { store, counters, app, cookie, audit }
    }

    /// The endpoint configuration of the tests: Origin `//localhost`, CSRF
    /// checked.
    pub fn config() -> EndpointConfig {
        EndpointConfig::new(OriginPolicy::allow_list(["//localhost"]).expect("a policy"))
    }

    /// Logs `token` in: a cookie session with the user token, its
    /// `live_socket_id` and a CSRF state.
    pub fn login(&self, token: &str) -> Session {
        let mut session = session_for(Some(token));
        session.put_live_socket_id(&socket_id(token));
        session.put_csrf_state(&CsrfState::generate(&mut OsRandom).expect("randomness"));
        session
    }

    /// The HTTP phase of `url` for `session`, as the page a browser gets.
    pub fn page(&self, session: &Session, url: &str) -> PageData {
        self.page_with(session, url, MaxAge::ONE_DAY)
    }

    /// The same, with a session cookie that lapses after `max_age`.
    pub fn page_with(&self, session: &Session, url: &str, max_age: MaxAge) -> PageData {
        self.render(session, url, max_age, Timestamp::now())
    }

    /// The same, rendered (tokens and cookie signed) at `then`.
    pub fn page_at(&self, session: &Session, url: &str, then: Timestamp) -> PageData {
        self.render(session, url, MaxAge::Unlimited, then)
    }

    fn render(&self, session: &Session, url: &str, max_age: MaxAge, now: Timestamp) -> PageData {
        let request = HttpRequest { url: url.into(), session: session.clone(), assigns: Assigns::new() };
        let outcome = block_on(self.app.http_mount(request, now, &mut OsRandom)).expect("a pipeline");
        let HttpOutcome::Page(page) = outcome else { panic!("{url} did not render: {outcome:?}") };
        let cookie = self.cookie.clone().max_age(max_age);
        let value = cookie.encode(&page.session, now, &mut OsRandom).expect("a cookie");
        PageData {
            cookie: format!("{COOKIE}={value}"),
            csrf_token: page.csrf_token.as_str().to_string(),
            topic: format!("lv:{}", page.socket.id()),
            session: page.session_token,
            static_token: page.static_token,
            url: url.to_string(),
        }
    }
}

/// The `live_socket_id` phx.gen.auth puts in the session of `token`.
pub fn socket_id(token: &str) -> LiveSocketId {
    LiveSocketId::new(format!("users_sessions:{token}")).expect("a valid id")
}

/// What a client needs from a rendered page.
#[derive(Clone, Debug, Serialize)]
pub struct PageData {
    /// `name=value` for the `Cookie` header.
    pub cookie: String,
    /// `<meta name="csrf-token">`.
    pub csrf_token: String,
    /// `lv:<view id>`.
    pub topic: String,
    /// `data-phx-session`.
    pub session: String,
    /// `data-phx-static`.
    pub static_token: String,
    /// The page URL.
    pub url: String,
}

impl PageData {
    /// The `phx_join` payload LiveView's client sends.
    pub fn join_payload(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "params": {"_csrf_token": self.csrf_token, "_mounts": 0},
            "session": self.session,
            "static": self.static_token,
        })
    }
}

/// A node on `backbone` with a running driver.
pub async fn node(name: &str, backbone: Arc<dyn Backbone>, site: &Site) -> Arc<Node> {
    Node::start(NodeConfig::new(name), &ring(), backbone, site.audit.clone()).await.expect("a node")
}

/// An endpoint served on 127.0.0.1 port 0.
pub struct Served {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    pub async fn start(site: &Site, node: Arc<Node>, config: EndpointConfig) -> Self {
        let endpoint = Endpoint::new(site.app.clone(), node, site.cookie.clone(), config).expect("an endpoint");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(liveguard::ws::serve(listener, endpoint.clone(), async move {
            let _ = stopped.await;
        }));
        Self { addr, endpoint, stop: Some(stop), task }
    }

    /// `ws://…/live/websocket` with the query `query` (e.g. `vsn=2.0.0`).
    pub fn url(&self, query: &str) -> String {
        format!("ws://{}/live/websocket?{query}", self.addr)
    }

    /// Shuts the server down gracefully and waits for every connection.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("serve ran").expect("serve ended cleanly");
    }
}
