//! The node-local registry of live connections by `live_socket_id`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

use tokio::sync::mpsc;

use crate::keys::KeyId;
use crate::socket_id::LiveSocketId;

/// Why the node closes a live connection; each maps to a WebSocket close
/// code.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum CloseReason {
    /// A disconnect for the connection's `live_socket_id` (log out): 1001,
    /// so every phoenix.js version reconnects and re-mounts.
    Disconnected,
    /// The key that verified the session was retired: 1001.
    KeyRetired,
    /// The session failed re-validation (after a backbone outage, or
    /// `reauthorize`): 1001, so the client re-mounts and is redirected.
    Revalidated,
    /// The backbone was lost for longer than the grace period: 1001.
    BackboneLost,
    /// The node is shutting down: 1012 (service restart).
    Shutdown,
}

impl CloseReason {
    /// The WebSocket close code for this reason.
    pub fn close_code(self) -> u16 {
        match self {
            Self::Shutdown => 1012,
            _ => 1001,
        }
    }
}

/// What the node asks of one live connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConnectionCommand {
    /// Close with this reason.
    Close(CloseReason),
    /// Re-run the `on_mount` checks in place, keeping the connection.
    Reauthorize,
}

/// The receiving end a live connection listens on for [`ConnectionCommand`]s.
#[derive(Debug)]
pub struct ConnectionEvents {
    rx: mpsc::UnboundedReceiver<ConnectionCommand>,
}

impl ConnectionEvents {
    /// The next command; `None` once the registry dropped the connection.
    pub async fn recv(&mut self) -> Option<ConnectionCommand> {
        self.rx.recv().await
    }

    /// A command already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<ConnectionCommand> {
        self.rx.try_recv().ok()
    }
}

struct Entry {
    conn: u64,
    key_id: KeyId,
    tx: mpsc::UnboundedSender<ConnectionCommand>,
}

/// A change of this node's interest in a `live_socket_id`: the first
/// connection under it arrived, or the last one left.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum InterestChange {
    /// Subscribe to this id.
    Added(LiveSocketId),
    /// Unsubscribe from this id.
    Removed(LiveSocketId),
}

/// Live connections by `live_socket_id`, with O(1) register and unregister
/// (a connection scan covers only one id's tabs).
#[derive(Default)]
pub struct Registry {
    by_id: Mutex<HashMap<LiveSocketId, Vec<Entry>>>,
    next: AtomicU64,
    interest: Option<mpsc::UnboundedSender<InterestChange>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("connections", &self.len()).finish_non_exhaustive()
    }
}

/// A connection's place in the [`Registry`]; unregisters on drop.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    id: LiveSocketId,
    conn: u64,
}

impl Registration {
    /// The id the connection is registered under.
    pub fn live_socket_id(&self) -> &LiveSocketId {
        &self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.unregister(&self.id, self.conn);
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry that reports the first and last connection of each
    /// id on `interest` (for one subscription per id).
    pub fn with_interest(interest: mpsc::UnboundedSender<InterestChange>) -> Self {
        Self { interest: Some(interest), ..Self::default() }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<LiveSocketId, Vec<Entry>>> {
        // A poisoned lock only means a panic elsewhere mid-update of a map
        // whose every update is a single insert or remove: keep serving.
        self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a live connection under `id`, whose session was verified
    /// under `key_id`. The connection listens on the returned events and
    /// stays registered until the [`Registration`] is dropped.
    pub fn register(self: &Arc<Self>, id: LiveSocketId, key_id: KeyId) -> (Registration, ConnectionEvents) {
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = self.next.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut map = self.lock();
            let entries = map.entry(id.clone()).or_default();
            entries.push(Entry { conn, key_id, tx });
            entries.len() == 1
        };
        if first {
            self.notify(InterestChange::Added(id.clone()));
        }
        (Registration { registry: Arc::clone(self), id, conn }, ConnectionEvents { rx })
    }

    fn unregister(&self, id: &LiveSocketId, conn: u64) {
        let last = {
            let mut map = self.lock();
            let Some(entries) = map.get_mut(id) else { return };
            entries.retain(|entry| entry.conn != conn);
            let empty = entries.is_empty();
            if empty {
                map.remove(id);
            }
            empty
        };
        if last {
            self.notify(InterestChange::Removed(id.clone()));
        }
    }

    fn notify(&self, change: InterestChange) {
        if let Some(interest) = &self.interest {
            // The receiver lives as long as the node; a closed one means the
            // node is shutting down and interest no longer matters.
            let _ = interest.send(change);
        }
    }

    /// Sends `command` to every connection under `id`; returns how many got
    /// it.
    pub fn send(&self, id: &LiveSocketId, command: ConnectionCommand) -> u32 {
        let map = self.lock();
        let Some(entries) = map.get(id) else { return 0 };
        count(entries.iter().filter(|entry| entry.tx.send(command).is_ok()))
    }

    /// Closes every connection under `id`.
    pub fn disconnect(&self, id: &LiveSocketId) -> u32 {
        self.send(id, ConnectionCommand::Close(CloseReason::Disconnected))
    }

    /// Closes every connection whose session was verified under `key_id`.
    pub fn retire_key(&self, key_id: KeyId) -> u32 {
        let map = self.lock();
        count(
            map.values()
                .flatten()
                .filter(|entry| entry.key_id == key_id)
                .filter(|entry| entry.tx.send(ConnectionCommand::Close(CloseReason::KeyRetired)).is_ok()),
        )
    }

    /// Sends `command` to every connection of this node.
    pub fn broadcast(&self, command: ConnectionCommand) -> u32 {
        let map = self.lock();
        count(map.values().flatten().filter(|entry| entry.tx.send(command).is_ok()))
    }

    /// How many connections are registered under `id`.
    pub fn count(&self, id: &LiveSocketId) -> usize {
        self.lock().get(id).map_or(0, Vec::len)
    }

    /// How many connections are registered.
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// How many distinct ids have connections here.
    pub fn ids(&self) -> usize {
        self.lock().len()
    }
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> LiveSocketId {
        LiveSocketId::new(s).unwrap()
    }

    #[test]
    fn disconnect_reaches_every_tab_of_the_id_and_nothing_else() {
        let registry = Arc::new(Registry::new());
        let (_a1, mut e1) = registry.register(id("users_sessions:a"), KeyId(1));
        let (_a2, mut e2) = registry.register(id("users_sessions:a"), KeyId(1));
        let (_b, mut other) = registry.register(id("users_sessions:b"), KeyId(1));
        assert_eq!(registry.disconnect(&id("users_sessions:a")), 2);
        let close = Some(ConnectionCommand::Close(CloseReason::Disconnected));
        assert_eq!((e1.try_recv(), e2.try_recv()), (close, close));
        assert_eq!(other.try_recv(), None);
        assert_eq!(registry.disconnect(&id("nobody")), 0);
    }

    #[test]
    fn dropping_a_registration_unregisters_and_reports_interest() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let registry = Arc::new(Registry::with_interest(tx));
        let (first, _) = registry.register(id("x"), KeyId(1));
        let (second, _) = registry.register(id("x"), KeyId(1));
        assert_eq!(rx.try_recv().ok(), Some(InterestChange::Added(id("x"))));
        assert!(rx.try_recv().is_err(), "a second tab changes no interest");
        assert_eq!((registry.len(), registry.ids()), (2, 1));
        drop(first);
        assert!(rx.try_recv().is_err());
        drop(second);
        assert_eq!(rx.try_recv().ok(), Some(InterestChange::Removed(id("x"))));
        assert!(registry.is_empty());
    }

    #[test]
    fn retire_key_closes_only_sessions_verified_under_it() {
        let registry = Arc::new(Registry::new());
        let (_old, mut old) = registry.register(id("a"), KeyId(1));
        let (_new, mut new) = registry.register(id("a"), KeyId(2));
        assert_eq!(registry.retire_key(KeyId(1)), 1);
        assert_eq!(old.try_recv(), Some(ConnectionCommand::Close(CloseReason::KeyRetired)));
        assert_eq!(new.try_recv(), None);
    }

    #[test]
    fn close_codes() {
        assert_eq!(CloseReason::Disconnected.close_code(), 1001);
        assert_eq!(CloseReason::Shutdown.close_code(), 1012);
    }
}
