//! Kafka's topic name rules: `[a-zA-Z0-9._-]`, 1 to 249 chars, not `.` or
//! `..` (they would name the data dir or its parent). Names equal after
//! mapping `.` to `_` collide in metric names, so the controller rejects a
//! new name that collides with an existing one, as Kafka does.

use rafka_proto::error::ErrorCode;

/// 255 (a file name on most filesystems) minus room for `-<partition>` and
/// the `.deleted`-style suffixes Kafka appends to partition dirs.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;

/// A name Kafka would refuse (INVALID_TOPIC_EXCEPTION, code 17).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name cannot be \".\" or \"..\"")]
    DotName,
    #[error(
        "topic name is {length} characters long, more than the {TOPIC_NAME_LENGTH_MAX} allowed"
    )]
    TooLong { length: usize },
    #[error("topic name {name:?} contains {bad:?}; legal characters are ASCII alphanumerics, '.', '_' and '-'")]
    IllegalChar { name: String, bad: char },
    #[error(
        "topic {name:?} collides with existing topic {existing:?} ('.' and '_' are equivalent)"
    )]
    Collides { name: String, existing: String },
}

impl TopicNameError {
    /// INVALID_TOPIC_EXCEPTION.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::INVALID_TOPIC_EXCEPTION
    }
}

fn is_legal(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::DotName);
    }
    // Counted in chars: a multi-byte char is illegal anyway, and reporting
    // it as such beats reporting a length.
    if let Some(bad) = name.chars().find(|&c| !is_legal(c)) {
        return Err(TopicNameError::IllegalChar {
            name: name.to_string(),
            bad,
        });
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(TopicNameError::TooLong { length: name.len() });
    }
    Ok(())
}

/// The form two names share when they collide: `.` mapped to `_`.
pub fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// Whether the name contains a char that can collide (`.` or `_`).
pub fn has_collision_chars(name: &str) -> bool {
    name.contains(['.', '_'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_names() {
        assert_eq!(validate_topic_name("orders.v1_eu-west"), Ok(()));
        assert_eq!(validate_topic_name("..."), Ok(()));
        assert_eq!(validate_topic_name(&"a".repeat(249)), Ok(()));
    }

    #[test]
    fn illegal_names() {
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::DotName));
        assert_eq!(
            validate_topic_name(&"a".repeat(250)),
            Err(TopicNameError::TooLong { length: 250 })
        );
        assert_eq!(
            validate_topic_name("a/b"),
            Err(TopicNameError::IllegalChar {
                name: "a/b".to_string(),
                bad: '/'
            })
        );
        assert!(matches!(
            validate_topic_name("caf\u{e9}"),
            Err(TopicNameError::IllegalChar { bad: '\u{e9}', .. })
        ));
    }

    #[test]
    fn collisions() {
        assert_eq!(collision_key("a.b_c"), "a_b_c");
        assert!(has_collision_chars("a.b"));
        assert!(!has_collision_chars("ab-c"));
    }
}
