//! Java `.properties` text, the format of Kafka's `--command-config`
//! files: `key=value`, `key: value` or `key value`; `#` and `!` comments;
//! a line ending in an odd number of backslashes goes on on the next one
//! (a `sasl.jaas.config` is often split so); `\t`, `\n`, `\uXXXX` and
//! `\x` (x itself) escapes. The last occurrence of a key wins, as in
//! `java.util.Properties`.

use std::collections::BTreeMap;

/// A key and its value, with the line the entry started on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub value: String,
}

/// Parses `text`; it cannot fail, as Java's loader does not (a stray
/// backslash stands for nothing, a bad `\u` for the characters after it).
pub fn parse(text: &str) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let mut logical = first.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while continues(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split(&logical);
        entries.insert(
            unescape(key),
            Entry {
                line: index + 1,
                value: unescape(value),
            },
        );
    }
    entries
}

/// An odd number of trailing backslashes: the last one joins lines.
fn continues(line: &str) -> bool {
    line.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// The raw key and raw value of one logical line.
fn split(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || c.is_whitespace() {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let rest = line[key_end..].trim_start();
    let rest = match rest.strip_prefix(['=', ':']) {
        Some(after) => after.trim_start(),
        None => rest,
    };
    (key, rest)
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) if hex.len() == 4 => {
                        out.push(decoded);
                        chars.nth(3);
                    }
                    _ => out.push('u'),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(entries: &BTreeMap<String, Entry>, key: &str) -> Option<String> {
        entries.get(key).map(|e| e.value.clone())
    }

    #[test]
    fn separators_comments_and_continuations() {
        let text = "# a comment\n\
                    ! another\n\
                    \n\
                    security.protocol=SASL_SSL\n\
                    sasl.mechanism : SCRAM-SHA-512\n\
                    ssl.truststore.location /etc/ca.pem\n\
                    sasl.jaas.config=org.example.Module required \\\n    \
                    username=\"a\" \\\n    password=\"b\";\n\
                    empty=\n\
                    a\\=b=c\\u0041\\tX\n\
                    dup=1\n\
                    dup=2\n";
        let entries = parse(text);
        assert_eq!(value(&entries, "security.protocol").unwrap(), "SASL_SSL");
        assert_eq!(value(&entries, "sasl.mechanism").unwrap(), "SCRAM-SHA-512");
        assert_eq!(
            value(&entries, "ssl.truststore.location").unwrap(),
            "/etc/ca.pem"
        );
        assert_eq!(
            value(&entries, "sasl.jaas.config").unwrap(),
            "org.example.Module required username=\"a\" password=\"b\";"
        );
        assert_eq!(value(&entries, "empty").unwrap(), "");
        assert_eq!(value(&entries, "a=b").unwrap(), "cA\tX");
        assert_eq!(value(&entries, "dup").unwrap(), "2");
        assert_eq!(entries["sasl.mechanism"].line, 5);
        assert_eq!(entries.len(), 7);
    }

    #[test]
    fn odd_input_is_not_a_panic() {
        for text in [
            "\\",
            "k=\\",
            "k=\\u12",
            "k=\\uZZZZ",
            "=v",
            ":",
            "k\\\\\nnext=1",
        ] {
            let _ = parse(text);
        }
        assert_eq!(value(&parse("k\\\\\nnext=1"), "next").unwrap(), "1");
        assert_eq!(value(&parse("k=\\u12"), "k").unwrap(), "u12");
    }
}
