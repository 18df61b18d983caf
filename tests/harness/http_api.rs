//! Raw HTTP/1.1 against the management listener: one request per connection, any method,
//! content type and body, with Basic credentials; the answer as status, lower-cased
//! headers and JSON (through [`super::http`]).

/// One answer: status, lower-cased headers, body.
pub type Answer = super::http::Reply;

/// `Basic user:password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Sends one request with `content_type` and `body` to `addr`, as `user:password`.
pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    credentials: (&str, &str),
) -> Answer {
    let authorization = basic(credentials.0, credentials.1);
    super::http::send_bytes(addr, method, path, body, Some(&authorization), &[("content-type", content_type)])
}

/// A JSON request (`""` body for none).
pub fn json(addr: &str, method: &str, path: &str, body: &str, credentials: (&str, &str)) -> Answer {
    send(addr, method, path, "application/json", body.as_bytes(), credentials)
}
