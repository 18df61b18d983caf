//! A blocking HTTP/1.1 client over a std `TcpStream`, enough for the management API on
//! plain HTTP: one request per connection (`Connection: close`), Basic auth, JSON bodies (no `Accept`
//! header: RabbitMQ answers 406 to `Accept: application/json` on a queue purge),
//! answers with `Content-Length`, chunked encoding, or read to the end. Every answer is
//! bounded by [`limits::CTL_RESPONSE_BYTES_MAX`].

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;

use super::Error;
use crate::limits;

/// Where the API is and who asks: parsed from `--url`, `--user` and `--password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix before `/api` (empty, or starting with `/` and not ending with one).
    pub prefix: String,
    authorization: String,
    timeout: Duration,
}

/// One HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, decoded from chunks where the server sent chunks.
    pub body: Vec<u8>,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]`.
    ///
    /// # Errors
    /// [`Error::Usage`] for another scheme or a malformed address.
    pub fn parse(url: &str, user: &str, password: &str, timeout: Duration) -> Result<Endpoint, Error> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::Usage(format!("--url {url}: only http:// URLs are supported")))?;
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| Error::Usage(format!("--url {url}: bad host or port")))?;
        let prefix = path.trim_end_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Endpoint { host, port, prefix, authorization: format!("Basic {credentials}"), timeout })
    }

    /// The URL for messages: `http://host:port`.
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}{}", self.host, self.port, self.prefix)
        } else {
            format!("http://{}:{}{}", self.host, self.port, self.prefix)
        }
    }

    /// Sends one request and reads the whole answer.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when no connection can be made or the exchange fails midway;
    /// [`Error::Protocol`] when the answer is not HTTP or is too large.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Result<Response, Error> {
        let unreachable = |source: std::io::Error| Error::Unreachable { url: self.display(), source };
        let mut stream = self.connect().map_err(unreachable)?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: {}\r\nConnection: close\r\nUser-Agent: warren-ctl\r\n",
            self.prefix, self.host, self.port, self.authorization
        );
        for (name, value) in extra {
            head.push_str(&format!("{name}: {}\r\n", header_safe(value)));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        } else if matches!(method, "PUT" | "POST") {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).map_err(unreachable)?;
        if let Some(body) = body {
            stream.write_all(body).map_err(unreachable)?;
        }
        stream.flush().map_err(unreachable)?;
        let mut raw = Vec::new();
        stream
            .take(limits::CTL_RESPONSE_BYTES_MAX as u64 + limits::CTL_RESPONSE_HEAD_BYTES_MAX as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(unreachable)?;
        parse_response(&raw)
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address");
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(self.timeout))?;
                    stream.set_write_timeout(Some(self.timeout))?;
                    return Ok(stream);
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

/// `host:port`, `host`, `[v6]:port` or `[v6]`; port 80 when absent.
fn split_host_port(authority: &str) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if tail.is_empty() => 80,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (authority, 80),
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// A header value with line breaks and other control characters replaced by spaces, so
/// that no argument can add a header.
fn header_safe(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Parses a whole HTTP/1.x answer.
///
/// # Errors
/// [`Error::Protocol`] when it is not one.
pub fn parse_response(raw: &[u8]) -> Result<Response, Error> {
    let bad = |what: &str| Error::Protocol(format!("the server's answer is not HTTP: {what}"));
    let head_end = raw
        .windows(4)
        .take(limits::CTL_RESPONSE_HEAD_BYTES_MAX)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| bad("headers are not UTF-8"))?;
    let rest = &raw[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad("no status line"));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| bad("Content-Length"))?);
        }
    }
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("broken chunked body"))?
    } else if let Some(length) = length {
        rest.get(..length).ok_or_else(|| bad("body shorter than Content-Length"))?.to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > limits::CTL_RESPONSE_BYTES_MAX {
        return Err(Error::Protocol(format!("answer larger than {} bytes", limits::CTL_RESPONSE_BYTES_MAX)));
    }
    Ok(Response { status, body })
}

/// Joins the chunks of a chunked body; `None` when it is cut or malformed.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(rest.get(..line_end)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = rest.get(line_end + 2..)?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// Percent-encodes one path segment: everything but unreserved characters (`/` → `%2F`).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_prefix() {
        let t = Duration::from_secs(1);
        let e = Endpoint::parse("http://127.0.0.1:15672", "guest", "guest", t).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), ("127.0.0.1", 15672, ""));
        assert_eq!(e.authorization, "Basic Z3Vlc3Q6Z3Vlc3Q=");
        let e = Endpoint::parse("http://example.org/rabbit/", "u", "p", t).unwrap();
        assert_eq!((e.host.as_str(), e.port, e.prefix.as_str()), ("example.org", 80, "/rabbit"));
        let e = Endpoint::parse("http://[::1]:8080", "u", "p", t).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 8080));
        assert_eq!(e.display(), "http://[::1]:8080");
        assert!(matches!(Endpoint::parse("https://h", "u", "p", t), Err(Error::Usage(_))));
        assert!(matches!(Endpoint::parse("http://h:x", "u", "p", t), Err(Error::Usage(_))));
    }

    #[test]
    fn answers_parse_by_length_by_chunks_and_to_the_end() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"abcde"[..]));
        let r = parse_response(b"HTTP/1.0 204 No Content\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").is_err());
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("/"), "%2F");
        assert_eq!(encode_segment("a b/c#é"), "a%20b%2Fc%23%C3%A9");
        assert_eq!(encode_segment("q-1.x_~"), "q-1.x_~");
        assert_eq!(header_safe("bye\r\nX-Evil: 1"), "bye  X-Evil: 1");
    }
}
