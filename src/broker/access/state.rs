//! The access state: users, vhosts, permissions, topic permissions and policies, and the
//! checks the gateways make against it. A state is immutable once published (see
//! `AccessControl`): checks read it without locks, and the checks of the message path
//! allocate nothing unless they refuse.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::permissions::{AccessRefused, Permission, Resource, TopicPermission, UserPermissions};
use super::policies::{self, Policy, PolicyTarget};
use super::users::User;
use super::vhosts::Vhost;

/// A login that failed. Every kind gets the same reply on the wire; the texts are
/// RabbitMQ's log lines (`rabbit_auth_backend_internal.erl`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, or a user without a password.
    #[error("user '{user}' - invalid credentials")]
    InvalidCredentials {
        /// The name given.
        user: String,
    },
    /// An empty password, which the internal backend always refuses.
    #[error("user '{user}' attempted to log in with a blank password, which is prohibited by the internal authN backend")]
    BlankPassword {
        /// The name given.
        user: String,
    },
}

/// Everything the access model holds, at one moment.
#[derive(Debug, Clone, Default)]
pub struct AccessState {
    /// Users by name.
    pub(super) users: BTreeMap<String, Arc<User>>,
    /// Vhosts by name.
    pub(super) vhosts: BTreeMap<String, Arc<Vhost>>,
    /// Permissions by vhost, then user.
    pub(super) permissions: HashMap<String, HashMap<String, Arc<UserPermissions>>>,
    /// Topic permissions by vhost, then user; one entry per exchange.
    pub(super) topic_permissions: HashMap<String, HashMap<String, Arc<Vec<TopicPermission>>>>,
    /// Policies by vhost, sorted by name.
    pub(super) policies: BTreeMap<String, Vec<Arc<Policy>>>,
}

impl AccessState {
    /// The user `name`.
    pub fn user(&self, name: &str) -> Option<&Arc<User>> {
        self.users.get(name)
    }

    /// All users, by name.
    pub fn users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.values()
    }

    /// The vhost `name`.
    pub fn vhost(&self, name: &str) -> Option<&Arc<Vhost>> {
        self.vhosts.get(name)
    }

    /// All vhosts, by name.
    pub fn vhosts(&self) -> impl Iterator<Item = &Arc<Vhost>> {
        self.vhosts.values()
    }

    /// The user's permissions in the vhost, if any: a connection may keep them for its
    /// checks while the state's generation stays the same.
    pub fn permissions(&self, user: &str, vhost: &str) -> Option<&Arc<UserPermissions>> {
        self.permissions.get(vhost)?.get(user)
    }

    /// Every permission entry as (user, vhost, permissions), sorted by user then vhost.
    pub fn all_permissions(&self) -> Vec<(&str, &str, &Arc<UserPermissions>)> {
        let mut all: Vec<_> = self
            .permissions
            .iter()
            .flat_map(|(vhost, users)| users.iter().map(move |(user, p)| (user.as_str(), vhost.as_str(), p)))
            .collect();
        all.sort_by(|left, right| (left.0, left.1).cmp(&(right.0, right.1)));
        all
    }

    /// Every topic permission as (user, vhost, permission), sorted by user, vhost and
    /// exchange.
    pub fn all_topic_permissions(&self) -> Vec<(&str, &str, &TopicPermission)> {
        let mut all: Vec<_> = self
            .topic_permissions
            .iter()
            .flat_map(|(vhost, users)| {
                users.iter().flat_map(move |(user, list)| {
                    list.iter().map(move |p| (user.as_str(), vhost.as_str(), p))
                })
            })
            .collect();
        all.sort_by(|left, right| {
            (left.0, left.1, &left.2.exchange).cmp(&(right.0, right.1, &right.2.exchange))
        });
        all
    }

    /// The policies of `vhost`, by name.
    pub fn policies(&self, vhost: &str) -> &[Arc<Policy>] {
        self.policies.get(vhost).map_or(&[], Vec::as_slice)
    }

    /// Every policy, by vhost then name.
    pub fn all_policies(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.values().flatten()
    }

    /// The policy that applies to the object `name` of `vhost` (see `policies`).
    pub fn effective_policy(&self, vhost: &str, name: &[u8], target: PolicyTarget) -> Option<&Policy> {
        policies::effective(self.policies(vhost).iter().map(Arc::as_ref), vhost, name, target)
    }

    /// The user `name` if `password` is theirs.
    ///
    /// # Errors
    /// [`AuthError`]; which one is for the log only.
    pub fn authenticate(&self, name: &str, password: &str) -> Result<Arc<User>, AuthError> {
        if password.is_empty() {
            return Err(AuthError::BlankPassword { user: name.to_owned() });
        }
        match self.users.get(name) {
            Some(user) if user.password.verify(password) => Ok(Arc::clone(user)),
            _ => Err(AuthError::InvalidCredentials { user: name.to_owned() }),
        }
    }

    /// Whether `user` may open `vhost` (`connection.open`).
    ///
    /// # Errors
    /// [`AccessRefused::VhostNotFound`], or [`AccessRefused::Vhost`] when the user has no
    /// permissions there.
    pub fn check_vhost_access(&self, user: &str, vhost: &str) -> Result<(), AccessRefused> {
        if !self.vhosts.contains_key(vhost) {
            return Err(AccessRefused::VhostNotFound { vhost: vhost.to_owned() });
        }
        match self.permissions(user, vhost) {
            Some(_) => Ok(()),
            None => Err(AccessRefused::Vhost { vhost: vhost.to_owned(), user: user.to_owned() }),
        }
    }

    /// Whether `user` may open one more connection to `vhost`, which has
    /// `vhost_connections` open, while the user has `user_connections` open. RabbitMQ's
    /// order (`rabbit_reader.erl`, connection.open): the vhost's limit (which also finds
    /// a missing vhost), the user's limit, then the user's access to the vhost.
    ///
    /// # Errors
    /// The first refusal met.
    pub fn check_new_connection(
        &self,
        user: &str,
        vhost: &str,
        vhost_connections: u64,
        user_connections: u64,
    ) -> Result<(), AccessRefused> {
        let Some(found) = self.vhosts.get(vhost) else {
            return Err(AccessRefused::VhostNotFound { vhost: vhost.to_owned() });
        };
        if let Some(limit) = found.limits.connections_max().filter(|limit| vhost_connections >= *limit) {
            return Err(AccessRefused::VhostConnectionLimit {
                vhost: vhost.to_owned(),
                user: user.to_owned(),
                limit,
            });
        }
        let user_limit = self.users.get(user).and_then(|found| found.limits.connections_max());
        if let Some(limit) = user_limit.filter(|limit| user_connections >= *limit) {
            return Err(AccessRefused::UserConnectionLimit { user: user.to_owned(), limit });
        }
        self.check_vhost_access(user, vhost)
    }

    /// Whether `user`, who has `open_channels` channels open, may open one more.
    ///
    /// # Errors
    /// [`AccessRefused::UserChannelLimit`].
    pub fn check_new_channel(&self, user: &str, open_channels: u64) -> Result<(), AccessRefused> {
        let limit = self.users.get(user).and_then(|found| found.limits.channels_max());
        match limit.filter(|limit| open_channels >= *limit) {
            Some(limit) => Err(AccessRefused::UserChannelLimit { user: user.to_owned(), limit }),
            None => Ok(()),
        }
    }

    /// Whether the queue `queue` may be created in `vhost`, which holds `queues` queues.
    ///
    /// # Errors
    /// [`AccessRefused::VhostQueueLimit`].
    pub fn check_new_queue(&self, vhost: &str, queue: &[u8], queues: u64) -> Result<(), AccessRefused> {
        let limit = self.vhosts.get(vhost).and_then(|found| found.limits.queues_max());
        match limit.filter(|limit| queues >= *limit) {
            Some(limit) => Err(AccessRefused::VhostQueueLimit {
                queue: String::from_utf8_lossy(queue).into_owned(),
                vhost: vhost.to_owned(),
                limit,
            }),
            None => Ok(()),
        }
    }

    /// Whether `user` has `permission` on `resource` in `vhost`. Allocates nothing
    /// unless it refuses.
    ///
    /// # Errors
    /// [`AccessRefused::Resource`] with RabbitMQ's text.
    pub fn check(
        &self,
        user: &str,
        vhost: &str,
        resource: Resource<'_>,
        permission: Permission,
    ) -> Result<(), AccessRefused> {
        match self.permissions(user, vhost) {
            Some(granted) if granted.allows(resource, permission) => Ok(()),
            _ => Err(AccessRefused::Resource {
                kind: resource.kind,
                name: String::from_utf8_lossy(resource.checked_name()).into_owned(),
                vhost: vhost.to_owned(),
                user: user.to_owned(),
            }),
        }
    }

    /// Whether `user` may use `routing_key` on the topic exchange `exchange` of `vhost`
    /// (write: publish; read: bind). Only topic exchanges are checked, by the caller. No
    /// topic permission for the exchange allows every key. Allocates nothing unless it
    /// refuses.
    ///
    /// # Errors
    /// [`AccessRefused::Topic`] with RabbitMQ's text.
    pub fn check_topic(
        &self,
        user: &str,
        vhost: &str,
        exchange: &[u8],
        routing_key: &[u8],
        permission: Permission,
    ) -> Result<(), AccessRefused> {
        let entry = self
            .topic_permissions
            .get(vhost)
            .and_then(|users| users.get(user))
            .and_then(|list| list.iter().find(|entry| entry.exchange.as_bytes() == exchange));
        match entry {
            Some(entry) if !entry.allows(routing_key, permission) => Err(AccessRefused::Topic {
                routing_key: String::from_utf8_lossy(routing_key).into_owned(),
                exchange: String::from_utf8_lossy(exchange).into_owned(),
                vhost: vhost.to_owned(),
                user: user.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}
