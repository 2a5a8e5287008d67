//! Structured records of every security decision.
//!
//! Each decision — a mount allowed or halted, a join refused, an event
//! denied, a token or cookie refused — becomes an [`AuditRecord`] handed to an
//! [`AuditSink`]. Records carry the detailed reason that peers never see.
//! With `std`, [`TracingSink`] writes them as `tracing` events; [`MemorySink`]
//! keeps them for tests.

use alloc::string::String;
use core::fmt;

use crate::token::Rejection;

/// Which of the two live phases a decision was made in.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Phase {
    /// The HTTP request (disconnected mount).
    Http,
    /// The WebSocket join (connected mount).
    Connected,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Connected => "connected",
        })
    }
}

/// One security decision.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum AuditRecord {
    /// Every hook continued and the view mounted.
    MountAllowed {
        /// The phase.
        phase: Phase,
        /// The view that mounted.
        view: String,
        /// Its `live_session`.
        live_session: String,
    },
    /// An `on_mount` hook halted with a redirect.
    MountHalted {
        /// The phase.
        phase: Phase,
        /// The view that was being mounted.
        view: String,
        /// The hook's name and argument, e.g. `UserAuth(require_authenticated)`.
        hook: String,
        /// Where the hook redirected.
        redirect: String,
    },
    /// An `on_mount` hook broke its contract (halt without a redirect, or
    /// continue with one).
    HookMisuse {
        /// The phase.
        phase: Phase,
        /// The hook's name and argument.
        hook: String,
        /// What it did wrong.
        detail: &'static str,
    },
    /// The view refused to mount (e.g. the resource is not found or not the
    /// user's).
    MountFailed {
        /// The phase.
        phase: Phase,
        /// The view.
        view: String,
        /// The HTTP status the failure maps to.
        status: u16,
    },
    /// A join was refused before any hook ran.
    JoinRefused {
        /// The topic of the join.
        topic: String,
        /// What the client was told (`stale`, `unauthorized`, ...).
        reply: &'static str,
        /// Why, in detail.
        detail: String,
    },
    /// A client event was refused before it reached the view.
    EventDenied {
        /// The view.
        view: String,
        /// The event name as the client sent it.
        event: String,
        /// The rule that refused it (`undeclared`, a policy's reason, a limit).
        rule: String,
    },
    /// A control message from the backbone was ignored: forged, replayed,
    /// stale, malformed, or for another id than its subject.
    ControlRefused {
        /// The subject it arrived on.
        subject: String,
        /// Why it was ignored.
        reason: String,
    },
    /// A WebSocket upgrade was refused (wrong path, protocol version or
    /// Origin).
    HandshakeRefused {
        /// The HTTP status the client got.
        status: u16,
        /// Why, in detail.
        detail: String,
    },
    /// A WebSocket was accepted without a session: its cookie or CSRF token
    /// did not verify, so every join answers `stale`.
    NoSession {
        /// Why, in detail.
        detail: String,
    },
    /// The server closed a live connection because of what the client sent
    /// (a malformed or oversized frame, an idle timeout).
    ConnectionClosed {
        /// The WebSocket close code.
        code: u16,
        /// Why, in detail.
        detail: String,
    },
    /// What the cluster protocol did or saw: revocations issued, made
    /// durable, applied or left undelivered, control messages refused, the
    /// node cut off from or caught up with the revocation log.
    Cluster(crate::cluster::protocol::ClusterEvent),
    /// A token or cookie was refused.
    TokenRefused {
        /// What kind of token (its purpose or the cookie name).
        purpose: String,
        /// The detailed reason.
        rejection: Rejection,
    },
}

impl fmt::Display for AuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MountAllowed { phase, view, live_session } => {
                write!(f, "mount allowed: {view} in live_session {live_session} ({phase})")
            }
            Self::MountHalted { phase, view, hook, redirect } => {
                write!(f, "mount halted: {hook} redirected {view} to {redirect} ({phase})")
            }
            Self::HookMisuse { phase, hook, detail } => write!(f, "hook misuse: {hook} {detail} ({phase})"),
            Self::MountFailed { phase, view, status } => write!(f, "mount failed: {view} answered {status} ({phase})"),
            Self::JoinRefused { topic, reply, detail } => write!(f, "join refused: {topic} -> {reply}: {detail}"),
            Self::EventDenied { view, event, rule } => write!(f, "event denied: {event:?} on {view} by {rule}"),
            Self::HandshakeRefused { status, detail } => write!(f, "websocket refused with {status}: {detail}"),
            Self::NoSession { detail } => write!(f, "websocket accepted without a session: {detail}"),
            Self::ConnectionClosed { code, detail } => write!(f, "connection closed with {code}: {detail}"),
            Self::TokenRefused { purpose, rejection } => write!(f, "token refused: {purpose}: {rejection}"),
            Self::ControlRefused { subject, reason } => write!(f, "control message refused on {subject}: {reason}"),
            Self::Cluster(event) => write!(f, "cluster: {event}"),
        }
    }
}

/// Receives audit records. Must not block: called on the request path.
pub trait AuditSink: Send + Sync {
    /// Takes one record.
    fn record(&self, record: AuditRecord);
}

/// Drops every record.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _record: AuditRecord) {}
}

/// Writes every record as a `tracing` event (target `liveguard::audit`):
/// refusals at `WARN`, allowed mounts at `DEBUG`.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

#[cfg(feature = "std")]
impl AuditSink for TracingSink {
    fn record(&self, record: AuditRecord) {
        match record {
            AuditRecord::MountAllowed { .. } => tracing::debug!(target: "liveguard::audit", "{record}"),
            _ => tracing::warn!(target: "liveguard::audit", "{record}"),
        }
    }
}

/// Keeps records in memory, for tests and diagnostics (only with `std`).
#[cfg(feature = "std")]
#[derive(Debug, Default)]
pub struct MemorySink {
    records: std::sync::Mutex<std::vec::Vec<AuditRecord>>,
}

#[cfg(feature = "std")]
impl MemorySink {
    /// A sink with no records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every record kept so far.
    pub fn take(&self) -> std::vec::Vec<AuditRecord> {
        match self.records.lock() {
            Ok(mut records) => core::mem::take(&mut *records),
            Err(poisoned) => core::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

#[cfg(feature = "std")]
impl AuditSink for MemorySink {
    fn record(&self, record: AuditRecord) {
        match self.records.lock() {
            Ok(mut records) => records.push(record),
            Err(poisoned) => poisoned.into_inner().push(record),
        }
    }
}
