//! Plain HTTP/1.1 requests to the management API, for status codes, headers and bodies
//! exactly as sent.

use std::io::{Read, Write};
use std::net::TcpStream;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

/// A reply: status, lower-cased headers and the body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One request as `user:password` over a fresh connection, with `extra` headers.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    user: (&str, &str),
    extra: &[(&str, &str)],
) -> Reply {
    let credentials = format!("Basic {}", STANDARD.encode(format!("{}:{}", user.0, user.1)));
    send(addr, method, path, body, Some(&credentials), extra)
}

/// One JSON request over a fresh connection with `authorization` as given (none: no
/// header), and `extra` headers.
pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    authorization: Option<&str>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    send_bytes(addr, method, path, body.as_bytes(), authorization, &headers)
}

/// One request over a fresh connection: any body, `authorization` as given (none: no
/// header), and `headers` (the content type among them).
pub fn send_bytes(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    authorization: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect to the management listener");
    let authorization = authorization.map(|a| format!("authorization: {a}\r\n")).unwrap_or_default();
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{authorization}{headers}content-length: {}\r\nconnection: close\r\n\r\n",
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
    Reply { status, headers, body: body.to_string() }
}

/// A request as guest.
pub fn guest(addr: &str, method: &str, path: &str, body: &str) -> Reply {
    request(addr, method, path, body, ("guest", "guest"), &[])
}

/// Polls `GET path` as guest until `wanted` holds, for up to `seconds` (statistics follow
/// the traffic).
pub fn until_within(
    addr: &str,
    path: &str,
    seconds: u64,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let reply = guest(addr, "GET", path, "").json();
        if wanted(&reply) {
            return reply;
        }
        assert!(std::time::Instant::now() < deadline, "{path} never showed what was wanted: {reply}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// [`until_within`] 10 s.
pub fn until(addr: &str, path: &str, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    until_within(addr, path, 10, wanted)
}
