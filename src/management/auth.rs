//! HTTP Basic authentication and RabbitMQ's tag checks.

use super::base64::base64_decode;
use super::{ApiError, Authenticator, Principal};

/// What a route asks of the user's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any management user (`management`, `policymaker`, `monitoring`, `administrator`).
    Management,
    /// `monitoring` or `administrator`.
    Monitoring,
    /// `administrator` only.
    Administrator,
}

/// Checks that `principal` may use a route needing `access`.
///
/// # Errors
/// [`ApiError::MissingTag`] with RabbitMQ's reason.
pub fn require(principal: &Principal, access: Access) -> Result<(), ApiError> {
    let has = |tag: &str| principal.tags.iter().any(|t| t == tag);
    let allowed = match access {
        Access::Management => {
            ["management", "policymaker", "monitoring", "administrator"].iter().any(|t| has(t))
        }
        Access::Monitoring => has("monitoring") || has("administrator"),
        Access::Administrator => has("administrator"),
    };
    if allowed {
        return Ok(());
    }
    Err(ApiError::MissingTag(match access {
        Access::Management => "Not management user",
        Access::Monitoring => "Not monitor user",
        Access::Administrator => "Not administrator user",
    }))
}

/// The user of an `Authorization: Basic …` header.
///
/// # Errors
/// [`ApiError::NoCredentials`] when there is no header, [`ApiError::LoginFailed`] when it
/// is malformed or wrong.
pub fn authenticate(authenticator: &dyn Authenticator, header: Option<&str>) -> Result<Principal, ApiError> {
    let header = header.ok_or(ApiError::NoCredentials)?;
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
        .ok_or(ApiError::LoginFailed)?;
    let decoded = base64_decode(encoded.trim()).ok_or(ApiError::LoginFailed)?;
    let text = String::from_utf8(decoded).map_err(|_| ApiError::LoginFailed)?;
    let (user, password) = text.split_once(':').ok_or(ApiError::LoginFailed)?;
    authenticator.authenticate(user, password).ok_or(ApiError::LoginFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Guest;
    impl Authenticator for Guest {
        fn authenticate(&self, user: &str, password: &str) -> Option<Principal> {
            (user == "guest" && password == "guest")
                .then(|| Principal { name: "guest".into(), tags: vec!["monitoring".into()] })
        }
    }

    #[test]
    fn basic_header() {
        assert_eq!(base64_decode("Z3Vlc3Q6Z3Vlc3Q=").as_deref(), Some(&b"guest:guest"[..]));
        assert!(authenticate(&Guest, Some("Basic Z3Vlc3Q6Z3Vlc3Q=")).is_ok());
        assert_eq!(authenticate(&Guest, Some("Basic Z3Vlc3Q6eA==")), Err(ApiError::LoginFailed));
        assert_eq!(authenticate(&Guest, None), Err(ApiError::NoCredentials));
        assert_eq!(authenticate(&Guest, Some("Basic !!")), Err(ApiError::LoginFailed));
    }

    #[test]
    fn tags() {
        let monitor = Principal { name: "m".into(), tags: vec!["monitoring".into()] };
        assert!(require(&monitor, Access::Management).is_ok());
        assert!(require(&monitor, Access::Monitoring).is_ok());
        assert_eq!(
            require(&monitor, Access::Administrator),
            Err(ApiError::MissingTag("Not administrator user"))
        );
        let none = Principal { name: "n".into(), tags: vec![] };
        assert_eq!(require(&none, Access::Management), Err(ApiError::MissingTag("Not management user")));
    }
}
