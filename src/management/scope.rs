//! Which vhosts a management user reaches, and the permission checks of what the API does
//! in one of them, made as RabbitMQ 3.10's management plugin makes them
//! (`rabbit_mgmt_util.erl`):
//!
//! - Lists (`/api/queues`, `/api/queues/{vhost}`, the same for exchanges and bindings) show
//!   the vhosts the user may see: every vhost for `monitoring` and `administrator`, else
//!   those the user has permissions in (`is_authorized_vhost_visible`).
//! - One object (`/api/queues/{vhost}/{name}…`) needs an `administrator`, or permissions in
//!   the vhost (`is_authorized_vhost`); otherwise 401 `User not authorised to access
//!   virtual host`. A vhost that does not exist is 404 either way.
//! - Declaring, deleting, binding and purging run as the user's `queue.declare` and the
//!   like (`direct_request/6`): a refused permission answers 401 `Access refused.`.
//!   Publishing, getting and the aliveness test open a channel as the user
//!   (`with_channel/4`): a refusal answers 401 with the channel's close text,
//!   `ACCESS_REFUSED - access to queue 'q' in vhost 'v' refused for user 'u'`.
//!
//! Permissions are checked for administrators too, as RabbitMQ's channel checks them.

use std::sync::Arc;

use super::{Api, ApiError, Principal};
use crate::broker::access::{AccessRefused, AccessState, Permission, Resource};
use crate::broker::exchange::ExchangeKind;
use crate::broker::Broker;

/// The reason RabbitMQ gives when a user without permissions in a vhost asks for it.
const VHOST_REFUSED: &str = "User not authorised to access virtual host";

/// The reason of a refused declaration, deletion, binding or purge (`direct_request/6`).
const OPERATION_REFUSED: &str = "Access refused.";

/// How a refused permission is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Access refused.`, as RabbitMQ's declarations through the API answer.
    Operation,
    /// The channel's close text, as publish, get and the aliveness test answer.
    Channel,
}

impl Refusal {
    fn error(self, refused: &AccessRefused) -> ApiError {
        match self {
            Refusal::Operation => ApiError::NotAuthorised(OPERATION_REFUSED.to_owned()),
            Refusal::Channel => ApiError::NotAuthorised(format!("ACCESS_REFUSED - {refused}")),
        }
    }
}

fn has_tag(principal: &Principal, tag: &str) -> bool {
    principal.tags.iter().any(|t| t == tag)
}

fn is_administrator(principal: &Principal) -> bool {
    has_tag(principal, "administrator")
}

fn is_monitor(principal: &Principal) -> bool {
    is_administrator(principal) || has_tag(principal, "monitoring")
}

/// One vhost as a user acts in it: its broker and the access model at the request's start.
pub struct InVhost {
    /// The vhost's broker.
    pub broker: Arc<Broker>,
    access: Arc<AccessState>,
    user: String,
}

impl InVhost {
    /// The vhost's name.
    pub fn name(&self) -> &str {
        self.broker.vhost()
    }

    /// `permission` on `resource` for the user.
    ///
    /// # Errors
    /// [`ApiError::NotAuthorised`], worded as `refusal` says.
    pub fn permit(
        &self,
        resource: Resource<'_>,
        permission: Permission,
        refusal: Refusal,
    ) -> Result<(), ApiError> {
        self.access
            .check(&self.user, self.name(), resource, permission)
            .map_err(|refused| refusal.error(&refused))
    }

    /// `permission` on `routing_key` when `exchange` is a topic exchange of the vhost.
    ///
    /// # Errors
    /// As [`InVhost::permit`].
    pub fn permit_topic(
        &self,
        exchange: &[u8],
        routing_key: &[u8],
        permission: Permission,
        refusal: Refusal,
    ) -> Result<(), ApiError> {
        if self.broker.exchange(exchange).is_some_and(|found| found.kind == ExchangeKind::Topic) {
            self.access
                .check_topic(&self.user, self.name(), exchange, routing_key, permission)
                .map_err(|refused| refusal.error(&refused))?;
        }
        Ok(())
    }

    /// A binding from `source` to `destination` (a queue when `to_queue`), as
    /// `queue.bind` and `exchange.bind` check it: write on the destination, read on the
    /// source, then topic read on the routing key.
    ///
    /// # Errors
    /// `Access refused.`
    pub fn permit_binding(
        &self,
        source: &[u8],
        destination: &[u8],
        to_queue: bool,
        routing_key: &[u8],
    ) -> Result<(), ApiError> {
        let target = if to_queue { Resource::queue(destination) } else { Resource::exchange(destination) };
        self.permit(target, Permission::Write, Refusal::Operation)?;
        self.permit(Resource::exchange(source), Permission::Read, Refusal::Operation)?;
        self.permit_topic(source, routing_key, Permission::Read, Refusal::Operation)
    }

    /// Whether one more queue, `name`, fits the vhost's `max-queues`.
    ///
    /// # Errors
    /// 400 with RabbitMQ's text.
    pub fn check_new_queue(&self, name: &[u8]) -> Result<(), ApiError> {
        self.access
            .check_new_queue(self.name(), name, self.broker.queue_count())
            .map_err(|refused| ApiError::BadRequest(refused.to_string()))
    }
}

impl Api {
    /// The running vhosts `principal` may see, by name.
    pub(super) fn visible_vhosts(&self, principal: &Principal) -> Vec<Arc<Broker>> {
        let all = self.node.vhosts();
        if is_monitor(principal) {
            return all;
        }
        let access = self.node.access().snapshot();
        all.into_iter()
            .filter(|broker| access.permissions(&principal.name, broker.vhost()).is_some())
            .collect()
    }

    /// The vhosts a list shows: `vhost`, or all visible ones when `None`.
    ///
    /// # Errors
    /// 404 for a vhost that does not exist; 401 for one the user may not see.
    pub(super) fn listed_vhosts(
        &self,
        principal: &Principal,
        vhost: Option<&str>,
    ) -> Result<Vec<Arc<Broker>>, ApiError> {
        let Some(name) = vhost else {
            return Ok(self.visible_vhosts(principal));
        };
        let broker = self.node.vhost(name).ok_or(ApiError::NotFound)?;
        let access = self.node.access().snapshot();
        if is_monitor(principal) || access.permissions(&principal.name, name).is_some() {
            Ok(vec![broker])
        } else {
            Err(ApiError::NotAuthorised(VHOST_REFUSED.to_owned()))
        }
    }

    /// The vhost `name`, to act on one of its objects.
    ///
    /// # Errors
    /// 404 for a vhost that does not exist; 401 when the user is no administrator and has
    /// no permissions there.
    pub(super) fn in_vhost(&self, principal: &Principal, name: &str) -> Result<InVhost, ApiError> {
        let broker = self.node.vhost(name).ok_or(ApiError::NotFound)?;
        let access = self.node.access().snapshot();
        if !is_administrator(principal) && access.permissions(&principal.name, name).is_none() {
            return Err(ApiError::NotAuthorised(VHOST_REFUSED.to_owned()));
        }
        Ok(InVhost { broker, access, user: principal.name.clone() })
    }
}
