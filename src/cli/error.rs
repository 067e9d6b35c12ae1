//! `CliError`: everything an operator command can fail with, and how each
//! is told on stderr. Kafka error codes keep Kafka's name and message, so
//! what the operator reads matches the broker's documentation.

use std::path::PathBuf;

use kafka_protocol::messages::ApiKey;
use rafka_core::sasl::scram_client::ScramClientError;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchError, BuildError, RecordError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot resolve broker address {addr}: {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("--command-config {path}: {source}")]
    CommandConfig {
        path: PathBuf,
        source: crate::cli::security::CommandConfigError,
    },
    #[error("TLS handshake with {addr} failed: {source}{}", tls_hint(source))]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "{addr} answered in TLS: its listener is SSL or SASL_SSL; give --command-config \
         a file with security.protocol=SSL (or SASL_SSL) and ssl.truststore.location"
    )]
    TlsListener { addr: String },
    #[error("SCRAM login at {addr}: {source}")]
    Scram {
        addr: String,
        source: ScramClientError,
    },
    #[error("connection to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} closed the connection before a whole response")]
    Closed { addr: String },
    #[error(
        "{addr} closed the connection before a whole response; if its listener is \
         SASL_PLAINTEXT or SASL_SSL, log in with --command-config \
         (security.protocol, sasl.mechanism, sasl.jaas.config)"
    )]
    ClosedWithoutLogin { addr: String },
    #[error("{addr} sent a frame of {size_bytes} bytes (the limit is {limit_bytes})")]
    FrameSize {
        addr: String,
        size_bytes: i64,
        limit_bytes: usize,
    },
    #[error("encode {api:?} v{version}: {source}")]
    Encode {
        api: ApiKey,
        version: i16,
        source: BoxError,
    },
    #[error("{addr} sent a {api:?} v{version} response that does not decode: {source}")]
    Decode {
        addr: String,
        api: ApiKey,
        version: i16,
        source: BoxError,
    },
    #[error("{addr} answered correlation id {received}, the request had {sent}")]
    CorrelationId {
        addr: String,
        sent: i32,
        received: i32,
    },
    #[error("{addr} does not serve {api:?} at a version this CLI speaks")]
    Unsupported { addr: String, api: ApiKey },
    /// A Kafka error code in a response, about `subject` (a topic, a
    /// group, a partition).
    #[error("{subject}: {}: {}", code, message.clone().unwrap_or_else(|| code.message()))]
    Kafka {
        subject: String,
        code: ErrorCode,
        message: Option<String>,
    },
    #[error("{api:?} response from {addr} has no entry for {subject}")]
    MissingEntry {
        addr: String,
        api: ApiKey,
        subject: String,
    },
    #[error("broker {node_id} is not in the cluster metadata")]
    UnknownBroker { node_id: i32 },
    #[error("topic {topic} has no partition {partition}")]
    NoSuchPartition { topic: String, partition: i32 },
    #[error("{topic}-{partition} has no leader")]
    NoLeader { topic: String, partition: i32 },
    /// Flags that do not fit together (what clap cannot say itself).
    #[error("{0}")]
    Usage(&'static str),
    #[error("expected KEY=VALUE, got {0:?}")]
    ConfigPair(String),
    #[error("group {group} is {state}: offsets can only be reset while it has no members")]
    GroupNotEmpty { group: String, state: String },
    #[error("no random bytes for a salt: {0}")]
    Random(String),
    #[error("--key-separator must not be empty")]
    EmptySeparator,
    #[error("reading stdin: {0}")]
    Stdin(std::io::Error),
    #[error("writing stdout: {0}")]
    Stdout(std::io::Error),
    #[error("building a record batch: {0}")]
    Build(#[from] BuildError),
    #[error("{topic}-{partition}: bad record batch from the broker: {source}")]
    Batch {
        topic: String,
        partition: i32,
        source: BatchError,
    },
    #[error("{topic}-{partition}: bad records from the broker: {source}")]
    Records {
        topic: String,
        partition: i32,
        source: RecordError,
    },
}

/// What an operator can do about a refused certificate.
fn tls_hint(source: &std::io::Error) -> &'static str {
    use rustls::CertificateError;
    let rustls_error = source
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => {
            " (the broker's certificate does not name this host; \
             ssl.endpoint.identification.algorithm= turns the hostname check off)"
        }
        Some(rustls::Error::InvalidCertificate(_)) => {
            " (the broker's certificate is not signed by a CA in ssl.truststore.location)"
        }
        _ => "",
    }
}

impl CliError {
    /// `code` about `subject` as an error, or `Ok` for `NONE`.
    pub fn check(code: i16, message: Option<&str>, subject: &str) -> Result<(), CliError> {
        let code = ErrorCode::from_code(code);
        if code == ErrorCode::NONE {
            return Ok(());
        }
        Err(CliError::Kafka {
            subject: subject.to_string(),
            code,
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        })
    }

    /// The Kafka error code this error carries, if it is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CliError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}
