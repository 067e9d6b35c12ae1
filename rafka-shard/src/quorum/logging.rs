//! raft-rs logs through slog; this drain hands its lines to `tracing`
//! (target `rafka::quorum::raft`), so the quorum's elections and step-downs
//! appear in the broker's log with everything else.

use std::fmt::Write as _;

use slog::{Drain, Level, OwnedKVList, Record, KV};

struct TracingDrain;

/// Collects a record's key-value pairs as ` key=value`.
struct Fields(String);

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields(String::new());
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let message = record.msg();
        let fields = fields.0;
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "rafka::quorum::raft", "{message}{fields}")
            }
            Level::Warning => tracing::warn!(target: "rafka::quorum::raft", "{message}{fields}"),
            Level::Info => tracing::info!(target: "rafka::quorum::raft", "{message}{fields}"),
            Level::Debug => tracing::debug!(target: "rafka::quorum::raft", "{message}{fields}"),
            Level::Trace => tracing::trace!(target: "rafka::quorum::raft", "{message}{fields}"),
        }
        Ok(())
    }
}

/// The logger given to raft-rs.
pub fn raft_logger(node_id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("node" => node_id))
}
