//! `rafka group list|describe|reset-offsets|delete`: ListGroups (asked of
//! every broker, each lists the groups it coordinates), DescribeGroups +
//! OffsetFetch + ListOffsets for lag, OffsetCommit as an admin (generation
//! -1, no member, as kafka-consumer-groups.sh does) for an empty group,
//! DeleteGroups.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use clap::{ArgGroup, Subcommand};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, Message, StrBytes};
use rafka_proto::error::ErrorCode;
use serde_json::{json, Value};

use crate::cli::brokers::{group_id, topic_name, Brokers, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::cli::error::CliError;
use crate::cli::output::{print_deleted, print_json, print_text, Format, Table};
use crate::cli::ClientArgs;

/// The states in which a group has no members, so offsets may be reset.
const RESETTABLE_STATES: [&str; 2] = ["Empty", "Dead"];

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Every group of every broker, with its state.
    List,
    /// Members, committed offsets, log end offsets and lag.
    Describe {
        /// The group id.
        group: String,
    },
    /// Move an empty group's committed offsets on one topic.
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset"])))]
    ResetOffsets {
        /// The group id.
        group: String,
        /// The topic whose offsets move.
        #[arg(long, value_name = "NAME")]
        topic: String,
        /// Only these partitions (repeat) [default: all of the topic's].
        #[arg(long = "partition", value_name = "P")]
        partitions: Vec<i32>,
        /// To the log start offset.
        #[arg(long)]
        to_earliest: bool,
        /// To the log end offset (high watermark).
        #[arg(long)]
        to_latest: bool,
        /// To OFFSET, kept within the log's start and end.
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Print the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete groups with no members (DeleteGroups).
    Delete {
        /// Group ids, one or more.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

pub fn run(client: &ClientArgs, command: GroupCommand) -> Result<(), CliError> {
    let mut brokers = Brokers::connect(client)?;
    let format = client.format;
    match command {
        GroupCommand::List => list(&mut brokers, format),
        GroupCommand::Describe { group } => describe(&mut brokers, format, &group),
        GroupCommand::ResetOffsets {
            group,
            topic,
            partitions,
            to_earliest,
            to_latest,
            to_offset,
            dry_run,
        } => {
            let target = match (to_earliest, to_latest, to_offset) {
                (true, _, _) => ResetTo::Earliest,
                (_, true, _) => ResetTo::Latest,
                (_, _, Some(offset)) => ResetTo::Offset(offset),
                // clap's ArgGroup requires one of them.
                _ => ResetTo::Latest,
            };
            let reset = Reset {
                group: &group,
                topic: &topic,
                partitions: &partitions,
                target,
                dry_run,
            };
            reset_offsets(&mut brokers, format, &reset)
        }
        GroupCommand::Delete { groups } => delete(&mut brokers, format, &groups),
    }
}

fn list(brokers: &mut Brokers, format: Format) -> Result<(), CliError> {
    // group -> (state, protocol type); a group is listed by its coordinator
    // only, so every broker is asked.
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    for node_id in brokers.node_ids()? {
        let response = brokers.node(node_id)?.call(&ListGroupsRequest::default())?;
        CliError::check(
            response.error_code,
            None,
            &format!("ListGroups at broker {node_id}"),
        )?;
        for group in response.groups {
            groups.insert(
                group.group_id.to_string(),
                (
                    group.group_state.to_string(),
                    group.protocol_type.to_string(),
                ),
            );
        }
    }
    match format {
        Format::Json => print_json(&Value::Array(
            groups
                .iter()
                .map(|(group, (state, protocol_type))| {
                    json!({"group": group, "state": state, "protocol_type": protocol_type})
                })
                .collect(),
        )),
        Format::Table => {
            let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for (group, (state, protocol_type)) in &groups {
                table.row(vec![group.clone(), or_dash(state), or_dash(protocol_type)]);
            }
            table.print()
        }
    }
}

/// One member and the partitions assigned to it.
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    /// topic -> partitions.
    assignment: BTreeMap<String, Vec<i32>>,
}

/// One partition's row of `describe`.
#[derive(Default)]
struct OffsetRow {
    committed: Option<i64>,
    log_end: Option<i64>,
    /// Index of the owner in [`GroupView::members`].
    member: Option<usize>,
}

/// Everything `describe` prints.
struct GroupView {
    group: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
    /// (topic, partition) -> its offsets: every partition with a committed
    /// offset or an owner.
    rows: BTreeMap<(String, i32), OffsetRow>,
}

fn describe(brokers: &mut Brokers, format: Format, group: &str) -> Result<(), CliError> {
    let described = describe_group(brokers, group)?;
    let members: Vec<Member> = described.members.iter().map(member).collect();
    let committed = committed_offsets(brokers, group)?;
    if described.group_state.as_str() == "Dead" && committed.is_empty() {
        return Err(CliError::Kafka {
            subject: format!("group {group}"),
            code: ErrorCode::GROUP_ID_NOT_FOUND,
            message: None,
        });
    }
    let mut rows: BTreeMap<(String, i32), OffsetRow> = committed
        .into_iter()
        .map(|(key, offset)| {
            let row = OffsetRow {
                committed: Some(offset),
                ..OffsetRow::default()
            };
            (key, row)
        })
        .collect();
    for (index, m) in members.iter().enumerate() {
        for (topic, partitions) in &m.assignment {
            for &partition in partitions {
                rows.entry((topic.clone(), partition)).or_default().member = Some(index);
            }
        }
    }
    fill_log_end_offsets(brokers, &mut rows)?;
    let view = GroupView {
        group: group.to_string(),
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        members,
        rows,
    };
    match format {
        Format::Json => print_json(&view_json(&view)),
        Format::Table => print_view_table(&view),
    }
}

fn view_json(view: &GroupView) -> Value {
    let owner = |row: &OffsetRow| row.member.and_then(|i| view.members.get(i));
    json!({
        "group": view.group,
        "state": view.state,
        "protocol_type": view.protocol_type,
        "protocol": view.protocol,
        "members": view.members.iter().map(|m| json!({
            "member_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "client_id": m.client_id,
            "client_host": m.client_host,
            "assignment": m.assignment.iter().map(|(topic, partitions)| json!({
                "topic": topic,
                "partitions": partitions,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "offsets": view.rows.iter().map(|((topic, partition), row)| json!({
            "topic": topic,
            "partition": partition,
            "committed_offset": row.committed,
            "log_end_offset": row.log_end,
            "lag": lag(row),
            "member_id": owner(row).map(|m| m.member_id.clone()),
        })).collect::<Vec<_>>(),
    })
}

fn print_view_table(view: &GroupView) -> Result<(), CliError> {
    print_text(&format!(
        "group {}  state {}  protocol {}/{}  members {}\n\n",
        view.group,
        or_dash(&view.state),
        or_dash(&view.protocol_type),
        or_dash(&view.protocol),
        view.members.len()
    ))?;
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG",
        "MEMBER",
        "CLIENT-ID",
        "HOST",
    ]);
    let dash = |value: Option<i64>| value.map_or("-".to_string(), |v| v.to_string());
    for ((topic, partition), row) in &view.rows {
        let owner = row.member.and_then(|i| view.members.get(i));
        let of_owner =
            |field: fn(&Member) -> &String| owner.map_or("-".to_string(), |m| field(m).clone());
        table.row(vec![
            topic.clone(),
            partition.to_string(),
            dash(row.committed),
            dash(row.log_end),
            dash(lag(row)),
            of_owner(|m| &m.member_id),
            of_owner(|m| &m.client_id),
            of_owner(|m| &m.client_host),
        ]);
    }
    table.print()
}

/// Log end offset minus committed offset, when both are known.
fn lag(row: &OffsetRow) -> Option<i64> {
    match (row.committed, row.log_end) {
        (Some(committed), Some(end)) if committed >= 0 => Some((end - committed).max(0)),
        _ => None,
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text.to_string()
    }
}

fn describe_group(brokers: &mut Brokers, group: &str) -> Result<DescribedGroup, CliError> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let connection = brokers.coordinator(group)?;
    let response = connection.call(&request)?;
    let described = response
        .groups
        .into_iter()
        .find(|g| g.group_id.as_str() == group)
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: ApiKey::DescribeGroups,
            subject: format!("group {group}"),
        })?;
    CliError::check(
        described.error_code,
        described.error_message.as_deref(),
        &format!("group {group}"),
    )?;
    Ok(described)
}

fn member(m: &kafka_protocol::messages::describe_groups_response::DescribedGroupMember) -> Member {
    Member {
        member_id: m.member_id.to_string(),
        group_instance_id: m.group_instance_id.as_ref().map(|id| id.to_string()),
        client_id: m.client_id.to_string(),
        client_host: m.client_host.to_string(),
        assignment: assignment(&m.member_assignment),
    }
}

/// A consumer-protocol assignment (i16 version, then the struct); empty
/// when the bytes are not one (another protocol type, a future layout).
fn assignment(bytes: &Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut buf = bytes.clone();
    if buf.remaining() < 2 {
        return BTreeMap::new();
    }
    let version = buf.get_i16();
    let version = version.clamp(0, ConsumerProtocolAssignment::VERSIONS.max);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(decoded) => decoded
            .assigned_partitions
            .iter()
            .map(|tp| {
                let mut partitions = tp.partitions.clone();
                partitions.sort_unstable();
                (tp.topic.to_string(), partitions)
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// Every committed offset of `group`: (topic, partition) -> offset.
fn committed_offsets(
    brokers: &mut Brokers,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, CliError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(None);
    let response = brokers.coordinator(group)?.call(&request)?;
    CliError::check(response.error_code, None, &format!("group {group}"))?;
    let mut offsets = BTreeMap::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            let subject = format!(
                "group {group} {}-{}",
                topic.name.as_str(),
                p.partition_index
            );
            CliError::check(p.error_code, None, &subject)?;
            if p.committed_offset >= 0 {
                offsets.insert(
                    (topic.name.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(offsets)
}

/// Fills each row's log end offset, one ListOffsets per topic and leader.
fn fill_log_end_offsets(
    brokers: &mut Brokers,
    rows: &mut BTreeMap<(String, i32), OffsetRow>,
) -> Result<(), CliError> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in rows.keys() {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    for (topic, partitions) in by_topic {
        // A deleted topic keeps its committed offsets: no log end, no lag.
        let Ok(info) = brokers.topic(&topic) else {
            continue;
        };
        let known: Vec<i32> = partitions
            .into_iter()
            .filter(|&p| info.partition(p).is_ok())
            .collect();
        let ends = brokers.list_offsets(&info, &known, LATEST_TIMESTAMP)?;
        for (partition, end) in ends {
            if let Some(row) = rows.get_mut(&(topic.clone(), partition)) {
                row.log_end = Some(end);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
}

struct Reset<'a> {
    group: &'a str,
    topic: &'a str,
    partitions: &'a [i32],
    target: ResetTo,
    dry_run: bool,
}

fn reset_offsets(brokers: &mut Brokers, format: Format, reset: &Reset<'_>) -> Result<(), CliError> {
    let group = reset.group;
    // A group never seen is fine to create by committing (Kafka 4 answers
    // GROUP_ID_NOT_FOUND for it, older brokers the state Dead).
    let state = match describe_group(brokers, group) {
        Ok(described) => described.group_state.to_string(),
        Err(error) if error.code() == Some(ErrorCode::GROUP_ID_NOT_FOUND) => "Dead".to_string(),
        Err(error) => return Err(error),
    };
    if !RESETTABLE_STATES.contains(&state.as_str()) {
        return Err(CliError::GroupNotEmpty {
            group: group.to_string(),
            state,
        });
    }
    let topic = brokers.topic(reset.topic)?;
    let partitions: Vec<i32> = if reset.partitions.is_empty() {
        topic.partitions.iter().map(|p| p.partition).collect()
    } else {
        let set: BTreeSet<i32> = reset.partitions.iter().copied().collect();
        for &p in &set {
            topic.partition(p)?;
        }
        set.into_iter().collect()
    };
    let earliest = brokers.list_offsets(&topic, &partitions, EARLIEST_TIMESTAMP)?;
    let latest = brokers.list_offsets(&topic, &partitions, LATEST_TIMESTAMP)?;
    let mut targets = BTreeMap::new();
    for &p in &partitions {
        let (start, end) = (earliest[&p], latest[&p]);
        let offset = match reset.target {
            ResetTo::Earliest => start,
            ResetTo::Latest => end,
            ResetTo::Offset(offset) => offset.clamp(start, end.max(start)),
        };
        targets.insert(p, offset);
    }
    if !reset.dry_run {
        commit(brokers, group, reset.topic, &targets)?;
    }
    match format {
        Format::Json => print_json(&json!({
            "group": group,
            "topic": reset.topic,
            "dry_run": reset.dry_run,
            "offsets": targets.iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect::<Vec<_>>(),
        })),
        Format::Table => {
            let mut table = Table::new(&["TOPIC", "PARTITION", "NEW-OFFSET"]);
            for (p, o) in &targets {
                table.row(vec![reset.topic.to_string(), p.to_string(), o.to_string()]);
            }
            table.print()
        }
    }
}

/// OffsetCommit as an admin: generation -1 and no member id, which a
/// coordinator accepts only for a group without members.
fn commit(
    brokers: &mut Brokers,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), CliError> {
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::new())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                offsets
                    .iter()
                    .map(|(&p, &offset)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                    })
                    .collect(),
            )]);
    let response = brokers.coordinator(group)?.call(&request)?;
    for t in &response.topics {
        for p in &t.partitions {
            let subject = format!("group {group} {}-{}", t.name.as_str(), p.partition_index);
            CliError::check(p.error_code, None, &subject)?;
        }
    }
    Ok(())
}

fn delete(brokers: &mut Brokers, format: Format, groups: &[String]) -> Result<(), CliError> {
    let mut deleted = Vec::new();
    let mut first_error = None;
    for group in groups {
        match delete_one(brokers, group) {
            Ok(()) => deleted.push(group.clone()),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    print_deleted(format, "group", &deleted, first_error)
}

fn delete_one(brokers: &mut Brokers, group: &str) -> Result<(), CliError> {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    let connection = brokers.coordinator(group)?;
    let response = connection.call(&request)?;
    let result = response
        .results
        .iter()
        .find(|r| r.group_id.as_str() == group)
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: ApiKey::DeleteGroups,
            subject: format!("group {group}"),
        })?;
    CliError::check(result.error_code, None, &format!("group {group}"))
}
