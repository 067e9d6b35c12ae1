//! Kafka's authorization vocabulary: who asks ([`Principal`]), for what
//! ([`AclOperation`]) on what ([`Resource`]). The codes are Kafka's wire
//! values (`AclOperation`, `ResourceType`), so DescribeAcls and the
//! authorized-operations bit sets of Metadata / DescribeGroups /
//! DescribeCluster speak them directly.
//!
//! The ACL store and the authorizer's decision (Kafka's
//! `StandardAuthorizer` semantics) build on these types; until then every
//! request is allowed, and the handlers already ask at the places Kafka
//! asks.

use std::fmt;

/// An operation an ACL can allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclOperation {
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

impl Resource<'_> {
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
