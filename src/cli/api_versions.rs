//! `rafka api-versions`: what this broker speaks, read from the same
//! handler table ApiVersions answers from (rafka-net's `broker_table`), so
//! no broker needs to run. `--json` is the compatibility snapshot committed
//! as `api-versions.json` (tests/api_versions_snapshot.rs fails when the
//! served set changes without it); `--markdown` is the README's list of
//! served APIs.
//!
//! The JSON is written by hand, one API per line in api key order with a
//! fixed field order, so a change to one API is a one-line diff.

use clap::Args;
use kafka_protocol::messages::ApiKey;
use rafka_proto::api::{ApiEntry, ApiTable};
use rafka_proto::header::{RequestHeaderVersion, ResponseHeaderVersion};

use crate::cli::error::CliError;
use crate::cli::output::{print_text, Table};

/// The README block is wrapped to this many columns, as the prose around it.
const MARKDOWN_WIDTH_MAX: usize = 72;

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ApiVersionsArgs {
    /// The snapshot: deterministic JSON, one API per line (api-versions.json).
    #[arg(long)]
    pub json: bool,
    /// The README's list of served APIs.
    #[arg(long)]
    pub markdown: bool,
}

/// One served API as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSnapshot {
    pub api_key: i16,
    pub name: String,
    pub min_version: i16,
    pub max_version: i16,
    pub advertised_min_version: i16,
    /// First flexible served version, if any served version is flexible.
    pub flexible_from: Option<i16>,
    /// Request header version at (min_version, max_version).
    pub request_header_versions: (i16, i16),
    /// Response header version at (min_version, max_version).
    pub response_header_versions: (i16, i16),
}

impl ApiSnapshot {
    fn of(entry: &ApiEntry) -> ApiSnapshot {
        let (min, max) = (entry.min_version(), entry.max_version());
        ApiSnapshot {
            api_key: entry.api_key() as i16,
            name: api_name(entry.api_key()),
            min_version: min,
            max_version: max,
            advertised_min_version: entry.advertised_min_version(),
            flexible_from: entry.flexible_version_min(),
            request_header_versions: (
                request_header(entry.request_header_version(min)),
                request_header(entry.request_header_version(max)),
            ),
            response_header_versions: (
                response_header(entry.response_header_version(min)),
                response_header(entry.response_header_version(max)),
            ),
        }
    }

    fn json_line(&self) -> String {
        let flexible = self
            .flexible_from
            .map_or_else(|| "null".to_string(), |v| v.to_string());
        format!(
            "{{\"api_key\": {}, \"name\": {}, \"min_version\": {}, \"max_version\": {}, \
             \"advertised_min_version\": {}, \"flexible_from\": {}, \
             \"request_header_version_min\": {}, \"request_header_version_max\": {}, \
             \"response_header_version_min\": {}, \"response_header_version_max\": {}}}",
            self.api_key,
            serde_json::Value::from(self.name.as_str()),
            self.min_version,
            self.max_version,
            self.advertised_min_version,
            flexible,
            self.request_header_versions.0,
            self.request_header_versions.1,
            self.response_header_versions.0,
            self.response_header_versions.1,
        )
    }

    /// `Produce v3-13 (advertised from v0)`, `OffsetDelete v0`.
    fn markdown_item(&self) -> String {
        let mut item = if self.min_version == self.max_version {
            format!("{} v{}", self.name, self.min_version)
        } else {
            format!("{} v{}-{}", self.name, self.min_version, self.max_version)
        };
        if self.advertised_min_version < self.min_version {
            item.push_str(&format!(
                " (advertised from v{})",
                self.advertised_min_version
            ));
        }
        item
    }
}

/// `Produce`, `ApiVersions`: kafka-protocol's variant names, which are
/// Kafka's API names.
fn api_name(api_key: ApiKey) -> String {
    format!("{api_key:?}")
}

fn request_header(version: RequestHeaderVersion) -> i16 {
    match version {
        RequestHeaderVersion::V0 => 0,
        RequestHeaderVersion::V1 => 1,
        RequestHeaderVersion::V2 => 2,
    }
}

fn response_header(version: ResponseHeaderVersion) -> i16 {
    match version {
        ResponseHeaderVersion::V0 => 0,
        ResponseHeaderVersion::V1 => 1,
    }
}

/// Every API `table` serves, in api key order.
pub fn snapshot(table: &ApiTable) -> Vec<ApiSnapshot> {
    table.entries().map(ApiSnapshot::of).collect()
}

/// The snapshot as `api-versions.json` holds it.
pub fn render_json(apis: &[ApiSnapshot]) -> String {
    let lines: Vec<String> = apis
        .iter()
        .map(|api| format!("  {}", api.json_line()))
        .collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

/// The README block between `<!-- api-versions:begin -->` and
/// `<!-- api-versions:end -->`: one sentence, wrapped between APIs so a
/// name stays with its versions.
pub fn render_markdown(apis: &[ApiSnapshot]) -> String {
    let count = apis.len();
    let mut items: Vec<String> = vec![format!("Served APIs ({count}, in api key order):")];
    items.extend(apis.iter().enumerate().map(|(i, api)| {
        let end = if i + 1 == count { "." } else { "," };
        format!("{}{end}", api.markdown_item())
    }));
    wrap(&items, MARKDOWN_WIDTH_MAX)
}

/// Greedy wrap of `items`, joined by spaces; an item longer than `width`
/// gets a line of its own.
fn wrap(items: &[String], width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for item in items {
        if !line.is_empty() && line.len() + 1 + item.len() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(item);
    }
    if !line.is_empty() {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn print_table(apis: &[ApiSnapshot]) -> Result<(), CliError> {
    let mut table = Table::new(&[
        "KEY",
        "NAME",
        "MIN",
        "MAX",
        "ADVERTISED_MIN",
        "FLEXIBLE_FROM",
        "REQUEST_HEADER",
        "RESPONSE_HEADER",
    ]);
    for api in apis {
        table.row(vec![
            api.api_key.to_string(),
            api.name.clone(),
            api.min_version.to_string(),
            api.max_version.to_string(),
            api.advertised_min_version.to_string(),
            api.flexible_from
                .map_or_else(|| "-".to_string(), |v| v.to_string()),
            format!(
                "v{}..v{}",
                api.request_header_versions.0, api.request_header_versions.1
            ),
            format!(
                "v{}..v{}",
                api.response_header_versions.0, api.response_header_versions.1
            ),
        ]);
    }
    table.print()
}

pub fn run(args: &ApiVersionsArgs) -> Result<(), CliError> {
    let apis = snapshot(&rafka_net::handlers::broker_table());
    if args.json {
        print_text(&render_json(&apis))
    } else if args.markdown {
        print_text(&render_markdown(&apis))
    } else {
        print_table(&apis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_width() {
        let items: Vec<String> = ["aaa", "b b", "ccc", "dddddddddd", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(wrap(&items, 7), "aaa b b\nccc\ndddddddddd\ne\n");
        assert_eq!(wrap(&[], 7), "");
    }

    #[test]
    fn produce_is_advertised_below_what_it_serves() {
        let apis = snapshot(&rafka_net::handlers::broker_table());
        let produce = apis.iter().find(|a| a.name == "Produce").expect("Produce");
        assert_eq!(produce.api_key, 0);
        assert_eq!(produce.advertised_min_version, 0);
        assert!(produce.markdown_item().ends_with("(advertised from v0)"));
        let api_versions = apis.iter().find(|a| a.api_key == 18).expect("ApiVersions");
        assert_eq!(api_versions.name, "ApiVersions");
        // ApiVersions keeps response header v0 at every version (KIP-511).
        assert_eq!(api_versions.response_header_versions, (0, 0));
        assert_eq!(api_versions.flexible_from, Some(3));
    }
}
