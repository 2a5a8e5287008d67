//! The live security core: `live_session` boundaries, `on_mount` hooks,
//! typed assigns with `assign_new`, the mount pipeline of both phases, join
//! tokens and event authorization.
//!
//! Runtime-agnostic: hooks, views and policies return boxed
//! `core::future::Future`s, time and randomness are parameters, nothing
//! spawns. The WebSocket and HTTP adapters drive [`LiveApp`].
//!
//! - [`LiveApp::http_mount`] is the HTTP phase: resolve the route, run the
//!   `live_session`'s `on_mount` hooks and the view's mount, sign the join
//!   token (bound to the cookie session) and the static token.
//! - [`LiveApp::join`] is the connected phase, LiveView's join algorithm:
//!   verify the tokens and their binding, keep live navigation inside one
//!   `live_session`, run every hook and the mount again.
//! - [`LiveApp::handle_event`] refuses undeclared events and those their
//!   policy denies before any application code runs.
//! - [`Guard`] is a boundary's rule (signed in, admin, ...) written once:
//!   the HTTP side calls [`Guard::check`], the `live_session` runs the same
//!   guard as its `on_mount` hook.
//! - [`LiveConnection`] is one client connection's Channels V2 protocol state
//!   ([`wire`] frames), without I/O: the WebSocket adapter feeds it frames.

use alloc::collections::BTreeMap;
use alloc::string::String;

mod app;
mod assigns;
mod connection;
mod guard;
mod hook;
mod join_token;
mod router;
mod socket;
mod view;
pub mod wire;

pub use app::{
    EventLimits, EventOutcome, EventRefusal, HttpOutcome, HttpRequest, JoinError, JoinRequest, Joined, LiveApp,
    MAX_EVENT_DEPTH, Page, PipelineError,
};
pub use assigns::{AssignKey, Assigns};
pub use connection::{DEFAULT_MAX_CHANNELS, LiveConnection};
pub use guard::{CurrentUser, Guard, UserSource};
pub use hook::{BoxFuture, EventFlow, EventHook, Flow, OnMount};
pub use join_token::JOIN_TOKEN_VERSION;
pub use router::{
    DEFAULT_SESSION, LiveRouter, LiveSessionBuilder, RequestInfo, RouterBuilder, RouterError, RouterErrorKind,
};
#[cfg(feature = "http")]
pub(crate) use socket::is_local_path;
pub use socket::{DuplicateHook, Redirect, Socket};
pub use view::{AllowAll, Decision, EventReply, Events, Handler, LiveView, MountError, Policy, RequireAssign};

/// Route and query parameters: path parameters win over query parameters of
/// the same name.
pub type Params = BTreeMap<String, String>;
