//! The fields of an HTML form post, as RabbitMQ's management UI uploads a definitions
//! file: `multipart/form-data` (RFC 7578) or `application/x-www-form-urlencoded`. Pure:
//! a content type and a body in, fields out; nothing here reads a socket.

use super::http::percent_decode;

/// A form body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// `multipart/form-data` without a `boundary` parameter.
    #[error("multipart/form-data without a boundary")]
    NoBoundary,
    /// A part without its header block, or the body without its closing delimiter.
    #[error("malformed multipart body")]
    Malformed,
}

/// One field: its name and its value's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its value (a file's contents for a file field).
    pub value: Vec<u8>,
}

/// Whether `content_type` is a form this module reads.
pub fn is_form(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "multipart/form-data" || media == "application/x-www-form-urlencoded"
}

fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// The parameter `name` of a header value such as `form-data; name="file"`.
fn parameter<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|part| {
        let (key, text) = part.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| text.trim().trim_matches('"'))
    })
}

/// Every field of a form body of type `content_type` (see [`is_form`]).
///
/// # Errors
/// [`FormError`] for a multipart body that does not follow RFC 7578.
pub fn fields(content_type: &str, body: &[u8]) -> Result<Vec<Field>, FormError> {
    if media_type(content_type) == "multipart/form-data" {
        let boundary = parameter(content_type, "boundary").ok_or(FormError::NoBoundary)?;
        multipart_fields(boundary, body)
    } else {
        Ok(urlencoded_fields(body))
    }
}

fn urlencoded_fields(body: &[u8]) -> Vec<Field> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Field { name: percent_decode(name, true), value: percent_decode(value, true).into_bytes() }
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn multipart_fields(boundary: &str, body: &[u8]) -> Result<Vec<Field>, FormError> {
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes()).ok_or(FormError::Malformed)?;
    let mut rest = body.get(start + delimiter.len()..).ok_or(FormError::Malformed)?;
    // Every part after the first starts behind a CRLF; the body ends with `--`.
    let next_delimiter = format!("\r\n--{boundary}");
    let mut out = Vec::new();
    while !rest.starts_with(b"--") {
        let part_start = rest.strip_prefix(b"\r\n").ok_or(FormError::Malformed)?;
        let end = find(part_start, next_delimiter.as_bytes()).ok_or(FormError::Malformed)?;
        let part = part_start.get(..end).ok_or(FormError::Malformed)?;
        rest = part_start.get(end + next_delimiter.len()..).ok_or(FormError::Malformed)?;
        let head_end = find(part, b"\r\n\r\n").ok_or(FormError::Malformed)?;
        let head = String::from_utf8_lossy(part.get(..head_end).ok_or(FormError::Malformed)?);
        let value = part.get(head_end + 4..).ok_or(FormError::Malformed)?;
        let name = head.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case("content-disposition").then(|| parameter(value, "name"))?
        });
        if let Some(name) = name {
            out.push(Field { name: name.to_owned(), value: value.to_vec() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_file_and_redirect() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.json\"\r\n\
Content-Type: application/json\r\n\r\n{\"vhosts\":[]}\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"redirect\"\r\n\r\n../../#/\r\n--XyZ--\r\n";
        let found = fields("multipart/form-data; boundary=XyZ", body).expect("fields");
        assert_eq!(
            found,
            vec![
                Field { name: "file".into(), value: b"{\"vhosts\":[]}".to_vec() },
                Field { name: "redirect".into(), value: b"../../#/".to_vec() },
            ]
        );
        assert_eq!(fields("multipart/form-data", body), Err(FormError::NoBoundary));
        assert_eq!(
            fields("multipart/form-data; boundary=XyZ", b"--XyZ\r\nno end"),
            Err(FormError::Malformed)
        );
    }

    #[test]
    fn urlencoded() {
        let found =
            fields("application/x-www-form-urlencoded", b"file=%7B%22a%22%3A+1%7D&x=").expect("fields");
        assert_eq!(found.first().map(|f| f.value.as_slice()), Some(&b"{\"a\": 1}"[..]));
        assert!(is_form("Multipart/Form-Data; boundary=a") && !is_form("application/json"));
    }
}
