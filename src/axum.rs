//! axum integration (feature `axum`): the live routes and the WebSocket
//! endpoint on one [`Router`] and one port, the plug side of
//! each boundary as a middleware, and extractors for the verified session
//! and the current user.
//!
//! ```text
//! let live = Live::new(pages, endpoint);
//! let app = Router::new()
//!     .route("/login", get(login_form).post(log_in))
//!     .merge(live.router(layout))              // GET of live routes + the WebSocket
//!     .layer(from_fn_with_state(live.guarded(user_guard), guard::<Accounts>));
//! ```

use std::boxed::Box;
use std::string::{String, ToString};
use std::sync::Arc;
use std::vec::Vec;

use ::axum::Router;
use ::axum::body::Body;
use ::axum::extract::{FromRef, FromRequestParts, Request, State};
use ::axum::http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use ::axum::http::{HeaderValue, Method, StatusCode, request::Parts};
use ::axum::middleware::Next;
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::get;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::OsRandom;
use crate::live::{Assigns, CurrentUser, Guard, UserSource};
use crate::session::DecodedSession;
use crate::time::Timestamp;
use crate::web::{LivePages, PageHtml};
use crate::ws::Endpoint;

/// Renders a live page around its tokens (see [`PageHtml`]).
pub type Layout = fn(&PageHtml<'_>) -> String;

/// The HTTP phase and the WebSocket endpoint of one application, as axum
/// state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Live {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pages: LivePages,
    endpoint: Endpoint,
    shutdown: watch::Sender<bool>,
}

impl Live {
    /// Live pages and their WebSocket endpoint (which must serve the same
    /// application and cookie).
    pub fn new(pages: LivePages, endpoint: Endpoint) -> Self {
        let (shutdown, _) = watch::channel(false);
        Self { inner: Arc::new(Inner { pages, endpoint, shutdown }) }
    }

    /// The HTTP phase.
    pub fn pages(&self) -> &LivePages {
        &self.inner.pages
    }

    /// The WebSocket endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The routes: the WebSocket endpoint at its path, and every other GET
    /// answered by the live router through `layout` (404 for a path that is
    /// not live). Merge it into the application's router, which must not
    /// set a fallback of its own.
    pub fn router(&self, layout: Layout) -> Router {
        let path = self.inner.endpoint.path().to_string();
        Router::new()
            .route(&path, get(upgrade))
            .fallback(get(move |state: State<Live>, request: Request| live_page(state, request, layout)))
            .with_state(self.clone())
    }

    /// The state of [`guard`] for one boundary.
    pub fn guarded<S: UserSource>(&self, guard: Arc<Guard<S>>) -> Guarded<S> {
        Guarded { live: self.clone(), guard }
    }

    /// Closes every WebSocket of this application with 1012 (service
    /// restart), e.g. before `axum::serve`'s graceful shutdown.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

/// A boundary's [`Guard`] with the [`Live`] it reads sessions with: the
/// state of the [`guard`] middleware.
#[derive(Debug)]
pub struct Guarded<S: UserSource> {
    live: Live,
    guard: Arc<Guard<S>>,
}

impl<S: UserSource> Clone for Guarded<S> {
    fn clone(&self) -> Self {
        Self { live: self.live.clone(), guard: Arc::clone(&self.guard) }
    }
}

/// The current user a [`guard`] found, as a handler argument
/// (`Current(user): Current<User>`): `None` when anonymous and allowed.
#[derive(Clone, Debug)]
pub struct Current<U>(pub Option<U>);

impl<U, S> FromRequestParts<S> for Current<U>
where
    U: Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    /// No [`guard`] for this user type ran on the route: a wiring mistake,
    /// answered `500`.
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// What the guards of a request assigned, passed on to the live mount so
/// its hooks' `assign_new` reuses them during the HTTP mount.
#[derive(Clone, Default)]
struct Seeds(Vec<Seed>);

/// Puts one guard's finding into the live mount's assigns.
type Seed = Arc<dyn Fn(&mut Assigns) + Send + Sync>;

/// The plug side of a boundary, as a middleware
/// (`axum::middleware::from_fn_with_state(live.guarded(guard), guard::<S>)`):
/// runs the guard on the request's session and answers its redirect, or
/// passes the request on with the current user in its extensions
/// ([`Current`]) and in the live mount's assigns.
pub async fn guard<S: UserSource>(State(guarded): State<Guarded<S>>, mut request: Request, next: Next) -> Response {
    let decoded = guarded.live.pages().read_session(request.headers(), Timestamp::now());
    let user = match guarded.guard.check(&decoded.session).await {
        Ok(user) => user,
        Err(redirect) => return into_axum(crate::web::redirect_response(redirect.to())),
    };
    request.extensions_mut().insert(Current(user.clone()));
    let mut seeds = request.extensions_mut().remove::<Seeds>().unwrap_or_default();
    seeds.0.push(Arc::new(move |assigns: &mut Assigns| {
        assigns.insert::<CurrentUser<S::User>>(user.clone());
    }));
    request.extensions_mut().insert(seeds);
    next.run(request).await
}

/// The request's session cookie, verified (an empty session when absent
/// or refused).
#[derive(Debug)]
pub struct VerifiedSession(pub DecodedSession);

impl<S> FromRequestParts<S> for VerifiedSession
where
    Live: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let live = Live::from_ref(state);
        Ok(Self(live.pages().read_session(&parts.headers, Timestamp::now())))
    }
}

async fn live_page(State(live): State<Live>, request: Request, layout: Layout) -> Response {
    let Some(path) = request.uri().path_and_query().map(|p| p.as_str().to_string()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let decoded = live.pages().read_session(request.headers(), Timestamp::now());
    let mut assigns = Assigns::new();
    if let Some(seeds) = request.extensions().get::<Seeds>() {
        for seed in &seeds.0 {
            seed(&mut assigns);
        }
    }
    let response = live.pages().render(&path, decoded, assigns, Timestamp::now(), &mut OsRandom, layout).await;
    into_axum(response)
}

fn into_axum(response: ::axum::http::Response<String>) -> Response {
    response.map(Body::from)
}

/// The WebSocket upgrade through the endpoint's checks, then the endpoint's
/// connection driver on the upgraded stream.
async fn upgrade(State(live): State<Live>, mut request: Request) -> Response {
    let accepted = match live.endpoint().check_upgrade(&request, Timestamp::now()) {
        Ok(accepted) => accepted,
        Err(refusal) => return refusal.status.into_response(),
    };
    let headers = request.headers();
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    let is_upgrade = request.method() == Method::GET
        && has(CONNECTION, "upgrade")
        && has(UPGRADE, "websocket")
        && headers.get("sec-websocket-version").is_some_and(|v| v == "13");
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY).filter(|_| is_upgrade) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let phoenix = accepted.phoenix_subprotocol;
    let on_upgrade = hyper::upgrade::on(&mut request);
    let endpoint = live.endpoint().clone();
    let shutdown = live.inner.shutdown.subscribe();
    tokio::spawn(async move {
        // The client went away before the upgrade completed: nothing to run.
        let Ok(upgraded) = on_upgrade.await else { return };
        let config = endpoint.websocket_config();
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        Box::pin(endpoint.run(ws, accepted, shutdown)).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if phoenix {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("phoenix"));
    }
    response
}
