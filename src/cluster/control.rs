//! Control messages on the backbone: versioned, MAC'd, identified, and
//! refused when forged or malformed.
//!
//! A control message travels as a signed token of this crate's format (see
//! [`crate::token`]) under a key derived for the cluster's control purpose,
//! so its tag covers the format version, the key id and the body, and is
//! checked in constant time before the body is decoded. The body carries a
//! random [`MessageId`] and the issuing node.
//!
//! Replay protection does not come from the wall clock: revocations are
//! applied from their position in the durable log, once per position and
//! once per message id ([`super::protocol`]); heartbeats and answers only
//! ever raise what a node believes of its peers. A clock stepped backwards
//! or forwards therefore neither reopens nor closes a replay window, and
//! nodes need no synchronised clocks for the cluster's guarantees.
//!
//! A service that can publish on the bus but does not hold the secret key
//! base cannot revoke or resurrect anyone: its messages are refused and
//! audited.

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, KeyRing};
use crate::random::{RandomError, SecureRandom};
use crate::socket_id::LiveSocketId;
use crate::time::{MaxAge, Timestamp};
use crate::token::{Rejection, SignError, SignedTokens, TokenConfig};

const PURPOSE: &str = "liveguard control";

/// The largest control message accepted, in bytes. Larger ones are refused
/// before they are copied or scanned.
pub const MAX_CONTROL_BYTES: usize = 2048;

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

    /// The id as 32 lowercase hex digits (safe in a subject token and as a
    /// JetStream message id).
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

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A fact every node must apply: recorded in the durable log and applied
/// from it, once, in log order.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Revocation {
    /// Close every live connection registered under this id (close code
    /// 1001).
    Disconnect(LiveSocketId),
    /// Re-run the `on_mount` checks of every live connection under this id,
    /// in place.
    Reauthorize(LiveSocketId),
    /// Close every live connection whose session was verified under this key.
    RetireKey(KeyId),
}

/// What a control message says.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Command {
    /// A revocation (durable log only).
    Revoke(Revocation),
    /// The issuing node is alive and has applied the log up to `applied`
    /// (membership; and a loss-tolerant acknowledgement of every revocation
    /// up to that position).
    Heartbeat {
        /// The last log position the node applied.
        applied: u64,
    },
    /// A node applied a revocation: the immediate answer to its issuer.
    Ack {
        /// The revocation's message id.
        to: MessageId,
        /// Its log position.
        position: u64,
        /// How many live connections the node acted on.
        connections: u32,
    },
}

/// The authenticated body of a control message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ControlMessage {
    /// Unique per message.
    pub id: MessageId,
    /// The node that issued it.
    pub node: String,
    /// What it says.
    pub command: Command,
}

/// Why a control message was ignored (for the audit log).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ControlRejection {
    /// Larger than [`MAX_CONTROL_BYTES`]: refused unread.
    TooLarge,
    /// The tag, format or body did not verify: forged or malformed.
    Invalid(Rejection),
    /// Genuine, but on a subject that does not match its body (another id,
    /// another sender, a command that does not belong there).
    WrongSubject,
}

impl fmt::Display for ControlRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("control message too large"),
            Self::Invalid(rejection) => write!(f, "invalid control message: {rejection}"),
            Self::WrongSubject => f.write_str("control message on a subject that does not match its body"),
        }
    }
}

impl core::error::Error for ControlRejection {}

/// Signs and checks control messages. Build once per node (it runs the key
/// derivation).
#[derive(Clone, Debug)]
pub struct ControlCodec {
    tokens: SignedTokens,
}

impl ControlCodec {
    /// Control messages under `ring`.
    pub fn new(ring: &KeyRing) -> Self {
        // No age and no skew rule: a revocation read from the log after an
        // hour-long partition is as valid as a fresh one, and a node's clock
        // must not decide whether it obeys (see the module docs).
        let config = TokenConfig::default().max_len(MAX_CONTROL_BYTES).clock_skew_ms(u64::MAX);
        Self { tokens: SignedTokens::with_config(ring, PURPOSE, config) }
    }

    /// Signs `message`; `now` is recorded for diagnostics only.
    pub fn encode(&self, message: &ControlMessage, now: Timestamp) -> Result<String, SignError> {
        self.tokens.sign_with_max_age(message, now, MaxAge::Unlimited)
    }

    /// Checks `bytes`: size, then tag, then the body. Returns the message
    /// and when its issuer says it signed it.
    pub fn decode(&self, bytes: &[u8], now: Timestamp) -> Result<(ControlMessage, Timestamp), ControlRejection> {
        if bytes.len() > MAX_CONTROL_BYTES {
            return Err(ControlRejection::TooLarge);
        }
        let text = core::str::from_utf8(bytes).map_err(|_| ControlRejection::Invalid(Rejection::Malformed))?;
        let verified = self
            .tokens
            .verify_with_max_age::<ControlMessage>(text, now, MaxAge::Unlimited)
            .map_err(|err| ControlRejection::Invalid(err.rejection()))?;
        Ok((verified.data, verified.signed_at))
    }
}
