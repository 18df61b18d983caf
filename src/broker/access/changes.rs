//! Changes of the access state: users, vhosts, permissions, topic permissions and
//! policies. Each either applies whole or returns an error and leaves the state as it
//! was; `AccessControl::update` publishes the result.

use std::collections::HashMap;
use std::sync::Arc;

use super::password::{HashingAlgorithm, PasswordError, PasswordHash};
use super::permissions::{PatternError, TopicPermission, UserPermissions};
use super::policies::{Policy, PolicyError};
use super::state::AccessState;
use super::users::{Tag, User, UserLimits};
use super::vhosts::{Vhost, VhostLimits};
use crate::limits::{
    ACCESS_DESCRIPTION_BYTES_MAX, ACCESS_PERMISSIONS_MAX, ACCESS_POLICIES_MAX, ACCESS_POLICY_NAME_BYTES_MAX,
    ACCESS_TAGS_MAX, ACCESS_TOPIC_PERMISSIONS_MAX, ACCESS_USERS_MAX, ACCESS_USER_NAME_BYTES_MAX,
    ACCESS_VHOSTS_MAX, ACCESS_VHOST_NAME_BYTES_MAX,
};

/// Why a change of the access state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No such user.
    #[error("User \"{0}\" does not exist")]
    NoSuchUser(String),
    /// The user exists already.
    #[error("User \"{0}\" already exists")]
    UserExists(String),
    /// No such vhost.
    #[error("Virtual host \"{0}\" does not exist")]
    NoSuchVhost(String),
    /// The vhost exists already.
    #[error("Virtual host \"{0}\" already exists")]
    VhostExists(String),
    /// No such policy in the vhost.
    #[error("Policy \"{name}\" does not exist in virtual host \"{vhost}\"")]
    NoSuchPolicy {
        /// The vhost.
        vhost: String,
        /// The policy.
        name: String,
    },
    /// A name is empty or longer than its limit.
    #[error("{what} must be between 1 and {max} bytes long, not {length}")]
    BadName {
        /// What was named.
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// One more would pass a bound of `limits.rs`.
    #[error("too many {what}: at most {max}")]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The bound.
        max: usize,
    },
    /// A regular expression was refused.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// A password or hash was refused.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A policy failed validation.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A limits object or definitions document is not valid.
    #[error("{0}")]
    Invalid(String),
}

fn check_name(what: &'static str, name: &str, max: usize) -> Result<(), AccessError> {
    if name.is_empty() || name.len() > max {
        return Err(AccessError::BadName { what, length: name.len(), max });
    }
    Ok(())
}

fn check_tags(count: usize) -> Result<(), AccessError> {
    if count > ACCESS_TAGS_MAX {
        return Err(AccessError::TooMany { what: "tags", max: ACCESS_TAGS_MAX });
    }
    Ok(())
}

impl AccessState {
    fn user_mut(&mut self, name: &str) -> Result<&mut User, AccessError> {
        let user = self.users.get_mut(name).ok_or_else(|| AccessError::NoSuchUser(name.to_owned()))?;
        Ok(Arc::make_mut(user))
    }

    fn vhost_mut(&mut self, name: &str) -> Result<&mut Vhost, AccessError> {
        let vhost = self.vhosts.get_mut(name).ok_or_else(|| AccessError::NoSuchVhost(name.to_owned()))?;
        Ok(Arc::make_mut(vhost))
    }

    fn require_user_and_vhost(&self, user: &str, vhost: &str) -> Result<(), AccessError> {
        if !self.users.contains_key(user) {
            return Err(AccessError::NoSuchUser(user.to_owned()));
        }
        if !self.vhosts.contains_key(vhost) {
            return Err(AccessError::NoSuchVhost(vhost.to_owned()));
        }
        Ok(())
    }

    /// Creates a user; `None` as password makes one that cannot log in with a password.
    ///
    /// # Errors
    /// [`AccessError::UserExists`], a bad name, too many users or tags.
    pub fn add_user(
        &mut self,
        name: &str,
        password: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<(), AccessError> {
        if self.users.contains_key(name) {
            return Err(AccessError::UserExists(name.to_owned()));
        }
        let password = match password {
            Some(text) => PasswordHash::new(HashingAlgorithm::DEFAULT, text)?,
            None => PasswordHash::none(HashingAlgorithm::DEFAULT),
        };
        self.put_user(User { name: name.to_owned(), password, tags, limits: UserLimits::default() })
    }

    /// Creates or replaces a user as a whole (the HTTP API's PUT and imports do this:
    /// a PUT without a password leaves the user without one, as in RabbitMQ).
    ///
    /// # Errors
    /// A bad name, too many users or tags.
    pub fn put_user(&mut self, user: User) -> Result<(), AccessError> {
        check_name("a user name", &user.name, ACCESS_USER_NAME_BYTES_MAX)?;
        check_tags(user.tags.len())?;
        if !self.users.contains_key(&user.name) && self.users.len() >= ACCESS_USERS_MAX {
            return Err(AccessError::TooMany { what: "users", max: ACCESS_USERS_MAX });
        }
        self.users.insert(user.name.clone(), Arc::new(user));
        Ok(())
    }

    /// Deletes a user with its permissions and topic permissions.
    ///
    /// # Errors
    /// [`AccessError::NoSuchUser`].
    pub fn delete_user(&mut self, name: &str) -> Result<(), AccessError> {
        self.users.remove(name).ok_or_else(|| AccessError::NoSuchUser(name.to_owned()))?;
        for users in self.permissions.values_mut() {
            users.remove(name);
        }
        for users in self.topic_permissions.values_mut() {
            users.remove(name);
        }
        Ok(())
    }

    /// Replaces a user's tags.
    ///
    /// # Errors
    /// [`AccessError::NoSuchUser`], too many tags.
    pub fn set_user_tags(&mut self, name: &str, tags: Vec<Tag>) -> Result<(), AccessError> {
        check_tags(tags.len())?;
        self.user_mut(name)?.tags = tags;
        Ok(())
    }

    /// Sets a user's password, hashed with the default algorithm; `None` clears it.
    ///
    /// # Errors
    /// [`AccessError::NoSuchUser`], or no random salt.
    pub fn change_password(&mut self, name: &str, password: Option<&str>) -> Result<(), AccessError> {
        let hash = match password {
            Some(text) => PasswordHash::new(HashingAlgorithm::DEFAULT, text)?,
            None => PasswordHash::none(HashingAlgorithm::DEFAULT),
        };
        self.user_mut(name)?.password = hash;
        Ok(())
    }

    /// Sets a user's password hash as given (imports, `password_hash` in the HTTP API).
    ///
    /// # Errors
    /// [`AccessError::NoSuchUser`].
    pub fn set_password_hash(&mut self, name: &str, hash: PasswordHash) -> Result<(), AccessError> {
        self.user_mut(name)?.password = hash;
        Ok(())
    }

    /// Replaces a user's limits.
    ///
    /// # Errors
    /// [`AccessError::NoSuchUser`].
    pub fn set_user_limits(&mut self, name: &str, limits: UserLimits) -> Result<(), AccessError> {
        self.user_mut(name)?.limits = limits;
        Ok(())
    }

    /// Creates an empty vhost.
    ///
    /// # Errors
    /// [`AccessError::VhostExists`], a bad name, too many vhosts.
    pub fn add_vhost(&mut self, name: &str) -> Result<(), AccessError> {
        if self.vhosts.contains_key(name) {
            return Err(AccessError::VhostExists(name.to_owned()));
        }
        self.put_vhost(Vhost::new(name))
    }

    /// Creates or replaces a vhost's metadata and limits as a whole.
    ///
    /// # Errors
    /// A bad name or description, too many vhosts or tags.
    pub fn put_vhost(&mut self, vhost: Vhost) -> Result<(), AccessError> {
        check_name("a vhost name", &vhost.name, ACCESS_VHOST_NAME_BYTES_MAX)?;
        check_tags(vhost.tags.len())?;
        if vhost.description.len() > ACCESS_DESCRIPTION_BYTES_MAX {
            let (length, max) = (vhost.description.len(), ACCESS_DESCRIPTION_BYTES_MAX);
            return Err(AccessError::BadName { what: "a vhost description", length, max });
        }
        if !self.vhosts.contains_key(&vhost.name) && self.vhosts.len() >= ACCESS_VHOSTS_MAX {
            return Err(AccessError::TooMany { what: "vhosts", max: ACCESS_VHOSTS_MAX });
        }
        self.vhosts.insert(vhost.name.clone(), Arc::new(vhost));
        Ok(())
    }

    /// Deletes a vhost with the permissions, topic permissions and policies in it. Its
    /// exchanges, queues and messages are the broker's to delete.
    ///
    /// # Errors
    /// [`AccessError::NoSuchVhost`].
    pub fn delete_vhost(&mut self, name: &str) -> Result<(), AccessError> {
        self.vhosts.remove(name).ok_or_else(|| AccessError::NoSuchVhost(name.to_owned()))?;
        self.permissions.remove(name);
        self.topic_permissions.remove(name);
        self.policies.remove(name);
        Ok(())
    }

    /// Replaces a vhost's limits.
    ///
    /// # Errors
    /// [`AccessError::NoSuchVhost`].
    pub fn set_vhost_limits(&mut self, name: &str, limits: VhostLimits) -> Result<(), AccessError> {
        self.vhost_mut(name)?.limits = limits;
        Ok(())
    }

    /// Sets a user's permissions in a vhost, replacing any before.
    ///
    /// # Errors
    /// No such user or vhost, a bad expression, too many entries.
    pub fn set_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), AccessError> {
        self.require_user_and_vhost(user, vhost)?;
        let granted = UserPermissions::new(configure, write, read)?;
        let exists = self.permissions(user, vhost).is_some();
        let count: usize = self.permissions.values().map(HashMap::len).sum();
        if !exists && count >= ACCESS_PERMISSIONS_MAX {
            return Err(AccessError::TooMany { what: "permissions", max: ACCESS_PERMISSIONS_MAX });
        }
        self.permissions.entry(vhost.to_owned()).or_default().insert(user.to_owned(), Arc::new(granted));
        Ok(())
    }

    /// Removes a user's permissions in a vhost (nothing to remove is fine).
    ///
    /// # Errors
    /// No such user or vhost.
    pub fn clear_permissions(&mut self, user: &str, vhost: &str) -> Result<(), AccessError> {
        self.require_user_and_vhost(user, vhost)?;
        if let Some(users) = self.permissions.get_mut(vhost) {
            users.remove(user);
        }
        Ok(())
    }

    /// Sets a user's topic permissions on one exchange of a vhost.
    ///
    /// # Errors
    /// No such user or vhost, a bad expression, too many entries.
    pub fn set_topic_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<(), AccessError> {
        self.require_user_and_vhost(user, vhost)?;
        let entry = TopicPermission::new(user, vhost, exchange, write, read)?;
        let count: usize =
            self.topic_permissions.values().flat_map(HashMap::values).map(|list| list.len()).sum();
        let list =
            self.topic_permissions.entry(vhost.to_owned()).or_default().entry(user.to_owned()).or_default();
        let list = Arc::make_mut(list);
        match list.iter_mut().find(|existing| existing.exchange == exchange) {
            Some(existing) => *existing = entry,
            None if count >= ACCESS_TOPIC_PERMISSIONS_MAX => {
                return Err(AccessError::TooMany {
                    what: "topic permissions",
                    max: ACCESS_TOPIC_PERMISSIONS_MAX,
                });
            }
            None => list.push(entry),
        }
        Ok(())
    }

    /// Removes a user's topic permissions in a vhost: on one exchange, or on all.
    ///
    /// # Errors
    /// No such user or vhost.
    pub fn clear_topic_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), AccessError> {
        self.require_user_and_vhost(user, vhost)?;
        let Some(users) = self.topic_permissions.get_mut(vhost) else {
            return Ok(());
        };
        match exchange {
            None => {
                users.remove(user);
            }
            Some(exchange) => {
                if let Some(list) = users.get_mut(user) {
                    Arc::make_mut(list).retain(|entry| entry.exchange != exchange);
                    if list.is_empty() {
                        users.remove(user);
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets a policy, replacing the one of the same name in its vhost.
    ///
    /// # Errors
    /// No such vhost, a bad name, too many policies.
    pub fn set_policy(&mut self, policy: Policy) -> Result<(), AccessError> {
        check_name("a policy name", &policy.name, ACCESS_POLICY_NAME_BYTES_MAX)?;
        if !self.vhosts.contains_key(&policy.vhost) {
            return Err(AccessError::NoSuchVhost(policy.vhost.clone()));
        }
        let count: usize = self.policies.values().map(Vec::len).sum();
        let list = self.policies.entry(policy.vhost.clone()).or_default();
        match list.binary_search_by(|existing| existing.name.cmp(&policy.name)) {
            Ok(index) => list[index] = Arc::new(policy),
            Err(_) if count >= ACCESS_POLICIES_MAX => {
                return Err(AccessError::TooMany { what: "policies", max: ACCESS_POLICIES_MAX });
            }
            Err(index) => list.insert(index, Arc::new(policy)),
        }
        Ok(())
    }

    /// Removes a policy.
    ///
    /// # Errors
    /// [`AccessError::NoSuchPolicy`].
    pub fn clear_policy(&mut self, vhost: &str, name: &str) -> Result<(), AccessError> {
        let missing = || AccessError::NoSuchPolicy { vhost: vhost.to_owned(), name: name.to_owned() };
        let list = self.policies.get_mut(vhost).ok_or_else(missing)?;
        let index =
            list.binary_search_by(|existing| existing.name.as_str().cmp(name)).map_err(|_| missing())?;
        list.remove(index);
        if list.is_empty() {
            self.policies.remove(vhost);
        }
        Ok(())
    }

    /// A first start's state: the vhost `/` and an administrator with every permission
    /// on it (RabbitMQ's `guest`/`guest`; loopback-only login is the server's to enforce).
    ///
    /// # Errors
    /// A bad name, or no random salt.
    pub fn with_default_user(user: &str, password: &str) -> Result<AccessState, AccessError> {
        let mut state = AccessState::default();
        state.add_vhost("/")?;
        state.add_user(user, Some(password), vec![Tag::Administrator])?;
        state.set_permissions(user, "/", ".*", ".*", ".*")?;
        Ok(state)
    }
}
