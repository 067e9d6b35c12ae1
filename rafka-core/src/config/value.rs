//! Typed parsing of one config value (broker or topic), with the error that
//! names the key, the value and what was expected. Values are trimmed first,
//! as Kafka's `ConfigDef` does for every typed key.

use std::fmt;

/// What a key accepts; shown to the operator or client when a value is bad.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expected {
    /// An integer within `[min, max]` (bounds of the key's own width).
    Int { min: i64, max: i64 },
    /// A decimal number within `[min, max]`.
    Double { min: f64, max: f64 },
    /// `true` or `false`, any case.
    Bool,
    /// Exactly one of these names.
    OneOf(&'static [&'static str]),
    /// A comma-separated, non-empty subset of these names.
    ListOf(&'static [&'static str]),
    /// `NAME://host:port[,NAME://host:port...]` with distinct names and ports.
    Listeners,
    /// `Type:name[;Type:name...]`, e.g. `User:alice`.
    Principals,
    /// A non-empty comma-separated list.
    NonEmptyList,
    /// `id@host:port[,id@host:port...]` (`controller.quorum.voters`).
    QuorumVoters,
    /// `host:port[,host:port...]`.
    HostPorts,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Expected::Int { min, max } => {
                let unbounded_max = max == i64::from(i32::MAX) || max == i64::MAX;
                let unbounded_min = min == i64::from(i32::MIN) || min == i64::MIN;
                match (unbounded_min, unbounded_max) {
                    (true, true) => write!(f, "an integer"),
                    (false, true) => write!(f, "an integer >= {min}"),
                    _ => write!(f, "an integer in [{min}, {max}]"),
                }
            }
            Expected::Double { min, max } => write!(f, "a number in [{min}, {max}]"),
            Expected::Bool => write!(f, "true or false"),
            Expected::OneOf(names) => write!(f, "one of {}", names.join(", ")),
            Expected::ListOf(names) => {
                write!(f, "a comma-separated list of {}", names.join(", "))
            }
            Expected::Listeners => write!(f, "a comma-separated list of NAME://host:port"),
            Expected::Principals => write!(f, "a ;-separated list of Type:name"),
            Expected::NonEmptyList => write!(f, "a non-empty comma-separated list"),
            Expected::QuorumVoters => write!(f, "a comma-separated list of id@host:port"),
            Expected::HostPorts => write!(f, "a comma-separated list of host:port"),
        }
    }
}

/// A value that does not parse or is out of range for its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid value {value:?} for {key}: expected {expected}")]
pub struct InvalidValue {
    pub key: String,
    pub value: String,
    pub expected: Expected,
}

impl InvalidValue {
    pub fn new(key: &str, value: &str, expected: Expected) -> Self {
        InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            expected,
        }
    }
}

pub fn parse_i64(key: &str, value: &str, min: i64, max: i64) -> Result<i64, InvalidValue> {
    let expected = Expected::Int { min, max };
    match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(InvalidValue::new(key, value, expected)),
    }
}

pub fn parse_i32(key: &str, value: &str, min: i32, max: i32) -> Result<i32, InvalidValue> {
    let expected = Expected::Int {
        min: min.into(),
        max: max.into(),
    };
    match value.trim().parse::<i32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(InvalidValue::new(key, value, expected)),
    }
}

pub fn parse_f64(key: &str, value: &str, min: f64, max: f64) -> Result<f64, InvalidValue> {
    match value.trim().parse::<f64>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(InvalidValue::new(key, value, Expected::Double { min, max })),
    }
}

pub fn parse_bool(key: &str, value: &str) -> Result<bool, InvalidValue> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(InvalidValue::new(key, value, Expected::Bool))
    }
}

/// Index of the (exact, trimmed) name in `names`.
pub fn parse_one_of(
    key: &str,
    value: &str,
    names: &'static [&'static str],
) -> Result<usize, InvalidValue> {
    let v = value.trim();
    names
        .iter()
        .position(|n| *n == v)
        .ok_or_else(|| InvalidValue::new(key, value, Expected::OneOf(names)))
}

/// Items of a comma-separated list, trimmed, empty items dropped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_are_trimmed_and_range_checked() {
        assert_eq!(parse_i32("k", " 42 ", 0, 100), Ok(42));
        assert_eq!(parse_i32("k", "+7", 0, 100), Ok(7));
        let err = parse_i32("k", "101", 0, 100).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("invalid value \"101\" for k: expected an integer in [0, 100]".to_string())
        );
        assert!(parse_i32("k", "2147483648", 0, i32::MAX).is_err());
        assert!(parse_i64("k", "1e3", 0, i64::MAX).is_err());
    }

    #[test]
    fn bools_ignore_case_only() {
        assert_eq!(parse_bool("k", "TRUE"), Ok(true));
        assert_eq!(parse_bool("k", " false"), Ok(false));
        assert!(parse_bool("k", "yes").is_err());
        assert!(parse_bool("k", "1").is_err());
    }

    #[test]
    fn doubles_reject_nan() {
        assert_eq!(parse_f64("k", "0.5", 0.0, 1.0), Ok(0.5));
        assert!(parse_f64("k", "NaN", 0.0, 1.0).is_err());
        assert!(parse_f64("k", "1.5", 0.0, 1.0).is_err());
    }
}
