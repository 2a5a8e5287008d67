//! The live router: routes grouped in `live_session`s, checked when built.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;

use super::Params;
use super::assigns::Assigns;
use super::hook::{BoxFuture, OnMount};
use super::socket::Socket;
use super::view::{Decision, EventReply, Events, LiveView, MountError};
use crate::session::Session;

/// The name of the implicit `live_session` of routes declared outside any.
pub const DEFAULT_SESSION: &str = "default";

/// What the extra-session function of a `live_session` sees of the request.
#[derive(Debug)]
pub struct RequestInfo<'a> {
    /// The request URL or path.
    pub url: &'a str,
    /// The cookie session.
    pub session: &'a Session,
    /// What plugs assigned.
    pub assigns: &'a Assigns,
}

type ExtraSessionFn = dyn Fn(&RequestInfo<'_>) -> Session + Send + Sync;

#[derive(Clone, Default)]
pub(crate) enum ExtraSession {
    #[default]
    None,
    Fixed(Session),
    Computed(Arc<ExtraSessionFn>),
}

/// One `live_session`: a security boundary of routes sharing `on_mount`
/// hooks. Live navigation stays on the socket only inside one.
pub(crate) struct LiveSessionDef {
    pub(crate) name: String,
    pub(crate) hooks: Vec<(Arc<dyn OnMount>, String)>,
    pub(crate) extra: ExtraSession,
    pub(crate) root_layout: Option<String>,
    pub(crate) public: bool,
    pub(crate) version: u32,
}

impl LiveSessionDef {
    pub(crate) fn extra_session(&self, request: &RequestInfo<'_>) -> Session {
        match &self.extra {
            ExtraSession::None => Session::new(),
            ExtraSession::Fixed(session) => session.clone(),
            ExtraSession::Computed(f) => f(request),
        }
    }
}

/// The object-safe face of a registered view and its events.
pub(crate) trait ErasedView: Send + Sync {
    fn name(&self) -> &'static str;
    fn mount<'a>(
        &'a self,
        params: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Result<(), MountError>>;
    fn render(&self, socket: &Socket) -> Value;
    fn event_names(&self) -> Vec<&str>;
    fn check<'a>(&'a self, event: &str, socket: &'a Socket, payload: &'a Value) -> Option<BoxFuture<'a, Decision>>;
    fn handle<'a>(
        &'a self,
        event: &str,
        socket: &'a mut Socket,
        payload: &'a Value,
    ) -> Option<BoxFuture<'a, EventReply>>;
}

struct Registered<V: LiveView> {
    view: V,
    events: Events<V>,
}

impl<V: LiveView> ErasedView for Registered<V> {
    fn name(&self) -> &'static str {
        V::NAME
    }

    fn mount<'a>(
        &'a self,
        params: &'a Params,
        session: &'a Session,
        socket: &'a mut Socket,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        self.view.mount(params, session, socket)
    }

    fn render(&self, socket: &Socket) -> Value {
        self.view.render(socket)
    }

    fn event_names(&self) -> Vec<&str> {
        self.events.entries.iter().map(|entry| entry.name.as_str()).collect()
    }

    fn check<'a>(&'a self, event: &str, socket: &'a Socket, payload: &'a Value) -> Option<BoxFuture<'a, Decision>> {
        let (policy, _) = self.events.find(event)?;
        Some(policy.check(&self.view, socket, payload))
    }

    fn handle<'a>(
        &'a self,
        event: &str,
        socket: &'a mut Socket,
        payload: &'a Value,
    ) -> Option<BoxFuture<'a, EventReply>> {
        let (_, handler) = self.events.find(event)?;
        Some(handler(&self.view, socket, payload))
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

struct Route {
    pattern: String,
    segments: Vec<Segment>,
    view: Arc<dyn ErasedView>,
    session: usize,
}

/// A route that matched a URL.
pub(crate) struct Resolved<'r> {
    pub(crate) view: &'r Arc<dyn ErasedView>,
    pub(crate) params: Params,
    pub(crate) session: &'r LiveSessionDef,
}

/// Live routes grouped in `live_session`s. Built with
/// [`LiveRouter::builder`]; immutable once built.
pub struct LiveRouter {
    sessions: Vec<LiveSessionDef>,
    routes: Vec<Route>,
}

impl LiveRouter {
    /// Starts a router.
    pub fn builder() -> RouterBuilder {
        RouterBuilder { sessions: Vec::new(), default: LiveSessionBuilder::new(DEFAULT_SESSION), error: None }
    }

    /// The view name, `live_session` name and parameters `url` (a path, or an
    /// absolute URL whose path is used) resolves to, or `None` when it is not
    /// a live route.
    pub fn resolve(&self, url: &str) -> Option<(&'static str, &str, Params)> {
        self.resolve_route(url).map(|r| (r.view.name(), r.session.name.as_str(), r.params))
    }

    pub(crate) fn resolve_route(&self, url: &str) -> Option<Resolved<'_>> {
        let (path, query) = split_url(url)?;
        let segments: Vec<Cow<'_, str>> = path_segments(&path)
            .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8_lossy())
            .collect();
        let route = self.routes.iter().find(|route| {
            route.segments.len() == segments.len()
                && route.segments.iter().zip(&segments).all(|(pattern, actual)| match pattern {
                    Segment::Literal(literal) => literal == actual,
                    Segment::Param(_) => !actual.is_empty(),
                })
        })?;
        let mut params = Params::new();
        if let Some(query) = query {
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                params.insert(key.into_owned(), value.into_owned());
            }
        }
        for (pattern, actual) in route.segments.iter().zip(segments) {
            if let Segment::Param(name) = pattern {
                params.insert(name.clone(), actual.into_owned());
            }
        }
        let session = self.sessions.get(route.session)?;
        Some(Resolved { view: &route.view, params, session })
    }
}

impl fmt::Debug for LiveRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for route in &self.routes {
            let session = self.sessions.get(route.session).map_or("", |s| s.name.as_str());
            list.entry(&(route.pattern.as_str(), route.view.name(), session));
        }
        list.finish()
    }
}

impl LiveRouter {
    pub(crate) fn session(&self, name: &str) -> Option<&LiveSessionDef> {
        self.sessions.iter().find(|session| session.name == name)
    }
}

/// The path (without a trailing slash) and query of a path or absolute URL.
fn split_url(url: &str) -> Option<(String, Option<String>)> {
    if url.starts_with('/') && !url.starts_with("//") {
        let without_fragment = url.split('#').next().unwrap_or(url);
        let (path, query) = match without_fragment.split_once('?') {
            Some((path, query)) => (path, Some(String::from(query))),
            None => (without_fragment, None),
        };
        return Some((String::from(path), query));
    }
    let parsed = url::Url::parse(url).ok()?;
    if parsed.cannot_be_a_base() {
        return None;
    }
    Some((String::from(parsed.path()), parsed.query().map(String::from)))
}

fn path_segments(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(|segment| !segment.is_empty())
}

/// Builds a [`LiveRouter`]. Every mistake is reported by
/// [`RouterBuilder::build`] as a [`RouterError`], never a panic.
///
/// `live_session`s are declared with a closure over a
/// [`LiveSessionBuilder`], which has no way to open another one: nesting
/// cannot be written.
pub struct RouterBuilder {
    sessions: Vec<LiveSessionBuilder>,
    default: LiveSessionBuilder,
    error: Option<RouterError>,
}

impl fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterBuilder").finish_non_exhaustive()
    }
}

impl RouterBuilder {
    /// Declares the `live_session` `name` and its routes.
    pub fn live_session(mut self, name: &str, declare: impl FnOnce(LiveSessionBuilder) -> LiveSessionBuilder) -> Self {
        let session = declare(LiveSessionBuilder::new(name));
        if name == DEFAULT_SESSION || self.sessions.iter().any(|s| s.def.name == name) {
            self.error.get_or_insert(RouterError::new(RouterErrorKind::DuplicateSession, name));
        }
        self.sessions.push(session);
        self
    }

    /// A live route outside any declared `live_session`: it belongs to the
    /// implicit `"default"` session, configured with
    /// [`RouterBuilder::default_session`].
    pub fn live<V: LiveView>(mut self, path: &str, view: V) -> Self {
        self.default = self.default.live(path, view);
        self
    }

    /// Configures the implicit `"default"` session (its hooks, or `public`).
    pub fn default_session(mut self, configure: impl FnOnce(LiveSessionBuilder) -> LiveSessionBuilder) -> Self {
        let routes = core::mem::take(&mut self.default.routes);
        self.default = configure(LiveSessionBuilder::new(DEFAULT_SESSION));
        self.default.routes.splice(0..0, routes);
        self
    }

    /// Checks everything and builds the router.
    pub fn build(self) -> Result<LiveRouter, RouterError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut sessions = Vec::new();
        let mut routes: Vec<Route> = Vec::new();
        let builders = core::iter::once(self.default).chain(self.sessions);
        for builder in builders {
            if let Some(error) = builder.error {
                return Err(error);
            }
            let index = sessions.len();
            if !builder.routes.is_empty() && builder.def.hooks.is_empty() && !builder.def.public {
                return Err(RouterError::new(RouterErrorKind::MissingOnMount, &builder.def.name));
            }
            for (pattern, view) in builder.routes {
                let segments = parse_pattern(&pattern)?;
                if routes.iter().any(|route| same_shape(&route.segments, &segments)) {
                    return Err(RouterError::new(RouterErrorKind::DuplicateRoute, &pattern));
                }
                check_events(view.as_ref())?;
                routes.push(Route { pattern, segments, view, session: index });
            }
            sessions.push(builder.def);
        }
        Ok(LiveRouter { sessions, routes })
    }
}

/// Declares one `live_session`: its hooks, extra session, root layout and
/// routes.
pub struct LiveSessionBuilder {
    def: LiveSessionDef,
    routes: Vec<(String, Arc<dyn ErasedView>)>,
    error: Option<RouterError>,
}

impl fmt::Debug for LiveSessionBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSessionBuilder").field("name", &self.def.name).finish_non_exhaustive()
    }
}

impl LiveSessionBuilder {
    fn new(name: &str) -> Self {
        Self {
            def: LiveSessionDef {
                name: String::from(name),
                hooks: Vec::new(),
                extra: ExtraSession::None,
                root_layout: None,
                public: false,
                version: 0,
            },
            routes: Vec::new(),
            error: None,
        }
    }

    /// Runs `hook` with `arg` on every mount in this session, after the hooks
    /// declared before it.
    pub fn on_mount(self, hook: impl OnMount, arg: &str) -> Self {
        self.on_mount_shared(Arc::new(hook), arg)
    }

    /// As [`LiveSessionBuilder::on_mount`], for a hook shared between
    /// sessions.
    pub fn on_mount_shared(mut self, hook: Arc<dyn OnMount>, arg: &str) -> Self {
        self.def.hooks.push((hook, String::from(arg)));
        self
    }

    /// A fixed extra session, signed into the join token and merged over the
    /// cookie session on mount.
    pub fn session(mut self, extra: Session) -> Self {
        self.def.extra = ExtraSession::Fixed(extra);
        self
    }

    /// An extra session computed from the request at HTTP render time.
    pub fn session_fn(mut self, f: impl Fn(&RequestInfo<'_>) -> Session + Send + Sync + 'static) -> Self {
        self.def.extra = ExtraSession::Computed(Arc::new(f));
        self
    }

    /// The root layout name pages of this session render in.
    pub fn root_layout(mut self, name: &str) -> Self {
        self.def.root_layout = Some(String::from(name));
        self
    }

    /// Marks the session as public: its routes may have no `on_mount` hook.
    /// Without this, a session with routes and no hook is a build error.
    pub fn public(mut self) -> Self {
        self.def.public = true;
        self
    }

    /// The session's version, carried in join tokens. Bump it when the
    /// session's rules change: live navigation and rejoins with tokens of
    /// another version answer `unauthorized`, so clients reload over HTTP.
    pub fn version(mut self, version: u32) -> Self {
        self.def.version = version;
        self
    }

    /// A live route: `path` segments are literals or `:name` parameters.
    pub fn live<V: LiveView>(mut self, path: &str, view: V) -> Self {
        let view: Arc<dyn ErasedView> = Arc::new(Registered { view, events: V::events() });
        self.routes.push((String::from(path), view));
        self
    }
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, RouterError> {
    let invalid = || RouterError::new(RouterErrorKind::InvalidPattern, pattern);
    if !pattern.starts_with('/') || pattern.contains(['?', '#']) {
        return Err(invalid());
    }
    let mut segments = Vec::new();
    for raw in path_segments(pattern) {
        let segment = match raw.strip_prefix(':') {
            Some("") => return Err(invalid()),
            Some(name) => {
                if segments.iter().any(|s| matches!(s, Segment::Param(n) if n == name)) {
                    return Err(RouterError::new(RouterErrorKind::DuplicateParam, pattern));
                }
                Segment::Param(String::from(name))
            }
            None => Segment::Literal(String::from(raw)),
        };
        segments.push(segment);
    }
    if pattern.len() > 1 && pattern.trim_matches('/').split('/').any(str::is_empty) {
        return Err(invalid());
    }
    Ok(segments)
}

/// Two patterns match the same URLs when their literals agree and their
/// parameters sit in the same places.
fn same_shape(a: &[Segment], b: &[Segment]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (Segment::Literal(x), Segment::Literal(y)) => x == y,
            (Segment::Param(_), Segment::Param(_)) => true,
            _ => false,
        })
}

fn check_events(view: &dyn ErasedView) -> Result<(), RouterError> {
    let names = view.event_names();
    for (index, name) in names.iter().enumerate() {
        if name.is_empty() || name.starts_with("lv:") {
            return Err(RouterError::new(RouterErrorKind::ReservedEvent, name));
        }
        if names.get(..index).is_some_and(|earlier| earlier.contains(name)) {
            return Err(RouterError::new(RouterErrorKind::DuplicateEvent, name));
        }
    }
    Ok(())
}

/// What is wrong with a router.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum RouterErrorKind {
    /// Two `live_session`s share a name (or one is named `"default"`).
    DuplicateSession,
    /// Two routes match the same URLs.
    DuplicateRoute,
    /// A `live_session` with routes has no `on_mount` hook and is not marked
    /// public.
    MissingOnMount,
    /// A route pattern is not `/literal/:param/...`.
    InvalidPattern,
    /// A route pattern names one parameter twice.
    DuplicateParam,
    /// A view declares one event twice.
    DuplicateEvent,
    /// A view declares an empty or `lv:`-prefixed event.
    ReservedEvent,
}

/// A router that failed its checks: what is wrong, and where.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RouterError {
    kind: RouterErrorKind,
    subject: String,
}

impl RouterError {
    fn new(kind: RouterErrorKind, subject: &str) -> Self {
        Self { kind, subject: String::from(subject) }
    }

    /// What is wrong.
    pub fn kind(&self) -> RouterErrorKind {
        self.kind
    }

    /// The session, route or event concerned.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            RouterErrorKind::DuplicateSession => "duplicate live_session",
            RouterErrorKind::DuplicateRoute => "duplicate route",
            RouterErrorKind::MissingOnMount => "live_session has routes but no on_mount hook and is not public",
            RouterErrorKind::InvalidPattern => "invalid route pattern",
            RouterErrorKind::DuplicateParam => "route pattern repeats a parameter",
            RouterErrorKind::DuplicateEvent => "event declared twice",
            RouterErrorKind::ReservedEvent => "reserved event name",
        };
        write!(f, "{what}: {:?}", self.subject)
    }
}

impl core::error::Error for RouterError {}
