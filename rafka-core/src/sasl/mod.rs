//! SASL mechanisms, sans IO: the server side of PLAIN, SCRAM-SHA-256/512
//! and OAUTHBEARER as Kafka's broker speaks them, and the configuration syntaxes that give
//! them users. The network layer moves the bytes (SaslHandshake,
//! SaslAuthenticate) and turns a failure into SASL_AUTHENTICATION_FAILED.
//!
//! - `scram`: [`ScramMechanism`], [`ScramCredential`] (salted keys only,
//!   never the password) and SCRAM's key derivations.
//! - `scram_server`: [`ScramServer`], the RFC 5802 exchange.
//! - `scram_client`: [`ScramClient`], its other side (tools, tests).
//! - `plain`: [`PlainServer`] (RFC 4616) over [`PlainUsers`].
//! - `jaas`: Kafka's JAAS config syntax (`sasl.jaas.config`).
//! - `add_scram`: `kafka-storage format --add-scram` arguments.
//! - `oauthbearer`: [`OAuthBearerServer`] (RFC 7628 exchange), its
//!   initial response, [`OAuthBearerClient`].
//! - `oauthbearer_token`: the validated [`OAuthBearerToken`], [`TokenError`].
//! - `oauthbearer_unsecured`: Kafka's default unsecured-JWS validator.
//! - `oauthbearer_jwks`: signed JWTs checked against a JWKS (ring).
//! - `oauthbearer_config`: which validator a listener uses, from its config.
//!
//! Credentials for SCRAM live in the metadata image
//! (`UserScramCredentialRecord`); PLAIN's users come from the listener's
//! JAAS config, as in Kafka.

pub mod add_scram;
pub mod jaas;
pub mod oauthbearer;
pub mod oauthbearer_config;
pub mod oauthbearer_jwks;
pub mod oauthbearer_token;
pub mod oauthbearer_unsecured;
pub mod plain;
pub mod scram;
pub mod scram_client;
pub mod scram_server;

pub use add_scram::{parse_add_scram, AddScram, AddScramError, AddScramSecret};
pub use jaas::{JaasConfig, JaasError};
pub use oauthbearer::{
    ClientInitialResponse, OAuthBearerClient, OAuthBearerError, OAuthBearerServer,
    OAuthBearerValidator,
};
pub use oauthbearer_config::{OAuthBearerConfigError, OAuthBearerListenerConfig};
pub use oauthbearer_jwks::{Jwks, JwksError, JwksValidator};
pub use oauthbearer_token::{OAuthBearerToken, TokenError};
pub use oauthbearer_unsecured::{unsecured_token, UnsecuredValidator};
pub use plain::{PlainError, PlainServer, PlainUsers};
pub use scram::{CredentialError, ScramCredential, ScramMechanism};
pub use scram_client::{ScramClient, ScramClientError};
pub use scram_server::{ScramCredentials, ScramError, ScramServer};

/// What a server answers to one client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes and wait for the client's next message.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `response` (possibly empty) last.
    Complete { user: String, response: Vec<u8> },
}

/// The mechanisms rafka's broker can enable, by their SASL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl SaslMechanism {
    /// Every mechanism rafka knows, for `from_name`. Nothing in the broker
    /// enables mechanisms from this list (`sasl.enabled.mechanisms` does),
    /// so OAUTHBEARER being here turns nothing on by default; a listener
    /// that enables it gets Kafka's default validator (unsecured JWS)
    /// unless its config names the JWKS one.
    pub const ALL: [SaslMechanism; 4] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(ScramMechanism::Sha256),
        SaslMechanism::Scram(ScramMechanism::Sha512),
        SaslMechanism::OAuthBearer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// By exact name, as SaslHandshake compares them.
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names() {
        assert_eq!(
            SaslMechanism::from_name("PLAIN"),
            Some(SaslMechanism::Plain)
        );
        assert_eq!(
            SaslMechanism::from_name("SCRAM-SHA-256"),
            Some(SaslMechanism::Scram(ScramMechanism::Sha256))
        );
        assert_eq!(SaslMechanism::from_name("GSSAPI"), None);
        assert_eq!(
            SaslMechanism::from_name("OAUTHBEARER"),
            Some(SaslMechanism::OAuthBearer)
        );
        assert_eq!(SaslMechanism::from_name("oauthbearer"), None);
        for m in SaslMechanism::ALL {
            assert_eq!(SaslMechanism::from_name(m.name()), Some(m));
        }
        assert_eq!(
            SaslMechanism::Scram(ScramMechanism::Sha512).name(),
            "SCRAM-SHA-512"
        );
    }
}
