//! Recovery of one log file into the mirror: groups applied whole, the torn
//! tail told apart from damage.

use std::path::Path;

use protobuf::Message;
use raft::prelude::{ConfState, Entry, HardState};

use super::frame::{decode_frame, parse_commit, valid_frame_after, Frame, Kind};
use super::storage::Mirror;
use super::{Damage, QuorumLogError};

/// One decoded record of a group not yet closed.
enum Record {
    Entry(Entry),
    HardState(HardState),
    ConfState(ConfState),
}

/// What replaying a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Replayed {
    /// Bytes up to the end of the last closed group: the file's new length.
    pub(super) valid_bytes: u64,
    /// Whether a conf state record was seen.
    pub(super) conf_state_seen: bool,
}

struct Replay<'a> {
    path: &'a Path,
    mirror: &'a mut Mirror,
    group: Vec<Record>,
    groups: u64,
    conf_state_seen: bool,
}

impl Replay<'_> {
    fn damaged(&self, position: usize, damage: Damage) -> QuorumLogError {
        QuorumLogError::Damaged {
            path: self.path.to_path_buf(),
            position: position as u64,
            damage,
        }
    }

    fn decode<M: Message>(&self, frame: &Frame<'_>, at: usize) -> Result<M, QuorumLogError> {
        M::parse_from_bytes(frame.payload).map_err(|source| {
            let kind = frame.kind;
            self.damaged(at, Damage::Record { kind, source })
        })
    }

    /// Takes one valid frame at byte `at`.
    fn frame(&mut self, frame: &Frame<'_>, at: usize) -> Result<(), QuorumLogError> {
        let record = match frame.kind {
            Kind::Entry => Record::Entry(self.decode(frame, at)?),
            Kind::HardState => Record::HardState(self.decode(frame, at)?),
            Kind::ConfState => Record::ConfState(self.decode(frame, at)?),
            Kind::Commit => return self.commit(frame, at),
            Kind::Snapshot | Kind::SnapshotData => {
                return Err(self.damaged(at, Damage::UnexpectedKind(frame.kind)))
            }
        };
        self.group.push(record);
        Ok(())
    }

    /// Applies the group a `Commit` frame closes.
    fn commit(&mut self, frame: &Frame<'_>, at: usize) -> Result<(), QuorumLogError> {
        let expected = u32::try_from(self.group.len()).unwrap_or(u32::MAX);
        let found = parse_commit(frame.payload);
        if found != Some(expected) {
            return Err(self.damaged(at, Damage::GroupCount { expected, found }));
        }
        let header = self.groups == 0;
        let mut hard_state_seen = false;
        for record in std::mem::take(&mut self.group) {
            match record {
                Record::Entry(entry) => self.entry(entry, at)?,
                Record::HardState(hs) => {
                    self.mirror.hard_state = hs;
                    hard_state_seen = true;
                }
                Record::ConfState(cs) => {
                    self.mirror.conf_state = cs;
                    self.conf_state_seen = true;
                }
            }
        }
        if header && !hard_state_seen {
            return Err(self.damaged(0, Damage::MissingHeader));
        }
        self.groups += 1;
        Ok(())
    }

    fn entry(&mut self, entry: Entry, at: usize) -> Result<(), QuorumLogError> {
        let (first, last) = (self.mirror.first_index(), self.mirror.last_index());
        if entry.index < first || entry.index > last + 1 {
            let index = entry.index;
            return Err(self.damaged(at, Damage::EntryIndex { index, first, last }));
        }
        self.mirror.append(std::slice::from_ref(&entry));
        Ok(())
    }
}

/// Replays the groups of `bytes` (the whole live log) into `mirror`.
pub(super) fn replay_log(
    path: &Path,
    bytes: &[u8],
    mirror: &mut Mirror,
) -> Result<Replayed, QuorumLogError> {
    let mut replay = Replay {
        path,
        mirror,
        group: Vec::new(),
        groups: 0,
        conf_state_seen: false,
    };
    let mut position = 0usize;
    let mut group_start = 0usize;
    while position < bytes.len() {
        match decode_frame(&bytes[position..]) {
            Ok(frame) => {
                replay.frame(&frame, position)?;
                position += frame.frame_bytes;
                if frame.kind == Kind::Commit {
                    group_start = position;
                }
            }
            // Nothing valid after it: the last, unfinished append.
            Err(_) if !valid_frame_after(&bytes[position..]) => break,
            Err(err) => return Err(replay.damaged(position, err.into())),
        }
    }
    // The header group went to disk whole before the file got its name.
    if replay.groups == 0 {
        return Err(replay.damaged(0, Damage::MissingHeader));
    }
    Ok(Replayed {
        valid_bytes: group_start as u64,
        conf_state_seen: replay.conf_state_seen,
    })
}

/// The invariants raft-rs checks on start: the commit index lies between
/// the snapshot and the last entry.
pub(super) fn check_commit(path: &Path, mirror: &Mirror) -> Result<(), QuorumLogError> {
    let commit = mirror.hard_state.commit;
    let (snapshot_index, last_index) = (mirror.snapshot_index(), mirror.last_index());
    if commit < snapshot_index || commit > last_index {
        return Err(QuorumLogError::Damaged {
            path: path.to_path_buf(),
            position: 0,
            damage: Damage::CommitOutOfRange {
                commit,
                snapshot_index,
                last_index,
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::files::encode_group;
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote: 1,
            commit,
            ..Default::default()
        }
    }

    fn group(entries: &[Entry], hard_state: Option<&HardState>) -> Vec<u8> {
        let mut out = Vec::new();
        let encoded = encode_group(None, entries, hard_state, &mut out);
        assert!(encoded.is_ok());
        out
    }

    fn replay(bytes: &[u8]) -> (Result<Replayed, String>, Mirror) {
        let mut mirror = Mirror::default();
        let result = replay_log(Path::new("/q/0.log"), bytes, &mut mirror);
        (result.map_err(|e| e.to_string()), mirror)
    }

    #[test]
    fn groups_apply_whole_and_an_open_group_is_torn() {
        let mut bytes = group(&[], Some(&hs(1, 0)));
        bytes.extend(group(&[entry(1, 1), entry(2, 1)], Some(&hs(1, 1))));
        let closed = bytes.len() as u64;
        // A later group that lost its commit frame never counted.
        let mut open = group(&[entry(3, 1)], Some(&hs(1, 3)));
        open.truncate(open.len() - 17);
        bytes.extend(open);
        let (result, mirror) = replay(&bytes);
        assert_eq!(result.map(|r| r.valid_bytes), Ok(closed));
        assert_eq!(mirror.last_index(), 2);
        assert_eq!(mirror.hard_state, hs(1, 1));
    }

    #[test]
    fn a_conflicting_entry_replaces_the_suffix() {
        let mut bytes = group(&[entry(1, 1), entry(2, 1), entry(3, 1)], Some(&hs(1, 0)));
        bytes.extend(group(&[entry(2, 2)], Some(&hs(2, 1))));
        let (result, mirror) = replay(&bytes);
        assert!(result.is_ok());
        let terms: Vec<u64> = mirror.entries.iter().map(|e| e.term).collect();
        assert_eq!(terms, vec![1, 2]);
    }

    #[test]
    fn damage_before_valid_frames_fails() {
        let mut bytes = group(&[entry(1, 1)], Some(&hs(1, 0)));
        let second = bytes.len();
        bytes.extend(group(&[entry(2, 1)], Some(&hs(1, 1))));
        bytes.extend(group(&[entry(3, 1)], Some(&hs(1, 2))));
        bytes[second + 14] ^= 0x01;
        let (result, _) = replay(&bytes);
        let err = result.err().unwrap_or_default();
        assert!(err.contains(&format!("damaged at byte {second}")), "{err}");
        // Damage with nothing valid after it is the torn last append: its
        // whole group goes.
        let mut last = group(&[entry(1, 1)], Some(&hs(1, 0)));
        let first_group = last.len() as u64;
        last.extend(group(&[entry(2, 1)], Some(&hs(1, 1))));
        let commit_frame = last.len() - 17;
        last[commit_frame + 14] ^= 0x01;
        let (result, mirror) = replay(&last);
        assert_eq!(result.map(|r| r.valid_bytes), Ok(first_group));
        assert_eq!(mirror.last_index(), 1);
        // Inside the last group but with valid frames after: no proof it
        // was never acknowledged, so it is damage.
        last[commit_frame + 14] ^= 0x01;
        last[first_group as usize + 14] ^= 0x01;
        assert!(replay(&last).0.is_err());
    }

    #[test]
    fn gaps_and_a_missing_header_fail() {
        let mut bytes = group(&[entry(1, 1)], Some(&hs(1, 0)));
        bytes.extend(group(&[entry(3, 1)], None));
        let err = replay(&bytes).0.err().unwrap_or_default();
        assert!(
            err.contains("entry 3 does not follow the log (1 ..= 1)"),
            "{err}"
        );
        let headless = group(&[entry(1, 1)], None);
        let err = replay(&headless).0.err().unwrap_or_default();
        assert!(err.contains("header group"), "{err}");
        let err = replay(&[]).0.err().unwrap_or_default();
        assert!(err.contains("header group"), "{err}");
    }
}
