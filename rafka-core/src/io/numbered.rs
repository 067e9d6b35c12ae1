//! Directories of files named by a 20-digit number and a suffix
//! (`<n>.log`, `<n>.snapshot`) plus `.tmp` leftovers of interrupted
//! writes: the single-node metadata log's and the quorum log's.

use std::path::Path;

use super::{IoError, Storage};

/// The number in a `<20 digits><suffix>` file name.
pub(crate) fn parse_name(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a directory holds, numbers ascending.
pub(crate) struct Listing {
    pub(crate) logs: Vec<u64>,
    pub(crate) snapshots: Vec<u64>,
    pub(crate) temps: Vec<String>,
}

pub(crate) async fn list<S: Storage>(storage: &S, dir: &Path) -> Result<Listing, IoError> {
    let mut listing = Listing {
        logs: Vec::new(),
        snapshots: Vec::new(),
        temps: Vec::new(),
    };
    for name in storage.list_dir(dir).await? {
        if let Some(base) = parse_name(&name, ".log") {
            listing.logs.push(base);
        } else if let Some(index) = parse_name(&name, ".snapshot") {
            listing.snapshots.push(index);
        } else if name.ends_with(".tmp") {
            listing.temps.push(name);
        }
    }
    listing.logs.sort_unstable();
    listing.snapshots.sort_unstable();
    Ok(listing)
}
