//! What the transaction APIs share when answering: the error codes older
//! request versions cannot carry.

use rafka_proto::error::ErrorCode;

/// PRODUCER_FENCED exists from some version of each transaction API on
/// (KIP-588); before it Kafka answers INVALID_PRODUCER_EPOCH, which older
/// clients treat as fencing.
pub(crate) fn for_version(code: ErrorCode, version: i16, fenced_from: i16) -> ErrorCode {
    match code {
        ErrorCode::PRODUCER_FENCED if version < fenced_from => ErrorCode::INVALID_PRODUCER_EPOCH,
        code => code,
    }
}
