//! The WebSocket endpoint (feature `ws`): Phoenix Channels V2 over
//! tokio-tungstenite, driving [`LiveConnection`](crate::live::LiveConnection).
//!
//! A browser or Node client using the official `phoenix` npm package
//! connects to [`EndpointConfig::path`] (`/live/websocket` by default) with
//! `vsn=2.0.0` and its `_csrf_token`, joins `lv:` topics with the tokens of
//! the HTTP phase, and sends events.
//!
//! Guarantees:
//! - An upgrade from a refused Origin, or for a protocol version other than
//!   2.x, is answered 403 before anything else is read. A missing or wrong
//!   cookie or CSRF token leaves the connection without a session: every
//!   join answers `stale`. An endpoint with both checks off cannot be built.
//! - A connection with a session registers under its `live_socket_id`
//!   before it reads its first frame, so every join, the last validation of
//!   the session, happens after the node listens for its disconnects
//!   (docs/ARCHITECTURE.md, invariant 9).
//! - A disconnect for its id, or the retirement of the key its cookie
//!   verified under, closes it with 1001; so does the lapse of the session
//!   cookie's max age. A graceful shutdown closes with 1012.
//! - Every connection re-validates its views (`on_mount` again) every
//!   [`EndpointConfig::revalidate_every`] (±20 %); one whose session was
//!   revoked closes with 1001, whatever became of the cluster's messages.
//! - A malformed, oversized or binary frame closes only the connection that
//!   sent it (1007, 1009, 1003); an idle one closes after
//!   [`EndpointConfig::idle_timeout`].

mod driver;
mod handshake;

use std::future::Future;
use std::io;
use std::string::String;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use handshake::{Accepted, Refusal};

use crate::cluster::node::Node;
use crate::live::{DEFAULT_MAX_CHANNELS, LiveApp};
use crate::origin::OriginPolicy;
use crate::session::SessionCookie;

/// The default interval of [`EndpointConfig::revalidate_every`].
pub const DEFAULT_REVALIDATE_EVERY: Duration = Duration::from_secs(300);

/// How the endpoint checks upgrades and bounds connections.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    path: String,
    scheme: &'static str,
    origin: OriginPolicy,
    check_csrf: bool,
    max_message_bytes: usize,
    read_buffer_bytes: usize,
    idle_timeout: Duration,
    max_channels: usize,
    revalidate_every: Duration,
}

impl EndpointConfig {
    /// Phoenix's defaults where they are sound: path `/live/websocket`,
    /// CSRF checked, idle timeout 60 s, 100 channels per connection; and
    /// `origin`, which has no safe default. Frames and messages are limited
    /// to 128 KiB (event payloads to 64 KiB by the [`LiveApp`]), and the
    /// read buffer is 2 KiB (a join frame is about 0.5 KiB; tungstenite
    /// grows it for a larger message), so an idle connection stays small.
    pub fn new(origin: OriginPolicy) -> Self {
        Self {
            path: String::from("/live/websocket"),
            scheme: "http",
            origin,
            check_csrf: true,
            max_message_bytes: 128 * 1024,
            read_buffer_bytes: 2048,
            idle_timeout: Duration::from_secs(60),
            max_channels: DEFAULT_MAX_CHANNELS,
            revalidate_every: DEFAULT_REVALIDATE_EVERY,
        }
    }

    /// How often every live connection re-runs the `on_mount` hooks of its
    /// views (default 5 minutes), each interval drawn within ±20 % so
    /// connections do not re-validate in step. A connection with a view whose
    /// hooks now refuse is sent the view's redirect and closed with 1001 (the
    /// client reconnects and mounts again over HTTP). This is the backstop of
    /// the fault model (docs/FAULT-MODEL.md): whatever happens to the
    /// cluster's messages, a revoked session's connection lives at most this
    /// long (+20 %). It costs one run of the hooks (usually a session lookup)
    /// per connection per interval.
    pub fn revalidate_every(mut self, interval: Duration) -> Self {
        self.revalidate_every = interval;
        self
    }

    /// The upgrade path (phoenix.js connects to `<socket path>/websocket`).
    pub fn path(mut self, path: &str) -> Self {
        self.path = String::from(path);
        self
    }

    /// Whether clients reach the endpoint over TLS (behind a proxy that
    /// terminates it): the scheme [`OriginPolicy::same_as_request`]
    /// compares.
    pub fn https(mut self, https: bool) -> Self {
        self.scheme = if https { "https" } else { "http" };
        self
    }

    /// Whether the `_csrf_token` query parameter is checked (default yes).
    /// Turning it off is only sound with an Origin policy.
    pub fn check_csrf(mut self, check: bool) -> Self {
        self.check_csrf = check;
        self
    }

    /// The largest message (and frame) accepted; a larger one closes its
    /// connection with 1009.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The read buffer of each connection (default 2 KiB; tungstenite's
    /// 128 KiB costs that much per idle connection).
    pub fn read_buffer_bytes(mut self, bytes: usize) -> Self {
        self.read_buffer_bytes = bytes;
        self
    }

    /// How long a connection may stay silent (phoenix.js sends a heartbeat
    /// every 30 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How many channels one connection may join.
    pub fn max_channels(mut self, max: usize) -> Self {
        self.max_channels = max;
        self
    }

    fn websocket(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_bytes)
            // Each batch of frames is flushed at once.
            .write_buffer_size(0)
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// The endpoint could not be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EndpointConfigError {
    /// Both the Origin policy and the CSRF check are off: any page could
    /// open an authenticated socket (cross-site WebSocket hijacking).
    NoCrossSiteProtection,
    /// The path does not start with `/`.
    BadPath,
}

impl core::fmt::Display for EndpointConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NoCrossSiteProtection => "the Origin policy and the CSRF check are both off",
            Self::BadPath => "the endpoint path must start with '/'",
        })
    }
}

impl core::error::Error for EndpointConfigError {}

/// A WebSocket endpoint: the live application, the node its connections
/// register with, the session cookie and the configuration. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    app: Arc<LiveApp>,
    node: Arc<Node>,
    cookie: SessionCookie,
    config: EndpointConfig,
}

impl Endpoint {
    /// An endpoint for `app`, registering connections with `node` and
    /// reading sessions with `cookie`.
    pub fn new(
        app: Arc<LiveApp>,
        node: Arc<Node>,
        cookie: SessionCookie,
        config: EndpointConfig,
    ) -> Result<Self, EndpointConfigError> {
        if config.origin.is_off() && !config.check_csrf {
            return Err(EndpointConfigError::NoCrossSiteProtection);
        }
        if !config.path.starts_with('/') {
            return Err(EndpointConfigError::BadPath);
        }
        Ok(Self { inner: Arc::new(Inner { app, node, cookie, config }) })
    }

    /// The live application.
    pub fn app(&self) -> &Arc<LiveApp> {
        &self.inner.app
    }

    /// The node connections register with.
    pub fn node(&self) -> &Arc<Node> {
        &self.inner.node
    }

    /// Serves one connection over any byte stream: the HTTP upgrade (checked
    /// with [`Endpoint::check_upgrade`]), then the Channels protocol until
    /// the connection ends or `shutdown` turns `true` (close 1012).
    pub async fn accept<S>(&self, stream: S, shutdown: watch::Receiver<bool>) -> Result<(), ConnectionError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (ws, accepted) = driver::upgrade(self, stream).await?;
        self.run(ws, accepted, shutdown).await;
        Ok(())
    }

    /// Runs the Channels protocol on an upgraded WebSocket (for servers that
    /// do the upgrade themselves, after [`Endpoint::check_upgrade`]).
    pub async fn run<S>(
        &self,
        ws: tokio_tungstenite::WebSocketStream<S>,
        accepted: Accepted,
        shutdown: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        driver::run(self, ws, accepted, shutdown).await;
    }

    /// The upgrade path.
    pub fn path(&self) -> &str {
        &self.inner.config.path
    }

    /// The tungstenite configuration of this endpoint's connections.
    pub fn websocket_config(&self) -> WebSocketConfig {
        self.inner.config.websocket()
    }
}

/// Why a connection ended before its protocol started.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The upgrade was refused with this status.
    Refused(Refusal),
    /// The HTTP upgrade failed (not a WebSocket request, I/O).
    Handshake(tokio_tungstenite::tungstenite::Error),
}

impl core::fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Refused(refusal) => write!(f, "upgrade refused with {}", refusal.status),
            Self::Handshake(err) => write!(f, "websocket handshake failed: {err}"),
        }
    }
}

impl core::error::Error for ConnectionError {}

/// Accepts connections on `listener` until `shutdown` resolves, then closes
/// every connection with 1012 and returns once they have all ended.
pub async fn serve(listener: TcpListener, endpoint: Endpoint, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    // Per-connection failures (e.g. the peer reset before
                    // accept) and fd exhaustion must not stop the server; a
                    // short pause keeps fd exhaustion from spinning.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let endpoint = endpoint.clone();
                let stopped = stopped.clone();
                connections.spawn(async move {
                    let _ = endpoint.accept(stream, stopped).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}
