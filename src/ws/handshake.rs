//! The upgrade request's checks, in Phoenix's order: path, protocol version,
//! Origin, then the cookie session and the CSRF token.

use std::format;
use std::string::{String, ToString};

use tokio_tungstenite::tungstenite::http::{self, HeaderMap, Request, StatusCode, header};

use super::Endpoint;
use crate::audit::AuditRecord;
use crate::csrf;
use crate::keys::KeyId;
use crate::origin::RequestTarget;
use crate::session::Session;
use crate::socket_id::LiveSocketId;
use crate::time::Timestamp;

/// What an accepted upgrade established.
#[derive(Debug)]
pub struct Accepted {
    /// The cookie session, or `None` when the cookie was absent or refused
    /// or the CSRF token did not verify (every join then answers `stale`).
    pub session: Option<Session>,
    /// The session's `live_socket_id` and the key id its cookie verified
    /// under: the connection registers under them.
    pub registration: Option<(LiveSocketId, KeyId)>,
    /// When the session cookie's max age lapses: the connection closes then.
    pub expires_at: Option<Timestamp>,
    /// Whether the client offered the `phoenix` subprotocol (it does with an
    /// `authToken`): the answer must then name it.
    pub phoenix_subprotocol: bool,
}

/// A refused upgrade: the HTTP status the client gets, with an empty body.
/// The detail went to the audit sink.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Refusal {
    /// 404 for another path, 403 for a protocol version or Origin refused,
    /// 400 for a request that is not a WebSocket upgrade.
    pub status: StatusCode,
}

impl Endpoint {
    /// Checks an upgrade request at `now`: 404 for another path, 403 for a
    /// `vsn` other than 2.x or a refused Origin. A missing or refused cookie
    /// or CSRF token is not a refusal: the connection is accepted without a
    /// session, as Phoenix does, and every join answers `stale`.
    pub fn check_upgrade<B>(&self, request: &Request<B>, now: Timestamp) -> Result<Accepted, Refusal> {
        let refuse = |status: StatusCode, detail: String| {
            self.inner.app.audit().record(AuditRecord::HandshakeRefused { status: status.as_u16(), detail });
            Refusal { status }
        };
        let uri = request.uri();
        if uri.path() != self.inner.config.path {
            return Err(refuse(StatusCode::NOT_FOUND, format!("path {}", uri.path())));
        }
        let query = uri.query().unwrap_or("");
        let param = |name: &str| form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, v)| v);
        match param("vsn") {
            Some(vsn) if vsn.strip_prefix("2.").is_some_and(|rest| !rest.is_empty()) => {}
            other => {
                let detail = format!("protocol version {:?} (2.x is served)", other.as_deref().unwrap_or("missing"));
                return Err(refuse(StatusCode::FORBIDDEN, detail));
            }
        }
        let headers = request.headers();
        let origin = single(headers, header::ORIGIN);
        let scheme = self.inner.config.scheme;
        let host = single(headers, header::HOST).and_then(|h| h.parse::<http::uri::Authority>().ok());
        let default_port = if scheme == "https" { 443 } else { 80 };
        let target = RequestTarget::new(
            scheme,
            host.as_ref().map_or("", |h| h.host()),
            host.as_ref().and_then(http::uri::Authority::port_u16).unwrap_or(default_port),
        );
        if let Err(rejection) = self.inner.config.origin.check(origin, &target) {
            let detail = format!("origin {:?}: {rejection}", origin.unwrap_or(""));
            return Err(refuse(StatusCode::FORBIDDEN, detail));
        }

        let cookies = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok());
        let decoded = self.inner.cookie.decode_request(cookies, now);
        let phoenix_subprotocol = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == "phoenix");
        let without_session = |detail: String| {
            self.inner.app.audit().record(AuditRecord::NoSession { detail });
            Accepted { session: None, registration: None, expires_at: None, phoenix_subprotocol }
        };
        let Some(key_id) = decoded.key_id else {
            return Ok(match decoded.rejection {
                Some(rejection) => {
                    self.inner
                        .app
                        .audit()
                        .record(AuditRecord::TokenRefused { purpose: self.inner.cookie.name().to_string(), rejection });
                    without_session(format!("session cookie refused: {rejection}"))
                }
                None => without_session(String::from("no session cookie")),
            });
        };
        if self.inner.config.check_csrf {
            let token = param(csrf::PARAM);
            if !decoded.session.csrf_token_ok(token.as_deref()) {
                let detail = if token.is_some() { "CSRF token does not verify" } else { "no CSRF token" };
                return Ok(without_session(String::from(detail)));
            }
        }
        let registration = decoded.session.live_socket_id().map(|id| (id, key_id));
        Ok(Accepted {
            session: Some(decoded.session),
            registration,
            expires_at: decoded.expires_at,
            phoenix_subprotocol,
        })
    }
}

/// A header that must appear at most once to count (two `Origin` headers
/// are ambiguous: treat them as one unparsable value).
fn single(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value.to_str().unwrap_or("\u{0}")),
        (Some(_), Some(_)) => Some("\u{0}"),
        _ => None,
    }
}
