//! Kafka's authorization vocabulary: who asks ([`Principal`]), for what
//! ([`AclOperation`]) on what ([`Resource`]). The codes are Kafka's wire
//! values (`AclOperation`, `ResourceType`), so DescribeAcls and the
//! authorized-operations bit sets of Metadata / DescribeGroups /
//! DescribeCluster speak them directly.
//!
//! - `binding`: ACL bindings, the filters DescribeAcls / DeleteAcls use,
//!   and the [`AclSet`] the metadata image holds.
//! - `authorizer`: the decision, with Kafka's `StandardAuthorizer`
//!   semantics, sans IO.

use std::fmt;

pub mod authorizer;
pub mod binding;

pub use authorizer::{Authorizer, AuthorizerConfig, Decision, Requester};
pub use binding::{
    AclBinding, AclBindingFilter, AclCodes, AclPermission, AclSet, FilterError, PatternType,
    PatternTypeFilter,
};

/// An operation an ACL can allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclOperation {
    /// Every operation: only ever in an ACL, never asked for.
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

impl AclOperation {
    /// Kafka's `AclOperation` code.
    pub const fn code(self) -> i8 {
        match self {
            AclOperation::All => 2,
            AclOperation::Read => 3,
            AclOperation::Write => 4,
            AclOperation::Create => 5,
            AclOperation::Delete => 6,
            AclOperation::Alter => 7,
            AclOperation::Describe => 8,
            AclOperation::ClusterAction => 9,
            AclOperation::DescribeConfigs => 10,
            AclOperation::AlterConfigs => 11,
            AclOperation::IdempotentWrite => 12,
            AclOperation::CreateTokens => 13,
            AclOperation::DescribeTokens => 14,
        }
    }

    /// The operation of Kafka's code `code` (not ANY/UNKNOWN).
    pub fn from_code(code: i8) -> Option<AclOperation> {
        use AclOperation::*;
        [
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            CreateTokens,
            DescribeTokens,
        ]
        .into_iter()
        .find(|op| op.code() == code)
    }

    /// This operation's bit in an authorized-operations set.
    pub const fn bit(self) -> i32 {
        1 << self.code()
    }
}

/// The kinds of resource ACLs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    /// Kafka's `ResourceType` code.
    pub const fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    /// The resource type of Kafka's code `code` (not ANY/UNKNOWN).
    pub fn from_code(code: i8) -> Option<ResourceType> {
        use ResourceType::*;
        [
            Topic,
            Group,
            Cluster,
            TransactionalId,
            DelegationToken,
            User,
        ]
        .into_iter()
        .find(|t| t.code() == code)
    }

    /// The operations an ACL can grant on this type (Kafka's
    /// `AclEntry.supportedOperations`), which authorized-operations sets
    /// range over.
    pub const fn operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
        }
    }
}

/// One resource a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource<'a> {
    Cluster,
    Topic(&'a str),
    Group(&'a str),
    TransactionalId(&'a str),
}

/// Kafka's one name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

impl Resource<'_> {
    /// The name ACLs match against (the cluster's is `kafka-cluster`).
    pub fn name(&self) -> &str {
        match self {
            Resource::Cluster => CLUSTER_NAME,
            Resource::Topic(name) | Resource::Group(name) | Resource::TransactionalId(name) => name,
        }
    }

    pub fn resource_type(&self) -> ResourceType {
        match self {
            Resource::Cluster => ResourceType::Cluster,
            Resource::Topic(_) => ResourceType::Topic,
            Resource::Group(_) => ResourceType::Group,
            Resource::TransactionalId(_) => ResourceType::TransactionalId,
        }
    }
}

/// Who a connection acts as: Kafka's `KafkaPrincipal` (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub principal_type: String,
    pub name: String,
}

impl Principal {
    /// Kafka's principal of an unauthenticated connection.
    pub fn anonymous() -> Principal {
        Principal {
            principal_type: "User".to_string(),
            name: "ANONYMOUS".to_string(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_bits(resource_type: ResourceType) -> i32 {
        resource_type
            .operations()
            .iter()
            .fold(0, |bits, op| bits | op.bit())
    }

    #[test]
    fn operation_sets_match_kafkas() {
        // What a Kafka 3.x broker without an authorizer reports.
        assert_eq!(all_bits(ResourceType::Topic), 3576);
        assert_eq!(all_bits(ResourceType::Cluster), 8096);
        assert_eq!(
            all_bits(ResourceType::Group),
            (1 << 3) | (1 << 6) | (1 << 8)
        );
        assert_eq!(Principal::anonymous().to_string(), "User:ANONYMOUS");
    }
}
