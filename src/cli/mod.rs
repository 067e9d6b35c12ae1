//! The operator CLI: `rafka topic|group|config|cluster|user|acl|produce|consume`.
//! It is a plain Kafka client (blocking std::net, kafka-protocol's
//! structs, rafka-proto's record batches) that knows nothing of the broker
//! in this binary, so it works against any Kafka-compatible broker.
//!
//! # Layout
//! - `mod.rs`: the subcommands and their flags (clap), [`run`].
//! - `client.rs`: one connection: framing, ApiVersions, version choice.
//! - `transport.rs`: its bytes: TCP or TLS (rustls) over TCP.
//! - `security.rs`: `--command-config` (Kafka client properties, read
//!   with rafka-core's properties reader) into the TLS config and SASL login every
//!   connection uses; `sasl.rs`: the login (SaslHandshake +
//!   SaslAuthenticate, PLAIN or SCRAM).
//! - `brokers.rs`: the cluster from a client's side: Metadata, leaders,
//!   coordinators, one connection per broker reached, ListOffsets.
//! - `topic.rs`, `group.rs`, `config.rs`, `cluster.rs`, `user.rs`,
//!   `acl.rs`, `produce.rs`, `consume.rs`: one file per subcommand.
//! - `output.rs`: tables and JSON; `error.rs`: [`CliError`].
//! - `api_versions.rs`, `check_config.rs`: `rafka api-versions` and
//!   `rafka check-config`, the subcommands here that are not clients:
//!   they print the broker's own API table and its reading of a
//!   `server.properties`.

mod acl;
pub mod api_versions;
mod brokers;
pub mod check_config;
mod client;
mod cluster;
mod config;
mod consume;
mod error;
mod group;
mod output;
mod produce;
mod sasl;
mod security;
mod topic;
mod transport;
mod user;

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use error::CliError;
use output::Format;

/// How to reach the cluster and how to print; every client subcommand
/// takes them, before or after its own arguments.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// A broker to start from; the others are found through it.
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// Kafka client properties for every connection: `security.protocol`,
    /// `ssl.truststore.location`, `sasl.mechanism`, `sasl.jaas.config`, ...
    #[arg(long, global = true, value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
    /// Output for people (`table`) or for scripts (`json`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The client subcommands (the broker itself is `serve`, in main.rs).
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create, list, describe, alter, grow, delete and trim topics.
    Topic {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// List, describe, reset offsets of and delete consumer groups.
    Group {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// Describe and change topic or broker configs.
    Config {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// What the cluster is made of.
    Cluster {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// List, describe, set and delete users' SCRAM credentials.
    User {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// List, add and remove ACLs (`kafka-acls.sh`'s vocabulary).
    Acl {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: acl::AclCommand,
    },
    /// Produce one record per line of stdin.
    Produce(produce::ProduceArgs),
    /// Print record values, one per line.
    Consume(consume::ConsumeArgs),
}

/// Runs one client subcommand. A failure goes to stderr as `rafka: ...`
/// and exits 1; bad usage exits 2 (clap's, and flags that only do not fit
/// together, [`CliError::Usage`]).
pub fn run(command: ClientCommand) -> ExitCode {
    let result = match command {
        ClientCommand::Topic { client, command } => topic::run(&client, command),
        ClientCommand::Group { client, command } => group::run(&client, command),
        ClientCommand::Config { client, command } => config::run(&client, command),
        ClientCommand::Cluster { client, command } => cluster::run(&client, command),
        ClientCommand::User { client, command } => user::run(&client, command),
        ClientCommand::Acl { client, command } => acl::run(&client, command),
        ClientCommand::Produce(args) => produce::run(args),
        ClientCommand::Consume(args) => consume::run(args),
    };
    finish(result)
}

/// The exit code of a subcommand's result; an error goes to stderr.
pub fn finish(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rafka: {error}");
            match error {
                CliError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// `KEY=VALUE` split at the first `=`.
fn key_value(pair: &str) -> Result<(String, String), CliError> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(CliError::ConfigPair(pair.to_string())),
    }
}
