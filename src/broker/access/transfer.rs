//! The access state in and out: RabbitMQ definitions (import and export of its access
//! parts: users, vhosts, vhost limits, permissions, topic permissions, policies) and
//! Warren's own persisted form, which keeps what RabbitMQ's export leaves out (a vhost's
//! description, tags, default queue type and tracing).
//!
//! Import follows `apply_defs/3` in `rabbit_definitions.erl` (v3.10.8): users, vhosts,
//! vhost limits, permissions, topic permissions, then policies; an existing object is
//! updated. Unlike RabbitMQ, which leaves whatever it applied before an error, an import
//! into `AccessControl::update` applies whole or not at all. Runtime parameters other
//! than vhost limits (shovels, federation) are not Warren's and are skipped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::changes::AccessError;
use super::definitions::{
    Definitions, ParameterDefinition, PermissionDefinition, PolicyDefinition, TopicPermissionDefinition,
    UserDefinition, VhostDefinition, VhostDefinitions, VHOST_LIMITS_COMPONENT, VHOST_LIMITS_NAME,
};
use super::password::{HashingAlgorithm, PasswordHash};
use super::policies::Policy;
use super::state::AccessState;
use super::users::{tags_from_list, User, UserLimits};
use super::vhosts::{Vhost, VhostLimits};

/// The version of the persisted form written today.
const PERSISTED_FORMAT: u32 = 1;

/// Warren's persisted access state.
#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    format: u32,
    users: Vec<UserDefinition>,
    vhosts: Vec<VhostDefinition>,
    permissions: Vec<PermissionDefinition>,
    topic_permissions: Vec<TopicPermissionDefinition>,
    policies: Vec<PolicyDefinition>,
}

fn object(map: &Map<String, Value>) -> Value {
    Value::Object(map.clone())
}

impl AccessState {
    fn import_user(&mut self, user: &UserDefinition, version: Option<&str>) -> Result<(), AccessError> {
        let limits = if user.limits.is_empty() {
            UserLimits::default()
        } else {
            UserLimits::from_json(&object(&user.limits)).map_err(AccessError::Invalid)?
        };
        let password = match (&user.password, user.password_hash.is_empty()) {
            (Some(_), false) => {
                return Err(AccessError::Invalid("both_password_and_password_hash_are_provided".into()))
            }
            (Some(text), true) => PasswordHash::new(HashingAlgorithm::DEFAULT, text)?,
            (None, _) => {
                let algorithm = HashingAlgorithm::for_import(user.hashing_algorithm.as_deref(), version)?;
                PasswordHash::from_base64(algorithm, &user.password_hash)?
            }
        };
        let tags = tags_from_list(user.tags.iter().map(String::as_str));
        self.put_user(User { name: user.name.clone(), password, tags, limits })
    }

    fn import_vhost(&mut self, vhost: &VhostDefinition) -> Result<(), AccessError> {
        let metadata = vhost.metadata.clone().unwrap_or_default();
        // What the document leaves out stays as it is on an existing vhost.
        let existing = self.vhost(&vhost.name).map(|found| (found.limits.clone(), found.tracing));
        let (limits_before, tracing_before) = existing.unwrap_or_default();
        let limits = match &vhost.limits {
            Some(limits) => VhostLimits::from_json(&object(limits)).map_err(AccessError::Invalid)?,
            None => limits_before,
        };
        self.put_vhost(Vhost {
            name: vhost.name.clone(),
            description: vhost.description.clone().or(metadata.description).unwrap_or_default(),
            tags: vhost.tags.clone().or(metadata.tags).unwrap_or_default(),
            default_queue_type: metadata.default_queue_type.or_else(|| vhost.default_queue_type.clone()),
            tracing: vhost.tracing.unwrap_or(tracing_before),
            limits,
        })
    }

    fn import_parameter(
        &mut self,
        parameter: &ParameterDefinition,
        vhost: Option<&str>,
    ) -> Result<(), AccessError> {
        if parameter.component != VHOST_LIMITS_COMPONENT || parameter.name != VHOST_LIMITS_NAME {
            return Ok(());
        }
        let vhost = parameter.vhost.as_deref().or(vhost).unwrap_or_default();
        let limits = VhostLimits::from_json(&parameter.value).map_err(AccessError::Invalid)?;
        self.set_vhost_limits(vhost, limits)
    }

    fn import_policy(&mut self, policy: &PolicyDefinition, vhost: Option<&str>) -> Result<(), AccessError> {
        let vhost = policy.vhost.as_deref().or(vhost).unwrap_or_default();
        // RabbitMQ names the policy after its error: ` (vhost/name)`.
        let parsed = Policy::from_json(vhost, &policy.name, &policy.value())
            .map_err(|error| AccessError::Invalid(format!("{error} ({vhost}/{})", policy.name)))?;
        self.set_policy(parsed)
    }

    /// Applies the access parts of a whole-broker definitions document.
    ///
    /// # Errors
    /// The first object refused; the state may be partly changed (apply it through
    /// `AccessControl::update` to keep it whole).
    pub fn import_definitions(&mut self, definitions: &Definitions) -> Result<(), AccessError> {
        let version = definitions.rabbitmq_version.as_deref().or(definitions.rabbit_version.as_deref());
        for user in &definitions.users {
            self.import_user(user, version)?;
        }
        for vhost in &definitions.vhosts {
            self.import_vhost(vhost)?;
        }
        for parameter in &definitions.parameters {
            self.import_parameter(parameter, None)?;
        }
        for p in &definitions.permissions {
            self.set_permissions(&p.user, &p.vhost, &p.configure, &p.write, &p.read)?;
        }
        for p in &definitions.topic_permissions {
            self.set_topic_permissions(&p.user, &p.vhost, &p.exchange, &p.write, &p.read)?;
        }
        for policy in &definitions.policies {
            self.import_policy(policy, None)?;
        }
        Ok(())
    }

    /// Applies the access parts (policies and vhost limits) of a per-vhost document to
    /// `vhost`; entries that name no vhost belong to it.
    ///
    /// # Errors
    /// As [`AccessState::import_definitions`].
    pub fn import_vhost_definitions(
        &mut self,
        vhost: &str,
        definitions: &VhostDefinitions,
    ) -> Result<(), AccessError> {
        if self.vhost(vhost).is_none() {
            return Err(AccessError::NoSuchVhost(vhost.to_owned()));
        }
        for parameter in &definitions.parameters {
            self.import_parameter(parameter, Some(vhost))?;
        }
        for policy in &definitions.policies {
            self.import_policy(policy, Some(vhost))?;
        }
        Ok(())
    }

    /// Every user as the HTTP API (`/api/users`) and definitions show it, by name.
    pub fn user_definitions(&self) -> Vec<UserDefinition> {
        let limits = |user: &User| match user.limits.to_json() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self.users()
            .map(|user| UserDefinition {
                name: user.name.clone(),
                password: None,
                password_hash: user.password.to_base64(),
                hashing_algorithm: Some(user.password.algorithm().name().to_owned()),
                tags: user.tag_names().into_iter().map(str::to_owned).collect(),
                limits: limits(user),
            })
            .collect()
    }

    /// Every permission entry as `/api/permissions` and definitions show it.
    pub fn permission_definitions(&self) -> Vec<PermissionDefinition> {
        let all = self.all_permissions().into_iter();
        all.map(|(user, vhost, p)| PermissionDefinition {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: p.configure.as_str().to_owned(),
            write: p.write.as_str().to_owned(),
            read: p.read.as_str().to_owned(),
        })
        .collect()
    }

    /// Every topic permission as `/api/topic-permissions` and definitions show it.
    pub fn topic_permission_definitions(&self) -> Vec<TopicPermissionDefinition> {
        let all = self.all_topic_permissions().into_iter();
        all.map(|(user, vhost, p)| TopicPermissionDefinition {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            exchange: p.exchange.clone(),
            write: p.write.source.clone(),
            read: p.read.source.clone(),
        })
        .collect()
    }

    /// The policies of one vhost, or of all, as `/api/policies` and definitions show them.
    pub fn policy_definitions(&self, vhost: Option<&str>) -> Vec<PolicyDefinition> {
        let chosen: Vec<_> = match vhost {
            Some(vhost) => self.policies(vhost).iter().collect(),
            None => self.all_policies().collect(),
        };
        chosen
            .into_iter()
            .map(|policy| PolicyDefinition {
                vhost: Some(policy.vhost.clone()),
                name: policy.name.clone(),
                pattern: Value::from(policy.pattern.as_str()),
                apply_to: Some(policy.apply_to.as_str().to_owned()),
                definition: Value::Object(policy.definition.clone().into_iter().collect()),
                priority: Some(policy.priority.0.clone()),
            })
            .collect()
    }

    fn limit_parameters(&self, vhost: Option<&str>) -> Vec<ParameterDefinition> {
        let limited = self
            .vhosts()
            .filter(|found| !found.limits.is_empty() && vhost.is_none_or(|name| name == found.name));
        limited
            .map(|found| ParameterDefinition {
                vhost: Some(found.name.clone()),
                component: VHOST_LIMITS_COMPONENT.to_owned(),
                name: VHOST_LIMITS_NAME.to_owned(),
                value: found.limits.to_json(),
            })
            .collect()
    }

    /// The access parts of a whole-broker export, shaped as RabbitMQ 3.10.8's: vhosts by
    /// name only, their limits as `vhost-limits` parameters. Versions, global
    /// parameters, queues, exchanges and bindings are left for the broker to fill.
    pub fn export_definitions(&self) -> Definitions {
        Definitions {
            users: self.user_definitions(),
            vhosts: self
                .vhosts()
                .map(|vhost| VhostDefinition { name: vhost.name.clone(), ..Default::default() })
                .collect(),
            permissions: self.permission_definitions(),
            topic_permissions: self.topic_permission_definitions(),
            parameters: self.limit_parameters(None),
            policies: self.policy_definitions(None),
            ..Definitions::default()
        }
    }

    /// The access parts of one vhost's export: its policies and limits.
    pub fn export_vhost_definitions(&self, vhost: &str) -> VhostDefinitions {
        VhostDefinitions {
            parameters: self.limit_parameters(Some(vhost)),
            policies: self.policy_definitions(Some(vhost)),
            ..VhostDefinitions::default()
        }
    }

    /// The whole state as bytes (JSON), for the definitions journal.
    pub fn to_bytes(&self) -> Vec<u8> {
        let vhosts = self.vhosts().map(|vhost| VhostDefinition {
            name: vhost.name.clone(),
            description: Some(vhost.description.clone()),
            tags: Some(vhost.tags.clone()),
            default_queue_type: vhost.default_queue_type.clone(),
            metadata: None,
            limits: match vhost.limits.to_json() {
                Value::Object(map) if !map.is_empty() => Some(map),
                _ => None,
            },
            tracing: Some(vhost.tracing),
        });
        let persisted = Persisted {
            format: PERSISTED_FORMAT,
            users: self.user_definitions(),
            vhosts: vhosts.collect(),
            permissions: self.permission_definitions(),
            topic_permissions: self.topic_permission_definitions(),
            policies: self.policy_definitions(None),
        };
        serde_json::to_vec(&persisted).expect("the access state is plain data that always serializes")
    }

    /// A state from [`AccessState::to_bytes`].
    ///
    /// # Errors
    /// [`AccessError::Invalid`] for bytes that are not a persisted state of a known
    /// format, or whatever its contents break.
    pub fn from_bytes(bytes: &[u8]) -> Result<AccessState, AccessError> {
        let persisted: Persisted = serde_json::from_slice(bytes)
            .map_err(|error| AccessError::Invalid(format!("persisted access state: {error}")))?;
        if persisted.format != PERSISTED_FORMAT {
            return Err(AccessError::Invalid(format!(
                "persisted access state: unknown format {}",
                persisted.format
            )));
        }
        let mut state = AccessState::default();
        let definitions = Definitions {
            users: persisted.users,
            vhosts: persisted.vhosts,
            permissions: persisted.permissions,
            topic_permissions: persisted.topic_permissions,
            policies: persisted.policies,
            ..Definitions::default()
        };
        state.import_definitions(&definitions)?;
        Ok(state)
    }
}
