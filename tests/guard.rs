//! `Guard`: one rule per boundary, the same answer on the HTTP side (the
//! plug), on the HTTP mount and on the connected mount.

mod live_support;

use std::sync::Arc;

use live_support::{ALICE, About, Harness, NOW, Store, User, block_on, session_for};
use liveguard::OsRandom;
use liveguard::live::{Assigns, Page};
use liveguard::live::{CurrentUser, Guard, HttpOutcome, HttpRequest, JoinError, LiveRouter, Redirect};

/// The accounts store as a user source; counts its lookups.
fn guards(store: &Arc<Store>) -> (Arc<Guard<Store>>, Arc<Guard<Store>>) {
    let accounts = Arc::clone(store);
    let user = Guard::signed_in("RequireUser", Arc::clone(&accounts), "/login").require(|u| u.confirmed, "/confirm");
    let admin = Guard::signed_in("RequireAdmin", accounts, "/login")
        .require(|u| u.confirmed, "/confirm")
        .require(|u| u.admin, "/");
    (Arc::new(user), Arc::new(admin))
}

fn router(user: &Arc<Guard<Store>>, admin: &Arc<Guard<Store>>) -> LiveRouter {
    LiveRouter::builder()
        .live_session("authenticated", |s| s.on_mount_shared(user.clone(), "").live("/dashboard", About))
        .live_session("admin", |s| s.on_mount_shared(admin.clone(), "").live("/admin", About))
        .build()
        .expect("a router")
}

const TOKENS: [Option<&str>; 5] =
    [None, Some("no-such-token"), Some("bob-token"), Some("alice-token"), Some("root-token")];

#[test]
fn decide_applies_the_requirements_in_order() {
    let store = Store::seeded();
    let (user, admin) = guards(&store);
    let who = |token: &str| store.user_by_token(token);
    assert_eq!(user.decide(None), Err("/login"));
    assert_eq!(user.decide(who("bob-token").as_ref()), Err("/confirm"));
    assert_eq!(user.decide(who("alice-token").as_ref()), Ok(()));
    assert_eq!(admin.decide(who("alice-token").as_ref()), Err("/"));
    assert_eq!(admin.decide(who("bob-token").as_ref()), Err("/confirm"), "the first failed requirement wins");
    assert_eq!(admin.decide(who("root-token").as_ref()), Ok(()));

    let accounts = Arc::clone(&store);
    let open = Guard::load_user("LoadUser", Arc::clone(&accounts));
    assert_eq!(open.decide(None), Ok(()));
    let picky = Guard::load_user("Picky", accounts).require(|u| u.admin, "/nope");
    assert_eq!(picky.decide(None), Err("/nope"), "anonymous visitors fail every requirement");
}

/// The HTTP side, the HTTP mount and the connected mount give the same
/// answer for every kind of visitor, on both boundaries.
#[test]
fn both_phases_and_the_plug_side_agree() {
    let store = Store::seeded();
    let (user, admin) = guards(&store);
    let h = Harness::new(router(&user, &admin));
    for (guard, url) in [(&user, "/dashboard"), (&admin, "/admin")] {
        for token in TOKENS {
            let session = session_for(token);
            let plug = block_on(guard.check(&session)).map(|u| u.map(|u| u.id));
            let mut assigns = Assigns::new();
            if let Ok(found) = &plug {
                assigns.insert::<CurrentUser<User>>(found.and_then(|id| store.users.lock().unwrap().get(&id).cloned()));
            }
            let request = HttpRequest { url: url.into(), session: session.clone(), assigns };
            let outcome = block_on(h.app.http_mount(request, NOW, &mut OsRandom)).expect("a pipeline");
            match (&plug, outcome) {
                (Ok(_), HttpOutcome::Page(page)) => {
                    let joined = h.join_url(&page, url).expect("the connected mount agrees");
                    let seen = joined.socket.get::<CurrentUser<User>>().cloned().flatten().map(|u| u.id);
                    assert_eq!(Ok(seen), plug, "{url} {token:?}");
                }
                (Err(Redirect::Redirect { to }), HttpOutcome::Redirect(Redirect::Redirect { to: mounted })) => {
                    assert_eq!(to, &mounted, "{url} {token:?}");
                }
                (plug, other) => panic!("{url} {token:?}: plug {plug:?}, mount {other:?}"),
            }
        }
    }
}

#[test]
fn the_http_mount_reuses_the_plugs_user_and_the_connected_mount_reloads_it() {
    let store = Store::seeded();
    let (user, admin) = guards(&store);
    let h = Harness::new(router(&user, &admin));
    let session = session_for(Some("alice-token"));
    let found = block_on(user.check(&session)).expect("alice passes");
    assert_eq!(found.as_ref().map(|u| u.id), Some(ALICE));
    assert_eq!(store.lookups(), 1);
    let mut assigns = Assigns::new();
    assigns.insert::<CurrentUser<User>>(found);
    let request = HttpRequest { url: "/dashboard".into(), session, assigns };
    let HttpOutcome::Page(page) = block_on(h.app.http_mount(request, NOW, &mut OsRandom)).expect("a pipeline") else {
        panic!("a page")
    };
    assert_eq!(store.lookups(), 1, "assign_new reused the plug's user");
    let page: Box<Page> = page;

    // Logged out between the two phases: the connected mount reloads the
    // user and refuses.
    store.delete_token("alice-token");
    assert_eq!(
        h.join_url(&page, "/dashboard").err(),
        Some(JoinError::Redirect(Redirect::Redirect { to: "/login".into() }))
    );
    assert_eq!(store.lookups(), 2);
}

#[test]
fn reauthorize_runs_the_guard_again_with_a_fresh_user() {
    let store = Store::seeded();
    let (user, admin) = guards(&store);
    let h = Harness::new(router(&user, &admin));
    let page = h.page("/admin", session_for(Some("root-token")));
    let mut joined = h.join_url(&page, "/admin").expect("root joins");
    assert!(block_on(h.app.reauthorize(&mut joined)).is_ok());
    store.update_user(3, |u| u.admin = false);
    assert_eq!(
        block_on(h.app.reauthorize(&mut joined)),
        Err(JoinError::Redirect(Redirect::Redirect { to: "/".into() }))
    );
}
