//! The controller's ACL decisions (Kafka's `AclControlManager`): new ACLs
//! and delete filters -> the records that carry them out. Pure, like
//! [`super::Controller`]: it reads the image and writes nothing.
//!
//! Requests are checked before they get here ([`AclBinding::from_codes`],
//! [`AclBindingFilter::from_codes`] answer INVALID_REQUEST); what is left
//! is Kafka's controller behaviour: an ACL equal to an existing one (or to
//! an earlier one of the same request) is not added again but still
//! succeeds, every ACL gets a fresh stable id, and a delete removes each
//! matched ACL once even when several filters match it.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::controller::RECORDS_PER_OPERATION_MAX;
use super::image::MetadataImage;
use super::record::{AccessControlEntryRecord, MetadataRecord, RemoveAccessControlEntryRecord};
use crate::acl::{AclBinding, AclBindingFilter};

/// The records of one CreateAcls, or why none are written.
pub fn create_acls(
    image: &MetadataImage,
    acls: &[AclBinding],
    mut new_id: impl FnMut() -> Uuid,
) -> Result<Vec<MetadataRecord>, AclControlError> {
    let mut records = Vec::new();
    let mut seen: BTreeSet<&AclBinding> = BTreeSet::new();
    for acl in acls {
        if image.acls().contains(acl) || !seen.insert(acl) {
            continue;
        }
        let mut id = new_id();
        while image.acls().get(&id).is_some() {
            id = new_id();
        }
        records.push(MetadataRecord::AccessControlEntry(
            AccessControlEntryRecord {
                id,
                acl: acl.clone(),
            },
        ));
    }
    check_count(records.len())?;
    Ok(records)
}

/// What one DeleteAcls does: per filter, the ACLs it matched (with ids,
/// in [`AclBinding`] order);
/// and the records removing each of them once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclDeletion {
    pub matched: Vec<Vec<(Uuid, AclBinding)>>,
    pub records: Vec<MetadataRecord>,
}

pub fn delete_acls(
    image: &MetadataImage,
    filters: &[AclBindingFilter],
) -> Result<AclDeletion, AclControlError> {
    let mut ids = BTreeSet::new();
    let mut matched = Vec::with_capacity(filters.len());
    for filter in filters {
        let mut found: Vec<(Uuid, AclBinding)> = image
            .acls()
            .matching(filter)
            .map(|(id, acl)| (*id, acl.clone()))
            .collect();
        // Ids are random: answer in the ACLs' own order, the same on
        // every run.
        found.sort_by(|a, b| a.1.cmp(&b.1));
        ids.extend(found.iter().map(|(id, _)| *id));
        matched.push(found);
    }
    check_count(ids.len())?;
    let records = ids
        .into_iter()
        .map(|id| MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id }))
        .collect();
    Ok(AclDeletion { matched, records })
}

fn check_count(records: usize) -> Result<(), AclControlError> {
    if records > RECORDS_PER_OPERATION_MAX {
        return Err(AclControlError::TooManyRecords(records));
    }
    Ok(())
}

/// Why the controller refused a whole ACL request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclControlError {
    #[error("operation would write {0} records, more than {RECORDS_PER_OPERATION_MAX}")]
    TooManyRecords(usize),
}

impl AclControlError {
    pub fn error_code(&self) -> rafka_proto::error::ErrorCode {
        match self {
            AclControlError::TooManyRecords(_) => rafka_proto::error::ErrorCode::POLICY_VIOLATION,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{AclOperation, AclPermission, PatternType, PatternTypeFilter, ResourceType};

    fn acl(name: &str, permission: AclPermission) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.to_string(),
            pattern_type: PatternType::Literal,
            principal: "User:a".to_string(),
            host: "*".to_string(),
            operation: AclOperation::Read,
            permission,
        }
    }

    fn ids() -> impl FnMut() -> Uuid {
        let mut next = 0u128;
        move || {
            next += 1;
            Uuid::from_u128(next)
        }
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for record in records {
            image.apply(record).expect("record applies");
        }
    }

    #[test]
    fn create_skips_existing_and_repeated_acls() {
        let mut image = MetadataImage::new();
        let a = acl("t", AclPermission::Allow);
        let records = create_acls(&image, &[a.clone(), a.clone()], ids()).expect("valid");
        assert_eq!(records.len(), 1);
        apply(&mut image, &records);
        assert_eq!(image.acls().len(), 1);
        assert_eq!(image.acls().get(&Uuid::from_u128(1)), Some(&a));
        // The same ACL again: nothing to write; a new one gets an unused id
        // even when the id source repeats a taken one.
        assert_eq!(
            create_acls(&image, std::slice::from_ref(&a), ids()),
            Ok(vec![])
        );
        let d = acl("t", AclPermission::Deny);
        let records = create_acls(&image, std::slice::from_ref(&d), ids()).expect("valid");
        let MetadataRecord::AccessControlEntry(entry) = &records[0] else {
            panic!("not an ACL record: {records:?}");
        };
        assert_eq!((entry.id, &entry.acl), (Uuid::from_u128(2), &d));
    }

    #[test]
    fn delete_removes_each_match_once_and_reports_per_filter() {
        let mut image = MetadataImage::new();
        let records = create_acls(
            &image,
            &[
                acl("t", AclPermission::Allow),
                acl("u", AclPermission::Deny),
            ],
            ids(),
        )
        .expect("valid");
        apply(&mut image, &records);
        let all = AclBindingFilter::any();
        let t = AclBindingFilter {
            resource_name: Some("t".to_string()),
            pattern_type: PatternTypeFilter::Match,
            ..AclBindingFilter::any()
        };
        let nothing = AclBindingFilter {
            resource_type: Some(ResourceType::Group),
            ..AclBindingFilter::any()
        };
        let deletion = delete_acls(&image, &[t, all, nothing]).expect("valid");
        let counts: Vec<usize> = deletion.matched.iter().map(Vec::len).collect();
        assert_eq!(counts, [1, 2, 0]);
        assert_eq!(deletion.records.len(), 2);
        apply(&mut image, &deletion.records);
        assert!(image.acls().is_empty());
    }

    #[test]
    fn snapshot_records_rebuild_the_acls() {
        let mut image = MetadataImage::new();
        let records = create_acls(&image, &[acl("t", AclPermission::Allow)], ids()).expect("valid");
        apply(&mut image, &records);
        let mut rebuilt = MetadataImage::new();
        apply(&mut rebuilt, &image.to_records());
        assert_eq!(rebuilt, image);
        let remove = MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord {
            id: Uuid::from_u128(9),
        });
        assert_eq!(
            rebuilt.apply(&remove),
            Err(super::super::ApplyError::UnknownAclId(Uuid::from_u128(9)))
        );
        assert_eq!(
            rebuilt.apply(&records[0]),
            Err(super::super::ApplyError::AclIdTaken(Uuid::from_u128(1)))
        );
    }
}
