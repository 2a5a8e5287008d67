//! The tokens an HTTP render puts in the page and the join sends back:
//! the session token (`data-phx-session`) and the static token
//! (`data-phx-static`).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::csrf::CsrfState;
use crate::keys::KeyRing;
use crate::time::{MaxAge, Timestamp};
use crate::token::{Rejection, SignError, SignedTokens, Verified};

/// The version of the join token's contents. A token of another version
/// answers `outdated`, and the client reloads the page.
pub const JOIN_TOKEN_VERSION: u8 = 1;

const JOIN_PURPOSE: &str = "liveguard live session";
const STATIC_PURPOSE: &str = "liveguard live static";
const BINDING_LEN: usize = 16;

/// The signed contents of `data-phx-session`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub(crate) struct JoinClaims {
    pub(crate) id: String,
    pub(crate) view: String,
    pub(crate) live_session: String,
    pub(crate) live_session_version: u32,
    /// Ties the token to the cookie session it was rendered for.
    pub(crate) binding: [u8; BINDING_LEN],
    /// The `live_session`'s extra session (postcard values by key).
    pub(crate) extra: BTreeMap<String, Vec<u8>>,
}

/// The signed contents of `data-phx-static`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub(crate) struct StaticClaims {
    pub(crate) id: String,
    pub(crate) assign_new: Vec<String>,
}

/// Why a join token was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum JoinTokenError {
    Token(Rejection),
    Outdated,
}

#[derive(Clone, Debug)]
pub(crate) struct JoinTokens {
    session: SignedTokens,
    statics: SignedTokens,
    max_age: MaxAge,
}

impl JoinTokens {
    pub(crate) fn new(ring: &KeyRing, max_age: MaxAge) -> Self {
        Self {
            session: SignedTokens::new(ring, JOIN_PURPOSE),
            statics: SignedTokens::new(ring, STATIC_PURPOSE),
            max_age,
        }
    }

    pub(crate) fn sign(&self, claims: &JoinClaims, now: Timestamp) -> Result<String, SignError> {
        // The version travels outside the claims so that a token whose claims
        // no longer decode is still recognised as outdated.
        let inner = postcard::to_allocvec(claims).map_err(|_| SignError::Serialize)?;
        self.session.sign_with_max_age(&(JOIN_TOKEN_VERSION, inner), now, self.max_age)
    }

    pub(crate) fn verify(&self, token: &str, now: Timestamp) -> Result<Verified<JoinClaims>, JoinTokenError> {
        let verified = self
            .session
            .verify_with_max_age::<(u8, Vec<u8>)>(token, now, self.max_age)
            .map_err(|err| JoinTokenError::Token(err.rejection()))?;
        let (version, inner) = verified.data;
        if version != JOIN_TOKEN_VERSION {
            return Err(JoinTokenError::Outdated);
        }
        let claims = postcard::from_bytes(&inner).map_err(|_| JoinTokenError::Token(Rejection::BadPayload))?;
        Ok(Verified {
            data: claims,
            key_id: verified.key_id,
            signed_at: verified.signed_at,
            expires_at: verified.expires_at,
        })
    }

    pub(crate) fn sign_static(&self, claims: &StaticClaims, now: Timestamp) -> Result<String, SignError> {
        self.statics.sign_with_max_age(claims, now, self.max_age)
    }

    pub(crate) fn verify_static(&self, token: &str, now: Timestamp) -> Result<StaticClaims, Rejection> {
        self.statics.verify_with_max_age(token, now, self.max_age).map(|v| v.data).map_err(|err| err.rejection())
    }
}

/// A digest of the session's CSRF state: the join token carries it, and a
/// join is refused unless the connecting session's state digests the same.
/// The state never appears in pages, so a token copied out of one browser's
/// page cannot join from another session.
pub(crate) fn binding(state: &CsrfState) -> [u8; BINDING_LEN] {
    let digest = Sha256::new().chain_update(b"liveguard join binding\0").chain_update(state.as_str()).finalize();
    let mut out = [0u8; BINDING_LEN];
    out.copy_from_slice(&digest[..BINDING_LEN]);
    out
}

pub(crate) fn bindings_match(a: &[u8; BINDING_LEN], b: &[u8; BINDING_LEN]) -> bool {
    a.ct_eq(b).into()
}
