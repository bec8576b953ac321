//! Column types of the operational DB and how each backend's types map to
//! them and to Arrow.
//!
//! | Sentio type     | Arrow                         | PostgreSQL                         | MySQL / MariaDB                       | SQLite (declared type)        |
//! |-----------------|-------------------------------|------------------------------------|---------------------------------------|-------------------------------|
//! | `boolean`       | Boolean                       | boolean                            | tinyint(1) / boolean                  | BOOL…                         |
//! | `int8`          | Int8                          | —                                  | tinyint                               | —                             |
//! | `int16`         | Int16                         | smallint                           | smallint, tinyint unsigned            | —                             |
//! | `int32`         | Int32                         | integer                            | int, mediumint, smallint unsigned     | —                             |
//! | `int64`         | Int64                         | bigint                             | bigint, int unsigned                  | …INT…                         |
//! | `float32`       | Float32                       | real                               | float                                 | —                             |
//! | `float64`       | Float64                       | double precision, numeric (no precision) | double                          | REAL, FLOAT, DOUBLE, NUMERIC  |
//! | `decimal(p,s)`  | Decimal128(p,s)               | numeric(p,s), p ≤ 38               | decimal(p,s), p ≤ 38; bigint unsigned as decimal(20,0) | DECIMAL(p,s), NUMERIC(p,s) |
//! | `text`          | Utf8                          | text, varchar, char, name, citext, uuid, json, jsonb, xml, enums, numeric(p > 38) | char, varchar, *text, enum, set, json, uuid, decimal(p > 38) | TEXT, CHAR, CLOB, UUID, JSON |
//! | `binary`        | Binary                        | bytea                              | binary, varbinary, *blob              | BLOB                          |
//! | `date`          | Date32                        | date                               | date                                  | DATE                          |
//! | `time`          | Time64(µs)                    | time                               | time                                  | TIME                          |
//! | `timestamp`     | Timestamp(µs)                 | timestamp                          | datetime                              | DATETIME, TIMESTAMP           |
//! | `timestamptz`   | Timestamp(µs, "UTC")          | timestamptz                        | timestamp                             | TIMESTAMPTZ                   |
//!
//! Anything else (arrays, intervals, geometry, bit strings, …) is not
//! supported: the table can still be listed, and using it gives an error
//! that names the table, the column and its type.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// A column type as Sentio reads and writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `boolean`
    Boolean,
    /// `int8`
    Int8,
    /// `int16`
    Int16,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// `decimal(precision, scale)`, precision ≤ 38.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// `text` (UTF-8).
    Text,
    /// `binary`
    Binary,
    /// `date`
    Date,
    /// `time` (microseconds).
    Time,
    /// `timestamp` without time zone (microseconds).
    Timestamp,
    /// `timestamptz`: an instant, shown in UTC (microseconds).
    TimestampTz,
}

impl ColumnType {
    /// The Arrow type of the column.
    pub fn arrow_type(self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Int8 => DataType::Int8,
            Self::Int16 => DataType::Int16,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
            Self::Text => DataType::Utf8,
            Self::Binary => DataType::Binary,
            Self::Date => DataType::Date32,
            Self::Time => DataType::Time64(TimeUnit::Microsecond),
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        }
    }

    /// Parses the name written by [`fmt::Display`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "boolean" => Self::Boolean,
            "int8" => Self::Int8,
            "int16" => Self::Int16,
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            "float32" => Self::Float32,
            "float64" => Self::Float64,
            "text" => Self::Text,
            "binary" => Self::Binary,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" => Self::Timestamp,
            "timestamptz" => Self::TimestampTz,
            other => {
                let inner = other.strip_prefix("decimal(")?.strip_suffix(')')?;
                let (p, s) = inner.split_once(',')?;
                decimal(p.trim().parse().ok()?, s.trim().parse().ok()?)?
            }
        })
    }

    /// Whether the column is an integer usable to split reads into ranges.
    pub fn is_integer(self) -> bool {
        matches!(self, Self::Int8 | Self::Int16 | Self::Int32 | Self::Int64)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Boolean => "boolean",
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Decimal { precision, scale } => return write!(f, "decimal({precision},{scale})"),
            Self::Text => "text",
            Self::Binary => "binary",
            Self::Date => "date",
            Self::Time => "time",
            Self::Timestamp => "timestamp",
            Self::TimestampTz => "timestamptz",
        };
        f.write_str(s)
    }
}

/// How a column is selected so that the driver decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadCast {
    /// Selected as is.
    #[default]
    None,
    /// Cast to text (decimals, uuid, json, enums): parsed by Sentio.
    Text,
    /// Cast to a double (PostgreSQL numeric without precision).
    Float8,
    /// Cast to a signed 64-bit integer (MySQL unsigned integers).
    Signed,
}

impl ReadCast {
    /// The name stored in plans.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Text => "text",
            Self::Float8 => "float8",
            Self::Signed => "signed",
        }
    }

    /// Parses [`ReadCast::name`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" => Self::None,
            "text" => Self::Text,
            "float8" => Self::Float8,
            "signed" => Self::Signed,
            _ => return None,
        })
    }
}

fn decimal(precision: u32, scale: i32) -> Option<ColumnType> {
    (1..=38).contains(&precision).then_some(())?;
    (0..=precision as i32).contains(&scale).then_some(())?;
    Some(ColumnType::Decimal { precision: precision as u8, scale: scale as i8 })
}

/// Maps a PostgreSQL column: `typname` (e.g. `int4`), `typtype` (`b`ase,
/// `e`num, …) and `typmod` (precision and scale of numerics).
pub fn postgres(typname: &str, typtype: &str, typmod: i32) -> Option<(ColumnType, ReadCast)> {
    use ColumnType as T;
    if typtype == "e" {
        return Some((T::Text, ReadCast::Text));
    }
    Some(match typname {
        "bool" => (T::Boolean, ReadCast::None),
        "int2" => (T::Int16, ReadCast::None),
        "int4" => (T::Int32, ReadCast::None),
        "int8" => (T::Int64, ReadCast::None),
        "float4" => (T::Float32, ReadCast::None),
        "float8" => (T::Float64, ReadCast::None),
        "numeric" if typmod < 4 => (T::Float64, ReadCast::Float8),
        "numeric" => {
            let precision = ((typmod - 4) >> 16) & 0xffff;
            let scale = (typmod - 4) & 0xffff;
            match decimal(precision as u32, scale) {
                Some(t) => (t, ReadCast::Text),
                None => (T::Text, ReadCast::Text),
            }
        }
        "text" | "varchar" => (T::Text, ReadCast::None),
        "bpchar" | "name" | "citext" | "uuid" | "json" | "jsonb" | "xml" => (T::Text, ReadCast::Text),
        "bytea" => (T::Binary, ReadCast::None),
        "date" => (T::Date, ReadCast::None),
        "time" => (T::Time, ReadCast::None),
        "timestamp" => (T::Timestamp, ReadCast::None),
        "timestamptz" => (T::TimestampTz, ReadCast::None),
        _ => return None,
    })
}

/// Maps a MySQL/MariaDB column from `information_schema.COLUMNS`:
/// `DATA_TYPE` (e.g. `int`), `COLUMN_TYPE` (e.g. `int(10) unsigned`),
/// `NUMERIC_PRECISION` and `NUMERIC_SCALE`.
pub fn mysql(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
) -> Option<(ColumnType, ReadCast)> {
    use ColumnType as T;
    let column_type = column_type.to_ascii_lowercase();
    let unsigned = column_type.contains("unsigned");
    Some(match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => (T::Boolean, ReadCast::None),
        "tinyint" if unsigned => (T::Int16, ReadCast::Signed),
        "tinyint" => (T::Int8, ReadCast::None),
        "smallint" if unsigned => (T::Int32, ReadCast::Signed),
        "smallint" => (T::Int16, ReadCast::None),
        "mediumint" => (T::Int32, ReadCast::Signed),
        "int" | "integer" if unsigned => (T::Int64, ReadCast::Signed),
        "int" | "integer" => (T::Int32, ReadCast::None),
        "bigint" if unsigned => (decimal(20, 0)?, ReadCast::Text),
        "bigint" => (T::Int64, ReadCast::None),
        "float" => (T::Float32, ReadCast::None),
        "double" | "real" => (T::Float64, ReadCast::None),
        "decimal" | "numeric" => match decimal(precision? as u32, scale.unwrap_or(0) as i32) {
            Some(t) => (t, ReadCast::Text),
            None => (T::Text, ReadCast::Text),
        },
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => (T::Text, ReadCast::None),
        "enum" | "set" | "json" | "uuid" | "inet4" | "inet6" => (T::Text, ReadCast::Text),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => (T::Binary, ReadCast::None),
        "date" => (T::Date, ReadCast::None),
        "time" => (T::Time, ReadCast::None),
        "datetime" => (T::Timestamp, ReadCast::None),
        "timestamp" => (T::TimestampTz, ReadCast::None),
        _ => return None,
    })
}

/// Maps a SQLite column by its declared type, following SQLite's affinity
/// rules where the name alone does not say more.
pub fn sqlite(declared: &str) -> Option<(ColumnType, ReadCast)> {
    use ColumnType as T;
    let d = declared.trim().to_ascii_uppercase();
    if d.is_empty() {
        return None;
    }
    let base = d.split('(').next().unwrap_or("").trim();
    let args: Vec<u32> = d
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|a| a.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    Some(if base.contains("BOOL") {
        (T::Boolean, ReadCast::None)
    } else if base == "TIMESTAMPTZ" || base.contains("WITH TIME ZONE") {
        (T::TimestampTz, ReadCast::None)
    } else if base.contains("DATETIME") || base.starts_with("TIMESTAMP") {
        (T::Timestamp, ReadCast::None)
    } else if base == "DATE" {
        (T::Date, ReadCast::None)
    } else if base == "TIME" {
        (T::Time, ReadCast::None)
    } else if base.contains("INT") {
        (T::Int64, ReadCast::None)
    } else if base.contains("CHAR")
        || base.contains("CLOB")
        || base.contains("TEXT")
        || base == "UUID"
        || base == "JSON"
    {
        (T::Text, ReadCast::None)
    } else if base.contains("BLOB") {
        (T::Binary, ReadCast::None)
    } else if base.contains("REAL") || base.contains("FLOA") || base.contains("DOUB") {
        (T::Float64, ReadCast::None)
    } else if base == "DECIMAL" || base == "NUMERIC" {
        match args.as_slice() {
            [p, s] => (decimal(*p, *s as i32)?, ReadCast::Text),
            [p] => (decimal(*p, 0)?, ReadCast::Text),
            _ => (T::Float64, ReadCast::None),
        }
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in [
            ColumnType::Boolean,
            ColumnType::Int8,
            ColumnType::Int64,
            ColumnType::Decimal { precision: 12, scale: 3 },
            ColumnType::TimestampTz,
        ] {
            assert_eq!(ColumnType::parse(&t.to_string()), Some(t));
        }
        assert_eq!(ColumnType::parse("decimal(40,2)"), None);
        assert_eq!(ColumnType::parse("interval"), None);
    }

    #[test]
    fn postgres_types() {
        // numeric(10,2): typmod = (10 << 16 | 2) + 4
        let typmod = ((10 << 16) | 2) + 4;
        assert_eq!(postgres("numeric", "b", typmod).unwrap().0, ColumnType::Decimal { precision: 10, scale: 2 });
        assert_eq!(postgres("numeric", "b", -1).unwrap(), (ColumnType::Float64, ReadCast::Float8));
        assert_eq!(postgres("mood", "e", -1).unwrap(), (ColumnType::Text, ReadCast::Text));
        assert_eq!(postgres("interval", "b", -1), None);
        assert_eq!(postgres("_int4", "b", -1), None);
    }

    #[test]
    fn mysql_types() {
        assert_eq!(mysql("tinyint", "tinyint(1)", None, None).unwrap().0, ColumnType::Boolean);
        assert_eq!(mysql("int", "int(10) unsigned", None, None).unwrap(), (ColumnType::Int64, ReadCast::Signed));
        assert_eq!(
            mysql("bigint", "bigint(20) unsigned", None, None).unwrap().0,
            ColumnType::Decimal { precision: 20, scale: 0 }
        );
        assert_eq!(mysql("decimal", "decimal(65,2)", Some(65), Some(2)).unwrap().0, ColumnType::Text);
        assert_eq!(mysql("timestamp", "timestamp", None, None).unwrap().0, ColumnType::TimestampTz);
        assert_eq!(mysql("geometry", "geometry", None, None), None);
    }

    #[test]
    fn sqlite_types() {
        assert_eq!(sqlite("BIGINT").unwrap().0, ColumnType::Int64);
        assert_eq!(sqlite("varchar(20)").unwrap().0, ColumnType::Text);
        assert_eq!(sqlite("DATETIME").unwrap().0, ColumnType::Timestamp);
        assert_eq!(sqlite("date").unwrap().0, ColumnType::Date);
        assert_eq!(sqlite("DECIMAL(10,2)").unwrap().0, ColumnType::Decimal { precision: 10, scale: 2 });
        assert_eq!(sqlite(""), None);
    }
}
