//! Control messages on the backbone: versioned, MAC'd, dated, identified,
//! and refused when forged, replayed, stale or malformed.
//!
//! A control message travels as a signed token of this crate's format (see
//! [`crate::token`]) under a key derived for the purpose
//! `"liveguard control"`, so its tag covers the format version, the key id
//! and the body, and its signing time and maximum age are checked before the
//! body is decoded. The body carries a random message id and the issuing
//! node; a [`ReplayGuard`] remembers the ids it accepted until they would be
//! stale anyway, so a captured message cannot be played again.
//!
//! A service that can publish on the bus but does not hold the secret key
//! base cannot disconnect anyone: its messages are refused and audited.

use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, KeyRing};
use crate::random::{RandomError, SecureRandom};
use crate::socket_id::LiveSocketId;
use crate::time::{MaxAge, Timestamp};
use crate::token::{Rejection, SignError, SignedTokens, TokenConfig};

const PURPOSE: &str = "liveguard control";

/// A random 128-bit message id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 16]);

impl MessageId {
    /// A fresh random id.
    pub fn random(rng: &mut impl SecureRandom) -> Result<Self, RandomError> {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes)?;
        Ok(Self(bytes))
    }
}

impl MessageId {
    /// The id as 32 lowercase hex digits (safe in a subject token).
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(32);
        for byte in &self.0 {
            let _ = fmt::Write::write_fmt(&mut hex, format_args!("{byte:02x}"));
        }
        hex
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageId(")?;
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// What a control message asks for.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Command {
    /// Close every live connection registered under this id (close code
    /// 1001), and acknowledge with the number closed.
    Disconnect(LiveSocketId),
    /// Re-run the `on_mount` checks of every live connection under this id,
    /// in place.
    Reauthorize(LiveSocketId),
    /// Close every live connection whose session was verified under this key.
    RetireKey(KeyId),
    /// The issuing node is alive (membership).
    Heartbeat,
    /// The answer of a node to a command.
    Ack {
        /// The message answered.
        to: MessageId,
        /// How many live connections the node acted on.
        connections: u32,
    },
    /// Sent on the control subject by a node that just subscribed to this
    /// id's subject: every node answers with an `Ack` published *on the id's
    /// subject*, which reaches the prober only once the answering node's
    /// server routes that subject to it.
    Probe(LiveSocketId),
}

/// The authenticated body of a control message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ControlMessage {
    /// Unique per message; replays are refused.
    pub id: MessageId,
    /// The node that issued it.
    pub node: String,
    /// What it asks for.
    pub command: Command,
}

/// A control message that passed every check.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Accepted {
    /// The message.
    pub message: ControlMessage,
    /// When it was issued.
    pub issued_at: Timestamp,
}

/// Why a control message was ignored (for the audit log).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ControlRejection {
    /// The tag, format or body did not verify: forged or malformed.
    Invalid(Rejection),
    /// Older than the configured maximum age.
    Stale,
    /// A message with this id was already accepted.
    Replayed,
}

impl fmt::Display for ControlRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(rejection) => write!(f, "invalid control message: {rejection}"),
            Self::Stale => f.write_str("stale control message"),
            Self::Replayed => f.write_str("replayed control message"),
        }
    }
}

impl core::error::Error for ControlRejection {}

/// Signs and checks control messages. Build once per node.
#[derive(Clone, Debug)]
pub struct ControlCodec {
    tokens: SignedTokens,
    max_age_secs: u64,
}

impl ControlCodec {
    /// Control messages under `ring`, refused once older than `max_age_secs`
    /// (or dated further ahead than `clock_skew_ms`).
    pub fn new(ring: &KeyRing, max_age_secs: u64, clock_skew_ms: u64) -> Self {
        let config = TokenConfig::default().max_len(2048).clock_skew_ms(clock_skew_ms);
        Self { tokens: SignedTokens::with_config(ring, PURPOSE, config), max_age_secs }
    }

    /// Signs `message` as issued at `now`.
    pub fn encode(&self, message: &ControlMessage, now: Timestamp) -> Result<String, SignError> {
        self.tokens.sign_with_max_age(message, now, MaxAge::Seconds(self.max_age_secs))
    }

    /// Checks `bytes` at `now`: tag, age, then (through `guard`) replay.
    pub fn decode(&self, bytes: &[u8], now: Timestamp, guard: &mut ReplayGuard) -> Result<Accepted, ControlRejection> {
        let text = core::str::from_utf8(bytes).map_err(|_| ControlRejection::Invalid(Rejection::Malformed))?;
        // The age in the message is ignored: this node's maximum applies.
        let verified = self
            .tokens
            .verify_with_max_age::<ControlMessage>(text, now, MaxAge::Seconds(self.max_age_secs))
            .map_err(|err| match err.rejection() {
                Rejection::Expired => ControlRejection::Stale,
                other => ControlRejection::Invalid(other),
            })?;
        let forget_after = verified.expires_at.unwrap_or(now);
        if !guard.admit(verified.data.id, forget_after, now) {
            return Err(ControlRejection::Replayed);
        }
        Ok(Accepted { message: verified.data, issued_at: verified.signed_at })
    }
}

/// Remembers accepted message ids until they would be stale anyway.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: BTreeMap<MessageId, Timestamp>,
    by_expiry: BTreeMap<(Timestamp, MessageId), ()>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits `id` unless it was admitted before; remembers it until
    /// `forget_after`. Forgets everything that lapsed before `now`, so memory
    /// is bounded by the message rate times the maximum age.
    pub fn admit(&mut self, id: MessageId, forget_after: Timestamp, now: Timestamp) -> bool {
        while let Some((&(expiry, old), ())) = self.by_expiry.iter().next() {
            if expiry >= now {
                break;
            }
            self.by_expiry.remove(&(expiry, old));
            self.seen.remove(&old);
        }
        if self.seen.contains_key(&id) {
            return false;
        }
        self.seen.insert(id, forget_after);
        self.by_expiry.insert((forget_after, id), ());
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
