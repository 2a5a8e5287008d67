//! `on_mount` hooks and `handle_event` hooks.

use alloc::boxed::Box;
use core::future::Future;
use core::pin::Pin;

use serde_json::Value;

use super::Params;
use super::socket::Socket;
use crate::session::Session;

/// A boxed, sendable future: what hooks, views and policies return, so they
/// can be stored as trait objects and awaited on any executor.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an `on_mount` hook decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flow {
    /// Run the next hook, then mount. The socket must not be redirected.
    Continue,
    /// Stop: skip the remaining hooks and the view's mount. The socket must
    /// have been redirected ([`Socket::redirect`] or
    /// [`Socket::push_navigate`]).
    Halt,
}

/// A hook that runs before a view mounts, on the HTTP mount and again on the
/// connected mount (Phoenix's `on_mount`).
///
/// Hooks of a `live_session` run in declaration order, each with the
/// argument it was declared with. [`Socket::connected`] tells the phase
/// apart. Misuse — halting without a redirect, continuing with one — is
/// reported by the mount pipeline as an error, never a panic.
pub trait OnMount: Send + Sync + 'static {
    /// The hook's name in audit records, e.g. `"UserAuth"`.
    fn name(&self) -> &'static str;

    /// Decides whether mounting continues. `params` are the route's path and
    /// query parameters, `session` the cookie session merged with the
    /// `live_session`'s signed extra session.
    fn on_mount<'a>(
        &'a self,
        arg: &'a str,
        params: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Flow>;
}

/// What a `handle_event` hook decided.
#[derive(Clone, PartialEq, Debug)]
pub enum EventFlow {
    /// Run the next hook, then the view's handler.
    Continue,
    /// Stop here; the client gets an empty reply.
    Halt,
    /// Stop here and reply with this payload.
    Reply(Value),
}

/// A hook that sees every allowed client event of a socket before the view
/// does (Phoenix's `attach_hook(socket, id, :handle_event, fun)`).
///
/// Hooks run only after the event's declared policy allowed it: an
/// undeclared or denied event reaches no application code at all.
pub trait EventHook: Send + Sync + 'static {
    /// Decides whether the event goes on to the next hook and the view.
    fn handle_event<'a>(
        &'a self,
        event: &'a str,
        payload: &'a Value,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, EventFlow>;
}
