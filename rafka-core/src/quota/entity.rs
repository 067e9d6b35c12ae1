//! Quota entities, keys and values with Kafka's names, and the checks
//! Kafka's `ClientQuotaControlManager` applies to an entity sent on the
//! wire.

use std::fmt;

/// The name of one component of an entity: a user, client id or IP, or
/// the default at that level (Kafka: a null name on the wire, `<default>`
/// in the old ZooKeeper paths).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// The wire form: `None` for the default.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(name) => Some(name),
        }
    }

    pub fn from_wire(name: Option<&str>) -> EntityName {
        match name {
            None => EntityName::Default,
            Some(name) => EntityName::Named(name.to_string()),
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityName::Default => f.write_str("<default>"),
            EntityName::Named(name) => f.write_str(name),
        }
    }
}

/// Kafka's entity types (`ClientQuotaEntity.USER`, `CLIENT_ID`, `IP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    User,
    ClientId,
    Ip,
}

impl EntityType {
    pub const ALL: [EntityType; 3] = [EntityType::User, EntityType::ClientId, EntityType::Ip];

    pub fn name(self) -> &'static str {
        match self {
            EntityType::User => "user",
            EntityType::ClientId => "client-id",
            EntityType::Ip => "ip",
        }
    }

    pub fn from_name(name: &str) -> Option<EntityType> {
        EntityType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// What a quota is set on: the combinations Kafka accepts (an IP never
/// combines with a user or client id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaEntity {
    User(EntityName),
    ClientId(EntityName),
    UserClientId(EntityName, EntityName),
    Ip(EntityName),
}

impl QuotaEntity {
    /// The entity's components in Kafka's type order (user, client-id, ip).
    pub fn components(&self) -> Vec<(EntityType, &EntityName)> {
        match self {
            QuotaEntity::User(user) => vec![(EntityType::User, user)],
            QuotaEntity::ClientId(client) => vec![(EntityType::ClientId, client)],
            QuotaEntity::UserClientId(user, client) => {
                vec![(EntityType::User, user), (EntityType::ClientId, client)]
            }
            QuotaEntity::Ip(ip) => vec![(EntityType::Ip, ip)],
        }
    }

    /// The name of the component of type `entity_type`, if the entity has one.
    pub fn name_of(&self, entity_type: EntityType) -> Option<&EntityName> {
        self.components()
            .into_iter()
            .find(|(t, _)| *t == entity_type)
            .map(|(_, name)| name)
    }

    /// The entity as the wire lists it: `(type name, name or None)`.
    pub fn to_wire(&self) -> Vec<(String, Option<String>)> {
        self.components()
            .into_iter()
            .map(|(t, name)| (t.name().to_string(), name.as_wire().map(str::to_string)))
            .collect()
    }

    /// Kafka's `validateEntity` and `configKeysForEntityType` over an
    /// entity as AlterClientQuotas sends it. A type named twice keeps its
    /// last name, as Kafka's `AlterClientQuotasRequest.entries()` builds a
    /// map before the controller sees it.
    ///
    /// One deliberate difference: an IP must be an address literal. Kafka
    /// also accepts a host name it can resolve at that moment; the
    /// controller does no IO, and a connection's quota is looked up by its
    /// peer address anyway, so a name would only ever match by accident.
    pub fn from_wire(components: &[(String, Option<String>)]) -> Result<QuotaEntity, EntityError> {
        let collapsed = collapse(components);
        if collapsed.is_empty() {
            return Err(EntityError::Empty);
        }
        let (mut user, mut client, mut ip) = (None, None, None);
        for (entity_type, name) in collapsed {
            let parsed = EntityType::from_name(entity_type)
                .ok_or_else(|| EntityError::UnknownType(entity_type.to_string()))?;
            if name == Some("") {
                return Err(EntityError::EmptyName(parsed));
            }
            let name = EntityName::from_wire(name);
            match parsed {
                EntityType::User => user = Some(name),
                EntityType::ClientId => client = Some(name),
                EntityType::Ip => ip = Some(name),
            }
        }
        match (user, client, ip) {
            (None, None, Some(ip)) => {
                if let EntityName::Named(name) = &ip {
                    if name.parse::<std::net::IpAddr>().is_err() {
                        return Err(EntityError::BadIp(name.clone()));
                    }
                }
                Ok(QuotaEntity::Ip(ip))
            }
            (_, _, Some(_)) => Err(EntityError::IpCombined),
            (Some(user), None, None) => Ok(QuotaEntity::User(user)),
            (None, Some(client), None) => Ok(QuotaEntity::ClientId(client)),
            (Some(user), Some(client), None) => Ok(QuotaEntity::UserClientId(user, client)),
            (None, None, None) => Err(EntityError::Empty),
        }
    }

    /// Whether a record may carry this entity: the checks of
    /// [`QuotaEntity::from_wire`] on a decoded one.
    pub fn check(&self) -> Result<(), EntityError> {
        for (entity_type, name) in self.components() {
            match name {
                EntityName::Named(n) if n.is_empty() => {
                    return Err(EntityError::EmptyName(entity_type))
                }
                EntityName::Named(n)
                    if entity_type == EntityType::Ip && n.parse::<std::net::IpAddr>().is_err() =>
                {
                    return Err(EntityError::BadIp(n.clone()))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn is_ip(&self) -> bool {
        matches!(self, QuotaEntity::Ip(_))
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (entity_type, name) in self.components() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={}", entity_type.name(), name)?;
        }
        Ok(())
    }
}

/// The wire components with a repeated type collapsed onto its first
/// position and its last name.
fn collapse(components: &[(String, Option<String>)]) -> Vec<(&str, Option<&str>)> {
    let mut out: Vec<(&str, Option<&str>)> = Vec::with_capacity(components.len());
    for (entity_type, name) in components {
        match out.iter_mut().find(|(t, _)| *t == entity_type.as_str()) {
            Some(slot) => slot.1 = name.as_deref(),
            None => out.push((entity_type, name.as_deref())),
        }
    }
    out
}

/// Why an entity is refused; all INVALID_REQUEST, with Kafka's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    #[error("Invalid empty client quota entity")]
    Empty,
    #[error("Unhandled client quota entity type: {0}")]
    UnknownType(String),
    #[error("Empty {} not supported", .0.name())]
    EmptyName(EntityType),
    #[error(
        "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
    )]
    IpCombined,
    #[error("{0} is not a valid IP or resolvable host.")]
    BadIp(String),
}

/// How Kafka types a quota key's value (`QuotaConfig`'s ConfigDef).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaValueType {
    Long,
    Int,
    Double,
}

/// The quota keys (`QuotaConfig`): four for users and client ids, one for
/// IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaKey {
    ProducerByteRate,
    ConsumerByteRate,
    RequestPercentage,
    ControllerMutationRate,
    ConnectionCreationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 5] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
        QuotaKey::ConnectionCreationRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
            QuotaKey::ConnectionCreationRate => "connection_creation_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn value_type(self) -> QuotaValueType {
        match self {
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate => QuotaValueType::Long,
            QuotaKey::RequestPercentage | QuotaKey::ControllerMutationRate => {
                QuotaValueType::Double
            }
            QuotaKey::ConnectionCreationRate => QuotaValueType::Int,
        }
    }

    /// Whether the key may be set on `entity` (IP keys on IPs only).
    pub fn applies_to(self, entity: &QuotaEntity) -> bool {
        entity.is_ip() == (self == QuotaKey::ConnectionCreationRate)
    }
}

impl fmt::Display for QuotaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A quota's bound: finite and above zero, which every check of Kafka's
/// controller ensures for the integral keys. Kafka lets a double key be
/// NaN or infinite; rafka refuses both, since no rate compares sensibly
/// against them.
///
/// Equality is bit equality, which for these values is plain equality and
/// lets images holding quotas be `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct QuotaValue(f64);

impl QuotaValue {
    pub fn new(value: f64) -> Option<QuotaValue> {
        (value.is_finite() && value > 0.0).then_some(QuotaValue(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Kafka's `validateQuotaKeyValue` for a value to set.
pub fn check_value(key: QuotaKey, value: f64) -> Result<QuotaValue, ValueError> {
    // Kafka's `value <= 0.0` lets NaN through; `!(value > 0.0)` does not.
    if value.is_nan() || value <= 0.0 {
        return Err(ValueError::NotPositive(key));
    }
    let max = match key.value_type() {
        QuotaValueType::Double => f64::MAX,
        QuotaValueType::Long => i64::MAX as f64,
        QuotaValueType::Int => f64::from(i32::MAX),
    };
    if value > max {
        return Err(ValueError::TooLarge(key));
    }
    if key.value_type() != QuotaValueType::Double && (value % 1.0).abs() > 1e-6 {
        return Err(ValueError::Fractional(key));
    }
    QuotaValue::new(value).ok_or(ValueError::TooLarge(key))
}

/// Why a value is refused; all INVALID_REQUEST, with Kafka's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("Quota {0} must be greater than 0")]
    NotPositive(QuotaKey),
    #[error("Proposed value for {0} is too large for {article}.", article = type_article(.0))]
    TooLarge(QuotaKey),
    #[error("{0} cannot be a fractional value.")]
    Fractional(QuotaKey),
}

fn type_article(key: &QuotaKey) -> &'static str {
    match key.value_type() {
        QuotaValueType::Long => "a LONG",
        QuotaValueType::Int => "an INT",
        QuotaValueType::Double => "a DOUBLE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(parts: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect()
    }

    fn named(name: &str) -> EntityName {
        EntityName::Named(name.to_string())
    }

    #[test]
    fn wire_entities_parse_as_kafka_checks_them() {
        assert_eq!(
            QuotaEntity::from_wire(&wire(&[("user", Some("al")), ("client-id", None)])),
            Ok(QuotaEntity::UserClientId(named("al"), EntityName::Default))
        );
        assert_eq!(
            QuotaEntity::from_wire(&wire(&[("client-id", Some("c")), ("user", None)])),
            Ok(QuotaEntity::UserClientId(EntityName::Default, named("c")))
        );
        // The last name of a repeated type wins, as Kafka's request map.
        assert_eq!(
            QuotaEntity::from_wire(&wire(&[("user", Some("a")), ("user", Some("b"))])),
            Ok(QuotaEntity::User(named("b")))
        );
        assert_eq!(
            QuotaEntity::from_wire(&wire(&[("ip", Some("10.0.0.1"))])),
            Ok(QuotaEntity::Ip(named("10.0.0.1")))
        );
        assert_eq!(
            QuotaEntity::from_wire(&wire(&[("ip", None)])),
            Ok(QuotaEntity::Ip(EntityName::Default))
        );
        let errors = [
            (wire(&[]), EntityError::Empty),
            (
                wire(&[("group", Some("g"))]),
                EntityError::UnknownType("group".into()),
            ),
            (
                wire(&[("client-id", Some(""))]),
                EntityError::EmptyName(EntityType::ClientId),
            ),
            (
                wire(&[("ip", Some("::1")), ("user", Some("u"))]),
                EntityError::IpCombined,
            ),
            (
                wire(&[("ip", Some("example.com"))]),
                EntityError::BadIp("example.com".into()),
            ),
        ];
        for (entity, error) in errors {
            assert_eq!(QuotaEntity::from_wire(&entity), Err(error));
        }
        assert_eq!(
            EntityError::EmptyName(EntityType::User).to_string(),
            "Empty user not supported"
        );
    }

    #[test]
    fn values_are_checked_per_key_type() {
        use QuotaKey::*;
        assert_eq!(
            check_value(ProducerByteRate, 1024.0).map(QuotaValue::get),
            Ok(1024.0)
        );
        assert_eq!(
            check_value(RequestPercentage, 12.5).map(QuotaValue::get),
            Ok(12.5)
        );
        assert_eq!(
            check_value(ProducerByteRate, 10.5),
            Err(ValueError::Fractional(ProducerByteRate))
        );
        // Kafka's tolerance for integral keys: 1e-6.
        assert!(check_value(ConsumerByteRate, 10.000_000_1).is_ok());
        assert_eq!(
            check_value(ConsumerByteRate, 0.0),
            Err(ValueError::NotPositive(ConsumerByteRate))
        );
        assert_eq!(
            check_value(ControllerMutationRate, -1.0),
            Err(ValueError::NotPositive(ControllerMutationRate))
        );
        assert_eq!(
            check_value(RequestPercentage, f64::NAN),
            Err(ValueError::NotPositive(RequestPercentage))
        );
        assert_eq!(
            check_value(RequestPercentage, f64::INFINITY),
            Err(ValueError::TooLarge(RequestPercentage))
        );
        assert_eq!(
            check_value(ProducerByteRate, 1e19),
            Err(ValueError::TooLarge(ProducerByteRate))
        );
        assert_eq!(
            check_value(ConnectionCreationRate, 3e9),
            Err(ValueError::TooLarge(ConnectionCreationRate))
        );
        assert_eq!(
            ValueError::TooLarge(ProducerByteRate).to_string(),
            "Proposed value for producer_byte_rate is too large for a LONG."
        );
        assert_eq!(
            ValueError::NotPositive(ProducerByteRate).to_string(),
            "Quota producer_byte_rate must be greater than 0"
        );
    }

    #[test]
    fn keys_apply_to_their_entity_kinds() {
        let ip = QuotaEntity::Ip(EntityName::Default);
        let user = QuotaEntity::User(EntityName::Default);
        assert!(QuotaKey::ConnectionCreationRate.applies_to(&ip));
        assert!(!QuotaKey::ConnectionCreationRate.applies_to(&user));
        assert!(QuotaKey::ProducerByteRate.applies_to(&user));
        assert!(!QuotaKey::ProducerByteRate.applies_to(&ip));
        for key in QuotaKey::ALL {
            assert_eq!(QuotaKey::from_name(key.name()), Some(key));
        }
        assert_eq!(QuotaKey::from_name("producer-byte-rate"), None);
    }
}
