//! Foreign keys of a MySQL or MariaDB write target, checked once at the end
//! of the publish instead of row by row.
//!
//! InnoDB checks a foreign key by share-locking the referenced row until
//! COMMIT, at every isolation level. A publish that inserted with the checks
//! on would keep every row its rows reference locked for the whole (paced)
//! publish, and an application updating one of them — the `sessions` row
//! that new `emotion_outputs` point at — would wait for all of it. So the
//! publishing `INSERT`s run with `foreign_key_checks = 0`, and just before
//! COMMIT [`check`] with [`Lock::Share`] share-locks the referenced rows in
//! one statement and fails the publish (it rolls back) if any is missing.
//! Rows the application deletes while the publish runs are caught there;
//! after it, its `DELETE` waits for the COMMIT and then sees the new rows,
//! as with the checks on. The locks are held from that statement to COMMIT.
//! The same check without locks runs before the publish begins, so a key
//! that was missing all along fails the write before any row is inserted.
//!
//! PostgreSQL needs none of this: its checks take key-share locks, which
//! only deleting the row or changing its key conflicts with.

use sqlx::Row;

use super::OpdbError;
use super::backend::{Backend, Conn};

/// One foreign key of a table: its columns and the columns they reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The constraint's name.
    pub name: String,
    /// The referencing columns, in order.
    pub columns: Vec<String>,
    /// The referenced table's schema (database).
    pub parent_schema: String,
    /// The referenced table.
    pub parent: String,
    /// The referenced columns, in the order of `columns`.
    pub parent_columns: Vec<String>,
}

/// The foreign keys of `table` in the connection's current database (MySQL
/// and MariaDB; empty on the other engines).
pub async fn of_table(conn: &mut Conn, table: &str) -> Result<Vec<ForeignKey>, OpdbError> {
    let Conn::My(c) = conn else { return Ok(Vec::new()) };
    let rows = sqlx::query(
        "SELECT CAST(CONSTRAINT_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), \
                CAST(REFERENCED_TABLE_SCHEMA AS CHAR), CAST(REFERENCED_TABLE_NAME AS CHAR), \
                CAST(REFERENCED_COLUMN_NAME AS CHAR) \
         FROM information_schema.KEY_COLUMN_USAGE \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL \
         ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION",
    )
    .bind(table)
    .fetch_all(c)
    .await?;
    let mut keys: Vec<ForeignKey> = Vec::new();
    for r in rows {
        let name: String = r.try_get(0)?;
        let column: String = r.try_get(1)?;
        let parent_column: String = r.try_get(4)?;
        match keys.last_mut() {
            Some(k) if k.name == name => {
                k.columns.push(column);
                k.parent_columns.push(parent_column);
            }
            _ => keys.push(ForeignKey {
                name,
                columns: vec![column],
                parent_schema: r.try_get(2)?,
                parent: r.try_get(3)?,
                parent_columns: vec![parent_column],
            }),
        }
    }
    Ok(keys)
}

/// Whether [`check`] locks the referenced rows it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A consistent read: nothing locked (before the publish).
    No,
    /// Share-locked until the transaction ends (just before COMMIT).
    Share,
}

/// The statements of [`check`] for `key` over the staging tables `stages`
/// (MySQL quoting): in one pass, the number of distinct staged values of
/// the key (NULL in any column: not checked, as the engine does) and the
/// number of them found in the parent (share-locking those rows with
/// [`Lock::Share`]); and one value that is missing.
fn statements(key: &ForeignKey, stages: &[String], lock: Lock) -> [String; 2] {
    let q = |s: &str| Backend::MySql.quote(s);
    let cols: Vec<String> = key.columns.iter().map(|c| q(c)).collect();
    let not_null = cols.iter().map(|c| format!("{c} IS NOT NULL")).collect::<Vec<_>>().join(" AND ");
    let staged = stages
        .iter()
        .map(|s| format!("SELECT {} FROM {} WHERE {not_null}", cols.join(", "), q(s)))
        .collect::<Vec<_>>()
        .join(" UNION ");
    let keys = format!("({staged}) AS k");
    let parent = format!("{}.{}", q(&key.parent_schema), q(&key.parent));
    let matches = key
        .columns
        .iter()
        .zip(&key.parent_columns)
        .map(|(c, p)| format!("p.{} = k.{}", q(p), q(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let k_cols = key.columns.iter().map(|c| format!("k.{}", q(c))).collect::<Vec<_>>();
    // Found: the key when a parent row matched (a NULL first column leaves
    // the row out of COUNT(DISTINCT …)); a parent's referenced columns need
    // not be unique, hence DISTINCT for both counts.
    let mut found = k_cols.clone();
    found[0] = format!("CASE WHEN p.{} IS NOT NULL THEN {} END", q(&key.parent_columns[0]), k_cols[0]);
    [
        format!(
            "SELECT CAST(COUNT(DISTINCT {}) AS SIGNED), CAST(COUNT(DISTINCT {}) AS SIGNED) \
             FROM {keys} LEFT JOIN {parent} AS p ON {matches}{}",
            k_cols.join(", "),
            found.join(", "),
            if lock == Lock::Share { " LOCK IN SHARE MODE" } else { "" }
        ),
        format!(
            "SELECT {} FROM {keys} WHERE NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE {matches}) LIMIT 1",
            k_cols.iter().map(|c| format!("CAST({c} AS CHAR)")).collect::<Vec<_>>().join(", ")
        ),
    ]
}

/// [`check`] for each of `keys`.
pub async fn check_all(
    conn: &mut Conn,
    table: &str,
    keys: &[ForeignKey],
    stages: &[String],
    lock: Lock,
) -> Result<(), OpdbError> {
    for key in keys {
        check(conn, table, key, stages, lock).await?;
    }
    Ok(())
}

/// Checks that every value of `key` in the staging tables `stages` has its
/// row in the parent table (with [`Lock::Share`], share-locking those rows
/// until the transaction ends); fails naming the constraint and one missing
/// value.
async fn check(conn: &mut Conn, table: &str, key: &ForeignKey, stages: &[String], lock: Lock) -> Result<(), OpdbError> {
    let Conn::My(c) = conn else { return Ok(()) };
    if stages.is_empty() {
        return Ok(());
    }
    let [counts, missing] = statements(key, stages, lock);
    let (staged, found): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(counts)).fetch_one(&mut *c).await?;
    if found >= staged {
        return Ok(());
    }
    let example = match sqlx::query(sqlx::AssertSqlSafe(missing)).fetch_optional(&mut *c).await? {
        Some(row) => (0..key.columns.len())
            .map(|i| row.try_get::<Option<String>, _>(i).map(|v| v.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "),
        None => String::from("?"),
    };
    Err(OpdbError::Value {
        table: table.to_string(),
        column: key.columns.join(", "),
        message: format!(
            "{} value(s) have no row in {}.{} (foreign key {}), e.g. ({example}); nothing was written",
            staged - found,
            key.parent_schema,
            key.parent,
            key.name
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ForeignKey {
        ForeignKey {
            name: "fk".into(),
            columns: vec!["a`b".into(), "c".into()],
            parent_schema: "app".into(),
            parent: "par".into(),
            parent_columns: vec!["x".into(), "y".into()],
        }
    }

    #[test]
    fn statements_union_the_stages_skip_nulls_and_lock_the_parent() {
        let stages = ["s1".to_string(), "s2".to_string()];
        let [unlocked, _] = statements(&key(), &stages, Lock::No);
        assert!(!unlocked.contains("LOCK"), "{unlocked}");
        let [counts, missing] = statements(&key(), &stages, Lock::Share);
        let keys = "(SELECT `a``b`, `c` FROM `s1` WHERE `a``b` IS NOT NULL AND `c` IS NOT NULL UNION \
                    SELECT `a``b`, `c` FROM `s2` WHERE `a``b` IS NOT NULL AND `c` IS NOT NULL) AS k";
        assert_eq!(
            counts,
            format!(
                "SELECT CAST(COUNT(DISTINCT k.`a``b`, k.`c`) AS SIGNED), \
                 CAST(COUNT(DISTINCT CASE WHEN p.`x` IS NOT NULL THEN k.`a``b` END, k.`c`) AS SIGNED) \
                 FROM {keys} LEFT JOIN `app`.`par` AS p ON p.`x` = k.`a``b` AND p.`y` = k.`c` LOCK IN SHARE MODE"
            )
        );
        assert!(
            missing.contains("WHERE NOT EXISTS (SELECT 1 FROM `app`.`par` AS p WHERE p.`x` = k.`a``b`"),
            "{missing}"
        );
    }
}
