//! One connection's loop: frames in, frames out, cluster commands, timers.

use std::boxed::Box;
use std::format;
use std::string::String;
use std::time::Duration;
use std::vec::Vec;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{Accepted, ConnectionError, Endpoint};
use crate::audit::AuditRecord;
use crate::cluster::registry::{ConnectionCommand, ConnectionEvents};
use crate::live::LiveConnection;
use crate::time::Timestamp;

/// How long a closing connection waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The HTTP upgrade, with [`Endpoint::check_upgrade`] as tungstenite's
/// header callback.
// tungstenite's callback signature fixes the large error response type.
#[allow(clippy::result_large_err)]
pub(super) async fn upgrade<S>(
    endpoint: &Endpoint,
    stream: S,
) -> Result<(WebSocketStream<S>, Accepted), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut checked = None;
    let callback = |request: &Request, mut response: Response| match endpoint.check_upgrade(request, Timestamp::now()) {
        Ok(accepted) => {
            if accepted.phoenix_subprotocol {
                response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("phoenix"));
            }
            checked = Some(Ok(accepted));
            Ok(response)
        }
        Err(refusal) => {
            checked = Some(Err(refusal));
            let mut response = ErrorResponse::new(None);
            *response.status_mut() = refusal.status;
            Err(response)
        }
    };
    let upgraded =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(endpoint.websocket_config())).await;
    match (upgraded, checked) {
        (Ok(ws), Some(Ok(accepted))) => Ok((ws, accepted)),
        (_, Some(Err(refusal))) => Err(ConnectionError::Refused(refusal)),
        (Err(err), _) => Err(ConnectionError::Handshake(err)),
        // The callback runs before tungstenite answers an upgrade.
        (Ok(_), None) => Err(ConnectionError::Handshake(WsError::ConnectionClosed)),
    }
}

/// Why the server ends a connection.
struct Close {
    code: u16,
    reason: &'static str,
}

pub(super) async fn run<S>(
    endpoint: &Endpoint,
    mut ws: WebSocketStream<S>,
    accepted: Accepted,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let inner = &endpoint.inner;
    let audit = |code: u16, detail: String| inner.app.audit().record(AuditRecord::ConnectionClosed { code, detail });
    // Registered before the first frame is read: every join, the session's
    // last validation, comes after the node listens for its disconnects.
    let (_registration, mut events) = match accepted.registration {
        Some((id, key_id)) => match inner.node.register(id, key_id) {
            Ok((registration, events)) => (Some(registration), Some(events)),
            Err(err) => {
                audit(1013, format!("registration failed: {err}"));
                close(&mut ws, Close { code: 1013, reason: "try again later" }).await;
                return;
            }
        },
        None => (None, None),
    };
    let mut conn = LiveConnection::new(inner.app.clone(), accepted.session, inner.config.max_channels);
    let expiry = accepted.expires_at.map(|at| {
        let left = at.as_unix_millis().saturating_sub(Timestamp::now().as_unix_millis());
        Instant::now() + Duration::from_millis(left)
    });
    let expired = sleep_until(expiry.unwrap_or_else(Instant::now));
    let idle_timeout = inner.config.idle_timeout;
    let idle = sleep(idle_timeout);
    let revalidate_every = inner.config.revalidate_every;
    let revalidate = sleep(jittered(revalidate_every));
    tokio::pin!(expired, idle, revalidate);
    let mut out: Vec<String> = Vec::new();

    let ended = loop {
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break Close { code: 1012, reason: "service restart" };
                }
            }
            command = next_command(&mut events) => match command {
                ConnectionCommand::Close(reason) => {
                    break Close { code: reason.close_code(), reason: "going away" };
                }
                // Boxed: an idle connection's task is only as large as this
                // loop, not the largest per-frame future.
                ConnectionCommand::Reauthorize => {
                    Box::pin(conn.reauthorize(&mut out)).await;
                }
            },
            () = &mut expired, if expiry.is_some() => break Close { code: 1001, reason: "session expired" },
            () = &mut revalidate => {
                revalidate.as_mut().reset(Instant::now() + jittered(revalidate_every));
                if Box::pin(conn.reauthorize(&mut out)).await > 0 {
                    audit(1001, String::from("a view's hooks refused on periodic re-validation"));
                    break Close { code: 1001, reason: "going away" };
                }
            }
            () = &mut idle => {
                audit(1000, format!("idle for {} ms", idle_timeout.as_millis()));
                break Close { code: 1000, reason: "idle timeout" };
            }
            message = ws.next() => {
                idle.as_mut().reset(Instant::now() + idle_timeout);
                match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Err(err) = Box::pin(conn.receive(text.as_str(), Timestamp::now(), &mut out)).await {
                            audit(1007, format!("{err}"));
                            break Close { code: 1007, reason: "invalid frame" };
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        audit(1003, String::from("binary frame"));
                        break Close { code: 1003, reason: "binary frames are not served" };
                    }
                    // Pings are answered by tungstenite; a close frame is
                    // answered too, and the stream then ends.
                    Some(Ok(_)) => {}
                    Some(Err(WsError::Capacity(err))) => {
                        audit(1009, format!("{err}"));
                        break Close { code: 1009, reason: "message too big" };
                    }
                    Some(Err(WsError::Utf8(_))) => {
                        audit(1007, String::from("text frame is not UTF-8"));
                        break Close { code: 1007, reason: "invalid frame" };
                    }
                    // The peer closed, reset, or broke the WebSocket protocol
                    // (tungstenite has already answered what it could).
                    None | Some(Err(_)) => return,
                }
            }
        }
        if !out.is_empty() && send_all(&mut ws, &mut out).await.is_err() {
            return;
        }
    };
    let _ = send_all(&mut ws, &mut out).await;
    close(&mut ws, ended).await;
}

/// `interval` scaled by a random factor in [0.8, 1.2].
fn jittered(interval: Duration) -> Duration {
    let mut bytes = [0u8; 2];
    // Without randomness the interval is used as is: only the spread is lost.
    let draw =
        crate::SecureRandom::fill(&mut crate::OsRandom, &mut bytes).map_or(0x8000, |()| u16::from_be_bytes(bytes));
    let permille = 800 + u64::from(draw) * 400 / u64::from(u16::MAX);
    Duration::from_millis(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).saturating_mul(permille) / 1000)
}

async fn next_command(events: &mut Option<ConnectionEvents>) -> ConnectionCommand {
    match events {
        Some(events) => match events.recv().await {
            Some(command) => command,
            // Only when the registration was dropped, which this loop holds.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn send_all<S>(ws: &mut WebSocketStream<S>, out: &mut Vec<String>) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for frame in out.drain(..) {
        ws.feed(Message::text(frame)).await?;
    }
    ws.flush().await
}

/// Sends the close frame and waits briefly for the client's, so the close
/// code reaches it before the TCP connection ends.
async fn close<S>(ws: &mut WebSocketStream<S>, close: Close)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame { code: CloseCode::from(close.code), reason: close.reason.into() };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
        // After an oversized or malformed frame, the rest of it is still
        // arriving. Closing the socket with unread bytes makes the kernel
        // send a reset, and the client loses the close frame (it sees 1006,
        // not the code we sent). So the server hangs up its sending side
        // first (RFC 6455 has the server close TCP first; clients wait for
        // it), then reads the rest into a fixed buffer and discards it until
        // the client hangs up too or the grace runs out.
        let _ = tokio::io::AsyncWriteExt::shutdown(ws.get_mut()).await;
        let mut sink = [0u8; 4096];
        while let Ok(read) = tokio::io::AsyncReadExt::read(ws.get_mut(), &mut sink).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}
