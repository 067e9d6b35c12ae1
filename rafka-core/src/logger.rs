//! Logger levels an operator can change at runtime: Kafka's BROKER_LOGGER
//! config resource (DescribeConfigs / IncrementalAlterConfigs), mapped to
//! `tracing` targets.
//!
//! A logger is `root` (every target) or a target prefix (`rafka_net`,
//! `rafka_shard::partition`, ...); its level is one of Kafka's names
//! (TRACE, DEBUG, INFO, WARN, ERROR, FATAL = ERROR, OFF). The binary
//! installs an applier that rebuilds its log filter from
//! [`directives`]; without one (tests in process) levels are still kept
//! and described. As in Kafka, levels are not persisted: a restart goes
//! back to `RUST_LOG` / the default.
//!
//! Lives on: the process (one set of levels behind a mutex; only admin
//! requests touch it, never a data path).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::config::describe::{ConfigType, DescribedConfig};
use crate::config::ConfigSource;

/// The root logger's name, as Kafka's.
pub const ROOT: &str = "root";

/// Level names accepted, as Kafka's log4j levels.
const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"];

/// Applies new filter directives (e.g. `info,rafka_net=debug`).
pub type Applier = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct Loggers {
    root: String,
    levels: BTreeMap<String, String>,
    applier: Option<Applier>,
}

static LOGGERS: Mutex<Loggers> = Mutex::new(Loggers {
    root: String::new(),
    levels: BTreeMap::new(),
    applier: None,
});

/// Why a logger change was refused (INVALID_CONFIG).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoggerError {
    #[error("invalid log level {level:?} for logger {logger}: expected one of {LEVELS:?}")]
    InvalidLevel { logger: String, level: String },
    #[error("invalid logger name {0:?}")]
    InvalidName(String),
    #[error("removing the log level of the root logger is not allowed")]
    RootRemoval,
    #[error("the log filter could not be applied: {0}")]
    Apply(String),
}

/// A change to one logger: a new level, or back to the root's (None).
pub type LoggerChange = (String, Option<String>);

/// Called once by the binary with its initial filter (`RUST_LOG`, e.g.
/// `info,rafka_net=debug`) and the applier that installs new directives.
/// Plain `level` and `target=level` directives become the root's and the
/// loggers' levels; any other directive (span or field filters) is
/// dropped on the first change.
pub fn install(initial: &str, applier: Applier) {
    let mut loggers = lock();
    for directive in initial.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level_of = |level: &str| {
            let level = level.to_ascii_uppercase();
            LEVELS.contains(&level.as_str()).then_some(level)
        };
        match directive.split_once('=') {
            None => {
                if let Some(level) = level_of(directive) {
                    loggers.root = level;
                }
            }
            Some((target, level)) => {
                if let Some(level) = level_of(level) {
                    if check(target, Some(&level)).is_ok() {
                        loggers.levels.insert(target.to_string(), level);
                    }
                }
            }
        }
    }
    loggers.applier = Some(applier);
}

/// The filter directives of the current levels.
pub fn directives() -> String {
    render(&lock())
}

/// Every logger with its level: root first, then the set ones by name.
pub fn describe() -> Vec<DescribedConfig> {
    let loggers = lock();
    let root = root_level(&loggers);
    let mut out = vec![described(ROOT, &root)];
    out.extend(
        loggers
            .levels
            .iter()
            .map(|(name, level)| described(name, level)),
    );
    out
}

/// Checks `changes` without applying them.
pub fn validate(changes: &[LoggerChange]) -> Result<(), LoggerError> {
    for (logger, level) in changes {
        check(logger, level.as_deref())?;
    }
    Ok(())
}

/// Applies `changes` all or nothing.
pub fn alter(changes: &[LoggerChange]) -> Result<(), LoggerError> {
    validate(changes)?;
    let mut loggers = lock();
    let mut next_root = loggers.root.clone();
    let mut next = loggers.levels.clone();
    for (logger, level) in changes {
        match (logger.as_str(), level) {
            (ROOT, Some(level)) => next_root = level.to_ascii_uppercase(),
            (_, Some(level)) => {
                next.insert(logger.clone(), level.to_ascii_uppercase());
            }
            (_, None) => {
                next.remove(logger);
            }
        }
    }
    let candidate = Loggers {
        root: next_root,
        levels: next,
        applier: None,
    };
    if let Some(applier) = &loggers.applier {
        applier(&render(&candidate)).map_err(LoggerError::Apply)?;
    }
    loggers.root = candidate.root;
    loggers.levels = candidate.levels;
    Ok(())
}

fn check(logger: &str, level: Option<&str>) -> Result<(), LoggerError> {
    let valid_name = !logger.is_empty()
        && logger
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'));
    if !valid_name {
        return Err(LoggerError::InvalidName(logger.to_string()));
    }
    match level {
        None if logger == ROOT => Err(LoggerError::RootRemoval),
        None => Ok(()),
        Some(level) if LEVELS.contains(&level.to_ascii_uppercase().as_str()) => Ok(()),
        Some(level) => Err(LoggerError::InvalidLevel {
            logger: logger.to_string(),
            level: level.to_string(),
        }),
    }
}

fn lock() -> std::sync::MutexGuard<'static, Loggers> {
    // The state is plain data: a panic elsewhere cannot leave it torn.
    LOGGERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn root_level(loggers: &Loggers) -> String {
    if loggers.root.is_empty() {
        "INFO".to_string()
    } else {
        loggers.root.clone()
    }
}

fn directive_level(level: &str) -> &'static str {
    match level {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "OFF" => "off",
        _ => "error",
    }
}

fn render(loggers: &Loggers) -> String {
    let mut parts = vec![directive_level(&root_level(loggers)).to_string()];
    for (name, level) in &loggers.levels {
        // Kafka-style dotted names map to Rust module paths.
        let target = name.replace('.', "::");
        parts.push(format!("{target}={}", directive_level(level)));
    }
    parts.join(",")
}

fn described(name: &str, level: &str) -> DescribedConfig {
    DescribedConfig {
        name: name.to_string(),
        value: Some(level.to_string()),
        source: ConfigSource::DynamicBrokerLogger,
        read_only: false,
        sensitive: false,
        kind: ConfigType::String,
        doc: "The level of this logger: TRACE, DEBUG, INFO, WARN, ERROR, FATAL or OFF.",
        synonyms: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_render_as_directives_and_refuse_bad_input() {
        let bad_level = vec![("rafka_net".to_string(), Some("LOUD".to_string()))];
        assert!(matches!(
            validate(&bad_level),
            Err(LoggerError::InvalidLevel { .. })
        ));
        let root_removal = vec![(ROOT.to_string(), None)];
        assert_eq!(validate(&root_removal), Err(LoggerError::RootRemoval));
        let bad_name = vec![("a b".to_string(), Some("INFO".to_string()))];
        assert!(matches!(
            validate(&bad_name),
            Err(LoggerError::InvalidName(_))
        ));
        let loggers = Loggers {
            root: "WARN".to_string(),
            levels: BTreeMap::from([
                ("rafka_net.connection".to_string(), "DEBUG".to_string()),
                ("rafka_shard".to_string(), "FATAL".to_string()),
            ]),
            applier: None,
        };
        assert_eq!(
            render(&loggers),
            "warn,rafka_net::connection=debug,rafka_shard=error"
        );
    }
}
