//! `kafka-storage format --add-scram` arguments, as Kafka's `ScramParser`
//! reads them:
//!
//! ```text
//! SCRAM-SHA-256=[name=admin,password=admin-secret]
//! SCRAM-SHA-512=[name=alice,iterations=8192,salt="MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=",password=alice-secret]
//! SCRAM-SHA-256=[name=alice,salt="<base64>",saltedpassword="<base64>"]
//! ```
//!
//! Components are split at `,` and their first `=`; a value in double
//! quotes loses them; `salt` and `saltedpassword` are base64;
//! `iterations` defaults to 4096; without `salt` a random one is drawn.
//! Messages are Kafka's. Stricter than Kafka: a component given twice,
//! an empty name, or both `password` and `saltedpassword` (Kafka silently
//! takes the password) are errors.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::scram::{
    CredentialError, ScramCredential, ScramMechanism, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN,
    SCRAM_SALT_BYTES_GENERATED,
};

/// A parsed argument: the user and how to make its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddScram {
    pub mechanism: ScramMechanism,
    pub name: String,
    pub salt: Option<Vec<u8>>,
    pub iterations: u32,
    pub secret: AddScramSecret,
}

#[derive(Clone, PartialEq, Eq)]
pub enum AddScramSecret {
    Password(String),
    SaltedPassword(Vec<u8>),
}

/// Secrets stay out of logs.
impl std::fmt::Debug for AddScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddScramSecret::Password(_) => f.write_str("Password(..)"),
            AddScramSecret::SaltedPassword(_) => f.write_str("SaltedPassword(..)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddScramError {
    #[error("Failed to find equals sign in SCRAM argument '{0}'")]
    NoEquals(String),
    #[error("The add-scram mechanism {0} is not supported.")]
    UnknownMechanism(String),
    #[error("Expected configuration string to start with [")]
    NoOpeningBracket,
    #[error("Expected configuration string to end with ]")]
    NoClosingBracket,
    #[error("No equals sign found in SCRAM component: {0}")]
    ComponentWithoutEquals(String),
    #[error("SCRAM component '{0}' given twice")]
    DuplicateComponent(String),
    #[error("You must supply 'name' to add-scram")]
    NoName,
    #[error("Failed to decode given salt: {0}")]
    BadSalt(String),
    #[error("Failed to parse iterations count: {0}")]
    BadIterations(String),
    #[error("You must supply one of 'password' or 'saltedpassword' to add-scram")]
    NoPassword,
    #[error("You must only supply one of 'password' or 'saltedpassword' to add-scram")]
    BothPasswords,
    #[error("You must supply 'salt' with 'saltedpassword' to add-scram")]
    SaltedPasswordWithoutSalt,
    #[error("Failed to decode given saltedPassword: {0}")]
    BadSaltedPassword(String),
    #[error("Unknown SCRAM configurations: {0}")]
    UnknownComponents(String),
    #[error("The 'iterations' value must be >= {SCRAM_ITERATIONS_MIN} for add-scram using {0}")]
    IterationsTooLow(ScramMechanism),
    #[error("The 'iterations' value must be <= {SCRAM_ITERATIONS_MAX} for add-scram using {0}")]
    IterationsTooHigh(ScramMechanism),
    #[error("add-scram: {0}")]
    Credential(CredentialError),
}

/// Parses one `--add-scram` argument.
pub fn parse_add_scram(argument: &str) -> Result<AddScram, AddScramError> {
    let argument = argument.trim();
    let (mechanism, config) = argument
        .split_once('=')
        .ok_or_else(|| AddScramError::NoEquals(argument.to_string()))?;
    let mechanism = ScramMechanism::from_name(mechanism)
        .ok_or_else(|| AddScramError::UnknownMechanism(mechanism.to_string()))?;
    let config = config
        .strip_prefix('[')
        .ok_or(AddScramError::NoOpeningBracket)?;
    let config = config
        .strip_suffix(']')
        .ok_or(AddScramError::NoClosingBracket)?;
    let mut components = components(config)?;
    let name = components
        .remove("name")
        .filter(|n| !n.is_empty())
        .ok_or(AddScramError::NoName)?;
    let salt = match components.remove("salt") {
        None => None,
        Some(s) => Some(
            BASE64
                .decode(s)
                .map_err(|_| AddScramError::BadSalt(s.into()))?,
        ),
    };
    let iterations = match components.remove("iterations") {
        None => SCRAM_ITERATIONS_MIN,
        Some(i) => i
            .parse::<u32>()
            .map_err(|_| AddScramError::BadIterations(i.into()))?,
    };
    let secret = match (
        components.remove("password"),
        components.remove("saltedpassword"),
    ) {
        (None, None) => return Err(AddScramError::NoPassword),
        (Some(_), Some(_)) => return Err(AddScramError::BothPasswords),
        (Some(password), None) => AddScramSecret::Password(password.to_string()),
        (None, Some(_)) if salt.is_none() => return Err(AddScramError::SaltedPasswordWithoutSalt),
        (None, Some(s)) => AddScramSecret::SaltedPassword(
            BASE64
                .decode(s)
                .map_err(|_| AddScramError::BadSaltedPassword(s.into()))?,
        ),
    };
    if !components.is_empty() {
        let keys: Vec<&str> = components.into_keys().collect();
        return Err(AddScramError::UnknownComponents(keys.join(", ")));
    }
    if iterations < SCRAM_ITERATIONS_MIN {
        return Err(AddScramError::IterationsTooLow(mechanism));
    }
    if iterations > SCRAM_ITERATIONS_MAX {
        return Err(AddScramError::IterationsTooHigh(mechanism));
    }
    Ok(AddScram {
        mechanism,
        name: name.to_string(),
        salt,
        iterations,
        secret,
    })
}

/// `key=value` components by key; a value in double quotes loses them.
fn components(config: &str) -> Result<BTreeMap<&str, &str>, AddScramError> {
    let mut out = BTreeMap::new();
    for component in config.split(',') {
        let (key, value) = component
            .split_once('=')
            .ok_or_else(|| AddScramError::ComponentWithoutEquals(component.to_string()))?;
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(unquoted) => unquoted,
            None => value,
        };
        if out.insert(key, value).is_some() {
            return Err(AddScramError::DuplicateComponent(key.to_string()));
        }
    }
    Ok(out)
}

impl AddScram {
    /// The credential: PBKDF2 over the password (or the given salted
    /// password), with the given salt or a fresh random one.
    pub fn credential(&self) -> Result<ScramCredential, AddScramError> {
        let salt = match &self.salt {
            Some(salt) => salt.clone(),
            None => {
                let mut salt = vec![0u8; SCRAM_SALT_BYTES_GENERATED];
                getrandom::fill(&mut salt).map_err(|e| {
                    AddScramError::Credential(CredentialError::Random(e.to_string()))
                })?;
                salt
            }
        };
        let credential = match &self.secret {
            AddScramSecret::Password(password) => ScramCredential::from_password(
                self.mechanism,
                password.as_bytes(),
                salt,
                self.iterations,
            ),
            AddScramSecret::SaltedPassword(salted) => {
                ScramCredential::from_salted_password(self.mechanism, salted, salt, self.iterations)
            }
        };
        credential.map_err(AddScramError::Credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's ScramParserTest salt, base64 `MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=`.
    const SALT: &[u8] = b"1lv4pdnw4fwq7notcxm0yy1k7q";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn name_and_password() {
        let parsed = parse_add_scram("SCRAM-SHA-256=[name=admin,password=admin-secret]").unwrap();
        assert_eq!(
            parsed,
            AddScram {
                mechanism: ScramMechanism::Sha256,
                name: "admin".into(),
                salt: None,
                iterations: 4096,
                secret: AddScramSecret::Password("admin-secret".into()),
            }
        );
        let credential = parsed.credential().unwrap();
        assert_eq!(credential.iterations(), 4096);
        assert_eq!(credential.salt().len(), SCRAM_SALT_BYTES_GENERATED);
        assert_ne!(parsed.credential().unwrap().salt(), credential.salt());
    }

    #[test]
    fn salt_and_iterations() {
        // Expected keys computed with Python's hashlib.
        let parsed = parse_add_scram(
            "  SCRAM-SHA-256=[name=bob,password=my pass,iterations=8192,\
             salt=\"MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=\"] ",
        )
        .unwrap();
        assert_eq!(parsed.name, "bob");
        assert_eq!(parsed.salt.as_deref(), Some(SALT));
        assert_eq!(parsed.iterations, 8192);
        assert_eq!(parsed.secret, AddScramSecret::Password("my pass".into()));
        let credential = parsed.credential().unwrap();
        assert_eq!(credential.salt(), SALT);
        assert_eq!(
            hex(credential.stored_key()),
            "d7ccd9c629004b84a2147fcfbb13d0aa722d19a54566fdd334ee9d1568e6e3f3"
        );
        assert_eq!(
            hex(credential.server_key()),
            "981ad0deab0ecbba79e57c43894dbf6efbc3dcea6340af5d51fb2874da49d573"
        );
    }

    #[test]
    fn salted_password() {
        let parsed = parse_add_scram(
            "SCRAM-SHA-256=[name=alice,salt=\"MWx2NHBkbnc0ZndxN25vdGN4bTB5eTFrN3E=\",\
             saltedpassword=\"mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=\"]",
        )
        .unwrap();
        let credential = parsed.credential().unwrap();
        assert_eq!(
            hex(credential.stored_key()),
            "5d322aa071e8decb1c758c7270bd3bba1f2eb661e7f5f5ed8eac8317aec28d25"
        );
        assert_eq!(
            hex(credential.server_key()),
            "65ae77476c8434848dedf1cbed6531ae216457b71f6eb3b7f82b44a6d31b4cf1"
        );
        // A SHA-256 salted password is no SHA-512 one.
        let wrong = parse_add_scram(
            "SCRAM-SHA-512=[name=alice,salt=\"MWx2\",\
             saltedpassword=\"mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=\"]",
        )
        .unwrap();
        assert_eq!(
            wrong.credential(),
            Err(AddScramError::Credential(CredentialError::KeyLength {
                mechanism: ScramMechanism::Sha512,
                key: "salted password",
                length: 32
            }))
        );
    }

    #[test]
    fn kafkas_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "SCRAM-SHA-512",
                "Failed to find equals sign in SCRAM argument 'SCRAM-SHA-512'",
            ),
            (
                "SCRAM-SHA-UNSUPPORTED=[name=a,password=b]",
                "The add-scram mechanism SCRAM-SHA-UNSUPPORTED is not supported.",
            ),
            (
                "SCRAM-SHA-256=name=a,password=b",
                "Expected configuration string to start with [",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b",
                "Expected configuration string to end with ]",
            ),
            (
                "SCRAM-SHA-256=[name]",
                "No equals sign found in SCRAM component: name",
            ),
            (
                "SCRAM-SHA-256=[password=b]",
                "You must supply 'name' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=,password=b]",
                "You must supply 'name' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=bar]",
                "You must supply one of 'password' or 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=a,saltedpassword=\"mT0y\"]",
                "You must supply 'salt' with 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b,saltedpassword=c]",
                "You must only supply one of 'password' or 'saltedpassword' to add-scram",
            ),
            (
                "SCRAM-SHA-256=[name=bob,password=p,unknown=x,unknown2=y]",
                "Unknown SCRAM configurations: unknown, unknown2",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b,salt=!!]",
                "Failed to decode given salt: !!",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b,iterations=many]",
                "Failed to parse iterations count: many",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=b,iterations=4095]",
                "The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-256",
            ),
            (
                "SCRAM-SHA-512=[name=a,password=b,iterations=16385]",
                "The 'iterations' value must be <= 16384 for add-scram using SCRAM-SHA-512",
            ),
            (
                "SCRAM-SHA-256=[name=a,name=b,password=c]",
                "SCRAM component 'name' given twice",
            ),
        ];
        for (argument, message) in cases {
            let error = parse_add_scram(argument).unwrap_err();
            assert_eq!(error.to_string(), *message, "{argument}");
        }
    }

    #[test]
    fn quotes_only_come_off_in_pairs() {
        let parsed = parse_add_scram("SCRAM-SHA-512=[name=\"a\",password=\"b]").unwrap();
        assert_eq!(parsed.name, "a");
        assert_eq!(parsed.secret, AddScramSecret::Password("\"b".into()));
        assert_eq!(parsed.mechanism, ScramMechanism::Sha512);
        assert_eq!(format!("{:?}", parsed.secret), "Password(..)");
    }
}
