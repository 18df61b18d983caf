//! A small HTTP/1.1 server for the management API: reads one request at a time from a
//! connection (request line, headers, a `Content-Length` body), hands it to the router and
//! writes the answer. Chunked request bodies are refused (no management client sends them).
//! Every read is bounded by [`HTTP_HEADER_BYTES_MAX`] and [`HTTP_BODY_BYTES_MAX`].

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::limits::{HTTP_BODY_BYTES_MAX, HTTP_HEADER_BYTES_MAX, HTTP_IDLE_TIMEOUT_MS};

/// One HTTP request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path, still percent-encoded (segments are decoded one by one).
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers (content type and length are added when written).
    pub headers: Vec<(&'static str, String)>,
    /// JSON body; empty for 204.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response { status, headers: Vec::new(), body: serde_json::to_vec(value).unwrap_or_default() }
    }

    /// An empty response (204, 201 without a body).
    pub fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    #[error("connection closed")]
    Closed,
    /// The head or body was malformed or too large: answered with 400 or 413, then closed.
    #[error("bad request: {0}")]
    Bad(&'static str),
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`, for query strings).
/// Invalid escapes are kept as they are.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match byte {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Splits `target` into its path and decoded query parameters.
pub fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect();
    (path.to_string(), query)
}

/// Reads one request; [`ReadError::Closed`] when the peer closed before a new one began.
///
/// # Errors
/// Malformed or oversized heads and bodies, and socket errors.
pub async fn read_request(reader: &mut BufReader<TcpStream>) -> Result<Request, ReadError> {
    let mut head_bytes = 0usize;
    let mut line = String::new();
    let mut lines = Vec::new();
    loop {
        line.clear();
        let limit = (HTTP_HEADER_BYTES_MAX - head_bytes) as u64 + 1;
        let read = (&mut *reader).take(limit).read_line(&mut line).await?;
        if read == 0 {
            return if lines.is_empty() {
                Err(ReadError::Closed)
            } else {
                Err(ReadError::Bad("truncated head"))
            };
        }
        head_bytes += read;
        if head_bytes > HTTP_HEADER_BYTES_MAX {
            return Err(ReadError::Bad("request head too large"));
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            if lines.is_empty() {
                continue; // stray blank line between requests
            }
            break;
        }
        lines.push(trimmed.to_string());
    }
    let mut request = parse_head(&lines)?;
    if request.header("transfer-encoding").is_some() {
        return Err(ReadError::Bad("chunked request bodies are not supported"));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(text) => text.trim().parse::<usize>().map_err(|_| ReadError::Bad("bad content-length"))?,
    };
    if length > HTTP_BODY_BYTES_MAX {
        return Err(ReadError::Bad("request body too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    request.body = body;
    Ok(request)
}

/// Parses the request line and headers.
fn parse_head(lines: &[String]) -> Result<Request, ReadError> {
    let first = lines.first().ok_or(ReadError::Bad("empty head"))?;
    let mut parts = first.split(' ');
    let method = parts.next().ok_or(ReadError::Bad("no method"))?.to_string();
    let target = parts.next().ok_or(ReadError::Bad("no target"))?;
    let (path, query) = split_target(target);
    let headers = lines
        .iter()
        .skip(1)
        .filter_map(|header| header.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Ok(Request { method, path, query, headers, body: Vec::new() })
}

/// The reason phrase of the status codes the API uses.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes `response`; `close` adds `connection: close`.
///
/// # Errors
/// Socket errors.
pub async fn write_response(stream: &mut TcpStream, response: &Response, close: bool) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    if response.status != 204 {
        // An empty answer (201, a 401 asking for credentials) has no content type.
        if !response.body.is_empty() {
            head.push_str("content-type: application/json\r\n");
        }
        head.push_str(&format!("content-length: {}\r\n", response.body.len()));
    }
    head.push_str("server: Warren\r\ncache-control: no-cache\r\nvary: accept, accept-encoding, origin\r\n");
    if close {
        head.push_str("connection: close\r\n");
    }
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if response.status != 204 {
        stream.write_all(&response.body).await?;
    }
    stream.flush().await
}

/// Serves requests on one connection until the peer closes, asks to close, stays idle for
/// [`HTTP_IDLE_TIMEOUT_MS`], or sends something unreadable.
pub async fn serve_connection<F, Fut>(stream: TcpStream, handle: F)
where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let mut reader = BufReader::new(stream);
    loop {
        let idle = Duration::from_millis(HTTP_IDLE_TIMEOUT_MS);
        let request = match tokio::time::timeout(idle, read_request(&mut reader)).await {
            Err(_) | Ok(Err(ReadError::Closed | ReadError::Io(_))) => return,
            Ok(Err(ReadError::Bad(why))) => {
                let body = serde_json::json!({"error": "bad_request", "reason": why});
                let _ = write_response(reader.get_mut(), &Response::json(400, &body), true).await;
                return;
            }
            Ok(Ok(request)) => request,
        };
        let close = request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = handle(request).await;
        if write_response(reader.get_mut(), &response, close).await.is_err() || close {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_decode("%2F", false), "/");
        assert_eq!(percent_decode("a.%23", false), "a.#");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%zz", false), "%zz");
        assert_eq!(percent_encode("a.#"), "a.%23");
        assert_eq!(percent_encode("/"), "%2F");
    }

    #[test]
    fn target_splits_query() {
        let (path, query) = split_target("/api/queues/%2F?page=1&name=a%20b&x");
        assert_eq!(path, "/api/queues/%2F");
        assert_eq!(
            query,
            vec![("page".into(), "1".into()), ("name".into(), "a b".into()), ("x".into(), String::new())]
        );
    }
}
