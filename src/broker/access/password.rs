//! Password hashing as RabbitMQ's internal backend does it, so that definitions move
//! between RabbitMQ and Warren with working passwords.
//!
//! A stored hash is `salt[4] ‖ H(salt ‖ utf8(password))`, shown base64-encoded in JSON
//! (`deps/rabbit/src/rabbit_password.erl` and `rabbit_password_hashing_*.erl` in
//! rabbitmq-server v3.10.8; rabbitmq-website `docs/passwords.md`, "Computing Password
//! Hashes"). `H` is SHA-256 by default, SHA-512, or MD5 (hashes from RabbitMQ before 3.6).
//! An empty hash means the user has no password: password login always fails for it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Bytes of random salt in front of every hash (RabbitMQ's `generate_salt/0`: 32 bits).
pub const SALT_BYTES: usize = 4;

/// A password hashing algorithm, named as RabbitMQ names its modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashingAlgorithm {
    /// `rabbit_password_hashing_sha256`, the default.
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
    /// `rabbit_password_hashing_md5`: RabbitMQ before 3.6, and stored users with no
    /// algorithm.
    Md5,
}

/// Why a password hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The algorithm name is none of the three RabbitMQ ships.
    #[error(
        "unknown hashing algorithm '{0}': expected rabbit_password_hashing_sha256, \
         rabbit_password_hashing_sha512 or rabbit_password_hashing_md5"
    )]
    UnknownAlgorithm(String),
    /// `password_hash` is not base64.
    #[error("password_hash is not valid base64")]
    InvalidBase64,
    /// The operating system's random source failed, so no salt could be made.
    #[error("no random salt: {0}")]
    Random(String),
}

impl HashingAlgorithm {
    /// What a new password is hashed with (RabbitMQ's `password_hashing_module` default).
    pub const DEFAULT: HashingAlgorithm = HashingAlgorithm::Sha256;

    /// RabbitMQ's name of the algorithm, as in `hashing_algorithm` of definitions.
    pub fn name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashingAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    /// The algorithm RabbitMQ calls `name`.
    ///
    /// # Errors
    /// [`PasswordError::UnknownAlgorithm`] for any other name.
    pub fn from_name(name: &str) -> Result<HashingAlgorithm, PasswordError> {
        match name {
            "rabbit_password_hashing_sha256" => Ok(HashingAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" => Ok(HashingAlgorithm::Sha512),
            "rabbit_password_hashing_md5" => Ok(HashingAlgorithm::Md5),
            other => Err(PasswordError::UnknownAlgorithm(other.to_owned())),
        }
    }

    /// The algorithm of an imported user: its `hashing_algorithm`, or when that is missing
    /// the one the exporting version used. RabbitMQ's rule (`hashing_algorithm/2` in
    /// `rabbit_auth_backend_internal.erl`, v3.10.8): files from 3.0 to 3.5 hashed with MD5,
    /// 3.6.0 with SHA-256, and a file naming no version (or a later one) gets the default.
    ///
    /// # Errors
    /// [`PasswordError::UnknownAlgorithm`] for an unknown name.
    pub fn for_import(
        name: Option<&str>,
        rabbit_version: Option<&str>,
    ) -> Result<HashingAlgorithm, PasswordError> {
        if let Some(name) = name {
            return HashingAlgorithm::from_name(name);
        }
        let before_3_6 = ["3.0.", "3.1.", "3.2.", "3.3.", "3.4.", "3.5."];
        match rabbit_version {
            Some(version) if before_3_6.iter().any(|prefix| version.starts_with(prefix)) => {
                Ok(HashingAlgorithm::Md5)
            }
            _ => Ok(HashingAlgorithm::DEFAULT),
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashingAlgorithm::Sha256 => {
                Sha256::new().chain_update(salt).chain_update(password).finalize().to_vec()
            }
            HashingAlgorithm::Sha512 => {
                Sha512::new().chain_update(salt).chain_update(password).finalize().to_vec()
            }
            HashingAlgorithm::Md5 => Md5::new().chain_update(salt).chain_update(password).finalize().to_vec(),
        }
    }
}

/// A stored password: the algorithm and `salt ‖ digest`, or nothing for a user without a
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: HashingAlgorithm,
    /// Salt then digest; empty for no password.
    bytes: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is a secret of sorts: tracing never shows it.
        f.debug_struct("PasswordHash")
            .field("algorithm", &self.algorithm)
            .field("set", &!self.bytes.is_empty())
            .finish()
    }
}

impl PasswordHash {
    /// No password: password login always fails.
    pub fn none(algorithm: HashingAlgorithm) -> PasswordHash {
        PasswordHash { algorithm, bytes: Vec::new() }
    }

    /// `password` hashed with a fresh random salt.
    ///
    /// # Errors
    /// [`PasswordError::Random`] when the system's random source fails.
    pub fn new(algorithm: HashingAlgorithm, password: &str) -> Result<PasswordHash, PasswordError> {
        let mut salt = [0u8; SALT_BYTES];
        getrandom::getrandom(&mut salt).map_err(|error| PasswordError::Random(error.to_string()))?;
        Ok(PasswordHash::with_salt(algorithm, salt, password))
    }

    /// `password` hashed with the given salt (tests and `hash_password` tools).
    pub fn with_salt(algorithm: HashingAlgorithm, salt: [u8; SALT_BYTES], password: &str) -> PasswordHash {
        let mut bytes = salt.to_vec();
        bytes.extend_from_slice(&algorithm.digest(&salt, password.as_bytes()));
        PasswordHash { algorithm, bytes }
    }

    /// A hash as definitions carry it (`password_hash`, base64). An empty text is no
    /// password. Other contents are kept as they are, as RabbitMQ keeps them: a hash of
    /// the wrong length simply never verifies.
    ///
    /// # Errors
    /// [`PasswordError::InvalidBase64`].
    pub fn from_base64(algorithm: HashingAlgorithm, text: &str) -> Result<PasswordHash, PasswordError> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| PasswordError::InvalidBase64)?;
        Ok(PasswordHash { algorithm, bytes })
    }

    /// The hash as definitions carry it: base64 of salt and digest, `""` for none.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    /// The algorithm the hash was made with.
    pub fn algorithm(&self) -> HashingAlgorithm {
        self.algorithm
    }

    /// Whether there is no password.
    pub fn is_none(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether `password` is the one hashed here, compared in constant time. An empty
    /// password never verifies (RabbitMQ's internal backend refuses blank passwords), nor
    /// does anything against no password.
    pub fn verify(&self, password: &str) -> bool {
        if password.is_empty() || self.bytes.len() < SALT_BYTES {
            return false;
        }
        let (salt, stored) = self.bytes.split_at(SALT_BYTES);
        let computed = self.algorithm.digest(salt, password.as_bytes());
        // `ct_eq` of slices of different lengths is false without looking at the bytes.
        bool::from(computed.as_slice().ct_eq(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(text: &str) -> PasswordHash {
        PasswordHash::from_base64(HashingAlgorithm::Sha256, text).expect("valid base64")
    }

    #[test]
    fn verifies_rabbitmq_3_10_8_hashes() {
        // Captured from RabbitMQ 3.10.8 (OPERATIONS-REFERENCE.md §5).
        assert!(stored("hJwnKN2/U3ORUmn25F5YvDmdg4h9xT7JvTfY/D0p5voMmGqp").verify("guest"));
        assert!(stored("Zt0liDS+w8PXki8KVMjzkt1Jlu8UsIUBm3Ku3yykU1IlRXpP").verify("secret"));
        assert!(stored("27cx5+wEi8R8uwTeTr3hk5azuV3yYxxAtwPPhCyrbdsxVhqq").verify("foobarbaz"));
        assert!(stored("TBybOvomyVw6BqBU/fHCEpVhDO7fLdQ4kxZDUpt6hagCxV8I").verify("foobarbaz"));
        assert!(!stored("hJwnKN2/U3ORUmn25F5YvDmdg4h9xT7JvTfY/D0p5voMmGqp").verify("Guest"));
        assert!(!stored("Zt0liDS+w8PXki8KVMjzkt1Jlu8UsIUBm3Ku3yykU1IlRXpP").verify("guest"));
    }

    #[test]
    fn hashes_with_a_given_salt_as_rabbitmq_does() {
        let hash = PasswordHash::with_salt(HashingAlgorithm::Sha256, [0x90, 0x8D, 0xC6, 0x0A], "test12");
        assert_eq!(hash.to_base64(), "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR");
        assert_eq!(hash.to_base64().len(), 48);
    }

    #[test]
    fn new_hashes_are_salted_and_verify() {
        for algorithm in [HashingAlgorithm::Sha256, HashingAlgorithm::Sha512, HashingAlgorithm::Md5] {
            let first = PasswordHash::new(algorithm, "s3cret").expect("random salt");
            let second = PasswordHash::new(algorithm, "s3cret").expect("random salt");
            assert!(first.verify("s3cret") && second.verify("s3cret"));
            assert!(!first.verify("s3cret "));
            // Two salts of 32 random bits collide once in four billion runs.
            assert_ne!(first.to_base64(), second.to_base64());
            let round = PasswordHash::from_base64(algorithm, &first.to_base64()).expect("base64");
            assert!(round.verify("s3cret"));
        }
        let sha512 = PasswordHash::with_salt(HashingAlgorithm::Sha512, [1, 2, 3, 4], "x");
        assert_eq!(sha512.to_base64().len(), 92, "4 + 64 bytes");
        let md5 = PasswordHash::with_salt(HashingAlgorithm::Md5, [1, 2, 3, 4], "x");
        assert_eq!(md5.to_base64().len(), 28, "4 + 16 bytes");
    }

    #[test]
    fn no_password_and_blank_passwords_never_verify() {
        let none = PasswordHash::none(HashingAlgorithm::Sha256);
        assert!(none.is_none() && !none.verify("") && !none.verify("guest"));
        assert_eq!(none.to_base64(), "");
        assert!(stored("").is_none());
        let hash = PasswordHash::with_salt(HashingAlgorithm::Sha256, [0; 4], "");
        assert!(!hash.verify(""), "blank passwords are refused at login");
        assert!(!stored("AAAA").verify("guest"), "a hash of the wrong length never verifies");
    }

    #[test]
    fn algorithm_names_round_trip_and_unknown_names_are_refused() {
        for algorithm in [HashingAlgorithm::Sha256, HashingAlgorithm::Sha512, HashingAlgorithm::Md5] {
            assert_eq!(HashingAlgorithm::from_name(algorithm.name()), Ok(algorithm));
        }
        let error = HashingAlgorithm::from_name("rabbit_password_hashing_sha1").unwrap_err();
        assert_eq!(error, PasswordError::UnknownAlgorithm("rabbit_password_hashing_sha1".into()));
        assert!(error.to_string().contains("unknown hashing algorithm 'rabbit_password_hashing_sha1'"));
        assert_eq!(
            PasswordHash::from_base64(HashingAlgorithm::Sha256, "@@"),
            Err(PasswordError::InvalidBase64)
        );
    }

    #[test]
    fn imports_pick_the_algorithm_of_the_exporting_version() {
        let import = HashingAlgorithm::for_import;
        assert_eq!(import(Some("rabbit_password_hashing_md5"), Some("3.10.8")), Ok(HashingAlgorithm::Md5));
        assert_eq!(import(None, Some("3.5.7")), Ok(HashingAlgorithm::Md5));
        assert_eq!(import(None, Some("3.0.0")), Ok(HashingAlgorithm::Md5));
        assert_eq!(import(None, Some("3.6.0")), Ok(HashingAlgorithm::Sha256));
        assert_eq!(import(None, Some("3.10.8")), Ok(HashingAlgorithm::Sha256));
        assert_eq!(import(None, None), Ok(HashingAlgorithm::Sha256));
        assert!(import(Some("bcrypt"), None).is_err());
    }
}
