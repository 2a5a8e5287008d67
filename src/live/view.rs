//! Live views, their declared events and the policies that guard them.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use serde_json::Value;

use super::Params;
use super::assigns::AssignKey;
use super::hook::BoxFuture;
use super::socket::Socket;
use crate::session::Session;

/// Why a view refused to mount.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MountError {
    /// The resource does not exist — or is not the user's to see, which
    /// must look the same (404).
    NotFound,
    /// The user may not see this page (403).
    Forbidden,
}

impl MountError {
    /// The HTTP status this failure maps to.
    pub fn status(self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::Forbidden => 403,
        }
    }
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotFound => "not found",
            Self::Forbidden => "forbidden",
        })
    }
}

impl core::error::Error for MountError {}

/// What an event handler sends back to the client.
#[derive(Clone, PartialEq, Debug)]
pub enum EventReply {
    /// Nothing beyond an empty `ok` reply.
    NoReply,
    /// This payload.
    Reply(Value),
}

/// A live view: mounts, renders, and handles the events it declares.
pub trait LiveView: Send + Sync + Sized + 'static {
    /// The view's name, carried in join tokens and audit records. Must be
    /// unique within a router.
    const NAME: &'static str;

    /// Mounts the view after every `on_mount` hook continued. Runs on both
    /// phases. Resource authorization belongs here: fail with
    /// [`MountError::NotFound`] for a resource the user may not see. As in
    /// LiveView, a view with nothing to load or check need not write one:
    /// the default mounts.
    fn mount<'a>(
        &'a self,
        params: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        let _ = (params, session, socket);
        alloc::boxed::Box::pin(core::future::ready(Ok(())))
    }

    /// What the client renders. Called after mount and after every event.
    fn render(&self, socket: &Socket) -> Value;

    /// The events this view accepts, each with its policy and handler.
    /// Anything else the client sends is refused before view code runs.
    fn events() -> Events<Self> {
        Events::new()
    }
}

/// A policy's answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    /// The event may proceed.
    Allow,
    /// The event is refused; the reason goes to the audit record only.
    Deny(&'static str),
}

/// Decides whether a client event may reach the view. Reads the user from
/// the server-side socket, never from the payload.
pub trait Policy<V>: Send + Sync + 'static {
    /// Allows or denies the event.
    fn check<'a>(&'a self, view: &'a V, socket: &'a Socket, payload: &'a Value) -> BoxFuture<'a, Decision>;
}

/// Synchronous policies are plain functions or closures.
impl<V, F> Policy<V> for F
where
    V: Sync,
    F: Fn(&V, &Socket, &Value) -> Decision + Send + Sync + 'static,
{
    fn check<'a>(&'a self, view: &'a V, socket: &'a Socket, payload: &'a Value) -> BoxFuture<'a, Decision> {
        let decision = self(view, socket, payload);
        Box::pin(core::future::ready(decision))
    }
}

/// Allows every event: for events anyone who can see the page may send
/// (form validation, UI toggles). Spelled out so it is a visible choice.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl<V: Sync> Policy<V> for AllowAll {
    fn check<'a>(&'a self, _: &'a V, _: &'a Socket, _: &'a Value) -> BoxFuture<'a, Decision> {
        Box::pin(core::future::ready(Decision::Allow))
    }
}

/// Allows the event when the assign `K` holds a value for which `pred` is
/// true (e.g. a current user who is present, or an admin).
pub struct RequireAssign<K: AssignKey> {
    pred: fn(&K::Value) -> bool,
    reason: &'static str,
    key: PhantomData<fn() -> K>,
}

impl<K: AssignKey> RequireAssign<K> {
    /// Allows when `K` is assigned and `pred` holds; denies with `reason`
    /// otherwise.
    pub fn new(pred: fn(&K::Value) -> bool, reason: &'static str) -> Self {
        Self { pred, reason, key: PhantomData }
    }
}

impl<K: AssignKey> fmt::Debug for RequireAssign<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireAssign").field("key", &K::NAME).field("reason", &self.reason).finish()
    }
}

impl<V: Sync, K: AssignKey> Policy<V> for RequireAssign<K> {
    fn check<'a>(&'a self, _: &'a V, socket: &'a Socket, _: &'a Value) -> BoxFuture<'a, Decision> {
        let allowed = socket.get::<K>().is_some_and(|value| (self.pred)(value));
        Box::pin(core::future::ready(if allowed { Decision::Allow } else { Decision::Deny(self.reason) }))
    }
}

/// An event handler: a function of the view, the socket and the payload.
pub type Handler<V> = for<'a> fn(&'a V, &'a mut Socket, &'a Value) -> BoxFuture<'a, EventReply>;

/// The events a view accepts. Every handler is registered together with its
/// policy, so a handler without a policy cannot be written.
pub struct Events<V> {
    pub(crate) entries: Vec<EventEntry<V>>,
}

pub(crate) struct EventEntry<V> {
    pub(crate) name: String,
    policy: Box<dyn Policy<V>>,
    handler: Handler<V>,
}

impl<V: LiveView> Events<V> {
    /// No events: the view accepts none.
    pub fn new() -> Self {
        Self { entries: Vec::new() }
    }

    /// Accepts `event`, guarded by `policy`, handled by `handler`.
    /// Duplicate and reserved (`lv:`-prefixed, empty) names are refused when
    /// the router is built.
    pub fn on(mut self, event: &str, policy: impl Policy<V>, handler: Handler<V>) -> Self {
        self.entries.push(EventEntry { name: String::from(event), policy: Box::new(policy), handler });
        self
    }

    pub(crate) fn find(&self, event: &str) -> Option<(&dyn Policy<V>, Handler<V>)> {
        self.entries.iter().find(|entry| entry.name == event).map(|entry| (&*entry.policy, entry.handler))
    }
}

impl<V: LiveView> Default for Events<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for Events<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|entry| &entry.name)).finish()
    }
}
