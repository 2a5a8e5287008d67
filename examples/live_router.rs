//! The "complete example" router of the LiveView security guide: public,
//! authenticated and admin `live_session`s with their `on_mount` hooks,
//! resource authorization in mount and a policy on every event. Prints what
//! each phase decides for a few requests.
//!
//! Run with `cargo run --example live_router`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use liveguard::audit::TracingSink;
use liveguard::keys::{KeyId, KeyRing, SecretKeyBase};
use liveguard::live::{
    AllowAll, AssignKey, Assigns, BoxFuture, Decision, EventReply, Events, Flow, HttpOutcome, HttpRequest, JoinRequest,
    LiveApp, LiveRouter, LiveView, MountError, OnMount, Params, Socket,
};
use liveguard::session::{Session, USER_TOKEN};
use liveguard::{OsRandom, Timestamp};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct User {
    id: u64,
    email: &'static str,
    confirmed: bool,
    admin: bool,
    orgs: Vec<u64>,
}

/// The accounts store: users, server-side session tokens, projects.
#[derive(Default)]
struct Store {
    users: Vec<User>,
    tokens: Mutex<BTreeMap<String, u64>>,
    projects: Mutex<BTreeMap<u64, (u64, &'static str)>>, // id -> (owner, name)
}

impl Store {
    fn user_by_token(&self, token: &str) -> Option<User> {
        let id = *self.tokens.lock().ok()?.get(token)?;
        self.users.iter().find(|u| u.id == id).cloned()
    }
}

struct CurrentUser;
impl AssignKey for CurrentUser {
    type Value = Option<User>;
    const NAME: &'static str = "current_user";
}

/// `UserLiveAuth`: `mount_current_user` loads the user; `require_authenticated`
/// also sends anonymous users to /login and unconfirmed ones to /confirm.
struct UserAuth(Arc<Store>);

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
            socket.assign_new::<CurrentUser, _, _>(|| async { token.and_then(|t| self.0.user_by_token(&t)) }).await;
            if arg != "require_authenticated" {
                return Flow::Continue;
            }
            match socket.get::<CurrentUser>().cloned().flatten() {
                None => socket.redirect("/login"),
                Some(user) if !user.confirmed => socket.redirect("/confirm"),
                Some(_) => return Flow::Continue,
            }
            Flow::Halt
        })
    }
}

/// `AdminLiveAuth`: non-admins go to /.
struct AdminAuth;

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
            if socket.get::<CurrentUser>().cloned().flatten().is_some_and(|u| u.admin) {
                return Flow::Continue;
            }
            socket.redirect("/");
            Flow::Halt
        })
    }
}

struct Home;
impl LiveView for Home {
    const NAME: &'static str = "HomeLive";
    fn render(&self, _: &Socket) -> Value {
        json!({"page": "home"})
    }
    fn events() -> Events<Self> {
        Events::new().on("toggle_theme", AllowAll, |_, _, _| Box::pin(async { EventReply::NoReply }))
    }
}

struct Projects(Arc<Store>);

struct Org;
impl AssignKey for Org {
    type Value = Option<u64>;
    const NAME: &'static str = "org";
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
            // Resource authorization: an org the user is not in does not exist.
            if let Some(org) = params.get("org_id") {
                let org: u64 = org.parse().map_err(|_| MountError::NotFound)?;
                let member = socket.get::<CurrentUser>().cloned().flatten().is_some_and(|u| u.orgs.contains(&org));
                if !member {
                    return Err(MountError::NotFound);
                }
                socket.assign::<Org>(Some(org));
            }
            Ok(())
        })
    }

    fn render(&self, _: &Socket) -> Value {
        let projects = self.0.projects.lock().map(|p| p.clone()).unwrap_or_default();
        json!({"projects": projects.iter().map(|(id, (owner, name))| json!({"id": id, "owner": owner, "name": name})).collect::<Vec<_>>()})
    }

    fn events() -> Events<Self> {
        Events::new().on("delete", can_delete, delete)
    }
}

/// Owner or admin, judged from the server-side user, never the payload.
fn can_delete(view: &Projects, socket: &Socket, payload: &Value) -> Decision {
    let Some(user) = socket.get::<CurrentUser>().cloned().flatten() else { return Decision::Deny("no user") };
    let Some(id) = payload.get("id").and_then(Value::as_u64) else { return Decision::Deny("no project id") };
    let owner = view.0.projects.lock().ok().and_then(|p| p.get(&id).map(|(owner, _)| *owner));
    match owner {
        Some(owner) if owner == user.id || user.admin => Decision::Allow,
        _ => Decision::Deny("not the owner"),
    }
}

fn delete<'a>(view: &'a Projects, _: &'a mut Socket, payload: &'a Value) -> BoxFuture<'a, EventReply> {
    Box::pin(async move {
        if let (Some(id), Ok(mut projects)) = (payload.get("id").and_then(Value::as_u64), view.0.projects.lock()) {
            projects.remove(&id);
        }
        EventReply::NoReply
    })
}

struct Dashboard;
impl LiveView for Dashboard {
    const NAME: &'static str = "DashboardLive";
    fn render(&self, socket: &Socket) -> Value {
        json!({"hello": socket.get::<CurrentUser>().cloned().flatten().map(|u| u.email)})
    }
}

struct AdminDashboard;
impl LiveView for AdminDashboard {
    const NAME: &'static str = "AdminDashboardLive";
    fn render(&self, _: &Socket) -> Value {
        json!({"admin": true})
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(Store {
        users: vec![
            User { id: 1, email: "alice@example.com", confirmed: true, admin: false, orgs: vec![1] },
            User { id: 2, email: "bob@example.com", confirmed: false, admin: false, orgs: vec![] },
            User { id: 3, email: "root@example.com", confirmed: true, admin: true, orgs: vec![1, 2] },
        ],
        ..Store::default()
    });
    for (token, user) in [("alice-token", 1), ("bob-token", 2), ("root-token", 3)] {
        store.tokens.lock().map_err(|_| "poisoned")?.insert(token.to_string(), user);
    }
    store.projects.lock().map_err(|_| "poisoned")?.extend([(10, (1, "alice's")), (20, (3, "root's"))]);

    let router = LiveRouter::builder()
        .live_session("public", |s| s.public().on_mount(UserAuth(store.clone()), "mount_current_user").live("/", Home))
        .live_session("authenticated", |s| {
            s.on_mount(UserAuth(store.clone()), "require_authenticated")
                .live("/dashboard", Dashboard)
                .live("/projects", Projects(store.clone()))
                .live("/orgs/:org_id/projects", Projects(store.clone()))
        })
        .live_session("admin", |s| {
            s.on_mount(UserAuth(store.clone()), "require_authenticated")
                .on_mount(AdminAuth, "")
                .live("/admin", AdminDashboard)
        })
        .build()?;
    let ring = KeyRing::new(KeyId(1), SecretKeyBase::new(vec![7; 64])?);
    let app = LiveApp::new(router, &ring, Arc::new(TracingSink));
    let now = Timestamp::now();

    let session_of = |token: Option<&str>| {
        let mut session = Session::new();
        if let Some(token) = token {
            let _ = session.put(USER_TOKEN, token);
        }
        session
    };
    let get = |url: &str, token: Option<&str>| {
        let request = HttpRequest { url: url.to_string(), session: session_of(token), assigns: Assigns::new() };
        block_on(app.http_mount(request, now, &mut OsRandom))
    };

    for (who, token, url) in [
        ("anonymous", None, "/dashboard"),
        ("bob (unconfirmed)", Some("bob-token"), "/dashboard"),
        ("alice", Some("alice-token"), "/dashboard"),
        ("alice", Some("alice-token"), "/admin"),
        ("root", Some("root-token"), "/admin"),
        ("alice", Some("alice-token"), "/orgs/2/projects"),
        ("alice", Some("alice-token"), "/orgs/1/projects"),
    ] {
        let outcome = match get(url, token)? {
            HttpOutcome::Page(page) => format!("200 page {}", page.rendered),
            HttpOutcome::Redirect(redirect) => format!("302 -> {}", redirect.to()),
            HttpOutcome::Failed(error) => format!("{} {error}", error.status()),
            HttpOutcome::NotLive => "404 not a live route".to_string(),
        };
        println!("GET  {url:<18} as {who:<18} {outcome}");
    }

    // Connected phase for alice's /projects page, then events and navigation.
    let HttpOutcome::Page(page) = get("/projects", Some("alice-token"))? else { return Err("expected a page".into()) };
    let cookie_session = page.session.clone();
    let join = |to: (&str, &str)| {
        let payload = json!({to.0: to.1, "session": page.session_token, "static": page.static_token, "params": {}});
        let topic = format!("lv:{}", page.socket.id());
        block_on(
            app.join(JoinRequest { topic: &topic, payload: &payload, connect_session: Some(&cookie_session) }, now),
        )
    };
    let mut joined = join(("url", "http://localhost/projects")).map_err(|e| format!("{e:?}"))?;
    println!("JOIN /projects          as alice              ok {}", joined.rendered);
    for (event, payload) in [("delete", json!({"id": 20})), ("delete", json!({"id": 10})), ("drop_table", json!({}))] {
        let outcome = block_on(app.handle_event(&mut joined, event, &payload));
        let shown = match outcome {
            Ok(outcome) => format!("ok, now {}", outcome.rendered),
            Err(refusal) => format!("refused: {refusal} -> {}", refusal.reply()),
        };
        println!("EVENT {event:<10} {payload:<12} as alice  {shown}");
    }
    for target in ["/dashboard", "/admin", "/login"] {
        let shown = match join(("redirect", target)) {
            Ok(_) => "ok (same live_session, stays on the socket)".to_string(),
            Err(error) => format!("{}", error.reply()),
        };
        println!("NAV  /projects -> {target:<10} as alice  {shown}");
    }
    Ok(())
}

/// A minimal executor: the core never spawns, so polling to completion on
/// this thread is enough for the example.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}
