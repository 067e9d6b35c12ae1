//! The controller's SCRAM decisions (Kafka's `ScramControlManager`):
//! AlterUserScramCredentials' upsertions and deletions -> per-user
//! outcomes and the records that carry out the accepted ones, and the
//! DescribeUserScramCredentials view of the image (Kafka's
//! `ScramImage.describe`). Pure, like [`super::Controller`].
//!
//! Kafka's rules, in its order: deletions are checked first, then
//! upsertions; a user named a second time anywhere in the request fails
//! with DUPLICATE_RESOURCE (and its earlier entry is dropped), a user whose
//! entry already failed keeps that first error. The accepted entries are
//! committed together (Kafka's `ControllerResult.atomicOf`).
//!
//! One deliberate difference: Kafka derives keys from a salted password of
//! any length; rafka requires the mechanism's digest length (what PBKDF2
//! yields, so what every client sends) and an upsertion with an empty or
//! over-long salt fails with UNACCEPTABLE_CREDENTIAL instead of becoming a
//! credential nobody can log in with.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use rafka_proto::error::ErrorCode;

use super::controller::RECORDS_PER_OPERATION_MAX;
use super::image::MetadataImage;
use super::record::{MetadataRecord, RemoveUserScramCredentialRecord, UserScramCredentialRecord};
use crate::sasl::scram::{CredentialError, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};
use crate::sasl::{ScramCredential, ScramMechanism};

/// AlterUserScramCredentials' upsertion, as on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramUpsertion {
    pub name: String,
    /// Kafka's mechanism type (1: SCRAM-SHA-256, 2: SCRAM-SHA-512).
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// Secrets stay out of logs.
impl std::fmt::Debug for ScramUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramUpsertion")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// AlterUserScramCredentials' deletion, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramDeletion {
    pub name: String,
    pub mechanism: i8,
}

/// Why one user's alteration failed; the messages are Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramAlterError {
    #[error("A user credential cannot be altered twice in the same request")]
    Duplicate,
    #[error("Username must not be empty")]
    EmptyUser,
    #[error("Unknown SCRAM mechanism")]
    UnknownMechanism,
    #[error("Too few iterations")]
    TooFewIterations,
    #[error("Too many iterations")]
    TooManyIterations,
    #[error("Attempt to delete a user credential that does not exist")]
    NotFound,
    #[error("Salt must not be empty")]
    EmptySalt,
    #[error("Salted password must not be empty")]
    EmptySaltedPassword,
    #[error("{0}")]
    Credential(CredentialError),
    #[error("operation would write {0} records, more than {RECORDS_PER_OPERATION_MAX}")]
    TooManyRecords(usize),
}

impl ScramAlterError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ScramAlterError::Duplicate => ErrorCode::DUPLICATE_RESOURCE,
            ScramAlterError::UnknownMechanism => ErrorCode::UNSUPPORTED_SASL_MECHANISM,
            ScramAlterError::NotFound => ErrorCode::RESOURCE_NOT_FOUND,
            ScramAlterError::EmptyUser
            | ScramAlterError::TooFewIterations
            | ScramAlterError::TooManyIterations
            | ScramAlterError::EmptySalt
            | ScramAlterError::EmptySaltedPassword
            | ScramAlterError::Credential(_) => ErrorCode::UNACCEPTABLE_CREDENTIAL,
            ScramAlterError::TooManyRecords(_) => ErrorCode::POLICY_VIOLATION,
        }
    }
}

/// What one AlterUserScramCredentials does: an outcome per user (accepted
/// deletions, then accepted upsertions, then failures, each in request
/// order) and the records of the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramAlteration {
    pub results: Vec<(String, Result<(), ScramAlterError>)>,
    pub records: Vec<MetadataRecord>,
}

/// A user's state while the request is read.
enum Pending<'a> {
    Delete(&'a ScramDeletion, ScramMechanism),
    Upsert(&'a ScramUpsertion, ScramMechanism),
    Failed(ScramAlterError),
}

pub fn alter_scram_credentials(
    image: &MetadataImage,
    deletions: &[ScramDeletion],
    upsertions: &[ScramUpsertion],
) -> ScramAlteration {
    // Users in first-seen order; BTreeMap for the lookups.
    let mut order: Vec<&str> = Vec::new();
    let mut users: BTreeMap<&str, Pending> = BTreeMap::new();
    for deletion in deletions {
        let pending = match users.entry(&deletion.name) {
            Entry::Occupied(mut seen) => {
                if !matches!(seen.get(), Pending::Failed(_)) {
                    seen.insert(Pending::Failed(ScramAlterError::Duplicate));
                }
                continue;
            }
            Entry::Vacant(vacant) => vacant,
        };
        order.push(&deletion.name);
        pending.insert(match check_deletion(image, deletion) {
            Ok(mechanism) => Pending::Delete(deletion, mechanism),
            Err(error) => Pending::Failed(error),
        });
    }
    for upsertion in upsertions {
        let pending = match users.entry(&upsertion.name) {
            Entry::Occupied(mut seen) => {
                if !matches!(seen.get(), Pending::Failed(_)) {
                    seen.insert(Pending::Failed(ScramAlterError::Duplicate));
                }
                continue;
            }
            Entry::Vacant(vacant) => vacant,
        };
        order.push(&upsertion.name);
        pending.insert(match check_upsertion(upsertion) {
            Ok(mechanism) => Pending::Upsert(upsertion, mechanism),
            Err(error) => Pending::Failed(error),
        });
    }
    let mut records = Vec::new();
    let mut deleted = Vec::new();
    let mut upserted = Vec::new();
    let mut failed = Vec::new();
    for name in order {
        match users.remove(name) {
            Some(Pending::Delete(deletion, mechanism)) => {
                records.push(MetadataRecord::RemoveUserScramCredential(
                    RemoveUserScramCredentialRecord {
                        name: deletion.name.clone(),
                        mechanism,
                    },
                ));
                deleted.push((name.to_string(), Ok(())));
            }
            Some(Pending::Upsert(upsertion, mechanism)) => match credential(upsertion, mechanism) {
                Ok(credential) => {
                    records.push(MetadataRecord::UserScramCredential(
                        UserScramCredentialRecord::new(upsertion.name.clone(), &credential),
                    ));
                    upserted.push((name.to_string(), Ok(())));
                }
                Err(error) => failed.push((name.to_string(), Err(error))),
            },
            Some(Pending::Failed(error)) => failed.push((name.to_string(), Err(error))),
            None => {}
        }
    }
    if records.len() > RECORDS_PER_OPERATION_MAX {
        let error = ScramAlterError::TooManyRecords(records.len());
        let results = deleted
            .into_iter()
            .chain(upserted)
            .map(|(name, _)| (name, Err(error.clone())))
            .chain(failed)
            .collect();
        return ScramAlteration {
            results,
            records: Vec::new(),
        };
    }
    let results = deleted.into_iter().chain(upserted).chain(failed).collect();
    ScramAlteration { results, records }
}

/// Kafka's `validateScramUsernameAndMechanism`.
fn check_user_and_mechanism(name: &str, mechanism: i8) -> Result<ScramMechanism, ScramAlterError> {
    if name.is_empty() {
        return Err(ScramAlterError::EmptyUser);
    }
    u8::try_from(mechanism)
        .ok()
        .and_then(ScramMechanism::from_type_code)
        .ok_or(ScramAlterError::UnknownMechanism)
}

fn check_deletion(
    image: &MetadataImage,
    deletion: &ScramDeletion,
) -> Result<ScramMechanism, ScramAlterError> {
    let mechanism = check_user_and_mechanism(&deletion.name, deletion.mechanism)?;
    if image.scram_credential(&deletion.name, mechanism).is_none() {
        return Err(ScramAlterError::NotFound);
    }
    Ok(mechanism)
}

fn check_upsertion(upsertion: &ScramUpsertion) -> Result<ScramMechanism, ScramAlterError> {
    let mechanism = check_user_and_mechanism(&upsertion.name, upsertion.mechanism)?;
    if upsertion.iterations < SCRAM_ITERATIONS_MIN as i32 {
        return Err(ScramAlterError::TooFewIterations);
    }
    if upsertion.iterations > SCRAM_ITERATIONS_MAX as i32 {
        return Err(ScramAlterError::TooManyIterations);
    }
    if upsertion.salt.is_empty() {
        return Err(ScramAlterError::EmptySalt);
    }
    if upsertion.salted_password.is_empty() {
        return Err(ScramAlterError::EmptySaltedPassword);
    }
    Ok(mechanism)
}

/// Kafka's `finishUpsertion`: the stored and server keys from the salted
/// password.
fn credential(
    upsertion: &ScramUpsertion,
    mechanism: ScramMechanism,
) -> Result<ScramCredential, ScramAlterError> {
    // check_upsertion bounded the iterations to 4096..=16384.
    let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
    ScramCredential::from_salted_password(
        mechanism,
        &upsertion.salted_password,
        upsertion.salt.clone(),
        iterations,
    )
    .map_err(ScramAlterError::Credential)
}

/// Credentials to seed at start (`--add-scram`): the records for those
/// the image does not have yet for that user and mechanism. An existing
/// credential is left alone, as `kafka-storage format` only seeds a new
/// cluster.
pub fn seed_scram_credentials(
    image: &MetadataImage,
    credentials: &[(String, ScramCredential)],
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (user, credential) in credentials {
        let mechanism = credential.mechanism();
        if user.is_empty()
            || image.scram_credential(user, mechanism).is_some()
            || !seen.insert((user.as_str(), mechanism))
        {
            continue;
        }
        records.push(MetadataRecord::UserScramCredential(
            UserScramCredentialRecord::new(user.clone(), credential),
        ));
    }
    records
}

/// One user's DescribeUserScramCredentials answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramDescription {
    pub user: String,
    /// `(mechanism, iterations)` per credential, or the error.
    pub outcome: Result<Vec<(ScramMechanism, u32)>, ScramDescribeError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramDescribeError {
    #[error("Attempt to describe a user credential that does not exist: {0}")]
    NotFound(String),
    #[error("Cannot describe SCRAM credentials for the same user twice in a single request: {0}")]
    Duplicate(String),
}

impl ScramDescribeError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ScramDescribeError::NotFound(_) => ErrorCode::RESOURCE_NOT_FOUND,
            ScramDescribeError::Duplicate(_) => ErrorCode::DUPLICATE_RESOURCE,
        }
    }
}

/// Kafka's `ScramImage.describe`: every user with a credential when
/// `users` is None or empty (in name order), else each named user once,
/// in first-seen order.
pub fn describe_scram_credentials(
    image: &MetadataImage,
    users: Option<&[String]>,
) -> Vec<ScramDescription> {
    fn described<'a>(
        user: &str,
        credentials: Option<impl IntoIterator<Item = &'a ScramCredential>>,
    ) -> ScramDescription {
        let outcome = match credentials {
            Some(credentials) => Ok(mechanisms(credentials)),
            None => Err(ScramDescribeError::NotFound(user.to_string())),
        };
        ScramDescription {
            user: user.to_string(),
            outcome,
        }
    }
    let named = users.filter(|users| !users.is_empty());
    let Some(named) = named else {
        return image
            .scram_users()
            .map(|(user, credentials)| described(user, Some(credentials.values())))
            .collect();
    };
    let mut order: Vec<&str> = Vec::new();
    let mut twice: BTreeMap<&str, bool> = BTreeMap::new();
    for user in named {
        match twice.entry(user) {
            Entry::Occupied(mut seen) => {
                seen.insert(true);
            }
            Entry::Vacant(vacant) => {
                vacant.insert(false);
                order.push(user);
            }
        }
    }
    order
        .into_iter()
        .map(|user| {
            if twice.get(user) == Some(&true) {
                return ScramDescription {
                    user: user.to_string(),
                    outcome: Err(ScramDescribeError::Duplicate(user.to_string())),
                };
            }
            let found: Vec<&ScramCredential> = ScramMechanism::ALL
                .into_iter()
                .filter_map(|mechanism| image.scram_credential(user, mechanism))
                .collect();
            described(user, (!found.is_empty()).then_some(found))
        })
        .collect()
}

fn mechanisms<'a>(
    credentials: impl IntoIterator<Item = &'a ScramCredential>,
) -> Vec<(ScramMechanism, u32)> {
    credentials
        .into_iter()
        .map(|credential| (credential.mechanism(), credential.iterations()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: i8 = 1;
    const SHA512: i8 = 2;

    fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        let digest = if mechanism == SHA512 { 64 } else { 32 };
        ScramUpsertion {
            name: name.to_string(),
            mechanism,
            iterations,
            salt: b"salt".to_vec(),
            salted_password: vec![7; digest],
        }
    }

    fn delete(name: &str, mechanism: i8) -> ScramDeletion {
        ScramDeletion {
            name: name.to_string(),
            mechanism,
        }
    }

    fn codes(alteration: &ScramAlteration) -> Vec<(&str, i16)> {
        alteration
            .results
            .iter()
            .map(|(user, outcome)| {
                let code = match outcome {
                    Ok(()) => 0,
                    Err(error) => error.error_code().code(),
                };
                (user.as_str(), code)
            })
            .collect()
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for record in records {
            image.apply(record).expect("record applies");
        }
    }

    #[test]
    fn upsert_then_describe_then_delete() {
        let mut image = MetadataImage::new();
        let alteration = alter_scram_credentials(
            &image,
            &[],
            &[upsert("alice", SHA256, 4096), upsert("bob", SHA512, 8192)],
        );
        assert_eq!(codes(&alteration), vec![("alice", 0), ("bob", 0)]);
        assert_eq!(alteration.records.len(), 2);
        apply(&mut image, &alteration.records);
        let credential = image
            .scram_credential("alice", ScramMechanism::Sha256)
            .expect("stored");
        assert_eq!(credential.iterations(), 4096);
        assert_eq!(credential.salt(), b"salt");
        let salted = [7u8; 32];
        assert_eq!(
            credential.server_key(),
            ScramMechanism::Sha256.server_key(&salted)
        );
        let all = describe_scram_credentials(&image, None);
        assert_eq!(
            all,
            vec![
                ScramDescription {
                    user: "alice".into(),
                    outcome: Ok(vec![(ScramMechanism::Sha256, 4096)])
                },
                ScramDescription {
                    user: "bob".into(),
                    outcome: Ok(vec![(ScramMechanism::Sha512, 8192)])
                },
            ]
        );
        let deletion = alter_scram_credentials(&image, &[delete("bob", SHA512)], &[]);
        assert_eq!(codes(&deletion), vec![("bob", 0)]);
        apply(&mut image, &deletion.records);
        assert_eq!(image.scram_users().count(), 1);
    }

    #[test]
    fn each_invalid_entry_fails_alone_with_kafkas_code() {
        let image = MetadataImage::new();
        let mut empty_salt = upsert("s", SHA256, 4096);
        empty_salt.salt.clear();
        let mut empty_salted = upsert("p", SHA256, 4096);
        empty_salted.salted_password.clear();
        let mut short_salted = upsert("q", SHA256, 4096);
        short_salted.salted_password.truncate(16);
        let mut long_salt = upsert("l", SHA256, 4096);
        long_salt.salt = vec![1; 1025];
        let alteration = alter_scram_credentials(
            &image,
            &[delete("gone", SHA256), delete("x", 3)],
            &[
                upsert("", SHA256, 4096),
                upsert("m", 0, 4096),
                upsert("low", SHA256, 4095),
                upsert("high", SHA512, 16385),
                upsert("ok", SHA512, 16384),
                empty_salt,
                empty_salted,
                short_salted,
                long_salt,
            ],
        );
        assert_eq!(
            codes(&alteration),
            vec![
                ("ok", 0),
                ("gone", 91), // RESOURCE_NOT_FOUND
                ("x", 33),    // UNSUPPORTED_SASL_MECHANISM
                ("", 93),     // UNACCEPTABLE_CREDENTIAL
                ("m", 33),
                ("low", 93),
                ("high", 93),
                ("s", 93),
                ("p", 93),
                ("q", 93),
                ("l", 93),
            ]
        );
        assert_eq!(
            alteration.results[9].1,
            Err(ScramAlterError::Credential(CredentialError::KeyLength {
                mechanism: ScramMechanism::Sha256,
                key: "salted password",
                length: 16,
            }))
        );
        assert_eq!(
            alteration.results[10].1,
            Err(ScramAlterError::Credential(CredentialError::Salt(1025)))
        );
        let messages: Vec<String> = alteration
            .results
            .iter()
            .filter_map(|(_, outcome)| outcome.as_ref().err().map(ToString::to_string))
            .collect();
        assert_eq!(
            &messages[..6],
            &[
                "Attempt to delete a user credential that does not exist",
                "Unknown SCRAM mechanism",
                "Username must not be empty",
                "Unknown SCRAM mechanism",
                "Too few iterations",
                "Too many iterations",
            ]
        );
        assert_eq!(alteration.records.len(), 1);
    }

    #[test]
    fn a_user_named_twice_fails_as_duplicate() {
        let mut image = MetadataImage::new();
        let seeded = alter_scram_credentials(&image, &[], &[upsert("a", SHA256, 4096)]);
        apply(&mut image, &seeded.records);
        // Twice across deletion and upsertion, twice as upsertions (even
        // for different mechanisms), three times; a failed first entry
        // keeps its own error.
        let alteration = alter_scram_credentials(
            &image,
            &[delete("a", SHA256), delete("missing", SHA256)],
            &[
                upsert("a", SHA512, 4096),
                upsert("b", SHA256, 4096),
                upsert("b", SHA512, 4096),
                upsert("b", SHA512, 4096),
                upsert("missing", SHA256, 4096),
                upsert("c", SHA256, 4096),
            ],
        );
        assert_eq!(
            codes(&alteration),
            vec![("c", 0), ("a", 92), ("missing", 91), ("b", 92)]
        );
        assert_eq!(
            alteration.results[1].1,
            Err(ScramAlterError::Duplicate),
            "DUPLICATE_RESOURCE"
        );
        assert_eq!(alteration.records.len(), 1);
    }

    #[test]
    fn describe_named_users() {
        let mut image = MetadataImage::new();
        let seeded = alter_scram_credentials(
            &image,
            &[],
            &[upsert("a", SHA256, 4096), upsert("b", SHA512, 5000)],
        );
        apply(&mut image, &seeded.records);
        let both = alter_scram_credentials(&image, &[], &[upsert("a", SHA512, 6000)]);
        apply(&mut image, &both.records);
        let named: Vec<String> = ["b", "nobody", "a", "b"].map(String::from).to_vec();
        let described = describe_scram_credentials(&image, Some(&named));
        assert_eq!(
            described,
            vec![
                ScramDescription {
                    user: "b".into(),
                    outcome: Err(ScramDescribeError::Duplicate("b".into()))
                },
                ScramDescription {
                    user: "nobody".into(),
                    outcome: Err(ScramDescribeError::NotFound("nobody".into()))
                },
                ScramDescription {
                    user: "a".into(),
                    outcome: Ok(vec![
                        (ScramMechanism::Sha256, 4096),
                        (ScramMechanism::Sha512, 6000)
                    ])
                },
            ]
        );
        assert_eq!(
            ScramDescribeError::NotFound("nobody".into()).to_string(),
            "Attempt to describe a user credential that does not exist: nobody"
        );
        assert_eq!(describe_scram_credentials(&image, Some(&[])).len(), 2);
    }

    #[test]
    fn seeding_leaves_existing_credentials_alone() {
        let mut image = MetadataImage::new();
        let first =
            ScramCredential::from_password(ScramMechanism::Sha256, b"one", b"salt".to_vec(), 4096)
                .expect("valid");
        let records = seed_scram_credentials(&image, &[("admin".into(), first.clone())]);
        assert_eq!(records.len(), 1);
        apply(&mut image, &records);
        let second =
            ScramCredential::from_password(ScramMechanism::Sha256, b"two", b"salt".to_vec(), 4096)
                .expect("valid");
        assert_eq!(
            seed_scram_credentials(&image, &[("admin".into(), second)]),
            vec![]
        );
        assert_eq!(
            image.scram_credential("admin", ScramMechanism::Sha256),
            Some(&first)
        );
    }
}
