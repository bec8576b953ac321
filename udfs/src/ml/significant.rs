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

/// `10^k` for `k` in `-22..=22`: exact for `k ≥ 0` (so the same doubles
/// that `10f64.powi(k)` computes, every step of it exact), the nearest double
/// for `k < 0`.
const POWERS_OF_TEN: [f64; 45] = [
    1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6,
    1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `10^k` from [`POWERS_OF_TEN`]; `k` in `-22..=22`.
fn power_of_ten(k: i32) -> f64 {
    POWERS_OF_TEN[(k + 22) as usize]
}

/// `v × 10^p`, for any `p` a finite non-zero double needs. A table for the
/// common exponents: the same doubles as [`times_ten_to_powi`] (see
/// [`POWERS_OF_TEN`]).
fn times_ten_to(v: f64, p: i32) -> f64 {
    if (0..=22).contains(&p) {
        v * power_of_ten(p)
    } else if (-22..0).contains(&p) {
        v / power_of_ten(-p)
    } else {
        times_ten_to_powi(v, p)
    }
}

/// `v × 10^p` with `powi`, for any `p` a finite non-zero double needs.
fn times_ten_to_powi(v: f64, p: i32) -> f64 {
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

/// `a.log10().floor()` for a finite `a > 0`. Where `a` lies clearly inside
/// a decade of [`POWERS_OF_TEN`] (more than a billionth away from both ends)
/// the decade is read off the table — `log10`, correct to an ulp or two,
/// cannot land in another decade there; next to a power of ten, and outside
/// the table, `log10` itself answers. So the result is always `log10`'s, at a
/// fraction of its cost (hashing rows calls this for every value).
fn floor_log10(a: f64) -> i32 {
    const MARGIN: f64 = 1e-9;
    if (1e-21..1e21).contains(&a) {
        // 2^e ≤ a < 2^(e+1): the decade is ⌊e·log10 2⌋ (78913 / 2^18 is
        // log10 2 to the precision these exponents need) or one more.
        let e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        let k = (e * 78913) >> 18;
        let k = k + i32::from(a >= power_of_ten(k + 1));
        if a >= power_of_ten(k) * (1.0 + MARGIN) && a <= power_of_ten(k + 1) * (1.0 - MARGIN) {
            return k;
        }
    }
    a.log10().floor() as i32
}

/// `x` rounded half away from zero, as `f64::round` does. For
/// `0.5 ≤ |x| < 2^52` adding one half is exact or cannot reach the next
/// integer, so truncating the sum is the same rounding without a call into
/// the C library.
fn round_half_away(x: f64) -> f64 {
    let a = x.abs();
    if (0.5..4.5e15).contains(&a) { ((a + 0.5) as i64 as f64).copysign(x) } else { x.round() }
}

/// `v` as `(m, e)` with `v ≈ m × 10^(e - DIGITS + 1)` and
/// `10^(DIGITS-1) ≤ |m| < 10^DIGITS`; `None` for zero and non-finite values.
fn decimal(v: f64) -> Option<(i64, i32)> {
    if v == 0.0 || !v.is_finite() {
        return None;
    }
    let mut e = floor_log10(v.abs());
    let mut m = round_half_away(times_ten_to(v, DIGITS - 1 - e));
    // log10 can be one off next to a power of ten; so can the rounding.
    if m.abs() < LOW {
        e -= 1;
        m = round_half_away(times_ten_to(v, DIGITS - 1 - e));
    }
    if m.abs() >= HIGH {
        e += 1;
        m = round_half_away(times_ten_to(v, DIGITS - 1 - e));
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

    /// The key as first written (`log10` and `powi` for every value): the
    /// table-driven one must give the same keys, or rows would move between
    /// splits and folds from one version to the next.
    fn reference_key(v: f64) -> i64 {
        let times = times_ten_to_powi;
        if v == 0.0 || !v.is_finite() {
            return significant_key(v);
        }
        let mut e = v.abs().log10().floor() as i32;
        let mut m = times(v, DIGITS - 1 - e).round();
        if m.abs() < LOW {
            e -= 1;
            m = times(v, DIGITS - 1 - e).round();
        }
        if m.abs() >= HIGH {
            e += 1;
            m = times(v, DIGITS - 1 - e).round();
        }
        (m as i64) * 1024 + i64::from(e + 512)
    }

    #[test]
    fn table_driven_keys_are_the_reference_keys() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut checked = 0;
        // Any double (every exponent), single-precision values, and values
        // next to powers of ten and to the roundings that carry into them.
        for _ in 0..300_000 {
            let bits = next();
            let any = f64::from_bits(bits);
            let single = f64::from(f32::from_bits(bits as u32));
            let k = (bits % 61) as i32 - 30;
            let near = 10f64.powi(k) * (1.0 + ((bits >> 20) % 2001) as f64 * 1e-12 - 1e-9);
            let carry = (9_999_999.5 + ((bits >> 8) % 1000) as f64 * 1e-9 - 5e-7) * 10f64.powi(k - 6);
            // Exactly half-way at seven digits (m = n + 0.5), and scaled.
            let half = 1_000_000.0 + ((bits >> 3) % 9_000_000) as f64 + 0.5;
            let scaled = half * 10f64.powi(k - 6);
            for v in [any, single, near, -near, carry, f64::from(near as f32), half, -half, scaled, -scaled] {
                if v.is_finite() {
                    assert_eq!(significant_key(v), reference_key(v), "{v:e} ({:#x})", v.to_bits());
                    checked += 1;
                }
            }
        }
        for k in -25..=25 {
            let p = 10f64.powi(k);
            for v in [p, f64::from_bits(p.to_bits() + 1), f64::from_bits(p.to_bits() - 1), p * 0.999_999_95] {
                assert_eq!(significant_key(v), reference_key(v), "{v:e}");
            }
        }
        assert!(checked > 2_500_000);
    }

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
