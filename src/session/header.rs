//! `Cookie` and `Set-Cookie` headers for the session cookie, through the
//! `cookie` crate (only with `std`).

use std::string::{String, ToString};
use std::vec::Vec;

use cookie::Cookie;
use cookie::time::Duration;

use super::{DecodedSession, SameSite, SessionCookie};
use crate::time::{MaxAge, Timestamp};

impl SessionCookie {
    /// The `Set-Cookie` header value that stores `value` (from
    /// [`SessionCookie::encode`]) with this cookie's attributes.
    pub fn set_cookie_header(&self, value: &str) -> String {
        let mut cookie = self.base_cookie(value.to_string());
        if let MaxAge::Seconds(secs) = self.max_age {
            cookie.set_max_age(Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)));
        }
        cookie.to_string()
    }

    /// The `Set-Cookie` header value that deletes the cookie (log out).
    pub fn removal_header(&self) -> String {
        let mut cookie = self.base_cookie(String::new());
        cookie.make_removal();
        cookie.to_string()
    }

    /// Reads the session from the request's `Cookie` header values.
    ///
    /// When several cookies carry this name (a sibling subdomain can plant
    /// one), each is tried and the first that verifies wins, so a planted
    /// cookie cannot shadow the real session; the first refusal is reported
    /// when none verifies.
    pub fn decode_request<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a str>,
        now: Timestamp,
    ) -> DecodedSession {
        let values = self.request_values(cookie_headers);
        let mut refused: Option<DecodedSession> = None;
        for value in &values {
            let decoded = self.decode(Some(value), now);
            if decoded.rejection.is_none() {
                return decoded;
            }
            refused.get_or_insert(decoded);
        }
        refused.unwrap_or_else(|| self.decode(None, now))
    }

    /// The values of every cookie named like this one in the request's
    /// `Cookie` header values, in order. Unparsable pairs are skipped.
    pub fn request_values<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        cookie_headers
            .into_iter()
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|cookie| cookie.name() == self.name)
            .map(|cookie| cookie.value().to_string())
            .collect()
    }

    fn base_cookie(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(self.name.clone(), value);
        cookie.set_path(self.path.clone());
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_http_only(self.http_only);
        cookie.set_secure(self.secure || self.same_site == SameSite::None);
        cookie.set_same_site(match self.same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        });
        cookie
    }
}
