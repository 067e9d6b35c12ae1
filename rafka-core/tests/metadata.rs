//! The controller state machine: records, image, placement and the
//! controller's validation with Kafka's error codes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rafka_core::acl::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
use rafka_core::config::{BrokerConfig, TopicNameError};
use rafka_core::metadata::{
    AccessControlEntryRecord, ApplyError, BrokerEndpoint, ClientQuotaRecord, ConfigOp,
    ConfigRecord, ConfigResource, Controller, ControllerError, MetadataDelta, MetadataImage,
    MetadataRecord, NewTopic, PartitionLeadershipRecord, PartitionPlacementRecord, PartitionRecord,
    ProposerRecord, RegisterBrokerRecord, RemoveAccessControlEntryRecord, RemoveTopicRecord,
    RemoveUserScramCredentialRecord, TopicRecord, UserScramCredentialRecord,
};
use rafka_core::quota::{EntityName, QuotaEntity, QuotaKey, QuotaValue};
use rafka_core::sasl::{CredentialError, ScramCredential, ScramCredentials, ScramMechanism};
use rafka_testkit::Rng;
use uuid::Uuid;

/// The durable log on fault-injecting storage.
#[path = "metadata/log.rs"]
mod log;

fn controller(shards: u32) -> Controller {
    Controller::new(&BrokerConfig::default(), shards)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignments: Vec::new(),
    }
}

fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) -> Vec<MetadataDelta> {
    records
        .iter()
        .map(|r| match image.apply(r) {
            Ok(delta) => delta,
            Err(e) => panic!("{r:?}: {e}"),
        })
        .collect()
}

fn create(c: &Controller, image: &mut MetadataImage, name: &str, partitions: i32, n: u128) {
    match c.create_topic(image, &new_topic(name, partitions), id(n)) {
        Ok(records) => {
            apply_all(image, &records);
        }
        Err(e) => panic!("create {name}: {e}"),
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, ControllerError>) -> i16 {
    match result {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(e) => e.error_code().code(),
    }
}

#[test]
fn create_topic_records_and_least_loaded_placement() {
    let c = controller(4);
    let mut image = MetadataImage::new();
    let mut topic = new_topic("orders", 3);
    topic.configs.insert("retention.ms".into(), "1000".into());
    let records = c.create_topic(&image, &topic, id(1));
    let expected = vec![
        MetadataRecord::Topic(TopicRecord {
            name: "orders".into(),
            topic_id: id(1),
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id: id(1),
            partition: 0,
            shard: 0,
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id: id(1),
            partition: 1,
            shard: 1,
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id: id(1),
            partition: 2,
            shard: 2,
        }),
        MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        }),
    ];
    assert_eq!(records.as_ref(), Ok(&expected));
    apply_all(&mut image, &expected);
    create(&c, &mut image, "payments", 3, 2);
    assert_eq!(
        image.topic("payments").map(|t| t.partitions.clone()),
        Some(vec![3, 0, 1])
    );
    assert_eq!(image.shard_loads(4), vec![2, 2, 1, 1]);
    assert_eq!(image.partition_shard("orders", 2), Some(2));
    assert_eq!(image.partition_shard("orders", 3), None);
    assert_eq!(image.partition_count(), 6);
    let on_zero: Vec<(String, i32)> = image
        .partitions_on_shard(0)
        .map(|(t, p)| (t.name.clone(), p))
        .collect();
    assert_eq!(on_zero, vec![("orders".into(), 0), ("payments".into(), 1)]);
}

#[test]
fn create_topic_errors_carry_kafka_codes() {
    let c = controller(2);
    let mut image = MetadataImage::new();
    create(&c, &mut image, "a.b", 1, 1);
    assert_eq!(
        code(c.create_topic(&image, &new_topic("a.b", 1), id(2))),
        36
    );
    let collision = c.create_topic(&image, &new_topic("a_b", 1), id(2));
    assert_eq!(
        collision,
        Err(ControllerError::InvalidTopic(TopicNameError::Collides {
            name: "a_b".into(),
            existing: "a.b".into()
        }))
    );
    assert_eq!(
        code(c.create_topic(&image, &new_topic("bad/name", 1), id(2))),
        17
    );
    assert_eq!(code(c.create_topic(&image, &new_topic("..", 1), id(2))), 17);
    assert_eq!(code(c.create_topic(&image, &new_topic("t", 0), id(2))), 37);
    assert_eq!(code(c.create_topic(&image, &new_topic("t", -2), id(2))), 37);
    assert_eq!(
        code(c.create_topic(&image, &new_topic("t", 10_000), id(2))),
        44
    );
    let mut rf3 = new_topic("t", 1);
    rf3.replication_factor = 3;
    assert_eq!(code(c.create_topic(&image, &rf3, id(2))), 38);
    let mut bad_config = new_topic("t", 1);
    bad_config
        .configs
        .insert("segment.bytes".into(), "100".into());
    assert_eq!(code(c.create_topic(&image, &bad_config, id(2))), 40);
    let mut unknown = new_topic("t", 1);
    unknown.configs.insert("retention.hours".into(), "1".into());
    assert_eq!(code(c.create_topic(&image, &unknown, id(2))), 40);
    // -1 partitions: the broker's num.partitions.
    let defaulted = c.create_topic(&image, &new_topic("t", -1), id(2));
    assert_eq!(defaulted.map(|r| r.len()), Ok(2));
}

#[test]
fn delete_topic_and_its_errors() {
    let mut c = controller(2);
    let mut image = MetadataImage::new();
    create(&c, &mut image, "t", 3, 7);
    assert_eq!(code(c.delete_topic(&image, "nope")), 3);
    assert_eq!(code(c.delete_topic_by_id(&image, id(99))), 100);
    let records = c.delete_topic(&image, "t");
    let expected = vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
        topic_id: id(7),
    })];
    assert_eq!(records, Ok(expected.clone()));
    let deltas = apply_all(&mut image, &expected);
    assert_eq!(
        deltas,
        vec![MetadataDelta::TopicRemoved {
            topic_id: id(7),
            name: "t".into(),
            partitions: vec![0, 1, 0],
        }]
    );
    assert_eq!((image.topic_count(), image.partition_count()), (0, 0));
    create(&c, &mut image, "t", 1, 8);
    c.delete_topic_enable = false;
    assert_eq!(code(c.delete_topic(&image, "t")), 73);
}

#[test]
fn create_partitions_grows_only() {
    let c = controller(3);
    let mut image = MetadataImage::new();
    create(&c, &mut image, "t", 2, 1);
    create(&c, &mut image, "u", 1, 2);
    let records = c.create_partitions(&image, "t", 5, None);
    let expected: Vec<MetadataRecord> = [(2, 0), (3, 1), (4, 2)]
        .into_iter()
        .map(|(partition, shard)| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id: id(1),
                partition,
                shard,
            })
        })
        .collect();
    assert_eq!(records, Ok(expected.clone()));
    apply_all(&mut image, &expected);
    assert_eq!(image.topic("t").map(|t| t.partition_count()), Some(5));
    assert_eq!(code(c.create_partitions(&image, "t", 5, None)), 37);
    assert_eq!(code(c.create_partitions(&image, "t", 4, None)), 37);
    assert_eq!(code(c.create_partitions(&image, "x", 9, None)), 3);
}

fn set(k: &str, v: &str) -> ConfigOp {
    ConfigOp::Set(k.into(), v.into())
}

fn config(topic: &str, key: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource: ConfigResource::Topic(topic.into()),
        name: key.into(),
        value: value.map(str::to_string),
    })
}

#[test]
fn incremental_alter_configs() {
    let c = controller(1);
    let mut image = MetadataImage::new();
    create(&c, &mut image, "t", 1, 1);
    let ops = [
        set("retention.ms", "60000"),
        set("segment.bytes", "2097152"),
    ];
    let records = c.alter_topic_config(&image, "t", &ops);
    let expected = vec![
        config("t", "retention.ms", Some("60000")),
        config("t", "segment.bytes", Some("2097152")),
    ];
    assert_eq!(records, Ok(expected.clone()));
    apply_all(&mut image, &expected);
    // Setting the same value again changes nothing.
    assert_eq!(c.alter_topic_config(&image, "t", &ops[..1]), Ok(vec![]));
    let append = [ConfigOp::Append("cleanup.policy".into(), "compact".into())];
    let records = c.alter_topic_config(&image, "t", &append);
    let expected = vec![config("t", "cleanup.policy", Some("delete,compact"))];
    assert_eq!(records, Ok(expected.clone()));
    apply_all(&mut image, &expected);
    let subtract = [
        ConfigOp::Subtract("cleanup.policy".into(), "delete".into()),
        ConfigOp::Delete("retention.ms".into()),
    ];
    let records = c.alter_topic_config(&image, "t", &subtract);
    let expected = vec![
        config("t", "cleanup.policy", Some("compact")),
        config("t", "retention.ms", None),
    ];
    assert_eq!(records, Ok(expected.clone()));
    let deltas = apply_all(&mut image, &expected);
    assert_eq!(
        deltas[1],
        MetadataDelta::ConfigChanged {
            topic_id: id(1),
            name: "t".into(),
            key: "retention.ms".into(),
            old: Some("60000".into()),
            new: None,
        }
    );
    let configs = image
        .topic("t")
        .map(|t| t.configs.clone())
        .unwrap_or_default();
    assert_eq!(configs.len(), 2);
    let dup = [
        set("retention.ms", "1"),
        ConfigOp::Delete("retention.ms".into()),
    ];
    assert_eq!(code(c.alter_topic_config(&image, "t", &dup)), 42);
    let not_list = [ConfigOp::Append("retention.ms".into(), "1".into())];
    assert_eq!(code(c.alter_topic_config(&image, "t", &not_list)), 40);
    let unknown = [ConfigOp::Delete("bogus".into())];
    assert_eq!(code(c.alter_topic_config(&image, "t", &unknown)), 40);
    let empty_policy = [ConfigOp::Subtract(
        "cleanup.policy".into(),
        "compact".into(),
    )];
    assert_eq!(code(c.alter_topic_config(&image, "t", &empty_policy)), 40);
    assert_eq!(code(c.alter_topic_config(&image, "x", &ops)), 3);
}

#[test]
fn legacy_alter_configs_replaces_the_set() {
    let c = controller(1);
    let mut image = MetadataImage::new();
    create(&c, &mut image, "t", 1, 1);
    let first = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
    let records = c.replace_topic_config(&image, "t", &first);
    assert_eq!(records.as_ref().map(Vec::len), Ok(1));
    apply_all(&mut image, &records.unwrap_or_default());
    let second = BTreeMap::from([("flush.ms".to_string(), "7".to_string())]);
    let records = c.replace_topic_config(&image, "t", &second);
    let expected = vec![
        config("t", "flush.ms", Some("7")),
        config("t", "retention.ms", None),
    ];
    assert_eq!(records, Ok(expected));
}

fn placements(image: &MetadataImage) -> Vec<Vec<u32>> {
    image.topics().map(|t| t.partitions.clone()).collect()
}

#[test]
fn fewer_shards_move_orphans_and_even_out() {
    let c4 = controller(4);
    let mut image = MetadataImage::new();
    create(&c4, &mut image, "a", 8, 1);
    create(&c4, &mut image, "b", 4, 2);
    assert_eq!(image.shard_loads(4), vec![3, 3, 3, 3]);
    let records = controller(2).replace_for_shard_count(&image);
    assert_eq!(records.len(), 6);
    for r in &records {
        assert!(matches!(r, MetadataRecord::PartitionPlacement(p) if p.shard < 2));
    }
    apply_all(&mut image, &records);
    assert_eq!(image.shard_loads(2), vec![6, 6]);
    assert_eq!(controller(2).replace_for_shard_count(&image), vec![]);
    // Growing back to 3 moves exactly the 4 partitions shard 2 needs.
    let records = controller(3).replace_for_shard_count(&image);
    assert_eq!(records.len(), 4);
    apply_all(&mut image, &records);
    assert_eq!(image.shard_loads(3), vec![4, 4, 4]);
}

#[test]
fn rebalance_is_exact_on_a_small_case() {
    let c2 = controller(2);
    let mut image = MetadataImage::new();
    create(&c2, &mut image, "a", 3, 1);
    assert_eq!(placements(&image), vec![vec![0, 1, 0]]);
    let records = controller(3).replace_for_shard_count(&image);
    // Shard 0 has the most (2); its last partition in name order moves.
    let expected = vec![MetadataRecord::PartitionPlacement(
        PartitionPlacementRecord {
            topic_id: id(1),
            partition: 2,
            shard: 2,
        },
    )];
    assert_eq!(records, expected);
    let deltas = apply_all(&mut image, &expected);
    assert_eq!(
        deltas,
        vec![MetadataDelta::PartitionMoved {
            topic_id: id(1),
            name: "a".into(),
            partition: 2,
            from: 0,
            to: 2,
        }]
    );
}

#[test]
fn apply_rejects_records_that_do_not_fit() {
    let mut image = MetadataImage::new();
    let topic = MetadataRecord::Topic(TopicRecord {
        name: "t".into(),
        topic_id: id(1),
    });
    apply_all(&mut image, std::slice::from_ref(&topic));
    let before = image.clone();
    assert_eq!(image.apply(&topic), Err(ApplyError::NameTaken("t".into())));
    let same_id = MetadataRecord::Topic(TopicRecord {
        name: "u".into(),
        topic_id: id(1),
    });
    assert_eq!(image.apply(&same_id), Err(ApplyError::IdTaken(id(1))));
    let skip = MetadataRecord::Partition(PartitionRecord {
        topic_id: id(1),
        partition: 1,
        shard: 0,
    });
    assert_eq!(
        image.apply(&skip),
        Err(ApplyError::PartitionOutOfOrder {
            topic_id: id(1),
            expected: 0,
            got: 1
        })
    );
    let move_missing = MetadataRecord::PartitionPlacement(PartitionPlacementRecord {
        topic_id: id(1),
        partition: 0,
        shard: 1,
    });
    assert!(matches!(
        image.apply(&move_missing),
        Err(ApplyError::UnknownPartition { .. })
    ));
    let config_missing = config("nope", "retention.ms", Some("1"));
    assert_eq!(
        image.apply(&config_missing),
        Err(ApplyError::UnknownTopic("nope".into()))
    );
    assert_eq!(image, before);
}

/// A valid credential without running PBKDF2 (slow in debug builds).
fn credential(mechanism: ScramMechanism, byte: u8) -> ScramCredential {
    let n = mechanism.digest_bytes();
    ScramCredential::new(
        mechanism,
        vec![byte; 16],
        vec![byte; n],
        vec![!byte; n],
        4096,
    )
    .unwrap()
}

fn set_scram(user: &str, credential: &ScramCredential) -> MetadataRecord {
    MetadataRecord::UserScramCredential(UserScramCredentialRecord::new(user.into(), credential))
}

fn remove_scram(user: &str, mechanism: ScramMechanism) -> MetadataRecord {
    MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
        name: user.into(),
        mechanism,
    })
}

#[test]
fn scram_credentials_apply_replace_remove_and_snapshot() {
    use ScramMechanism::{Sha256, Sha512};
    let mut image = MetadataImage::new();
    let alice = credential(Sha256, 1);
    assert_eq!(
        image.apply(&set_scram("alice", &alice)),
        Ok(MetadataDelta::ScramCredentialSet {
            user: "alice".into(),
            mechanism: Sha256
        })
    );
    image
        .apply(&set_scram("alice", &credential(Sha512, 2)))
        .unwrap();
    image
        .apply(&set_scram("bob", &credential(Sha512, 3)))
        .unwrap();
    assert_eq!(image.scram_credential("alice", Sha256), Some(&alice));
    assert_eq!(
        ScramCredentials::scram_credential(&image, "bob", Sha512).map(|c| c.salt()[0]),
        Some(3)
    );
    assert_eq!(image.scram_credential("bob", Sha256), None);
    // Set again: replaced.
    image
        .apply(&set_scram("alice", &credential(Sha256, 4)))
        .unwrap();
    assert_eq!(
        image.scram_credential("alice", Sha256),
        Some(&credential(Sha256, 4))
    );
    // Snapshot: user order, then mechanism order, before any topic.
    assert_eq!(
        image.to_records(),
        vec![
            set_scram("alice", &credential(Sha256, 4)),
            set_scram("alice", &credential(Sha512, 2)),
            set_scram("bob", &credential(Sha512, 3)),
        ]
    );
    let mut rebuilt = MetadataImage::new();
    apply_all(&mut rebuilt, &image.to_records());
    assert_eq!(rebuilt, image);
    assert_eq!(
        image.apply(&remove_scram("alice", Sha512)),
        Ok(MetadataDelta::ScramCredentialRemoved {
            user: "alice".into(),
            mechanism: Sha512
        })
    );
    image.apply(&remove_scram("bob", Sha512)).unwrap();
    let users: Vec<_> = image
        .scram_users()
        .map(|(u, c)| (u.to_string(), c.keys().copied().collect::<Vec<_>>()))
        .collect();
    assert_eq!(users, vec![("alice".to_string(), vec![Sha256])]);
}

#[test]
fn scram_records_that_do_not_fit_are_refused() {
    use ScramMechanism::{Sha256, Sha512};
    let mut image = MetadataImage::new();
    image
        .apply(&set_scram("alice", &credential(Sha256, 1)))
        .unwrap();
    let before = image.clone();
    let missing = image.apply(&remove_scram("alice", Sha512)).unwrap_err();
    assert_eq!(
        missing,
        ApplyError::UnknownScramCredential {
            user: "alice".into(),
            mechanism: Sha512
        }
    );
    assert_eq!(missing.error_code().code(), 91);
    assert!(image.apply(&remove_scram("bob", Sha256)).is_err());
    let mut weak = UserScramCredentialRecord::new("carol".into(), &credential(Sha256, 5));
    weak.iterations = 4095;
    let weak = image
        .apply(&MetadataRecord::UserScramCredential(weak))
        .unwrap_err();
    assert_eq!(
        weak,
        ApplyError::InvalidScramCredential {
            user: "carol".into(),
            error: CredentialError::Iterations {
                mechanism: Sha256,
                iterations: 4095
            }
        }
    );
    assert_eq!(weak.error_code().code(), 93);
    let mut short = UserScramCredentialRecord::new("carol".into(), &credential(Sha512, 5));
    short.stored_key.pop();
    assert!(matches!(
        image.apply(&MetadataRecord::UserScramCredential(short)),
        Err(ApplyError::InvalidScramCredential {
            error: CredentialError::KeyLength { length: 63, .. },
            ..
        })
    ));
    assert_eq!(
        image.apply(&set_scram("", &credential(Sha256, 1))),
        Err(ApplyError::EmptyScramUser)
    );
    assert_eq!(image, before);
}

/// Random controller operations, each returning records that applied.
fn random_history(rng: &mut Rng, ops: usize) -> Vec<MetadataRecord> {
    let c = controller(3);
    let mut image = MetadataImage::new();
    let mut history = Vec::new();
    for n in 0..ops {
        let name = format!("t{}", rng.below(20));
        let user = format!("u{}", rng.below(5));
        let mechanism = ScramMechanism::ALL[rng.below(2) as usize];
        let quota_entity = QuotaEntity::ClientId(EntityName::Named(user.clone()));
        let records = match rng.below(7) {
            6 => Ok(vec![MetadataRecord::ClientQuota(ClientQuotaRecord {
                entity: quota_entity.clone(),
                key: QuotaKey::ProducerByteRate,
                value: match image
                    .client_quotas()
                    .get(&quota_entity, QuotaKey::ProducerByteRate)
                {
                    Some(_) if rng.below(2) == 0 => None,
                    _ => QuotaValue::new(1.0 + rng.below(1000) as f64),
                },
            })]),
            4 => Ok(vec![set_scram(
                &user,
                &credential(mechanism, rng.below(256) as u8),
            )]),
            5 if image.scram_credential(&user, mechanism).is_some() => {
                Ok(vec![remove_scram(&user, mechanism)])
            }
            0 => c.create_topic(
                &image,
                &new_topic(&name, 1 + rng.below(4) as i32),
                id(n as u128 + 1),
            ),
            1 => c.delete_topic(&image, &name),
            2 => c.create_partitions(&image, &name, 2 + rng.below(6) as i32, None),
            _ => c.alter_topic_config(
                &image,
                &name,
                &[set("retention.ms", &rng.below(100).to_string())],
            ),
        };
        if let Ok(records) = records {
            apply_all(&mut image, &records);
            history.extend(records);
        }
    }
    history
}

#[test]
fn same_records_same_image_and_snapshot_records_rebuild_it() {
    let mut rng = Rng::from_env(42);
    let seed = rng.seed();
    let history = random_history(&mut rng, 400);
    assert!(history.len() > 100, "seed {seed}");
    let mut first = MetadataImage::new();
    let mut second = MetadataImage::new();
    assert_eq!(
        apply_all(&mut first, &history),
        apply_all(&mut second, &history),
        "seed {seed}"
    );
    assert_eq!(first, second, "seed {seed}");
    let mut rebuilt = MetadataImage::new();
    apply_all(&mut rebuilt, &first.to_records());
    assert_eq!(rebuilt, first, "seed {seed}");
}

fn arb_record() -> impl Strategy<Value = MetadataRecord> {
    let uuid = any::<u128>().prop_map(Uuid::from_u128);
    let text = "[a-z._-]{0,12}";
    prop_oneof![
        (text, uuid.clone())
            .prop_map(|(name, topic_id)| MetadataRecord::Topic(TopicRecord { name, topic_id })),
        (uuid.clone(), any::<i32>(), any::<u32>()).prop_map(|(topic_id, partition, shard)| {
            MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition,
                shard,
            })
        }),
        uuid.clone()
            .prop_map(|topic_id| MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id })),
        (text, text, proptest::option::of(".{0,20}")).prop_map(|(t, name, value)| {
            MetadataRecord::Config(ConfigRecord {
                resource: ConfigResource::Topic(t),
                name,
                value,
            })
        }),
        (uuid.clone(), any::<i32>(), any::<u32>()).prop_map(|(topic_id, partition, shard)| {
            MetadataRecord::PartitionPlacement(PartitionPlacementRecord {
                topic_id,
                partition,
                shard,
            })
        }),
        (
            text,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..70),
            proptest::collection::vec(any::<u8>(), 0..70),
            any::<u32>()
        )
            .prop_map(|(name, sha512, salt, stored_key, server_key, iterations)| {
                MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                    name,
                    mechanism: ScramMechanism::ALL[usize::from(sha512)],
                    salt,
                    stored_key,
                    server_key,
                    iterations,
                })
            }),
        (text, any::<bool>()).prop_map(|(name, sha512)| {
            MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                name,
                mechanism: ScramMechanism::ALL[usize::from(sha512)],
            })
        }),
        (uuid.clone(), arb_acl()).prop_map(|(id, acl)| {
            MetadataRecord::AccessControlEntry(AccessControlEntryRecord { id, acl })
        }),
        uuid.prop_map(|id| {
            MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id })
        }),
        arb_client_quota(),
        arb_cluster_record(),
        (
            any::<u64>(),
            any::<i32>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u64>(), 0..5)
        )
            .prop_map(|(incarnation, node_id, order, low, seen)| {
                MetadataRecord::Proposer(ProposerRecord {
                    incarnation,
                    node_id,
                    order,
                    low,
                    seen,
                })
            }),
    ]
}

#[test]
fn proposals_are_noted_once_and_the_window_survives_a_snapshot() {
    let mut image = MetadataImage::new();
    assert!(image.note_proposal(1, 7, 0));
    assert!(image.note_proposal(1, 7, 2));
    assert!(!image.note_proposal(1, 7, 0), "a copy of sequence 0");
    assert!(image.note_proposal(1, 7, 1), "1 was never seen");
    assert!(!image.note_proposal(1, 7, 2));
    // Another incarnation of the same node has its own window.
    assert!(image.note_proposal(1, 8, 0));
    // Past 1,024 remembered sequences the oldest count as seen.
    for sequence in 3..2000 {
        assert!(image.note_proposal(1, 7, sequence));
    }
    assert!(!image.note_proposal(1, 7, 100));
    assert!(!image.note_proposal(1, 7, 1999));
    let mut rebuilt = MetadataImage::new();
    apply_all(&mut rebuilt, &image.to_records());
    assert_eq!(rebuilt, image);
    assert!(!rebuilt.note_proposal(1, 8, 0));
    assert!(rebuilt.note_proposal(1, 7, 2000));
    // 64 incarnations are remembered: the oldest goes first.
    let mut image = MetadataImage::new();
    for incarnation in 0..65 {
        assert!(image.note_proposal(2, incarnation, 0));
    }
    assert!(image.note_proposal(2, 0, 0), "incarnation 0 was forgotten");
    assert!(!image.note_proposal(2, 64, 0));
}

fn arb_cluster_record() -> impl Strategy<Value = MetadataRecord> {
    let uuid = any::<u128>().prop_map(Uuid::from_u128);
    let endpoint = (".{0,8}", ".{0,12}", any::<u16>(), any::<i16>()).prop_map(
        |(listener, host, port, security_protocol)| BrokerEndpoint {
            listener,
            host,
            port,
            security_protocol,
        },
    );
    let ids = proptest::collection::vec(any::<i32>(), 0..5);
    prop_oneof![
        (
            any::<i32>(),
            any::<i64>(),
            uuid.clone(),
            proptest::option::of(".{0,8}"),
            proptest::collection::vec(endpoint, 0..3)
        )
            .prop_map(|(node_id, epoch, incarnation_id, rack, endpoints)| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    node_id,
                    epoch,
                    incarnation_id,
                    rack,
                    endpoints,
                    fresh_data_dir: false,
                })
            }),
        (
            uuid,
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            ids.clone(),
            ids,
            any::<i32>()
        )
            .prop_map(
                |(topic_id, partition, leader, leader_epoch, replicas, isr, partition_epoch)| {
                    MetadataRecord::PartitionLeadership(PartitionLeadershipRecord {
                        topic_id,
                        partition,
                        leader,
                        leader_epoch,
                        replicas,
                        isr,
                        partition_epoch,
                        adding: Vec::new(),
                        removing: Vec::new(),
                        elr: Vec::new(),
                    })
                }
            ),
    ]
}

#[test]
fn brokers_and_leaderships_survive_a_snapshot_and_refuse_stale_epochs() {
    let topic_id = Uuid::from_u128(7);
    let register = |epoch| {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            node_id: 2,
            epoch,
            incarnation_id: Uuid::from_u128(9),
            rack: Some("r1".into()),
            endpoints: vec![BrokerEndpoint {
                listener: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 19092,
                security_protocol: 0,
            }],
            fresh_data_dir: false,
        })
    };
    let lead = |leader, leader_epoch, partition_epoch| {
        MetadataRecord::PartitionLeadership(PartitionLeadershipRecord {
            topic_id,
            partition: 0,
            leader,
            leader_epoch,
            replicas: vec![2, 3],
            isr: vec![2, 3],
            partition_epoch,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        })
    };
    let mut image = MetadataImage::new();
    apply_all(
        &mut image,
        &[
            register(1),
            MetadataRecord::Topic(TopicRecord {
                name: "t".into(),
                topic_id,
            }),
            MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition: 0,
                shard: 0,
            }),
            lead(2, 0, 0),
            lead(3, 1, 1),
        ],
    );
    assert_eq!(
        image.apply(&register(1)),
        Err(ApplyError::StaleBrokerEpoch {
            node_id: 2,
            epoch: 1,
            current: 1
        })
    );
    assert!(matches!(
        image.apply(&lead(2, 0, 2)),
        Err(ApplyError::StaleLeaderEpoch {
            epoch: 0,
            current: 1,
            ..
        })
    ));
    // A change computed before another committed: same partition epoch.
    assert!(matches!(
        image.apply(&lead(3, 1, 1)),
        Err(ApplyError::StalePartitionEpoch {
            epoch: 1,
            current: 1,
            ..
        })
    ));
    let leadership = image.topic("t").and_then(|t| t.leadership(0));
    assert_eq!(leadership.map(|l| l.partition_epoch), Some(1));
    let topic = image.topic("t").expect("topic");
    assert_eq!(topic.leadership(0).map(|l| l.leader), Some(3));
    assert!(topic.is_replica(0, 2) && !topic.is_replica(0, 1));
    assert_eq!(image.broker(2).map(|b| b.epoch), Some(1));
    let mut rebuilt = MetadataImage::new();
    apply_all(&mut rebuilt, &image.to_records());
    assert_eq!(rebuilt, image);
    // A mirror that missed everything gets it all as deltas.
    let deltas = MetadataImage::new().deltas_to(&image);
    assert!(deltas.contains(&MetadataDelta::BrokerRegistered {
        node_id: 2,
        epoch: 1
    }));
    assert!(deltas.iter().any(|d| matches!(
        d,
        MetadataDelta::LeadershipChanged { partition: 0, new, .. } if new.leader == 3
    )));
}

fn arb_client_quota() -> impl Strategy<Value = MetadataRecord> {
    let name = proptest::option::of(".{0,12}").prop_map(|name| match name {
        None => EntityName::Default,
        Some(name) => EntityName::Named(name),
    });
    let entity = (0u8..4, name.clone(), name).prop_map(|(kind, a, b)| match kind {
        0 => QuotaEntity::User(a),
        1 => QuotaEntity::ClientId(a),
        2 => QuotaEntity::UserClientId(a, b),
        _ => QuotaEntity::Ip(a),
    });
    let value = proptest::option::of(1e-9f64..1e18).prop_map(|v| v.and_then(QuotaValue::new));
    (entity, 0usize..QuotaKey::ALL.len(), value).prop_map(|(entity, key, value)| {
        MetadataRecord::ClientQuota(ClientQuotaRecord {
            entity,
            key: QuotaKey::ALL[key],
            value,
        })
    })
}

fn arb_acl() -> impl Strategy<Value = AclBinding> {
    let text = ".{0,12}";
    (2i8..=7, text, 3i8..=4, text, text, 2i8..=14, 2i8..=3).prop_map(
        |(kind, resource_name, pattern, principal, host, op, permission)| {
            let some = "the strategy's ranges hold valid codes";
            AclBinding {
                resource_type: ResourceType::from_code(kind).expect(some),
                resource_name,
                pattern_type: PatternType::from_code(pattern).expect(some),
                principal,
                host,
                operation: AclOperation::from_code(op).expect(some),
                permission: AclPermission::from_code(permission).expect(some),
            }
        },
    )
}

proptest! {
    #[test]
    fn records_round_trip(record in arb_record()) {
        prop_assert_eq!(MetadataRecord::decode(&record.to_bytes()), Ok(record));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = MetadataRecord::decode(&bytes);
        let _ = rafka_core::metadata::frame::decode_frame(&bytes);
    }
}
