//! The demo application, shared by `examples/demo/main.rs` and the browser
//! test: accounts modelled on `mix phx.gen.auth`, three live views behind two
//! boundaries, and one node's axum router (login, logout, live pages, the
//! WebSocket endpoint, the page script and the phoenix npm client).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use liveguard::audit::AuditSink;
use liveguard::axum::{Live, VerifiedSession, guard};
use liveguard::cluster::backbone::Backbone;
use liveguard::cluster::node::{Node, NodeConfig};
use liveguard::csrf::CsrfState;
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::live::{
    BoxFuture, CurrentUser, Decision, EventReply, Events, Guard, LiveApp, LiveRouter, LiveView, Socket, UserSource,
};
use liveguard::origin::OriginPolicy;
use liveguard::session::{Session, SessionCookie, USER_TOKEN};
use liveguard::socket_id::LiveSocketId;
use liveguard::web::{LivePages, PageHtml, escape, redirect_response};
use liveguard::ws::{Endpoint, EndpointConfig};
use liveguard::{OsRandom, SecureRandom, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

pub const COOKIE: &str = "_demo_key";

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: u64,
    pub email: String,
    pub admin: bool,
}

struct Account {
    user: User,
    password: String,
}

/// The accounts store: users, their session tokens (server-side, as
/// phx.gen.auth's `users_tokens`) and projects. One store is shared by every
/// node, as a database would be.
pub struct Accounts {
    accounts: Mutex<Vec<Account>>,
    tokens: Mutex<HashMap<String, u64>>,
    /// id -> (owner, name)
    projects: Mutex<BTreeMap<u64, (u64, String)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Accounts {
    /// alice and bob (users), root (admin); passwords `<name>-password`.
    pub fn seeded() -> Arc<Self> {
        let account = |id, email: &str, admin| Account {
            user: User { id, email: email.to_string(), admin },
            password: format!("{}-password", email.split('@').next().unwrap_or_default()),
        };
        let projects =
            [(10, (1, "alice's garden")), (11, (1, "alice's shed")), (20, (2, "bob's boat")), (30, (3, "ops"))];
        Arc::new(Self {
            accounts: Mutex::new(vec![
                account(1, "alice@example.com", false),
                account(2, "bob@example.com", false),
                account(3, "root@example.com", true),
            ]),
            tokens: Mutex::new(HashMap::new()),
            projects: Mutex::new(
                projects.into_iter().map(|(id, (owner, name))| (id, (owner, name.to_string()))).collect(),
            ),
        })
    }

    /// A new session token for valid credentials.
    pub fn log_in(&self, email: &str, password: &str) -> Option<String> {
        let id = lock(&self.accounts).iter().find(|a| a.user.email == email && a.password == password)?.user.id;
        Some(self.new_token(id))
    }

    fn new_token(&self, user: u64) -> String {
        let mut bytes = [0u8; 32];
        // The OS random source failing is not recoverable for a login.
        OsRandom.fill(&mut bytes).expect("operating-system randomness");
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        lock(&self.tokens).insert(token.clone(), user);
        token
    }

    pub fn user_by_token(&self, token: &str) -> Option<User> {
        let id = *lock(&self.tokens).get(token)?;
        lock(&self.accounts).iter().find(|a| a.user.id == id).map(|a| a.user.clone())
    }

    /// Deletes one session token (log out); whether it existed.
    pub fn delete_token(&self, token: &str) -> bool {
        lock(&self.tokens).remove(token).is_some()
    }

    /// Deletes every session token of `user` (log out everywhere) and
    /// returns them, so their live connections can be disconnected.
    pub fn delete_all_tokens(&self, user: u64) -> Vec<String> {
        let mut tokens = lock(&self.tokens);
        let theirs: Vec<String> = tokens.iter().filter(|(_, id)| **id == user).map(|(t, _)| t.clone()).collect();
        for token in &theirs {
            tokens.remove(token);
        }
        theirs
    }

    /// Changes the password: every session of the user ends, as in
    /// phx.gen.auth; returns the ended tokens and a new one for this session.
    pub fn change_password(&self, user: u64, password: &str) -> (Vec<String>, String) {
        if let Some(account) = lock(&self.accounts).iter_mut().find(|a| a.user.id == user) {
            account.password = password.to_string();
        }
        (self.delete_all_tokens(user), self.new_token(user))
    }

    // Read by the browser test, which shares this module.
    #[allow(dead_code)]
    pub fn project_ids(&self) -> Vec<u64> {
        lock(&self.projects).keys().copied().collect()
    }
}

impl UserSource for Accounts {
    type User = User;

    fn user<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Option<User>> {
        Box::pin(async move {
            let token: String = session.get(USER_TOKEN).ok().flatten()?;
            self.user_by_token(&token)
        })
    }
}

/// Waits until every node lists every other (nodes heartbeat by
/// themselves), so each report names the whole cluster.
pub async fn await_members(nodes: &[Arc<Node>]) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while nodes.iter().any(|node| node.members().len() < nodes.len()) {
        if tokio::time::Instant::now() > deadline {
            return Err(String::from("the nodes did not see each other within 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// phx.gen.auth's `live_socket_id`: one per session token.
pub fn socket_id(token: &str) -> Option<LiveSocketId> {
    LiveSocketId::new(format!("users_sessions:{token}")).ok()
}

fn current_user(socket: &Socket) -> Option<User> {
    socket.get::<CurrentUser<User>>().cloned().flatten()
}

// --- views -----------------------------------------------------------------

struct DashboardLive;

impl LiveView for DashboardLive {
    const NAME: &'static str = "DashboardLive";

    fn render(&self, socket: &Socket) -> Value {
        let user = current_user(socket);
        json!({"page": "dashboard", "email": user.as_ref().map(|u| u.email.clone()), "admin": user.is_some_and(|u| u.admin)})
    }
}

struct ProjectsLive(Arc<Accounts>);

impl LiveView for ProjectsLive {
    const NAME: &'static str = "ProjectsLive";

    fn render(&self, socket: &Socket) -> Value {
        let me = current_user(socket).map(|u| u.id);
        let projects = lock(&self.0.projects).clone();
        json!({
            "page": "projects",
            "projects": projects.iter().map(|(id, (owner, name))| json!({"id": id, "name": name, "mine": Some(*owner) == me})).collect::<Vec<_>>(),
        })
    }

    fn events() -> Events<Self> {
        Events::new().on("delete", owner_or_admin, delete_project)
    }
}

/// Judged from the server-side user, never from the payload.
fn owner_or_admin(view: &ProjectsLive, socket: &Socket, payload: &Value) -> Decision {
    let Some(user) = current_user(socket) else { return Decision::Deny("no user") };
    let Some(id) = payload.get("id").and_then(Value::as_u64) else { return Decision::Deny("no project id") };
    match lock(&view.0.projects).get(&id) {
        Some((owner, _)) if *owner == user.id || user.admin => Decision::Allow,
        _ => Decision::Deny("not the owner"),
    }
}

fn delete_project<'a>(view: &'a ProjectsLive, _: &'a mut Socket, payload: &'a Value) -> BoxFuture<'a, EventReply> {
    Box::pin(async move {
        let id = payload.get("id").and_then(Value::as_u64);
        if let Some(id) = id {
            lock(&view.0.projects).remove(&id);
        }
        EventReply::Reply(json!({"deleted": id}))
    })
}

struct AdminLive(Arc<Accounts>);

impl LiveView for AdminLive {
    const NAME: &'static str = "AdminLive";

    fn render(&self, _: &Socket) -> Value {
        json!({"page": "admin", "sessions": lock(&self.0.tokens).len()})
    }
}

// --- the application ---------------------------------------------------------

/// What every node of one deployment shares: keys, accounts, guards, app.
#[derive(Clone)]
pub struct Demo {
    pub accounts: Arc<Accounts>,
    pub ring: Arc<KeyRing>,
    pub app: Arc<LiveApp>,
    pub cookie: SessionCookie,
    pub signed_in: Arc<Guard<Accounts>>,
    pub assets: PathBuf,
}

impl Demo {
    /// A deployment with a fresh random secret key base (sessions end when
    /// it stops) and the phoenix client installed under `assets`.
    pub fn new(audit: Arc<dyn AuditSink>, assets: PathBuf) -> Self {
        let mut secret = vec![0u8; 64];
        OsRandom.fill(&mut secret).expect("operating-system randomness");
        let ring = KeyRing::new(KeyId(1), SecretKeyBase::new(secret).expect("64 bytes"));
        let accounts = Accounts::seeded();
        let signed_in = Arc::new(Guard::signed_in("RequireUser", accounts.clone(), "/login"));
        let admin =
            Arc::new(Guard::signed_in("RequireAdmin", accounts.clone(), "/login").require(|u| u.admin, "/dashboard"));
        let router = LiveRouter::builder()
            .live_session("authenticated", |s| {
                s.on_mount_shared(signed_in.clone(), "")
                    .live("/dashboard", DashboardLive)
                    .live("/projects", ProjectsLive(accounts.clone()))
            })
            .live_session("admin", |s| s.on_mount_shared(admin.clone(), "").live("/admin", AdminLive(accounts.clone())))
            .build()
            .expect("the demo's router");
        let app = Arc::new(LiveApp::new(router, &ring, audit));
        let cookie = SessionCookie::signed(COOKIE, &ring, "demo session").expect("a cookie name");
        Self { accounts, ring: Arc::new(ring), app, cookie, signed_in, assets }
    }

    /// One node: its cluster membership on `backbone` and its router. The
    /// node's driver runs on the current runtime.
    pub async fn node(&self, name: &str, backbone: Arc<dyn Backbone>, audit: Arc<dyn AuditSink>) -> (Arc<Node>, Live) {
        let node =
            Node::start(NodeConfig::new(name), &self.ring, backbone, audit).await.expect("a node of the cluster");
        // Pages are served from 127.0.0.1 or localhost on any port: the
        // nodes of one deployment listen on several.
        let origin = OriginPolicy::allow_list(["//127.0.0.1", "//localhost"]).expect("an Origin policy");
        let endpoint = Endpoint::new(self.app.clone(), node.clone(), self.cookie.clone(), EndpointConfig::new(origin))
            .expect("an endpoint");
        (node, Live::new(LivePages::new(self.app.clone(), self.cookie.clone()), endpoint))
    }

    /// The node's routes.
    pub fn router(&self, live: &Live) -> Router {
        let state = AppState { demo: self.clone(), live: live.clone() };
        let signed_in = from_fn_with_state(live.guarded(self.signed_in.clone()), guard::<Accounts>);
        Router::new()
            .route("/", get(|| async { redirect("/dashboard", None) }))
            .route("/login", get(login_form).post(log_in))
            .route("/logout", post(log_out).route_layer(signed_in.clone()))
            .route("/logout-everywhere", post(log_out_everywhere).route_layer(signed_in.clone()))
            .route("/password", post(change_password).route_layer(signed_in))
            .route("/assets/app.js", get(app_js))
            .route("/assets/phoenix.mjs", get(phoenix_js))
            .with_state(state)
            .merge(live.router(layout))
    }
}

#[derive(Clone)]
struct AppState {
    demo: Demo,
    live: Live,
}

impl axum::extract::FromRef<AppState> for Live {
    fn from_ref(node: &AppState) -> Live {
        node.live.clone()
    }
}

fn redirect(to: &str, set_cookie: Option<HeaderValue>) -> Response {
    let mut response = redirect_response(to).map(axum::body::Body::from);
    if let Some(cookie) = set_cookie {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

fn html(body: String, set_cookie: Option<HeaderValue>) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Some(cookie) = set_cookie {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

/// The page shell every page shares.
fn shell(title: &str, head: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title} · liveguard demo</title>{head}
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}nav a,nav button{{margin-right:1em}}</style></head>
<body>{body}</body></html>"#
    )
}

/// The layout of live pages: navigation, the live container (which the
/// page script fills with what the server renders) and the forms.
fn layout(page: &PageHtml<'_>) -> String {
    let csrf = escape(page.page.csrf_token.as_str());
    let nav = format!(
        r#"<nav><a href="/dashboard" data-live>Dashboard</a><a href="/projects" data-live>Projects</a><a href="/admin" data-live>Admin</a>
<form method="post" action="/logout" style="display:inline"><input type="hidden" name="_csrf_token" value="{csrf}"><button id="logout">Log out</button></form>
<form method="post" action="/logout-everywhere" style="display:inline"><input type="hidden" name="_csrf_token" value="{csrf}"><button id="logout-everywhere">Log out everywhere</button></form></nav>
<form method="post" action="/password"><input type="hidden" name="_csrf_token" value="{csrf}"><label>New password (12+ characters) <input name="password" type="password"></label> <button id="change-password">Change password</button></form>"#
    );
    let head = format!(r#"{}<script type="module" src="/assets/app.js"></script>"#, page.csrf_meta);
    let body = format!(r#"{nav}{}<p>Connecting…</p></div><p id="status"></p>"#, page.container_open);
    shell(page.page.socket.view(), &head, &body)
}

#[derive(Deserialize)]
struct Notice {
    #[serde(default)]
    notice: String,
}

/// The message for a `notice` the server set; anything else shows nothing
/// (the page never echoes the query).
fn notice_text(notice: &str) -> &'static str {
    match notice {
        "logged-out" => "You were logged out on every node.",
        "logged-out-durable" => {
            "You were logged out. Some node did not confirm yet; it will close your other tabs when it catches up."
        }
        "logged-out-pending" => {
            "You were logged out here, but the cluster could not confirm it yet: your other tabs will be closed \
             as soon as it does (the server keeps retrying)."
        }
        _ => "",
    }
}

async fn login_form(
    State(node): State<AppState>,
    VerifiedSession(decoded): VerifiedSession,
    axum::extract::Query(query): axum::extract::Query<Notice>,
) -> Response {
    login_page(&node, decoded.session, notice_text(&query.notice), "")
}

fn login_page(node: &AppState, mut session: Session, notice: &str, error: &str) -> Response {
    let state = match session.csrf_state() {
        Some(state) => state,
        None => {
            let state = CsrfState::generate(&mut OsRandom).expect("operating-system randomness");
            session.put_csrf_state(&state);
            state
        }
    };
    let token = state.mask(&mut OsRandom).expect("operating-system randomness");
    let cookie = node.live.pages().set_cookie(&session, Timestamp::now(), &mut OsRandom).ok();
    let body = format!(
        r#"<h1>Log in</h1><p id="notice">{}</p><p id="error">{}</p><form method="post" action="/login">
<input type="hidden" name="_csrf_token" value="{}">
<label>Email <input name="email" id="email"></label> <label>Password <input name="password" id="password" type="password"></label>
<button id="login">Log in</button></form><p>alice@example.com / alice-password, root@example.com / root-password</p>"#,
        escape(notice),
        escape(error),
        escape(token.as_str())
    );
    html(shell("Log in", "", &body), cookie)
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
    _csrf_token: String,
}

async fn log_in(State(node): State<AppState>, headers: HeaderMap, Form(form): Form<Credentials>) -> Response {
    let decoded = node.live.pages().read_session(&headers, Timestamp::now());
    if !node.live.pages().form_csrf_ok(&decoded.session, Some(&form._csrf_token)) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(token) = node.demo.accounts.log_in(&form.email, &form.password) else {
        return login_page(&node, decoded.session, "", "Invalid email or password");
    };
    redirect("/dashboard", node.live.pages().set_cookie(&signed_in(&token), Timestamp::now(), &mut OsRandom).ok())
}

/// A fresh session for a new session token (never the old session, so a
/// planted one cannot be fixed): the token, its `live_socket_id`, and a new
/// CSRF state.
fn signed_in(token: &str) -> Session {
    let mut session = Session::new();
    let _ = session.put(USER_TOKEN, token);
    if let Some(id) = socket_id(token) {
        session.put_live_socket_id(&id);
    }
    session.put_csrf_state(&CsrfState::generate(&mut OsRandom).expect("operating-system randomness"));
    session
}

#[derive(Deserialize)]
struct CsrfForm {
    _csrf_token: String,
    #[serde(default)]
    password: String,
}

/// What the cluster confirmed of a log out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Confirmed {
    /// Recorded durably and applied by every node.
    Everywhere,
    /// Recorded durably; some node did not confirm in time (it applies it
    /// when it catches up with the log).
    Durable,
    /// Not recorded yet: this node's connections are closed and the node
    /// keeps retrying; other nodes' connections end when it lands, or at
    /// their next re-validation.
    Pending,
}

impl Confirmed {
    /// The `notice` query value the login page explains.
    fn notice(self) -> &'static str {
        match self {
            Self::Everywhere => "logged-out",
            Self::Durable => "logged-out-durable",
            Self::Pending => "logged-out-pending",
        }
    }
}

/// Disconnects the live connections of `tokens` on every node, all at once,
/// waiting up to 5 s for the cluster to confirm.
async fn disconnect(node: &AppState, tokens: &[String]) -> Confirmed {
    let cluster = node.live.endpoint().node();
    let revocations = tokens
        .iter()
        .filter_map(|token| socket_id(token))
        .map(|id| async move { cluster.disconnect(&id, Duration::from_secs(5)).await });
    let mut confirmed = Confirmed::Everywhere;
    for result in futures_util::future::join_all(revocations).await {
        confirmed = match (result, confirmed) {
            (Err(_), _) | (_, Confirmed::Pending) => Confirmed::Pending,
            (Ok(report), Confirmed::Everywhere) if report.complete() => Confirmed::Everywhere,
            (Ok(_), _) => Confirmed::Durable,
        };
    }
    confirmed
}

/// Where a log out lands: the login page, saying what the cluster confirmed.
fn logged_out(node: &AppState, confirmed: Confirmed) -> Response {
    redirect(&format!("/login?notice={}", confirmed.notice()), Some(node.live.pages().removal_cookie()))
}

fn checked(node: &AppState, session: &Session, form: &CsrfForm) -> Option<String> {
    node.live.pages().form_csrf_ok(session, Some(&form._csrf_token)).then(|| session.get(USER_TOKEN).ok().flatten())?
}

async fn log_out(
    State(node): State<AppState>,
    VerifiedSession(decoded): VerifiedSession,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(token) = checked(&node, &decoded.session, &form) else { return StatusCode::FORBIDDEN.into_response() };
    node.demo.accounts.delete_token(&token);
    let confirmed = disconnect(&node, &[token]).await;
    logged_out(&node, confirmed)
}

async fn log_out_everywhere(
    State(node): State<AppState>,
    VerifiedSession(decoded): VerifiedSession,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(token) = checked(&node, &decoded.session, &form) else { return StatusCode::FORBIDDEN.into_response() };
    let Some(user) = node.demo.accounts.user_by_token(&token) else { return redirect("/login", None) };
    let tokens = node.demo.accounts.delete_all_tokens(user.id);
    let confirmed = disconnect(&node, &tokens).await;
    logged_out(&node, confirmed)
}

async fn change_password(
    State(node): State<AppState>,
    VerifiedSession(decoded): VerifiedSession,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(token) = checked(&node, &decoded.session, &form) else { return StatusCode::FORBIDDEN.into_response() };
    let Some(user) = node.demo.accounts.user_by_token(&token) else { return redirect("/login", None) };
    if form.password.len() < 12 {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    }
    let (ended, fresh) = node.demo.accounts.change_password(user.id, &form.password);
    let confirmed = disconnect(&node, &ended).await;
    let to = match confirmed {
        Confirmed::Everywhere => String::from("/dashboard"),
        other => format!("/dashboard?notice={}", other.notice()),
    };
    redirect(&to, node.live.pages().set_cookie(&signed_in(&fresh), Timestamp::now(), &mut OsRandom).ok())
}

async fn app_js() -> Response {
    let mut response = include_str!("assets/app.js").into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/javascript"));
    response
}

/// The official phoenix client, from `npm ci --prefix examples/demo/assets`.
async fn phoenix_js(State(node): State<AppState>) -> Response {
    let path = node.demo.assets.join("node_modules/phoenix/priv/static/phoenix.mjs");
    match tokio::fs::read_to_string(&path).await {
        Ok(source) => {
            let mut response = source.into_response();
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/javascript"));
            response
        }
        Err(_) => (StatusCode::NOT_FOUND, "run `npm ci --prefix examples/demo/assets`").into_response(),
    }
}
