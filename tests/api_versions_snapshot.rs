//! The compatibility snapshot: `rafka api-versions --json` (the broker's
//! own handler table) must equal the committed `api-versions.json`, and
//! the README's served-APIs block must equal `rafka api-versions
//! --markdown`. A change to the served set fails here until both are
//! regenerated in the same commit; the failure prints what changed and
//! the commands that regenerate them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const REGENERATE_JSON: &str = "cargo run -p rafka -- api-versions --json > api-versions.json";
const README_BEGIN: &str = "<!-- api-versions:begin -->\n";
const README_END: &str = "<!-- api-versions:end -->";

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn rafka_api_versions(flag: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["api-versions", flag])
        .output()
        .expect("run rafka api-versions");
    assert!(
        output.status.success(),
        "rafka api-versions {flag}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Each API's line of the snapshot by api key (its JSON object and the
/// line as written), or why the text is not a snapshot.
fn apis_by_key(text: &str) -> Result<BTreeMap<i64, (Value, String)>, String> {
    let parsed: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let apis = parsed.as_array().ok_or("not a JSON array")?;
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.trim().trim_end_matches(','))
        .filter(|line| line.starts_with('{'))
        .collect();
    let mut by_key = BTreeMap::new();
    for (i, api) in apis.iter().enumerate() {
        let key = api["api_key"].as_i64().ok_or("an API without api_key")?;
        let line = lines
            .get(i)
            .map_or_else(|| api.to_string(), |l| l.to_string());
        by_key.insert(key, (api.clone(), line));
    }
    Ok(by_key)
}

/// Added, removed and changed APIs between the committed snapshot and the
/// current table, one line each (`+`, `-`, `~` with the fields that differ).
fn difference(committed: &str, current: &str) -> String {
    let (old, new) = match (apis_by_key(committed), apis_by_key(current)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(error), _) => return format!("api-versions.json is unreadable: {error}\n"),
        (_, Err(error)) => return format!("rafka api-versions --json is unreadable: {error}\n"),
    };
    let mut out = String::new();
    for (key, (api, line)) in &new {
        match old.get(key) {
            None => out.push_str(&format!("added:   + {line}\n")),
            Some((before, before_line)) if before != api => {
                let fields: Vec<String> = api
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(field, value)| before.get(field.as_str()) != Some(value))
                    .map(|(field, value)| {
                        let was = before.get(field.as_str()).unwrap_or(&Value::Null);
                        format!("{field}: {was} -> {value}")
                    })
                    .collect();
                out.push_str(&format!(
                    "changed: {} ({})\n  - {before_line}\n  + {line}\n",
                    api["name"],
                    fields.join(", ")
                ));
            }
            Some((_, before_line)) if before_line != line => {
                out.push_str(&format!("reformatted:\n  - {before_line}\n  + {line}\n"));
            }
            Some(_) => {}
        }
    }
    for (key, (_, line)) in &old {
        if !new.contains_key(key) {
            out.push_str(&format!("removed: - {line}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("(the APIs agree; the file's layout around them differs)\n");
    }
    out
}

#[test]
fn api_versions_json_matches_the_handler_table() {
    let current = rafka_api_versions("--json");
    let path = repo_file("api-versions.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "{} differs from the broker's handler table:\n{}\nIf the change is intended, regenerate it \
         (and the README block) in the same commit:\n  {REGENERATE_JSON}\n",
        path.display(),
        difference(&committed, &current)
    );
}

#[test]
fn readme_served_apis_block_is_generated() {
    let rendered = rafka_api_versions("--markdown");
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("read README.md");
    let begin = readme
        .find(README_BEGIN)
        .map(|at| at + README_BEGIN.len())
        .expect("README.md has <!-- api-versions:begin -->");
    let end = readme[begin..]
        .find(README_END)
        .map(|at| begin + at)
        .expect("README.md has <!-- api-versions:end --> after the begin marker");
    let block = &readme[begin..end];
    let diff: String = similar_lines(block, &rendered);
    assert!(
        block == rendered,
        "README.md's served-APIs block differs from `rafka api-versions --markdown`:\n{diff}\n\
         Replace the lines between the markers with the output of:\n  \
         cargo run -p rafka -- api-versions --markdown\n"
    );
}

/// The lines only one side has, `-` for the README, `+` for the render.
fn similar_lines(readme: &str, rendered: &str) -> String {
    let mut out = String::new();
    for line in readme
        .lines()
        .filter(|l| !rendered.lines().any(|r| r == *l))
    {
        out.push_str(&format!("- {line}\n"));
    }
    for line in rendered
        .lines()
        .filter(|l| !readme.lines().any(|r| r == *l))
    {
        out.push_str(&format!("+ {line}\n"));
    }
    out
}

#[test]
fn difference_names_added_removed_and_changed_apis() {
    let old = "[\n  {\"api_key\": 0, \"name\": \"Produce\", \"max_version\": 12},\n  \
               {\"api_key\": 1, \"name\": \"Fetch\", \"max_version\": 18}\n]\n";
    let new = "[\n  {\"api_key\": 0, \"name\": \"Produce\", \"max_version\": 13},\n  \
               {\"api_key\": 3, \"name\": \"Metadata\", \"max_version\": 13}\n]\n";
    let diff = difference(old, new);
    assert_eq!(
        diff,
        "changed: \"Produce\" (max_version: 12 -> 13)\n  \
         - {\"api_key\": 0, \"name\": \"Produce\", \"max_version\": 12}\n  \
         + {\"api_key\": 0, \"name\": \"Produce\", \"max_version\": 13}\n\
         added:   + {\"api_key\": 3, \"name\": \"Metadata\", \"max_version\": 13}\n\
         removed: - {\"api_key\": 1, \"name\": \"Fetch\", \"max_version\": 18}\n"
    );
}
