//! The demo's account flows over HTTP and WebSocket on one node (in-process
//! backbone): log in with CSRF, log out, log out everywhere and a password
//! change each close exactly the live connections of the sessions they end.
#![cfg(feature = "axum")]

// Shared with the example and the browser test, which use other parts.
#[allow(dead_code)]
#[path = "../examples/demo/app.rs"]
mod app;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use liveguard::audit::{AuditSink, MemorySink};
use liveguard::cluster::backbone::InProcess;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

struct Reply {
    status: u16,
    location: String,
    cookie: Option<String>,
    body: String,
}

/// One HTTP request without following redirects; `form` makes it a POST.
async fn http(url: String, cookie: Option<String>, form: Option<Vec<(&'static str, String)>>) -> Reply {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().max_redirects(0).http_status_as_error(false).build().into();
        let mut response = match form {
            Some(form) => {
                let mut request = agent.post(&url);
                if let Some(cookie) = &cookie {
                    request = request.header("cookie", cookie);
                }
                request.send_form(form.iter().map(|(k, v)| (*k, v.as_str()))).expect("a response")
            }
            None => {
                let mut request = agent.get(&url);
                if let Some(cookie) = &cookie {
                    request = request.header("cookie", cookie);
                }
                request.call().expect("a response")
            }
        };
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let location = header("location").unwrap_or_default();
        let cookie = header("set-cookie").and_then(|c| c.split(';').next().map(str::to_string));
        let body = response.body_mut().read_to_string().expect("a body");
        Reply { status: response.status().as_u16(), location, cookie, body }
    })
    .await
    .expect("joined")
}

fn between<'a>(text: &'a str, start: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("{start} in {text}")) + start.len();
    &text[from..from + text[from..].find('"').expect("a closing quote")]
}

struct Demo {
    base: String,
    demo: app::Demo,
}

async fn demo() -> Demo {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/assets");
    let audit: Arc<dyn AuditSink> = Arc::new(MemorySink::new());
    let demo = app::Demo::new(audit.clone(), assets);
    let (_node, live) = demo.node("a", Arc::new(InProcess::new()), audit).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let router = demo.router(&live);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Demo { base, demo }
}

impl Demo {
    /// Logs in through the form; the session cookie.
    async fn log_in(&self, email: &str, password: &str) -> Option<String> {
        let form = http(format!("{}/login", self.base), None, None).await;
        let cookie = form.cookie.expect("the form sets a session with a CSRF state");
        let csrf = between(&form.body, r#"name="_csrf_token" value=""#).to_string();
        let form = vec![("email", email.to_string()), ("password", password.to_string()), ("_csrf_token", csrf)];
        let reply = http(format!("{}/login", self.base), Some(cookie), Some(form)).await;
        (reply.status == 302 && reply.location == "/dashboard").then(|| reply.cookie.expect("a new session"))
    }

    /// A live tab of /projects: its WebSocket, joined, and its CSRF token.
    async fn tab(&self, cookie: &str) -> (WebSocketStream<MaybeTlsStream<TcpStream>>, String) {
        let page = http(format!("{}/projects", self.base), Some(cookie.to_string()), None).await;
        assert_eq!(page.status, 200, "{}", page.location);
        let csrf = between(&page.body, r#"name="csrf-token" content=""#).to_string();
        let ws_url = format!("{}/live/websocket?_csrf_token={csrf}&vsn=2.0.0", self.base.replace("http", "ws"));
        let mut request = ws_url.into_client_request().expect("a request");
        request.headers_mut().insert("cookie", HeaderValue::from_str(cookie).expect("a header"));
        request.headers_mut().insert("origin", HeaderValue::from_static("http://127.0.0.1"));
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("upgraded");
        let payload = json!({
            "url": "/projects",
            "session": between(&page.body, r#"data-phx-session=""#),
            "static": between(&page.body, r#"data-phx-static=""#),
        });
        let topic = format!("lv:{}", between(&page.body, r#"<div id=""#));
        ws.send(Message::text(json!(["1", "1", topic, "phx_join", payload]).to_string())).await.expect("sent");
        let reply: Value = match ws.next().await {
            Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).expect("JSON"),
            other => panic!("a join reply, got {other:?}"),
        };
        assert_eq!(reply[4]["status"], "ok", "{reply}");
        (ws, csrf)
    }

    async fn post(&self, path: &str, cookie: &str, csrf: &str, extra: Option<(&'static str, &str)>) -> Reply {
        let mut form = vec![("_csrf_token", csrf.to_string())];
        form.extend(extra.map(|(k, v)| (k, v.to_string())));
        http(format!("{}{path}", self.base), Some(cookie.to_string()), Some(form)).await
    }
}

/// The close code of `ws` within 5 s, or `None` if it stays open.
async fn closed(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>, wait: Duration) -> Option<u16> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await.ok()? {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_and_log_out_end_exactly_their_session() {
    let demo = demo().await;
    assert_eq!(demo.log_in("alice@example.com", "wrong").await, None);
    let first = demo.log_in("alice@example.com", "alice-password").await.expect("logged in");
    let second = demo.log_in("alice@example.com", "alice-password").await.expect("logged in again");
    let (mut ws1, csrf1) = demo.tab(&first).await;
    let (mut ws2, _) = demo.tab(&second).await;

    // Without the form's CSRF token, nothing happens.
    assert_eq!(demo.post("/logout", &first, "forged", None).await.status, 403);
    assert_eq!(closed(&mut ws1, QUIET).await, None);

    let reply = demo.post("/logout", &first, &csrf1, None).await;
    // The login page says what the cluster confirmed: here, every node.
    assert_eq!((reply.status, reply.location.as_str()), (302, "/login?notice=logged-out"));
    assert!(reply.cookie.is_some_and(|c| c.ends_with('=')), "the cookie is removed");
    assert_eq!(closed(&mut ws1, WAIT).await, Some(1001));
    assert_eq!(closed(&mut ws2, QUIET).await, None, "the other session of the same user stays");
    assert_eq!(http(format!("{}/projects", demo.base), Some(first), None).await.location, "/login");
    assert_eq!(http(format!("{}/projects", demo.base), Some(second), None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_out_everywhere_ends_every_session_of_the_user_only() {
    let demo = demo().await;
    let first = demo.log_in("alice@example.com", "alice-password").await.expect("logged in");
    let second = demo.log_in("alice@example.com", "alice-password").await.expect("logged in");
    let bob = demo.log_in("bob@example.com", "bob-password").await.expect("logged in");
    let (mut ws1, csrf1) = demo.tab(&first).await;
    let (mut ws2, _) = demo.tab(&second).await;
    let (mut ws_bob, _) = demo.tab(&bob).await;

    assert_eq!(demo.post("/logout-everywhere", &first, &csrf1, None).await.location, "/login?notice=logged-out");
    assert_eq!(closed(&mut ws1, WAIT).await, Some(1001));
    assert_eq!(closed(&mut ws2, WAIT).await, Some(1001));
    assert_eq!(closed(&mut ws_bob, QUIET).await, None);
    assert_eq!(http(format!("{}/projects", demo.base), Some(second), None).await.location, "/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_ends_every_other_session_and_keeps_this_one() {
    let demo = demo().await;
    let here = demo.log_in("alice@example.com", "alice-password").await.expect("logged in");
    let elsewhere = demo.log_in("alice@example.com", "alice-password").await.expect("logged in");
    let (mut ws_here, csrf) = demo.tab(&here).await;
    let (mut ws_elsewhere, _) = demo.tab(&elsewhere).await;

    assert_eq!(demo.post("/password", &here, &csrf, Some(("password", "short"))).await.status, 422);
    let reply = demo.post("/password", &here, &csrf, Some(("password", "a much longer password"))).await;
    assert_eq!((reply.status, reply.location.as_str()), (302, "/dashboard"));
    let fresh = reply.cookie.expect("a new session for this browser");
    assert_eq!(closed(&mut ws_elsewhere, WAIT).await, Some(1001));
    assert_eq!(closed(&mut ws_here, WAIT).await, Some(1001), "its old token ended too");
    assert_eq!(http(format!("{}/projects", demo.base), Some(fresh), None).await.status, 200);
    assert_eq!(http(format!("{}/projects", demo.base), Some(elsewhere), None).await.location, "/login");
    assert_eq!(demo.log_in("alice@example.com", "alice-password").await, None);
    assert!(demo.log_in("alice@example.com", "a much longer password").await.is_some());
    assert_eq!(demo.demo.accounts.project_ids(), [10, 11, 20, 30]);
}
