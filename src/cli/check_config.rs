//! `rafka check-config FILE [--node-id N --controller-quorum-voters ..
//! --process-roles .. --broker-rack ..]`: the broker's own reading of a
//! `server.properties` and those flags (src/settings.rs), with every
//! problem printed as
//! `FILE:LINE: message` (warnings prefixed `warning:`), then `FILE: ok`
//! when none is an error. Exit 1 on any error: the broker would refuse to
//! start on the same lines.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::output::print_text;

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The `server.properties` to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The cluster flags the broker would be started with.
    #[command(flatten)]
    pub cluster: crate::settings::ClusterArgs,
}

pub fn run(args: &CheckConfigArgs) -> ExitCode {
    let (lines, failed) = crate::settings::check_file(&args.file, &args.cluster);
    let mut text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    if !failed {
        text.push_str(&format!("{}: ok\n", args.file.display()));
    }
    if let Err(error) = print_text(&text) {
        eprintln!("rafka: {error}");
        return ExitCode::FAILURE;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
