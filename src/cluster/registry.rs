//! The node-local registry of live connections by `live_socket_id`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

use tokio::sync::Notify;

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
    /// Most telling first: when several closes coalesce, the first of these
    /// that was posted is the reason the client is told.
    const PRECEDENCE: [Self; 5] =
        [Self::Disconnected, Self::KeyRetired, Self::Revalidated, Self::BackboneLost, Self::Shutdown];

    /// One bit per reason, so coalesced closes keep every reason.
    fn bit(self) -> u8 {
        match self {
            Self::Disconnected => 1,
            Self::KeyRetired => 2,
            Self::Revalidated => 4,
            Self::BackboneLost => 8,
            Self::Shutdown => 16,
        }
    }

    fn from_bits(bits: u8) -> Option<Self> {
        Self::PRECEDENCE.into_iter().find(|reason| bits & reason.bit() != 0)
    }

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

/// Where the registry leaves commands for one connection: a single word of
/// pending commands and a wake-up, instead of a queue. Commands coalesce:
/// a close wins over a re-authorization, and repeated ones are one.
#[derive(Debug, Default)]
struct Slot {
    pending: AtomicU8,
    notify: Notify,
}

const REAUTHORIZE: u8 = 1;
const UNREGISTERED: u8 = 2;
const CLOSE_SHIFT: u8 = 2;

impl Slot {
    fn post(&self, bits: u8) {
        self.pending.fetch_or(bits, Ordering::AcqRel);
        // Stores a permit when nobody waits, so no wake-up is lost.
        self.notify.notify_one();
    }

    fn take(&self) -> Option<Option<ConnectionCommand>> {
        let bits = self.pending.swap(0, Ordering::AcqRel);
        if let Some(reason) = CloseReason::from_bits(bits >> CLOSE_SHIFT) {
            return Some(Some(ConnectionCommand::Close(reason)));
        }
        if bits & REAUTHORIZE != 0 {
            return Some(Some(ConnectionCommand::Reauthorize));
        }
        (bits & UNREGISTERED != 0).then_some(None)
    }
}

/// The receiving end a live connection listens on for [`ConnectionCommand`]s.
#[derive(Debug)]
pub struct ConnectionEvents {
    slot: Arc<Slot>,
}

impl ConnectionEvents {
    /// The next command; `None` once the connection's [`Registration`] was
    /// dropped.
    pub async fn recv(&mut self) -> Option<ConnectionCommand> {
        loop {
            if let Some(command) = self.slot.take() {
                return command;
            }
            self.slot.notify.notified().await;
        }
    }

    /// A command already waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<ConnectionCommand> {
        self.slot.take().flatten()
    }
}

struct Entry {
    conn: u64,
    key_id: KeyId,
    slot: Arc<Slot>,
}

impl Entry {
    fn post(&self, command: ConnectionCommand) {
        self.slot.post(match command {
            ConnectionCommand::Reauthorize => REAUTHORIZE,
            ConnectionCommand::Close(reason) => reason.bit() << CLOSE_SHIFT,
        });
    }
}

/// Live connections by `live_socket_id`, with O(1) register and unregister
/// (a connection scan covers only one id's tabs).
#[derive(Default)]
pub struct Registry {
    by_id: Mutex<HashMap<Arc<LiveSocketId>, Vec<Entry>>>,
    next: AtomicU64,
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
    id: Arc<LiveSocketId>,
    conn: u64,
    slot: Arc<Slot>,
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
        self.slot.post(UNREGISTERED);
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<LiveSocketId>, Vec<Entry>>> {
        // A poisoned lock only means a panic elsewhere mid-update of a map
        // whose every update is a single insert or remove: keep serving.
        self.by_id.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a live connection under `id`, whose session was verified
    /// under `key_id`. The connection listens on the returned events and
    /// stays registered until the [`Registration`] is dropped.
    pub fn register(self: &Arc<Self>, id: LiveSocketId, key_id: KeyId) -> (Registration, ConnectionEvents) {
        let slot = Arc::new(Slot::default());
        let conn = self.next.fetch_add(1, Ordering::Relaxed);
        let id = {
            let mut map = self.lock();
            let entry = Entry { conn, key_id, slot: Arc::clone(&slot) };
            // One allocation of the id, shared by the map and the registration.
            match map.get_key_value(&id) {
                Some((key, _)) => {
                    let key = Arc::clone(key);
                    map.entry(Arc::clone(&key)).or_default().push(entry);
                    key
                }
                None => {
                    let key = Arc::new(id);
                    // Most ids have one tab: `vec!` reserves room for it only.
                    map.insert(Arc::clone(&key), std::vec![entry]);
                    key
                }
            }
        };
        let events = ConnectionEvents { slot: Arc::clone(&slot) };
        (Registration { registry: Arc::clone(self), id, conn, slot }, events)
    }

    fn unregister(&self, id: &LiveSocketId, conn: u64) {
        let mut map = self.lock();
        let Some(entries) = map.get_mut(id) else { return };
        entries.retain(|entry| entry.conn != conn);
        if entries.is_empty() {
            map.remove(id);
        }
    }

    /// Sends `command` to every connection under `id`; returns how many got
    /// it.
    pub fn send(&self, id: &LiveSocketId, command: ConnectionCommand) -> u32 {
        let map = self.lock();
        let Some(entries) = map.get(id) else { return 0 };
        entries.iter().for_each(|entry| entry.post(command));
        count(entries.len())
    }

    /// Closes every connection under `id`.
    pub fn disconnect(&self, id: &LiveSocketId) -> u32 {
        self.send(id, ConnectionCommand::Close(CloseReason::Disconnected))
    }

    /// Closes every connection whose session was verified under `key_id`.
    pub fn retire_key(&self, key_id: KeyId) -> u32 {
        let map = self.lock();
        let retired = map.values().flatten().filter(|entry| entry.key_id == key_id);
        count(retired.inspect(|entry| entry.post(ConnectionCommand::Close(CloseReason::KeyRetired))).count())
    }

    /// Sends `command` to every connection of this node.
    pub fn broadcast(&self, command: ConnectionCommand) -> u32 {
        let map = self.lock();
        count(map.values().flatten().inspect(|entry| entry.post(command)).count())
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

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

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
    fn dropping_a_registration_unregisters() {
        let registry = Arc::new(Registry::new());
        let (first, _) = registry.register(id("x"), KeyId(1));
        let (second, _) = registry.register(id("x"), KeyId(1));
        assert_eq!((registry.len(), registry.ids()), (2, 1));
        drop(first);
        assert_eq!((registry.len(), registry.ids()), (1, 1));
        drop(second);
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
    fn commands_coalesce_and_a_close_wins() {
        let registry = Arc::new(Registry::new());
        let (registration, mut events) = registry.register(id("a"), KeyId(1));
        registry.send(&id("a"), ConnectionCommand::Reauthorize);
        registry.send(&id("a"), ConnectionCommand::Reauthorize);
        assert_eq!(events.try_recv(), Some(ConnectionCommand::Reauthorize));
        assert_eq!(events.try_recv(), None, "two re-authorizations are one");
        registry.send(&id("a"), ConnectionCommand::Reauthorize);
        registry.disconnect(&id("a"));
        assert_eq!(events.try_recv(), Some(ConnectionCommand::Close(CloseReason::Disconnected)));
        drop(registration);
        let mut recv = std::pin::pin!(events.recv());
        let waker = std::task::Waker::noop();
        let polled = recv.as_mut().poll(&mut std::task::Context::from_waker(waker));
        assert_eq!(polled, std::task::Poll::Ready(None), "unregistered: no more commands");
    }

    #[test]
    fn coalesced_closes_keep_the_most_telling_reason() {
        let registry = Arc::new(Registry::new());
        let (_registration, mut events) = registry.register(id("a"), KeyId(1));
        registry.broadcast(ConnectionCommand::Close(CloseReason::Shutdown));
        registry.broadcast(ConnectionCommand::Close(CloseReason::BackboneLost));
        registry.disconnect(&id("a"));
        let close = events.try_recv();
        assert_eq!(close, Some(ConnectionCommand::Close(CloseReason::Disconnected)));
        assert_eq!(CloseReason::Disconnected.close_code(), 1001, "a logout never turns into a restart");
        registry.broadcast(ConnectionCommand::Close(CloseReason::Shutdown));
        registry.broadcast(ConnectionCommand::Close(CloseReason::KeyRetired));
        assert_eq!(events.try_recv(), Some(ConnectionCommand::Close(CloseReason::KeyRetired)));
    }

    #[test]
    fn close_codes() {
        assert_eq!(CloseReason::Disconnected.close_code(), 1001);
        assert_eq!(CloseReason::Shutdown.close_code(), 1012);
    }
}
