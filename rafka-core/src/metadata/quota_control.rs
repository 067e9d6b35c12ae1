//! The controller's client quota decisions (Kafka's
//! `ClientQuotaControlManager`): AlterClientQuotas' entries -> per-entity
//! outcomes and the records of the accepted ones; and DescribeClientQuotas'
//! view of the image (Kafka's `ClientQuotasImage.describe`). Pure, like
//! [`super::Controller`].
//!
//! Kafka's rules: each entity is checked alone (its type combination, its
//! names, then each op); a set writes a record only when the value
//! changes, a removal only when the key is set (an unknown key is then
//! not an error); the accepted entities commit together
//! (`ControllerResult.atomicOf`); `validate_only` answers the same
//! outcomes and writes nothing.
//!
//! Differences, each on purpose:
//! - An entity named twice in one request fails as a whole with
//!   INVALID_REQUEST. Kafka reports the error but still writes the first
//!   occurrence's records, so the client is told "failed" about a change
//!   that happened.
//! - A key repeated within an entity reports "Duplicate quota key" rather
//!   than the "Ignoring duplicate entity" Kafka overwrites it with.
//! - Ops are checked in request order (Kafka's follow a hash map's), so
//!   the first bad op named is always the same one.
//! - NaN and infinite values are refused ([`crate::quota::QuotaValue`]).

use std::collections::BTreeMap;

use rafka_proto::error::ErrorCode;

use super::controller::RECORDS_PER_OPERATION_MAX;
use super::image::MetadataImage;
use super::record::{ClientQuotaRecord, MetadataRecord};
use crate::quota::{
    check_value, EntityError, FilterComponent, FilterError, QuotaEntity, QuotaFilter, QuotaKey,
    ValueError,
};

/// An entity as the wire lists it: `(entity type, name or None for the
/// default)`.
pub type WireEntity = Vec<(String, Option<String>)>;

/// One AlterClientQuotas op, as on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaOp {
    pub key: String,
    /// Ignored when `remove`.
    pub value: f64,
    pub remove: bool,
}

/// One AlterClientQuotas entry, as on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaAlterationEntry {
    pub entity: WireEntity,
    pub ops: Vec<QuotaOp>,
}

/// Why one entity's alteration failed; the messages are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaAlterError {
    #[error("Duplicate quota key {0} not updating quota for this entity")]
    DuplicateKey(String),
    #[error("Ignoring duplicate entity")]
    DuplicateEntity,
    #[error("{0}")]
    Entity(EntityError),
    #[error("Invalid configuration key {0}")]
    UnknownKey(String),
    #[error("{0}")]
    Value(ValueError),
    #[error("operation would write {0} records, more than {RECORDS_PER_OPERATION_MAX}")]
    TooManyRecords(usize),
}

impl QuotaAlterError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            QuotaAlterError::TooManyRecords(_) => ErrorCode::POLICY_VIOLATION,
            _ => ErrorCode::INVALID_REQUEST,
        }
    }
}

/// What one AlterClientQuotas does: an outcome per distinct entity (in
/// first-seen order, as the entity was sent with a repeated type
/// collapsed) and the records of the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaAlteration {
    pub results: Vec<(WireEntity, Result<(), QuotaAlterError>)>,
    pub records: Vec<MetadataRecord>,
}

struct Outcome {
    entity: WireEntity,
    result: Result<(), QuotaAlterError>,
    records: Vec<MetadataRecord>,
}

pub fn alter_client_quotas(
    image: &MetadataImage,
    entries: &[QuotaAlterationEntry],
    validate_only: bool,
) -> QuotaAlteration {
    let mut outcomes: Vec<Outcome> = Vec::new();
    // Kafka compares entities as type -> name maps.
    let mut seen: BTreeMap<BTreeMap<String, Option<String>>, usize> = BTreeMap::new();
    for entry in entries {
        let entity = collapse(&entry.entity);
        let identity: BTreeMap<String, Option<String>> = entity.iter().cloned().collect();
        if let Some(&index) = seen.get(&identity) {
            let outcome = &mut outcomes[index];
            if outcome.result.is_ok() {
                outcome.result = Err(QuotaAlterError::DuplicateEntity);
            }
            outcome.records.clear();
            continue;
        }
        seen.insert(identity, outcomes.len());
        let (result, records) = match alter_entity(image, entry) {
            Ok(records) => (Ok(()), records),
            Err(error) => (Err(error), Vec::new()),
        };
        outcomes.push(Outcome {
            entity,
            result,
            records,
        });
    }
    let total: usize = outcomes.iter().map(|o| o.records.len()).sum();
    if total > RECORDS_PER_OPERATION_MAX {
        let results = outcomes
            .into_iter()
            .map(|o| {
                let result = o.result.and(Err(QuotaAlterError::TooManyRecords(total)));
                (o.entity, result)
            })
            .collect();
        return QuotaAlteration {
            results,
            records: Vec::new(),
        };
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        if !validate_only {
            records.extend(outcome.records);
        }
        results.push((outcome.entity, outcome.result));
    }
    QuotaAlteration { results, records }
}

/// A repeated type keeps its first position and its last name, as the
/// map Kafka's request builds.
fn collapse(entity: &WireEntity) -> WireEntity {
    let mut out: WireEntity = Vec::with_capacity(entity.len());
    for (entity_type, name) in entity {
        match out.iter_mut().find(|(t, _)| t == entity_type) {
            Some(slot) => slot.1.clone_from(name),
            None => out.push((entity_type.clone(), name.clone())),
        }
    }
    out
}

/// Kafka's `alterClientQuotaEntity`: the records of one entity's ops.
fn alter_entity(
    image: &MetadataImage,
    entry: &QuotaAlterationEntry,
) -> Result<Vec<MetadataRecord>, QuotaAlterError> {
    for (i, op) in entry.ops.iter().enumerate() {
        if entry.ops[..i].iter().any(|earlier| earlier.key == op.key) {
            return Err(QuotaAlterError::DuplicateKey(op.key.clone()));
        }
    }
    let entity = QuotaEntity::from_wire(&entry.entity).map_err(QuotaAlterError::Entity)?;
    let quotas = image.client_quotas();
    let mut records = Vec::new();
    for op in &entry.ops {
        let key = QuotaKey::from_name(&op.key).filter(|key| key.applies_to(&entity));
        if op.remove {
            // Only a key that is set can be removed; anything else is a
            // no-op, as Kafka's.
            if let Some(key) = key.filter(|key| quotas.get(&entity, *key).is_some()) {
                records.push(record(&entity, key, None));
            }
            continue;
        }
        let key = key.ok_or_else(|| QuotaAlterError::UnknownKey(op.key.clone()))?;
        let value = check_value(key, op.value).map_err(QuotaAlterError::Value)?;
        if quotas.get(&entity, key) != Some(value.get()) {
            records.push(record(&entity, key, Some(value)));
        }
    }
    Ok(records)
}

fn record(
    entity: &QuotaEntity,
    key: QuotaKey,
    value: Option<crate::quota::QuotaValue>,
) -> MetadataRecord {
    MetadataRecord::ClientQuota(ClientQuotaRecord {
        entity: entity.clone(),
        key,
        value,
    })
}

/// One DescribeClientQuotas entry: the entity as the wire lists it and
/// its quotas by key name.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaDescription {
    pub entity: WireEntity,
    pub values: Vec<(String, f64)>,
}

/// DescribeClientQuotas over the image: the entities matching the
/// filter, in entity order, or why the filter is refused (its error code
/// is the response's).
pub fn describe_client_quotas(
    image: &MetadataImage,
    components: &[FilterComponent],
    strict: bool,
) -> Result<Vec<QuotaDescription>, FilterError> {
    let filter = QuotaFilter::parse(components, strict)?;
    let described = image.client_quotas().describe(&filter);
    Ok(described
        .into_iter()
        .map(|(entity, values)| QuotaDescription {
            entity: entity.to_wire(),
            values: values
                .into_iter()
                .map(|(key, value)| (key.name().to_string(), value))
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{EntityName, EntityType, QuotaValue, MATCH_TYPE_DEFAULT, MATCH_TYPE_EXACT};

    fn entity(parts: &[(&str, Option<&str>)]) -> WireEntity {
        parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect()
    }

    fn set(key: &str, value: f64) -> QuotaOp {
        QuotaOp {
            key: key.into(),
            value,
            remove: false,
        }
    }

    fn remove(key: &str) -> QuotaOp {
        QuotaOp {
            key: key.into(),
            value: 0.0,
            remove: true,
        }
    }

    fn entry(parts: &[(&str, Option<&str>)], ops: Vec<QuotaOp>) -> QuotaAlterationEntry {
        QuotaAlterationEntry {
            entity: entity(parts),
            ops,
        }
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for record in records {
            image.apply(record).expect("record applies");
        }
    }

    fn codes(alteration: &QuotaAlteration) -> Vec<i16> {
        alteration
            .results
            .iter()
            .map(|(_, result)| match result {
                Ok(()) => 0,
                Err(error) => error.error_code().code(),
            })
            .collect()
    }

    fn named(name: &str) -> EntityName {
        EntityName::Named(name.into())
    }

    #[test]
    fn set_change_and_remove() {
        let mut image = MetadataImage::new();
        let alice = [("user", Some("alice"))];
        let alteration = alter_client_quotas(
            &image,
            &[
                entry(
                    &alice,
                    vec![
                        set("producer_byte_rate", 1024.0),
                        set("request_percentage", 12.5),
                    ],
                ),
                entry(
                    &[("client-id", None)],
                    vec![set("consumer_byte_rate", 2048.0)],
                ),
            ],
            false,
        );
        assert_eq!(codes(&alteration), [0, 0]);
        assert_eq!(alteration.records.len(), 3);
        apply(&mut image, &alteration.records);
        let quotas = image.client_quotas();
        let user = QuotaEntity::User(named("alice"));
        assert_eq!(quotas.get(&user, QuotaKey::ProducerByteRate), Some(1024.0));
        assert_eq!(quotas.get(&user, QuotaKey::RequestPercentage), Some(12.5));
        assert_eq!(
            quotas.get(
                &QuotaEntity::ClientId(EntityName::Default),
                QuotaKey::ConsumerByteRate
            ),
            Some(2048.0)
        );
        // The same value again, and removing keys that are not set (one of
        // them unknown): accepted, nothing written.
        let again = alter_client_quotas(
            &image,
            &[entry(
                &alice,
                vec![
                    set("producer_byte_rate", 1024.0),
                    remove("consumer_byte_rate"),
                    remove("no_such_key"),
                ],
            )],
            false,
        );
        assert_eq!((codes(&again), again.records.len()), (vec![0], 0));
        // A change and a removal: two records.
        let change = alter_client_quotas(
            &image,
            &[entry(
                &alice,
                vec![
                    set("producer_byte_rate", 4096.0),
                    remove("request_percentage"),
                ],
            )],
            false,
        );
        assert_eq!(
            change.records,
            vec![
                record(&user, QuotaKey::ProducerByteRate, QuotaValue::new(4096.0)),
                record(&user, QuotaKey::RequestPercentage, None),
            ]
        );
        apply(&mut image, &change.records);
        assert_eq!(
            image.client_quotas().get(&user, QuotaKey::ProducerByteRate),
            Some(4096.0)
        );
        assert_eq!(
            image
                .client_quotas()
                .get(&user, QuotaKey::RequestPercentage),
            None
        );
    }

    #[test]
    fn validate_only_answers_and_writes_nothing() {
        let image = MetadataImage::new();
        let entries = [
            entry(
                &[("user", Some("a"))],
                vec![set("producer_byte_rate", 10.0)],
            ),
            entry(
                &[("user", Some("b"))],
                vec![set("producer_byte_rate", -1.0)],
            ),
        ];
        let checked = alter_client_quotas(&image, &entries, true);
        assert_eq!(codes(&checked), [0, 42]);
        assert!(checked.records.is_empty());
        let done = alter_client_quotas(&image, &entries, false);
        assert_eq!(codes(&done), [0, 42]);
        assert_eq!(done.records.len(), 1);
    }

    #[test]
    fn each_bad_entity_fails_alone_with_kafkas_message() {
        let image = MetadataImage::new();
        let ok = entry(
            &[("client-id", Some("ok"))],
            vec![set("producer_byte_rate", 5.0)],
        );
        let cases: Vec<(QuotaAlterationEntry, &str)> = vec![
            (entry(&[], vec![]), "Invalid empty client quota entity"),
            (
                entry(&[("topic", Some("t"))], vec![]),
                "Unhandled client quota entity type: topic",
            ),
            (
                entry(&[("user", Some(""))], vec![]),
                "Empty user not supported",
            ),
            (
                entry(&[("ip", None), ("user", None)], vec![]),
                "Invalid quota entity combination, IP entity should not be combined with User or ClientId",
            ),
            (
                entry(&[("ip", Some("host"))], vec![]),
                "host is not a valid IP or resolvable host.",
            ),
            (
                entry(&[("user", Some("k"))], vec![set("connection_creation_rate", 5.0)]),
                "Invalid configuration key connection_creation_rate",
            ),
            (
                entry(&[("ip", None)], vec![set("producer_byte_rate", 5.0)]),
                "Invalid configuration key producer_byte_rate",
            ),
            (
                entry(&[("user", Some("z"))], vec![set("producer_byte_rate", 0.0)]),
                "Quota producer_byte_rate must be greater than 0",
            ),
            (
                entry(&[("user", Some("f"))], vec![set("consumer_byte_rate", 1.5)]),
                "consumer_byte_rate cannot be a fractional value.",
            ),
            (
                entry(&[("ip", Some("::1"))], vec![set("connection_creation_rate", 3e9)]),
                "Proposed value for connection_creation_rate is too large for an INT.",
            ),
            (
                entry(
                    &[("user", Some("d"))],
                    vec![set("producer_byte_rate", 1.0), remove("producer_byte_rate")],
                ),
                "Duplicate quota key producer_byte_rate not updating quota for this entity",
            ),
        ];
        let mut entries = vec![ok.clone()];
        entries.extend(cases.iter().map(|(e, _)| e.clone()));
        let alteration = alter_client_quotas(&image, &entries, false);
        assert_eq!(alteration.records.len(), 1, "only the valid entity writes");
        assert_eq!(alteration.results[0].1, Ok(()));
        for ((_, result), (_, message)) in alteration.results[1..].iter().zip(&cases) {
            let error = result.as_ref().expect_err("refused");
            assert_eq!(error.error_code(), ErrorCode::INVALID_REQUEST);
            assert_eq!(error.to_string(), *message);
        }
    }

    #[test]
    fn an_entity_named_twice_fails_whole() {
        let image = MetadataImage::new();
        let alteration = alter_client_quotas(
            &image,
            &[
                entry(
                    &[("user", Some("u")), ("client-id", Some("c"))],
                    vec![set("producer_byte_rate", 5.0)],
                ),
                entry(&[("user", Some("v"))], vec![set("producer_byte_rate", 5.0)]),
                // The same entity, its types in another order.
                entry(
                    &[("client-id", Some("c")), ("user", Some("u"))],
                    vec![set("consumer_byte_rate", 5.0)],
                ),
            ],
            false,
        );
        assert_eq!(
            alteration.results,
            vec![
                (
                    entity(&[("user", Some("u")), ("client-id", Some("c"))]),
                    Err(QuotaAlterError::DuplicateEntity)
                ),
                (entity(&[("user", Some("v"))]), Ok(())),
            ]
        );
        assert_eq!(
            alteration.records,
            vec![record(
                &QuotaEntity::User(named("v")),
                QuotaKey::ProducerByteRate,
                QuotaValue::new(5.0)
            )]
        );
    }

    #[test]
    fn describe_lists_matching_entities_with_their_values() {
        let mut image = MetadataImage::new();
        let alteration = alter_client_quotas(
            &image,
            &[
                entry(
                    &[("user", Some("u")), ("client-id", None)],
                    vec![
                        set("producer_byte_rate", 100.0),
                        set("request_percentage", 50.0),
                    ],
                ),
                entry(
                    &[("user", Some("u"))],
                    vec![set("consumer_byte_rate", 200.0)],
                ),
                entry(
                    &[("ip", Some("10.1.2.3"))],
                    vec![set("connection_creation_rate", 7.0)],
                ),
            ],
            false,
        );
        apply(&mut image, &alteration.records);
        let exact_u = FilterComponent {
            entity_type: EntityType::User.name().into(),
            match_type: MATCH_TYPE_EXACT,
            match_name: Some("u".into()),
        };
        let default_client = FilterComponent {
            entity_type: "client-id".into(),
            match_type: MATCH_TYPE_DEFAULT,
            match_name: None,
        };
        assert_eq!(
            describe_client_quotas(&image, &[exact_u.clone(), default_client], false),
            Ok(vec![QuotaDescription {
                entity: entity(&[("user", Some("u")), ("client-id", None)]),
                values: vec![
                    ("producer_byte_rate".into(), 100.0),
                    ("request_percentage".into(), 50.0)
                ],
            }])
        );
        let all = describe_client_quotas(&image, &[], false).expect("valid");
        assert_eq!(all.len(), 3);
        assert_eq!(
            describe_client_quotas(&image, &[exact_u.clone(), exact_u], false)
                .map_err(|e| e.error_code()),
            Err(ErrorCode::INVALID_REQUEST)
        );
    }

    #[test]
    fn snapshot_records_rebuild_the_quotas() {
        let mut image = MetadataImage::new();
        let alteration = alter_client_quotas(
            &image,
            &[
                entry(&[("user", None)], vec![set("producer_byte_rate", 10.0)]),
                entry(&[("ip", None)], vec![set("connection_creation_rate", 3.0)]),
            ],
            false,
        );
        apply(&mut image, &alteration.records);
        let mut rebuilt = MetadataImage::new();
        apply(&mut rebuilt, &image.to_records());
        assert_eq!(rebuilt, image);
        assert_eq!(rebuilt.client_quotas().iter().count(), 2);
    }
}
