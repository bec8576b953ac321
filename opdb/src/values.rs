//! Values between database rows and Arrow arrays: decoding rows into column
//! builders, and the text forms of decimals, times and timestamps.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::error::ArrowError;

use super::meta::Column;
use super::types::{ColumnType, ReadCast};

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// `value` (an unscaled decimal) as text with `scale` digits after the point.
///
/// ```
/// use sentio_opdb::values::format_decimal;
/// assert_eq!(format_decimal(-1205, 2), "-12.05");
/// assert_eq!(format_decimal(7, 3), "0.007");
/// assert_eq!(format_decimal(42, 0), "42");
/// ```
pub fn format_decimal(value: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = value.to_string();
        s.extend(std::iter::repeat_n('0', (-scale) as usize));
        return s;
    }
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if value < 0 { "-" } else { "" })
}

/// Parses decimal text (`-12.5`, `3`, `1.2e3`) into an unscaled value with
/// `scale` digits after the point, rounding half away from zero; `None` if it
/// is not a number or does not fit `precision`.
///
/// ```
/// use sentio_opdb::values::parse_decimal;
/// assert_eq!(parse_decimal("-12.05", 10, 2), Some(-1205));
/// assert_eq!(parse_decimal("0.125", 10, 2), Some(13));
/// assert_eq!(parse_decimal("1e3", 10, 0), Some(1000));
/// assert_eq!(parse_decimal("123456", 5, 0), None);
/// ```
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let t = text.trim();
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (neg, m) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = m.split_once('.').unwrap_or((m, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    // digits * 10^(exp - frac.len()) scaled by 10^scale
    let digits: String = format!("{int}{frac}").trim_start_matches('0').to_string();
    let shift = exp - frac.len() as i32 + scale as i32;
    let mut value: i128 = 0;
    let (keep, dropped) = if shift >= 0 {
        (digits.as_str(), "")
    } else {
        let cut = digits.len().saturating_sub((-shift) as usize);
        digits.split_at(cut)
    };
    for c in keep.chars() {
        value = value.checked_mul(10)?.checked_add((c as u8 - b'0') as i128)?;
    }
    if shift > 0 {
        value = value.checked_mul(10i128.checked_pow(shift as u32)?)?;
    }
    // Round half away from zero on the first dropped digit (dropped may be
    // shorter than the shift when the number is small).
    let first_dropped = if shift < 0 && dropped.len() == (-shift) as usize { dropped.chars().next() } else { None };
    if first_dropped.is_some_and(|c| c >= '5') {
        value += 1;
    }
    if value >= 10i128.pow(precision as u32) {
        return None;
    }
    Some(if neg { -value } else { value })
}

/// `micros` since midnight as `HH:MM:SS.ffffff`.
pub fn format_time(micros: i64) -> Option<String> {
    let t = NaiveTime::from_num_seconds_from_midnight_opt(
        u32::try_from(micros.div_euclid(1_000_000)).ok()?,
        (micros.rem_euclid(1_000_000) * 1_000) as u32,
    )?;
    Some(t.format("%H:%M:%S%.6f").to_string())
}

/// `micros` since the Unix epoch as `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn format_timestamp(micros: i64) -> Option<String> {
    Some(timestamp(micros)?.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

/// `micros` since the Unix epoch as a date-time.
pub fn timestamp(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|d| d.naive_utc())
}

/// `days` since the Unix epoch as a date.
pub fn date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_CE_DAYS)?)
}

/// Microseconds since midnight of a time.
pub fn time_micros(t: NaiveTime) -> i64 {
    t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1_000) as i64
}

/// An Arrow builder for one column of a scan.
pub enum Builder {
    /// `boolean`
    Boolean(BooleanBuilder),
    /// `int8`
    Int8(Int8Builder),
    /// `int16`
    Int16(Int16Builder),
    /// `int32`
    Int32(Int32Builder),
    /// `int64`
    Int64(Int64Builder),
    /// `float32`
    Float32(Float32Builder),
    /// `float64`
    Float64(Float64Builder),
    /// `decimal(p,s)`
    Decimal(Decimal128Builder, u8, i8),
    /// `text`
    Text(StringBuilder),
    /// `binary`
    Binary(BinaryBuilder),
    /// `date`
    Date(Date32Builder),
    /// `time`
    Time(Time64MicrosecondBuilder),
    /// `timestamp` / `timestamptz`
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    /// A builder for `ty` with room for `capacity` rows.
    pub fn new(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Int8 => Self::Int8(Int8Builder::with_capacity(capacity)),
            ColumnType::Int16 => Self::Int16(Int16Builder::with_capacity(capacity)),
            ColumnType::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            ColumnType::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            ColumnType::Float32 => Self::Float32(Float32Builder::with_capacity(capacity)),
            ColumnType::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            ColumnType::Decimal { precision, scale } => {
                Self::Decimal(Decimal128Builder::with_capacity(capacity), precision, scale)
            }
            ColumnType::Text => Self::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            ColumnType::Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            ColumnType::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Time => Self::Time(Time64MicrosecondBuilder::with_capacity(capacity)),
            ColumnType::Timestamp => Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity)),
            ColumnType::TimestampTz => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(Arc::from("UTC")))
            }
        }
    }

    /// The finished array.
    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Int8(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Decimal(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s)?),
            Self::Text(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
        })
    }
}

/// A value that does not fit its column.
#[derive(Debug)]
pub struct BadValue(pub String);

fn narrow<T: TryFrom<i64>>(v: Option<i64>, what: &str) -> Result<Option<T>, BadValue> {
    v.map(|x| T::try_from(x).map_err(|_| BadValue(format!("{x} does not fit {what}")))).transpose()
}

/// Appends column `i` of a row to its builder: one definition for every
/// driver's row type.
macro_rules! append_fn {
    ($name:ident, $row:ty) => {
        /// Appends column `i` of `row` (selected as `col` describes) to `b`.
        pub fn $name(row: &$row, i: usize, col: &Column, b: &mut Builder) -> Result<(), BadValue> {
            use sqlx::Row;
            let get_err = |e: sqlx::Error| BadValue(e.to_string());
            match b {
                Builder::Boolean(b) => b.append_option(row.try_get::<Option<bool>, _>(i).map_err(get_err)?),
                Builder::Int8(b) => {
                    b.append_option(narrow(row.try_get::<Option<i64>, _>(i).map_err(get_err)?, "int8")?)
                }
                Builder::Int16(b) if col.read_cast == ReadCast::Signed => {
                    b.append_option(narrow(row.try_get::<Option<i64>, _>(i).map_err(get_err)?, "int16")?)
                }
                Builder::Int16(b) => b.append_option(row.try_get::<Option<i16>, _>(i).map_err(get_err)?),
                Builder::Int32(b) if col.read_cast == ReadCast::Signed => {
                    b.append_option(narrow(row.try_get::<Option<i64>, _>(i).map_err(get_err)?, "int32")?)
                }
                Builder::Int32(b) => b.append_option(row.try_get::<Option<i32>, _>(i).map_err(get_err)?),
                Builder::Int64(b) => b.append_option(row.try_get::<Option<i64>, _>(i).map_err(get_err)?),
                Builder::Float32(b) => b.append_option(row.try_get::<Option<f32>, _>(i).map_err(get_err)?),
                Builder::Float64(b) => b.append_option(row.try_get::<Option<f64>, _>(i).map_err(get_err)?),
                Builder::Decimal(b, p, s) => match row.try_get::<Option<String>, _>(i).map_err(get_err)? {
                    None => b.append_null(),
                    Some(text) => b.append_value(
                        parse_decimal(&text, *p, *s)
                            .ok_or_else(|| BadValue(format!("{text:?} does not fit decimal({p},{s})")))?,
                    ),
                },
                Builder::Text(b) => b.append_option(row.try_get::<Option<String>, _>(i).map_err(get_err)?),
                Builder::Binary(b) => b.append_option(row.try_get::<Option<Vec<u8>>, _>(i).map_err(get_err)?),
                Builder::Date(b) => b.append_option(
                    row.try_get::<Option<NaiveDate>, _>(i)
                        .map_err(get_err)?
                        .map(|d| d.num_days_from_ce() - UNIX_EPOCH_CE_DAYS),
                ),
                Builder::Time(b) => {
                    b.append_option(row.try_get::<Option<NaiveTime>, _>(i).map_err(get_err)?.map(time_micros))
                }
                Builder::Timestamp(b) if col.ty == ColumnType::TimestampTz => b.append_option(
                    row.try_get::<Option<DateTime<Utc>>, _>(i).map_err(get_err)?.map(|t| t.timestamp_micros()),
                ),
                Builder::Timestamp(b) => b.append_option(
                    row.try_get::<Option<NaiveDateTime>, _>(i)
                        .map_err(get_err)?
                        .map(|t| t.and_utc().timestamp_micros()),
                ),
            }
            Ok(())
        }
    };
}

use chrono::Datelike;

append_fn!(append_pg, sqlx::postgres::PgRow);
append_fn!(append_mysql, sqlx::mysql::MySqlRow);
append_fn!(append_sqlite, sqlx::sqlite::SqliteRow);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip() {
        for (v, s) in [(0i128, 2i8), (-1, 3), (123456789012345678901234567890, 10), (5, 0)] {
            assert_eq!(parse_decimal(&format_decimal(v, s), 38, s), Some(v), "{v} {s}");
        }
        assert_eq!(parse_decimal("-0.005", 10, 2), Some(-1));
        assert_eq!(parse_decimal("0.0001", 10, 2), Some(0));
        assert_eq!(parse_decimal("abc", 10, 2), None);
        assert_eq!(parse_decimal("", 10, 2), None);
        assert_eq!(parse_decimal("1.5E-1", 10, 2), Some(15));
    }

    #[test]
    fn times() {
        assert_eq!(format_time(3_723_000_001).unwrap(), "01:02:03.000001");
        assert_eq!(format_timestamp(0).unwrap(), "1970-01-01 00:00:00.000000");
        assert_eq!(date(0).unwrap().to_string(), "1970-01-01");
    }
}
