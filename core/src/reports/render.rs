//! Writing a report out: an aligned table, JSON or CSV.

use std::fmt::Write as _;

use super::*;

impl Report {
    /// The report in `format`.
    pub fn render(&self, format: Format) -> Result<String, std::io::Error> {
        match format {
            Format::Json => serde_json::to_string_pretty(self)
                .map(|mut s| {
                    s.push('\n');
                    s
                })
                .map_err(std::io::Error::other),
            Format::Csv => self.to_csv(),
            Format::Table => Ok(self.to_table()),
        }
    }

    /// [`CSV_HEADER`], one line per row, then the `total` line.
    pub fn to_csv(&self) -> Result<String, std::io::Error> {
        let mut out = csv::Writer::from_writer(Vec::with_capacity(64 * (self.rows.len() + 2)));
        out.write_record(CSV_HEADER)?;
        for row in self.rows.iter().chain([&self.totals]) {
            out.write_record(row.cells())?;
        }
        let bytes = out.into_inner().map_err(|e| e.into_error())?;
        String::from_utf8(bytes).map_err(std::io::Error::other)
    }

    /// Aligned columns for a terminal: a header, the rows, a rule and the
    /// totals; links also show their names.
    pub fn to_table(&self) -> String {
        let with_name = self.group_by == GroupBy::Link;
        let mut header: Vec<String> = vec![self.group_by.as_str().to_owned()];
        if with_name {
            header.push("name".to_owned());
        }
        header.extend(CSV_HEADER[1..].iter().map(|h| (*h).to_owned()));
        let line = |row: &ReportRow| {
            let mut cells = row.cells();
            if with_name {
                cells.insert(1, row.name.clone().unwrap_or_default());
            }
            cells
        };
        let body: Vec<Vec<String>> = self.rows.iter().map(line).collect();
        let total = line(&self.totals);
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for cells in body.iter().chain([&total]) {
            for (w, c) in widths.iter_mut().zip(cells) {
                *w = (*w).max(c.chars().count());
            }
        }
        // Text columns (group, name) align left, numbers right.
        let text_columns = if with_name { 2 } else { 1 };
        let mut out = String::new();
        let mut write_line = |cells: &[String]| {
            let mut line = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w.saturating_sub(cell.chars().count());
                if i < text_columns {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        };
        write_line(&header);
        for cells in &body {
            write_line(cells);
        }
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        write_line(&rule);
        write_line(&total);
        if self.currencies.len() > 1 {
            let _ = writeln!(
                out,
                "note: the money columns add up amounts in {}",
                self.currencies.join(", ")
            );
        }
        out
    }
}

impl ReportRow {
    /// The CSV cells, in [`CSV_HEADER`] order.
    pub fn cells(&self) -> Vec<String> {
        let t = &self.sums;
        vec![
            self.group.clone(),
            t.clicks.to_string(),
            t.bot_hits.to_string(),
            t.conversions.to_string(),
            t.items.to_string(),
            t.revenue.to_string(),
            t.commission.to_string(),
            self.conversion_rate.to_string(),
            t.earnings_per_click.to_string(),
        ]
    }
}
