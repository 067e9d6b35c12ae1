//! `rafka config describe|set|delete --topic NAME | --broker ID`:
//! DescribeConfigs and IncrementalAlterConfigs. A topic's configs may be
//! asked of any broker; a broker's only of that broker. `topic describe`
//! and `topic alter-config` use the same calls.

use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Map, Value};

use crate::cli::brokers::Brokers;
use crate::cli::client::Connection;
use crate::cli::error::CliError;
use crate::cli::output::{print_json, print_text, Format, Table};
use crate::cli::{key_value, ClientArgs};

/// Kafka's ConfigResource.Type codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs' operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// DescribeConfigs' source of a topic's own override.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every config of the topic or broker with its value and source.
    Describe {
        #[command(flatten)]
        target: Target,
    },
    /// Set configs (IncrementalAlterConfigs SET).
    Set {
        #[command(flatten)]
        target: Target,
        /// KEY=VALUE, one or more.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Remove configs, back to their defaults (IncrementalAlterConfigs
    /// DELETE).
    Delete {
        #[command(flatten)]
        target: Target,
        /// Config names, one or more.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

/// Whose configs.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A topic's configs.
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A broker's configs (asked of that broker).
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
}

impl Target {
    fn resource(&self) -> (i8, String) {
        match (&self.topic, self.broker) {
            (Some(topic), _) => (RESOURCE_TOPIC, topic.clone()),
            (None, Some(broker)) => (RESOURCE_BROKER, broker.to_string()),
            // clap's group requires exactly one of them.
            (None, None) => (RESOURCE_TOPIC, String::new()),
        }
    }

    fn connection<'a>(&self, brokers: &'a mut Brokers) -> Result<&'a mut Connection, CliError> {
        match self.broker {
            Some(node_id) => brokers.node(node_id),
            None => Ok(brokers.any()),
        }
    }
}

/// One config as DescribeConfigs lists it.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

pub fn run(client: &ClientArgs, command: ConfigCommand) -> Result<(), CliError> {
    let mut brokers = Brokers::connect(client)?;
    match command {
        ConfigCommand::Describe { target } => {
            let (resource_type, name) = target.resource();
            let entries = describe(target.connection(&mut brokers)?, resource_type, &name)?;
            print_entries(client.format, resource_type, &name, &entries)
        }
        ConfigCommand::Set { target, pairs } => {
            let set = pairs
                .iter()
                .map(|pair| key_value(pair))
                .collect::<Result<Vec<_>, _>>()?;
            let (resource_type, name) = target.resource();
            alter(
                target.connection(&mut brokers)?,
                resource_type,
                &name,
                &set,
                &[],
            )?;
            print_altered(client.format, resource_type, &name, &set, &[])
        }
        ConfigCommand::Delete { target, keys } => {
            let (resource_type, name) = target.resource();
            alter(
                target.connection(&mut brokers)?,
                resource_type,
                &name,
                &[],
                &keys,
            )?;
            print_altered(client.format, resource_type, &name, &[], &keys)
        }
    }
}

/// Every config of one resource, in the broker's order.
pub fn describe(
    connection: &mut Connection,
    resource_type: i8,
    name: &str,
) -> Result<Vec<ConfigEntry>, CliError> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let response = connection.call(&request)?;
    let subject = subject(resource_type, name);
    let result = response
        .results
        .iter()
        .find(|r| r.resource_name.as_str() == name)
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: kafka_protocol::messages::ApiKey::DescribeConfigs,
            subject: subject.clone(),
        })?;
    CliError::check(result.error_code, result.error_message.as_deref(), &subject)?;
    Ok(result
        .configs
        .iter()
        .map(|c| ConfigEntry {
            name: c.name.to_string(),
            value: c.value.as_ref().map(|v| v.to_string()),
            source: c.config_source,
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .collect())
}

/// Sets `set` and deletes `delete` in one IncrementalAlterConfigs.
pub fn alter(
    connection: &mut Connection,
    resource_type: i8,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), CliError> {
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    configs.extend(delete.iter().map(|key| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(key.clone()))
            .with_config_operation(OP_DELETE)
            .with_value(None)
    }));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs),
    ]);
    let response = connection.call(&request)?;
    let subject = subject(resource_type, name);
    let result = response
        .responses
        .iter()
        .find(|r| r.resource_name.as_str() == name)
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: kafka_protocol::messages::ApiKey::IncrementalAlterConfigs,
            subject: subject.clone(),
        })?;
    CliError::check(result.error_code, result.error_message.as_deref(), &subject)
}

/// `name -> value` of the configs set on the topic itself (what differs
/// from the broker's defaults), as `topic describe` shows them.
pub fn topic_overrides(entries: &[ConfigEntry]) -> Map<String, Value> {
    entries
        .iter()
        .filter(|e| e.source == SOURCE_DYNAMIC_TOPIC)
        .map(|e| (e.name.clone(), shown_value(e)))
        .collect()
}

/// The value to print: `null` for a sensitive one the broker hides.
pub fn shown_value(entry: &ConfigEntry) -> Value {
    match &entry.value {
        Some(value) => Value::String(value.clone()),
        None => Value::Null,
    }
}

/// Kafka's ConfigSource names.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn resource_name(resource_type: i8) -> &'static str {
    if resource_type == RESOURCE_BROKER {
        "broker"
    } else {
        "topic"
    }
}

fn subject(resource_type: i8, name: &str) -> String {
    format!("{} {name}", resource_name(resource_type))
}

fn print_entries(
    format: Format,
    resource_type: i8,
    name: &str,
    entries: &[ConfigEntry],
) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&json!({
            "resource": resource_name(resource_type),
            "name": name,
            "configs": entries.iter().map(|e| json!({
                "name": e.name,
                "value": shown_value(e),
                "source": source_name(e.source),
                "read_only": e.read_only,
                "sensitive": e.sensitive,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            let mut table = Table::new(&["NAME", "VALUE", "SOURCE"]);
            for entry in entries {
                let value = match (&entry.value, entry.sensitive) {
                    (_, true) => "<sensitive>".to_string(),
                    (Some(value), false) => value.clone(),
                    (None, false) => "-".to_string(),
                };
                table.row(vec![
                    entry.name.clone(),
                    value,
                    source_name(entry.source).to_string(),
                ]);
            }
            table.print()
        }
    }
}

pub fn print_altered(
    format: Format,
    resource_type: i8,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&json!({
            "resource": resource_name(resource_type),
            "name": name,
            "set": set.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>(),
            "deleted": delete,
        })),
        Format::Table => {
            let mut text = String::new();
            for (key, value) in set {
                text.push_str(&format!(
                    "{}: set {key}={value}\n",
                    subject(resource_type, name)
                ));
            }
            for key in delete {
                text.push_str(&format!(
                    "{}: deleted {key}\n",
                    subject(resource_type, name)
                ));
            }
            print_text(&text)
        }
    }
}
