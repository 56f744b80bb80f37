//! Conversions: importing the networks' reports (Amazon Associates Earnings,
//! Orders and Bounty reports; Awin transactions as CSV or API JSON) and
//! joining each row to the click that earned it, by sub-ID.
//!
//! # What a conversion is
//!
//! One report row becomes one row of the `conversions` table, identified by
//! (provider, kind, row key):
//!
//! - Amazon: the row key is a digest of the columns that identify a row (the
//!   date, ASIN, tracking ID, sub-tag and price; the product name when there
//!   is no ASIN, as in Bounty reports) plus an occurrence counter, so that
//!   identical rows within one file stay distinct. A later report that
//!   carries returns for a row finds it again and updates it.
//! - Awin: the transaction id.
//!
//! The sub-ID (Amazon sub-tag, Awin `clickRef`) is looked up in the click
//! log: when a click with that click ID exists, the conversion carries its
//! click ID and link. When none does, the row is kept *unattributed* (no
//! link) with its tracking ID (Amazon tag; Awin advertiser id), never dropped;
//! a later import of the same row attributes it once the click is known.
//! An attribution once made is kept even if the click is later gone.
//!
//! Money is integer micro-units, read from the report's decimal text without
//! floating point ([`money`]). Statuses: Amazon Earnings and Bounty rows are
//! `approved` (Earnings rows whose returns cover every item shipped are
//! `returned`), Orders rows `pending`; Awin `pending`, `approved`,
//! `declined` (and `deleted`, stored as `declined`), `paid` once approved
//! and paid to the publisher.
//!
//! # One file, one transaction
//!
//! A file is imported entirely or not at all. What **fails the file**
//! (nothing is imported; the error names the first problem and its line):
//! bytes that are not UTF-8 (or UTF-16 with a byte-order mark) text, an empty
//! file, no header line with the format's required columns in the first 50
//! lines (a title line above the header is fine; headers match ignoring case,
//! spaces, punctuation and a bracketed currency such as `Price($)`), an
//! unreadable CSV row, JSON that is not an array of
//! transactions, and a file none of whose rows can be used (most likely a
//! wrong column mapping or date order, better reported than imported as
//! nothing).
//!
//! What **rejects a row** (the row is skipped and listed with its line and
//! reason; the rest imports): a missing or unreadable date, a missing
//! identity (ASIN in Earnings/Orders reports, the Awin transaction id), an
//! Awin transaction id seen earlier in the same file, an unknown Awin
//! status, an amount or count that is not a number. Empty amount or count
//! cells count as 0 (a Bounty row without a quantity as 1). Rows whose cells
//! are all empty are skipped silently.
//!
//! Each stored row is then *inserted* (new key), *updated* (the key exists
//! and some field differs: returns, a status, a newly known click) or
//! *unchanged*; importing the same file twice changes nothing.

mod amazon;
mod awin;
pub mod dates;
pub mod money;
pub mod pull;
mod settings;
mod store;
mod table;
mod upsert;

use metrics::counter;
use serde::{Deserialize, Serialize};

pub use settings::{
    AwinPullConfig, ConversionsConfig, FieldSpec, Format, FormatSettings, Kind, Provider, Status,
};

use crate::clock::now_ms;
use crate::store::StoreError;
pub use store::{ConversionRows, ConversionStore};
pub use upsert::{StoredConversion, Written, merge};

/// Largest report accepted by the API (and a sensible ceiling for files).
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;

/// Most rows (transactions, for Awin's JSON) in one report: a larger file
/// is refused, naming the first line past the limit; split it.
pub const MAX_REPORT_ROWS: u64 = 1_000_000;

/// Longest cell of a delimited report: a file with a longer one is
/// refused, naming its line (a product name is a few hundred bytes).
pub const MAX_CELL_BYTES: usize = 4 * 1024;

/// At most this many rejections are listed in an answer (all are counted).
pub const MAX_REJECTIONS_SHOWN: usize = 1_000;

/// A report row ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The network.
    pub provider: Provider,
    /// Which report.
    pub kind: Kind,
    /// Identifies the row within (provider, kind) across imports.
    pub row_key: String,
    /// The sub-ID as the report carries it (Amazon sub-tag, Awin `clickRef`).
    pub sub_id: Option<String>,
    /// Amazon tracking ID (tag); Awin advertiser id.
    pub tracking_id: Option<String>,
    /// When it happened (Amazon: the report's date; Awin: the transaction
    /// date), Unix milliseconds.
    pub event_ms: i64,
    /// ASIN.
    pub product_id: Option<String>,
    /// Product name (Amazon); advertiser name (Awin).
    pub product_name: Option<String>,
    /// Items (1 for an Awin transaction).
    pub quantity: i64,
    /// Items returned.
    pub returns: i64,
    /// Price of one item, micro-units.
    pub price_micros: i64,
    /// Revenue of the row (Awin: the sale amount), micro-units.
    pub revenue_micros: i64,
    /// Commission of the row, micro-units.
    pub commission_micros: i64,
    /// Status.
    pub status: Status,
    /// ISO 4217 currency, if known.
    pub currency: Option<String>,
}

/// A report row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rejection {
    /// 1-based line of the row in the file (JSON: where the transaction
    /// starts).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// A parsed report: the usable rows with their lines, and the rest.
#[derive(Debug, Clone)]
pub struct Report {
    /// The format it was read as.
    pub format: Format,
    /// Usable rows and their 1-based lines.
    pub rows: Vec<(u64, Conversion)>,
    /// Rows that were not usable.
    pub rejections: Vec<Rejection>,
    /// Things the operator should know (e.g. no sub-tag column).
    pub warnings: Vec<String>,
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// The format read.
    pub format: String,
    /// `amazon` or `awin`.
    pub provider: String,
    /// `earnings`, `orders`, `bounty` or `transaction`.
    pub kind: String,
    /// Data rows read (stored + rejected).
    pub rows: u64,
    /// New conversions.
    pub inserted: u64,
    /// Known conversions that changed (returns, status, attribution).
    pub updated: u64,
    /// Known conversions that did not change.
    pub unchanged: u64,
    /// Stored rows (inserted, updated or unchanged) whose sub-ID matches no
    /// click: kept without a link.
    pub unattributed: u64,
    /// Rows not imported.
    pub rejected: u64,
    /// The rejected rows (at most 1,000 listed), with line and reason.
    pub rejections: Vec<Rejection>,
    /// Things worth knowing, e.g. that the report has no sub-tag column.
    pub warnings: Vec<String>,
}

impl ImportSummary {
    fn empty(format: Format) -> ImportSummary {
        ImportSummary {
            format: format.name().to_owned(),
            provider: format.provider().as_str().to_owned(),
            kind: format.kind().as_str().to_owned(),
            ..ImportSummary::default()
        }
    }

    /// Adds another import's counts (pulls add one per date window).
    pub fn add(&mut self, other: &ImportSummary) {
        self.rows += other.rows;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.unattributed += other.unattributed;
        self.rejected += other.rejected;
        let room = MAX_REJECTIONS_SHOWN.saturating_sub(self.rejections.len());
        self.rejections
            .extend(other.rejections.iter().take(room).cloned());
        self.warnings.extend(other.warnings.iter().cloned());
    }
}

/// Why a report could not be imported. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be used (client input; fix the file or the column
    /// mapping and retry).
    #[error("line {line}: {message}")]
    Malformed {
        /// 1-based line of the first problem.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The store failed (internal; a retry may help).
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ImportError {
    /// The line of a malformed file.
    pub fn line(&self) -> Option<u64> {
        match self {
            ImportError::Malformed { line, .. } => Some(*line),
            ImportError::Store(_) => None,
        }
    }
}

/// Decodes a report's bytes: UTF-8 (a byte-order mark is skipped) or UTF-16
/// with a byte-order mark.
fn decode(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, ImportError> {
    let utf16 = |units: Vec<u16>| {
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map(std::borrow::Cow::Owned)
            .map_err(|_| ImportError::Malformed {
                line: 1,
                message: "the file is not valid UTF-16 text".to_owned(),
            })
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => decode_utf8(rest),
        [0xFF, 0xFE, rest @ ..] => utf16(
            rest.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        [0xFE, 0xFF, rest @ ..] => utf16(
            rest.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect(),
        ),
        _ => decode_utf8(bytes),
    }
}

fn decode_utf8(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, ImportError> {
    std::str::from_utf8(bytes)
        .map(std::borrow::Cow::Borrowed)
        .map_err(|e| ImportError::Malformed {
            line: line_of(bytes, e.valid_up_to()),
            message: "the file is not UTF-8 text: save the report as UTF-8 (or CSV UTF-8)"
                .to_owned(),
        })
}

/// The 1-based line of a byte offset.
fn line_of(bytes: &[u8], offset: usize) -> u64 {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
        + 1
}

/// Reads a report (no database access).
pub fn parse(
    format: Format,
    settings: &FormatSettings,
    bytes: &[u8],
) -> Result<Report, ImportError> {
    let text = decode(bytes)?;
    // A bare CR ends a line (files saved by old Mac spreadsheets): for the
    // CSV reader, the header scan and the line numbers alike, so that one
    // line never holds two rows.
    let text = if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        text
    };
    if text.trim().is_empty() {
        return Err(ImportError::Malformed {
            line: 1,
            message: "the file is empty".to_owned(),
        });
    }
    let report = match format {
        Format::AmazonEarnings | Format::AmazonOrders | Format::AmazonBounty => {
            amazon::parse(&text, format, settings)?
        }
        Format::AwinCsv => awin::parse_csv(&text, settings)?,
        Format::AwinJson => awin::parse_json(&text)?,
    };
    if report.rows.is_empty()
        && let Some(first) = report.rejections.first()
    {
        return Err(ImportError::Malformed {
            line: first.line,
            message: format!(
                "no row of the file can be used; the first problem: {}",
                first.reason
            ),
        });
    }
    Ok(report)
}

/// Imports a report into the store: parses it, then stores every usable row
/// in one transaction. Counts the outcome in the metrics (`source="file"`).
pub fn import(
    store: &dyn ConversionStore,
    config: &ConversionsConfig,
    format: Format,
    bytes: &[u8],
) -> Result<ImportSummary, ImportError> {
    let result =
        parse(format, config.format(format), bytes).and_then(|report| store_report(store, &report));
    if result.is_err() {
        import_failed("file", format.provider());
    }
    result
}

/// Stores a parsed report in one transaction and counts the stored rows in
/// the metrics.
pub fn store_report(
    db: &dyn ConversionStore,
    report: &Report,
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::empty(report.format);
    summary.rows = (report.rows.len() + report.rejections.len()) as u64;
    summary.rejected = report.rejections.len() as u64;
    summary.rejections = report
        .rejections
        .iter()
        .take(MAX_REJECTIONS_SHOWN)
        .cloned()
        .collect();
    summary.warnings = report.warnings.clone();
    if report.rows.is_empty() {
        crate::metrics::conversions_imported(
            report.format.name(),
            report.format.provider().as_str(),
            &crate::metrics::ImportCounts {
                rows: [
                    ("rejected", summary.rejected),
                    ("inserted", 0),
                    ("updated", 0),
                    ("unchanged", 0),
                    ("unattributed", 0),
                ],
                commission: Vec::new(),
            },
        );
        return Ok(summary);
    }
    let written = db.upsert_conversions(&report.rows, now_ms())?;
    summary.inserted = written.inserted;
    summary.updated = written.updated;
    summary.unchanged = written.unchanged;
    summary.unattributed = written.unattributed;
    let provider = report.format.provider().as_str();
    crate::metrics::conversions_imported(
        report.format.name(),
        provider,
        &crate::metrics::ImportCounts {
            rows: [
                ("inserted", summary.inserted),
                ("updated", summary.updated),
                ("unchanged", summary.unchanged),
                ("rejected", summary.rejected),
                ("unattributed", summary.unattributed),
            ],
            // Orders rows are preliminary: the same sales come again, final,
            // in the Earnings report (as in the reports).
            commission: if report.format == Format::AmazonOrders {
                Vec::new()
            } else {
                written.commission.clone()
            },
        },
    );
    for (status, n) in Status::ALL.iter().zip(written.stored_by_status) {
        if n > 0 {
            counter!("linkwright_conversions_imported_total", "provider" => provider, "status" => status.as_str())
                .increment(n);
        }
    }
    Ok(summary)
}

/// Counts a failed import (`source`: `file` or `pull`).
pub fn import_failed(source: &'static str, provider: Provider) {
    counter!("linkwright_conversion_import_failures_total", "source" => source, "provider" => provider.as_str())
        .increment(1);
}

/// Row keys: a digest of the identifying cells, plus the occurrence of
/// identical rows within one file.
#[derive(Debug, Default)]
struct RowKeys {
    seen: std::collections::HashMap<[u8; 16], u32>,
}

impl RowKeys {
    fn key(&mut self, parts: &[&str]) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for p in parts {
            hasher.update(p.as_bytes());
            hasher.update([0x1f]);
        }
        let digest = hasher.finalize();
        let mut short = [0u8; 16];
        short.copy_from_slice(&digest[..16]);
        let n = self.seen.entry(short).or_insert(0);
        let occurrence = *n;
        *n += 1;
        let mut key = String::with_capacity(36);
        for b in short {
            use std::fmt::Write;
            let _ = write!(key, "{b:02x}");
        }
        if occurrence > 0 {
            use std::fmt::Write;
            let _ = write!(key, "-{occurrence}");
        }
        key
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests;
