//! Raw HTTP/1.1 against the management listener: one request per connection, any method,
//! content type and body, with Basic credentials; the answer as status, lower-cased
//! headers and JSON.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// One answer: status, lower-cased headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

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
    let mut stream = TcpStream::connect(addr).expect("connect to the management listener");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        basic(credentials.0, credentials.1),
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status, headers, body: body.to_string() }
}

/// A JSON request (`""` body for none).
pub fn json(addr: &str, method: &str, path: &str, body: &str, credentials: (&str, &str)) -> Answer {
    send(addr, method, path, "application/json", body.as_bytes(), credentials)
}
