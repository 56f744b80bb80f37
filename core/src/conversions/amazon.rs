//! Amazon Associates reports: Earnings (`Fee-Earnings`), Orders
//! (`Fee-Orders`) and Bounty, as CSV or tab-separated files, with or without
//! the title line Amazon puts above the header.
//!
//! Columns are found by header (see [`super::settings`] for the defaults and
//! `[conversions.formats.<format>.columns]` to change them). Without a
//! sub-tag column every row is imported unattributed, and the answer says so.

use super::dates::parse_event_time;
use super::money::{parse_count, parse_micros};
use super::settings::{Format, FormatSettings, Kind, Provider, Status};
use super::table::Table;
use super::{Conversion, ImportError, Rejection, Report, RowKeys, non_empty};

/// Reads an Amazon report.
pub(super) fn parse(
    text: &str,
    format: Format,
    settings: &FormatSettings,
) -> Result<Report, ImportError> {
    let mut table = Table::open(text, format, settings)?;
    let kind = format.kind();
    let mut report = Report {
        format,
        rows: Vec::new(),
        rejections: Vec::new(),
        warnings: Vec::new(),
    };
    if table.column("sub_id").is_none() {
        report.warnings.push(format!(
            "the report has no sub-tag column (looked for {}): no row can be attributed to a click; \
             set [conversions.formats.{format}.columns] sub_id to the report's header",
            settings
                .headers("sub_id")
                .iter()
                .map(|h| format!("`{h}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let currency = settings.currency.clone().or_else(|| {
        ["commission", "revenue", "price"]
            .iter()
            .find_map(|f| table.header_currency(f))
    });
    let date_header = table.header("date").to_owned();
    let headers: Vec<(&'static str, String)> =
        ["quantity", "returns", "price", "revenue", "commission"]
            .iter()
            .map(|f| (*f, table.header(f).to_owned()))
            .collect();
    let header_of = |field: &str| {
        headers
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(field.to_owned(), |(_, h)| h.clone())
    };
    let mut keys = RowKeys::default();
    while let Some((line, record)) = table.next_row()? {
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let record = record.clone();
        let cell = |field: &str| table.cell(&record, field);
        let reject = |reason: String| Rejection { line, reason };
        let row = (|| {
            let date = cell("date");
            if date.is_empty() {
                return Err(reject(format!("missing date (column `{date_header}`)")));
            }
            let event_ms = parse_event_time(date, settings.date_order)
                .map_err(|e| reject(format!("column `{date_header}`: {e}")))?;
            let asin = cell("asin").to_ascii_uppercase();
            if asin.is_empty() && kind != Kind::Bounty {
                return Err(reject(format!(
                    "missing ASIN (column `{}`)",
                    table.header("asin")
                )));
            }
            // Items and returns are counts: a negative one is a broken row
            // (it would make the row's revenue negative), never a refund.
            let count = |field: &str| match parse_count(cell(field)) {
                Ok(Some(n)) if n < 0 => Err(reject(format!(
                    "column `{}`: `{n}` is negative; items and returns are counts",
                    header_of(field)
                ))),
                other => other.map_err(|e| reject(format!("column `{}`: {e}", header_of(field)))),
            };
            let amount = |field: &str| {
                parse_micros(cell(field))
                    .map_err(|e| reject(format!("column `{}`: {e}", header_of(field))))
            };
            let quantity = count("quantity")?.unwrap_or(i64::from(kind == Kind::Bounty));
            let returns = count("returns")?.unwrap_or(0);
            let price = amount("price")?.unwrap_or(0);
            let revenue = match amount("revenue")? {
                Some(r) => r,
                None => price
                    .checked_mul(quantity)
                    .ok_or_else(|| reject("price × quantity is too large".to_owned()))?,
            };
            let commission = amount("commission")?.unwrap_or(0);
            let name = non_empty(cell("name"));
            let tracking_id = non_empty(cell("tracking_id"));
            let sub_id = non_empty(cell("sub_id"));
            let status = match kind {
                Kind::Orders => Status::Pending,
                Kind::Earnings if returns > 0 && returns >= quantity => Status::Returned,
                _ => Status::Approved,
            };
            let event = event_ms.to_string();
            let price_text = price.to_string();
            let row_key = keys.key(&[
                &event,
                &asin,
                tracking_id.as_deref().unwrap_or(""),
                sub_id.as_deref().unwrap_or(""),
                &price_text,
                if asin.is_empty() {
                    name.as_deref().unwrap_or("")
                } else {
                    ""
                },
            ]);
            Ok(Conversion {
                provider: Provider::Amazon,
                kind,
                row_key,
                sub_id,
                tracking_id,
                event_ms,
                product_id: (!asin.is_empty()).then_some(asin),
                product_name: name,
                quantity,
                returns,
                price_micros: price,
                revenue_micros: revenue,
                commission_micros: commission,
                status,
                currency: currency.clone(),
            })
        })();
        match row {
            Ok(c) => report.rows.push((line, c)),
            Err(r) => report.rejections.push(r),
        }
    }
    Ok(report)
}
