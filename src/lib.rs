//! # liveguard
//!
//! The security model of Phoenix LiveView for Rust services that hold live
//! WebSocket connections, on one node or on many.
//!
//! A live connection starts as an HTTP request and then becomes a stateful
//! WebSocket. Both phases verify the session on their own. This crate gives
//! an application the pieces for that:
//!
//! - [`keys`]: a secret key base, per-purpose keys derived from it, and a
//!   [`KeyRing`](keys::KeyRing) for rotation and retirement;
//! - [`token`]: signed and encrypted tokens carrying any serde type, with a
//!   signing time and a maximum age;
//! - [`session`]: the session cookie, signed or encrypted, bound to its name;
//! - [`csrf`]: Phoenix-compatible masked CSRF tokens;
//! - [`origin`]: the `Origin` policy for WebSocket upgrades;
//! - [`socket_id`]: the `live_socket_id` every live connection registers
//!   under, and its mapping onto a NATS subject token;
//! - [`live`]: `live_session` boundaries, `on_mount` hooks, typed assigns
//!   with `assign_new`, the mount pipeline of both phases, join tokens bound
//!   to the cookie session, and deny-by-default event authorization;
//! - [`audit`]: a structured record of every security decision;
//! - [`cluster`]: MAC'd control messages, the node registry, and
//!   acknowledged disconnects across the nodes of a cluster;
//! - `ws` (feature `ws`): the WebSocket endpoint speaking Phoenix Channels
//!   V2, so the official phoenix.js client connects, joins and is
//!   disconnected from any node;
//! - `web` (feature `http`): the HTTP phase over `http` types: session
//!   cookie headers, the plug side of a boundary's [`live::Guard`], live
//!   pages carrying their join tokens and the CSRF meta tag;
//! - `axum` (feature `axum`): live pages, the WebSocket upgrade and guard
//!   middleware on one axum router.
//!
//! ## Design
//!
//! The core is `#![no_std]` + `alloc`. It never reads a clock and never draws
//! randomness on its own: every operation that depends on time takes a
//! [`Timestamp`], every operation that needs fresh bytes takes a
//! [`SecureRandom`]. It builds for `thumbv7em-none-eabihf`, and the firmware
//! in `embedded/` runs session verification and the join decision on a
//! Cortex-M4F under QEMU in CI. Runtime adapters live behind features.
//!
//! ## Security
//!
//! **What is authenticated.** A token or session cookie is accepted only when
//! its HMAC-SHA256 tag verifies. The tag covers the format version, the key id
//! and the payload; the key is derived for one purpose (a salt such as
//! `"user auth"`), and session cookies additionally bind the cookie name into
//! the tag, so a value cannot be replayed under another purpose or another
//! cookie. The tag is compared in constant time and is checked before the
//! payload is decoded: nothing an attacker wrote is parsed until it is known
//! to come from a key holder. Only the fixed-format header (version and key
//! id) is read first, to choose the key. Encrypted tokens use
//! XChaCha20-Poly1305 with a random 24-byte nonce and the same header and
//! purpose as associated data.
//!
//! **What is not.** A signed token is readable by whoever holds it: put
//! secrets only in encrypted tokens. A valid token is a bearer credential
//! until it expires; revocation comes from deleting the server-side session
//! and disconnecting its `live_socket_id`. The `Origin` header is a browser
//! signal that non-browser clients can forge; it protects against cross-site
//! WebSocket hijacking, and CSRF tokens protect the session either way.
//!
//! **The WebSocket.** An upgrade is checked before it is accepted: path,
//! protocol version and `Origin` (refused with 403). The cookie session and
//! the `_csrf_token` parameter are verified on every connect, never carried
//! over from the HTTP phase; when either fails the connection has no session
//! and every join answers `stale`. Each join re-runs the `on_mount` hooks,
//! after the connection registered under its `live_socket_id`, so a
//! disconnect racing a mount wins. A connection ends when its session
//! cookie's max age lapses.
//!
//! **What callers learn.** Verification answers only `Invalid`, `Expired` or
//! `Missing` ([`token::VerifyErrorKind`]); the detailed reason
//! ([`token::Rejection`]) is for logs and audit records, never for the peer.
//! Secrets never appear in `Debug` output and are zeroized on drop.
//!
//! **Clock.** Tokens carry the wall-clock time they were signed at (Unix
//! milliseconds) and their maximum age. A token is expired once `now` is
//! strictly past `signed_at + max_age`; a token signed more than the configured
//! clock skew in the future is invalid. Nodes need loosely synchronised
//! clocks (NTP), nothing more.
//!
//! **Keys.** One secret key base of at least 64 bytes per key id. Keys for
//! each purpose are derived once with PBKDF2-HMAC-SHA256 (1000 iterations, 32
//! bytes, as Phoenix) when a codec is built, never on a verify path. New
//! tokens use the key ring's primary key; older keys still verify; a retired
//! key id is refused, and the key id of every accepted token is reported so
//! connections verified under a retired key can be found and closed.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `std` | yes | [`Timestamp::now`], [`OsRandom`], `Cookie`/`Set-Cookie` headers ([`session::SessionCookie::set_cookie_header`]), the `tracing` audit sink ([`audit::TracingSink`]), the node registry and in-process backbone of [`cluster`] |
//! | `nats` | no | the NATS backbone (`cluster::nats`, async-nats on tokio) |
//! | `http` | no | the HTTP phase over `http` types (`web`): session cookie headers, guards, live pages |
//! | `axum` | no | live routes, the WebSocket endpoint and boundary guards on one axum router (`axum`) |
//! | `ws` | no | the WebSocket endpoint speaking Phoenix Channels V2 (`ws`, tokio-tungstenite) |
//!
//! Without default features the crate is `no_std` + `alloc`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

extern crate alloc;
// Only adapters may use std; the core modules import from `core`/`alloc`
// explicitly, so a `no_std` build cannot be broken by accident.
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod audit;
#[cfg(feature = "axum")]
pub mod axum;
mod b64;
pub mod cluster;
pub mod csrf;
pub mod keys;
pub mod live;
pub mod origin;
pub mod random;
pub mod session;
pub mod socket_id;
pub mod time;
pub mod token;
#[cfg(feature = "http")]
pub mod web;
#[cfg(feature = "ws")]
pub mod ws;

#[cfg(feature = "std")]
pub use random::OsRandom;
pub use random::SecureRandom;
pub use time::{MaxAge, Timestamp};
