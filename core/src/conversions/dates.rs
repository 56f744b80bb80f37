//! Dates and times in the networks' reports, read into Unix milliseconds
//! (UTC) without a calendar library: the proleptic Gregorian calendar is a
//! few lines of integer arithmetic.
//!
//! Accepted shapes (a time `HH:MM[:SS[.fraction]]` may follow any date, after
//! a space or `T`; an ISO date-time may end in `Z` or an offset `±HH[:]MM`;
//! without an offset a time is taken as UTC):
//!
//! | shape | example |
//! |---|---|
//! | ISO | `2026-11-03`, `2026-11-03 14:05:00`, `2026-11-03T14:05:00+01:00` |
//! | year first, slashes | `2026/11/03` |
//! | slashes or dashes, year last | `11/03/2026`, `11-03-2026` (month first or day first: [`DateOrder`]) |
//! | dots, year last | `03.11.2026` (always day first) |
//! | month names | `Nov 3, 2026`, `November 3, 2026`, `3 Nov 2026` |

pub use crate::clock::Day;
#[cfg(test)]
use crate::clock::civil_from_days;
use crate::clock::{MS_PER_DAY, check_date, days_from_civil};

/// How to read a date whose first two numbers could be either day or month
/// (`03/04/2026`, `03-04-2026`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    /// Month first (`11/03/2026` is 3 November), as US reports write it.
    MonthFirst,
    /// Day first (`03/11/2026` is 3 November), as UK and EU reports write it.
    DayFirst,
}

impl DateOrder {
    /// The config spelling: `mdy` or `dmy`.
    pub fn parse(s: &str) -> Option<DateOrder> {
        match s {
            "mdy" => Some(DateOrder::MonthFirst),
            "dmy" => Some(DateOrder::DayFirst),
            _ => None,
        }
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_by_name(word: &str) -> Option<u32> {
    let w = word.trim_end_matches('.').to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    let idx = MONTHS.iter().position(|m| w.starts_with(m))?;
    // `Sept`, `November`: the full name or a prefix of it, never other words.
    const FULL: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    FULL[idx].starts_with(&w).then_some(idx as u32 + 1)
}

fn number(s: &str, min_len: usize, max_len: usize) -> Option<u32> {
    if s.len() < min_len || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Milliseconds after midnight of a `HH:MM[:SS[.fraction]]` time, and the
/// offset from UTC in minutes if the time carries one (`Z`, `±HH:MM`,
/// `±HHMM`, ` UTC`).
fn parse_time(s: &str) -> Result<(i64, i64), String> {
    let s = s.trim();
    let s = s
        .strip_suffix("UTC")
        .or_else(|| s.strip_suffix("GMT"))
        .map(str::trim_end)
        .unwrap_or(s);
    let (clock, offset) = if let Some(c) = s.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = s.rfind(['+', '-']) {
        let (c, o) = s.split_at(i);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
        let (Some(h), Some(m)) = (
            digits.get(..2).and_then(|d| number(d, 2, 2)),
            digits.get(2..).and_then(|d| number(d, 2, 2)),
        ) else {
            return Err(format!("`{o}` is not a UTC offset like +01:00"));
        };
        if h > 23 || m > 59 {
            return Err(format!("`{o}` is not a UTC offset like +01:00"));
        }
        (c.trim_end(), sign * i64::from(h * 60 + m))
    } else {
        (s, 0)
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let bad = || format!("`{clock}` is not a time like 14:05:00");
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, sec] => (*h, *m, *sec),
        _ => return Err(bad()),
    };
    let (sec, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let (Some(h), Some(m), Some(sec)) = (number(h, 1, 2), number(m, 2, 2), number(sec, 1, 2))
    else {
        return Err(bad());
    };
    if h > 23 || m > 59 || sec > 60 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let millis: i64 = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc, b| acc * 10 + i64::from(b - b'0'));
    Ok((
        ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(sec.min(59))) * 1000 + millis,
        offset,
    ))
}

/// Reads a report's date or date-time into Unix milliseconds (UTC).
pub fn parse_event_time(raw: &str, order: DateOrder) -> Result<i64, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("empty".to_owned());
    }
    let (date, time) = split_date_time(s);
    let (y, m, d) = parse_date(date, order).map_err(|e| format!("`{s}`: {e}"))?;
    check_date(y, m, d).map_err(|e| format!("`{s}`: {e}"))?;
    let (ms, offset_min) = match time {
        Some(t) if !t.trim().is_empty() => parse_time(t).map_err(|e| format!("`{s}`: {e}"))?,
        _ => (0, 0),
    };
    Ok(days_from_civil(y, m, d) * MS_PER_DAY + ms - offset_min * 60_000)
}

/// Splits `2026-11-03T14:05` / `11/03/2026 14:05` / `Nov 3, 2026 14:05` into
/// the date and the time (if any).
fn split_date_time(s: &str) -> (&str, Option<&str>) {
    // The time starts at the first `:`'s number: find the token holding it.
    if let Some(colon) = s.find(':') {
        let before = &s[..colon];
        if let Some(i) = before.rfind([' ', 'T']) {
            return (before[..i].trim_end(), Some(&s[i + 1..]));
        }
    }
    (s, None)
}

fn parse_date(s: &str, order: DateOrder) -> Result<(i64, u32, u32), String> {
    let bad = || "not a date (use e.g. 2026-11-03)".to_owned();
    // Month names: `Nov 3, 2026`, `November 3 2026`, `3 Nov 2026`.
    if s.bytes().any(|b| b.is_ascii_alphabetic()) {
        let words: Vec<&str> = s.split([' ', ',', '-']).filter(|w| !w.is_empty()).collect();
        let [a, b, c] = words.as_slice() else {
            return Err(bad());
        };
        let year = number(c, 4, 4).ok_or_else(bad)?;
        let (month, day) = match (month_by_name(a), month_by_name(b)) {
            (Some(m), None) => (m, number(b, 1, 2).ok_or_else(bad)?),
            (None, Some(m)) => (m, number(a, 1, 2).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        return Ok((i64::from(year), month, day));
    }
    let sep = s.bytes().find(|b| matches!(b, b'-' | b'/' | b'.'));
    let Some(sep) = sep else {
        return Err(bad());
    };
    let parts: Vec<&str> = s.split(sep as char).collect();
    let [a, b, c] = parts.as_slice() else {
        return Err(bad());
    };
    if a.len() == 4 {
        // Year first: always year, month, day.
        let (Some(y), Some(m), Some(d)) = (number(a, 4, 4), number(b, 1, 2), number(c, 1, 2))
        else {
            return Err(bad());
        };
        return Ok((i64::from(y), m, d));
    }
    let (Some(x), Some(z), Some(y)) = (number(a, 1, 2), number(b, 1, 2), number(c, 4, 4)) else {
        return Err(bad());
    };
    let (m, d) = match (sep, order) {
        (b'.', _) | (_, DateOrder::DayFirst) => (z, x),
        (_, DateOrder::MonthFirst) => (x, z),
    };
    Ok((i64::from(y), m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_3: i64 = 1_793_664_000_000; // 2026-11-03T00:00:00Z

    #[test]
    fn civil_round_trips_and_matches_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 3) * MS_PER_DAY, NOV_3);
        for days in [-1_000, 0, 59, 60, 11_016, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn report_dates_in_every_shape() {
        let h = 3_600_000;
        let cases: &[(&str, DateOrder, i64)] = &[
            ("2026-11-03", DateOrder::MonthFirst, NOV_3),
            ("  2026-11-03  ", DateOrder::DayFirst, NOV_3),
            (
                "2026-11-03 14:05:00",
                DateOrder::MonthFirst,
                NOV_3 + 14 * h + 300_000,
            ),
            (
                "2026-11-03T14:05",
                DateOrder::MonthFirst,
                NOV_3 + 14 * h + 300_000,
            ),
            (
                "2026-11-03T14:05:00Z",
                DateOrder::MonthFirst,
                NOV_3 + 14 * h + 300_000,
            ),
            (
                "2026-11-03T14:05:00.250+01:00",
                DateOrder::MonthFirst,
                NOV_3 + 13 * h + 300_250,
            ),
            (
                "2026-11-03T01:00:00-0130",
                DateOrder::MonthFirst,
                NOV_3 + 2 * h + 1_800_000,
            ),
            ("2026/11/03", DateOrder::DayFirst, NOV_3),
            ("11/03/2026", DateOrder::MonthFirst, NOV_3),
            ("03/11/2026", DateOrder::DayFirst, NOV_3),
            ("11-03-2026", DateOrder::MonthFirst, NOV_3),
            (
                "3/11/2026 14:05:00",
                DateOrder::DayFirst,
                NOV_3 + 14 * h + 300_000,
            ),
            ("03.11.2026", DateOrder::MonthFirst, NOV_3),
            ("Nov 3, 2026", DateOrder::DayFirst, NOV_3),
            ("November 3, 2026", DateOrder::MonthFirst, NOV_3),
            ("3 Nov 2026", DateOrder::MonthFirst, NOV_3),
            (
                "Sept 3, 2026",
                DateOrder::MonthFirst,
                NOV_3 - 61 * 86_400_000,
            ),
        ];
        for (input, order, want) in cases {
            assert_eq!(parse_event_time(input, *order), Ok(*want), "{input}");
        }
    }

    #[test]
    fn impossible_or_garbled_dates_are_refused() {
        for bad in [
            "",
            "2026-13-01",
            "2026-02-29",
            "31/04/2026",
            "yesterday",
            "2026-11",
            "Nov 2026",
            "Novel 3, 2026",
            "2026-11-03 25:00",
            "2026-11-03T10:00+5",
            "12345",
        ] {
            assert!(
                parse_event_time(bad, DateOrder::DayFirst).is_err(),
                "{bad} was accepted"
            );
        }
        assert_eq!(
            parse_event_time("2028-02-29", DateOrder::DayFirst),
            Ok(days_from_civil(2028, 2, 29) * MS_PER_DAY)
        );
    }

    #[test]
    fn days_parse_and_print_as_iso() {
        let d: Day = "2026-11-03".parse().expect("day");
        assert_eq!(d.days() * MS_PER_DAY, NOV_3);
        assert_eq!(d.plus(30).to_string(), "2026-12-03");
        assert!("2026-1-3".parse::<Day>().is_err());
        assert!("2026-02-30".parse::<Day>().is_err());
    }
}
