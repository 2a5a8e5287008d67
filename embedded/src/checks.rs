//! The checks: every answer the core gives on the device is compared with
//! the one it must give, and the costly operations are measured.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use core::cell::Cell;

use critical_section::Mutex;
use liveguard::Timestamp;
use liveguard::audit::{AuditRecord, AuditSink};
use liveguard::keys::{KeyError, KeyId, SecretKeyBase};
use liveguard::live::{EventRefusal, JoinError, JoinRequest, Joined, LiveApp, Redirect};
use liveguard::session::{DecodedSession, Session, SessionCookie, USER_TOKEN};
use liveguard::token::{Rejection, VerifyErrorKind};
use serde_json::{Value, json};

use crate::app::{self, ALICE_TOKEN, Accounts, HashDrbg, Operator, PANEL_URL, PROVISIONED_UNIX_MS};
use crate::device::{self, SYSCLK_HZ};
use crate::{Cost, check, measure, report};

mod vectors {
    include!(concat!(env!("OUT_DIR"), "/vectors.rs"));
}
use vectors::*;

/// The device's session store: `bob`'s session was deleted after his page
/// was rendered, so only `alice` is still logged in.
const DEVICE_ACCOUNTS: Accounts = &[(ALICE_TOKEN, Operator { name: "alice", admin: false })];

/// The seed of the device's stand-in for a hardware TRNG (see [`HashDrbg`]).
const DEVICE_SEED: &[u8] = b"liveguard-embedded device stand-in for a TRNG";

/// The wall clock: the provisioned instant plus SysTick time since boot.
fn now() -> Timestamp {
    Timestamp::from_unix_millis(PROVISIONED_UNIX_MS + device::ticks() / (SYSCLK_HZ / 1000))
}

/// Keeps the last token rejection the application audited: the join answers
/// only `stale`, the audit record says why.
struct RecordingSink {
    last_rejection: Mutex<Cell<Option<Rejection>>>,
}

impl AuditSink for RecordingSink {
    fn record(&self, record: AuditRecord) {
        if let AuditRecord::TokenRefused { rejection, .. } = record {
            critical_section::with(|cs| self.last_rejection.borrow(cs).set(Some(rejection)));
        }
    }
}

impl RecordingSink {
    fn take(&self) -> Option<Rejection> {
        critical_section::with(|cs| self.last_rejection.borrow(cs).take())
    }
}

/// The core never spawns or waits on I/O, so polling in place finishes.
fn block_on<F: core::future::Future>(future: F) -> F::Output {
    let mut future = core::pin::pin!(future);
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    loop {
        if let core::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Fails the firmware (through the panic handler) when setup that every
/// later check depends on went wrong.
fn required<T, E: core::fmt::Debug>(what: &str, result: Result<T, E>) -> T {
    check(what, result.is_ok());
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error:?}"),
    }
}

fn user_token(session: &Session) -> Option<String> {
    session.get::<String>(USER_TOKEN).ok().flatten()
}

fn kind(decoded: &DecodedSession) -> Option<VerifyErrorKind> {
    decoded.rejection.map(Rejection::kind)
}

fn join(live: &LiveApp, topic: &str, payload: &Value, session: Option<&Session>) -> Result<Joined, JoinError> {
    block_on(live.join(JoinRequest { topic, payload, connect_session: session }, now()))
}

fn join_payload(session: &str, statics: &str) -> Value {
    json!({"url": PANEL_URL, "session": session, "static": statics, "params": {}})
}

pub fn run() {
    let mut costs: vec::Vec<(&str, Cost)> = vec::Vec::new();

    // Keys: derived once, at boot.
    check(
        "keys: a secret key base shorter than 64 bytes is refused",
        SecretKeyBase::new(vec![0x5a; 63]).err() == Some(KeyError::SecretTooShort),
    );
    let ring = required("keys: the key ring takes the 64-byte secret key base", app::ring());
    let (signed, cost) = measure(|| app::signed_cookie(&ring));
    report("pbkdf2_one_key", cost);
    let signed = required("keys: the signed cookie's key derives (PBKDF2, 1000 iterations)", signed);
    let (encrypted, cost) = measure(|| app::encrypted_cookie(&ring));
    costs.push(("pbkdf2_one_key", cost));
    let encrypted = required("keys: the encrypted cookie's key derives", encrypted);
    let sink = Arc::new(RecordingSink { last_rejection: Mutex::new(Cell::new(None)) });
    let (live, cost) = measure(|| app::app(&ring, DEVICE_ACCOUNTS, sink.clone()));
    report("boot_live_app", cost);
    let live = required("keys: the live app derives its join and static token keys", live);

    // The signed session cookie.
    let (alice, cost) = measure(|| signed.decode(Some(SIGNED_COOKIE), now()));
    report("signed_cookie_verify", cost);
    costs.push(("signed_cookie_verify", cost));
    check(
        "signed cookie: the host's cookie verifies under key 1",
        alice.rejection.is_none() && alice.key_id == Some(KeyId(1)),
    );
    check(
        "signed cookie: it carries alice's session token",
        user_token(&alice.session).as_deref() == Some(ALICE_TOKEN),
    );
    let hour_from_now = now().saturating_add_millis(3_600_000);
    check(
        "signed cookie: it expires within its one-hour max age",
        alice.expires_at.is_some_and(|at| at > now() && at <= hour_from_now),
    );
    let tampered = signed.decode(Some(SIGNED_TAMPERED), now());
    check(
        "signed cookie: one character changed is refused as Invalid",
        kind(&tampered) == Some(VerifyErrorKind::Invalid),
    );
    check("signed cookie: a refused cookie yields an empty session", tampered.session.is_empty());
    let expired = signed.decode(Some(SIGNED_EXPIRED), now());
    check(
        "signed cookie: one past its max age is refused as Expired",
        kind(&expired) == Some(VerifyErrorKind::Expired),
    );
    let moved = encrypted.decode(Some(SIGNED_COOKIE), now());
    check(
        "signed cookie: its value read as the encrypted cookie is Invalid",
        kind(&moved) == Some(VerifyErrorKind::Invalid),
    );

    // The encrypted session cookie.
    let (secret, cost) = measure(|| encrypted.decode(Some(ENCRYPTED_COOKIE), now()));
    report("encrypted_cookie_verify", cost);
    costs.push(("encrypted_cookie_verify", cost));
    check(
        "encrypted cookie: the host's cookie decrypts and verifies",
        secret.rejection.is_none() && secret.key_id == Some(KeyId(1)),
    );
    check(
        "encrypted cookie: it carries alice's session token",
        user_token(&secret.session).as_deref() == Some(ALICE_TOKEN),
    );
    let tampered = encrypted.decode(Some(ENCRYPTED_TAMPERED), now());
    check(
        "encrypted cookie: one character changed is refused as Invalid",
        kind(&tampered) == Some(VerifyErrorKind::Invalid),
    );
    let expired = encrypted.decode(Some(ENCRYPTED_EXPIRED), now());
    check(
        "encrypted cookie: one past its max age is refused as Expired",
        kind(&expired) == Some(VerifyErrorKind::Expired),
    );
    check("encrypted cookie: no cookie at all is no session and no rejection", {
        let absent = encrypted.decode(None, now());
        absent.session.is_empty() && absent.rejection.is_none()
    });

    // A cookie written on the device, with nonces from the device's source.
    let mut rng = HashDrbg::new(DEVICE_SEED);
    let (written, cost) = measure(|| encrypted.encode(&alice.session, now(), &mut rng));
    report("encrypted_cookie_encode", cost);
    let written = required("device cookie: the device encrypts alice's session", written);
    let again =
        required("device cookie: and encrypts it a second time", encrypted.encode(&alice.session, now(), &mut rng));
    check("device cookie: two encryptions differ (fresh nonce each)", written != again);
    let read = encrypted.decode(Some(&written), now());
    check(
        "device cookie: it decrypts to the same session",
        read.rejection.is_none() && user_token(&read.session).as_deref() == Some(ALICE_TOKEN),
    );
    let other = required(
        "device cookie: a cookie of another name derives",
        SessionCookie::encrypted("_other", &ring, "hmi encrypted cookie"),
    );
    check(
        "device cookie: its value under another cookie name is Invalid",
        kind(&other.decode(Some(&written), now())) == Some(VerifyErrorKind::Invalid),
    );

    // CSRF token of the page, checked at the WebSocket handshake.
    check(
        "csrf: the page's masked token matches the cookie session",
        alice.session.csrf_token_ok(Some(PAGE_CSRF_TOKEN)),
    );
    check("csrf: a forged token does not", !alice.session.csrf_token_ok(Some("bm90IGEgY3NyZiB0b2tlbiBhdCBhbGwhISEh")));
    check("csrf: no token does not", !alice.session.csrf_token_ok(None));

    // The join: token, binding to the cookie session, live_session, on_mount hook.
    let payload = join_payload(JOIN_SESSION, JOIN_STATIC);
    let (joined, cost) = measure(|| join(&live, JOIN_TOPIC, &payload, Some(&alice.session)));
    report("join", cost);
    costs.push(("join", cost));
    let mut joined = required("join: alice's join token verifies and the on_mount hook lets her in", joined);
    check("join: the connected mount rendered alice's panel", joined.rendered == json!({"operator": "alice"}));
    check(
        "join: the socket is connected, in live_session operators",
        joined.socket.connected() && joined.socket.live_session() == "operators",
    );

    let bob = signed.decode(Some(BOB_COOKIE), now());
    check("join: bob's cookie still verifies", bob.rejection.is_none() && user_token(&bob.session).is_some());
    let bob_payload = join_payload(BOB_JOIN_SESSION, BOB_JOIN_STATIC);
    let refused = join(&live, BOB_JOIN_TOPIC, &bob_payload, Some(&bob.session));
    check(
        "join: the on_mount hook redirects bob (session deleted) to /login",
        matches!(&refused, Err(JoinError::Redirect(Redirect::Redirect { to })) if to == app::LOGIN_PATH),
    );
    let stolen = join(&live, BOB_JOIN_TOPIC, &bob_payload, Some(&alice.session));
    check(
        "join: bob's join token on alice's connection is stale (bound to bob's session)",
        matches!(stolen, Err(JoinError::Stale)),
    );
    let tampered = join(&live, JOIN_TOPIC, &join_payload(JOIN_SESSION_TAMPERED, JOIN_STATIC), Some(&alice.session));
    check(
        "join: a tampered join token is stale, audited as Invalid",
        matches!(tampered, Err(JoinError::Stale)) && sink.take().map(Rejection::kind) == Some(VerifyErrorKind::Invalid),
    );
    let old = join(&live, OLD_JOIN_TOPIC, &join_payload(OLD_JOIN_SESSION, OLD_JOIN_STATIC), Some(&alice.session));
    check(
        "join: an expired join token is stale, audited as Expired",
        matches!(old, Err(JoinError::Stale)) && sink.take() == Some(Rejection::Expired),
    );
    let no_session = join(&live, JOIN_TOPIC, &payload, None);
    check("join: a connection without a verified session is stale", matches!(no_session, Err(JoinError::Stale)));
    let across = json!({"redirect": app::SETTINGS_PATH, "session": JOIN_SESSION, "static": JOIN_STATIC, "params": {}});
    let across = join(&live, JOIN_TOPIC, &across, Some(&alice.session));
    check(
        "join: live navigation into another live_session is unauthorized",
        matches!(across, Err(JoinError::Unauthorized)),
    );

    // Event authorization: declared and allowed, declared and denied, undeclared.
    let empty = json!({});
    let (allowed, cost) = measure(|| block_on(live.handle_event(&mut joined, "acknowledge_alarm", &empty)));
    report("event_allowed", cost);
    costs.push(("event_allowed", cost));
    check(
        "event: acknowledge_alarm (allow-all) runs its handler",
        allowed.is_ok_and(|outcome| outcome.reply == json!({"ack": true})),
    );
    let (denied, cost) = measure(|| block_on(live.handle_event(&mut joined, "shutdown", &empty)));
    report("event_denied", cost);
    check("event: shutdown is denied by its policy for a non-admin", denied.err() == Some(EventRefusal::Denied));
    let unknown = block_on(live.handle_event(&mut joined, "drop_table", &empty));
    check("event: an undeclared event is refused (deny by default)", unknown.err() == Some(EventRefusal::Undeclared));
    check(
        "event: a denied event answers like an undeclared one",
        EventRefusal::Denied.reply() == EventRefusal::Undeclared.reply(),
    );

    // One verification and one join together, as a connection does them.
    let (both, cost) = measure(|| {
        let session = signed.decode(Some(SIGNED_COOKIE), now());
        join(&live, JOIN_TOPIC, &payload, Some(&session.session)).is_ok()
    });
    report("verify_and_join", cost);
    check("budget: one verification and one join use at most 16 KiB of heap", both && cost.heap <= 16 * 1024);
    let deepest = costs.iter().map(|(_, cost)| cost.stack).chain([cost.stack]).max().unwrap_or(usize::MAX);
    hprintln_stack(deepest);
    check("budget: the deepest operation uses at most 8 KiB of stack", deepest <= 8 * 1024);
}

fn hprintln_stack(deepest: usize) {
    cortex_m_semihosting::hprintln!("NUM stack_deepest bytes={}", deepest);
}
