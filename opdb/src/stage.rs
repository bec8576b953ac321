//! Staging tables: where each partition of a write lands before the write
//! is published.
//!
//! A staging table belongs to one partition of one write and is recreated
//! when its task is retried, so a retry never duplicates rows. PostgreSQL
//! gets an `UNLOGGED` table filled by binary `COPY`; MySQL and SQLite get
//! multi-row `INSERT`s with bound parameters, as many rows per statement as
//! the engine's parameter limit allows, in one transaction per partition.
//! Filling is paced ([`super::pace`]) one piece of `COPY` data or one
//! `INSERT` at a time.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Decimal128Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use sqlx::AssertSqlSafe;

use super::OpdbError;
use super::backend::{Backend, Conn};
use super::copy;
use super::introspect::{self, INTERNAL_PREFIX};
use super::meta::Column;
use super::pace::Pacer;
use super::types::ColumnType;
use super::values::{self, format_decimal};

/// Bytes of COPY data encoded before they are sent.
const COPY_CHUNK: usize = 256 << 10;

/// Bytes of COPY data sent to PostgreSQL at a time when the write is paced
/// (and paced as a unit): the backend absorbs them in well under a
/// millisecond, then waits for the next piece, at least [`COPY_PIECE_GAP`]
/// later. Sent whole, 256 KiB kept it busy for milliseconds at a stretch,
/// and an application's statement arriving on its CPU waited that long
/// (docs/benchmarks.md, "never blocks").
const COPY_PIECE: usize = 16 << 10;

/// The least rest between two paced pieces of COPY data.
const COPY_PIECE_GAP: Duration = Duration::from_millis(1);

/// A new staging table name for one task of write `write_id`. Every task
/// attempt gets its own table: the executor may run any partition as its
/// partition 0, and only the tables of attempts that succeeded are published.
pub fn table_name(write_id: &str) -> String {
    let random = RandomState::new().hash_one(std::time::Instant::now()) as u32;
    format!("{}{random:08x}", write_prefix(write_id))
}

/// The prefix of every staging table of write `write_id`.
pub fn write_prefix(write_id: &str) -> String {
    format!("{}{write_id}_", prefix())
}

/// The prefix of every staging table.
pub fn prefix() -> String {
    format!("{INTERNAL_PREFIX}stage_")
}

fn column_type(backend: Backend, ty: ColumnType) -> String {
    match backend {
        Backend::Postgres => copy::pg_stage_type(ty).to_string(),
        Backend::MySql => match ty {
            ColumnType::Boolean => "BOOLEAN".into(),
            ColumnType::Int8 => "TINYINT".into(),
            ColumnType::Int16 => "SMALLINT".into(),
            ColumnType::Int32 => "INT".into(),
            ColumnType::Int64 => "BIGINT".into(),
            ColumnType::Float32 => "FLOAT".into(),
            ColumnType::Float64 => "DOUBLE".into(),
            ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            ColumnType::Text => "LONGTEXT".into(),
            ColumnType::Binary => "LONGBLOB".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time => "TIME(6)".into(),
            ColumnType::Timestamp | ColumnType::TimestampTz => "DATETIME(6)".into(),
        },
        // No declared type: SQLite keeps each value as bound.
        Backend::Sqlite => String::new(),
    }
}

/// The column that numbers the rows of a MySQL staging table, in the order
/// they were staged (an `AUTO_INCREMENT` clustered key), so that the publish
/// can go a range of rows at a time.
pub const ROW_COLUMN: &str = "_sentio_row";

/// Whether a staging table for `columns` on `backend` has [`ROW_COLUMN`]:
/// on MySQL, unless the table has a column of that name itself.
pub fn numbers_rows(backend: Backend, columns: &[Column]) -> bool {
    backend == Backend::MySql && !columns.iter().any(|c| c.name.eq_ignore_ascii_case(ROW_COLUMN))
}

/// (Re)creates the staging table `name` for `columns` of table `target`.
///
/// On MySQL a text column gets the character set and collation of the
/// target's column: the publish compares staged keys with the target's
/// (the rerun's `DELETE`, foreign-key checks), and MySQL refuses to compare
/// two columns of different collations ("Illegal mix of collations") — a
/// table whose collation is not the database's default could not be
/// written by run id.
pub async fn create(conn: &mut Conn, name: &str, target: &str, columns: &[Column]) -> Result<(), OpdbError> {
    let b = conn.backend();
    let q = b.quote(name);
    let collations = introspect::text_collations(conn, target).await?;
    conn.execute(&format!("DROP TABLE IF EXISTS {q}")).await?;
    let row =
        numbers_rows(b, columns).then(|| format!("{} BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", b.quote(ROW_COLUMN)));
    let typed = |c: &Column| {
        let ty = column_type(b, c.ty);
        match collations.iter().find(|(n, _, _)| *n == c.name) {
            Some((_, charset, collation)) if c.ty == ColumnType::Text => {
                format!("{ty} CHARACTER SET {charset} COLLATE {collation}")
            }
            _ => ty,
        }
    };
    let cols: Vec<String> = row
        .into_iter()
        .chain(columns.iter().map(|c| format!("{} {}", b.quote(&c.name), typed(c)).trim_end().to_string()))
        .collect();
    let unlogged = if b == Backend::Postgres { "UNLOGGED " } else { "" };
    conn.execute(&format!("CREATE {unlogged}TABLE {q} ({})", cols.join(", "))).await?;
    Ok(())
}

/// Indexes `columns` of the staging table `name` (after it is filled, so
/// the load itself stays fast) for the publish's `DELETE … WHERE EXISTS`
/// semi-join on them, where the engine needs it: MySQL's single-table
/// `DELETE` looks each target row up in the staging table. PostgreSQL
/// leaves such an index unused (its plan is the same with or without it:
/// keyed by a run id, a hash join; by the primary key, the staged keys
/// looked up in the target's own key index), so there it would be an
/// unpaced burst of work for nothing (docs/benchmarks.md).
pub async fn index(conn: &mut Conn, name: &str, columns: &[&Column]) -> Result<(), OpdbError> {
    let b = conn.backend();
    if columns.is_empty() || b == Backend::Postgres {
        return Ok(());
    }
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            // MySQL can only index a prefix of TEXT and BLOB columns.
            let q = b.quote(&c.name);
            let long = matches!(c.ty, ColumnType::Text | ColumnType::Binary);
            if b == Backend::MySql && long { format!("{q}(64)") } else { q }
        })
        .collect();
    let index = b.quote(&format!("{name}_k"));
    let sql = format!("CREATE INDEX {index} ON {} ({})", b.quote(name), cols.join(", "));
    conn.execute(&sql).await?;
    Ok(())
}

/// The arrays of `batch` converted to the Arrow types of `columns`.
fn normalize(batch: &RecordBatch, columns: &[Column]) -> Result<Vec<ArrayRef>> {
    if batch.num_columns() != columns.len() {
        return Err(DataFusionError::Plan(format!(
            "opdb write: {} columns arrived for {} table columns",
            batch.num_columns(),
            columns.len()
        )));
    }
    batch
        .columns()
        .iter()
        .zip(columns)
        .map(|(a, c)| {
            let want = c.ty.arrow_type();
            if a.data_type() == &want {
                Ok(a.clone())
            } else {
                cast(a, &want).map_err(|e| {
                    DataFusionError::Plan(format!(
                        "column {:?}: cannot write {} as {}: {e}",
                        c.name,
                        a.data_type(),
                        c.ty
                    ))
                })
            }
        })
        .collect()
}

/// Writes every batch of `input` into the staging table `name`; returns
/// the rows written.
pub async fn fill(
    conn: &mut Conn,
    name: &str,
    columns: &[Column],
    mut input: SendableRecordBatchStream,
    pacer: &mut Pacer,
) -> Result<u64> {
    let b = conn.backend();
    let q = b.quote(name);
    let col_list = columns.iter().map(|c| b.quote(&c.name)).collect::<Vec<_>>().join(", ");
    let types: Vec<ColumnType> = columns.iter().map(|c| c.ty).collect();
    let mut rows = 0u64;
    match conn {
        Conn::Pg(c) => {
            let mut copy_in = c
                .copy_in_raw(&format!("COPY {q} ({col_list}) FROM STDIN (FORMAT binary)"))
                .await
                .map_err(OpdbError::from)?;
            let mut buf = copy::header();
            let result: Result<()> = async {
                while let Some(batch) = next_input(&mut input, pacer).await {
                    let batch = batch?;
                    let arrays = normalize(&batch, columns)?;
                    copy::encode_rows(&arrays, &types, &mut buf);
                    rows += batch.num_rows() as u64;
                    if buf.len() >= COPY_CHUNK {
                        send_copy(&mut copy_in, std::mem::take(&mut buf), pacer).await?;
                    }
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    buf.extend_from_slice(&copy::TRAILER);
                    send_copy(&mut copy_in, buf, pacer).await?;
                    copy_in.finish().await.map_err(OpdbError::from)?;
                }
                Err(e) => {
                    let _ = copy_in.abort(e.to_string()).await;
                    return Err(e);
                }
            }
        }
        Conn::My(_) | Conn::Lite(_) => {
            let limit = if b == Backend::MySql { 65_535 } else { 32_766 };
            let per_stmt = (limit / columns.len().max(1)).clamp(1, 1000);
            conn.begin().await?;
            let result: Result<()> = async {
                while let Some(batch) = next_input(&mut input, pacer).await {
                    let batch = batch?;
                    let arrays = normalize(&batch, columns)?;
                    let mut start = 0;
                    while start < batch.num_rows() {
                        let n = per_stmt.min(batch.num_rows() - start);
                        insert_rows(conn, &q, &col_list, &arrays, &types, start, n).await?;
                        pacer.pause().await;
                        start += n;
                    }
                    rows += batch.num_rows() as u64;
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => conn.commit().await?,
                Err(e) => {
                    conn.rollback().await;
                    return Err(e);
                }
            }
        }
    }
    Ok(rows)
}

/// Sends `data` to a `COPY … FROM STDIN`: whole when the write is unpaced
/// (duty 1), else in [`COPY_PIECE`]s, each a paced unit followed by a rest
/// of at least [`COPY_PIECE_GAP`].
async fn send_copy<C>(copy_in: &mut sqlx::postgres::PgCopyIn<C>, data: Vec<u8>, pacer: &mut Pacer) -> Result<()>
where
    C: std::ops::DerefMut<Target = sqlx::PgConnection>,
{
    if !pacer.paced() {
        copy_in.send(data).await.map_err(OpdbError::from)?;
        return Ok(());
    }
    for piece in data.chunks(COPY_PIECE) {
        copy_in.send(piece).await.map_err(OpdbError::from)?;
        pacer.pause_at_least(COPY_PIECE_GAP).await;
    }
    Ok(())
}

/// The next input batch; the wait for it is not the database's work.
async fn next_input(input: &mut SendableRecordBatchStream, pacer: &mut Pacer) -> Option<Result<RecordBatch>> {
    let waiting = tokio::time::Instant::now();
    let next = input.next().await;
    pacer.exclude(waiting.elapsed());
    next
}

/// One value to bind.
enum Val {
    Bool(Option<bool>),
    I64(Option<i64>),
    F32(Option<f32>),
    F64(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Date(Option<NaiveDate>),
    Time(Option<NaiveTime>),
    Ts(Option<NaiveDateTime>),
    TsTz(Option<DateTime<Utc>>),
}

fn val(a: &ArrayRef, ty: ColumnType, row: usize, backend: Backend) -> Val {
    let null = a.is_null(row);
    match ty {
        ColumnType::Boolean => {
            Val::Bool((!null).then(|| a.as_any().downcast_ref::<BooleanArray>().expect("bool").value(row)))
        }
        ColumnType::Int8 => Val::I64((!null).then(|| a.as_primitive::<Int8Type>().value(row) as i64)),
        ColumnType::Int16 => Val::I64((!null).then(|| a.as_primitive::<Int16Type>().value(row) as i64)),
        ColumnType::Int32 => Val::I64((!null).then(|| a.as_primitive::<Int32Type>().value(row) as i64)),
        ColumnType::Int64 => Val::I64((!null).then(|| a.as_primitive::<Int64Type>().value(row))),
        ColumnType::Float32 => Val::F32((!null).then(|| a.as_primitive::<Float32Type>().value(row))),
        ColumnType::Float64 => Val::F64((!null).then(|| a.as_primitive::<Float64Type>().value(row))),
        ColumnType::Decimal { scale, .. } => {
            Val::Text((!null).then(|| {
                format_decimal(a.as_any().downcast_ref::<Decimal128Array>().expect("decimal").value(row), scale)
            }))
        }
        ColumnType::Text => {
            Val::Text((!null).then(|| a.as_any().downcast_ref::<StringArray>().expect("text").value(row).to_string()))
        }
        ColumnType::Binary => {
            Val::Bytes((!null).then(|| a.as_any().downcast_ref::<BinaryArray>().expect("binary").value(row).to_vec()))
        }
        ColumnType::Date => {
            Val::Date(if null { None } else { values::date(a.as_primitive::<Date32Type>().value(row)) })
        }
        ColumnType::Time => Val::Time(if null {
            None
        } else {
            let us = a.as_primitive::<Time64MicrosecondType>().value(row);
            NaiveTime::from_num_seconds_from_midnight_opt((us / 1_000_000) as u32, ((us % 1_000_000) * 1_000) as u32)
        }),
        ColumnType::Timestamp => Val::Ts(if null {
            None
        } else {
            values::timestamp(a.as_primitive::<TimestampMicrosecondType>().value(row))
        }),
        // SQLite keeps instants as text; write them in its usual form.
        ColumnType::TimestampTz if backend == Backend::Sqlite => Val::Text(if null {
            None
        } else {
            DateTime::from_timestamp_micros(a.as_primitive::<TimestampMicrosecondType>().value(row))
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f+00:00").to_string())
        }),
        ColumnType::TimestampTz => Val::TsTz(if null {
            None
        } else {
            DateTime::from_timestamp_micros(a.as_primitive::<TimestampMicrosecondType>().value(row))
        }),
    }
}

/// Binds rows `start..start + n` to one multi-row INSERT: one definition for
/// both drivers that take bound rows.
macro_rules! insert_with {
    ($c:expr, $backend:expr, $sql:expr, $arrays:expr, $types:expr, $start:expr, $n:expr) => {{
        let mut q = sqlx::query(AssertSqlSafe($sql));
        for row in $start..$start + $n {
            for (a, ty) in $arrays.iter().zip($types) {
                q = match val(a, *ty, row, $backend) {
                    Val::Bool(v) => q.bind(v),
                    Val::I64(v) => q.bind(v),
                    Val::F32(v) => q.bind(v),
                    Val::F64(v) => q.bind(v),
                    Val::Text(v) => q.bind(v),
                    Val::Bytes(v) => q.bind(v),
                    Val::Date(v) => q.bind(v),
                    Val::Time(v) => q.bind(v),
                    Val::Ts(v) => q.bind(v),
                    Val::TsTz(v) => q.bind(v),
                };
            }
        }
        q.execute($c).await.map_err(OpdbError::from)?;
    }};
}

async fn insert_rows(
    conn: &mut Conn,
    table: &str,
    col_list: &str,
    arrays: &[ArrayRef],
    types: &[ColumnType],
    start: usize,
    n: usize,
) -> Result<()> {
    let one = format!("({})", vec!["?"; arrays.len()].join(", "));
    let sql = format!("INSERT INTO {table} ({col_list}) VALUES {}", vec![one; n].join(", "));
    match conn {
        Conn::My(c) => insert_with!(&mut *c, Backend::MySql, sql, arrays, types, start, n),
        Conn::Lite(c) => insert_with!(&mut *c, Backend::Sqlite, sql, arrays, types, start, n),
        Conn::Pg(_) => return Err(OpdbError::Plan("PostgreSQL stages with COPY, not INSERT".into()).into()),
    }
    Ok(())
}
