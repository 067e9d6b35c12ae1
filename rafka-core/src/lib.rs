//! rafka-core: broker logic that does no IO of its own.
//!
//! # Layout
//! - `io`: the [`io::Storage`] / [`io::StorageFile`] traits the log writes
//!   through, and the [`io::Clock`].

pub mod io;
