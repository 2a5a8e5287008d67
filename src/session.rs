//! The session cookie: a map of string keys to serde values, signed or
//! encrypted, bound to the cookie's name.
//!
//! The cookie value is a token of this crate's format (see [`crate::token`])
//! whose payload is the session map. The tag (signed) or associated data
//! (encrypted) covers `"cookie:" + name`, so a value cut from one cookie is
//! refused under another name, and the key is derived from the cookie's salt.
//! Unlike Plug's cookie store, the value carries its signing time and maximum
//! age, so an old cookie stops working even if a browser keeps it.
//!
//! Reading never fails: a cookie that is absent, forged, expired or garbled
//! yields an empty [`Session`], and [`DecodedSession::rejection`] says why for
//! the audit log. Read-only rotating options (older salts, an older key ring,
//! or the signed form while moving to encryption) are tried after the
//! primary; writing always uses the primary.
//!
//! Name the cookie with the `__Host-` prefix (and keep `Secure`, `Path=/`,
//! no `Domain`) where you can: browsers then refuse cookies of that name set
//! by sibling subdomains, so nobody can plant a session of their own.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroize;

use crate::csrf::{self, CsrfState};
use crate::keys::{KeyId, KeyRing};
use crate::random::SecureRandom;
use crate::socket_id::LiveSocketId;
use crate::time::{MaxAge, Timestamp};
use crate::token::{self, Codec, Mode, Rejection, SignError};

/// The session key holding the application's server-side session token
/// (as `mix phx.gen.auth`).
pub const USER_TOKEN: &str = "user_token";
/// The session key holding the [`LiveSocketId`] live connections register under.
pub const LIVE_SOCKET_ID: &str = "live_socket_id";
/// The session key holding the CSRF state (same as [`csrf::SESSION_KEY`]).
pub const CSRF_TOKEN: &str = csrf::SESSION_KEY;

/// The largest `name=value` a browser is guaranteed to store.
pub const MAX_COOKIE_LEN: usize = 4096;

/// A session: string keys, each holding one postcard-encoded serde value.
///
/// `Debug` lists the keys, never the values (they hold credentials such as
/// the user token), and the values are zeroized on drop.
///
/// Clones share their entries until one of them changes (copy on write): a
/// live connection and each of its views hold the same session at the cost
/// of one, and the last holder zeroizes the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Session {
    entries: Arc<BTreeMap<String, Vec<u8>>>,
}

impl Session {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value under `key`, or `None` if there is none. A value that does
    /// not decode as `T` is an error, not `None`, so a type confusion cannot
    /// pass for a logged-out session.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ValueError> {
        let Some(bytes) = self.entries.get(key) else {
            return Ok(None);
        };
        match postcard::take_from_bytes::<T>(bytes) {
            Ok((value, [])) => Ok(Some(value)),
            _ => Err(ValueError::Decode),
        }
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), ValueError> {
        let bytes = postcard::to_allocvec(value).map_err(|_| ValueError::Encode)?;
        if let Some(mut old) = Arc::make_mut(&mut self.entries).insert(String::from(key), bytes) {
            old.zeroize();
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        if !self.entries.contains_key(key) {
            return false;
        }
        match Arc::make_mut(&mut self.entries).remove(key) {
            Some(mut old) => {
                old.zeroize();
                true
            }
            None => false,
        }
    }

    /// Removes every key (log out).
    pub fn clear(&mut self) {
        match Arc::get_mut(&mut self.entries) {
            Some(entries) => {
                for value in entries.values_mut() {
                    value.zeroize();
                }
                entries.clear();
            }
            // Shared: the other holders still use the values; the last one
            // zeroizes them.
            None => self.entries = Arc::default(),
        }
    }

    /// Whether `key` holds a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Whether the session holds no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Copies every entry of `other` over this session (its keys win).
    pub fn extend_from(&mut self, other: &Session) {
        for (key, value) in other.entries.iter() {
            if let Some(mut old) = Arc::make_mut(&mut self.entries).insert(key.clone(), value.clone()) {
                old.zeroize();
            }
        }
    }

    pub(crate) fn entries(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.entries
    }

    pub(crate) fn from_entries(entries: BTreeMap<String, Vec<u8>>) -> Self {
        Self { entries: Arc::new(entries) }
    }

    /// The session's [`LiveSocketId`], if it holds a valid one.
    pub fn live_socket_id(&self) -> Option<LiveSocketId> {
        self.get(LIVE_SOCKET_ID).ok().flatten()
    }

    /// Stores the session's [`LiveSocketId`].
    pub fn put_live_socket_id(&mut self, id: &LiveSocketId) {
        // Strings always encode.
        let _ = self.put(LIVE_SOCKET_ID, id.as_str());
    }

    /// The session's CSRF state, if it holds a valid one.
    pub fn csrf_state(&self) -> Option<CsrfState> {
        let text: String = self.get(CSRF_TOKEN).ok().flatten()?;
        CsrfState::from_session(&text)
    }

    /// Whether `token` (a request's masked `_csrf_token`) verifies against
    /// this session's CSRF state; `false` when either is missing.
    pub fn csrf_token_ok(&self, token: Option<&str>) -> bool {
        match (self.csrf_state(), token) {
            (Some(state), Some(token)) => state.verify(token),
            _ => false,
        }
    }

    /// Stores the session's CSRF state.
    pub fn put_csrf_state(&mut self, state: &CsrfState) {
        let _ = self.put(CSRF_TOKEN, state.as_str());
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.clear();
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("keys", &self.entries.keys().collect::<Vec<_>>()).finish()
    }
}

/// A session value could not be encoded or decoded as the requested type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueError {
    /// The value could not be serialized.
    Encode,
    /// The stored bytes are not a value of the requested type.
    Decode,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encode => "the session value could not be serialized",
            Self::Decode => "the session value is not of the requested type",
        })
    }
}

impl core::error::Error for ValueError {}

/// The `SameSite` attribute of the cookie.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SameSite {
    /// Sent only on same-site requests.
    Strict,
    /// Sent on same-site requests and top-level navigations (the default).
    #[default]
    Lax,
    /// Sent on every request; forces `Secure`, as browsers require.
    None,
}

/// What a read of the session cookie found.
#[derive(Debug)]
pub struct DecodedSession {
    /// The session: empty when the cookie was absent or refused.
    pub session: Session,
    /// The key that verified the cookie, when one did.
    pub key_id: Option<KeyId>,
    /// When the verified cookie stops being valid (its max age), or `None`
    /// when it never does or nothing verified. A live connection opened with
    /// this session closes at that instant so the client re-authenticates.
    pub expires_at: Option<Timestamp>,
    /// Why a cookie that was present was refused (for the audit log).
    pub rejection: Option<Rejection>,
    /// The cookie was read with a rotating option or an older key of the
    /// ring: write it again so it moves to the primary keys before the old
    /// ones are retired.
    pub needs_rewrite: bool,
}

impl DecodedSession {
    fn empty(rejection: Option<Rejection>) -> Self {
        Self { session: Session::new(), key_id: None, expires_at: None, rejection, needs_rewrite: false }
    }
}

/// Reads and writes one session cookie.
///
/// Build once at start-up (it derives keys) and share.
#[derive(Clone, Debug)]
pub struct SessionCookie {
    name: String,
    primary: Codec,
    rotating: Vec<Codec>,
    max_age: MaxAge,
    clock_skew_ms: u64,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
}

impl SessionCookie {
    /// A signed (readable by the client, not forgeable) session cookie named
    /// `name`, with keys derived from `signing_salt`.
    pub fn signed(name: &str, ring: &KeyRing, signing_salt: &str) -> Result<Self, CookieConfigError> {
        Self::build(name, ring, signing_salt, Mode::Signed)
    }

    /// An encrypted session cookie named `name`, with keys derived from
    /// `encryption_salt`.
    pub fn encrypted(name: &str, ring: &KeyRing, encryption_salt: &str) -> Result<Self, CookieConfigError> {
        Self::build(name, ring, encryption_salt, Mode::Encrypted)
    }

    fn build(name: &str, ring: &KeyRing, salt: &str, mode: Mode) -> Result<Self, CookieConfigError> {
        if name.is_empty() || !name.bytes().all(is_cookie_name_byte) {
            return Err(CookieConfigError::InvalidName);
        }
        Ok(Self {
            name: String::from(name),
            primary: codec(name, ring, salt, mode),
            rotating: Vec::new(),
            max_age: MaxAge::FOURTEEN_DAYS,
            clock_skew_ms: 30_000,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: String::from("/"),
            domain: None,
        })
    }

    /// Also reads cookies signed with `ring` and `signing_salt` (read-only).
    pub fn rotating_signed(mut self, ring: &KeyRing, signing_salt: &str) -> Self {
        self.rotating.push(codec(&self.name, ring, signing_salt, Mode::Signed));
        self
    }

    /// Also reads cookies encrypted with `ring` and `encryption_salt`
    /// (read-only).
    pub fn rotating_encrypted(mut self, ring: &KeyRing, encryption_salt: &str) -> Self {
        self.rotating.push(codec(&self.name, ring, encryption_salt, Mode::Encrypted));
        self
    }

    /// How long a written cookie stays valid: stored in the value and sent as
    /// `Max-Age` (default 14 days). `Unlimited` writes a browser-session
    /// cookie whose value never expires by age.
    pub fn max_age(mut self, max_age: MaxAge) -> Self {
        self.max_age = max_age;
        self
    }

    /// The clock difference tolerated between nodes, in milliseconds
    /// (default 30 000).
    pub fn clock_skew_ms(mut self, skew: u64) -> Self {
        self.clock_skew_ms = skew;
        self
    }

    /// Whether the cookie is sent only over HTTPS (default `true`; browsers
    /// treat `http://localhost` as secure).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Whether scripts are denied the cookie (default `true`).
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default `Lax`).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Path` attribute (default `/`).
    pub fn path(mut self, path: &str) -> Self {
        self.path = String::from(path);
        self
    }

    /// The `Domain` attribute (default none: host-only).
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = Some(String::from(domain));
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Encodes `session` as a cookie value, signed or encrypted with the
    /// primary keys at `now`. `rng` supplies the nonce of an encrypted cookie.
    ///
    /// Fails if `name=value` would exceed [`MAX_COOKIE_LEN`].
    pub fn encode(
        &self,
        session: &Session,
        now: Timestamp,
        rng: &mut impl SecureRandom,
    ) -> Result<String, EncodeError> {
        let payload =
            token::encode_payload(&*session.entries, now, self.max_age).map_err(|_| EncodeError::Serialize)?;
        let max_len = MAX_COOKIE_LEN.saturating_sub(self.name.len() + 1);
        self.primary.seal(&payload, max_len, Some(rng)).map_err(|err| match err {
            SignError::TooLarge => EncodeError::TooLarge,
            SignError::Random => EncodeError::Random,
            _ => EncodeError::Serialize,
        })
    }

    /// Decodes a cookie value (`None` when the request had no such cookie).
    /// Never fails: a refused cookie yields an empty session and a rejection.
    pub fn decode(&self, value: Option<&str>, now: Timestamp) -> DecodedSession {
        let Some(value) = value else {
            return DecodedSession::empty(None);
        };
        let mut first_rejection = None;
        for (index, codec) in core::iter::once(&self.primary).chain(&self.rotating).enumerate() {
            match self.decode_with(codec, value, now) {
                Ok((key_id, expires_at, session)) => {
                    let needs_rewrite = index > 0 || self.primary.primary_id() != Some(key_id);
                    return DecodedSession {
                        session,
                        key_id: Some(key_id),
                        expires_at,
                        rejection: None,
                        needs_rewrite,
                    };
                }
                Err(rejection) => {
                    first_rejection.get_or_insert(rejection);
                }
            }
        }
        DecodedSession::empty(first_rejection)
    }

    fn decode_with(
        &self,
        codec: &Codec,
        value: &str,
        now: Timestamp,
    ) -> Result<(KeyId, Option<Timestamp>, Session), Rejection> {
        codec.open(Some(value), MAX_COOKIE_LEN, |key_id, payload| {
            let verified =
                token::decode_payload::<BTreeMap<String, Vec<u8>>>(payload, key_id, now, None, self.clock_skew_ms)?;
            Ok((key_id, verified.expires_at, Session::from_entries(verified.data)))
        })
    }
}

fn codec(name: &str, ring: &KeyRing, salt: &str, mode: Mode) -> Codec {
    Codec::new(ring.derive(salt.as_bytes()), &[b"cookie:", name.as_bytes()], mode)
}

/// RFC 6265 `cookie-name`: an RFC 7230 token.
fn is_cookie_name_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte)
}

/// The session cookie could not be configured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CookieConfigError {
    /// The name is empty or has characters a cookie name cannot have.
    InvalidName,
}

impl fmt::Display for CookieConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the cookie name is empty or not an RFC 6265 token")
    }
}

impl core::error::Error for CookieConfigError {}

/// The session could not be written as a cookie.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EncodeError {
    /// `name=value` would exceed [`MAX_COOKIE_LEN`] bytes.
    TooLarge,
    /// The session could not be serialized.
    Serialize,
    /// The random source failed to produce a nonce.
    Random,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "the session cookie would exceed 4096 bytes",
            Self::Serialize => "the session could not be serialized",
            Self::Random => "the random source failed",
        })
    }
}

impl core::error::Error for EncodeError {}

#[cfg(feature = "std")]
mod header;
