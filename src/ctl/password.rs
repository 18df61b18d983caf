//! `hash_password`, computed here as RabbitMQ's default `rabbit_password_hashing_sha256`
//! does: `base64(salt ‖ SHA-256(salt ‖ password))` with a random 4-byte salt.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The salt's length in bytes, as RabbitMQ's.
pub const SALT_BYTES: usize = 4;

/// The hash of `password` with a fresh random salt.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn hash_password(password: &str) -> Result<String, getrandom::Error> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::getrandom(&mut salt)?;
    Ok(hash_with_salt(salt, password))
}

/// The hash of `password` with a given salt: 36 bytes, 48 base64 characters.
pub fn hash_with_salt(salt: [u8; SALT_BYTES], password: &str) -> String {
    let digest = Sha256::new().chain_update(salt).chain_update(password.as_bytes()).finalize();
    let mut bytes = Vec::with_capacity(SALT_BYTES + digest.len());
    bytes.extend_from_slice(&salt);
    bytes.extend_from_slice(&digest);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The salt of a stored hash: its first four bytes.
    fn salt_of(hash: &str) -> [u8; SALT_BYTES] {
        let bytes = base64::engine::general_purpose::STANDARD.decode(hash).unwrap();
        bytes[..SALT_BYTES].try_into().unwrap()
    }

    #[test]
    fn known_salts_give_rabbitmqs_hashes() {
        assert_eq!(
            hash_with_salt([0x90, 0x8D, 0xC6, 0x0A], "test12"),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
        for (password, hash) in [
            ("foobarbaz", "27cx5+wEi8R8uwTeTr3hk5azuV3yYxxAtwPPhCyrbdsxVhqq"),
            ("foobarbaz", "TBybOvomyVw6BqBU/fHCEpVhDO7fLdQ4kxZDUpt6hagCxV8I"),
            ("guest", "hJwnKN2/U3ORUmn25F5YvDmdg4h9xT7JvTfY/D0p5voMmGqp"),
            ("secret", "Zt0liDS+w8PXki8KVMjzkt1Jlu8UsIUBm3Ku3yykU1IlRXpP"),
        ] {
            assert_eq!(hash_with_salt(salt_of(hash), password), hash);
        }
    }

    #[test]
    fn fresh_hashes_are_48_characters_and_salted() {
        let first = hash_password("secret").unwrap();
        let second = hash_password("secret").unwrap();
        assert_eq!(first.len(), 48);
        assert_ne!(first, second);
        assert_eq!(hash_with_salt(salt_of(&first), "secret"), first);
    }
}
