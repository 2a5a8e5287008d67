//! The HTTP phase over `http` types (feature `http`), for any server: read
//! and write the session cookie, guard a request with a boundary's
//! [`Guard`], and answer a live route with its disconnected mount, a page
//! carrying `data-phx-session`, `data-phx-static` and the CSRF meta tag,
//! or a redirect.
//!
//! Every check here is repeated by the connected phase: the WebSocket reads
//! the cookie again and every join re-runs the hooks.

use std::format;
use std::string::String;
use std::sync::Arc;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::audit::AuditRecord;
use crate::live::is_local_path;
use crate::live::{Assigns, Guard, HttpOutcome, HttpRequest, LiveApp, Page, UserSource};
use crate::random::SecureRandom;
use crate::session::{DecodedSession, EncodeError, Session, SessionCookie};
use crate::time::Timestamp;

/// The HTTP phase of one application: its live routes and its session
/// cookie. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LivePages {
    app: Arc<LiveApp>,
    cookie: SessionCookie,
}

/// What a layout needs to render a live page: the mounted [`Page`] and the
/// pieces of HTML that carry its tokens, already escaped.
#[derive(Debug)]
pub struct PageHtml<'a> {
    /// The mounted page: its socket (assigns), rendering and root layout.
    pub page: &'a Page,
    /// `<meta name="csrf-token" content="…">`, for the page's `<head>`.
    pub csrf_meta: String,
    /// The opening tag of the live container:
    /// `<div id="phx-…" data-phx-main data-phx-session="…" data-phx-static="…">`.
    pub container_open: String,
}

impl LivePages {
    /// The HTTP phase of `app`, reading and writing sessions with `cookie`.
    pub fn new(app: Arc<LiveApp>, cookie: SessionCookie) -> Self {
        Self { app, cookie }
    }

    /// The live application.
    pub fn app(&self) -> &Arc<LiveApp> {
        &self.app
    }

    /// The session cookie.
    pub fn cookie(&self) -> &SessionCookie {
        &self.cookie
    }

    /// Reads the session from the request's `Cookie` headers. A refused
    /// cookie is audited and reads as an empty session.
    pub fn read_session(&self, headers: &HeaderMap, now: Timestamp) -> DecodedSession {
        let values = headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
        let decoded = self.cookie.decode_request(values, now);
        if let Some(rejection) = decoded.rejection {
            let purpose = String::from(self.cookie.name());
            self.app.audit().record(AuditRecord::TokenRefused { purpose, rejection });
        }
        decoded
    }

    /// The `Set-Cookie` value that stores `session`.
    pub fn set_cookie(
        &self,
        session: &Session,
        now: Timestamp,
        rng: &mut impl SecureRandom,
    ) -> Result<HeaderValue, EncodeError> {
        let value = self.cookie.encode(session, now, rng)?;
        // The cookie crate writes only visible ASCII.
        HeaderValue::from_str(&self.cookie.set_cookie_header(&value)).map_err(|_| EncodeError::Serialize)
    }

    /// The `Set-Cookie` value that deletes the session cookie (log out).
    pub fn removal_cookie(&self) -> HeaderValue {
        HeaderValue::from_str(&self.cookie.removal_header()).unwrap_or(HeaderValue::from_static(""))
    }

    /// Whether a form's `_csrf_token` verifies against the session (for
    /// non-GET requests such as log in and log out).
    pub fn form_csrf_ok(&self, session: &Session, token: Option<&str>) -> bool {
        session.csrf_token_ok(token)
    }

    /// Runs a boundary's guard on the HTTP side (the plug): `Ok` carries the
    /// assigns for the live mount (the current user, reused by the hook's
    /// `assign_new`), `Err` a `302` to the guard's redirect.
    pub async fn guard<S: UserSource>(&self, guard: &Guard<S>, session: &Session) -> Result<Assigns, Response<String>> {
        match guard.check(session).await {
            Ok(user) => {
                let mut assigns = Assigns::new();
                assigns.insert::<crate::live::CurrentUser<S::User>>(user);
                Ok(assigns)
            }
            Err(redirect) => Err(redirect_response(redirect.to())),
        }
    }

    /// Answers a GET of `path_and_query` with the disconnected mount of its
    /// live route: `200` with the page `layout` renders, a `302` for a hook's
    /// redirect, the view's status when it refuses to mount, `404` when the
    /// path is not a live route, `500` when the application fails. The
    /// session cookie is written when the mount changed the session (a new
    /// CSRF state) or when it was read under an older key.
    pub async fn render(
        &self,
        path_and_query: &str,
        session: DecodedSession,
        assigns: Assigns,
        now: Timestamp,
        rng: &mut impl SecureRandom,
        layout: impl FnOnce(&PageHtml<'_>) -> String,
    ) -> Response<String> {
        let needs_rewrite = session.needs_rewrite;
        let request = HttpRequest { url: String::from(path_and_query), session: session.session, assigns };
        let outcome = match self.app.http_mount(request, now, rng).await {
            Ok(outcome) => outcome,
            Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let page = match outcome {
            HttpOutcome::Page(page) => page,
            HttpOutcome::Redirect(redirect) => return redirect_response(redirect.to()),
            HttpOutcome::Failed(error) => {
                return status(StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
            }
            HttpOutcome::NotLive => return status(StatusCode::NOT_FOUND),
        };
        let set_cookie = if page.session_changed || needs_rewrite {
            match self.set_cookie(&page.session, now, rng) {
                Ok(value) => Some(value),
                Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR),
            }
        } else {
            None
        };
        let html = PageHtml {
            page: &page,
            csrf_meta: format!(r#"<meta name="csrf-token" content="{}">"#, escape(page.csrf_token.as_str())),
            container_open: format!(
                r#"<div id="{}" data-phx-main data-phx-session="{}" data-phx-static="{}">"#,
                escape(page.socket.id()),
                escape(&page.session_token),
                escape(&page.static_token)
            ),
        };
        let mut response = Response::new(layout(&html));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        // The page carries a CSRF token and tokens bound to this session.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(cookie) = set_cookie {
            headers.append(SET_COOKIE, cookie);
        }
        response
    }
}

/// A `302 Found` to a local path.
pub fn redirect_response(to: &str) -> Response<String> {
    let mut response = status(StatusCode::FOUND);
    // A path from a hook or guard: local by construction; refuse anything
    // else rather than send the client off-site.
    let target = if is_local_path(to) { to } else { "/" };
    if let Ok(value) = HeaderValue::from_str(target) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

fn status(code: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = code;
    response
}

/// Escapes text for an HTML attribute value or element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
