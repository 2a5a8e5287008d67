//! The application both sides agree on: keys, cookie configuration, the
//! router with its `on_mount` hook and event policies, and a deterministic
//! byte generator.
//!
//! `build.rs` compiles this file on the host to make the test vectors and the
//! firmware compiles it for the device to check them, so a vector can only
//! verify on the device if both sides ran the same configuration.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;

use liveguard::audit::AuditSink;
use liveguard::keys::{KeyError, KeyId, KeyRing, SecretKeyBase};
use liveguard::live::{
    AllowAll, AssignKey, BoxFuture, Decision, EventReply, Events, Flow, LiveApp, LiveRouter, LiveView, OnMount, Params,
    RouterError, Socket,
};
use liveguard::random::RandomError;
use liveguard::session::{CookieConfigError, Session, SessionCookie, USER_TOKEN};
use liveguard::{MaxAge, SecureRandom};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The wall-clock instant the vectors are made for (Unix milliseconds): the
/// device's clock starts here, as a real-time clock set at provisioning
/// would. Fixed rather than the build time, so every build makes the same
/// vectors and a slow build cannot expire them.
pub const PROVISIONED_UNIX_MS: u64 = 1_800_000_000_000;

/// A test secret key base: public, for this firmware only.
pub const SECRET_KEY_BASE: &[u8; 64] = b"liveguard-embedded test secret key base, never use in production";

/// How long session cookies stay valid.
pub const MAX_AGE: MaxAge = MaxAge::Seconds(3600);
/// How long before [`PROVISIONED_UNIX_MS`] the expired cookies were made:
/// twice [`MAX_AGE`], so they are past it whatever the device's uptime.
#[allow(dead_code)] // only the host makes vectors
pub const EXPIRED_BY_MS: u64 = 2 * 3600 * 1000;
/// How long before [`PROVISIONED_UNIX_MS`] the expired join token was made:
/// a day past LiveView's 14-day lifetime for join tokens, which the app
/// keeps (`LiveApp::join_max_age` would derive the token keys a second time).
#[allow(dead_code)] // only the host makes vectors
pub const JOIN_EXPIRED_BY_MS: u64 = 15 * 86_400 * 1000;

/// The signed session cookie.
pub const SIGNED_NAME: &str = "_hmi_session";
/// The encrypted session cookie.
pub const ENCRYPTED_NAME: &str = "_hmi_secret";
const SIGNING_SALT: &str = "hmi signed cookie";
const ENCRYPTION_SALT: &str = "hmi encrypted cookie";

/// The authenticated panel and the admin-only settings page.
pub const PANEL_URL: &str = "http://hmi.local/panel";
/// A route in another `live_session`.
pub const SETTINGS_PATH: &str = "/settings";
/// Where the hook sends a session without a known user.
pub const LOGIN_PATH: &str = "/login";

/// The key ring of the secret key base.
pub fn ring() -> Result<KeyRing, KeyError> {
    Ok(KeyRing::new(KeyId(1), SecretKeyBase::new(SECRET_KEY_BASE.to_vec())?))
}

/// The signed session cookie (derives its key: build once).
pub fn signed_cookie(ring: &KeyRing) -> Result<SessionCookie, CookieConfigError> {
    Ok(SessionCookie::signed(SIGNED_NAME, ring, SIGNING_SALT)?.max_age(MAX_AGE))
}

/// The encrypted session cookie (derives its key: build once).
pub fn encrypted_cookie(ring: &KeyRing) -> Result<SessionCookie, CookieConfigError> {
    Ok(SessionCookie::encrypted(ENCRYPTED_NAME, ring, ENCRYPTION_SALT)?.max_age(MAX_AGE))
}

/// An operator of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// Shown on the panel.
    pub name: &'static str,
    /// May change settings and shut the machine down.
    pub admin: bool,
}

/// The server-side session store: session token to operator. The host's
/// store knows both operators; the device's has dropped `bob`, as after a
/// logout elsewhere, so his page renders but his join must not mount.
pub type Accounts = &'static [(&'static str, Operator)];

/// `alice`'s server-side session token (also a user on both sides).
pub const ALICE_TOKEN: &str = "alice-session-token";
/// `bob`'s server-side session token (deleted on the device).
#[allow(dead_code)] // only the host's store has it
pub const BOB_TOKEN: &str = "bob-session-token";

struct CurrentOperator;

impl AssignKey for CurrentOperator {
    type Value = Option<Operator>;
    const NAME: &'static str = "current_operator";
}

/// `require_authenticated`: loads the operator of the session token and
/// sends sessions without one to the login page.
struct OperatorAuth(Accounts);

impl OnMount for OperatorAuth {
    fn name(&self) -> &'static str {
        "OperatorAuth"
    }

    fn on_mount<'a>(
        &'a self,
        _: &'a str,
        _: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Flow> {
        Box::pin(async move {
            let token: Option<String> = session.get(USER_TOKEN).ok().flatten();
            let accounts = self.0;
            socket
                .assign_new::<CurrentOperator, _, _>(|| async move {
                    let token = token?;
                    accounts.iter().find(|(known, _)| *known == token).map(|(_, operator)| operator.clone())
                })
                .await;
            if socket.get::<CurrentOperator>().is_some_and(Option::is_some) {
                return Flow::Continue;
            }
            socket.redirect(LOGIN_PATH);
            Flow::Halt
        })
    }
}

struct Panel;

impl LiveView for Panel {
    const NAME: &'static str = "PanelLive";

    fn render(&self, socket: &Socket) -> Value {
        let name = socket.get::<CurrentOperator>().cloned().flatten().map(|operator| operator.name);
        json!({"operator": name})
    }

    fn events() -> Events<Self> {
        Events::new()
            .on("acknowledge_alarm", AllowAll, |_, _, _| Box::pin(async { EventReply::Reply(json!({"ack": true})) }))
            .on("shutdown", admin_only, |_, _, _| Box::pin(async { EventReply::Reply(json!({"stopping": true})) }))
    }
}

/// Judged from the server-side socket, never from the payload.
fn admin_only(_: &Panel, socket: &Socket, _: &Value) -> Decision {
    match socket.get::<CurrentOperator>().cloned().flatten() {
        Some(operator) if operator.admin => Decision::Allow,
        _ => Decision::Deny("not an admin"),
    }
}

struct Settings;

impl LiveView for Settings {
    const NAME: &'static str = "SettingsLive";

    fn render(&self, _: &Socket) -> Value {
        json!({"settings": true})
    }
}

/// The live application over `accounts`: two keys (join and static tokens),
/// join tokens valid 14 days.
pub fn app(ring: &KeyRing, accounts: Accounts, audit: Arc<dyn AuditSink>) -> Result<LiveApp, RouterError> {
    let router = LiveRouter::builder()
        .live_session("operators", |s| {
            s.on_mount(OperatorAuth(accounts), "require_authenticated").live("/panel", Panel)
        })
        .live_session("admin", |s| {
            s.on_mount(OperatorAuth(accounts), "require_authenticated").live(SETTINGS_PATH, Settings)
        })
        .build()?;
    Ok(LiveApp::new(router, ring, audit))
}

/// Bytes from SHA-256 over a seed and a counter: deterministic, so the host
/// makes the same vectors on every build and a device run is reproducible.
///
/// Not a cryptographic random source (anyone who knows the seed knows every
/// output). On the device it stands in for the hardware TRNG a real board
/// has, behind the same `SecureRandom` trait the core asks for.
pub struct HashDrbg {
    seed: [u8; 32],
    counter: u64,
}

impl HashDrbg {
    /// A generator over `seed`.
    pub fn new(seed: &[u8]) -> Self {
        Self { seed: Sha256::digest(seed).into(), counter: 0 }
    }
}

impl SecureRandom for HashDrbg {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(32) {
            let block = Sha256::new().chain_update(self.seed).chain_update(self.counter.to_le_bytes()).finalize();
            self.counter = self.counter.checked_add(1).ok_or(RandomError)?;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}
