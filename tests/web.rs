//! The HTTP phase over `http` types: cookie headers, guards on the plug
//! side, live pages whose tokens the connected phase accepts, redirects and
//! statuses.
#![cfg(feature = "http")]

mod live_support;

use std::sync::Arc;

use http::HeaderMap;
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use live_support::{ALICE, Counters, Store, block_on, guide_router, ring, session_for};
use liveguard::audit::{AuditRecord, MemorySink};
use liveguard::csrf::CsrfState;
use liveguard::live::{Assigns, JoinRequest, LiveApp};
use liveguard::session::SessionCookie;
use liveguard::web::{LivePages, escape, redirect_response};
use liveguard::{OsRandom, Timestamp};
use serde_json::json;

fn pages() -> (LivePages, Arc<MemorySink>, Arc<Store>) {
    let store = Store::seeded();
    let audit = Arc::new(MemorySink::new());
    let app = Arc::new(LiveApp::new(guide_router(&store, &Arc::new(Counters::default())), &ring(), audit.clone()));
    let cookie = SessionCookie::signed("_app_key", &ring(), "signed cookie").expect("a cookie");
    (LivePages::new(app, cookie), audit, store)
}

fn cookie_headers(pages: &LivePages, session: &liveguard::session::Session) -> HeaderMap {
    let set = pages.set_cookie(session, Timestamp::now(), &mut OsRandom).expect("a cookie");
    let pair = set.to_str().expect("ASCII").split(';').next().expect("name=value").to_string();
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, pair.parse().expect("a header"));
    headers
}

/// The attribute `name="…"` of the first tag in `html` that has it.
fn attribute<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("{name} in {html}")) + name.len() + 2;
    &html[start..start + html[start..].find('"').expect("a closing quote")]
}

#[test]
fn the_session_cookie_round_trips_through_headers() {
    let (pages, audit, _) = pages();
    let mut session = session_for(Some("alice-token"));
    session.put_csrf_state(&CsrfState::generate(&mut OsRandom).unwrap());
    let headers = cookie_headers(&pages, &session);
    let decoded = pages.read_session(&headers, Timestamp::now());
    assert_eq!(decoded.session, session);
    assert!(decoded.key_id.is_some());

    let mut tampered = HeaderMap::new();
    let value = headers[COOKIE].to_str().unwrap();
    tampered.insert(COOKIE, format!("{}x", value).parse().unwrap());
    let decoded = pages.read_session(&tampered, Timestamp::now());
    assert!(decoded.session.is_empty() && decoded.key_id.is_none());
    assert!(
        audit.take().iter().any(|r| matches!(r, AuditRecord::TokenRefused { purpose, .. } if purpose == "_app_key"))
    );

    let removal = pages.removal_cookie();
    assert!(removal.to_str().unwrap().starts_with("_app_key=;"), "{removal:?}");

    let token = session.csrf_state().unwrap().mask(&mut OsRandom).unwrap();
    assert!(pages.form_csrf_ok(&session, Some(token.as_str())));
    assert!(!pages.form_csrf_ok(&session, Some("forged")));
    assert!(!pages.form_csrf_ok(&session, None));
    assert!(!pages.form_csrf_ok(&session_for(None), Some(token.as_str())));
}

#[test]
fn a_live_page_carries_tokens_the_connected_phase_accepts() {
    let (pages, _, _) = pages();
    let session = session_for(Some("alice-token"));
    let decoded = pages.read_session(&cookie_headers(&pages, &session), Timestamp::now());
    let response =
        block_on(pages.render("/projects", decoded, Assigns::new(), Timestamp::now(), &mut OsRandom, |html| {
            assert_eq!(html.page.root_layout.as_deref(), Some("app"));
            format!("<html><head>{}</head><body>{}</div></body></html>", html.csrf_meta, html.container_open)
        }));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(response.headers()["cache-control"], "no-store");
    // The session had no CSRF state: the page gave it one, and writes it.
    let set = response.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, set.parse().unwrap());
    let connect = pages.read_session(&headers, Timestamp::now()).session;

    let body = response.body();
    let csrf = attribute(body, "content");
    assert!(connect.csrf_state().unwrap().verify(csrf), "the meta tag's token verifies against the new cookie");
    let id = attribute(body, "id");
    let payload = json!({
        "url": "/projects",
        "session": attribute(body, "data-phx-session"),
        "static": attribute(body, "data-phx-static"),
    });
    let topic = format!("lv:{id}");
    let joined = block_on(
        pages
            .app()
            .join(JoinRequest { topic: &topic, payload: &payload, connect_session: Some(&connect) }, Timestamp::now()),
    )
    .expect("the page's tokens join");
    assert_eq!(joined.socket.id(), id);

    // With a CSRF state already in the session, nothing is written.
    let again = block_on(pages.render(
        "/projects",
        pages.read_session(&headers, Timestamp::now()),
        Assigns::new(),
        Timestamp::now(),
        &mut OsRandom,
        |html| html.container_open.clone(),
    ));
    assert_eq!(again.status(), 200);
    assert!(again.headers().get(SET_COOKIE).is_none());
}

#[test]
fn redirects_refusals_and_other_paths() {
    let (pages, _, store) = pages();
    let render = |url: &str, token: Option<&str>| {
        let decoded = pages.read_session(&cookie_headers(&pages, &session_for(token)), Timestamp::now());
        block_on(pages.render(url, decoded, Assigns::new(), Timestamp::now(), &mut OsRandom, |_| String::new()))
    };
    let anonymous = render("/dashboard", None);
    assert_eq!((anonymous.status().as_u16(), &anonymous.headers()[LOCATION]), (302, &"/login".parse().unwrap()));
    let not_admin = render("/admin", Some("alice-token"));
    assert_eq!((not_admin.status().as_u16(), &not_admin.headers()[LOCATION]), (302, &"/".parse().unwrap()));
    // Resource authorization in mount: an org alice is not in does not exist.
    assert_eq!(render("/orgs/2/projects", Some("alice-token")).status(), 404);
    assert_eq!(render("/orgs/1/projects", Some("alice-token")).status(), 200);
    assert_eq!(render("/no/such/page", Some("alice-token")).status(), 404);
    assert_eq!(store.users.lock().unwrap()[&ALICE].orgs, [1]);

    assert_eq!(redirect_response("//evil.example/").headers()[LOCATION], "/");
    assert_eq!(redirect_response("/login").headers()[LOCATION], "/login");
    assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}
