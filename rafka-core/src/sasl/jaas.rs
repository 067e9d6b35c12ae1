//! Kafka's JAAS configuration syntax, as in
//! `listener.name.<listener>.<mechanism>.sasl.jaas.config`:
//!
//! ```text
//! org.apache.kafka.common.security.plain.PlainLoginModule required
//!     username="admin" password="admin-secret" user_admin="admin-secret";
//! ```
//!
//! A login module class, a control flag (`required`, `requisite`,
//! `sufficient`, `optional`, any case), `key=value` options, `;`. Values
//! are words or quoted strings (`"` or `'`, backslash escapes); `//` and
//! `/* */` comments are skipped, as Kafka's tokenizer does. Like Kafka, a
//! property holds exactly one login module. Unlike Kafka (where the last
//! one wins) a repeated option is an error: one of the two was a mistake.

use std::collections::BTreeMap;

/// One parsed `sasl.jaas.config` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    pub control_flag: ControlFlag,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlFlag {
    Required,
    Requisite,
    Sufficient,
    Optional,
}

/// What is wrong with a JAAS config; positions are byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JaasError {
    #[error("JAAS config contains no login module")]
    Empty,
    #[error("JAAS config contains {0} login modules, should be 1")]
    ManyModules(usize),
    #[error("JAAS config: expected a login module class at byte {at}")]
    NoLoginModule { at: usize },
    #[error("JAAS config: login module control flag not specified")]
    NoControlFlag,
    #[error("JAAS config: invalid login module control flag {0:?}")]
    BadControlFlag(String),
    #[error("JAAS config: expected an option name or ';' at byte {at}")]
    NoKey { at: usize },
    #[error("JAAS config: value not specified for key {0:?}")]
    NoValue(String),
    #[error("JAAS config: option {0:?} given twice")]
    DuplicateOption(String),
    #[error("JAAS config: entry not terminated by semi-colon")]
    NotTerminated,
    #[error("JAAS config: quoted string from byte {at} never ends")]
    UnterminatedQuote { at: usize },
    #[error("JAAS config: comment from byte {at} never ends")]
    UnterminatedComment { at: usize },
    #[error("JAAS config: unexpected {ch:?} at byte {at}")]
    UnexpectedChar { at: usize, ch: char },
    #[error("JAAS config uses login module {found}, expected {expected}")]
    WrongLoginModule {
        found: String,
        expected: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

impl JaasConfig {
    /// Parses a property holding exactly one login module.
    pub fn parse(text: &str) -> Result<JaasConfig, JaasError> {
        let tokens = tokenize(text)?;
        let mut entries = Vec::new();
        let mut tokens = tokens.into_iter().peekable();
        while tokens.peek().is_some() {
            entries.push(parse_entry(&mut tokens)?);
        }
        match entries.len() {
            0 => Err(JaasError::Empty),
            1 => Ok(entries.remove(0)),
            n => Err(JaasError::ManyModules(n)),
        }
    }

    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }
}

type Tokens = std::iter::Peekable<std::vec::IntoIter<(usize, Token)>>;

fn parse_entry(tokens: &mut Tokens) -> Result<JaasConfig, JaasError> {
    let login_module = match tokens.next() {
        Some((_, Token::Word(w))) => w,
        Some((at, _)) => return Err(JaasError::NoLoginModule { at }),
        None => return Err(JaasError::Empty),
    };
    let control_flag = match tokens.next() {
        Some((_, Token::Word(w))) => control_flag(&w)?,
        _ => return Err(JaasError::NoControlFlag),
    };
    let mut options = BTreeMap::new();
    loop {
        let key = match tokens.next() {
            Some((_, Token::Semicolon)) => break,
            Some((_, Token::Word(key))) => key,
            Some((at, _)) => return Err(JaasError::NoKey { at }),
            None => return Err(JaasError::NotTerminated),
        };
        let value = match (tokens.next(), tokens.next()) {
            (Some((_, Token::Equals)), Some((_, Token::Word(v) | Token::Quoted(v)))) => v,
            _ => return Err(JaasError::NoValue(key)),
        };
        if options.contains_key(&key) {
            return Err(JaasError::DuplicateOption(key));
        }
        options.insert(key, value);
    }
    Ok(JaasConfig {
        login_module,
        control_flag,
        options,
    })
}

fn control_flag(word: &str) -> Result<ControlFlag, JaasError> {
    match word.to_ascii_lowercase().as_str() {
        "required" => Ok(ControlFlag::Required),
        "requisite" => Ok(ControlFlag::Requisite),
        "sufficient" => Ok(ControlFlag::Sufficient),
        "optional" => Ok(ControlFlag::Optional),
        _ => Err(JaasError::BadControlFlag(word.to_string())),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '$' | '.')
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, JaasError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '=' => tokens.push((at, Token::Equals)),
            ';' => tokens.push((at, Token::Semicolon)),
            '/' if text[at..].starts_with("//") => {
                while chars.next_if(|(_, c)| *c != '\n').is_some() {}
            }
            '/' if text[at..].starts_with("/*") => {
                let end = text[at + 2..]
                    .find("*/")
                    .ok_or(JaasError::UnterminatedComment { at })?;
                let resume = at + 2 + end + 2;
                while chars.next_if(|(i, _)| *i < resume).is_some() {}
            }
            '"' | '\'' => {
                let value = quoted(&mut chars, c).ok_or(JaasError::UnterminatedQuote { at })?;
                tokens.push((at, Token::Quoted(value)));
            }
            c if is_word_char(c) => {
                let mut word = String::from(c);
                while let Some((_, c)) = chars.next_if(|(_, c)| is_word_char(*c)) {
                    word.push(c);
                }
                tokens.push((at, Token::Word(word)));
            }
            ch => return Err(JaasError::UnexpectedChar { at, ch }),
        }
    }
    Ok(tokens)
}

/// The rest of a quoted string opened by `quote`; `None` if it never ends.
fn quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    quote: char,
) -> Option<String> {
    let mut value = String::new();
    loop {
        let (_, c) = chars.next()?;
        match c {
            c if c == quote => return Some(value),
            '\\' => {
                let (_, escaped) = chars.next()?;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    other => other,
                });
            }
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
        username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
        user_alice=\"alice-secret\";";

    #[test]
    fn kafkas_example() {
        let config = JaasConfig::parse(PLAIN).unwrap();
        assert_eq!(
            config.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(config.control_flag, ControlFlag::Required);
        let options: Vec<_> = config
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            options,
            vec![
                ("password", "admin-secret"),
                ("user_admin", "admin-secret"),
                ("user_alice", "alice-secret"),
                ("username", "admin"),
            ]
        );
        assert_eq!(config.option("username"), Some("admin"));
        assert_eq!(config.option("user_bob"), None);
    }

    #[test]
    fn words_quotes_escapes_and_comments() {
        let text = "/* leading */ a.B$c-d_1 OPTIONAL // to the end of the line\n\
            k1=word k2='single \"q\"' k3=\"a\\\"b\\\\c\\nd\" k4=\"\" ;  ";
        let config = JaasConfig::parse(text).unwrap();
        assert_eq!(config.login_module, "a.B$c-d_1");
        assert_eq!(config.control_flag, ControlFlag::Optional);
        assert_eq!(config.option("k1"), Some("word"));
        assert_eq!(config.option("k2"), Some("single \"q\""));
        assert_eq!(config.option("k3"), Some("a\"b\\c\nd"));
        assert_eq!(config.option("k4"), Some(""));
        let no_options = JaasConfig::parse("M sufficient;").unwrap();
        assert!(no_options.options.is_empty());
        assert_eq!(no_options.control_flag, ControlFlag::Sufficient);
    }

    #[test]
    fn bad_syntax_is_named() {
        let cases: &[(&str, JaasError)] = &[
            ("", JaasError::Empty),
            ("  // nothing\n", JaasError::Empty),
            ("M required a=\"1\"; N required;", JaasError::ManyModules(2)),
            ("M", JaasError::NoControlFlag),
            ("M always;", JaasError::BadControlFlag("always".into())),
            ("M required a=\"1\"", JaasError::NotTerminated),
            ("M required a;", JaasError::NoValue("a".into())),
            ("M required a=;", JaasError::NoValue("a".into())),
            (
                "M required a=\"1\" a=\"2\";",
                JaasError::DuplicateOption("a".into()),
            ),
            ("M required a=\"1", JaasError::UnterminatedQuote { at: 13 }),
            (
                "M required a=\"1\\",
                JaasError::UnterminatedQuote { at: 13 },
            ),
            (
                "M required /* a=\"1\";",
                JaasError::UnterminatedComment { at: 11 },
            ),
            (
                "M required a=\"1\" ,;",
                JaasError::UnexpectedChar { at: 17, ch: ',' },
            ),
            ("M required \"a\"=\"1\";", JaasError::NoKey { at: 11 }),
            ("=M required;", JaasError::NoLoginModule { at: 0 }),
        ];
        for (text, want) in cases {
            assert_eq!(JaasConfig::parse(text).as_ref(), Err(want), "{text}");
        }
        assert_eq!(
            JaasError::ManyModules(2).to_string(),
            "JAAS config contains 2 login modules, should be 1"
        );
    }
}
