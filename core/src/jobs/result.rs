//! The result CSV of an ended job: one row per submitted item, made from
//! the typed outcomes the runner stored.

use serde_json::Value;

use super::JobStore;
use super::{ItemOutcome, RESULT_COLUMNS, ResultError};

/// A cell a spreadsheet will not run as a formula: text starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (the OWASP
/// advice for CSV injection). Inputs, names and messages come from users.
pub(super) fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The result CSV of an ended job: the header [`RESULT_COLUMNS`] and one row
/// per submitted item, in order. `short_url` turns a code into its short URL.
///
/// Input is the `url` or `asin` as submitted; Marketplace and Link Name are
/// the link's (for an error, the requested ones); Tracked URL is the link's
/// template with the slot shown as `{click_id}`; Status is `ok` or `error`;
/// Error is `code: message`. Items a `failed` job never reached are `error`
/// with the code `not_processed`.
pub fn result_csv(
    db: &dyn JobStore,
    id: &str,
    short_url: &dyn Fn(&str) -> String,
) -> Result<Vec<u8>, ResultError> {
    let (summary, rows) = db
        .job_items(id)?
        .ok_or_else(|| ResultError::NotFound(id.to_owned()))?;
    if !summary.status.is_finished() {
        return Err(ResultError::NotFinished(summary));
    }
    let mut out = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 160 + 64));
    out.write_record(RESULT_COLUMNS)?;
    for (request, result) in &rows {
        out.write_record(
            result_row(request, result.as_deref(), short_url)
                .iter()
                .map(|cell| spreadsheet_safe(cell).into_owned()),
        )?;
    }
    out.into_inner()
        .map_err(|e| ResultError::Csv(csv::Error::from(e.into_error())))
}

pub(super) fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

pub(super) fn result_row(
    request: &str,
    result: Option<&str>,
    short_url: &dyn Fn(&str) -> String,
) -> [String; 7] {
    let request: Value = serde_json::from_str(request).unwrap_or(Value::Null);
    let input = match request.get("url").and_then(Value::as_str) {
        Some(url) => url.to_owned(),
        None => text(&request, "asin"),
    };
    let error = |code: &str, message: &str| {
        [
            input.clone(),
            text(&request, "marketplace"),
            text(&request, "name"),
            String::new(),
            String::new(),
            "error".to_owned(),
            format!("{code}: {message}"),
        ]
    };
    let Some(result) = result else {
        return error(
            "not_processed",
            "the job failed before this item was processed",
        );
    };
    match ItemOutcome::parse(result) {
        Some(ItemOutcome::Link {
            code,
            marketplace,
            name,
            template,
            ..
        }) => [
            input.clone(),
            marketplace.unwrap_or_default(),
            name.unwrap_or_default(),
            short_url(&code),
            template,
            "ok".to_owned(),
            String::new(),
        ],
        Some(ItemOutcome::Error { code, message }) => error(&code, &message),
        None => error("internal", "the stored result of this item is unreadable"),
    }
}
