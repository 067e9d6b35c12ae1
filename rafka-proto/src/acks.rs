//! Produce's `acks`: how much durability the producer waits for.

/// The `acks` of a Produce request, as a type instead of `-1 / 0 / 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Acks {
    /// `acks=0`: no response at all.
    None,
    /// `acks=1`: answered once the leader appended the records.
    Leader,
    /// `acks=all` (`-1`): answered once the records are durable (fsync'd;
    /// with replication, on the in-sync replicas).
    All,
}

impl Acks {
    /// The request's value; anything but -1, 0, 1 is INVALID_REQUIRED_ACKS.
    pub const fn from_wire(acks: i16) -> Option<Acks> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }

    pub const fn to_wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for acks in [Acks::None, Acks::Leader, Acks::All] {
            assert_eq!(Acks::from_wire(acks.to_wire()), Some(acks));
        }
        for bad in [-2, 2, i16::MIN, i16::MAX] {
            assert_eq!(Acks::from_wire(bad), None);
        }
    }
}
