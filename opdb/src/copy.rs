//! PostgreSQL's binary `COPY` format, written straight from Arrow arrays.
//!
//! Layout: the 11-byte signature, a 4-byte flags field and a 4-byte header
//! extension length; then per row a 16-bit field count and per field a
//! 32-bit length (-1 for NULL) and the value in the type's binary send
//! format; then a 16-bit -1. Staging tables use the types of
//! [`pg_stage_type`], so only those encodings are needed.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, StringArray};
use datafusion::arrow::datatypes::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};

use super::types::ColumnType;
use super::values::format_decimal;

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The header of a binary COPY stream.
pub fn header() -> Vec<u8> {
    let mut h = b"PGCOPY\n\xff\r\n\0".to_vec();
    h.extend_from_slice(&0i32.to_be_bytes());
    h.extend_from_slice(&0i32.to_be_bytes());
    h
}

/// The end of a binary COPY stream.
pub const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// The PostgreSQL type a staging column of Sentio type `ty` has.
pub fn pg_stage_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "boolean",
        ColumnType::Int8 | ColumnType::Int16 => "smallint",
        ColumnType::Int32 => "integer",
        ColumnType::Int64 => "bigint",
        ColumnType::Float32 => "real",
        ColumnType::Float64 => "double precision",
        // Decimals are staged as their exact text and cast when published.
        ColumnType::Decimal { .. } | ColumnType::Text => "text",
        ColumnType::Binary => "bytea",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::Timestamp => "timestamp",
        ColumnType::TimestampTz => "timestamptz",
    }
}

/// Appends the rows of `columns` (arrays already of `types`' Arrow types)
/// to `buf`.
pub fn encode_rows(columns: &[ArrayRef], types: &[ColumnType], buf: &mut Vec<u8>) {
    let rows = columns.first().map_or(0, |c| c.len());
    let ncols = columns.len() as i16;
    for row in 0..rows {
        buf.extend_from_slice(&ncols.to_be_bytes());
        for (array, ty) in columns.iter().zip(types) {
            encode_value(array, *ty, row, buf);
        }
    }
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn encode_value(array: &ArrayRef, ty: ColumnType, row: usize, buf: &mut Vec<u8>) {
    if array.is_null(row) {
        buf.extend_from_slice(&(-1i32).to_be_bytes());
        return;
    }
    match ty {
        ColumnType::Boolean => {
            let a = array.as_any().downcast_ref::<BooleanArray>().expect("boolean array");
            field(buf, &[u8::from(a.value(row))]);
        }
        ColumnType::Int8 => field(buf, &(array.as_primitive::<Int8Type>().value(row) as i16).to_be_bytes()),
        ColumnType::Int16 => field(buf, &array.as_primitive::<Int16Type>().value(row).to_be_bytes()),
        ColumnType::Int32 => field(buf, &array.as_primitive::<Int32Type>().value(row).to_be_bytes()),
        ColumnType::Int64 => field(buf, &array.as_primitive::<Int64Type>().value(row).to_be_bytes()),
        ColumnType::Float32 => field(buf, &array.as_primitive::<Float32Type>().value(row).to_be_bytes()),
        ColumnType::Float64 => field(buf, &array.as_primitive::<Float64Type>().value(row).to_be_bytes()),
        ColumnType::Decimal { scale, .. } => {
            let a = array.as_any().downcast_ref::<Decimal128Array>().expect("decimal array");
            field(buf, format_decimal(a.value(row), scale).as_bytes());
        }
        ColumnType::Text => {
            let a = array.as_any().downcast_ref::<StringArray>().expect("string array");
            field(buf, a.value(row).as_bytes());
        }
        ColumnType::Binary => {
            let a = array.as_any().downcast_ref::<BinaryArray>().expect("binary array");
            field(buf, a.value(row));
        }
        ColumnType::Date => {
            let days = array.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS;
            field(buf, &days.to_be_bytes());
        }
        ColumnType::Time => field(buf, &array.as_primitive::<Time64MicrosecondType>().value(row).to_be_bytes()),
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            let us = array.as_primitive::<TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS;
            field(buf, &us.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int32Array, StringArray};

    use super::*;

    #[test]
    fn rows_and_nulls() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(7), None]));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("é"), Some("")]));
        let mut buf = Vec::new();
        encode_rows(&[ints, text], &[ColumnType::Int32, ColumnType::Text], &mut buf);
        let expected: Vec<u8> = [
            &2i16.to_be_bytes()[..],
            &4i32.to_be_bytes(),
            &7i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            "é".as_bytes(),
            &2i16.to_be_bytes(),
            &(-1i32).to_be_bytes(),
            &0i32.to_be_bytes(),
        ]
        .concat();
        assert_eq!(buf, expected);
        assert_eq!(header().len(), 19);
    }
}
