//! `rafka topic create|list|describe|alter-config|add-partitions|delete|trim`:
//! CreateTopics, Metadata (+ DescribeConfigs), IncrementalAlterConfigs,
//! CreatePartitions, DeleteTopics, DeleteRecords.

use std::collections::BTreeMap;

use clap::{ArgGroup, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::error::ErrorCode;
use serde_json::{json, Map, Value};

use crate::cli::brokers::{topic_id, topic_name, Brokers, TopicInfo};
use crate::cli::config::{self, RESOURCE_TOPIC};
use crate::cli::error::CliError;
use crate::cli::output::{ids, print_deleted, print_json, print_text, Format, Table};
use crate::cli::{key_value, ClientArgs};

/// How long the broker may take to apply an admin request.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (CreateTopics).
    Create {
        /// The topic name.
        name: String,
        /// Partitions [default: the broker's num.partitions].
        #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replicas of each partition [default: the broker's
        /// default.replication.factor].
        #[arg(long, value_name = "R", default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i16,
        /// A topic config, KEY=VALUE; repeat for more.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition counts.
    List {
        /// Include internal topics (__consumer_offsets, ...).
        #[arg(long)]
        internal: bool,
    },
    /// Partitions (leader, replicas, ISR) and the topic's own configs.
    Describe {
        /// The topic name.
        name: String,
    },
    /// Set or remove topic configs (IncrementalAlterConfigs).
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["set", "delete"])))]
    AlterConfig {
        /// The topic name.
        name: String,
        /// KEY=VALUE to set; repeat for more.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A config to remove (back to its default); repeat for more.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Grow a topic to COUNT partitions in total (CreatePartitions).
    AddPartitions {
        /// The topic name.
        name: String,
        /// The partition count wanted, above the current one.
        #[arg(long, value_name = "COUNT")]
        count: i32,
    },
    /// Delete topics (DeleteTopics).
    Delete {
        /// Topic names, one or more.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete a partition's records below OFFSET (DeleteRecords); -1 is the
    /// high watermark (everything).
    Trim {
        /// The topic name.
        name: String,
        /// The partition to trim.
        #[arg(long, value_name = "P")]
        partition: i32,
        /// The new log start offset; -1 for the high watermark.
        #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
        offset: i64,
    },
}

pub fn run(client: &ClientArgs, command: TopicCommand) -> Result<(), CliError> {
    let mut brokers = Brokers::connect(client)?;
    let format = client.format;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => create(
            &mut brokers,
            format,
            &name,
            partitions,
            replication_factor,
            &configs,
        ),
        TopicCommand::List { internal } => list(&mut brokers, format, internal),
        TopicCommand::Describe { name } => describe(&mut brokers, format, &name),
        TopicCommand::AlterConfig { name, set, delete } => {
            let set = set
                .iter()
                .map(|pair| key_value(pair))
                .collect::<Result<Vec<_>, _>>()?;
            config::alter(brokers.any(), RESOURCE_TOPIC, &name, &set, &delete)?;
            config::print_altered(format, RESOURCE_TOPIC, &name, &set, &delete)
        }
        TopicCommand::AddPartitions { name, count } => {
            add_partitions(&mut brokers, format, &name, count)
        }
        TopicCommand::Delete { names } => delete(&mut brokers, format, &names),
        TopicCommand::Trim {
            name,
            partition,
            offset,
        } => trim(&mut brokers, format, &name, partition, offset),
    }
}

fn create(
    brokers: &mut Brokers,
    format: Format,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[String],
) -> Result<(), CliError> {
    let configs = configs
        .iter()
        .map(|pair| {
            key_value(pair).map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(key))
                    .with_value(Some(StrBytes::from_string(value)))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(ADMIN_TIMEOUT_MS)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(configs)]);
    let connection = brokers.any();
    let response = connection.call(&request)?;
    let result = response
        .topics
        .iter()
        .find(|t| t.name.as_str() == name)
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: ApiKey::CreateTopics,
            subject: format!("topic {name}"),
        })?;
    let subject = format!("topic {name}");
    CliError::check(result.error_code, result.error_message.as_deref(), &subject)?;
    // CreateTopics v5+ tells what was created; older versions do not, so
    // ask Metadata (which also has the id before v7).
    let topic = brokers.topic(name).ok();
    let partitions = topic
        .as_ref()
        .map_or(result.num_partitions, |t| t.partitions.len() as i32);
    let replication_factor = topic
        .as_ref()
        .map_or(i32::from(result.replication_factor), |t| {
            t.replication_factor() as i32
        });
    let id = topic
        .as_ref()
        .map_or_else(|| topic_id(&result.topic_id), |t| t.id.clone());
    match format {
        Format::Json => print_json(&json!({
            "name": name,
            "id": id,
            "partitions": partitions,
            "replication_factor": replication_factor,
        })),
        Format::Table => print_text(&format!(
            "created topic {name} ({partitions} partitions, replication factor {replication_factor}, id {id})\n"
        )),
    }
}

fn list(brokers: &mut Brokers, format: Format, internal: bool) -> Result<(), CliError> {
    let topics: Vec<TopicInfo> = brokers
        .topics()?
        .into_iter()
        .filter(|t| internal || !t.internal)
        .collect();
    match format {
        Format::Json => print_json(&Value::Array(
            topics
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "id": t.id,
                        "partitions": t.partitions.len(),
                        "replication_factor": t.replication_factor(),
                        "internal": t.internal,
                    })
                })
                .collect(),
        )),
        Format::Table => {
            let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS", "ID"]);
            for t in &topics {
                table.row(vec![
                    t.name.clone(),
                    t.partitions.len().to_string(),
                    t.replication_factor().to_string(),
                    t.id.clone(),
                ]);
            }
            table.print()
        }
    }
}

fn describe(brokers: &mut Brokers, format: Format, name: &str) -> Result<(), CliError> {
    let topic = brokers.topic(name)?;
    let configs = topic_configs(brokers, name)?;
    match format {
        Format::Json => print_json(&describe_json(&topic, configs)),
        Format::Table => print_describe_table(&topic, configs.as_ref()),
    }
}

/// `{name, id, internal, partitions: [{partition, leader, replicas, isr}],
/// configs}`; `configs` only when the broker serves DescribeConfigs.
fn describe_json(topic: &TopicInfo, configs: Option<Map<String, Value>>) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(topic.name));
    out.insert("id".into(), json!(topic.id));
    out.insert("internal".into(), json!(topic.internal));
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "leader": p.leader,
                "replicas": p.replicas,
                "isr": p.isr,
            })
        })
        .collect();
    out.insert("partitions".into(), Value::Array(partitions));
    if let Some(configs) = configs {
        out.insert("configs".into(), Value::Object(configs));
    }
    Value::Object(out)
}

fn print_describe_table(
    topic: &TopicInfo,
    configs: Option<&Map<String, Value>>,
) -> Result<(), CliError> {
    let mut text = format!(
        "topic {}  id {}  partitions {}  replication factor {}\n",
        topic.name,
        topic.id,
        topic.partitions.len(),
        topic.replication_factor()
    );
    if let Some(configs) = configs {
        let shown: Vec<String> = configs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("<sensitive>")))
            .collect();
        let shown = if shown.is_empty() {
            "(none)".to_string()
        } else {
            shown.join(", ")
        };
        text.push_str(&format!("configs: {shown}\n"));
    }
    text.push('\n');
    print_text(&text)?;
    let mut table = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
    for p in &topic.partitions {
        table.row(vec![
            p.partition.to_string(),
            p.leader.to_string(),
            ids(&p.replicas),
            ids(&p.isr),
        ]);
    }
    table.print()
}

/// The topic's own config overrides, or `None` when the broker does not
/// serve DescribeConfigs (then `describe` leaves configs out).
fn topic_configs(
    brokers: &mut Brokers,
    name: &str,
) -> Result<Option<Map<String, Value>>, CliError> {
    let connection = brokers.any();
    if connection.version_of::<DescribeConfigsRequest>().is_none() {
        return Ok(None);
    }
    match config::describe(connection, RESOURCE_TOPIC, name) {
        Ok(entries) => Ok(Some(config::topic_overrides(&entries))),
        Err(error) if error.code() == Some(ErrorCode::UNSUPPORTED_VERSION) => Ok(None),
        Err(error) => Err(error),
    }
}

fn add_partitions(
    brokers: &mut Brokers,
    format: Format,
    name: &str,
    count: i32,
) -> Result<(), CliError> {
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(ADMIN_TIMEOUT_MS)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(count)
            .with_assignments(None)]);
    let connection = brokers.any();
    let response = connection.call(&request)?;
    let result = response
        .results
        .iter()
        .find(|r| r.name.as_str() == name)
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: ApiKey::CreatePartitions,
            subject: format!("topic {name}"),
        })?;
    CliError::check(
        result.error_code,
        result.error_message.as_deref(),
        &format!("topic {name}"),
    )?;
    match format {
        Format::Json => print_json(&json!({"name": name, "partitions": count})),
        Format::Table => print_text(&format!("topic {name} now has {count} partitions\n")),
    }
}

fn delete(brokers: &mut Brokers, format: Format, names: &[String]) -> Result<(), CliError> {
    let connection = brokers.any();
    let version = connection.version::<DeleteTopicsRequest>()?;
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(ADMIN_TIMEOUT_MS);
    if version >= 6 {
        request.topics = names
            .iter()
            .map(|name| DeleteTopicState::default().with_name(Some(topic_name(name))))
            .collect();
    } else {
        request.topic_names = names.iter().map(|name| topic_name(name)).collect();
    }
    let response = connection.call_at(version, &request)?;
    // Every topic's result first, then the first error: the others were
    // deleted and the operator should hear so.
    let mut first_error = None;
    let mut deleted = Vec::new();
    for name in names {
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.as_str() == name.as_str()));
        let outcome = match result {
            Some(r) => CliError::check(
                r.error_code,
                r.error_message.as_deref(),
                &format!("topic {name}"),
            ),
            None => Err(CliError::MissingEntry {
                addr: connection.addr().to_string(),
                api: ApiKey::DeleteTopics,
                subject: format!("topic {name}"),
            }),
        };
        match outcome {
            Ok(()) => deleted.push(name.clone()),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    print_deleted(format, "topic", &deleted, first_error)
}

fn trim(
    brokers: &mut Brokers,
    format: Format,
    name: &str,
    partition: i32,
    offset: i64,
) -> Result<(), CliError> {
    let topic = brokers.topic(name)?;
    let leader = topic.leader(partition)?;
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(ADMIN_TIMEOUT_MS)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(name))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let connection = brokers.node(leader)?;
    let response = connection.call(&request)?;
    let subject = format!("{name}-{partition}");
    let result: BTreeMap<i32, (i16, i64)> = response
        .topics
        .iter()
        .filter(|t| t.name.as_str() == name)
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, (p.error_code, p.low_watermark)))
        .collect();
    let (error_code, low_watermark) =
        *result
            .get(&partition)
            .ok_or_else(|| CliError::MissingEntry {
                addr: connection.addr().to_string(),
                api: ApiKey::DeleteRecords,
                subject: subject.clone(),
            })?;
    CliError::check(error_code, None, &subject)?;
    match format {
        Format::Json => print_json(&json!({
            "name": name,
            "partition": partition,
            "low_watermark": low_watermark,
        })),
        Format::Table => print_text(&format!(
            "{subject}: records below offset {low_watermark} deleted\n"
        )),
    }
}
