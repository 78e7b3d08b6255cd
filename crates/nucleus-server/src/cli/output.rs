//! How answers are shown: a table for people, or the document as JSON or YAML for scripts.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

/// Prints `document` as JSON or YAML; false when `format` is a table (the caller prints it).
pub fn print_document(format: Format, document: &Value) -> anyhow::Result<bool> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(document)?),
        Format::Yaml => print!("{}", yaml_serde::to_string(document)?),
        Format::Table | Format::Wide => return Ok(false),
    }
    Ok(true)
}

/// Columns padded to their widest cell, like kubectl's tables.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", padded.join("   ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// How long ago `at` (RFC 3339) was, as kubectl shows ages: `45s`, `12m`, `3h`, `2d`.
pub fn age(at: &str) -> String {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(at) else { return "?".to_owned() };
    let seconds = (nucleus_api::clock::now() - at.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86400),
    }
}

pub fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}
