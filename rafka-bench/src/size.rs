//! Byte sizes on the command line: a plain count or a binary suffix
//! (`16384`, `64KiB`, `512MiB`, `1GiB`).

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("invalid size {0:?}: expected a number with an optional KiB/MiB/GiB suffix")]
    Invalid(String),
    #[error("size {0:?} overflows 64 bits")]
    Overflow(String),
}

pub fn parse_bytes(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(split);
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(SizeError::Invalid(text.to_owned())),
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| SizeError::Invalid(text.to_owned()))?;
    count
        .checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_bytes("16384"), Ok(16_384));
        assert_eq!(parse_bytes("64KiB"), Ok(65_536));
        assert_eq!(parse_bytes("512MiB"), Ok(536_870_912));
        assert_eq!(parse_bytes("1GiB"), Ok(1_073_741_824));
        assert_eq!(parse_bytes("2 g"), Ok(2_147_483_648));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_bytes("MiB"), Err(SizeError::Invalid("MiB".into())));
        assert_eq!(parse_bytes("5TB"), Err(SizeError::Invalid("5TB".into())));
        assert_eq!(parse_bytes("-1"), Err(SizeError::Invalid("-1".into())));
        let huge = "99999999999999GiB";
        assert_eq!(parse_bytes(huge), Err(SizeError::Overflow(huge.into())));
    }
}
