//! Money amounts. The store keeps every amount as integer micro-units of the
//! currency's major unit (1 USD = 1,000,000), so sums are exact; the API,
//! the CSV and the CLI show them as decimal strings, never as floats.

use std::fmt;

use serde::{Serialize, Serializer};

/// Micro-units in one major unit.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// An amount in integer micro-units of a currency's major unit.
///
/// Shown (with [`fmt::Display`] and in JSON, as a string) as an exact
/// decimal with at least two decimal places and at most six: `12.00`,
/// `0.4667`, `-3.10`, `0.000001`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

impl Micros {
    /// Zero.
    pub const ZERO: Micros = Micros(0);

    /// This amount divided by `n`, rounded to the nearest micro-unit (halves
    /// away from zero); zero when `n` is zero. Earnings per click are
    /// `commission.per(clicks)`.
    pub fn per(self, n: u64) -> Micros {
        if n == 0 {
            return Micros::ZERO;
        }
        let (v, n) = (i128::from(self.0), i128::from(n));
        let rounded = if v >= 0 {
            (2 * v + n) / (2 * n)
        } else {
            (2 * v - n) / (2 * n)
        };
        // |rounded| <= |v|, so it fits.
        Micros(rounded as i64)
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = MICROS_PER_UNIT as u64;
        let digits = format!("{:06}", abs % per);
        let fraction = digits.trim_end_matches('0');
        let fraction = if fraction.len() < 2 {
            &digits[..2]
        } else {
            fraction
        };
        write!(f, "{sign}{}.{fraction}", abs / per)
    }
}

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_exactly_with_two_to_six_decimals() {
        for (micros, shown) in [
            (0, "0.00"),
            (12_000_000, "12.00"),
            (12_340_000, "12.34"),
            (12_345_000, "12.345"),
            (466_667, "0.466667"),
            (1, "0.000001"),
            (100_000, "0.10"),
            (-3_100_000, "-3.10"),
            (-1, "-0.000001"),
            (i64::MIN, "-9223372036854.775808"),
        ] {
            assert_eq!(Micros(micros).to_string(), shown, "{micros}");
        }
    }

    #[test]
    fn per_rounds_half_away_from_zero_and_is_zero_for_nothing() {
        assert_eq!(Micros(1_400_000).per(3), Micros(466_667));
        assert_eq!(Micros(1_000_000).per(3), Micros(333_333));
        assert_eq!(Micros(5).per(2), Micros(3));
        assert_eq!(Micros(-5).per(2), Micros(-3));
        assert_eq!(Micros(7).per(0), Micros::ZERO);
        assert_eq!(Micros(i64::MAX).per(1), Micros(i64::MAX));
    }

    #[test]
    fn json_carries_the_decimal_string() {
        assert_eq!(
            serde_json::to_string(&Micros(1_250_000)).ok().as_deref(),
            Some("\"1.25\"")
        );
    }
}
