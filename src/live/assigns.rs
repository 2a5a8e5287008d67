//! Typed assigns: the server-side state of a live socket, and the values a
//! request's plugs loaded before the live mount.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::any::{Any, TypeId};
use core::fmt;

/// Names one assign and fixes the type of its value.
///
/// ```
/// use liveguard::live::AssignKey;
/// struct CurrentUser;
/// impl AssignKey for CurrentUser {
///     type Value = Option<u64>;
///     const NAME: &'static str = "current_user";
/// }
/// ```
pub trait AssignKey: 'static {
    /// The value stored under this key.
    type Value: Clone + Send + Sync + 'static;
    /// The name recorded in static tokens and audit records.
    const NAME: &'static str;
}

/// A map from [`AssignKey`] types to their values.
///
/// Keys are told apart by type, so two keys with the same `NAME` can never
/// read each other's values. `Debug` lists names only: assigns hold users
/// and credentials.
#[derive(Default)]
pub struct Assigns {
    entries: BTreeMap<TypeId, (&'static str, Box<dyn Any + Send + Sync>)>,
}

impl Assigns {
    /// No assigns.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `K`, if assigned.
    pub fn get<K: AssignKey>(&self) -> Option<&K::Value> {
        self.entries.get(&TypeId::of::<K>()).and_then(|(_, value)| value.downcast_ref())
    }

    /// Assigns `value` to `K`, returning the previous value.
    pub fn insert<K: AssignKey>(&mut self, value: K::Value) -> Option<K::Value> {
        let old = self.entries.insert(TypeId::of::<K>(), (K::NAME, Box::new(value)))?;
        old.1.downcast().ok().map(|boxed| *boxed)
    }

    /// Removes `K`, returning its value.
    pub fn remove<K: AssignKey>(&mut self) -> Option<K::Value> {
        let old = self.entries.remove(&TypeId::of::<K>())?;
        old.1.downcast().ok().map(|boxed| *boxed)
    }

    /// Whether `K` is assigned.
    pub fn contains<K: AssignKey>(&self) -> bool {
        self.entries.contains_key(&TypeId::of::<K>())
    }

    /// Moves every assign of `other` in, replacing values of the same keys.
    pub fn absorb(&mut self, other: Assigns) {
        self.entries.extend(other.entries);
    }

    /// The names of the assigned keys.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.entries.values().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for Assigns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assigns").field("keys", &self.names()).finish()
    }
}
