//! Bulk submissions as CSV: columns by name in any order, one link request
//! per row; and the check of a webhook URL.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{MAX_ITEMS, MAX_WEBHOOK_URL_LEN, SubmitError};

/// Longest cell of a bulk CSV: a product URL's own limit (8 KiB); no field
/// of a link is longer.
pub const MAX_CSV_CELL_BYTES: usize = crate::plugin::MAX_INPUT_LEN;

/// Most columns of a bulk CSV: the eight named ones and `param:` columns
/// (a link holds at most 20 parameters).
pub const MAX_CSV_COLUMNS: usize = 32;

/// A column of the input CSV.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Column {
    /// `url` or `input`: a product URL or an ASIN.
    Url,
    Asin,
    Marketplace,
    Name,
    Code,
    Campaign,
    /// `|`-separated.
    Tags,
    Provider,
    /// Targeting rules as JSON (`[{"country": "DE", "url": "…"}]`).
    Targets,
    /// `true` or `false`.
    Localize,
    /// `param:<name>`.
    Param(String),
}

impl Column {
    fn parse(header: &str) -> Option<Column> {
        let lower = header.to_ascii_lowercase();
        Some(match lower.as_str() {
            "url" | "input" => Column::Url,
            "asin" => Column::Asin,
            "marketplace" => Column::Marketplace,
            "name" => Column::Name,
            "code" => Column::Code,
            "campaign" => Column::Campaign,
            "tags" => Column::Tags,
            "provider" => Column::Provider,
            "targets" => Column::Targets,
            "localize" => Column::Localize,
            _ => {
                let name = lower.strip_prefix("param:").map(|_| header[6..].trim())?;
                if name.is_empty() {
                    return None;
                }
                Column::Param(name.to_owned())
            }
        })
    }

    /// The JSON key of a link request this column fills.
    fn key(&self) -> &'static str {
        match self {
            Column::Url => "url",
            Column::Asin => "asin",
            Column::Marketplace => "marketplace",
            Column::Name => "name",
            Column::Code => "code",
            Column::Campaign => "campaign",
            Column::Tags => "tags",
            Column::Provider => "provider",
            Column::Targets => "targets",
            Column::Localize => "localize",
            Column::Param(_) => "params",
        }
    }
}

/// Parses a bulk CSV into link requests (JSON objects shaped like
/// `POST /api/v1/links` bodies), one per data row.
///
/// A header row is required. Column names are case-insensitive and may come
/// in any order: `url` or `input` (a product URL or an ASIN), `asin`,
/// `marketplace`, `name`, `code`, `campaign`, `tags` (separated by `|`),
/// `provider`, and `param:<name>` for network parameters. Cells are trimmed;
/// empty cells are absent. Unknown or repeated columns, a missing input
/// column, more than [`MAX_CSV_COLUMNS`] columns, rows of the wrong width,
/// a cell longer than [`MAX_CSV_CELL_BYTES`] (naming its line), no rows,
/// and more than [`MAX_ITEMS`] rows are refused.
pub fn parse_csv(data: &[u8]) -> Result<Vec<Value>, SubmitError> {
    let invalid = |m: String| SubmitError::invalid(m, None);
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(data);
    let header = reader
        .headers()
        .map_err(|e| invalid(format!("malformed CSV header: {e}")))?
        .clone();
    if header.len() > MAX_CSV_COLUMNS {
        return Err(invalid(format!(
            "the CSV has {} columns; a bulk CSV has at most {MAX_CSV_COLUMNS}",
            header.len()
        )));
    }
    if let Some(cell) = header.iter().find(|c| c.len() > MAX_CSV_CELL_BYTES) {
        return Err(invalid(format!(
            "line 1: a column name of {} bytes; cells hold at most {MAX_CSV_CELL_BYTES}",
            cell.len()
        )));
    }
    if header.iter().all(str::is_empty) {
        return Err(invalid(
            "the CSV is empty: a header row naming the columns is required (e.g. `url,name`)"
                .into(),
        ));
    }
    let mut columns = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    let mut seen = HashSet::new();
    let mut repeated = Vec::new();
    for (i, name) in header.iter().enumerate() {
        match Column::parse(name) {
            Some(column) => {
                if !seen.insert(column.clone()) {
                    repeated.push(name.to_owned());
                }
                columns.push(column);
            }
            None if name.is_empty() => unknown.push(format!("(unnamed column {})", i + 1)),
            None => unknown.push(format!("`{name}`")),
        }
    }
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "unknown CSV column(s): {}; known columns are url (or input), asin, marketplace, name, code, campaign, tags, provider, targets, localize and param:<name>",
            unknown.join(", ")
        )));
    }
    if !repeated.is_empty() {
        return Err(invalid(format!(
            "CSV column(s) given more than once: {} (`url` and `input` are the same column)",
            repeated.join(", ")
        )));
    }
    if !columns
        .iter()
        .any(|c| matches!(c, Column::Url | Column::Asin))
    {
        return Err(invalid(
            "the CSV needs a `url` (or `input`) column or an `asin` column".into(),
        ));
    }

    let mut items = Vec::new();
    let mut rows = 0usize;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(invalid(format!("malformed CSV: {e}"))),
        }
        rows += 1;
        if let Some((i, cell)) = record
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() > MAX_CSV_CELL_BYTES)
        {
            let line = record.position().map_or(rows as u64 + 1, |p| p.line());
            return Err(invalid(format!(
                "line {line}, column `{}`: a cell of {} bytes; cells hold at most {MAX_CSV_CELL_BYTES}",
                header.get(i).unwrap_or_default(),
                cell.len()
            )));
        }
        // Past the limit, only count (to say how many were sent).
        if rows <= MAX_ITEMS {
            items.push(row_request(&columns, &record));
        }
    }
    if rows > MAX_ITEMS {
        return Err(SubmitError::TooMany(rows));
    }
    if items.is_empty() {
        return Err(invalid("the CSV has a header but no rows".into()));
    }
    Ok(items)
}

fn row_request(columns: &[Column], record: &csv::StringRecord) -> Value {
    let mut object = Map::new();
    let mut params = Map::new();
    for (column, cell) in columns.iter().zip(record.iter()) {
        if cell.is_empty() {
            continue;
        }
        match column {
            Column::Tags => {
                let tags: Vec<Value> = cell
                    .split('|')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.to_owned()))
                    .collect();
                if !tags.is_empty() {
                    object.insert("tags".into(), Value::Array(tags));
                }
            }
            Column::Param(name) => {
                params.insert(name.clone(), Value::String(cell.to_owned()));
            }
            // JSON rules, or `true`/`false`; anything else stays text, so
            // the row is refused with the request's own error for it.
            Column::Targets | Column::Localize => {
                let value = serde_json::from_str(cell.trim())
                    .unwrap_or_else(|_| Value::String(cell.to_owned()));
                object.insert(column.key().into(), value);
            }
            other => {
                object.insert(other.key().into(), Value::String(cell.to_owned()));
            }
        }
    }
    if !params.is_empty() {
        object.insert("params".into(), Value::Object(params));
    }
    Value::Object(object)
}

/// Checks a webhook URL: absolute `http` or `https` with a host.
pub fn validate_webhook_url(url: &str) -> Result<(), SubmitError> {
    let bad = |m: String| SubmitError::invalid(m, Some("webhook_url"));
    if url.len() > MAX_WEBHOOK_URL_LEN {
        return Err(bad(format!(
            "webhook_url is longer than {MAX_WEBHOOK_URL_LEN} characters"
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| bad(format!("webhook_url `{url}`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "webhook_url must be an http or https URL, not `{}:`",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("webhook_url `{url}` has no host")));
    }
    Ok(())
}
