//! Boundary rules written once and enforced by both phases: the same
//! [`Guard`] answers an HTTP request (the plug side of a boundary, e.g.
//! phx.gen.auth's `require_authenticated_user`) and runs as the matching
//! `on_mount` hook of the `live_session`.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use super::Params;
use super::assigns::AssignKey;
use super::hook::{BoxFuture, Flow, OnMount};
use super::socket::{Redirect, Socket};
use crate::session::Session;

/// Loads the user a session belongs to (e.g. by its `user_token`, from the
/// server-side token store). `None` means anonymous: no token, or a token
/// that was deleted.
pub trait UserSource: Send + Sync + 'static {
    /// The application's user.
    type User: Clone + Send + Sync + 'static;

    /// The session's user, read fresh from the store.
    fn user<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Option<Self::User>>;
}

/// The assign a [`Guard`] stores the current user under (`current_user`),
/// `None` when anonymous.
#[derive(Debug)]
pub struct CurrentUser<U>(PhantomData<fn() -> U>);

impl<U: Clone + Send + Sync + 'static> AssignKey for CurrentUser<U> {
    type Value = Option<U>;
    const NAME: &'static str = "current_user";
}

/// One requirement beyond being signed in, and where a user who fails it
/// is sent.
struct Requirement<U> {
    holds: fn(&U) -> bool,
    otherwise: String,
}

/// A boundary's rule: load the current user, then require (or not) that
/// there is one and that it passes each requirement, in order.
///
/// The HTTP side calls [`Guard::check`]; the live side adds the guard to a
/// `live_session` as an `on_mount` hook, where it loads the user with
/// `assign_new` (reusing what the HTTP side found during the HTTP mount,
/// reloading it on the connected mount) and applies [`Guard::decide`], the
/// same function the HTTP side applies.
pub struct Guard<S: UserSource> {
    name: &'static str,
    source: Arc<S>,
    anonymous_to: Option<String>,
    requirements: Vec<Requirement<S::User>>,
}

impl<S: UserSource> fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("name", &self.name)
            .field("anonymous_to", &self.anonymous_to)
            .field("requirements", &self.requirements.len())
            .finish()
    }
}

impl<S: UserSource> Guard<S> {
    /// Loads the current user and lets anonymous visitors through
    /// (phx.gen.auth's `fetch_current_user` / `mount_current_user`).
    pub fn load_user(name: &'static str, source: Arc<S>) -> Self {
        Self { name, source, anonymous_to: None, requirements: Vec::new() }
    }

    /// Requires a signed-in user; anonymous visitors are sent to `login`
    /// (`require_authenticated_user` / `require_authenticated`).
    pub fn signed_in(name: &'static str, source: Arc<S>, login: &str) -> Self {
        Self { name, source, anonymous_to: Some(String::from(login)), requirements: Vec::new() }
    }

    /// Also requires `holds(user)`; a user who fails it is sent to
    /// `otherwise` (e.g. a confirmed account, or an admin). Anonymous
    /// visitors fail every requirement.
    pub fn require(mut self, holds: fn(&S::User) -> bool, otherwise: &str) -> Self {
        self.requirements.push(Requirement { holds, otherwise: String::from(otherwise) });
        self
    }

    /// The rule itself: `Ok` to go on, or the local path to send the client
    /// to. Both phases call exactly this.
    pub fn decide(&self, user: Option<&S::User>) -> Result<(), &str> {
        let Some(user) = user else {
            return match (&self.anonymous_to, self.requirements.first()) {
                (Some(login), _) => Err(login),
                (None, Some(first)) => Err(&first.otherwise),
                (None, None) => Ok(()),
            };
        };
        match self.requirements.iter().find(|r| !(r.holds)(user)) {
            Some(failed) => Err(&failed.otherwise),
            None => Ok(()),
        }
    }

    /// The HTTP side: loads the session's user and decides. `Ok` carries
    /// the user (for the request's assigns), `Err` the redirect to answer
    /// with.
    pub async fn check(&self, session: &Session) -> Result<Option<S::User>, Redirect> {
        let user = self.source.user(session).await;
        match self.decide(user.as_ref()) {
            Ok(()) => Ok(user),
            Err(to) => Err(Redirect::Redirect { to: String::from(to) }),
        }
    }

    /// The user source.
    pub fn source(&self) -> &Arc<S> {
        &self.source
    }
}

impl<S: UserSource> OnMount for Guard<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn on_mount<'a>(
        &'a self,
        _: &'a str,
        _: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Flow> {
        alloc::boxed::Box::pin(async move {
            socket.assign_new::<CurrentUser<S::User>, _, _>(|| self.source.user(session)).await;
            let user = socket.get::<CurrentUser<S::User>>().cloned().flatten();
            match self.decide(user.as_ref()) {
                Ok(()) => Flow::Continue,
                Err(to) => {
                    let to = String::from(to);
                    socket.redirect(&to);
                    Flow::Halt
                }
            }
        })
    }
}
