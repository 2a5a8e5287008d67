//! The cluster side: control messages, and (with `std`) the node-local
//! registry of live connections by `live_socket_id`.
//!
//! Every live connection registers under its session's `live_socket_id`
//! before its session is validated for the last time, so a disconnect
//! racing a mount always wins. A disconnect published by any node closes
//! every connection under that id on every node, with close code 1001, and
//! nothing else. Control messages are MAC'd under a key derived for that
//! purpose and refused when forged, replayed, stale or malformed.

#[cfg(feature = "std")]
pub mod backbone;
pub mod control;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "std")]
pub mod node;
#[cfg(feature = "std")]
pub mod registry;
