use super::*;

fn offset_value() -> OffsetCommitValue {
    OffsetCommitValue {
        offset: 42,
        leader_epoch: 3,
        metadata: "m".to_string(),
        commit_timestamp_ms: 1000,
        expire_timestamp_ms: -1,
    }
}

fn group_value() -> GroupMetadataValue {
    GroupMetadataValue {
        protocol_type: "consumer".to_string(),
        generation: 7,
        protocol: Some("range".to_string()),
        leader: Some("c-1".to_string()),
        current_state_timestamp_ms: 5000,
        members: vec![MemberMetadata {
            member_id: "c-1".to_string(),
            group_instance_id: Some("i1".to_string()),
            client_id: "c".to_string(),
            client_host: "/127.0.0.1".to_string(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 10_000,
            subscription: Bytes::from_static(&[0, 0, 0, 0, 0, 0]),
            assignment: Bytes::from_static(&[1, 2]),
        }],
    }
}

#[test]
fn offset_commit_key_exact_bytes() {
    let key = OffsetCommitKey {
        group: "g".to_string(),
        topic: "t".to_string(),
        partition: 2,
    };
    let bytes = key.encode().unwrap();
    assert_eq!(&bytes[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
    assert_eq!(
        RecordKey::decode(&bytes).unwrap(),
        RecordKey::OffsetCommit(key)
    );
}

#[test]
fn group_metadata_key_exact_bytes() {
    let bytes = encode_group_metadata_key("gr").unwrap();
    assert_eq!(&bytes[..], &[0, 2, 0, 2, b'g', b'r']);
    assert_eq!(
        RecordKey::decode(&bytes).unwrap(),
        RecordKey::GroupMetadata {
            group: "gr".to_string()
        }
    );
}

#[test]
fn newer_key_versions_are_other() {
    assert_eq!(
        RecordKey::decode(&[0, 5, 1, 2]).unwrap(),
        RecordKey::Other { version: 5 }
    );
}

#[test]
fn offset_value_v3_exact_bytes_and_round_trip() {
    let bytes = offset_value().encode().unwrap();
    let mut want = vec![0, 3];
    want.extend_from_slice(&42i64.to_be_bytes());
    want.extend_from_slice(&3i32.to_be_bytes());
    want.extend_from_slice(&[0, 1, b'm']);
    want.extend_from_slice(&1000i64.to_be_bytes());
    assert_eq!(&bytes[..], &want[..]);
    assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), offset_value());
}

#[test]
fn offset_value_v1_has_expire_timestamp() {
    let mut v1 = vec![0, 1];
    v1.extend_from_slice(&9i64.to_be_bytes());
    v1.extend_from_slice(&[0, 0]);
    v1.extend_from_slice(&77i64.to_be_bytes());
    v1.extend_from_slice(&88i64.to_be_bytes());
    let value = OffsetCommitValue::decode(&v1).unwrap();
    assert_eq!(value.offset, 9);
    assert_eq!(value.leader_epoch, -1);
    assert_eq!(value.commit_timestamp_ms, 77);
    assert_eq!(value.expire_timestamp_ms, 88);
}

#[test]
fn offset_value_v4_is_flexible() {
    let mut v4 = vec![0, 4];
    v4.extend_from_slice(&5i64.to_be_bytes());
    v4.extend_from_slice(&1i32.to_be_bytes());
    v4.extend_from_slice(&[3, b'a', b'b']); // compact string "ab"
    v4.extend_from_slice(&6i64.to_be_bytes());
    v4.extend_from_slice(&[1, 9, 2, 0xaa, 0xbb]); // one unknown tag
    let value = OffsetCommitValue::decode(&v4).unwrap();
    assert_eq!(value.offset, 5);
    assert_eq!(value.leader_epoch, 1);
    assert_eq!(value.metadata, "ab");
    assert_eq!(value.commit_timestamp_ms, 6);
}

#[test]
fn group_value_v3_round_trip_and_layout() {
    let bytes = group_value().encode().unwrap();
    assert_eq!(&bytes[..2], &[0, 3]);
    assert_eq!(
        &bytes[2..12],
        &[0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r']
    );
    assert_eq!(&bytes[12..16], &7i32.to_be_bytes());
    assert_eq!(GroupMetadataValue::decode(&bytes).unwrap(), group_value());
}

#[test]
fn group_value_v0_uses_session_timeout_for_rebalance() {
    let mut v0 = vec![0, 0];
    v0.extend_from_slice(&[0, 1, b'c']);
    v0.extend_from_slice(&1i32.to_be_bytes());
    v0.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null protocol, leader
    v0.extend_from_slice(&1i32.to_be_bytes());
    v0.extend_from_slice(&[0, 1, b'm', 0, 1, b'c', 0, 1, b'h']);
    v0.extend_from_slice(&6000i32.to_be_bytes());
    v0.extend_from_slice(&0i32.to_be_bytes());
    v0.extend_from_slice(&1i32.to_be_bytes());
    v0.push(7);
    let value = GroupMetadataValue::decode(&v0).unwrap();
    assert_eq!(value.protocol, None);
    assert_eq!(value.current_state_timestamp_ms, -1);
    assert_eq!(value.members[0].rebalance_timeout_ms, 6000);
    assert_eq!(value.members[0].assignment, Bytes::from_static(&[7]));
    assert_eq!(value.members[0].group_instance_id, None);
}

#[test]
fn group_value_v4_is_flexible() {
    let mut v4 = vec![0, 4, 2, b'c'];
    v4.extend_from_slice(&2i32.to_be_bytes());
    v4.extend_from_slice(&[2, b'r', 0]); // protocol "r", leader null
    v4.extend_from_slice(&10i64.to_be_bytes());
    v4.push(2); // one member
    v4.extend_from_slice(&[2, b'm', 0, 2, b'c', 2, b'h']);
    v4.extend_from_slice(&100i32.to_be_bytes());
    v4.extend_from_slice(&50i32.to_be_bytes());
    v4.extend_from_slice(&[1, 3, 1, 2, 0, 0]); // subscription empty, assignment [1,2]
    let value = GroupMetadataValue::decode(&v4).unwrap();
    assert_eq!(value.protocol.as_deref(), Some("r"));
    assert_eq!(value.leader, None);
    assert_eq!(value.members[0].rebalance_timeout_ms, 100);
    assert_eq!(value.members[0].assignment, Bytes::from_static(&[1, 2]));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let group = group_value().encode().unwrap();
    for cut in 0..group.len() {
        assert!(
            GroupMetadataValue::decode(&group[..cut]).is_err(),
            "cut {cut}"
        );
    }
    let offset = offset_value().encode().unwrap();
    for cut in 0..offset.len() {
        assert!(
            OffsetCommitValue::decode(&offset[..cut]).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn hostile_lengths_are_typed_errors() {
    let mut huge = vec![0, 3, 0, 1, b'c'];
    huge.extend_from_slice(&1i32.to_be_bytes());
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    huge.extend_from_slice(&0i64.to_be_bytes());
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        GroupMetadataValue::decode(&huge),
        Err(SchemaError::InvalidLength {
            field: "members",
            ..
        })
    ));
    assert_eq!(
        OffsetCommitValue::decode(&[0, 9]),
        Err(SchemaError::UnknownVersion {
            record: "offset commit value",
            version: 9
        })
    );
    assert_eq!(
        RecordKey::decode(&[0, 1, 0xff, 0xfe]),
        Err(SchemaError::InvalidLength {
            field: "group",
            length: -2
        })
    );
}

#[test]
fn subscription_topics_of_v1_subscription() {
    let mut sub = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
    sub.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    assert_eq!(subscription_topics(&sub).unwrap(), vec!["a", "bc"]);
    assert!(subscription_topics(&sub[..7]).is_err());
}
