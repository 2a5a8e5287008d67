//! Tests of the live security core (`liveguard::live`) over its public API:
//! the examples of the LiveView security guide re-created over an in-memory
//! accounts store, both mount phases (invariant 3), join tokens and
//! `live_session` boundaries (invariant 5), the `on_mount` contract
//! (invariant 6), event authorization (invariant 7), `assign_new`, extra
//! sessions, payload limits and router checks. Each refusal is also checked
//! in the audit records.

mod live_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use live_support::*;
use liveguard::MaxAge;
use liveguard::audit::{AuditRecord, Phase};
use liveguard::live::{
    AllowAll, Assigns, BoxFuture, DEFAULT_SESSION, DuplicateHook, EventFlow, EventHook, EventLimits, EventRefusal,
    EventReply, Events, Flow, HttpOutcome, JOIN_TOKEN_VERSION, JoinError, Joined, LiveRouter, LiveSessionBuilder,
    LiveView, MountError, Params, PipelineError, Redirect, RouterErrorKind, Socket,
};
use liveguard::session::Session;
use liveguard::token::{Rejection, SignedTokens};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------

/// The guide's app over a fresh seeded store.
fn guide() -> (Harness, Arc<Store>, Arc<Counters>) {
    let store = Store::seeded();
    let counters = Arc::new(Counters::default());
    (Harness::new(guide_router(&store, &counters)), store, counters)
}

/// Where an HTTP outcome redirects (a full page load), or the test fails.
fn redirected_to(outcome: HttpOutcome) -> String {
    match outcome {
        HttpOutcome::Redirect(Redirect::Redirect { to }) => to,
        other => panic!("expected a redirect, got {other:?}"),
    }
}

fn redirect(to: &str) -> JoinError {
    JoinError::Redirect(Redirect::Redirect { to: to.to_string() })
}

/// The error of a join, or the test fails.
fn join_err<T: std::fmt::Debug>(result: Result<T, JoinError>) -> JoinError {
    result.expect_err("the join must be refused")
}

fn halted(records: &[AuditRecord], phase: Phase, hook: &str, to: &str) -> bool {
    records.iter().any(|r| {
        matches!(r, AuditRecord::MountHalted { phase: p, hook: h, redirect, .. }
            if *p == phase && h == hook && redirect == to)
    })
}

fn token_refused(records: &[AuditRecord]) -> Vec<(String, Rejection)> {
    records
        .iter()
        .filter_map(|r| match r {
            AuditRecord::TokenRefused { purpose, rejection } => Some((purpose.clone(), *rejection)),
            _ => None,
        })
        .collect()
}

fn event_denied_rules(records: &[AuditRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .filter_map(|r| match r {
            AuditRecord::EventDenied { event, rule, .. } => Some((event.clone(), rule.clone())),
            _ => None,
        })
        .collect()
}

/// `token` with one character of its payload part changed.
fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 4, "a signed token has four parts: {token}");
    let payload_start = parts[0].len() + parts[1].len() + 2;
    let index = payload_start + parts[2].len() / 2;
    let mut bytes = token.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// A probe kit: `ProbeLive`'s counters and the shared log.
#[derive(Default)]
struct Kit {
    counters: Arc<Counters>,
    log: Log,
}

impl Kit {
    fn view(&self) -> Probe {
        Probe { counters: Arc::clone(&self.counters), log: self.log.clone() }
    }
}

/// A router with one live_session `probe` (configured by `configure`)
/// routing `/probe` to `ProbeLive` and `/other` to `OtherLive`.
fn probe_app(kit: &Kit, configure: impl FnOnce(LiveSessionBuilder) -> LiveSessionBuilder) -> Harness {
    let router = LiveRouter::builder()
        .live_session("probe", |s| configure(s).live("/probe", kit.view()).live("/other", Other))
        .build()
        .expect("the probe router builds");
    Harness::new(router)
}

// ---------------------------------------------------------------------------
// 1. UserLiveAuth on both phases
// ---------------------------------------------------------------------------

#[test]
fn user_auth_http_phase_redirects_anonymous_unknown_and_unconfirmed_users() {
    let (h, _, _) = guide();

    assert_eq!(redirected_to(h.get("/dashboard", session_for(None))), "/login");
    assert!(halted(&h.records(), Phase::Http, "UserAuth(require_authenticated)", "/login"));

    assert_eq!(redirected_to(h.get("/dashboard", session_for(Some("nobody-token")))), "/login");
    assert!(halted(&h.records(), Phase::Http, "UserAuth(require_authenticated)", "/login"));

    assert_eq!(redirected_to(h.get("/dashboard", session_for(Some("bob-token")))), "/confirm");
    assert!(halted(&h.records(), Phase::Http, "UserAuth(require_authenticated)", "/confirm"));

    let page = h.page("/dashboard", session_for(Some("alice-token")));
    assert_eq!(page.rendered, json!({"hello": "alice@example.com"}));
    assert!(!page.socket.connected());
    let records = h.records();
    assert!(records.iter().any(|r| matches!(r,
        AuditRecord::MountAllowed { phase: Phase::Http, view, live_session }
            if view == "DashboardLive" && live_session == "authenticated")));
    assert!(!records.iter().any(|r| matches!(r, AuditRecord::MountHalted { .. })));
}

#[test]
fn user_auth_connected_phase_joins_a_confirmed_user() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    h.records();
    let joined = h.join_url(&page, "http://localhost/dashboard").expect("alice joins");
    assert!(joined.socket.connected());
    assert_eq!(joined.socket.id(), page.socket.id());
    assert_eq!(joined.socket.view(), "DashboardLive");
    assert_eq!(joined.socket.live_session(), "authenticated");
    assert_eq!(joined.rendered, json!({"hello": "alice@example.com"}));
    // Read during the connected mount only (connect_params_are_read_during_the_connected_mount_only).
    assert_eq!(joined.socket.connect_params(), None);
    assert_eq!(page.socket.connect_params(), None);
    assert!(h.records().iter().any(|r| matches!(r,
        AuditRecord::MountAllowed { phase: Phase::Connected, view, .. } if view == "DashboardLive")));
}

#[test]
fn user_auth_connected_phase_rechecks_a_token_deleted_after_the_render() {
    let (h, store, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    store.delete_token("alice-token");
    h.records();

    let error = join_err(h.join_url(&page, "/dashboard"));
    assert_eq!(error, redirect("/login"));
    assert_eq!(error.reply(), json!({"redirect": {"to": "/login"}}));
    assert!(halted(&h.records(), Phase::Connected, "UserAuth(require_authenticated)", "/login"));
}

#[test]
fn user_auth_connected_phase_rechecks_confirmation() {
    let (h, store, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    store.update_user(ALICE, |u| u.confirmed = false);
    h.records();
    let error = join_err(h.join_url(&page, "/dashboard"));
    assert_eq!(error, redirect("/confirm"));
    assert_eq!(error.reply(), json!({"redirect": {"to": "/confirm"}}));
    assert!(halted(&h.records(), Phase::Connected, "UserAuth(require_authenticated)", "/confirm"));
}

// ---------------------------------------------------------------------------
// 2. AdminLiveAuth
// ---------------------------------------------------------------------------

#[test]
fn admin_auth_sends_non_admins_home_and_lets_admins_in() {
    let (h, store, _) = guide();

    assert_eq!(redirected_to(h.get("/admin", session_for(Some("alice-token")))), "/");
    assert!(halted(&h.records(), Phase::Http, "AdminAuth()", "/"));

    // UserAuth runs first: an anonymous user never reaches AdminAuth.
    assert_eq!(redirected_to(h.get("/admin", session_for(None))), "/login");
    let records = h.records();
    assert!(halted(&records, Phase::Http, "UserAuth(require_authenticated)", "/login"));
    assert!(!records.iter().any(|r| matches!(r, AuditRecord::MountHalted { hook, .. } if hook == "AdminAuth()")));

    let page = h.page("/admin", session_for(Some("root-token")));
    assert_eq!(page.rendered, json!({"admin": true}));
    assert_eq!(page.socket.live_session(), "admin");
    let joined = h.join_url(&page, "/admin").expect("root joins /admin");
    assert_eq!(joined.rendered, json!({"admin": true}));

    // Demoted between the render and the join: the connected phase re-checks.
    store.update_user(ROOT, |u| u.admin = false);
    h.records();
    assert_eq!(join_err(h.join_url(&page, "/admin")), redirect("/"));
    assert!(halted(&h.records(), Phase::Connected, "AdminAuth()", "/"));
}

#[test]
fn admin_routes_live_in_their_own_live_session() {
    let (h, _, _) = guide();
    let router = h.app.router();
    assert_eq!(router.resolve("/admin"), Some(("AdminDashboardLive", "admin", Params::new())));
    assert_eq!(router.resolve("/dashboard").map(|r| r.1.to_string()), Some("authenticated".to_string()));
    assert_eq!(router.resolve("/").map(|r| r.1.to_string()), Some("public".to_string()));
    assert_eq!(router.resolve("/about").map(|r| r.1.to_string()), Some(DEFAULT_SESSION.to_string()));
}

// ---------------------------------------------------------------------------
// 3. ProjectsLive: event authorization
// ---------------------------------------------------------------------------

#[test]
fn deleting_a_project_of_another_user_is_denied_before_the_handler() {
    let (h, store, counters) = guide();
    let page = h.page("/projects", session_for(Some("alice-token")));
    assert_eq!(rendered_project_ids(&page.rendered), vec![10, 11, 20]);
    let mut joined = h.join_url(&page, "/projects").expect("alice joins");
    h.records();

    // What a browser would send, and what a forged client "sends directly":
    // claims of ownership or admin rights in the payload change nothing.
    for payload in [
        json!({"id": 20}),
        json!({"id": 20, "owner": ALICE, "user_id": ALICE, "admin": true}),
        json!({"id": 20, "current_user": {"id": ROOT, "admin": true}}),
    ] {
        let refusal = h.event(&mut joined, "delete", payload.clone()).expect_err("not alice's project");
        assert_eq!(refusal, EventRefusal::Denied, "{payload}");
        assert_eq!(refusal.reply(), json!({"reason": "unauthorized"}));
        assert_eq!(
            event_denied_rules(&h.records()),
            vec![("delete".to_string(), "not the owner".to_string())],
            "{payload}"
        );
    }
    // No id at all.
    assert_eq!(h.event(&mut joined, "delete", json!({})), Err(EventRefusal::Denied));
    assert_eq!(event_denied_rules(&h.records()), vec![("delete".to_string(), "no project id".to_string())]);

    assert_eq!(counters.handled(), 0, "the handler never ran");
    assert_eq!(store.project_ids(), vec![10, 11, 20], "the project still exists");
}

#[test]
fn the_owner_and_an_admin_may_delete_and_the_list_follows() {
    let (h, store, counters) = guide();
    let alice = h.page("/projects", session_for(Some("alice-token")));
    let mut alice = h.join_url(&alice, "/projects").expect("alice joins");

    let outcome = h.event(&mut alice, "delete", json!({"id": 10})).expect("alice owns 10");
    assert_eq!(outcome.reply, json!({"deleted": 10}));
    assert_eq!(outcome.redirect, None);
    assert_eq!(rendered_project_ids(&outcome.rendered), vec![11, 20]);
    assert_eq!(alice.rendered, outcome.rendered);
    assert_eq!(counters.handled(), 1);

    let root = h.page("/projects", session_for(Some("root-token")));
    let mut root = h.join_url(&root, "/projects").expect("root joins");
    let outcome = h.event(&mut root, "delete", json!({"id": 11})).expect("an admin may delete alice's project");
    assert_eq!(rendered_project_ids(&outcome.rendered), vec![20]);
    assert_eq!(counters.handled(), 2);
    assert_eq!(store.project_ids(), vec![20]);

    // alice still may not delete root's.
    assert_eq!(h.event(&mut alice, "delete", json!({"id": 20})), Err(EventRefusal::Denied));
    assert_eq!(counters.handled(), 2);
    assert_eq!(store.project_ids(), vec![20]);
}

// ---------------------------------------------------------------------------
// 4. Resource authorization in mount
// ---------------------------------------------------------------------------

#[test]
fn an_org_the_user_is_not_in_is_not_found_on_http() {
    let (h, _, counters) = guide();
    for url in ["/orgs/2/projects", "/orgs/not-a-number/projects"] {
        match h.get(url, session_for(Some("alice-token"))) {
            HttpOutcome::Failed(error) => {
                assert_eq!(error, MountError::NotFound, "{url}");
                assert_eq!(error.status(), 404);
            }
            other => panic!("{url}: expected a 404, got {other:?}"),
        }
        assert!(h.records().iter().any(|r| matches!(r,
            AuditRecord::MountFailed { phase: Phase::Http, view, status: 404 } if view == "ProjectsLive")));
    }
    let page = h.page("/orgs/1/projects", session_for(Some("alice-token")));
    assert_eq!(page.rendered["org"], json!(1));
    assert_eq!(counters.mounts(), 3);
}

#[test]
fn an_org_membership_removed_before_the_join_reloads_with_404() {
    let (h, store, _) = guide();
    let page = h.page("/orgs/1/projects", session_for(Some("alice-token")));
    store.update_user(ALICE, |u| u.orgs.clear());
    h.records();
    let error = join_err(h.join_url(&page, "/orgs/1/projects"));
    assert_eq!(error, JoinError::Reload(404));
    assert_eq!(error.reply(), json!({"reason": "reload", "status": 404}));
    assert!(h.records().iter().any(|r| matches!(r,
        AuditRecord::MountFailed { phase: Phase::Connected, view, status: 404 } if view == "ProjectsLive")));
}

// ---------------------------------------------------------------------------
// 5. Navigation across live_session boundaries
// ---------------------------------------------------------------------------

#[test]
fn live_navigation_within_a_live_session_mounts_the_target() {
    let (h, _, counters) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    for to in ["/projects", "http://localhost/projects", "/orgs/1/projects?tab=all"] {
        let joined = h.join_redirect(&page, to).unwrap_or_else(|e| panic!("{to}: {e:?}"));
        assert_eq!(joined.socket.view(), "ProjectsLive", "{to}");
        assert_eq!(joined.socket.live_session(), "authenticated");
        assert_eq!(joined.socket.id(), page.socket.id(), "a live redirect keeps the view id");
        assert_eq!(rendered_project_ids(&joined.rendered), vec![10, 11, 20]);
    }
    assert_eq!(counters.mounts(), 3, "the target view mounted on each navigation");
}

#[test]
fn live_navigation_across_live_sessions_is_unauthorized() {
    let (h, _, counters) = guide();
    // Even for an admin, who could open /admin over HTTP.
    let page = h.page("/projects", session_for(Some("root-token")));
    let before = counters.mounts();
    for to in ["/admin", "/", "/about"] {
        h.records();
        let error = join_err(h.join_redirect(&page, to));
        assert_eq!(error, JoinError::Unauthorized, "{to}");
        assert_eq!(error.reply(), json!({"reason": "unauthorized"}));
        let (reply, detail) = join_refused(&h.records());
        assert_eq!(reply, "unauthorized");
        assert!(detail.contains("live_session"), "{detail}");
    }
    assert_eq!(counters.mounts(), before, "nothing mounted");
}

#[test]
fn live_navigation_from_the_default_session_to_a_named_one_is_unauthorized() {
    let (h, _, _) = guide();
    let page = h.page("/about", session_for(Some("alice-token")));
    assert_eq!(page.socket.live_session(), DEFAULT_SESSION);
    for to in ["/dashboard", "/"] {
        h.records();
        assert_eq!(join_err(h.join_redirect(&page, to)), JoinError::Unauthorized, "{to}");
        assert_eq!(join_refused(&h.records()).0, "unauthorized");
    }
    // And back: a named session to the default one.
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    assert_eq!(join_err(h.join_redirect(&page, "/about")), JoinError::Unauthorized);
}

#[test]
fn live_navigation_to_a_route_that_is_not_live_is_unauthorized() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    for to in ["/login", "/dashboard/extra", "//evil.com/dashboard"] {
        h.records();
        assert_eq!(join_err(h.join_redirect(&page, to)), JoinError::Unauthorized, "{to}");
        let (reply, detail) = join_refused(&h.records());
        assert_eq!(reply, "unauthorized");
        assert!(detail.contains("not a live route"), "{detail}");
    }
    // A plain rejoin whose url is no longer live.
    assert_eq!(join_err(h.join_url(&page, "/login")), JoinError::Unauthorized);
}

#[test]
fn a_main_view_whose_route_now_mounts_another_view_is_unauthorized() {
    let (h, store, counters) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));

    // The same deploy (same key ring and routes) accepts the page's tokens...
    let same = Harness::new(guide_router(&store, &counters));
    same.join_url(&page, "/dashboard").expect("an identical app accepts the page");

    // ...a deploy where /dashboard now mounts ProjectsLive does not.
    let changed = LiveRouter::builder()
        .live_session("authenticated", |s| {
            s.on_mount(UserAuth(Arc::clone(&store)), "require_authenticated")
                .live("/dashboard", Projects { store: Arc::clone(&store), counters: Arc::clone(&counters) })
        })
        .build()
        .unwrap();
    let changed = Harness::new(changed);
    let mounts = counters.mounts();
    let error = join_err(changed.join_url(&page, "/dashboard"));
    assert_eq!(error, JoinError::Unauthorized);
    assert_eq!(error.reply(), json!({"reason": "unauthorized"}));
    let (reply, detail) = join_refused(&changed.records());
    assert_eq!(reply, "unauthorized");
    assert!(detail.contains("ProjectsLive") && detail.contains("DashboardLive"), "{detail}");
    assert_eq!(counters.mounts(), mounts, "nothing mounted");
}

#[test]
fn a_route_moved_to_another_live_session_is_unauthorized() {
    let (h, store, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let moved = LiveRouter::builder()
        .live_session("authenticated", |s| {
            s.on_mount(UserAuth(Arc::clone(&store)), "require_authenticated").live("/projects-only", Other)
        })
        .live_session("members", |s| {
            s.on_mount(UserAuth(Arc::clone(&store)), "require_authenticated").live("/dashboard", Dashboard)
        })
        .build()
        .unwrap();
    let moved = Harness::new(moved);
    assert_eq!(join_err(moved.join_url(&page, "/dashboard")), JoinError::Unauthorized);
    let (reply, detail) = join_refused(&moved.records());
    assert_eq!(reply, "unauthorized");
    assert!(detail.contains("members") && detail.contains("authenticated"), "{detail}");
    assert_eq!(join_err(moved.join_redirect(&page, "/dashboard")), JoinError::Unauthorized);
}

#[test]
fn a_bumped_live_session_version_is_unauthorized() {
    let (h, store, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let bumped = LiveRouter::builder()
        .live_session("authenticated", |s| {
            s.on_mount(UserAuth(Arc::clone(&store)), "require_authenticated")
                .version(1)
                .live("/dashboard", Dashboard)
                .live("/other", Other)
        })
        .build()
        .unwrap();
    let bumped = Harness::new(bumped);
    for (key, to) in [("url", "/dashboard"), ("redirect", "/other")] {
        let payload = Harness::payload(&page, key, to);
        let error = join_err(bumped.join_raw(&topic(&page), &payload, Some(&page.session), NOW));
        assert_eq!(error, JoinError::Unauthorized, "{key}");
        let (reply, detail) = join_refused(&bumped.records());
        assert_eq!(reply, "unauthorized");
        assert!(detail.contains("v1") && detail.contains("v0"), "{detail}");
    }
    // A page rendered by the new version joins it.
    let fresh = bumped.page("/dashboard", session_for(Some("alice-token")));
    bumped.join_url(&fresh, "/dashboard").expect("a token of the current version");
}

// ---------------------------------------------------------------------------
// 6. Join token refusals
// ---------------------------------------------------------------------------

fn assert_stale(h: &Harness, result: Result<Joined, JoinError>, detail_part: &str) {
    let error = join_err(result);
    assert_eq!(error, JoinError::Stale);
    assert_eq!(error.reply(), json!({"reason": "stale"}));
    let (reply, detail) = join_refused(&h.records());
    assert_eq!(reply, "stale");
    assert!(detail.contains(detail_part), "{detail:?} should mention {detail_part:?}");
}

#[test]
fn a_join_without_a_session_token_is_stale() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    h.records();
    let payload = json!({"url": "/dashboard", "static": page.static_token, "params": {}});
    assert_stale(&h, h.join_raw(&topic(&page), &payload, Some(&page.session), NOW), "no session token");
    // A session that is not a string.
    let payload = json!({"url": "/dashboard", "session": 42});
    assert_stale(&h, h.join_raw(&topic(&page), &payload, Some(&page.session), NOW), "no session token");
}

#[test]
fn a_tampered_session_token_is_stale() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    h.records();
    let mut payload = Harness::payload(&page, "url", "/dashboard");
    payload["session"] = json!(tamper(&page.session_token));
    let result = h.join_raw(&topic(&page), &payload, Some(&page.session), NOW);
    assert_eq!(join_err(result), JoinError::Stale);
    let records = h.records();
    assert_eq!(token_refused(&records), vec![("live session token".to_string(), Rejection::BadSignature)]);
    assert_eq!(join_refused(&records).0, "stale");

    // The static token is signed for another purpose: not a session token.
    payload["session"] = json!(page.static_token);
    assert_eq!(join_err(h.join_raw(&topic(&page), &payload, Some(&page.session), NOW)), JoinError::Stale);
    assert_eq!(token_refused(&h.records()), vec![("live session token".to_string(), Rejection::BadSignature)]);
}

#[test]
fn an_expired_session_token_is_stale() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let payload = Harness::payload(&page, "url", "/dashboard");

    h.join_raw(&topic(&page), &payload, Some(&page.session), later(14 * DAY_MS - SECOND_MS))
        .expect("valid for 14 days");
    h.records();
    let result = h.join_raw(&topic(&page), &payload, Some(&page.session), later(15 * DAY_MS));
    assert_eq!(join_err(result), JoinError::Stale);
    let records = h.records();
    assert_eq!(token_refused(&records), vec![("live session token".to_string(), Rejection::Expired)]);
    assert_eq!(join_refused(&records).0, "stale");
}

#[test]
fn a_shorter_join_max_age_applies() {
    let store = Store::seeded();
    let counters = Arc::new(Counters::default());
    let h =
        Harness::new(guide_router(&store, &counters)).map_app(|app, ring| app.join_max_age(ring, MaxAge::Seconds(60)));
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let payload = Harness::payload(&page, "url", "/dashboard");
    h.join_raw(&topic(&page), &payload, Some(&page.session), later(59 * SECOND_MS)).expect("within a minute");
    h.records();
    let result = h.join_raw(&topic(&page), &payload, Some(&page.session), later(61 * SECOND_MS));
    assert_eq!(join_err(result), JoinError::Stale);
    assert_eq!(token_refused(&h.records()), vec![("live session token".to_string(), Rejection::Expired)]);
}

#[test]
fn a_token_of_another_key_ring_is_stale() {
    let (h, store, counters) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let other = Harness::with_ring(guide_router(&store, &counters), ring_with(9));
    let payload = Harness::payload(&page, "url", "/dashboard");
    let result = other.join_raw(&topic(&page), &payload, Some(&page.session), NOW);
    assert_eq!(join_err(result), JoinError::Stale);
    let records = other.records();
    assert_eq!(token_refused(&records), vec![("live session token".to_string(), Rejection::BadSignature)]);
    assert_eq!(join_refused(&records).0, "stale");
}

#[test]
fn a_topic_of_another_view_id_is_stale() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let other = h.page("/dashboard", session_for(Some("alice-token")));
    assert_ne!(page.socket.id(), other.socket.id());
    h.records();
    let payload = Harness::payload(&page, "url", "/dashboard");
    let id = page.socket.id().to_string();
    for topic in [format!("lv:{}", other.socket.id()), id.clone(), format!("lv:{id}x"), format!("phx:{id}")] {
        assert_stale(&h, h.join_raw(&topic, &payload, Some(&page.session), NOW), "topic");
    }
}

#[test]
fn a_static_token_of_another_page_or_tampered_is_stale() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let other = h.page("/dashboard", page.session.clone());
    h.records();

    let mut payload = Harness::payload(&page, "url", "/dashboard");
    payload["static"] = json!(other.static_token);
    assert_stale(&h, h.join_raw(&topic(&page), &payload, Some(&page.session), NOW), "static token of another view");

    payload["static"] = json!(tamper(&page.static_token));
    let result = h.join_raw(&topic(&page), &payload, Some(&page.session), NOW);
    assert_eq!(join_err(result), JoinError::Stale);
    let records = h.records();
    assert_eq!(token_refused(&records), vec![("live static token".to_string(), Rejection::BadSignature)]);
    assert!(join_refused(&records).1.contains("static token refused"));

    // A session token in the static slot (another purpose).
    payload["static"] = json!(page.session_token);
    assert_eq!(join_err(h.join_raw(&topic(&page), &payload, Some(&page.session), NOW)), JoinError::Stale);
    h.records();

    // No static token at all is allowed (nested / re-rooted views).
    let payload = json!({"url": "/dashboard", "session": page.session_token});
    h.join_raw(&topic(&page), &payload, Some(&page.session), NOW).expect("the static token is optional");
}

#[test]
fn a_connection_without_a_session_is_stale() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    h.records();
    let payload = Harness::payload(&page, "url", "/dashboard");
    assert_stale(&h, h.join_raw(&topic(&page), &payload, None, NOW), "no session");
}

#[test]
fn a_token_rendered_for_one_session_cannot_join_from_another() {
    let (h, _, _) = guide();
    // Two browsers of the same user: each cookie session has its own CSRF state.
    let page_a = h.page("/dashboard", session_for(Some("alice-token")));
    let page_b = h.page("/dashboard", session_for(Some("alice-token")));
    assert_ne!(page_a.session.csrf_state(), page_b.session.csrf_state());
    h.records();

    let payload = Harness::payload(&page_a, "url", "/dashboard");
    let result = h.join_raw(&topic(&page_a), &payload, Some(&page_b.session), NOW);
    assert_stale(&h, result, "another session");

    // A cookie session without any CSRF state (same user token) neither.
    let bare = session_for(Some("alice-token"));
    assert_stale(&h, h.join_raw(&topic(&page_a), &payload, Some(&bare), NOW), "another session");

    // Its own session joins.
    h.join_raw(&topic(&page_a), &payload, Some(&page_a.session), NOW).expect("the page's own session");
}

#[test]
fn a_join_with_neither_url_nor_redirect_is_stale() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    h.records();
    let payload = json!({"session": page.session_token, "static": page.static_token, "params": {}});
    assert_stale(&h, h.join_raw(&topic(&page), &payload, Some(&page.session), NOW), "neither url nor redirect");
}

#[test]
fn a_join_token_of_another_version_is_outdated() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    let signer = SignedTokens::new(&h.ring, "liveguard live session");
    for version in [JOIN_TOKEN_VERSION + 1, JOIN_TOKEN_VERSION - 1] {
        let token = signer.sign_with_max_age(&(version, vec![1u8, 2, 3]), NOW, MaxAge::FOURTEEN_DAYS).expect("signs");
        h.records();
        let mut payload = Harness::payload(&page, "url", "/dashboard");
        payload["session"] = json!(token);
        let error = join_err(h.join_raw(&topic(&page), &payload, Some(&page.session), NOW));
        assert_eq!(error, JoinError::Outdated, "version {version}");
        assert_eq!(error.reply(), json!({"reason": "outdated"}));
        assert_eq!(join_refused(&h.records()).0, "outdated");
    }

    // The current version with claims that do not decode is stale.
    let token = signer.sign_with_max_age(&(JOIN_TOKEN_VERSION, vec![0xffu8; 3]), NOW, MaxAge::FOURTEEN_DAYS).unwrap();
    h.records();
    let mut payload = Harness::payload(&page, "url", "/dashboard");
    payload["session"] = json!(token);
    assert_eq!(join_err(h.join_raw(&topic(&page), &payload, Some(&page.session), NOW)), JoinError::Stale);
    assert_eq!(token_refused(&h.records()), vec![("live session token".to_string(), Rejection::BadPayload)]);
}

// ---------------------------------------------------------------------------
// 7. on_mount contract
// ---------------------------------------------------------------------------

fn misuse_records(h: &Harness) -> Vec<(Phase, String, &'static str)> {
    h.records()
        .into_iter()
        .filter_map(|r| match r {
            AuditRecord::HookMisuse { phase, hook, detail } => Some((phase, hook, detail)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_hook_that_halts_without_redirecting_is_an_error_on_both_phases() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| s.on_mount(hook("Halter", |_, _, _, _| Flow::Halt), "always"));
    let error = h.http("/probe", session_for(None), Assigns::new()).expect_err("misuse");
    let expected =
        PipelineError::HookMisuse { hook: "Halter(always)".to_string(), detail: "halted without redirecting" };
    assert_eq!(error, expected);
    assert!(error.to_string().contains("halted without redirecting"));
    assert_eq!(misuse_records(&h), vec![(Phase::Http, "Halter(always)".to_string(), "halted without redirecting")]);
    assert_eq!(kit.counters.mounts(), 0);

    // Misbehaving only when connected: the join fails as an internal error.
    let h = probe_app(&kit, |s| {
        s.on_mount(hook("Halter", |_, _, _, socket| if socket.connected() { Flow::Halt } else { Flow::Continue }), "c")
    });
    let page = h.page("/probe", session_for(None));
    h.records();
    let error = join_err(h.join_url(&page, "/probe"));
    assert_eq!(
        error,
        JoinError::Internal(PipelineError::HookMisuse {
            hook: "Halter(c)".to_string(),
            detail: "halted without redirecting"
        })
    );
    assert_eq!(error.reply(), json!({"reason": "join crashed"}));
    assert_eq!(misuse_records(&h), vec![(Phase::Connected, "Halter(c)".to_string(), "halted without redirecting")]);
    assert_eq!(kit.counters.mounts(), 1, "only the HTTP mount ran");
}

#[test]
fn a_hook_that_redirects_without_halting_is_an_error() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| {
        s.on_mount(
            hook("Sloppy", |_, _, _, socket| {
                socket.redirect("/elsewhere");
                Flow::Continue
            }),
            "",
        )
    });
    let expected = PipelineError::HookMisuse { hook: "Sloppy()".to_string(), detail: "redirected without halting" };
    assert_eq!(h.http("/probe", session_for(None), Assigns::new()).expect_err("misuse"), expected);
    assert_eq!(misuse_records(&h), vec![(Phase::Http, "Sloppy()".to_string(), "redirected without halting")]);

    let h = probe_app(&kit, |s| {
        s.on_mount(
            hook("Sloppy", |_, _, _, socket| {
                if socket.connected() {
                    socket.push_navigate("/elsewhere");
                }
                Flow::Continue
            }),
            "",
        )
    });
    let page = h.page("/probe", session_for(None));
    h.records();
    assert_eq!(join_err(h.join_url(&page, "/probe")), JoinError::Internal(expected));
    assert_eq!(misuse_records(&h), vec![(Phase::Connected, "Sloppy()".to_string(), "redirected without halting")]);
    assert_eq!(kit.counters.mounts(), 1);
}

#[test]
fn a_hook_that_halts_with_a_non_local_redirect_is_an_error() {
    let kit = Kit::default();
    for (target, live) in [
        ("//evil.com", false),
        ("https://evil.com", false),
        ("/\\evil.com", false),
        ("/\t/evil.com", false),
        ("//evil.com/x", true),
        ("", false),
    ] {
        let h = probe_app(&kit, |s| {
            s.on_mount(
                hook("Leaky", move |_, _, _, socket| {
                    if live {
                        socket.push_navigate(target)
                    } else {
                        socket.redirect(target)
                    }
                    Flow::Halt
                }),
                "",
            )
        });
        let error = h.http("/probe", session_for(None), Assigns::new()).expect_err(target);
        assert_eq!(
            error,
            PipelineError::HookMisuse { hook: "Leaky()".to_string(), detail: "redirected to a non-local path" },
            "{target}"
        );
        assert_eq!(misuse_records(&h), vec![(Phase::Http, "Leaky()".to_string(), "redirected to a non-local path")]);
    }
    // On the connected phase as well.
    let h = probe_app(&kit, |s| {
        s.on_mount(
            hook("Leaky", |_, _, _, socket| {
                if !socket.connected() {
                    return Flow::Continue;
                }
                socket.redirect("https://evil.com/phish");
                Flow::Halt
            }),
            "",
        )
    });
    let page = h.page("/probe", session_for(None));
    h.records();
    assert!(matches!(
        join_err(h.join_url(&page, "/probe")),
        JoinError::Internal(PipelineError::HookMisuse { detail: "redirected to a non-local path", .. })
    ));
    assert_eq!(kit.counters.mounts(), 1);
}

#[test]
fn a_hook_that_halts_with_a_local_redirect_answers_a_redirect_on_http() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| {
        s.on_mount(
            hook("Nav", |_, _, _, socket| {
                socket.redirect("/first");
                Flow::Halt
            }),
            "",
        )
    });
    assert_eq!(redirected_to(h.get("/probe", session_for(None))), "/first");
    assert!(halted(&h.records(), Phase::Http, "Nav()", "/first"));
    assert_eq!(kit.counters.mounts(), 0);

    // A live navigation asked for during the HTTP phase is answered as a
    // redirect too (the adapter sends a plain HTTP redirect).
    let h = probe_app(&kit, |s| {
        s.on_mount(
            hook("Nav", |_, _, _, socket| {
                socket.push_navigate("/next");
                Flow::Halt
            }),
            "",
        )
    });
    match h.get("/probe", session_for(None)) {
        HttpOutcome::Redirect(Redirect::LiveRedirect { to }) => assert_eq!(to, "/next"),
        other => panic!("expected a live redirect, got {other:?}"),
    }
    assert_eq!(kit.counters.mounts(), 0);
}

#[test]
fn a_live_redirect_from_a_hook_is_a_live_redirect_join_error() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| {
        s.on_mount(
            hook("Nav", |_, _, _, socket| {
                if !socket.connected() {
                    return Flow::Continue;
                }
                socket.push_navigate("/next");
                Flow::Halt
            }),
            "",
        )
    });
    let page = h.page("/probe", session_for(None));
    h.records();
    let error = join_err(h.join_url(&page, "/probe"));
    assert_eq!(error, JoinError::Redirect(Redirect::LiveRedirect { to: "/next".to_string() }));
    assert_eq!(error.reply(), json!({"live_redirect": {"to": "/next", "kind": "push"}}));
    assert!(halted(&h.records(), Phase::Connected, "Nav()", "/next"));
    assert_eq!(kit.counters.mounts(), 1);
}

#[test]
fn hooks_run_in_declaration_order_before_the_mount_on_both_phases() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| {
        s.on_mount(logging_hook("A", &kit.log), "1")
            .on_mount(logging_hook("B", &kit.log), "2")
            .on_mount(logging_hook("A", &kit.log), "3")
    });
    let page = h.page("/probe", session_for(None));
    h.join_url(&page, "/probe").expect("joins");
    assert_eq!(
        kit.log.entries(),
        [
            "A(1) http",
            "B(2) http",
            "A(3) http",
            "mount http",
            "A(1) connected",
            "B(2) connected",
            "A(3) connected",
            "mount connected"
        ]
    );
}

#[test]
fn a_halting_hook_stops_later_hooks_and_the_mount() {
    let kit = Kit::default();
    let log = kit.log.clone();
    let h = probe_app(&kit, |s| {
        s.on_mount(logging_hook("A", &kit.log), "")
            .on_mount(
                hook("Gate", move |_, _, _, socket| {
                    log.push(format!("Gate {}", phase(socket)));
                    if socket.connected() {
                        socket.redirect("/login");
                        return Flow::Halt;
                    }
                    Flow::Continue
                }),
                "",
            )
            .on_mount(logging_hook("C", &kit.log), "")
    });
    let page = h.page("/probe", session_for(None));
    assert_eq!(join_err(h.join_url(&page, "/probe")), redirect("/login"));
    assert_eq!(
        kit.log.entries(),
        ["A() http", "Gate http", "C() http", "mount http", "A() connected", "Gate connected"],
        "C and the connected mount never ran"
    );
    assert_eq!(kit.counters.mounts(), 1);

    kit.log.clear();
    let log = kit.log.clone();
    let h = probe_app(&kit, |s| {
        s.on_mount(
            hook("Gate", move |_, _, _, socket| {
                log.push("Gate");
                socket.redirect("/login");
                Flow::Halt
            }),
            "",
        )
        .on_mount(logging_hook("C", &kit.log), "")
    });
    assert_eq!(redirected_to(h.get("/probe", session_for(None))), "/login");
    assert_eq!(kit.log.entries(), ["Gate"]);
    assert_eq!(kit.counters.mounts(), 1, "no HTTP mount either");
}

// ---------------------------------------------------------------------------
// 8. assign_new on each phase
// ---------------------------------------------------------------------------

#[test]
fn assign_new_reuses_plug_assigns_on_http_and_always_computes_when_connected() {
    let (h, store, _) = guide();
    let alice = store.user_by_token("alice-token");

    // A plug already loaded the user: the HTTP mount reuses it.
    let mut assigns = Assigns::new();
    assigns.insert::<CurrentUser>(alice.clone());
    let page = match h.http("/dashboard", session_for(Some("alice-token")), assigns).unwrap() {
        HttpOutcome::Page(page) => page,
        other => panic!("{other:?}"),
    };
    assert_eq!(store.lookups(), 0, "the compute closure did not run on the HTTP mount");
    assert_eq!(page.rendered, json!({"hello": "alice@example.com"}));
    assert_eq!(page.socket.get::<CurrentUser>(), Some(&alice));

    // The connected mount computes again, whatever the HTTP phase found.
    let joined = h.join_url(&page, "/dashboard").expect("joins");
    assert_eq!(store.lookups(), 1, "the compute closure ran on the connected mount");
    assert_eq!(joined.socket.get::<CurrentUser>(), Some(&alice));

    // Without a plug value the HTTP mount computes.
    h.page("/dashboard", session_for(Some("alice-token")));
    assert_eq!(store.lookups(), 2);
}

#[test]
fn assign_new_on_the_connected_mount_does_not_trust_the_http_value() {
    let (h, store, _) = guide();
    // A plug vouched for alice although the cookie session holds no token.
    let mut assigns = Assigns::new();
    assigns.insert::<CurrentUser>(store.user_by_token("alice-token"));
    let page = match h.http("/dashboard", session_for(None), assigns).unwrap() {
        HttpOutcome::Page(page) => page,
        other => panic!("{other:?}"),
    };
    assert_eq!(store.lookups(), 0);
    assert_eq!(page.rendered, json!({"hello": "alice@example.com"}));
    assert_eq!(join_err(h.join_url(&page, "/dashboard")), redirect("/login"));
    assert_eq!(store.lookups(), 1);
}

#[test]
fn assign_new_leaves_an_assign_already_on_the_socket_untouched() {
    let store = Store::seeded();
    let preset = User { id: 99, email: "preset@example.com", confirmed: true, admin: false, orgs: vec![] };
    let value = Some(preset.clone());
    let router = LiveRouter::builder()
        .live_session("preset", |s| {
            s.on_mount(
                hook("Preset", move |_, _, _, socket| {
                    socket.assign::<CurrentUser>(value.clone());
                    Flow::Continue
                }),
                "",
            )
            .on_mount(UserAuth(Arc::clone(&store)), "require_authenticated")
            .live("/dashboard", Dashboard)
        })
        .build()
        .unwrap();
    let h = Harness::new(router);

    // Even with a plug value and a cookie token for alice.
    let mut assigns = Assigns::new();
    assigns.insert::<CurrentUser>(store.user_by_token("alice-token"));
    let page = match h.http("/dashboard", session_for(Some("alice-token")), assigns).unwrap() {
        HttpOutcome::Page(page) => page,
        other => panic!("{other:?}"),
    };
    assert_eq!(page.rendered, json!({"hello": "preset@example.com"}));
    let joined = h.join_url(&page, "/dashboard").expect("joins");
    assert_eq!(joined.rendered, json!({"hello": "preset@example.com"}));
    assert_eq!(joined.socket.get::<CurrentUser>(), Some(&Some(preset)));
    assert_eq!(store.lookups(), 0, "never computed");
}

// ---------------------------------------------------------------------------
// 9. Events
// ---------------------------------------------------------------------------

/// An on_mount hook attaching `event_hook` under `id`, logging the result.
fn attach(id: &'static str, event_hook: Arc<dyn EventHook>, log: &Log) -> impl liveguard::live::OnMount {
    let log = log.clone();
    hook("Attach", move |_, _, _, socket| {
        let result = socket.attach_event_hook(id, Arc::clone(&event_hook));
        log.push(format!("attach {id} {} {result:?}", phase(socket)));
        Flow::Continue
    })
}

fn event_hook(id: &'static str, flow: EventFlow, log: &Log) -> (Arc<dyn EventHook>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (Arc::new(RecordingEventHook { id, flow, log: log.clone(), calls: Arc::clone(&calls) }), calls)
}

/// A probe app whose sessions attach `hooks` (in order) on mount, joined.
fn joined_with_hooks(kit: &Kit, hooks: Vec<(&'static str, Arc<dyn EventHook>)>) -> (Harness, Joined) {
    let h = probe_app(kit, |mut s| {
        for (id, event_hook) in hooks {
            s = s.on_mount(attach(id, event_hook, &kit.log), id);
        }
        s
    });
    let page = h.page("/probe", session_for(None));
    let joined = h.join_url(&page, "/probe").expect("joins");
    kit.log.clear();
    h.records();
    (h, joined)
}

#[test]
fn an_undeclared_event_is_refused_before_any_application_code() {
    let kit = Kit::default();
    let (hook_a, calls) = event_hook("a", EventFlow::Continue, &kit.log);
    let (h, mut joined) = joined_with_hooks(&kit, vec![("a", hook_a)]);
    for event in ["drop_table", "lv:clear-flash", "", "PING", "ping "] {
        let refusal = h.event(&mut joined, event, json!({"x": 1})).expect_err(event);
        assert_eq!(refusal, EventRefusal::Undeclared, "{event:?}");
        assert_eq!(refusal.reply(), json!({"reason": "unauthorized"}), "same reply as a denied event");
        assert_eq!(event_denied_rules(&h.records()), vec![(event.to_string(), "undeclared".to_string())]);
    }
    assert_eq!(kit.counters.handled(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "hooks never saw them");
    assert!(kit.log.entries().is_empty());
}

#[test]
fn a_continuing_event_hook_lets_the_handler_run() {
    let kit = Kit::default();
    let (hook_a, calls_a) = event_hook("a", EventFlow::Continue, &kit.log);
    let (hook_b, calls_b) = event_hook("b", EventFlow::Continue, &kit.log);
    let (h, mut joined) = joined_with_hooks(&kit, vec![("a", hook_a), ("b", hook_b)]);
    let outcome = h.event(&mut joined, "ping", json!({})).expect("allowed");
    assert_eq!(outcome.reply, json!({"pong": true}));
    assert_eq!(kit.log.entries(), ["hook a ping", "hook b ping", "handler"]);
    assert_eq!((calls_a.load(Ordering::SeqCst), calls_b.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(kit.counters.handled(), 1);
}

#[test]
fn a_halting_event_hook_replies_empty_and_skips_the_handler() {
    let kit = Kit::default();
    let (hook_a, _) = event_hook("a", EventFlow::Halt, &kit.log);
    let (hook_b, calls_b) = event_hook("b", EventFlow::Continue, &kit.log);
    let (h, mut joined) = joined_with_hooks(&kit, vec![("a", hook_a), ("b", hook_b)]);
    let outcome = h.event(&mut joined, "ping", json!({})).expect("allowed");
    assert_eq!(outcome.reply, json!({}));
    assert_eq!(kit.log.entries(), ["hook a ping"]);
    assert_eq!(calls_b.load(Ordering::SeqCst), 0, "later hooks skipped");
    assert_eq!(kit.counters.handled(), 0, "the handler did not run");
}

#[test]
fn a_replying_event_hook_answers_for_the_handler() {
    let kit = Kit::default();
    let (hook_a, _) = event_hook("a", EventFlow::Continue, &kit.log);
    let (hook_b, _) = event_hook("b", EventFlow::Reply(json!({"from": "hook"})), &kit.log);
    let (h, mut joined) = joined_with_hooks(&kit, vec![("a", hook_a), ("b", hook_b)]);
    let outcome = h.event(&mut joined, "ping", json!({})).expect("allowed");
    assert_eq!(outcome.reply, json!({"from": "hook"}));
    assert_eq!(kit.log.entries(), ["hook a ping", "hook b ping"]);
    assert_eq!(kit.counters.handled(), 0);

    // Detached, the handler answers again.
    assert!(joined.socket.detach_event_hook("b"));
    assert!(!joined.socket.detach_event_hook("b"));
    assert_eq!(h.event(&mut joined, "ping", json!({})).unwrap().reply, json!({"pong": true}));
    assert_eq!(kit.counters.handled(), 1);
}

#[test]
fn a_duplicate_event_hook_id_is_refused() {
    let kit = Kit::default();
    let (hook_a, _) = event_hook("a", EventFlow::Continue, &kit.log);
    let (hook_a2, calls_a2) = event_hook("a2", EventFlow::Halt, &kit.log);
    let h = probe_app(&kit, |s| {
        s.on_mount(attach("a", hook_a, &kit.log), "1").on_mount(attach("a", hook_a2.clone(), &kit.log), "2")
    });
    let page = h.page("/probe", session_for(None));
    let mut joined = h.join_url(&page, "/probe").expect("joins");
    let entries = kit.log.entries();
    assert_eq!(entries[..2], ["attach a http Ok(())".to_string(), "attach a http Err(DuplicateHook)".to_string()]);
    assert!(entries.contains(&"attach a connected Err(DuplicateHook)".to_string()));

    assert_eq!(joined.socket.attach_event_hook("a", hook_a2.clone()), Err(DuplicateHook));
    kit.log.clear();
    h.event(&mut joined, "ping", json!({})).expect("allowed");
    assert_eq!(calls_a2.load(Ordering::SeqCst), 0, "the refused hook is not attached");
    assert_eq!(kit.counters.handled(), 1);

    assert_eq!(joined.socket.attach_event_hook("b", hook_a2), Ok(()));
    assert_eq!(h.event(&mut joined, "ping", json!({})).unwrap().reply, json!({}));
}

#[test]
fn event_hooks_never_see_denied_events() {
    let kit = Kit::default();
    let (hook_a, calls) = event_hook("a", EventFlow::Continue, &kit.log);
    let (h, mut joined) = joined_with_hooks(&kit, vec![("a", hook_a)]);
    let refusal = h.event(&mut joined, "admin_only", json!({"note": "admin"})).expect_err("denied");
    assert_eq!(refusal, EventRefusal::Denied);
    assert_eq!(refusal.reply(), json!({"reason": "unauthorized"}));
    assert_eq!(event_denied_rules(&h.records()), vec![("admin_only".to_string(), "not admin".to_string())]);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(kit.counters.handled(), 0);

    // The policy reads the server-side assign: set it and the event passes.
    joined.socket.assign::<Note>("admin".to_string());
    h.event(&mut joined, "admin_only", json!({})).expect("allowed");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(kit.counters.handled(), 1);
}

/// `[[[...1...]]]` nested `depth` times, as text.
fn nested_text(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// The same as a `Value`, built without recursion.
fn nested_value(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

#[test]
fn parse_event_payload_refuses_large_and_malformed_payloads() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| s.public());
    let big = format!("{{\"text\":\"{}\"}}", "x".repeat(64 * 1024));
    assert_eq!(h.app.parse_event_payload(&big), Err(EventRefusal::TooLarge));
    for raw in ["not json", "{\"a\":", "", "{\"a\":1}}", "[1,]"] {
        assert_eq!(h.app.parse_event_payload(raw), Err(EventRefusal::Malformed), "{raw:?}");
    }
    assert_eq!(EventRefusal::Malformed.reply(), json!({"reason": "invalid payload"}));
    assert_eq!(h.app.parse_event_payload("{\"id\":20}"), Ok(json!({"id": 20})));
    assert_eq!(h.app.parse_event_payload(&nested_text(32)), Ok(nested_value(32)));
    assert_eq!(h.app.parse_event_payload(&nested_text(33)), Err(EventRefusal::TooDeep));
}

#[test]
fn parse_event_payload_refuses_a_very_deep_payload_as_too_deep() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| s.public());
    // No stack overflow, no panic; and the refusal names the depth limit.
    let deep = nested_text(1000);
    assert_eq!(h.app.parse_event_payload(&deep), Err(EventRefusal::TooDeep));
    let deep_objects = format!("{}1{}", "{\"a\":".repeat(1000), "}".repeat(1000));
    assert_eq!(h.app.parse_event_payload(&deep_objects), Err(EventRefusal::TooDeep));
}

#[test]
fn parse_event_payload_honours_a_configured_depth_above_128() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| s.public())
        .map_app(|app, _| app.event_limits(EventLimits { max_bytes: 64 * 1024, max_depth: 200 }));
    assert_eq!(h.app.parse_event_payload(&nested_text(150)), Ok(nested_value(150)));
    assert_eq!(h.app.parse_event_payload(&nested_text(201)), Err(EventRefusal::TooDeep));
}

#[test]
fn a_configured_depth_is_capped_at_max_event_depth() {
    let kit = Kit::default();
    let h = probe_app(&kit, |s| s.public())
        .map_app(|app, _| app.event_limits(EventLimits { max_bytes: 1 << 20, max_depth: 100_000 }));
    let deepest = liveguard::live::MAX_EVENT_DEPTH;
    assert_eq!(h.app.parse_event_payload(&nested_text(deepest)), Ok(nested_value(deepest)));
    assert_eq!(h.app.parse_event_payload(&nested_text(deepest + 1)), Err(EventRefusal::TooDeep));
    // Brackets inside strings do not count.
    let quoted = format!("[\"{}\"]", "[".repeat(deepest * 2));
    assert!(h.app.parse_event_payload(&quoted).is_ok());
}

#[test]
fn event_limits_apply_exactly_at_their_boundaries() {
    let kit = Kit::default();
    let (hook_a, calls) = event_hook("a", EventFlow::Continue, &kit.log);
    let h = probe_app(&kit, |s| s.on_mount(attach("a", hook_a, &kit.log), ""))
        .map_app(|app, _| app.event_limits(EventLimits { max_bytes: 16, max_depth: 3 }));

    // Size: 16 bytes pass, 17 do not (checked before parsing).
    let sixteen = "{\"k\":\"12345678\"}";
    assert_eq!(sixteen.len(), 16);
    assert!(h.app.parse_event_payload(sixteen).is_ok());
    let seventeen = "{\"k\":\"123456789\"}";
    assert_eq!(seventeen.len(), 17);
    assert_eq!(h.app.parse_event_payload(seventeen), Err(EventRefusal::TooLarge));
    assert_eq!(h.app.parse_event_payload(&" ".repeat(17)), Err(EventRefusal::TooLarge), "size before syntax");

    // Depth: 3 passes, 4 does not; objects count like arrays.
    assert_eq!(h.app.parse_event_payload("[[[1]]]"), Ok(json!([[[1]]])));
    assert_eq!(h.app.parse_event_payload("[[[[1]]]]"), Err(EventRefusal::TooDeep));
    assert_eq!(h.app.parse_event_payload("{\"a\":{\"b\":[1]}}"), Ok(json!({"a": {"b": [1]}})));
    assert_eq!(h.app.parse_event_payload("{\"a\":{\"b\":[[]]}}"), Err(EventRefusal::TooDeep));
    assert_eq!(h.app.parse_event_payload("1"), Ok(json!(1)));

    // handle_event checks the depth of an already parsed payload too.
    let page = h.page("/probe", session_for(None));
    let mut joined = h.join_url(&page, "/probe").expect("joins");
    h.records();
    assert_eq!(h.event(&mut joined, "ping", nested_value(3)).unwrap().reply, json!({"pong": true}));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.event(&mut joined, "ping", nested_value(4)), Err(EventRefusal::TooDeep));
    assert_eq!(event_denied_rules(&h.records()), vec![("ping".to_string(), "payload depth limit".to_string())]);
    assert_eq!(h.event(&mut joined, "ping", nested_value(1000)), Err(EventRefusal::TooDeep));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "hooks never saw the refused payloads");
    assert_eq!(kit.counters.handled(), 1);
}

// ---------------------------------------------------------------------------
// 10. Router checks and resolution
// ---------------------------------------------------------------------------

fn noop<'a, V>(_: &'a V, _: &'a mut Socket, _: &'a Value) -> BoxFuture<'a, EventReply> {
    Box::pin(async { EventReply::NoReply })
}

macro_rules! view_with_events {
    ($name:ident, $($event:expr),*) => {
        struct $name;
        impl LiveView for $name {
            const NAME: &'static str = stringify!($name);
            fn mount<'a>(&'a self, _: &'a Params, _: &'a Session, _: &'a mut Socket) -> BoxFuture<'a, Result<(), MountError>> {
                Box::pin(async { Ok(()) })
            }
            fn render(&self, _: &Socket) -> Value {
                json!({})
            }
            fn events() -> Events<Self> {
                Events::new()$(.on($event, AllowAll, noop::<Self>))*
            }
        }
    };
}

view_with_events!(TwiceSave, "save", "other", "save");
view_with_events!(ClearFlash, "lv:clear-flash");
view_with_events!(EmptyEvent, "");
view_with_events!(LvAnything, "ok", "lv:whatever");
view_with_events!(Fine, "save", "validate");

fn build_error(builder: liveguard::live::RouterBuilder) -> (RouterErrorKind, String) {
    let error = builder.build().expect_err("the router must be refused");
    assert!(!error.to_string().is_empty());
    (error.kind(), error.subject().to_string())
}

fn guarded(s: LiveSessionBuilder) -> LiveSessionBuilder {
    s.on_mount(hook("Guard", |_, _, _, _| Flow::Continue), "")
}

#[test]
fn router_refuses_duplicate_and_reserved_live_session_names() {
    let builder = LiveRouter::builder()
        .live_session("app", |s| guarded(s).live("/a", Fine))
        .live_session("app", |s| guarded(s).live("/b", Other));
    assert_eq!(build_error(builder), (RouterErrorKind::DuplicateSession, "app".to_string()));

    let builder = LiveRouter::builder().live_session(DEFAULT_SESSION, |s| guarded(s).live("/a", Fine));
    assert_eq!(build_error(builder), (RouterErrorKind::DuplicateSession, "default".to_string()));
}

#[test]
fn router_refuses_routes_matching_the_same_urls() {
    let builder = LiveRouter::builder().live_session("app", |s| guarded(s).live("/a/:x", Fine).live("/a/:y", Other));
    assert_eq!(build_error(builder), (RouterErrorKind::DuplicateRoute, "/a/:y".to_string()));

    // Across live_sessions, and with a trailing slash.
    let builder = LiveRouter::builder()
        .live_session("one", |s| guarded(s).live("/a", Fine))
        .live_session("two", |s| guarded(s).live("/a/", Other));
    assert_eq!(build_error(builder), (RouterErrorKind::DuplicateRoute, "/a/".to_string()));

    // A literal and a parameter in the same place are different shapes.
    LiveRouter::builder()
        .live_session("app", |s| guarded(s).live("/a/new", Fine).live("/a/:id", Other))
        .build()
        .expect("/a/new and /a/:id differ");
}

#[test]
fn router_requires_on_mount_hooks_unless_public() {
    let builder = LiveRouter::builder().live_session("app", |s| s.live("/a", Fine));
    assert_eq!(build_error(builder), (RouterErrorKind::MissingOnMount, "app".to_string()));

    let builder = LiveRouter::builder().live("/a", Fine);
    assert_eq!(build_error(builder), (RouterErrorKind::MissingOnMount, DEFAULT_SESSION.to_string()));

    // The implicit session made public, before or after its routes.
    LiveRouter::builder().live("/a", Fine).default_session(|s| s.public()).build().expect("public default");
    let router = LiveRouter::builder().default_session(|s| s.public()).live("/a", Fine).build().expect("public");
    assert_eq!(router.resolve("/a").map(|r| r.0), Some("Fine"));
    // ...or given a hook.
    LiveRouter::builder().live("/a", Fine).default_session(guarded).build().expect("guarded default");

    // No routes, no hooks: nothing to guard.
    LiveRouter::builder().live_session("empty", |s| s).build().expect("an empty session");
    LiveRouter::builder().live_session("app", |s| s.public().live("/a", Fine)).build().expect("public session");
}

#[test]
fn router_refuses_invalid_patterns_and_duplicate_params() {
    for pattern in ["projects", "/a//b", "/:", "/a?x", "/a#x", "", "a/b", "/a/:/b"] {
        let builder = LiveRouter::builder().live_session("app", |s| guarded(s).live(pattern, Fine));
        assert_eq!(build_error(builder), (RouterErrorKind::InvalidPattern, pattern.to_string()), "{pattern:?}");
    }
    let builder = LiveRouter::builder().live_session("app", |s| guarded(s).live("/a/:x/b/:x", Fine));
    assert_eq!(build_error(builder), (RouterErrorKind::DuplicateParam, "/a/:x/b/:x".to_string()));
}

#[test]
fn router_refuses_duplicate_and_reserved_event_names() {
    let builder = LiveRouter::builder().live_session("app", |s| guarded(s).live("/a", TwiceSave));
    assert_eq!(build_error(builder), (RouterErrorKind::DuplicateEvent, "save".to_string()));
    for (builder, name) in [
        (LiveRouter::builder().live_session("app", |s| guarded(s).live("/a", ClearFlash)), "lv:clear-flash"),
        (LiveRouter::builder().live_session("app", |s| guarded(s).live("/a", EmptyEvent)), ""),
        (LiveRouter::builder().live_session("app", |s| guarded(s).live("/a", LvAnything)), "lv:whatever"),
    ] {
        assert_eq!(build_error(builder), (RouterErrorKind::ReservedEvent, name.to_string()));
    }
}

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn router_resolves_paths_queries_and_absolute_urls() {
    let (h, _, _) = guide();
    let router = h.app.router();
    let resolve = |url: &str| router.resolve(url).map(|(view, session, params)| (view, session.to_string(), params));
    let projects = |p: Params| Some(("ProjectsLive", "authenticated".to_string(), p));

    assert_eq!(resolve("/orgs/7/projects"), projects(params(&[("org_id", "7")])));
    // Path parameters win over query parameters of the same name.
    assert_eq!(resolve("/orgs/7/projects?org_id=9&q=x"), projects(params(&[("org_id", "7"), ("q", "x")])));
    // Percent-decoding of segments and of the query.
    assert_eq!(resolve("/orgs/a%20b/projects"), projects(params(&[("org_id", "a b")])));
    assert_eq!(resolve("/orgs/1%2F2/projects"), projects(params(&[("org_id", "1/2")])));
    assert_eq!(resolve("/org%73/1/projects"), projects(params(&[("org_id", "1")])));
    assert_eq!(resolve("/orgs/1/projects?q=a%20b+c"), projects(params(&[("org_id", "1"), ("q", "a b c")])));
    // Trailing slash, fragment, absolute URLs.
    assert_eq!(resolve("/projects/"), projects(Params::new()));
    assert_eq!(resolve("/projects#top"), projects(Params::new()));
    assert_eq!(
        resolve("https://example.com/orgs/1/projects?tab=x"),
        projects(params(&[("org_id", "1"), ("tab", "x")]))
    );
    assert_eq!(resolve("http://localhost:4000/projects"), projects(Params::new()));
    assert_eq!(resolve("/").map(|r| r.0), Some("HomeLive"));

    for url in ["/nope", "/dashboard/extra", "/orgs/projects", "", "dashboard", "//evil.com/x", "//evil.com/dashboard"]
    {
        assert_eq!(resolve(url), None, "{url:?}");
    }
    assert_eq!(resolve("javascript:alert(1)"), None);
}

// ---------------------------------------------------------------------------
// 11. Extra session
// ---------------------------------------------------------------------------

/// A hook logging the `tenant` value of the mount session.
fn tenant_hook(log: &Log) -> impl liveguard::live::OnMount {
    let log = log.clone();
    hook("Tenant", move |_, _, session, socket| {
        let tenant: Option<String> = session.get("tenant").unwrap();
        log.push(format!("tenant {} {}", phase(socket), tenant.as_deref().unwrap_or("-")));
        Flow::Continue
    })
}

#[test]
fn a_fixed_extra_session_is_seen_on_both_phases_and_wins_over_the_cookie() {
    let kit = Kit::default();
    let mut fixed = Session::new();
    fixed.put("tenant", "fixed").unwrap();
    let h = probe_app(&kit, |s| s.session(fixed).on_mount(tenant_hook(&kit.log), ""));

    let mut cookie = session_for(None);
    cookie.put("tenant", "cookie").unwrap();
    cookie.put("other", "kept").unwrap();
    let page = h.page("/probe", cookie);
    assert_eq!(page.rendered["note"], json!("fixed"));
    // The page's cookie session is the cookie session, not the merged one.
    assert_eq!(page.session.get::<String>("tenant").unwrap().as_deref(), Some("cookie"));
    let joined = h.join_url(&page, "/probe").expect("joins");
    assert_eq!(joined.rendered["note"], json!("fixed"));
    assert_eq!(
        kit.log.entries().into_iter().filter(|e| e.starts_with("tenant")).collect::<Vec<_>>(),
        ["tenant http fixed", "tenant connected fixed"]
    );
}

#[test]
fn a_computed_extra_session_is_carried_signed_to_the_join() {
    let kit = Kit::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let h = probe_app(&kit, |s| {
        s.session_fn(move |req| {
            counted.fetch_add(1, Ordering::SeqCst);
            let tenant: Option<String> = req.session.get("tenant").ok().flatten();
            let mut extra = Session::new();
            extra.put("tenant", &format!("{}@{}", tenant.unwrap_or_default(), req.url)).unwrap();
            extra
        })
        .on_mount(tenant_hook(&kit.log), "")
    });

    let mut cookie = session_for(None);
    cookie.put("tenant", "acme").unwrap();
    let page = h.page("/probe?x=1", cookie);
    assert_eq!(page.rendered["note"], json!("acme@/probe?x=1"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The cookie session changes the key later (same CSRF state): the signed
    // value from render time wins, and the function does not run again.
    let mut changed = page.session.clone();
    changed.put("tenant", "evil").unwrap();
    let payload = Harness::payload(&page, "url", "/probe");
    let joined = h.join_raw(&topic(&page), &payload, Some(&changed), NOW).expect("joins");
    assert_eq!(joined.rendered["note"], json!("acme@/probe?x=1"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(kit.log.entries().contains(&"tenant connected acme@/probe?x=1".to_string()));
}

// ---------------------------------------------------------------------------
// 12. Page details
// ---------------------------------------------------------------------------

#[test]
fn a_page_carries_a_csrf_token_for_its_session() {
    let (h, _, _) = guide();
    let first = h.page("/dashboard", session_for(Some("alice-token")));
    assert!(first.session_changed, "a CSRF state was added");
    let state = first.session.csrf_state().expect("the page session has a CSRF state");
    assert!(state.verify(first.csrf_token.as_str()));
    assert!(liveguard::csrf::verify_request(Some(state.as_str()), Some(first.csrf_token.as_str())));
    // The cookie session kept the user token.
    assert_eq!(first.session.get::<String>(liveguard::session::USER_TOKEN).unwrap().as_deref(), Some("alice-token"));

    let second = h.page("/dashboard", first.session.clone());
    assert!(!second.session_changed, "the state was already there");
    assert_eq!(second.session.csrf_state(), Some(state.clone()));
    assert_ne!(second.csrf_token, first.csrf_token, "a fresh mask per render");
    assert!(state.verify(second.csrf_token.as_str()));
    assert_ne!(second.socket.id(), first.socket.id());

    // A token masked for another session's state does not verify.
    let other = h.page("/dashboard", session_for(Some("alice-token")));
    assert!(!state.verify(other.csrf_token.as_str()));
}

#[test]
fn a_page_names_its_view_session_and_root_layout() {
    let (h, _, _) = guide();
    let page = h.page("/dashboard", session_for(Some("alice-token")));
    assert_eq!(page.root_layout.as_deref(), Some("app"));
    assert_eq!((page.socket.view(), page.socket.live_session()), ("DashboardLive", "authenticated"));
    assert!(page.socket.id().starts_with("phx-") && page.socket.id().len() == 20, "{}", page.socket.id());
    assert_eq!(h.page("/", session_for(None)).root_layout.as_deref(), Some("public"));
    assert_eq!(h.page("/admin", session_for(Some("root-token"))).root_layout.as_deref(), Some("admin"));
    assert_eq!(h.page("/about", session_for(None)).root_layout, None);
    assert!(matches!(h.get("/login", session_for(None)), HttpOutcome::NotLive));
    assert!(matches!(h.get("//evil.com/dashboard", session_for(None)), HttpOutcome::NotLive));
}

#[test]
fn a_page_replaces_an_invalid_csrf_state() {
    let (h, _, _) = guide();
    let mut cookie = session_for(Some("alice-token"));
    cookie.put(liveguard::session::CSRF_TOKEN, "not-a-state").unwrap();
    let page = h.page("/dashboard", cookie);
    assert!(page.session_changed);
    let state = page.session.csrf_state().expect("a fresh, valid state");
    assert!(state.verify(page.csrf_token.as_str()));
    h.join_url(&page, "/dashboard").expect("the page joins over its new session");
}

// ---------------------------------------------------------------------------
// Redirects asked for by a view (mount and events)
// ---------------------------------------------------------------------------

/// Redirects from mount to its `to` parameter; its `go` event navigates to
/// the payload's `to`.
struct Bounce;
impl LiveView for Bounce {
    const NAME: &'static str = "BounceLive";
    fn mount<'a>(
        &'a self,
        params: &'a Params,
        _: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        Box::pin(async move {
            if let Some(to) = params.get("to") {
                socket.redirect(to);
            }
            Ok(())
        })
    }
    fn render(&self, _: &Socket) -> Value {
        json!({})
    }
    fn events() -> Events<Self> {
        Events::new().on("go", AllowAll, |_, socket, payload| {
            if let Some(to) = payload.get("to").and_then(Value::as_str) {
                socket.push_navigate(to);
            }
            Box::pin(async { EventReply::NoReply })
        })
    }
}

fn bounce_app() -> Harness {
    Harness::new(LiveRouter::builder().live_session("bounce", |s| s.public().live("/bounce", Bounce)).build().unwrap())
}

#[test]
fn a_view_mount_may_redirect_only_to_a_local_path() {
    let h = bounce_app();
    assert_eq!(redirected_to(h.get("/bounce?to=/elsewhere", session_for(None))), "/elsewhere");
    for to in ["//evil.com", "https://evil.com", "/%5Cevil.com"] {
        // `%5C` in the query decodes to a backslash: the mount sees `/\evil.com`.
        let result = h.http(&format!("/bounce?to={to}"), session_for(None), Assigns::new());
        assert_eq!(
            result.expect_err(to),
            PipelineError::HookMisuse {
                hook: "BounceLive.mount".to_string(),
                detail: "redirected to a non-local path"
            },
            "{to}"
        );
    }

    let page = h.page("/bounce", session_for(None));
    assert_eq!(join_err(h.join_url(&page, "/bounce?to=/x")), redirect("/x"));
    assert!(matches!(
        join_err(h.join_url(&page, "/bounce?to=https://evil.com")),
        JoinError::Internal(PipelineError::HookMisuse { detail: "redirected to a non-local path", .. })
    ));
}

#[test]
fn an_event_handler_may_navigate_only_to_a_local_path() {
    let h = bounce_app();
    let page = h.page("/bounce", session_for(None));
    let mut joined = h.join_url(&page, "/bounce").expect("joins");
    let outcome = h.event(&mut joined, "go", json!({"to": "/local"})).unwrap();
    assert_eq!(outcome.redirect, Some(Redirect::LiveRedirect { to: "/local".to_string() }));
    for to in ["//evil.com", "https://evil.com", "/\\evil.com", "/\t/evil.com"] {
        let outcome = h.event(&mut joined, "go", json!({"to": to})).unwrap();
        assert_eq!(outcome.redirect, None, "{to:?} is dropped");
        assert_eq!(joined.socket.redirected(), None, "and not left pending");
    }
}

// ---------------------------------------------------------------------------
// Re-authorization in place
// ---------------------------------------------------------------------------

#[test]
fn reauthorize_reruns_the_hooks_in_place_with_fresh_assigns() {
    let (h, store, _) = guide();
    let page = h.page("/projects", session_for(Some("alice-token")));
    let mut joined = h.join_url(&page, "/projects").unwrap();
    let id = joined.socket.id().to_string();
    assert!(!current_user(&joined.socket).unwrap().admin);

    // A role change: the hooks run again and their assigns replace the old.
    store.update_user(ALICE, |u| u.admin = true);
    block_on(h.app.reauthorize(&mut joined)).unwrap();
    assert!(current_user(&joined.socket).unwrap().admin, "fresh assigns");
    assert_eq!(joined.socket.id(), id, "same view, same connection");
    assert!(joined.socket.connected());

    // A revoked session: the hook halts, and the caller gets its redirect.
    store.delete_token("alice-token");
    h.records();
    assert_eq!(block_on(h.app.reauthorize(&mut joined)).unwrap_err(), redirect("/login"));
    assert!(halted(&h.records(), Phase::Connected, "UserAuth(require_authenticated)", "/login"));
}

#[test]
fn connect_params_are_read_during_the_connected_mount_only() {
    let log = Log::default();
    let seen = log.clone();
    let router = LiveRouter::builder()
        .default_session(|s| {
            s.public()
                .on_mount(
                    hook("Params", move |_, _, _, socket| {
                        seen.push(format!("{} {:?}", phase(socket), socket.connect_params()));
                        Flow::Continue
                    }),
                    "",
                )
                .live("/about", About)
        })
        .build()
        .expect("a router");
    let h = Harness::new(router);
    let page = h.page("/about", session_for(None));
    let mut joined = h.join_url(&page, "/about").expect("joins");
    assert_eq!(
        log.entries(),
        ["http None".to_string(), format!("connected {:?}", Some(json!({"_mounts": 0})))],
        "the HTTP mount has none; the connected mount sees the client's"
    );
    // As LiveView's get_connect_params: gone once mounted, also for a
    // later re-authorization of the view.
    assert_eq!(joined.socket.connect_params(), None);
    block_on(h.app.reauthorize(&mut joined)).expect("still allowed");
    assert_eq!(log.entries().last().map(String::as_str), Some("connected None"));
}
