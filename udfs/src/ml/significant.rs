//! Floating-point values to a fixed number of significant decimal digits,
//! so that values whose last bits differ from run to run count as equal.
//!
//! A distributed aggregate (`AVG(confidence)` per media item) merges its
//! partial sums in the order the partitions arrive, which changes from run
//! to run, so its last bits do too. Where Sentio needs the *same* answer for
//! the same data — which rows go to evaluation or to which cross-validation
//! fold, the mean and deviation that scale a feature — it uses the values at
//! [`DIGITS`] significant decimal digits.
//!
//! Decimal, not binary: averages of single-precision data often lie exactly
//! half-way between two single-precision values (a mean of two `REAL`s has
//! one bit more than a `REAL`), where a last-bit difference decides which
//! way they round. Decimal half-way points are not where binary arithmetic
//! lands.
//!
//! ```
//! use sentio_udfs::ml::significant::{round_significant, significant_key};
//! let a = 0.1f64 + 0.2; // 0.30000000000000004
//! assert_ne!(a, 0.3);
//! assert_eq!(significant_key(a), significant_key(0.3));
//! assert_eq!(round_significant(a), 0.3);
//! assert_ne!(significant_key(0.3), significant_key(0.3000001));
//! ```

/// Significant decimal digits kept.
pub const DIGITS: i32 = 7;
const LOW: f64 = 1e6; // 10^(DIGITS-1)
const HIGH: f64 = 1e7; // 10^DIGITS

/// `v × 10^p`, for any `p` a finite non-zero double needs.
fn times_ten_to(v: f64, p: i32) -> f64 {
    if p > 300 {
        v * 1e300 * 10f64.powi(p - 300)
    } else if p >= 0 {
        v * 10f64.powi(p)
    } else if p < -300 {
        v / 1e300 / 10f64.powi(-p - 300)
    } else {
        v / 10f64.powi(-p)
    }
}

/// `v` as `(m, e)` with `v ≈ m × 10^(e - DIGITS + 1)` and
/// `10^(DIGITS-1) ≤ |m| < 10^DIGITS`; `None` for zero and non-finite values.
fn decimal(v: f64) -> Option<(i64, i32)> {
    if v == 0.0 || !v.is_finite() {
        return None;
    }
    let mut e = v.abs().log10().floor() as i32;
    let mut m = times_ten_to(v, DIGITS - 1 - e).round();
    // log10 can be one off next to a power of ten; so can the rounding.
    if m.abs() < LOW {
        e -= 1;
        m = times_ten_to(v, DIGITS - 1 - e).round();
    }
    if m.abs() >= HIGH {
        e += 1;
        m = times_ten_to(v, DIGITS - 1 - e).round();
    }
    Some((m as i64, e))
}

/// A key equal for values equal at [`DIGITS`] significant digits (and for
/// `0.0` and `-0.0`, and for every NaN), different otherwise.
pub fn significant_key(v: f64) -> i64 {
    match decimal(v) {
        // |m| < 2^24 and 0 <= e + 512 < 1024: distinct pairs, distinct keys.
        Some((m, e)) => m * 1024 + i64::from(e + 512),
        None if v.is_nan() => i64::MAX,
        None if v == f64::INFINITY => i64::MAX - 1,
        None if v == f64::NEG_INFINITY => i64::MIN,
        None => 0,
    }
}

/// `v` rounded to [`DIGITS`] significant decimal digits (the double nearest
/// to that decimal); zero, infinities and NaN as they are.
pub fn round_significant(v: f64) -> f64 {
    match decimal(v) {
        Some((m, e)) => format!("{m}e{}", e - DIGITS + 1).parse().unwrap_or(v),
        None => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_bits_do_not_matter_digits_do() {
        for v in [0.046197222545742996f64, -1234.5678, 9.999999999e-3, 1e-310, 1.7e308, 123456789.0] {
            let next = f64::from_bits(v.to_bits() + 1);
            let prev = f64::from_bits(v.to_bits() - 1);
            assert_eq!(significant_key(v), significant_key(next), "{v}");
            assert_eq!(significant_key(v), significant_key(prev), "{v}");
            assert_eq!(round_significant(v), round_significant(next), "{v}");
        }
        assert_ne!(significant_key(1.0), significant_key(1.000001));
        assert_ne!(significant_key(1.0), significant_key(-1.0));
        assert_ne!(significant_key(1.0), significant_key(10.0));
        assert_ne!(significant_key(0.0), significant_key(1e-300));
        assert_eq!(significant_key(0.0), significant_key(-0.0));
        assert_eq!(significant_key(f64::NAN), significant_key(-f64::NAN));
        assert_ne!(significant_key(f64::INFINITY), significant_key(f64::NEG_INFINITY));
    }

    #[test]
    fn powers_of_ten_and_rounding_up_to_them() {
        assert_eq!(significant_key(0.009999999999999998), significant_key(0.01));
        assert_eq!(significant_key(9.9999999), significant_key(10.0));
        assert_eq!(round_significant(9.99999996), 10.0);
        assert_eq!(round_significant(0.30000000000000004), 0.3);
        assert_eq!(round_significant(-2.5e-7), -2.5e-7);
        assert_eq!(round_significant(1234567.8), 1234568.0);
        assert!(round_significant(f64::NAN).is_nan());
        assert_eq!(round_significant(f64::INFINITY), f64::INFINITY);
    }
}
