//! The authorization decision, as Kafka's `StandardAuthorizer`
//! (`StandardAuthorizerData.authorize`) makes it, over an [`AclSet`]:
//!
//! 1. A super user (`super.users`) is always allowed.
//! 2. The ACLs on the resource are its literal ACLs, the literal `*` ACLs
//!    of its type and the prefixed ACLs whose name starts the resource's.
//! 3. Of those, an ACL applies when its principal is the caller's or
//!    `User:*`, its host the client's address or `*`, and its operation the
//!    asked one or ALL; an ALLOW of READ, WRITE, DELETE or ALTER also
//!    allows DESCRIBE, an ALLOW of ALTER_CONFIGS also DESCRIBE_CONFIGS
//!    (DENY implies nothing).
//! 4. Any applying DENY denies; else any applying ALLOW allows.
//! 5. Else, if the resource has no ACLs at all,
//!    `allow.everyone.if.no.acl.found` decides; otherwise denied.
//!
//! Sans IO: the caller passes the ACLs of its shard's metadata image.

use std::collections::BTreeSet;

use super::binding::{AclBinding, AclPermission, AclSet, PatternType};
use super::{AclOperation, Principal, Resource};

/// The principal every `User:*` ACL names.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host and resource name that match every host / resource.
pub const WILDCARD: &str = "*";

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
}

/// The authorizer's settings (`super.users`,
/// `allow.everyone.if.no.acl.found`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Principals as `Type:name`, compared exactly (no wildcard).
    pub super_users: BTreeSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// Kafka's StandardAuthorizer: see the module doc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    config: AuthorizerConfig,
}

/// Who asks, from where.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a Principal,
    /// The client's IP address as text (`127.0.0.1`, `::1`).
    pub host: &'a str,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig) -> Authorizer {
        Authorizer { config }
    }

    pub fn config(&self) -> &AuthorizerConfig {
        &self.config
    }

    pub fn authorize(
        &self,
        acls: &AclSet,
        who: Requester<'_>,
        operation: AclOperation,
        resource: Resource<'_>,
    ) -> Decision {
        let principal = who.principal.to_string();
        if self.config.super_users.contains(&principal) {
            return Decision::Allowed;
        }
        let mut resource_has_acls = false;
        let mut allowed = false;
        for (_, acl) in acls.iter() {
            if !on_resource(acl, &resource) {
                continue;
            }
            resource_has_acls = true;
            match applies(acl, &principal, who.host, operation) {
                Some(AclPermission::Deny) => return Decision::Denied,
                Some(AclPermission::Allow) => allowed = true,
                None => {}
            }
        }
        if allowed || (!resource_has_acls && self.config.allow_everyone_if_no_acl_found) {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }
}

fn on_resource(acl: &AclBinding, resource: &Resource<'_>) -> bool {
    if acl.resource_type != resource.resource_type() {
        return false;
    }
    let name = resource.name();
    match acl.pattern_type {
        PatternType::Literal => acl.resource_name == name || acl.resource_name == WILDCARD,
        PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
    }
}

/// Kafka's `StandardAuthorizerData.findResult`: the ACL's permission if it
/// applies to this principal, host and operation.
fn applies(
    acl: &AclBinding,
    principal: &str,
    host: &str,
    operation: AclOperation,
) -> Option<AclPermission> {
    use AclOperation::*;
    if acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL {
        return None;
    }
    if acl.host != WILDCARD && acl.host != host {
        return None;
    }
    let operation_matches = acl.operation == All
        || acl.operation == operation
        || (acl.permission == AclPermission::Allow
            && match operation {
                Describe => matches!(acl.operation, Read | Write | Delete | Alter),
                DescribeConfigs => acl.operation == AlterConfigs,
                _ => false,
            });
    operation_matches.then_some(acl.permission)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::ResourceType;
    use uuid::Uuid;
    use AclOperation::*;
    use AclPermission::*;
    use Decision::*;
    use PatternType::*;

    /// `(type, name, pattern, principal, host, operation, permission)`.
    type Acl = (
        ResourceType,
        &'static str,
        PatternType,
        &'static str,
        &'static str,
        AclOperation,
        AclPermission,
    );

    const T: ResourceType = ResourceType::Topic;
    const G: ResourceType = ResourceType::Group;
    const C: ResourceType = ResourceType::Cluster;

    fn set(acls: &[Acl]) -> AclSet {
        let mut set = AclSet::new();
        for (i, (resource_type, name, pattern_type, principal, host, operation, permission)) in
            acls.iter().enumerate()
        {
            let acl = AclBinding {
                resource_type: *resource_type,
                resource_name: name.to_string(),
                pattern_type: *pattern_type,
                principal: principal.to_string(),
                host: host.to_string(),
                operation: *operation,
                permission: *permission,
            };
            set.insert(Uuid::from_u128(i as u128 + 1), acl);
        }
        set
    }

    fn user(name: &str) -> Principal {
        Principal {
            principal_type: "User".to_string(),
            name: name.to_string(),
        }
    }

    struct Case {
        acls: &'static [Acl],
        principal: &'static str,
        host: &'static str,
        operation: AclOperation,
        resource: Resource<'static>,
        want: Decision,
    }

    const fn case(
        acls: &'static [Acl],
        principal: &'static str,
        host: &'static str,
        operation: AclOperation,
        resource: Resource<'static>,
        want: Decision,
    ) -> Case {
        Case {
            acls,
            principal,
            host,
            operation,
            resource,
            want,
        }
    }

    const H: &str = "10.0.0.1";
    const TOPIC: Resource<'static> = Resource::Topic("orders");

    /// Every rule of the module doc, with default settings
    /// (`allow.everyone.if.no.acl.found=false`, super user `User:admin`).
    const TABLE: &[Case] = &[
        // No ACLs: denied by default (super users aside).
        case(&[], "alice", H, Read, TOPIC, Denied),
        case(&[], "admin", H, Read, TOPIC, Allowed),
        case(&[], "admin", H, ClusterAction, Resource::Cluster, Allowed),
        // A super user beats a DENY naming them.
        case(
            &[(T, "orders", Literal, "User:admin", "*", All, Deny)],
            "admin",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        // Literal name, exact principal.
        case(
            &[(T, "orders", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Read, Allow)],
            "bob",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Write,
            TOPIC,
            Denied,
        ),
        case(
            &[(T, "other", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // Resource type must match.
        case(
            &[(G, "orders", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // Wildcard resource name.
        case(
            &[(T, "*", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        case(
            &[(G, "*", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // Prefixed patterns.
        case(
            &[(T, "ord", Prefixed, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Prefixed, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders-", Prefixed, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // `*` is literal in a prefixed pattern.
        case(
            &[(T, "*", Prefixed, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // A literal pattern is not a prefix.
        case(
            &[(T, "ord", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // Wildcard principal.
        case(
            &[(T, "orders", Literal, "User:*", "*", Read, Allow)],
            "bob",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        // Host matching.
        case(
            &[(T, "orders", Literal, "User:alice", H, Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "10.0.0.2", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // DENY beats ALLOW, whichever is more specific.
        case(
            &[
                (T, "*", Literal, "User:*", "*", All, Allow),
                (T, "orders", Literal, "User:alice", "*", Write, Deny),
            ],
            "alice",
            H,
            Write,
            TOPIC,
            Denied,
        ),
        case(
            &[
                (T, "orders", Literal, "User:alice", "*", Write, Allow),
                (T, "o", Prefixed, "User:*", "*", Write, Deny),
            ],
            "alice",
            H,
            Write,
            TOPIC,
            Denied,
        ),
        case(
            &[
                (T, "orders", Literal, "User:alice", H, Read, Allow),
                (T, "orders", Literal, "User:alice", "*", Read, Deny),
            ],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // A DENY for another host, operation or principal does not apply.
        case(
            &[
                (T, "orders", Literal, "User:*", "*", Read, Allow),
                (T, "orders", Literal, "User:alice", "10.9.9.9", Read, Deny),
            ],
            "alice",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        case(
            &[
                (T, "orders", Literal, "User:*", "*", Read, Allow),
                (T, "orders", Literal, "User:bob", "*", Read, Deny),
            ],
            "alice",
            H,
            Read,
            TOPIC,
            Allowed,
        ),
        // ALL allows and denies everything.
        case(
            &[(T, "orders", Literal, "User:alice", "*", All, Allow)],
            "alice",
            H,
            AlterConfigs,
            TOPIC,
            Allowed,
        ),
        case(
            &[(C, "kafka-cluster", Literal, "User:alice", "*", All, Allow)],
            "alice",
            H,
            ClusterAction,
            Resource::Cluster,
            Allowed,
        ),
        case(
            &[
                (T, "orders", Literal, "User:*", "*", Read, Allow),
                (T, "orders", Literal, "User:alice", "*", All, Deny),
            ],
            "alice",
            H,
            Describe,
            TOPIC,
            Denied,
        ),
        // Implied DESCRIBE.
        case(
            &[(T, "orders", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Describe,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Write, Allow)],
            "alice",
            H,
            Describe,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Delete, Allow)],
            "alice",
            H,
            Describe,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Alter, Allow)],
            "alice",
            H,
            Describe,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Create, Allow)],
            "alice",
            H,
            Describe,
            TOPIC,
            Denied,
        ),
        case(
            &[(
                T,
                "orders",
                Literal,
                "User:alice",
                "*",
                DescribeConfigs,
                Allow,
            )],
            "alice",
            H,
            Describe,
            TOPIC,
            Denied,
        ),
        // DESCRIBE implies nothing back.
        case(
            &[(T, "orders", Literal, "User:alice", "*", Describe, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        // Implied DESCRIBE_CONFIGS.
        case(
            &[(T, "orders", Literal, "User:alice", "*", AlterConfigs, Allow)],
            "alice",
            H,
            DescribeConfigs,
            TOPIC,
            Allowed,
        ),
        case(
            &[(
                T,
                "orders",
                Literal,
                "User:alice",
                "*",
                DescribeConfigs,
                Allow,
            )],
            "alice",
            H,
            AlterConfigs,
            TOPIC,
            Denied,
        ),
        // A DENY implies nothing: DENY READ leaves an ALLOW DESCRIBE alone.
        case(
            &[
                (T, "orders", Literal, "User:alice", "*", Describe, Allow),
                (T, "orders", Literal, "User:alice", "*", Read, Deny),
            ],
            "alice",
            H,
            Describe,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Read, Deny)],
            "alice",
            H,
            Describe,
            TOPIC,
            Denied,
        ),
        // Groups, transactional ids and the cluster use the same rules.
        case(
            &[(G, "g", Prefixed, "User:*", "*", Read, Allow)],
            "alice",
            H,
            Read,
            Resource::Group("g1"),
            Allowed,
        ),
        case(
            &[(
                ResourceType::TransactionalId,
                "tx",
                Literal,
                "User:alice",
                "*",
                Write,
                Allow,
            )],
            "alice",
            H,
            Describe,
            Resource::TransactionalId("tx"),
            Allowed,
        ),
        case(
            &[(
                C,
                "kafka-cluster",
                Literal,
                "User:alice",
                "*",
                Create,
                Allow,
            )],
            "alice",
            H,
            Create,
            Resource::Cluster,
            Allowed,
        ),
    ];

    fn run(authorizer: &Authorizer, case: &Case) -> Decision {
        let principal = user(case.principal);
        let who = Requester {
            principal: &principal,
            host: case.host,
        };
        authorizer.authorize(&set(case.acls), who, case.operation, case.resource)
    }

    #[test]
    fn standard_authorizer_table() {
        let authorizer = Authorizer::new(AuthorizerConfig {
            super_users: ["User:admin".to_string()].into(),
            allow_everyone_if_no_acl_found: false,
        });
        for (i, case) in TABLE.iter().enumerate() {
            assert_eq!(
                run(&authorizer, case),
                case.want,
                "case {i}: {:?} {} {:?} {:?}",
                case.acls,
                case.principal,
                case.operation,
                case.resource
            );
        }
    }

    /// `allow.everyone.if.no.acl.found=true` allows only resources without
    /// any ACL; an ACL for someone else on the resource still denies.
    const NO_ACL_FOUND: &[Case] = &[
        case(&[], "alice", H, Write, TOPIC, Allowed),
        case(
            &[(T, "other", Literal, "User:bob", "*", Read, Allow)],
            "alice",
            H,
            Write,
            TOPIC,
            Allowed,
        ),
        case(
            &[(G, "*", Literal, "User:bob", "*", Read, Allow)],
            "alice",
            H,
            Write,
            TOPIC,
            Allowed,
        ),
        case(
            &[(T, "orders", Literal, "User:bob", "*", Read, Allow)],
            "alice",
            H,
            Write,
            TOPIC,
            Denied,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Read, Allow)],
            "alice",
            H,
            Write,
            TOPIC,
            Denied,
        ),
        case(
            &[(T, "*", Literal, "User:bob", "*", Read, Allow)],
            "alice",
            H,
            Write,
            TOPIC,
            Denied,
        ),
        case(
            &[(T, "or", Prefixed, "User:alice", "10.9.9.9", Read, Allow)],
            "alice",
            H,
            Read,
            TOPIC,
            Denied,
        ),
        case(
            &[(T, "orders", Literal, "User:alice", "*", Write, Deny)],
            "alice",
            H,
            Write,
            TOPIC,
            Denied,
        ),
    ];

    #[test]
    fn allow_everyone_if_no_acl_found_table() {
        let authorizer = Authorizer::new(AuthorizerConfig {
            super_users: BTreeSet::new(),
            allow_everyone_if_no_acl_found: true,
        });
        for (i, case) in NO_ACL_FOUND.iter().enumerate() {
            assert_eq!(
                run(&authorizer, case),
                case.want,
                "case {i}: {:?}",
                case.acls
            );
        }
    }

    #[test]
    fn super_users_are_exact_principals() {
        let authorizer = Authorizer::new(AuthorizerConfig {
            super_users: ["User:*".to_string()].into(),
            allow_everyone_if_no_acl_found: false,
        });
        let case = case(&[], "alice", H, Read, TOPIC, Denied);
        assert_eq!(run(&authorizer, &case), Denied);
    }
}
