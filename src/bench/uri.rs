//! `amqp://user:pass@host:port/vhost` URIs, percent-decoded. TLS (`amqps`) is not supported.

use super::Error;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmqpUri {
    /// `host:port`, ready for `TcpStream::connect`.
    pub addr: String,
    /// User name (default `guest`).
    pub user: String,
    /// Password (default `guest`).
    pub password: String,
    /// Virtual host (default `/`; an empty path also means `/`).
    pub vhost: String,
}

impl AmqpUri {
    /// Parses a URI.
    ///
    /// # Errors
    /// [`Error::Usage`] for another scheme or a malformed escape.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        let rest = uri
            .strip_prefix("amqp://")
            .ok_or_else(|| Error::Usage(format!("{uri}: only amqp:// URIs are supported")))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (decode(user)?, decode(pass)?)
            }
            None => ("guest".to_owned(), "guest".to_owned()),
        };
        let hostport = if hostport.is_empty() { "localhost" } else { hostport };
        let has_port = match hostport.rfind(']') {
            Some(bracket) => hostport.get(bracket..).is_some_and(|t| t.contains(':')),
            None => hostport.contains(':'),
        };
        let addr = if has_port { hostport.to_owned() } else { format!("{hostport}:5672") };
        let vhost = match decode(path)? {
            v if v.is_empty() => "/".to_owned(),
            v => v,
        };
        Ok(Self { addr, user, password, vhost })
    }
}

fn decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Usage(format!("bad percent escape in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::Usage(format!("{s:?} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let u = AmqpUri::parse("amqp://u:p%40ss@127.0.0.1:5673/%2F").expect("valid");
        assert_eq!(
            u,
            AmqpUri {
                addr: "127.0.0.1:5673".into(),
                user: "u".into(),
                password: "p@ss".into(),
                vhost: "/".into()
            }
        );
        let u = AmqpUri::parse("amqp://localhost").expect("valid");
        assert_eq!((u.addr.as_str(), u.user.as_str(), u.vhost.as_str()), ("localhost:5672", "guest", "/"));
        assert_eq!(AmqpUri::parse("amqp://h/test").expect("valid").vhost, "test");
        assert!(AmqpUri::parse("http://h").is_err());
    }
}
