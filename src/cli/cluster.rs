//! `rafka cluster info`: the cluster id, the controller and the brokers,
//! from DescribeCluster where the broker serves it (Kafka 2.8+), else from
//! Metadata.

use clap::Subcommand;
use kafka_protocol::messages::DescribeClusterRequest;
use serde_json::json;

use crate::cli::brokers::Brokers;
use crate::cli::error::CliError;
use crate::cli::output::{print_json, print_text, Format, Table};
use crate::cli::ClientArgs;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Info,
}

struct Broker {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
}

struct ClusterInfo {
    cluster_id: Option<String>,
    controller: i32,
    brokers: Vec<Broker>,
}

pub fn run(client: &ClientArgs, command: ClusterCommand) -> Result<(), CliError> {
    let mut brokers = Brokers::connect(client)?;
    match command {
        ClusterCommand::Info => {
            let mut info = info(&mut brokers)?;
            info.brokers.sort_by_key(|b| b.id);
            print(client.format, &info)
        }
    }
}

fn info(brokers: &mut Brokers) -> Result<ClusterInfo, CliError> {
    let connection = brokers.any();
    if connection.version_of::<DescribeClusterRequest>().is_some() {
        let response = connection.call(&DescribeClusterRequest::default())?;
        CliError::check(
            response.error_code,
            response.error_message.as_deref(),
            "cluster",
        )?;
        return Ok(ClusterInfo {
            cluster_id: Some(response.cluster_id.to_string()),
            controller: response.controller_id.0,
            brokers: response
                .brokers
                .iter()
                .map(|b| Broker {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                })
                .collect(),
        });
    }
    let response = brokers.metadata(Some(&[]))?;
    Ok(ClusterInfo {
        cluster_id: response.cluster_id.as_ref().map(|id| id.to_string()),
        controller: response.controller_id.0,
        brokers: response
            .brokers
            .iter()
            .map(|b| Broker {
                id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            })
            .collect(),
    })
}

fn print(format: Format, info: &ClusterInfo) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&json!({
            "cluster_id": info.cluster_id,
            "controller": info.controller,
            "brokers": info.brokers.iter().map(|b| json!({
                "id": b.id,
                "host": b.host,
                "port": b.port,
                "rack": b.rack,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            print_text(&format!(
                "cluster id: {}\ncontroller: {}\n\n",
                info.cluster_id.as_deref().unwrap_or("-"),
                info.controller
            ))?;
            let mut table = Table::new(&["ID", "HOST", "PORT", "RACK"]);
            for b in &info.brokers {
                table.row(vec![
                    b.id.to_string(),
                    b.host.clone(),
                    b.port.to_string(),
                    b.rack.clone().unwrap_or_else(|| "-".to_string()),
                ]);
            }
            table.print()
        }
    }
}
