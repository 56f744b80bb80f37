//! Delimited reports (CSV, tab- or semicolon-separated) with a header line
//! somewhere near the top: finding the header, mapping columns to fields,
//! and reading rows with their line numbers.
//!
//! The header is the first of the first [`HEADER_SCAN_LINES`] lines that,
//! split by one of the delimiters (tab, comma, semicolon), holds a column
//! for every required field of the format; lines above it (a title such as
//! `Fee-Earnings reports from 11-01-2026 to 11-30-2026`) are skipped. Headers
//! are compared ignoring case, spaces, punctuation and bracketed parts, so
//! `Ad Fees($)`, `ad fees` and `AdFees` are the same column.

use csv::StringRecord;

use super::settings::{Format, FormatSettings};
use super::{ImportError, MAX_CELL_BYTES, MAX_REPORT_ROWS};

/// How far down the file the header line is looked for.
pub const HEADER_SCAN_LINES: usize = 50;

/// A report with its header found, ready to read rows.
pub(super) struct Table<'a> {
    /// Per field of the format's settings, the column index (if present).
    columns: Vec<(&'static str, Option<usize>)>,
    /// The header cells as written.
    headers: Vec<String>,
    /// 1-based line of the header.
    header_line: u64,
    reader: csv::Reader<&'a [u8]>,
    record: StringRecord,
    /// Rows read so far.
    rows: u64,
}

/// Lower-case letters and digits of a header, without bracketed parts.
pub(super) fn normalize(header: &str) -> String {
    let mut out = String::with_capacity(header.len());
    let mut depth = 0u32;
    for c in header.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            c if depth == 0 && c.is_alphanumeric() => out.extend(c.to_lowercase()),
            _ => {}
        }
    }
    out
}

/// The currency a header names in brackets (`Price(£)`, `Revenue (EUR)`),
/// if unambiguous (`$` is not: US, Canada, Mexico, Australia all use it).
pub(super) fn currency_from_header(header: &str) -> Option<String> {
    let open = header.find(['(', '['])?;
    let inner = header[open + 1..].trim_end_matches([')', ']', ' ']).trim();
    match inner {
        "£" => Some("GBP".to_owned()),
        "€" => Some("EUR".to_owned()),
        "₹" => Some("INR".to_owned()),
        "¥" | "￥" => Some("JPY".to_owned()),
        "R$" => Some("BRL".to_owned()),
        "zł" => Some("PLN".to_owned()),
        code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(code.to_ascii_uppercase())
        }
        _ => None,
    }
}

/// Splits candidate header lines by one delimiter into cells, as the row
/// reader ([`builder`]) splits a file holding only that line (a quote left
/// open ends with the line). One parser serves every line of the header scan:
/// building a `csv::Reader` costs a parser table and a buffer, and the scan
/// may try 50 lines with three delimiters each.
struct LineSplitter {
    parser: csv_core::Reader,
    /// The current record's field bytes, and where each field ends in them.
    fields: Vec<u8>,
    ends: Vec<usize>,
}

impl LineSplitter {
    fn new(delimiter: u8) -> LineSplitter {
        // The settings of `builder`, which `csv` hands to this same parser.
        let parser = csv_core::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(delimiter != b'\t')
            .build();
        LineSplitter {
            parser,
            fields: vec![0; 256],
            ends: vec![0; 16],
        }
    }

    /// The cells of the first record of `line` (none if it holds none).
    fn split(&mut self, line: &str) -> Vec<String> {
        use csv_core::ReadRecordResult;
        self.parser.reset();
        let mut input = line.as_bytes();
        let (mut out_len, mut ends_len) = (0, 0);
        loop {
            // Once `input` is empty, the parser takes the call as the end
            // of the data and finishes the record (as `csv::Reader` does).
            let (result, read, written, ended) = self.parser.read_record(
                input,
                &mut self.fields[out_len..],
                &mut self.ends[ends_len..],
            );
            input = &input[read..];
            out_len += written;
            ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.fields.resize(self.fields.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => break,
                ReadRecordResult::End => return Vec::new(),
            }
        }
        let mut start = 0;
        let cells: Result<Vec<String>, _> = self.ends[..ends_len]
            .iter()
            .map(|&end| {
                let cell = std::str::from_utf8(&self.fields[start..end]).map(str::to_owned);
                start = end;
                cell
            })
            .collect();
        // Cells of a `str` line are UTF-8; `csv` would refuse them otherwise.
        cells.unwrap_or_default()
    }
}

fn builder(delimiter: u8) -> csv::ReaderBuilder {
    let mut b = csv::ReaderBuilder::new();
    b.delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        // Tab-separated reports do not quote: a product name may start
        // with `"` (`12" pan`).
        .quoting(delimiter != b'\t');
    b
}

/// Each field of the settings with its candidate headers, normalized.
type Candidates = Vec<(&'static str, Vec<String>)>;

fn candidates(settings: &FormatSettings) -> Candidates {
    settings
        .columns
        .iter()
        .map(|(field, headers)| (*field, headers.iter().map(|h| normalize(h)).collect()))
        .collect()
}

/// Resolves each field to the first column whose header matches one of its
/// candidate headers (in the candidates' order).
fn resolve(candidates: &Candidates, normalized: &[String]) -> Vec<(&'static str, Option<usize>)> {
    candidates
        .iter()
        .map(|(field, candidates)| {
            let index = candidates
                .iter()
                .find_map(|c| normalized.iter().position(|h| h == c));
            (*field, index)
        })
        .collect()
}

impl<'a> Table<'a> {
    /// Finds the header line of `text` and prepares to read the rows below it.
    pub(super) fn open(
        text: &'a str,
        format: Format,
        settings: &FormatSettings,
    ) -> Result<Table<'a>, ImportError> {
        let candidates = candidates(settings);
        let mut splitters: [(u8, Option<LineSplitter>); 3] =
            [(b'\t', None), (b',', None), (b';', None)];
        let mut offset = 0;
        for (i, raw_line) in text
            .split_inclusive('\n')
            .take(HEADER_SCAN_LINES)
            .enumerate()
        {
            let line = raw_line.trim_end_matches(['\n', '\r']);
            let start = offset;
            offset += raw_line.len();
            if line.trim().is_empty() {
                continue;
            }
            for (delimiter, splitter) in &mut splitters {
                let delimiter = *delimiter;
                if !line.as_bytes().contains(&delimiter) {
                    continue;
                }
                let headers = splitter
                    .get_or_insert_with(|| LineSplitter::new(delimiter))
                    .split(line);
                let normalized: Vec<String> = headers.iter().map(|h| normalize(h)).collect();
                let columns = resolve(&candidates, &normalized);
                let has = |field: &str| columns.iter().any(|(f, i)| *f == field && i.is_some());
                if format.required().iter().all(|f| has(f)) {
                    let body = &text.as_bytes()[start + raw_line.len()..];
                    return Ok(Table {
                        columns,
                        headers,
                        header_line: i as u64 + 1,
                        reader: builder(delimiter).from_reader(body),
                        record: StringRecord::new(),
                        rows: 0,
                    });
                }
            }
        }
        let wanted: Vec<String> = format
            .required()
            .iter()
            .map(|f| {
                let names = settings.headers(f);
                format!("{f} ({})", names.join(" or "))
            })
            .collect();
        Err(ImportError::Malformed {
            line: 1,
            message: format!(
                "no header line found in the first {HEADER_SCAN_LINES} lines: {format} needs columns for {}; \
                 set [conversions.formats.{format}.columns] if your report names them differently",
                wanted.join(", ")
            ),
        })
    }

    /// The column index of a field, if the report has it.
    pub(super) fn column(&self, field: &str) -> Option<usize> {
        self.columns
            .iter()
            .find(|(f, _)| *f == field)
            .and_then(|(_, i)| *i)
    }

    /// The header of a field's column as the report writes it (or the
    /// field's name).
    pub(super) fn header(&self, field: &'static str) -> &str {
        self.column(field)
            .and_then(|i| self.headers.get(i))
            .map_or(field, String::as_str)
    }

    /// The currency a field's header names, if any.
    pub(super) fn header_currency(&self, field: &str) -> Option<String> {
        self.column(field)
            .and_then(|i| self.headers.get(i))
            .and_then(|h| currency_from_header(h))
    }

    /// The 1-based line of the header.
    #[cfg(test)]
    pub(super) fn header_line(&self) -> u64 {
        self.header_line
    }

    /// The next row and its 1-based line, or `None` at the end. A row past
    /// [`MAX_REPORT_ROWS`] or with a cell longer than [`MAX_CELL_BYTES`]
    /// makes the file malformed at its line.
    pub(super) fn next_row(&mut self) -> Result<Option<(u64, &StringRecord)>, ImportError> {
        match self.reader.read_record(&mut self.record) {
            Ok(true) => {
                let line = self.header_line + self.record.position().map_or(0, |p| p.line());
                self.rows += 1;
                if self.rows > MAX_REPORT_ROWS {
                    return Err(ImportError::Malformed {
                        line,
                        message: format!(
                            "a report holds at most {MAX_REPORT_ROWS} rows; split the file"
                        ),
                    });
                }
                if let Some((i, cell)) = self
                    .record
                    .iter()
                    .enumerate()
                    .find(|(_, c)| c.len() > MAX_CELL_BYTES)
                {
                    let column = self
                        .headers
                        .get(i)
                        .map_or_else(|| format!("{}", i + 1), |h| format!("`{h}`"));
                    return Err(ImportError::Malformed {
                        line,
                        message: format!(
                            "column {column} holds a cell of {} bytes; a cell holds at most {MAX_CELL_BYTES}",
                            cell.len()
                        ),
                    });
                }
                Ok(Some((line, &self.record)))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(ImportError::Malformed {
                line: self.header_line + e.position().map_or(0, |p| p.line()),
                message: format!("unreadable row: {e}"),
            }),
        }
    }

    /// A field's trimmed cell in `record` ("" if the column or cell is absent).
    pub(super) fn cell<'r>(&self, record: &'r StringRecord, field: &str) -> &'r str {
        self.column(field)
            .and_then(|i| record.get(i))
            .map_or("", str::trim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_ignoring_case_punctuation_and_currency() {
        assert_eq!(normalize("Ad Fees($)"), "adfees");
        assert_eq!(normalize(" Tracking ID "), "trackingid");
        assert_eq!(normalize("Tracking Id"), "trackingid");
        assert_eq!(normalize("Sub-Tag"), "subtag");
        assert_eq!(normalize("Revenue [EUR]"), "revenue");
        assert_eq!(currency_from_header("Price(£)").as_deref(), Some("GBP"));
        assert_eq!(
            currency_from_header("Revenue (eur)").as_deref(),
            Some("EUR")
        );
        assert_eq!(currency_from_header("Price($)"), None);
        assert_eq!(currency_from_header("Price"), None);
    }

    /// How a `csv::Reader` of the row reader's settings splits a file of
    /// one line: what [`LineSplitter`] must agree with.
    fn split_by_csv_reader(line: &str, delimiter: u8) -> Vec<String> {
        let mut reader = builder(delimiter).from_reader(line.as_bytes());
        let mut record = StringRecord::new();
        match reader.read_record(&mut record) {
            Ok(true) => record.iter().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn header_lines_split_as_the_csv_reader_splits_them() {
        let long = format!("{},b", "x".repeat(1000));
        let many = vec!["c"; 100].join(",");
        let lines = [
            "Category,Name,ASIN",
            "\u{feff}Date;Price(\u{20ac});Sub-Tag",
            "a\tb\t\"c\td\"",
            "\"quoted, comma\",plain,\"with \"\"doubled\"\" quotes\"",
            "\"open quote, never closed",
            "12\" pan\tpan\t",
            ",,;;\t\t",
            "trailing,",
            "x",
            "Prix (€);Datum;Größe",
            long.as_str(),
            many.as_str(),
        ];
        for delimiter in [b'\t', b',', b';'] {
            let mut splitter = LineSplitter::new(delimiter);
            for line in lines {
                assert_eq!(
                    splitter.split(line),
                    split_by_csv_reader(line, delimiter),
                    "{line:?} split by {:?}",
                    delimiter as char
                );
            }
        }
    }

    #[test]
    fn header_is_found_below_a_title_line_with_its_delimiter() {
        let settings = FormatSettings::defaults(Format::AmazonEarnings);
        let text = "Fee-Earnings reports from 11-01-2026 to 11-30-2026\n\
                    Category\tName\tASIN\tTracking ID\tDate Shipped\tItems Shipped\tAd Fees($)\n\
                    Books\t\"A\" book\tB000000001\tx-20\t2026-11-03\t1\t0.45\n";
        let mut table = Table::open(text, Format::AmazonEarnings, &settings).expect("header");
        assert_eq!(table.header_line(), 2);
        assert_eq!(table.header("commission"), "Ad Fees($)");
        assert_eq!(table.column("sub_id"), None);
        let (line, record) = table.next_row().expect("row").expect("some");
        assert_eq!(line, 3);
        let record = record.clone();
        assert_eq!(table.cell(&record, "name"), "\"A\" book");
        assert_eq!(table.cell(&record, "commission"), "0.45");
        assert!(table.next_row().expect("end").is_none());
    }

    #[test]
    fn a_file_without_the_required_columns_names_them() {
        let settings = FormatSettings::defaults(Format::AmazonOrders);
        let Err(ImportError::Malformed { line, message }) =
            Table::open("a,b,c\n1,2,3\n", Format::AmazonOrders, &settings)
        else {
            panic!("accepted");
        };
        assert_eq!(line, 1);
        assert!(message.contains("asin (ASIN)"), "{message}");
        assert!(
            message.contains("[conversions.formats.amazon-orders.columns]"),
            "{message}"
        );
    }
}
