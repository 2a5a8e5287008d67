//! The cluster side: revocations that reach every node, and (with `std`)
//! the node-local registry of live connections by `live_socket_id`.
//!
//! Every live connection registers under its session's `live_socket_id`
//! before its session is validated for the last time. A revocation
//! (disconnect an id, re-authorize it, retire a key) closes the issuing
//! node's own connections at once, is recorded in a durable log (a JetStream
//! stream with NATS), and is applied by every node from its own position in
//! the log, once and in order. Control messages are MAC'd under a key
//! derived for that purpose and refused when forged or malformed. The fault
//! model, with the bound on a revoked connection's life under each fault,
//! is `docs/FAULT-MODEL.md`.
//!
//! - [`control`]: the signed messages (core, `no_std`).
//! - [`protocol`]: the node protocol as a sans-IO state machine (core).
//! - `backbone`, `node`, `registry` (`std`): the backbone trait with the
//!   in-process implementation, the tokio driver, the registry.
//! - `nats` (feature `nats`): NATS and JetStream.

#[cfg(feature = "std")]
pub mod backbone;
pub mod control;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "std")]
pub mod node;
pub mod protocol;
#[cfg(feature = "std")]
pub mod registry;
