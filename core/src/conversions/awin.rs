//! Awin transactions: the CSV export of the Awin interface (`awin-csv`,
//! columns configurable like Amazon's) and the publisher API's JSON answer
//! (`awin-json`: an array of transactions with `id`, `advertiserId`,
//! `clickRefs.clickRef`, `transactionDate`, `commissionStatus`,
//! `saleAmount {amount, currency}`, `commissionAmount {amount, currency}`,
//! `paidToPublisher`, …; unknown fields are ignored).
//!
//! One transaction is one conversion (quantity 1) keyed by its id; the sale
//! amount is its price and revenue. Statuses `pending`, `approved`,
//! `declined` are kept; `deleted` is stored as `declined`; an approved
//! transaction paid to the publisher is `paid`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::dates::{DateOrder, parse_event_time};
use super::money::parse_micros;
use super::settings::{Format, FormatSettings, Kind, Provider, Status};
use super::table::Table;
use super::{Conversion, ImportError, Rejection, Report, line_of, non_empty};

fn status(raw: &str, paid: bool) -> Result<Status, String> {
    let status = match raw.trim().to_ascii_lowercase().as_str() {
        "pending" => Status::Pending,
        "approved" if paid => Status::Paid,
        "approved" => Status::Approved,
        "declined" | "deleted" => Status::Declined,
        "paid" => Status::Paid,
        "" => return Err("missing commission status".to_owned()),
        other => {
            return Err(format!(
                "unknown commission status `{other}` (expected pending, approved, declined or deleted)"
            ));
        }
    };
    Ok(status)
}

fn truthy(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "y" | "paid"
    )
}

/// Remembers transaction ids within one file: a second row with the same id
/// is rejected rather than silently overwriting the first.
#[derive(Debug, Default)]
struct SeenIds(HashMap<String, u64>);

impl SeenIds {
    fn check(&mut self, id: &str, line: u64) -> Result<(), String> {
        match self.0.insert(id.to_owned(), line) {
            Some(first) => {
                self.0.insert(id.to_owned(), first);
                Err(format!(
                    "duplicate transaction id `{id}` (first on line {first})"
                ))
            }
            None => Ok(()),
        }
    }
}

/// Reads an Awin transactions CSV export.
pub(super) fn parse_csv(text: &str, settings: &FormatSettings) -> Result<Report, ImportError> {
    let mut table = Table::open(text, Format::AwinCsv, settings)?;
    let mut report = Report {
        format: Format::AwinCsv,
        rows: Vec::new(),
        rejections: Vec::new(),
        warnings: Vec::new(),
    };
    if table.column("sub_id").is_none() {
        report.warnings.push(
            "the export has no click reference column: no row can be attributed to a click; \
             set [conversions.formats.awin-csv.columns] sub_id to the export's header"
                .to_owned(),
        );
    }
    let header_currency = ["commission_amount", "sale_amount"]
        .iter()
        .find_map(|f| table.header_currency(f));
    let headers: HashMap<&'static str, String> = ["date", "sale_amount", "commission_amount"]
        .iter()
        .map(|f| (*f, table.header(f).to_owned()))
        .collect();
    let mut seen = SeenIds::default();
    while let Some((line, record)) = table.next_row()? {
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let record = record.clone();
        let cell = |field: &str| table.cell(&record, field);
        let row = (|| {
            let id = cell("id");
            if id.is_empty() {
                return Err(format!(
                    "missing transaction id (column `{}`)",
                    table.header("id")
                ));
            }
            let date = cell("date");
            if date.is_empty() {
                return Err(format!("missing date (column `{}`)", headers["date"]));
            }
            let event_ms = parse_event_time(date, settings.date_order)
                .map_err(|e| format!("column `{}`: {e}", headers["date"]))?;
            let status = status(cell("status"), truthy(cell("paid")))?;
            let amount = |field: &'static str| {
                parse_micros(cell(field))
                    .map(Option::unwrap_or_default)
                    .map_err(|e| format!("column `{}`: {e}", headers[field]))
            };
            let sale = amount("sale_amount")?;
            let commission = amount("commission_amount")?;
            seen.check(id, line)?;
            Ok(Conversion {
                provider: Provider::Awin,
                kind: Kind::Transaction,
                row_key: id.to_owned(),
                sub_id: non_empty(cell("sub_id")),
                tracking_id: non_empty(cell("advertiser_id")),
                event_ms,
                product_id: None,
                product_name: non_empty(cell("advertiser_name")),
                quantity: 1,
                returns: 0,
                price_micros: sale,
                revenue_micros: sale,
                commission_micros: commission,
                status,
                currency: non_empty(cell("currency"))
                    .map(|c| c.to_ascii_uppercase())
                    .or_else(|| settings.currency.clone())
                    .or_else(|| header_currency.clone()),
            })
        })();
        match row {
            Ok(c) => report.rows.push((line, c)),
            Err(reason) => report.rejections.push(Rejection { line, reason }),
        }
    }
    Ok(report)
}

/// One transaction of the API's answer; only the fields used.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transaction {
    id: Option<Value>,
    advertiser_id: Option<Value>,
    advertiser_name: Option<String>,
    click_refs: Option<ClickRefs>,
    transaction_date: Option<String>,
    commission_status: Option<String>,
    sale_amount: Option<Amount>,
    commission_amount: Option<Amount>,
    paid_to_publisher: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClickRefs {
    click_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Amount {
    amount: Option<Value>,
    currency: Option<String>,
}

/// A JSON number or string as text; numbers print exactly as written for
/// any amount of up to 15 significant digits (shortest round-trip form), and
/// are then read as decimal text like every other amount.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn amount(a: Option<&Amount>, what: &str) -> Result<(i64, Option<String>), String> {
    let Some(a) = a else {
        return Ok((0, None));
    };
    let micros = match a.amount.as_ref() {
        None | Some(Value::Null) => 0,
        Some(v) => {
            let text = scalar_text(v).ok_or_else(|| format!("{what}: not a number"))?;
            parse_micros(&text)
                .map_err(|e| format!("{what}: {e}"))?
                .unwrap_or(0)
        }
    };
    Ok((micros, a.currency.as_deref().and_then(non_empty)))
}

fn transaction(t: Transaction) -> Result<Conversion, String> {
    let id =
        t.id.as_ref()
            .and_then(scalar_text)
            .and_then(|s| non_empty(&s))
            .ok_or_else(|| "missing transaction id".to_owned())?;
    let date = t
        .transaction_date
        .as_deref()
        .and_then(non_empty)
        .ok_or_else(|| format!("transaction {id}: missing transactionDate"))?;
    let event_ms = parse_event_time(&date, DateOrder::DayFirst)
        .map_err(|e| format!("transaction {id}: transactionDate {e}"))?;
    let status = status(
        t.commission_status.as_deref().unwrap_or(""),
        t.paid_to_publisher.unwrap_or(false),
    )
    .map_err(|e| format!("transaction {id}: {e}"))?;
    let (sale, sale_currency) = amount(t.sale_amount.as_ref(), "saleAmount")
        .map_err(|e| format!("transaction {id}: {e}"))?;
    let (commission, commission_currency) =
        amount(t.commission_amount.as_ref(), "commissionAmount")
            .map_err(|e| format!("transaction {id}: {e}"))?;
    Ok(Conversion {
        provider: Provider::Awin,
        kind: Kind::Transaction,
        row_key: id,
        sub_id: t
            .click_refs
            .and_then(|c| c.click_ref)
            .and_then(|s| non_empty(&s)),
        tracking_id: t.advertiser_id.as_ref().and_then(scalar_text),
        event_ms,
        product_id: None,
        product_name: t.advertiser_name.as_deref().and_then(non_empty),
        quantity: 1,
        returns: 0,
        price_micros: sale,
        revenue_micros: sale,
        commission_micros: commission,
        status,
        currency: commission_currency
            .or(sale_currency)
            .map(|c| c.to_ascii_uppercase()),
    })
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// Reads the Awin transactions API's JSON answer: an array of transactions,
/// each read on its own so that one bad transaction is rejected with the
/// line it starts on while the rest import.
pub(super) fn parse_json(text: &str) -> Result<Report, ImportError> {
    let bytes = text.as_bytes();
    let malformed = |offset: usize, message: String| ImportError::Malformed {
        line: line_of(bytes, offset),
        message,
    };
    let mut report = Report {
        format: Format::AwinJson,
        rows: Vec::new(),
        rejections: Vec::new(),
        warnings: Vec::new(),
    };
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'[') {
        return Err(malformed(
            i,
            "expected a JSON array of transactions (`[{\"id\": …}, …]`)".to_owned(),
        ));
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b']') {
        return check_trailing(bytes, i + 1, report);
    }
    let mut seen = SeenIds::default();
    // Line counting is incremental: `line` is the line of byte `counted`.
    let (mut counted, mut line) = (0usize, 1u64);
    let mut transactions = 0u64;
    loop {
        line += bytes[counted..i].iter().filter(|b| **b == b'\n').count() as u64;
        counted = i;
        transactions += 1;
        if transactions > super::MAX_REPORT_ROWS {
            return Err(malformed(
                i,
                format!(
                    "a report holds at most {} transactions; split the file",
                    super::MAX_REPORT_ROWS
                ),
            ));
        }
        let mut stream = serde_json::Deserializer::from_slice(&bytes[i..]).into_iter::<Value>();
        let value = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                // serde_json places an error on a newline at column 0 of
                // the next line; the problem is on the line the newline ends.
                let at = if e.column() == 0 {
                    e.line().saturating_sub(1)
                } else {
                    e.line()
                };
                return Err(ImportError::Malformed {
                    line: line + at.saturating_sub(1) as u64,
                    message: format!("malformed JSON: {e}"),
                });
            }
            None => return Err(malformed(i, "the JSON array is not closed".to_owned())),
        };
        let start_line = line;
        i = skip_ws(bytes, i + stream.byte_offset());
        let outcome = match value {
            Value::Object(_) => serde_json::from_value::<Transaction>(value)
                .map_err(|e| format!("not a transaction: {e}"))
                .and_then(transaction)
                .and_then(|c| seen.check(&c.row_key, start_line).map(|()| c)),
            _ => Err("not a transaction (a JSON object)".to_owned()),
        };
        match outcome {
            Ok(c) => report.rows.push((start_line, c)),
            Err(reason) => report.rejections.push(Rejection {
                line: start_line,
                reason,
            }),
        }
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b']') => return check_trailing(bytes, i + 1, report),
            _ => {
                return Err(malformed(
                    i,
                    "malformed JSON: expected `,` or `]` after a transaction".to_owned(),
                ));
            }
        }
    }
}

fn check_trailing(bytes: &[u8], i: usize, report: Report) -> Result<Report, ImportError> {
    let end = skip_ws(bytes, i);
    if end < bytes.len() {
        return Err(ImportError::Malformed {
            line: line_of(bytes, end),
            message: "malformed JSON: text after the array".to_owned(),
        });
    }
    Ok(report)
}
