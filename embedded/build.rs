//! Puts `memory.x` on the linker's path and makes the test vectors on the
//! host: session cookies (signed and encrypted, valid, tampered, expired) and
//! the join tokens of two rendered pages, written to `$OUT_DIR/vectors.rs`
//! for the firmware to `include!`.

extern crate alloc;

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use liveguard::Timestamp;
use liveguard::audit::NoAudit;
use liveguard::csrf::CsrfState;
use liveguard::live::{Assigns, HttpOutcome, HttpRequest, LiveApp, Page};
use liveguard::session::{Session, USER_TOKEN};

#[path = "src/app.rs"]
#[allow(dead_code)]
mod app;

use app::{
    ALICE_TOKEN, Accounts, BOB_TOKEN, EXPIRED_BY_MS, HashDrbg, JOIN_EXPIRED_BY_MS, Operator, PANEL_URL,
    PROVISIONED_UNIX_MS,
};

/// The host's session store: both operators still logged in.
const HOST_ACCOUNTS: Accounts =
    &[(ALICE_TOKEN, Operator { name: "alice", admin: false }), (BOB_TOKEN, Operator { name: "bob", admin: false })];

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::copy("memory.x", out.join("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/app.rs");
    std::fs::write(out.join("vectors.rs"), vectors()?)?;
    Ok(())
}

fn vectors() -> Result<String, Box<dyn Error>> {
    let mut rng = HashDrbg::new(b"liveguard-embedded host vectors");
    let now = Timestamp::from_unix_millis(PROVISIONED_UNIX_MS);
    let then = Timestamp::from_unix_millis(PROVISIONED_UNIX_MS - EXPIRED_BY_MS);
    let long_ago = Timestamp::from_unix_millis(PROVISIONED_UNIX_MS - JOIN_EXPIRED_BY_MS);
    let ring = app::ring()?;
    let signed = app::signed_cookie(&ring)?;
    let encrypted = app::encrypted_cookie(&ring)?;
    let live = app::app(&ring, HOST_ACCOUNTS, Arc::new(NoAudit))?;

    let alice = session_of(ALICE_TOKEN, &mut rng)?;
    let bob = session_of(BOB_TOKEN, &mut rng)?;
    let alice_page = render(&live, &alice, now, &mut rng)?;
    let alice_old_page = render(&live, &alice, long_ago, &mut rng)?;
    let bob_page = render(&live, &bob, now, &mut rng)?;

    let signed_ok = signed.encode(&alice, now, &mut rng)?;
    let encrypted_ok = encrypted.encode(&alice, now, &mut rng)?;
    let mut out = String::from("// Made by build.rs from src/app.rs on the host; do not edit.\n");
    let mut put = |name: &str, value: &str| writeln!(out, "pub const {name}: &str = {value:?};");
    put("SIGNED_COOKIE", &signed_ok)?;
    put("SIGNED_TAMPERED", &tamper(&signed_ok))?;
    put("SIGNED_EXPIRED", &signed.encode(&alice, then, &mut rng)?)?;
    put("ENCRYPTED_COOKIE", &encrypted_ok)?;
    put("ENCRYPTED_TAMPERED", &tamper(&encrypted_ok))?;
    put("ENCRYPTED_EXPIRED", &encrypted.encode(&alice, then, &mut rng)?)?;
    put("BOB_COOKIE", &signed.encode(&bob, now, &mut rng)?)?;
    put("PAGE_CSRF_TOKEN", alice_page.csrf_token.as_str())?;
    put("JOIN_TOPIC", &format!("lv:{}", alice_page.socket.id()))?;
    put("JOIN_SESSION", &alice_page.session_token)?;
    put("JOIN_STATIC", &alice_page.static_token)?;
    put("JOIN_SESSION_TAMPERED", &tamper(&alice_page.session_token))?;
    put("OLD_JOIN_TOPIC", &format!("lv:{}", alice_old_page.socket.id()))?;
    put("OLD_JOIN_SESSION", &alice_old_page.session_token)?;
    put("OLD_JOIN_STATIC", &alice_old_page.static_token)?;
    put("BOB_JOIN_TOPIC", &format!("lv:{}", bob_page.socket.id()))?;
    put("BOB_JOIN_SESSION", &bob_page.session_token)?;
    put("BOB_JOIN_STATIC", &bob_page.static_token)?;
    Ok(out)
}

/// A logged-in session: the server-side session token and a CSRF state (the
/// join token is bound to the state).
fn session_of(token: &str, rng: &mut HashDrbg) -> Result<Session, Box<dyn Error>> {
    let mut session = Session::new();
    session.put(USER_TOKEN, token)?;
    session.put_csrf_state(&CsrfState::generate(rng)?);
    Ok(session)
}

/// The HTTP phase of the panel: the page whose tokens the join sends back.
fn render(live: &LiveApp, session: &Session, now: Timestamp, rng: &mut HashDrbg) -> Result<Page, Box<dyn Error>> {
    let request = HttpRequest { url: String::from(PANEL_URL), session: session.clone(), assigns: Assigns::new() };
    match block_on(live.http_mount(request, now, rng))? {
        HttpOutcome::Page(page) => Ok(*page),
        other => Err(format!("the panel did not render on the host: {other:?}").into()),
    }
}

/// One character changed in the middle, to another base64url character: a
/// value of the same shape whose tag no longer verifies.
fn tamper(value: &str) -> String {
    let mut bytes = value.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The core never spawns or waits on I/O, so polling on this thread finishes.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}
