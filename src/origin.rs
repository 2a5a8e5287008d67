//! The `Origin` policy for WebSocket upgrades (Phoenix's `check_origin`).
//!
//! WebSockets are not subject to the same-origin policy, and a browser
//! attaches cookies to the handshake of a socket opened by any page. Without
//! an Origin check, a malicious page can open an authenticated socket in the
//! name of a logged-in user (Cross-Site WebSocket Hijacking). An
//! [`OriginPolicy`] decides, from the `Origin` header of the upgrade request,
//! whether the upgrade may proceed; the WebSocket endpoint answers a refusal
//! with HTTP 403.
//!
//! The `Origin` header is a browser signal: a non-browser client can send any
//! value, or none. The check protects users' browsers from other sites; CSRF
//! tokens protect the session either way.
//!
//! # Policies
//!
//! | constructor | Phoenix | allows an Origin when |
//! |---|---|---|
//! | [`OriginPolicy::off`] | `check_origin: false` | always (even a missing, `null` or garbled one) |
//! | [`OriginPolicy::host_of`] | `check_origin: true` | its host equals the host of the endpoint URL (scheme and port ignored) |
//! | [`OriginPolicy::allow_list`] | `check_origin: [...]` | one entry matches its scheme, host and port; parts absent from the entry match anything |
//! | [`OriginPolicy::same_as_request`] | `check_origin: :conn` | its scheme, host and port equal those of the request |
//! | [`OriginPolicy::custom`] | `check_origin: {M, F, A}` | the predicate returns `true` |
//!
//! A request **without** an `Origin` header comes from a non-browser client
//! and is allowed by default, as in Phoenix;
//! [`OriginPolicy::refuse_missing`] refuses it instead.
//!
//! # What counts as an Origin
//!
//! Browsers send the ASCII serialization of an origin: `scheme://host` with
//! `:port` only when it is not the scheme's default, no path, no trailing
//! slash, the host in lower case, Unicode hosts in punycode, IPv6 hosts in
//! brackets in their shortest form, or the opaque origin `null`.
//! [`Origin::parse`] accepts exactly that, up to ASCII case, and refuses
//! everything else before any policy (except `off`) looks at it:
//!
//! - `null`, and URLs without a host (`file:///x`, `data:...`, `about:blank`):
//!   [`OriginRejection::Opaque`];
//! - anything else that is not a serialized origin: [`OriginRejection::Malformed`].
//!   That covers the empty string, non-URLs, a path (even a lone trailing
//!   `/`), a query, a fragment, credentials, an explicit default port
//!   (`https://a.com:443`), hosts not in canonical form (Unicode,
//!   percent-encoded, `[0:0::1]`, `0x7f.1`), whitespace, a `*` in the host,
//!   and headers longer than 2048 bytes.
//!
//! # Differences from Phoenix
//!
//! All deliberate, and all on the side of refusing:
//!
//! - Phoenix reads the host of whatever `URI.parse` makes of the header, so it
//!   ignores a path and accepts `https://a.com:443`; here the header must be a
//!   serialized origin, as browsers send it (see above).
//! - Hosts compare ASCII-case-insensitively (Phoenix compares the strings as
//!   sent; browsers send lower case anyway).
//! - A custom predicate only ever sees a parsed [`Origin`] with a host: `null`
//!   and malformed headers are refused before it runs. Phoenix passes them to
//!   the MFA.
//! - Configuration mistakes are reported by the constructors as an
//!   [`OriginConfigError`], never a panic: an entry without a host (Phoenix
//!   raises on first use), and, stricter than Phoenix, an entry with a path,
//!   query, fragment or credentials, a misplaced `*`, and an empty allow list
//!   (Phoenix would silently refuse every browser).
//!
//! If a request carries more than one `Origin` header, refuse it: a browser
//! sends exactly one, and picking one of several would let a proxy or client
//! choose which the policy sees.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use url::Url;

/// Longest `Origin` header [`Origin::parse`] considers, in bytes.
///
/// A serialized origin is a scheme, a host of at most 253 bytes and a port;
/// anything far longer is not one, and is refused before it is parsed.
const MAX_ORIGIN_LEN: usize = 2048;

/// An origin parsed from an `Origin` header: scheme, host and port.
///
/// Guarantees: the scheme and the host are non-empty and ASCII lower case; the
/// host contains no `*`; IPv6 hosts are kept in brackets (`[::1]`). The port
/// is the one in the header, or the scheme's default for `http`, `https`,
/// `ws`, `wss` and `ftp`; it is `None` only for other schemes without an
/// explicit port (such as `capacitor://localhost`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parses the value of an `Origin` header.
    ///
    /// Accepts exactly the serialization browsers send (see the [module
    /// docs](self)), up to ASCII case. Fails with
    /// [`OriginRejection::Opaque`] for `null` and for URLs without a host, and
    /// with [`OriginRejection::Malformed`] for anything else that is not a
    /// serialized origin. Never fails with another variant, never panics.
    pub fn parse(header: &str) -> Result<Self, OriginRejection> {
        if header.len() > MAX_ORIGIN_LEN {
            return Err(OriginRejection::Malformed);
        }
        if header.eq_ignore_ascii_case("null") {
            return Err(OriginRejection::Opaque);
        }
        let url = Url::parse(header).map_err(|_| OriginRejection::Malformed)?;
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host,
            _ => return Err(OriginRejection::Opaque),
        };
        // Nothing but scheme, host and port: no credentials, no path (the
        // url crate reports `/` for the empty path of http(s), and an empty
        // path for other schemes), no query, no fragment.
        if !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
            || host.contains('*')
        {
            return Err(OriginRejection::Malformed);
        }
        // And written exactly as the url crate serializes it back (which
        // drops a default port, normalizes the host and adds the `/` path of
        // http(s)): this refuses a trailing `/`, whitespace, an explicit
        // default port and non-canonical hosts without parsing anything by
        // hand.
        let serialized = url.as_str();
        let canonical = if url.path() == "/" { serialized.strip_suffix('/').unwrap_or(serialized) } else { serialized };
        if !header.eq_ignore_ascii_case(canonical) {
            return Err(OriginRejection::Malformed);
        }
        Ok(Self {
            scheme: url.scheme().to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port: url.port_or_known_default(),
        })
    }

    /// The scheme, in lower case (`"https"`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, in lower case; an IPv6 address keeps its brackets (`"[::1]"`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, else the scheme's default for `http`, `https`,
    /// `ws`, `wss` and `ftp`, else `None`.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

/// The scheme, host and port of the upgrade request itself, as the server saw
/// it; only [`OriginPolicy::same_as_request`] reads it.
///
/// `scheme` is the scheme the client used (`"http"` or `"https"`, even behind
/// a TLS-terminating proxy, which must pass it on); `host` is the `Host`
/// header without its port (an IPv6 address in brackets, `"[::1]"`); `port` is
/// the port the client connected to, which is the scheme's default when the
/// `Host` header names none. Scheme and host compare ASCII-case-insensitively.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RequestTarget<'a> {
    /// The request scheme, `"http"` or `"https"`.
    pub scheme: &'a str,
    /// The request host, without port.
    pub host: &'a str,
    /// The request port.
    pub port: u16,
}

impl<'a> RequestTarget<'a> {
    /// A request target from its parts.
    pub const fn new(scheme: &'a str, host: &'a str, port: u16) -> Self {
        Self { scheme, host, port }
    }
}

/// Why an upgrade request was refused.
///
/// Meant for logs; the peer only gets a 403.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OriginRejection {
    /// The request had no `Origin` header and the policy refuses that
    /// ([`OriginPolicy::refuse_missing`]).
    Missing,
    /// The `Origin` is `null` or a URL without a host (`file://`, `data:`):
    /// an opaque origin, which no policy but `off` allows.
    Opaque,
    /// The `Origin` header is not a serialized origin (see the [module
    /// docs](self)), which no policy but `off` allows.
    Malformed,
    /// The `Origin` is well-formed but the policy does not allow it.
    NotAllowed,
}

impl fmt::Display for OriginRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "the request has no Origin header",
            Self::Opaque => "the Origin is opaque (`null` or a URL without a host)",
            Self::Malformed => "the Origin header is not a serialized origin",
            Self::NotAllowed => "the Origin is not allowed by the origin policy",
        })
    }
}

impl core::error::Error for OriginRejection {}

/// A policy could not be built from its configuration.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OriginConfigError {
    /// An entry is not a URL with a host: a bare host (`"example.com"`,
    /// which must be written `"//example.com"`), `"null"`, `"file:///x"`, an
    /// empty string or something unparsable.
    NoHost,
    /// An entry carries something an origin never has: credentials, a path
    /// other than `/`, a query or a fragment.
    NotAnOrigin,
    /// A `*` appears other than as a leading `*.` before a host
    /// (`"//*example.com"`, `"//a.*.com"`, `"//*."`), or at all in
    /// [`OriginPolicy::host_of`], which compares hosts exactly.
    BadWildcard,
    /// [`OriginPolicy::allow_list`] was given no entries.
    EmptyAllowList,
}

impl fmt::Display for OriginConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoHost => "invalid origin: not a URL with a host (write a bare host as \"//example.com\")",
            Self::NotAnOrigin => "invalid origin: an origin has no credentials, path, query or fragment",
            Self::BadWildcard => {
                "invalid origin: a wildcard is only allowed in an allow list, as a leading \"*.\" before a host"
            }
            Self::EmptyAllowList => "invalid origin policy: the allow list is empty",
        })
    }
}

impl core::error::Error for OriginConfigError {}

/// Whether an `Origin` header may open a WebSocket (Phoenix's `check_origin`).
///
/// Built once from configuration; [`check`](Self::check) never fails to run
/// and never panics, whatever the header holds. Cloning is cheap (a custom
/// predicate is shared).
#[derive(Clone)]
pub struct OriginPolicy {
    kind: Kind,
    refuse_missing: bool,
}

#[derive(Clone)]
enum Kind {
    Off,
    HostOf(String),
    AllowList(Vec<Allowed>),
    SameAsRequest,
    Custom(Arc<dyn Fn(&Origin) -> bool + Send + Sync>),
}

/// One allow-list entry; `None` parts match anything.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Allowed {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

/// A host to match, in lower case.
#[derive(Clone, PartialEq, Eq, Debug)]
enum HostPattern {
    /// This host only.
    Exact(String),
    /// `*.apex`: the apex itself and any subdomain of it, at any depth.
    Subdomains(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(exact) => host.eq_ignore_ascii_case(exact),
            Self::Subdomains(apex) => {
                host.eq_ignore_ascii_case(apex)
                    || host
                        .len()
                        .checked_sub(apex.len())
                        .and_then(|split| host.get(..split).zip(host.get(split..)))
                        .is_some_and(|(sub, tail)| {
                            tail.eq_ignore_ascii_case(apex) && sub.strip_suffix('.').is_some_and(|sub| !sub.is_empty())
                        })
            }
        }
    }
}

impl Allowed {
    fn matches(&self, origin: &Origin) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == origin.scheme)
            && self.port.is_none_or(|p| origin.port == Some(p))
            && self.host.matches(&origin.host)
    }
}

/// An entry parsed into (scheme, host, port), before wildcard handling.
#[derive(PartialEq, Eq, Debug)]
struct Entry {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

/// Parses a configured origin: `scheme://host[:port]` (the port defaults to
/// the scheme's known default) or `//host[:port]` (any scheme; any port
/// unless given). A trailing `/` is allowed.
fn parse_entry(entry: &str) -> Result<Entry, OriginConfigError> {
    if entry.starts_with("//") {
        // A scheme-relative entry. The url crate needs a scheme; parse it
        // under `http:` and `https:`, which read the host the way browsers
        // serialize it (lower case, punycode). Each drops its own default
        // port, so the explicit port is whichever of the two reports one.
        let (http, host) = parse_with_host(&["http:", entry].concat())?;
        let (https, _) = parse_with_host(&["https:", entry].concat())?;
        Ok(Entry { scheme: None, host, port: http.port().or(https.port()) })
    } else {
        let (url, host) = parse_with_host(entry)?;
        Ok(Entry { scheme: Some(url.scheme().to_ascii_lowercase()), host, port: url.port_or_known_default() })
    }
}

/// Parses `text` as a URL that has a host and nothing an origin lacks.
fn parse_with_host(text: &str) -> Result<(Url, String), OriginConfigError> {
    let url = Url::parse(text).map_err(|_| OriginConfigError::NoHost)?;
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => host.to_ascii_lowercase(),
        _ => return Err(OriginConfigError::NoHost),
    };
    if !url.username().is_empty()
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(OriginConfigError::NotAnOrigin);
    }
    Ok((url, host))
}

/// Splits `*.apex` into a subdomain pattern; refuses any other `*`.
fn host_pattern(host: String) -> Result<HostPattern, OriginConfigError> {
    if !host.contains('*') {
        return Ok(HostPattern::Exact(host));
    }
    match host.strip_prefix("*.") {
        Some(apex) if !apex.is_empty() && !apex.contains('*') && !apex.starts_with('.') => {
            Ok(HostPattern::Subdomains(String::from(apex)))
        }
        _ => Err(OriginConfigError::BadWildcard),
    }
}

impl OriginPolicy {
    const fn new(kind: Kind) -> Self {
        Self { kind, refuse_missing: false }
    }

    /// No Origin check at all (Phoenix `check_origin: false`): every request
    /// is allowed, whatever its `Origin` header, even a missing one when
    /// [`refuse_missing`](Self::refuse_missing) is set.
    ///
    /// Only safe when the session is protected by CSRF tokens; the WebSocket
    /// endpoint refuses a configuration with both checks off.
    pub const fn off() -> Self {
        Self::new(Kind::Off)
    }

    /// Allows an Origin whose host equals the host of `endpoint_url`,
    /// ASCII-case-insensitively, whatever its scheme and port (Phoenix
    /// `check_origin: true` against the endpoint's `url[:host]`).
    ///
    /// `endpoint_url` is `"https://example.com"`, or `"//example.com"` for a
    /// bare host; its scheme, port and a trailing `/` are ignored.
    ///
    /// # Errors
    ///
    /// [`NoHost`](OriginConfigError::NoHost) when `endpoint_url` is not a URL
    /// with a host, [`NotAnOrigin`](OriginConfigError::NotAnOrigin) when it
    /// has a path, query, fragment or credentials, and
    /// [`BadWildcard`](OriginConfigError::BadWildcard) when its host contains
    /// a `*` (use [`allow_list`](Self::allow_list) for wildcards).
    pub fn host_of(endpoint_url: &str) -> Result<Self, OriginConfigError> {
        let host = parse_entry(endpoint_url)?.host;
        if host.contains('*') {
            return Err(OriginConfigError::BadWildcard);
        }
        Ok(Self::new(Kind::HostOf(host)))
    }

    /// Allows an Origin matching at least one entry (Phoenix `check_origin:
    /// [...]`).
    ///
    /// Each entry is parsed into (scheme, host, port); an absent part matches
    /// anything:
    ///
    /// - `"//example.com"`: any scheme, any port;
    /// - `"https://example.com"`: scheme `https` and, implicitly, its
    ///   default port 443 (so `"http://a.com"` refuses `http://a.com:8080`);
    /// - `"//example.com:81"` or `"https://example.com:8443"`: that port;
    /// - `"//*.example.com"` or `"https://*.example.com"`: `example.com`
    ///   itself and its subdomains at any depth (`a.b.example.com`), but not
    ///   `prefix-example.com` nor `example.com.evil.com`. Without `*.`,
    ///   subdomains do not match.
    ///
    /// Hosts compare ASCII-case-insensitively; a Unicode host in an entry is
    /// converted to punycode, as browsers send it. A trailing `/` is allowed.
    ///
    /// # Errors
    ///
    /// The first bad entry's error: [`NoHost`](OriginConfigError::NoHost)
    /// (e.g. `"example.com"` without `//`),
    /// [`NotAnOrigin`](OriginConfigError::NotAnOrigin),
    /// [`BadWildcard`](OriginConfigError::BadWildcard); and
    /// [`EmptyAllowList`](OriginConfigError::EmptyAllowList) when there are
    /// no entries.
    pub fn allow_list<I, S>(entries: I) -> Result<Self, OriginConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let allowed = entries
            .into_iter()
            .map(|entry| {
                let Entry { scheme, host, port } = parse_entry(entry.as_ref())?;
                Ok(Allowed { scheme, host: host_pattern(host)?, port })
            })
            .collect::<Result<Vec<_>, OriginConfigError>>()?;
        if allowed.is_empty() {
            return Err(OriginConfigError::EmptyAllowList);
        }
        Ok(Self::new(Kind::AllowList(allowed)))
    }

    /// Allows an Origin whose scheme, host and port all equal the request's
    /// [`RequestTarget`] (Phoenix `check_origin: :conn`): `http` and `https`
    /// differ, a `ws://` Origin never matches, and `https://a.com` equals a
    /// request to `a.com` over https on port 443.
    ///
    /// This trusts the request's `Host` header and scheme: behind a proxy,
    /// make sure they are the client's, not the proxy's. A fixed
    /// [`host_of`](Self::host_of) or [`allow_list`](Self::allow_list) does not
    /// depend on them.
    pub const fn same_as_request() -> Self {
        Self::new(Kind::SameAsRequest)
    }

    /// Allows an Origin for which `predicate` returns `true` (Phoenix's MFA).
    ///
    /// The predicate only sees parsed origins: a `null`, host-less or
    /// malformed header is refused before it is called, and so is a missing
    /// one when [`refuse_missing`](Self::refuse_missing) is set (otherwise a
    /// missing header is allowed without calling it). It is called at most
    /// once per [`check`](Self::check), and must not panic.
    pub fn custom<F>(predicate: F) -> Self
    where
        F: Fn(&Origin) -> bool + Send + Sync + 'static,
    {
        Self::new(Kind::Custom(Arc::new(predicate)))
    }

    /// Whether a request without an `Origin` header is refused
    /// ([`OriginRejection::Missing`]) rather than allowed (the default, as in
    /// Phoenix: such requests come from non-browser clients). Has no effect on
    /// [`off`](Self::off), which allows everything.
    #[must_use]
    pub const fn refuse_missing(mut self, refuse: bool) -> Self {
        self.refuse_missing = refuse;
        self
    }

    /// Whether this policy refuses a request without an `Origin` header.
    /// Always `false` for [`off`](Self::off).
    pub const fn refuses_missing(&self) -> bool {
        self.refuse_missing && !self.is_off()
    }

    /// Whether this is [`off`](Self::off), which checks nothing.
    pub const fn is_off(&self) -> bool {
        matches!(self.kind, Kind::Off)
    }

    /// Decides whether the upgrade request may proceed.
    ///
    /// `origin` is the raw value of the `Origin` header, `None` when the
    /// request has none. `request` is only read by
    /// [`same_as_request`](Self::same_as_request).
    ///
    /// # Errors
    ///
    /// Never with [`off`](Self::off). Otherwise
    /// [`Missing`](OriginRejection::Missing) for a missing header when
    /// [`refuse_missing`](Self::refuse_missing) is set,
    /// [`Opaque`](OriginRejection::Opaque) or
    /// [`Malformed`](OriginRejection::Malformed) when [`Origin::parse`]
    /// fails, and [`NotAllowed`](OriginRejection::NotAllowed) when the
    /// policy does not match the parsed origin.
    pub fn check(&self, origin: Option<&str>, request: &RequestTarget<'_>) -> Result<(), OriginRejection> {
        if self.is_off() {
            return Ok(());
        }
        let Some(header) = origin else {
            return if self.refuse_missing { Err(OriginRejection::Missing) } else { Ok(()) };
        };
        let origin = Origin::parse(header)?;
        let allowed = match &self.kind {
            Kind::Off => true,
            Kind::HostOf(host) => origin.host.eq_ignore_ascii_case(host),
            Kind::AllowList(list) => list.iter().any(|entry| entry.matches(&origin)),
            Kind::SameAsRequest => {
                origin.scheme.eq_ignore_ascii_case(request.scheme)
                    && origin.host.eq_ignore_ascii_case(request.host)
                    && origin.port == Some(request.port)
            }
            Kind::Custom(predicate) => predicate(&origin),
        };
        if allowed { Ok(()) } else { Err(OriginRejection::NotAllowed) }
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("Off"),
            Self::HostOf(host) => f.debug_tuple("HostOf").field(host).finish(),
            Self::AllowList(list) => f.debug_tuple("AllowList").field(list).finish(),
            Self::SameAsRequest => f.write_str("SameAsRequest"),
            Self::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginPolicy").field("kind", &self.kind).field("refuse_missing", &self.refuse_missing).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    fn entry(scheme: Option<&str>, host: &str, port: Option<u16>) -> Entry {
        Entry { scheme: scheme.map(String::from), host: String::from(host), port }
    }

    #[test]
    fn scheme_relative_entries_keep_only_an_explicit_port() {
        assert_eq!(parse_entry("//a.com"), Ok(entry(None, "a.com", None)));
        assert_eq!(parse_entry("//a.com/"), Ok(entry(None, "a.com", None)));
        assert_eq!(parse_entry("//a.com:81"), Ok(entry(None, "a.com", Some(81))));
        // The default ports of both helper schemes survive as explicit pins.
        assert_eq!(parse_entry("//a.com:80"), Ok(entry(None, "a.com", Some(80))));
        assert_eq!(parse_entry("//a.com:443"), Ok(entry(None, "a.com", Some(443))));
        assert_eq!(parse_entry("//A.COM"), Ok(entry(None, "a.com", None)));
        assert_eq!(parse_entry("//[::1]:4000"), Ok(entry(None, "[::1]", Some(4000))));
    }

    #[test]
    fn schemed_entries_get_the_default_port() {
        assert_eq!(parse_entry("http://a.com"), Ok(entry(Some("http"), "a.com", Some(80))));
        assert_eq!(parse_entry("HTTPS://A.com:8443/"), Ok(entry(Some("https"), "a.com", Some(8443))));
        assert_eq!(parse_entry("capacitor://LocalHost"), Ok(entry(Some("capacitor"), "localhost", None)));
        assert_eq!(parse_entry("https://bücher.de"), Ok(entry(Some("https"), "xn--bcher-kva.de", Some(443))));
    }

    #[test]
    fn bad_entries_are_errors() {
        for bad in ["", "a.com", "localhost:4000", "null", "file:///x", "//", "https://", "foo://"] {
            assert_eq!(parse_entry(bad), Err(OriginConfigError::NoHost), "{bad:?}");
        }
        for bad in ["https://a.com/x", "//a.com?x", "//a.com#x", "//u@a.com", "//u:p@a.com"] {
            assert_eq!(parse_entry(bad), Err(OriginConfigError::NotAnOrigin), "{bad:?}");
        }
    }

    #[test]
    fn wildcards_split_into_an_apex() {
        assert_eq!(host_pattern("*.a.com".to_string()), Ok(HostPattern::Subdomains("a.com".to_string())));
        assert_eq!(host_pattern("a.com".to_string()), Ok(HostPattern::Exact("a.com".to_string())));
        for bad in ["*", "*.", "*a.com", "a.*.com", "*.*.a.com", "*..a.com", "a.com*"] {
            assert_eq!(host_pattern(bad.to_string()), Err(OriginConfigError::BadWildcard), "{bad:?}");
        }
    }

    #[test]
    fn subdomain_pattern_matching() {
        let p = HostPattern::Subdomains("a.com".to_string());
        for yes in ["a.com", "x.a.com", "x.y.a.com", "X.A.COM"] {
            assert!(p.matches(yes), "{yes:?}");
        }
        for no in ["", "com", ".a.com", "xa.com", "-a.com", "a.com.evil.com", "a.co", "a.comx"] {
            assert!(!p.matches(no), "{no:?}");
        }
        // Multi-byte text never splits inside a character.
        assert!(!p.matches("éa.com"));
        assert!(!p.matches("é"));
    }

    #[test]
    fn origin_parse_is_canonical() {
        let o = Origin::parse("https://a.com").ok();
        assert_eq!(o.as_ref().map(Origin::host), Some("a.com"));
        assert_eq!(o.as_ref().and_then(Origin::port), Some(443));
        assert_eq!(Origin::parse("https://a.com/"), Err(OriginRejection::Malformed));
        assert_eq!(Origin::parse("https://a.com:443"), Err(OriginRejection::Malformed));
        assert_eq!(Origin::parse("https:a.com"), Err(OriginRejection::Malformed));
        assert_eq!(Origin::parse("http:///a.com"), Err(OriginRejection::Malformed));
        assert_eq!(Origin::parse("NULL"), Err(OriginRejection::Opaque));
        let long = format!("https://{}.com", "a".repeat(MAX_ORIGIN_LEN));
        assert_eq!(Origin::parse(&long), Err(OriginRejection::Malformed));
    }

    #[test]
    fn debug_hides_nothing_but_the_predicate() {
        let custom = format!("{:?}", OriginPolicy::custom(|_| true));
        assert!(custom.contains("Custom"), "{custom}");
        let list = OriginPolicy::allow_list(["//a.com"]).map(|p| format!("{p:?}"));
        assert!(list.is_ok_and(|s| s.contains("a.com")));
    }
}
