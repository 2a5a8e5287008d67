//! The live socket: one mounted view's server-side state.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;

use serde_json::Value;

use super::assigns::{AssignKey, Assigns};
use super::hook::EventHook;
use crate::audit::Phase;

/// Where a hook or a view sends the client instead of mounting.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Redirect {
    /// A full page load of `to` (Phoenix's `redirect/2`).
    Redirect {
        /// A local path.
        to: String,
    },
    /// A live navigation to `to` (Phoenix's `push_navigate/2`): a new mount
    /// over the same WebSocket when `to` is in the same `live_session`, a
    /// page load otherwise.
    LiveRedirect {
        /// A local path.
        to: String,
    },
}

impl Redirect {
    /// The target path.
    pub fn to(&self) -> &str {
        match self {
            Self::Redirect { to } | Self::LiveRedirect { to } => to,
        }
    }

    /// Whether the target is a local path (see [`is_local_path`]).
    pub(crate) fn is_local(&self) -> bool {
        is_local_path(self.to())
    }
}

/// Whether `to` is a local path (`/x`, never `//host` or `/\host`, which
/// browsers treat as another origin, and no control characters).
pub(crate) fn is_local_path(to: &str) -> bool {
    to.starts_with('/') && !to.starts_with("//") && !to.starts_with("/\\") && !to.chars().any(|c| c.is_control())
}

/// One mounted view: its assigns, which phase it is in, and a pending
/// redirect.
pub struct Socket {
    pub(crate) id: String,
    pub(crate) view: &'static str,
    pub(crate) live_session: String,
    pub(crate) phase: Phase,
    pub(crate) assigns: Assigns,
    pub(crate) redirect: Option<Redirect>,
    pub(crate) connect_params: Option<Value>,
    /// What plugs loaded, readable by `assign_new` during the HTTP mount of
    /// a root view only; dropped once mount completes.
    pub(crate) assign_new_source: Option<Assigns>,
    pub(crate) assign_new_used: Vec<&'static str>,
    pub(crate) event_hooks: Vec<(String, Arc<dyn EventHook>)>,
}

impl Socket {
    pub(crate) fn new(id: String, view: &'static str, live_session: String, phase: Phase) -> Self {
        Self {
            id,
            view,
            live_session,
            phase,
            assigns: Assigns::new(),
            redirect: None,
            connect_params: None,
            assign_new_source: None,
            assign_new_used: Vec::new(),
            event_hooks: Vec::new(),
        }
    }

    /// The view's id (`phx-...`), which its topic is made from.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The view's name.
    pub fn view(&self) -> &'static str {
        self.view
    }

    /// The `live_session` the view mounted in.
    pub fn live_session(&self) -> &str {
        &self.live_session
    }

    /// Whether this is the connected (WebSocket) mount rather than the HTTP
    /// one.
    pub fn connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The assigns.
    pub fn assigns(&self) -> &Assigns {
        &self.assigns
    }

    /// The value of `K`, if assigned.
    pub fn get<K: AssignKey>(&self) -> Option<&K::Value> {
        self.assigns.get::<K>()
    }

    /// Assigns `value` to `K`.
    pub fn assign<K: AssignKey>(&mut self, value: K::Value) {
        self.assigns.insert::<K>(value);
    }

    /// Assigns `K` unless it already is: during the HTTP mount the value a
    /// plug put in the request's assigns is reused; otherwise — always on
    /// the connected mount — `compute` runs, so the connected phase never
    /// trusts what the HTTP phase found.
    pub async fn assign_new<K, F, Fut>(&mut self, compute: F)
    where
        K: AssignKey,
        F: FnOnce() -> Fut,
        Fut: Future<Output = K::Value>,
    {
        if self.assigns.contains::<K>() {
            return;
        }
        if self.phase == Phase::Http && !self.assign_new_used.contains(&K::NAME) {
            self.assign_new_used.push(K::NAME);
        }
        let reused = self.assign_new_source.as_ref().and_then(|source| source.get::<K>()).cloned();
        let value = match reused {
            Some(value) => value,
            None => compute().await,
        };
        self.assigns.insert::<K>(value);
    }

    /// The connect params the client sent with its join: during the
    /// connected mount only (its hooks and the view's `mount`), as LiveView's
    /// `get_connect_params`; `None` during the HTTP mount and once mounted.
    pub fn connect_params(&self) -> Option<&Value> {
        self.connect_params.as_ref()
    }

    /// Asks for a full page load of `to` (a local path). A hook that halts
    /// must have redirected.
    pub fn redirect(&mut self, to: &str) {
        self.redirect = Some(Redirect::Redirect { to: String::from(to) });
    }

    /// Asks for a live navigation to `to` (a local path).
    pub fn push_navigate(&mut self, to: &str) {
        self.redirect = Some(Redirect::LiveRedirect { to: String::from(to) });
    }

    /// The pending redirect, if any.
    pub fn redirected(&self) -> Option<&Redirect> {
        self.redirect.as_ref()
    }

    /// Runs `hook` on every client event of this socket, before the view's
    /// handler and after the event's policy allowed it (Phoenix's
    /// `attach_hook(socket, id, :handle_event, fun)`). Fails if `id` is taken.
    pub fn attach_event_hook(&mut self, id: &str, hook: Arc<dyn EventHook>) -> Result<(), DuplicateHook> {
        if self.event_hooks.iter().any(|(existing, _)| existing == id) {
            return Err(DuplicateHook);
        }
        self.event_hooks.push((String::from(id), hook));
        Ok(())
    }

    /// Removes the event hook `id`; returns whether it was attached.
    pub fn detach_event_hook(&mut self, id: &str) -> bool {
        let before = self.event_hooks.len();
        self.event_hooks.retain(|(existing, _)| existing != id);
        self.event_hooks.len() != before
    }
}

impl core::fmt::Debug for Socket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("view", &self.view)
            .field("live_session", &self.live_session)
            .field("phase", &self.phase)
            .field("assigns", &self.assigns)
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

/// An event hook with this id is already attached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DuplicateHook;

impl core::fmt::Display for DuplicateHook {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an event hook with this id is already attached")
    }
}

impl core::error::Error for DuplicateHook {}
