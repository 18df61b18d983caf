//! Names the broker makes up: server-generated queue and consumer names, directory names
//! for queues on disc, and names as text for error messages. Pure functions: no model, no
//! I/O.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::limits::GENERATED_NAME_RANDOM_BYTES;

/// A name as text (for errors and tracing), with invalid UTF-8 replaced.
pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `prefix` followed by [`GENERATED_NAME_RANDOM_BYTES`] (22) random URL-safe characters,
/// like RabbitMQ's `amq.gen-…`.
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(prefix.len() + GENERATED_NAME_RANDOM_BYTES);
    out.push_str(prefix);
    let mut state = rand_seed();
    for _ in 0..GENERATED_NAME_RANDOM_BYTES {
        // xorshift64, with Marsaglia's shift triple.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push(char::from(ALPHABET[(state % ALPHABET.len() as u64) as usize]));
    }
    out
}

/// A non-zero seed (xorshift stays at zero once there) that differs on every call.
fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() | 1
}

/// A name as a file-system-safe directory name.
pub fn hex(name: &[u8]) -> String {
    name.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_look_like_rabbitmq() {
        let a = generated_name("amq.gen-");
        let b = generated_name("amq.gen-");
        assert_eq!(a.len(), "amq.gen-".len() + 22);
        assert_ne!(a, b);
    }
}
