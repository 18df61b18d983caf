//! Every way a management request fails, mapped to RabbitMQ's status code and JSON body in
//! one exhaustive match.

use serde_json::json;

use super::http::Response;

/// The challenge every 401 carries.
const BASIC_REALM: &str = "Basic realm=\"RabbitMQ Management\"";

/// A failed management request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 404: no such object (or vhost, or route).
    #[error("not found")]
    NotFound,
    /// 404 with a channel's close text, as RabbitMQ answers a get from a missing queue
    /// (`NOT_FOUND - no queue 'q' in vhost 'v'`).
    #[error("{0}")]
    NotFoundOnChannel(String),
    /// 400 with the broker's (or the parser's) reason.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: wrong or malformed credentials.
    #[error("login failed")]
    LoginFailed,
    /// 401 with no body: the request carried no credentials, so the client is only asked
    /// for them (`www-authenticate`), as RabbitMQ does.
    #[error("no credentials")]
    NoCredentials,
    /// 401: the user lacks a tag; the reason names it (`Not administrator user`).
    #[error("{0}")]
    MissingTag(&'static str),
    /// 401: the user may not reach the vhost, or lacks a permission there; the reason is
    /// RabbitMQ's (`User not authorised to access virtual host`, `Access refused.`).
    #[error("{0}")]
    NotAuthorised(String),
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 500: the broker failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// RabbitMQ's status code and body for this error.
    pub fn response(&self) -> Response {
        let (status, body) = match self {
            ApiError::NoCredentials => {
                return Response::empty(401).with_header("www-authenticate", BASIC_REALM.to_string());
            }
            ApiError::NotFound => (404, json!({"error": "Object Not Found", "reason": "Not Found"})),
            ApiError::NotFoundOnChannel(reason) => (404, json!({"error": "not_found", "reason": reason})),
            ApiError::BadRequest(reason) => (400, json!({"error": "bad_request", "reason": reason})),
            ApiError::LoginFailed => (401, json!({"error": "not_authorized", "reason": "Login failed"})),
            ApiError::MissingTag(reason) => (401, json!({"error": "not_authorised", "reason": reason})),
            ApiError::NotAuthorised(reason) => (401, json!({"error": "not_authorised", "reason": reason})),
            ApiError::MethodNotAllowed => {
                (405, json!({"error": "Method Not Allowed", "reason": "Method Not Allowed"}))
            }
            ApiError::Internal(reason) => (500, json!({"error": "internal_error", "reason": reason})),
        };
        let response = Response::json(status, &body);
        // Only a failed login asks for credentials again; a missing tag or permission
        // is a 401 without the challenge, as in RabbitMQ.
        if matches!(self, ApiError::LoginFailed) {
            response.with_header("www-authenticate", BASIC_REALM.to_string())
        } else {
            response
        }
    }
}

impl From<crate::broker::Error> for ApiError {
    fn from(error: crate::broker::Error) -> ApiError {
        use crate::broker::Error as E;
        match error {
            E::QueueNotFound(_) | E::ExchangeNotFound(_) => ApiError::NotFound,
            E::Internal(reason) => ApiError::Internal(reason),
            // The AMQP gateway refuses these with ACCESS_REFUSED; RabbitMQ's declarations
            // through the API answer that with 401 `Access refused.` (`direct_request/6`).
            E::ReservedName { .. } | E::DefaultExchange | E::SystemExchange(_) => {
                ApiError::NotAuthorised("Access refused.".to_owned())
            }
            other @ (E::Inequivalent { .. }
            | E::Locked(_)
            | E::ExclusiveUse(_)
            | E::InternalExchange(_)
            | E::NotEmpty(_)
            | E::QueueInUse(_)
            | E::ExchangeInUse(_)
            | E::InvalidArg { .. }
            | E::InvalidProperty { .. }
            | E::UnknownExchangeType(_)
            | E::Overflow(_)) => ApiError::BadRequest(other.to_string()),
        }
    }
}
