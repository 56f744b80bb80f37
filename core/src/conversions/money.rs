//! Amounts and counts as the reports write them, read without floating point.
//!
//! Money becomes integer micro-units (1.00 → 1,000,000). Accepted:
//! `1,234.56`, `1.234,56`, `12.3`, `-5.00`, `(5.00)` (accounting negative),
//! `$12.30`, `£12.30`, `12,30 €`, `USD 12.30`, `1 234,56`, `1'234.56`.
//!
//! Which of `.` and `,` is the decimal separator: when both appear, the last
//! one; a lone `.` is decimal; a lone `,` is a thousands separator if exactly
//! three digits follow it (`1,234`), decimal otherwise (`12,5`); a separator
//! that appears more than once groups thousands. More than six decimals are
//! rounded half away from zero.

/// Reads an amount into micro-units; `Ok(None)` for an empty cell.
pub fn parse_micros(raw: &str) -> Result<Option<i64>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| format!("`{s}` is not an amount: {why}");
    let (negative, body) = number_body(s).map_err(|why| bad(&why))?;
    let digits: String = body
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\''))
        .collect();
    let dots = digits.matches('.').count();
    let commas = digits.matches(',').count();
    let decimal = match (dots, commas) {
        (0, 0) => None,
        (1, 0) => Some('.'),
        (_, 0) | (0, _) if dots > 1 || commas > 1 => None,
        (0, 1) => {
            let after = digits.len() - digits.find(',').map_or(0, |i| i + 1);
            (after != 3).then_some(',')
        }
        _ => {
            // Both: the last one is the decimal separator and appears once.
            let last = digits
                .rfind(['.', ','])
                .map(|i| digits.as_bytes()[i] as char);
            let sep = last.unwrap_or('.');
            if digits.matches(sep).count() > 1 {
                return Err(bad("two decimal separators"));
            }
            Some(sep)
        }
    };
    let (int_part, frac_part) = match decimal {
        Some(sep) => digits.split_once(sep).unwrap_or((&digits, "")),
        None => (digits.as_str(), ""),
    };
    let groups: Vec<&str> = int_part.split(['.', ',']).collect();
    if groups.len() > 1
        && (groups[0].is_empty() || groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3))
    {
        return Err(bad("misplaced thousands separator"));
    }
    let int_digits: String = int_part.chars().filter(|c| c.is_ascii_digit()).collect();
    if int_part
        .chars()
        .any(|c| !c.is_ascii_digit() && c != '.' && c != ',')
        || !frac_part.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad("unexpected characters"));
    }
    // Accumulated in i128 and signed before the range check, so that the
    // most negative amount (`i64::MIN` micro-units, which `Micros` shows as
    // `-9223372036854.775808`) reads back.
    let mut micros: i128 = 0;
    for b in int_digits.bytes() {
        micros = micros
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(b - b'0')))
            .ok_or_else(|| bad("too large"))?;
    }
    micros = micros
        .checked_mul(1_000_000)
        .ok_or_else(|| bad("too large"))?;
    let frac = frac_part.as_bytes();
    let mut frac_micros: i128 = 0;
    for i in 0..6 {
        frac_micros = frac_micros * 10 + frac.get(i).map_or(0, |b| i128::from(b - b'0'));
    }
    if frac.get(6).is_some_and(|b| *b >= b'5') {
        frac_micros += 1;
    }
    micros = micros
        .checked_add(frac_micros)
        .ok_or_else(|| bad("too large"))?;
    let signed = if negative { -micros } else { micros };
    i64::try_from(signed)
        .map(Some)
        .map_err(|_| bad("too large"))
}

/// Splits a number cell into its sign and the part from its first to its
/// last digit (with a separator right before the first digit, as in `.5`),
/// checking that what surrounds it is only a currency, a sign or brackets.
fn number_body(s: &str) -> Result<(bool, &str), String> {
    let first = s
        .find(|c: char| c.is_ascii_digit())
        .ok_or_else(|| "no digits".to_owned())?;
    let last = s
        .rfind(|c: char| c.is_ascii_digit())
        .map_or(first, |i| i + 1);
    let start = match s[..first].chars().next_back() {
        Some(c @ ('.' | ',')) => first - c.len_utf8(),
        _ => first,
    };
    let (prefix, body, suffix) = (&s[..start], &s[start..last], &s[last..]);
    let mut negative = false;
    let mut brackets = 0;
    for c in prefix.chars().chain(suffix.chars()) {
        match c {
            '-' | '\u{2212}' => negative = true,
            '(' | ')' => brackets += 1,
            '+' => {}
            c if c.is_alphabetic() || c.is_whitespace() || !c.is_ascii() || c == '$' => {}
            c => return Err(format!("unexpected `{c}`")),
        }
    }
    if brackets == 2 {
        negative = true;
    } else if brackets != 0 {
        return Err("unbalanced brackets".to_owned());
    }
    Ok((negative, body))
}

/// Reads a count (items, returns); `Ok(None)` for an empty cell. Thousands
/// separators and a zero fraction (`3.00`) are accepted.
pub fn parse_count(raw: &str) -> Result<Option<i64>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || format!("`{s}` is not a whole number");
    let (negative, body) = s
        .strip_prefix('-')
        .map_or((false, s.strip_prefix('+').unwrap_or(s)), |b| (true, b));
    let (int_part, frac) = body.split_once('.').unwrap_or((body, ""));
    if !frac.bytes().all(|b| b == b'0') || int_part.is_empty() {
        return Err(bad());
    }
    let groups: Vec<&str> = int_part.split(',').collect();
    if groups
        .iter()
        .any(|g| g.is_empty() || !g.bytes().all(|b| b.is_ascii_digit()))
        || groups.iter().skip(1).any(|g| g.len() != 3)
    {
        return Err(bad());
    }
    let n: i64 = groups.concat().parse().map_err(|_| bad())?;
    Ok(Some(if negative { -n } else { n }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by the `money` fuzz target's round trip): the
    /// most negative amount, as `Micros` shows it, was refused as "too
    /// large" because the magnitude was read as a positive `i64` first.
    #[test]
    fn most_negative_amount_shown_reads_back() {
        let shown = crate::money::Micros(i64::MIN).to_string();
        assert_eq!(shown, "-9223372036854.775808");
        assert_eq!(parse_micros(&shown), Ok(Some(i64::MIN)));
        assert_eq!(parse_micros("9223372036854.775807"), Ok(Some(i64::MAX)));
        assert!(parse_micros("9223372036854.775808").is_err());
        assert!(parse_micros("-9223372036854.775809").is_err());
    }

    #[test]
    fn amounts_become_exact_micros() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("12.3", 12_300_000),
            ("12.30", 12_300_000),
            ("1,234.56", 1_234_560_000),
            ("1.234,56", 1_234_560_000),
            ("1,234", 1_234_000_000),
            ("1,234,567", 1_234_567_000_000),
            ("1.234.567", 1_234_567_000_000),
            ("12,5", 12_500_000),
            ("0,99", 990_000),
            ("-5.00", -5_000_000),
            ("(5.00)", -5_000_000),
            ("$-5.00", -5_000_000),
            ("-$5.00", -5_000_000),
            ("$12.30", 12_300_000),
            ("£1,299.99", 1_299_990_000),
            ("12,30 €", 12_300_000),
            ("USD 12.30", 12_300_000),
            ("1 234,56", 1_234_560_000),
            ("1\u{a0}234,56", 1_234_560_000),
            ("1'234.56", 1_234_560_000),
            (".5", 500_000),
            ("0.1234565", 123_457),
            ("0.1234564", 123_456),
            ("-0.0000005", -1),
            ("+7", 7_000_000),
            ("9223372036854.775807", i64::MAX),
        ];
        for (input, want) in cases {
            assert_eq!(parse_micros(input), Ok(Some(*want)), "{input}");
        }
        assert_eq!(parse_micros("   "), Ok(None));
    }

    #[test]
    fn garbage_amounts_are_refused() {
        for bad in [
            "abc",
            "12%",
            "1.2.3,4,5",
            "1,2.3,4",
            "12a34",
            "(5.00",
            "9223372036855",
            "1-2",
            "#12",
            "1.0.0",
            "12,34,5",
        ] {
            assert!(parse_micros(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn counts_are_whole_numbers() {
        assert_eq!(parse_count("3"), Ok(Some(3)));
        assert_eq!(parse_count(" 1,234 "), Ok(Some(1234)));
        assert_eq!(parse_count("-1"), Ok(Some(-1)));
        assert_eq!(parse_count("2.00"), Ok(Some(2)));
        assert_eq!(parse_count(""), Ok(None));
        for bad in ["1.5", "x", "1,23", ",1", "--1", "1 000"] {
            assert!(parse_count(bad).is_err(), "{bad} was accepted");
        }
    }
}
