//! The `rafka` binary. Without a subcommand (or with `serve`) it is the
//! broker: flags and `server.properties` in, a running broker out, a clean
//! stop on SIGTERM/SIGINT. With `topic`, `group`, `config`, `cluster`,
//! `user`, `acl`, `produce` or `consume` it is an operator CLI, a Kafka client of any
//! broker.
//!
//! # Layout
//! - `main.rs`: the command line, logging, signals.
//! - `cli/`: the operator subcommands (its `mod.rs` has the map).
//! - `settings.rs`: from flags + properties file to [`ServerOptions`]
//!   (listen/advertised addresses, data dir, cores, cluster id, the
//!   `/metrics` address: `--metrics-listen` / `rafka.metrics.listen`;
//!   `--add-scram` credentials to seed).
//! - `dir_lock.rs`: the `.lock` file that keeps a second broker out of a
//!   data dir.

mod cli;
mod dir_lock;
mod settings;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::settings::{LogFormat, ServeArgs, SettingsError};

/// A Kafka-compatible streaming broker, thread-per-core on io_uring, and
/// its operator CLI.
#[derive(Debug, Parser)]
#[command(name = "rafka", version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Without a subcommand, the broker starts with these flags.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the broker (what `rafka` without a subcommand does).
    Serve(ServeArgs),
    /// Check a server.properties as the broker reads it: every problem as
    /// FILE:LINE: message; exit 1 on any error.
    CheckConfig(cli::check_config::CheckConfigArgs),
    /// Print the APIs and versions this broker serves (no broker needed).
    ApiVersions(cli::api_versions::ApiVersionsArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.serve),
        Some(Command::Serve(args)) => serve(&args),
        Some(Command::CheckConfig(args)) => cli::check_config::run(&args),
        Some(Command::ApiVersions(args)) => cli::finish(cli::api_versions::run(&args)),
        Some(Command::Client(command)) => cli::run(command),
    }
}

/// Runs the broker until SIGTERM or SIGINT.
fn serve(cli: &ServeArgs) -> ExitCode {
    init_logging(cli.log_format);
    raise_open_files_limit();
    // Held until the process exits: no other broker opens these dirs.
    let (options, _locks) = match settings::server_options(cli) {
        Ok(prepared) => prepared,
        Err(error) => {
            // One line per problem, each `FILE:LINE: message`.
            for line in error.to_string().lines() {
                eprintln!("rafka: {line}");
            }
            // A configuration mistake is a usage error (2); a data dir in
            // use or of a newer format is a failure to start like any
            // other (1).
            let code = match error {
                SettingsError::Lock(_) | SettingsError::NewerFormat { .. } => 1,
                _ => 2,
            };
            return ExitCode::from(code);
        }
    };
    log_explicit_config(&options.config.explicit);
    let (stop, stop_rx) = futures_channel::oneshot::channel();
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("rafka: installing signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    let handle = signals.handle();
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            tracing::info!(signal, "stop requested");
            let _ = stop.send(());
        }
    });
    let result = rafka_net::server::run(options, stop_rx);
    handle.close();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rafka: {error}");
            tracing::error!(%error, "broker failed");
            ExitCode::FAILURE
        }
    }
}

/// Soft RLIMIT_NOFILE up to the hard limit, before any file is opened:
/// partitions, segments and connections all cost descriptors. A limit that
/// cannot be raised is logged, not fatal.
fn raise_open_files_limit() {
    match rafka_shard::limits::raise_open_files_limit() {
        Ok(limit) => tracing::info!(
            open_files_limit = limit.soft,
            hard_limit = limit.hard,
            "open files limit (RLIMIT_NOFILE)"
        ),
        Err(error) => tracing::warn!(%error, "could not raise the open files limit"),
    }
}

/// The keys the configuration sets (file and flags), once at startup, one
/// INFO line each; secrets (passwords, JAAS configs, inline keys) are
/// redacted.
fn log_explicit_config(explicit: &std::collections::BTreeMap<String, String>) {
    for (key, value) in explicit {
        let secret = ["password", "jaas.config", "secret", "keystore.key"]
            .iter()
            .any(|marker| key.contains(marker));
        let value = if secret { "[redacted]" } else { value.as_str() };
        tracing::info!(key = key.as_str(), value, "non-default config");
    }
}

/// Logs go to stderr, as text or one JSON object per line; `RUST_LOG`
/// filters (default `info`), and logger levels can change at runtime
/// (IncrementalAlterConfigs on the BROKER_LOGGER resource, see
/// `rafka_core::logger`).
fn init_logging(format: LogFormat) {
    let initial = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&initial)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let builder = builder.with_ansi(ansi).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            install_logger_reload(&initial, handle);
        }
        LogFormat::Json => {
            let builder = builder.json().with_ansi(false).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            install_logger_reload(&initial, handle);
        }
    }
}

/// Hands `rafka_core::logger` what changes the filter at runtime.
fn install_logger_reload<S: 'static>(
    initial: &str,
    handle: tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, S>,
) {
    rafka_core::logger::install(
        initial,
        Box::new(move |directives| {
            let filter = tracing_subscriber::EnvFilter::try_new(directives)
                .map_err(|error| error.to_string())?;
            handle.reload(filter).map_err(|error| error.to_string())
        }),
    );
}
