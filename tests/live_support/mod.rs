//! Shared fixtures of `tests/live.rs`: an in-memory accounts store, the
//! `UserAuth`/`AdminAuth` hooks of the LiveView security guide, the views of
//! its "complete example", small probe hooks and views that count what ran,
//! a `block_on` for the runtime-agnostic core, and a `Harness` around one
//! `LiveApp` with a `MemorySink`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use liveguard::audit::{AuditRecord, MemorySink};
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::live::{
    AllowAll, AssignKey, Assigns, BoxFuture, Decision, EventFlow, EventHook, EventOutcome, EventRefusal, EventReply,
    Events, Flow, HttpOutcome, HttpRequest, JoinError, JoinRequest, Joined, LiveApp, LiveRouter, LiveView, MountError,
    OnMount, Page, Params, PipelineError, Socket, UserSource,
};
use liveguard::session::{Session, USER_TOKEN};
use liveguard::{OsRandom, Timestamp};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Executor, time, keys
// ---------------------------------------------------------------------------

/// Polls `future` to completion on this thread: the core never spawns and
/// every future of these fixtures is ready at once.
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// The fixed "now" of every render.
pub const NOW: Timestamp = Timestamp::from_unix_secs(1_700_000_000);
pub const SECOND_MS: u64 = 1_000;
pub const DAY_MS: u64 = 86_400_000;

/// `NOW` moved `millis` later.
pub fn later(millis: u64) -> Timestamp {
    NOW.saturating_add_millis(millis)
}

pub fn ring_with(byte: u8) -> KeyRing {
    KeyRing::new(KeyId(1), SecretKeyBase::new(vec![byte; 64]).expect("a 64-byte secret"))
}

/// The key ring of every app unless a test says otherwise.
pub fn ring() -> KeyRing {
    ring_with(7)
}

// ---------------------------------------------------------------------------
// Accounts store
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: u64,
    pub email: &'static str,
    pub confirmed: bool,
    pub admin: bool,
    pub orgs: Vec<u64>,
}

pub const ALICE: u64 = 1;
pub const BOB: u64 = 2;
pub const ROOT: u64 = 3;

/// Users, server-side session tokens and projects, all mutable so tests can
/// change the server side between the two phases.
#[derive(Default)]
pub struct Store {
    pub users: Mutex<BTreeMap<u64, User>>,
    pub tokens: Mutex<BTreeMap<String, u64>>,
    /// id -> (owner, name)
    pub projects: Mutex<BTreeMap<u64, (u64, String)>>,
    /// How many times `UserAuth` computed the current user (its `assign_new`
    /// closure ran).
    pub lookups: AtomicUsize,
}

impl Store {
    /// alice (confirmed, org 1, owns project 10), bob (unconfirmed), root
    /// (confirmed admin, orgs 1 and 2, owns project 20).
    pub fn seeded() -> Arc<Self> {
        let store = Self::default();
        store.users.lock().unwrap().extend([
            (ALICE, User { id: ALICE, email: "alice@example.com", confirmed: true, admin: false, orgs: vec![1] }),
            (BOB, User { id: BOB, email: "bob@example.com", confirmed: false, admin: false, orgs: vec![] }),
            (ROOT, User { id: ROOT, email: "root@example.com", confirmed: true, admin: true, orgs: vec![1, 2] }),
        ]);
        store.tokens.lock().unwrap().extend([
            ("alice-token".to_string(), ALICE),
            ("bob-token".to_string(), BOB),
            ("root-token".to_string(), ROOT),
        ]);
        store.projects.lock().unwrap().extend([
            (10, (ALICE, "alice's".to_string())),
            (11, (ALICE, "alice's second".to_string())),
            (20, (ROOT, "root's".to_string())),
        ]);
        Arc::new(store)
    }

    pub fn user_by_token(&self, token: &str) -> Option<User> {
        let id = *self.tokens.lock().unwrap().get(token)?;
        self.users.lock().unwrap().get(&id).cloned()
    }

    /// Logs a token out server-side.
    pub fn delete_token(&self, token: &str) {
        assert!(self.tokens.lock().unwrap().remove(token).is_some(), "{token} was not a session token");
    }

    pub fn update_user(&self, id: u64, change: impl FnOnce(&mut User)) {
        change(self.users.lock().unwrap().get_mut(&id).expect("a seeded user"));
    }

    pub fn project_ids(&self) -> Vec<u64> {
        self.projects.lock().unwrap().keys().copied().collect()
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

/// The store as a `Guard`'s user source: the user of the session's
/// `user_token`, counted in `lookups` like `UserAuth`'s.
impl UserSource for Store {
    type User = User;

    fn user<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Option<User>> {
        Box::pin(async move {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let token: String = session.get(USER_TOKEN).ok().flatten()?;
            self.user_by_token(&token)
        })
    }
}

/// A cookie session holding `token` under `user_token` (if any).
pub fn session_for(token: Option<&str>) -> Session {
    let mut session = Session::new();
    if let Some(token) = token {
        session.put(USER_TOKEN, token).expect("a string encodes");
    }
    session
}

// ---------------------------------------------------------------------------
// Assigns
// ---------------------------------------------------------------------------

pub struct CurrentUser;
impl AssignKey for CurrentUser {
    type Value = Option<User>;
    const NAME: &'static str = "current_user";
}

pub struct Org;
impl AssignKey for Org {
    type Value = u64;
    const NAME: &'static str = "org";
}

/// A plain string assign for probes.
pub struct Note;
impl AssignKey for Note {
    type Value = String;
    const NAME: &'static str = "note";
}

pub fn current_user(socket: &Socket) -> Option<User> {
    socket.get::<CurrentUser>().cloned().flatten()
}

// ---------------------------------------------------------------------------
// The guide's hooks
// ---------------------------------------------------------------------------

/// `UserLiveAuth`: `mount_current_user` loads the user with `assign_new`;
/// `require_authenticated` also sends anonymous users (no or unknown token)
/// to /login and unconfirmed ones to /confirm.
pub struct UserAuth(pub Arc<Store>);

impl OnMount for UserAuth {
    fn name(&self) -> &'static str {
        "UserAuth"
    }

    fn on_mount<'a>(
        &'a self,
        arg: &'a str,
        _: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Flow> {
        Box::pin(async move {
            let token: Option<String> = session.get(USER_TOKEN).ok().flatten();
            socket
                .assign_new::<CurrentUser, _, _>(|| async {
                    self.0.lookups.fetch_add(1, Ordering::SeqCst);
                    token.and_then(|t| self.0.user_by_token(&t))
                })
                .await;
            if arg != "require_authenticated" {
                return Flow::Continue;
            }
            match current_user(socket) {
                None => socket.redirect("/login"),
                Some(user) if !user.confirmed => socket.redirect("/confirm"),
                Some(_) => return Flow::Continue,
            }
            Flow::Halt
        })
    }
}

/// `AdminLiveAuth`: non-admins go to /.
pub struct AdminAuth;

impl OnMount for AdminAuth {
    fn name(&self) -> &'static str {
        "AdminAuth"
    }

    fn on_mount<'a>(
        &'a self,
        _: &'a str,
        _: &'a Params,
        _: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Flow> {
        Box::pin(async move {
            if current_user(socket).is_some_and(|u| u.admin) {
                return Flow::Continue;
            }
            socket.redirect("/");
            Flow::Halt
        })
    }
}

// ---------------------------------------------------------------------------
// The guide's views
// ---------------------------------------------------------------------------

pub struct Home;
impl LiveView for Home {
    const NAME: &'static str = "HomeLive";
    fn render(&self, socket: &Socket) -> Value {
        json!({"page": "home", "user": current_user(socket).map(|u| u.email)})
    }
    fn events() -> Events<Self> {
        Events::new().on("toggle_theme", AllowAll, |_, _, _| Box::pin(async { EventReply::NoReply }))
    }
}

/// A route of the implicit default session.
pub struct About;
impl LiveView for About {
    const NAME: &'static str = "AboutLive";
    fn render(&self, _: &Socket) -> Value {
        json!({"page": "about"})
    }
}

pub struct Dashboard;
impl LiveView for Dashboard {
    const NAME: &'static str = "DashboardLive";
    fn render(&self, socket: &Socket) -> Value {
        json!({"hello": current_user(socket).map(|u| u.email)})
    }
}

pub struct AdminDashboard;
impl LiveView for AdminDashboard {
    const NAME: &'static str = "AdminDashboardLive";
    fn render(&self, _: &Socket) -> Value {
        json!({"admin": true})
    }
}

/// What ran in a view: mounts and handler calls.
#[derive(Default, Debug)]
pub struct Counters {
    pub mounts: AtomicUsize,
    pub handled: AtomicUsize,
}

impl Counters {
    pub fn mounts(&self) -> usize {
        self.mounts.load(Ordering::SeqCst)
    }
    pub fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }
}

/// `ProjectsLive`: resource authorization in mount (an org the user is not
/// in does not exist), a `delete` event for the owner or an admin.
pub struct Projects {
    pub store: Arc<Store>,
    pub counters: Arc<Counters>,
}

impl LiveView for Projects {
    const NAME: &'static str = "ProjectsLive";

    fn mount<'a>(
        &'a self,
        params: &'a Params,
        _: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(async move {
            self.counters.mounts.fetch_add(1, Ordering::SeqCst);
            if let Some(org) = params.get("org_id") {
                let org: u64 = org.parse().map_err(|_| MountError::NotFound)?;
                if !current_user(socket).is_some_and(|u| u.orgs.contains(&org)) {
                    return Err(MountError::NotFound);
                }
                socket.assign::<Org>(org);
            }
            Ok(())
        })
    }

    fn render(&self, socket: &Socket) -> Value {
        let projects = self.store.projects.lock().unwrap().clone();
        json!({
            "org": socket.get::<Org>(),
            "projects": projects.iter().map(|(id, (owner, name))| json!({"id": id, "owner": owner, "name": name})).collect::<Vec<_>>(),
        })
    }

    fn events() -> Events<Self> {
        Events::new().on("delete", can_delete, delete_project)
    }
}

/// Owner or admin, judged from the server-side user, never the payload.
fn can_delete(view: &Projects, socket: &Socket, payload: &Value) -> Decision {
    let Some(user) = current_user(socket) else { return Decision::Deny("no user") };
    let Some(id) = payload.get("id").and_then(Value::as_u64) else { return Decision::Deny("no project id") };
    let owner = view.store.projects.lock().unwrap().get(&id).map(|(owner, _)| *owner);
    match owner {
        Some(owner) if owner == user.id || user.admin => Decision::Allow,
        _ => Decision::Deny("not the owner"),
    }
}

fn delete_project<'a>(view: &'a Projects, _: &'a mut Socket, payload: &'a Value) -> BoxFuture<'a, EventReply> {
    Box::pin(async move {
        view.counters.handled.fetch_add(1, Ordering::SeqCst);
        if let Some(id) = payload.get("id").and_then(Value::as_u64) {
            view.store.projects.lock().unwrap().remove(&id);
        }
        EventReply::Reply(json!({"deleted": payload.get("id")}))
    })
}

/// The ids of the projects a `ProjectsLive` rendering lists.
pub fn rendered_project_ids(rendered: &Value) -> Vec<u64> {
    rendered["projects"].as_array().expect("a project list").iter().map(|p| p["id"].as_u64().expect("an id")).collect()
}

/// The guide's router: the implicit default session (public) with /about,
/// `public` (/), `authenticated` (/dashboard, /projects,
/// /orgs/:org_id/projects) and `admin` (/admin), each with its root layout.
pub fn guide_router(store: &Arc<Store>, projects: &Arc<Counters>) -> LiveRouter {
    let projects_view = || Projects { store: Arc::clone(store), counters: Arc::clone(projects) };
    LiveRouter::builder()
        .live("/about", About)
        .default_session(|s| s.public())
        .live_session("public", |s| {
            s.public().on_mount(UserAuth(Arc::clone(store)), "mount_current_user").root_layout("public").live("/", Home)
        })
        .live_session("authenticated", |s| {
            s.on_mount(UserAuth(Arc::clone(store)), "require_authenticated")
                .root_layout("app")
                .live("/dashboard", Dashboard)
                .live("/projects", projects_view())
                .live("/orgs/:org_id/projects", projects_view())
        })
        .live_session("admin", |s| {
            s.on_mount(UserAuth(Arc::clone(store)), "require_authenticated")
                .on_mount(AdminAuth, "")
                .root_layout("admin")
                .live("/admin", AdminDashboard)
        })
        .build()
        .expect("the guide's router builds")
}

// ---------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------

/// A shared, ordered log of what ran.
#[derive(Clone, Default, Debug)]
pub struct Log(pub Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// An `on_mount` hook made of a synchronous closure.
pub struct FnHook<F> {
    name: &'static str,
    f: F,
}

pub fn hook<F>(name: &'static str, f: F) -> FnHook<F>
where
    F: Fn(&str, &Params, &Session, &mut Socket) -> Flow + Send + Sync + 'static,
{
    FnHook { name, f }
}

impl<F> OnMount for FnHook<F>
where
    F: Fn(&str, &Params, &Session, &mut Socket) -> Flow + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn on_mount<'a>(
        &'a self,
        arg: &'a str,
        params: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Flow> {
        let flow = (self.f)(arg, params, session, socket);
        Box::pin(std::future::ready(flow))
    }
}

/// A hook that logs `"<name>(<arg>) <phase>"` and continues.
pub fn logging_hook(name: &'static str, log: &Log) -> impl OnMount {
    let log = log.clone();
    hook(name, move |arg, _, _, socket| {
        log.push(format!("{name}({arg}) {}", phase(socket)));
        Flow::Continue
    })
}

pub fn phase(socket: &Socket) -> &'static str {
    if socket.connected() { "connected" } else { "http" }
}

/// `ProbeLive`: counts mounts and handler calls, logs them, copies the
/// session's `"tenant"` value (if any) into the `Note` assign, and renders
/// the note and the assign names. Its events: `ping` (allowed, replies
/// `{"pong": true}`), `admin_only` (denied unless the `Note` says "admin").
pub struct Probe {
    pub counters: Arc<Counters>,
    pub log: Log,
}

impl LiveView for Probe {
    const NAME: &'static str = "ProbeLive";

    fn mount<'a>(
        &'a self,
        _: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(async move {
            self.counters.mounts.fetch_add(1, Ordering::SeqCst);
            self.log.push(format!("mount {}", phase(socket)));
            if let Ok(Some(tenant)) = session.get::<String>("tenant") {
                socket.assign::<Note>(tenant);
            }
            Ok(())
        })
    }

    fn render(&self, socket: &Socket) -> Value {
        json!({"note": socket.get::<Note>(), "assigns": socket.assigns().names()})
    }

    fn events() -> Events<Self> {
        Events::new().on("ping", AllowAll, probe_ping).on("admin_only", admin_only, probe_ping)
    }
}

fn admin_only(_: &Probe, socket: &Socket, _: &Value) -> Decision {
    if socket.get::<Note>().is_some_and(|n| n == "admin") { Decision::Allow } else { Decision::Deny("not admin") }
}

fn probe_ping<'a>(view: &'a Probe, _: &'a mut Socket, _: &'a Value) -> BoxFuture<'a, EventReply> {
    Box::pin(async move {
        view.counters.handled.fetch_add(1, Ordering::SeqCst);
        view.log.push("handler");
        EventReply::Reply(json!({"pong": true}))
    })
}

/// A second probe view, for navigation between two views of one session.
pub struct Other;
impl LiveView for Other {
    const NAME: &'static str = "OtherLive";
    fn render(&self, _: &Socket) -> Value {
        json!({"page": "other"})
    }
}

/// A `handle_event` hook that logs `"hook <id> <event>"`, counts its calls
/// and answers `flow`.
pub struct RecordingEventHook {
    pub id: &'static str,
    pub flow: EventFlow,
    pub log: Log,
    pub calls: Arc<AtomicUsize>,
}

impl EventHook for RecordingEventHook {
    fn handle_event<'a>(&'a self, event: &'a str, _: &'a Value, _: &'a mut Socket) -> BoxFuture<'a, EventFlow> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.push(format!("hook {} {event}", self.id));
        Box::pin(std::future::ready(self.flow.clone()))
    }
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// One `LiveApp` with a `MemorySink` whose records the tests inspect.
pub struct Harness {
    pub app: LiveApp,
    pub audit: Arc<MemorySink>,
    pub ring: KeyRing,
}

impl Harness {
    pub fn new(router: LiveRouter) -> Self {
        Self::with_ring(router, ring())
    }

    pub fn with_ring(router: LiveRouter, ring: KeyRing) -> Self {
        let audit = Arc::new(MemorySink::new());
        let app = LiveApp::new(router, &ring, audit.clone());
        Self { app, audit, ring }
    }

    /// The same harness with its app reconfigured (`join_max_age`,
    /// `event_limits`).
    pub fn map_app(self, f: impl FnOnce(LiveApp, &KeyRing) -> LiveApp) -> Self {
        let Self { app, audit, ring } = self;
        let app = f(app, &ring);
        Self { app, audit, ring }
    }

    /// Every audit record since the last call.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.audit.take()
    }

    /// The HTTP phase with plug assigns.
    pub fn http(&self, url: &str, session: Session, assigns: Assigns) -> Result<HttpOutcome, PipelineError> {
        block_on(self.app.http_mount(HttpRequest { url: url.to_string(), session, assigns }, NOW, &mut OsRandom))
    }

    /// The HTTP phase without plug assigns; a pipeline error fails the test.
    pub fn get(&self, url: &str, session: Session) -> HttpOutcome {
        self.http(url, session, Assigns::new()).expect("the HTTP phase does not fail")
    }

    /// A rendered page, or the test fails.
    pub fn page(&self, url: &str, session: Session) -> Box<Page> {
        match self.get(url, session) {
            HttpOutcome::Page(page) => page,
            other => panic!("GET {url}: expected a page, got {other:?}"),
        }
    }

    /// A join of `page` at `now` with `payload`, over `connect` (the
    /// connection's cookie session).
    pub fn join_raw(
        &self,
        topic: &str,
        payload: &Value,
        connect: Option<&Session>,
        now: Timestamp,
    ) -> Result<Joined, JoinError> {
        block_on(self.app.join(JoinRequest { topic, payload, connect_session: connect }, now))
    }

    /// The join payload a client sends for `page`: `{key: target, session,
    /// static, params}`.
    pub fn payload(page: &Page, key: &str, target: &str) -> Value {
        json!({key: target, "session": page.session_token, "static": page.static_token, "params": {"_mounts": 0}})
    }

    /// The join of `page` with `url` (a plain rejoin), over the page's own
    /// cookie session.
    pub fn join_url(&self, page: &Page, url: &str) -> Result<Joined, JoinError> {
        let payload = Self::payload(page, "url", url);
        self.join_raw(&topic(page), &payload, Some(&page.session), NOW)
    }

    /// A live navigation from `page` to `to` over the same socket.
    pub fn join_redirect(&self, page: &Page, to: &str) -> Result<Joined, JoinError> {
        let payload = Self::payload(page, "redirect", to);
        self.join_raw(&topic(page), &payload, Some(&page.session), NOW)
    }

    pub fn event(&self, joined: &mut Joined, event: &str, payload: Value) -> Result<EventOutcome, EventRefusal> {
        block_on(self.app.handle_event(joined, event, &payload))
    }
}

/// `lv:<id>` of a page.
pub fn topic(page: &Page) -> String {
    format!("lv:{}", page.socket.id())
}

/// The `(reply, detail)` of the only `JoinRefused` record, or the test
/// fails.
pub fn join_refused(records: &[AuditRecord]) -> (&'static str, String) {
    let refused: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            AuditRecord::JoinRefused { reply, detail, .. } => Some((*reply, detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "one JoinRefused record expected in {records:?}");
    refused.into_iter().next().unwrap()
}
