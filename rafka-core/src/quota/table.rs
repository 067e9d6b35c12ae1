//! The quota table the metadata image holds: quotas per entity, which
//! one applies to a (user, client id) pair, and DescribeClientQuotas'
//! filter (Kafka's `ClientQuotasImage.describe`).

use std::collections::BTreeMap;

use super::entity::{EntityName, EntityType, QuotaEntity, QuotaKey, QuotaValue};

/// The sensor a (user, client id) pair records into: Kafka's quota metric
/// tags. An empty field is not part of the id, so every client of a user
/// with a user-level quota shares one sensor, and so on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaId {
    pub user: String,
    pub client_id: String,
}

/// Quotas by entity, then key (never an empty inner map). Ordered maps:
/// the image is compared and snapshotted deterministically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaTable {
    entities: BTreeMap<QuotaEntity, BTreeMap<QuotaKey, QuotaValue>>,
}

impl QuotaTable {
    pub fn new() -> QuotaTable {
        QuotaTable::default()
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Sets a quota; returns the value it replaced.
    pub fn set(
        &mut self,
        entity: QuotaEntity,
        key: QuotaKey,
        value: QuotaValue,
    ) -> Option<QuotaValue> {
        self.entities.entry(entity).or_default().insert(key, value)
    }

    /// Removes a quota; returns the value it had.
    pub fn remove(&mut self, entity: &QuotaEntity, key: QuotaKey) -> Option<QuotaValue> {
        let quotas = self.entities.get_mut(entity)?;
        let old = quotas.remove(&key);
        if quotas.is_empty() {
            self.entities.remove(entity);
        }
        old
    }

    pub fn get(&self, entity: &QuotaEntity, key: QuotaKey) -> Option<f64> {
        self.entities.get(entity)?.get(&key).map(|v| v.get())
    }

    /// Every entity with its quotas, in entity then key order.
    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<QuotaKey, QuotaValue>)> {
        self.entities.iter()
    }

    fn has(&self, entity: QuotaEntity, key: QuotaKey) -> bool {
        self.get(&entity, key).is_some()
    }

    /// The sensor of `(user, client_id)` for `key`: the multi-level branch
    /// of Kafka's `DefaultQuotaCallback.quotaMetricTags`, which walks the
    /// eight levels from `/config/users/<user>/clients/<client-id>` down
    /// to `/config/clients/<default>` and names the sensor after the first
    /// level that has a quota.
    ///
    /// Kafka takes a shortcut when quotas were only ever set at one level;
    /// it picks the same sensor whenever some quota applies, so rafka
    /// always walks the levels (they differ only for a pair no quota
    /// limits, whose sensor never throttles).
    pub fn quota_id(&self, key: QuotaKey, user: &str, client_id: &str) -> QuotaId {
        use EntityName::{Default, Named};
        let u = || Named(user.to_string());
        let c = || Named(client_id.to_string());
        let both = QuotaId {
            user: user.to_string(),
            client_id: client_id.to_string(),
        };
        let user_only = QuotaId {
            user: user.to_string(),
            client_id: String::new(),
        };
        if self.has(QuotaEntity::UserClientId(u(), c()), key)
            || self.has(QuotaEntity::UserClientId(u(), Default), key)
        {
            return both;
        }
        if self.has(QuotaEntity::User(u()), key) {
            return user_only;
        }
        if self.has(QuotaEntity::UserClientId(Default, c()), key)
            || self.has(QuotaEntity::UserClientId(Default, Default), key)
        {
            return both;
        }
        if self.has(QuotaEntity::User(Default), key) {
            return user_only;
        }
        QuotaId {
            user: String::new(),
            client_id: client_id.to_string(),
        }
    }

    /// The quota of sensor `id` (Kafka's `DefaultQuotaCallback.quotaLimit`):
    /// `None` when no level sets one.
    pub fn quota_limit(&self, key: QuotaKey, id: &QuotaId) -> Option<f64> {
        use EntityName::{Default, Named};
        let u = || Named(id.user.clone());
        let c = || Named(id.client_id.clone());
        let levels: Vec<QuotaEntity> = match (id.user.is_empty(), id.client_id.is_empty()) {
            (false, false) => vec![
                QuotaEntity::UserClientId(u(), c()),
                QuotaEntity::UserClientId(u(), Default),
                QuotaEntity::UserClientId(Default, c()),
                QuotaEntity::UserClientId(Default, Default),
            ],
            (false, true) => vec![QuotaEntity::User(u()), QuotaEntity::User(Default)],
            (true, false) => vec![QuotaEntity::ClientId(c()), QuotaEntity::ClientId(Default)],
            (true, true) => vec![],
        };
        levels.iter().find_map(|entity| self.get(entity, key))
    }

    /// The sensor and quota that apply to a (user principal name, client
    /// id) pair for `key`.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> (QuotaId, Option<f64>) {
        let id = self.quota_id(key, user, client_id);
        let limit = self.quota_limit(key, &id);
        (id, limit)
    }

    /// The `connection_creation_rate` quota of connections from `ip`:
    /// the exact IP's, else the `<default>` IP's, else none (Kafka's
    /// `ConnectionQuotas.connectionRateForIp`). Names are compared as
    /// addresses, as Kafka's `InetAddress.getByName` does, so any textual
    /// form of an IPv6 address matches.
    pub fn ip_connection_rate(&self, ip: std::net::IpAddr) -> Option<f64> {
        let key = QuotaKey::ConnectionCreationRate;
        let exact = QuotaEntity::Ip(EntityName::Named(ip.to_string()));
        if let Some(rate) = self.get(&exact, key) {
            return Some(rate);
        }
        // Ip is the last variant and Default the first name: every IP
        // entity is at or after `Ip(Default)`.
        let mut default = None;
        for (entity, quotas) in self.entities.range(QuotaEntity::Ip(EntityName::Default)..) {
            let Some(value) = quotas.get(&key) else {
                continue;
            };
            match entity {
                QuotaEntity::Ip(EntityName::Default) => default = Some(value.get()),
                QuotaEntity::Ip(EntityName::Named(name))
                    if name.parse::<std::net::IpAddr>().ok() == Some(ip) =>
                {
                    return Some(value.get());
                }
                _ => {}
            }
        }
        default
    }

    /// Entities matching `filter`, with their quotas, in entity order.
    pub fn describe(&self, filter: &QuotaFilter) -> Vec<(&QuotaEntity, Vec<(QuotaKey, f64)>)> {
        self.entities
            .iter()
            .filter(|(entity, _)| filter.matches(entity))
            .map(|(entity, quotas)| {
                let values = quotas.iter().map(|(k, v)| (*k, v.get())).collect();
                (entity, values)
            })
            .collect()
    }
}

/// DescribeClientQuotas' match types.
pub const MATCH_TYPE_EXACT: i8 = 0;
pub const MATCH_TYPE_DEFAULT: i8 = 1;
pub const MATCH_TYPE_SPECIFIED: i8 = 2;

/// One DescribeClientQuotas filter component, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterComponent {
    pub entity_type: String,
    pub match_type: i8,
    pub match_name: Option<String>,
}

/// How a filter constrains one entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Constraint {
    /// The entity has this type with exactly this name (or the default).
    Exact(EntityName),
    /// The entity has this type, with any name or the default.
    Specified,
}

/// A checked DescribeClientQuotas filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaFilter {
    constraints: BTreeMap<EntityType, Constraint>,
    strict: bool,
}

impl QuotaFilter {
    /// Kafka's checks, in its order: an empty type, a type named twice, an
    /// unknown type (UNSUPPORTED_VERSION), a match string that does not
    /// fit the match type, an unknown match type, IP with user or client id.
    pub fn parse(components: &[FilterComponent], strict: bool) -> Result<QuotaFilter, FilterError> {
        let mut constraints = BTreeMap::new();
        for component in components {
            let name = component.entity_type.as_str();
            if name.is_empty() {
                return Err(FilterError::EmptyType);
            }
            let entity_type = EntityType::from_name(name);
            if entity_type.is_some_and(|t| constraints.contains_key(&t)) {
                return Err(FilterError::Repeated(name.to_string()));
            }
            let entity_type =
                entity_type.ok_or_else(|| FilterError::UnsupportedType(name.to_string()))?;
            let matched = component.match_name.as_deref();
            let constraint = match (component.match_type, matched) {
                (MATCH_TYPE_EXACT, Some(matched)) => {
                    Constraint::Exact(EntityName::Named(matched.to_string()))
                }
                (MATCH_TYPE_EXACT, None) => return Err(FilterError::ExactWithoutName),
                (MATCH_TYPE_DEFAULT, None) => Constraint::Exact(EntityName::Default),
                (MATCH_TYPE_DEFAULT, Some(_)) => return Err(FilterError::DefaultWithName),
                (MATCH_TYPE_SPECIFIED, None) => Constraint::Specified,
                (MATCH_TYPE_SPECIFIED, Some(_)) => return Err(FilterError::SpecifiedWithName),
                (other, _) => return Err(FilterError::UnknownMatchType(other)),
            };
            constraints.insert(entity_type, constraint);
        }
        let has = |t| constraints.contains_key(&t);
        if has(EntityType::Ip) && (has(EntityType::User) || has(EntityType::ClientId)) {
            return Err(FilterError::IpCombined);
        }
        Ok(QuotaFilter {
            constraints,
            strict,
        })
    }

    /// Kafka's `ClientQuotasImage.matches`: every constrained type
    /// matches and, when strict, the entity has no other type.
    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        let components = entity.components();
        if self.strict && components.len() != self.constraints.len() {
            return false;
        }
        self.constraints.iter().all(|(entity_type, constraint)| {
            match entity.name_of(*entity_type) {
                None => false,
                Some(name) => match constraint {
                    Constraint::Exact(want) => want == name,
                    Constraint::Specified => true,
                },
            }
        })
    }
}

/// Why DescribeClientQuotas fails as a whole; the messages are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("Invalid empty entity type.")]
    EmptyType,
    #[error("Entity type {0} cannot appear more than once in the filter.")]
    Repeated(String),
    #[error("Unsupported entity type {0}")]
    UnsupportedType(String),
    #[error("Request specified MATCH_TYPE_EXACT, but set match string to null.")]
    ExactWithoutName,
    #[error("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")]
    DefaultWithName,
    #[error("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")]
    SpecifiedWithName,
    #[error("Unknown match type {0}")]
    UnknownMatchType(i8),
    #[error("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.")]
    IpCombined,
}

impl FilterError {
    pub fn error_code(&self) -> rafka_proto::error::ErrorCode {
        use rafka_proto::error::ErrorCode;
        match self {
            FilterError::UnsupportedType(_) => ErrorCode::UNSUPPORTED_VERSION,
            _ => ErrorCode::INVALID_REQUEST,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EntityName::Default;

    fn named(name: &str) -> EntityName {
        EntityName::Named(name.to_string())
    }

    fn value(v: f64) -> QuotaValue {
        QuotaValue::new(v).expect("positive")
    }

    const P: QuotaKey = QuotaKey::ProducerByteRate;

    fn id(user: &str, client_id: &str) -> QuotaId {
        QuotaId {
            user: user.into(),
            client_id: client_id.into(),
        }
    }

    /// The eight levels, each with its own value (1 = most specific).
    fn eight_levels() -> Vec<QuotaEntity> {
        vec![
            QuotaEntity::UserClientId(named("u"), named("c")),
            QuotaEntity::UserClientId(named("u"), Default),
            QuotaEntity::User(named("u")),
            QuotaEntity::UserClientId(Default, named("c")),
            QuotaEntity::UserClientId(Default, Default),
            QuotaEntity::User(Default),
            QuotaEntity::ClientId(named("c")),
            QuotaEntity::ClientId(Default),
        ]
    }

    #[test]
    fn precedence_walks_kafkas_eight_levels() {
        let levels = eight_levels();
        let mut table = QuotaTable::new();
        for (i, entity) in levels.iter().enumerate() {
            table.set(entity.clone(), P, value((i + 1) as f64 * 100.0));
        }
        // Removing the most specific level each time exposes the next one,
        // with Kafka's sensor for it.
        let sensors = [
            id("u", "c"),
            id("u", "c"),
            id("u", ""),
            id("u", "c"),
            id("u", "c"),
            id("u", ""),
            id("", "c"),
            id("", "c"),
        ];
        for (i, entity) in levels.iter().enumerate() {
            let want = (sensors[i].clone(), Some((i + 1) as f64 * 100.0));
            assert_eq!(table.resolve(P, "u", "c"), want, "level {}", i + 1);
            table.remove(entity, P);
        }
        assert_eq!(table.resolve(P, "u", "c"), (id("", "c"), None));
        assert!(table.is_empty());
    }

    #[test]
    fn quotas_are_resolved_per_key_and_per_pair() {
        let mut table = QuotaTable::new();
        table.set(QuotaEntity::User(named("alice")), P, value(1000.0));
        table.set(
            QuotaEntity::ClientId(Default),
            QuotaKey::ConsumerByteRate,
            value(500.0),
        );
        table.set(QuotaEntity::ClientId(named("etl")), P, value(300.0));
        // alice's producer quota covers all her clients with one sensor.
        assert_eq!(
            table.resolve(P, "alice", "app-1"),
            (id("alice", ""), Some(1000.0))
        );
        assert_eq!(
            table.resolve(P, "alice", "etl"),
            (id("alice", ""), Some(1000.0))
        );
        // bob has no user quota: the client-id levels apply.
        assert_eq!(table.resolve(P, "bob", "etl"), (id("", "etl"), Some(300.0)));
        assert_eq!(table.resolve(P, "bob", "other"), (id("", "other"), None));
        // The consumer key only has the default client-id level.
        assert_eq!(
            table.resolve(QuotaKey::ConsumerByteRate, "alice", "x"),
            (id("", "x"), Some(500.0))
        );
        // An empty client id cannot use the (user, client-id) levels.
        table.set(
            QuotaEntity::UserClientId(Default, Default),
            QuotaKey::RequestPercentage,
            value(50.0),
        );
        assert_eq!(
            table.resolve(QuotaKey::RequestPercentage, "bob", ""),
            (id("bob", ""), None)
        );
        assert_eq!(
            table.resolve(QuotaKey::RequestPercentage, "bob", "c"),
            (id("bob", "c"), Some(50.0))
        );
    }

    fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> FilterComponent {
        FilterComponent {
            entity_type: entity_type.into(),
            match_type,
            match_name: name.map(str::to_string),
        }
    }

    fn described(table: &QuotaTable, components: &[FilterComponent], strict: bool) -> Vec<String> {
        let filter = QuotaFilter::parse(components, strict).expect("valid filter");
        table
            .describe(&filter)
            .into_iter()
            .map(|(entity, _)| entity.to_string())
            .collect()
    }

    #[test]
    fn describe_filters_like_kafka() {
        let mut table = QuotaTable::new();
        for entity in eight_levels() {
            table.set(entity, P, value(10.0));
        }
        table.set(
            QuotaEntity::Ip(named("10.0.0.1")),
            QuotaKey::ConnectionCreationRate,
            value(5.0),
        );
        let user_u = component("user", MATCH_TYPE_EXACT, Some("u"));
        assert_eq!(
            described(&table, std::slice::from_ref(&user_u), false),
            [
                "user=u",
                "user=u, client-id=<default>",
                "user=u, client-id=c"
            ]
        );
        assert_eq!(
            described(&table, std::slice::from_ref(&user_u), true),
            ["user=u"]
        );
        let default_client = component("client-id", MATCH_TYPE_DEFAULT, None);
        assert_eq!(
            described(&table, std::slice::from_ref(&default_client), false),
            [
                "client-id=<default>",
                "user=<default>, client-id=<default>",
                "user=u, client-id=<default>",
            ]
        );
        let any_user = component("user", MATCH_TYPE_SPECIFIED, None);
        assert_eq!(
            described(&table, &[any_user.clone(), default_client], true),
            [
                "user=<default>, client-id=<default>",
                "user=u, client-id=<default>"
            ]
        );
        assert_eq!(
            described(&table, std::slice::from_ref(&any_user), true),
            ["user=<default>", "user=u"]
        );
        // No components: everything, or (strict) nothing.
        assert_eq!(described(&table, &[], false).len(), 9);
        assert_eq!(described(&table, &[], true).len(), 0);
        let ip = component("ip", MATCH_TYPE_SPECIFIED, None);
        assert_eq!(described(&table, &[ip], false), ["ip=10.0.0.1"]);
        let filter = QuotaFilter::parse(&[user_u], true).expect("valid");
        assert_eq!(
            table.describe(&filter),
            vec![(&QuotaEntity::User(named("u")), vec![(P, 10.0)])]
        );
    }

    #[test]
    fn bad_filters_fail_with_kafkas_codes() {
        let cases = [
            (
                vec![component("", 0, Some("x"))],
                FilterError::EmptyType,
                42,
            ),
            (
                vec![component("user", 0, Some("x")), component("user", 2, None)],
                FilterError::Repeated("user".into()),
                42,
            ),
            (
                vec![component("group", 2, None)],
                FilterError::UnsupportedType("group".into()),
                35,
            ),
            (
                vec![component("user", 0, None)],
                FilterError::ExactWithoutName,
                42,
            ),
            (
                vec![component("user", 1, Some("x"))],
                FilterError::DefaultWithName,
                42,
            ),
            (
                vec![component("user", 2, Some("x"))],
                FilterError::SpecifiedWithName,
                42,
            ),
            (
                vec![component("user", 3, None)],
                FilterError::UnknownMatchType(3),
                42,
            ),
            (
                vec![component("ip", 2, None), component("client-id", 2, None)],
                FilterError::IpCombined,
                42,
            ),
        ];
        for (components, error, code) in cases {
            assert_eq!(QuotaFilter::parse(&components, false), Err(error.clone()));
            assert_eq!(error.error_code().code(), code, "{error}");
        }
    }

    #[test]
    fn ip_connection_rate_exact_then_default_compared_as_addresses() {
        use std::net::IpAddr;
        let key = QuotaKey::ConnectionCreationRate;
        let value = |v: f64| QuotaValue::new(v).expect("positive");
        let mut table = QuotaTable::new();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(table.ip_connection_rate(local), None);
        table.set(QuotaEntity::Ip(EntityName::Default), key, value(5.0));
        table.set(
            QuotaEntity::Ip(EntityName::Named("127.0.0.1".into())),
            key,
            value(2.0),
        );
        table.set(
            QuotaEntity::Ip(EntityName::Named("0:0::1".into())),
            key,
            value(3.0),
        );
        assert_eq!(table.ip_connection_rate(local), Some(2.0));
        assert_eq!(table.ip_connection_rate("::1".parse().unwrap()), Some(3.0));
        assert_eq!(
            table.ip_connection_rate("127.0.0.2".parse().unwrap()),
            Some(5.0)
        );
        table.remove(&QuotaEntity::Ip(EntityName::Default), key);
        assert_eq!(table.ip_connection_rate("127.0.0.2".parse().unwrap()), None);
    }
}
