//! The one base64 dialect of every text format here: URL-safe alphabet, no
//! padding, and strict decoding (non-zero trailing bits are refused), so that
//! each byte string has exactly one text form and a flipped bit in the text
//! can never decode to the same bytes.

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Appends the unpadded base64url form of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Encodes `bytes` into `out`, returning the number of bytes written, or
/// `None` when `out` is too small.
pub(crate) fn encode_slice(bytes: &[u8], out: &mut [u8]) -> Option<usize> {
    URL_SAFE_NO_PAD.encode_slice(bytes, out).ok()
}

/// Decodes unpadded base64url, or `None` for anything else.
pub(crate) fn decode(text: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes unpadded base64url into `out` (which must be large enough),
/// returning the number of bytes written, or `None` for anything else.
pub(crate) fn decode_into(text: &[u8], out: &mut [u8]) -> Option<usize> {
    URL_SAFE_NO_PAD.decode_slice(text, out).ok()
}

/// The number of bytes `len` base64url characters decode to, or `None` when
/// no unpadded base64url text has that length.
pub(crate) const fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        rem => Some(len / 4 * 3 + rem.saturating_sub(1)),
    }
}
