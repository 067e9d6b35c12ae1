//! `rafka acl list|add|remove`: ACLs through DescribeAcls, CreateAcls and
//! DeleteAcls, in `kafka-acls.sh`'s vocabulary (resource type and name,
//! pattern type, principal, host, operation, permission), kept small: one
//! binding per `add`, one filter per `list` / `remove`.
//!
//! Kafka's codes travel as they are; names are the lowercase, dashed form
//! of Kafka's enum constants (`CLUSTER_ACTION` -> `cluster-action`), and a
//! code this CLI does not know prints as `unknown(N)`.

use clap::{Args, Subcommand, ValueEnum};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use crate::cli::brokers::Brokers;
use crate::cli::client::Connection;
use crate::cli::error::CliError;
use crate::cli::output::{print_json, print_text, Format, Table};
use crate::cli::ClientArgs;

/// The one cluster resource's name, as Kafka names it.
const CLUSTER_NAME: &str = "kafka-cluster";

/// Kafka's `ResourceType`, `PatternType`, `AclOperation` and
/// `AclPermissionType` names, indexed by code.
const RESOURCE_TYPES: &[&str] = &[
    "unknown",
    "any",
    "topic",
    "group",
    "cluster",
    "transactional-id",
    "delegation-token",
    "user",
];
const PATTERN_TYPES: &[&str] = &["unknown", "any", "match", "literal", "prefixed"];
const OPERATIONS: &[&str] = &[
    "unknown",
    "any",
    "all",
    "read",
    "write",
    "create",
    "delete",
    "alter",
    "describe",
    "cluster-action",
    "describe-configs",
    "alter-configs",
    "idempotent-write",
    "create-tokens",
    "describe-tokens",
];
const PERMISSIONS: &[&str] = &["unknown", "any", "deny", "allow"];
/// The `ANY` code of every one of the four enums.
const ANY: i8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResourceKind {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatternKind {
    /// Filters only: every pattern type.
    Any = 1,
    /// Filters only: every ACL that applies to the named resource
    /// (literal, prefixed or wildcard).
    Match = 2,
    Literal = 3,
    Prefixed = 4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// ACLs matching the filter (DescribeAcls); with no flags, every ACL.
    List(FilterArgs),
    /// Add one ACL (CreateAcls).
    Add(AddArgs),
    /// Remove the ACLs matching the filter (DeleteAcls) and print them.
    Remove(FilterArgs),
}

/// One ACL to add.
#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long, value_enum, ignore_case = true)]
    resource_type: ResourceKind,
    /// The resource (a prefix with `--pattern-type prefixed`, `*` for
    /// every one); `kafka-cluster` for the cluster, the default there.
    #[arg(long, value_name = "NAME")]
    resource_name: Option<String>,
    /// `literal` or `prefixed`.
    #[arg(long, value_enum, ignore_case = true, default_value = "literal")]
    pattern_type: PatternKind,
    /// Who: `User:alice`, `User:*` for everyone.
    #[arg(long, value_name = "TYPE:NAME")]
    principal: String,
    /// From where: an IP address, `*` for anywhere.
    #[arg(long, default_value = "*")]
    host: String,
    #[arg(long, value_enum, ignore_case = true)]
    operation: Operation,
    #[arg(long, value_enum, ignore_case = true, default_value = "allow")]
    permission: Permission,
}

/// Which ACLs: every flag left out matches anything. `remove` needs
/// `--resource-type` and defaults `--pattern-type` to `literal`, as
/// `kafka-acls.sh --remove` does; `list` defaults it to `any`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    #[arg(long, value_enum, ignore_case = true)]
    resource_type: Option<ResourceKind>,
    #[arg(long, value_name = "NAME")]
    resource_name: Option<String>,
    /// `literal`, `prefixed`, `any` or `match`.
    #[arg(long, value_enum, ignore_case = true)]
    pattern_type: Option<PatternKind>,
    #[arg(long, value_name = "TYPE:NAME")]
    principal: Option<String>,
    #[arg(long)]
    host: Option<String>,
    #[arg(long, value_enum, ignore_case = true)]
    operation: Option<Operation>,
    #[arg(long, value_enum, ignore_case = true)]
    permission: Option<Permission>,
}

/// One ACL as the broker lists it, codes as sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Binding {
    resource_type: i8,
    resource_name: String,
    pattern_type: i8,
    principal: String,
    host: String,
    operation: i8,
    permission: i8,
}

/// An ACL filter: `None` and `ANY` match everything.
#[derive(Debug, Clone)]
struct Filter {
    resource_type: i8,
    resource_name: Option<String>,
    pattern_type: i8,
    principal: Option<String>,
    host: Option<String>,
    operation: i8,
    permission: i8,
}

pub fn run(client: &ClientArgs, command: AclCommand) -> Result<(), CliError> {
    let mut brokers = Brokers::connect(client)?;
    let connection = brokers.any();
    match command {
        AclCommand::List(args) => {
            let filter = filter(&args, PatternKind::Any);
            let mut bindings = describe(connection, &filter)?;
            bindings.sort();
            print_bindings(client.format, &bindings)
        }
        AclCommand::Add(args) => {
            let binding = binding(&args)?;
            create(connection, &binding)?;
            print_outcome(client.format, "added", &[binding])
        }
        AclCommand::Remove(args) => {
            if args.resource_type.is_none() {
                return Err(CliError::Usage(
                    "acl remove needs --resource-type (and removes what matches the other flags)",
                ));
            }
            let filter = filter(&args, PatternKind::Literal);
            remove(client.format, connection, &filter)
        }
    }
}

fn binding(args: &AddArgs) -> Result<Binding, CliError> {
    if matches!(args.pattern_type, PatternKind::Any | PatternKind::Match) {
        return Err(CliError::Usage(
            "--pattern-type any and match are filters: acl add takes literal or prefixed",
        ));
    }
    if !args
        .principal
        .split_once(':')
        .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
    {
        return Err(CliError::Usage(
            "--principal is TYPE:NAME, e.g. User:alice (User:* for everyone)",
        ));
    }
    let resource_name = match (&args.resource_name, args.resource_type) {
        (Some(name), _) => name.clone(),
        (None, ResourceKind::Cluster) => CLUSTER_NAME.to_string(),
        (None, _) => {
            return Err(CliError::Usage(
                "acl add needs --resource-name (`*` for every resource of the type)",
            ))
        }
    };
    Ok(Binding {
        resource_type: args.resource_type as i8,
        resource_name,
        pattern_type: args.pattern_type as i8,
        principal: args.principal.clone(),
        host: args.host.clone(),
        operation: args.operation as i8,
        permission: args.permission as i8,
    })
}

fn filter(args: &FilterArgs, pattern_default: PatternKind) -> Filter {
    Filter {
        resource_type: args.resource_type.map_or(ANY, |t| t as i8),
        resource_name: args.resource_name.clone(),
        pattern_type: args.pattern_type.unwrap_or(pattern_default) as i8,
        principal: args.principal.clone(),
        host: args.host.clone(),
        operation: args.operation.map_or(ANY, |o| o as i8),
        permission: args.permission.map_or(ANY, |p| p as i8),
    }
}

fn text(value: &Option<String>) -> Option<StrBytes> {
    value.as_ref().map(|v| StrBytes::from_string(v.clone()))
}

fn describe(connection: &mut Connection, filter: &Filter) -> Result<Vec<Binding>, CliError> {
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(filter.resource_type)
        .with_resource_name_filter(text(&filter.resource_name))
        .with_pattern_type_filter(filter.pattern_type)
        .with_principal_filter(text(&filter.principal))
        .with_host_filter(text(&filter.host))
        .with_operation(filter.operation)
        .with_permission_type(filter.permission);
    let response = connection.call(&request)?;
    CliError::check(
        response.error_code,
        response.error_message.as_deref(),
        "acl list",
    )?;
    let mut bindings = Vec::new();
    for resource in &response.resources {
        for acl in &resource.acls {
            bindings.push(Binding {
                resource_type: resource.resource_type,
                resource_name: resource.resource_name.to_string(),
                pattern_type: resource.pattern_type,
                principal: acl.principal.to_string(),
                host: acl.host.to_string(),
                operation: acl.operation,
                permission: acl.permission_type,
            });
        }
    }
    Ok(bindings)
}

fn create(connection: &mut Connection, binding: &Binding) -> Result<(), CliError> {
    let creation = AclCreation::default()
        .with_resource_type(binding.resource_type)
        .with_resource_name(StrBytes::from_string(binding.resource_name.clone()))
        .with_resource_pattern_type(binding.pattern_type)
        .with_principal(StrBytes::from_string(binding.principal.clone()))
        .with_host(StrBytes::from_string(binding.host.clone()))
        .with_operation(binding.operation)
        .with_permission_type(binding.permission);
    let request = CreateAclsRequest::default().with_creations(vec![creation]);
    let response = connection.call(&request)?;
    let result = response
        .results
        .first()
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: ApiKey::CreateAcls,
            subject: "the ACL".to_string(),
        })?;
    CliError::check(
        result.error_code,
        result.error_message.as_deref(),
        &format!("acl add {}", describe_binding(binding)),
    )
}

/// Prints what was removed; an ACL the broker matched but could not
/// remove is an error after that (its code and message).
fn remove(format: Format, connection: &mut Connection, filter: &Filter) -> Result<(), CliError> {
    let request = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
        .with_resource_type_filter(filter.resource_type)
        .with_resource_name_filter(text(&filter.resource_name))
        .with_pattern_type_filter(filter.pattern_type)
        .with_principal_filter(text(&filter.principal))
        .with_host_filter(text(&filter.host))
        .with_operation(filter.operation)
        .with_permission_type(filter.permission)]);
    let response = connection.call(&request)?;
    let result = response
        .filter_results
        .first()
        .ok_or_else(|| CliError::MissingEntry {
            addr: connection.addr().to_string(),
            api: ApiKey::DeleteAcls,
            subject: "the filter".to_string(),
        })?;
    CliError::check(
        result.error_code,
        result.error_message.as_deref(),
        "acl remove",
    )?;
    let mut removed = Vec::new();
    let mut failed = None;
    for acl in &result.matching_acls {
        let binding = Binding {
            resource_type: acl.resource_type,
            resource_name: acl.resource_name.to_string(),
            pattern_type: acl.pattern_type,
            principal: acl.principal.to_string(),
            host: acl.host.to_string(),
            operation: acl.operation,
            permission: acl.permission_type,
        };
        let subject = format!("acl remove {}", describe_binding(&binding));
        match CliError::check(acl.error_code, acl.error_message.as_deref(), &subject) {
            Ok(()) => removed.push(binding),
            Err(error) => failed = failed.or(Some(error)),
        }
    }
    removed.sort();
    print_outcome(format, "removed", &removed)?;
    failed.map_or(Ok(()), Err)
}

fn name(table: &[&str], code: i8) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|index| table.get(index))
        .map_or_else(|| format!("unknown({code})"), |name| name.to_string())
}

/// `User:alice from * allow create on topic orders (literal)`.
fn describe_binding(binding: &Binding) -> String {
    format!(
        "{} from {} {} {} on {} {} ({})",
        binding.principal,
        binding.host,
        name(PERMISSIONS, binding.permission),
        name(OPERATIONS, binding.operation),
        name(RESOURCE_TYPES, binding.resource_type),
        binding.resource_name,
        name(PATTERN_TYPES, binding.pattern_type),
    )
}

fn binding_json(binding: &Binding) -> Value {
    json!({
        "resource_type": name(RESOURCE_TYPES, binding.resource_type),
        "resource_name": binding.resource_name,
        "pattern_type": name(PATTERN_TYPES, binding.pattern_type),
        "principal": binding.principal,
        "host": binding.host,
        "operation": name(OPERATIONS, binding.operation),
        "permission": name(PERMISSIONS, binding.permission),
    })
}

fn table(bindings: &[Binding]) -> Table {
    let mut table = Table::new(&[
        "PRINCIPAL",
        "HOST",
        "PERMISSION",
        "OPERATION",
        "RESOURCE-TYPE",
        "RESOURCE-NAME",
        "PATTERN-TYPE",
    ]);
    for binding in bindings {
        table.row(vec![
            binding.principal.clone(),
            binding.host.clone(),
            name(PERMISSIONS, binding.permission),
            name(OPERATIONS, binding.operation),
            name(RESOURCE_TYPES, binding.resource_type),
            binding.resource_name.clone(),
            name(PATTERN_TYPES, binding.pattern_type),
        ]);
    }
    table
}

fn print_bindings(format: Format, bindings: &[Binding]) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&Value::Array(bindings.iter().map(binding_json).collect())),
        Format::Table => table(bindings).print(),
    }
}

/// `added 1 ACL:` / `removed 2 ACLs:` and the table, or `{"added": [...]}`.
fn print_outcome(format: Format, verb: &str, bindings: &[Binding]) -> Result<(), CliError> {
    match format {
        Format::Json => print_json(&json!({
            verb: bindings.iter().map(binding_json).collect::<Vec<_>>(),
        })),
        Format::Table => {
            let plural = if bindings.len() == 1 { "" } else { "s" };
            print_text(&format!("{verb} {} ACL{plural}\n", bindings.len()))?;
            if bindings.is_empty() {
                return Ok(());
            }
            table(bindings).print()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names clap accepts are the names printed for the same codes.
    #[test]
    fn flag_values_and_printed_names_agree() {
        fn check<T: ValueEnum + Copy>(table: &[&str], code: impl Fn(T) -> i8) {
            for variant in T::value_variants() {
                let flag = variant.to_possible_value().expect("value");
                assert_eq!(flag.get_name(), name(table, code(*variant)));
            }
        }
        check::<ResourceKind>(RESOURCE_TYPES, |v| v as i8);
        check::<PatternKind>(PATTERN_TYPES, |v| v as i8);
        check::<Operation>(OPERATIONS, |v| v as i8);
        check::<Permission>(PERMISSIONS, |v| v as i8);
        assert_eq!(name(OPERATIONS, 15), "unknown(15)");
        assert_eq!(name(OPERATIONS, -1), "unknown(-1)");
        assert_eq!(name(PERMISSIONS, ANY), "any");
    }

    #[test]
    fn describe_binding_reads_as_a_sentence() {
        let binding = Binding {
            resource_type: ResourceKind::Topic as i8,
            resource_name: "orders".into(),
            pattern_type: PatternKind::Prefixed as i8,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: Operation::Read as i8,
            permission: Permission::Allow as i8,
        };
        assert_eq!(
            describe_binding(&binding),
            "User:alice from * allow read on topic orders (prefixed)"
        );
    }
}
