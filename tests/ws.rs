//! The WebSocket endpoint on one node (in-process backbone), driven by a
//! tokio-tungstenite client: handshake checks, the Channels V2 protocol,
//! LiveView joins and events, disconnects, expiry, shutdown and hostile
//! frames. `tests/phoenix_js.rs` repeats the scenarios with the official
//! phoenix.js client over a NATS cluster.
#![cfg(feature = "ws")]

mod live_support;
mod ws_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use liveguard::MaxAge;
use liveguard::audit::AuditRecord;
use liveguard::cluster::backbone::InProcess;
use liveguard::origin::OriginPolicy;
use liveguard::ws::{Endpoint, EndpointConfig, EndpointConfigError};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_support::{ORIGIN, PageData, Served, Site, node, socket_id};

const WAIT: Duration = Duration::from_secs(5);

struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
}

/// Connects with `cookie` and `origin` headers; the HTTP status on refusal.
async fn connect(url: &str, cookie: Option<&str>, origin: Option<&str>) -> Result<Client, u16> {
    let mut request = url.into_client_request().expect("a request");
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", HeaderValue::from_str(cookie).expect("a header"));
    }
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", HeaderValue::from_str(origin).expect("a header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client { ws, next_ref: 0 }),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("connect: {other}"),
    }
}

/// A client for `page`, with its cookie, CSRF token and Origin.
async fn open(served: &Served, page: &PageData) -> Client {
    let url = served.url(&format!("_csrf_token={}&vsn=2.0.0", page.csrf_token));
    connect(&url, Some(&page.cookie), Some(ORIGIN)).await.expect("connected")
}

impl Client {
    async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("sent");
    }

    /// Pushes `[join_ref, ref, topic, event, payload]`; returns the ref.
    async fn push(&mut self, join_ref: Option<&str>, topic: &str, event: &str, payload: Value) -> String {
        self.next_ref += 1;
        let msg_ref = self.next_ref.to_string();
        let frame = json!([join_ref, msg_ref, topic, event, payload]).to_string();
        self.send_raw(Message::text(frame)).await;
        msg_ref
    }

    /// The next text frame, decoded.
    async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame in time");
            match message {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).expect("JSON"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The reply to `msg_ref`: `(status, response)`.
    async fn reply(&mut self, msg_ref: &str) -> (String, Value) {
        let frame = self.recv().await;
        assert_eq!(frame[1], json!(msg_ref), "reply to {msg_ref}: {frame}");
        assert_eq!(frame[3], "phx_reply");
        (frame[4]["status"].as_str().expect("a status").to_string(), frame[4]["response"].clone())
    }

    /// Joins `page`'s view with join ref = the join's own ref.
    async fn join(&mut self, page: &PageData) -> (String, Value, String) {
        self.join_with(page, page.join_payload()).await
    }

    async fn join_with(&mut self, page: &PageData, payload: Value) -> (String, Value, String) {
        let join_ref = (self.next_ref + 1).to_string();
        let msg_ref = self.push(Some(&join_ref), &page.topic, "phx_join", payload).await;
        let (status, response) = self.reply(&msg_ref).await;
        (status, response, join_ref)
    }

    /// The close code the server sends, reading past any text frames.
    async fn close_code(&mut self) -> Option<u16> {
        let until = Instant::now() + WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await.ok()? {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    async fn heartbeat_ok(&mut self) -> bool {
        let msg_ref = self.push(None, "phoenix", "heartbeat", json!({})).await;
        self.reply(&msg_ref).await == ("ok".to_string(), json!({}))
    }
}

async fn single_node(site: &Site, config: EndpointConfig) -> Served {
    let node = node("a", Arc::new(InProcess::new()), site).await;
    Served::start(site, node, config).await
}

#[tokio::test]
async fn a_valid_session_joins_and_heartbeats() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let page = site.page(&site.login("alice-token"), "/projects");
    let mut client = open(&served, &page).await;
    assert!(client.heartbeat_ok().await);
    let (status, response, _) = client.join(&page).await;
    assert_eq!(status, "ok", "{response}");
    assert_eq!(response["rendered"]["projects"].as_array().map(Vec::len), Some(3));
    // The connection registered under the session's id before the join.
    assert_eq!(served.endpoint.node().registry().count(&socket_id("alice-token")), 1);
    served.shutdown().await;
}

#[tokio::test]
async fn handshake_refusals_and_sessionless_connections() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let page = site.page(&site.login("alice-token"), "/projects");
    let query = format!("_csrf_token={}&vsn=2.0.0", page.csrf_token);

    // Refused with 403 before anything else: a foreign Origin, a wrong or
    // missing protocol version; another path is 404.
    for (url, origin, status) in [
        (served.url(&query), "http://evil.example", 403),
        (served.url(&query), "null", 403),
        (served.url(&format!("_csrf_token={}&vsn=1.0.0", page.csrf_token)), ORIGIN, 403),
        (served.url(&format!("_csrf_token={}", page.csrf_token)), ORIGIN, 403),
        (served.url(&format!("_csrf_token={}&vsn=3.0.0", page.csrf_token)), ORIGIN, 403),
        (format!("ws://{}/other/websocket?{query}", served.addr), ORIGIN, 404),
    ] {
        assert_eq!(connect(&url, Some(&page.cookie), Some(origin)).await.err(), Some(status), "{url} from {origin}");
    }
    assert!(site.audit.take().iter().any(|r| matches!(r, AuditRecord::HandshakeRefused { status: 403, .. })));

    // Accepted without a session: every join answers stale.
    let tampered_cookie = format!("{}x", page.cookie);
    let other_csrf = site.page(&site.login("alice-token"), "/projects").csrf_token;
    for (query, cookie) in [
        (query.clone(), None),
        (format!("_csrf_token={other_csrf}&vsn=2.0.0"), Some(page.cookie.as_str())),
        ("vsn=2.0.0".to_string(), Some(page.cookie.as_str())),
        (query.clone(), Some(tampered_cookie.as_str())),
    ] {
        let mut client = connect(&served.url(&query), cookie, Some(ORIGIN)).await.expect("accepted");
        let (status, response, _) = client.join(&page).await;
        assert_eq!((status.as_str(), response), ("error", json!({"reason": "stale"})), "{query} {cookie:?}");
    }
    assert_eq!(served.endpoint.node().registry().len(), 0, "sessionless connections never register");
    assert_eq!(site.counters.mounts(), 2, "only the HTTP phases of the two pages mounted");
    served.shutdown().await;
}

#[tokio::test]
async fn both_cross_site_checks_off_is_refused_at_start_up() {
    let site = Site::new();
    let node = node("a", Arc::new(InProcess::new()), &site).await;
    let config = EndpointConfig::new(OriginPolicy::off()).check_csrf(false);
    let refused = Endpoint::new(site.app.clone(), node.clone(), site.cookie.clone(), config);
    assert_eq!(refused.err(), Some(EndpointConfigError::NoCrossSiteProtection));
    let config = EndpointConfig::new(OriginPolicy::off());
    assert!(Endpoint::new(site.app.clone(), node, site.cookie.clone(), config).is_ok());
}

#[tokio::test]
async fn join_tokens_bound_to_view_session_and_live_session() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let session = site.login("alice-token");
    let page = site.page(&session, "/projects");
    let mut client = open(&served, &page).await;

    let mut tampered = page.join_payload();
    let token = page.session.clone();
    let flipped = if token.ends_with('A') { 'B' } else { 'A' };
    tampered["session"] = json!(format!("{}{flipped}", &token[..token.len() - 1]));
    let mut outdated = page.join_payload();
    outdated["session"] = json!("lg0s.1.AAAA.AAAA");
    let mut across = page.join_payload();
    across["redirect"] = json!("/admin");
    across.as_object_mut().expect("an object").remove("url");
    let mut elsewhere = page.join_payload();
    elsewhere["url"] = json!("/");
    for (payload, reason) in [
        (tampered, "stale"),
        (outdated, "stale"),
        (across, "unauthorized"),
        (elsewhere, "unauthorized"),
        (json!({"url": "/projects"}), "stale"),
    ] {
        let (status, response, _) = client.join_with(&page, payload).await;
        assert_eq!((status.as_str(), response), ("error", json!({"reason": reason})));
    }
    // The page of another session does not join on this connection.
    let bob = site.page(&site.login("root-token"), "/projects");
    let (status, response, _) = client.join(&bob).await;
    assert_eq!((status.as_str(), response), ("error", json!({"reason": "stale"})));
    assert_eq!(site.counters.mounts(), 2, "refused joins never mount");
    served.shutdown().await;
}

#[tokio::test]
async fn channel_protocol_rules() {
    let site = Site::new();
    let served = single_node(&site, Site::config().max_channels(2)).await;
    let session = site.login("alice-token");
    let page = site.page(&session, "/projects");
    let mut client = open(&served, &page).await;

    let msg_ref = client.push(Some("9"), "room:lobby", "phx_join", json!({})).await;
    assert_eq!(client.reply(&msg_ref).await, ("error".into(), json!({"reason": "unmatched topic"})));
    let msg_ref = client.push(Some("9"), &page.topic, "event", json!({"event": "delete", "value": {}})).await;
    assert_eq!(client.reply(&msg_ref).await, ("error".into(), json!({"reason": "unmatched topic"})));
    let msg_ref = client.push(None, "phoenix", "other", json!({})).await;
    assert_eq!(client.reply(&msg_ref).await, ("error".into(), json!({"reason": "unmatched topic"})));

    // A duplicate join closes the first channel, then joins again.
    let (status, _, first) = client.join(&page).await;
    assert_eq!(status, "ok");
    let join_ref = (client.next_ref + 1).to_string();
    let msg_ref = client.push(Some(&join_ref), &page.topic, "phx_join", page.join_payload()).await;
    let close = client.recv().await;
    assert_eq!(close, json!([first, first, page.topic, "phx_close", {}]));
    assert_eq!(client.reply(&msg_ref).await.0, "ok");
    // A message of the closed join is stale: ignored, no reply.
    client.push(Some(&first), &page.topic, "event", json!({"event": "delete", "value": {"id": 10}})).await;
    let msg_ref = client.push(Some(&join_ref), &page.topic, "bogus", json!({})).await;
    assert_eq!(client.reply(&msg_ref).await, ("error".into(), json!({"reason": "unknown event"})));
    assert!(site.store.project_ids().contains(&10), "the stale event never ran");

    // The channel limit: a second view joins, a third is refused.
    let second = site.page(&session, "/dashboard");
    assert_eq!(client.join(&second).await.0, "ok");
    let third = site.page(&session, "/projects");
    assert_eq!(client.join(&third).await.1, json!({"reason": "too many channels joined"}));
    // Leaving frees a slot; leaving an unjoined topic is also ok.
    let msg_ref = client.push(Some(&join_ref), &page.topic, "phx_leave", json!({})).await;
    assert_eq!(client.reply(&msg_ref).await.0, "ok");
    let msg_ref = client.push(None, "lv:nothing", "phx_leave", json!({})).await;
    assert_eq!(client.reply(&msg_ref).await.0, "ok");
    assert_eq!(client.join(&third).await.0, "ok");
    served.shutdown().await;
}

#[tokio::test]
async fn events_are_authorized_on_the_server() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let page = site.page(&site.login("alice-token"), "/projects");
    let mut client = open(&served, &page).await;
    let (_, _, join_ref) = client.join(&page).await;
    let mut event = async |name: &str, value: Value| {
        let payload = json!({"type": "click", "event": name, "value": value});
        let msg_ref = client.push(Some(&join_ref), &page.topic, "event", payload).await;
        client.reply(&msg_ref).await
    };
    // Undeclared: refused, and the view never runs.
    assert_eq!(event("drop_all", json!({})).await, ("error".into(), json!({"reason": "unauthorized"})));
    // Root's project: denied by the policy, whatever the payload claims.
    assert_eq!(
        event("delete", json!({"id": 20, "user_id": 3, "admin": true})).await,
        ("error".into(), json!({"reason": "unauthorized"}))
    );
    assert_eq!(site.counters.handled(), 0);
    // Her own: allowed.
    let (status, response) = event("delete", json!({"id": 10})).await;
    assert_eq!((status.as_str(), &response["reply"]), ("ok", &json!({"deleted": 10})));
    assert_eq!(site.store.project_ids(), [11, 20]);
    assert_eq!(site.counters.handled(), 1);
    // An event without a name.
    let msg_ref = client.push(Some(&join_ref), &page.topic, "event", json!({"type": "click"})).await;
    assert_eq!(client.reply(&msg_ref).await, ("error".into(), json!({"reason": "invalid payload"})));
    served.shutdown().await;
}

#[tokio::test]
async fn periodic_revalidation_closes_a_revoked_session_that_no_message_reached() {
    let site = Site::new();
    let every = Duration::from_millis(300);
    let served = single_node(&site, Site::config().revalidate_every(every)).await;
    let (alice, root) = (site.login("alice-token"), site.login("root-token"));
    let (alice_page, root_page) = (site.page(&alice, "/projects"), site.page(&root, "/projects"));
    let (mut revoked, mut kept) = (open(&served, &alice_page).await, open(&served, &root_page).await);
    assert_eq!(revoked.join(&alice_page).await.0, "ok");
    assert_eq!(kept.join(&root_page).await.0, "ok");
    // The session is deleted server-side and no disconnect is ever sent.
    let deleted = Instant::now();
    site.store.delete_token("alice-token");
    assert_eq!(revoked.recv().await[3], "redirect", "the view is sent to the login page first");
    assert_eq!(revoked.close_code().await, Some(1001));
    let lived = deleted.elapsed();
    // One interval (+20 % jitter) bounds it; the slack is for the machine.
    assert!(lived <= every.mul_f64(1.2) + Duration::from_millis(500), "lived {lived:?}");
    // The other connection outlives several intervals.
    tokio::time::sleep(every * 3).await;
    assert!(kept.heartbeat_ok().await, "a valid session is re-validated, not closed");
    served.shutdown().await;
}

#[tokio::test]
async fn a_disconnect_closes_every_tab_of_the_id_with_1001_and_nothing_else() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let alice = site.login("alice-token");
    let mut tabs = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..3 {
        let page = site.page(&alice, "/projects");
        let mut client = open(&served, &page).await;
        assert_eq!(client.join(&page).await.0, "ok");
        tabs.push(client);
        pages.push(page);
    }
    let root_page = site.page(&site.login("root-token"), "/projects");
    let mut root = open(&served, &root_page).await;
    assert_eq!(root.join(&root_page).await.0, "ok");

    site.store.delete_token("alice-token");
    let report = served.endpoint.node().disconnect(&socket_id("alice-token"), WAIT).await.expect("a report");
    assert_eq!(report.connections(), 3);
    for tab in &mut tabs {
        assert_eq!(tab.close_code().await, Some(1001));
    }
    assert!(root.heartbeat_ok().await, "other users' connections are untouched");

    // The client reconnects and rejoins with its old page: the revoked
    // session is sent to the login page.
    let mut again = open(&served, &pages[0]).await;
    let (status, response, _) = again.join(&pages[0]).await;
    assert_eq!((status.as_str(), response), ("error", json!({"redirect": {"to": "/login"}})));
    served.shutdown().await;
}

#[tokio::test]
async fn expiry_idle_and_shutdown_close_codes() {
    let site = Site::new();
    let served = single_node(&site, Site::config().idle_timeout(Duration::from_millis(300))).await;
    // The session cookie lapses one second after it was signed.
    let page = site.page_with(&site.login("alice-token"), "/projects", MaxAge::Seconds(1));
    let mut expiring = open(&served, &page).await;
    assert_eq!(expiring.join(&page).await.0, "ok");
    // Expiry comes even while the client keeps talking.
    let started = Instant::now();
    let code = loop {
        tokio::select! {
            code = expiring.close_code() => break code,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                expiring.push(None, "phoenix", "heartbeat", json!({})).await;
            }
        }
    };
    assert_eq!(code, Some(1001));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Idle: a client that sends nothing is closed after the timeout.
    let quiet_page = site.page(&site.login("root-token"), "/projects");
    let mut quiet = open(&served, &quiet_page).await;
    assert_eq!(quiet.close_code().await, Some(1000));

    let page = site.page(&site.login("alice-token"), "/projects");
    let mut client = open(&served, &page).await;
    assert_eq!(client.join(&page).await.0, "ok");
    let closing = tokio::spawn(async move { client.close_code().await });
    served.shutdown().await;
    assert_eq!(closing.await.expect("joined"), Some(1012));
}

#[tokio::test]
async fn hostile_frames_close_only_their_own_connection() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let page = site.page(&site.login("alice-token"), "/projects");
    let mut bystander = open(&served, &page).await;
    assert_eq!(bystander.join(&page).await.0, "ok");

    let deep = format!("[null,\"1\",\"phoenix\",\"heartbeat\",{}{}]", "{\"a\":".repeat(5000), "1}".repeat(5000));
    let cases: Vec<(Message, u16)> = vec![
        (Message::text("not json"), 1007),
        (Message::text("{\"an\":\"object\"}"), 1007),
        (Message::text("[1,2,3]"), 1007),
        (Message::text("[null,null,\"phoenix\",\"heartbeat\",\"payload\"]"), 1007),
        (Message::text(deep), 1007),
        (Message::binary(vec![0u8, 1, 2, 3]), 1003),
        (Message::text("x".repeat(1024 * 1024)), 1009),
    ];
    for (message, code) in cases {
        let mut attacker = open(&served, &page).await;
        attacker.ws.send(message).await.ok();
        assert_eq!(attacker.close_code().await, Some(code));
    }
    // A stream of garbage after a valid join.
    let mut attacker = open(&served, &page).await;
    assert_eq!(attacker.join(&page).await.0, "ok");
    for i in 0..50 {
        if attacker.ws.send(Message::text(format!("[garbage {i}"))).await.is_err() {
            break;
        }
    }
    assert_eq!(attacker.close_code().await, Some(1007));
    assert!(bystander.heartbeat_ok().await);
    let msg_ref =
        bystander.push(Some("1"), &page.topic, "event", json!({"event": "delete", "value": {"id": 11}})).await;
    assert_eq!(bystander.reply(&msg_ref).await.0, "ok");
    assert!(site.audit.take().iter().any(|r| matches!(r, AuditRecord::ConnectionClosed { code: 1009, .. })));
    served.shutdown().await;
}

#[tokio::test]
async fn reauthorize_redirects_revoked_views_in_place_and_keeps_the_others() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let alice = site.login("alice-token");
    let page = site.page(&alice, "/projects");
    let mut client = open(&served, &page).await;
    let (_, _, join_ref) = client.join(&page).await;
    let about = site.page(&alice, "/about");
    assert_eq!(client.join(&about).await.0, "ok");

    // Still valid: nothing is sent, the view keeps running.
    let node = served.endpoint.node().clone();
    let report = node.reauthorize(&socket_id("alice-token"), WAIT).await.expect("a report");
    assert_eq!(report.connections(), 1);
    assert!(client.heartbeat_ok().await);

    // Revoked: the authenticated view is redirected and closed; the public
    // one keeps running on the same connection.
    site.store.delete_token("alice-token");
    node.reauthorize(&socket_id("alice-token"), WAIT).await.expect("a report");
    assert_eq!(client.recv().await, json!([join_ref, null, page.topic, "redirect", {"to": "/login"}]));
    assert_eq!(client.recv().await, json!([join_ref, join_ref, page.topic, "phx_close", {}]));
    assert!(client.heartbeat_ok().await);
    let msg_ref =
        client.push(Some(&join_ref), &page.topic, "event", json!({"event": "delete", "value": {"id": 11}})).await;
    assert_eq!(client.reply(&msg_ref).await, ("error".into(), json!({"reason": "unmatched topic"})));
    served.shutdown().await;
}

#[tokio::test]
async fn event_payloads_over_the_apps_limit_are_refused_without_reaching_the_view() {
    let site = Site::new();
    let served = single_node(&site, Site::config()).await;
    let page = site.page(&site.login("alice-token"), "/projects");
    let mut client = open(&served, &page).await;
    let (_, _, join_ref) = client.join(&page).await;
    // Under the transport's 128 KiB, over the app's 64 KiB.
    let value = json!({"id": 10, "padding": "x".repeat(70 * 1024)});
    let payload = json!({"type": "click", "event": "delete", "value": value});
    let msg_ref = client.push(Some(&join_ref), &page.topic, "event", payload).await;
    assert_eq!(client.reply(&msg_ref).await, ("error".into(), json!({"reason": "invalid payload"})));
    assert_eq!(site.counters.handled(), 0);
    // A large frame whose value is small passes.
    let payload =
        json!({"type": "click", "event": "delete", "value": {"id": 10}, "cid": null, "meta": "y".repeat(70 * 1024)});
    let msg_ref = client.push(Some(&join_ref), &page.topic, "event", payload).await;
    assert_eq!(client.reply(&msg_ref).await.0, "ok");
    served.shutdown().await;
}
