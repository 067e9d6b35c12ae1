//! Wire shapes of the transaction APIs: the producer's (AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, TxnOffsetCommit), the coordinator's markers
//! (WriteTxnMarkers) and the admin ones (DescribeTransactions,
//! ListTransactions). Same conventions as the parent module. None of these
//! requests has a known tagged field in kafka-protocol 0.18.

use crate::api::shape::build::{all, from, shape, until, BOOL, I16, I32, I32S, I64, I64S, STRS};
use crate::api::shape::Kind::{Str, StructArray};
use crate::api::shape::Shape;

/// v4+ batches transactions (sent by brokers, `verify_only` for KIP-890's
/// produce-path check); v0-3 carry one producer's fields at the top level.
pub(crate) static ADD_PARTITIONS_TO_TXN: Shape = shape(
    "AddPartitionsToTxnRequest",
    &[
        from(4, StructArray(&ADD_PARTITIONS_TO_TXN_TRANSACTION)), // transactions
        until(3, Str),                                            // v3_and_below_transactional_id
        until(3, I64),                                            // v3_and_below_producer_id
        until(3, I16),                                            // v3_and_below_producer_epoch
        until(3, StructArray(&ADD_PARTITIONS_TO_TXN_TOPIC)),      // v3_and_below_topics
    ],
);
static ADD_PARTITIONS_TO_TXN_TRANSACTION: Shape = shape(
    "AddPartitionsToTxnTransaction",
    &[
        from(4, Str),                                       // transactional_id
        from(4, I64),                                       // producer_id
        from(4, I16),                                       // producer_epoch
        from(4, BOOL),                                      // verify_only
        from(4, StructArray(&ADD_PARTITIONS_TO_TXN_TOPIC)), // topics
    ],
);
static ADD_PARTITIONS_TO_TXN_TOPIC: Shape = shape(
    "AddPartitionsToTxnTopic",
    &[
        all(Str),  // name
        all(I32S), // partitions
    ],
);

pub(crate) static ADD_OFFSETS_TO_TXN: Shape = shape(
    "AddOffsetsToTxnRequest",
    &[
        all(Str), // transactional_id
        all(I64), // producer_id
        all(I16), // producer_epoch
        all(Str), // group_id
    ],
);

pub(crate) static END_TXN: Shape = shape(
    "EndTxnRequest",
    &[
        all(Str),  // transactional_id
        all(I64),  // producer_id
        all(I16),  // producer_epoch
        all(BOOL), // committed
    ],
);

/// Only v1 (flexible) is decodable: kafka-protocol 0.18 dropped v0.
pub(crate) static WRITE_TXN_MARKERS: Shape = shape(
    "WriteTxnMarkersRequest",
    &[
        all(StructArray(&WRITE_TXN_MARKERS_MARKER)), // markers
    ],
);
static WRITE_TXN_MARKERS_MARKER: Shape = shape(
    "WritableTxnMarker",
    &[
        all(I64),                                   // producer_id
        all(I16),                                   // producer_epoch
        all(BOOL),                                  // transaction_result
        all(StructArray(&WRITE_TXN_MARKERS_TOPIC)), // topics
        all(I32),                                   // coordinator_epoch
    ],
);
static WRITE_TXN_MARKERS_TOPIC: Shape = shape(
    "WritableTxnMarkerTopic",
    &[
        all(Str),  // name
        all(I32S), // partition_indexes
    ],
);

pub(crate) static TXN_OFFSET_COMMIT: Shape = shape(
    "TxnOffsetCommitRequest",
    &[
        all(Str),                                   // transactional_id
        all(Str),                                   // group_id
        all(I64),                                   // producer_id
        all(I16),                                   // producer_epoch
        from(3, I32),                               // generation_id
        from(3, Str),                               // member_id
        from(3, Str),                               // group_instance_id (nullable)
        all(StructArray(&TXN_OFFSET_COMMIT_TOPIC)), // topics
    ],
);
static TXN_OFFSET_COMMIT_TOPIC: Shape = shape(
    "TxnOffsetCommitRequestTopic",
    &[
        all(Str),                                       // name
        all(StructArray(&TXN_OFFSET_COMMIT_PARTITION)), // partitions
    ],
);
static TXN_OFFSET_COMMIT_PARTITION: Shape = shape(
    "TxnOffsetCommitRequestPartition",
    &[
        all(I32),     // partition_index
        all(I64),     // committed_offset
        from(2, I32), // committed_leader_epoch
        all(Str),     // committed_metadata (nullable)
    ],
);

pub(crate) static DESCRIBE_TRANSACTIONS: Shape = shape(
    "DescribeTransactionsRequest",
    &[
        all(STRS), // transactional_ids
    ],
);

pub(crate) static LIST_TRANSACTIONS: Shape = shape(
    "ListTransactionsRequest",
    &[
        all(STRS),    // state_filters
        all(I64S),    // producer_id_filters
        from(1, I64), // duration_filter
        from(2, Str), // transactional_id_pattern (nullable)
    ],
);
