//! ACL bindings (Kafka's `AclBinding`: a resource pattern plus an access
//! control entry), the filters DescribeAcls / DeleteAcls match them with
//! (`AclBindingFilter`), and the set of them the metadata image holds,
//! keyed by the stable id KRaft gives each ACL.
//!
//! Wire codes are Kafka's: pattern type ANY 1, MATCH 2, LITERAL 3,
//! PREFIXED 4; permission ANY 1, DENY 2, ALLOW 3; resource type and
//! operation ANY 1; UNKNOWN 0 (and any other code) is never valid.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{AclOperation, ResourceType, CLUSTER_NAME};

/// Kafka's `ANY` code of every filter field.
pub const CODE_ANY: i8 = 1;

/// How an ACL's resource name matches resource names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    /// The name itself; `*` matches every resource of the type.
    Literal,
    /// Every name starting with the pattern's name.
    Prefixed,
}

impl PatternType {
    pub const fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }
}

/// Whether an ACL allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclPermission {
    Deny,
    Allow,
}

impl AclPermission {
    pub const fn code(self) -> i8 {
        match self {
            AclPermission::Deny => 2,
            AclPermission::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<AclPermission> {
        match code {
            2 => Some(AclPermission::Deny),
            3 => Some(AclPermission::Allow),
            _ => None,
        }
    }
}

/// One ACL: `principal` from `host` may (or may not) do `operation` on
/// the resources `resource_type` + `resource_name` + `pattern_type` name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// A client IP address, or `*` for every host.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// Why a binding or filter from a request is invalid: every case answers
/// INVALID_REQUEST, with Kafka's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("Invalid resourceType {0}")]
    ResourceType(i8),
    #[error("Invalid patternType {0}")]
    PatternType(i8),
    #[error("Invalid operation {0}")]
    Operation(i8),
    #[error("Invalid permissionType {0}")]
    Permission(i8),
    #[error("Invalid empty resource name specified")]
    EmptyResourceName,
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    ClusterName,
    #[error("Could not parse principal from `{0}` (no colon is present separating the principal type from the principal name)")]
    Principal(String),
}

/// The fields of a binding or filter as Kafka's wire carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclCodes<'a> {
    pub resource_type: i8,
    pub resource_name: Option<&'a str>,
    pub pattern_type: i8,
    pub principal: Option<&'a str>,
    pub host: Option<&'a str>,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// A binding to create, checked as Kafka's `AclControlManager` and
    /// `AclApis` check new ACLs.
    pub fn from_codes(codes: &AclCodes<'_>) -> Result<AclBinding, FilterError> {
        let resource_type = ResourceType::from_code(codes.resource_type)
            .ok_or(FilterError::ResourceType(codes.resource_type))?;
        let pattern_type = PatternType::from_code(codes.pattern_type)
            .ok_or(FilterError::PatternType(codes.pattern_type))?;
        let operation = AclOperation::from_code(codes.operation)
            .ok_or(FilterError::Operation(codes.operation))?;
        let permission = AclPermission::from_code(codes.permission)
            .ok_or(FilterError::Permission(codes.permission))?;
        let resource_name = codes.resource_name.unwrap_or_default();
        if resource_name.is_empty() {
            return Err(FilterError::EmptyResourceName);
        }
        if resource_type == ResourceType::Cluster && resource_name != CLUSTER_NAME {
            return Err(FilterError::ClusterName);
        }
        let principal = codes.principal.unwrap_or_default();
        if !principal.contains(':') {
            return Err(FilterError::Principal(principal.to_string()));
        }
        Ok(AclBinding {
            resource_type,
            resource_name: resource_name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: codes.host.unwrap_or_default().to_string(),
            operation,
            permission,
        })
    }
}

/// Which pattern types a filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternTypeFilter {
    /// Any pattern type; a name must be equal.
    Any,
    /// Every ACL that would apply to the named resource: its literal ACLs,
    /// the wildcard `*` and the prefixes of the name.
    Match,
    Exactly(PatternType),
}

/// Kafka's `AclBindingFilter`: `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern_type: PatternTypeFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

fn any_or<T>(code: i8, parse: impl Fn(i8) -> Option<T>) -> Option<Option<T>> {
    if code == CODE_ANY {
        Some(None)
    } else {
        parse(code).map(Some)
    }
}

impl AclBindingFilter {
    /// A filter from the wire; UNKNOWN (or unheard-of) codes are invalid.
    pub fn from_codes(codes: &AclCodes<'_>) -> Result<AclBindingFilter, FilterError> {
        let resource_type = any_or(codes.resource_type, ResourceType::from_code)
            .ok_or(FilterError::ResourceType(codes.resource_type))?;
        let pattern_type = match codes.pattern_type {
            CODE_ANY => PatternTypeFilter::Any,
            2 => PatternTypeFilter::Match,
            code => PatternTypeFilter::Exactly(
                PatternType::from_code(code).ok_or(FilterError::PatternType(code))?,
            ),
        };
        let operation = any_or(codes.operation, AclOperation::from_code)
            .ok_or(FilterError::Operation(codes.operation))?;
        let permission = any_or(codes.permission, AclPermission::from_code)
            .ok_or(FilterError::Permission(codes.permission))?;
        Ok(AclBindingFilter {
            resource_type,
            resource_name: codes.resource_name.map(str::to_string),
            pattern_type,
            principal: codes.principal.map(str::to_string),
            host: codes.host.map(str::to_string),
            operation,
            permission,
        })
    }

    /// The filter matching every ACL.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: None,
            resource_name: None,
            pattern_type: PatternTypeFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_pattern(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && self.operation.is_none_or(|op| op == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != acl.resource_type) {
            return false;
        }
        let exact = match self.pattern_type {
            PatternTypeFilter::Any => true,
            PatternTypeFilter::Exactly(pattern) if pattern == acl.pattern_type => true,
            PatternTypeFilter::Exactly(_) => return false,
            PatternTypeFilter::Match => false,
        };
        let Some(name) = &self.resource_name else {
            return true;
        };
        if exact {
            return *name == acl.resource_name;
        }
        match acl.pattern_type {
            PatternType::Literal => *name == acl.resource_name || acl.resource_name == "*",
            PatternType::Prefixed => name.starts_with(&acl.resource_name),
        }
    }
}

/// Every ACL of the cluster, by its stable id. Lives in the metadata
/// image, so every shard holds a read-only copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclSet {
    by_id: BTreeMap<Uuid, AclBinding>,
}

impl AclSet {
    pub fn new() -> AclSet {
        AclSet::default()
    }

    pub fn insert(&mut self, id: Uuid, acl: AclBinding) -> Option<AclBinding> {
        self.by_id.insert(id, acl)
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<AclBinding> {
        self.by_id.remove(id)
    }

    pub fn get(&self, id: &Uuid) -> Option<&AclBinding> {
        self.by_id.get(id)
    }

    pub fn contains(&self, acl: &AclBinding) -> bool {
        self.by_id.values().any(|a| a == acl)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every ACL with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &AclBinding)> {
        self.by_id.iter()
    }

    /// The ACLs `filter` matches, with their ids.
    pub fn matching<'a>(
        &'a self,
        filter: &'a AclBindingFilter,
    ) -> impl Iterator<Item = (&'a Uuid, &'a AclBinding)> + 'a {
        self.by_id.iter().filter(|(_, acl)| filter.matches(acl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes<'a>(name: Option<&'a str>, pattern: i8, principal: Option<&'a str>) -> AclCodes<'a> {
        AclCodes {
            resource_type: 2,
            resource_name: name,
            pattern_type: pattern,
            principal,
            host: Some("*"),
            operation: 3,
            permission: 3,
        }
    }

    fn topic_acl(name: &str, pattern: PatternType) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_string(),
            pattern_type: pattern,
            principal: "User:alice".to_string(),
            host: "*".to_string(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    #[test]
    fn new_bindings_are_checked_as_kafka_does() {
        let ok = AclBinding::from_codes(&codes(Some("*"), 3, Some("User:*")));
        assert_eq!(ok.map(|b| b.resource_name), Ok("*".to_string()));
        let cases: [(AclCodes<'_>, FilterError); 9] = [
            (
                codes(Some(""), 4, Some("User:a")),
                FilterError::EmptyResourceName,
            ),
            (
                codes(None, 3, Some("User:a")),
                FilterError::EmptyResourceName,
            ),
            (
                codes(Some("t"), 1, Some("User:a")),
                FilterError::PatternType(1),
            ),
            (
                codes(Some("t"), 2, Some("User:a")),
                FilterError::PatternType(2),
            ),
            (
                codes(Some("t"), 0, Some("User:a")),
                FilterError::PatternType(0),
            ),
            (
                codes(Some("t"), 3, Some("alice")),
                FilterError::Principal("alice".into()),
            ),
            (
                AclCodes {
                    resource_type: 1,
                    ..codes(Some("t"), 3, Some("User:a"))
                },
                FilterError::ResourceType(1),
            ),
            (
                AclCodes {
                    operation: 1,
                    ..codes(Some("t"), 3, Some("User:a"))
                },
                FilterError::Operation(1),
            ),
            (
                AclCodes {
                    permission: 1,
                    ..codes(Some("t"), 3, Some("User:a"))
                },
                FilterError::Permission(1),
            ),
        ];
        for (codes, want) in cases {
            assert_eq!(AclBinding::from_codes(&codes), Err(want), "{codes:?}");
        }
        let cluster = AclCodes {
            resource_type: 4,
            ..codes(Some("c"), 3, Some("User:a"))
        };
        assert_eq!(
            AclBinding::from_codes(&cluster),
            Err(FilterError::ClusterName)
        );
        let all = AclCodes {
            operation: 2,
            ..codes(Some("t"), 4, Some("User:a"))
        };
        assert_eq!(
            AclBinding::from_codes(&all).map(|b| b.operation),
            Ok(AclOperation::All)
        );
    }

    #[test]
    fn filters_reject_unknown_codes_and_accept_any() {
        let any = AclCodes {
            resource_type: 1,
            resource_name: None,
            pattern_type: 1,
            principal: None,
            host: None,
            operation: 1,
            permission: 1,
        };
        assert_eq!(
            AclBindingFilter::from_codes(&any),
            Ok(AclBindingFilter::any())
        );
        for (bad, want) in [
            (
                AclCodes {
                    resource_type: 0,
                    ..any.clone()
                },
                FilterError::ResourceType(0),
            ),
            (
                AclCodes {
                    pattern_type: 0,
                    ..any.clone()
                },
                FilterError::PatternType(0),
            ),
            (
                AclCodes {
                    pattern_type: 5,
                    ..any.clone()
                },
                FilterError::PatternType(5),
            ),
            (
                AclCodes {
                    operation: 0,
                    ..any.clone()
                },
                FilterError::Operation(0),
            ),
            (
                AclCodes {
                    permission: 4,
                    ..any.clone()
                },
                FilterError::Permission(4),
            ),
        ] {
            assert_eq!(AclBindingFilter::from_codes(&bad), Err(want));
        }
    }

    #[test]
    fn filter_pattern_matching_table() {
        use PatternType::*;
        use PatternTypeFilter as F;
        // (filter pattern type, filter name, acl name, acl pattern) -> matches
        let table: [(F, Option<&str>, &str, PatternType, bool); 14] = [
            (F::Any, None, "foo", Literal, true),
            (F::Any, Some("foo"), "foo", Prefixed, true),
            (F::Any, Some("foobar"), "foo", Prefixed, false),
            (F::Exactly(Literal), Some("foo"), "foo", Literal, true),
            (F::Exactly(Literal), Some("foo"), "foo", Prefixed, false),
            (F::Exactly(Prefixed), None, "foo", Prefixed, true),
            (F::Exactly(Literal), Some("foo"), "*", Literal, false),
            (F::Match, None, "anything", Prefixed, true),
            (F::Match, Some("foobar"), "foobar", Literal, true),
            (F::Match, Some("foobar"), "*", Literal, true),
            (F::Match, Some("foobar"), "foo", Prefixed, true),
            (F::Match, Some("foobar"), "foo", Literal, false),
            (F::Match, Some("foo"), "foobar", Prefixed, false),
            (F::Match, Some("*"), "*", Literal, true),
        ];
        for (pattern_type, name, acl_name, acl_pattern, want) in table {
            let filter = AclBindingFilter {
                resource_name: name.map(str::to_string),
                pattern_type,
                ..AclBindingFilter::any()
            };
            let acl = topic_acl(acl_name, acl_pattern);
            assert_eq!(
                filter.matches(&acl),
                want,
                "{pattern_type:?} {name:?} {acl:?}"
            );
        }
    }

    #[test]
    fn filter_entry_fields_match_exactly() {
        let acl = topic_acl("t", PatternType::Literal);
        let by = |f: AclBindingFilter| f.matches(&acl);
        let any = AclBindingFilter::any;
        assert!(by(AclBindingFilter {
            principal: Some("User:alice".into()),
            ..any()
        }));
        assert!(!by(AclBindingFilter {
            principal: Some("User:*".into()),
            ..any()
        }));
        assert!(!by(AclBindingFilter {
            host: Some("10.0.0.1".into()),
            ..any()
        }));
        assert!(by(AclBindingFilter {
            host: Some("*".into()),
            ..any()
        }));
        assert!(!by(AclBindingFilter {
            operation: Some(AclOperation::All),
            ..any()
        }));
        assert!(by(AclBindingFilter {
            operation: Some(AclOperation::Read),
            ..any()
        }));
        assert!(!by(AclBindingFilter {
            permission: Some(AclPermission::Deny),
            ..any()
        }));
        assert!(!by(AclBindingFilter {
            resource_type: Some(ResourceType::Group),
            ..any()
        }));
    }
}
