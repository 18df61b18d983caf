//! Users: a name, a password hash, tags and limits, and what the tags allow.
//!
//! Tags follow RabbitMQ's management access rules (`deps/rabbitmq_management/src/
//! rabbit_mgmt_util.erl`, v3.10.8, `is_admin/1` … `is_mgmt_user/1`; rabbitmq-website
//! `docs/management.md`, "Permissions"): `administrator` may do everything;
//! `monitoring` and `policymaker` are each separate powers that `administrator` also has;
//! any of the four known management tags (`management` included) lets a user into the
//! management API at all. `impersonator` lets a user publish with another `user_id`.
//! Unknown tags are kept as written, as RabbitMQ keeps any atom.

use serde_json::Value;

use super::erlang_term;
use super::password::PasswordHash;

/// A user tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tag {
    /// Everything the management API offers.
    Administrator,
    /// Sees every vhost, connection and channel, and node figures.
    Monitoring,
    /// Manages policies and parameters of the vhosts it can reach.
    Policymaker,
    /// May use the management API for the vhosts it can reach.
    Management,
    /// May publish messages whose `user_id` names another user.
    Impersonator,
    /// Any other tag, kept as written.
    Other(String),
}

impl Tag {
    /// The tag named `text` (already trimmed).
    pub fn parse(text: &str) -> Tag {
        match text {
            "administrator" => Tag::Administrator,
            "monitoring" => Tag::Monitoring,
            "policymaker" => Tag::Policymaker,
            "management" => Tag::Management,
            "impersonator" => Tag::Impersonator,
            other => Tag::Other(other.to_owned()),
        }
    }

    /// The tag's name.
    pub fn as_str(&self) -> &str {
        match self {
            Tag::Administrator => "administrator",
            Tag::Monitoring => "monitoring",
            Tag::Policymaker => "policymaker",
            Tag::Management => "management",
            Tag::Impersonator => "impersonator",
            Tag::Other(text) => text,
        }
    }
}

/// Tags from a comma-separated text, as `rabbitmqctl set_user_tags` and the HTTP API's
/// `"tags": "a,b"` give them: split at commas, spaces trimmed, empty pieces dropped
/// (`tag_list_from/1` in `rabbit_auth_backend_internal.erl`).
pub fn parse_tags(text: &str) -> Vec<Tag> {
    text.split(',')
        .map(|piece| piece.trim_matches(' '))
        .filter(|piece| !piece.is_empty())
        .map(Tag::parse)
        .collect()
}

/// Tags from a list of names (definitions' `"tags": ["a", "b"]`); each is trimmed.
pub fn tags_from_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Tag> {
    names.into_iter().map(|name| Tag::parse(name.trim_matches(' '))).collect()
}

/// A user's limits (RabbitMQ's user-limits: `{"max-connections": n, "max-channels": n}`).
/// `None` is no limit set; a negative value is also no limit, and 0 allows nothing
/// (`is_over_limit/3` in `rabbit_auth_backend_internal.erl`). Values are kept as set, so
/// an export shows what was imported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLimits {
    /// `max-connections`: connections the user may have open at once.
    pub max_connections: Option<i64>,
    /// `max-channels`: channels the user may have open at once, over all connections.
    pub max_channels: Option<i64>,
}

impl UserLimits {
    /// Limits from their JSON object, validated as RabbitMQ validates user limits.
    ///
    /// # Errors
    /// RabbitMQ's text: `max-connections should be a number, actually was <<"x">>`, or
    /// `Unrecognised terms [{<<"foo">>,1}] in user-limits`.
    pub fn from_json(value: &Value) -> Result<UserLimits, String> {
        let fields = limit_fields(value, "user-limits", &["max-connections", "max-channels"])?;
        Ok(UserLimits { max_connections: fields[0], max_channels: fields[1] })
    }

    /// The limits as their JSON object: only the keys that are set (`{}` for none).
    pub fn to_json(&self) -> Value {
        limit_object(&[("max-connections", self.max_connections), ("max-channels", self.max_channels)])
    }

    /// The connection limit in force, if any.
    pub fn connections_max(&self) -> Option<u64> {
        in_force(self.max_connections)
    }

    /// The channel limit in force, if any.
    pub fn channels_max(&self) -> Option<u64> {
        in_force(self.max_channels)
    }
}

/// A limit value in force: negative values mean no limit.
pub(crate) fn in_force(limit: Option<i64>) -> Option<u64> {
    limit.and_then(|value| u64::try_from(value).ok())
}

/// Reads the integer fields `keys` of a limits object, with the checks and texts of
/// `rabbit_parameter_validation:proplist/3` and `integer/2`.
pub(crate) fn limit_fields(value: &Value, name: &str, keys: &[&str]) -> Result<Vec<Option<i64>>, String> {
    let Value::Object(map) = value else {
        return Err(format!("{name} not a list {}", erlang_term::format(value)));
    };
    let mut errors = Vec::new();
    let unknown: Vec<(&str, &Value)> = map
        .iter()
        .filter(|(key, _)| !keys.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    if !unknown.is_empty() {
        errors.push(format!("Unrecognised terms {} in {name}", erlang_term::format_pairs(unknown)));
    }
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        match map.get(*key) {
            None => fields.push(None),
            Some(item) => match item.as_i64() {
                Some(number) => fields.push(Some(number)),
                None => {
                    errors.push(format!(
                        "{key} should be a number, actually was {}",
                        erlang_term::format(item)
                    ));
                    fields.push(None);
                }
            },
        }
    }
    match errors.first() {
        Some(first) => Err(first.clone()),
        None => Ok(fields),
    }
}

/// A JSON object of the limits that are set.
pub(crate) fn limit_object(entries: &[(&str, Option<i64>)]) -> Value {
    let map =
        entries.iter().filter_map(|(key, value)| value.map(|value| ((*key).to_owned(), Value::from(value))));
    Value::Object(map.collect())
}

/// A user of the internal database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's name, as given at login.
    pub name: String,
    /// The password hash (possibly none).
    pub password: PasswordHash,
    /// Tags in the order they were set.
    pub tags: Vec<Tag>,
    /// Connection and channel limits.
    pub limits: UserLimits,
}

impl User {
    fn has(&self, wanted: &[Tag]) -> bool {
        self.tags.iter().any(|tag| wanted.contains(tag))
    }

    /// Tagged `administrator`.
    pub fn is_administrator(&self) -> bool {
        self.has(&[Tag::Administrator])
    }

    /// May see everything read-only (`monitoring` or `administrator`).
    pub fn is_monitor(&self) -> bool {
        self.has(&[Tag::Administrator, Tag::Monitoring])
    }

    /// May manage policies and parameters (`policymaker` or `administrator`).
    pub fn is_policymaker(&self) -> bool {
        self.has(&[Tag::Administrator, Tag::Policymaker])
    }

    /// May log in to the management API at all (any of the four management tags).
    pub fn is_management_user(&self) -> bool {
        self.has(&[Tag::Administrator, Tag::Monitoring, Tag::Policymaker, Tag::Management])
    }

    /// May publish with a `user_id` other than its own name.
    pub fn is_impersonator(&self) -> bool {
        self.has(&[Tag::Impersonator])
    }

    /// Whether this user may publish a message whose `user_id` property is `user_id`
    /// (`None`: no property). RabbitMQ's rule (`check_user_id_header/2` in
    /// `rabbit_channel.erl`): no `user_id`, the user's own name, or the `impersonator` tag.
    ///
    /// # Errors
    /// The text of RabbitMQ's `406 PRECONDITION_FAILED`:
    /// `user_id property set to 'bob' but authenticated user was 'guest'`.
    pub fn check_user_id(&self, user_id: Option<&[u8]>) -> Result<(), String> {
        match user_id {
            Some(claimed) if claimed != self.name.as_bytes() && !self.is_impersonator() => Err(format!(
                "user_id property set to '{}' but authenticated user was '{}'",
                String::from_utf8_lossy(claimed),
                self.name
            )),
            _ => Ok(()),
        }
    }

    /// The tags' names, as the HTTP API and definitions list them.
    pub fn tag_names(&self) -> Vec<&str> {
        self.tags.iter().map(Tag::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::password::HashingAlgorithm;
    use super::*;

    fn user(tags: &str) -> User {
        User {
            name: "u".into(),
            password: PasswordHash::none(HashingAlgorithm::Sha256),
            tags: parse_tags(tags),
            limits: UserLimits::default(),
        }
    }

    #[test]
    fn tags_parse_from_text_and_keep_unknown_ones() {
        assert_eq!(
            parse_tags("administrator, monitoring ,,custom"),
            vec![Tag::Administrator, Tag::Monitoring, Tag::Other("custom".into())]
        );
        assert!(parse_tags("").is_empty());
        assert_eq!(
            tags_from_list([" policymaker", "impersonator"]),
            vec![Tag::Policymaker, Tag::Impersonator]
        );
        assert_eq!(user("management,x").tag_names(), vec!["management", "x"]);
    }

    #[test]
    fn capabilities_follow_rabbitmq_management_rules() {
        let admin = user("administrator");
        assert!(admin.is_administrator() && admin.is_monitor() && admin.is_policymaker());
        assert!(admin.is_management_user() && !admin.is_impersonator());
        let monitor = user("monitoring");
        assert!(monitor.is_monitor() && !monitor.is_policymaker() && !monitor.is_administrator());
        assert!(monitor.is_management_user());
        let policymaker = user("policymaker");
        assert!(
            policymaker.is_policymaker() && !policymaker.is_monitor() && policymaker.is_management_user()
        );
        let management = user("management");
        assert!(management.is_management_user() && !management.is_monitor() && !management.is_policymaker());
        let plain = user("impersonator,custom");
        assert!(plain.is_impersonator() && !plain.is_management_user());
        assert!(!user("").is_management_user());
    }

    #[test]
    fn only_impersonators_publish_as_someone_else() {
        let guest = User { name: "guest".into(), ..user("") };
        assert_eq!(guest.check_user_id(None), Ok(()));
        assert_eq!(guest.check_user_id(Some(b"guest")), Ok(()));
        assert_eq!(
            guest.check_user_id(Some(b"bob")),
            Err("user_id property set to 'bob' but authenticated user was 'guest'".into())
        );
        let impersonator = User { name: "svc".into(), ..user("impersonator") };
        assert_eq!(impersonator.check_user_id(Some(b"bob")), Ok(()));
    }

    #[test]
    fn limits_validate_as_rabbitmq_does() {
        let limits =
            UserLimits::from_json(&json!({"max-connections": 3, "max-channels": -1})).expect("valid");
        assert_eq!(limits.connections_max(), Some(3));
        assert_eq!(limits.channels_max(), None, "negative is no limit");
        assert_eq!(limits.to_json(), json!({"max-connections": 3, "max-channels": -1}));
        assert_eq!(UserLimits::default().to_json(), json!({}));
        assert_eq!(
            UserLimits::from_json(&json!({"max-connections": "x"})),
            Err("max-connections should be a number, actually was <<\"x\">>".into())
        );
        assert_eq!(
            UserLimits::from_json(&json!({"max-queues": 1})),
            Err("Unrecognised terms [{<<\"max-queues\">>,1}] in user-limits".into())
        );
        let zero = UserLimits::from_json(&json!({"max-channels": 0})).expect("valid");
        assert_eq!(zero.channels_max(), Some(0));
    }
}
