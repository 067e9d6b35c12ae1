//! SCRAM's vocabulary (RFC 5802, RFC 7677): the two mechanisms Kafka
//! offers, the credential a server keeps, and the key derivations both
//! sides compute. The password is used once, to derive a credential, and
//! never stored.

use std::fmt;

use hmac::digest::block_api::EagerHash;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's minimum PBKDF2 iteration count for both mechanisms.
pub const SCRAM_ITERATIONS_MIN: u32 = 4096;
/// Kafka's maximum PBKDF2 iteration count for both mechanisms.
pub const SCRAM_ITERATIONS_MAX: u32 = 16384;
/// Longest salt a credential may carry (Kafka's own are ~26 bytes).
pub const SCRAM_SALT_BYTES_MAX: usize = 1024;
/// Length of the salts rafka generates.
pub const SCRAM_SALT_BYTES_GENERATED: usize = 32;

/// A SCRAM mechanism as Kafka names and numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism.type()`: the code in UserScramCredentialRecord
    /// and the admin APIs.
    pub fn type_code(self) -> u8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_type_code(code: u8) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.type_code() == code)
    }

    /// Length of the hash, hence of every key and signature.
    pub fn digest_bytes(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    /// `Hi(Normalize(password), salt, i)`: PBKDF2 with HMAC. Passwords are
    /// used as given (Kafka does no SASLprep either).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_bytes()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => hmac_with::<Sha256>(key, data),
            ScramMechanism::Sha512 => hmac_with::<Sha512>(key, data),
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `ClientKey = HMAC(SaltedPassword, "Client Key")`.
    pub fn client_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Client Key")
    }

    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub fn server_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Server Key")
    }

    /// `StoredKey = H(ClientKey)`.
    pub fn stored_key(self, client_key: &[u8]) -> Vec<u8> {
        self.hash(client_key)
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn hmac_with<D: EagerHash>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key)
        .expect("HMAC can be initialized with any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `a XOR b` for two equally long keys.
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    assert_eq!(a.len(), b.len(), "SCRAM keys of different lengths");
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Why a credential cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("iterations {iterations} outside {SCRAM_ITERATIONS_MIN}..={SCRAM_ITERATIONS_MAX} for {mechanism}")]
    Iterations {
        mechanism: ScramMechanism,
        iterations: u32,
    },
    #[error("salt of {0} bytes (1..={SCRAM_SALT_BYTES_MAX} allowed)")]
    Salt(usize),
    #[error("{key} of {length} bytes, {mechanism} needs {}", mechanism.digest_bytes())]
    KeyLength {
        mechanism: ScramMechanism,
        key: &'static str,
        length: usize,
    },
    #[error("no random bytes for a salt: {0}")]
    Random(String),
}

/// What a server keeps of a user's password for one mechanism: enough to
/// check a proof and sign the answer, not enough to log in as the user
/// without also knowing the password (RFC 5802 section 9).
///
/// Invariant (checked by [`ScramCredential::new`]): both keys are
/// `mechanism.digest_bytes()` long, the salt is 1..=1024 bytes and the
/// iterations are within Kafka's 4096..=16384.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    mechanism: ScramMechanism,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    iterations: u32,
}

impl ScramCredential {
    pub fn new(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        check_iterations(mechanism, iterations)?;
        if salt.is_empty() || salt.len() > SCRAM_SALT_BYTES_MAX {
            return Err(CredentialError::Salt(salt.len()));
        }
        for (key, bytes) in [("stored key", &stored_key), ("server key", &server_key)] {
            if bytes.len() != mechanism.digest_bytes() {
                return Err(CredentialError::KeyLength {
                    mechanism,
                    key,
                    length: bytes.len(),
                });
            }
        }
        Ok(ScramCredential {
            mechanism,
            salt,
            stored_key,
            server_key,
            iterations,
        })
    }

    /// The credential for `password` with the given salt.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        // Checked before PBKDF2 runs: a huge count would stall the caller.
        check_iterations(mechanism, iterations)?;
        let salted = mechanism.salted_password(password, &salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential for `password` with a fresh random salt.
    pub fn generate(
        mechanism: ScramMechanism,
        password: &[u8],
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        let mut salt = vec![0u8; SCRAM_SALT_BYTES_GENERATED];
        getrandom::fill(&mut salt).map_err(|e| CredentialError::Random(e.to_string()))?;
        Self::from_password(mechanism, password, salt, iterations)
    }

    /// The credential for an already salted password (`kafka-storage
    /// format --add-scram ...,saltedpassword=...`).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Result<ScramCredential, CredentialError> {
        if salted_password.len() != mechanism.digest_bytes() {
            return Err(CredentialError::KeyLength {
                mechanism,
                key: "salted password",
                length: salted_password.len(),
            });
        }
        let stored_key = mechanism.stored_key(&mechanism.client_key(salted_password));
        let server_key = mechanism.server_key(salted_password);
        Self::new(mechanism, salt, stored_key, server_key, iterations)
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }
    pub fn stored_key(&self) -> &[u8] {
        &self.stored_key
    }
    pub fn server_key(&self) -> &[u8] {
        &self.server_key
    }
    pub fn iterations(&self) -> u32 {
        self.iterations
    }
}

fn check_iterations(mechanism: ScramMechanism, iterations: u32) -> Result<(), CredentialError> {
    if (SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
        Ok(())
    } else {
        Err(CredentialError::Iterations {
            mechanism,
            iterations,
        })
    }
}

/// Keys stay out of logs.
impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("salt_bytes", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc7677_keys() {
        use base64::Engine;
        let salt = base64::engine::general_purpose::STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap();
        let credential =
            ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", salt, 4096).unwrap();
        assert_eq!(
            hex(credential.stored_key()),
            "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6"
        );
        assert_eq!(
            hex(credential.server_key()),
            "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5"
        );
    }

    #[test]
    fn sha512_keys() {
        // Expected values computed with Python's hashlib (an independent
        // PBKDF2/HMAC implementation).
        let credential = ScramCredential::from_password(
            ScramMechanism::Sha512,
            b"pencil",
            b"rafka-test-salt!".to_vec(),
            4096,
        )
        .unwrap();
        assert_eq!(
            hex(credential.stored_key()),
            "6339349428d4a06c7682248b14b1c35d012bf087d2ef68477011e41d75c43115\
             a02dff09b2fd962c72b8b6b97309c0a3c114037a5a7b9a6cca12690a1ab99fcb"
        );
        assert_eq!(
            hex(credential.server_key()),
            "3eba5f9822779212670b6378876a8b2ba59b06ecbb5fc41beb9a649ed7e8ca5d\
             0637db06675e8a2e8a8e5ea563b6952440f3d754c86cbd2561e1146617069a65"
        );
    }

    #[test]
    fn credential_limits() {
        let m = ScramMechanism::Sha256;
        assert_eq!(
            ScramCredential::from_password(m, b"p", b"s".to_vec(), 4095),
            Err(CredentialError::Iterations {
                mechanism: m,
                iterations: 4095
            })
        );
        assert_eq!(
            ScramCredential::from_password(m, b"p", b"s".to_vec(), 16385),
            Err(CredentialError::Iterations {
                mechanism: m,
                iterations: 16385
            })
        );
        assert_eq!(
            ScramCredential::new(m, vec![], vec![0; 32], vec![0; 32], 4096),
            Err(CredentialError::Salt(0))
        );
        assert_eq!(
            ScramCredential::new(m, vec![1], vec![0; 64], vec![0; 32], 4096),
            Err(CredentialError::KeyLength {
                mechanism: m,
                key: "stored key",
                length: 64
            })
        );
        let ok = ScramCredential::new(m, vec![1], vec![0; 32], vec![0; 32], 16384).unwrap();
        assert_eq!(ok.iterations(), 16384);
        assert!(!format!("{ok:?}").contains("stored"));
    }

    #[test]
    fn generated_salts_differ() {
        let m = ScramMechanism::Sha512;
        let a = ScramCredential::generate(m, b"p", 4096).unwrap();
        let b = ScramCredential::generate(m, b"p", 4096).unwrap();
        assert_eq!(a.salt().len(), SCRAM_SALT_BYTES_GENERATED);
        assert_ne!(a.salt(), b.salt());
        assert_ne!(a.stored_key(), b.stored_key());
    }

    #[test]
    fn mechanism_names_and_codes() {
        assert_eq!(
            ScramMechanism::from_name("SCRAM-SHA-512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_name("scram-sha-512"), None);
        assert_eq!(ScramMechanism::Sha256.type_code(), 1);
        assert_eq!(
            ScramMechanism::from_type_code(2),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_type_code(0), None);
    }
}
