//! Filter pushdown: which DataFusion filters the database can evaluate, and
//! their SQL.
//!
//! A filter is pushed **exactly** when the database computes the same answer
//! as DataFusion (integers, decimals, booleans, dates and times, and text
//! compared byte by byte), **inexactly** when the database returns a superset
//! and DataFusion filters again (text equality under a case-insensitive
//! collation, `LIKE`), and not at all otherwise (floating point, where the
//! database's `-0.0 = 0.0` differs from Arrow's total order; functions).
//! Results are therefore never wrong; a `LIMIT` reaches the database only
//! when every filter is exact.
//!
//! Text values travel as bound parameters, never inside the SQL text.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator, TableProviderFilterPushDown};

use super::backend::Backend;
use super::meta::{Column, TableMeta};
use super::types::ColumnType;
use super::values::{format_decimal, format_time, format_timestamp};

/// A value bound to a placeholder of a pushed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// A text value.
    Text(String),
}

/// Filters rendered to SQL for one backend.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rendered {
    /// One SQL condition per pushed filter.
    pub conditions: Vec<String>,
    /// Parameters, in placeholder order.
    pub params: Vec<Param>,
}

/// How far `filter` can be evaluated by the database holding `meta`.
pub fn pushdown(filter: &Expr, meta: &TableMeta) -> TableProviderFilterPushDown {
    let mut w = Writer { meta, params: Vec::new(), first_param: 1 };
    match w.expr(filter) {
        Some((_, true)) => TableProviderFilterPushDown::Exact,
        Some((_, false)) => TableProviderFilterPushDown::Inexact,
        None => TableProviderFilterPushDown::Unsupported,
    }
}

/// Renders the pushable `filters` (others are skipped: DataFusion applies
/// them). Placeholders are numbered from `first_param`.
pub fn render(filters: &[Expr], meta: &TableMeta, first_param: usize) -> Rendered {
    let mut w = Writer { meta, params: Vec::new(), first_param };
    let conditions = filters.iter().filter_map(|f| w.expr(f).map(|(sql, _)| sql)).collect();
    Rendered { conditions, params: w.params }
}

struct Writer<'a> {
    meta: &'a TableMeta,
    params: Vec<Param>,
    first_param: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    NotEq,
    Range,
}

impl Writer<'_> {
    fn backend(&self) -> Backend {
        self.meta.backend
    }

    /// Renders `e`, returning its SQL and whether it is exact; on `None`
    /// nothing was added.
    fn expr(&mut self, e: &Expr) -> Option<(String, bool)> {
        let mark = self.params.len();
        let out = self.expr_inner(e);
        if out.is_none() {
            self.params.truncate(mark);
        }
        out
    }

    fn expr_inner(&mut self, e: &Expr) -> Option<(String, bool)> {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => match (self.expr(left), self.expr(right)) {
                    (Some((l, le)), Some((r, re))) => Some((format!("({l} AND {r})"), le && re)),
                    // One side alone selects a superset.
                    (Some((l, _)), None) => Some((l, false)),
                    (None, Some((r, _))) => Some((r, false)),
                    (None, None) => None,
                },
                Operator::Or => {
                    let (l, le) = self.expr(left)?;
                    let (r, re) = self.expr(right)?;
                    Some((format!("({l} OR {r})"), le && re))
                }
                _ => {
                    let (col, lit, op) = match (column(left, self.meta), literal(right)) {
                        (Some(c), Some(l)) => (c, l, *op),
                        _ => (column(right, self.meta)?, literal(left)?, op.swap()?),
                    };
                    let (sql_op, cmp) = match op {
                        Operator::Eq => ("=", Cmp::Eq),
                        Operator::NotEq => ("<>", Cmp::NotEq),
                        Operator::Lt => ("<", Cmp::Range),
                        Operator::LtEq => ("<=", Cmp::Range),
                        Operator::Gt => (">", Cmp::Range),
                        Operator::GtEq => (">=", Cmp::Range),
                        _ => return None,
                    };
                    let exact = self.comparable(col, cmp)?;
                    let value = self.value(col, lit)?;
                    Some((format!("{} {sql_op} {value}{}", self.col(col), self.collate(col, cmp)), exact))
                }
            },
            Expr::IsNull(inner) => Some((format!("{} IS NULL", self.col(column(inner, self.meta)?)), true)),
            Expr::IsNotNull(inner) => Some((format!("{} IS NOT NULL", self.col(column(inner, self.meta)?)), true)),
            Expr::Not(inner) => match self.expr(inner)? {
                (sql, true) => Some((format!("(NOT {sql})"), true)),
                // NOT of a superset would be a subset.
                (_, false) => None,
            },
            Expr::InList(list) => {
                let col = column(&list.expr, self.meta)?;
                if list.list.is_empty() {
                    return None;
                }
                let exact = self.comparable(col, if list.negated { Cmp::NotEq } else { Cmp::Eq })?;
                let values = list.list.iter().map(|v| self.value(col, literal(v)?)).collect::<Option<Vec<_>>>()?;
                let not = if list.negated { "NOT " } else { "" };
                Some((format!("{} {not}IN ({})", self.col(col), values.join(", ")), exact))
            }
            Expr::Between(Between { expr, negated, low, high }) => {
                let col = column(expr, self.meta)?;
                let exact = self.comparable(col, Cmp::Range)?;
                if *negated && !exact {
                    return None;
                }
                let lo = self.value(col, literal(low)?)?;
                let hi = self.value(col, literal(high)?)?;
                let collate = self.collate(col, Cmp::Range);
                let not = if *negated { "NOT " } else { "" };
                Some((format!("{} {not}BETWEEN {lo}{collate} AND {hi}{collate}", self.col(col)), exact))
            }
            Expr::Like(Like { negated: false, expr, pattern, escape_char: None, case_insensitive: false }) => {
                let col = column(expr, self.meta)?;
                if col.ty != ColumnType::Text {
                    return None;
                }
                let p = self.value(col, literal(pattern)?)?;
                // SQLite has no default escape character; DataFusion's is '\'.
                let escape = if self.backend() == Backend::Sqlite { " ESCAPE '\\'" } else { "" };
                Some((format!("{} LIKE {p}{escape}", self.col(col)), false))
            }
            _ => None,
        }
    }

    fn col(&self, c: &Column) -> String {
        self.backend().quote(&c.name)
    }

    /// Whether comparing `col` this way can run in the database: `Some(exact)`.
    fn comparable(&self, col: &Column, cmp: Cmp) -> Option<bool> {
        use ColumnType as T;
        let backend = self.backend();
        match col.ty {
            T::Float32 | T::Float64 | T::Binary => None,
            T::Boolean => (cmp != Cmp::Range).then_some(true),
            T::Int8 | T::Int16 | T::Int32 | T::Int64 => Some(true),
            // SQLite keeps decimals as floating point and times as text.
            T::Decimal { .. } | T::Date | T::Time | T::Timestamp | T::TimestampTz => {
                (backend != Backend::Sqlite).then_some(true)
            }
            T::Text => match (backend, cmp, col.exact_text) {
                (Backend::Postgres, _, true) => Some(true),
                (_, Cmp::Eq, _) => Some(false),
                _ => None,
            },
        }
    }

    /// Byte-order comparison for text ranges in PostgreSQL.
    fn collate(&self, col: &Column, cmp: Cmp) -> &'static str {
        if col.ty == ColumnType::Text && cmp == Cmp::Range && self.backend() == Backend::Postgres {
            " COLLATE \"C\""
        } else {
            ""
        }
    }

    /// The SQL for literal `v` compared with `col`, or `None` if the types do
    /// not line up exactly.
    fn value(&mut self, col: &Column, v: &ScalarValue) -> Option<String> {
        use ColumnType as T;
        let pg = self.backend() == Backend::Postgres;
        Some(match (col.ty, v) {
            (T::Int8 | T::Int16 | T::Int32 | T::Int64 | T::Decimal { .. }, _) if integer(v).is_some() => {
                integer(v)?.to_string()
            }
            (T::Decimal { .. }, ScalarValue::Decimal128(Some(d), _, s)) => format_decimal(*d, *s),
            (T::Boolean, ScalarValue::Boolean(Some(b))) => match (pg, b) {
                (true, true) => "TRUE".into(),
                (true, false) => "FALSE".into(),
                (false, b) => u8::from(*b).to_string(),
            },
            (
                T::Text,
                ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            ) => {
                self.params.push(Param::Text(s.clone()));
                self.backend().placeholder(self.first_param + self.params.len() - 1)
            }
            (T::Date, ScalarValue::Date32(Some(d))) => {
                let date = chrono::NaiveDate::from_num_days_from_ce_opt(*d + 719_163)?;
                format!("DATE '{}'", date.format("%Y-%m-%d"))
            }
            (T::Time, ScalarValue::Time64Microsecond(Some(us))) => format!("TIME '{}'", format_time(*us)?),
            (T::Timestamp | T::TimestampTz, _) => {
                let (micros, tz) = timestamp_micros(v)?;
                match (col.ty, tz) {
                    (T::Timestamp, false) => format!("TIMESTAMP '{}'", format_timestamp(micros)?),
                    (T::TimestampTz, true) if pg => format!("TIMESTAMPTZ '{}+00:00'", format_timestamp(micros)?),
                    // MySQL compares TIMESTAMP columns in the session time zone, which Sentio sets to UTC.
                    (T::TimestampTz, true) => format!("TIMESTAMP '{}'", format_timestamp(micros)?),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }
}

/// `e` as a column of `meta`'s table.
fn column<'m>(e: &Expr, meta: &'m TableMeta) -> Option<&'m Column> {
    match e {
        Expr::Column(c) => meta.column(&c.name),
        _ => None,
    }
}

/// `e` as a non-null literal.
fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) if !v.is_null() => Some(v),
        _ => None,
    }
}

fn integer(v: &ScalarValue) -> Option<i128> {
    Some(match v {
        ScalarValue::Int8(Some(x)) => *x as i128,
        ScalarValue::Int16(Some(x)) => *x as i128,
        ScalarValue::Int32(Some(x)) => *x as i128,
        ScalarValue::Int64(Some(x)) => *x as i128,
        ScalarValue::UInt8(Some(x)) => *x as i128,
        ScalarValue::UInt16(Some(x)) => *x as i128,
        ScalarValue::UInt32(Some(x)) => *x as i128,
        ScalarValue::UInt64(Some(x)) => *x as i128,
        _ => return None,
    })
}

/// Microseconds since the epoch of a timestamp literal, and whether it has a
/// time zone; `None` if it has sub-microsecond digits.
fn timestamp_micros(v: &ScalarValue) -> Option<(i64, bool)> {
    let (micros, tz) = match v {
        ScalarValue::TimestampSecond(Some(s), tz) => (s.checked_mul(1_000_000)?, tz),
        ScalarValue::TimestampMillisecond(Some(ms), tz) => (ms.checked_mul(1_000)?, tz),
        ScalarValue::TimestampMicrosecond(Some(us), tz) => (*us, tz),
        ScalarValue::TimestampNanosecond(Some(ns), tz) if ns % 1_000 == 0 => (ns / 1_000, tz),
        _ => return None,
    };
    let utc = match tz.as_deref() {
        None => false,
        Some("UTC" | "+00:00" | "Z") => true,
        Some(_) => return None,
    };
    Some((micros, utc))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;
    use crate::meta::tests::sessions;

    fn one(e: Expr, backend: Backend) -> (TableProviderFilterPushDown, Rendered) {
        let meta = sessions(backend);
        (pushdown(&e, &meta), render(&[e], &meta, 1))
    }

    #[test]
    fn integers_are_exact() {
        let (p, r) = one(col("session_id").gt(lit(10i64)).and(col("session_id").lt_eq(lit(20i64))), Backend::Postgres);
        assert_eq!(p, TableProviderFilterPushDown::Exact);
        assert_eq!(r.conditions, vec![r#"("session_id" > 10 AND "session_id" <= 20)"#]);
    }

    #[test]
    fn text_is_bound_not_inlined() {
        let (p, r) = one(col("country").eq(lit("D'E; DROP TABLE x")), Backend::Postgres);
        assert_eq!(p, TableProviderFilterPushDown::Exact);
        assert_eq!(r.conditions, vec![r#""country" = $1"#]);
        assert_eq!(r.params, vec![Param::Text("D'E; DROP TABLE x".into())]);
        // MySQL compares text case-insensitively: a superset, filtered again.
        let (p, r) = one(col("country").eq(lit("DE")), Backend::MySql);
        assert_eq!(p, TableProviderFilterPushDown::Inexact);
        assert_eq!(r.conditions, vec!["`country` = ?"]);
        let (p, _) = one(col("country").not_eq(lit("DE")), Backend::MySql);
        assert_eq!(p, TableProviderFilterPushDown::Unsupported);
        let (_, r) = one(col("country").lt(lit("M")), Backend::Postgres);
        assert_eq!(r.conditions, vec![r#""country" < $1 COLLATE "C""#]);
    }

    #[test]
    fn floats_and_inexact_negations_stay_in_datafusion() {
        let (p, _) = one(col("score").gt(lit(0.5)), Backend::Postgres);
        assert_eq!(p, TableProviderFilterPushDown::Unsupported);
        let (p, _) = one(Expr::Not(Box::new(col("country").eq(lit("DE")))), Backend::MySql);
        assert_eq!(p, TableProviderFilterPushDown::Unsupported);
        let (p, r) = one(col("session_id").gt(lit(5i64)).and(col("score").gt(lit(0.5))), Backend::Postgres);
        assert_eq!(p, TableProviderFilterPushDown::Inexact);
        assert_eq!(r.conditions, vec![r#""session_id" > 5"#]);
    }

    #[test]
    fn in_lists_nulls_and_timestamps() {
        let (p, r) = one(col("session_id").in_list(vec![lit(1i64), lit(2i64)], true), Backend::Sqlite);
        assert_eq!(p, TableProviderFilterPushDown::Exact);
        assert_eq!(r.conditions, vec![r#""session_id" NOT IN (1, 2)"#]);
        let (_, r) = one(col("country").is_null(), Backend::MySql);
        assert_eq!(r.conditions, vec!["`country` IS NULL"]);
        let ts = ScalarValue::TimestampMicrosecond(Some(1_700_000_000_000_000), None);
        let (p, r) = one(col("started_at").gt_eq(lit(ts.clone())), Backend::Postgres);
        assert_eq!(p, TableProviderFilterPushDown::Exact);
        assert_eq!(r.conditions, vec![r#""started_at" >= TIMESTAMP '2023-11-14 22:13:20.000000'"#]);
        let (p, _) = one(col("started_at").gt_eq(lit(ts)), Backend::Sqlite);
        assert_eq!(p, TableProviderFilterPushDown::Unsupported);
        let d = ScalarValue::Decimal128(Some(-1205), 10, 2);
        let (_, r) = one(col("amount").lt(lit(d)), Backend::MySql);
        assert_eq!(r.conditions, vec!["`amount` < -12.05"]);
    }

    #[test]
    fn unknown_columns_are_not_pushed() {
        let (p, _) = one(col("nope").eq(lit(1i64)), Backend::Postgres);
        assert_eq!(p, TableProviderFilterPushDown::Unsupported);
    }
}
