//! Reading the operational DB's own catalog: which tables exist, their
//! columns and types (and, on MySQL, text collations), primary keys, and
//! key ranges for split reads.

use sqlx::Row;

use super::OpdbError;
use super::backend::{Backend, Conn};
use super::filter::{Param, Rendered};
use super::meta::{Column, TableMeta};
use super::types;

/// Tables whose names start with this are Sentio's own bookkeeping (staging
/// tables, the write log) and are not listed in the `opdb` catalog.
pub const INTERNAL_PREFIX: &str = "_sentio_";

/// Names of the tables and views in the connection's current schema or
/// database, without Sentio's internal tables.
pub async fn table_names(conn: &mut Conn) -> Result<Vec<String>, OpdbError> {
    let names: Vec<String> = match conn {
        Conn::Pg(c) => {
            sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY 1",
            )
            .fetch_all(c)
            .await?
        }
        Conn::My(c) => {
            sqlx::query_scalar(
                "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
            )
            .fetch_all(c)
            .await?
        }
        Conn::Lite(c) => {
            sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
                 AND name NOT LIKE 'sqlite!_%' ESCAPE '!' ORDER BY 1",
            )
            .fetch_all(c)
            .await?
        }
    };
    Ok(names.into_iter().filter(|n| !n.starts_with(INTERNAL_PREFIX)).collect())
}

/// A raw column row from the database catalog.
struct RawColumn {
    name: String,
    mapped: Option<(types::ColumnType, types::ReadCast)>,
    db_type: String,
    has_default: bool,
    exact_text: bool,
}

/// Describes `table`, or `None` if it does not exist. A column of a type
/// Sentio cannot map fails with [`OpdbError::UnsupportedType`].
pub async fn describe(conn: &mut Conn, table: &str) -> Result<Option<TableMeta>, OpdbError> {
    let backend = conn.backend();
    let (raw, primary_key) = match conn {
        Conn::Pg(c) => {
            let rows = sqlx::query(
                "SELECT a.attname::text, t.typname::text, t.typtype::text, a.atttypmod, \
                        format_type(a.atttypid, a.atttypmod), \
                        (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''), \
                        COALESCE((SELECT co.collisdeterministic FROM pg_collation co \
                                  WHERE co.oid = a.attcollation), true) \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE n.nspname = current_schema() AND c.relname = $1 AND a.attnum > 0 \
                   AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await?;
            let raw = rows
                .iter()
                .map(|r| {
                    let typname: String = r.try_get(1)?;
                    let typtype: String = r.try_get(2)?;
                    Ok(RawColumn {
                        name: r.try_get(0)?,
                        mapped: types::postgres(&typname, &typtype, r.try_get(3)?),
                        db_type: r.try_get(4)?,
                        has_default: r.try_get(5)?,
                        exact_text: r.try_get(6)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let pk: Vec<String> = sqlx::query_scalar(
                "SELECT a.attname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
                 WHERE n.nspname = current_schema() AND c.relname = $1 AND i.indisprimary ORDER BY k.ord",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await?;
            (raw, pk)
        }
        Conn::My(c) => {
            let rows = sqlx::query(
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
                        CAST(NUMERIC_PRECISION AS SIGNED), CAST(NUMERIC_SCALE AS SIGNED), \
                        CAST((COLUMN_DEFAULT IS NOT NULL AND COLUMN_DEFAULT <> 'NULL') \
                             OR EXTRA LIKE '%auto_increment%' OR EXTRA LIKE '%GENERATED%' AS SIGNED) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await?;
            let raw = rows
                .iter()
                .map(|r| {
                    let data_type: String = r.try_get(1)?;
                    let column_type: String = r.try_get(2)?;
                    let p: Option<i64> = r.try_get(3)?;
                    let s: Option<i64> = r.try_get(4)?;
                    let d: i64 = r.try_get(5)?;
                    Ok(RawColumn {
                        name: r.try_get(0)?,
                        mapped: types::mysql(&data_type, &column_type, p.map(|v| v as u64), s.map(|v| v as u64)),
                        db_type: column_type,
                        has_default: d != 0,
                        exact_text: false,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let pk: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
                 ORDER BY ORDINAL_POSITION",
            )
            .bind(table)
            .fetch_all(&mut *c)
            .await?;
            (raw, pk)
        }
        Conn::Lite(c) => {
            let rows =
                sqlx::query("SELECT name, type, dflt_value IS NOT NULL, pk FROM pragma_table_info(?1) ORDER BY cid")
                    .bind(table)
                    .fetch_all(&mut *c)
                    .await?;
            let mut pk: Vec<(i64, String)> = Vec::new();
            let mut raw = Vec::new();
            for r in &rows {
                let name: String = r.try_get(0)?;
                let declared: String = r.try_get::<Option<String>, _>(1)?.unwrap_or_default();
                let pk_pos: i64 = r.try_get(3)?;
                if pk_pos > 0 {
                    pk.push((pk_pos, name.clone()));
                }
                let has_default: bool = r.try_get(2)?;
                // An INTEGER PRIMARY KEY is the rowid: SQLite fills it.
                let rowid = pk_pos > 0 && declared.eq_ignore_ascii_case("INTEGER");
                raw.push(RawColumn {
                    mapped: types::sqlite(&declared),
                    db_type: if declared.is_empty() { "(no declared type)".into() } else { declared },
                    has_default: has_default || rowid,
                    exact_text: false,
                    name,
                });
            }
            pk.sort();
            (raw, pk.into_iter().map(|(_, n)| n).collect())
        }
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(raw.len());
    for c in raw {
        let Some((ty, read_cast)) = c.mapped else {
            return Err(OpdbError::UnsupportedType { table: table.to_string(), column: c.name, db_type: c.db_type });
        };
        columns.push(Column {
            name: c.name,
            ty,
            read_cast,
            db_type: c.db_type,
            has_default: c.has_default,
            exact_text: c.exact_text,
        });
    }
    let split_column = match primary_key.as_slice() {
        [k] if columns.iter().any(|c| &c.name == k && c.ty.is_integer() && c.read_cast == types::ReadCast::None) => {
            Some(k.clone())
        }
        _ => None,
    };
    Ok(Some(TableMeta { backend, table: table.to_string(), columns, primary_key, split_column }))
}

/// The smallest and largest value of the split column among the rows that
/// pass the pushed `filters` (an incremental read asks only for new rows,
/// and its partitions should split those), and the database's estimate of
/// the table's rows (if it keeps one), read in one snapshot.
pub async fn key_range(
    conn: &mut Conn,
    meta: &TableMeta,
    key: &str,
    filters: &Rendered,
) -> Result<(Option<i64>, Option<i64>, Option<i64>), OpdbError> {
    let backend = meta.backend;
    let k = backend.quote(key);
    let t = meta.quoted_table();
    let int = if backend == Backend::MySql { "SIGNED" } else { "BIGINT" };
    let mut sql = format!("SELECT CAST(MIN({k}) AS {int}), CAST(MAX({k}) AS {int}) FROM {t}");
    if !filters.conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&filters.conditions.join(" AND "));
    }
    // One query text, three drivers: a macro, as sqlx's types differ.
    macro_rules! bounds {
        ($c:expr) => {{
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for p in &filters.params {
                match p {
                    Param::Text(s) => q = q.bind(s.clone()),
                }
            }
            let (lo, hi): (Option<i64>, Option<i64>) = q.fetch_one($c).await?;
            (lo, hi)
        }};
    }
    let (lo, hi, est) = match conn {
        Conn::Pg(c) => {
            let (lo, hi) = bounds!(&mut *c);
            let est: Option<f32> = sqlx::query_scalar(
                "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relname = $1",
            )
            .bind(&meta.table)
            .fetch_optional(&mut *c)
            .await?;
            (lo, hi, est.filter(|e| *e >= 0.0).map(|e| e as i64))
        }
        Conn::My(c) => {
            let (lo, hi) = bounds!(&mut *c);
            let est: Option<Option<i64>> = sqlx::query_scalar(
                "SELECT CAST(TABLE_ROWS AS SIGNED) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            )
            .bind(&meta.table)
            .fetch_optional(&mut *c)
            .await?;
            (lo, hi, est.flatten())
        }
        Conn::Lite(c) => {
            let (lo, hi) = bounds!(&mut *c);
            (lo, hi, None)
        }
    };
    Ok((lo, hi, est))
}

/// The character set and collation of each text column of `table`
/// (MySQL; empty elsewhere). Names that are not plain words are left out
/// (they go into DDL unquoted).
pub async fn text_collations(conn: &mut Conn, table: &str) -> Result<Vec<(String, String, String)>, OpdbError> {
    let Conn::My(c) = conn else { return Ok(Vec::new()) };
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(CHARACTER_SET_NAME AS CHAR), CAST(COLLATION_NAME AS CHAR) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
         AND CHARACTER_SET_NAME IS NOT NULL AND COLLATION_NAME IS NOT NULL",
    )
    .bind(table)
    .fetch_all(c)
    .await?;
    let word = |s: &str| !s.is_empty() && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    Ok(rows.into_iter().filter(|(_, cs, co)| word(cs) && word(co)).collect())
}
