//! ACCESS MODEL: users, vhosts, permissions, topic permissions and policies, as RabbitMQ
//! 3.10 has them, independent of any protocol. The AMQP gateway checks logins, vhost
//! access and resource permissions here; the management API and `warren ctl` change it;
//! the broker applies policies to queues and exchanges. Nothing here does I/O: the state
//! goes to and from bytes, and the broker's definitions journal stores them.
//!
//! - `password`: RabbitMQ's salted hashes (SHA-256, SHA-512, MD5).
//! - `users`, `vhosts`: the objects, tags and limits.
//! - `permissions`: compiled expressions, resources, and refusals with RabbitMQ's texts.
//! - `policies`, `policy_merge`: validation, matching, and combining with `x-` arguments.
//! - `definitions`: RabbitMQ's definitions JSON; `transfer`: import, export, persistence.
//! - `state`: [`AccessState`] and its checks; `changes`: its changes.
//! - `erlang_term`: JSON printed as RabbitMQ's error texts print Erlang terms.
//!
//! Reading is cheap: [`AccessControl`] publishes an immutable [`AccessState`] behind an
//! `Arc`. A check takes a snapshot (a read lock held for one reference-count increment)
//! and matches expressions compiled when they were set, with no allocation unless it
//! refuses. A connection can also keep the `Arc<UserPermissions>` of its user and vhost
//! while [`AccessControl::generation`] is unchanged. Changes copy the state, apply, and
//! publish the copy only if every step succeeded, so a failed import changes nothing.

pub mod changes;
pub mod definitions;
pub mod erlang_term;
pub mod password;
pub mod permissions;
pub mod policies;
pub mod policy_merge;
pub mod state;
pub mod transfer;
pub mod users;
pub mod vhosts;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

pub use changes::AccessError;
pub use password::{HashingAlgorithm, PasswordHash};
pub use permissions::{AccessRefused, Permission, RefusalCode, Resource, ResourceKind, UserPermissions};
pub use policies::{ApplyTo, Policy, PolicyError, PolicyTarget, QueueKind};
pub use state::{AccessState, AuthError};
pub use users::{Tag, User, UserLimits};
pub use vhosts::{Vhost, VhostLimits};

/// The broker's access model: the published [`AccessState`] and its generation.
#[derive(Debug)]
pub struct AccessControl {
    /// Replaced whole on every change; never changed in place. The lock is held only to
    /// clone or replace the `Arc`, never across a check or an `.await`.
    current: RwLock<Arc<AccessState>>,
    /// Bumped after each published change.
    generation: AtomicU64,
}

impl AccessControl {
    /// An access model holding `state`.
    pub fn new(state: AccessState) -> AccessControl {
        AccessControl { current: RwLock::new(Arc::new(state)), generation: AtomicU64::new(0) }
    }

    /// A first start's access model: vhost `/` and `user` as an administrator with every
    /// permission on it.
    ///
    /// # Errors
    /// A bad name, or no random salt for the password.
    pub fn with_default_user(user: &str, password: &str) -> Result<AccessControl, AccessError> {
        Ok(AccessControl::new(AccessState::with_default_user(user, password)?))
    }

    /// An access model from [`AccessControl::to_bytes`].
    ///
    /// # Errors
    /// [`AccessError::Invalid`] for bytes that are not a persisted state.
    pub fn from_bytes(bytes: &[u8]) -> Result<AccessControl, AccessError> {
        Ok(AccessControl::new(AccessState::from_bytes(bytes)?))
    }

    /// The state now. It stays as it is however the model changes afterwards.
    pub fn snapshot(&self) -> Arc<AccessState> {
        // A panic while the lock was held cannot leave a half-made state: writers only
        // swap in a finished one.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many changes have been published; a holder of anything taken from a snapshot
    /// takes a new snapshot when this moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Applies `change` to a copy of the state and publishes the copy if it succeeds;
    /// on an error nothing changes. Changes are serialised by the lock.
    ///
    /// # Errors
    /// Whatever `change` returns.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut AccessState) -> Result<T, AccessError>,
    ) -> Result<T, AccessError> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = AccessState::clone(&current);
        let result = change(&mut next)?;
        *current = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(result)
    }

    /// The state as bytes, for the definitions journal.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.snapshot().to_bytes()
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
