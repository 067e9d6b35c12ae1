//! `plot`: a hand-written SVG of a perf run, for a person to look at. Top
//! panel: achieved MB/s per (mode, rate class) with the target and the
//! machine's ceilings as lines. Bottom panel: latency percentiles per
//! (mode, rate class) on a log scale. Reads the CSVs the other modes write.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 320.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 150.0;
const PANEL_TOP: [f64; 2] = [50.0, 450.0];
const HEIGHT: f64 = 840.0;
const LATENCY_COLUMNS: [(&str, &str); 4] = [
    ("p50_us", "#4e79a7"),
    ("p99_us", "#f28e2b"),
    ("p999_us", "#e15759"),
    ("max_us", "#9c755f"),
];

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has no column {column}", path.display())]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("{} line {line}: {column} is not a number", path.display())]
    BadNumber {
        path: PathBuf,
        line: usize,
        column: &'static str,
    },
}

/// One run row, as plotted.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotRow {
    pub label: String,
    pub mb_per_sec: f64,
    /// The offered load in MB/s (None for consume's `max`).
    pub target_mb_per_sec: Option<f64>,
    /// p50, p99, p99.9, max in µs.
    pub latency_us: [f64; 4],
}

/// A ceiling line: its name and MB/s.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceiling {
    pub name: String,
    pub mb_per_sec: f64,
}

/// A parsed CSV: header names and data lines (1-based line numbers).
struct Table {
    path: PathBuf,
    columns: Vec<String>,
    lines: Vec<(usize, Vec<String>)>,
}

impl Table {
    fn read(path: &Path) -> Result<Table, PlotError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlotError::File {
            op: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let columns = lines
            .next()
            .map(|(_, header)| header.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let lines = lines
            .map(|(at, line)| (at + 1, line.split(',').map(str::to_owned).collect()))
            .collect();
        Ok(Table {
            path: path.to_path_buf(),
            columns,
            lines,
        })
    }

    fn index(&self, column: &'static str) -> Result<usize, PlotError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| PlotError::MissingColumn {
                path: self.path.clone(),
                column,
            })
    }

    fn number(&self, line: &(usize, Vec<String>), column: &'static str) -> Result<f64, PlotError> {
        let at = self.index(column)?;
        line.1
            .get(at)
            .and_then(|field| field.parse::<f64>().ok())
            .ok_or_else(|| PlotError::BadNumber {
                path: self.path.clone(),
                line: line.0,
                column,
            })
    }

    fn text(&self, line: &(usize, Vec<String>), column: &'static str) -> Result<String, PlotError> {
        let at = self.index(column)?;
        Ok(line.1.get(at).cloned().unwrap_or_default())
    }
}

pub fn read_runs(path: &Path) -> Result<Vec<PlotRow>, PlotError> {
    let table = Table::read(path)?;
    let mut rows = Vec::new();
    for line in &table.lines {
        let mode = table.text(line, "mode")?;
        let target = table.text(line, "target_msgs_per_sec")?;
        let record_bytes = table.number(line, "record_bytes")?;
        let target_mb_per_sec = target.parse::<f64>().ok().map(|t| t * record_bytes / 1e6);
        let mut latency_us = [0.0; 4];
        for (slot, (column, _)) in latency_us.iter_mut().zip(LATENCY_COLUMNS) {
            *slot = table.number(line, column)?;
        }
        rows.push(PlotRow {
            label: format!("{mode} {}", rate_class(&target)),
            mb_per_sec: table.number(line, "achieved_mb_per_sec")?,
            target_mb_per_sec,
            latency_us,
        });
    }
    Ok(rows)
}

/// The best row of each throughput ceiling (write, sendfile); latency
/// rows (sync-each) are not lines on a throughput chart.
pub fn read_ceilings(path: &Path) -> Result<Vec<Ceiling>, PlotError> {
    let table = Table::read(path)?;
    let mut best: Vec<Ceiling> = Vec::new();
    for line in &table.lines {
        let name = table.text(line, "ceiling")?;
        if name != "write" && name != "sendfile" {
            continue;
        }
        let mb_per_sec = table.number(line, "mb_per_sec")?;
        match best.iter_mut().find(|c| c.name == name) {
            Some(seen) => seen.mb_per_sec = seen.mb_per_sec.max(mb_per_sec),
            None => best.push(Ceiling { name, mb_per_sec }),
        }
    }
    Ok(best)
}

/// `10000` -> `10k`, `1000000` -> `1M`, `max` stays.
fn rate_class(target: &str) -> String {
    match target.parse::<f64>() {
        Ok(rate) if rate >= 1e6 && rate % 1e6 == 0.0 => format!("{}M", rate / 1e6),
        Ok(rate) if rate >= 1e3 && rate % 1e3 == 0.0 => format!("{}k", rate / 1e3),
        _ => target.to_owned(),
    }
}

pub fn write_svg(path: &Path, rows: &[PlotRow], ceilings: &[Ceiling]) -> Result<(), PlotError> {
    std::fs::write(path, render_svg(rows, ceilings)).map_err(|source| PlotError::File {
        op: "writing",
        path: path.to_path_buf(),
        source,
    })
}

pub fn render_svg(rows: &[PlotRow], ceilings: &[Ceiling]) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    throughput_panel(&mut svg, rows, ceilings);
    latency_panel(&mut svg, rows);
    svg.push_str("</svg>\n");
    svg
}

fn slot_width(rows: &[PlotRow]) -> f64 {
    (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / rows.len().max(1) as f64
}

fn throughput_panel(svg: &mut String, rows: &[PlotRow], ceilings: &[Ceiling]) {
    let top = PANEL_TOP[0];
    let values = rows
        .iter()
        .flat_map(|r| [Some(r.mb_per_sec), r.target_mb_per_sec]);
    let ceiling_values = ceilings.iter().map(|c| Some(c.mb_per_sec));
    let y_max = values.chain(ceiling_values).flatten().fold(1.0, f64::max) * 1.1;
    let y = |v: f64| top + PANEL_HEIGHT * (1.0 - v / y_max);
    title(
        svg,
        top,
        "Achieved throughput, MB/s of record values (line: offered load)",
    );
    axis(
        svg,
        top,
        (0..=4).map(|i| (y_max * i as f64 / 4.0, y(y_max * i as f64 / 4.0))),
    );
    let slot = slot_width(rows);
    for (at, row) in rows.iter().enumerate() {
        let x = MARGIN_LEFT + slot * at as f64;
        let (bar_y, bar_h) = (y(row.mb_per_sec), PANEL_HEIGHT + top - y(row.mb_per_sec));
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{bar_y:.1}" width="{:.1}" height="{bar_h:.1}" fill="#59a14f"><title>{} {:.1} MB/s</title></rect>"##,
            x + slot * 0.2,
            slot * 0.6,
            row.label,
            row.mb_per_sec
        );
        if let Some(target) = row.target_mb_per_sec {
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{2:.1}" y2="{2:.1}" stroke="black" stroke-width="2"/>"#,
                x + slot * 0.1,
                x + slot * 0.9,
                y(target)
            );
        }
        x_label(svg, x + slot / 2.0, top + PANEL_HEIGHT, &row.label);
    }
    for (at, ceiling) in ceilings.iter().enumerate() {
        let color = ["#b07aa1", "#76b7b2", "#edc948"][at % 3];
        let _ = writeln!(
            svg,
            r#"<line x1="{MARGIN_LEFT}" x2="{right:.1}" y1="{line_y:.1}" y2="{line_y:.1}" stroke="{color}" stroke-dasharray="6 4" stroke-width="2"/><text x="{text_x:.1}" y="{text_y:.1}" fill="{color}">{name} {mb:.0} MB/s</text>"#,
            right = WIDTH - MARGIN_RIGHT,
            line_y = y(ceiling.mb_per_sec),
            text_x = WIDTH - MARGIN_RIGHT + 4.0,
            text_y = y(ceiling.mb_per_sec) + 4.0,
            name = ceiling.name,
            mb = ceiling.mb_per_sec
        );
    }
}

fn latency_panel(svg: &mut String, rows: &[PlotRow]) {
    let top = PANEL_TOP[1];
    let values = rows.iter().flat_map(|r| r.latency_us);
    let decades = values.fold(1.0, f64::max).log10().ceil().max(1.0);
    let y = |v: f64| top + PANEL_HEIGHT * (1.0 - v.max(1.0).log10() / decades);
    title(svg, top, "Latency percentiles, µs (log scale)");
    let ticks = (0..=decades as i32).map(|d| (10f64.powi(d), y(10f64.powi(d))));
    axis(svg, top, ticks);
    let slot = slot_width(rows);
    let bar = slot * 0.8 / LATENCY_COLUMNS.len() as f64;
    for (at, row) in rows.iter().enumerate() {
        let x = MARGIN_LEFT + slot * at as f64 + slot * 0.1;
        for (k, (value, (name, color))) in row.latency_us.iter().zip(LATENCY_COLUMNS).enumerate() {
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="{color}"><title>{} {} {value:.0} µs</title></rect>"#,
                x + bar * k as f64,
                y(*value),
                top + PANEL_HEIGHT - y(*value),
                row.label,
                name.trim_end_matches("_us"),
            );
        }
        x_label(svg, x + slot * 0.4, top + PANEL_HEIGHT, &row.label);
    }
    for (k, (name, color)) in LATENCY_COLUMNS.iter().enumerate() {
        let ly = top + 20.0 * k as f64;
        let lx = WIDTH - MARGIN_RIGHT + 10.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            lx + 16.0,
            ly + 10.0,
            name.trim_end_matches("_us")
        );
    }
}

fn title(svg: &mut String, top: f64, text: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{MARGIN_LEFT}" y="{:.1}" font-size="15" font-weight="bold">{text}</text>"#,
        top - 15.0
    );
}

/// The y axis with labelled ticks (value, y position) and grid lines.
fn axis(svg: &mut String, top: f64, ticks: impl Iterator<Item = (f64, f64)>) {
    let right = WIDTH - MARGIN_RIGHT;
    let bottom = top + PANEL_HEIGHT;
    let _ = writeln!(
        svg,
        r#"<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT}" y1="{top}" y2="{bottom}" stroke="black"/><line x1="{MARGIN_LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="black"/>"#
    );
    for (value, y) in ticks {
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{value:.0}</text>"##,
            MARGIN_LEFT - 6.0,
            y + 4.0
        );
    }
}

fn x_label(svg: &mut String, x: f64, bottom: f64, text: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{text}</text>"#,
        bottom + 18.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::CSV_HEADER;

    #[test]
    fn reads_runs_and_ceilings_then_draws_every_row() {
        let dir = std::env::temp_dir().join(format!("rafka-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let runs = dir.join("runs.csv");
        std::fs::write(
            &runs,
            format!(
                "{CSV_HEADER}\nproduce,10000,9990,10.23,99.9,800,900,950,1200,3000,0,29970,1900,3.000,1024,16,all,none\n\
                 consume,max,176784,181.03,100.0,40383,396799,396799,396799,396799,0,100000,5,0.566,1024,16,all,none\n"
            ),
        )
        .unwrap();
        let ceilings = dir.join("ceilings.csv");
        std::fs::write(
            &ceilings,
            "ceiling,detail,bytes,seconds,mb_per_sec\nwrite,a,1,1,150.5\nwrite,b,1,1,300.0\nsendfile,c,1,1,2000.0\nsync-each,d,1,1,0.3\n",
        )
        .unwrap();
        let rows = read_runs(&runs).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].label, "produce 10k");
        assert_eq!(rows[0].target_mb_per_sec, Some(10.24));
        assert_eq!(rows[0].latency_us, [800.0, 950.0, 1200.0, 3000.0]);
        assert_eq!(rows[1].label, "consume max");
        assert_eq!(rows[1].target_mb_per_sec, None);
        let ceilings = read_ceilings(&ceilings).unwrap();
        assert_eq!(ceilings[0].mb_per_sec, 300.0);
        assert_eq!(ceilings[1].name, "sendfile");
        assert_eq!(ceilings.len(), 2);
        let svg = render_svg(&rows, &ceilings);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<title>produce 10k").count(), 5);
        assert!(svg.contains(">sendfile 2000 MB/s<"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_column_is_named() {
        let path =
            std::env::temp_dir().join(format!("rafka-bench-plot-bad-{}", std::process::id()));
        std::fs::write(&path, "mode,target_msgs_per_sec\nproduce,10\n").unwrap();
        let err = read_runs(&path).unwrap_err();
        assert!(matches!(
            err,
            PlotError::MissingColumn {
                column: "record_bytes",
                ..
            }
        ));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn rate_classes() {
        assert_eq!(rate_class("1000000"), "1M");
        assert_eq!(rate_class("10000"), "10k");
        assert_eq!(rate_class("1500"), "1500");
        assert_eq!(rate_class("max"), "max");
    }
}
