//! Kubernetes resource quantities ("100m", "64Mi", "1Gi", "0.5", "1e3"), parsed exactly.
//!
//! The grammar and the rounding are those of k8s.io/apimachinery v0.34.4,
//! `pkg/api/resource/quantity.go` (the `Quantity` doc comment and `ParseQuantity`): a signed
//! decimal number, then a binary suffix (`Ki` … `Ei`, powers of 1024), a decimal suffix
//! (`n`, `u`, `m`, ``, `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`). A
//! quantity keeps at most three decimal places: anything finer is rounded up ("0.1m will be
//! rounded up to 1m"). So a quantity is held here as an integer count of thousandths
//! (for CPU: millicores; for memory: thousandths of a byte), never as a float, so that a sum of
//! requests is exact.
//!
//! Negative quantities are refused: a resource request or limit cannot be negative, and the cost
//! model has no other use for them.

use std::fmt;

/// A non-negative quantity, in thousandths of its unit (millicores for CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Quantity {
    milli: u128,
}

/// Why a quantity string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("quantity {0:?}: not a number followed by a suffix")]
    Syntax(String),
    #[error("quantity {0:?}: negative")]
    Negative(String),
    #[error("quantity {0:?}: unknown suffix {1:?}")]
    Suffix(String, String),
    #[error("quantity {0:?}: too large")]
    Overflow(String),
}

impl Quantity {
    /// A quantity of `milli` thousandths.
    pub const fn from_milli(milli: u128) -> Self {
        Self { milli }
    }

    /// Thousandths of the unit: millicores for CPU.
    pub const fn milli(self) -> u128 {
        self.milli
    }

    /// Whole units, rounded up (bytes for memory), as the API server's `Value()` does.
    pub const fn value_ceil(self) -> u128 {
        self.milli.div_ceil(1000)
    }

    /// The quantity as a float of whole units, for prices (the only place precision may go).
    pub fn as_f64(self) -> f64 {
        self.milli as f64 / 1000.0
    }

    /// Parses `s` as the API server does (see the module doc).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let s_trim = s.trim();
        if s_trim.is_empty() {
            return Err(QuantityError::Empty);
        }
        let syntax = || QuantityError::Syntax(s.to_string());
        let overflow = || QuantityError::Overflow(s.to_string());
        if s_trim.starts_with('-') {
            return Err(QuantityError::Negative(s.to_string()));
        }
        let body = s_trim.strip_prefix('+').unwrap_or(s_trim);
        // The number: digits, an optional point, digits; at least one digit in all.
        let number_end = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(syntax());
        }
        // 38 digits keep the mantissa inside u128; no real quantity comes near.
        if int_part.len() + frac_part.len() > 30 {
            return Err(overflow());
        }
        let mut mantissa: u128 = 0;
        for c in int_part.bytes().chain(frac_part.bytes()) {
            mantissa =
                mantissa.checked_mul(10).and_then(|m| m.checked_add(u128::from(c - b'0'))).ok_or_else(overflow)?;
        }
        // value = mantissa × 10^-frac × multiplier; the multiplier is num / den.
        let (mut num, mut den): (u128, u128) = (1, 1);
        let pow10 = |e: u32| 10u128.checked_pow(e).ok_or_else(overflow);
        match suffix {
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let k = match suffix {
                    "Ki" => 1,
                    "Mi" => 2,
                    "Gi" => 3,
                    "Ti" => 4,
                    "Pi" => 5,
                    _ => 6,
                };
                num = 1u128 << (10 * k);
            }
            "n" => den = pow10(9)?,
            "u" => den = pow10(6)?,
            "m" => den = pow10(3)?,
            "" => {}
            "k" => num = pow10(3)?,
            "M" => num = pow10(6)?,
            "G" => num = pow10(9)?,
            "T" => num = pow10(12)?,
            "P" => num = pow10(15)?,
            "E" => num = pow10(18)?,
            other if other.starts_with(['e', 'E']) => {
                let exp: i32 =
                    other[1..].parse().map_err(|_| QuantityError::Suffix(s.to_string(), other.to_string()))?;
                if exp.unsigned_abs() > 24 {
                    return Err(overflow());
                }
                if exp >= 0 {
                    num = pow10(exp.unsigned_abs())?;
                } else {
                    den = pow10(exp.unsigned_abs())?;
                }
            }
            other => return Err(QuantityError::Suffix(s.to_string(), other.to_string())),
        }
        let frac_len = u32::try_from(frac_part.len()).map_err(|_| overflow())?;
        den = den.checked_mul(pow10(frac_len)?).ok_or_else(overflow)?;
        let scaled = mantissa.checked_mul(num).and_then(|v| v.checked_mul(1000)).ok_or_else(overflow)?;
        // Rounded up to the thousandth, as the API server does.
        Ok(Self { milli: scaled.div_ceil(den) })
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity { milli: self.milli.saturating_add(rhs.milli) }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.milli.is_multiple_of(1000) { write!(f, "{}", self.milli / 1000) } else { write!(f, "{}m", self.milli) }
    }
}

/// Bytes in a GiB, for prices quoted per GiB-hour.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> u128 {
        match Quantity::parse(s) {
            Ok(q) => q.milli(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn cpu_quantities_parse_to_millicores() {
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("2.25"), 2250);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("+1"), 1000);
        assert_eq!(milli("1e3"), 1_000_000);
        assert_eq!(milli("1E-3"), 1);
    }

    #[test]
    fn memory_quantities_parse_to_exact_bytes() {
        assert_eq!(Quantity::parse("64Mi").map(Quantity::value_ceil), Ok(64 * 1024 * 1024));
        assert_eq!(Quantity::parse("1Gi").map(Quantity::value_ceil), Ok(1 << 30));
        assert_eq!(Quantity::parse("128M").map(Quantity::value_ceil), Ok(128_000_000));
        assert_eq!(Quantity::parse("1.5Gi").map(Quantity::value_ceil), Ok(3 << 29));
        assert_eq!(Quantity::parse("32Ki").map(Quantity::value_ceil), Ok(32 * 1024));
        assert_eq!(Quantity::parse("1k").map(Quantity::value_ceil), Ok(1000));
    }

    #[test]
    fn finer_than_a_thousandth_rounds_up_as_the_api_server_does() {
        // quantity.go: "0.1m will rounded up to 1m".
        assert_eq!(milli("0.1m"), 1);
        assert_eq!(milli("1n"), 1);
        assert_eq!(milli("1500u"), 2);
        assert_eq!(milli("0.0001"), 1);
    }

    #[test]
    fn malformed_quantities_are_refused() {
        assert_eq!(Quantity::parse(""), Err(QuantityError::Empty));
        assert!(matches!(Quantity::parse("-1"), Err(QuantityError::Negative(_))));
        assert!(matches!(Quantity::parse("1Xi"), Err(QuantityError::Suffix(..))));
        assert!(matches!(Quantity::parse("Mi"), Err(QuantityError::Syntax(_))));
        assert!(matches!(Quantity::parse("1.2.3"), Err(QuantityError::Syntax(_))));
        assert!(matches!(Quantity::parse("1e99"), Err(QuantityError::Overflow(_))));
        assert!(matches!(Quantity::parse("1ex"), Err(QuantityError::Suffix(..))));
    }
}
