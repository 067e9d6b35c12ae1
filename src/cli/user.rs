//! `rafka user list|describe|set|delete`: users' SCRAM credentials
//! (KIP-554), through DescribeUserScramCredentials and
//! AlterUserScramCredentials, as `kafka-configs.sh --entity-type users`
//! does. `set` salts the password here, as Kafka's admin client does: a
//! random salt, PBKDF2 with the chosen iterations; only the salt and the
//! salted password are sent.

use clap::Subcommand;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::sasl::scram::SCRAM_SALT_BYTES_GENERATED;
use rafka_core::sasl::ScramMechanism;
use serde_json::json;

use crate::cli::brokers::Brokers;
use crate::cli::client::Connection;
use crate::cli::error::CliError;
use crate::cli::output::{print_json, print_text, Format, Table};
use crate::cli::ClientArgs;

/// Kafka's default for `kafka-configs.sh --add-config 'SCRAM-SHA-256=[password=..]'`.
const ITERATIONS_DEFAULT: i32 = 4096;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Every user with a SCRAM credential: mechanisms and iterations.
    List,
    /// One user's SCRAM credentials.
    Describe {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Create or replace a user's credential for one mechanism.
    Set {
        #[arg(value_name = "NAME")]
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: ScramMechanism,
        #[arg(long)]
        password: String,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = ITERATIONS_DEFAULT)]
        iterations: i32,
    },
    /// Delete a user's credential for one mechanism.
    Delete {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long, value_parser = parse_mechanism)]
        mechanism: ScramMechanism,
    },
}

fn parse_mechanism(name: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::from_name(name)
        .ok_or_else(|| format!("unknown mechanism {name:?} (SCRAM-SHA-256 or SCRAM-SHA-512)"))
}

/// One user's credentials: `(mechanism, iterations)`.
struct Described {
    user: String,
    credentials: Vec<(String, i32)>,
}

pub fn run(client: &ClientArgs, command: UserCommand) -> Result<(), CliError> {
    let mut brokers = Brokers::connect(client)?;
    let connection = brokers.any();
    match command {
        UserCommand::List => {
            let users = describe(connection, None)?;
            print_users(client.format, &users)
        }
        UserCommand::Describe { name } => {
            let users = describe(connection, Some(&name))?;
            print_users(client.format, &users)
        }
        UserCommand::Set {
            name,
            mechanism,
            password,
            iterations,
        } => {
            set(connection, &name, mechanism, &password, iterations)?;
            let text = format!("user {name}: set {mechanism} ({iterations} iterations)\n");
            print_done(
                client.format,
                json!({"user": name, "mechanism": mechanism.name(), "iterations": iterations}),
                &text,
            )
        }
        UserCommand::Delete { name, mechanism } => {
            delete(connection, &name, mechanism)?;
            let text = format!("user {name}: deleted {mechanism}\n");
            print_done(
                client.format,
                json!({"user": name, "mechanism": mechanism.name(), "deleted": true}),
                &text,
            )
        }
    }
}

/// Every user (None) or one; a named user without credentials is an
/// error (RESOURCE_NOT_FOUND).
fn describe(connection: &mut Connection, name: Option<&str>) -> Result<Vec<Described>, CliError> {
    let users = name
        .map(|name| vec![UserName::default().with_name(StrBytes::from_string(name.to_string()))]);
    let request = DescribeUserScramCredentialsRequest::default().with_users(users);
    let response = connection.call(&request)?;
    CliError::check(
        response.error_code,
        response.error_message.as_deref(),
        "users",
    )?;
    if let Some(name) = name {
        if !response.results.iter().any(|r| r.user.as_str() == name) {
            return Err(CliError::MissingEntry {
                addr: connection.addr().to_string(),
                api: ApiKey::DescribeUserScramCredentials,
                subject: format!("user {name}"),
            });
        }
    }
    response.results.iter().map(described).collect()
}

fn described(result: &DescribeUserScramCredentialsResult) -> Result<Described, CliError> {
    let subject = format!("user {}", result.user.as_str());
    CliError::check(result.error_code, result.error_message.as_deref(), &subject)?;
    let credentials = result
        .credential_infos
        .iter()
        .map(|info| {
            let mechanism = u8::try_from(info.mechanism)
                .ok()
                .and_then(ScramMechanism::from_type_code)
                .map_or_else(
                    || format!("UNKNOWN({})", info.mechanism),
                    |m| m.name().to_string(),
                );
            (mechanism, info.iterations)
        })
        .collect();
    Ok(Described {
        user: result.user.to_string(),
        credentials,
    })
}

fn set(
    connection: &mut Connection,
    name: &str,
    mechanism: ScramMechanism,
    password: &str,
    iterations: i32,
) -> Result<(), CliError> {
    let mut salt = vec![0u8; SCRAM_SALT_BYTES_GENERATED];
    getrandom::fill(&mut salt).map_err(|error| CliError::Random(error.to_string()))?;
    // The broker refuses counts outside 4096..=16384 (UNACCEPTABLE_CREDENTIAL)
    // and says so; bounded here so a huge count cannot stall the salting.
    let rounds = u32::try_from(iterations)
        .unwrap_or(1)
        .clamp(1, rafka_core::sasl::scram::SCRAM_ITERATIONS_MAX);
    let salted = mechanism.salted_password(password.as_bytes(), &salt, rounds);
    let upsertion = ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_mechanism(mechanism.type_code() as i8)
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into());
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]);
    alter(connection, name, &request)
}

fn delete(
    connection: &mut Connection,
    name: &str,
    mechanism: ScramMechanism,
) -> Result<(), CliError> {
    let deletion = ScramCredentialDeletion::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_mechanism(mechanism.type_code() as i8);
    let request = AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]);
    alter(connection, name, &request)
}

fn alter(
    connection: &mut Connection,
    name: &str,
    request: &AlterUserScramCredentialsRequest,
) -> Result<(), CliError> {
    let response = connection.call(request)?;
    let subject = format!("user {name}");
    let result = response
        .results
        .iter()
        .find(|r| r.user.as_str() == name)
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: ApiKey::AlterUserScramCredentials,
            subject: subject.clone(),
        })?;
    CliError::check(result.error_code, result.error_message.as_deref(), &subject)
}

fn print_users(format: Format, users: &[Described]) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&json!(users
            .iter()
            .map(|u| json!({
                "user": u.user,
                "credentials": u.credentials.iter().map(|(mechanism, iterations)| json!({
                    "mechanism": mechanism,
                    "iterations": iterations,
                })).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>())),
        Format::Table => {
            let mut table = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
            for user in users {
                for (mechanism, iterations) in &user.credentials {
                    table.row(vec![
                        user.user.clone(),
                        mechanism.clone(),
                        iterations.to_string(),
                    ]);
                }
            }
            table.print()
        }
    }
}

fn print_done(format: Format, value: serde_json::Value, text: &str) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&value),
        Format::Table => print_text(text),
    }
}
