//! A reader for Java `.properties` text (the format of Kafka's
//! `server.properties`), following `java.util.Properties.load`: `#`/`!`
//! comment lines, `=`, `:` or whitespace between key and value, backslash
//! escapes (`\t \n \r \f \uXXXX`, any other escaped char stands for itself)
//! and lines continued by an odd number of trailing backslashes.
//!
//! Java reads the file as ISO-8859-1; rafka takes UTF-8 text, which is the
//! same for the ASCII every Kafka key and almost every value uses.

/// One `key=value` entry with the line it started on (1-based), so warnings
/// can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: u32,
}

/// A malformed `\uXXXX` escape: the only thing `Properties.load` rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    #[error("line {line}: malformed \\uXXXX escape")]
    MalformedUnicodeEscape { line: u32 },
    #[error("line {line}: \\u escape {code:#06x} is an unpaired UTF-16 surrogate")]
    UnpairedSurrogate { line: u32, code: u32 },
}

/// Parses properties text into entries in file order; a key given twice
/// appears twice (the later one wins when applied, as in Java).
pub fn parse_properties(text: &str) -> Result<Vec<Property>, PropertiesError> {
    let mut out = Vec::new();
    let mut lines = LogicalLines::new(text);
    while let Some((line_no, raw)) = lines.next_line() {
        let (key_raw, value_raw) = split_key_value(&raw);
        let key = unescape(key_raw, line_no)?;
        let value = unescape(value_raw, line_no)?;
        out.push(Property {
            key,
            value,
            line: line_no,
        });
    }
    Ok(out)
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Joins natural lines into logical ones, dropping comments and blank lines.
/// Escapes are kept (still raw) so the key/value split can see them.
struct LogicalLines<'a> {
    rest: &'a str,
    line_no: u32,
}

impl<'a> LogicalLines<'a> {
    fn new(text: &'a str) -> Self {
        LogicalLines {
            rest: text,
            line_no: 0,
        }
    }

    /// The next natural line (without its terminator), or None at the end.
    fn natural(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        self.line_no = self.line_no.saturating_add(1);
        let end = self.rest.find(['\n', '\r']).unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        let mut after = &self.rest[end..];
        if after.starts_with("\r\n") {
            after = &after[2..];
        } else if !after.is_empty() {
            after = &after[1..];
        }
        self.rest = after;
        Some(line)
    }

    fn next_line(&mut self) -> Option<(u32, String)> {
        loop {
            let line = self.natural()?.trim_start_matches(is_blank);
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let start = self.line_no;
            let mut joined = String::new();
            let mut piece = line;
            // A continued line's leading whitespace is not part of the value.
            while ends_with_odd_backslashes(piece) {
                joined.push_str(&piece[..piece.len() - 1]);
                match self.natural() {
                    Some(next) => piece = next.trim_start_matches(is_blank),
                    None => {
                        piece = "";
                        break;
                    }
                }
            }
            joined.push_str(piece);
            return Some((start, joined));
        }
    }
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or blank; a blank separator may be
/// followed by one `=` or `:` and more blanks.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches(is_blank);
    if rest.starts_with('=') || rest.starts_with(':') {
        rest = rest[1..].trim_start_matches(is_blank);
    }
    (key, rest)
}

fn unescape(raw: &str, line: u32) -> Result<String, PropertiesError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // A lone backslash at the very end (file ended mid-continuation).
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => out.push(unicode_escape(&mut chars, line)?),
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::Chars<'_>, line: u32) -> Result<u32, PropertiesError> {
    let mut code = 0u32;
    for _ in 0..4 {
        let digit = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or(PropertiesError::MalformedUnicodeEscape { line })?;
        code = code * 16 + digit;
    }
    Ok(code)
}

/// Decodes the XXXX after `\u`, joining a UTF-16 surrogate pair written as
/// two escapes (how Java writes characters outside the BMP).
fn unicode_escape(chars: &mut std::str::Chars<'_>, line: u32) -> Result<char, PropertiesError> {
    let code = hex4(chars, line)?;
    if !(0xD800..0xDC00).contains(&code) {
        return char::from_u32(code).ok_or(PropertiesError::UnpairedSurrogate { line, code });
    }
    let mut lookahead = chars.clone();
    if lookahead.next() == Some('\\') && lookahead.next() == Some('u') {
        let low = hex4(&mut lookahead, line)?;
        if (0xDC00..0xE000).contains(&low) {
            *chars = lookahead;
            let combined = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            return char::from_u32(combined)
                .ok_or(PropertiesError::UnpairedSurrogate { line, code });
        }
    }
    Err(PropertiesError::UnpairedSurrogate { line, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_properties(text)
            .map(|v| v.into_iter().map(|p| (p.key, p.value)).collect())
            .unwrap_or_default()
    }

    #[test]
    fn separators_and_comments() {
        let text = "# c\n! c\n\n a=1\nb : 2\nc 3\nd\te=f\ng=\nh\n";
        let expected = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "e=f"),
            ("g", ""),
            ("h", ""),
        ];
        let got = pairs(text);
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn continuation_joins_and_strips_leading_blanks() {
        let got = pairs("listeners=PLAINTEXT://a:1,\\\n    SSL://b:2\r\nx=\\\\\n");
        assert_eq!(got[0].1, "PLAINTEXT://a:1,SSL://b:2");
        assert_eq!(got[1], ("x".to_string(), "\\".to_string()));
    }

    #[test]
    fn escapes_in_keys_and_values() {
        let got = pairs("a\\=b\\ c=x\\ty\\u0041\\q\nsmile=\\uD83D\\uDE00\n");
        assert_eq!(got[0], ("a=b c".to_string(), "x\tyAq".to_string()));
        assert_eq!(got[1].1, "\u{1F600}");
    }

    #[test]
    fn bad_unicode_escape_names_the_line() {
        assert_eq!(
            parse_properties("a=1\nb=\\u12G4\n"),
            Err(PropertiesError::MalformedUnicodeEscape { line: 2 })
        );
        assert_eq!(
            parse_properties("b=\\uD800x\n"),
            Err(PropertiesError::UnpairedSurrogate {
                line: 1,
                code: 0xD800
            })
        );
    }

    #[test]
    fn comment_line_does_not_continue() {
        let got = pairs("# a \\\nb=1\n");
        assert_eq!(got, vec![("b".to_string(), "1".to_string())]);
    }

    #[test]
    fn trailing_backslash_at_eof() {
        let got = pairs("a=1\\");
        assert_eq!(got, vec![("a".to_string(), "1".to_string())]);
    }
}
