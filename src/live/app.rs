//! The mount pipeline of both phases and event authorization.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Params;
use super::assigns::Assigns;
use super::hook::{EventFlow, Flow};
use super::join_token::{self, JoinClaims, JoinTokenError, JoinTokens, StaticClaims};
use super::router::{ErasedView, LiveRouter, LiveSessionDef, RequestInfo};
use super::socket::{Redirect, Socket};
use super::view::{Decision, EventReply, MountError};
use crate::audit::{AuditRecord, AuditSink, Phase};
use crate::b64;
use crate::csrf::{CsrfState, MaskedToken};
use crate::keys::KeyRing;
use crate::random::SecureRandom;
use crate::session::Session;
use crate::time::{MaxAge, Timestamp};
use crate::token::SignError;

/// The deepest nesting [`EventLimits::max_depth`] may allow: parsing and
/// dropping a JSON value recurse once per level, and this bound keeps that
/// well inside any thread's stack.
pub const MAX_EVENT_DEPTH: usize = 512;

/// Limits on client event payloads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EventLimits {
    /// Largest payload accepted, in bytes of JSON text (default 64 KiB).
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects accepted (default 32, at most
    /// [`MAX_EVENT_DEPTH`]).
    pub max_depth: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self { max_bytes: 64 * 1024, max_depth: 32 }
    }
}

/// A live application: the router, the keys of its tokens, its limits and
/// its audit sink. Build once and share.
pub struct LiveApp {
    router: LiveRouter,
    tokens: JoinTokens,
    limits: EventLimits,
    audit: Arc<dyn AuditSink>,
}

impl fmt::Debug for LiveApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveApp").field("router", &self.router).field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// What the HTTP phase was given: the request URL, the decoded cookie
/// session and what plugs assigned.
#[derive(Debug)]
pub struct HttpRequest {
    /// The request path and query (or absolute URL).
    pub url: String,
    /// The cookie session.
    pub session: Session,
    /// What plugs assigned (e.g. the current user), reused by `assign_new`.
    pub assigns: Assigns,
}

/// A rendered page: what the HTTP layer needs to answer a live route.
#[derive(Debug)]
pub struct Page {
    /// The mounted socket (its assigns, for the layout).
    pub socket: Socket,
    /// The view's rendering.
    pub rendered: Value,
    /// `data-phx-session`: the signed join token.
    pub session_token: String,
    /// `data-phx-static`: the signed static token.
    pub static_token: String,
    /// `<meta name="csrf-token">`: a freshly masked CSRF token.
    pub csrf_token: MaskedToken,
    /// The root layout of the route's `live_session`.
    pub root_layout: Option<String>,
    /// The cookie session, with a CSRF state added when it had none.
    pub session: Session,
    /// Whether `session` changed and the cookie must be written.
    pub session_changed: bool,
}

/// The outcome of the HTTP phase.
#[derive(Debug)]
pub enum HttpOutcome {
    /// The view mounted; render the page.
    Page(Box<Page>),
    /// A hook or the view redirected; answer with a redirect.
    Redirect(Redirect),
    /// The view refused to mount; answer with this status.
    Failed(MountError),
    /// The URL is not a live route.
    NotLive,
}

use alloc::boxed::Box;

/// A failure of the application or its configuration (answer 500): never a
/// decision about the client.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PipelineError {
    /// An `on_mount` hook broke its contract.
    HookMisuse {
        /// The hook, e.g. `UserAuth(require_authenticated)`.
        hook: String,
        /// What it did wrong.
        detail: &'static str,
    },
    /// A token could not be signed.
    Sign(SignError),
    /// The random source failed.
    Random,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HookMisuse { hook, detail } => write!(f, "on_mount hook {hook} {detail}"),
            Self::Sign(err) => write!(f, "signing a live token failed: {err}"),
            Self::Random => f.write_str("the random source failed"),
        }
    }
}

impl core::error::Error for PipelineError {}

/// What a client's `phx_join` for `lv:<id>` carried, and what the WebSocket
/// handshake established.
#[derive(Debug)]
pub struct JoinRequest<'a> {
    /// The topic, `lv:<id>`.
    pub topic: &'a str,
    /// The join payload: `{url | redirect, params, session, static}`.
    pub payload: &'a Value,
    /// The cookie session of the connection, or `None` when the handshake's
    /// cookie or CSRF token did not verify.
    pub connect_session: Option<&'a Session>,
}

/// A mounted, connected view.
pub struct Joined {
    view: Arc<dyn ErasedView>,
    /// The mount session (cookie session under the signed extra session).
    session: Session,
    /// The route's parameters.
    params: Params,
    /// The view's socket.
    pub socket: Socket,
    /// The view's rendering after mount.
    pub rendered: Value,
}

impl fmt::Debug for Joined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Joined").field("socket", &self.socket).finish_non_exhaustive()
    }
}

/// Why a join was refused, as the client is told.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum JoinError {
    /// The tokens or the connection's session are missing or invalid: the
    /// client reloads the page (`{"reason":"stale"}`).
    Stale,
    /// Live navigation across `live_session`s, or a route that moved: the
    /// client reloads over HTTP (`{"reason":"unauthorized"}`).
    Unauthorized,
    /// The token is of an older format: the client reloads
    /// (`{"reason":"outdated"}`).
    Outdated,
    /// A hook or the view redirected.
    Redirect(Redirect),
    /// The view refused to mount: the client reloads and the HTTP request
    /// answers with this status (`{"reason":"reload","status":N}`).
    Reload(u16),
    /// The application failed (answer as a channel error).
    Internal(PipelineError),
}

impl JoinError {
    /// The `phx_reply` error payload for this refusal.
    pub fn reply(&self) -> Value {
        match self {
            Self::Stale => json!({"reason": "stale"}),
            Self::Unauthorized => json!({"reason": "unauthorized"}),
            Self::Outdated => json!({"reason": "outdated"}),
            Self::Redirect(Redirect::Redirect { to }) => json!({"redirect": {"to": to}}),
            Self::Redirect(Redirect::LiveRedirect { to }) => json!({"live_redirect": {"to": to, "kind": "push"}}),
            Self::Reload(status) => json!({"reason": "reload", "status": status}),
            Self::Internal(_) => json!({"reason": "join crashed"}),
        }
    }
}

/// What an allowed event produced.
#[derive(Clone, PartialEq, Debug)]
pub struct EventOutcome {
    /// The reply payload for the client's push.
    pub reply: Value,
    /// A redirect the handler asked for, if any.
    pub redirect: Option<Redirect>,
    /// The view's rendering after the event.
    pub rendered: Value,
}

/// Why an event was refused. The client gets [`EventRefusal::reply`], which
/// does not say whether the event exists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventRefusal {
    /// The view does not declare this event.
    Undeclared,
    /// The event's policy denied it.
    Denied,
    /// The payload is larger than the configured limit.
    TooLarge,
    /// The payload is nested deeper than the configured limit.
    TooDeep,
    /// The payload is not JSON.
    Malformed,
}

impl EventRefusal {
    /// The error reply payload.
    pub fn reply(self) -> Value {
        match self {
            Self::Undeclared | Self::Denied => json!({"reason": "unauthorized"}),
            Self::TooLarge | Self::TooDeep | Self::Malformed => json!({"reason": "invalid payload"}),
        }
    }
}

impl fmt::Display for EventRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Undeclared => "event not declared by the view",
            Self::Denied => "event denied by its policy",
            Self::TooLarge => "event payload too large",
            Self::TooDeep => "event payload nested too deeply",
            Self::Malformed => "event payload is not JSON",
        })
    }
}

impl core::error::Error for EventRefusal {}

impl LiveApp {
    /// An application over `router`, with join tokens signed by `ring`
    /// (valid 14 days, as LiveView) and events limited by the defaults.
    pub fn new(router: LiveRouter, ring: &KeyRing, audit: Arc<dyn AuditSink>) -> Self {
        Self { router, tokens: JoinTokens::new(ring, MaxAge::FOURTEEN_DAYS), limits: EventLimits::default(), audit }
    }

    /// How long join tokens stay valid (default 14 days).
    pub fn join_max_age(mut self, ring: &KeyRing, max_age: MaxAge) -> Self {
        self.tokens = JoinTokens::new(ring, max_age);
        self
    }

    /// Limits on event payloads. A `max_depth` above [`MAX_EVENT_DEPTH`]
    /// is lowered to it.
    pub fn event_limits(mut self, limits: EventLimits) -> Self {
        self.limits = EventLimits { max_depth: limits.max_depth.min(MAX_EVENT_DEPTH), ..limits };
        self
    }

    /// The limits on event payloads.
    pub fn limits(&self) -> EventLimits {
        self.limits
    }

    /// The router.
    pub fn router(&self) -> &LiveRouter {
        &self.router
    }

    /// The audit sink.
    pub fn audit(&self) -> &dyn AuditSink {
        &*self.audit
    }

    /// The HTTP phase (disconnected mount) of a live route: runs the
    /// `live_session`'s hooks and the view's mount, then signs the tokens the
    /// page carries. The connected phase repeats every check.
    pub async fn http_mount(
        &self,
        request: HttpRequest,
        now: Timestamp,
        rng: &mut impl SecureRandom,
    ) -> Result<HttpOutcome, PipelineError> {
        let HttpRequest { url, mut session, assigns } = request;
        let Some(route) = self.router.resolve_route(&url) else {
            return Ok(HttpOutcome::NotLive);
        };
        let mut session_changed = false;
        let csrf = match session.csrf_state() {
            Some(state) => state,
            None => {
                let state = CsrfState::generate(rng).map_err(|_| PipelineError::Random)?;
                session.put_csrf_state(&state);
                session_changed = true;
                state
            }
        };
        let extra = route.session.extra_session(&RequestInfo { url: &url, session: &session, assigns: &assigns });
        let mount_session = merge(&session, &extra);
        let mut socket = Socket::new(view_id(rng)?, route.view.name(), route.session.name.clone(), Phase::Http);
        socket.assign_new_source = Some(assigns);
        if let Some(redirect) =
            self.mount(route.view, route.session, &route.params, &mount_session, &mut socket).await?
        {
            return Ok(match redirect {
                Mounted::Redirect(redirect) => HttpOutcome::Redirect(redirect),
                Mounted::Failed(error) => HttpOutcome::Failed(error),
            });
        }
        socket.assign_new_source = None;
        let rendered = route.view.render(&socket);
        let claims = JoinClaims {
            id: socket.id.clone(),
            view: String::from(route.view.name()),
            live_session: route.session.name.clone(),
            live_session_version: route.session.version,
            binding: join_token::binding(&csrf),
            extra: extra_entries(&extra),
        };
        let session_token = self.tokens.sign(&claims, now).map_err(PipelineError::Sign)?;
        let static_claims = StaticClaims {
            id: socket.id.clone(),
            assign_new: socket.assign_new_used.iter().map(|name| String::from(*name)).collect(),
        };
        let static_token = self.tokens.sign_static(&static_claims, now).map_err(PipelineError::Sign)?;
        let csrf_token = csrf.mask(rng).map_err(|_| PipelineError::Random)?;
        Ok(HttpOutcome::Page(Box::new(Page {
            socket,
            rendered,
            session_token,
            static_token,
            csrf_token,
            root_layout: route.session.root_layout.clone(),
            session,
            session_changed,
        })))
    }

    /// The connected phase: LiveView's join algorithm. Verifies the join
    /// token and its binding to the connection's session, checks live
    /// navigation against `live_session` boundaries, then runs the hooks and
    /// the view's mount again, trusting nothing the HTTP phase found.
    pub async fn join(&self, request: JoinRequest<'_>, now: Timestamp) -> Result<Joined, JoinError> {
        let topic = request.topic;
        let refuse = |error: JoinError, detail: String| {
            let reply = match &error {
                JoinError::Stale => "stale",
                JoinError::Unauthorized => "unauthorized",
                JoinError::Outdated => "outdated",
                _ => "error",
            };
            self.audit.record(AuditRecord::JoinRefused { topic: String::from(topic), reply, detail });
            error
        };
        let Some(token) = request.payload.get("session").and_then(Value::as_str) else {
            return Err(refuse(JoinError::Stale, String::from("the join carries no session token")));
        };
        let claims = match self.tokens.verify(token, now) {
            Ok(verified) => verified.data,
            Err(JoinTokenError::Outdated) => {
                return Err(refuse(JoinError::Outdated, String::from("join token of another version")));
            }
            Err(JoinTokenError::Token(rejection)) => {
                self.audit.record(AuditRecord::TokenRefused { purpose: String::from("live session token"), rejection });
                return Err(refuse(JoinError::Stale, format!("session token refused: {rejection}")));
            }
        };
        if topic.strip_prefix("lv:") != Some(claims.id.as_str()) {
            return Err(refuse(JoinError::Stale, String::from("topic does not match the token's view id")));
        }
        let _assign_new = match request.payload.get("static").and_then(Value::as_str) {
            None | Some("") => Vec::new(),
            Some(static_token) => match self.tokens.verify_static(static_token, now) {
                Ok(statics) if statics.id == claims.id => statics.assign_new,
                Ok(_) => return Err(refuse(JoinError::Stale, String::from("static token of another view"))),
                Err(rejection) => {
                    self.audit
                        .record(AuditRecord::TokenRefused { purpose: String::from("live static token"), rejection });
                    return Err(refuse(JoinError::Stale, format!("static token refused: {rejection}")));
                }
            },
        };
        let Some(connect_session) = request.connect_session else {
            return Err(refuse(JoinError::Stale, String::from("the connection has no session (cookie or CSRF)")));
        };
        let bound = connect_session
            .csrf_state()
            .is_some_and(|state| join_token::bindings_match(&join_token::binding(&state), &claims.binding));
        if !bound {
            return Err(refuse(JoinError::Stale, String::from("join token was issued to another session")));
        }
        let redirect = request.payload.get("redirect").and_then(Value::as_str);
        let url = request.payload.get("url").and_then(Value::as_str);
        let Some(target) = redirect.or(url) else {
            return Err(refuse(JoinError::Stale, String::from("the join carries neither url nor redirect")));
        };
        let Some(route) = self.router.resolve_route(target) else {
            return Err(refuse(JoinError::Unauthorized, format!("{target} is not a live route")));
        };
        if route.session.name != claims.live_session || route.session.version != claims.live_session_version {
            return Err(refuse(
                JoinError::Unauthorized,
                format!(
                    "{target} is in live_session {} v{}, the token in {} v{}",
                    route.session.name, route.session.version, claims.live_session, claims.live_session_version
                ),
            ));
        }
        if redirect.is_none() && route.view.name() != claims.view {
            return Err(refuse(
                JoinError::Unauthorized,
                format!("{target} now mounts {}, the token {}", route.view.name(), claims.view),
            ));
        }
        let extra = session_from_entries(claims.extra);
        let mount_session = merge(connect_session, &extra);
        let mut socket = Socket::new(claims.id, route.view.name(), route.session.name.clone(), Phase::Connected);
        socket.connect_params = request.payload.get("params").cloned();
        match self.mount(route.view, route.session, &route.params, &mount_session, &mut socket).await {
            Ok(None) => {}
            Ok(Some(Mounted::Redirect(redirect))) => return Err(JoinError::Redirect(redirect)),
            Ok(Some(Mounted::Failed(error))) => return Err(JoinError::Reload(error.status())),
            Err(error) => return Err(JoinError::Internal(error)),
        }
        // LiveView's connect params exist for the connected mount only; a
        // joined view does not keep them.
        socket.connect_params = None;
        let rendered = route.view.render(&socket);
        Ok(Joined { view: Arc::clone(route.view), session: mount_session, params: route.params, socket, rendered })
    }

    /// Runs a `live_session`'s `on_mount` hooks in order; the redirect of the
    /// first that halts, or `None` when all continue.
    async fn run_hooks(
        &self,
        view: &str,
        live_session: &LiveSessionDef,
        params: &Params,
        session: &Session,
        socket: &mut Socket,
    ) -> Result<Option<Redirect>, PipelineError> {
        let phase = socket.phase;
        for (hook, arg) in &live_session.hooks {
            let flow = hook.on_mount(arg, params, session, socket).await;
            let name = || format!("{}({arg})", hook.name());
            let misuse = match (flow, socket.redirect.as_ref()) {
                (Flow::Continue, None) => continue,
                (Flow::Halt, Some(redirect)) if redirect.is_local() => None,
                (Flow::Halt, Some(_)) => Some("redirected to a non-local path"),
                (Flow::Halt, None) => Some("halted without redirecting"),
                (Flow::Continue, Some(_)) => Some("redirected without halting"),
            };
            if let Some(detail) = misuse {
                self.audit.record(AuditRecord::HookMisuse { phase, hook: name(), detail });
                return Err(PipelineError::HookMisuse { hook: name(), detail });
            }
            let redirect = socket.redirect.take().unwrap_or(Redirect::Redirect { to: String::from("/") });
            self.audit.record(AuditRecord::MountHalted {
                phase,
                view: view.to_string(),
                hook: name(),
                redirect: redirect.to().to_string(),
            });
            return Ok(Some(redirect));
        }
        Ok(None)
    }

    /// Re-runs the `on_mount` hooks of a connected view in place, keeping the
    /// connection and the view's state (after a role change, or when the
    /// backbone returns from an outage). The hooks see the session and
    /// params the view joined with; what they assign replaces the old values.
    /// A hook that halts now answers with its redirect: the caller sends it
    /// to the client (or closes the connection).
    pub async fn reauthorize(&self, joined: &mut Joined) -> Result<(), JoinError> {
        let Some(live_session) = self.router.session(joined.socket.live_session()) else {
            return Err(JoinError::Unauthorized);
        };
        let mut scratch = Socket::new(
            joined.socket.id.clone(),
            joined.socket.view,
            joined.socket.live_session.clone(),
            Phase::Connected,
        );
        match self.run_hooks(joined.view.name(), live_session, &joined.params, &joined.session, &mut scratch).await {
            Ok(None) => {
                joined.socket.assigns.absorb(scratch.assigns);
                joined.rendered = joined.view.render(&joined.socket);
                Ok(())
            }
            Ok(Some(redirect)) => Err(JoinError::Redirect(redirect)),
            Err(error) => Err(JoinError::Internal(error)),
        }
    }

    /// Runs the hooks and the view's mount of one phase.
    async fn mount(
        &self,
        view: &Arc<dyn ErasedView>,
        live_session: &LiveSessionDef,
        params: &Params,
        session: &Session,
        socket: &mut Socket,
    ) -> Result<Option<Mounted>, PipelineError> {
        let phase = socket.phase;
        if let Some(redirect) = self.run_hooks(view.name(), live_session, params, session, socket).await? {
            return Ok(Some(Mounted::Redirect(redirect)));
        }
        if let Err(error) = view.mount(params, session, socket).await {
            self.audit.record(AuditRecord::MountFailed {
                phase,
                view: view.name().to_string(),
                status: error.status(),
            });
            return Ok(Some(Mounted::Failed(error)));
        }
        if let Some(redirect) = socket.redirect.take() {
            let hook = format!("{}.mount", view.name());
            if !redirect.is_local() {
                let detail = "redirected to a non-local path";
                self.audit.record(AuditRecord::HookMisuse { phase, hook: hook.clone(), detail });
                return Err(PipelineError::HookMisuse { hook, detail });
            }
            self.audit.record(AuditRecord::MountHalted {
                phase,
                view: view.name().to_string(),
                hook,
                redirect: redirect.to().to_string(),
            });
            return Ok(Some(Mounted::Redirect(redirect)));
        }
        self.audit.record(AuditRecord::MountAllowed {
            phase,
            view: view.name().to_string(),
            live_session: live_session.name.clone(),
        });
        Ok(None)
    }

    /// Checks a client event's raw JSON payload against the limits and
    /// parses it: size before parsing, depth after.
    pub fn parse_event_payload(&self, raw: &str) -> Result<Value, EventRefusal> {
        if raw.len() > self.limits.max_bytes {
            return Err(EventRefusal::TooLarge);
        }
        // Depth is measured on the text first: the parser recurses, so a
        // hostile nesting must be refused before it is parsed.
        if text_depth(raw) > self.limits.max_depth {
            return Err(EventRefusal::TooDeep);
        }
        let mut parser = serde_json::Deserializer::from_str(raw);
        // Bounded above by the scan and by `MAX_EVENT_DEPTH`.
        parser.disable_recursion_limit();
        let value = Value::deserialize(&mut parser).map_err(|_| EventRefusal::Malformed)?;
        parser.end().map_err(|_| EventRefusal::Malformed)?;
        Ok(value)
    }

    /// Authorizes and dispatches a client event: it must be declared by the
    /// view, its policy must allow it (over the server-side socket), then the
    /// socket's event hooks and the view's handler run. Anything refused
    /// reaches no application code and is audited.
    pub async fn handle_event(
        &self,
        joined: &mut Joined,
        event: &str,
        payload: &Value,
    ) -> Result<EventOutcome, EventRefusal> {
        let deny = |refusal: EventRefusal, rule: String| {
            self.audit.record(AuditRecord::EventDenied {
                view: String::from(joined.view.name()),
                event: String::from(event),
                rule,
            });
            refusal
        };
        if depth(payload) > self.limits.max_depth {
            return Err(deny(EventRefusal::TooDeep, String::from("payload depth limit")));
        }
        let Some(check) = joined.view.check(event, &joined.socket, payload) else {
            return Err(deny(EventRefusal::Undeclared, String::from("undeclared")));
        };
        if let Decision::Deny(reason) = check.await {
            return Err(deny(EventRefusal::Denied, String::from(reason)));
        }
        let hooks: Vec<_> = joined.socket.event_hooks.iter().map(|(_, hook)| Arc::clone(hook)).collect();
        let mut reply = None;
        for hook in hooks {
            match hook.handle_event(event, payload, &mut joined.socket).await {
                EventFlow::Continue => continue,
                EventFlow::Halt => reply = Some(json!({})),
                EventFlow::Reply(value) => reply = Some(value),
            }
            break;
        }
        let reply = match reply {
            Some(reply) => reply,
            None => match joined.view.handle(event, &mut joined.socket, payload) {
                Some(handled) => match handled.await {
                    EventReply::NoReply => json!({}),
                    EventReply::Reply(value) => value,
                },
                None => return Err(deny(EventRefusal::Undeclared, String::from("undeclared"))),
            },
        };
        let redirect = joined.socket.redirect.take().filter(Redirect::is_local);
        joined.rendered = joined.view.render(&joined.socket);
        Ok(EventOutcome { reply, redirect, rendered: joined.rendered.clone() })
    }
}

enum Mounted {
    Redirect(Redirect),
    Failed(MountError),
}

/// The cookie session with the signed extra session over it (signed keys win).
fn merge(cookie: &Session, extra: &Session) -> Session {
    let mut merged = cookie.clone();
    merged.extend_from(extra);
    merged
}

fn extra_entries(extra: &Session) -> alloc::collections::BTreeMap<String, Vec<u8>> {
    extra.entries().clone()
}

fn session_from_entries(entries: alloc::collections::BTreeMap<String, Vec<u8>>) -> Session {
    Session::from_entries(entries)
}

/// `phx-` and 16 characters of base64url randomness.
fn view_id(rng: &mut impl SecureRandom) -> Result<String, PipelineError> {
    let mut bytes = [0u8; 12];
    rng.fill(&mut bytes).map_err(|_| PipelineError::Random)?;
    let mut id = String::from("phx-");
    b64::encode_into(&bytes, &mut id);
    Ok(id)
}

/// The deepest nesting of `[` and `{` in JSON text, outside strings. An
/// over-estimate for invalid JSON, which the parser refuses anyway.
pub(crate) fn text_depth(raw: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in raw.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Nesting depth of arrays and objects, without recursion (the payload is
/// the client's).
fn depth(value: &Value) -> usize {
    let mut max = 0;
    let mut stack = alloc::vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        let children: alloc::boxed::Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => alloc::boxed::Box::new(items.iter()),
            Value::Object(map) => alloc::boxed::Box::new(map.values()),
            _ => continue,
        };
        max = max.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    max
}
