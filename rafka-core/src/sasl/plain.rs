//! The PLAIN server (RFC 4616, as Kafka's `PlainSaslServer`): one client
//! message `authzid NUL authcid NUL passwd`, checked against the users of
//! the listener's JAAS config (`user_<name>="<password>"` options of a
//! `PlainLoginModule`), as Kafka's `PlainServerCallbackHandler` does.
//!
//! Passwords are compared as SHA-256 digests with a constant-time
//! equality, so neither the position of the first wrong byte nor the
//! length of the right password shows in the time taken.

use std::collections::BTreeMap;
use std::fmt;

use rafka_proto::error::ErrorCode;
use sha2::{Digest, Sha256};

use super::jaas::{JaasConfig, JaasError};
use super::scram::constant_time_eq;
use super::SaslStep;

/// Kafka's PLAIN login module, whose options name the users.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
/// The option prefix naming a user (`user_alice="alice-secret"`).
pub const PLAIN_USER_PREFIX: &str = "user_";
/// Longest client message accepted (RFC 4616 allows 255 bytes a field).
pub const PLAIN_MESSAGE_BYTES_MAX: usize = 8192;

/// Why a PLAIN exchange failed: Kafka's SASL_AUTHENTICATION_FAILED, with
/// Kafka's own message as `Display` (it sends it to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {0}")]
    Tokens(usize),
    #[error("Invalid SASL/PLAIN response: not UTF-8")]
    NotUtf8,
    #[error("Invalid SASL/PLAIN response: longer than {PLAIN_MESSAGE_BYTES_MAX} bytes")]
    TooLong,
    #[error("Authentication failed: username not specified")]
    NoUsername,
    #[error("Authentication failed: password not specified")]
    NoPassword,
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
    #[error(
        "Authentication failed: Client requested an authorization id that is different from \
         username"
    )]
    AuthorizationIdMismatch,
    #[error("SASL/PLAIN message after the exchange ended")]
    ExchangeOver,
}

impl PlainError {
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::SASL_AUTHENTICATION_FAILED
    }
}

/// The users a PLAIN listener accepts, by name, with their passwords'
/// SHA-256 digests.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PlainUsers {
    users: BTreeMap<String, [u8; 32]>,
}

impl PlainUsers {
    pub fn new<'a>(users: impl IntoIterator<Item = (&'a str, &'a str)>) -> PlainUsers {
        let users = users
            .into_iter()
            .map(|(user, password)| (user.to_string(), digest(password.as_bytes())))
            .collect();
        PlainUsers { users }
    }

    /// The `user_<name>` options of a `PlainLoginModule` config.
    pub fn from_jaas(config: &JaasConfig) -> Result<PlainUsers, JaasError> {
        if config.login_module != PLAIN_LOGIN_MODULE {
            return Err(JaasError::WrongLoginModule {
                found: config.login_module.clone(),
                expected: PLAIN_LOGIN_MODULE,
            });
        }
        let users = config.options.iter().filter_map(|(key, password)| {
            let user = key.strip_prefix(PLAIN_USER_PREFIX)?;
            Some((user, password.as_str()))
        });
        Ok(PlainUsers::new(users))
    }

    /// Parses a `sasl.jaas.config` value into its users.
    pub fn parse_jaas(text: &str) -> Result<PlainUsers, JaasError> {
        Self::from_jaas(&JaasConfig::parse(text)?)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Whether `password` is `user`'s. An unknown user is compared with a
    /// digest no password has, so it costs the same time.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        let given = digest(password);
        match self.users.get(user) {
            Some(expected) => constant_time_eq(&given, expected),
            None => {
                let _ = constant_time_eq(&given, &[0u8; 32]);
                false
            }
        }
    }
}

fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

/// Passwords (even hashed) stay out of logs.
impl fmt::Debug for PlainUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.users.keys()).finish()
    }
}

/// One connection's PLAIN exchange, server side.
#[derive(Debug, Default)]
pub struct PlainServer {
    over: bool,
}

impl PlainServer {
    pub fn new() -> PlainServer {
        PlainServer::default()
    }

    /// Takes the client's only message: complete with the user name and
    /// an empty response, or failed. Either way the exchange is over.
    pub fn evaluate(&mut self, message: &[u8], users: &PlainUsers) -> Result<SaslStep, PlainError> {
        if std::mem::replace(&mut self.over, true) {
            return Err(PlainError::ExchangeOver);
        }
        if message.len() > PLAIN_MESSAGE_BYTES_MAX {
            return Err(PlainError::TooLong);
        }
        let text = std::str::from_utf8(message).map_err(|_| PlainError::NotUtf8)?;
        let tokens: Vec<&str> = text.split('\0').collect();
        let [authzid, user, password] = tokens[..] else {
            return Err(PlainError::Tokens(tokens.len()));
        };
        if user.is_empty() {
            return Err(PlainError::NoUsername);
        }
        if password.is_empty() {
            return Err(PlainError::NoPassword);
        }
        if !users.check(user, password.as_bytes()) {
            return Err(PlainError::InvalidCredentials);
        }
        if !authzid.is_empty() && authzid != user {
            return Err(PlainError::AuthorizationIdMismatch);
        }
        Ok(SaslStep::Complete {
            user: user.to_string(),
            response: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
        username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
        user_alice=\"alice-secret\";";

    fn users() -> PlainUsers {
        PlainUsers::parse_jaas(JAAS).unwrap()
    }

    fn authenticate(message: &[u8]) -> Result<SaslStep, PlainError> {
        PlainServer::new().evaluate(message, &users())
    }

    fn complete(user: &str) -> Result<SaslStep, PlainError> {
        Ok(SaslStep::Complete {
            user: user.into(),
            response: vec![],
        })
    }

    #[test]
    fn users_from_kafkas_jaas_config() {
        let users = users();
        assert_eq!(users.len(), 2);
        assert!(users.contains("admin") && users.contains("alice"));
        // `username`/`password` are the broker's own client identity.
        assert!(!users.contains("name"));
        assert!(users.check("alice", b"alice-secret"));
        assert!(!users.check("alice", b"admin-secret"));
        assert!(!users.check("bob", b"alice-secret"));
        assert_eq!(format!("{users:?}"), "{\"admin\", \"alice\"}");
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        assert_eq!(
            PlainUsers::parse_jaas(scram),
            Err(JaasError::WrongLoginModule {
                found: "org.apache.kafka.common.security.scram.ScramLoginModule".into(),
                expected: PLAIN_LOGIN_MODULE,
            })
        );
        assert_eq!(
            PlainUsers::parse_jaas("x required user_a=\"b\""),
            Err(JaasError::NotTerminated)
        );
    }

    #[test]
    fn accepts_the_right_password() {
        assert_eq!(authenticate(b"\0alice\0alice-secret"), complete("alice"));
        assert_eq!(
            authenticate(b"alice\0alice\0alice-secret"),
            complete("alice")
        );
        assert_eq!(authenticate(b"\0admin\0admin-secret"), complete("admin"));
    }

    #[test]
    fn refusals_in_kafkas_words() {
        let cases: &[(&[u8], PlainError)] = &[
            (b"\0alice\0wrong", PlainError::InvalidCredentials),
            (b"\0alice\0alice-secreT", PlainError::InvalidCredentials),
            (b"\0bob\0alice-secret", PlainError::InvalidCredentials),
            (
                b"admin\0alice\0alice-secret",
                PlainError::AuthorizationIdMismatch,
            ),
            (b"\0\0alice-secret", PlainError::NoUsername),
            (b"\0alice\0", PlainError::NoPassword),
            (b"alice\0alice-secret", PlainError::Tokens(2)),
            (b"", PlainError::Tokens(1)),
            (b"\0alice\0alice-secret\0", PlainError::Tokens(4)),
            (b"\0alice\0\xff", PlainError::NotUtf8),
        ];
        for (message, want) in cases {
            assert_eq!(authenticate(message).as_ref(), Err(want), "{message:?}");
        }
        assert_eq!(
            authenticate(&vec![b'a'; PLAIN_MESSAGE_BYTES_MAX + 1]),
            Err(PlainError::TooLong)
        );
        assert_eq!(
            PlainError::InvalidCredentials.to_string(),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(
            PlainError::Tokens(2).error_code(),
            ErrorCode::SASL_AUTHENTICATION_FAILED
        );
    }

    #[test]
    fn one_message_only() {
        let users = users();
        let mut server = PlainServer::new();
        assert_eq!(
            server.evaluate(b"\0alice\0alice-secret", &users),
            complete("alice")
        );
        assert_eq!(
            server.evaluate(b"\0alice\0alice-secret", &users),
            Err(PlainError::ExchangeOver)
        );
        let mut failed = PlainServer::new();
        assert!(failed.evaluate(b"\0alice\0x", &users).is_err());
        assert_eq!(
            failed.evaluate(b"\0alice\0alice-secret", &users),
            Err(PlainError::ExchangeOver)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(message in proptest::collection::vec(any::<u8>(), 0..100)) {
            let result = authenticate(&message);
            prop_assert!(result.is_err() || message.ends_with(b"-secret"));
        }

        #[test]
        fn random_jaas_text_never_panics(text in ".{0,80}") {
            let _ = JaasConfig::parse(&text);
        }
    }
}
