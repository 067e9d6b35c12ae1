//! What every coordinator kept in an internal topic shares, sans IO: the
//! records it writes and replays, and Kafka's key -> partition hash.
//! (The group coordinator lives in `__consumer_offsets`; the transaction
//! coordinator will live in `__transaction_state`.)

use bytes::Bytes;

/// One record of an internal topic; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalRecord {
    pub partition: i32,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Kafka's partition of an internal topic for a key (group id or
/// transactional id):
/// `(String.hashCode(key) & 0x7fffffff) % partitions`, with Java's
/// hash over UTF-16 code units, so a key lands where Kafka puts it.
pub fn partition_for_key(key: &str, partitions: i32) -> i32 {
    assert!(
        partitions > 0,
        "internal topics have at least one partition"
    );
    let hash = key.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    (hash & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash() {
        // "a".hashCode() = 97; "group".hashCode() = 98629247.
        assert_eq!(partition_for_key("a", 50), 97 % 50);
        assert_eq!(partition_for_key("group", 50), 98_629_247 % 50);
        // "polygenelubricants".hashCode() = Integer.MIN_VALUE: masked to 0.
        assert_eq!(partition_for_key("polygenelubricants", 50), 0);
        assert_eq!(partition_for_key("", 50), 0);
    }
}
