//! A check of a raft message's protobuf bytes before rust-protobuf 2
//! parses them: rust-protobuf 2 skips an unknown field of the group wire
//! types by recursing without a depth limit (RUSTSEC-2024-0437), so a few
//! megabytes of nested group tags would overflow the stack and abort the
//! process. Raft messages never contain groups, so any group tag at a
//! level protobuf would parse is refused here, as is a malformed varint,
//! length or wire type. Only the levels the parser walks are walked:
//! `Message` -> `Entry` (field 7) and `Snapshot` (9) -> `SnapshotMetadata`
//! (2) -> `ConfState` (1); bytes fields (data, context) are opaque.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Message,
    Entry,
    Snapshot,
    SnapshotMetadata,
    ConfState,
}

impl Level {
    /// The embedded message a length-delimited field of this level holds.
    fn child(self, field: u64) -> Option<Level> {
        match (self, field) {
            (Level::Message, 7) => Some(Level::Entry),
            (Level::Message, 9) => Some(Level::Snapshot),
            (Level::Snapshot, 2) => Some(Level::SnapshotMetadata),
            (Level::SnapshotMetadata, 1) => Some(Level::ConfState),
            _ => None,
        }
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn walk(bytes: &[u8], level: Level) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        let Some(tag) = varint(bytes, &mut at) else {
            return false;
        };
        let (field, wire_type) = (tag >> 3, tag & 7);
        let ok = match wire_type {
            0 => varint(bytes, &mut at).is_some(),
            1 => {
                at += 8;
                at <= bytes.len()
            }
            5 => {
                at += 4;
                at <= bytes.len()
            }
            2 => {
                let Some(len) = varint(bytes, &mut at) else {
                    return false;
                };
                let Some(end) = usize::try_from(len).ok().and_then(|l| at.checked_add(l)) else {
                    return false;
                };
                let Some(body) = bytes.get(at..end) else {
                    return false;
                };
                at = end;
                level.child(field).is_none_or(|child| walk(body, child))
            }
            // 3, 4: groups; 6, 7: not wire types.
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `bytes` may be handed to rust-protobuf as an `eraftpb.Message`.
pub(crate) fn parseable_message(bytes: &[u8]) -> bool {
    walk(bytes, Level::Message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message as _;
    use raft::prelude::{ConfState, Entry, Message, MessageType, Snapshot};

    #[test]
    fn real_messages_pass() {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgSnapshot);
        message.to = 2;
        message.from = 1;
        message.term = 7;
        let entry = Entry {
            index: 3,
            data: vec![0x1b; 40].into(),
            ..Default::default()
        };
        message.entries = vec![entry].into();
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 9;
        snapshot
            .mut_metadata()
            .set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        // Opaque data may hold anything, group tags included.
        snapshot.data = vec![0x0b; 100].into();
        message.set_snapshot(snapshot);
        let bytes = message.write_to_bytes().expect("encodes");
        assert!(parseable_message(&bytes));
        assert!(parseable_message(&[]));
    }

    #[test]
    fn groups_and_malformed_bytes_are_refused() {
        // 10 MB of nested start-group tags: the stack overflow's input.
        assert!(!parseable_message(&vec![0x0b; 10 << 20]));
        // A start group hidden in an entry (field 7 of Message).
        assert!(!parseable_message(&[0x3a, 0x02, 0x0b, 0x0c]));
        // Truncated varint, length past the end, wire type 6.
        assert!(!parseable_message(&[0x08, 0x80]));
        assert!(!parseable_message(&[0x62, 0x05, 0x00]));
        assert!(!parseable_message(&[0x0e]));
    }
}
