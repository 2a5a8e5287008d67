//! The axum integration on one port: live pages (GET → disconnected
//! mount), a boundary's guard as middleware on a plain route, the verified
//! session extractor, and the WebSocket endpoint upgraded through axum.
#![cfg(feature = "axum")]

mod live_support;
mod ws_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use live_support::{Store, User};
use liveguard::axum::{Current, Live, VerifiedSession, guard};
use liveguard::cluster::backbone::InProcess;
use liveguard::live::Guard;
use liveguard::session::USER_TOKEN;
use liveguard::web::{LivePages, PageHtml};
use liveguard::ws::Endpoint;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use ws_support::{ORIGIN, Site, node, socket_id};

fn layout(html: &PageHtml<'_>) -> String {
    format!("<html><head>{}</head><body>{}</div></body></html>", html.csrf_meta, html.container_open)
}

async fn settings(Current(user): Current<User>, VerifiedSession(session): VerifiedSession) -> String {
    format!("{} {}", user.map_or("anonymous", |u| u.email), session.session.contains_key(USER_TOKEN))
}

struct App {
    site: Site,
    live: Live,
    base: String,
    ws: String,
}

async fn app() -> App {
    let site = Site::new();
    let node = node("a", Arc::new(InProcess::new()), &site).await;
    let endpoint = Endpoint::new(site.app.clone(), node, site.cookie.clone(), Site::config()).expect("an endpoint");
    let live = Live::new(LivePages::new(site.app.clone(), site.cookie.clone()), endpoint);
    let admin = Arc::new(Guard::signed_in("RequireAdmin", site.store.clone(), "/login").require(|u| u.admin, "/"));
    let router = Router::new()
        .route("/settings", get(settings).route_layer(from_fn_with_state(live.guarded(admin), guard::<Store>)))
        .route("/unguarded", get(settings))
        .with_state(live.clone())
        .merge(live.router(layout));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    App { site, live, base: format!("http://{addr}"), ws: format!("ws://{addr}/live/websocket") }
}

/// A GET without following redirects: status, `Location`, `Set-Cookie`, body.
async fn fetch(url: String, cookie: Option<String>) -> (u16, String, String, String) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().max_redirects(0).http_status_as_error(false).build().into();
        let mut request = agent.get(&url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", &cookie);
        }
        let mut response = request.call().expect("a response");
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        let body = response.body_mut().read_to_string().expect("a body");
        (response.status().as_u16(), location, set_cookie, body)
    })
    .await
    .expect("joined")
}

/// The close code the server sends within 5 s, reading past other frames.
async fn close_code<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a close in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("a close frame, got {other:?}"),
        }
    }
}

fn attribute<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("{name} in {html}")) + name.len() + 2;
    &html[start..start + html[start..].find('"').expect("a closing quote")]
}

#[tokio::test]
async fn pages_guards_and_the_websocket_share_one_port() {
    let app = app().await;
    let alice = app.site.login("alice-token");
    let cookie = app.site.page(&alice, "/about").cookie;

    // Live routes: the hooks of the HTTP mount decide.
    let (status, location, _, _) = fetch(format!("{}/projects", app.base), None).await;
    assert_eq!((status, location.as_str()), (302, "/login"));
    assert_eq!(fetch(format!("{}/nowhere", app.base), Some(cookie.clone())).await.0, 404);
    let (status, _, _, body) = fetch(format!("{}/projects", app.base), Some(cookie.clone())).await;
    assert_eq!(status, 200);

    // The plain route behind the admin guard, the same rule as the hooks.
    let (status, location, _, _) = fetch(format!("{}/settings", app.base), Some(cookie.clone())).await;
    assert_eq!((status, location.as_str()), (302, "/"));
    assert_eq!(fetch(format!("{}/settings", app.base), None).await.1, "/login");
    let root = app.site.page(&app.site.login("root-token"), "/about").cookie;
    let (status, _, _, text) = fetch(format!("{}/settings", app.base), Some(root)).await;
    assert_eq!((status, text.as_str()), (200, "root@example.com true"));
    // The extractor without its guard is a wiring mistake: 500.
    let (status, _, _, _) = fetch(format!("{}/unguarded", app.base), None).await;
    assert_eq!(status, 500);

    // The page's tokens join over the WebSocket upgraded by axum.
    let url = format!("{}?_csrf_token={}&vsn=2.0.0", app.ws, attribute(&body, "content"));
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert("cookie", HeaderValue::from_str(&cookie).expect("a header"));
    request.headers_mut().insert("origin", HeaderValue::from_static(ORIGIN));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("upgraded");
    let topic = format!("lv:{}", attribute(&body, "id"));
    let payload = json!({
        "url": "/projects",
        "params": {},
        "session": attribute(&body, "data-phx-session"),
        "static": attribute(&body, "data-phx-static"),
    });
    ws.send(Message::text(json!(["1", "1", topic, "phx_join", payload]).to_string())).await.expect("sent");
    let reply: Value = match ws.next().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).expect("JSON"),
        other => panic!("a reply, got {other:?}"),
    };
    assert_eq!(reply[4]["status"], "ok", "{reply}");
    assert_eq!(app.live.endpoint().node().registry().count(&socket_id("alice-token")), 1);

    // The endpoint's checks hold on this route too.
    let mut foreign = format!("{}?vsn=2.0.0", app.ws).into_client_request().expect("a request");
    foreign.headers_mut().insert("origin", HeaderValue::from_static("http://evil.example"));
    match tokio_tungstenite::connect_async(foreign).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(fetch(format!("{}/live/websocket?vsn=2.0.0", app.base), None).await.0, 400, "not an upgrade");

    // A disconnect closes it with 1001.
    app.live.endpoint().node().disconnect(&socket_id("alice-token"), Duration::from_secs(5)).await.expect("a report");
    let code = close_code(&mut ws).await;
    assert_eq!(code, Some(1001));
}

#[tokio::test]
async fn shutdown_closes_upgraded_connections_with_1012() {
    let app = app().await;
    let page = app.site.page(&app.site.login("alice-token"), "/projects");
    let url = format!("{}?_csrf_token={}&vsn=2.0.0", app.ws, page.csrf_token);
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert("cookie", HeaderValue::from_str(&page.cookie).expect("a header"));
    request.headers_mut().insert("origin", HeaderValue::from_static(ORIGIN));
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("upgraded");
    ws.send(Message::text(json!(["1", "1", page.topic, "phx_join", page.join_payload()]).to_string())).await.unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
    app.live.shutdown();
    let code = close_code(&mut ws).await;
    assert_eq!(code, Some(1012));
}
